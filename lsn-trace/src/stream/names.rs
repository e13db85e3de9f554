//! Names for the numbers that appear in events: families, socket types, option levels
//! and names, in the spelling strace and the man pages use.
use lsn_trace_common::sockopt::*;

/// `family` in JSON: "inet", "inet6", "unix", ... ("af<N>" for the rest).
pub fn family(af: u16) -> String {
    match af {
        0 => "unspec".into(),
        1 => "unix".into(),
        2 => "inet".into(),
        10 => "inet6".into(),
        16 => "netlink".into(),
        17 => "packet".into(),
        40 => "vsock".into(),
        n => format!("af{n}"),
    }
}

pub fn sock_type(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "stream",
        2 => "dgram",
        3 => "raw",
        4 => "rdm",
        5 => "seqpacket",
        _ => return None,
    })
}

pub fn level(level: i32) -> Option<&'static str> {
    Some(match level {
        SOL_IP => "SOL_IP",
        SOL_SOCKET => "SOL_SOCKET",
        SOL_IPV6 => "SOL_IPV6",
        SOL_SCTP => "SOL_SCTP",
        _ => return None,
    })
}

pub fn option(level: i32, optname: i32) -> Option<&'static str> {
    Some(match (level, optname) {
        (SOL_SOCKET, SO_REUSEADDR) => "SO_REUSEADDR",
        (SOL_SOCKET, SO_REUSEPORT) => "SO_REUSEPORT",
        (SOL_SOCKET, SO_BINDTODEVICE) => "SO_BINDTODEVICE",
        (SOL_SOCKET, SO_BINDTOIFINDEX) => "SO_BINDTOIFINDEX",
        (SOL_IP, IP_FREEBIND) => "IP_FREEBIND",
        (SOL_IP, IP_TRANSPARENT) => "IP_TRANSPARENT",
        (SOL_IP, IP_BIND_ADDRESS_NO_PORT) => "IP_BIND_ADDRESS_NO_PORT",
        (SOL_IPV6, IPV6_V6ONLY) => "IPV6_V6ONLY",
        (SOL_IPV6, IPV6_TRANSPARENT) => "IPV6_TRANSPARENT",
        (SOL_IPV6, IPV6_FREEBIND) => "IPV6_FREEBIND",
        (SOL_SCTP, SCTP_SOCKOPT_BINDX_ADD) => "SCTP_SOCKOPT_BINDX_ADD",
        (SOL_SCTP, SCTP_SOCKOPT_BINDX_REM) => "SCTP_SOCKOPT_BINDX_REM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_filtered_option_has_a_name() {
        use lsn_trace_common::sockopt::is_listener_option;
        for level in [0, 1, 41, 6, 132] {
            for opt in 0..200 {
                assert_eq!(
                    is_listener_option(level, opt),
                    super::option(level, opt).is_some()
                );
            }
        }
    }
}
