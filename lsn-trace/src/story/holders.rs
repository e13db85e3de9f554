//! Who holds a port: for an EADDRINUSE as it happens (`find`: one sock_diag dump of that port
//! in the failing process's network namespace, as `ss` does, the sockets colliding with the
//! failing one, their owners from a bounded /proc/*/fd scan; failure.rs says what it means),
//! and for the `-- CMD` summary at the end (`held_by`, `holds`: lsn-trace's namespace, now).
//! All I/O.
use std::time::Duration;

use serde::Serialize;

use super::collide::{Side, overlaps, side_of};
use crate::{
    event::Event,
    sockaddr::{AF_INET, AF_INET6},
    sockdiag::{self, DiagSock, Netns, Query},
};

/// A socket holding the port a bind wanted (JSON `holders`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub protocol: &'static str,
    pub addr: String,
    pub port: u16,
    /// As `ss` prints it: LISTEN, TIME-WAIT, ESTAB, UNCONN, ...
    pub state: &'static str,
    pub uid: Option<u32>,
    /// The peer, for a connection (e.g. a TIME-WAIT leftover).
    pub remote: Option<String>,
}

/// A socket the story traced on the port in question.
#[derive(Clone, Debug)]
pub struct Known {
    pub pid: u32,
    pub reuseport: Option<bool>,
}

/// Upper bound on the /proc/*/fd scan per lookup.
pub const OWNER_BUDGET: Duration = Duration::from_millis(50);

/// What the lookup found.
pub(super) struct Found {
    /// The sockets colliding with the failing one: listeners first, TIME-WAIT leftovers last.
    pub(super) colliding: Vec<DiagSock>,
    pub(super) owners: sockdiag::Owners,
    /// The first 8 colliding sockets, each with its first owner.
    pub(super) holders: Vec<Holder>,
}

/// Why nothing could be looked up.
pub(super) enum NotFound {
    /// The namespace cannot be reached (the story's reason).
    Namespace(String),
    /// The dump failed.
    Dump(std::io::Error),
}

/// The sockets of `proto` on `port` in namespace `netns` that collide with `me` (the
/// failing socket, itself left out), and their owners; `known`: the processes the story saw
/// on that port, scanned first.
pub(super) fn find(
    ev: &Event,
    netns: &Result<Netns, String>,
    known: &[Known],
    proto: &'static str,
    me: &Side,
    port: u16,
) -> Result<Found, NotFound> {
    let netns = match netns {
        Ok(n) => n.clone(),
        Err(why) => return Err(NotFound::Namespace(why.clone())),
    };
    let protocol = if proto == "udp" {
        sockdiag::IPPROTO_UDP
    } else {
        sockdiag::IPPROTO_TCP
    };
    let queries: Vec<Query> = [AF_INET, AF_INET6]
        .into_iter()
        .map(|family| Query {
            protocol,
            family,
            states: sockdiag::ALL_STATES,
            local_port: port,
        })
        .collect();
    let socks = sockdiag::dump_in(&netns, &queries).map_err(NotFound::Dump)?;
    // The failing socket itself may be in the dump (listen() after a shared bind): its
    // inode tells it apart, on every backend (kernel-function ones know no fd).
    let own_inode = crate::story::socket::sock_inode(ev).map(|i| i as u32);
    let mut colliding: Vec<DiagSock> = socks
        .into_iter()
        .filter(|s| Some(s.inode) != own_inode || s.inode == 0)
        .filter(|s| overlaps(me, &side_of(s)))
        .collect();
    // Listeners first: they are what a person came for; TIME-WAIT leftovers last.
    colliding.sort_by_key(|s| match s.state {
        sockdiag::TCP_LISTEN => 0,
        sockdiag::TCP_TIME_WAIT => 2,
        _ => 1,
    });
    colliding.dedup_by(|a, b| a.inode != 0 && a.inode == b.inode);
    if colliding.is_empty() {
        return Ok(Found {
            colliding,
            owners: sockdiag::Owners::default(),
            holders: Vec::new(),
        });
    }
    let inodes: Vec<u32> = colliding
        .iter()
        .map(|s| s.inode)
        .filter(|&i| i != 0)
        .take(8)
        .collect();
    let hint: Vec<u32> = known.iter().map(|k| k.pid).collect();
    let owners = sockdiag::owners(&inodes, &hint, OWNER_BUDGET);
    let holders: Vec<Holder> = colliding
        .iter()
        .take(8)
        .map(|s| holder_of(s, owners.found.get(&s.inode).and_then(|o| o.first())))
        .collect();
    Ok(Found {
        colliding,
        owners,
        holders,
    })
}

fn holder_of(s: &DiagSock, owner: Option<&sockdiag::Owner>) -> Holder {
    Holder {
        pid: owner.map(|o| o.pid),
        comm: owner.map(|o| o.comm.clone()),
        protocol: if s.protocol == sockdiag::IPPROTO_UDP {
            "udp"
        } else {
            "tcp"
        },
        addr: s.local.ip().to_string(),
        port: s.local.port(),
        state: s.state_name(),
        uid: (s.inode != 0).then_some(s.uid),
        remote: (s.remote.port() != 0).then(|| s.remote.to_string()),
    }
}

/// Who holds `protocol` port `port` now, in lsn-trace's network namespace (sock_diag, and
/// /proc/*/fd for the owners, as `ss -p`): for an EADDRINUSE in the summary.
pub fn held_by(protocol: &str, port: u16) -> Option<String> {
    let mut who: Vec<String> = Vec::new();
    for (owner, s) in held_where(protocol, port, |_| true) {
        let w = format!("{owner} on {} ({})", s.local_text(), s.state_name());
        if !who.contains(&w) {
            who.push(w);
        }
    }
    (!who.is_empty()).then(|| who.join(", "))
}

/// Which processes have a socket of `protocol` on exactly `addr` (ss notation, as the
/// summary shows it; a TCP one in LISTEN) open now, in lsn-trace's network namespace: the
/// listener of a process that exited may live on in a child it forked (daemonizing).
pub fn holds(protocol: &str, addr: &str) -> Option<String> {
    use crate::sockdiag::{IPPROTO_TCP, TCP_LISTEN};
    let port = addr.rsplit_once(':')?.1.parse().ok()?;
    let mut who: Vec<String> = Vec::new();
    for (owner, _) in held_where(protocol, port, |s| {
        s.local_text() == addr && (s.protocol != IPPROTO_TCP || s.state == TCP_LISTEN)
    }) {
        if !who.contains(&owner) {
            who.push(owner);
        }
    }
    (!who.is_empty()).then(|| who.join(", "))
}

/// The sockets of `protocol` on `port` that `keep` accepts, each with an owner
/// (`comm (pid N)`) per process that has it open.
fn held_where(
    protocol: &str,
    port: u16,
    keep: impl Fn(&crate::sockdiag::DiagSock) -> bool,
) -> Vec<(String, crate::sockdiag::DiagSock)> {
    use crate::sockdiag::{IPPROTO_TCP, IPPROTO_UDP, Query, dump_all, owners};
    let proto = match protocol {
        "tcp" => IPPROTO_TCP,
        "udp" => IPPROTO_UDP,
        _ => return Vec::new(),
    };
    let Ok(socks) = dump_all(&Query::all_inet(port)) else {
        return Vec::new();
    };
    let socks: Vec<_> = socks
        .into_iter()
        .filter(|s| s.protocol == proto && s.local.port() == port && s.inode != 0 && keep(s))
        .collect();
    let inodes: Vec<u32> = socks.iter().map(|s| s.inode).collect();
    let found = owners(&inodes, &[], Duration::from_millis(500)).found;
    let mut out = Vec::new();
    for s in socks {
        for o in found.get(&s.inode).into_iter().flatten() {
            out.push((format!("{} (pid {})", o.comm, o.pid), s.clone()));
        }
    }
    out
}
