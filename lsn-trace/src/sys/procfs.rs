//! The one way to ask /proc the questions asked in several places: a sysctl's value,
//! whether a process still exists, its executable and capabilities, a descriptor's socket
//! inode, a unix socket file's mode.
use std::os::unix::fs::MetadataExt as _;

use crate::verdict::FilePerms;

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

/// The inode of the socket behind /proc/PID/fd/FD (None: gone, or not a socket).
pub fn fd_inode(pid: u32, fd: i32) -> Option<u64> {
    let l = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    l.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The socket file's mode and owner, seen from the process's root and cwd (it may live in
/// another mount namespace or chroot).
pub fn unix_socket_perms(pid: u32, path: &[u8]) -> Option<FilePerms> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::OsStr::from_bytes(path);
    let full = if path.first() == Some(&b'/') {
        std::path::Path::new(&format!("/proc/{pid}/root")).join(
            std::path::Path::new(p)
                .strip_prefix("/")
                .unwrap_or(std::path::Path::new(p)),
        )
    } else {
        std::path::Path::new(&format!("/proc/{pid}/cwd")).join(p)
    };
    // The process may be gone already: then look at the path from here.
    let m = std::fs::symlink_metadata(full)
        .or_else(|e| {
            if path.first() == Some(&b'/') {
                std::fs::symlink_metadata(p)
            } else {
                Err(e)
            }
        })
        .ok()?;
    Some(FilePerms {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
    })
}

/// The process's executable (`/proc/PID/exe`), as a path to show.
pub fn exe(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.display().to_string())
}

/// Whether capability number `cap` is in the process's effective set (None: process gone).
pub fn has_capability(pid: u32, cap: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let caps = u64::from_str_radix(hex, 16).ok()?;
    Some(caps & (1 << cap) != 0)
}
