//! The `--json` hot path: each record written straight into the output buffer, byte for
//! byte what serde_json makes of [`super::json::record_with`] + the story's note (the
//! reference, still used by the audit log and checked against this in the tests), without
//! serde's flattened-map machinery and the per-event Strings the derive struct needs. A
//! bind storm is ~5 events per cycle: this is most of the agent's CPU time.
use std::io::Write as _;

use crate::{
    errno,
    event::{Event, Kind, OptValue, Request, Sock},
    names, netif,
    sockaddr::SockAddr,
    story::Note,
};

use super::Options;

/// One event record and its newline.
pub fn write_event(out: &mut Vec<u8>, ev: &Event, opts: Options, note: &Note) {
    let sock = ev.sock.as_ref();
    let bound_port = sock.and_then(|s| s.port);
    out.extend_from_slice(b"{\"event\":");
    str(out, ev.kind.name());
    out.extend_from_slice(b",\"time\":\"");
    super::write_rfc3339(out, ev.time_ns);
    out.push(b'"');
    if let Some(rel) = opts.rel(ev) {
        out.extend_from_slice(b",\"rel\":");
        // serde_json's float spelling, so that both writers agree to the digit.
        serde_json::to_writer(&mut *out, &((rel * 1e6).round() / 1e6)).expect("write f64");
    }
    if opts.mark_followed {
        key(out, "followed");
        bool(out, ev.followed);
    }
    key(out, "pid");
    int(out, ev.pid);
    key(out, "tid");
    int(out, ev.tid);
    key(out, "ppid");
    opt_int(out, ev.ppid);
    key(out, "comm");
    str(out, &ev.comm);
    key(out, "uid");
    int(out, ev.uid);
    key(out, "gid");
    int(out, ev.gid);
    key(out, "netns");
    opt_int(out, sock.and_then(|s| s.netns));
    key(out, "fd");
    opt_int(out, ev.fd);
    key(out, "source");
    str(out, ev.source.name());
    key(out, "sock_id");
    match ev.sock_id {
        Some(id) => {
            write!(out, "\"{id:016x}\"").expect("write to Vec");
        }
        None => null(out),
    }
    key(out, "inode");
    opt_int(out, sock.and_then(|s| s.inode));
    key(out, "family");
    match ev.family() {
        Some(af) => match family(af) {
            Some(name) => str(out, name),
            None => str(out, &names::family(af)),
        },
        None => null(out),
    }
    key(out, "type");
    opt_str(
        out,
        sock.and_then(|s| s.sock_type).and_then(names::sock_type),
    );
    key(out, "protocol");
    opt_str(out, ev.protocol());

    // listen and close have no request address: report what the socket listens on.
    let held = matches!(ev.kind, Kind::Listen | Kind::ListenState | Kind::Close);
    let bind = match &ev.request {
        Request::Bind(a) => Some(a),
        _ => None,
    };
    key(out, "addr");
    if held {
        match sock
            .and_then(|s| s.unix_addr.as_ref())
            .and_then(SockAddr::host)
        {
            Some(unix) => str(out, &unix),
            None => local(out, sock),
        }
    } else {
        match bind.and_then(SockAddr::host) {
            Some(h) => str(out, &h),
            None => null(out),
        }
    }
    key(out, "port");
    opt_int(
        out,
        if held {
            bound_port
        } else {
            bind.and_then(SockAddr::port)
        },
    );
    key(out, "scope_id");
    opt_int(
        out,
        match bind {
            Some(SockAddr::Inet6 { scope_id, .. }) => Some(*scope_id),
            _ => None,
        },
    );
    key(out, "addrlen");
    opt_int(
        out,
        match bind {
            // An int as passed: -1 prints as -1.
            Some(SockAddr::Unreadable { len } | SockAddr::Other { len, .. }) if *len != 0 => {
                Some(*len as i32)
            }
            _ => None,
        },
    );
    key(out, "bound_addr");
    local(out, sock);
    key(out, "bound_port");
    opt_int(out, bound_port);
    key(out, "errno");
    opt_int(out, ev.failed().then_some(ev.errno));
    key(out, "error");
    opt_str(
        out,
        if ev.failed() {
            errno::name(ev.errno)
        } else {
            None
        },
    );
    let flag = |out: &mut Vec<u8>, name: &str, f: fn(&Sock) -> Option<bool>| {
        key(out, name);
        match sock.and_then(f) {
            Some(b) => bool(out, b),
            None => null(out),
        }
    };
    flag(out, "v6only", |s| s.v6only);
    flag(out, "reuseaddr", |s| s.reuseaddr);
    flag(out, "reuseport", |s| s.reuseport);
    flag(out, "freebind", |s| s.freebind);
    flag(out, "transparent", |s| s.transparent);
    flag(out, "bind_address_no_port", |s| s.bind_no_port);
    let dev = sock.and_then(|s| s.bound_dev_if);
    key(out, "bound_dev_if");
    opt_int(out, dev);
    key(out, "device");
    match dev.filter(|&d| d > 0) {
        Some(d) => str(out, &netif::name_of(d as u32)),
        None => null(out),
    }
    key(out, "backlog");
    opt_int(
        out,
        match &ev.request {
            Request::Listen { backlog } => *backlog,
            _ => None,
        },
    );
    key(out, "backlog_effective");
    opt_int(
        out,
        if matches!(ev.kind, Kind::Listen | Kind::ListenState) {
            sock.and_then(|s| s.backlog)
        } else {
            None
        },
    );
    match &ev.request {
        Request::Setsockopt {
            level,
            optname,
            value,
            ..
        } => {
            key(out, "level");
            match names::level(*level) {
                Some(n) => str(out, n),
                None => str(out, &level.to_string()),
            }
            key(out, "option");
            match names::option(*level, *optname) {
                Some(n) => str(out, n),
                None => str(out, &optname.to_string()),
            }
            key(out, "value");
            match value {
                OptValue::Int(i) => int(out, *i),
                OptValue::Name(n) => str(out, n),
                OptValue::Bytes(b) => {
                    out.push(b'[');
                    for (i, byte) in b.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        int(out, *byte);
                    }
                    out.push(b']');
                }
                OptValue::Unreadable => null(out),
            }
        }
        _ => out.extend_from_slice(b",\"level\":null,\"option\":null,\"value\":null"),
    }
    write_note(out, note);
    out.extend_from_slice(b"}\n");
}

/// The story's keys, in `Note`'s field order.
fn write_note(out: &mut Vec<u8>, note: &Note) {
    key(out, "verdict");
    opt_str(out, note.verdict);
    key(out, "verdict_flags");
    match &note.verdict_flags {
        Some(flags) => {
            out.push(b'[');
            for (i, f) in flags.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                str(out, f);
            }
            out.push(b']');
        }
        None => null(out),
    }
    key(out, "meaning");
    opt_str(out, note.meaning.as_deref());
    key(out, "v6only_source");
    opt_str(out, note.v6only_source);
    key(out, "summary");
    opt_str(out, note.summary.as_deref());
    key(out, "explanation");
    opt_str(out, note.explanation.as_deref());
    key(out, "holders");
    // Rare (a failed bind's culprits) and nested: serde keeps it exact.
    serde_json::to_writer(&mut *out, &note.holders).expect("write holders");
}

/// `"inet"`, `"inet6"` ... without allocating, for the families `names::family` names.
fn family(af: u16) -> Option<&'static str> {
    Some(match af {
        0 => "unspec",
        1 => "unix",
        2 => "inet",
        10 => "inet6",
        16 => "netlink",
        17 => "packet",
        40 => "vsock",
        _ => return None,
    })
}

/// What the socket holds, as `bound_addr` spells it (IP addresses need no escaping).
fn local(out: &mut Vec<u8>, sock: Option<&Sock>) {
    match sock.and_then(|s| s.local) {
        Some(a) => {
            write!(out, "\"{a}\"").expect("write to Vec");
        }
        None => null(out),
    }
}

fn key(out: &mut Vec<u8>, k: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

fn bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn opt_int(out: &mut Vec<u8>, n: Option<impl itoa::Integer>) {
    match n {
        Some(n) => int(out, n),
        None => null(out),
    }
}

fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => str(out, s),
        None => null(out),
    }
}

/// A JSON string, escaped as serde_json does: `"` and `\`, the short escapes for
/// \b \t \n \f \r, `\u00XX` (lowercase hex) for the other control bytes, the rest raw.
fn str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape at all: one table lookup per byte finds out, and the
    // `match` below only runs for the bytes that do (the sentences are most of a record).
    const ESCAPED: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 0x20 {
            t[i] = true;
            i += 1;
        }
        t[b'"' as usize] = true;
        t[b'\\' as usize] = true;
        t
    };
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !ESCAPED[b as usize] {
            continue;
        }
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::{
        event::RawArgs,
        failure::Holder,
        output::{Render as _, json::Json},
    };

    fn ev(kind: Kind, request: Request, sock: Option<Sock>) -> Event {
        Event {
            kind,
            time_ns: 1_795_323_307_512_345_678,
            pid: 4242,
            tid: 4243,
            ppid: Some(1),
            start: None,
            uid: 0,
            gid: 1000,
            comm: "na\"me\\\u{1}\t\u{7f}é".into(),
            fd: Some(3),
            errno: 0,
            source: crate::event::Source::Syscall,
            request,
            sock,
            sock_id: Some(0x00ab_cdef_0123_4567),
            raw: RawArgs::default(),
            followed: true,
        }
    }

    fn inet6_sock() -> Sock {
        Sock {
            family: Some(10),
            sock_type: Some(1),
            protocol: Some(6),
            state: Some(10),
            local: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            port: Some(40123),
            v6only: Some(true),
            reuseaddr: Some(true),
            reuseport: Some(false),
            freebind: None,
            transparent: Some(false),
            bind_no_port: Some(false),
            bound_dev_if: Some(0),
            backlog: Some(16),
            netns: Some(4026531840),
            unix_addr: None,
            inode: Some(123456),
        }
    }

    fn cases() -> Vec<(Event, Note)> {
        let v4 = Sock {
            family: Some(2),
            local: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))),
            bound_dev_if: Some(1),
            ..inet6_sock()
        };
        let mut failed = ev(
            Kind::Bind,
            Request::Bind(SockAddr::Inet {
                addr: Ipv4Addr::UNSPECIFIED,
                port: 80,
            }),
            Some(v4.clone()),
        );
        failed.errno = 98;
        // A listener closing after its file is gone: the socket, but no inode.
        let orphan = Sock {
            inode: None,
            ..inet6_sock()
        };
        let mut kernel = ev(Kind::Close, Request::None, Some(orphan));
        kernel.source = crate::event::Source::Kernel;
        kernel.fd = None;
        kernel.sock_id = None;
        kernel.ppid = None;
        let opt = |level, optname, value| Request::Setsockopt {
            level,
            optname,
            optlen: 4,
            value,
        };
        let full_note = Note {
            verdict: Some("loopback"),
            verdict_flags: Some(vec!["a", "b\"c"]),
            meaning: Some("only this host\n".into()),
            v6only_source: Some("explicit"),
            summary: Some("tcp [::1]:40123 listening".into()),
            explanation: Some("in use".into()),
            holders: Some(vec![Holder {
                pid: Some(1),
                comm: None,
                protocol: "tcp",
                addr: "0.0.0.0".into(),
                port: 80,
                state: "LISTEN",
                uid: Some(0),
                remote: None,
            }]),
            // Not record keys: both writers leave them out.
            bound: Some(lsn_trace::verdict::Bound::ip(
                Ipv4Addr::LOCALHOST.into(),
                80,
            )),
            local: Some(SockAddr::Inet {
                addr: Ipv4Addr::LOCALHOST,
                port: 80,
            }),
            listener: Some(crate::story::ListenerChange::Open),
        };
        vec![
            (
                ev(
                    Kind::Bind,
                    Request::Bind(SockAddr::Inet6 {
                        addr: Ipv6Addr::LOCALHOST,
                        port: 0,
                        scope_id: 0,
                        flowinfo: 0,
                    }),
                    Some(inet6_sock()),
                ),
                Note::default(),
            ),
            (failed, full_note),
            (
                ev(
                    Kind::Listen,
                    Request::Listen {
                        backlog: Some(4096),
                    },
                    Some(inet6_sock()),
                ),
                Note::default(),
            ),
            (
                ev(Kind::ListenState, Request::None, Some(inet6_sock())),
                Note::default(),
            ),
            (
                ev(
                    Kind::Listen,
                    Request::Listen { backlog: Some(5) },
                    Some(Sock {
                        family: Some(1),
                        local: None,
                        port: None,
                        unix_addr: Some(SockAddr::UnixPath(b"/run/a \"b\".sock".to_vec())),
                        ..inet6_sock()
                    }),
                ),
                Note::default(),
            ),
            (kernel, Note::default()),
            (
                ev(
                    Kind::Setsockopt,
                    opt(41, 26, OptValue::Int(1)),
                    Some(inet6_sock()),
                ),
                Note::default(),
            ),
            (
                ev(
                    Kind::Setsockopt,
                    opt(1, 25, OptValue::Name("eth\"0".into())),
                    None,
                ),
                Note::default(),
            ),
            (
                ev(
                    Kind::Setsockopt,
                    opt(0, 15, OptValue::Bytes(vec![1, 0, 255])),
                    None,
                ),
                Note::default(),
            ),
            (
                ev(Kind::Setsockopt, opt(99, 77, OptValue::Unreadable), None),
                Note::default(),
            ),
            (
                ev(
                    Kind::Bind,
                    Request::Bind(SockAddr::UnixPath(b"/run/x\n\x01y.sock".to_vec())),
                    Some(Sock {
                        family: Some(1),
                        sock_type: Some(2),
                        ..Sock::default()
                    }),
                ),
                Note::default(),
            ),
            (
                ev(
                    Kind::Bind,
                    Request::Bind(SockAddr::UnixAbstract(b"abs".to_vec())),
                    None,
                ),
                Note::default(),
            ),
            (
                ev(
                    Kind::Bind,
                    Request::Bind(SockAddr::Unreadable { len: 28 }),
                    None,
                ),
                Note::default(),
            ),
            (
                ev(
                    Kind::Bind,
                    Request::Bind(SockAddr::Other {
                        family: 77,
                        len: 16,
                    }),
                    None,
                ),
                Note::default(),
            ),
        ]
    }

    /// Strings escape as serde_json escapes them: every ASCII byte, alone and inside text
    /// (a unix path or a comm can hold any of them), and non-ASCII text.
    #[test]
    fn strings_escape_as_serde_does() {
        let mut samples: Vec<String> = (0u8..128)
            .flat_map(|b| {
                let c = char::from(b);
                [c.to_string(), format!("ab{c}cd{c}{c}")]
            })
            .collect();
        samples.push("/run/é—ü \\ \"x\"\u{7f}".into());
        for s in samples {
            let mut fast = Vec::new();
            str(&mut fast, &s);
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                serde_json::to_string(&s).unwrap()
            );
        }
    }

    /// The fast writer against the serde reference, for every kind of event and value,
    /// with and without `-t` and `--all`.
    #[test]
    fn byte_identical_to_serde() {
        for opts in [
            Options::default(),
            Options {
                relative_to_ns: Some(1_795_323_300_000_000_000),
                mark_followed: true,
            },
        ] {
            for (ev, note) in cases() {
                let mut fast = Vec::new();
                write_event(&mut fast, &ev, opts, &note);
                let mut reference = Vec::new();
                Json::new(opts).serde_noted(&mut reference, &ev, &note);
                assert_eq!(
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&reference)
                );
                let mut via_render = Vec::new();
                Json::new(opts).event_noted(&mut via_render, &ev, &note);
                assert_eq!(via_render, fast);
            }
        }
    }
}
