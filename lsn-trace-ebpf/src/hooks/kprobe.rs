//! The `kprobe` backend: kprobe + kretprobe on the same kernel functions as `fentry`, for
//! kernels without BPF trampolines. A kretprobe no longer has the arguments: the kprobe
//! keeps them per thread (PENDING) until the function returns. One program serves every
//! function of the same shape; the agent attaches it to each function the kernel has.
use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use lsn_trace_common::EventKind;

use crate::{
    emit::enabled,
    hooks::kernel_calls::{self, sockopt_wanted},
    kernel::Caller,
};

#[inline(always)]
fn arg(ctx: &ProbeContext, n: usize) -> u64 {
    ctx.arg::<u64>(n).unwrap_or(0)
}

#[inline(always)]
fn ret(ctx: &RetProbeContext) -> i32 {
    ctx.ret::<i64>() as i32
}

/// inet_bind, inet6_bind, unix_bind(struct socket *sock, struct sockaddr *uaddr, int addr_len)
#[kprobe]
pub fn kprobe_bind(ctx: ProbeContext) -> u32 {
    let caller = Caller::current();
    if !kernel_calls::reported_by_syscall_hook(&caller, EventKind::Bind) && enabled(&caller) {
        kernel_calls::stash(
            EventKind::Bind,
            [arg(&ctx, 0), arg(&ctx, 1), arg(&ctx, 2), 0, 0],
        );
    }
    0
}

#[kretprobe]
pub fn kretprobe_bind(ctx: RetProbeContext) -> u32 {
    if let Some([sock, uaddr, addrlen, ..]) = kernel_calls::take(EventKind::Bind) {
        kernel_calls::bind(sock, uaddr, addrlen as i32, ret(&ctx));
    }
    0
}

/// inet_listen, unix_listen(struct socket *sock, int backlog). The stash is also the
/// "listen in flight" mark inet_sock_set_state reads.
#[kprobe]
pub fn kprobe_listen(ctx: ProbeContext) -> u32 {
    if enabled(&Caller::current()) {
        kernel_calls::stash(EventKind::Listen, [arg(&ctx, 0), arg(&ctx, 1), 0, 0, 0]);
    }
    0
}

#[kretprobe]
pub fn kretprobe_listen(ctx: RetProbeContext) -> u32 {
    if let Some([sock, backlog, ..]) = kernel_calls::take(EventKind::Listen) {
        kernel_calls::listen(sock, backlog as i32, ret(&ctx));
    }
    0
}

/// (struct sock *sk | struct socket *sock, int level, int optname, sockptr_t optval,
/// unsigned int optlen): the 16-byte sockptr_t comes in two registers (args 3 and 4).
#[inline(always)]
fn sockopt_entry(ctx: &ProbeContext) {
    let level = arg(ctx, 1) as i32;
    let optname = arg(ctx, 2) as i32;
    if sockopt_wanted(&Caller::current(), level, optname) {
        let level_name = (level as u32 as u64) << 32 | optname as u32 as u64;
        let a = [
            arg(ctx, 0),
            level_name,
            arg(ctx, 3),
            arg(ctx, 4),
            arg(ctx, 5),
        ];
        kernel_calls::stash(EventKind::Setsockopt, a);
    }
}

#[inline(always)]
fn sockopt_return(ctx: &RetProbeContext, via_socket: bool) {
    if let Some([first, level_name, ptr, word, optlen]) = kernel_calls::take(EventKind::Setsockopt)
    {
        let (level, optname) = ((level_name >> 32) as i32, level_name as i32);
        kernel_calls::setsockopt(
            &Caller::current(),
            first,
            via_socket,
            level,
            optname,
            [ptr, word],
            optlen as u32,
            ret(ctx),
        );
    }
}

/// The SOL_SOCKET function (sk_setsockopt, or sock_setsockopt: see KfuncConfig).
#[kprobe]
pub fn kprobe_sockopt_socket(ctx: ProbeContext) -> u32 {
    sockopt_entry(&ctx);
    0
}

#[kretprobe]
pub fn kretprobe_sockopt_socket(ctx: RetProbeContext) -> u32 {
    sockopt_return(&ctx, kernel_calls::sol_socket_via_socket());
    0
}

/// do_ip_setsockopt and do_ipv6_setsockopt (or ip_/ipv6_setsockopt): a `struct sock *`.
#[kprobe]
pub fn kprobe_sockopt_ip(ctx: ProbeContext) -> u32 {
    sockopt_entry(&ctx);
    0
}

#[kretprobe]
pub fn kretprobe_sockopt_ip(ctx: RetProbeContext) -> u32 {
    sockopt_return(&ctx, false);
    0
}

// The syscall layer (see kernel_calls.rs).

/// __sys_bind(fd, uaddr, addrlen) and __sys_listen(fd, backlog): their arguments.
#[kprobe]
pub fn kprobe_sys_bind(ctx: ProbeContext) -> u32 {
    if enabled(&Caller::current()) {
        let args = [arg(&ctx, 0), arg(&ctx, 1), arg(&ctx, 2), 0, 0];
        kernel_calls::stash_syscall(EventKind::Bind, args);
    }
    0
}

#[kretprobe]
pub fn kretprobe_sys_bind(ctx: RetProbeContext) -> u32 {
    syscall_return(&ctx, EventKind::Bind);
    0
}

#[kprobe]
pub fn kprobe_sys_listen(ctx: ProbeContext) -> u32 {
    if enabled(&Caller::current()) {
        kernel_calls::stash_syscall(EventKind::Listen, [arg(&ctx, 0), arg(&ctx, 1), 0, 0, 0]);
    }
    0
}

#[kretprobe]
pub fn kretprobe_sys_listen(ctx: RetProbeContext) -> u32 {
    syscall_return(&ctx, EventKind::Listen);
    0
}

/// __sys_setsockopt(fd, level, optname, optval, optlen)
#[kprobe]
pub fn kprobe_sys_setsockopt(ctx: ProbeContext) -> u32 {
    let (level, optname) = (arg(&ctx, 1), arg(&ctx, 2));
    if kernel_calls::sys_setsockopt_wanted(&Caller::current(), level as i32, optname as i32) {
        let args = [arg(&ctx, 0), level, optname, arg(&ctx, 3), arg(&ctx, 4)];
        kernel_calls::stash_syscall(EventKind::Setsockopt, args);
    }
    0
}

#[kretprobe]
pub fn kretprobe_sys_setsockopt(ctx: RetProbeContext) -> u32 {
    syscall_return(&ctx, EventKind::Setsockopt);
    0
}

#[inline(always)]
fn syscall_return(ctx: &RetProbeContext, kind: EventKind) {
    if let Some(args) = kernel_calls::take_syscall(kind) {
        kernel_calls::syscall_returned(ctx, &Caller::current(), kind, args, ret(ctx));
    }
}

/// __secure_computing: only its return matters (-1 = the syscall is skipped).
#[kretprobe]
pub fn kretprobe_seccomp(ctx: RetProbeContext) -> u32 {
    kernel_calls::seccomp_returned(&ctx, ret(&ctx));
    0
}
