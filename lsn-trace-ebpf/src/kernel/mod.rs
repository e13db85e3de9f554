//! Reading kernel structs through the offsets table (no CO-RE in Rust eBPF: the agent
//! resolves every field from the running kernel's BTF; an unresolved one stays unknown).

/// One field of the offsets table, with one 8-byte load (volatile: the placeholder value
/// must not be folded at compile time; the verifier knows the loaded value, as the table is
/// read-only, and follows only the paths it allows).
macro_rules! off {
    ($f:ident) => {
        lsn_trace_common::Field::from_bits(unsafe {
            core::ptr::read_volatile(&raw const crate::maps::OFFSETS.$f as *const u64)
        })
    };
}

/// The offsets table's `btf_*` id, loaded where it is used (a constant to the verifier
/// there, whatever LLVM did with an earlier copy).
macro_rules! btf_id {
    ($f:ident) => {
        unsafe { core::ptr::read_volatile(&raw const crate::maps::OFFSETS.$f) }
    };
}

mod fields;
mod sock;
mod syscall;
mod task;

pub use fields::{Mem, Typed, bounded, probe_read};
pub use sock::*;
pub use syscall::*;
pub use task::*;
