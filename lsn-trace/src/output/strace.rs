//! `--format strace`: each call the way `strace -f` prints it on stderr, so runbooks, habits
//! and greps carry over:
//!
//! ```text
//! [pid  1190] setsockopt(4, SOL_IPV6, IPV6_V6ONLY, [1], 4) = 0
//! [pid  1190] bind(4, {sa_family=AF_INET6, sin6_port=htons(22), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::", &sin6_addr), sin6_scope_id=0}, 28) = 0
//! [pid  1190] listen(4, 128)              = 0
//! ```
//!
//! Matched against strace 6.1 (tests/tests/strace.rs runs both on one program): the
//! `[pid %5u] ` prefix (always: a system-wide trace has no "first" process), the return
//! value aligned at column 40, sockaddr and option-value decoding, strace's string quoting,
//! `0x10` for an unreadable pointer.
//!
//! Events with no syscall (a socket entering LISTEN without listen(2), e.g. io_uring; a
//! listener closing) are printed the way strace prints what is not a syscall, as a
//! `--- ... ---` line, so a grep for `bind(` or `listen(` sees only real calls.
use std::{fmt::Write as _, net::Ipv6Addr};

use super::{Options, Render, emit};
use crate::{
    errno,
    event::{Event, Kind, OptValue, Request},
    names, netif,
    sockaddr::SockAddr,
};

pub struct Strace {
    _opts: Options,
}

impl Strace {
    pub fn new(opts: Options) -> Self {
        Strace { _opts: opts }
    }
}

impl Render for Strace {
    fn event(&mut self, out: &mut Vec<u8>, ev: &Event) {
        write_line(out, ev);
        out.push(b'\n');
    }

    fn lost(&mut self, out: &mut Vec<u8>, count: u64, reason: &str) {
        out.extend_from_slice(
            format!("--- lsn-trace: {count} events lost ({reason}) ---\n").as_bytes(),
        );
    }
}

/// strace's column for ` = ` (its -a default).
const RET_COLUMN: usize = 40;

#[cfg(test)]
pub fn line(ev: &Event) -> String {
    let mut out = Vec::new();
    write_line(&mut out, ev);
    String::from_utf8(out).expect("the line is built from text")
}

/// The call as strace prints it, without the newline; the common calls written straight
/// into `out`, the rare shapes (unix paths, unreadable pointers, unknown names) through
/// the formatting below.
fn write_line(out: &mut Vec<u8>, ev: &Event) {
    let start = out.len();
    out.extend_from_slice(b"[pid ");
    let tid = out.len();
    emit::int(out, ev.tid);
    // `{:>5}`
    let digits = out.len() - tid;
    if digits < 5 {
        out.splice(tid..tid, std::iter::repeat_n(b' ', 5 - digits));
    }
    out.extend_from_slice(b"] ");
    let fd = |out: &mut Vec<u8>| match ev.fd {
        Some(f) => emit::int(out, f),
        None => out.push(b'?'),
    };
    match (&ev.request, ev.kind) {
        (Request::Bind(a), _) => {
            out.extend_from_slice(b"bind(");
            fd(out);
            out.extend_from_slice(b", ");
            sockaddr(out, a, ev);
            out.extend_from_slice(b", ");
            emit::int(out, ev.raw.addrlen as i32);
            out.push(b')');
        }
        (Request::Listen { backlog }, _) => {
            out.extend_from_slice(b"listen(");
            fd(out);
            out.extend_from_slice(b", ");
            match backlog {
                Some(b) => emit::int(out, *b),
                None => out.push(b'?'),
            }
            out.push(b')');
        }
        (
            Request::Setsockopt {
                level,
                optname,
                optlen,
                value,
            },
            _,
        ) => {
            out.extend_from_slice(b"setsockopt(");
            fd(out);
            out.extend_from_slice(b", ");
            match names::level(*level) {
                Some(n) => out.extend_from_slice(n.as_bytes()),
                None => emit::int(out, *level),
            }
            out.extend_from_slice(b", ");
            match names::option(*level, *optname) {
                Some(n) => out.extend_from_slice(n.as_bytes()),
                None => emit::int(out, *optname),
            }
            out.extend_from_slice(b", ");
            optval(out, ev, value, *optlen);
            out.extend_from_slice(b", ");
            emit::int(out, *optlen);
            out.push(b')');
        }
        (Request::None, Kind::ListenState) => {
            out.extend_from_slice(b"--- lsn-trace: ");
            out.extend_from_slice(crate::text::terminal(&ev.comm).as_bytes());
            out.extend_from_slice(b" listening on ");
            bound(out, ev);
            out.extend_from_slice(
                b" without listen(2) (in the kernel: io_uring or a kernel socket) ---",
            );
            return;
        }
        (Request::None, _) => {
            // Every listener's close (one line per storm cycle): no formatting machinery.
            out.extend_from_slice(b"--- lsn-trace: ");
            out.extend_from_slice(crate::text::terminal(&ev.comm).as_bytes());
            out.extend_from_slice(b" stopped listening on ");
            bound(out, ev);
            out.extend_from_slice(b" (closed) ---");
            return;
        }
    }
    // strace pads short calls so ` = ` lands at column 40.
    emit::pad_since(out, start, RET_COLUMN - 1);
    if ev.errno == 0 {
        out.extend_from_slice(b" = 0");
    } else {
        out.extend_from_slice(b" = -1 ");
        match errno::name(ev.errno) {
            Some(n) => out.extend_from_slice(n.as_bytes()),
            None => emit::int(out, ev.errno),
        }
        out.extend_from_slice(b" (");
        out.extend_from_slice(
            errno::message(ev.errno)
                .unwrap_or("Unknown error")
                .as_bytes(),
        );
        out.push(b')');
    }
}

struct Bytes<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The address the socket holds, `[v6]:port` or `v4:port` (`?` when unknown).
fn bound(out: &mut Vec<u8>, ev: &Event) {
    match ev.sock.as_ref().map(|s| (s.local, s.port)) {
        Some((Some(std::net::IpAddr::V6(a)), Some(p))) => {
            out.push(b'[');
            emit::ipv6(out, a);
            out.extend_from_slice(b"]:");
            emit::int(out, p);
        }
        Some((Some(std::net::IpAddr::V4(a)), Some(p))) => {
            emit::ipv4(out, a);
            out.push(b':');
            emit::int(out, p);
        }
        _ => out.push(b'?'),
    }
}

fn pointer(p: Option<u64>) -> String {
    match p {
        Some(0) => "NULL".into(),
        Some(p) => format!("{p:#x}"),
        // The hook could not tell where the argument was: say so in strace's comment style.
        None => "/* unreadable */".into(),
    }
}

/// strace's sockaddr decoding (print_sockaddr).
fn sockaddr(out: &mut Vec<u8>, a: &SockAddr, ev: &Event) {
    match a {
        // strace prints what was passed: AF_UNSPEC, whatever inet_bind made of it.
        SockAddr::Inet { .. } if ev.raw.sa_family == Some(crate::sockaddr::AF_UNSPEC) => {
            out.extend_from_slice(b"{sa_family=AF_UNSPEC, ...}");
        }
        SockAddr::Inet { addr, port } => {
            out.extend_from_slice(b"{sa_family=AF_INET, sin_port=htons(");
            emit::int(out, *port);
            out.extend_from_slice(b"), sin_addr=inet_addr(\"");
            emit::ipv4(out, *addr);
            out.extend_from_slice(b"\")}");
        }
        SockAddr::Inet6 {
            addr,
            port,
            flowinfo,
            scope_id,
        } => {
            out.extend_from_slice(b"{sa_family=AF_INET6, sin6_port=htons(");
            emit::int(out, *port);
            out.extend_from_slice(b"), sin6_flowinfo=htonl(");
            emit::int(out, *flowinfo);
            out.extend_from_slice(b"), inet_pton(AF_INET6, \"");
            emit::ipv6(out, *addr);
            out.extend_from_slice(b"\", &sin6_addr), sin6_scope_id=");
            if *scope_id == 0 {
                out.push(b'0');
            } else {
                out.extend_from_slice(scope(addr, *scope_id).as_bytes());
            }
            out.push(b'}');
        }
        SockAddr::UnixPath(p) => {
            let _ = write!(Bytes(out), "{{sa_family=AF_UNIX, sun_path={}}}", quote(p));
        }
        SockAddr::UnixAbstract(n) => {
            let _ = write!(Bytes(out), "{{sa_family=AF_UNIX, sun_path=@{}}}", quote(n));
        }
        SockAddr::UnixAutobind => out.extend_from_slice(b"{sa_family=AF_UNIX}"),
        SockAddr::Other { family, .. } => {
            let _ = write!(Bytes(out), "{{sa_family={}, ...}}", af_name(*family));
        }
        SockAddr::Unreadable { .. } => out.extend_from_slice(pointer(ev.raw.fault_ptr).as_bytes()),
    }
}

/// strace names the interface for link-local scopes it can resolve, else prints the number.
fn scope(addr: &Ipv6Addr, id: u32) -> String {
    let s = addr.segments();
    let link_scoped = addr.is_unicast_link_local() || (s[0] & 0xff0f) == 0xff02;
    if id != 0 && link_scoped {
        let name = netif::name_of(id);
        if name != id.to_string() {
            return format!("if_nametoindex({})", quote(name.as_bytes()));
        }
    }
    id.to_string()
}

fn af_name(f: u16) -> String {
    match names::family(f).as_str() {
        "unspec" => "AF_UNSPEC".into(),
        "netlink" => "AF_NETLINK".into(),
        "packet" => "AF_PACKET".into(),
        "vsock" => "AF_VSOCK".into(),
        _ => f.to_string(),
    }
}

/// strace's option value: `[N]` for an int, a quoted string for anything shorter than an
/// int or a name (SO_BINDTODEVICE), the pointer when it could not be read.
fn optval(out: &mut Vec<u8>, ev: &Event, value: &OptValue, optlen: i32) {
    let bytes = &ev.raw.optval[..ev.raw.optval_len as usize];
    match value {
        OptValue::Unreadable => out.extend_from_slice(pointer(ev.raw.fault_ptr).as_bytes()),
        // strace's array notation, `...` for what is not shown.
        OptValue::Addrs(a) => {
            out.push(b'[');
            for (i, x) in a.addrs.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                sockaddr(out, x, ev);
            }
            if a.omitted() != Some(0) || a.malformed_at.is_some() {
                if !a.addrs.is_empty() {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(b"...");
            }
            out.push(b']');
        }
        OptValue::Int(i) if optlen >= 4 => {
            out.push(b'[');
            emit::int(out, *i);
            out.push(b']');
        }
        OptValue::Name(n) if bytes.is_empty() => {
            out.extend_from_slice(quote(n.as_bytes()).as_bytes())
        }
        _ => out.extend_from_slice(quote(bytes).as_bytes()),
    }
}

/// strace's string quoting: printable ASCII as is, `\"` `\\` `\t` `\n` `\v` `\f` `\r`, the
/// rest in octal (three digits when a digit follows, so it cannot be misread).
pub fn quote(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            0x0b => s.push_str("\\v"),
            0x0c => s.push_str("\\f"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let next_digit = b.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
                if next_digit {
                    let _ = write!(s, "\\{c:03o}");
                } else {
                    let _ = write!(s, "\\{c:o}");
                }
            }
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::event::RawArgs;

    fn ev(request: Request, errno: i32, raw: RawArgs) -> Event {
        Event {
            euid: None,
            state_unknown: None,
            kind: match request {
                Request::Bind(_) => Kind::Bind,
                Request::Listen { .. } => Kind::Listen,
                Request::Setsockopt { .. } => Kind::Setsockopt,
                Request::None => Kind::ListenState,
            },
            time_ns: 0,
            pid: 1190,
            tid: 1190,
            ppid: None,
            uid: 0,
            gid: 0,
            comm: "nginx".into(),
            fd: Some(4),
            errno,
            source: crate::event::Source::Syscall,
            request,
            sock: None,
            sock_id: None,
            followed: false,
            start: None,
            raw,
        }
    }

    fn len(addrlen: u32) -> RawArgs {
        RawArgs {
            addrlen,
            ..Default::default()
        }
    }

    /// Lines as strace 6.1 printed them for the same calls.
    #[test]
    fn lines_match_strace() {
        let v6 = Request::Bind(SockAddr::Inet6 {
            addr: Ipv6Addr::UNSPECIFIED,
            port: 22,
            flowinfo: 0,
            scope_id: 0,
        });
        assert_eq!(
            line(&ev(v6, 0, len(28))),
            "[pid  1190] bind(4, {sa_family=AF_INET6, sin6_port=htons(22), sin6_flowinfo=htonl(0), \
             inet_pton(AF_INET6, \"::\", &sin6_addr), sin6_scope_id=0}, 28) = 0"
        );
        let v4 = Request::Bind(SockAddr::Inet {
            addr: Ipv4Addr::UNSPECIFIED,
            port: 80,
        });
        assert_eq!(
            line(&ev(v4, 98, len(16))),
            "[pid  1190] bind(4, {sa_family=AF_INET, sin_port=htons(80), \
             sin_addr=inet_addr(\"0.0.0.0\")}, 16) = -1 EADDRINUSE (Address already in use)"
        );
        assert_eq!(
            line(&ev(Request::Listen { backlog: Some(128) }, 0, len(0))),
            "[pid  1190] listen(4, 128)              = 0"
        );
        let ll = Request::Bind(SockAddr::Inet6 {
            addr: "fe80::1".parse().unwrap(),
            port: 0,
            flowinfo: 0,
            scope_id: 1,
        });
        assert!(line(&ev(ll, 99, len(28))).contains(
            "sin6_scope_id=if_nametoindex(\"lo\")}, 28) = -1 \
                                                 EADDRNOTAVAIL (Cannot assign requested address)"
        ));
        let path = Request::Bind(SockAddr::UnixPath(b"/run/x.sock".to_vec()));
        assert_eq!(
            line(&ev(path, 0, len(110))),
            "[pid  1190] bind(4, {sa_family=AF_UNIX, sun_path=\"/run/x.sock\"}, 110) = 0"
        );
        let abs = Request::Bind(SockAddr::UnixAbstract(b"abs name".to_vec()));
        assert_eq!(
            line(&ev(abs, 0, len(11))),
            "[pid  1190] bind(4, {sa_family=AF_UNIX, sun_path=@\"abs name\"}, 11) = 0"
        );
        assert_eq!(
            line(&ev(Request::Bind(SockAddr::UnixAutobind), 0, len(2))),
            "[pid  1190] bind(4, {sa_family=AF_UNIX}, 2) = 0"
        );
        let fault = RawArgs {
            addrlen: 16,
            fault_ptr: Some(0x10),
            ..Default::default()
        };
        assert_eq!(
            line(&ev(
                Request::Bind(SockAddr::Unreadable { len: 16 }),
                14,
                fault
            )),
            "[pid  1190] bind(4, 0x10, 16)           = -1 EFAULT (Bad address)",
        );
        let opt = |level, optname, optlen, value, bytes: &[u8]| {
            let mut raw = RawArgs::default();
            raw.optval[..bytes.len()].copy_from_slice(bytes);
            raw.optval_len = bytes.len() as u8;
            ev(
                Request::Setsockopt {
                    level,
                    optname,
                    optlen,
                    value,
                },
                0,
                raw,
            )
        };
        assert_eq!(
            line(&opt(41, 26, 4, OptValue::Int(1), &1i32.to_ne_bytes())),
            "[pid  1190] setsockopt(4, SOL_IPV6, IPV6_V6ONLY, [1], 4) = 0"
        );
        assert_eq!(
            line(&opt(1, 25, 3, OptValue::Name("lo".into()), b"lo\0")),
            "[pid  1190] setsockopt(4, SOL_SOCKET, SO_BINDTODEVICE, \"lo\\0\", 3) = 0"
        );
        assert_eq!(
            line(&opt(0, 15, 1, OptValue::Int(1), &[1])),
            "[pid  1190] setsockopt(4, SOL_IP, IP_FREEBIND, \"\\1\", 1) = 0"
        );
        let mut e = opt(1, 2, 4, OptValue::Unreadable, &[]);
        e.errno = 14;
        e.raw.fault_ptr = Some(0x10);
        assert_eq!(
            line(&e),
            "[pid  1190] setsockopt(4, SOL_SOCKET, SO_REUSEADDR, 0x10, 4) = -1 EFAULT (Bad address)"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(
            quote(b"a\"b\\c\n\x01\x012\xff"),
            "\"a\\\"b\\\\c\\n\\1\\0012\\377\""
        );
    }
}
