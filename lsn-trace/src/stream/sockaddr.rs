//! The address a process passed to bind(2), decoded from the raw sockaddr bytes, and
//! printed in the notation `ss` uses.
use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

pub const AF_UNSPEC: u16 = 0;
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// `sizeof(struct sockaddr_storage)`: the most bind(2) accepts (move_addr_to_kernel).
const SOCKADDR_STORAGE_LEN: u32 = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockAddr {
    Inet {
        addr: Ipv4Addr,
        port: u16,
    },
    Inet6 {
        addr: Ipv6Addr,
        port: u16,
        flowinfo: u32,
        scope_id: u32,
    },
    /// A filesystem socket; the path as bytes (Linux paths need not be UTF-8).
    UnixPath(Vec<u8>),
    /// Abstract namespace: the name after the leading NUL.
    UnixAbstract(Vec<u8>),
    /// `addrlen == sizeof(sa_family_t)`: the kernel picks an abstract name.
    UnixAutobind,
    /// A family we do not decode (netlink, packet, vsock, ...), or a sockaddr too short
    /// for its family: family number and length as passed.
    Other {
        family: u16,
        len: u32,
    },
    /// The sockaddr pointer could not be read (EFAULT and friends).
    Unreadable {
        len: u32,
    },
}

impl SockAddr {
    /// Decode `bytes` (what was copied, at most `len`) of a sockaddr passed with `len`.
    pub fn decode(bytes: &[u8], len: u32) -> SockAddr {
        let bytes = &bytes[..bytes.len().min(len as usize)];
        if bytes.len() < 2 {
            return SockAddr::Other {
                family: AF_UNSPEC,
                len,
            };
        }
        let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
        // Longer than a sockaddr_storage (or negative as the int it is): the kernel refuses
        // it (EINVAL) before reading any of it.
        if len > SOCKADDR_STORAGE_LEN {
            return SockAddr::Other { family, len };
        }
        let be16 = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let ne32 = |i: usize| u32::from_ne_bytes(bytes[i..i + 4].try_into().unwrap());
        match family {
            // The kernel accepts sockaddr_in from 16 bytes and sockaddr_in6 from 24
            // (RFC 2133 layout, no scope id): decode what it would.
            AF_INET if bytes.len() >= 16 => SockAddr::Inet {
                addr: Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]),
                port: be16(2),
            },
            AF_INET6 if bytes.len() >= 24 => {
                let a: [u8; 16] = bytes[8..24].try_into().unwrap();
                SockAddr::Inet6 {
                    addr: Ipv6Addr::from(a),
                    port: be16(2),
                    flowinfo: u32::from_be(ne32(4)),
                    scope_id: if bytes.len() >= 28 { ne32(24) } else { 0 },
                }
            }
            AF_UNIX => {
                let path = &bytes[2..];
                match path.first() {
                    None => SockAddr::UnixAutobind,
                    Some(0) => SockAddr::UnixAbstract(path[1..].to_vec()),
                    // A pathname ends at its first NUL, whatever addrlen says.
                    Some(_) => {
                        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                        SockAddr::UnixPath(path[..end].to_vec())
                    }
                }
            }
            _ => SockAddr::Other { family, len },
        }
    }

    /// `decode`, as the socket's protocol reads it: an AF_INET socket takes an AF_UNSPEC
    /// sockaddr whose address is INADDR_ANY as AF_INET (inet_bind's "compatibility games"),
    /// port included.
    pub fn decode_for(bytes: &[u8], len: u32, sock_family: Option<u16>) -> SockAddr {
        let a = SockAddr::decode(bytes, len);
        let n = bytes.len().min(len as usize);
        if matches!(
            a,
            SockAddr::Other {
                family: AF_UNSPEC,
                ..
            }
        ) && sock_family == Some(AF_INET)
            && n >= 16
            && bytes[4..8] == [0; 4]
        {
            return SockAddr::Inet {
                addr: Ipv4Addr::UNSPECIFIED,
                port: u16::from_be_bytes([bytes[2], bytes[3]]),
            };
        }
        a
    }

    pub fn family(&self) -> Option<u16> {
        match self {
            SockAddr::Inet { .. } => Some(AF_INET),
            SockAddr::Inet6 { .. } => Some(AF_INET6),
            SockAddr::UnixPath(_) | SockAddr::UnixAbstract(_) | SockAddr::UnixAutobind => {
                Some(AF_UNIX)
            }
            SockAddr::Other { family, .. } => Some(*family),
            SockAddr::Unreadable { .. } => None,
        }
    }

    pub fn port(&self) -> Option<u16> {
        match self {
            SockAddr::Inet { port, .. } | SockAddr::Inet6 { port, .. } => Some(*port),
            _ => None,
        }
    }

    /// The address part alone, as text (`addr` in JSON): `0.0.0.0`, `::`, `fe80::1%eth0`,
    /// `/run/x.sock`, `@name`.
    pub fn host(&self) -> Option<String> {
        Some(match self {
            SockAddr::Inet { addr, .. } => addr.to_string(),
            SockAddr::Inet6 { addr, scope_id, .. } => with_scope(addr, *scope_id),
            // Exact (crate::text's lossless form): escaping is the terminal's business.
            SockAddr::UnixPath(p) => crate::text::from_bytes(p),
            SockAddr::UnixAbstract(n) => format!("@{}", crate::text::from_bytes(n)),
            SockAddr::UnixAutobind => "@(autobind)".into(),
            SockAddr::Other { .. } | SockAddr::Unreadable { .. } => return None,
        })
    }
}

fn with_scope(addr: &Ipv6Addr, scope_id: u32) -> String {
    if scope_id == 0 {
        addr.to_string()
    } else {
        format!("{addr}%{}", crate::netif::name_of(scope_id))
    }
}

/// An abstract name for people: its trailing NULs (names padded to the full 108 bytes, as
/// haproxy's `abns@`) counted instead of shown, and said so; its other bytes exact (the
/// renderer escapes them, a NUL as `\x00`).
pub fn abstract_name_human(n: &[u8]) -> String {
    let kept = n.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let mut s = crate::text::from_bytes(&n[..kept]);
    match n.len() - kept {
        0 => {}
        1 => s.push_str(" (+1 trailing NUL byte)"),
        pad => s.push_str(&format!(" (+{pad} trailing NUL bytes)")),
    }
    s
}

impl fmt::Display for SockAddr {
    /// ss notation: `127.0.0.1:80`, `[::]:80`, `[fe80::1%eth0]:80`, `@name`, `/path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet { addr, port } => write!(f, "{addr}:{port}"),
            SockAddr::Inet6 {
                addr,
                port,
                scope_id,
                ..
            } => {
                write!(f, "[{}]:{port}", with_scope(addr, *scope_id))
            }
            SockAddr::Other { family, len } => write!(f, "(family {family}, {len} bytes)"),
            SockAddr::Unreadable { len } => write!(f, "(unreadable sockaddr, {len} bytes)"),
            SockAddr::UnixAbstract(n) => write!(f, "@{}", abstract_name_human(n)),
            other => f.write_str(&other.host().unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sin(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        b
    }

    fn sin6(ip: Ipv6Addr, port: u16, scope: u32) -> Vec<u8> {
        let mut b = vec![0u8; 28];
        b[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[8..24].copy_from_slice(&ip.octets());
        b[24..28].copy_from_slice(&scope.to_ne_bytes());
        b
    }

    #[test]
    fn inet() {
        let a = SockAddr::decode(&sin([127, 0, 0, 1], 8080), 16);
        assert_eq!(a.to_string(), "127.0.0.1:8080");
        assert_eq!(a.port(), Some(8080));
        assert_eq!(a.host().unwrap(), "127.0.0.1");
        // too short for sockaddr_in: family and length only
        assert_eq!(
            SockAddr::decode(&sin([1, 2, 3, 4], 1), 8),
            SockAddr::Other { family: 2, len: 8 }
        );
    }

    #[test]
    fn inet6() {
        let a = SockAddr::decode(&sin6(Ipv6Addr::UNSPECIFIED, 22, 0), 28);
        assert_eq!(a.to_string(), "[::]:22");
        let mapped: Ipv6Addr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            SockAddr::decode(&sin6(mapped, 80, 0), 28).to_string(),
            "[::ffff:127.0.0.1]:80"
        );
        // scope id 1 is the loopback interface everywhere
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        assert_eq!(
            SockAddr::decode(&sin6(ll, 80, 1), 28).to_string(),
            "[fe80::1%lo]:80"
        );
        // an unknown index stays a number
        assert_eq!(
            SockAddr::decode(&sin6(ll, 80, 999_999), 28).host().unwrap(),
            "fe80::1%999999"
        );
        // RFC 2133 24-byte form
        assert!(matches!(
            SockAddr::decode(&sin6(ll, 80, 7), 24),
            SockAddr::Inet6 { scope_id: 0, .. }
        ));
    }

    #[test]
    fn unix() {
        let mut b = AF_UNIX.to_ne_bytes().to_vec();
        b.extend_from_slice(b"/run/x.sock\0garbage");
        assert_eq!(
            SockAddr::decode(&b, b.len() as u32).to_string(),
            "/run/x.sock"
        );
        let mut b = AF_UNIX.to_ne_bytes().to_vec();
        b.extend_from_slice(b"\0my\0name");
        // A NUL inside the name stays a NUL (the terminal shows it as \x00), not `@` as ss.
        assert_eq!(
            SockAddr::decode(&b, b.len() as u32).to_string(),
            "@my\0name"
        );
        assert_eq!(
            SockAddr::decode(&AF_UNIX.to_ne_bytes(), 2),
            SockAddr::UnixAutobind
        );
        let padded = SockAddr::UnixAbstract(b"name\0\0\0".to_vec());
        assert_eq!(padded.host().unwrap(), "@name\0\0\0", "exact");
        assert_eq!(padded.to_string(), "@name (+3 trailing NUL bytes)");
        let at = SockAddr::UnixAbstract(b"name@@@".to_vec());
        assert_ne!(at.host(), padded.host(), "a real @ is not a NUL");
    }

    #[test]
    fn other_families() {
        let b = 16u16.to_ne_bytes(); // AF_NETLINK
        let mut v = b.to_vec();
        v.resize(12, 0);
        assert_eq!(
            SockAddr::decode(&v, 12),
            SockAddr::Other {
                family: 16,
                len: 12
            }
        );
        assert_eq!(
            SockAddr::decode(&[], 0),
            SockAddr::Other { family: 0, len: 0 }
        );
    }

    #[test]
    fn af_unspec_any_on_an_inet_socket_is_inet() {
        let mut b = sin([0, 0, 0, 0], 8080);
        b[..2].copy_from_slice(&AF_UNSPEC.to_ne_bytes());
        let inet = SockAddr::Inet {
            addr: Ipv4Addr::UNSPECIFIED,
            port: 8080,
        };
        assert_eq!(SockAddr::decode_for(&b, 16, Some(AF_INET)), inet);
        // Not on another family's socket, not with an address, not short.
        let other = SockAddr::Other {
            family: AF_UNSPEC,
            len: 16,
        };
        assert_eq!(SockAddr::decode_for(&b, 16, Some(AF_INET6)), other);
        assert_eq!(SockAddr::decode_for(&b, 16, None), other);
        let mut addressed = b.clone();
        addressed[4] = 127;
        assert_eq!(SockAddr::decode_for(&addressed, 16, Some(AF_INET)), other);
        assert!(matches!(
            SockAddr::decode_for(&b, 8, Some(AF_INET)),
            SockAddr::Other { .. }
        ));
    }
}
