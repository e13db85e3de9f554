//! The user's filters, decided in the kernel as early as the data allows, so an unwanted
//! event costs neither ring-buffer space nor a wake-up of the agent:
//! * who calls (pid, uid, comm, netns, followed process tree) at syscall entry, before
//!   anything is stashed — `task_wanted`, through `emit::enabled`;
//! * what the call is about (port, family, protocol, failure) at exit, before a record is
//!   reserved — `call_wanted`, through `emit::reserve`.
//!
//! Every backend goes through `emit`, so every backend filters the same way.
use lsn_trace_common::*;

use crate::{
    kernel::{Caller, Mem, SockKey, SockView, probe_read, sock_key, socket_sk_ino},
    maps::{FILTER_COMMS, FILTER_NETNS, FILTER_PIDS, FILTER_PORTS, FILTER_UIDS, FOLLOW},
};

/// Whether the calling process passes the caller filters.
#[inline(always)]
pub fn task_wanted(cfg: &Config, caller: &Caller) -> bool {
    let tgid = caller.tgid();
    let f = cfg.flags;
    if f & CFG_FOLLOW_ONLY != 0 && unsafe { FOLLOW.get(tgid) }.is_none() {
        return false;
    }
    if f & CFG_F_PID != 0 && unsafe { FILTER_PIDS.get(tgid) }.is_none() {
        return false;
    }
    if f & CFG_F_UID != 0 {
        let uid = caller.uid_gid() as u32;
        if unsafe { FILTER_UIDS.get(uid) }.is_none() {
            return false;
        }
    }
    if f & CFG_F_COMM != 0 {
        if unsafe { FILTER_COMMS.get(caller.comm_key()) }.is_none() {
            return false;
        }
    }
    // The caller's namespace; `call_wanted` checks the socket's too, when it is known.
    if f & CFG_F_NETNS != 0
        && let Some(ns) = caller.netns()
        && unsafe { FILTER_NETNS.get(ns) }.is_none()
    {
        return false;
    }
    true
}

/// What an exit hook knows about a call before it reserves a record.
#[derive(Clone, Copy)]
pub struct About {
    /// Kernel `struct sock *`, 0 when the call has none (bad fd, not a socket).
    pub sk: u64,
    /// The socket's inode number when the hook already read it (0 = `fill_sock` reads it).
    pub ino: u64,
    /// Family and port (host order) of the caller's sockaddr, 0 = none/unknown.
    pub req_family: u16,
    pub req_port: u16,
    /// A port the hook saw besides the socket's (inet_sock_set_state's sport, a bindx
    /// array's first address's).
    pub hook_port: u16,
    /// Why there is no socket state (`F_NOT_SOCKET`), 0 when none is known or there is one.
    pub no_state: u16,
}

impl About {
    #[inline(always)]
    pub fn sock(sk: u64) -> About {
        About {
            sk,
            ino: 0,
            req_family: 0,
            req_port: 0,
            hook_port: 0,
            no_state: 0,
        }
    }

    /// The socket from a `struct socket *` (`kernel::socket_sk_ino`).
    #[inline(always)]
    pub fn socket(socket: u64) -> About {
        match socket_sk_ino(socket) {
            Some((sk, ino)) => About {
                ino,
                ..About::sock(sk)
            },
            None => About::sock(0),
        }
    }

    /// Peek at family and port of the sockaddr passed to bind (both at the same place in
    /// sockaddr_in and sockaddr_in6), only when a filter needs them: exit hooks run after
    /// the kernel copied a user one in, so it is resident.
    #[inline(always)]
    pub fn with_sockaddr(mut self, cfg: &Config, addr: u64, addrlen: u32, mem: Mem) -> About {
        if cfg.flags & (CFG_F_PORT | CFG_F_FAMILY) == 0 || addrlen < 2 || addr == 0 {
            return self;
        }
        let mut head = [0u8; 4];
        let n = if addrlen >= 4 { 4 } else { 2 };
        if probe_read(head.as_mut_ptr(), n, addr, mem) == 0 {
            self.req_family = u16::from_ne_bytes([head[0], head[1]]);
            // AF_UNSPEC too: an AF_INET socket reads it as sockaddr_in (`call_wanted`).
            if n == 4 && matches!(self.req_family, 0 | 2 | 10) {
                self.req_port = u16::from_be_bytes([head[2], head[3]]);
            }
        }
        self
    }
}

impl About {
    /// The port of a bindx array's first address, only when `--port` needs it: the
    /// kernel binds that one first, and takes the others only on the same port (or 0).
    #[inline(always)]
    pub fn with_bindx_port(mut self, cfg: &Config, val: u64, optlen: i32, mem: Mem) -> About {
        if cfg.flags & CFG_F_PORT == 0 || optlen < 4 || val == 0 {
            return self;
        }
        let mut head = [0u8; 4];
        if probe_read(head.as_mut_ptr(), 4, val, mem) == 0
            && matches!(u16::from_ne_bytes([head[0], head[1]]), 2 | 10)
        {
            self.hook_port = u16::from_be_bytes([head[2], head[3]]);
        }
        self
    }
}

/// Whether the call passes the port, family, protocol and failure filters. Reads the few
/// socket fields it needs only when such a filter is set.
#[inline(always)]
pub fn call_wanted(cfg: &Config, caller: &Caller, ret: i32, about: &About) -> bool {
    let f = cfg.flags;
    if f & CFG_F_FAILED != 0 && ret == 0 {
        return false;
    }
    if f & (CFG_F_PORT | CFG_F_FAMILY | CFG_F_PROTO | CFG_F_NETNS) == 0 {
        return true;
    }
    let st = if about.sk != 0 {
        let view = SockView::load(about.sk);
        let st = sock_key(caller, &view);
        if view.intact() {
            st
        } else {
            sock_key(caller, &SockView::direct(about.sk))
        }
    } else {
        SockKey::default()
    };
    if f & CFG_F_NETNS != 0 && st.netns != 0 && unsafe { FILTER_NETNS.get(st.netns) }.is_none() {
        return false;
    }
    if f & CFG_F_FAMILY != 0 {
        // The family asked for (a bind), else the socket's: what the event shows.
        let family = if about.req_family != 0 {
            about.req_family
        } else {
            st.family
        };
        if family == 0 || family >= 64 || cfg.families & (1u64 << family) == 0 {
            return false;
        }
    }
    if f & CFG_F_PROTO != 0 {
        if st.family == 0 || !st.type_known || !st.protocol_known {
            return false;
        }
        if cfg.protos & proto::bit(st.family, st.sock_type, st.protocol) == 0 {
            return false;
        }
    }
    if f & CFG_F_PORT != 0 {
        // The port asked for, or the one the socket holds (listen, port 0 binds, closes).
        let hit = |p: u16| p != 0 && unsafe { FILTER_PORTS.get(p) }.is_some();
        // An AF_UNSPEC sockaddr's port is one only to an AF_INET socket (inet_bind).
        let req_port = if about.req_family == 0 && st.family != 2 {
            0
        } else {
            about.req_port
        };
        if !(hit(req_port) || hit(st.num) || hit(about.hook_port)) {
            return false;
        }
    }
    true
}
