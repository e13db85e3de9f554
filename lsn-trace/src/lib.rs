//! The parts of lsn-trace that need no kernel hooks, as a library so the CLI, the fuzz
//! target and other tools share them: what an address means (`verdict`), the addresses of a
//! network namespace (`nsaddrs`), entering one (`netns`), /proc's answers (`procfs`),
//! reading what people paste into `explain` (`explain_parse`, `explain_line`) and the
//! services database (`services`).
#[path = "modes/explain_line.rs"]
pub mod explain_line;
#[path = "modes/explain_parse.rs"]
pub mod explain_parse;
#[path = "sys/netns.rs"]
pub mod netns;
#[path = "sys/nsaddrs.rs"]
pub mod nsaddrs;
#[path = "sys/procfs.rs"]
pub mod procfs;
#[path = "sys/services.rs"]
pub mod services;
#[path = "story/verdict.rs"]
pub mod verdict;
