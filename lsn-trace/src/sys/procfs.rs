//! The one way to ask /proc the questions asked in several places: a sysctl's value, and
//! whether a process still exists.

/// A sysctl's text without the newline, `name` in /proc/sys notation (`kernel/hostname`).
/// The `net/*` ones are those of the calling thread's network namespace.
pub fn sysctl_text(name: &str) -> Option<String> {
    let mut s = std::fs::read_to_string(format!("/proc/sys/{name}")).ok()?;
    s.truncate(s.trim_end().len());
    Some(s)
}

/// A numeric sysctl (`net/ipv6/bindv6only`), as [`sysctl_text`].
pub fn sysctl(name: &str) -> Option<i64> {
    sysctl_text(name)?.trim().parse().ok()
}

/// Whether process `pid` exists (a zombie does: it keeps its /proc entry until reaped).
pub fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
