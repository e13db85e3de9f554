//! Getting the programs into the kernel: the checks before (`preflight`: privileges,
//! tracefs), the filters turned into the maps the programs read (`filter`), and the backend
//! choice, load and attach (`backend`), then the proof that every hook fires before the
//! attach line says so (`selfcheck`).
pub mod backend;
pub mod filter;
pub mod preflight;
pub mod selfcheck;
