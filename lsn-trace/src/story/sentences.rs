//! The story's sentences, given the facts: the listener summary line, why a socket's
//! IPV6_V6ONLY is what it is, how a person connects. Pure.
use std::{borrow::Cow, fmt::Write as _, net::IpAddr};

use lsn_trace::verdict::{Addr, Bound};

use super::socket::Entry;
use crate::{
    event::{Event, SOCK_DGRAM},
    output::emit,
    sockaddr::{AF_INET, AF_INET6, SockAddr},
};

/// Why the socket's IPV6_V6ONLY is what it is (`[V6ONLY=N, <this>]` in the meaning), from
/// where the story found it came from (`source`), whether a setsockopt of it was seen, and
/// the namespace's net.ipv6.bindv6only.
pub(super) fn v6only_why(source: &str, seen_set: bool, bindv6only: Option<bool>) -> &'static str {
    match source {
        "explicit" if seen_set => "set explicitly",
        "explicit" => "set before this trace began (differs from net.ipv6.bindv6only)",
        "address" => "set by the kernel on binding one IPv6 address",
        _ => match bindv6only {
            Some(false) => "inherited from net.ipv6.bindv6only=0",
            Some(true) => "inherited from net.ipv6.bindv6only=1",
            None => "inherited from net.ipv6.bindv6only=?",
        },
    }
}

/// `nginx[1190] LISTEN tcp [::]:80  <meaning>; IPv4 is served by ... Connect: ...`; `other`:
/// the other half of a two-socket dual-stack setup, when there is one.
///
/// Made once per listener opened, which a bind storm makes for every socket: written into
/// one buffer (the addresses and numbers with `output::emit`), with no string in between.
pub(super) fn listener_summary(
    ev: &Event,
    entry: &Entry,
    addr: &SockAddr,
    b: &Bound,
    meaning: &str,
    other: Option<&Entry>,
) -> String {
    let dgram = entry.sock_type == Some(SOCK_DGRAM);
    let state: &[u8] = if dgram { b"BOUND" } else { b"LISTEN" };
    let proto = entry.protocol.unwrap_or("?");
    let mut s: Vec<u8> = Vec::with_capacity(96 + meaning.len());
    s.extend_from_slice(ev.comm.as_bytes());
    s.push(b'[');
    emit::int(&mut s, ev.pid);
    s.extend_from_slice(b"] ");
    s.extend_from_slice(state);
    s.push(b' ');
    s.extend_from_slice(proto.as_bytes());
    s.push(b' ');
    // SCTP bound to several addresses (sctp_bindx): all of them; the verdict is the
    // address the kernel shows for the socket.
    let sctp_all = entry.sctp_addrs.as_ref().filter(|all| all.len() > 1);
    match sctp_all {
        Some(all) => {
            for (i, a) in all.iter().enumerate() {
                if i > 0 {
                    s.push(b',');
                }
                emit::sockaddr(&mut s, a);
            }
        }
        None => emit::sockaddr(&mut s, addr),
    }
    s.extend_from_slice(b"  ");
    let mut meaning = Cow::Borrowed(meaning);
    if let Some(all) = sctp_all {
        let m = meaning.to_mut();
        let _ = write!(
            m,
            " ({addr}; {} addresses bound with sctp_bindx)",
            all.len()
        );
    }
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
        let m = meaning.to_mut();
        for clause in [
            "; IPv4 clients need another socket on 0.0.0.0",
            "; IPv6 clients need another socket",
        ] {
            *m = m.replace(clause, "");
        }
        let _ = write!(
            m,
            "; {fam} is served by {whose} {}",
            o.bound.as_ref().map(|a| a.to_string()).unwrap_or_default()
        );
        other_family = Some(want);
    }
    s.extend_from_slice(meaning.as_bytes());
    if let Some((req, eff)) = entry.listen_backlog
        && let Some(eff) = eff
        && i64::from(eff) < i64::from(req)
    {
        let _ = write!(
            Utf8(&mut s),
            "; backlog {req} clamped to {eff} (net.core.somaxconn)"
        );
    }
    connect_hint(&mut s, addr, b, proto, other_family);
    String::from_utf8(s).expect("the summary is built from text")
}

/// `fmt::Write` into a byte buffer that holds only text.
struct Utf8<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for Utf8<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// How a person reaches the listener from this host: `. Connect: …` appended to `out`
/// (nothing when there is no way to say).
fn connect_hint(out: &mut Vec<u8>, addr: &SockAddr, b: &Bound, proto: &str, other: Option<u16>) {
    let mut w = Utf8(out);
    let host_at = w.0.len();
    // The host part first, written where it will stay, then the words around it.
    match (addr, &b.addr) {
        (SockAddr::UnixPath(_) | SockAddr::UnixAbstract(_), _) => {
            let _ = write!(w, ". Connect: {addr}");
            return;
        }
        (_, Addr::Ip { ip, scope }) => {
            if ip.is_multicast() || b.port == Some(0) {
                return;
            }
            match ip {
                IpAddr::V4(v4) if v4.is_unspecified() => {
                    w.0.extend_from_slice(if other == Some(AF_INET6) {
                        b"localhost"
                    } else {
                        b"127.0.0.1"
                    });
                }
                IpAddr::V6(v6) if v6.is_unspecified() => {
                    w.0.extend_from_slice(if b.v6only == Some(true) && other.is_none() {
                        b"[::1]"
                    } else {
                        b"localhost"
                    });
                }
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => emit::ipv4(w.0, v4),
                    None => {
                        w.0.push(b'[');
                        emit::ipv6(w.0, *v6);
                        if let Some(s) = scope {
                            let _ = write!(w, "%{s}");
                        }
                        w.0.push(b']');
                    }
                },
                IpAddr::V4(v4) => emit::ipv4(w.0, *v4),
            }
        }
        _ => return,
    }
    let Some(port) = b.port else {
        w.0.truncate(host_at);
        return;
    };
    let out = w.0;
    let (before, with_port, after): (&[u8], bool, &[u8]) = if proto.starts_with("udp") {
        (b". Send datagrams to ", true, b"")
    } else if proto != "tcp" {
        (b". Connect: ", true, b"")
    } else {
        match port {
            80 => (b". Connect: http://", false, b"/"),
            443 => (b". Connect: https://", false, b"/"),
            8443 => (b". Connect: https://", true, b"/"),
            3000 | 5000 | 8000 | 8008 | 8080 | 8888 => (b". Connect: http://", true, b"/"),
            _ => (b". Connect: ", true, b""),
        }
    };
    // The words before the host go in front of it: appended, then rotated into place
    // (no second buffer for the host).
    out.extend_from_slice(before);
    out[host_at..].rotate_right(before.len());
    if with_port {
        out.push(b':');
        emit::int(out, port);
    }
    out.extend_from_slice(after);
}
