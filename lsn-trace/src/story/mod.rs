//! Each socket's story: the stage between the tracer and the renderers. Events go in, in
//! order; out comes a `Note` per event: what the bound/listening address means (the
//! verdict), where IPV6_V6ONLY came from, a one-line summary when a socket starts
//! listening, why a call failed, and whether the event opens, fails to open or closes a
//! listener (`ListenerChange`, the rule every sink uses). One story per pipeline
//! (`pipeline.rs`); nothing flows back to the tracer.
//!
//! Sockets are keyed by the kernel's socket identity (`sock_id`), so dup()ed fds, a fork's
//! inherited sockets and two sockets on the same port each keep one story; events without
//! it fall back to (pid, fd). A slab address can be reused by a new socket, so an entry
//! whose socket looks fresh again (unbound, other type, second successful bind) restarts.
//! The table is bounded: a listener's `close` event drops it, and past `CAP` entries the
//! ones of exited processes and then the least recently used go.
mod collide;
pub mod failure;
pub mod holders;
mod namespaces;
mod sctp;
mod sentences;
mod socket;

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use serde::Serialize;

use self::{
    namespaces::Namespaces,
    socket::{Described, Entry, Key, bound_addr},
};
use crate::{
    event::{Event, Kind, Request, SOCK_DGRAM},
    failure::Holder,
    netif,
    sockaddr::{AF_INET, AF_INET6, AF_UNIX, SockAddr},
};
use lsn_trace::{
    procfs,
    verdict::{self, Addr, Bound},
};

/// capability(7)'s number.
const CAP_NET_BIND_SERVICE: u32 = 10;

/// What the story adds to one event (JSON: these keys on every record, null when they do
/// not apply; human: extra indented lines).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Note {
    /// Whether this event opens, fails to open or closes a listener (not a record key:
    /// sinks act on it).
    #[serde(skip)]
    pub listener: Option<ListenerChange>,
    /// Machine-readable classification of the bound/listening address.
    pub verdict: Option<&'static str>,
    pub verdict_flags: Option<Arc<[&'static str]>>,
    /// The verdict in words (made once per socket while its facts stay the same: shared).
    pub meaning: Option<Arc<str>>,
    /// Where the socket's IPV6_V6ONLY came from: "explicit" (setsockopt) or "sysctl"
    /// (inherited from net.ipv6.bindv6only). AF_INET6 only.
    pub v6only_source: Option<&'static str>,
    /// Set on the event that makes a socket a listener (TCP listen, UDP/unix-dgram bind).
    pub summary: Option<String>,
    /// Why the call failed, in words.
    pub explanation: Option<String>,
    /// EADDRINUSE: the sockets holding the port.
    pub holders: Option<Vec<Holder>>,
    /// An SCTP socket's bound addresses after the event (bind(2), sctp_bindx()), where
    /// the story knows them exactly; the key is left out otherwise.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_addrs"
    )]
    pub bound_addrs: Option<Vec<SockAddr>>,
    /// The facts the verdict was drawn from, for the `-- CMD` summary (not a record key).
    #[serde(skip)]
    pub bound: Option<Arc<Bound>>,
    /// The address the socket is bound to, as the story knows it (the kernel's view: port
    /// 0 resolved), on every event of a socket it follows (not a record key).
    #[serde(skip)]
    pub local: Option<SockAddr>,
    /// The interface names of the event's network namespace, where the event names an
    /// interface by index (a scope id, a bound device) and that namespace is not the
    /// agent's: what the renderers name them by (`netif::rendering_with`). Empty when the
    /// namespace could not be entered: the indexes stay numbers. Not a record key.
    #[serde(skip)]
    pub ifnames: Option<Arc<netif::IfNames>>,
}

/// `bound_addrs` as JSON: `[{"addr","family","port"}…]` (the keys of a bindx `value`'s
/// `addrs`).
fn serialize_addrs<S: serde::Serializer>(
    addrs: &Option<Vec<SockAddr>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    #[derive(Serialize)]
    struct One {
        addr: Option<String>,
        family: Option<String>,
        port: Option<u16>,
    }
    let addrs = addrs.as_deref().unwrap_or_default();
    let mut seq = s.serialize_seq(Some(addrs.len()))?;
    for a in addrs {
        seq.serialize_element(&One {
            addr: a.host(),
            family: a.family().map(crate::names::family),
            port: a.port(),
        })?;
    }
    seq.end()
}

/// What an event does to the set of listeners: the one rule every sink uses (the audit
/// log's records, the `-- CMD` summary's lines, the live listener summary).
///
/// * `Open`: the socket starts receiving from anyone who knows its address — its first
///   successful listen(2) (any family: TCP, SCTP, unix stream/seqpacket), a TCP socket put
///   into LISTEN in the kernel (io_uring), or a successful bind(2) of an IP or unix datagram
///   socket (it receives with no listen(2) ever coming);
/// * `Failed`: a failed bind(2) or listen(2);
/// * `Close`: a listener left LISTEN (the only close the kernel side sees).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerChange {
    Open,
    Failed,
    Close,
}

impl ListenerChange {
    /// `was_listening`: the story had already seen this socket start listening.
    pub fn of(ev: &Event, sock_type: Option<u16>, was_listening: bool) -> Option<ListenerChange> {
        Some(match ev.kind {
            Kind::Close => ListenerChange::Close,
            Kind::Bind | Kind::Listen if ev.failed() => ListenerChange::Failed,
            Kind::Listen | Kind::ListenState if !was_listening => ListenerChange::Open,
            Kind::Bind
                if sock_type == Some(SOCK_DGRAM)
                    && matches!(ev.family(), Some(AF_INET | AF_INET6 | AF_UNIX)) =>
            {
                ListenerChange::Open
            }
            _ => return None,
        })
    }
}

/// The table's hasher: one multiply per word instead of SipHash's rounds (the table is
/// looked up on every event), seeded per run so that keys made of pids and descriptors do
/// not collide the same way twice. Socket ids are already keyed scrambles of the pointer.
#[derive(Clone, Copy)]
struct KeyHash(u64);

impl KeyHash {
    fn new() -> KeyHash {
        use std::hash::BuildHasher as _;
        KeyHash(std::collections::hash_map::RandomState::new().hash_one(0u64) | 1)
    }
}

impl std::hash::BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0)
    }
}

struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n.into());
    }
    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u32 as u64);
    }
    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        // The high bits pick hashbrown's control byte: fold them down too.
        self.0 ^ (self.0 >> 29)
    }
}

/// Sockets remembered at most.
pub const CAP: usize = 4096;

pub struct Story {
    table: HashMap<Key, Entry, KeyHash>,
    clock: u64,
    ns: Namespaces,
    failures: failure::Cache,
    flag_sets: FlagSets,
    /// The history lists of the last listener closed, emptied, for the next socket's
    /// entry: a bind storm opens and closes one socket after another, and each new entry
    /// would otherwise allocate both lists again (and each close free them).
    spare: Option<socket::Histories>,
}

/// The verdict flags of the sockets described, one shared list per distinct set (there
/// are few): a socket's `verdict_flags` cost no allocation of their own.
#[derive(Default)]
struct FlagSets(Vec<Arc<[&'static str]>>);

impl FlagSets {
    /// Distinct sets kept at most (six flags: in practice a handful of sets).
    const CAP: usize = 64;

    fn of(&mut self, flags: &[verdict::Flag]) -> Arc<[&'static str]> {
        let same = |set: &&Arc<[&'static str]>| {
            set.len() == flags.len() && set.iter().zip(flags).all(|(s, f)| *s == f.as_str())
        };
        if let Some(set) = self.0.iter().find(same) {
            return Arc::clone(set);
        }
        let set: Arc<[&'static str]> = flags.iter().map(|f| f.as_str()).collect();
        if self.0.len() < Self::CAP {
            self.0.push(Arc::clone(&set));
        }
        set
    }
}

impl Default for Story {
    fn default() -> Self {
        Story::new()
    }
}

impl Story {
    pub fn new() -> Story {
        Story {
            table: HashMap::with_hasher(KeyHash::new()),
            clock: 0,
            ns: Namespaces::new(),
            failures: failure::Cache::default(),
            flag_sets: FlagSets::default(),
            spare: None,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    fn key(ev: &Event) -> Option<Key> {
        match (ev.sock_id, ev.fd) {
            (Some(id), _) => Some(Key::Sock(id)),
            (None, Some(fd)) if fd >= 0 && ev.sock.is_some() => Some(Key::Fd(ev.pid, fd)),
            _ => None,
        }
    }

    /// Take in one event; say what it means.
    pub fn observe(&mut self, ev: &Event) -> Note {
        let mut note = self.observe_event(ev);
        if names_an_interface(ev, &note) {
            let netns = ev.sock.as_ref().and_then(|s| s.netns);
            if !self.ns.is_own(netns) {
                note.ifnames = Some(self.ns.facts(netns, ev.pid).ifnames.clone());
            }
        }
        note
    }

    fn observe_event(&mut self, ev: &Event) -> Note {
        self.clock += 1;
        let key = Self::key(ev);
        if ev.kind == Kind::Close {
            let gone = key.and_then(|k| self.table.remove(&k));
            return Note {
                listener: Some(ListenerChange::Close),
                local: gone.and_then(|mut e| {
                    self.spare = Some(e.take_histories());
                    e.bound
                }),
                ..Note::default()
            };
        }
        let mut note = Note::default();
        let Some(key) = key else {
            // Not a socket we can follow (EBADF, ENOTSOCK, unreadable): explain only.
            let sock_type = ev.sock.as_ref().and_then(|s| s.sock_type);
            note.listener = ListenerChange::of(ev, sock_type, false);
            if ev.failed() {
                let ctx = self.failure_ctx(ev, None);
                let (why, holders) = self.explain(ev, None, &ctx);
                note.explanation = Some(why);
                note.holders = holders;
            }
            return note;
        };
        let fresh = match self.table.get(&key) {
            Some(e) => e.is_other_socket(ev),
            None => true,
        };
        if fresh {
            // Room first: eviction drops the sockets of exited processes, which would be
            // this one's too when it exited since (a storm of binds read after its end).
            if self.table.len() >= CAP && !self.table.contains_key(&key) {
                self.evict();
            }
            let mut e = Entry::new(ev, self.spare.take().unwrap_or_default());
            e.used = self.clock;
            self.table.insert(key, e);
        }
        let clock = self.clock;
        let entry = self.table.get_mut(&key).expect("inserted above");
        entry.used = clock;
        entry.pid = ev.pid;
        entry.fd = ev.fd;
        if entry.comm != ev.comm {
            entry.comm = ev.comm.clone();
        }
        if let Some(s) = &ev.sock {
            if entry.family.is_none() {
                entry.family = s.family;
            }
            if entry.sock_type.is_none() {
                entry.sock_type = s.sock_type;
            }
            if entry.netns.is_none() {
                entry.netns = s.netns;
            }
            entry.last = Some(s.clone());
        }
        if entry.protocol.is_none() {
            entry.protocol = ev.protocol();
        }
        let listener = ListenerChange::of(ev, entry.sock_type, entry.listening);
        match &ev.request {
            Request::Setsockopt {
                level,
                optname,
                value,
                ..
            } => {
                if entry.options.len() >= socket::HISTORY {
                    entry.options.remove(0);
                }
                entry
                    .options
                    .push((*level, *optname, value.clone(), ev.errno));
            }
            Request::Bind(addr) => {
                if entry.binds.len() >= socket::HISTORY {
                    entry.binds.remove(0);
                }
                entry.binds.push((addr.clone(), ev.errno));
                if !ev.failed() {
                    entry.bound = Some(bound_addr(addr, ev.sock.as_ref()));
                    if let SockAddr::UnixPath(p) = addr {
                        entry.perms = procfs::unix_socket_perms(ev.pid, p);
                    }
                }
            }
            Request::Listen { backlog } => {
                if !ev.failed() {
                    // unknown when the hook saw it only after the somaxconn clamp
                    entry.listen_backlog =
                        backlog.map(|b| (b, ev.sock.as_ref().and_then(|s| s.backlog)));
                    entry.starts_listening(ev);
                }
            }
            Request::None if ev.kind == Kind::ListenState => entry.starts_listening(ev),
            Request::None => {}
        }
        if sctp::applies(entry.protocol, ev) {
            entry.sctp_addrs = sctp::after(entry.sctp_addrs.take(), ev);
            note.bound_addrs = entry.sctp_addrs.clone();
        }
        note.listener = listener;
        note.local = entry.bound.clone();
        if ev.failed() {
            let entry = entry.clone();
            let mut ctx = self.failure_ctx(ev, Some(&entry));
            // The same rule as a successful call's: a failed bind left V6ONLY as it was
            // (__inet6_bind restores it), so only a bind before this call set it for an
            // address (`entry.bound`).
            note.v6only_source = v6only_source(
                &entry,
                entry.bound.as_ref(),
                ev.sock.as_ref().and_then(|s| s.v6only),
                ctx.bindv6only,
            );
            ctx.v6only_source = note.v6only_source;
            let (why, holders) = self.explain(ev, Some(&entry), &ctx);
            note.explanation = Some(why);
            note.holders = holders;
            return note;
        }
        // Only bind and listen are described.
        if matches!(ev.kind, Kind::Bind | Kind::Listen | Kind::ListenState) {
            self.describe(ev, key, &mut note);
        }
        note
    }

    /// Verdict, v6only source and (when it starts listening) the summary line of the
    /// socket at `key`. The entry stays in the table (moving it out and back costs two
    /// copies of it and two hashes): the table is borrowed field by field instead.
    fn describe(&mut self, ev: &Event, key: Key, note: &mut Note) {
        let Story {
            table,
            ns,
            flag_sets,
            ..
        } = self;
        let Some(entry) = table.get_mut(&key) else {
            return;
        };
        let Some(addr) = entry.bound.clone() else {
            return;
        };
        let sock = ev.sock.as_ref();
        let v6 = entry.family == Some(AF_INET6);
        let v6only = sock.and_then(|s| s.v6only);
        let own = ns.is_own(entry.netns);
        let facts = ns.facts(entry.netns, ev.pid);
        let (bindv6only, unprivileged_port_start) =
            (facts.bindv6only, facts.unprivileged_port_start);
        let source = v6only_source(entry, Some(&addr), v6only, bindv6only);
        note.v6only_source = source;
        let mut b = match &addr {
            SockAddr::Inet { addr, port } => Bound::ip(IpAddr::V4(*addr), *port),
            SockAddr::Inet6 {
                addr,
                port,
                scope_id,
                ..
            } => Bound::new(
                Addr::Ip {
                    ip: IpAddr::V6(*addr),
                    scope: (*scope_id != 0).then(|| iface(own, &facts.ifnames, *scope_id)),
                },
                Some(*port),
            ),
            SockAddr::UnixPath(p) => Bound::new(
                Addr::UnixPath {
                    path: crate::text::from_bytes(p),
                },
                None,
            ),
            SockAddr::UnixAbstract(n) => Bound::new(
                Addr::UnixAbstract {
                    name: crate::sockaddr::abstract_name_human(n),
                },
                None,
            ),
            SockAddr::UnixAutobind => Bound::new(Addr::UnixAutobind, None),
            SockAddr::Other { .. } | SockAddr::Unreadable { .. } => return,
        };
        b.protocol = entry.protocol.map(std::borrow::Cow::Borrowed);
        b.v6only = v6only.filter(|_| v6);
        if let Some(s) = sock {
            b.device = s
                .bound_dev_if
                .filter(|&d| d > 0)
                .map(|d| iface(own, &facts.ifnames, d as u32));
            b.freebind = s.freebind == Some(true);
            b.transparent = s.transparent == Some(true);
        }
        b.port_kernel_chosen = entry
            .binds
            .iter()
            .rev()
            .find(|(_, e)| *e == 0)
            .is_some_and(|(a, _)| a.port() == Some(0))
            && b.port.is_some_and(|p| p != 0);
        b.unprivileged_port_start = unprivileged_port_start;
        if let Addr::Ip { ip, .. } = &b.addr
            && !ip.is_unspecified()
            && !ip.is_loopback()
            && !ip.is_multicast()
        {
            b.owner = ns.addrs(entry.netns, ev.pid).map(|a| a.owner(*ip));
        }
        if let SockAddr::UnixPath(p) = &addr {
            b.perms = entry.perms.or_else(|| procfs::unix_socket_perms(ev.pid, p));
        }
        let v6only_set = entry.v6only_set();
        let same = entry.described.as_ref().is_some_and(|d| {
            *d.bound == b
                && d.v6only_source == source
                && d.v6only_set == v6only_set
                && d.bindv6only == bindv6only
        });
        if !same {
            entry.described = Some(describe_anew(b, source, v6only_set, bindv6only, flag_sets));
        }
        // Shared from here on (one more lookup): the summary reads the other sockets too.
        let entry = &table[&key];
        let d = entry.described.as_ref().expect("described above");
        note.verdict = Some(d.verdict);
        note.verdict_flags = Some(d.flags.clone());
        note.meaning = Some(d.meaning.clone());
        note.bound = Some(d.bound.clone());
        if note.listener == Some(ListenerChange::Open) {
            let other = Self::other_half(table, key, entry, &d.bound);
            note.summary = Some(sentences::listener_summary(
                ev, entry, &addr, &d.bound, &d.meaning, other,
            ));
        }
    }

    /// The other half of a two-socket dual-stack setup: for a wildcard that leaves one
    /// family to another socket, a socket of that family on the same port that takes it
    /// (`entry`, at `key`, is not its own other half).
    fn other_half<'t>(
        table: &'t HashMap<Key, Entry, KeyHash>,
        key: Key,
        entry: &Entry,
        b: &Bound,
    ) -> Option<&'t Entry> {
        let dgram = entry.sock_type == Some(SOCK_DGRAM);
        let (Some(port), Addr::Ip { ip, .. }) = (b.port, &b.addr) else {
            return None;
        };
        if !ip.is_unspecified() || b.v6only == Some(false) {
            return None;
        }
        let want = if ip.is_ipv4() { AF_INET6 } else { AF_INET };
        let covers = |e: &Entry| match e.last.as_ref() {
            // only an IPv6-only [::] leaves IPv4 to another socket, and vice versa
            Some(l) if want == AF_INET6 => l.v6only == Some(true),
            _ => true,
        };
        table
            .iter()
            .find(|(k, e)| {
                **k != key
                    && e.family == Some(want)
                    && e.protocol == entry.protocol
                    && e.netns == entry.netns
                    && (e.listening || (dgram && e.bound.is_some()))
                    && e.bound.as_ref().and_then(SockAddr::port) == Some(port)
                    && covers(e)
            })
            .map(|(_, e)| e)
    }

    fn failure_ctx(&mut self, ev: &Event, entry: Option<&Entry>) -> failure::Ctx {
        // The event's own namespace is the authority; the entry's is a fallback.
        let netns = ev
            .sock
            .as_ref()
            .and_then(|s| s.netns)
            .or_else(|| entry.and_then(|e| e.netns));
        // EACCES hinges on ip_unprivileged_port_start, which an admin may just have
        // changed: read it afresh rather than from the cache.
        if ev.errno == libc::EACCES {
            self.ns.forget_facts(netns);
        }
        let facts = self.ns.facts(netns, ev.pid);
        let (bindv6only, unprivileged_port_start) =
            (facts.bindv6only, facts.unprivileged_port_start);
        let port = entry
            .and_then(|e| e.bound.as_ref().and_then(SockAddr::port))
            .or_else(|| match &ev.request {
                Request::Bind(a) => a.port(),
                _ => None,
            });
        // Sockets we traced on that port: likely holders (scanned first) and their options.
        let known = port
            .filter(|&p| p != 0)
            .map(|p| {
                self.table
                    .values()
                    .filter(|e| {
                        e.netns == netns
                            && e.pid != 0
                            && e.bound.as_ref().and_then(SockAddr::port) == Some(p)
                    })
                    .map(|e| failure::Known {
                        pid: e.pid,
                        reuseport: e.last.as_ref().and_then(|s| s.reuseport),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let needs_addrs = ev.errno == libc::EADDRNOTAVAIL;
        failure::Ctx {
            netns: self.ns.resolve(netns, ev.pid),
            netns_inode: netns,
            bindv6only,
            unprivileged_port_start,
            addrs: if needs_addrs {
                self.ns.addrs(netns, ev.pid)
            } else {
                None
            },
            known,
            v6only_source: None,
            cap_net_bind_service: (ev.errno == libc::EACCES)
                .then(|| procfs::has_capability(ev.pid, CAP_NET_BIND_SERVICE))
                .flatten(),
            exe: (ev.errno == libc::EACCES)
                .then(|| procfs::exe(ev.pid))
                .flatten(),
        }
    }

    /// Why the call failed, its holders looked up (sock_diag, /proc) only when failure.rs
    /// asks.
    fn explain(
        &mut self,
        ev: &Event,
        entry: Option<&Entry>,
        ctx: &failure::Ctx,
    ) -> (String, Option<Vec<Holder>>) {
        let mut lookup =
            |proto, me: &_, port| holders::find(ev, &ctx.netns, &ctx.known, proto, me, port);
        failure::explain(ev, entry, ctx, &mut self.failures, &mut lookup)
    }

    /// Make room: drop the sockets of processes that exited, then the least recently used.
    fn evict(&mut self) {
        self.table.retain(|_, e| procfs::process_exists(e.pid));
        if self.table.len() > CAP * 3 / 4 {
            let mut used: Vec<u64> = self.table.values().map(|e| e.used).collect();
            used.sort_unstable();
            let cut = used[self.table.len() - CAP * 3 / 4];
            self.table.retain(|_, e| e.used >= cut);
        }
    }

    #[cfg(test)]
    fn entry(&self, ev: &Event) -> Option<&Entry> {
        self.table.get(&Self::key(ev)?)
    }
}

/// Where an inet6 socket's IPV6_V6ONLY (`v6only`, as the kernel holds it after the call)
/// came from, given what the story saw of it and the address it is bound to (`bound`: none
/// yet, or the bind that just failed left none); None for other families or when unread.
fn v6only_source(
    entry: &Entry,
    bound: Option<&SockAddr>,
    v6only: Option<bool>,
    bindv6only: Option<bool>,
) -> Option<&'static str> {
    if entry.family != Some(AF_INET6) || v6only.is_none() {
        return None;
    }
    // A successful bind to one IPv6 address (not :: nor ::ffff:a.b.c.d) sets V6ONLY in
    // the kernel (__inet6_bind): such a socket receives IPv6 to that address only,
    // whatever the program asked or the sysctl says.
    let one_v6_address = matches!(bound, Some(SockAddr::Inet6 { addr, .. })
        if !addr.is_unspecified() && addr.to_ipv4_mapped().is_none());
    Some(if entry.v6only_set() {
        "explicit"
    } else if one_v6_address && v6only == Some(true) {
        "address"
    } else if bindv6only.is_some_and(|d| Some(d) != v6only) {
        // Not seen but different from the default: set before tracing began
        // (or by whoever handed over the socket, e.g. systemd's BindIPv6Only=).
        "explicit"
    } else {
        "sysctl"
    })
}

/// The verdict of `b`, and its sentence with where V6ONLY came from.
fn describe_anew(
    b: Bound,
    source: Option<&'static str>,
    v6only_set: bool,
    bindv6only: Option<bool>,
    flag_sets: &mut FlagSets,
) -> Described {
    let v = verdict::classify_in_words(&b);
    let mut meaning = v.sentence;
    if let (Some(src), Some(on)) = (source, b.v6only) {
        let why = sentences::v6only_why(src, v6only_set, bindv6only);
        meaning.reserve(14 + why.len());
        meaning.push_str(if on { " [V6ONLY=1, " } else { " [V6ONLY=0, " });
        meaning.push_str(why);
        meaning.push(']');
    }
    Described {
        bound: Arc::new(b),
        v6only_source: source,
        v6only_set,
        bindv6only,
        verdict: v.kind.as_str(),
        flags: flag_sets.of(&v.flags),
        meaning: meaning.into(),
    }
}

/// Whether the event names an interface by its index: a scope id (asked, or of the
/// address it is bound to) or a bound device.
fn names_an_interface(ev: &Event, note: &Note) -> bool {
    let scoped = |a: &SockAddr| matches!(a, SockAddr::Inet6 { scope_id, .. } if *scope_id != 0);
    matches!(&ev.request, Request::Bind(a) if scoped(a))
        || note.local.as_ref().is_some_and(scoped)
        || ev
            .sock
            .as_ref()
            .is_some_and(|s| s.bound_dev_if.is_some_and(|d| d > 0))
}

/// Interface `index` by name: in the agent's own namespace as `netif` names it, in
/// another from that namespace's names (the number when it has none by that index).
fn iface(own: bool, names: &netif::IfNames, index: u32) -> String {
    if own {
        return netif::name_of(index);
    }
    names
        .get(index)
        .map_or_else(|| index.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use std::time::Instant;

    use lsn_trace_common::sockopt::{IPV6_V6ONLY, SOL_IPV6};

    use super::*;
    use crate::event::{IPPROTO_TCP, IPPROTO_UDP, OptValue, SOCK_STREAM, Sock};
    use crate::sockdiag::{self, Netns, NetnsChild};

    fn sock(family: u16, ty: u16, proto: u16, ip: IpAddr, port: u16) -> Sock {
        Sock {
            family: Some(family),
            sock_type: Some(ty),
            protocol: Some(proto),
            local: Some(ip),
            port: Some(port),
            v6only: (family == AF_INET6).then_some(true),
            reuseaddr: Some(false),
            reuseport: Some(false),
            freebind: Some(false),
            transparent: Some(false),
            backlog: Some(128),
            netns: Netns::Current.inode().ok().map(|i| i as u32),
            ..Default::default()
        }
    }

    const FAKE_PID: u32 = 0x3fff_fff0;

    fn ev(kind: Kind, fd: i32, id: Option<u64>, request: Request, s: Sock) -> Event {
        // A pid with no /proc entry: the fds of this test process are not these sockets.
        Event {
            euid: None,
            state_unknown: None,
            kind,
            time_ns: 0,
            pid: FAKE_PID,
            tid: FAKE_PID,
            ppid: None,
            uid: 0,
            gid: 0,
            comm: "web".into(),
            fd: Some(fd),
            errno: 0,
            source: crate::event::Source::Syscall,
            request,
            sock: Some(s),
            sock_id: id,
            followed: false,
            start: None,
            raw: Default::default(),
        }
    }

    /// More sockets than the table holds, of a process gone by the time they are read
    /// (FAKE_PID has no /proc entry): each is still observed (eviction once panicked).
    #[test]
    fn more_sockets_than_the_table_holds_of_an_exited_process() {
        let mut st = Story::new();
        for i in 0..(CAP as u64 + 10) {
            let port = 1024 + (i % 60000) as u16;
            let n = st.observe(&ev(
                Kind::Bind,
                3,
                Some(i + 1),
                Request::Bind(v4(port)),
                any4(port),
            ));
            assert!(n.explanation.is_none());
        }
        assert!(st.table.len() <= CAP);
    }

    fn v4(port: u16) -> SockAddr {
        SockAddr::Inet {
            addr: Ipv4Addr::UNSPECIFIED,
            port,
        }
    }

    fn any4(port: u16) -> Sock {
        sock(
            AF_INET,
            SOCK_STREAM,
            IPPROTO_TCP,
            Ipv4Addr::UNSPECIFIED.into(),
            port,
        )
    }

    #[test]
    fn fd_reuse_starts_a_new_story() {
        let mut st = Story::new();
        // fd 5 (no sock_id: keyed by pid/fd): bound and listening on 8081...
        let b = ev(Kind::Bind, 5, None, Request::Bind(v4(8081)), any4(8081));
        st.observe(&b);
        let l = ev(
            Kind::Listen,
            5,
            None,
            Request::Listen { backlog: Some(10) },
            any4(8081),
        );
        let n = st.observe(&l);
        assert!(n.summary.is_some());
        assert!(st.entry(&l).unwrap().listening);
        // ...closed (no close event: it never got one) and fd 5 is a new, unbound socket.
        let mut fresh = any4(0);
        fresh.local = Some(Ipv4Addr::UNSPECIFIED.into());
        let o = ev(
            Kind::Setsockopt,
            5,
            None,
            Request::Setsockopt {
                level: 1,
                optname: 2,
                optlen: 4,
                value: OptValue::Int(1),
            },
            fresh,
        );
        st.observe(&o);
        let e = st.entry(&o).unwrap();
        assert!(
            !e.listening,
            "the new socket on fd 5 is not the old listener"
        );
        assert!(e.bound.is_none());
        assert_eq!(e.options.len(), 1);
        assert_eq!(st.len(), 1);
    }

    #[test]
    fn two_sockets_on_the_same_port_keep_two_stories() {
        let mut st = Story::new();
        // SO_REUSEPORT pair: same pid, same port, different sockets.
        for (fd, id) in [(5, 0xa), (6, 0xb)] {
            st.observe(&ev(
                Kind::Bind,
                fd,
                Some(id),
                Request::Bind(v4(8082)),
                any4(8082),
            ));
        }
        let l1 = ev(
            Kind::Listen,
            5,
            Some(0xa),
            Request::Listen { backlog: Some(1) },
            any4(8082),
        );
        assert!(st.observe(&l1).summary.is_some());
        // the second socket's listen is its own first listen: a summary too
        let l2 = ev(
            Kind::Listen,
            6,
            Some(0xb),
            Request::Listen { backlog: Some(1) },
            any4(8082),
        );
        assert!(st.observe(&l2).summary.is_some());
        assert_eq!(st.len(), 2);
        // listen() again on the first: not a new listener
        assert!(st.observe(&l1).summary.is_none());
        // dup()ed fd 7 of socket 0xa is the same story
        let l3 = ev(
            Kind::Listen,
            7,
            Some(0xa),
            Request::Listen { backlog: Some(9) },
            any4(8082),
        );
        st.observe(&l3);
        assert_eq!(st.len(), 2);
        assert_eq!(st.entry(&l3).unwrap().listen_backlog, Some((9, Some(128))));
        // the listener's close ends its story
        let c = ev(Kind::Close, 5, Some(0xa), Request::None, any4(8082));
        st.observe(&c);
        assert_eq!(st.len(), 1);
        assert!(st.entry(&l2).is_some());
    }

    #[test]
    fn fork_keeps_the_story_and_the_two_socket_summary() {
        let mut st = Story::new();
        let mut b4 = ev(Kind::Bind, 3, Some(1), Request::Bind(v4(80)), any4(80));
        b4.comm = "nginx".into();
        st.observe(&b4);
        let mut l4 = ev(
            Kind::Listen,
            3,
            Some(1),
            Request::Listen { backlog: Some(511) },
            any4(80),
        );
        l4.comm = "nginx".into();
        let n4 = st.observe(&l4);
        assert_eq!(n4.verdict, Some("all-ipv4"));
        // IPv6 socket, V6ONLY set explicitly, listened on by a forked worker
        let s6 = sock(
            AF_INET6,
            SOCK_STREAM,
            IPPROTO_TCP,
            Ipv6Addr::UNSPECIFIED.into(),
            80,
        );
        let mut o = ev(
            Kind::Setsockopt,
            4,
            Some(2),
            Request::Setsockopt {
                level: SOL_IPV6,
                optname: IPV6_V6ONLY,
                optlen: 4,
                value: OptValue::Int(1),
            },
            s6.clone(),
        );
        o.sock.as_mut().unwrap().port = Some(0);
        st.observe(&o);
        let b6 = SockAddr::Inet6 {
            addr: Ipv6Addr::UNSPECIFIED,
            port: 80,
            flowinfo: 0,
            scope_id: 0,
        };
        st.observe(&ev(Kind::Bind, 4, Some(2), Request::Bind(b6), s6.clone()));
        let mut l6 = ev(
            Kind::Listen,
            4,
            Some(2),
            Request::Listen { backlog: Some(511) },
            s6,
        );
        l6.pid += 1; // a forked child does the listen(): same socket
        l6.comm = "nginx".into();
        let n6 = st.observe(&l6);
        assert_eq!(st.len(), 2);
        assert_eq!(n6.verdict, Some("ipv6-only-any"));
        assert_eq!(n6.v6only_source, Some("explicit"));
        let s = n6.summary.unwrap();
        assert!(
            s.starts_with(&format!("nginx[{}] LISTEN tcp [::]:80  ", l6.pid)),
            "{s}"
        );
        assert!(s.contains("[V6ONLY=1, set explicitly]"), "{s}");
        assert!(
            s.contains(&format!(
                "IPv4 is served by nginx[{}]'s socket 0.0.0.0:80",
                b4.pid
            )),
            "{s}"
        );
        assert!(s.ends_with("Connect: http://localhost/"), "{s}");
    }

    #[test]
    fn udp_bind_is_its_listen() {
        let mut st = Story::new();
        let s = sock(
            AF_INET,
            SOCK_DGRAM,
            IPPROTO_UDP,
            Ipv4Addr::LOCALHOST.into(),
            5353,
        );
        let n = st.observe(&ev(
            Kind::Bind,
            3,
            Some(9),
            Request::Bind(SockAddr::Inet {
                addr: Ipv4Addr::LOCALHOST,
                port: 5353,
            }),
            s,
        ));
        assert_eq!(n.verdict, Some("loopback"));
        let sum = n.summary.unwrap();
        assert!(sum.contains("BOUND udp 127.0.0.1:5353"), "{sum}");
        assert!(sum.ends_with("Send datagrams to 127.0.0.1:5353"), "{sum}");
    }

    /// asyncio's `create_datagram_endpoint(local_addr=('::1', port))`: no setsockopt, and
    /// the kernel reports V6ONLY=1 because binding one IPv6 address sets it — not "set before
    /// this trace began", whatever net.ipv6.bindv6only says.
    #[test]
    fn v6only_of_one_ipv6_address_is_the_kernels() {
        let mut st = Story::new();
        let one = Ipv6Addr::LOCALHOST;
        let n = st.observe(&ev(
            Kind::Bind,
            8,
            Some(11),
            Request::Bind(SockAddr::Inet6 {
                addr: one,
                port: 18091,
                flowinfo: 0,
                scope_id: 0,
            }),
            sock(AF_INET6, SOCK_DGRAM, IPPROTO_UDP, one.into(), 18091),
        ));
        assert_eq!(n.v6only_source, Some("address"));
        let m = n.meaning.unwrap();
        assert!(
            m.ends_with("[V6ONLY=1, set by the kernel on binding one IPv6 address]"),
            "{m}"
        );
        // The wildcard with no setsockopt seen: the sysctl's (the host's is 0, the socket 0).
        let mut any = sock(
            AF_INET6,
            SOCK_DGRAM,
            IPPROTO_UDP,
            Ipv6Addr::UNSPECIFIED.into(),
            18092,
        );
        any.v6only = Some(false);
        let n = st.observe(&ev(
            Kind::Bind,
            9,
            Some(12),
            Request::Bind(SockAddr::Inet6 {
                addr: Ipv6Addr::UNSPECIFIED,
                port: 18092,
                flowinfo: 0,
                scope_id: 0,
            }),
            any,
        ));
        assert_eq!(n.v6only_source, Some("sysctl"));
    }

    /// nginx's retry loop on `[::]:P` while 0.0.0.0:P is held (http.server's `--bind ::`
    /// too): each failed inet6 bind says where its V6ONLY came from, as the successful bind
    /// after it does, and its explanation says the same.
    #[test]
    fn a_failed_inet6_bind_says_where_v6only_came_from() {
        let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let sysctl = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").unwrap();
        let sysctl = sysctl.trim() == "1";
        let any6 = |port| SockAddr::Inet6 {
            addr: Ipv6Addr::UNSPECIFIED,
            port,
            flowinfo: 0,
            scope_id: 0,
        };
        // What the kernel holds after the failed bind: unbound, V6ONLY as it was.
        let unbound = |v6only| {
            let mut s = sock(
                AF_INET6,
                SOCK_STREAM,
                IPPROTO_TCP,
                Ipv6Addr::UNSPECIFIED.into(),
                0,
            );
            s.v6only = Some(v6only);
            s
        };
        let failed = |id, port, s: Sock| {
            let mut e = ev(Kind::Bind, 6, Some(id), Request::Bind(any6(port)), s);
            e.errno = libc::EADDRINUSE;
            e
        };
        let mut st = Story::new();
        // No setsockopt seen, V6ONLY=0: the sysctl's (where the host's is 0).
        let n = st.observe(&failed(0x61, port, unbound(false)));
        let (want, why) = if sysctl {
            ("explicit", "set before this trace began")
        } else {
            ("sysctl", "inherited from net.ipv6.bindv6only=0")
        };
        assert_eq!(n.v6only_source, Some(want));
        let x = n.explanation.unwrap();
        assert!(x.contains(&format!("(IPV6_V6ONLY=0, {why})")), "{x}");
        // The retry, once the port is free: the same source on the successful bind.
        drop(held);
        let mut bound = unbound(false);
        bound.port = Some(port);
        let ok = ev(Kind::Bind, 6, Some(0x61), Request::Bind(any6(port)), bound);
        assert_eq!(st.observe(&ok).v6only_source, Some(want));

        // Set explicitly (IPV6_V6ONLY=0 seen), then refused: "explicit", and said so.
        let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let set = |v| {
            ev(
                Kind::Setsockopt,
                7,
                Some(0x62),
                Request::Setsockopt {
                    level: SOL_IPV6,
                    optname: IPV6_V6ONLY,
                    optlen: 4,
                    value: OptValue::Int(v),
                },
                unbound(v != 0),
            )
        };
        st.observe(&set(0));
        let mut e = ev(
            Kind::Bind,
            7,
            Some(0x62),
            Request::Bind(any6(port)),
            unbound(false),
        );
        e.errno = libc::EADDRINUSE;
        let n = st.observe(&e);
        assert_eq!(n.v6only_source, Some("explicit"));
        let x = n.explanation.unwrap();
        assert!(x.contains("(IPV6_V6ONLY=0, set explicitly)"), "{x}");
        // Another socket of the process on that port right after, with no setsockopt: its
        // own source, not the explanation just made for the first (the holder lookup is
        // reused for a retry loop, the socket's facts are not).
        let n = st.observe(&failed(0x64, port, unbound(false)));
        assert_eq!(n.v6only_source, Some(want));
        let x = n.explanation.unwrap();
        assert!(x.contains(&format!("(IPV6_V6ONLY=0, {why})")), "{x}");
        // An IPv6-only socket refused for another reason (EACCES): "explicit" too.
        let mut s = unbound(true);
        s.v6only = Some(true);
        let mut o = set(1);
        o.sock_id = Some(0x63);
        st.observe(&o);
        let mut e = ev(Kind::Bind, 7, Some(0x63), Request::Bind(any6(80)), s);
        e.errno = libc::EACCES;
        assert_eq!(st.observe(&e).v6only_source, Some("explicit"));
        drop(held);
    }

    #[test]
    fn an_option_the_kernel_contradicts_means_another_socket() {
        let mut st = Story::new();
        let set = |v| Request::Setsockopt {
            level: 1,
            optname: 2, // SO_REUSEADDR
            optlen: 4,
            value: OptValue::Int(v),
        };
        let mut s = any4(0);
        s.reuseaddr = Some(true);
        st.observe(&ev(Kind::Setsockopt, 4, Some(7), set(1), s));
        // same kernel address, but the kernel says SO_REUSEADDR is off: a new socket
        let e = ev(Kind::Bind, 4, Some(7), Request::Bind(v4(0)), any4(0));
        st.observe(&e);
        assert!(st.entry(&e).unwrap().options.is_empty());
    }

    /// `cargo test --release -p lsn-trace story_cost -- --ignored --nocapture`: the story's
    /// cost per event in the bench storm's shape (2 setsockopt, bind, listen, close).
    #[test]
    #[ignore]
    fn story_cost() {
        let mut st = Story::new();
        let n = 50_000u64;
        let base = sock(
            AF_INET6,
            SOCK_STREAM,
            IPPROTO_TCP,
            Ipv6Addr::LOCALHOST.into(),
            0,
        );
        let t = Instant::now();
        for i in 0..n {
            let mut s6 = base.clone();
            let set = Request::Setsockopt {
                level: SOL_IPV6,
                optname: IPV6_V6ONLY,
                optlen: 4,
                value: OptValue::Int(1),
            };
            st.observe(&ev(
                Kind::Setsockopt,
                3,
                Some(i + 1),
                set.clone(),
                s6.clone(),
            ));
            st.observe(&ev(Kind::Setsockopt, 3, Some(i + 1), set, s6.clone()));
            s6.port = Some(40000 + (i % 1000) as u16);
            let b = SockAddr::Inet6 {
                addr: Ipv6Addr::LOCALHOST,
                port: 0,
                flowinfo: 0,
                scope_id: 0,
            };
            st.observe(&ev(
                Kind::Bind,
                3,
                Some(i + 1),
                Request::Bind(b),
                s6.clone(),
            ));
            st.observe(&ev(
                Kind::Listen,
                3,
                Some(i + 1),
                Request::Listen { backlog: Some(16) },
                s6.clone(),
            ));
            st.observe(&ev(Kind::Close, 3, Some(i + 1), Request::None, s6));
        }
        let per = t.elapsed().as_nanos() as f64 / (n * 5) as f64;
        eprintln!("story: {per:.0} ns per event");
        // The culprit lookup, as for an EADDRINUSE: sock_diag dump of one port here plus
        // the owner scan of /proc.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = Instant::now();
        let rounds = 50;
        for _ in 0..rounds {
            let socks =
                sockdiag::dump_in(&Netns::Current, &sockdiag::Query::all_inet(port)).unwrap();
            let inodes: Vec<u32> = socks.iter().map(|s| s.inode).collect();
            let o = sockdiag::owners(&inodes, &[], failure::OWNER_BUDGET);
            assert!(o.found.values().any(|v| v[0].pid == std::process::id()));
        }
        let lookup = t.elapsed();
        let t = Instant::now();
        for _ in 0..rounds {
            sockdiag::dump_in(&Netns::Current, &sockdiag::Query::all_inet(port)).unwrap();
        }
        eprintln!(
            "sock_diag dump of one port here: {:.0} us",
            t.elapsed().as_secs_f64() * 1e6 / rounds as f64
        );
        let procs = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count();
        eprintln!(
            "culprit lookup: {:.2} ms ({procs} processes)",
            lookup.as_secs_f64() * 1e3 / rounds as f64
        );
        let child = NetnsChild::spawn();
        let ns = child.ns();
        let t = Instant::now();
        for _ in 0..rounds {
            sockdiag::dump_in(&ns, &sockdiag::Query::all_inet(port)).unwrap();
        }
        eprintln!(
            "sock_diag dump in another netns (thread + setns): {:.0} us",
            t.elapsed().as_secs_f64() * 1e6 / rounds as f64
        );
    }

    #[test]
    fn a_gone_process_namespace_is_reached_through_another_process() {
        let child = NetnsChild::spawn();
        let ours = Netns::Current.inode().unwrap();
        let ino = child.ns().inode().unwrap() as u32;
        let mut st = Story::new();
        // the event's process (FAKE_PID) is gone: found through the sleeping child
        assert_eq!(st.ns.resolve(Some(ino), FAKE_PID), Ok(child.ns()));
        drop(child);
        st.ns.pids.clear();
        let err = st.ns.resolve(Some(ino), FAKE_PID).unwrap_err();
        assert!(
            err.contains("no process is left in its network namespace"),
            "{err}"
        );
        assert_eq!(
            st.ns.resolve(Some(ours as u32), FAKE_PID),
            Ok(Netns::Current)
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let mut st = Story::new();
        for i in 0..(CAP as u64 + 10) {
            let mut e = ev(Kind::Bind, 3, Some(i + 1), Request::Bind(v4(0)), any4(1));
            // a live process, so eviction has to fall back on least-recently-used
            e.pid = std::process::id();
            st.observe(&e);
        }
        assert!(st.len() <= CAP, "{}", st.len());
        assert!(st.len() >= CAP / 2);
    }
}
