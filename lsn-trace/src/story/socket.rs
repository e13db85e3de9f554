//! One socket as the story knows it: who it is across dup(), fork() and the kernel's reuse
//! of its memory (`Entry::is_other_socket`), and what it has done — options, binds, listen.
//! Pure but for the /proc fallbacks of kernels where the hook could not read the inode.
use std::{net::IpAddr, sync::Arc};

use lsn_trace::{
    procfs,
    verdict::{Bound, FilePerms},
};
use lsn_trace_common::sockopt::{IPV6_V6ONLY, SOL_IPV6};

use crate::{
    event::{Event, Kind, OptValue, Sock},
    sockaddr::{AF_INET, AF_INET6, SockAddr},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Sock(u64),
    Fd(u32, i32),
}

/// What the story remembers of one socket.
#[derive(Clone, Debug)]
pub struct Entry {
    pub pid: u32,
    /// The descriptor of the last event.
    pub fd: Option<i32>,
    pub comm: std::sync::Arc<str>,
    pub netns: Option<u32>,
    pub family: Option<u16>,
    pub sock_type: Option<u16>,
    pub protocol: Option<&'static str>,
    /// Explicit setsockopt() calls seen, (level, optname, value, errno), oldest first.
    pub options: Vec<(i32, i32, OptValue, i32)>,
    /// bind() attempts: request and errno, oldest first.
    pub binds: Vec<(SockAddr, i32)>,
    /// The address a successful bind gave it (inet: from the kernel, unix: the request).
    pub bound: Option<SockAddr>,
    /// A unix socket file's mode and owner, read right after its bind.
    pub perms: Option<FilePerms>,
    pub listen_backlog: Option<(i32, Option<u32>)>,
    /// SCTP: every address the socket is bound to (bind(2), sctp_bindx()), when known
    /// exactly (`sctp::after`).
    pub sctp_addrs: Option<Vec<SockAddr>>,
    pub listening: bool,
    pub last: Option<Sock>,
    /// The socket's inode (/proc/PID/fd/FD) when the entry was made: tells a new socket
    /// that reuses the old one's kernel memory (same `sock_id`) from the old one.
    inode: Option<u64>,
    pub(super) used: u64,
    /// What the last bind or listen of it was found to mean, and from which facts.
    pub(super) described: Option<Described>,
}

/// A socket's verdict and its sentence, kept with the socket: its next event with the
/// same facts (the listen after the bind) says the same without making it again.
#[derive(Clone, Debug)]
pub(super) struct Described {
    pub(super) bound: Arc<Bound>,
    pub(super) v6only_source: Option<&'static str>,
    /// Where the sentence's V6ONLY clause came from.
    pub(super) v6only_set: bool,
    pub(super) bindv6only: Option<bool>,
    pub(super) verdict: &'static str,
    pub(super) flags: Arc<[&'static str]>,
    pub(super) meaning: Arc<str>,
}

/// An entry's two history lists (`options`, `binds`), kept empty between sockets for
/// their allocations (`Entry::take_histories`).
pub(super) type Histories = (Vec<(i32, i32, OptValue, i32)>, Vec<(SockAddr, i32)>);

/// Per-socket history lists are capped: a process looping on a failing bind must not
/// grow one entry without bound.
pub(super) const HISTORY: usize = 16;

impl Entry {
    /// The entry of the socket `ev` is the first event of, its history lists in
    /// `histories` (empty: reused from a socket gone, or new).
    pub(super) fn new(ev: &Event, (options, binds): Histories) -> Entry {
        debug_assert!(options.is_empty() && binds.is_empty());
        Entry {
            pid: ev.pid,
            fd: ev.fd,
            comm: ev.comm.clone(),
            netns: ev.sock.as_ref().and_then(|s| s.netns),
            family: ev.sock.as_ref().and_then(|s| s.family),
            sock_type: ev.sock.as_ref().and_then(|s| s.sock_type),
            protocol: ev.protocol(),
            options,
            binds,
            bound: None,
            perms: None,
            listen_backlog: None,
            sctp_addrs: None,
            listening: false,
            last: None,
            inode: sock_inode(ev),
            used: 0,
            described: None,
        }
    }

    /// Its history lists, emptied (their capacity is at most `HISTORY`), for another
    /// entry.
    pub(super) fn take_histories(&mut self) -> Histories {
        let (mut options, mut binds) = (
            std::mem::take(&mut self.options),
            std::mem::take(&mut self.binds),
        );
        options.clear();
        binds.clear();
        (options, binds)
    }

    /// It entered LISTEN: where its bind was not seen (before the trace, or an unreadable
    /// request), the address is the kernel's view of the socket.
    pub(super) fn starts_listening(&mut self, ev: &Event) {
        if self.bound.is_none()
            && let Some(s) = &ev.sock
            && let (Some(ip), Some(port)) = (s.local, s.port)
        {
            self.bound = Some(inet(ip, port));
        }
        self.listening = true;
    }

    /// Whether IPV6_V6ONLY was set on this socket by a successful setsockopt we saw.
    pub(super) fn v6only_set(&self) -> bool {
        self.options
            .iter()
            .any(|(l, o, _, e)| *l == SOL_IPV6 && *o == IPV6_V6ONLY && *e == 0)
    }

    /// The event shows a different socket than the one this entry describes (the key was
    /// reused: fd reuse, or the kernel reused the socket's memory).
    pub(super) fn is_other_socket(&self, ev: &Event) -> bool {
        let Some(s) = &ev.sock else { return false };
        // The kernel side reads the socket's inode: where both are known they settle it
        // (same inode: the same socket, through dup/fork; another: the memory was reused).
        if let (Some(was), Some(now)) = (self.inode, s.inode) {
            return was != now;
        }
        let differs = |a: Option<u16>, b: Option<u16>| a.is_some() && b.is_some() && a != b;
        // A socket never changes family, type or network namespace.
        if differs(self.family, s.family) || differs(self.sock_type, s.sock_type) {
            return true;
        }
        if self.netns.is_some() && s.netns.is_some() && self.netns != s.netns {
            return true;
        }
        // Bound before, unbound now: a fresh socket.
        if self.bound.is_some() && matches!(s.family, Some(AF_INET | AF_INET6)) && s.port == Some(0)
        {
            return true;
        }
        // A socket binds once: a second successful bind is another socket.
        if ev.kind == Kind::Bind && !ev.failed() && self.bound.is_some() {
            return true;
        }
        // An option the kernel shows with another value than the one we saw set.
        use lsn_trace_common::sockopt::{SO_REUSEADDR, SO_REUSEPORT, SOL_SOCKET};
        for (level, opt, field) in [
            (SOL_IPV6, IPV6_V6ONLY, s.v6only),
            (SOL_SOCKET, SO_REUSEADDR, s.reuseaddr),
            (SOL_SOCKET, SO_REUSEPORT, s.reuseport),
        ] {
            let set = self.options.iter().rev().find_map(|(l, o, v, e)| match v {
                OptValue::Int(v) if *l == level && *o == opt && *e == 0 => Some(*v != 0),
                _ => None,
            });
            if let (Some(set), Some(now)) = (set, field)
                && set != now
            {
                return true;
            }
        }
        // Same kernel address, other socket: the old one was closed and its memory reused.
        // Seen from another fd or process it may be that, or a dup()/fork: the socket's
        // inode tells (one readlink, only then, so a tight loop on one fd costs nothing).
        // A listener needs no check: its close event ended its entry.
        if !self.listening
            && (self.fd != ev.fd || self.pid != ev.pid)
            && let Some(fd) = ev.fd
            && let Some(now) = ev
                .sock
                .as_ref()
                .and_then(|s| s.inode)
                .or_else(|| procfs::fd_inode(ev.pid, fd))
        {
            // No inode recorded (the fd was gone when the entry was made): cannot tell a
            // fork from a reuse; starting afresh loses less than mixing two sockets.
            return self.inode != Some(now);
        }
        false
    }
}

pub(super) fn inet(ip: IpAddr, port: u16) -> SockAddr {
    match ip {
        IpAddr::V4(addr) => SockAddr::Inet { addr, port },
        IpAddr::V6(addr) => SockAddr::Inet6 {
            addr,
            port,
            flowinfo: 0,
            scope_id: 0,
        },
    }
}

/// What a successful bind bound: the kernel's view for inet (port 0 becomes the port it
/// picked), the request for unix.
pub(super) fn bound_addr(req: &SockAddr, sock: Option<&Sock>) -> SockAddr {
    match (req, sock) {
        (SockAddr::Inet6 { scope_id, .. }, Some(s)) if s.local.is_some() && s.port.is_some() => {
            match inet(s.local.unwrap(), s.port.unwrap()) {
                SockAddr::Inet6 {
                    addr,
                    port,
                    flowinfo,
                    ..
                } => SockAddr::Inet6 {
                    addr,
                    port,
                    flowinfo,
                    // A link-local address's scope is the device the kernel bound it to
                    // (the request's, or SO_BINDTODEVICE's when the request had none).
                    scope_id: s.scope_id(None).unwrap_or(*scope_id),
                },
                other => other,
            }
        }
        (SockAddr::Inet { .. }, Some(s)) if s.local.is_some() && s.port.is_some() => {
            inet(s.local.unwrap(), s.port.unwrap())
        }
        // The request could not be read (tracepoints cannot fault user memory in): the
        // kernel's view says what was bound.
        (SockAddr::Unreadable { .. }, Some(s))
            if matches!(s.family, Some(AF_INET | AF_INET6))
                && s.local.is_some()
                && s.port.is_some() =>
        {
            inet(s.local.unwrap(), s.port.unwrap())
        }
        _ => req.clone(),
    }
}

/// The event's socket inode: read by the kernel side; else, on kernels where it could not
/// be, through /proc. Only as a fallback: a readlink of another process's fd holds its file
/// for a moment, and a close(2) racing with it leaves the last reference — the listener's
/// close and its tracepoint — to the agent, whose own events the kernel side drops.
pub fn sock_inode(ev: &Event) -> Option<u64> {
    ev.sock
        .as_ref()
        .and_then(|s| s.inode)
        .or_else(|| ev.fd.and_then(|fd| procfs::fd_inode(ev.pid, fd)))
}
