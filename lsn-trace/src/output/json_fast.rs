//! The `--json` hot path: each record written straight into the output buffer, byte for
//! byte what serde_json makes of [`super::json::record_with`] + the story's note (the
//! reference, still used by the audit log and checked against this in the tests), without
//! serde's flattened-map machinery and the per-event Strings the derive struct needs. A
//! bind storm is ~5 events per cycle: this is most of the agent's CPU time.
use crate::{
    errno,
    event::{Event, Kind, OptValue, Request, Sock},
    names, netif,
    sockaddr::SockAddr,
    story::Note,
};

use super::{Options, emit};

/// `o`'s key `k`: the name, and the bytes a stream writes for it (`,"k":`).
macro_rules! key {
    ($o:expr, $k:literal) => {
        $o.key($k, concat!(",\"", $k, "\":").as_bytes())
    };
}
pub(crate) use key;

/// One event record and its newline.
pub fn write_event(out: &mut Vec<u8>, ev: &Event, opts: Options, note: &Note) {
    // A record is ~900 bytes, a listener's ~1.5k: one growth check instead of one per key.
    out.reserve(2048);
    let mut o = Stream::new(out);
    write_fields(&mut o, ev, opts, note);
    o.end();
}

/// The record's keys and values, in `--json`'s order, into `o`.
pub fn write_fields(o: &mut impl Object, ev: &Event, opts: Options, note: &Note) {
    let sock = ev.sock.as_ref();
    let bound_port = sock.and_then(|s| s.port);
    name(key!(o, "event"), ev.kind.name());
    let out = key!(o, "time");
    out.push(b'"');
    super::write_rfc3339(out, ev.time_ns);
    out.push(b'"');
    if let Some(rel) = opts.rel(ev) {
        let out = key!(o, "rel");
        // serde_json's float spelling, so that both writers agree to the digit.
        serde_json::to_writer(&mut *out, &((rel * 1e6).round() / 1e6)).expect("write f64");
    }
    if opts.mark_followed {
        let out = key!(o, "followed");
        bool(out, ev.followed);
    }
    let out = key!(o, "pid");
    int(out, ev.pid);
    let out = key!(o, "tid");
    int(out, ev.tid);
    let out = key!(o, "ppid");
    opt_int(out, ev.ppid);
    let out = key!(o, "comm");
    str(out, &ev.comm);
    let out = key!(o, "uid");
    int(out, ev.uid);
    let out = key!(o, "euid");
    opt_int(out, ev.euid);
    let out = key!(o, "gid");
    int(out, ev.gid);
    let out = key!(o, "netns");
    opt_int(out, sock.and_then(|s| s.netns));
    let out = key!(o, "fd");
    opt_int(out, ev.fd);
    let out = key!(o, "source");
    name(out, ev.source.name());
    let out = key!(o, "sock_id");
    match ev.sock_id {
        Some(id) => {
            out.push(b'"');
            emit::hex64(out, id);
            out.push(b'"');
        }
        None => null(out),
    }
    let out = key!(o, "inode");
    opt_int(out, sock.and_then(|s| s.inode));
    let out = key!(o, "state_unknown");
    opt_name(out, ev.state_unknown.map(|w| w.name()));
    let out = key!(o, "family");
    match ev.family() {
        Some(af) => match family(af) {
            Some(n) => name(out, n),
            None => str(out, &names::family(af)),
        },
        None => null(out),
    }
    let out = key!(o, "type");
    opt_name(
        out,
        sock.and_then(|s| s.sock_type).and_then(names::sock_type),
    );
    let out = key!(o, "protocol");
    opt_name(out, ev.protocol());

    // listen and close have no request address: report what the socket listens on.
    let held = matches!(ev.kind, Kind::Listen | Kind::ListenState | Kind::Close);
    let bind = match &ev.request {
        Request::Bind(a) => Some(a),
        _ => None,
    };
    let scope = if held {
        sock.and_then(|s| s.scope_id(note.local.as_ref()))
    } else {
        None
    };
    let out = key!(o, "addr");
    if held {
        match sock
            .and_then(|s| s.unix_addr.as_ref())
            .and_then(SockAddr::host)
        {
            Some(unix) => str(out, &unix),
            None => match (sock.and_then(|s| s.local), scope) {
                // A link-local listener: `fe80::1%eth0`, as its bind's `addr`.
                (Some(std::net::IpAddr::V6(a)), Some(id)) if id != 0 => {
                    str(out, &format!("{a}%{}", netif::name_of(id)))
                }
                _ => local(out, sock),
            },
        }
    } else {
        match bind {
            // IP addresses need no escaping, nor a String.
            Some(SockAddr::Inet { addr, .. }) => {
                out.push(b'"');
                emit::ipv4(out, *addr);
                out.push(b'"');
            }
            Some(SockAddr::Inet6 {
                addr, scope_id: 0, ..
            }) => {
                out.push(b'"');
                emit::ipv6(out, *addr);
                out.push(b'"');
            }
            _ => match bind.and_then(SockAddr::host) {
                Some(h) => str(out, &h),
                None => null(out),
            },
        }
    }
    let out = key!(o, "port");
    opt_int(
        out,
        if held {
            bound_port
        } else {
            bind.and_then(SockAddr::port)
        },
    );
    let out = key!(o, "scope_id");
    opt_int(
        out,
        match bind {
            Some(SockAddr::Inet6 { scope_id, .. }) => Some(*scope_id),
            _ => scope,
        },
    );
    let out = key!(o, "addrlen");
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
    let out = key!(o, "bound_addr");
    local(out, sock);
    let out = key!(o, "bound_port");
    opt_int(out, bound_port);
    let out = key!(o, "errno");
    opt_int(out, ev.failed().then_some(ev.errno));
    let out = key!(o, "error");
    opt_name(
        out,
        if ev.failed() {
            errno::name(ev.errno)
        } else {
            None
        },
    );
    let flag = |out: &mut Vec<u8>, f: fn(&Sock) -> Option<bool>| match sock.and_then(f) {
        Some(b) => bool(out, b),
        None => null(out),
    };
    flag(key!(o, "v6only"), |s| s.v6only);
    flag(key!(o, "reuseaddr"), |s| s.reuseaddr);
    flag(key!(o, "reuseport"), |s| s.reuseport);
    flag(key!(o, "freebind"), |s| s.freebind);
    flag(key!(o, "transparent"), |s| s.transparent);
    flag(key!(o, "bind_address_no_port"), |s| s.bind_no_port);
    let dev = sock.and_then(|s| s.bound_dev_if);
    let out = key!(o, "bound_dev_if");
    opt_int(out, dev);
    let out = key!(o, "device");
    match dev.filter(|&d| d > 0) {
        Some(d) => str(out, &netif::name_of(d as u32)),
        None => null(out),
    }
    let out = key!(o, "backlog");
    opt_int(
        out,
        match &ev.request {
            Request::Listen { backlog } => *backlog,
            _ => None,
        },
    );
    let out = key!(o, "backlog_effective");
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
            let out = key!(o, "level");
            match names::level(*level) {
                Some(n) => name(out, n),
                None => str(out, &level.to_string()),
            }
            let out = key!(o, "option");
            match names::option(*level, *optname) {
                Some(n) => name(out, n),
                None => str(out, &optname.to_string()),
            }
            let out = key!(o, "value");
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
                OptValue::Addrs(a) => bindx(out, a),
                OptValue::Unreadable => null(out),
            }
        }
        _ => {
            null(key!(o, "level"));
            null(key!(o, "option"));
            null(key!(o, "value"));
        }
    }
    write_note(o, note);
}

/// An sctp_bindx() array's `value` (json.rs's `bindx_value`: keys in serde_json's order).
fn bindx(out: &mut Vec<u8>, a: &crate::event::BindxAddrs) {
    out.extend_from_slice(b"{\"addrs\":");
    addr_list(out, &a.addrs);
    out.extend_from_slice(b",\"count\":");
    opt_int(out, a.count);
    out.extend_from_slice(b",\"malformed_at\":");
    opt_int(out, a.malformed_at);
    out.extend_from_slice(b",\"omitted\":");
    opt_int(out, a.omitted());
    out.push(b'}');
}

/// `[{"addr","family","port"}…]`: a bindx array's addresses, an SCTP socket's bound ones.
fn addr_list(out: &mut Vec<u8>, addrs: &[SockAddr]) {
    out.push(b'[');
    for (i, x) in addrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"addr\":");
        opt_str(out, x.host().as_deref());
        out.extend_from_slice(b",\"family\":");
        match x.family() {
            Some(f) => str(out, &names::family(f)),
            None => null(out),
        }
        out.extend_from_slice(b",\"port\":");
        opt_int(out, x.port());
        out.push(b'}');
    }
    out.push(b']');
}

/// The story's keys, in `Note`'s field order.
fn write_note<O: Object>(o: &mut O, note: &Note) {
    let out = key!(o, "verdict");
    opt_name(out, note.verdict);
    let out = key!(o, "verdict_flags");
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
    let out = key!(o, "meaning");
    opt_str(out, note.meaning.as_deref());
    let out = key!(o, "v6only_source");
    opt_name(out, note.v6only_source);
    let out = key!(o, "summary");
    opt_str(out, note.summary.as_deref());
    let out = key!(o, "explanation");
    opt_str(out, note.explanation.as_deref());
    let out = key!(o, "holders");
    // Rare (a failed bind's culprits) and nested: serde keeps it exact.
    if O::SORTED {
        // Sorted keys need a value's map first (none: no value to make).
        match &note.holders {
            None => null(out),
            Some(h) => {
                let v = serde_json::to_value(h).expect("holders as a value");
                serde_json::to_writer(&mut *out, &v).expect("write holders");
            }
        }
    } else {
        serde_json::to_writer(&mut *out, &note.holders).expect("write holders");
    }
    // Only where the story knows an SCTP socket's addresses.
    if let Some(addrs) = &note.bound_addrs {
        addr_list(key!(o, "bound_addrs"), addrs);
    }
}

/// `{"k":v,…}` with the keys in byte order, as serde_json prints a `Map` (the audit log's
/// records): the values are gathered, then laid out by key. A key given again replaces
/// its value, as a map's insert does. A key whose value is `null` is left out: the log is
/// written around the clock and read by `jq` and `lsn-trace report`, to which a missing
/// key is `null`; nulls were about a third of its bytes.
#[derive(Default)]
pub struct Sorted {
    values: Vec<u8>,
    /// The fields in the order given, one after the other in `values` (each its `,"k":`
    /// token, then its value): a field ends where the next one starts, the last one at the
    /// end of `values` (laid out with one copy each).
    fields: Vec<Field>,
    /// The keys of the last record sorted, and the order they sorted into: records of one
    /// kind come with the same keys, sorted once.
    sorted_keys: Vec<&'static str>,
    order: Vec<usize>,
}

/// One field of a [`Sorted`] object: its key, and where its token and its value start.
#[derive(Clone, Copy)]
struct Field {
    key: &'static str,
    start: usize,
    value: usize,
}

impl Sorted {
    /// The object gathered since the last one, without a newline; then start afresh.
    pub fn write(&mut self, out: &mut Vec<u8>) {
        let same = self.sorted_keys.len() == self.fields.len()
            && self
                .sorted_keys
                .iter()
                .zip(&self.fields)
                .all(|(a, f)| std::ptr::eq(*a, f.key));
        if !same {
            self.sort();
        }
        let (values, fields) = (&self.values[..], &self.fields[..]);
        out.reserve(values.len() + 2);
        let open = out.len();
        for &i in &self.order {
            let f = fields[i];
            let end = fields.get(i + 1).map_or(values.len(), |next| next.start);
            // Null values are written, then left out here: testing each value as it is
            // written costs more (measured: 8,642 against 7,603 instructions per event).
            if values[f.value..end] != *b"null" {
                out.extend_from_slice(&values[f.start..end]);
            }
        }
        // Every key came with its comma: the first one's becomes the opening brace.
        match out.get_mut(open) {
            Some(comma) => *comma = b'{',
            None => out.push(b'{'),
        }
        out.push(b'}');
        self.values.clear();
        self.fields.clear();
    }

    /// The value given last to `k` so far.
    pub fn value(&self, k: &str) -> Option<&[u8]> {
        let i = self.fields.iter().rposition(|f| f.key == k)?;
        let end = self
            .fields
            .get(i + 1)
            .map_or(self.values.len(), |next| next.start);
        Some(&self.values[self.fields[i].value..end])
    }

    /// The order of `fields` by key, the last of equal keys kept.
    fn sort(&mut self) {
        let mut order: Vec<usize> = (0..self.fields.len()).collect();
        order.sort_by_key(|&i| self.fields[i].key);
        // Stable: of equal keys, the last written is last; keep it alone.
        let mut kept: Vec<usize> = Vec::with_capacity(order.len());
        for i in order {
            match kept.last_mut() {
                Some(prev) if self.fields[*prev].key == self.fields[i].key => *prev = i,
                _ => kept.push(i),
            }
        }
        self.order = kept;
        self.sorted_keys = self.fields.iter().map(|f| f.key).collect();
    }
}

impl Object for Sorted {
    const SORTED: bool = true;

    fn key(&mut self, k: &'static str, token: &'static [u8]) -> &mut Vec<u8> {
        let start = self.values.len();
        self.fields.push(Field {
            key: k,
            start,
            value: start + token.len(),
        });
        self.values.extend_from_slice(token);
        &mut self.values
    }
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
            out.push(b'"');
            emit::ip(out, a);
            out.push(b'"');
        }
        None => null(out),
    }
}

/// Where a record's keys go, each value written to the buffer `key` returns: a record's
/// writers say what the keys and values are, the `Object` how they are laid out.
pub trait Object {
    /// Whether keys come out in byte order, as serde_json prints a `Map`: then so must the
    /// keys of nested objects.
    const SORTED: bool = false;
    /// Start the value of key `k`; `token` is `,"k":`.
    fn key(&mut self, k: &'static str, token: &'static [u8]) -> &mut Vec<u8>;
}

/// `{"k":v,"k2":v2,…}` in the order the keys come (`--json`).
pub struct Stream<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> Stream<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Stream<'a> {
        let start = out.len();
        Stream { out, start }
    }

    /// The closing brace and the newline.
    pub fn end(self) {
        // Every key came with its comma: the first one's becomes the opening brace.
        match self.out.get_mut(self.start) {
            Some(comma) => *comma = b'{',
            None => self.out.push(b'{'),
        }
        self.out.extend_from_slice(b"}\n");
    }
}

impl Object for Stream<'_> {
    #[inline(always)]
    fn key(&mut self, _: &'static str, token: &'static [u8]) -> &mut Vec<u8> {
        self.out.extend_from_slice(token);
        self.out
    }
}

pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

pub fn bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

pub fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    emit::int(out, n);
}

pub fn opt_int(out: &mut Vec<u8>, n: Option<impl itoa::Integer>) {
    match n {
        Some(n) => int(out, n),
        None => null(out),
    }
}

/// One of our own names (an event kind, a family, an errno's, a verdict...): plain
/// identifiers that need no escaping, so none is looked for.
pub fn name(out: &mut Vec<u8>, s: &'static str) {
    debug_assert!(next_escaped(s.as_bytes(), 0).is_none(), "{s}");
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn opt_name(out: &mut Vec<u8>, s: Option<&'static str>) {
    match s {
        Some(s) => name(out, s),
        None => null(out),
    }
}

pub fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => str(out, s),
        None => null(out),
    }
}

/// A JSON string, escaped as serde_json does: `"` and `\`, the short escapes for
/// \b \t \n \f \r, `\u00XX` (lowercase hex) for the other control bytes, the rest raw.
pub fn str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while let Some(at) = next_escaped(bytes, i) {
        let b = bytes[at];
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            _ => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
        };
        out.extend_from_slice(&bytes[start..at]);
        out.extend_from_slice(esc);
        start = at + 1;
        i = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The first byte from `from` on that a JSON string must escape (a control byte, `"` or
/// `\`). Most strings have none, and the sentences are most of a record: eight bytes are
/// tested at a time (each test is exact: a word flagged holds such a byte).
fn next_escaped(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let escaped = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut i = from;
    // Sixteen bytes at a time where the CPU compares them at once (the sentences are a
    // few hundred bytes); the words below for the rest, and on other CPUs.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while i + 16 <= bytes.len() {
        let chunk = bytes[i..i + 16].try_into().expect("16 bytes");
        // SAFETY: `first_escaped` needs SSE2, which this build targets (the cfg above; it
        // is part of x86-64 itself, so every CPU this binary runs on has it). It reads
        // nothing but its argument.
        if let Some(j) = unsafe { sse2::first_escaped(chunk) } {
            return Some(i + j);
        }
        i += 16;
    }
    while i + 8 <= bytes.len() {
        let w = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        // Some byte < 0x20, or (the zero-byte test on a xor) equal to '"' or '\\'.
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let hit =
            below_space | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')));
        if hit != 0 {
            // The first flagged byte is exact; later ones may not be: look byte by byte.
            if let Some(j) = bytes[i..i + 8].iter().position(|&b| escaped(b)) {
                return Some(i + j);
            }
        }
        i += 8;
    }
    bytes[i..].iter().position(|&b| escaped(b)).map(|j| i + j)
}

/// [`next_escaped`]'s test of sixteen bytes in one go, with SSE2 (part of x86-64: every
/// such CPU has it). The bytes are loaded as two words, without a pointer.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };

    /// The index of the first of `chunk`'s bytes that a JSON string must escape: below
    /// 0x20 (the unsigned minimum with 0x1f is the byte itself), `"` or `\`.
    #[target_feature(enable = "sse2")]
    pub(super) fn first_escaped(chunk: &[u8; 16]) -> Option<usize> {
        let word = |at: usize| i64::from_le_bytes(chunk[at..at + 8].try_into().expect("8 bytes"));
        let v = _mm_set_epi64x(word(8), word(0));
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // One bit per byte, the first byte's lowest.
        let hits = _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash)));
        (hits != 0).then(|| hits.trailing_zeros() as usize)
    }
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
            euid: None,
            state_unknown: None,
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
            verdict_flags: Some(vec!["a", "b\"c"].into()),
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
            bound: Some(lsn_trace::verdict::Bound::ip(Ipv4Addr::LOCALHOST.into(), 80).into()),
            local: Some(SockAddr::Inet {
                addr: Ipv4Addr::LOCALHOST,
                port: 80,
            }),
            listener: Some(crate::story::ListenerChange::Open),
            bound_addrs: None,
            ifnames: Some(Default::default()),
        };
        let sctp_note = Note {
            bound_addrs: Some(vec![
                SockAddr::Inet {
                    addr: Ipv4Addr::LOCALHOST,
                    port: 5000,
                },
                SockAddr::Inet6 {
                    addr: Ipv6Addr::LOCALHOST,
                    port: 5000,
                    flowinfo: 0,
                    scope_id: 0,
                },
            ]),
            ..Note::default()
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
                    Kind::Listen,
                    Request::Listen { backlog: Some(5) },
                    Some(Sock {
                        local: Some(IpAddr::V6("fe80::1".parse().unwrap())),
                        bound_dev_if: Some(1),
                        ..inet6_sock()
                    }),
                ),
                Note::default(),
            ),
            (
                ev(
                    Kind::Close,
                    Request::None,
                    Some(Sock {
                        local: Some(IpAddr::V6("fe80::1".parse().unwrap())),
                        bound_dev_if: None,
                        ..inet6_sock()
                    }),
                ),
                Note {
                    local: Some(SockAddr::Inet6 {
                        addr: "fe80::1".parse().unwrap(),
                        port: 40123,
                        flowinfo: 0,
                        scope_id: 1,
                    }),
                    ..Note::default()
                },
            ),
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
                ev(
                    Kind::Setsockopt,
                    opt(
                        132,
                        100,
                        OptValue::Addrs(crate::event::BindxAddrs {
                            addrs: vec![
                                SockAddr::Inet {
                                    addr: Ipv4Addr::LOCALHOST,
                                    port: 5000,
                                },
                                SockAddr::Inet6 {
                                    addr: Ipv6Addr::LOCALHOST,
                                    port: 5000,
                                    flowinfo: 0,
                                    scope_id: 0,
                                },
                            ],
                            count: Some(3),
                            malformed_at: None,
                        }),
                    ),
                    Some(inet6_sock()),
                ),
                sctp_note,
            ),
            (
                ev(
                    Kind::Setsockopt,
                    opt(
                        132,
                        101,
                        OptValue::Addrs(crate::event::BindxAddrs {
                            addrs: vec![],
                            count: None,
                            malformed_at: Some(0),
                        }),
                    ),
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

    /// A link-local listener keeps its scope after bind: its listen and close name it as
    /// the bind does (JSON `addr`/`scope_id`, the human line) — from the socket's bound
    /// device, or, where that was not read, the scope the story saw it bound with.
    #[test]
    fn a_link_local_listener_keeps_its_scope() {
        use crate::output::human::Human;
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let lo = crate::netif::name_of(1);
        let bound = SockAddr::Inet6 {
            addr: ll,
            port: 8080,
            flowinfo: 0,
            scope_id: 1,
        };
        let s = Sock {
            local: Some(IpAddr::V6(ll)),
            port: Some(8080),
            bound_dev_if: Some(1),
            ..inet6_sock()
        };
        let note = Note {
            local: Some(bound.clone()),
            ..Note::default()
        };
        let json = |ev: &Event, note: &Note| -> serde_json::Value {
            let mut out = Vec::new();
            Json::new(Options::default()).event_noted(&mut out, ev, note);
            serde_json::from_slice(&out).unwrap()
        };
        let human = |ev: &Event, note: &Note| {
            let mut out = Vec::new();
            Human::new(Options::default()).event_noted(&mut out, ev, note);
            String::from_utf8(out)
                .unwrap()
                .lines()
                .nth(1)
                .unwrap()
                .to_owned()
        };
        let b = json(
            &ev(Kind::Bind, Request::Bind(bound.clone()), Some(s.clone())),
            &note,
        );
        assert_eq!(b["addr"], format!("fe80::1%{lo}"));
        assert_eq!(b["scope_id"], 1);
        let listen = ev(
            Kind::Listen,
            Request::Listen { backlog: Some(5) },
            Some(s.clone()),
        );
        for (ev, note) in [(&listen, &note), (&listen, &Note::default())] {
            let l = json(ev, note);
            assert_eq!(l["addr"], format!("fe80::1%{lo}"), "{l}");
            assert_eq!(l["scope_id"], 1, "{l}");
            assert_eq!(l["port"], 8080);
            let h = human(ev, note);
            assert!(h.contains(&format!(" [fe80::1%{lo}]:8080 ")), "{h}");
        }
        // The close, its bound device unread: the story's scope; without it, unknown.
        let unread = Sock {
            bound_dev_if: None,
            ..s.clone()
        };
        let close = ev(Kind::Close, Request::None, Some(unread));
        let c = json(&close, &note);
        assert_eq!(c["addr"], format!("fe80::1%{lo}"), "{c}");
        assert_eq!(c["scope_id"], 1);
        assert!(human(&close, &note).contains(&format!(" [fe80::1%{lo}]:8080 ")));
        let c = json(&close, &Note::default());
        assert_eq!(c["addr"], "fe80::1", "{c}");
        assert_eq!(c["scope_id"], serde_json::Value::Null);
        // An address that needs no scope has none on its listen: as before.
        let l = json(
            &ev(
                Kind::Listen,
                Request::Listen { backlog: Some(5) },
                Some(inet6_sock()),
            ),
            &note,
        );
        assert_eq!(l["addr"], "::1");
        assert_eq!(l["scope_id"], serde_json::Value::Null);
    }

    /// Keys gathered by `Sorted` come out as serde_json prints the same record and note
    /// merged into one `Map` (the audit log's records), a key given again replacing its
    /// value, the keys whose value is null left out.
    #[test]
    fn sorted_is_serdes_map() {
        fn object(v: impl serde::Serialize) -> serde_json::Map<String, serde_json::Value> {
            match serde_json::to_value(v).unwrap() {
                serde_json::Value::Object(m) => m,
                _ => unreachable!(),
            }
        }
        let mut sorted = Sorted::default();
        // Twice over: the second time from the remembered order.
        for _ in 0..2 {
            for (ev, note) in cases() {
                let mut map = object(super::super::json::record(&ev, note.local.as_ref()));
                map.extend(object(&note));
                map.insert("record".into(), "open".into());
                map.insert("pid".into(), 7.into());
                map.retain(|_, v| !v.is_null());
                let want = serde_json::to_string(&map).unwrap();
                str(key!(sorted, "record"), "open");
                write_fields(&mut sorted, &ev, Options::default(), &note);
                int(key!(sorted, "pid"), 7);
                let mut got = Vec::new();
                sorted.write(&mut got);
                assert_eq!(String::from_utf8(got).unwrap(), want);
            }
        }
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
        // Past the sixteen and eight bytes tested at once: each escaped byte (and its
        // neighbours, which are not) at every position of a longer string, beside
        // non-ASCII text.
        for b in [
            0u8, 0x1f, b'"', b'\\', b'\n', 0x7f, b' ', b'!', b'#', b'[', b']',
        ] {
            for at in 0..44 {
                let mut t: Vec<char> = "loopback only — é 0123456789abcdef ü 0123456789abcdef"
                    .chars()
                    .collect();
                t.insert(at, char::from(b));
                samples.push(t.into_iter().collect());
            }
        }
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
