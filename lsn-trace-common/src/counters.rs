//! The per-CPU `COUNTERS` the programs keep: what was emitted, filtered and lost.

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
// Index N_COUNTERS: `CTR_EXEC_LOST`, the audit's exec capture (exec.rs).
