//! Protocols as `--proto` names them (ss's Netid column). One bit each so a set of them
//! is a mask the program tests with one AND.

pub const TCP: u32 = 1 << 0;
pub const UDP: u32 = 1 << 1;
pub const SCTP: u32 = 1 << 2;
pub const MPTCP: u32 = 1 << 3;
pub const UDPLITE: u32 = 1 << 4;
pub const RAW: u32 = 1 << 5;
pub const ICMP: u32 = 1 << 6;
pub const U_STR: u32 = 1 << 7;
pub const U_DGR: u32 = 1 << 8;
pub const U_SEQ: u32 = 1 << 9;
pub const UNIX_OTHER: u32 = 1 << 10;

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// The bit of a socket's (family, type, protocol), 0 when it is none of the above.
#[inline(always)]
pub const fn bit(family: u16, sock_type: u16, protocol: u16) -> u32 {
    match family {
        AF_UNIX => match sock_type {
            1 => U_STR,
            2 => U_DGR,
            5 => U_SEQ,
            _ => UNIX_OTHER,
        },
        AF_INET | AF_INET6 => {
            if sock_type == 3 {
                return RAW;
            }
            match protocol {
                6 => TCP,
                17 => UDP,
                132 => SCTP,
                136 => UDPLITE,
                262 => MPTCP,
                1 | 58 => ICMP,
                _ => 0,
            }
        }
        _ => 0,
    }
}
