//! Where audit records go: a file opened O_APPEND (created 0640, never truncated, opened
//! as a careful daemon does: `open_append`) or stdout (journald). A log that cannot be written does not stop the tracing: records
//! are held in memory (up to `HOLD_CAP`) and retried at every flush, and the failure is
//! reported on stderr when it starts, every `REPORT_EVERY` while it lasts, and when it
//! ends. SIGHUP reopens the file by its path (logrotate: rename, then HUP).
use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::{
        fd::AsRawFd as _,
        unix::fs::{OpenOptionsExt, PermissionsExt},
    },
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

/// Why a log path is refused: what is wrong and what to do, for the error line.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, Refused(why))
}

/// The log's directory (opened): nobody but us or root may own it, nor write to it unless
/// the sticky bit keeps each user to their own entries (/tmp).
fn check_dir(dir: &File, dir_name: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = dir.metadata()?;
    let euid = unsafe { libc::geteuid() };
    if m.uid() != 0 && m.uid() != euid {
        return Err(refused(format!(
            "its directory {} is owned by uid {}, who could replace the log: use a directory              owned by root (e.g. /var/log)",
            dir_name.display(),
            m.uid()
        )));
    }
    // Others who can write the directory can rename the log away and put their own file
    // (or a link) in its place, unless the sticky bit keeps them to their own entries.
    if m.mode() & 0o022 != 0 && m.mode() & libc::S_ISVTX == 0 {
        return Err(refused(format!(
            "its directory {} is writable by {} (mode {:04o}, not sticky): anyone there could              replace the log; chmod go-w {} or use another directory",
            dir_name.display(),
            if m.mode() & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            m.mode() & 0o7777,
            dir_name.display()
        )));
    }
    Ok(())
}

/// What refuses an existing log file (opened without following a link): anything but a
/// regular file of ours with one name.
fn refuse_file(m: &std::fs::Metadata, path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let euid = unsafe { libc::geteuid() };
    if m.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    if !m.file_type().is_file() {
        return Err(refused(format!(
            "{} is not a regular file: remove it or choose another path",
            path.display()
        )));
    }
    if m.uid() != euid {
        return Err(refused(format!(
            "{} is owned by uid {}, not by uid {euid} that runs lsn-trace (someone else may \
             have created it to read or forge records): check it, then remove it or \
             chown {euid} it",
            path.display(),
            m.uid()
        )));
    }
    if m.nlink() > 1 {
        return Err(refused(format!(
            "{} has {} hard links (another name for it could be another file's): remove it \
             or choose another path",
            path.display(),
            m.nlink()
        )));
    }
    Ok(())
}

/// The checks on an existing log file, then its mode made safe: group read is the admin's
/// choice (adm); writing by anyone but us, reading by the world, and set-id/sticky bits
/// are not. Returns what was fixed, if anything.
fn check_file(file: &File, path: &Path) -> io::Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    refuse_file(&m, path)?;
    let mode = m.mode() & 0o7777;
    let safe = mode & 0o740;
    if safe == mode {
        return Ok(None);
    }
    file.set_permissions(std::fs::Permissions::from_mode(safe))?;
    Ok(Some(format!(
        "mode of {} changed from {mode:04o} to {safe:04o} (others must not write to or read \
         the audit log)",
        path.display()
    )))
}

/// The directory and file name of a log path.
fn split(path: &Path) -> io::Result<(&Path, &std::ffi::OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file (it ends in / or ..)",
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

fn open_dir(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
}

/// `openat(dir, name, flags, mode)`.
fn open_at(dir: &File, name: &std::ffi::OsStr, flags: libc::c_int) -> io::Result<File> {
    use std::os::{fd::FromRawFd as _, unix::ffi::OsStrExt as _};
    let name = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
    // SAFETY: a valid directory fd and a NUL-terminated name; the fd returned is ours.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK,
            MODE,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ELOOP) {
            return Err(refused(format!(
                "{} is a symbolic link (it could point root's writes anywhere): remove it",
                name.to_string_lossy()
            )));
        }
        return Err(e);
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Check, without creating anything, that `path` could be opened as the log: its
/// directory is safe, and the file, if it exists, passes the checks (nothing is fixed).
/// Errors as `open_append`'s, before anything is loaded.
pub fn check(path: &Path) -> io::Result<()> {
    let (dir_name, name) = split(path)?;
    let dir = open_dir(dir_name)?;
    check_dir(&dir, dir_name)?;
    match open_at(&dir, name, libc::O_RDONLY) {
        Ok(f) => refuse_file(&f.metadata()?, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// An opened log file, and what its opening had to say (a mode fixed, a torn last line).
pub struct Opened {
    pub file: File,
    pub notes: Vec<String>,
}

/// Open `path` for appending as a careful daemon does: through its directory (checked:
/// owned by us or root, not writable by others unless sticky), never through a symbolic
/// link (O_NOFOLLOW), and an existing file only if it is a regular file of ours with one
/// link (modes letting others write or the world read are taken away, and said). Created
/// 0640 (whatever the umask) when absent. A last line left without its newline (a crash
/// mid-write) is ended, so the next record starts on a line of its own.
pub fn open_append(path: &Path) -> io::Result<Opened> {
    let (dir_name, name) = split(path)?;
    let dir = open_dir(dir_name)?;
    check_dir(&dir, dir_name)?;
    let mut notes = Vec::new();
    let file = match open_at(
        &dir,
        name,
        libc::O_RDWR | libc::O_APPEND | libc::O_CREAT | libc::O_EXCL,
    ) {
        Ok(f) => {
            // The umask may have taken bits away; the mode is part of the contract.
            f.set_permissions(std::fs::Permissions::from_mode(MODE))?;
            f
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let f = open_at(&dir, name, libc::O_RDWR | libc::O_APPEND)?;
            notes.extend(check_file(&f, path)?);
            f
        }
        Err(e) => Err(e)?,
    };
    // A regular file: O_NONBLOCK (there so a planted FIFO could not hang the open) is moot.
    if end_torn_line(&file)? {
        notes.push(format!(
            "{} ended in the middle of a record (a crash or a full disk): a newline was added so              the next record starts on its own line; that last line is not valid JSON",
            path.display()
        ));
    }
    Ok(Opened { file, notes })
}

/// End the file's last line if it is torn (does not end with a newline). True if it was.
fn end_torn_line(file: &File) -> io::Result<bool> {
    use std::os::unix::fs::FileExt as _;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(false);
    }
    (&*file).write_all(b"\n")?;
    Ok(true)
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
    /// Records refused because `HOLD_CAP` was reached, by why it was: the log failing
    /// (`[0]`), or writing succeeding but slower than records come (`[1]`).
    pub dropped: [u64; 2],
    /// A deleted log that could not be created again was said (said once, retried).
    deleted_said: bool,
    /// Flushes whose write failed, since the owner last took the count (metrics).
    pub write_errors: u64,
}

impl Log {
    pub fn stdout() -> Log {
        Log::new(Target::Stdout(io::stdout()))
    }

    /// The log at `path` (`open_append`), saying on stderr what its opening fixed.
    pub fn file(path: &Path) -> io::Result<Log> {
        let Opened { file, notes } = open_append(path)?;
        for n in notes {
            say!("lsn-trace: audit log: {n}");
        }
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
            dropped: [0; 2],
            deleted_said: false,
            write_errors: 0,
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
            self.dropped[usize::from(self.failing.is_none())] += 1;
            return false;
        }
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        true
    }

    /// Append one record that `write` lays out in place (a line without its newline): as
    /// `push`, without a copy of the line.
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        if self.buf.len() + (64 << 10) > HOLD_CAP {
            // Near the cap, a record laid out in place could grow the buffer past it.
            let mut line = Vec::new();
            write(&mut line);
            return self.push(&line);
        }
        let start = self.buf.len();
        write(&mut self.buf);
        if self.buf.len() + 1 > HOLD_CAP {
            self.buf.truncate(start);
            self.dropped[usize::from(self.failing.is_none())] += 1;
            return false;
        }
        self.buf.push(b'\n');
        true
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Whether the file we write has lost its last name (`rm` of a live log): then its
    /// records are gone with it, and writing on would lose the next ones too.
    fn deleted(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match &self.target {
            Target::File { file, .. } => file.metadata().is_ok_and(|m| m.nlink() == 0),
            Target::Stdout(_) => false,
        }
    }

    fn write_out(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() && self.deleted() {
            self.reopen_deleted();
        }
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
                self.write_errors += 1;
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

    /// A new file in place of the deleted one, starting with a record that says so (the
    /// deleted file's records are gone: an auditor must see the gap).
    fn reopen_deleted(&mut self) {
        let Target::File { path, file } = &mut self.target else {
            return;
        };
        match open_append(path) {
            Ok(Opened { file: f, .. }) => {
                *file = f;
                self.deleted_said = false;
                say!(
                    "lsn-trace: AUDIT LOG {} WAS DELETED while in use (the records it held are \
                     gone with it); a new file was created there and logging goes on",
                    path.display()
                );
                let rec = serde_json::json!({
                    "record": "log_deleted",
                    "time": crate::output::rfc3339(crate::output::now_ns()),
                    "log": path.display().to_string(),
                });
                let mut line = rec.to_string().into_bytes();
                line.push(b'\n');
                self.buf.splice(0..0, line);
            }
            Err(e) if !self.deleted_said => {
                self.deleted_said = true;
                say!(
                    "lsn-trace: AUDIT LOG {} WAS DELETED while in use and cannot be created \
                     again: {e}; still writing to the deleted file, retrying",
                    path.display()
                )
            }
            Err(_) => {}
        }
    }

    fn reopen(&mut self) {
        let Target::File { path, file } = &mut self.target else {
            self.reopen_pending = false;
            return;
        };
        match open_append(path) {
            Ok(Opened { file: f, notes }) => {
                for n in notes {
                    say!("lsn-trace: audit log: {n}");
                }
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
        assert!(f.unwrap().notes.is_empty());
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
        assert_eq!(log.dropped, [0, 1], "writable: the writer is behind");
        drop(log);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
