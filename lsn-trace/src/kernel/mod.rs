//! Kernel knowledge, resolved once at start-up from the running kernel: its BTF (`btf`),
//! the struct field offsets the programs read through (`offsets`), which kernel functions
//! the fentry/kprobe backends hook (`hookplan`), and what the verifier accepts (`probe`).
pub mod btf;
pub mod hookplan;
pub mod offsets;
pub mod probe;
