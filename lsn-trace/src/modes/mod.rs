//! What lsn-trace is run for, beyond the live trace (main.rs): following a command or
//! processes and the summary at their end (`follow`, `summary`), the audit log (`audit`),
//! and explaining addresses without tracing (`explain`; its parsers, `explain_parse` and
//! `explain_line`, are part of the library).
pub mod audit;
pub mod explain;
pub mod follow;
pub mod summary;
