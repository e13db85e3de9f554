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
/// kprobe backend: a kretprobe that never ran (the kernel arms at most `maxactive` return
/// probes per function at a time; a call beyond that returns unseen). Counted when the same
/// thread's next call of a hooked function finds the earlier call's arguments still kept,
/// or when keeping them took the room of another thread's (the map full): that call is lost.
pub const CTR_LOST_RETURN: u32 = 6;
pub const N_COUNTERS: u32 = 7;
// Index N_COUNTERS: `CTR_EXEC_LOST`, the audit's exec capture (exec.rs).
