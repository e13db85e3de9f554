//! Run-time settings the agent hands the programs before load: the filters and flags
//! (`Config`), the kernel functions' shapes (`KfuncConfig`), the followed processes' values.

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
// 1 << 11: `CFG_EXEC`, the audit's exec capture (exec.rs).

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
