//! Empty on purpose: lets lsn-trace name this crate as a build dependency, so cargo
//! rebuilds the agent when the programs (the `lsn-trace` binary target) change.
#![no_std]
