//! The addresses assigned to each interface of a process's network namespace, and the
//! namespace's ip_unprivileged_port_start: the facts a verdict needs to say "one specific
//! address, on eth0" or "not assigned here".
//!
//! getifaddrs() and /proc/sys/net answer for the calling thread's network namespace, so we
//! ask from a short-lived thread that setns()es into the target's namespace: the agent's
//! other threads never move.
use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
    os::unix::fs::MetadataExt,
};

use serde::Serialize;

use crate::verdict::Ownership;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    /// Address and prefix length.
    pub addrs: Vec<(IpAddr, u8)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NsAddrs {
    pub ifaces: Vec<Iface>,
    /// net.ipv4.ip_unprivileged_port_start in that namespace.
    pub unprivileged_port_start: Option<u32>,
    /// Set when the answer is not for the namespace asked for (e.g. the process exited, or
    /// setns was refused): says whose addresses these are and why.
    pub note: Option<String>,
}

impl NsAddrs {
    /// The interface that owns `ip`. An address inside a loopback interface's prefix
    /// (127.0.0.0/8 on lo) counts too: the kernel accepts binds to all of it.
    pub fn owner(&self, ip: IpAddr) -> Ownership {
        for i in &self.ifaces {
            if i.addrs.iter().any(|(a, _)| *a == ip) {
                return Ownership::Iface(i.name.clone());
            }
        }
        for i in &self.ifaces {
            if i.addrs
                .iter()
                .any(|&(a, len)| a.is_loopback() && in_prefix(ip, a, len))
            {
                return Ownership::Iface(i.name.clone());
            }
        }
        Ownership::NotAssigned
    }

    /// Every assigned address as `name: addr/len` text, for "the ones that are" lists.
    pub fn list(&self) -> Vec<String> {
        self.ifaces
            .iter()
            .flat_map(|i| {
                i.addrs
                    .iter()
                    .map(move |(a, l)| format!("{}: {a}/{l}", i.name))
            })
            .collect()
    }
}

fn in_prefix(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32))
            };
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128))
            };
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// The agent's own network namespace.
pub fn own() -> NsAddrs {
    NsAddrs {
        ifaces: getifaddrs().unwrap_or_default(),
        unprivileged_port_start: unprivileged_port_start(),
        note: None,
    }
}

/// The network namespace of process `pid`; falls back to the agent's own namespace, with a
/// note saying so, when that one cannot be entered.
pub fn of_pid(pid: u32) -> NsAddrs {
    let path = format!("/proc/{pid}/ns/net");
    let fallback = |why: String| NsAddrs {
        note: Some(format!(
            "addresses of lsn-trace's own network namespace: {path}: {why}"
        )),
        ..own()
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => return fallback(e.to_string()),
    };
    // Same namespace as ours: no thread needed.
    if let (Ok(theirs), Ok(ours)) = (file.metadata(), std::fs::metadata("/proc/self/ns/net"))
        && theirs.ino() == ours.ino()
        && theirs.dev() == ours.dev()
    {
        return own();
    }
    let joined = std::thread::Builder::new()
        .name("lsn-netns".into())
        .spawn(move || -> Result<NsAddrs, String> {
            // SAFETY: setns on this thread only; the thread exits right after.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            Ok(NsAddrs {
                ifaces: getifaddrs().map_err(|e| format!("getifaddrs: {e}"))?,
                unprivileged_port_start: unprivileged_port_start(),
                note: None,
            })
        })
        .map_err(|e| e.to_string())
        .and_then(|h| h.join().map_err(|_| "thread panicked".to_string()));
    match joined {
        Ok(Ok(ns)) => ns,
        Ok(Err(e)) | Err(e) => fallback(e),
    }
}

/// Read in the calling thread's network namespace (/proc/sys/net follows the reader's).
fn unprivileged_port_start() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn getifaddrs() -> std::io::Result<Vec<Iface>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let Some(ip) = (unsafe { ip_of(ifa.ifa_addr) }) else {
            continue;
        };
        let len = match unsafe { ip_of(ifa.ifa_netmask) } {
            Some(IpAddr::V4(m)) => u32::from(m).count_ones() as u8,
            Some(IpAddr::V6(m)) => u128::from(m).count_ones() as u8,
            None => 0,
        };
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        match ifaces.iter_mut().find(|i| i.name == name) {
            Some(i) => i.addrs.push((ip, len)),
            None => {
                let index = unsafe { libc::if_nametoindex(ifa.ifa_name) };
                ifaces.push(Iface {
                    name,
                    index,
                    addrs: vec![(ip, len)],
                });
            }
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(head) };
    ifaces.sort_by_key(|i| i.index);
    Ok(ifaces)
}

/// # Safety
/// `sa` is null or points to a sockaddr of its family's size.
unsafe fn ip_of(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match unsafe { (*sa).sa_family } as i32 {
        libc::AF_INET => {
            let sin = unsafe { &*(sa as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            let sin6 = unsafe { &*(sa as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_has_loopback() {
        let ns = own();
        let lo = ns.ifaces.iter().find(|i| i.name == "lo").expect("lo");
        assert_eq!(lo.index, 1);
        assert!(lo.addrs.contains(&("127.0.0.1".parse().unwrap(), 8)));
        assert_eq!(
            ns.owner("127.0.0.1".parse().unwrap()),
            Ownership::Iface("lo".into())
        );
        // inside lo's 127.0.0.0/8: bindable, so owned by lo
        assert_eq!(
            ns.owner("127.9.9.9".parse().unwrap()),
            Ownership::Iface("lo".into())
        );
        assert_eq!(
            ns.owner("192.0.2.77".parse().unwrap()),
            Ownership::NotAssigned
        );
        assert!(ns.list().iter().any(|l| l == "lo: 127.0.0.1/8"));
    }

    #[test]
    fn other_namespace_through_setns() {
        // A child in a fresh network namespace: only a (down) lo, no addresses at all. Needs
        // root (CAP_SYS_ADMIN for unshare and setns), which the test suite runs as.
        let child = std::process::Command::new("unshare")
            .args(["--net", "sleep", "30"])
            .spawn();
        let Ok(mut child) = child else {
            panic!("unshare(1) not available");
        };
        let pid = child.id();
        // wait until the child is in its own namespace
        let ours = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .map(|m| m.ino() == ours)
            .unwrap_or(true)
            || std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() != "sleep")
                .unwrap_or(true)
        {
            assert!(std::time::Instant::now() < deadline, "unshare never ran");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let ns = of_pid(pid);
        child.kill().ok();
        child.wait().ok();
        assert_eq!(ns.note, None);
        // a new netns has lo, down, without addresses: getifaddrs lists no IP on it
        assert!(ns.list().is_empty(), "{:?}", ns.list());
        assert_eq!(
            ns.owner("127.0.0.1".parse().unwrap()),
            Ownership::NotAssigned
        );
        assert!(ns.unprivileged_port_start.is_some());
        // and the agent's own namespace did not move
        assert!(
            own()
                .ifaces
                .iter()
                .any(|i| i.name == "lo" && !i.addrs.is_empty())
        );
    }

    #[test]
    fn gone_process_falls_back_with_a_note() {
        let ns = of_pid(u32::MAX - 1);
        let note = ns.note.expect("a note");
        assert!(note.contains("own network namespace"), "{note}");
        assert!(!ns.ifaces.is_empty());
    }
}
