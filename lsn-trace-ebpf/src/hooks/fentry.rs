//! The `fentry` backend: BPF trampolines on the kernel functions that bind, listen and set
//! listener-shaping options. fexit sees the arguments and the return value together, so
//! nothing is kept between entry and exit — except the "listen in flight" mark, which
//! inet_sock_set_state reads. Which setsockopt functions exist (and so which of these
//! programs are loaded, against which function) is the agent's decision, from BTF.
use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use lsn_trace_common::EventKind;

use crate::{
    emit::enabled,
    hooks::kernel_calls::{self, sockopt_wanted},
    kernel::Caller,
};

#[inline(always)]
fn ret(ctx: &FExitContext) -> i32 {
    ctx.ret::<i64>().unwrap_or(0) as i32
}

/// (struct socket *sock, struct sockaddr *uaddr, int addr_len)
#[inline(always)]
fn bind_exit(ctx: &FExitContext) -> i32 {
    kernel_calls::bind(ctx.arg(0), ctx.arg(1), ctx.arg(2), ret(ctx));
    0
}

#[fexit(function = "inet_bind")]
pub fn fexit_inet_bind(ctx: FExitContext) -> i32 {
    bind_exit(&ctx)
}

#[fexit(function = "inet6_bind")]
pub fn fexit_inet6_bind(ctx: FExitContext) -> i32 {
    bind_exit(&ctx)
}

#[fexit(function = "unix_bind")]
pub fn fexit_unix_bind(ctx: FExitContext) -> i32 {
    bind_exit(&ctx)
}

/// (struct socket *sock, int backlog)
#[fentry(function = "inet_listen")]
pub fn fentry_inet_listen(ctx: FEntryContext) -> i32 {
    kernel_calls::stash(EventKind::Listen, [ctx.arg(0), ctx.arg(1), 0, 0, 0]);
    0
}

#[fexit(function = "inet_listen")]
pub fn fexit_inet_listen(ctx: FExitContext) -> i32 {
    let _ = kernel_calls::take(EventKind::Listen);
    kernel_calls::listen(ctx.arg(0), ctx.arg(1), ret(&ctx));
    0
}

#[fexit(function = "unix_listen")]
pub fn fexit_unix_listen(ctx: FExitContext) -> i32 {
    kernel_calls::listen(ctx.arg(0), ctx.arg(1), ret(&ctx));
    0
}

/// listen(2) on a socket type that cannot listen (UDP, raw …): always EOPNOTSUPP.
#[fexit(function = "sock_no_listen")]
pub fn fexit_sock_no_listen(ctx: FExitContext) -> i32 {
    kernel_calls::listen(ctx.arg(0), ctx.arg(1), ret(&ctx));
    0
}

/// (struct sock *sk | struct socket *sock, int level, int optname, sockptr_t optval,
/// unsigned int optlen): the 16-byte sockptr_t takes two argument slots (3 and 4).
#[inline(always)]
fn sockopt_exit(ctx: &FExitContext, via_socket: bool) -> i32 {
    let level: i32 = ctx.arg(1);
    let optname: i32 = ctx.arg(2);
    let caller = Caller::current();
    if sockopt_wanted(&caller, level, optname) {
        kernel_calls::setsockopt(
            &caller,
            ctx.arg(0),
            via_socket,
            level,
            optname,
            [ctx.arg(3), ctx.arg(4)],
            ctx.arg(5),
            ret(ctx),
        );
    }
    0
}

/// SOL_SOCKET: sk_setsockopt, or sock_setsockopt where that is the one (see KfuncConfig).
#[fexit(function = "sk_setsockopt")]
pub fn fexit_sockopt_socket(ctx: FExitContext) -> i32 {
    sockopt_exit(&ctx, kernel_calls::sol_socket_via_socket())
}

/// SOL_IP: do_ip_setsockopt (or ip_setsockopt).
#[fexit(function = "do_ip_setsockopt")]
pub fn fexit_sockopt_ip(ctx: FExitContext) -> i32 {
    sockopt_exit(&ctx, false)
}

/// SOL_IPV6: do_ipv6_setsockopt (or ipv6_setsockopt).
#[fexit(function = "do_ipv6_setsockopt")]
pub fn fexit_sockopt_ipv6(ctx: FExitContext) -> i32 {
    sockopt_exit(&ctx, false)
}

// The syscall layer (see kernel_calls.rs): every bind(2), listen(2) and setsockopt(2), whatever
// refuses it and whatever its ABI, with its fd.

/// __sys_bind(int fd, struct sockaddr __user *umyaddr, int addrlen)
#[fexit(function = "__sys_bind")]
pub fn fexit_sys_bind(ctx: FExitContext) -> i32 {
    let caller = Caller::current();
    if enabled(&caller) {
        let args = [ctx.arg(0), ctx.arg(1), ctx.arg(2), 0, 0];
        kernel_calls::syscall_returned(&ctx, &caller, EventKind::Bind, args, ret(&ctx));
    }
    0
}

/// __sys_listen(int fd, int backlog)
#[fexit(function = "__sys_listen")]
pub fn fexit_sys_listen(ctx: FExitContext) -> i32 {
    let caller = Caller::current();
    if enabled(&caller) {
        let args = [ctx.arg(0), ctx.arg(1), 0, 0, 0];
        kernel_calls::syscall_returned(&ctx, &caller, EventKind::Listen, args, ret(&ctx));
    }
    0
}

/// __sys_setsockopt(int fd, int level, int optname, char __user *optval, int optlen)
#[fexit(function = "__sys_setsockopt")]
pub fn fexit_sys_setsockopt(ctx: FExitContext) -> i32 {
    let caller = Caller::current();
    let (level, optname): (u64, u64) = (ctx.arg(1), ctx.arg(2));
    if kernel_calls::sys_setsockopt_wanted(&caller, level as i32, optname as i32) {
        let args = [ctx.arg(0), level, optname, ctx.arg(3), ctx.arg(4)];
        kernel_calls::syscall_returned(&ctx, &caller, EventKind::Setsockopt, args, ret(&ctx));
    }
    0
}

/// __secure_computing(const struct seccomp_data *sd): -1 = the syscall is skipped.
#[fexit(function = "__secure_computing")]
pub fn fexit_seccomp(ctx: FExitContext) -> i32 {
    kernel_calls::seccomp_returned(&ctx, ret(&ctx));
    0
}
