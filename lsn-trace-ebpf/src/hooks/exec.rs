//! Who a process became when it exec()ed, for the audit's identity of processes gone before
//! the agent reads /proc (a scanner, a dropper, a crash-looping service): the path of its
//! new executable (what /proc/PID/exe shows) and its new argv, keyed by the process instance
//! (tgid, `start_boottime`); and, for a process that never exec()s (a forked child), the
//! instance it was forked from. Attached only when the agent sets `CFG_EXEC`; into its own
//! ring (`EXECS`), which no other output reads.
use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str},
    },
    macros::{map, raw_tracepoint},
    maps::RingBuf,
    programs::RawTracePointContext,
};
use lsn_trace_common::*;

use crate::{
    kernel::{Caller, Mem, Typed, bounded, probe_read, task_start_boottime, task_tgid},
    maps::{config, count},
};

/// Filled by the agent before load, like `OFFSETS`.
#[unsafe(no_mangle)]
pub static EXEC_OFFSETS: ExecOffsets = ExecOffsets::UNRESOLVED;

/// Sized by the agent. Never wakes it: it is read just before each batch of `EVENTS`, so an
/// exec is always known before the events of the process it made.
#[map]
pub static EXECS: RingBuf = RingBuf::with_byte_size(4096, 0);

macro_rules! exec_off {
    ($f:ident) => {
        Field::from_bits(unsafe {
            core::ptr::read_volatile(&raw const EXEC_OFFSETS.$f as *const u64)
        })
    };
}

/// How many names (and mount crossings) the path walk takes at most.
const PATH_DEPTH: usize = 32;

/// A kernel pointer (or word) at `base + f.offset`; None when unresolved, unreadable or 0.
#[inline(always)]
fn word(base: u64, f: Field) -> Option<u64> {
    if base == 0 || f.size != 8 {
        return None;
    }
    let mut v: u64 = 0;
    let r = unsafe {
        bpf_probe_read_kernel(
            &mut v as *mut u64 as *mut _,
            8,
            (base + f.offset as u64) as *const _,
        )
    };
    (r == 0 && v != 0).then_some(v)
}

/// The names of `file`'s path into `buf`, leaf first, each NUL-ended, up to the root of its
/// mount namespace, as `d_path` walks (`prepend_path`): a mount's root steps to where it is
/// mounted. The bytes written, or None when the path is longer or deeper than kept, or a
/// read failed (nothing partial is ever taken for the path).
#[inline(always)]
fn walk_path(file: u64, buf: &mut [u8; 2 * EXEC_PATH_CAP]) -> Option<u32> {
    let mut dentry = word(file, exec_off!(file_path_dentry))?;
    let mnt = word(file, exec_off!(file_path_mnt))?;
    let mnt_off = exec_off!(mount_mnt);
    if !mnt_off.is_known() {
        return None;
    }
    let mut mount = mnt - mnt_off.offset as u64;
    let mut pos: u32 = 0;
    for _ in 0..PATH_DEPTH {
        let root = word(mount + mnt_off.offset as u64, exec_off!(vfsmount_root))?;
        if dentry == root {
            let parent = word(mount, exec_off!(mount_parent))?;
            if parent == mount {
                return Some(pos);
            }
            dentry = word(mount, exec_off!(mount_mountpoint))?;
            mount = parent;
            continue;
        }
        let up = word(dentry, exec_off!(dentry_parent))?;
        if up == dentry {
            // A root that is no mount's (a detached tree): where d_path stops too.
            return Some(pos);
        }
        let name = word(dentry, exec_off!(dentry_name))?;
        let at = pos & (EXEC_PATH_CAP as u32 - 1);
        let room = bounded((EXEC_PATH_CAP as u32 - at) as u64, EXEC_PATH_CAP as u64);
        let n = unsafe {
            bpf_probe_read_kernel_str(
                buf.as_mut_ptr().add(at as usize) as *mut _,
                room,
                name as *const _,
            )
        };
        // n counts the NUL; filling the room may have cut the name.
        if n <= 0 || n as u32 >= room {
            return None;
        }
        pos = at + n as u32;
        dentry = up;
    }
    None
}

/// TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm), run by the
/// task that exec()ed, once the new image is in place: it is its process's main thread
/// now (de_thread), with the new mm whose stack holds the argv just copied there.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(_ctx: RawTracePointContext) -> i32 {
    if config().flags & CFG_EXEC == 0 {
        return 0;
    }
    let caller = Caller::current();
    let Some(mut entry) = EXECS.reserve::<ExecRecord>(0) else {
        count(CTR_EXEC_LOST);
        return 0;
    };
    let r = unsafe { &mut *entry.as_mut_ptr() };
    r.ts_ns = unsafe { bpf_ktime_get_ns() };
    r.start_boottime = caller.start_boottime();
    r.pid = caller.tgid();
    r.flags = 0;
    r.path_len = 0;
    r.args_len = 0;
    r.args_total = 0;
    let mm = Typed::current_task().ptr(exec_off!(task_mm));
    if let Some(file) = mm.and_then(|mm| word(mm.addr(), exec_off!(mm_exe_file))) {
        match walk_path(file, &mut r.path) {
            Some(len) => {
                r.flags |= EXEC_PATH_READ;
                r.path_len = len as u16;
            }
            None => r.flags |= EXEC_PATH_LONG,
        }
    }
    if let Some(mm) = mm
        && let Some(start) = mm.scalar(exec_off!(mm_arg_start))
        && let Some(end) = mm.scalar(exec_off!(mm_arg_end))
        && end > start
    {
        let total = end - start;
        let n = bounded(total, EXEC_ARGS_CAP as u64);
        if probe_read(r.args.as_mut_ptr(), n, start, Mem::User) == 0 {
            r.flags |= EXEC_ARGS_READ;
            r.args_len = n;
            r.args_total = bounded(total, u32::MAX as u64);
            if total > n as u64 {
                r.flags |= EXEC_ARGS_CUT;
            }
        }
    }
    entry.submit(BPF_RB_NO_WAKEUP as u64);
    0
}

/// TP_PROTO(struct task_struct *parent, struct task_struct *child), run by the parent once
/// the child exists (its `start_boottime` set by copy_process). A new thread is no new
/// process: skipped.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn fork_lineage(ctx: RawTracePointContext) -> i32 {
    if config().flags & CFG_EXEC == 0 {
        return 0;
    }
    let caller = Caller::current();
    let child: u64 = ctx.arg(1);
    let Some(pid) = task_tgid(child) else {
        return 0;
    };
    if pid == caller.tgid() {
        return 0;
    }
    let Some(mut entry) = EXECS.reserve::<ForkRecord>(0) else {
        count(CTR_EXEC_LOST);
        return 0;
    };
    let r = unsafe { &mut *entry.as_mut_ptr() };
    r.ts_ns = unsafe { bpf_ktime_get_ns() };
    r.start_boottime = task_start_boottime(child).unwrap_or(0);
    r.parent_start_boottime = caller.start_boottime();
    r.pid = pid;
    r.parent_pid = caller.tgid();
    entry.submit(BPF_RB_NO_WAKEUP as u64);
    0
}
