//! The default output: one line per event, aligned columns, addresses as `ss` prints them,
//! errno names with their message.
use std::fmt::Write as _;

use super::Render;
use crate::{
    errno,
    event::{Event, Kind, OptValue, Request, Sock},
    names, netif,
    sockaddr::SockAddr,
};

#[derive(Default)]
pub struct Human {
    header_done: bool,
}

const HEADER: &str = "TIME            PID     COMM            EVENT       PROTO  ADDRESS                       RESULT\n";

impl Render for Human {
    fn event(&mut self, out: &mut Vec<u8>, ev: &Event) {
        if !self.header_done {
            out.extend_from_slice(HEADER.as_bytes());
            self.header_done = true;
        }
        out.extend_from_slice(line(ev).as_bytes());
        out.push(b'\n');
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

pub fn line(ev: &Event) -> String {
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
        super::clock(ev.time_ns),
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
            match s.backlog {
                Some(eff) if eff as i64 != *backlog as i64 => {
                    notes.push(format!("backlog {backlog} (kernel applied {eff})"))
                }
                _ => notes.push(format!("backlog {backlog}")),
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
