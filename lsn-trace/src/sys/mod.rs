//! Asking the host: sock_diag and network namespaces (`sockdiag`), interface names
//! (`netif`), users and groups (`user`). The addresses of a network namespace (`nsaddrs`,
//! in this folder) are part of the library (lib.rs).
pub mod netif;
pub mod sockdiag;
pub mod user;
