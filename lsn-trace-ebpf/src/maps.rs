//! Maps and globals shared by every program.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use lsn_trace_common::{
    Config, KernelOffsets, KfuncConfig, N_COUNTERS_ALL, PendingCall, SELF_CHECK_THREADS,
    SOCK_SNAPSHOT, SOCKET_WINDOW, TASK_COMM_LEN,
};

/// Filled by the agent before load (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets::UNRESOLVED;

#[unsafe(no_mangle)]
pub static CONFIG: Config = Config {
    flags: 0,
    self_pid: 0,
    wakeup_bytes: 0,
    protos: 0,
    families: 0,
};

/// The kernel functions' shapes, for the fentry and kprobe backends (see `KfuncConfig`).
#[unsafe(no_mangle)]
pub static KFUNC: KfuncConfig = KfuncConfig {
    sol_socket_takes_socket: 0,
    sockptr_kernel_bit: 0,
    syscall_hooks: 0,
    _pad: [0; 5],
};

#[inline(always)]
pub fn kfunc() -> KfuncConfig {
    unsafe { core::ptr::read_volatile(&raw const KFUNC) }
}

/// Read a global through a volatile load so the compiler cannot fold the placeholder.
#[inline(always)]
pub fn config() -> Config {
    unsafe { core::ptr::read_volatile(&raw const CONFIG) }
}

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Arguments of a kernel function call from its kprobe to its kretprobe (and the "listen in
/// flight" mark), per thread id. An LRU hash: an entry whose kretprobe never ran (the
/// kernel arms at most `maxactive` return probes per function at once; a call beyond them
/// returns unseen) stays until that thread's next call replaces it — counted then as lost
/// (`CTR_LOST_RETURN`, `kernel_calls::keep`) — or, for a thread that never calls again,
/// until the map is full and the kernel evicts its least recently used entries: stale
/// entries cannot fill it. A thread has at most one entry per map, and a live one lives for
/// one call: an eviction takes a live entry only when more than `PENDING_ENTRIES` threads'
/// entries are newer than it (threads in one of these calls at once, or whose return was
/// missed and which never called again) — which a kretprobe cannot tell from a call its
/// kprobe did not keep (docs/backends.md).
#[map]
pub static PENDING: LruHashMap<u32, PendingCall> = LruHashMap::with_max_entries(PENDING_ENTRIES, 0);

/// The same for the syscall-layer functions (`__sys_bind` …), whose calls are in flight
/// around the protocol functions' (kprobe backend).
#[map]
pub static PENDING_SYSCALL: LruHashMap<u32, PendingCall> =
    LruHashMap::with_max_entries(PENDING_ENTRIES, 0);

pub const PENDING_ENTRIES: u32 = 16384;

/// Per-CPU room for one copy of a `struct sock`'s head (see `kernel::SockView`), then, at
/// `SOCKET_AT`, for one window of a `struct socket_alloc` (`kernel::socket_sk_ino`). Each
/// has 16 bytes beyond its largest copy, so that a masked offset plus the 16 bytes read
/// there stays inside. Then, at `SCRATCH_GEN_AT`, how many copies were made into it
/// (`kernel::Scratch`): a program can lose the CPU between its copy and its reads — fentry
/// programs run preemptible under preempt=full — and another program's copy then replaces
/// its own. Only where the kernel has no `bpf_rdonly_cast` (which needs no copy).
#[map]
pub static SOCK_SCRATCH: PerCpuArray<[u8; SCRATCH_GEN_AT + 8]> =
    PerCpuArray::with_max_entries(1, 0);

pub const SOCKET_AT: usize = SOCK_SNAPSHOT + 16;
pub const SCRATCH_GEN_AT: usize = SOCKET_AT + SOCKET_WINDOW + 16;
const _: () = assert!(SCRATCH_GEN_AT % 8 == 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(N_COUNTERS_ALL, 0);

/// Add one to a counter, atomically: a per-CPU value is not enough on its own, as an fentry
/// program can lose the CPU between its load and its store (preempt=full), and the other
/// task's increment then vanishes — a lost event that is not counted lost.
#[inline(always)]
pub fn count(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // BPF_ATOMIC | BPF_ADD without fetch (any BPF CPU version): core has no atomic
        // read-modify-write on this target, so the instruction is written out.
        unsafe {
            core::arch::asm!(
                "lock *(u64 *)({p} + 0) += {one}",
                p = in(reg) p,
                one = in(reg) 1u64,
                options(nostack, preserves_flags),
            )
        };
    }
}

/// Add one to a counter and return this CPU's new count (0 when the counter is missing),
/// not atomically: only for a count that may miss one (`CTR_EMITTED`, which paces the
/// ring's wake-ups).
#[inline(always)]
pub fn count_get(idx: u32) -> u64 {
    match COUNTERS.get_ptr_mut(idx) {
        Some(p) => unsafe {
            *p += 1;
            *p
        },
        None => 0,
    }
}

// Filter sets (see `filter`): the agent fills them before enabling; a key present = wanted.
#[map]
pub static FILTER_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);
#[map]
pub static FILTER_UIDS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);
#[map]
pub static FILTER_COMMS: HashMap<[u8; TASK_COMM_LEN], u8> = HashMap::with_max_entries(256, 0);
#[map]
pub static FILTER_NETNS: HashMap<u32, u8> = HashMap::with_max_entries(256, 0);
#[map]
pub static FILTER_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(1024, 0);

/// Followed processes (tgid -> FOLLOW_SELF/FOLLOW_TREE), kept by `follow` from
/// sched_process_fork/exit so a daemon's descendants are followed from their first
/// instruction, whatever they do with sessions and parents.
#[map]
pub static FOLLOW: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// The threads of the agent that run its start-up self-check (one per CPU, tid -> CPU): their
/// calls pass every filter and are marked `F_SELF_CHECK`, so the agent sees each hook fire
/// on each CPU before it says it is attached. Every other call of the agent is not traced
/// (`Config::self_pid`).
#[map]
pub static SELF_CHECK: HashMap<u32, u32> = HashMap::with_max_entries(SELF_CHECK_THREADS, 0);

/// Whether `tid` of the agent's process is one of its self-check threads.
#[inline(always)]
pub fn is_self_check(tid: u32) -> bool {
    unsafe { SELF_CHECK.get(tid) }.is_some()
}
