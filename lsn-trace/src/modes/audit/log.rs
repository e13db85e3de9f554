//! Where audit records go: a file opened O_APPEND (created 0640, never truncated) or
//! stdout (journald). A log that cannot be written does not stop the tracing: records
//! are held in memory (up to `HOLD_CAP`) and retried at every flush, and the failure is
//! reported on stderr when it starts, every `REPORT_EVERY` while it lasts, and when it
//! ends. SIGHUP reopens the file by its path (logrotate: rename, then HUP).
use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

/// Records kept while the log cannot be written; past this, new records are counted and
/// dropped, and a `lost` record says how many once the log works again.
pub const HOLD_CAP: usize = 64 << 20;
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Mode of a log file lsn-trace creates: readable by the adm-style group, not the world
/// (listeners and command lines of every process are in it).
pub const MODE: u32 = 0o640;

static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_hup(_: libc::c_int) {
    HUP.store(true, Ordering::Relaxed);
}

/// SIGHUP sets a flag the next flush acts on (its default action would kill us).
pub fn install_hup_handler() -> io::Result<()> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_hup as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGHUP, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Open `path` for appending, creating it with mode 0640 (whatever the umask) when absent.
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.append(true).custom_flags(libc::O_CLOEXEC);
    match opts.clone().create_new(true).mode(MODE).open(path) {
        Ok(f) => {
            // The umask may have taken bits away; the mode is part of the contract.
            f.set_permissions(std::fs::Permissions::from_mode(MODE))?;
            Ok(f)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => opts.open(path),
        Err(e) => Err(e),
    }
}

enum Target {
    Stdout(io::Stdout),
    File { path: PathBuf, file: File },
}

pub struct Log {
    target: Target,
    /// Serialized records not written yet.
    buf: Vec<u8>,
    /// Since when writing fails, and when that was last said.
    failing: Option<(Instant, Instant)>,
    reopen_pending: bool,
    /// Records refused because `HOLD_CAP` was reached.
    pub dropped: u64,
}

impl Log {
    pub fn stdout() -> Log {
        Log::new(Target::Stdout(io::stdout()))
    }

    pub fn file(path: &Path) -> io::Result<Log> {
        let file = open_append(path)?;
        Ok(Log::new(Target::File {
            path: path.to_owned(),
            file,
        }))
    }

    fn new(target: Target) -> Log {
        Log {
            target,
            buf: Vec::with_capacity(64 * 1024),
            failing: None,
            reopen_pending: false,
            dropped: 0,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match &self.target {
            Target::Stdout(_) => None,
            Target::File { path, .. } => Some(path),
        }
    }

    fn name(&self) -> String {
        self.path()
            .map_or_else(|| "stdout".into(), |p| p.display().to_string())
    }

    /// Append one record (a line without its newline). Returns false if it was dropped
    /// because too much is held already.
    pub fn push(&mut self, line: &[u8]) -> bool {
        if self.buf.len() + line.len() > HOLD_CAP {
            self.dropped += 1;
            return false;
        }
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        true
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn write_out(&mut self) -> io::Result<()> {
        while !self.buf.is_empty() {
            let r = match &mut self.target {
                Target::Stdout(s) => s.lock().write(&self.buf),
                Target::File { file, .. } => file.write(&self.buf),
            };
            match r {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                // A short write (disk just filled up) keeps the rest for the next try, so
                // the line is completed, not lost or doubled.
                Ok(n) => drop(self.buf.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if let Target::Stdout(s) = &mut self.target {
            s.lock().flush()?;
        }
        Ok(())
    }

    /// Write what is held; reopen first-thing after a SIGHUP has been written out to the
    /// old file. Errors are reported and retried at the next call, except a closed
    /// stdout, which ends the run (`lsn-trace audit | head`).
    pub fn flush(&mut self) -> io::Result<()> {
        let hup = HUP.swap(false, Ordering::Relaxed);
        if hup && self.path().is_some() {
            self.reopen_pending = true;
        }
        // What was recorded before the HUP belongs to the file that was rotated away.
        let mut result = self.write_out();
        if self.reopen_pending {
            self.reopen();
            if result.is_err() {
                // The new file may well be writable where the old one was not.
                result = self.write_out();
            }
        }
        match result {
            Ok(()) => {
                if let Some((since, _)) = self.failing.take() {
                    say!(
                        "lsn-trace: audit log {}: writable again after {:.0?}; held records written",
                        self.name(),
                        since.elapsed()
                    );
                }
                Ok(())
            }
            Err(e)
                if matches!(self.target, Target::Stdout(_))
                    && e.kind() == io::ErrorKind::BrokenPipe =>
            {
                Err(e)
            }
            Err(e) => {
                let now = Instant::now();
                let say = match &mut self.failing {
                    None => {
                        self.failing = Some((now, now));
                        true
                    }
                    Some((_, last)) if now.duration_since(*last) >= REPORT_EVERY => {
                        *last = now;
                        true
                    }
                    Some(_) => false,
                };
                if say {
                    say!(
                        "lsn-trace: AUDIT LOG {} CANNOT BE WRITTEN: {e}; {} bytes of records \
                         held in memory and retried (up to {} MiB, then counted as lost); \
                         tracing continues",
                        self.name(),
                        self.buf.len(),
                        HOLD_CAP >> 20
                    );
                }
                Ok(())
            }
        }
    }

    fn reopen(&mut self) {
        let Target::File { path, file } = &mut self.target else {
            self.reopen_pending = false;
            return;
        };
        match open_append(path) {
            Ok(f) => {
                *file = f;
                self.reopen_pending = false;
                log::info!("audit log {} reopened", path.display());
            }
            // Keep writing to the old descriptor (the renamed file) until it works.
            Err(e) => say!(
                "lsn-trace: AUDIT LOG {}: cannot reopen after SIGHUP: {e}; still writing to \
                 the previous file, retrying",
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lsn-audit-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("audit.jsonl")
    }

    #[test]
    fn created_0640_even_with_a_strict_umask_and_appends() {
        let path = tmp("mode");
        let old = unsafe { libc::umask(0o077) };
        let f = open_append(&path);
        unsafe { libc::umask(old) };
        drop(f.unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        std::fs::write(&path, "kept\n").unwrap();
        let mut log = Log::file(&path).unwrap();
        assert!(log.push(b"{\"a\":1}"));
        log.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept\n{\"a\":1}\n");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn hold_cap_counts_dropped_records() {
        let path = tmp("cap");
        let mut log = Log::file(&path).unwrap();
        let big = vec![b'x'; HOLD_CAP / 2];
        assert!(log.push(&big));
        assert!(!log.push(&big));
        assert_eq!(log.dropped, 1);
        drop(log);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
