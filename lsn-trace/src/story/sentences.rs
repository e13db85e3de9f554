//! The story's sentences, given the facts: the listener summary line, why a socket's
//! IPV6_V6ONLY is what it is, how a person connects. Pure.
use std::net::IpAddr;

use lsn_trace::verdict::{Addr, Bound};

use super::socket::Entry;
use crate::{
    event::{Event, SOCK_DGRAM},
    sockaddr::{AF_INET, AF_INET6, SockAddr},
};

/// Why the socket's IPV6_V6ONLY is what it is (`[V6ONLY=N, <this>]` in the meaning), from
/// where the story found it came from (`source`), whether a setsockopt of it was seen, and
/// the namespace's net.ipv6.bindv6only.
pub(super) fn v6only_why(source: &str, seen_set: bool, bindv6only: Option<bool>) -> String {
    match source {
        "explicit" if seen_set => "set explicitly".to_string(),
        "explicit" => "set before this trace began (differs from net.ipv6.bindv6only)".into(),
        "address" => "set by the kernel on binding one IPv6 address".into(),
        _ => format!(
            "inherited from net.ipv6.bindv6only={}",
            bindv6only.map_or("?".into(), |d| (d as u8).to_string())
        ),
    }
}

/// `nginx[1190] LISTEN tcp [::]:80  <meaning>; IPv4 is served by ... Connect: ...`; `other`:
/// the other half of a two-socket dual-stack setup, when there is one.
pub(super) fn listener_summary(
    ev: &Event,
    entry: &Entry,
    addr: &SockAddr,
    b: &Bound,
    meaning: &str,
    other: Option<&Entry>,
) -> String {
    let dgram = entry.sock_type == Some(SOCK_DGRAM);
    let state = if dgram { "BOUND" } else { "LISTEN" };
    let proto = entry.protocol.unwrap_or("?");
    let mut meaning = meaning.to_string();
    // SCTP bound to several addresses (sctp_bindx): all of them; the verdict is the
    // address the kernel shows for the socket.
    let shown = match &entry.sctp_addrs {
        Some(all) if all.len() > 1 => {
            meaning.push_str(&format!(
                " ({addr}; {} addresses bound with sctp_bindx)",
                all.len()
            ));
            all.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
        _ => addr.to_string(),
    };
    let mut s = format!("{}[{}] {state} {proto} {shown}  ", ev.comm, ev.pid);
    let mut other_family = None;
    if let (Some(o), Addr::Ip { ip, .. }) = (other, &b.addr) {
        let want = if ip.is_ipv4() { AF_INET6 } else { AF_INET };
        let fam = if want == AF_INET { "IPv4" } else { "IPv6" };
        let whose = if o.pid == ev.pid {
            "its other socket".to_string()
        } else {
            format!("{}[{}]'s socket", o.comm, o.pid)
        };
        // The verdict's "needs another socket" is answered right after.
        for clause in [
            "; IPv4 clients need another socket on 0.0.0.0",
            "; IPv6 clients need another socket",
        ] {
            meaning = meaning.replace(clause, "");
        }
        meaning.push_str(&format!(
            "; {fam} is served by {whose} {}",
            o.bound.as_ref().map(|a| a.to_string()).unwrap_or_default()
        ));
        other_family = Some(want);
    }
    s.push_str(&meaning);
    if let Some((req, eff)) = entry.listen_backlog
        && let Some(eff) = eff
        && i64::from(eff) < i64::from(req)
    {
        s.push_str(&format!(
            "; backlog {req} clamped to {eff} (net.core.somaxconn)"
        ));
    }
    if let Some(c) = connect_hint(addr, b, proto, other_family) {
        s.push_str(&format!(". {c}"));
    }
    s
}

/// How a person reaches the listener from this host.
fn connect_hint(addr: &SockAddr, b: &Bound, proto: &str, other: Option<u16>) -> Option<String> {
    let host = match (addr, &b.addr) {
        (SockAddr::UnixPath(_) | SockAddr::UnixAbstract(_), _) => {
            return Some(format!("Connect: {addr}"));
        }
        (_, Addr::Ip { ip, scope }) => {
            if ip.is_multicast() || b.port == Some(0) {
                return None;
            }
            match ip {
                IpAddr::V4(v4) if v4.is_unspecified() => {
                    if other == Some(AF_INET6) {
                        "localhost".to_string()
                    } else {
                        "127.0.0.1".to_string()
                    }
                }
                IpAddr::V6(v6) if v6.is_unspecified() => {
                    if b.v6only == Some(true) && other.is_none() {
                        "[::1]".to_string()
                    } else {
                        "localhost".to_string()
                    }
                }
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => v4.to_string(),
                    None => match scope {
                        Some(s) => format!("[{v6}%{s}]"),
                        None => format!("[{v6}]"),
                    },
                },
                IpAddr::V4(v4) => v4.to_string(),
            }
        }
        _ => return None,
    };
    let port = b.port?;
    if proto.starts_with("udp") {
        return Some(format!("Send datagrams to {host}:{port}"));
    }
    if proto != "tcp" {
        return Some(format!("Connect: {host}:{port}"));
    }
    Some(match port {
        80 => format!("Connect: http://{host}/"),
        443 => format!("Connect: https://{host}/"),
        8443 => format!("Connect: https://{host}:{port}/"),
        3000 | 5000 | 8000 | 8008 | 8080 | 8888 => format!("Connect: http://{host}:{port}/"),
        _ => format!("Connect: {host}:{port}"),
    })
}
