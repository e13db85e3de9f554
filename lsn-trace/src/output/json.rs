//! `--json`: JSON Lines, one flat object per event, so `jq` one-liners work. The keys are
//! a stable interface, documented in docs/json-schema.md; a value the kernel side could not read
//! is `null`, never a guess.
use serde::Serialize;

use super::{Options, Render};
use crate::event::Event;
#[cfg(test)]
use crate::{
    errno,
    event::{Kind, OptValue, Request},
    names, netif,
    sockaddr::SockAddr,
};

#[derive(Default)]
pub struct Json {
    opts: Options,
}

impl Json {
    pub fn new(opts: Options) -> Json {
        Json { opts }
    }
}

/// The record as serde makes it: the reference `json_fast` is tested against.
#[cfg(test)]
#[derive(Serialize)]
struct Record<'a> {
    event: &'static str,
    time: String,
    /// `-t`: seconds since the trace started.
    #[serde(skip_serializing_if = "Option::is_none")]
    rel: Option<f64>,
    /// While following (`-- CMD`, `-p`): whether a followed process made the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    followed: Option<bool>,
    pid: u32,
    tid: u32,
    ppid: Option<u32>,
    comm: &'a str,
    uid: u32,
    euid: Option<u32>,
    gid: u32,
    netns: Option<u32>,
    fd: Option<i32>,
    source: &'static str,
    sock_id: Option<String>,
    inode: Option<u64>,
    state_unknown: Option<&'static str>,
    family: Option<String>,
    #[serde(rename = "type")]
    sock_type: Option<&'static str>,
    protocol: Option<&'static str>,
    addr: Option<String>,
    port: Option<u16>,
    scope_id: Option<u32>,
    /// As passed (an int: -1 prints as -1).
    addrlen: Option<i32>,
    bound_addr: Option<String>,
    bound_port: Option<u16>,
    errno: Option<i32>,
    error: Option<&'static str>,
    v6only: Option<bool>,
    reuseaddr: Option<bool>,
    reuseport: Option<bool>,
    freebind: Option<bool>,
    transparent: Option<bool>,
    bind_address_no_port: Option<bool>,
    bound_dev_if: Option<i32>,
    device: Option<String>,
    backlog: Option<i32>,
    backlog_effective: Option<u32>,
    level: Option<String>,
    option: Option<String>,
    value: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct Lost<'a> {
    event: &'static str,
    time: String,
    count: u64,
    reason: &'a str,
}

/// The plain record (no render options), as the audit log's records carry it; `local`:
/// the story's address of the socket (`Note::local`).
#[cfg(test)]
pub fn record<'a>(ev: &'a Event, local: Option<&SockAddr>) -> impl Serialize + 'a {
    record_with(ev, Options::default(), local)
}

/// `record`, with `-t`'s `rel` and `--all`'s `followed` when asked for.
#[cfg(test)]
pub fn record_with<'a>(
    ev: &'a Event,
    opts: Options,
    local: Option<&SockAddr>,
) -> impl Serialize + 'a {
    let sock = ev.sock.as_ref();
    let s = |f: fn(&crate::event::Sock) -> Option<bool>| sock.and_then(f);
    let bound_port = sock.and_then(|s| s.port);
    let bound_addr = sock.and_then(|s| s.local).map(|a| a.to_string());
    let (mut addr, mut port, mut scope_id, mut addrlen) = (None, None, None, None);
    let (mut level, mut option, mut value, mut backlog) = (None, None, None, None);
    match &ev.request {
        Request::Bind(a) => {
            addr = a.host();
            port = a.port();
            addrlen = Some(match a {
                SockAddr::Unreadable { len } | SockAddr::Other { len, .. } => *len as i32,
                _ => 0,
            })
            .filter(|&l| l != 0);
            if let SockAddr::Inet6 { scope_id: id, .. } = a {
                scope_id = Some(*id);
            }
        }
        Request::Listen { backlog: b } => backlog = *b,
        Request::Setsockopt {
            level: l,
            optname,
            value: v,
            ..
        } => {
            level = Some(names::level(*l).map_or_else(|| l.to_string(), str::to_owned));
            option = Some(
                names::option(*l, *optname).map_or_else(|| optname.to_string(), str::to_owned),
            );
            value = Some(match v {
                OptValue::Int(i) => serde_json::Value::from(*i),
                OptValue::Name(n) => serde_json::Value::from(n.as_str()),
                OptValue::Bytes(b) => serde_json::Value::from(b.clone()),
                OptValue::Addrs(a) => bindx_value(a),
                OptValue::Unreadable => serde_json::Value::Null,
            });
        }
        Request::None => {}
    }
    // listen and close have no request address: report what the socket listens on.
    if matches!(ev.kind, Kind::Listen | Kind::ListenState | Kind::Close) {
        scope_id = sock.and_then(|s| s.scope_id(local));
        addr = match (sock.and_then(|s| s.unix_addr.as_ref()), scope_id) {
            (Some(unix), _) => unix.host(),
            (None, Some(id)) if id != 0 => bound_addr
                .as_ref()
                .map(|a| format!("{a}%{}", netif::name_of(id))),
            (None, _) => bound_addr.clone(),
        };
        port = bound_port;
    }
    let dev = sock.and_then(|s| s.bound_dev_if);
    Record {
        event: ev.kind.name(),
        time: super::rfc3339(ev.time_ns),
        rel: opts.rel(ev).map(|r| (r * 1e6).round() / 1e6),
        followed: opts.mark_followed.then_some(ev.followed),
        pid: ev.pid,
        tid: ev.tid,
        ppid: ev.ppid,
        comm: &ev.comm,
        uid: ev.uid,
        euid: ev.euid,
        gid: ev.gid,
        netns: sock.and_then(|s| s.netns),
        fd: ev.fd,
        source: ev.source.name(),
        sock_id: ev.sock_id.map(|id| format!("{id:016x}")),
        inode: sock.and_then(|s| s.inode),
        state_unknown: ev.state_unknown.map(|w| w.name()),
        family: ev.family().map(names::family),
        sock_type: sock.and_then(|s| s.sock_type).and_then(names::sock_type),
        protocol: ev.protocol(),
        addr,
        port,
        scope_id,
        addrlen,
        bound_addr,
        bound_port,
        errno: ev.failed().then_some(ev.errno),
        error: if ev.failed() {
            errno::name(ev.errno)
        } else {
            None
        },
        v6only: s(|s| s.v6only),
        reuseaddr: s(|s| s.reuseaddr),
        reuseport: s(|s| s.reuseport),
        freebind: s(|s| s.freebind),
        transparent: s(|s| s.transparent),
        bind_address_no_port: s(|s| s.bind_no_port),
        bound_dev_if: dev,
        device: dev.filter(|&d| d > 0).map(|d| netif::name_of(d as u32)),
        backlog,
        backlog_effective: if ev.kind == Kind::Listen || ev.kind == Kind::ListenState {
            sock.and_then(|s| s.backlog)
        } else {
            None
        },
        level,
        option,
        value,
    }
}

/// An sctp_bindx() array's `value`: `{"addrs":[{"addr","family","port"}…],"count",
/// "malformed_at","omitted"}` (serde_json's maps sort their keys).
#[cfg(test)]
fn bindx_value(a: &crate::event::BindxAddrs) -> serde_json::Value {
    let addrs: Vec<serde_json::Value> = a
        .addrs
        .iter()
        .map(|x| {
            serde_json::json!({
                "addr": x.host(),
                "family": x.family().map(names::family),
                "port": x.port(),
            })
        })
        .collect();
    serde_json::json!({
        "addrs": addrs,
        "count": a.count,
        "malformed_at": a.malformed_at,
        "omitted": a.omitted(),
    })
}

/// `{"event":"lost","time":…,"count":N,"reason":…}`, timed now.
pub fn lost_record(count: u64, reason: &str) -> impl Serialize + '_ {
    Lost {
        event: "lost",
        time: super::rfc3339(super::now_ns()),
        count,
        reason,
    }
}

/// The record with the story's keys (`verdict`, `meaning`, `summary`, `explanation`, ...)
/// after the event's own: present on every record, null where they do not apply.
#[cfg(test)]
#[derive(Serialize)]
struct Noted<'a, R: Serialize> {
    #[serde(flatten)]
    record: R,
    #[serde(flatten)]
    note: &'a crate::story::Note,
}

impl Json {
    /// The reference for `json_fast`: the same record through serde.
    #[cfg(test)]
    pub fn serde_noted(&self, out: &mut Vec<u8>, ev: &Event, note: &crate::story::Note) {
        let rec = Noted {
            record: record_with(ev, self.opts, note.local.as_ref()),
            note,
        };
        // Serializing plain data into a Vec cannot fail.
        serde_json::to_writer(&mut *out, &rec).expect("serialize event");
        out.push(b'\n');
    }
}

impl Render for Json {
    fn event(&mut self, out: &mut Vec<u8>, ev: &Event) {
        self.event_noted(out, ev, &crate::story::Note::default());
    }

    fn event_noted(&mut self, out: &mut Vec<u8>, ev: &Event, note: &crate::story::Note) {
        super::json_fast::write_event(out, ev, self.opts, note);
    }

    fn lost(&mut self, out: &mut Vec<u8>, count: u64, reason: &str) {
        serde_json::to_writer(&mut *out, &lost_record(count, reason))
            .expect("serialize lost record");
        out.push(b'\n');
    }
}
