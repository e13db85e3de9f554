//! Maps and globals shared by every program.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use lsn_trace_common::{Config, KernelOffsets, N_COUNTERS, PendingCall};

/// Filled by the agent before load (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets::UNRESOLVED;

#[unsafe(no_mangle)]
pub static CONFIG: Config = Config {
    flags: 0,
    self_pid: 0,
    wakeup_bytes: 0,
    _pad: 0,
};

/// Read a global through a volatile load so the compiler cannot fold the placeholder.
#[inline(always)]
pub fn config() -> Config {
    unsafe { core::ptr::read_volatile(&raw const CONFIG) }
}

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Syscall arguments from sys_enter_* until sys_exit_*, per thread id.
#[map]
pub static PENDING: HashMap<u32, PendingCall> = HashMap::with_max_entries(16384, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(N_COUNTERS, 0);

#[inline(always)]
pub fn count(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        unsafe { *p += 1 };
    }
}
