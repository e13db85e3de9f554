//! Where the programs attach, one module per backend: the syscall tracepoints
//! (`tracepoint`, also `inet_sock_set_state` for every backend), the BPF trampolines
//! (`fentry`) and kprobes (`kprobe`) on the kernel functions, both reporting through
//! `kernel_calls` (the calls as those functions see them); and the process hooks every
//! backend shares: `follow` (the followed process tree) and `exec` (who a process became).
mod exec;
mod fentry;
mod follow;
mod kernel_calls;
mod kprobe;
mod tracepoint;
