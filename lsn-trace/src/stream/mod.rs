//! The event stream: the ring buffer (`ring`), the tracer loop that drains it into the
//! pipeline (`tracer`), and decoding — the wire event into an `Event` (`event`), socket
//! addresses (`sockaddr`), the names of errnos, families and options (`errno`, `names`).
pub mod errno;
pub mod event;
pub mod exec;
pub mod names;
pub mod ring;
pub mod sockaddr;
pub mod tracer;
