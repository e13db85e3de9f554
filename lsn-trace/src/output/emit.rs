//! Byte writers the renderers share on their hot path: what `core::fmt` prints for numbers
//! and IP addresses, appended to the output buffer without its machinery (a formatter per
//! piece, a virtual call per fragment) or a String per piece. Each is checked against the
//! `Display` it stands in for.
use std::{
    io::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::sockaddr::SockAddr;

/// A decimal integer, as `{}` prints it.
pub fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Lowercase hex without leading zeros, as `{:x}` prints a u16.
fn hex16(out: &mut Vec<u8>, n: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(HEX[usize::from((n >> (4 * i)) & 0xf)]);
    }
}

/// Exactly 16 lowercase hex digits, as `{:016x}` prints a u64.
pub fn hex64(out: &mut Vec<u8>, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    out.extend_from_slice(&buf);
}

/// `n` as exactly two digits (n < 100).
pub fn two_digits(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

pub fn ipv4(out: &mut Vec<u8>, a: Ipv4Addr) {
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        int(out, o);
    }
}

/// RFC 5952, as std's `Display` has it: the longest run of two or more zero groups
/// (the first of equal ones) becomes `::`, IPv4-mapped addresses end in dotted quad.
pub fn ipv6(out: &mut Vec<u8>, a: Ipv6Addr) {
    // The two a listener has most often, without looking for the longest zero run.
    match a.to_bits() {
        0 => return out.extend_from_slice(b"::"),
        1 => return out.extend_from_slice(b"::1"),
        _ => {}
    }
    if let Some(v4) = a.to_ipv4_mapped() {
        out.extend_from_slice(b"::ffff:");
        return ipv4(out, v4);
    }
    let segs = a.segments();
    let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
    for (i, &s) in segs.iter().enumerate() {
        if s == 0 {
            if run_len == 0 {
                run = i;
            }
            run_len += 1;
            if run_len > best_len {
                (best, best_len) = (run, run_len);
            }
        } else {
            run_len = 0;
        }
    }
    let groups = |out: &mut Vec<u8>, part: &[u16]| {
        for (i, &s) in part.iter().enumerate() {
            if i > 0 {
                out.push(b':');
            }
            hex16(out, s);
        }
    };
    if best_len > 1 {
        groups(out, &segs[..best]);
        out.extend_from_slice(b"::");
        groups(out, &segs[best + best_len..]);
    } else {
        groups(out, &segs);
    }
}

pub fn ip(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => ipv4(out, a),
        IpAddr::V6(a) => ipv6(out, a),
    }
}

/// A bind's address in `ss` notation, as `SockAddr`'s `Display` prints it: the IP ones
/// written here, the rare others (a scope to name, unix, unreadable) through it.
pub fn sockaddr(out: &mut Vec<u8>, a: &SockAddr) {
    match a {
        SockAddr::Inet { addr, port } => {
            ipv4(out, *addr);
            out.push(b':');
            int(out, *port);
        }
        SockAddr::Inet6 {
            addr,
            port,
            scope_id: 0,
            ..
        } => {
            out.push(b'[');
            ipv6(out, *addr);
            out.extend_from_slice(b"]:");
            int(out, *port);
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// `s`, then spaces up to `width` characters, as `{:<width}` pads it.
pub fn padded(out: &mut Vec<u8>, s: &str, width: usize) {
    let start = out.len();
    out.extend_from_slice(s.as_bytes());
    pad_since(out, start, width);
}

/// What has been written to `out` since `start`, padded to `width` characters.
pub fn pad_since(out: &mut Vec<u8>, start: usize, width: usize) {
    let written = &out[start..];
    let chars = if written.is_ascii() {
        written.len()
    } else {
        // Whole UTF-8 text: everything written here came from &str.
        written.iter().filter(|&&b| (b & 0xc0) != 0x80).count()
    };
    if chars < width {
        out.resize(out.len() + (width - chars), b' ');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn addresses_as_std_prints_them() {
        let mut v6: Vec<Ipv6Addr> = [
            "::",
            "::1",
            "fe80::1",
            "1::",
            "1:0:0:1::1",
            "1:0:1:0:1:0:1:0",
            "0:0:1::",
            "1:2:3:4:5:6:7:8",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::1.2.3.4",
            "2001:db8::ff00:42:8329",
            "ff02::1:ff00:1",
            "1:0:0:2:0:0:0:3",
            "0:1:0:0:1:0:0:0",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        // Every pattern of zero and non-zero groups, with short and long groups.
        for mask in 0u32..256 {
            let segs: [u16; 8] = std::array::from_fn(|i| {
                if mask >> i & 1 == 1 {
                    0xa0b >> (i % 3 * 4)
                } else {
                    0
                }
            });
            v6.push(Ipv6Addr::from(segs));
        }
        for a in v6 {
            assert_eq!(s(|o| ipv6(o, a)), a.to_string());
            assert_eq!(s(|o| ip(o, a.into())), a.to_string());
        }
        for a in ["0.0.0.0", "127.0.0.1", "255.255.255.255", "10.20.3.4"] {
            let a: Ipv4Addr = a.parse().unwrap();
            assert_eq!(s(|o| ipv4(o, a)), a.to_string());
        }
    }

    #[test]
    fn sockaddrs_as_display_prints_them() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        for a in [
            SockAddr::Inet {
                addr: Ipv4Addr::new(127, 0, 0, 1),
                port: 8080,
            },
            SockAddr::Inet6 {
                addr: Ipv6Addr::LOCALHOST,
                port: 0,
                flowinfo: 0,
                scope_id: 0,
            },
            SockAddr::Inet6 {
                addr: ll,
                port: 80,
                flowinfo: 0,
                scope_id: 1,
            },
            SockAddr::UnixPath(b"/run/x\n.sock".to_vec()),
            SockAddr::UnixAbstract(b"abs".to_vec()),
            SockAddr::Unreadable { len: 16 },
        ] {
            assert_eq!(s(|o| sockaddr(o, &a)), a.to_string());
        }
    }

    #[test]
    fn numbers_as_fmt_prints_them() {
        for n in [0u64, 1, 0xabc, 0x00ab_cdef_0123_4567, u64::MAX] {
            assert_eq!(s(|o| hex64(o, n)), format!("{n:016x}"));
        }
        for n in [0u16, 1, 0xf, 0x10, 0xfff, 0x1000, 0xffff] {
            assert_eq!(s(|o| hex16(o, n)), format!("{n:x}"));
        }
        for n in [0, 7, 10, 59, 99] {
            assert_eq!(s(|o| two_digits(o, n)), format!("{n:02}"));
        }
    }

    #[test]
    fn padding_counts_characters() {
        for (text, width) in [
            ("tcp", 6),
            ("nginx", 15),
            ("é—ü", 5),
            ("much longer than", 4),
        ] {
            assert_eq!(s(|o| padded(o, text, width)), format!("{text:<width$}"));
            let mut out = b"x".to_vec();
            out.extend_from_slice(text.as_bytes());
            pad_since(&mut out, 1, width);
            assert_eq!(String::from_utf8(out).unwrap(), format!("x{text:<width$}"));
        }
    }
}
