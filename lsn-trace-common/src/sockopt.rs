//! Listener-shaping socket options, filtered in the kernel.

pub const SOL_IP: i32 = 0;
pub const SOL_SOCKET: i32 = 1;
pub const SOL_IPV6: i32 = 41;
pub const SO_REUSEADDR: i32 = 2;
pub const SO_REUSEPORT: i32 = 15;
pub const SO_BINDTODEVICE: i32 = 25;
/// The interface by index (systemd's `BindToDevice=` uses it).
pub const SO_BINDTOIFINDEX: i32 = 62;
pub const IP_FREEBIND: i32 = 15;
pub const IP_TRANSPARENT: i32 = 19;
pub const IP_BIND_ADDRESS_NO_PORT: i32 = 24;
pub const IPV6_V6ONLY: i32 = 26;
pub const IPV6_TRANSPARENT: i32 = 75;
pub const IPV6_FREEBIND: i32 = 78;

/// Whether `(level, optname)` shapes how a socket listens.
#[inline(always)]
pub const fn is_listener_option(level: i32, optname: i32) -> bool {
    match level {
        SOL_SOCKET => matches!(
            optname,
            SO_REUSEADDR | SO_REUSEPORT | SO_BINDTODEVICE | SO_BINDTOIFINDEX
        ),
        SOL_IP => matches!(
            optname,
            IP_FREEBIND | IP_TRANSPARENT | IP_BIND_ADDRESS_NO_PORT
        ),
        SOL_IPV6 => matches!(optname, IPV6_V6ONLY | IPV6_TRANSPARENT | IPV6_FREEBIND),
        SOL_SCTP => is_bindx(level, optname),
        _ => false,
    }
}

/// sctp_bindx(3): a packed array of sockaddr_in/sockaddr_in6 added to (or removed from)
/// an SCTP socket's bound addresses. Its bytes go in `Event::addr` (the first
/// `SOCKADDR_CAP`), and `Event::optval` holds the kernel's walk of the whole array
/// (`BindxWalk`).
pub const SOL_SCTP: i32 = 132;
pub const SCTP_SOCKOPT_BINDX_ADD: i32 = 100;
pub const SCTP_SOCKOPT_BINDX_REM: i32 = 101;

/// Whether `(level, optname)` is an sctp_bindx() call.
#[inline(always)]
pub const fn is_bindx(level: i32, optname: i32) -> bool {
    level == SOL_SCTP && matches!(optname, SCTP_SOCKOPT_BINDX_ADD | SCTP_SOCKOPT_BINDX_REM)
}

/// At most this many addresses of a bindx array are walked (counted) in the kernel.
pub const BINDX_WALK: u32 = 64;
/// `BindxWalk::status`: the walk reached the array's end (`count` is every address);
/// stopped where the kernel refuses the array (an unknown family, or an address cut by
/// optlen: EINVAL, at byte `end`); stopped after `BINDX_WALK` addresses (more follow).
pub const BINDX_WHOLE: u8 = 0;
pub const BINDX_MALFORMED: u8 = 1;
pub const BINDX_MORE: u8 = 2;

/// What the programs write in `Event::optval` for a bindx call (F_OPTVAL_READ: walked).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindxWalk {
    pub count: u32,
    /// The byte offset the walk ended at.
    pub end: u32,
    pub status: u8,
    pub _pad: [u8; 7],
}
const _: () = assert!(core::mem::size_of::<BindxWalk>() == super::OPTVAL_CAP);
