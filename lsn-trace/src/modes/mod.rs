//! What lsn-trace is run for, beyond the live trace (main.rs): following a command or
//! processes and the summary at their end (`follow`, `summary`), the audit log (`audit`),
//! and explaining addresses without tracing (`explain`; its parsers, `explain_parse` and
//! `explain_line`, are part of the library); answering questions from the audit log
//! (`report`), and what is allowed to listen (`policy`, applied by audit and report, and by
//! `check` to the host now); replaying recorded ring-buffer records (`replay`, the bench's).
pub mod audit;
pub mod check;
pub mod explain;
pub mod follow;
pub mod policy;
pub mod replay;
pub mod report;
pub mod summary;
