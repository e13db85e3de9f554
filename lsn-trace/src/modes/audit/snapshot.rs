//! The listeners that already exist when audit starts, in every network namespace of the
//! host, so the log is complete from its first line: namespaces found through
//! /proc/*/ns/net and /run/netns/* (deduplicated by inode), each dumped with sock_diag as
//! `ss -tul` does (`sockdiag`), owners found through /proc/*/fd as `ss -p` does.
//! Unix sockets come from each namespace's /proc/PID/net/unix (as `ss -xl` reads them).
use std::{
    collections::HashSet,
    fs,
    net::SocketAddr,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    event::{Event, Kind, Request, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, Sock},
    sockaddr::{AF_UNIX, SockAddr},
    sockdiag::{self, DiagSock, IPPROTO_TCP, IPPROTO_UDP, Netns, Query, TCP_CLOSE, TCP_LISTEN},
};

/// Time allowed for the /proc/*/fd owner scan (a host with many processes and sockets).
pub const OWNER_BUDGET: Duration = Duration::from_secs(10);

/// A network namespace and a way into it.
pub struct Namespace {
    pub inode: u64,
    pub via: Netns,
    /// A process in it, to read its /proc/PID/net/unix (None for a bare /run/netns mount).
    pub pid: Option<u32>,
}

fn ns_inode(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

/// Every network namespace with a process in it or a name under /run/netns, ours first.
pub fn namespaces() -> Vec<Namespace> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    if let Some(ino) = ns_inode(Path::new("/proc/self/ns/net")) {
        seen.insert(ino);
        out.push(Namespace {
            inode: ino,
            via: Netns::Current,
            pid: Some(std::process::id()),
        });
    }
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    for pid in pids {
        if let Some(ino) = ns_inode(&PathBuf::from(format!("/proc/{pid}/ns/net")))
            && seen.insert(ino)
        {
            out.push(Namespace {
                inode: ino,
                via: Netns::Pid(pid),
                pid: Some(pid),
            });
        }
    }
    for dir in ["/run/netns", "/var/run/netns"] {
        let Ok(rd) = fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            if let Some(ino) = ns_inode(&e.path())
                && seen.insert(ino)
            {
                out.push(Namespace {
                    inode: ino,
                    via: Netns::Path(e.path()),
                    pid: None,
                });
            }
        }
    }
    out
}

/// A listener found in a namespace.
pub struct Found {
    pub netns: u64,
    pub inode: u32,
    pub event: Event,
    /// `ss` state name: LISTEN, UNCONN.
    pub state: &'static str,
}

/// TCP in LISTEN and UDP unconnected with a port (what `ss -tul` lists), both families.
fn queries() -> Vec<Query> {
    let mut q = Vec::new();
    for family in [libc::AF_INET as u16, libc::AF_INET6 as u16] {
        q.push(Query {
            protocol: IPPROTO_TCP,
            family,
            states: 1 << TCP_LISTEN,
            local_port: 0,
        });
        q.push(Query {
            protocol: IPPROTO_UDP,
            family,
            states: 1 << TCP_CLOSE,
            local_port: 0,
        });
    }
    q
}

/// The listeners of `ns`, as events the audit record builder takes.
pub fn listeners(ns: &Namespace, now_ns: u64) -> std::io::Result<Vec<Found>> {
    let socks = match sockdiag::dump_in(&ns.via, &queries()) {
        Ok(s) => s,
        // The process we meant to enter through exited: any other one in it will do.
        Err(_) if matches!(ns.via, Netns::Pid(_)) => {
            match sockdiag::pid_in_netns(ns.inode, Duration::from_secs(2)) {
                Some(pid) => sockdiag::dump_in(&Netns::Pid(pid), &queries())?,
                None => return Ok(Vec::new()),
            }
        }
        Err(e) => return Err(e),
    };
    let mut out: Vec<Found> = socks
        .iter()
        .filter(|d| d.protocol == IPPROTO_TCP || d.local.port() != 0)
        .map(|d| Found {
            netns: ns.inode,
            inode: d.inode,
            event: inet_event(d, ns.inode, now_ns),
            state: d.state_name(),
        })
        .collect();
    if let Some(pid) = ns.pid
        && let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/unix"))
    {
        out.extend(unix_listeners(&text).into_iter().map(|(inode, ty, addr)| {
            let state = if ty == SOCK_DGRAM { "UNCONN" } else { "LISTEN" };
            Found {
                netns: ns.inode,
                inode,
                event: unix_event(ty, addr, inode, ns.inode, now_ns),
                state,
            }
        }));
    }
    Ok(out)
}

fn blank_event(kind: Kind, now_ns: u64, request: Request, sock: Sock) -> Event {
    Event {
        kind,
        time_ns: now_ns,
        pid: 0,
        tid: 0,
        ppid: None,
        uid: 0,
        euid: None,
        gid: 0,
        comm: "".into(),
        fd: None,
        errno: 0,
        source: crate::event::Source::Kernel,
        request,
        sock: Some(sock),
        state_unknown: None,
        sock_id: None,
        raw: Default::default(),
        followed: false,
        start: None,
    }
}

/// A TCP listener reads as a socket found in LISTEN (as io_uring's would: no listen(2)
/// seen), a UDP socket as its bind (the address is all there is).
fn inet_event(d: &DiagSock, netns: u64, now_ns: u64) -> Event {
    let udp = d.protocol == IPPROTO_UDP;
    let sock = Sock {
        family: Some(d.family),
        sock_type: Some(if udp { SOCK_DGRAM } else { SOCK_STREAM }),
        protocol: Some(d.protocol.into()),
        state: Some(d.state),
        local: Some(d.local.ip()),
        port: Some(d.local.port()),
        v6only: d.v6only,
        freebind: d.freebind,
        transparent: d.transparent,
        bound_dev_if: Some(d.bound_dev_if as i32),
        netns: Some(netns as u32),
        inode: Some(d.inode.into()),
        ..Sock::default()
    };
    let request = if udp {
        Request::Bind(sockaddr(d.local))
    } else {
        Request::None
    };
    let mut ev = blank_event(
        if udp { Kind::Bind } else { Kind::ListenState },
        now_ns,
        request,
        sock,
    );
    ev.uid = d.uid;
    ev
}

fn sockaddr(a: SocketAddr) -> SockAddr {
    match a {
        SocketAddr::V4(a) => SockAddr::Inet {
            addr: *a.ip(),
            port: a.port(),
        },
        SocketAddr::V6(a) => SockAddr::Inet6 {
            addr: *a.ip(),
            port: a.port(),
            flowinfo: 0,
            scope_id: 0,
        },
    }
}

fn unix_event(ty: u16, addr: SockAddr, inode: u32, netns: u64, now_ns: u64) -> Event {
    let sock = Sock {
        family: Some(AF_UNIX),
        sock_type: Some(ty),
        netns: Some(netns as u32),
        inode: Some(inode.into()),
        ..Sock::default()
    };
    blank_event(Kind::Bind, now_ns, Request::Bind(addr), sock)
}

/// Listening unix sockets of a /proc/net/unix table: stream/seqpacket with
/// `__SO_ACCEPTCON` (0x10000) in Flags, and bound datagram sockets. (inode, type, address)
fn unix_listeners(text: &str) -> Vec<(u32, u16, SockAddr)> {
    const SO_ACCEPTCON: u32 = 0x10000;
    let mut out = Vec::new();
    // Num RefCount Protocol Flags Type St Inode [Path]
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 {
            continue;
        }
        let (Ok(flags), Ok(ty), Ok(inode)) = (
            u32::from_str_radix(f[3], 16),
            u16::from_str_radix(f[4], 16),
            f[6].parse::<u32>(),
        ) else {
            continue;
        };
        let Some(path) = f.get(7) else { continue };
        let listening = match ty {
            SOCK_STREAM | SOCK_SEQPACKET => flags & SO_ACCEPTCON != 0,
            SOCK_DGRAM => true,
            _ => false,
        };
        if !listening {
            continue;
        }
        // The kernel prints an abstract name with a leading '@' (its NULs as '@').
        let addr = match path.strip_prefix('@') {
            Some(name) => SockAddr::UnixAbstract(name.as_bytes().to_vec()),
            None => SockAddr::UnixPath(path.as_bytes().to_vec()),
        };
        out.push((inode, ty, addr));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_table() {
        let text = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 21370 /run/systemd/journal/stdout\n\
            0000000000000000: 00000002 00000000 00000000 0001 03 21371 /run/x.sock\n\
            0000000000000000: 00000002 00000000 00000000 0002 01 21372 @abstract-dgram\n\
            0000000000000000: 00000002 00000000 00000000 0002 01 21373\n\
            0000000000000000: 00000002 00000000 00010000 0005 01 21374 /run/seq.sock\n";
        let got = unix_listeners(text);
        assert_eq!(
            got,
            vec![
                (
                    21370,
                    SOCK_STREAM,
                    SockAddr::UnixPath(b"/run/systemd/journal/stdout".to_vec())
                ),
                (
                    21372,
                    SOCK_DGRAM,
                    SockAddr::UnixAbstract(b"abstract-dgram".to_vec())
                ),
                (
                    21374,
                    SOCK_SEQPACKET,
                    SockAddr::UnixPath(b"/run/seq.sock".to_vec())
                ),
            ]
        );
    }

    #[test]
    fn our_namespace_comes_first_and_once() {
        let ns = namespaces();
        let ours = ns_inode(Path::new("/proc/self/ns/net")).unwrap();
        assert_eq!(ns[0].inode, ours);
        assert_eq!(ns[0].via, Netns::Current);
        let mut inodes: Vec<u64> = ns.iter().map(|n| n.inode).collect();
        inodes.sort_unstable();
        inodes.dedup();
        assert_eq!(inodes.len(), ns.len());
    }

    #[test]
    fn our_own_listener_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let ns = &namespaces()[0];
        let found = listeners(ns, 0).unwrap();
        let f = found
            .iter()
            .find(|f| f.event.sock.as_ref().unwrap().port == Some(port))
            .expect("our listener");
        assert_eq!(f.state, "LISTEN");
        assert_eq!(f.event.kind, Kind::ListenState);
        assert_eq!(f.event.protocol(), Some("tcp"));
    }
}
