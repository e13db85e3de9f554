//! Decoding: the raw `lsn_trace_common::Event` from the ring buffer into what it means.
//! Nothing here guesses: a field the kernel side could not read is `None`.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lsn_trace_common as wire;

use crate::sockaddr::{AF_INET, AF_INET6, AF_UNIX, SockAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bind,
    Listen,
    Setsockopt,
    /// A socket entered LISTEN without listen(2) (io_uring, in-kernel).
    ListenState,
    /// A listener left LISTEN.
    Close,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bind => "bind",
            Kind::Listen | Kind::ListenState => "listen",
            Kind::Setsockopt => "setsockopt",
            Kind::Close => "close",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Bind(SockAddr),
    Listen {
        /// As asked; None where the hook saw it only after the somaxconn clamp.
        backlog: Option<i32>,
    },
    Setsockopt {
        level: i32,
        optname: i32,
        optlen: i32,
        value: OptValue,
    },
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptValue {
    Int(i32),
    /// SO_BINDTODEVICE: an interface name (empty = unbind).
    Name(String),
    /// optlen shorter than an int, or a value we do not interpret.
    Bytes(Vec<u8>),
    /// sctp_bindx(): the addresses added (SCTP_SOCKOPT_BINDX_ADD) or removed (_REM).
    Addrs(BindxAddrs),
    Unreadable,
}

/// An sctp_bindx() array (packed sockaddr_in/sockaddr_in6, `optlen` bytes) as the kernel
/// walks it (sctp_setsockopt_bindx).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindxAddrs {
    /// The addresses in order, each exactly as passed: those whole in the bytes copied
    /// (`SOCKADDR_CAP`: 8 sockaddr_in or 4 sockaddr_in6).
    pub addrs: Vec<SockAddr>,
    /// How many addresses the array holds in all (counted in the kernel past the copy);
    /// None when they were too many to count (more than `BINDX_WALK`) or unreadable.
    pub count: Option<u32>,
    /// The byte offset where the array stops being one the kernel takes (an unknown family,
    /// or an address cut short by optlen): the call fails with EINVAL, adding nothing.
    pub malformed_at: Option<u32>,
}

impl BindxAddrs {
    /// Addresses in the array not in `addrs` (None: unknown).
    pub fn omitted(&self) -> Option<u32> {
        self.count
            .map(|c| c.saturating_sub(self.addrs.len() as u32))
    }
}

/// Who made the request (`source` in the JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// bind(2), listen(2), setsockopt(2).
    Syscall,
    /// io_uring (IORING_OP_BIND/LISTEN): only the kernel-function backends see these.
    IoUring,
    /// The kernel on its own behalf, or a state change no call of the task explains
    /// (a listener's close).
    Kernel,
}

impl Source {
    fn from_wire(v: u8) -> Source {
        match v {
            wire::SOURCE_SYSCALL => Source::Syscall,
            wire::SOURCE_IO_URING => Source::IoUring,
            _ => Source::Kernel,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Source::Syscall => "syscall",
            Source::IoUring => "io_uring",
            Source::Kernel => "kernel",
        }
    }
}

/// The socket's state as the kernel had it after the call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sock {
    pub family: Option<u16>,
    pub sock_type: Option<u16>,
    pub protocol: Option<u16>,
    pub state: Option<u8>,
    /// The local address and port the kernel holds (port 0 = not bound).
    pub local: Option<IpAddr>,
    pub port: Option<u16>,
    pub v6only: Option<bool>,
    pub reuseaddr: Option<bool>,
    pub reuseport: Option<bool>,
    pub freebind: Option<bool>,
    pub transparent: Option<bool>,
    pub bind_no_port: Option<bool>,
    pub bound_dev_if: Option<i32>,
    pub backlog: Option<u32>,
    pub netns: Option<u32>,
    /// The socket's inode number, as /proc/PID/fd shows it (`socket:[N]`).
    pub inode: Option<u64>,
    /// A unix listener's own address (path, @abstract, or the name an autobind picked),
    /// read from the socket at listen time.
    pub unix_addr: Option<SockAddr>,
}

impl Sock {
    /// The scope of the address the socket holds, as getsockname() gives it
    /// (`sin6_scope_id`): for an IPv6 address that needs one (link-local; interface- or
    /// link-local multicast) the socket's bound device, which a link-local bind sets from its
    /// scope id (__inet6_bind); where the hook could not read that, the scope the story saw it
    /// bound with (`local`: the note's). None for other addresses, or when unknown.
    pub fn scope_id(&self, local: Option<&SockAddr>) -> Option<u32> {
        let IpAddr::V6(ip) = self.local? else {
            return None;
        };
        let o = ip.octets();
        let link_local = o[0] == 0xfe && o[1] & 0xc0 == 0x80;
        let scoped_multicast = o[0] == 0xff && matches!(o[1] & 0x0f, 1 | 2);
        if !(link_local || scoped_multicast) {
            return None;
        }
        match (self.bound_dev_if, local) {
            (Some(dev), _) => Some(dev.max(0) as u32),
            (None, Some(SockAddr::Inet6 { addr, scope_id, .. })) if *addr == ip => Some(*scope_id),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    pub kind: Kind,
    /// Wall clock, nanoseconds since the epoch.
    pub time_ns: u64,
    pub pid: u32,
    pub tid: u32,
    /// When process `pid` started, in clock ticks since boot (/proc/PID/stat's
    /// starttime): with the pid, the process instance. None when the kernel side could not
    /// read it.
    pub start: Option<u64>,
    pub ppid: Option<u32>,
    pub uid: u32,
    /// The effective uid (a setuid program's owner, where it differs from `uid`); None when
    /// the kernel side could not read it.
    pub euid: Option<u32>,
    pub gid: u32,
    /// Shared (an `Arc`): the events of one process name share one allocation.
    pub comm: std::sync::Arc<str>,
    pub fd: Option<i32>,
    /// 0 or a positive errno.
    pub errno: i32,
    /// Who asked: a syscall, io_uring, or the kernel.
    pub source: Source,
    pub request: Request,
    pub sock: Option<Sock>,
    /// Why `sock` is None, where that is known (`state_unknown` in the JSON).
    pub state_unknown: Option<StateUnknown>,
    /// Kernel socket identity, scrambled (see `Decoder`): never a raw kernel pointer.
    pub sock_id: Option<u64>,
    /// The syscall's arguments as passed, for renderers that print them raw (strace).
    pub raw: RawArgs,
    /// The caller is one of the followed processes (`-- CMD`, `-p`).
    pub followed: bool,
}

/// What `Request` does not keep: lengths as passed, bytes as read, and the user pointer of an
/// argument that could not be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawArgs {
    /// bind: addrlen as passed.
    pub addrlen: u32,
    /// bind: `sa_family` as passed (an AF_UNSPEC the socket read as AF_INET stays AF_UNSPEC
    /// here), when the sockaddr was read.
    pub sa_family: Option<u16>,
    /// bind's sockaddr or setsockopt's optval pointer, when reading it faulted.
    pub fault_ptr: Option<u64>,
    /// setsockopt: the value bytes as read (`optval_len` of them).
    pub optval: [u8; wire::OPTVAL_CAP],
    pub optval_len: u8,
    /// The process's start exactly (ns since boot, 0 unknown): the instance for the audit's
    /// exec capture, which two processes started at one pid within a tick of `start`
    /// (10 ms) must not share.
    pub start_ns: u64,
}

/// Why an event carries no socket state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateUnknown {
    /// The descriptor's file is not a socket (not on sockfs; or the call got ENOTSOCK).
    NotASocket,
}

impl StateUnknown {
    pub fn name(self) -> &'static str {
        match self {
            StateUnknown::NotASocket => "not_a_socket",
        }
    }
}

pub const SOCK_STREAM: u16 = 1;
pub const SOCK_DGRAM: u16 = 2;
pub const SOCK_RAW: u16 = 3;
pub const SOCK_SEQPACKET: u16 = 5;
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;

/// Families whose sockets can never listen (the kernel's listen for them is
/// `sock_no_listen`): key, netlink, packet, RDS, CAN, IEEE 802.15.4, AF_ALG, QRTR, XDP,
/// MCTP. A busy host binds netlink sockets constantly (`ip`, `ss`, systemd, glibc's
/// resolver): the default human output leaves them out.
pub const NEVER_LISTEN: [u16; 10] = [15, 16, 17, 21, 29, 36, 38, 42, 44, 45];

impl Event {
    /// Whether the event is about a socket of a family that can never listen (the
    /// socket's own family; for bind without it, the requested one). Unknown: false.
    pub fn never_listens(&self) -> bool {
        self.sock
            .as_ref()
            .and_then(|s| s.family)
            .or_else(|| self.family())
            .is_some_and(|f| NEVER_LISTEN.contains(&f))
    }

    /// The family the event is about: the requested one for bind, else the socket's.
    pub fn family(&self) -> Option<u16> {
        if let Request::Bind(a) = &self.request
            && let Some(f) = a.family()
        {
            return Some(f);
        }
        self.sock.as_ref()?.family
    }

    /// Protocol in the notation of ss's Netid column: tcp, udp, sctp, mptcp, raw, u_str,
    /// u_dgr, u_seq, ...
    pub fn protocol(&self) -> Option<&'static str> {
        let s = self.sock.as_ref()?;
        let family = s.family.or_else(|| self.family())?;
        let ty = s.sock_type;
        if family == AF_UNIX {
            return Some(match ty? {
                SOCK_STREAM => "u_str",
                SOCK_DGRAM => "u_dgr",
                SOCK_SEQPACKET => "u_seq",
                _ => "unix",
            });
        }
        if family != AF_INET && family != AF_INET6 {
            return None;
        }
        if ty == Some(SOCK_RAW) {
            return Some("raw");
        }
        Some(match s.protocol? {
            IPPROTO_TCP => "tcp",
            IPPROTO_UDP => "udp",
            132 => "sctp",
            136 => "udplite",
            262 => "mptcp",
            1 | 58 => "icmp",
            _ => return None,
        })
    }

    pub fn failed(&self) -> bool {
        self.errno != 0
    }
}

/// Turns raw events into `Event`s: knows the boot-to-wall clock offset and the key that
/// scrambles socket pointers (a raw kernel address in a log would defeat KASLR).
pub struct Decoder {
    boot_to_wall_ns: i128,
    sock_key: u64,
    /// The last process name decoded, raw and as text: a storm's events come from a few
    /// processes, each name is made into text once and shared by its events.
    last_comm: ([u8; wire::TASK_COMM_LEN], std::sync::Arc<str>),
}

impl Decoder {
    pub fn new() -> Self {
        let now = |clock| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            unsafe { libc::clock_gettime(clock, &mut ts) };
            ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
        };
        let wall = now(libc::CLOCK_REALTIME);
        let mono = now(libc::CLOCK_MONOTONIC);
        let mut key = [0u8; 8];
        // getrandom never fails for 8 bytes after boot; a zero key only weakens scrambling.
        unsafe { libc::getrandom(key.as_mut_ptr().cast(), key.len(), 0) };
        Decoder {
            boot_to_wall_ns: wall - mono,
            last_comm: Default::default(),
            sock_key: u64::from_ne_bytes(key) | 1,
        }
    }

    /// A decoder for records made by another run (`replay`): that run's clock offset, so
    /// times are the recorded ones, and a fixed key, so socket ids are the same every replay.
    pub fn replaying(boot_to_wall_ns: i64) -> Self {
        Decoder {
            boot_to_wall_ns: boot_to_wall_ns.into(),
            sock_key: 0x005e_ed0f_7ec0_ded1,
            last_comm: Default::default(),
        }
    }

    /// Wall clock minus CLOCK_MONOTONIC when this decoder was made (what a recording keeps).
    pub fn boot_to_wall_ns(&self) -> i64 {
        self.boot_to_wall_ns as i64
    }

    /// One ring-buffer record: a whole `wire::Event` (a shorter one is no event).
    pub fn decode_record(&mut self, item: &[u8]) -> Option<Event> {
        if item.len() < std::mem::size_of::<wire::Event>() {
            return None;
        }
        // SAFETY: the programs write whole `wire::Event`s (plain data, any bit pattern is
        // valid); read unaligned, as a record's start is only 8-aligned.
        let raw: wire::Event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        self.decode(&raw)
    }

    pub fn decode(&mut self, raw: &wire::Event) -> Option<Event> {
        let kind = match wire::EventKind::from_u8(raw.kind)? {
            wire::EventKind::Bind => Kind::Bind,
            wire::EventKind::Listen => Kind::Listen,
            wire::EventKind::Setsockopt => Kind::Setsockopt,
            wire::EventKind::ListenState => Kind::ListenState,
            wire::EventKind::ListenClose => Kind::Close,
        };
        let mut sock = (raw.flags & wire::F_SOCK != 0).then(|| decode_sock(&raw.sock));
        let request = match kind {
            Kind::Bind => Request::Bind(if raw.flags & wire::F_ADDR_READ != 0 {
                let n = (raw.addrlen as usize).min(wire::SOCKADDR_CAP);
                let family = sock.as_ref().and_then(|s| s.family);
                SockAddr::decode_for(&raw.addr[..n], raw.addrlen, family)
            } else if raw.flags & wire::F_ADDR_FAULT != 0 || raw.addrlen > 0 {
                SockAddr::Unreadable { len: raw.addrlen }
            } else {
                SockAddr::Other { family: 0, len: 0 }
            }),
            Kind::Listen => Request::Listen {
                backlog: (raw.flags & wire::F_NO_BACKLOG == 0).then_some(raw.arg0 as i32),
            },
            Kind::Setsockopt => Request::Setsockopt {
                level: raw.arg0 as i32,
                optname: raw.arg1,
                optlen: raw.arg2,
                value: decode_optval(raw),
            },
            Kind::ListenState | Kind::Close => Request::None,
        };
        if kind == Kind::Listen
            && raw.flags & wire::F_ADDR_READ != 0
            && let Some(s) = sock.as_mut()
        {
            let n = (raw.addrlen as usize).min(wire::SOCKADDR_CAP);
            s.unix_addr = Some(SockAddr::decode(&raw.addr[..n], raw.addrlen));
        }
        let ptr_in = |b: &[u8]| Some(u64::from_ne_bytes(b[..8].try_into().unwrap()));
        let rawargs = RawArgs {
            start_ns: raw.start_boottime,
            addrlen: raw.addrlen,
            sa_family: (raw.flags & wire::F_ADDR_READ != 0 && raw.addrlen >= 2)
                .then(|| u16::from_ne_bytes([raw.addr[0], raw.addr[1]])),
            fault_ptr: if raw.flags & wire::F_ADDR_FAULT != 0 {
                ptr_in(&raw.addr)
            } else if raw.flags & wire::F_OPTVAL_FAULT != 0 {
                ptr_in(&raw.optval)
            } else {
                None
            },
            optval: raw.optval,
            optval_len: if raw.flags & wire::F_OPTVAL_READ != 0 {
                (raw.arg2.max(0) as usize).min(wire::OPTVAL_CAP) as u8
            } else {
                0
            },
        };
        Some(Event {
            kind,
            time_ns: (raw.ts_ns as i128 + self.boot_to_wall_ns).max(0) as u64,
            pid: raw.pid,
            tid: raw.tid,
            ppid: (raw.ppid != 0).then_some(raw.ppid),
            uid: raw.uid,
            euid: (raw.flags & wire::F_EUID != 0).then_some(raw.euid),
            gid: raw.gid,
            comm: if raw.comm == self.last_comm.0 {
                self.last_comm.1.clone()
            } else {
                let text: std::sync::Arc<str> = comm(&raw.comm).into();
                self.last_comm = (raw.comm, text.clone());
                text
            },
            fd: (raw.flags & wire::F_NO_FD == 0).then_some(raw.fd),
            errno: -raw.ret.min(0),
            source: Source::from_wire(raw.source),
            request,
            state_unknown: (sock.is_none() && raw.flags & wire::F_NOT_SOCKET != 0)
                .then_some(StateUnknown::NotASocket),
            sock,
            sock_id: (raw.sock_ptr != 0).then(|| self.scramble(raw.sock_ptr)),
            raw: rawargs,
            followed: raw.flags & wire::F_FOLLOWED != 0,
            start: (raw.start_boottime != 0).then(|| raw.start_boottime / ns_per_tick()),
        })
    }

    pub fn scramble(&self, ptr: u64) -> u64 {
        // A keyed bijection (xorshift-multiply): stable within one run, meaningless outside.
        let mut x = ptr ^ self.sock_key;
        x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

/// Nanoseconds per clock tick (USER_HZ: /proc's unit for start times).
pub(crate) fn ns_per_tick() -> u64 {
    static NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NS.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        1_000_000_000 / u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
    })
}

fn comm(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    crate::text::from_bytes(&raw[..end])
}

fn decode_optval(raw: &wire::Event) -> OptValue {
    use wire::sockopt::*;
    if is_bindx(raw.arg0 as i32, raw.arg1) {
        return decode_bindx(raw);
    }
    if raw.flags & wire::F_OPTVAL_FAULT != 0 {
        return OptValue::Unreadable;
    }
    let n = (raw.arg2.max(0) as usize).min(wire::OPTVAL_CAP);
    let bytes = &raw.optval[..n];
    if raw.arg0 as i32 == SOL_SOCKET && raw.arg1 == SO_BINDTODEVICE {
        // The kernel takes at most IFNAMSIZ - 1 = 15 bytes of the name (and ends it there).
        let bytes = &bytes[..bytes.len().min(15)];
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        return OptValue::Name(crate::text::from_bytes(&bytes[..end]));
    }
    match bytes.len() {
        // The kernel reads an int when optlen >= 4 and, for IP-level options, a single
        // byte when optlen >= 1 (do_ip_setsockopt).
        4.. => OptValue::Int(i32::from_ne_bytes(bytes[..4].try_into().unwrap())),
        1.. if raw.arg0 as i32 == SOL_IP => OptValue::Int(bytes[0] as i32),
        _ => OptValue::Bytes(bytes.to_vec()),
    }
}

/// A bindx array: the whole addresses among the bytes copied (into `addr`), walked as the
/// kernel walks them; the kernel side's walk of the whole array (in `optval`) counts the
/// rest.
fn decode_bindx(raw: &wire::Event) -> OptValue {
    use wire::sockopt::*;
    if raw.flags & wire::F_ADDR_FAULT != 0 {
        return OptValue::Unreadable;
    }
    let len = raw.arg2.max(0) as usize;
    let copied = if raw.flags & wire::F_ADDR_READ != 0 {
        len.min(wire::SOCKADDR_CAP)
    } else {
        0
    };
    let buf = &raw.addr[..copied];
    let mut out = BindxAddrs {
        addrs: Vec::new(),
        count: None,
        malformed_at: None,
    };
    let mut off = 0;
    // Within the copy; `whole` once the walk reached optlen.
    let whole = loop {
        if off >= len {
            break true;
        }
        if off + 2 > copied {
            if off + 2 > len {
                out.malformed_at = Some(off as u32);
                break true;
            }
            break false;
        }
        let step = match u16::from_ne_bytes([buf[off], buf[off + 1]]) {
            AF_INET => 16,
            AF_INET6 => 28,
            _ => 0,
        };
        if step == 0 || off + step > len {
            out.malformed_at = Some(off as u32);
            break true;
        }
        if off + step > copied {
            break false;
        }
        out.addrs
            .push(SockAddr::decode(&buf[off..off + step], step as u32));
        off += step;
    };
    if whole {
        out.count = Some(out.addrs.len() as u32);
    } else if raw.flags & wire::F_OPTVAL_READ != 0 {
        // SAFETY: plain data, any bit pattern is valid.
        let walk: BindxWalk = unsafe { std::ptr::read_unaligned(raw.optval.as_ptr().cast()) };
        match walk.status {
            BINDX_WHOLE => out.count = Some(walk.count),
            BINDX_MALFORMED => {
                out.count = Some(walk.count);
                out.malformed_at = Some(walk.end);
            }
            _ => {}
        }
    }
    OptValue::Addrs(out)
}

fn decode_sock(s: &wire::SockState) -> Sock {
    let has = |bit| s.known & bit != 0;
    fn known<T>(mask: u32, bit: u32, v: T) -> Option<T> {
        (mask & bit != 0).then_some(v)
    }
    let family = known(s.known, wire::K_FAMILY, s.family);
    let local = match family {
        Some(AF_INET) if has(wire::K_RCV_SADDR) => Some(IpAddr::V4(Ipv4Addr::from(s.rcv_saddr))),
        Some(AF_INET6) if has(wire::K_V6_RCV_SADDR) => {
            Some(IpAddr::V6(Ipv6Addr::from(s.v6_rcv_saddr)))
        }
        _ => None,
    };
    let inet = matches!(family, Some(AF_INET | AF_INET6));
    Sock {
        family,
        sock_type: known(s.known, wire::K_TYPE, s.sock_type),
        protocol: known(s.known, wire::K_PROTOCOL, s.protocol),
        state: known(s.known, wire::K_STATE, s.state),
        local,
        port: known(s.known, wire::K_NUM, s.num).filter(|_| inet),
        v6only: known(s.known, wire::K_V6ONLY, s.v6only != 0).filter(|_| family == Some(AF_INET6)),
        reuseaddr: known(s.known, wire::K_REUSE, s.reuse != 0),
        reuseport: known(s.known, wire::K_REUSEPORT, s.reuseport != 0),
        freebind: known(s.known, wire::K_FREEBIND, s.freebind != 0).filter(|_| inet),
        transparent: known(s.known, wire::K_TRANSPARENT, s.transparent != 0).filter(|_| inet),
        bind_no_port: known(s.known, wire::K_BIND_NO_PORT, s.bind_no_port != 0).filter(|_| inet),
        bound_dev_if: known(s.known, wire::K_BOUND_DEV, s.bound_dev_if),
        backlog: known(s.known, wire::K_BACKLOG, s.max_ack_backlog),
        netns: known(s.known, wire::K_NETNS, s.netns),
        inode: known(s.known, wire::K_INO, s.ino),
        unix_addr: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: wire::EventKind) -> wire::Event {
        // SAFETY: plain data, all-zero is valid.
        let mut e: wire::Event = unsafe { std::mem::zeroed() };
        e.kind = kind as u8;
        e.pid = 42;
        e.tid = 43;
        e.comm[..5].copy_from_slice(b"nginx");
        e
    }

    #[test]
    fn failed_bind_keeps_request() {
        let mut e = raw(wire::EventKind::Bind);
        e.ret = -98;
        e.fd = 6;
        e.flags = wire::F_ADDR_READ | wire::F_SOCK;
        e.addrlen = 16;
        e.addr[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        e.addr[2..4].copy_from_slice(&80u16.to_be_bytes());
        e.sock.known = wire::K_FAMILY | wire::K_TYPE | wire::K_PROTOCOL | wire::K_NUM;
        e.sock.family = AF_INET;
        e.sock.sock_type = SOCK_STREAM;
        e.sock.protocol = IPPROTO_TCP;
        let ev = Decoder::new().decode(&e).unwrap();
        assert_eq!(ev.errno, 98);
        assert_eq!(&*ev.comm, "nginx");
        assert_eq!(ev.fd, Some(6));
        assert_eq!(
            ev.request,
            Request::Bind(SockAddr::Inet {
                addr: Ipv4Addr::UNSPECIFIED,
                port: 80
            })
        );
        assert_eq!(ev.protocol(), Some("tcp"));
        let s = ev.sock.unwrap();
        assert_eq!(s.port, Some(0));
        // not read: unknown, not false
        assert_eq!(s.reuseaddr, None);
        assert_eq!(s.v6only, None);
    }

    #[test]
    fn unreadable_sockaddr() {
        let mut e = raw(wire::EventKind::Bind);
        e.ret = -14;
        e.flags = wire::F_ADDR_FAULT;
        e.addrlen = 16;
        // the eBPF side leaves the faulting pointer in the buffer
        e.addr[..8].copy_from_slice(&0x10u64.to_ne_bytes());
        let ev = Decoder::new().decode(&e).unwrap();
        assert_eq!(ev.request, Request::Bind(SockAddr::Unreadable { len: 16 }));
        assert!(ev.sock.is_none());
        assert_eq!(ev.raw.fault_ptr, Some(0x10));
        assert_eq!(ev.raw.addrlen, 16);
    }

    #[test]
    fn optvals() {
        let mut e = raw(wire::EventKind::Setsockopt);
        e.arg0 = 41;
        e.arg1 = 26;
        e.arg2 = 4;
        e.optval[..4].copy_from_slice(&1i32.to_ne_bytes());
        assert_eq!(decode_optval(&e), OptValue::Int(1));
        e.arg0 = 1;
        e.arg1 = 25;
        e.arg2 = 5;
        e.optval[..5].copy_from_slice(b"eth0\0");
        assert_eq!(decode_optval(&e), OptValue::Name("eth0".into()));
        e.arg0 = 0;
        e.arg1 = 15;
        e.arg2 = 1;
        e.optval[0] = 1;
        assert_eq!(decode_optval(&e), OptValue::Int(1));
        e.flags = wire::F_OPTVAL_FAULT;
        assert_eq!(decode_optval(&e), OptValue::Unreadable);
    }

    fn sin(a: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&a);
        b
    }

    fn sin6(a: Ipv6Addr, port: u16, scope: u32) -> Vec<u8> {
        let mut b = vec![0u8; 28];
        b[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[8..24].copy_from_slice(&a.octets());
        b[24..].copy_from_slice(&scope.to_ne_bytes());
        b
    }

    /// A bindx event of `array`, copied as the kernel side copies it, with its walk.
    fn bindx(array: &[u8], walk: Option<wire::sockopt::BindxWalk>) -> BindxAddrs {
        let mut e = raw(wire::EventKind::Setsockopt);
        e.arg0 = 132;
        e.arg1 = 100;
        e.arg2 = array.len() as i32;
        let n = array.len().min(wire::SOCKADDR_CAP);
        e.addr[..n].copy_from_slice(&array[..n]);
        e.flags = wire::F_ADDR_READ;
        if let Some(w) = walk {
            unsafe { std::ptr::write_unaligned(e.optval.as_mut_ptr().cast(), w) };
            e.flags |= wire::F_OPTVAL_READ;
        }
        match Decoder::new().decode(&e).unwrap().request {
            Request::Setsockopt {
                value: OptValue::Addrs(a),
                ..
            } => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bindx_arrays() {
        use wire::sockopt::*;
        let v4 = |last: u8| SockAddr::Inet {
            addr: Ipv4Addr::new(127, 0, 0, last),
            port: 5000,
        };
        // v4 + v6, whole in the copy: exact without the walk.
        let mut a = sin([127, 0, 0, 1], 5000);
        a.extend(sin6(Ipv6Addr::LOCALHOST, 5000, 0));
        let got = bindx(&a, None);
        assert_eq!(got.count, Some(2));
        assert_eq!(got.omitted(), Some(0));
        assert_eq!(got.malformed_at, None);
        assert_eq!(
            got.addrs,
            [
                v4(1),
                SockAddr::Inet6 {
                    addr: Ipv6Addr::LOCALHOST,
                    port: 5000,
                    flowinfo: 0,
                    scope_id: 0
                }
            ]
        );
        // Ten sockaddr_in: eight fit, the walk counts ten.
        let ten: Vec<u8> = (1..=10).flat_map(|i| sin([127, 0, 0, i], 5000)).collect();
        let walk = |count, end, status| BindxWalk {
            count,
            end,
            status,
            _pad: [0; 7],
        };
        let got = bindx(&ten, Some(walk(10, 160, BINDX_WHOLE)));
        assert_eq!(got.addrs, (1..=8).map(v4).collect::<Vec<_>>());
        assert_eq!((got.count, got.omitted()), (Some(10), Some(2)));
        // Not walked (or too many): the count is unknown, not guessed.
        let got = bindx(&ten, None);
        assert_eq!((got.count, got.omitted()), (None, None));
        assert_eq!(bindx(&ten, Some(walk(64, 1024, BINDX_MORE))).count, None);
        // Four sockaddr_in6 and a cut one: 4 whole, 112 bytes, then 16 of the fifth.
        let v6s: Vec<u8> = (0..5)
            .flat_map(|i| sin6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i), 7, 0))
            .collect();
        let got = bindx(&v6s, Some(walk(5, 140, BINDX_WHOLE)));
        assert_eq!((got.addrs.len(), got.count), (4, Some(5)));
        // An unknown family in the middle: EINVAL in the kernel, malformed here.
        let mut bad = sin([127, 0, 0, 1], 5000);
        bad.extend([7, 0, 0, 0]);
        let got = bindx(&bad, None);
        assert_eq!((got.count, got.malformed_at), (Some(1), Some(16)));
        // optlen cutting an address short.
        let got = bindx(&sin([127, 0, 0, 1], 5000)[..10], None);
        assert_eq!((got.addrs.len(), got.malformed_at), (0, Some(0)));
        // optlen 0: no address (EINVAL).
        assert_eq!(bindx(&[], None).count, Some(0));
    }

    #[test]
    fn sock_ids_are_scrambled_and_stable() {
        let d = Decoder::new();
        let a = d.scramble(0xffff_8880_1234_5600);
        assert_ne!(a, 0xffff_8880_1234_5600);
        assert_eq!(a, d.scramble(0xffff_8880_1234_5600));
        assert_ne!(a, d.scramble(0xffff_8880_1234_5700));
    }
}
