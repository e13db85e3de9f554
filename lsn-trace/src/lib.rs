//! The parts of lsn-trace that need no kernel hooks, as a library so the CLI, the fuzz
//! target and other tools share them: what an address means (`verdict`), the addresses of a
//! network namespace (`nsaddrs`).
#[path = "modes/explain_parse.rs"]
pub mod explain_parse;
#[path = "sys/nsaddrs.rs"]
pub mod nsaddrs;
#[path = "story/verdict.rs"]
pub mod verdict;
