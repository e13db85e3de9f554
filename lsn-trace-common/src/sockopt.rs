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
        _ => false,
    }
}
