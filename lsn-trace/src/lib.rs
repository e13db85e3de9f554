//! The parts of lsn-trace that need no kernel hooks, as a library so the CLI, the fuzz
//! target and other tools share them: what an address means (`verdict`), the addresses of a
//! network namespace (`nsaddrs`).
pub mod explain_line;
pub mod explain_parse;
pub mod nsaddrs;
pub mod services;
pub mod verdict;
