//! The event the programs write into the ring buffer: its kind, where the call came from,
//! its flags, the socket's state as the kernel had it, and a call's arguments in flight.

pub const TASK_COMM_LEN: usize = 16;
/// Bytes of the caller's sockaddr kept per event: `sizeof(struct sockaddr_storage)`.
pub const SOCKADDR_CAP: usize = 128;
/// Bytes of a setsockopt value kept (an int, or an interface name for SO_BINDTODEVICE).
pub const OPTVAL_CAP: usize = 16;

/// What happened. One event struct serves every kind; unused fields stay zero.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Bind = 1,
    Listen = 2,
    Setsockopt = 3,
    /// A TCP socket entered LISTEN without a listen(2) syscall of this task in flight
    /// (io_uring, in-kernel sockets): seen by `inet_sock_set_state`.
    ListenState = 4,
    /// A TCP listener left LISTEN (closed, or shut down).
    ListenClose = 5,
}

impl EventKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Bind,
            2 => Self::Listen,
            3 => Self::Setsockopt,
            4 => Self::ListenState,
            5 => Self::ListenClose,
            _ => return None,
        })
    }
}

/// Where the request came from.
pub const SOURCE_SYSCALL: u8 = 0;
pub const SOURCE_KERNEL: u8 = 1;
/// io_uring (IORING_OP_BIND/IORING_OP_LISTEN, kernel 6.11+): seen by the kernel-function
/// backends only.
pub const SOURCE_IO_URING: u8 = 2;

/// `Event::flags` bits.
pub const F_ADDR_READ: u16 = 1 << 0; // the caller's sockaddr was copied
pub const F_ADDR_FAULT: u16 = 1 << 1; // ... or reading it faulted: addr[..8] = the pointer
pub const F_SOCK: u16 = 1 << 2; // the fd resolved to a socket and `sock` is filled
pub const F_OPTVAL_READ: u16 = 1 << 3;
pub const F_OPTVAL_FAULT: u16 = 1 << 4; // optval[..8] = the pointer
pub const F_NO_FD: u16 = 1 << 5; // the hook saw the socket, not a descriptor
pub const F_FOLLOWED: u16 = 1 << 6; // the caller is in FOLLOW (`-- CMD`, `-p`)
/// listen: the backlog asked for is unknown (the hook saw it already clamped to somaxconn).
pub const F_NO_BACKLOG: u16 = 1 << 7;
/// `euid` was read.
pub const F_EUID: u16 = 1 << 8;
/// No socket state, as the descriptor's file is not a socket (not on sockfs; or the
/// kernel said ENOTSOCK): `state_unknown: "not_a_socket"`.
pub const F_NOT_SOCKET: u16 = 1 << 9;
/// The agent's own start-up self-check (`SELF_CHECK`): proves a hook live, never shown.
pub const F_SELF_CHECK: u16 = 1 << 15;
/// Room in `SELF_CHECK`: one self-check thread per CPU the agent may run on.
pub const SELF_CHECK_THREADS: u32 = 4096;

/// `SockState::known` bits: which fields were read. A field whose offset the agent could
/// not resolve from BTF, or whose read failed, stays unknown — never guessed.
pub const K_FAMILY: u32 = 1 << 0;
pub const K_TYPE: u32 = 1 << 1;
pub const K_PROTOCOL: u32 = 1 << 2;
pub const K_STATE: u32 = 1 << 3;
pub const K_NUM: u32 = 1 << 4;
pub const K_RCV_SADDR: u32 = 1 << 5;
pub const K_V6_RCV_SADDR: u32 = 1 << 6;
pub const K_V6ONLY: u32 = 1 << 7;
pub const K_REUSE: u32 = 1 << 8;
pub const K_REUSEPORT: u32 = 1 << 9;
pub const K_FREEBIND: u32 = 1 << 10;
pub const K_TRANSPARENT: u32 = 1 << 11;
pub const K_BIND_NO_PORT: u32 = 1 << 12;
pub const K_BOUND_DEV: u32 = 1 << 13;
pub const K_BACKLOG: u32 = 1 << 14;
pub const K_NETNS: u32 = 1 << 15;
pub const K_INO: u32 = 1 << 16;

/// The socket as the kernel holds it when the hook ran (after the call, for exit hooks).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockState {
    pub known: u32,
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    /// Local port the kernel bound, host order (`skc_num`).
    pub num: u16,
    pub state: u8,
    pub v6only: u8,
    /// `sk_reuse`: 0 no, 1 SK_CAN_REUSE, 2 SK_FORCE_REUSE.
    pub reuse: u8,
    pub reuseport: u8,
    pub freebind: u8,
    pub transparent: u8,
    pub bind_no_port: u8,
    pub _pad: u8,
    pub bound_dev_if: i32,
    /// Effective accept-queue limit (`sk_max_ack_backlog`), after the somaxconn clamp.
    pub max_ack_backlog: u32,
    pub netns: u32,
    pub rcv_saddr: [u8; 4],
    pub v6_rcv_saddr: [u8; 16],
    /// The socket's inode number (`socket:[N]` in /proc/PID/fd), read from the kernel so the
    /// agent never has to look at another process's fds (see `story`).
    pub ino: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// CLOCK_MONOTONIC (bpf_ktime_get_ns) at the end of the call.
    pub ts_ns: u64,
    /// Kernel `struct sock *`, only as an identity; the agent never prints it raw.
    pub sock_ptr: u64,
    /// The process's start (its main thread's `start_boottime`, ns since boot; 0 when
    /// unresolved): with `pid`, the process instance (/proc/PID/stat's starttime), so a
    /// reused pid is told from the process that made the event.
    pub start_boottime: u64,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// tgid of the caller's parent (0 when unknown).
    pub ppid: u32,
    pub fd: i32,
    /// 0 or -errno.
    pub ret: i32,
    pub kind: u8,
    pub source: u8,
    pub flags: u16,
    /// addrlen as passed to bind(2).
    pub addrlen: u32,
    pub comm: [u8; TASK_COMM_LEN],
    /// The effective uid (`cred->euid`, initial user namespace), valid with `F_EUID`.
    pub euid: u32,
    /// listen: requested backlog. setsockopt: level.
    pub arg0: i64,
    /// setsockopt: optname.
    pub arg1: i32,
    /// setsockopt: optlen as passed.
    pub arg2: i32,
    pub optval: [u8; OPTVAL_CAP],
    pub sock: SockState,
    /// The caller's sockaddr, `min(addrlen, SOCKADDR_CAP)` bytes valid.
    pub addr: [u8; SOCKADDR_CAP],
}

/// Arguments of a syscall in flight, kept per thread from sys_enter_* to sys_exit_*.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingCall {
    pub kind: u8,
    pub _pad: [u8; 7],
    pub args: [u64; 5],
}
