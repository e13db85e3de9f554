//! The parts of lsn-trace that need no kernel hooks, as a library so the CLI, the fuzz
//! target and other tools share them. Each module lives in the folder of the pipeline it
//! belongs to, and the library's tree is those folders: what an address means
//! (`story::verdict`), the addresses of a network namespace (`sys::nsaddrs`), entering one
//! (`sys::netns`), /proc's answers (`sys::procfs`), the services database
//! (`sys::services`) and reading what people paste into `explain` (`modes::explain_parse`,
//! `modes::explain_line`). The binary's modules of the same folders (`story`, `sys`,
//! `modes` in main.rs) are its own; it reaches these through the short paths below.
pub mod modes {
    //! `lsn-trace explain`'s parsers (the mode itself is the binary's).
    pub mod explain_line;
    pub mod explain_parse;
}

pub mod story {
    //! What an address means (the reconstruction itself is the binary's).
    pub mod verdict;
}

pub mod sys {
    //! Asking the host: network namespaces, their addresses, /proc, services (sock_diag,
    //! interface names and users are the binary's).
    pub mod netns;
    pub mod nsaddrs;
    pub mod procfs;
    pub mod services;
}

// The short paths the binary, the fuzz target and these modules use.
pub use modes::{explain_line, explain_parse};
pub use story::verdict;
pub use sys::{netns, nsaddrs, procfs, services};
