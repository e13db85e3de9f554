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
        let host = match ipv6_with_scope(inside) {
            Ok(h) => h,
            Err(e) => {
                if inside.parse::<Ipv4Addr>().is_ok() {
                    return Err(ParseError::BracketedIpv4 {
                        text: inside.into(),
                    });
                }
                return Err(e);
            }
        };
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
        && (sc.is_empty() || sc.len() > 15 || sc.contains(['/', ':', '%', ']', '[']))
    {
        return Err(ParseError::BadScope { text: sc.into() });
    }
    Ok(Host::Ip {
        ip: IpAddr::V6(ip),
        scope: scope.map(str::to_owned),
    })
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
        ];
        let n = 1 + r.next() % 8;
        (0..n).map(|_| r.pick(PIECES)).collect()
    }

    fn check_roundtrip(s: &str) {
        if let Ok(p) = parse(s) {
            let shown = p.to_string();
            assert_eq!(parse(&shown), Ok(p), "`{s}` shown as `{shown}`");
        }
    }

    #[test]
    fn property_never_panics_and_roundtrips() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for _ in 0..200_000 {
            let s = input(&mut r);
            if parse(&s).is_ok() {
                accepted += 1;
            }
            check_roundtrip(&s);
        }
        // the generator must exercise the accepting paths, not only the errors
        assert!(accepted > 5_000, "only {accepted} inputs parsed");
        // and arbitrary bytes
        for _ in 0..50_000 {
            let bytes: Vec<u8> = (0..r.next() % 24).map(|_| r.next() as u8).collect();
            check_roundtrip(&String::from_utf8_lossy(&bytes));
        }
    }
}
