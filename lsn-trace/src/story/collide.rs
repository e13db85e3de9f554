//! When two inet sockets collide on a port, address-wise — the kernel's inet_bind_conflict:
//! overlapping addresses (an IPv6 wildcard that is dual-stack takes IPv4's too),
//! compatible devices — and why, in words. Pure.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{
    sockaddr::{AF_INET, AF_INET6},
    sockdiag::DiagSock,
};

/// The failing socket, as far as collision rules go.
#[derive(Clone, Copy, Debug)]
pub(super) struct Side {
    pub(super) family: u16,
    pub(super) ip: IpAddr,
    pub(super) v6only: bool,
    pub(super) dev: u32,
}

impl Side {
    fn v4_view(&self) -> Option<Ipv4Addr> {
        match self.ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) if a.is_unspecified() && !self.v6only => Some(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        }
    }
    fn v6_view(&self) -> Option<Ipv6Addr> {
        match self.ip {
            IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => Some(a),
            _ => None,
        }
    }
    pub(super) fn text(&self, port: u16) -> String {
        SocketAddr::new(self.ip, port).to_string()
    }
}

pub(super) fn side_of(s: &DiagSock) -> Side {
    Side {
        family: s.family,
        ip: s.local.ip(),
        // a holder whose V6ONLY is not reported (not LISTEN/CLOSE) counts as dual-stack
        // only when it is `::`; the kernel keeps the flag on every state, we just cannot see it
        v6only: s.v6only.unwrap_or(false),
        dev: s.bound_dev_if,
    }
}

/// Whether binding `a` would collide with the existing `b` on the same port, address-wise
/// (the kernel's inet_bind_conflict: overlapping addresses, compatible devices).
pub(super) fn overlaps(a: &Side, b: &Side) -> bool {
    if a.dev != 0 && b.dev != 0 && a.dev != b.dev {
        return false;
    }
    let v4 = match (a.v4_view(), b.v4_view()) {
        (Some(x), Some(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        _ => false,
    };
    let v6 = match (a.v6_view(), b.v6_view()) {
        (Some(x), Some(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        _ => false,
    };
    v4 || v6
}

/// Why `a` (the failing bind) and `b` (the holder) collide, in words.
pub(super) fn why_collide(a: &Side, b: &Side, port: u16, v6only_src: &str) -> String {
    let (at, bt) = (a.text(port), b.text(port));
    let a_dual = a.family == AF_INET6 && a.ip.is_unspecified() && !a.v6only;
    let b_dual = b.family == AF_INET6 && b.ip.is_unspecified() && !b.v6only;
    if a_dual && b.family == AF_INET {
        return format!(
            "{at} is dual-stack (IPV6_V6ONLY=0{v6only_src}): it claims IPv4 port {port} too, \
             and {bt} already has it. Set IPV6_V6ONLY=1 on the IPv6 socket before bind (nginx: \
             `listen [::]:{port} ipv6only=on`), or drop the IPv4 socket and let the \
             dual-stack one serve both"
        );
    }
    if b_dual && a.family == AF_INET {
        return format!(
            "the existing {bt} is dual-stack (IPV6_V6ONLY=0): it already takes IPv4 port \
             {port}, which includes {at}. Set IPV6_V6ONLY=1 on that IPv6 socket, or drop this \
             IPv4 socket: the dual-stack one serves IPv4 already"
        );
    }
    if a.ip == b.ip {
        return format!("both ask for the same address {at}");
    }
    if a.ip.is_unspecified() {
        return format!(
            "the wildcard {at} covers every local address, including {bt} which is taken"
        );
    }
    if b.ip.is_unspecified() {
        return format!("the existing wildcard {bt} covers every local address, including {at}");
    }
    match (a.ip, b.ip) {
        (IpAddr::V6(x), _) if x.to_ipv4_mapped().is_some() => {
            format!(
                "{at} is the IPv4 address {} in IPv6 form",
                x.to_ipv4_mapped().unwrap()
            )
        }
        _ => format!("{at} overlaps {bt}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(ip: &str, v6only: bool) -> Side {
        let ip: IpAddr = ip.parse().unwrap();
        Side {
            family: if ip.is_ipv4() { AF_INET } else { AF_INET6 },
            ip,
            v6only,
            dev: 0,
        }
    }

    #[test]
    fn collision_rules() {
        // the classic
        assert!(overlaps(&side("::", false), &side("0.0.0.0", false)));
        assert!(!overlaps(&side("::", true), &side("0.0.0.0", false)));
        assert!(overlaps(&side("0.0.0.0", false), &side("::", false)));
        assert!(!overlaps(&side("0.0.0.0", false), &side("::", true)));
        // dual-stack covers specific IPv4 addresses
        assert!(overlaps(&side("::", false), &side("127.0.0.1", false)));
        // wildcard vs specific, same family
        assert!(overlaps(&side("0.0.0.0", false), &side("127.0.0.1", false)));
        assert!(!overlaps(
            &side("127.0.0.2", false),
            &side("127.0.0.1", false)
        ));
        assert!(overlaps(&side("::", true), &side("::1", true)));
        // a specific IPv6 address never collides with IPv4
        assert!(!overlaps(&side("::1", false), &side("0.0.0.0", false)));
        // IPv4-mapped is IPv4
        assert!(overlaps(
            &side("::ffff:127.0.0.1", false),
            &side("127.0.0.1", false)
        ));
        // different devices never collide
        let mut a = side("0.0.0.0", false);
        let mut b = side("0.0.0.0", false);
        a.dev = 2;
        b.dev = 3;
        assert!(!overlaps(&a, &b));
        b.dev = 0;
        assert!(overlaps(&a, &b));
    }

    #[test]
    fn collision_words() {
        let w = why_collide(&side("::", false), &side("0.0.0.0", false), 80, "");
        assert!(
            w.starts_with("[::]:80 is dual-stack (IPV6_V6ONLY=0)"),
            "{w}"
        );
        assert!(w.contains("0.0.0.0:80 already has it"), "{w}");
        let w = why_collide(&side("0.0.0.0", false), &side("::", false), 80, "");
        assert!(w.starts_with("the existing [::]:80 is dual-stack"), "{w}");
        let w = why_collide(&side("127.0.0.1", false), &side("0.0.0.0", false), 80, "");
        assert!(w.contains("existing wildcard 0.0.0.0:80"), "{w}");
        let w = why_collide(&side("127.0.0.1", false), &side("127.0.0.1", false), 80, "");
        assert_eq!(w, "both ask for the same address 127.0.0.1:80");
    }
}
