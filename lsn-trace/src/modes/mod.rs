//! What lsn-trace is run for, beyond the live trace (main.rs): following a command or
//! processes and the summary at their end (`follow`, `summary`), the audit log (`audit`),
//! explaining addresses without tracing (`explain`; its parser, `explain_parse`, is
//! part of the library), and replaying recorded ring-buffer records (`replay`).
pub mod audit;
pub mod explain;
pub mod follow;
pub mod replay;
pub mod summary;
