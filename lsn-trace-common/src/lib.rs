//! Wire format shared by the eBPF programs and the agent.
//!
//! Everything here is `#[repr(C)]` plain data: the programs write it into the ring buffer
//! (or read it from globals the agent fills before load), the agent reads the same bytes.
#![no_std]

pub const TASK_COMM_LEN: usize = 16;
/// Bytes of the caller's sockaddr kept per event: `sizeof(struct sockaddr_storage)`.
pub const SOCKADDR_CAP: usize = 128;
/// Bytes of a setsockopt value kept (an int, or an interface name for SO_BINDTODEVICE).
pub const OPTVAL_CAP: usize = 16;
/// The most of a `struct sock` the programs copy at once (see `KernelOffsets::sock_span`);
/// a power of two, so an offset masked with `SOCK_SNAPSHOT - 1` stays inside the copy.
pub const SOCK_SNAPSHOT: usize = 2048;
/// The most of a `struct socket_alloc` the programs copy at once (`socket_window_len`).
pub const SOCKET_WINDOW: usize = 256;

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
    pub _pad: u32,
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

/// How to read one kernel struct field: byte offset from its base, how many bytes to load,
/// and for bitfields the bit shift and width within that load (little-endian). Eight-byte
/// aligned so a program reads one with a single load ([`Field::from_bits`]); the two shifts
/// that extract the value are precomputed here, as the programs run them on every read (the
/// JIT cannot fold the offsets table, only the verifier knows it).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Field {
    pub offset: u16,
    /// 0 = unresolved: the program leaves the field unknown.
    pub size: u8,
    pub bit_shift: u8,
    /// 0 = the whole load.
    pub bit_len: u8,
    /// `extract`: the value is `(raw << lshift) >> rshift`.
    lshift: u8,
    rshift: u8,
    _pad: u8,
}

impl Field {
    pub const NONE: Field = Field::bits(0, 0, 0, 0);

    pub const fn plain(offset: u16, size: u8) -> Field {
        Field::bits(offset, size, 0, 0)
    }

    pub const fn bits(offset: u16, size: u8, bit_shift: u8, bit_len: u8) -> Field {
        // Width of the value: the bitfield's, else the whole load (at most 64 bits; byte
        // arrays are not extracted). Shifted up to bit 63, then down to bit 0.
        let load_bits = if size >= 8 { 64 } else { size as u32 * 8 };
        let width = if bit_len != 0 && (bit_len as u32) < load_bits {
            bit_len as u32
        } else {
            load_bits
        };
        let width = if width == 0 { 64 } else { width };
        let top = bit_shift as u32 + width;
        let lshift = 64_u32.saturating_sub(top);
        Field {
            offset,
            size,
            bit_shift,
            bit_len,
            lshift: lshift as u8,
            rshift: (64 - width) as u8,
            _pad: 0,
        }
    }

    pub const fn is_known(&self) -> bool {
        self.size != 0
    }

    /// The field from its eight bytes read as one little-endian `u64` (how the programs load
    /// it: a volatile load of the struct would be eight byte loads).
    #[inline(always)]
    pub const fn from_bits(v: u64) -> Field {
        Field {
            offset: v as u16,
            size: (v >> 16) as u8,
            bit_shift: (v >> 24) as u8,
            bit_len: (v >> 32) as u8,
            lshift: (v >> 40) as u8,
            rshift: (v >> 48) as u8,
            _pad: 0,
        }
    }

    /// Extract the field's value from the bytes loaded at `offset` (at least `size` of them;
    /// bytes beyond are dropped). Shared by the programs and the agent's tests, so both
    /// sides agree on bitfield layout. Two shifts, no branch.
    #[inline(always)]
    pub const fn extract(&self, raw: u64) -> u64 {
        (raw << (self.lshift & 63)) >> (self.rshift & 63)
    }

    /// The value from a load of exactly `size` bytes at `offset` (zero-extended), as the
    /// programs load fields: a whole field is that load; only a bitfield is shifted out of
    /// it. The branch costs nothing in a program: the verifier knows the table and keeps
    /// only the side a field takes, so a whole field pays no shifts (most of an event's
    /// dozens of field reads).
    #[inline(always)]
    pub const fn from_sized_load(&self, raw: u64) -> u64 {
        if self.bit_len == 0 {
            raw
        } else {
            self.extract(raw)
        }
    }
}

/// Kernel struct layout of the running kernel, resolved from its BTF by the agent and
/// handed to the programs as the global `OFFSETS` before load (Rust eBPF has no CO-RE).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    // fd -> struct socket
    pub task_files: Field,
    pub files_fdt: Field,
    pub fdt_max_fds: Field,
    pub fdt_fd: Field,
    pub file_private_data: Field,
    pub socket_type: Field,
    pub socket_sk: Field,
    // struct sock_common / struct sock
    pub skc_family: Field,
    pub skc_state: Field,
    pub skc_num: Field,
    pub skc_rcv_saddr: Field,
    pub skc_v6_rcv_saddr: Field,
    pub skc_reuse: Field,
    pub skc_reuseport: Field,
    pub skc_ipv6only: Field,
    pub skc_bound_dev_if: Field,
    pub skc_net: Field,
    // sk->sk_socket, then the inode number of the socket_alloc around it
    pub sk_socket: Field,
    pub socket_ino: Field,
    pub net_ns_inum: Field,
    pub sk_type: Field,
    pub sk_protocol: Field,
    pub sk_max_ack_backlog: Field,
    // struct inet_sock: bitfields before 6.6, bits of `inet_flags` after
    pub inet_freebind: Field,
    pub inet_transparent: Field,
    pub inet_bind_no_port: Field,
    /// `inet_sock.inet_sport` (network order): a closing listener's port when the kernel
    /// already released `skc_num` (what the classic tracepoint's record carried as `sport`).
    pub inet_sport: Field,
    /// `sock.sk_ino` (6.16+: the sock keeps its socket's inode number), unknown before:
    /// then the inode is read through `sk_socket`.
    pub sk_ino: Field,
    // process identity
    /// `pid_t pid` (the thread's id, as `tgid` is the process's).
    pub task_pid: Field,
    /// `char comm[TASK_COMM_LEN]`.
    pub task_comm: Field,
    /// `current->cred->{uid,gid}.val`.
    pub task_cred: Field,
    pub cred_uid: Field,
    pub cred_gid: Field,
    pub task_real_parent: Field,
    /// The process's main thread: its `comm` is the process's name (`ps -o comm`).
    pub task_group_leader: Field,
    pub task_tgid: Field,
    /// `u64 start_boottime` (5.5+): what /proc/PID/stat's starttime is made of.
    pub task_start_boottime: Field,
    // current->nsproxy->net_ns: the caller's network namespace (`--netns` at entry)
    pub task_nsproxy: Field,
    pub nsproxy_net_ns: Field,
    // struct unix_sock (first member: struct sock) -> struct unix_address: a unix
    // listener's own address, which listen(2) does not pass
    pub unix_sock_addr: Field,
    pub unix_address_len: Field,
    /// Only the offset of the flexible `name[]` array is meaningful.
    pub unix_address_name: Field,
    // who called a kernel function (kernel-function backends): `current->flags`
    // (PF_KTHREAD, PF_IO_WORKER) and the syscall in progress (`task_pt_regs(current)->orig_ax`)
    pub task_flags: Field,
    pub pt_regs_orig_ax: Field,
    /// The syscall's arguments as the caller passed them (x86_64 `di`, `si`, `dx`, `r10`,
    /// `r8`): the syscall tracepoint backend reads them at exit (so it needs no entry hook),
    /// the kernel-function backends listen(2)'s backlog before the clamp.
    pub pt_regs_arg0: Field,
    pub pt_regs_arg1: Field,
    pub pt_regs_arg2: Field,
    pub pt_regs_arg3: Field,
    pub pt_regs_arg4: Field,
    /// `sock_net(sk)->core.sysctl_somaxconn`: the clamp applied before `inet_listen`.
    pub net_somaxconn: Field,
    /// Bytes from the start of `struct sock` that hold every field of
    /// [`KernelOffsets::sock_fields`]: the programs copy them with one read instead of one
    /// read per field (each read is a helper call; together they were a third of a storm's
    /// tracing cost). 0 = read field by field (more than [`SOCK_SNAPSHOT`] bytes).
    pub sock_span: u32,
    /// Where `struct socket`'s `sk` and the inode number of the `socket_alloc` around it
    /// lie (from the `struct socket *`): one read of `socket_window_len` bytes at
    /// `socket_window_start` gets both. 0 = read them one by one (too far apart).
    pub socket_window_start: u16,
    pub socket_window_len: u16,
    /// `files_struct.fd_array` (its first slot, a `struct file *`): with `btf_files_struct`,
    /// how a descriptor table's slot is read as a typed pointer (see `btf_sock`).
    pub files_fd_array: Field,
    /// The kernel's BTF type ids of `struct inet_sock` (what a `struct sock *` is cast to:
    /// the inet fields lie past `struct sock`), `struct socket_alloc` and
    /// `struct files_struct`, for `bpf_rdonly_cast` (a kfunc, 6.2+): it turns an address the
    /// programs hold as a number into a pointer they may load fields through — each load a
    /// few instructions the JIT guards against faults, where `bpf_probe_read_kernel` is a
    /// helper call (and a copy). 0 = this kernel has no such kfunc: read with the helper.
    pub btf_sock: u32,
    pub btf_socket_alloc: u32,
    pub btf_files_struct: u32,
    pub _pad: u32,
    /// `task_struct.thread_info.status`: its TS_COMPAT bit says the task is in a 32-bit
    /// (ia32) syscall, whose numbers differ from x86_64's.
    pub task_ti_status: Field,
    /// The ia32 syscall registers a 32-bit caller's arguments are in (`bx`, `cx`; `dx`, `si`,
    /// `di` are `pt_regs_arg2`, `_arg1`, `_arg0`), and `ax`, where a syscall skipped by
    /// seccomp has its return value.
    pub pt_regs_bx: Field,
    pub pt_regs_cx: Field,
    pub pt_regs_ax: Field,
    /// MPTCP (one socket, one story): the first subflow of an MPTCP socket
    /// (`mptcp_sock.first`), which holds the listener's effective backlog; and from a TCP
    /// subflow back to its MPTCP socket: `tcp_sock.is_mptcp`, then
    /// `inet_connection_sock.icsk_ulp_data` (its `mptcp_subflow_context`) and that
    /// context's `conn`. Unknown on kernels without MPTCP.
    pub mptcp_first: Field,
    pub tcp_is_mptcp: Field,
    pub icsk_ulp_data: Field,
    pub subflow_conn: Field,
    /// `task_struct.signal` -> `signal_struct.live`: the threads of a process not yet
    /// exiting, so that the exit of one thread (the main one included: pthread_exit, or
    /// killed by another thread's execve) is not taken for the process's.
    pub task_signal: Field,
    pub signal_live: Field,
}

/// The immediate of the kfunc call instruction the programs are built with
/// (`bpf_rdonly_cast`, whose BTF id only the running kernel knows): the agent writes the id
/// over it before loading, or, on a kernel without that kfunc, turns the call into the move
/// it is inlined to (no program reaches it there: `btf_sock` & co. are 0).
pub const KFUNC_CAST_PLACEHOLDER: u32 = 0x7473_6c2e; // ".lst"

/// The instruction calling the kfunc whose BTF id is `id` (BPF_JMP | BPF_CALL, src_reg
/// BPF_PSEUDO_KFUNC_CALL), as the little-endian word it is in an object.
pub const fn kfunc_call_insn(id: u32) -> u64 {
    (id as u64) << 32 | 0x2085
}

impl KernelOffsets {
    /// Nothing resolved: every field reads as unknown.
    pub const UNRESOLVED: Self = Self {
        task_files: Field::NONE,
        files_fdt: Field::NONE,
        fdt_max_fds: Field::NONE,
        fdt_fd: Field::NONE,
        file_private_data: Field::NONE,
        socket_type: Field::NONE,
        socket_sk: Field::NONE,
        skc_family: Field::NONE,
        skc_state: Field::NONE,
        skc_num: Field::NONE,
        skc_rcv_saddr: Field::NONE,
        skc_v6_rcv_saddr: Field::NONE,
        skc_reuse: Field::NONE,
        skc_reuseport: Field::NONE,
        skc_ipv6only: Field::NONE,
        skc_bound_dev_if: Field::NONE,
        skc_net: Field::NONE,
        sk_socket: Field::NONE,
        socket_ino: Field::NONE,
        net_ns_inum: Field::NONE,
        sk_type: Field::NONE,
        sk_protocol: Field::NONE,
        sk_max_ack_backlog: Field::NONE,
        inet_freebind: Field::NONE,
        inet_transparent: Field::NONE,
        inet_bind_no_port: Field::NONE,
        inet_sport: Field::NONE,
        sk_ino: Field::NONE,
        task_pid: Field::NONE,
        task_comm: Field::NONE,
        task_cred: Field::NONE,
        cred_uid: Field::NONE,
        cred_gid: Field::NONE,
        task_real_parent: Field::NONE,
        task_group_leader: Field::NONE,
        task_tgid: Field::NONE,
        task_start_boottime: Field::NONE,
        task_nsproxy: Field::NONE,
        nsproxy_net_ns: Field::NONE,
        unix_sock_addr: Field::NONE,
        unix_address_len: Field::NONE,
        unix_address_name: Field::NONE,
        task_flags: Field::NONE,
        pt_regs_orig_ax: Field::NONE,
        pt_regs_arg0: Field::NONE,
        pt_regs_arg1: Field::NONE,
        pt_regs_arg2: Field::NONE,
        pt_regs_arg3: Field::NONE,
        pt_regs_arg4: Field::NONE,
        net_somaxconn: Field::NONE,
        sock_span: 0,
        socket_window_start: 0,
        socket_window_len: 0,
        files_fd_array: Field::NONE,
        btf_sock: 0,
        btf_socket_alloc: 0,
        btf_files_struct: 0,
        _pad: 0,
        task_ti_status: Field::NONE,
        pt_regs_bx: Field::NONE,
        pt_regs_cx: Field::NONE,
        pt_regs_ax: Field::NONE,
        mptcp_first: Field::NONE,
        tcp_is_mptcp: Field::NONE,
        icsk_ulp_data: Field::NONE,
        subflow_conn: Field::NONE,
        task_signal: Field::NONE,
        signal_live: Field::NONE,
    };

    /// These offsets with no `bpf_rdonly_cast` (`btf_*` 0): the programs read kernel
    /// structs with the helper.
    pub const fn without_casts(self) -> Self {
        Self {
            btf_sock: 0,
            btf_socket_alloc: 0,
            btf_files_struct: 0,
            ..self
        }
    }

    /// The fields read from a `struct sock *` itself (not through a pointer in it).
    pub const fn sock_fields(&self) -> [Field; 19] {
        [
            self.skc_family,
            self.skc_state,
            self.skc_num,
            self.skc_rcv_saddr,
            self.skc_v6_rcv_saddr,
            self.skc_reuse,
            self.skc_reuseport,
            self.skc_ipv6only,
            self.skc_bound_dev_if,
            self.skc_net,
            self.sk_socket,
            self.sk_type,
            self.sk_protocol,
            self.sk_max_ack_backlog,
            self.inet_freebind,
            self.inet_transparent,
            self.inet_bind_no_port,
            self.inet_sport,
            self.sk_ino,
        ]
    }

    /// The `socket_window_{start,len}` these offsets call for: (0, 0) when either field is
    /// unknown or the two lie more than [`SOCKET_WINDOW`] bytes apart.
    pub fn socket_window_needed(&self) -> (u16, u16) {
        let (a, b) = (self.socket_sk, self.socket_ino);
        if !a.is_known() || !b.is_known() || a.size != 8 || b.size > 8 {
            return (0, 0);
        }
        // 8-aligned, as the programs read the copy a word at a time.
        let start = a.offset.min(b.offset) & !7;
        let end = (a.offset + u16::from(a.size)).max(b.offset + u16::from(b.size));
        match end - start {
            len if len as usize <= SOCKET_WINDOW => (start, len),
            _ => (0, 0),
        }
    }

    /// The `sock_span` these offsets call for: the end of the furthest known sock field,
    /// rounded up to 8, or 0 when that is more than [`SOCK_SNAPSHOT`].
    pub fn sock_span_needed(&self) -> u32 {
        let end = self
            .sock_fields()
            .iter()
            .filter(|f| f.is_known())
            .map(|f| f.offset as u32 + f.size as u32)
            .max()
            .unwrap_or(0);
        let end = (end + 7) & !7;
        if end as usize > SOCK_SNAPSHOT { 0 } else { end }
    }
}

/// `Config::flags` bits.
pub const CFG_ENABLED: u32 = 1 << 0;
/// Filters. Who calls is decided at syscall entry (nothing is stashed for an unwanted
/// caller); what the call is about at exit, before a ring-buffer record is reserved.
/// Each kind is an OR of its values (a map or a bit set), kinds are ANDed.
pub const CFG_F_PID: u32 = 1 << 1; // tgid in FILTER_PIDS
pub const CFG_F_UID: u32 = 1 << 2; // uid in FILTER_UIDS
pub const CFG_F_COMM: u32 = 1 << 3; // comm in FILTER_COMMS
pub const CFG_F_NETNS: u32 = 1 << 4; // netns inode in FILTER_NETNS
pub const CFG_F_PORT: u32 = 1 << 5; // requested or bound port in FILTER_PORTS
pub const CFG_F_FAMILY: u32 = 1 << 6; // bit `family` of Config::families
pub const CFG_F_PROTO: u32 = 1 << 7; // proto_bit(..) in Config::protos
pub const CFG_F_FAILED: u32 = 1 << 8; // only calls that returned an error
/// Track process ancestry in FOLLOW (sched_process_fork/exit).
pub const CFG_TRACK: u32 = 1 << 9;
/// Emit only for processes in FOLLOW (`-- CMD` and `-p` without `--all`).
pub const CFG_FOLLOW_ONLY: u32 = 1 << 10;

/// Run-time settings handed to the programs as the global `CONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    pub flags: u32,
    /// Events are not emitted for this process (the agent itself), 0 = none.
    pub self_pid: u32,
    /// Wake the reader only when this many bytes are pending (0 = every event).
    pub wakeup_bytes: u32,
    /// `--proto`: OR of `proto_bit`s.
    pub protos: u32,
    /// `--family`: bit n set = address family n wanted (all families are < 64).
    pub families: u64,
}

/// What the kernel-function programs (fentry, kprobe) need to know about the running
/// kernel's functions, decided by the agent from BTF (lsn-trace/src/kernel/hookplan.rs)
/// and handed over as the global `KFUNC`: the programs take it as given.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KfuncConfig {
    /// 1: the SOL_SOCKET setsockopt function hooked takes a `struct socket *`
    /// (`sock_setsockopt`); 0: a `struct sock *` (`sk_setsockopt`).
    pub sol_socket_takes_socket: u8,
    /// The setsockopt functions take `sockptr_t optval` (16 bytes, passed as two 8-byte
    /// halves: the pointer, then the word holding `is_kernel`): the bit of `is_kernel` in
    /// that second half.
    pub sockptr_kernel_bit: u8,
    /// `SYSCALL_HOOK_*` bits: the syscalls a syscall-level hook reports whatever the
    /// caller's ABI — fentry/kprobe: the syscall-layer functions hooked (`__sys_bind` …; a
    /// call they report is not reported again by the protocol function it reaches);
    /// tracepoint: all three when the raw `sys_exit` hook for 32-bit callers is attached.
    pub syscall_hooks: u8,
    pub _pad: [u8; 5],
}

/// `KfuncConfig::syscall_hooks` bits.
pub const SYSCALL_HOOK_BIND: u8 = 1 << 0;
pub const SYSCALL_HOOK_LISTEN: u8 = 1 << 1;
pub const SYSCALL_HOOK_SETSOCKOPT: u8 = 1 << 2;

/// `FOLLOW` values: whether children of this process are followed too...
pub const FOLLOW_SELF: u8 = 0;
pub const FOLLOW_TREE: u8 = 1;
/// ... and a bit set when the process exited: it stays followed for the rest of its exit
/// (its listeners close after sched_process_exit), the agent removes it.
pub const FOLLOW_EXITED: u8 = 2;

/// Protocols as `--proto` names them (ss's Netid column). One bit each so a set of them
/// is a mask the program tests with one AND.
pub mod proto {
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
}

/// Indices of the per-CPU `COUNTERS` array.
pub const CTR_LOST_RINGBUF: u32 = 0;
pub const CTR_LOST_PENDING: u32 = 1;
/// A call dropped because its arguments could not be read (the saved registers): lost.
pub const CTR_SOCK_READ_FAIL: u32 = 2;
pub const CTR_EMITTED: u32 = 3;
/// Events the filters dropped in the kernel (at entry or before reserving).
pub const CTR_FILTERED: u32 = 4;
/// A call's descriptor did not resolve to a socket though the kernel accepted it: the
/// event is still written, with no socket state (not a loss).
pub const CTR_FD_UNRESOLVED: u32 = 5;
pub const N_COUNTERS: u32 = 6;

/// Arguments of a syscall in flight, kept per thread from sys_enter_* to sys_exit_*.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingCall {
    pub kind: u8,
    pub _pad: [u8; 7],
    pub args: [u64; 5],
}

/// Listener-shaping socket options, filtered in the kernel.
pub mod sockopt {
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
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::PendingCall {}
    unsafe impl aya::Pod for super::KfuncConfig {}
}
