//! The default output: one line per event, aligned columns, addresses as `ss` prints them,
//! errno names with their message.
use std::fmt::Write as _;

use super::{Options, Render, emit};
use crate::{
    errno,
    event::{Event, Kind, OptValue, Request, Sock},
    names, netif,
    sockaddr::SockAddr,
};

#[derive(Default)]
pub struct Human {
    header_done: bool,
    opts: Options,
}

const HEADER: &str =
    "PID     COMM            EVENT       PROTO  ADDRESS                       RESULT\n";

impl Human {
    pub fn new(opts: Options) -> Human {
        Human {
            header_done: false,
            opts,
        }
    }
}

impl Render for Human {
    fn event(&mut self, out: &mut Vec<u8>, ev: &Event) {
        self.line(out, ev, None);
    }

    fn event_noted(&mut self, out: &mut Vec<u8>, ev: &Event, note: &crate::story::Note) {
        self.line(out, ev, note.local.as_ref());
        // What it means, under the event: the listener summary, or why the call failed.
        let indent: &[u8] = if self.opts.mark_followed {
            b"      "
        } else {
            b"    "
        };
        for (prefix, text) in [("↳ ", &note.summary), ("↳ why: ", &note.explanation)] {
            if let Some(text) = text {
                out.extend_from_slice(indent);
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(crate::text::terminal(text).as_bytes());
                out.push(b'\n');
            }
        }
    }

    fn lost(&mut self, out: &mut Vec<u8>, count: u64, reason: &str) {
        let _ = writeln!(
            Bytes(out),
            "!!! {count} events lost ({reason}): the trace above is incomplete"
        );
    }
}

impl Human {
    /// The event's line (the header first); `local`: the story's address of its socket.
    fn line(&mut self, out: &mut Vec<u8>, ev: &Event, local: Option<&SockAddr>) {
        let marks = self.opts.mark_followed;
        if !self.header_done {
            let time = if self.opts.relative_to_ns.is_some() {
                "TIME(s)         "
            } else {
                "TIME            "
            };
            let mark = if marks { "  " } else { "" };
            let _ = write!(Bytes(out), "{mark}{time}{HEADER}");
            self.header_done = true;
        }
        if marks {
            // `*`: a followed process; the rest is the host's (--all).
            out.extend_from_slice(if ev.followed { b"* " } else { b"  " });
        }
        // Escaped whole (crate::text): the name, paths and device in it are others' strings.
        // The line is rewritten only when it holds something to escape.
        let start = out.len();
        write_line(out, ev, &self.opts, local);
        if let Ok(line) = std::str::from_utf8(&out[start..])
            && let std::borrow::Cow::Owned(escaped) = crate::text::terminal(line)
        {
            out.truncate(start);
            out.extend_from_slice(escaped.as_bytes());
        }
        out.push(b'\n');
    }
}

struct Bytes<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The event's line, without its newline.
#[cfg(test)]
pub fn line(ev: &Event) -> String {
    let mut out = Vec::new();
    write_line(&mut out, ev, &Options::default(), None);
    String::from_utf8(out).expect("the line is built from text")
}

/// sctp_bindx()'s addresses, `127.0.0.1:5000,[::1]:5000`, and what is not shown.
fn bindx(out: &mut Vec<u8>, a: &crate::event::BindxAddrs) {
    for (i, x) in a.addrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        emit::sockaddr(out, x);
    }
    if a.addrs.is_empty() {
        out.extend_from_slice(b"(none)");
    }
    match a.omitted() {
        Some(0) => {}
        Some(n) => {
            let _ = write!(Bytes(out), " (+{n} more)");
        }
        None => out.extend_from_slice(b" (+more, too many to count)"),
    }
    if let Some(at) = a.malformed_at {
        let _ = write!(Bytes(out), " (malformed at byte {at})");
    }
}

/// The notes after the result, each after a space (the first after two).
struct Notes<'a> {
    out: &'a mut Vec<u8>,
    any: bool,
}

impl Notes<'_> {
    /// Start the next note; its text is written to the returned buffer.
    fn next(&mut self) -> &mut Vec<u8> {
        self.out
            .extend_from_slice(if self.any { b" " } else { b"  " });
        self.any = true;
        self.out
    }

    fn push(&mut self, text: &str) {
        self.next().extend_from_slice(text.as_bytes());
    }
}

/// `TIME PID COMM EVENT PROTO ADDRESS RESULT  notes`, the columns padded as
/// `{:<7} {:<15} {:<11} {:<6} {:<29}` would pad them, written straight into `out`.
fn write_line(out: &mut Vec<u8>, ev: &Event, opts: &Options, local: Option<&SockAddr>) {
    match opts.rel(ev) {
        Some(secs) => {
            let _ = write!(Bytes(out), "{secs:<15.6}");
        }
        None => super::write_clock(out, ev.time_ns),
    }
    out.push(b' ');
    let start = out.len();
    emit::int(out, ev.pid);
    emit::pad_since(out, start, 7);
    out.push(b' ');
    emit::padded(out, &ev.comm, 15);
    out.push(b' ');
    let kind = match ev.kind {
        Kind::ListenState => "listen*",
        k => k.name(),
    };
    emit::padded(out, kind, 11);
    out.push(b' ');
    match ev.protocol() {
        Some(p) => emit::padded(out, p, 6),
        None => match ev.family() {
            Some(f) => emit::padded(out, &names::family(f), 6),
            None => emit::padded(out, "?", 6),
        },
    }
    out.push(b' ');
    let sock = ev.sock.as_ref();
    let start = out.len();
    match &ev.request {
        Request::Bind(a) => emit::sockaddr(out, a),
        Request::Setsockopt {
            level,
            optname,
            value,
            ..
        } => {
            out.extend_from_slice(names::option(*level, *optname).unwrap_or("?").as_bytes());
            out.push(b'=');
            match value {
                OptValue::Int(v) => emit::int(out, *v),
                OptValue::Name(n) if n.is_empty() => out.extend_from_slice(b"\"\" (unbind)"),
                OptValue::Name(n) => out.extend_from_slice(n.as_bytes()),
                OptValue::Bytes(b) => {
                    let _ = write!(Bytes(out), "{b:02x?}");
                }
                OptValue::Addrs(a) => bindx(out, a),
                OptValue::Unreadable => out.extend_from_slice(b"(unreadable)"),
            }
        }
        Request::Listen { .. } | Request::None => {
            if !bound(out, sock, local) {
                out.push(b'?');
            }
        }
    }
    emit::pad_since(out, start, 29);
    out.push(b' ');
    if ev.failed() {
        match (errno::name(ev.errno), errno::message(ev.errno)) {
            (Some(n), Some(m)) => {
                out.extend_from_slice(n.as_bytes());
                out.extend_from_slice(b" (");
                out.extend_from_slice(m.as_bytes());
                out.push(b')');
            }
            _ => {
                out.extend_from_slice(b"errno ");
                emit::int(out, ev.errno);
            }
        }
    } else {
        out.extend_from_slice(b"ok");
    }
    let mut notes = Notes { out, any: false };
    match (&ev.request, sock) {
        (Request::Bind(a), Some(s)) if !ev.failed() => {
            if a.port() == Some(0)
                && let Some(p) = s.port.filter(|&p| p != 0)
            {
                let out = notes.next();
                out.extend_from_slice("port 0 → kernel picked ".as_bytes());
                emit::int(out, p);
            }
            if matches!(a, SockAddr::Inet6 { .. }) {
                push_v6only(&mut notes, s);
            }
            push_options(&mut notes, s);
        }
        (Request::Listen { backlog }, Some(s)) if !ev.failed() => {
            match (backlog, s.backlog) {
                (Some(b), Some(eff)) if eff as i64 != *b as i64 => {
                    let out = notes.next();
                    out.extend_from_slice(b"backlog ");
                    emit::int(out, *b);
                    out.extend_from_slice(b" (kernel applied ");
                    emit::int(out, eff);
                    out.push(b')');
                }
                (Some(b), _) => {
                    let out = notes.next();
                    out.extend_from_slice(b"backlog ");
                    emit::int(out, *b);
                }
                // asked for at least somaxconn (io_uring, kernel): only the result is known
                (None, Some(eff)) => {
                    let out = notes.next();
                    out.extend_from_slice(b"backlog ");
                    emit::int(out, eff);
                    out.extend_from_slice(b" (at somaxconn)");
                }
                (None, None) => {}
            }
            if s.family == Some(crate::sockaddr::AF_INET6) {
                push_v6only(&mut notes, s);
            }
            push_options(&mut notes, s);
        }
        (Request::None, Some(s)) if ev.kind == Kind::ListenState => {
            notes.push("entered LISTEN without listen(2) (io_uring or in-kernel)");
            if let Some(b) = s.backlog {
                let out = notes.next();
                out.extend_from_slice(b"backlog ");
                emit::int(out, b);
            }
        }
        _ => {}
    }
    // A setuid program (or one that changed its effective uid): who it acts as.
    if let Some(euid) = ev.euid.filter(|&e| e != ev.uid) {
        let out = notes.next();
        out.extend_from_slice(b"uid=");
        emit::int(out, ev.uid);
        out.extend_from_slice(b" euid=");
        emit::int(out, euid);
    }
    if ev.state_unknown == Some(crate::event::StateUnknown::NotASocket)
        && ev.errno != libc::ENOTSOCK
    {
        notes.push("not a socket");
    }
    if let Some(fd) = ev.fd {
        let out = notes.next();
        out.extend_from_slice(b"fd=");
        emit::int(out, fd);
    }
}

/// What the socket holds (`127.0.0.1:80`, `[::]:80`, `[fe80::1%eth0]:80`, a unix name);
/// false when unknown.
fn bound(out: &mut Vec<u8>, sock: Option<&Sock>, local: Option<&SockAddr>) -> bool {
    let Some(s) = sock else { return false };
    if let Some(unix) = &s.unix_addr {
        emit::sockaddr(out, unix);
        return true;
    }
    let (Some(ip), Some(port)) = (s.local, s.port) else {
        return false;
    };
    match ip {
        std::net::IpAddr::V4(a) => emit::ipv4(out, a),
        std::net::IpAddr::V6(a) => {
            out.push(b'[');
            emit::ipv6(out, a);
            if let Some(id) = sock.and_then(|s| s.scope_id(local)).filter(|&id| id != 0) {
                out.push(b'%');
                out.extend_from_slice(netif::name_of(id).as_bytes());
            }
            out.push(b']');
        }
    }
    out.push(b':');
    emit::int(out, port);
    true
}

fn push_v6only(notes: &mut Notes, s: &Sock) {
    notes.push(match s.v6only {
        Some(true) => "v6only=1",
        Some(false) => "v6only=0",
        None => "v6only=?",
    });
}

fn push_options(notes: &mut Notes, s: &Sock) {
    for (set, name) in [
        (s.reuseaddr, "reuseaddr"),
        (s.reuseport, "reuseport"),
        (s.freebind, "freebind"),
        (s.transparent, "transparent"),
        (s.bind_no_port, "bind_address_no_port"),
    ] {
        if set == Some(true) {
            notes.push(name);
        }
    }
    if let Some(dev) = s.bound_dev_if.filter(|&d| d > 0) {
        let out = notes.next();
        out.extend_from_slice(b"dev=");
        out.extend_from_slice(netif::name_of(dev as u32).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::line;
    use crate::{
        event::{Event, Kind, OptValue, Request, Sock},
        sockaddr::SockAddr,
    };

    fn ev(kind: Kind, request: Request, errno: i32, sock: Option<Sock>) -> Event {
        Event {
            euid: None,
            state_unknown: None,
            kind,
            time_ns: 1_795_323_307_500_000_000,
            pid: 1190,
            tid: 1190,
            ppid: Some(1),
            uid: 0,
            gid: 0,
            comm: "nginx".into(),
            fd: Some(6),
            errno,
            source: crate::event::Source::Syscall,
            request,
            sock,
            sock_id: Some(1),
            followed: false,
            start: None,
            raw: Default::default(),
        }
    }

    fn tcp6(port: u16, v6only: bool) -> Sock {
        Sock {
            family: Some(10),
            sock_type: Some(1),
            protocol: Some(6),
            local: Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            port: Some(port),
            v6only: Some(v6only),
            reuseaddr: Some(true),
            reuseport: Some(false),
            backlog: Some(511),
            ..Default::default()
        }
    }

    #[test]
    fn bind_with_kernel_picked_port() {
        let req = Request::Bind(SockAddr::Inet6 {
            addr: Ipv6Addr::UNSPECIFIED,
            port: 0,
            flowinfo: 0,
            scope_id: 0,
        });
        let l = line(&ev(Kind::Bind, req, 0, Some(tcp6(41235, true))));
        assert!(
            l.starts_with("04:55:07.500000 1190    nginx           bind        tcp    [::]:0"),
            "{l}"
        );
        assert!(
            l.ends_with("ok  port 0 → kernel picked 41235 v6only=1 reuseaddr fd=6"),
            "{l}"
        );
    }

    #[test]
    fn failed_bind_names_the_errno() {
        let req = Request::Bind(SockAddr::Inet {
            addr: Ipv4Addr::UNSPECIFIED,
            port: 80,
        });
        let l = line(&ev(Kind::Bind, req, 98, None));
        assert!(l.contains(" 0.0.0.0:80 "), "{l}");
        assert!(l.contains("EADDRINUSE (Address already in use)"), "{l}");
    }

    #[test]
    fn listen_shows_the_clamped_backlog_and_setsockopt_its_value() {
        let l = line(&ev(
            Kind::Listen,
            Request::Listen {
                backlog: Some(4096),
            },
            0,
            Some(tcp6(80, false)),
        ));
        assert!(l.contains(" [::]:80 "), "{l}");
        assert!(
            l.contains("backlog 4096 (kernel applied 511) v6only=0 reuseaddr"),
            "{l}"
        );
        let set = Request::Setsockopt {
            level: 41,
            optname: 26,
            optlen: 4,
            value: OptValue::Int(1),
        };
        let l = line(&ev(Kind::Setsockopt, set, 0, Some(tcp6(0, true))));
        assert!(l.contains(" IPV6_V6ONLY=1 "), "{l}");
    }

    #[test]
    fn the_story_goes_under_its_event() {
        use crate::output::{Options, Render};
        let mut h = super::Human::new(Options::default());
        let note = crate::story::Note {
            summary: Some("nginx[1190] LISTEN tcp [::]:80  dual-stack".into()),
            ..Default::default()
        };
        let mut out = Vec::new();
        h.event_noted(
            &mut out,
            &ev(
                Kind::Listen,
                Request::Listen { backlog: Some(1) },
                0,
                Some(tcp6(80, false)),
            ),
            &note,
        );
        let why = crate::story::Note {
            explanation: Some("held by x".into()),
            ..Default::default()
        };
        h.event_noted(&mut out, &ev(Kind::Bind, Request::None, 98, None), &why);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}"); // header, event, summary, event, why
        assert_eq!(lines[2], "    ↳ nginx[1190] LISTEN tcp [::]:80  dual-stack");
        assert_eq!(lines[4], "    ↳ why: held by x");
    }
}
