//! The default output: one line per event, aligned columns, addresses as `ss` prints them,
//! errno names with their message.
use std::fmt::Write as _;

use super::{Options, Render};
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
        out.extend_from_slice(crate::text::terminal(&line_with(ev, &self.opts)).as_bytes());
        out.push(b'\n');
    }

    fn event_noted(&mut self, out: &mut Vec<u8>, ev: &Event, note: &crate::story::Note) {
        self.event(out, ev);
        // What it means, under the event: the listener summary, or why the call failed.
        let indent = if self.opts.mark_followed {
            "      "
        } else {
            "    "
        };
        let text = crate::text::terminal;
        if let Some(s) = &note.summary {
            let _ = writeln!(Bytes(out), "{indent}↳ {}", text(s));
        }
        if let Some(why) = &note.explanation {
            let _ = writeln!(Bytes(out), "{indent}↳ why: {}", text(why));
        }
    }

    fn lost(&mut self, out: &mut Vec<u8>, count: u64, reason: &str) {
        let _ = writeln!(
            Bytes(out),
            "!!! {count} events lost ({reason}): the trace above is incomplete"
        );
    }
}

struct Bytes<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
pub fn line(ev: &Event) -> String {
    line_with(ev, &Options::default())
}

pub fn line_with(ev: &Event, opts: &Options) -> String {
    let time = match opts.rel(ev) {
        Some(secs) => format!("{secs:<15.6}"),
        None => super::clock(ev.time_ns),
    };
    let sock = ev.sock.as_ref();
    let proto = ev.protocol().map_or_else(
        || ev.family().map_or("?".into(), names::family),
        str::to_owned,
    );
    let what = match &ev.request {
        Request::Bind(a) => a.to_string(),
        Request::Setsockopt {
            level,
            optname,
            value,
            ..
        } => {
            let name = names::option(*level, *optname).unwrap_or("?");
            match value {
                OptValue::Int(v) => format!("{name}={v}"),
                OptValue::Name(n) if n.is_empty() => format!("{name}=\"\" (unbind)"),
                OptValue::Name(n) => format!("{name}={n}"),
                OptValue::Bytes(b) => format!("{name}={b:02x?}"),
                OptValue::Unreadable => format!("{name}=(unreadable)"),
            }
        }
        Request::Listen { .. } | Request::None => bound(sock).unwrap_or_else(|| "?".into()),
    };
    let result = if ev.failed() {
        match (errno::name(ev.errno), errno::message(ev.errno)) {
            (Some(n), Some(m)) => format!("{n} ({m})"),
            _ => format!("errno {}", ev.errno),
        }
    } else {
        "ok".into()
    };
    let mut s = format!(
        "{} {:<7} {:<15} {:<11} {:<6} {:<29} {}",
        time,
        ev.pid,
        ev.comm,
        match ev.kind {
            Kind::ListenState => "listen*",
            k => k.name(),
        },
        proto,
        what,
        result
    );
    let mut notes: Vec<String> = Vec::new();
    match (&ev.request, sock) {
        (Request::Bind(a), Some(s)) if !ev.failed() => {
            if a.port() == Some(0) && s.port.is_some_and(|p| p != 0) {
                notes.push(format!("port 0 → kernel picked {}", s.port.unwrap()));
            }
            if matches!(a, SockAddr::Inet6 { .. }) {
                push_v6only(&mut notes, s);
            }
            push_options(&mut notes, s);
        }
        (Request::Listen { backlog }, Some(s)) if !ev.failed() => {
            match (backlog, s.backlog) {
                (Some(b), Some(eff)) if eff as i64 != *b as i64 => {
                    notes.push(format!("backlog {b} (kernel applied {eff})"))
                }
                (Some(b), _) => notes.push(format!("backlog {b}")),
                // asked for at least somaxconn (io_uring, kernel): only the result is known
                (None, Some(eff)) => notes.push(format!("backlog {eff} (at somaxconn)")),
                (None, None) => {}
            }
            if s.family == Some(crate::sockaddr::AF_INET6) {
                push_v6only(&mut notes, s);
            }
            push_options(&mut notes, s);
        }
        (Request::None, Some(s)) if ev.kind == Kind::ListenState => {
            notes.push("entered LISTEN without listen(2) (io_uring or in-kernel)".into());
            if let Some(b) = s.backlog {
                notes.push(format!("backlog {b}"));
            }
        }
        _ => {}
    }
    if let Some(fd) = ev.fd {
        notes.push(format!("fd={fd}"));
    }
    if !notes.is_empty() {
        let _ = write!(s, "  {}", notes.join(" "));
    }
    s
}

fn bound(sock: Option<&Sock>) -> Option<String> {
    let s = sock?;
    if let Some(unix) = &s.unix_addr {
        return Some(unix.to_string());
    }
    let ip = s.local?;
    Some(match ip {
        std::net::IpAddr::V4(a) => format!("{a}:{}", s.port?),
        std::net::IpAddr::V6(a) => format!("[{a}]:{}", s.port?),
    })
}

fn push_v6only(notes: &mut Vec<String>, s: &Sock) {
    match s.v6only {
        Some(v) => notes.push(format!("v6only={}", v as u8)),
        None => notes.push("v6only=?".into()),
    }
}

fn push_options(notes: &mut Vec<String>, s: &Sock) {
    for (set, name) in [
        (s.reuseaddr, "reuseaddr"),
        (s.reuseport, "reuseport"),
        (s.freebind, "freebind"),
        (s.transparent, "transparent"),
        (s.bind_no_port, "bind_address_no_port"),
    ] {
        if set == Some(true) {
            notes.push(name.into());
        }
    }
    if let Some(dev) = s.bound_dev_if.filter(|&d| d > 0) {
        notes.push(format!("dev={}", netif::name_of(dev as u32)));
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
