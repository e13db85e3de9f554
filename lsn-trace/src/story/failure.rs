//! Why a bind/listen/setsockopt failed, in one or two true sentences, with the facts looked
//! up in the failing process's own network namespace: for EADDRINUSE, who holds the port
//! (sock_diag, as `ss` does, and /proc/*/fd for the owner), why the two collide and what
//! SO_REUSEADDR/SO_REUSEPORT would have changed; for EADDRNOTAVAIL, the addresses that do
//! exist there; for EACCES, the privileged-port threshold and both ways out.
//!
//! The holder can exit at any moment, so the lookup runs as the event is handled, and it
//! is bounded (owner scan budget, per-port cache) so a retry storm cannot stall the agent.
//!
//! No I/O here: the caller gathers the facts (`Ctx`) and hands in the one lookup made on
//! demand (`Lookup`: holders::find in the story), so every sentence is tested on given facts.
use std::{
    collections::HashMap,
    fmt::Write as _,
    net::IpAddr,
    time::{Duration, Instant},
};

pub use super::holders::{Holder, Known, OWNER_BUDGET};
use super::{
    collide::{Side, side_of, why_collide},
    holders::{Found, NotFound},
    socket::Entry,
};
use crate::{
    errno,
    event::{Event, Kind, Request},
    names,
    sockaddr::{AF_INET, AF_INET6, AF_UNIX, SockAddr},
    sockdiag::{self, DiagSock, Netns},
};
use lsn_trace::nsaddrs;

/// Who holds `port` for a socket like `me` of protocol `proto`, asked only when the answer
/// is not cached and the lookup budget allows it (I/O: sock_diag and /proc, in the story).
pub(super) type Lookup<'a> = dyn FnMut(&'static str, &Side, u16) -> Result<Found, NotFound> + 'a;

/// What the story knows about the failing call's surroundings.
pub struct Ctx {
    /// Where to look (Err: why we cannot).
    pub netns: Result<Netns, String>,
    pub netns_inode: Option<u32>,
    pub bindv6only: Option<bool>,
    pub unprivileged_port_start: Option<u32>,
    /// The namespace's addresses (EADDRNOTAVAIL only).
    pub addrs: Option<nsaddrs::NsAddrs>,
    pub known: Vec<Known>,
    /// Where the socket's IPV6_V6ONLY came from, as the event's note says (`Note`).
    pub v6only_source: Option<&'static str>,
    /// EACCES only: whether the process has CAP_NET_BIND_SERVICE (None: it exited before
    /// that was read), and its executable (for the `setcap` line).
    pub cap_net_bind_service: Option<bool>,
    pub exe: Option<String>,
}

/// EADDRINUSE answers per (netns, protocol, address, port), reused briefly: a daemon
/// retrying its bind in a loop gets one lookup, not one per retry.
#[derive(Default)]
pub struct Cache {
    map: HashMap<CacheKey, (Instant, String, Vec<Holder>)>,
    /// Time spent on lookups in the current one-second window, and when it began.
    window: Option<Instant>,
    spent: Duration,
}

/// At most this much lookup time per second: a storm of failing binds (many ports, many
/// processes) must not make the agent fall behind the ring buffer.
const LOOKUP_BUDGET_PER_SEC: Duration = Duration::from_millis(200);

/// (netns, protocol, address/v6only and the socket's own facts, port, pid)
type CacheKey = (Option<u32>, &'static str, String, u16, u32);

const CACHE_TTL: Duration = Duration::from_millis(500);

pub(super) fn explain(
    ev: &Event,
    entry: Option<&Entry>,
    ctx: &Ctx,
    cache: &mut Cache,
    lookup: &mut Lookup,
) -> (String, Option<Vec<Holder>>) {
    let e = ev.errno;
    if let Some(why) = super::sctp::why_failed(
        ev,
        entry.and_then(|e| e.sctp_addrs.as_deref()),
        ctx.addrs.as_ref(),
    ) {
        return (why, None);
    }
    match e {
        libc::EADDRINUSE => {
            let (s, h) = addr_in_use(ev, entry, ctx, cache, lookup);
            (s, Some(h))
        }
        libc::EADDRNOTAVAIL => (addr_not_avail(ev, ctx), None),
        libc::EACCES => (access(ev, entry, ctx), None),
        libc::EINVAL => (invalid(ev, entry), None),
        _ => (other(ev, entry), None),
    }
}

fn fd_text(ev: &Event) -> String {
    ev.fd.map_or("the socket".into(), |f| format!("fd {f}"))
}

fn family_name(af: u16) -> &'static str {
    match af {
        AF_INET => "AF_INET",
        AF_INET6 => "AF_INET6",
        AF_UNIX => "AF_UNIX",
        _ => "another family",
    }
}

fn addr_in_use(
    ev: &Event,
    entry: Option<&Entry>,
    ctx: &Ctx,
    cache: &mut Cache,
    lookup: &mut Lookup,
) -> (String, Vec<Holder>) {
    let sock = ev.sock.as_ref();
    let proto = match ev.protocol() {
        Some("tcp") => "tcp",
        Some("udp") => "udp",
        Some(p) if p.starts_with("u_") => {
            let path = match &ev.request {
                Request::Bind(a) => a.to_string(),
                _ => "that address".into(),
            };
            return (
                format!(
                    "{path} already exists: a unix socket's bind creates its file (or abstract \
                     name) and fails if it is there. A stale file from a previous run is the \
                     usual cause: unlink it before bind (after checking nothing listens on it)"
                ),
                Vec::new(),
            );
        }
        _ => {
            return (
                "the address and port are already in use in this network namespace".into(),
                Vec::new(),
            );
        }
    };
    // The address the failing call wanted: bind's request, or (listen) what it is bound to.
    let (ip, port) = match (&ev.request, sock) {
        (Request::Bind(SockAddr::Inet { addr, port }), _) => (IpAddr::V4(*addr), *port),
        (Request::Bind(SockAddr::Inet6 { addr, port, .. }), _) => (IpAddr::V6(*addr), *port),
        (_, Some(s)) if s.local.is_some() && s.port.is_some() => {
            (s.local.unwrap(), s.port.unwrap())
        }
        _ => {
            return (
                "the address and port are already in use (the address could not be read)".into(),
                Vec::new(),
            );
        }
    };
    if port == 0 {
        return (
            "no free port was left to pick: every port of net.ipv4.ip_local_port_range is in \
             use for this address (widen the range, or free sockets)"
                .into(),
            Vec::new(),
        );
    }
    let family =
        sock.and_then(|s| s.family)
            .unwrap_or(if ip.is_ipv4() { AF_INET } else { AF_INET6 });
    let v6only = sock.and_then(|s| s.v6only).unwrap_or(false);
    let me = Side {
        family,
        ip,
        v6only,
        dev: sock
            .and_then(|s| s.bound_dev_if)
            .map_or(0, |d| d.max(0) as u32),
    };
    // Everything of this socket the sentence says, beside what the lookup finds: a
    // retry of another socket of the process (V6ONLY set another way, other SO_REUSE*)
    // must not be told the first one's story.
    let key = (
        ctx.netns_inode,
        proto,
        format!(
            "{ip}/{}/{}/{:?}/{}/{:?}/{:?}/{:?}/{}/{}",
            v6only as u8,
            me.dev,
            ctx.v6only_source,
            entry.is_some_and(Entry::v6only_set),
            ctx.bindv6only,
            sock.and_then(|s| s.reuseaddr),
            sock.and_then(|s| s.reuseport),
            ev.kind.name(),
            ev.uid,
        ),
        port,
        ev.pid,
    );
    if let Some((at, s, h)) = cache.map.get(&key)
        && at.elapsed() < CACHE_TTL
    {
        return (s.clone(), h.clone());
    }
    let now = Instant::now();
    if cache
        .window
        .is_none_or(|w| now.duration_since(w) >= Duration::from_secs(1))
    {
        cache.window = Some(now);
        cache.spent = Duration::ZERO;
    }
    if cache.spent >= LOOKUP_BUDGET_PER_SEC {
        return (
            format!(
                "{}/{proto} is in use; who holds it was not looked up: more failed binds this \
                 second than the lookup budget ({} ms/s) allows",
                me.text(port),
                LOOKUP_BUDGET_PER_SEC.as_millis()
            ),
            Vec::new(),
        );
    }
    let res = lookup_in_use(ev, entry, ctx, proto, &me, port, lookup);
    cache.spent += now.elapsed();
    log::debug!("EADDRINUSE holder lookup: {:?}", now.elapsed());
    if cache.map.len() > 1024 {
        cache.map.clear();
    }
    cache
        .map
        .insert(key, (Instant::now(), res.0.clone(), res.1.clone()));
    res
}

fn lookup_in_use(
    ev: &Event,
    entry: Option<&Entry>,
    ctx: &Ctx,
    proto: &'static str,
    me: &Side,
    port: u16,
    lookup: &mut Lookup,
) -> (String, Vec<Holder>) {
    let sock = ev.sock.as_ref();
    let found = match lookup(proto, me, port) {
        Ok(f) => f,
        Err(NotFound::Namespace(why)) => {
            return (
                format!(
                    "{} is in use, but who holds it could not be looked up: {why}",
                    me.text(port)
                ),
                Vec::new(),
            );
        }
        Err(NotFound::Dump(e)) => {
            return (
                format!(
                    "{} is in use, but the sockets of its network namespace could not be \
                     listed: {e}",
                    me.text(port)
                ),
                Vec::new(),
            );
        }
    };
    let Found {
        colliding,
        owners,
        holders,
    } = found;
    let mine = me.text(port);
    if colliding.is_empty() {
        return (
            format!(
                "{mine}/{proto}: nothing holds a colliding socket any more in this network \
                 namespace (looked up as the event arrived): the holder has exited or closed it \
                 since"
            ),
            Vec::new(),
        );
    }
    let first = &colliding[0];
    let h = &holders[0];
    let who = match (&h.comm, h.pid) {
        (Some(c), Some(p)) => format!("{c}[{p}]"),
        _ if first.state == sockdiag::TCP_TIME_WAIT => "no process".into(),
        _ if owners.complete => format!("a socket no process has open (inode {})", first.inode),
        _ => format!(
            "a socket of uid {} (inode {}; its process was not found within the {} ms scan \
             budget)",
            first.uid,
            first.inode,
            OWNER_BUDGET.as_millis()
        ),
    };
    let state = first.state_name();
    let mut s = if first.state == sockdiag::TCP_TIME_WAIT {
        format!(
            "{mine}/{proto} is held by a TIME-WAIT leftover of a closed connection ({} -> {}): \
             the kernel keeps it up to 60 s after close, and no process owns it",
            first.local, first.remote
        )
    } else {
        format!(
            "{mine}/{proto} is held by {who} ({state} {} uid {})",
            first.local, first.uid
        )
    };
    if colliding.len() > 1 {
        let _ = write!(s, " and {} other socket(s)", colliding.len() - 1);
    }
    let src = match entry {
        // Where V6ONLY=0 came from: the note's own source, in the meaning's words.
        Some(e) if me.family == AF_INET6 && me.ip.is_unspecified() && !me.v6only => {
            match ctx.v6only_source {
                Some(src) => format!(
                    ", {}",
                    super::sentences::v6only_why(src, e.v6only_set(), ctx.bindv6only)
                ),
                None => String::new(),
            }
        }
        _ => String::new(),
    };
    let _ = write!(s, ". Why: {}", why_collide(me, &side_of(first), port, &src));
    let _ = write!(s, ". {}", reuse_advice(ev, ctx, proto, first, &owners));
    if let Some(sock) = sock
        && ev.kind == Kind::Listen
        && sock.reuseaddr == Some(true)
    {
        s.push_str(
            ". (bind() succeeded because both sockets had SO_REUSEADDR and neither was \
             listening yet; listen() is where TCP refuses the second listener)",
        );
    }
    (s, holders)
}

/// Whether SO_REUSEADDR / SO_REUSEPORT would have changed the outcome, Linux semantics.
fn reuse_advice(
    ev: &Event,
    ctx: &Ctx,
    proto: &str,
    holder: &DiagSock,
    owners: &sockdiag::Owners,
) -> String {
    let sock = ev.sock.as_ref();
    let my_addr = sock.and_then(|s| s.reuseaddr);
    let my_port = sock.and_then(|s| s.reuseport);
    let owner_pid = owners
        .found
        .get(&holder.inode)
        .and_then(|o| o.first())
        .map(|o| o.pid);
    let known = ctx.known.iter().find(|k| Some(k.pid) == owner_pid);
    let their_port = known.and_then(|k| k.reuseport);
    let same_uid = holder.uid == ev.uid;
    let port_part = |what: &str| -> String {
        if holder.state == sockdiag::TCP_TIME_WAIT {
            return "SO_REUSEPORT on this socket would also get past a TIME-WAIT leftover".into();
        }
        if !same_uid {
            return format!(
                "SO_REUSEPORT would not help: it groups sockets of the same uid only (the \
                 holder is uid {}, this process uid {})",
                holder.uid, ev.uid
            );
        }
        let theirs = match their_port {
            Some(true) => "the holder has it",
            Some(false) => "the holder did not set it",
            None => "whether the holder set it is unknown",
        };
        format!(
            "SO_REUSEPORT would {what} only if set before bind on both sockets ({theirs}; \
             this one: {}), same uid — and then the kernel spreads {} between them, which \
             suits copies of one server, not two different ones",
            onoff(my_port),
            if proto == "udp" {
                "datagrams"
            } else {
                "connections"
            }
        )
    };
    if proto == "udp" {
        return format!(
            "SO_REUSEADDR on both sockets lets UDP share the port (unicast then reaches only \
             one of them; this one: {}). {}",
            onoff(my_addr),
            port_part("allow it")
        );
    }
    match holder.state {
        sockdiag::TCP_LISTEN => format!(
            "SO_REUSEADDR would not help: Linux never lets two TCP sockets listen on the same \
             address and port with it (it only gets past TIME-WAIT and non-listening \
             sockets). {}",
            port_part("allow a second listener")
        ),
        sockdiag::TCP_TIME_WAIT => {
            if my_addr == Some(true) {
                format!(
                    "this socket has SO_REUSEADDR, so the TIME-WAIT entry came from a socket \
                     without it (both need it); {}",
                    port_part("")
                )
            } else {
                "SO_REUSEADDR set before bind would have let this bind succeed over the \
                 TIME-WAIT leftover (servers set it for exactly this restart case)"
                    .into()
            }
        }
        _ => format!(
            "the holder is not listening ({}): SO_REUSEADDR on both sockets would have let \
             the bind succeed (this one: {})",
            holder.state_name(),
            onoff(my_addr)
        ),
    }
}

fn onoff(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "set",
        Some(false) => "not set",
        None => "unknown",
    }
}

fn addr_not_avail(ev: &Event, ctx: &Ctx) -> String {
    let Request::Bind(a) = &ev.request else {
        return "the address is not available".into();
    };
    let ip = match a {
        SockAddr::Inet { addr, .. } => IpAddr::V4(*addr),
        SockAddr::Inet6 { addr, .. } => IpAddr::V6(*addr),
        _ => return format!("{a} is not available here"),
    };
    let Some(addrs) = &ctx.addrs else {
        return format!(
            "{ip} is not assigned to any interface of the process's network namespace (that \
             namespace could not be read to list the ones that are)"
        );
    };
    let list = addrs.list();
    let listed = if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    };
    if let lsn_trace::verdict::Ownership::Iface(name) = addrs.owner(ip) {
        return format!(
            "{ip} is on {name} now, but was not usable at bind time: a just-added IPv6 address \
             stays tentative until duplicate address detection ends (about a second). Retry, \
             or set IP_FREEBIND to bind before it is ready"
        );
    }
    format!(
        "{ip} is not assigned to any interface in this process's network namespace (there: \
         {listed}). Bind to one of those or to the wildcard (0.0.0.0 / [::]), or set \
         IP_FREEBIND (or net.ipv4.ip_nonlocal_bind / net.ipv6.ip_nonlocal_bind=1) to bind \
         before the address exists"
    )
}

fn access(ev: &Event, entry: Option<&Entry>, ctx: &Ctx) -> String {
    match &ev.request {
        Request::Bind(SockAddr::UnixPath(p)) => {
            let path = crate::text::from_bytes(p);
            let dir = std::path::Path::new(&path)
                .parent()
                .map_or(".".into(), |d| d.display().to_string());
            format!(
                "{}[{}] (uid {}) may not create {path}: a unix socket's bind creates the file, \
                 which needs write and search permission on {dir}",
                ev.comm, ev.pid, ev.uid
            )
        }
        Request::Bind(a) if a.port().is_some() => {
            let port = a.port().unwrap();
            let start = ctx.unprivileged_port_start;
            let cap = ctx.cap_net_bind_service;
            let below = start.is_some_and(|s| u32::from(port) < s);
            if below && cap != Some(true) {
                let s = start.unwrap();
                let exe = ctx.exe.as_deref().unwrap_or("/path/to/program");
                let capword = if cap.is_none() {
                    "(it exited before its capabilities could be read; without"
                } else {
                    "without"
                };
                return format!(
                    "port {port} is privileged in this network namespace \
                     (net.ipv4.ip_unprivileged_port_start={s}) and {}[{}] (uid {}) runs {capword} \
                     CAP_NET_BIND_SERVICE{}. Either grant the capability (`setcap \
                     cap_net_bind_service=+ep {exe}`, or AmbientCapabilities=CAP_NET_BIND_SERVICE \
                     in its systemd unit), or lower the threshold (`sysctl \
                     net.ipv4.ip_unprivileged_port_start={port}`, per network namespace), or use a \
                     port >= {s}",
                    ev.comm,
                    ev.pid,
                    ev.uid,
                    if cap.is_none() { ")" } else { "" }
                );
            }
            let why = if below {
                "it has CAP_NET_BIND_SERVICE".to_string()
            } else {
                match start {
                    Some(s) => format!("port {port} is unprivileged here (>= {s})"),
                    None => "the privileged-port threshold could not be read".into(),
                }
            };
            format!(
                "the port is not the reason ({why}): a security module (SELinux, AppArmor) or \
                 a cgroup BPF bind hook refused this bind"
            )
        }
        _ => other(ev, entry),
    }
}

fn invalid(ev: &Event, entry: Option<&Entry>) -> String {
    let fd = fd_text(ev);
    match &ev.request {
        Request::Bind(a) => {
            // What it is bound to: the story's record (kernel view), else the kernel's
            // port in the event.
            let bound = entry
                .and_then(|e| e.bound.as_ref())
                .map(|a| a.to_string())
                .or_else(|| {
                    ev.sock
                        .as_ref()
                        .and_then(|s| s.port)
                        .filter(|&p| p != 0)
                        .map(|p| format!("port {p}"))
                });
            if let Some(to) = bound {
                return format!(
                    "{fd} is already bound (to {to}): a socket binds once. Create a new socket \
                     for another address"
                );
            }
            let fam = ev.sock.as_ref().and_then(|s| s.family);
            match a {
                SockAddr::Other { family, len } => {
                    let need = match *family {
                        AF_INET => 16,
                        AF_INET6 => 24,
                        _ => 0,
                    };
                    if need > 0 && *len < need {
                        return format!(
                            "address length {len} is too short for {} (needs {need}): pass \
                             sizeof the sockaddr structure",
                            family_name(*family)
                        );
                    }
                    format!("the kernel rejected this address (family {family}, {len} bytes)")
                }
                SockAddr::Inet6 {
                    addr, scope_id: 0, ..
                } if addr.is_unicast_link_local() => {
                    format!(
                        "{addr} is link-local, valid on one link only: the bind needs an \
                         interface (sin6_scope_id, written {addr}%eth0) or SO_BINDTODEVICE"
                    )
                }
                SockAddr::Inet6 { addr, .. }
                    if addr.to_ipv4_mapped().is_some()
                        && ev.sock.as_ref().and_then(|s| s.v6only) == Some(true) =>
                {
                    format!(
                        "{addr} is an IPv4-mapped address, and this socket is IPv6-only \
                         (IPV6_V6ONLY=1): bind it to an IPv6 address, or clear IPV6_V6ONLY"
                    )
                }
                SockAddr::Inet { .. } if fam == Some(AF_INET6) => {
                    "an AF_INET address was passed to an AF_INET6 socket: use the \
                     IPv4-mapped form ::ffff:a.b.c.d, or an AF_INET socket"
                        .into()
                }
                _ => format!(
                    "the kernel rejected bind on {fd} as invalid (socket already bound, \
                     shut down, or a malformed address)"
                ),
            }
        }
        Request::Listen { .. } => format!(
            "{fd} cannot listen: it is connected (or connecting), or its type does not accept \
             connections"
        ),
        Request::Setsockopt {
            level,
            optname,
            optlen,
            ..
        } => format!(
            "{} rejected: bad value or length ({optlen} bytes), or the socket's state forbids \
             it now (IPV6_V6ONLY cannot change once the socket is bound)",
            names::option(*level, *optname).unwrap_or("the option")
        ),
        Request::None => "invalid argument".into(),
    }
}

fn other(ev: &Event, entry: Option<&Entry>) -> String {
    let fd = fd_text(ev);
    let what = ev.kind.name();
    match ev.errno {
        libc::EAFNOSUPPORT => {
            let want = match &ev.request {
                Request::Bind(a) => a.family(),
                _ => None,
            };
            let have = ev
                .sock
                .as_ref()
                .and_then(|s| s.family)
                .or_else(|| entry.and_then(|e| e.family));
            match (want, have) {
                (Some(w), Some(h)) => format!(
                    "an {} address was passed to an {} socket: the address family must match \
                     the socket's",
                    family_name(w),
                    family_name(h)
                ),
                _ => "the address family does not match the socket's".into(),
            }
        }
        libc::EFAULT => format!(
            "the {what} argument points outside the process's memory: a bug in the program \
             (bad pointer or length)"
        ),
        libc::EBADF => format!("{fd} is not an open file descriptor"),
        libc::ENOTSOCK => format!("{fd} is a file descriptor, but not a socket"),
        libc::EOPNOTSUPP if ev.kind == Kind::Listen => format!(
            "{fd} is a datagram socket (UDP or unix dgram): those take no listen(), they \
             receive as soon as they are bound"
        ),
        libc::ENOPROTOOPT => no_such_option(ev, entry),
        libc::EPERM | libc::EACCES if ev.kind == Kind::Setsockopt => format!(
            "{}[{}] lacks the capability for this option (IP_TRANSPARENT needs \
             CAP_NET_ADMIN or CAP_NET_RAW; SO_BINDTODEVICE may need CAP_NET_RAW)",
            ev.comm, ev.pid
        ),
        libc::ENODEV => "no such network interface in this network namespace".into(),
        libc::ENOENT => {
            "a directory in the socket path does not exist: create it before bind".into()
        }
        libc::EROFS => "the socket file would be on a read-only filesystem".into(),
        libc::ENAMETOOLONG => "the socket path is longer than sun_path (108 bytes)".into(),
        libc::EISCONN => format!("{fd} is already connected"),
        libc::EDESTADDRREQ => format!("{fd} has no address: bind it first"),
        e => match (errno::name(e), errno::message(e)) {
            (Some(n), Some(m)) => format!("{what} failed with {n}: {m}"),
            _ => format!("{what} failed with errno {e}"),
        },
    }
}

/// ENOPROTOOPT: most often an IPv6 option tried on an IPv4 socket by dual-stack code
/// (Python's http.server sets IPV6_V6ONLY=0 on whatever socket it got, and ignores the error).
fn no_such_option(ev: &Event, entry: Option<&Entry>) -> String {
    use lsn_trace_common::sockopt::SOL_IPV6;
    let family = ev
        .sock
        .as_ref()
        .and_then(|s| s.family)
        .or_else(|| entry.and_then(|e| e.family));
    if let Request::Setsockopt { level, optname, .. } = &ev.request
        && *level == SOL_IPV6
        && family == Some(AF_INET)
    {
        let name = names::option(*level, *optname).unwrap_or("this IPv6 option");
        return format!(
            "{name} is an IPv6 option and {} is an IPv4 (AF_INET) socket: the kernel refuses \
             it, and the socket stays IPv4-only. Harmless if the program ignores the error \
             (dual-stack code often tries it on every socket); to take IPv6 clients too, it \
             needs an AF_INET6 socket",
            fd_text(ev)
        );
    }
    "the option is not known at that level for this socket".into()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::event::{IPPROTO_TCP, SOCK_STREAM, Sock, Source};

    /// A failed bind of 0.0.0.0:`port` over TCP by `web[4242]` (uid 1000).
    fn failed_bind(port: u16, errno: i32) -> Event {
        Event {
            euid: None,
            state_unknown: None,
            kind: Kind::Bind,
            time_ns: 0,
            pid: 4242,
            tid: 4242,
            ppid: None,
            uid: 1000,
            gid: 1000,
            comm: "web".into(),
            fd: Some(3),
            errno,
            source: Source::Syscall,
            request: Request::Bind(SockAddr::Inet {
                addr: Ipv4Addr::UNSPECIFIED,
                port,
            }),
            sock: Some(Sock {
                family: Some(AF_INET),
                sock_type: Some(SOCK_STREAM),
                protocol: Some(IPPROTO_TCP),
                reuseaddr: Some(false),
                reuseport: Some(false),
                ..Default::default()
            }),
            sock_id: Some(1),
            followed: false,
            start: None,
            raw: Default::default(),
        }
    }

    fn ctx() -> Ctx {
        Ctx {
            netns: Err("not looked up in a unit test".into()),
            netns_inode: Some(4026531840),
            bindv6only: Some(false),
            unprivileged_port_start: Some(1024),
            addrs: None,
            known: Vec::new(),
            v6only_source: None,
            cap_net_bind_service: None,
            exe: None,
        }
    }

    fn no_lookup(_: &'static str, _: &Side, _: u16) -> Result<Found, NotFound> {
        panic!("no holder lookup expected")
    }

    /// EACCES on a privileged port is told from the facts handed in: the capability the
    /// process lacks and its executable, for the `setcap` line.
    #[test]
    fn privileged_port_from_the_given_facts() {
        let ev = failed_bind(80, libc::EACCES);
        let mut c = ctx();
        c.cap_net_bind_service = Some(false);
        c.exe = Some("/usr/sbin/webd".into());
        let (why, holders) = explain(&ev, None, &c, &mut Cache::default(), &mut no_lookup);
        assert!(holders.is_none());
        assert!(
            why.starts_with(
                "port 80 is privileged in this network namespace \
                 (net.ipv4.ip_unprivileged_port_start=1024) and web[4242] (uid 1000) runs \
                 without CAP_NET_BIND_SERVICE."
            ),
            "{why}"
        );
        assert!(
            why.contains("`setcap cap_net_bind_service=+ep /usr/sbin/webd`"),
            "{why}"
        );
        // With the capability the port is not the reason.
        c.cap_net_bind_service = Some(true);
        let (why, _) = explain(&ev, None, &c, &mut Cache::default(), &mut no_lookup);
        assert!(why.starts_with("the port is not the reason (it has CAP_NET_BIND_SERVICE)"));
    }

    /// EADDRINUSE asks the lookup once per (socket facts, port) while the answer is fresh:
    /// a retry loop is one lookup.
    #[test]
    fn in_use_asks_the_lookup_once_per_retry_loop() {
        let ev = failed_bind(8080, libc::EADDRINUSE);
        let c = ctx();
        let mut cache = Cache::default();
        let mut asked = Vec::new();
        let mut lookup = |proto: &'static str, me: &Side, port: u16| {
            asked.push((proto, me.text(port)));
            Err(NotFound::Namespace("its namespace is gone".into()))
        };
        for _ in 0..3 {
            let (why, holders) = explain(&ev, None, &c, &mut cache, &mut lookup);
            assert_eq!(
                why,
                "0.0.0.0:8080 is in use, but who holds it could not be looked up: its \
                 namespace is gone"
            );
            assert_eq!(holders, Some(Vec::new()));
        }
        assert_eq!(asked, [("tcp", "0.0.0.0:8080".to_string())]);
    }
}
