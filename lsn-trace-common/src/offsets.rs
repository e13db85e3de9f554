//! Where the programs read the running kernel's structs: one `Field` per struct field, the
//! `KernelOffsets` table the agent resolves from BTF, and the kfunc call it patches.

/// The most of a `struct sock` the programs copy at once (see `KernelOffsets::sock_span`);
/// a power of two, so an offset masked with `SOCK_SNAPSHOT - 1` stays inside the copy.
pub const SOCK_SNAPSHOT: usize = 2048;
/// The most of a `struct socket_alloc` the programs copy at once (`socket_window_len`).
pub const SOCKET_WINDOW: usize = 256;

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
    /// `file->f_inode->i_sb->s_magic`: a descriptor is a socket only if its file is on
    /// sockfs (`SOCKFS_MAGIC`); any other file's `private_data` is not a `struct socket`.
    pub file_f_inode: Field,
    pub inode_i_sb: Field,
    pub sb_magic: Field,
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
    /// `current->cred->euid.val`: the effective uid (a setuid program's owner).
    pub cred_euid: Field,
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
        file_f_inode: Field::NONE,
        inode_i_sb: Field::NONE,
        sb_magic: Field::NONE,
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
        cred_euid: Field::NONE,
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
