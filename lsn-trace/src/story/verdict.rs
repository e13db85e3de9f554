//! What a bound or listening address means, in words: a pure classification shared by the
//! per-socket story and `lsn-trace explain`. Input is what the kernel (or the user) says
//! about the socket; output is a stable machine-readable `kind`, `flags`, the RFC 6890
//! special-purpose range the address falls in, and one plain-language sentence.
//!
//! Nothing here does I/O: facts that need the system (which interface owns the address in
//! the process's network namespace, ip_unprivileged_port_start, a socket file's mode) are
//! inputs, gathered by `nsaddrs` or the caller.
use std::net::{IpAddr, Ipv4Addr};
use std::{borrow::Cow, fmt::Write as _};

use serde::{Deserialize, Serialize};

/// The address part of what a socket is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case")]
pub enum Addr {
    /// AF_INET or AF_INET6. `scope` is the interface of a link-local IPv6 address (name,
    /// or the index as text when it has no name here); None = scope id 0.
    Ip { ip: IpAddr, scope: Option<String> },
    /// A filesystem AF_UNIX socket.
    UnixPath { path: String },
    /// An abstract AF_UNIX name (without the leading NUL / `@`).
    UnixAbstract { name: String },
    /// AF_UNIX bind with an empty address: the kernel picks a 5-hex-digit abstract name.
    UnixAutobind,
}

/// Whether the address is assigned to an interface of the socket's network namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ownership {
    /// Assigned to this interface.
    Iface(String),
    /// Assigned to no interface (the address list was read and it is not there).
    NotAssigned,
}

/// A socket file's permissions (AF_UNIX pathname sockets: connect needs write access).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePerms {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Everything the classification looks at. `Default`-able extras so callers fill only what
/// they know: an unknown fact is `None`, and the sentence does not pretend to know it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    pub addr: Addr,
    /// None for AF_UNIX; Some(0) = not bound to a port yet (the kernel will pick one).
    pub port: Option<u16>,
    /// ss Netid notation: tcp, udp, sctp, u_str, u_dgr, ... (None = unknown). A name of our own borrows (no allocation per describe).
    pub protocol: Option<std::borrow::Cow<'static, str>>,
    /// IPV6_V6ONLY of an AF_INET6 socket (None = unknown or not AF_INET6).
    pub v6only: Option<bool>,
    /// SO_BINDTODEVICE interface name.
    pub device: Option<String>,
    pub freebind: bool,
    pub transparent: bool,
    /// The process asked for port 0 and the kernel chose `port`.
    pub port_kernel_chosen: bool,
    /// net.ipv4.ip_unprivileged_port_start of the socket's namespace (None: assume 1024).
    pub unprivileged_port_start: Option<u32>,
    /// Who owns the address in the socket's namespace (None = not looked up).
    pub owner: Option<Ownership>,
    /// AF_UNIX pathname: the socket file's permissions, when stat() could read them.
    pub perms: Option<FilePerms>,
}

impl Bound {
    pub fn new(addr: Addr, port: Option<u16>) -> Bound {
        Bound {
            addr,
            port,
            protocol: None,
            v6only: None,
            device: None,
            freebind: false,
            transparent: false,
            port_kernel_chosen: false,
            unprivileged_port_start: None,
            owner: None,
            perms: None,
        }
    }

    pub fn ip(ip: IpAddr, port: u16) -> Bound {
        Bound::new(Addr::Ip { ip, scope: None }, Some(port))
    }
}

/// The stable machine-readable classification (`verdict` in JSON, kebab-case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// 127.0.0.0/8 or ::1.
    Loopback,
    /// 0.0.0.0: every IPv4 address.
    AllIpv4,
    /// `::` with V6ONLY=0: every IPv6 and IPv4 address.
    DualStack,
    /// `::` with V6ONLY=1.
    Ipv6OnlyAny,
    /// `::` with V6ONLY unknown.
    Ipv6Any,
    /// Wildcard address restricted to one interface by SO_BINDTODEVICE.
    DeviceBound,
    /// One unicast address assigned here (or not looked up).
    Specific,
    /// fe80::/10 or 169.254.0.0/16: one link only.
    LinkLocal,
    /// ::ffff:a.b.c.d on an AF_INET6 socket: IPv4 traffic only.
    Ipv4Mapped,
    /// A specific address assigned to no interface (IP_FREEBIND/IP_TRANSPARENT, or a bind
    /// that will fail with EADDRNOTAVAIL).
    NonLocal,
    /// A multicast group (UDP receivers).
    Multicast,
    /// 255.255.255.255 or a subnet broadcast address.
    Broadcast,
    UnixPath,
    UnixAbstract,
    UnixAutobind,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Loopback => "loopback",
            Kind::AllIpv4 => "all-ipv4",
            Kind::DualStack => "dual-stack",
            Kind::Ipv6OnlyAny => "ipv6-only-any",
            Kind::Ipv6Any => "ipv6-any",
            Kind::DeviceBound => "device-bound",
            Kind::Specific => "specific",
            Kind::LinkLocal => "link-local",
            Kind::Ipv4Mapped => "ipv4-mapped",
            Kind::NonLocal => "non-local",
            Kind::Multicast => "multicast",
            Kind::Broadcast => "broadcast",
            Kind::UnixPath => "unix-path",
            Kind::UnixAbstract => "unix-abstract",
            Kind::UnixAutobind => "unix-autobind",
        }
    }
}

/// Modifiers that hold on top of the kind (`verdict_flags` in JSON, kebab-case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    /// Port below ip_unprivileged_port_start: needs CAP_NET_BIND_SERVICE.
    PrivilegedPort,
    /// Port 0 requested: the kernel chose (or will choose) an ephemeral port.
    EphemeralPort,
    /// SO_BINDTODEVICE.
    DeviceBound,
    /// IP_FREEBIND / IPV6_FREEBIND.
    Freebind,
    /// IP_TRANSPARENT / IPV6_TRANSPARENT.
    Transparent,
    /// Link-local IPv6 without a scope id: bind fails with EINVAL.
    MissingScope,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::PrivilegedPort => "privileged-port",
            Flag::EphemeralPort => "ephemeral-port",
            Flag::DeviceBound => "device-bound",
            Flag::Freebind => "freebind",
            Flag::Transparent => "transparent",
            Flag::MissingScope => "missing-scope",
        }
    }
}

/// An entry of the RFC 6890 / IANA special-purpose address registries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Range {
    /// CIDR prefix, e.g. `192.0.2.0/24`.
    pub prefix: &'static str,
    /// e.g. `documentation (TEST-NET-1)`.
    pub name: &'static str,
    /// e.g. `RFC 5737`.
    pub rfc: &'static str,
}

/// The classification of one address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub kind: Kind,
    pub flags: Vec<Flag>,
    /// The most specific special-purpose range the IP address falls in (None: ordinary
    /// global unicast, or not an IP address).
    pub range: Option<Range>,
    /// One plain-language sentence.
    pub sentence: String,
}

/// RFC 6890 and the IANA special-purpose registries (the fourth seed's tables), plus
/// 0.0.0.0/32 and fec0::/10: (prefix, name, reference).
const RANGES: &[(&str, &str, &str)] = &[
    ("0.0.0.0/8", "\"this\" network", "RFC 1122"),
    (
        "0.0.0.0/32",
        "\"this\" host (unspecified address)",
        "RFC 1122",
    ),
    ("10.0.0.0/8", "private use", "RFC 1918"),
    (
        "100.64.0.0/10",
        "shared address space (carrier-grade NAT)",
        "RFC 6598",
    ),
    ("127.0.0.0/8", "loopback", "RFC 1122"),
    ("169.254.0.0/16", "link-local", "RFC 3927"),
    ("172.16.0.0/12", "private use", "RFC 1918"),
    ("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
    ("192.88.99.0/24", "6to4 relay anycast", "RFC 3068"),
    ("192.168.0.0/16", "private use", "RFC 1918"),
    ("198.18.0.0/15", "benchmarking", "RFC 2544"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
    ("224.0.0.0/4", "multicast", "RFC 5771"),
    ("240.0.0.0/4", "reserved for future use", "RFC 1112"),
    ("255.255.255.255/32", "limited broadcast", "RFC 919"),
    ("::/128", "unspecified address", "RFC 4291"),
    ("::1/128", "loopback address", "RFC 4291"),
    ("::/96", "IPv4-compatible (deprecated)", "RFC 4291"),
    ("::ffff:0:0/96", "IPv4-mapped address", "RFC 4291"),
    ("64:ff9b::/96", "IPv4-IPv6 translation", "RFC 6052"),
    ("100::/64", "discard-only", "RFC 6666"),
    ("2001::/23", "IETF protocol assignments", "RFC 2928"),
    ("2001::/32", "Teredo", "RFC 4380"),
    ("2001:2::/48", "benchmarking", "RFC 5180"),
    ("2001:10::/28", "ORCHID", "RFC 4843"),
    ("2001:20::/28", "ORCHIDv2", "RFC 7343"),
    ("2001:db8::/32", "documentation", "RFC 3849"),
    ("2002::/16", "6to4", "RFC 3056"),
    ("fc00::/7", "unique local (ULA)", "RFC 4193"),
    ("fe80::/10", "link-local unicast", "RFC 4291"),
    ("fec0::/10", "site-local (deprecated)", "RFC 3879"),
    ("ff00::/8", "multicast", "RFC 4291"),
];

/// The table with its prefixes parsed (once).
fn ranges() -> &'static [(IpAddr, u8, Range)] {
    use std::sync::OnceLock;
    static PARSED: OnceLock<Vec<(IpAddr, u8, Range)>> = OnceLock::new();
    PARSED.get_or_init(|| {
        RANGES
            .iter()
            .map(|&(prefix, name, rfc)| {
                let (net, len) = prefix.split_once('/').expect("CIDR in RANGES");
                (
                    net.parse().expect("address in RANGES"),
                    len.parse().expect("length in RANGES"),
                    Range { prefix, name, rfc },
                )
            })
            .collect()
    })
}

/// The most specific special-purpose range `ip` falls in.
pub fn special_range(ip: IpAddr) -> Option<Range> {
    ranges()
        .iter()
        .filter(|(net, len, _)| in_prefix(ip, *net, *len))
        .max_by_key(|(_, len, _)| *len)
        .map(|(_, _, r)| *r)
}

/// Whether `ip` is in the prefix `net/len` (of the same family).
pub fn in_prefix(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => u32::from(a) & mask32(len) == u32::from(n) & mask32(len),
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            u128::from(a) & mask128(len) == u128::from(n) & mask128(len)
        }
        _ => false,
    }
}

fn mask32(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

const LOOPBACK_WORDS: &str = "loopback only — not reachable from other hosts, nor from outside this container/network \
     namespace";

/// Classify `b` and say it in one sentence.
pub fn classify(b: &Bound) -> Verdict {
    let mut v = classify_in_words(b);
    if let Addr::Ip { ip, .. } = &b.addr {
        v.range = special_range(*ip);
    }
    v
}

/// Room for the clauses that follow an address's words (a port's, V6ONLY's, a device's):
/// the sentence is made once, in one buffer.
const CLAUSES: usize = 192;

/// [`classify`] without the special-purpose range (`range` is None): what the story needs
/// for every socket bound, where looking the address up in the registry's table cost a
/// third of the rest.
pub fn classify_in_words(b: &Bound) -> Verdict {
    let mut flags = Vec::new();
    let (kind, mut sentence) = match &b.addr {
        Addr::UnixPath { path } => {
            let perms = match b.perms {
                Some(p) => format!(
                    " (mode {:04o}, owner {}:{}: connecting needs write permission on it)",
                    p.mode & 0o7777,
                    p.uid,
                    p.gid
                ),
                None => " (connecting needs write permission on it)".into(),
            };
            (
                Kind::UnixPath,
                format!(
                    "a filesystem socket at {path}{perms}: reachable by any local process that \
                     can see this path, whatever its network namespace, never from another host"
                ),
            )
        }
        Addr::UnixAbstract { name } => (
            Kind::UnixAbstract,
            format!(
                "an abstract socket @{name}: no file and no permissions, any process in this \
                 network namespace can connect, none outside it"
            ),
        ),
        Addr::UnixAutobind => (
            Kind::UnixAutobind,
            "an abstract name the kernel picked (autobind, 5 hex digits): reachable from this \
             network namespace only, by whoever learns the name"
                .to_string(),
        ),
        Addr::Ip { ip, scope } => {
            let (kind, words) = classify_ip(b, *ip, scope.as_deref(), &mut flags);
            let words = match words {
                Cow::Borrowed(w) => {
                    let mut s = String::with_capacity(w.len() + CLAUSES);
                    s.push_str(w);
                    s
                }
                Cow::Owned(s) => s,
            };
            (kind, words)
        }
    };
    if b.freebind {
        flags.push(Flag::Freebind);
    }
    if b.transparent {
        flags.push(Flag::Transparent);
    }
    if let Some(dev) = &b.device {
        flags.push(Flag::DeviceBound);
        if kind != Kind::DeviceBound {
            let _ = write!(
                sentence,
                "; and only for packets arriving on {dev} (SO_BINDTODEVICE)"
            );
        }
    }
    if let Some(port) = b.port {
        let start = b.unprivileged_port_start.unwrap_or(1024);
        if port == 0 {
            flags.push(Flag::EphemeralPort);
            sentence.push_str(
                "; port 0: the kernel picks a free ephemeral port (see ip_local_port_range)",
            );
        } else if b.port_kernel_chosen {
            // Every socket of a bind storm says this: no formatting machinery for it.
            flags.push(Flag::EphemeralPort);
            sentence.push_str("; port ");
            sentence.push_str(itoa::Buffer::new().format(port));
            sentence.push_str(" was chosen by the kernel (port 0 was asked)");
        }
        if port != 0 && u32::from(port) < start {
            flags.push(Flag::PrivilegedPort);
            let _ = write!(
                sentence,
                "; port {port} is privileged (below ip_unprivileged_port_start={start}): binding \
                 needs root or CAP_NET_BIND_SERVICE"
            );
        }
    }
    if b.protocol.as_deref().is_some_and(|p| p.starts_with("udp")) {
        sentence.push_str("; UDP: receives datagrams once bound, no listen() involved");
    }
    Verdict {
        kind,
        flags,
        range: None,
        sentence,
    }
}

/// The kind and words of an IP address; our own words borrowed (most sockets bind a
/// wildcard or loopback, whose words need nothing of the address).
fn classify_ip(
    b: &Bound,
    ip: IpAddr,
    scope: Option<&str>,
    flags: &mut Vec<Flag>,
) -> (Kind, Cow<'static, str>) {
    if ip.is_unspecified() {
        let base: (Kind, Cow<str>) = match (ip, b.v6only) {
            (IpAddr::V4(_), _) => (
                Kind::AllIpv4,
                "every IPv4 address on every interface (0.0.0.0); IPv6 clients need another \
                 socket"
                    .into(),
            ),
            (IpAddr::V6(_), Some(false)) => (
                Kind::DualStack,
                "dual-stack on every interface: accepts IPv6 and IPv4 (IPv4 clients appear as \
                 ::ffff:a.b.c.d)"
                    .into(),
            ),
            (IpAddr::V6(_), Some(true)) => (
                Kind::Ipv6OnlyAny,
                "IPv6 only (V6ONLY=1) on every interface; IPv4 clients need another socket on \
                 0.0.0.0"
                    .into(),
            ),
            (IpAddr::V6(_), None) => (
                Kind::Ipv6Any,
                "every IPv6 address on every interface; dual-stack (IPv4 too) unless IPV6_V6ONLY \
                 is set, whose default is net.ipv6.bindv6only (0 = dual-stack)"
                    .into(),
            ),
        };
        return match &b.device {
            Some(dev) => (
                Kind::DeviceBound,
                format!(
                    "{}, but only on interface {dev} (SO_BINDTODEVICE)",
                    base.1.split(';').next().unwrap_or_default()
                )
                .into(),
            ),
            None => base,
        };
    }
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        let inner = classify_ip(
            &Bound {
                v6only: None,
                ..b.clone()
            },
            IpAddr::V4(v4),
            None,
            &mut Vec::new(),
        );
        let v6only = if b.v6only == Some(true) {
            " — but this socket has V6ONLY=1, so the kernel refuses the bind (EINVAL)"
        } else {
            ""
        };
        return (
            Kind::Ipv4Mapped,
            format!(
                "IPv4-mapped: this IPv6 socket serves IPv4 traffic to {v4} only{v6only}: {}",
                inner.1
            )
            .into(),
        );
    }
    if ip.is_loopback() {
        return (Kind::Loopback, LOOPBACK_WORDS.into());
    }
    if ip.is_multicast() {
        return (
            Kind::Multicast,
            format!(
                "multicast group {ip}: receives datagrams sent to the group (UDP, after joining \
                 it); TCP cannot listen on it"
            )
            .into(),
        );
    }
    if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return (
            Kind::Broadcast,
            "the limited broadcast address: receives broadcast datagrams only (UDP)".into(),
        );
    }
    let owner = match &b.owner {
        Some(Ownership::Iface(name)) => format!(" (on {name})"),
        _ => String::new(),
    };
    if b.owner == Some(Ownership::NotAssigned) {
        let how = match (b.freebind, b.transparent) {
            (_, true) => "IP_TRANSPARENT lets it take traffic steered here (TPROXY)",
            (true, false) => {
                "IP_FREEBIND lets it bind; it receives traffic once the address \
                              is assigned"
            }
            (false, false) => {
                "binding it fails with EADDRNOTAVAIL unless IP_FREEBIND or \
                               IP_TRANSPARENT is set (or net.ipv4.ip_nonlocal_bind=1)"
            }
        };
        return (
            Kind::NonLocal,
            format!("{ip} is not assigned to any interface in this network namespace: {how}")
                .into(),
        );
    }
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    if link_local {
        let scope = scope.or(b.device.as_deref());
        return match (ip, scope) {
            (IpAddr::V6(_), None) => {
                flags.push(Flag::MissingScope);
                (
                    Kind::LinkLocal,
                    format!(
                        "link-local {ip}: valid on one link only, so it needs an interface \
                         (write {ip}%eth0): without one the kernel refuses the bind (EINVAL)"
                    )
                    .into(),
                )
            }
            (IpAddr::V6(_), Some(s)) => (
                Kind::LinkLocal,
                format!(
                    "link-local {ip} on {s}: reachable only from hosts on that link, and they \
                     must name their interface too ({ip}%<their interface>)"
                )
                .into(),
            ),
            (IpAddr::V4(_), _) => (
                Kind::LinkLocal,
                format!(
                    "link-local {ip}{owner}: reachable only from hosts on the same link, never \
                     routed"
                )
                .into(),
            ),
        };
    }
    (
        Kind::Specific,
        format!(
            "one address only: {ip}{owner}; connections to this host's other addresses are \
             refused"
        )
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn kinds_table() {
        struct Case {
            b: Bound,
            kind: Kind,
            flags: &'static [Flag],
            range: Option<&'static str>,
            words: &'static str,
        }
        let with = |mut b: Bound, f: &dyn Fn(&mut Bound)| {
            f(&mut b);
            b
        };
        let cases = [
            Case {
                b: Bound::ip(ip("127.0.0.1"), 8080),
                kind: Kind::Loopback,
                flags: &[],
                range: Some("127.0.0.0/8"),
                words: "not reachable from other hosts, nor from outside this container",
            },
            Case {
                b: Bound::ip(ip("127.3.4.5"), 8080),
                kind: Kind::Loopback,
                flags: &[],
                range: Some("127.0.0.0/8"),
                words: "loopback only",
            },
            Case {
                b: Bound::ip(ip("::1"), 631),
                kind: Kind::Loopback,
                flags: &[Flag::PrivilegedPort],
                range: Some("::1/128"),
                words: "port 631 is privileged",
            },
            Case {
                b: Bound::ip(ip("0.0.0.0"), 80),
                kind: Kind::AllIpv4,
                flags: &[Flag::PrivilegedPort],
                range: Some("0.0.0.0/32"),
                words: "every IPv4 address on every interface",
            },
            Case {
                b: with(Bound::ip(ip("::"), 8080), &|b| b.v6only = Some(false)),
                kind: Kind::DualStack,
                flags: &[],
                range: Some("::/128"),
                words: "dual-stack on every interface: accepts IPv6 and IPv4 (IPv4 clients \
                        appear as ::ffff:a.b.c.d)",
            },
            Case {
                b: with(Bound::ip(ip("::"), 22), &|b| b.v6only = Some(true)),
                kind: Kind::Ipv6OnlyAny,
                flags: &[Flag::PrivilegedPort],
                range: Some("::/128"),
                words: "IPv6 only (V6ONLY=1) on every interface",
            },
            Case {
                b: Bound::ip(ip("::"), 2222),
                kind: Kind::Ipv6Any,
                flags: &[],
                range: Some("::/128"),
                words: "net.ipv6.bindv6only",
            },
            Case {
                b: with(Bound::ip(ip("0.0.0.0"), 53), &|b| {
                    b.device = Some("eth0".into());
                    b.protocol = Some("udp".into());
                }),
                kind: Kind::DeviceBound,
                flags: &[Flag::DeviceBound, Flag::PrivilegedPort],
                range: Some("0.0.0.0/32"),
                words: "but only on interface eth0 (SO_BINDTODEVICE)",
            },
            Case {
                b: with(Bound::ip(ip("192.168.0.24"), 80), &|b| {
                    b.owner = Some(Ownership::Iface("enx001e".into()));
                    b.unprivileged_port_start = Some(80);
                }),
                kind: Kind::Specific,
                flags: &[],
                range: Some("192.168.0.0/16"),
                words: "one address only: 192.168.0.24 (on enx001e)",
            },
            Case {
                b: with(Bound::ip(ip("192.0.2.1"), 80), &|b| {
                    b.owner = Some(Ownership::NotAssigned);
                    b.freebind = true;
                }),
                kind: Kind::NonLocal,
                flags: &[Flag::Freebind, Flag::PrivilegedPort],
                range: Some("192.0.2.0/24"),
                words: "not assigned to any interface in this network namespace: IP_FREEBIND",
            },
            Case {
                b: with(Bound::ip(ip("203.0.113.9"), 443), &|b| {
                    b.owner = Some(Ownership::NotAssigned)
                }),
                kind: Kind::NonLocal,
                flags: &[Flag::PrivilegedPort],
                range: Some("203.0.113.0/24"),
                words: "EADDRNOTAVAIL",
            },
            Case {
                b: Bound::new(
                    Addr::Ip {
                        ip: ip("fe80::1"),
                        scope: Some("eth0".into()),
                    },
                    Some(8080),
                ),
                kind: Kind::LinkLocal,
                flags: &[],
                range: Some("fe80::/10"),
                words: "link-local fe80::1 on eth0",
            },
            Case {
                b: Bound::ip(ip("fe80::1"), 8080),
                kind: Kind::LinkLocal,
                flags: &[Flag::MissingScope],
                range: Some("fe80::/10"),
                words: "EINVAL",
            },
            Case {
                b: Bound::ip(ip("169.254.1.1"), 8080),
                kind: Kind::LinkLocal,
                flags: &[],
                range: Some("169.254.0.0/16"),
                words: "never routed",
            },
            Case {
                b: Bound::ip(ip("::ffff:127.0.0.1"), 8080),
                kind: Kind::Ipv4Mapped,
                flags: &[],
                range: Some("::ffff:0:0/96"),
                words: "IPv4 traffic to 127.0.0.1 only: loopback only",
            },
            Case {
                b: with(Bound::ip(ip("127.0.0.1"), 0), &|b| {
                    b.protocol = Some("udp".into())
                }),
                kind: Kind::Loopback,
                flags: &[Flag::EphemeralPort],
                range: Some("127.0.0.0/8"),
                words: "UDP: receives datagrams once bound",
            },
            Case {
                b: with(Bound::ip(ip("10.1.2.3"), 41235), &|b| {
                    b.port_kernel_chosen = true
                }),
                kind: Kind::Specific,
                flags: &[Flag::EphemeralPort],
                range: Some("10.0.0.0/8"),
                words: "port 41235 was chosen by the kernel",
            },
            Case {
                b: Bound::ip(ip("239.1.2.3"), 5353),
                kind: Kind::Multicast,
                flags: &[],
                range: Some("224.0.0.0/4"),
                words: "multicast group 239.1.2.3",
            },
            Case {
                b: Bound::ip(ip("2001:db8::5"), 8080),
                kind: Kind::Specific,
                flags: &[],
                range: Some("2001:db8::/32"),
                words: "one address only: 2001:db8::5",
            },
            Case {
                b: Bound::ip(ip("fd12::5"), 8080),
                kind: Kind::Specific,
                flags: &[],
                range: Some("fc00::/7"),
                words: "one address only",
            },
            Case {
                b: Bound::ip(ip("100.64.1.1"), 8080),
                kind: Kind::Specific,
                flags: &[],
                range: Some("100.64.0.0/10"),
                words: "one address only",
            },
            Case {
                b: Bound::ip(ip("8.8.8.8"), 8080),
                kind: Kind::Specific,
                flags: &[],
                range: None,
                words: "one address only",
            },
            Case {
                b: with(
                    Bound::new(
                        Addr::UnixPath {
                            path: "/run/x.sock".into(),
                        },
                        None,
                    ),
                    &|b| {
                        b.perms = Some(FilePerms {
                            mode: 0o140660,
                            uid: 0,
                            gid: 33,
                        })
                    },
                ),
                kind: Kind::UnixPath,
                flags: &[],
                range: None,
                words: "/run/x.sock (mode 0660, owner 0:33",
            },
            Case {
                b: Bound::new(
                    Addr::UnixAbstract {
                        name: "dbus".into(),
                    },
                    None,
                ),
                kind: Kind::UnixAbstract,
                flags: &[],
                range: None,
                words: "an abstract socket @dbus",
            },
            Case {
                b: Bound::new(Addr::UnixAutobind, None),
                kind: Kind::UnixAutobind,
                flags: &[],
                range: None,
                words: "autobind",
            },
        ];
        for c in cases {
            let v = classify(&c.b);
            assert_eq!(v.kind, c.kind, "{:?}: {}", c.b, v.sentence);
            assert_eq!(v.flags, c.flags, "{:?}: {}", c.b, v.sentence);
            assert_eq!(v.range.map(|r| r.prefix), c.range, "{:?}", c.b);
            assert!(
                v.sentence.contains(c.words),
                "{:?}: `{}` lacks `{}`",
                c.b,
                v.sentence,
                c.words
            );
            assert!(!v.sentence.contains('\n'));
        }
    }

    #[test]
    fn ranges_pick_the_most_specific() {
        let name = |s: &str| special_range(ip(s)).map(|r| (r.prefix, r.name, r.rfc));
        assert_eq!(
            name("192.0.2.7"),
            Some(("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"))
        );
        assert_eq!(name("0.1.2.3").unwrap().0, "0.0.0.0/8");
        assert_eq!(name("255.255.255.255").unwrap().0, "255.255.255.255/32");
        assert_eq!(name("2001:0:1::1").unwrap().1, "Teredo");
        assert_eq!(name("2001:100::1").unwrap().1, "IETF protocol assignments");
        assert_eq!(name("::1.2.3.4").unwrap().0, "::/96");
        assert_eq!(name("64:ff9b::1.2.3.4").unwrap().0, "64:ff9b::/96");
        assert_eq!(name("fec0::1").unwrap().0, "fec0::/10");
        assert_eq!(name("ff02::1").unwrap().0, "ff00::/8");
        assert_eq!(name("172.31.255.255").unwrap().0, "172.16.0.0/12");
        assert_eq!(name("172.32.0.0"), None);
        assert_eq!(name("198.19.0.1").unwrap().0, "198.18.0.0/15");
    }

    #[test]
    fn json_names_are_stable() {
        let v = classify(&Bound::ip(ip("::"), 80));
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["kind"], "ipv6-any");
        assert_eq!(j["flags"][0], "privileged-port");
        assert_eq!(j["range"]["prefix"], "::/128");
        for k in [
            Kind::Loopback,
            Kind::AllIpv4,
            Kind::DualStack,
            Kind::Ipv6OnlyAny,
            Kind::Ipv6Any,
            Kind::DeviceBound,
            Kind::Specific,
            Kind::LinkLocal,
            Kind::Ipv4Mapped,
            Kind::NonLocal,
            Kind::Multicast,
            Kind::Broadcast,
            Kind::UnixPath,
            Kind::UnixAbstract,
            Kind::UnixAutobind,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for f in [
            Flag::PrivilegedPort,
            Flag::EphemeralPort,
            Flag::DeviceBound,
            Flag::Freebind,
            Flag::Transparent,
            Flag::MissingScope,
        ] {
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
        }
    }
}
