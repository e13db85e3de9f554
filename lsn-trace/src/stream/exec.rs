//! The exec capture (issue 18): who a process became when it exec()ed, from the `EXECS`
//! ring (`ExecRecord`), for the audit's identity of processes already gone when their
//! events are read. Decoding only; the audit keeps them (`audit::identity`).
use lsn_trace_common as wire;

/// One exec, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    pub pid: u32,
    /// The process's start in ns since boot, as `RawArgs::start_ns`: with `pid`, the
    /// instance. None when the kernel side could not read it (then it matches nothing).
    pub start_ns: Option<u64>,
    /// When it exec()ed, on the events' clock (wall time, ns).
    pub time_ns: u64,
    /// The path of the process's executable as /proc/PID/exe names it (`mm->exe_file`, the
    /// file the kernel loaded: a script's interpreter) — the path in the process's mount
    /// namespace; None when unreadable or longer than kept (`EXEC_PATH_CAP`).
    pub exe: Option<String>,
    /// The new argv; None when unreadable or empty.
    pub cmdline: Option<Vec<String>>,
    /// The argv was longer than the kernel side keeps (`EXEC_ARGS_CAP`): `cmdline` is its
    /// beginning, its last argument possibly cut.
    pub cmdline_truncated: bool,
}

/// One fork of a new process: the instance it was forked from. A child that never
/// exec()s runs its parent's executable with its parent's argv as they were at the fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fork {
    pub pid: u32,
    /// The child's start in ns since boot (its instance, as `Exec::start_ns`).
    pub start_ns: Option<u64>,
    pub parent_pid: u32,
    pub parent_start_ns: Option<u64>,
    /// When it forked, on the events' clock (wall time, ns).
    pub time_ns: u64,
}

/// A ring record as a `Fork` (None: not one — an `ExecRecord` is larger).
pub fn decode_fork(item: &[u8], boot_to_wall_ns: i64) -> Option<Fork> {
    if item.len() != std::mem::size_of::<wire::ForkRecord>() {
        return None;
    }
    // SAFETY: the program writes whole `ForkRecord`s; read unaligned to be safe.
    let raw: wire::ForkRecord = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
    Some(Fork {
        pid: raw.pid,
        start_ns: (raw.start_boottime != 0).then_some(raw.start_boottime),
        parent_pid: raw.parent_pid,
        parent_start_ns: (raw.parent_start_boottime != 0).then_some(raw.parent_start_boottime),
        time_ns: (raw.ts_ns as i128 + boot_to_wall_ns as i128).max(0) as u64,
    })
}

/// A ring record as an `Exec` (None: too short to be one).
pub fn decode(item: &[u8], boot_to_wall_ns: i64) -> Option<Exec> {
    if item.len() < std::mem::size_of::<wire::ExecRecord>() {
        return None;
    }
    // SAFETY: the program writes whole `ExecRecord`s; read unaligned to be safe.
    let raw: wire::ExecRecord = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
    Some(from_wire(&raw, boot_to_wall_ns))
}

fn from_wire(raw: &wire::ExecRecord, boot_to_wall_ns: i64) -> Exec {
    let exe = (raw.flags & wire::EXEC_PATH_READ != 0).then(|| {
        // Names leaf first, each NUL-ended: the path is them the other way round.
        let names = &raw.path[..(raw.path_len as usize).min(wire::EXEC_PATH_CAP)];
        let names = names.strip_suffix(&[0]).unwrap_or(names);
        let mut path = Vec::with_capacity(names.len() + 1);
        for name in names.rsplit(|&b| b == 0) {
            path.push(b'/');
            path.extend_from_slice(name);
        }
        if path.is_empty() {
            path.push(b'/');
        }
        crate::text::from_bytes(&path)
    });
    let args = &raw.args[..(raw.args_len as usize).min(wire::EXEC_ARGS_CAP)];
    let cmdline = (raw.flags & wire::EXEC_ARGS_READ != 0 && !args.is_empty()).then(|| {
        let args = args.strip_suffix(&[0]).unwrap_or(args);
        args.split(|&b| b == 0)
            .map(crate::text::from_bytes)
            .collect()
    });
    Exec {
        pid: raw.pid,
        start_ns: (raw.start_boottime != 0).then_some(raw.start_boottime),
        time_ns: (raw.ts_ns as i128 + boot_to_wall_ns as i128).max(0) as u64,
        exe,
        cmdline_truncated: cmdline.is_some() && raw.flags & wire::EXEC_ARGS_CUT != 0,
        cmdline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &[u8], args: &[u8], flags: u16) -> wire::ExecRecord {
        let mut r = wire::ExecRecord {
            ts_ns: 5,
            start_boottime: 3,
            pid: 42,
            flags,
            path_len: path.len() as u16,
            args_len: args.len() as u32,
            args_total: args.len() as u32,
            path: [0xaa; 2 * wire::EXEC_PATH_CAP],
            args: [0xbb; wire::EXEC_ARGS_CAP],
        };
        r.path[..path.len()].copy_from_slice(path);
        r.args[..args.len()].copy_from_slice(args);
        r
    }

    const READ: u16 = wire::EXEC_PATH_READ | wire::EXEC_ARGS_READ;

    #[test]
    fn whole_record() {
        let e = from_wire(&record(b"nc\0bin\0usr\0", b"nc\0-l\0\0\x01\0", READ), 10);
        assert_eq!((e.pid, e.start_ns, e.time_ns), (42, Some(3), 15));
        assert_eq!(e.exe.as_deref(), Some("/usr/bin/nc"));
        // An empty argument is one; only the final NUL ends the list.
        let want: Vec<String> = ["nc", "-l", "", "\u{1}"].map(String::from).to_vec();
        assert_eq!(e.cmdline, Some(want));
        assert!(!e.cmdline_truncated);
    }

    #[test]
    fn cut_said_long_null() {
        let cut = from_wire(
            &record(b"x\0bin\0", b"x\0aaaa", READ | wire::EXEC_ARGS_CUT),
            0,
        );
        assert_eq!(cut.cmdline, Some(vec!["x".into(), "aaaa".into()]));
        assert!(cut.cmdline_truncated);
        // Any byte but NUL and '/' may be in a name, kept losslessly.
        let odd = from_wire(&record(b"a b\xff\0x\n\0", b"", READ), 0);
        assert_eq!(odd.exe, Some(crate::text::from_bytes(b"/x\n/a b\xff")));
        assert_eq!(odd.cmdline, None);
        let long = from_wire(&record(b"", b"", wire::EXEC_PATH_LONG), 0);
        assert_eq!(
            (long.exe, long.cmdline, long.cmdline_truncated),
            (None, None, false)
        );
        let mut no_start = record(b"x\0", b"x\0", READ);
        no_start.start_boottime = 0;
        assert_eq!(from_wire(&no_start, 0).start_ns, None);
        assert!(decode(&[0; 8], 0).is_none());
    }
}
