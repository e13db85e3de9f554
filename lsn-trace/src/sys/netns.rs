//! The one way into another network namespace: setns(2) on a short-lived thread of its
//! own, so no thread of the agent is ever left in a foreign namespace.
use std::{
    fs, io,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
};

/// Run `f` inside the network namespace `ns` (an open `/proc/PID/ns/net` or a bind mount of
/// one): directly when it is the caller's own, else on a thread that setns()es first and
/// exits afterwards. The error is setns's (or the thread's).
pub fn run_in<T: Send + 'static>(
    ns: fs::File,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    // Same namespace as ours: no thread needed.
    if let (Ok(theirs), Ok(ours)) = (ns.metadata(), fs::metadata("/proc/thread-self/ns/net"))
        && theirs.ino() == ours.ino()
        && theirs.dev() == ours.dev()
    {
        return Ok(f());
    }
    std::thread::Builder::new()
        .name("lsn-netns".into())
        .spawn(move || -> io::Result<T> {
            // Unlike CLONE_NEWNS, setns(CLONE_NEWNET) is allowed in a multi-threaded process.
            // SAFETY: setns on this thread only; the thread exits right after `f`.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })?
        .join()
        .map_err(|_| io::Error::other("netns thread panicked"))?
}
