//! Parsing the notations listening addresses reach people in (`lsn-trace explain`):
//! `127.0.0.1:8080`, `[::]:22`, `:::22`, `*:22`, `:22`, `localhost:8080`, the ambiguous
//! `::1:8080`, `[fe80::1%eth0]:80`, `127.0.0.1:3000-4000`, `/run/x.sock`, `unix:/run/x.sock`,
//! `@abstract`, and bare addresses without a port.
//!
//! Strict like inet_pton(3): inet_aton(3)'s legacy forms (`127.1`, `0x7f.1`, `017.0.0.1`,
//! `2130706433`) are rejected, with what they would mean there. `Display` writes a
//! parse result back in a notation that parses to the same result (tested as a property).
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// sun_path is 108 bytes; a pathname needs its NUL, an abstract name its leading NUL.
pub const SUN_PATH_MAX: usize = 107;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A numeric address; `scope` (IPv6 only) is an interface name or index as written.
    Ip { ip: IpAddr, scope: Option<String> },
    /// `*` or nothing before the colon: every address, family left to the program.
    Any,
    /// A host name, resolved by the program when it binds.
    Name(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ports {
    None,
    One(u16),
    /// Inclusive, `lo <= hi`.
    Range(u16, u16),
}

/// One reading of an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Inet {
        host: Host,
        ports: Ports,
    },
    UnixPath(String),
    /// The name after `@`.
    UnixAbstract(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    One(Addr),
    /// Unbracketed IPv6 text whose last group is also a valid port (`::1:8080`): the whole
    /// text as an address without a port, or netstat's `ADDRESS:PORT`.
    Ambiguous {
        text: String,
        as_address: Addr,
        as_host_port: Addr,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    Empty,
    /// Contains whitespace or control characters (inet_aton ignores what follows them).
    Junk(String),
    /// Only inet_aton(3)'s legacy forms accept it; there it means `means`.
    LegacyIpv4 {
        text: String,
        means: Ipv4Addr,
    },
    BadPort {
        text: String,
    },
    BadRange {
        lo: u16,
        hi: u16,
    },
    BadIpv6 {
        text: String,
    },
    BracketedIpv4 {
        text: String,
    },
    ScopeOnIpv4 {
        text: String,
    },
    BadScope {
        text: String,
    },
    UnixTooLong {
        len: usize,
    },
    BadHost {
        text: String,
    },
    /// Pasted notation: a port that is neither a number nor a known service name.
    UnknownService {
        name: String,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("empty address"),
            ParseError::Junk(t) => write!(
                f,
                "`{}` contains whitespace or control characters: an address is one word \
                 (inet_aton would silently drop what follows; inet_pton and bind do not)",
                t.escape_debug()
            ),
            ParseError::LegacyIpv4 { text, means } => write!(
                f,
                "`{text}` is not a dotted-quad IPv4 address (inet_pton rejects it); only the \
                 legacy inet_aton(3) forms (octal, hex, fewer than 4 parts, one 32-bit number) \
                 accept it, and there it means {means}: write {means}"
            ),
            ParseError::BadPort { text } => write!(
                f,
                "`{text}` is not a port: a port is a decimal number from 0 to 65535, or a range \
                 LOW-HIGH"
            ),
            ParseError::BadRange { lo, hi } => {
                write!(f, "port range {lo}-{hi} is empty: the low port comes first")
            }
            ParseError::BadIpv6 { text } => write!(
                f,
                "`{text}` is not an IPv6 address (eight groups of up to 4 hex digits, `::` once \
                 for a run of zeros, optionally ending in a dotted-quad IPv4)"
            ),
            ParseError::BracketedIpv4 { text } => write!(
                f,
                "`[{text}]`: brackets are for IPv6 addresses; write IPv4 as {text}:PORT"
            ),
            ParseError::ScopeOnIpv4 { text } => write!(
                f,
                "`{text}`: a %scope (interface) belongs to IPv6 link-local addresses only; \
                 for IPv4 bind to the interface's address, or use SO_BINDTODEVICE"
            ),
            ParseError::BadScope { text } => write!(
                f,
                "`{text}` is not an interface name or index (1 to 15 characters, no `/`, `:`, \
                 `%`, `]` or whitespace)"
            ),
            ParseError::UnixTooLong { len } => write!(
                f,
                "a unix socket name of {len} bytes does not fit sun_path (at most \
                 {SUN_PATH_MAX} bytes)"
            ),
            ParseError::UnknownService { name } => write!(
                f,
                "`{name}` is not a port (a decimal number from 0 to 65535, or LOW-HIGH) and not \
                 a service name of the services database"
            ),
            ParseError::BadHost { text } => write!(
                f,
                "`{text}` is not an address: expected IPv4:PORT, [IPv6]:PORT, *:PORT, :PORT, \
                 HOSTNAME:PORT, /path/to.sock, unix:/path or @abstract (PORT may be LOW-HIGH or \
                 left out)"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

pub fn parse(input: &str) -> Result<Parsed, ParseError> {
    if input.is_empty() {
        return Err(ParseError::Empty);
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ParseError::Junk(input.into()));
    }
    if let Some(name) = input.strip_prefix('@') {
        return unix_len(name).map(|_| Parsed::One(Addr::UnixAbstract(name.into())));
    }
    let path = input.strip_prefix("unix:").unwrap_or(input);
    if path.starts_with('/') || path.starts_with("./") || path.starts_with("../") {
        return unix_len(path).map(|_| Parsed::One(Addr::UnixPath(path.into())));
    }
    if let Some(rest) = input.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(ParseError::BadHost { text: input.into() });
        };
        let host = bracketed(inside)?;
        let ports = match after {
            "" => Ports::None,
            _ => match after.strip_prefix(':') {
                Some(p) => ports(p)?,
                None => return Err(ParseError::BadHost { text: input.into() }),
            },
        };
        return Ok(Parsed::One(Addr::Inet { host, ports }));
    }
    let colons = input.matches(':').count();
    if colons >= 2 {
        // Unbracketed IPv6: the whole text as an address, or netstat's ADDRESS:PORT.
        let whole = ipv6_with_scope(input);
        let split = input.rsplit_once(':').and_then(|(h, p)| {
            let host = ipv6_with_scope(h).ok()?;
            let ports = ports(p).ok()?;
            Some(Addr::Inet { host, ports })
        });
        return match (whole, split) {
            (Ok(host), None) => Ok(Parsed::One(Addr::Inet {
                host,
                ports: Ports::None,
            })),
            (Err(_), Some(a)) => Ok(Parsed::One(a)),
            (Ok(host), Some(a)) => Ok(Parsed::Ambiguous {
                text: input.into(),
                as_address: Addr::Inet {
                    host,
                    ports: Ports::None,
                },
                as_host_port: a,
            }),
            (Err(e), None) => Err(e),
        };
    }
    let (host_text, port_text) = match input.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (input, None),
    };
    // A bare number is a port for some programs (`listen 80`) but an address for inet_aton:
    // only `:80` is taken as a port, so say what a bare number would mean.
    let host = match host_text {
        "" | "*" => Host::Any,
        h => ipv4_or_name(h)?,
    };
    let ports = match port_text {
        Some(p) => ports(p)?,
        None => Ports::None,
    };
    Ok(Parsed::One(Addr::Inet { host, ports }))
}

/// The inside of `[…]`: IPv6, with a scope.
fn bracketed(inside: &str) -> Result<Host, ParseError> {
    ipv6_with_scope(inside).map_err(|e| {
        if inside.parse::<Ipv4Addr>().is_ok() {
            ParseError::BracketedIpv4 {
                text: inside.into(),
            }
        } else {
            e
        }
    })
}

/// What a pasted address carries beyond [`parse`]'s grammar, in the notation `ss`, `netstat`
/// and `lsof` print: `127.0.0.53%lo:53` and `[::]%eth0:80` (ss's `%ifname` after the address
/// on any family: SO_BINDTODEVICE), `*:ssh` (a service name), `0.0.0.0:*` (any port, the
/// peer column of a listener).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pasted {
    pub parsed: Parsed,
    /// The interface after `%` outside an IPv6 address's brackets, or after an IPv4
    /// address, `*` or a name.
    pub device: Option<String>,
    /// The port as written, when it was a service name (`parsed` has its number).
    pub service: Option<String>,
    /// The port was written `*`.
    pub any_port: bool,
}

impl From<Parsed> for Pasted {
    /// An address in [`parse`]'s grammar: nothing more said.
    fn from(parsed: Parsed) -> Pasted {
        Pasted {
            parsed,
            device: None,
            service: None,
            any_port: false,
        }
    }
}

/// Parse what people paste. Whatever [`parse`] accepts reads the same here, with no
/// device, service or `*`; `has_port` says the text is a tool's `ADDRESS:PORT` column, so
/// `::1:8080` is netstat's `[::1]:8080`, not ambiguous. `service` is the services database
/// for the socket's protocol.
pub fn parse_pasted(
    input: &str,
    has_port: bool,
    service: &dyn Fn(&str) -> Option<u16>,
) -> Result<Pasted, ParseError> {
    match parse(input) {
        Ok(Parsed::Ambiguous { as_host_port, .. }) if has_port => {
            return Ok(Parsed::One(as_host_port).into());
        }
        Ok(p) => return Ok(p.into()),
        Err(e @ (ParseError::Empty | ParseError::Junk(_) | ParseError::UnixTooLong { .. })) => {
            return Err(e);
        }
        Err(_) => {}
    }
    // [v6]%dev:port, [v6]:port; unbracketed v6 with a port that is not a number; else
    // host[%dev][:port].
    let (host_text, port_text, device) = if let Some(rest) = input.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(ParseError::BadHost { text: input.into() });
        };
        let (device, port) = match after.strip_prefix('%') {
            Some(d) => match d.split_once(':') {
                Some((d, p)) => (Some(d), Some(p)),
                None => (Some(d), None),
            },
            None => match after {
                "" => (None, None),
                _ => match after.strip_prefix(':') {
                    Some(p) => (None, Some(p)),
                    None => return Err(ParseError::BadHost { text: input.into() }),
                },
            },
        };
        (Err(inside), port, device)
    } else if input.matches(':').count() >= 2 {
        let (h, p) = input.rsplit_once(':').expect("two colons");
        (Ok(h), Some(p), None)
    } else {
        let (h, p) = match input.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (input, None),
        };
        match h.split_once('%') {
            Some((h, d)) => (Ok(h), p, Some(d)),
            None => (Ok(h), p, None),
        }
    };
    if let Some(d) = device
        && !is_ifname(d)
    {
        return Err(ParseError::BadScope { text: d.into() });
    }
    let host = match host_text {
        Err(inside) => bracketed(inside)?,
        Ok(h) if h.contains(':') => ipv6_with_scope(h)?,
        Ok("" | "*") => Host::Any,
        Ok(h) => ipv4_or_name(h)?,
    };
    let (ports, service_name, any_port) = match port_text {
        None => (Ports::None, None, false),
        Some("*") => (Ports::None, None, true),
        Some(p) if p.bytes().any(|b| b.is_ascii_alphabetic()) => {
            let port = is_service_name(p)
                .then(|| service(p))
                .flatten()
                .ok_or_else(|| ParseError::UnknownService { name: p.into() })?;
            (Ports::One(port), Some(p.to_string()), false)
        }
        Some(p) => (ports(p)?, None, false),
    };
    Ok(Pasted {
        parsed: Parsed::One(Addr::Inet { host, ports }),
        device: device.map(str::to_owned),
        service: service_name,
        any_port,
    })
}

/// The characters /etc/services names are made of (letters, digits, `-`, `_`, `.`, `+`).
fn is_service_name(p: &str) -> bool {
    p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
}

fn unix_len(s: &str) -> Result<(), ParseError> {
    if s.len() > SUN_PATH_MAX {
        return Err(ParseError::UnixTooLong { len: s.len() });
    }
    Ok(())
}

fn ipv6_with_scope(s: &str) -> Result<Host, ParseError> {
    let (addr, scope) = match s.split_once('%') {
        Some((a, sc)) => (a, Some(sc)),
        None => (s, None),
    };
    let ip: Ipv6Addr = addr
        .parse()
        .map_err(|_| ParseError::BadIpv6 { text: addr.into() })?;
    if let Some(sc) = scope
        && !is_ifname(sc)
    {
        return Err(ParseError::BadScope { text: sc.into() });
    }
    Ok(Host::Ip {
        ip: IpAddr::V6(ip),
        scope: scope.map(str::to_owned),
    })
}

/// An interface name or index as a scope or device may be written (IFNAMSIZ - 1 bytes).
fn is_ifname(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && !s.contains(['/', ':', '%', ']', '['])
}

fn ipv4_or_name(h: &str) -> Result<Host, ParseError> {
    if let Some((addr, _)) = h.split_once('%') {
        if addr.parse::<Ipv4Addr>().is_ok() || inet_aton(addr).is_some() {
            return Err(ParseError::ScopeOnIpv4 { text: h.into() });
        }
        return Err(ParseError::BadHost { text: h.into() });
    }
    if let Ok(ip) = h.parse::<Ipv4Addr>() {
        return Ok(Host::Ip {
            ip: IpAddr::V4(ip),
            scope: None,
        });
    }
    if let Some(means) = inet_aton(h) {
        return Err(ParseError::LegacyIpv4 {
            text: h.into(),
            means,
        });
    }
    if is_hostname(h) {
        return Ok(Host::Name(h.into()));
    }
    Err(ParseError::BadHost { text: h.into() })
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, at most
/// 63 bytes each, 253 in all, with a non-numeric last label (else it reads as an address).
fn is_hostname(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.is_empty() || h.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = h.split('.').collect();
    let ok = labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    });
    ok && !labels.last().unwrap().bytes().all(|b| b.is_ascii_digit())
}

/// What glibc's inet_aton would make of `s` (the whole string: trailing junk is rejected
/// earlier), or None if it rejects it too.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut vals = Vec::with_capacity(4);
    for p in &parts {
        vals.push(c_ulong(p)?);
    }
    let (last, init) = vals.split_last()?;
    if init.iter().any(|&v| v > 255) {
        return None;
    }
    let last_bits = 8 * (5 - parts.len() as u32);
    if last_bits < 64 && *last >= 1u64 << last_bits.min(32) {
        return None;
    }
    let mut x: u32 = 0;
    for (i, v) in init.iter().enumerate() {
        x |= (*v as u32) << (24 - 8 * i);
    }
    Some(Ipv4Addr::from(x | *last as u32))
}

/// strtoul(s, _, 0) accepting the whole string: `0x` hex, leading `0` octal, else decimal.
fn c_ulong(p: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .filter(|&v| v <= u32::MAX as u64)
}

fn ports(p: &str) -> Result<Ports, ParseError> {
    let one = |s: &str| -> Result<u16, ParseError> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadPort { text: p.into() });
        }
        s.parse()
            .map_err(|_| ParseError::BadPort { text: p.into() })
    };
    match p.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (one(lo)?, one(hi)?);
            if lo > hi {
                return Err(ParseError::BadRange { lo, hi });
            }
            Ok(Ports::Range(lo, hi))
        }
        None => Ok(Ports::One(one(p)?)),
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip { ip, scope: None } => write!(f, "{ip}"),
            Host::Ip { ip, scope: Some(s) } => write!(f, "{ip}%{s}"),
            Host::Any => f.write_str("*"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ports::None => Ok(()),
            Ports::One(p) => write!(f, ":{p}"),
            Ports::Range(lo, hi) => write!(f, ":{lo}-{hi}"),
        }
    }
}

impl fmt::Display for Addr {
    /// The unambiguous notation: `[v6]:port` (`[v6]` without a port), `v4:port`, `*:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet {
                host: h @ Host::Ip {
                    ip: IpAddr::V6(_), ..
                },
                ports,
            } => write!(f, "[{h}]{ports}"),
            Addr::Inet { host, ports } => write!(f, "{host}{ports}"),
            Addr::UnixPath(p) if p.starts_with('/') || p.starts_with('.') => f.write_str(p),
            Addr::UnixPath(p) => write!(f, "unix:{p}"),
            Addr::UnixAbstract(n) => write!(f, "@{n}"),
        }
    }
}

impl fmt::Display for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parsed::One(a) => a.fmt(f),
            Parsed::Ambiguous { text, .. } => f.write_str(text),
        }
    }
}

impl fmt::Display for Pasted {
    /// The pasted notation back: `[::]%lo:ssh`, `0.0.0.0:*`; [`Parsed`]'s when it has none of
    /// it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Parsed::One(Addr::Inet { host, ports }) = &self.parsed else {
            return self.parsed.fmt(f);
        };
        if self.device.is_none() && self.service.is_none() && !self.any_port {
            return self.parsed.fmt(f);
        }
        match host {
            Host::Ip {
                ip: IpAddr::V6(_), ..
            } => write!(f, "[{host}]")?,
            _ => write!(f, "{host}")?,
        }
        if let Some(d) = &self.device {
            write!(f, "%{d}")?;
        }
        match (&self.service, self.any_port) {
            (Some(name), _) => write!(f, ":{name}"),
            (None, true) => f.write_str(":*"),
            (None, false) => ports.fmt(f),
        }
    }
}

/// The parsers' properties, asserted on any input (the test suite's generated inputs and the
/// fuzz target's): neither panics; what [`parse`] accepts, shown, parses back the same; what
/// it accepts [`parse_pasted`] reads the same with nothing more said; and what
/// [`parse_pasted`] accepts, shown, parses back the same. Returns whether `parse` accepted.
pub fn check_properties(s: &str, services: &dyn Fn(&str) -> Option<u16>) -> bool {
    let strict = parse(s);
    if let Ok(p) = &strict {
        let shown = p.to_string();
        assert_eq!(parse(&shown).as_ref(), Ok(p), "`{s}` shown as `{shown}`");
        assert_eq!(
            parse_pasted(s, false, services),
            Ok(p.clone().into()),
            "`{s}` read differently when pasted"
        );
    }
    for has_port in [false, true] {
        if let Ok(p) = parse_pasted(s, has_port, services) {
            let shown = p.to_string();
            assert_eq!(
                parse_pasted(&shown, has_port, services),
                Ok(p),
                "pasted `{s}` shown as `{shown}`"
            );
        }
    }
    strict.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(host: Host, ports: Ports) -> Parsed {
        Parsed::One(Addr::Inet { host, ports })
    }
    fn ip(s: &str) -> Host {
        Host::Ip {
            ip: s.parse().unwrap(),
            scope: None,
        }
    }

    /// Every notation of the first seed, and the forms around them.
    #[test]
    fn notations() {
        let scoped = Host::Ip {
            ip: "fe80::1".parse().unwrap(),
            scope: Some("eth0".into()),
        };
        let table: Vec<(&str, Parsed)> = vec![
            ("127.0.0.1:8080", inet(ip("127.0.0.1"), Ports::One(8080))),
            ("0.0.0.0:22", inet(ip("0.0.0.0"), Ports::One(22))),
            (
                "123.45.67.8:35871",
                inet(ip("123.45.67.8"), Ports::One(35871)),
            ),
            ("[::1]:8080", inet(ip("::1"), Ports::One(8080))),
            ("[::]:22", inet(ip("::"), Ports::One(22))),
            (
                "[2607:fb90:1788:efbd:d3f9:555:4ddb:c8ed]:35871",
                inet(
                    ip("2607:fb90:1788:efbd:d3f9:555:4ddb:c8ed"),
                    Ports::One(35871),
                ),
            ),
            (
                "localhost:8080",
                inet(Host::Name("localhost".into()), Ports::One(8080)),
            ),
            (":22", inet(Host::Any, Ports::One(22))),
            ("*:22", inet(Host::Any, Ports::One(22))),
            (":::22", inet(ip("::"), Ports::One(22))),
            (
                "example.com:35871",
                inet(Host::Name("example.com".into()), Ports::One(35871)),
            ),
            (
                "127.0.0.1:3000-4000",
                inet(ip("127.0.0.1"), Ports::Range(3000, 4000)),
            ),
            ("0.0.0.0:80", inet(ip("0.0.0.0"), Ports::One(80))),
            ("[fe80::1%eth0]:80", inet(scoped.clone(), Ports::One(80))),
            ("fe80::1%eth0", inet(scoped, Ports::None)),
            (
                "/run/x.sock",
                Parsed::One(Addr::UnixPath("/run/x.sock".into())),
            ),
            (
                "unix:/run/x.sock",
                Parsed::One(Addr::UnixPath("/run/x.sock".into())),
            ),
            (
                "@abstract",
                Parsed::One(Addr::UnixAbstract("abstract".into())),
            ),
            ("127.0.0.1", inet(ip("127.0.0.1"), Ports::None)),
            ("::", inet(ip("::"), Ports::None)),
            ("[::1]", inet(ip("::1"), Ports::None)),
            ("2001:db8::7", inet(ip("2001:db8::7"), Ports::None)),
            (
                "[::ffff:1.2.3.4]:80",
                inet(ip("::ffff:1.2.3.4"), Ports::One(80)),
            ),
            (
                "localhost",
                inet(Host::Name("localhost".into()), Ports::None),
            ),
            ("*", inet(Host::Any, Ports::None)),
        ];
        for (text, want) in table {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
        assert_eq!(
            parse("::1:8080"),
            Ok(Parsed::Ambiguous {
                text: "::1:8080".into(),
                as_address: Addr::Inet {
                    host: ip("::1:8080"),
                    ports: Ports::None
                },
                as_host_port: Addr::Inet {
                    host: ip("::1"),
                    ports: Ports::One(8080)
                },
            })
        );
    }

    #[test]
    fn legacy_ipv4_is_rejected_with_its_meaning() {
        for (text, means) in [
            ("127.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("017.0.0.1", "15.0.0.1"),
            ("2130706433", "2130706433"),
            ("1.65536", "1.1.0.0"),
            ("1.2.256", "1.2.1.0"),
            ("1.2.3.0x71", "1.2.3.113"),
            ("0100000001", "1.0.0.1"),
        ] {
            let means: Ipv4Addr = if means.contains('.') {
                means.parse().unwrap()
            } else {
                Ipv4Addr::from(means.parse::<u32>().unwrap())
            };
            for input in [text.to_string(), format!("{text}:80")] {
                let e = parse(&input).unwrap_err();
                assert_eq!(
                    e,
                    ParseError::LegacyIpv4 {
                        text: text.into(),
                        means
                    },
                    "{input}"
                );
                let msg = e.to_string();
                assert!(
                    msg.contains("inet_aton") && msg.contains(&means.to_string()),
                    "{msg}"
                );
            }
        }
    }

    #[test]
    fn garbage_is_rejected_clearly() {
        use ParseError::*;
        type Check = fn(&ParseError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| *e == Empty),
            ("1.2.3.4 a", |e| matches!(e, Junk(_))),
            (" 2.3.4.1", |e| matches!(e, Junk(_))),
            ("256.0.0.1:80", |e| matches!(e, BadHost { .. })),
            ("127.0.0.1:65536", |e| matches!(e, BadPort { .. })),
            ("127.0.0.1:http", |e| matches!(e, BadPort { .. })),
            ("127.0.0.1:", |e| matches!(e, BadPort { .. })),
            ("127.0.0.1:+80", |e| matches!(e, BadPort { .. })),
            ("127.0.0.1:4000-3000", |e| {
                *e == BadRange { lo: 4000, hi: 3000 }
            }),
            ("[127.0.0.1]:80", |e| matches!(e, BracketedIpv4 { .. })),
            ("[::1:80", |e| matches!(e, BadHost { .. })),
            ("[::1]80", |e| matches!(e, BadHost { .. })),
            ("[::FFFF:1.2]:80", |e| matches!(e, BadIpv6 { .. })),
            ("[::0xf]:80", |e| matches!(e, BadIpv6 { .. })),
            ("[::00001]", |e| matches!(e, BadIpv6 { .. })),
            ("0::1:2::", |e| matches!(e, BadIpv6 { .. })),
            ("[fe80::1%]:80", |e| matches!(e, BadScope { .. })),
            ("10.0.0.1%eth0:80", |e| matches!(e, ScopeOnIpv4 { .. })),
            ("-bad-.com:80", |e| matches!(e, BadHost { .. })),
            ("a..b", |e| matches!(e, BadHost { .. })),
        ];
        for (text, ok) in cases {
            match parse(text) {
                Err(e) => assert!(ok(&e), "{text}: unexpected error {e:?}"),
                Ok(p) => panic!("{text} accepted as {p:?}"),
            }
        }
        // the empty abstract name is valid (ss shows it as `@`)
        assert_eq!(
            parse("@"),
            Ok(Parsed::One(Addr::UnixAbstract(String::new())))
        );
        let long = format!("/{}", "x".repeat(SUN_PATH_MAX));
        assert_eq!(
            parse(&long),
            Err(UnixTooLong {
                len: SUN_PATH_MAX + 1
            })
        );
        assert!(parse(&long[..SUN_PATH_MAX]).is_ok());
    }

    #[test]
    fn display_is_unambiguous() {
        for (text, shown) in [
            ("0:0:0:0:0:0:1:80", "[::1:80]"),
            ("[::]:22", "[::]:22"),
            (":::22", "[::]:22"),
            (":22", "*:22"),
            ("fe80::1%eth0", "[fe80::1%eth0]"),
            ("unix:./x.sock", "./x.sock"),
            ("::1:8080", "::1:8080"),
        ] {
            assert_eq!(parse(text).unwrap().to_string(), shown, "{text}");
        }
    }

    /// A tiny deterministic generator (xorshift*) so the property runs in the normal test
    /// suite without a dependency; `fuzz/` drives the same property with coverage feedback.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    /// Inputs built from the pieces addresses are made of, so a good share parse.
    fn input(r: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "0",
            "1",
            "7",
            "08",
            "00",
            "255",
            "256",
            "65535",
            "65536",
            "127",
            "0x7f",
            "ffff",
            "fe80",
            "db8",
            "2001",
            ".",
            ".",
            ":",
            ":",
            "::",
            "[",
            "]",
            "%",
            "eth0",
            "-",
            "*",
            "@",
            "/",
            "unix:",
            "localhost",
            "a",
            "-",
            "1.2.3.4",
            "::1",
            "\0",
            " ",
            "é",
            "x",
            "ssh",
            "http",
            "lo",
            "%lo",
            "*",
        ];
        let n = 1 + r.next() % 8;
        (0..n).map(|_| r.pick(PIECES)).collect()
    }

    /// A services database for the tests: two names, one alias.
    pub(crate) fn services(name: &str) -> Option<u16> {
        match name {
            "ssh" => Some(22),
            "http" | "www" => Some(80),
            "ipp" => Some(631),
            _ => None,
        }
    }

    #[test]
    fn property_never_panics_and_roundtrips() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut accepted, mut pasted) = (0, 0);
        for _ in 0..200_000 {
            let s = input(&mut r);
            if check_properties(&s, &services) {
                accepted += 1;
            } else if parse_pasted(&s, false, &services).is_ok() {
                pasted += 1;
            }
        }
        // the generator must exercise the accepting paths, not only the errors
        assert!(accepted > 5_000, "only {accepted} inputs parsed");
        assert!(pasted > 2_000, "only {pasted} inputs parsed as pasted only");
        // and arbitrary bytes
        for _ in 0..50_000 {
            let bytes: Vec<u8> = (0..r.next() % 24).map(|_| r.next() as u8).collect();
            check_properties(&String::from_utf8_lossy(&bytes), &services);
        }
    }

    /// What ss, netstat and lsof print, read with what it means.
    #[test]
    fn pasted_notations() {
        let p = |s: &str| parse_pasted(s, false, &services);
        let with = |host: Host, ports, device: Option<&str>, service: Option<&str>, any| {
            Ok(Pasted {
                parsed: inet(host, ports),
                device: device.map(str::to_owned),
                service: service.map(str::to_owned),
                any_port: any,
            })
        };
        let any = || Host::Any;
        let table = [
            // ss's device suffix, IPv4 included (systemd-resolved's stub, a DHCP client)
            (
                "127.0.0.53%lo:53",
                with(ip("127.0.0.53"), Ports::One(53), Some("lo"), None, false),
            ),
            (
                "0.0.0.0%eth0:68",
                with(ip("0.0.0.0"), Ports::One(68), Some("eth0"), None, false),
            ),
            (
                "[::]%lo:41009",
                with(ip("::"), Ports::One(41009), Some("lo"), None, false),
            ),
            (
                "*%lo:80",
                with(any(), Ports::One(80), Some("lo"), None, false),
            ),
            (
                "127.0.0.1%lo",
                with(ip("127.0.0.1"), Ports::None, Some("lo"), None, false),
            ),
            // service names, without -n / -P
            (
                "*:ssh",
                with(any(), Ports::One(22), None, Some("ssh"), false),
            ),
            (
                "localhost:ipp",
                with(
                    Host::Name("localhost".into()),
                    Ports::One(631),
                    None,
                    Some("ipp"),
                    false,
                ),
            ),
            (
                "[::]:http",
                with(ip("::"), Ports::One(80), None, Some("http"), false),
            ),
            (
                "[::]:www",
                with(ip("::"), Ports::One(80), None, Some("www"), false),
            ),
            (
                ":::ssh",
                with(ip("::"), Ports::One(22), None, Some("ssh"), false),
            ),
            (
                "0.0.0.0%lo:ssh",
                with(
                    ip("0.0.0.0"),
                    Ports::One(22),
                    Some("lo"),
                    Some("ssh"),
                    false,
                ),
            ),
            // the peer column of a listener
            (
                "0.0.0.0:*",
                with(ip("0.0.0.0"), Ports::None, None, None, true),
            ),
            ("[::]:*", with(ip("::"), Ports::None, None, None, true)),
            ("*:*", with(any(), Ports::None, None, None, true)),
            (":::*", with(ip("::"), Ports::None, None, None, true)),
        ];
        for (text, want) in table {
            assert_eq!(p(text), want, "{text}");
            // strict mode keeps refusing them
            assert!(parse(text).is_err(), "{text} accepted by the strict parser");
        }
        // the strict grammar reads the same; a column's ADDRESS:PORT is never ambiguous
        assert_eq!(
            p("[fe80::1%eth0]:80"),
            Ok(parse("[fe80::1%eth0]:80").unwrap().into())
        );
        assert!(matches!(
            p("::1:8080").unwrap().parsed,
            Parsed::Ambiguous { .. }
        ));
        assert_eq!(
            parse_pasted("::1:41007", true, &services),
            with(ip("::1"), Ports::One(41007), None, None, false)
        );
        assert_eq!(p("[::]%lo:41009").unwrap().to_string(), "[::]%lo:41009");
        assert_eq!(p(":::ssh").unwrap().to_string(), "[::]:ssh");
        assert_eq!(p(":*").unwrap().to_string(), "*:*");
    }

    #[test]
    fn pasted_garbage_is_still_refused_with_why() {
        use ParseError::*;
        type Check = fn(&ParseError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("127.0.0.1:nosuch", |e| {
                *e == UnknownService {
                    name: "nosuch".into(),
                }
            }),
            ("*:sql*net", |e| matches!(e, UnknownService { .. })),
            ("127.1%lo:80", |e| matches!(e, LegacyIpv4 { .. })),
            ("1.2.3.4%:80", |e| matches!(e, BadScope { .. })),
            ("1.2.3.4%a/b:80", |e| matches!(e, BadScope { .. })),
            ("[::1]%:80", |e| matches!(e, BadScope { .. })),
            ("[::1]x", |e| matches!(e, BadHost { .. })),
            ("[127.0.0.1]%lo:80", |e| matches!(e, BracketedIpv4 { .. })),
            ("0.0.0.0:**", |e| matches!(e, BadPort { .. })),
            ("1.2.3.4 a", |e| matches!(e, Junk(_))),
            ("", |e| *e == Empty),
        ];
        for (text, ok) in cases {
            match parse_pasted(text, false, &services) {
                Err(e) => assert!(ok(&e), "{text}: unexpected error {e:?}"),
                Ok(p) => panic!("{text} accepted as {p:?}"),
            }
        }
        let msg = UnknownService {
            name: "nosuch".into(),
        }
        .to_string();
        assert!(
            msg.contains("not a port") && msg.contains("service name"),
            "{msg}"
        );
    }
}
