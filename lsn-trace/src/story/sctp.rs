//! An SCTP socket's bound addresses: bind(2) binds its first (only on an unbound socket:
//! sctp_bind), sctp_bindx() adds and removes more (setsockopt SCTP_SOCKOPT_BINDX_ADD/_REM),
//! and the kernel keeps them in a list of which the socket's own fields show one
//! (`inet_rcv_saddr`: the last bound, even once removed). Pure: from the events alone,
//! exact or None (not known: addresses bound before the trace, an array not all in the
//! event, a removal that failed part-way).
use std::net::IpAddr;

use lsn_trace_common::sockopt::{SCTP_SOCKOPT_BINDX_ADD, SCTP_SOCKOPT_BINDX_REM, is_bindx};

use super::socket::inet;
use crate::{
    event::{BindxAddrs, Event, Kind, OptValue, Request},
    sockaddr::SockAddr,
};

/// The socket's addresses after `ev`, from those before it.
pub(super) fn after(before: Option<Vec<SockAddr>>, ev: &Event) -> Option<Vec<SockAddr>> {
    let sock = ev.sock.as_ref();
    let port = sock.and_then(|s| s.port);
    // Unbound after the call: nothing is bound, whatever came before.
    if port == Some(0) {
        return Some(Vec::new());
    }
    match &ev.request {
        Request::Bind(a) if !ev.failed() => Some(vec![with_port(a, port?)]),
        // listen(2) of an unbound socket binds the wildcard to an ephemeral port
        // (sctp_autobind): the socket shows which.
        Request::Listen { .. } if !ev.failed() && before.as_ref().is_some_and(Vec::is_empty) => {
            let s = sock?;
            Some(vec![inet(s.local?, port?)])
        }
        Request::Setsockopt {
            level,
            optname,
            value: OptValue::Addrs(a),
            ..
        } if is_bindx(*level, *optname) => bindx(before?, ev, *optname, a, port?),
        _ => before,
    }
}

fn bindx(
    mut set: Vec<SockAddr>,
    ev: &Event,
    op: i32,
    a: &BindxAddrs,
    port: u16,
) -> Option<Vec<SockAddr>> {
    // The kernel walks the whole array before it changes anything (sctp_setsockopt_bindx).
    if a.malformed_at.is_some() {
        return Some(set);
    }
    if a.omitted() != Some(0) {
        return None;
    }
    // An address's port 0 is the socket's (sctp_do_bind, sctp_bindx_rem).
    let listed = a.addrs.iter().map(|x| match x.port() {
        Some(0) => with_port(x, port),
        _ => x.clone(),
    });
    match (op, ev.errno) {
        (SCTP_SOCKOPT_BINDX_ADD, 0) => {
            set.extend(listed);
            Some(set)
        }
        (SCTP_SOCKOPT_BINDX_REM, 0) => {
            for x in listed {
                let i = set.iter().position(|y| same(y, &x))?;
                set.remove(i);
            }
            Some(set)
        }
        // ENOMEM may come after the addresses were added or removed (the ASCONF to the
        // peers, net.sctp.addip_enable=1): not known.
        (_, libc::ENOMEM) => None,
        // Refused: sctp_bindx_add removes what it added — all of it, unless the socket was
        // unbound before: its last address cannot go, and stays the socket's own.
        (SCTP_SOCKOPT_BINDX_ADD, _) if !set.is_empty() => Some(set),
        (SCTP_SOCKOPT_BINDX_ADD, _) => {
            let local = ev.sock.as_ref()?.local?;
            let kept = listed
                .into_iter()
                .find(|x| ip_of(x) == Some(canonical(local)))?;
            Some(vec![kept])
        }
        // A removal stops at the address it fails on, those before it gone: exact only
        // for one address.
        (SCTP_SOCKOPT_BINDX_REM, _) if a.addrs.len() == 1 => Some(set),
        _ => None,
    }
}

fn with_port(a: &SockAddr, port: u16) -> SockAddr {
    match a.clone() {
        SockAddr::Inet { addr, .. } => SockAddr::Inet { addr, port },
        SockAddr::Inet6 {
            addr,
            flowinfo,
            scope_id,
            ..
        } => SockAddr::Inet6 {
            addr,
            port,
            flowinfo,
            scope_id,
        },
        other => other,
    }
}

/// An address as the kernel compares them: an IPv4-mapped IPv6 one is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn ip_of(a: &SockAddr) -> Option<IpAddr> {
    match a {
        SockAddr::Inet { addr, .. } => Some(canonical(IpAddr::V4(*addr))),
        SockAddr::Inet6 { addr, .. } => Some(canonical(IpAddr::V6(*addr))),
        _ => None,
    }
}

fn same(a: &SockAddr, b: &SockAddr) -> bool {
    ip_of(a).is_some() && ip_of(a) == ip_of(b) && a.port() == b.port()
}

/// Why an sctp_bindx() call failed, from its array, the socket's port and addresses (as
/// the story knows them) and the namespace's addresses; None: the common explanation.
pub(super) fn why_failed(
    ev: &Event,
    set: Option<&[SockAddr]>,
    ns: Option<&lsn_trace::nsaddrs::NsAddrs>,
) -> Option<String> {
    let Request::Setsockopt {
        optname,
        optlen,
        value: OptValue::Addrs(a),
        ..
    } = &ev.request
    else {
        return None;
    };
    let add = *optname == SCTP_SOCKOPT_BINDX_ADD;
    let undone = if add {
        "nothing was added (the kernel undoes the addresses the call had added)"
    } else {
        "the addresses before it in the array were removed"
    };
    let port = ev.sock.as_ref().and_then(|s| s.port).filter(|&p| p != 0);
    let family = ev.sock.as_ref().and_then(|s| s.family);
    let list = |xs: Vec<&SockAddr>| {
        xs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(match ev.errno {
        libc::EINVAL if a.malformed_at.is_some() => format!(
            "the sctp_bindx() array ({optlen} bytes) is malformed at byte {}: each address \
             must be a whole sockaddr_in (16 bytes) or sockaddr_in6 (28); the kernel refused \
             it before changing anything",
            a.malformed_at.unwrap()
        ),
        libc::EINVAL => {
            let other_port: Vec<_> = a
                .addrs
                .iter()
                .filter(|x| {
                    port.is_some() && !matches!(x.port(), Some(0) | None) && x.port() != port
                })
                .collect();
            let v6_on_v4: Vec<_> = a
                .addrs
                .iter()
                .filter(|x| {
                    family == Some(crate::sockaddr::AF_INET) && matches!(x, SockAddr::Inet6 { .. })
                })
                .collect();
            let bound: Vec<_> = a
                .addrs
                .iter()
                .filter(|x| {
                    set.is_some_and(|s| s.iter().any(|y| same(y, &with_port(x, port.unwrap_or(0)))))
                })
                .collect();
            let unbound: Vec<_> = a
                .addrs
                .iter()
                .filter(|x| {
                    set.is_some_and(|s| {
                        !s.iter().any(|y| same(y, &with_port(x, port.unwrap_or(0))))
                    })
                })
                .collect();
            if !other_port.is_empty() {
                format!(
                    "{} asks for another port than the socket's {}: all of an SCTP socket's \
                     addresses share one port (give it, or 0); {undone}",
                    list(other_port),
                    port.unwrap_or(0)
                )
            } else if !v6_on_v4.is_empty() {
                format!(
                    "{} is an IPv6 address and the socket is AF_INET: it takes IPv4 addresses \
                     only; {undone}",
                    list(v6_on_v4)
                )
            } else if add && !bound.is_empty() {
                format!("{} is already bound to the socket; {undone}", list(bound))
            } else if !add && !unbound.is_empty() {
                format!("{} is not bound to the socket; {undone}", list(unbound))
            } else {
                format!(
                    "sctp_bindx() refused an address: already bound (ADD) or not bound (REM), \
                     another port than the socket's, or a family the socket does not take; \
                     {undone}"
                )
            }
        }
        libc::EADDRNOTAVAIL if add => {
            let missing: Vec<_> = a
                .addrs
                .iter()
                .filter(|x| match ip_of(x) {
                    Some(ip) if !ip.is_unspecified() && !ip.is_loopback() => ns.is_some_and(|n| {
                        !matches!(n.owner(ip), lsn_trace::verdict::Ownership::Iface(_))
                    }),
                    _ => false,
                })
                .collect();
            let there = ns.map(|n| n.list().join(", "));
            match (missing.is_empty(), there) {
                (false, Some(there)) => format!(
                    "{} is not assigned to any interface in this process's network namespace \
                     (there: {there}); {undone}. Add only addresses that exist, or set \
                     IP_FREEBIND (or net.ipv4.ip_nonlocal_bind / net.ipv6.ip_nonlocal_bind=1) \
                     to bind before they do",
                    list(missing)
                ),
                _ => format!(
                    "an address of the array is not assigned to any interface in this \
                     process's network namespace; {undone}"
                ),
            }
        }
        libc::EBUSY if !add => {
            "an SCTP socket keeps at least one address: its last one cannot be removed".into()
        }
        _ => return None,
    })
}

/// Whether the story follows this socket's addresses: an SCTP socket's.
pub(super) fn applies(protocol: Option<&str>, ev: &Event) -> bool {
    protocol == Some("sctp") && ev.kind != Kind::Close
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::event::{Sock, Source};

    fn v4(last: u8, port: u16) -> SockAddr {
        SockAddr::Inet {
            addr: Ipv4Addr::new(127, 0, 0, last),
            port,
        }
    }

    fn ev(request: Request, errno: i32, local: u8, port: u16) -> Event {
        Event {
            euid: None,
            state_unknown: None,
            kind: match request {
                Request::Bind(_) => Kind::Bind,
                Request::Listen { .. } => Kind::Listen,
                _ => Kind::Setsockopt,
            },
            time_ns: 0,
            pid: 1,
            tid: 1,
            start: None,
            ppid: None,
            uid: 0,
            gid: 0,
            comm: "sctpd".into(),
            fd: Some(3),
            errno,
            source: Source::Syscall,
            request,
            sock: Some(Sock {
                family: Some(2),
                protocol: Some(132),
                local: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, local))),
                port: Some(port),
                ..Sock::default()
            }),
            sock_id: Some(7),
            raw: Default::default(),
            followed: false,
        }
    }

    fn bindx(op: i32, addrs: Vec<SockAddr>, count: Option<u32>) -> Request {
        Request::Setsockopt {
            level: 132,
            optname: op,
            optlen: 16 * addrs.len() as i32,
            value: OptValue::Addrs(BindxAddrs {
                addrs,
                count,
                malformed_at: None,
            }),
        }
    }

    const ADD: i32 = SCTP_SOCKOPT_BINDX_ADD;
    const REM: i32 = SCTP_SOCKOPT_BINDX_REM;

    #[test]
    fn adds_removes_and_refusals() {
        let unbound = Some(Vec::new());
        // Port 0 in the array: the socket's port.
        let two = ev(bindx(ADD, vec![v4(1, 0), v4(2, 0)], Some(2)), 0, 2, 5000);
        let set = after(unbound.clone(), &two);
        assert_eq!(set, Some(vec![v4(1, 5000), v4(2, 5000)]));
        let rem = ev(bindx(REM, vec![v4(2, 5000)], Some(1)), 0, 2, 5000);
        let set = after(set, &rem);
        assert_eq!(set, Some(vec![v4(1, 5000)]));
        // Refused: undone.
        let refused = ev(bindx(ADD, vec![v4(9, 5000)], Some(1)), 99, 2, 5000);
        assert_eq!(after(set.clone(), &refused), set);
        // Refused on an unbound socket after its first address was bound: that one stays
        // (the socket's own address says which).
        let half = ev(bindx(ADD, vec![v4(1, 0), v4(9, 0)], Some(2)), 99, 1, 5001);
        assert_eq!(after(unbound.clone(), &half), Some(vec![v4(1, 5001)]));
        let none = ev(bindx(ADD, vec![v4(9, 0)], Some(1)), 99, 0, 0);
        assert_eq!(after(unbound.clone(), &none), Some(vec![]));
        // Not known: before the trace, an array not all in the event, a partial removal,
        // ENOMEM, removing an address not seen bound.
        assert_eq!(after(None, &two), None);
        let cut = ev(bindx(ADD, vec![v4(1, 0)], Some(9)), 0, 1, 5000);
        assert_eq!(after(unbound.clone(), &cut), None);
        let rem2 = ev(bindx(REM, vec![v4(1, 0), v4(2, 0)], Some(2)), 22, 2, 5000);
        assert_eq!(after(Some(vec![v4(1, 5000), v4(2, 5000)]), &rem2), None);
        let nomem = ev(bindx(ADD, vec![v4(3, 0)], Some(1)), libc::ENOMEM, 2, 5000);
        assert_eq!(after(Some(vec![v4(1, 5000)]), &nomem), None);
        assert_eq!(after(Some(vec![v4(1, 5000)]), &rem), None);
        // bind(2), and listen's autobind.
        let b = ev(Request::Bind(v4(1, 0)), 0, 1, 5002);
        assert_eq!(after(None, &b), Some(vec![v4(1, 5002)]));
        let mut l = ev(Request::Listen { backlog: Some(5) }, 0, 0, 5003);
        l.sock.as_mut().unwrap().local = Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let any = SockAddr::Inet {
            addr: Ipv4Addr::UNSPECIFIED,
            port: 5003,
        };
        assert_eq!(after(unbound, &l), Some(vec![any]));
    }

    #[test]
    fn why_refused() {
        let set = [v4(1, 5000)];
        let why =
            |req, errno| why_failed(&ev(req, errno, 1, 5000), Some(&set), None).unwrap_or_default();
        let mut bad = bindx(ADD, vec![v4(3, 5000)], Some(1));
        if let Request::Setsockopt {
            value: OptValue::Addrs(a),
            optlen,
            ..
        } = &mut bad
        {
            a.malformed_at = Some(16);
            *optlen = 20;
        }
        assert!(why(bad, libc::EINVAL).contains("(20 bytes) is malformed at byte 16"));
        let port = why(bindx(ADD, vec![v4(2, 6000)], Some(1)), libc::EINVAL);
        assert!(port.starts_with("127.0.0.2:6000 asks for another port than the socket's 5000"));
        let again = why(bindx(ADD, vec![v4(1, 0)], Some(1)), libc::EINVAL);
        assert!(again.starts_with("127.0.0.1:0 is already bound"), "{again}");
        let gone = why(bindx(REM, vec![v4(2, 0)], Some(1)), libc::EINVAL);
        assert!(gone.starts_with("127.0.0.2:0 is not bound"), "{gone}");
        let last = why(bindx(REM, vec![v4(1, 0)], Some(1)), libc::EBUSY);
        assert!(last.contains("last one cannot be removed"));
        // Not a bindx, or an errno it has nothing special for: the common explanation.
        assert_eq!(
            why_failed(&ev(Request::Bind(v4(1, 0)), libc::EINVAL, 1, 0), None, None),
            None
        );
        assert_eq!(
            why_failed(
                &ev(bindx(ADD, vec![v4(1, 0)], Some(1)), libc::EPERM, 1, 0),
                None,
                None
            ),
            None
        );
    }
}
