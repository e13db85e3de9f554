//! Wire format shared by the eBPF programs and the agent.
//!
//! Everything here is `#[repr(C)]` plain data: the programs write it into the ring buffer
//! (or read it from globals the agent fills before load), the agent reads the same bytes.
//! By concern: the ring buffer's event and the socket state in it (`event`), the kernel
//! struct layout the programs read through (`offsets`), the settings handed to them
//! (`config`), their counters (`counters`), the audit's exec capture (`exec`), the protocol
//! bits of `--proto` (`proto`) and the listener-shaping socket options (`sockopt`). All but
//! the last two are re-exported here: `lsn_trace_common::Event`,
//! `lsn_trace_common::KernelOffsets`, ...
#![no_std]

mod config;
mod counters;
mod event;
mod exec;
mod offsets;
pub mod proto;
pub mod sockopt;

pub use config::*;
pub use counters::*;
pub use event::*;
pub use exec::*;
pub use offsets::*;

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::PendingCall {}
    unsafe impl aya::Pod for super::KfuncConfig {}
    unsafe impl aya::Pod for super::ExecRecord {}
    unsafe impl aya::Pod for super::ExecOffsets {}
}
