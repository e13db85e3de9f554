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
    kernel::Caller,
    kfunc::{self, sockopt_wanted},
};

#[inline(always)]
fn ret(ctx: &FExitContext) -> i32 {
    ctx.ret::<i64>().unwrap_or(0) as i32
}

/// (struct socket *sock, struct sockaddr *uaddr, int addr_len)
#[inline(always)]
fn bind_exit(ctx: &FExitContext) -> i32 {
    kfunc::bind(ctx.arg(0), ctx.arg(1), ctx.arg(2), ret(ctx));
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
    kfunc::stash(EventKind::Listen, [ctx.arg(0), ctx.arg(1), 0, 0, 0]);
    0
}

#[fexit(function = "inet_listen")]
pub fn fexit_inet_listen(ctx: FExitContext) -> i32 {
    let _ = kfunc::take(EventKind::Listen);
    kfunc::listen(ctx.arg(0), ctx.arg(1), ret(&ctx));
    0
}

#[fexit(function = "unix_listen")]
pub fn fexit_unix_listen(ctx: FExitContext) -> i32 {
    kfunc::listen(ctx.arg(0), ctx.arg(1), ret(&ctx));
    0
}

/// listen(2) on a socket type that cannot listen (UDP, raw …): always EOPNOTSUPP.
#[fexit(function = "sock_no_listen")]
pub fn fexit_sock_no_listen(ctx: FExitContext) -> i32 {
    kfunc::listen(ctx.arg(0), ctx.arg(1), ret(&ctx));
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
        kfunc::setsockopt(
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
    sockopt_exit(&ctx, kfunc::sol_socket_via_socket())
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
