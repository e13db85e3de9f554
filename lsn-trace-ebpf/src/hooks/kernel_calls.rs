//! The calls as the kernel functions see them, shared by the `fentry` and `kprobe` backends
//! (which only say where the arguments come from):
//! * a socket, not a descriptor: the fd is unknown (F_NO_FD, null in the JSON);
//! * the sockaddr is the kernel's own copy (read with bpf_probe_read_kernel);
//! * who asked: bind(2)/listen(2)/setsockopt(2), io_uring, or the kernel itself — from the
//!   task's flags and the syscall it is in.
//!
//! The syscalls themselves are reported from the syscall layer (`__sys_bind`,
//! `__sys_listen`, `__sys_setsockopt`, where the kernel has them: the agent's plan), as the
//! tracepoint backend reports them — with their fd, and also when they fail before any
//! protocol function runs (EBADF, ENOTSOCK, EFAULT, EINVAL of an addrlen out of range, an
//! LSM's refusal) or run protocols whose functions are not hooked (MPTCP, SCTP); and those
//! a seccomp filter refuses, which never reach the syscall function, from
//! `__secure_computing`. The protocol functions' hooks then report only what the syscall
//! layer does not see: io_uring's requests and the kernel's own calls.
use aya_ebpf::{EbpfContext, helpers::bpf_get_current_pid_tgid, maps::LruHashMap};
use lsn_trace_common::{sockopt::is_listener_option, *};

use crate::{
    emit::{About, copy_optval, copy_sockaddr, enabled, fill_sock, reserve, submit},
    hooks::tracepoint::{bind_returned, listen_returned, setsockopt_returned},
    kernel::{Caller, Mem, Syscall, somaxconn},
    maps::{PENDING, PENDING_SYSCALL, config, count, kfunc},
};

// include/linux/sched.h: stable since io_uring's workers became threads of the task (5.12).
const PF_IO_WORKER: u64 = 0x10;
const PF_KTHREAD: u64 = 0x0020_0000;

/// Who made the call: the syscall of the same name, io_uring (inline in io_uring_enter(2),
/// or in one of its worker threads), else the kernel on its own behalf.
#[inline(always)]
fn source(caller: &Caller) -> u8 {
    let flags = caller.flags().unwrap_or(0);
    if flags & PF_IO_WORKER != 0 {
        return SOURCE_IO_URING;
    }
    if flags & PF_KTHREAD != 0 {
        return SOURCE_KERNEL;
    }
    match caller.syscall() {
        Syscall::Bind | Syscall::Listen | Syscall::Setsockopt | Syscall::Socketcall => {
            SOURCE_SYSCALL
        }
        Syscall::IoUringEnter => SOURCE_IO_URING,
        Syscall::Other => SOURCE_KERNEL,
    }
}

/// Whether a protocol function's call of `kind` is the syscall's own, which the
/// syscall-layer hook reports (so it is one event): the caller is in that syscall (any
/// ABI; socketcall(2) multiplexes them all) and not in io_uring's or the kernel's work.
#[inline(always)]
pub fn reported_by_syscall_hook(caller: &Caller, kind: EventKind) -> bool {
    let (bit, call) = match kind {
        EventKind::Bind => (SYSCALL_HOOK_BIND, Syscall::Bind),
        EventKind::Listen => (SYSCALL_HOOK_LISTEN, Syscall::Listen),
        EventKind::Setsockopt => (SYSCALL_HOOK_SETSOCKOPT, Syscall::Setsockopt),
        _ => return false,
    };
    if kfunc().syscall_hooks & bit == 0
        || caller.flags().unwrap_or(0) & (PF_IO_WORKER | PF_KTHREAD) != 0
    {
        return false;
    }
    let now = caller.syscall();
    now == call || now == Syscall::Socketcall
}

/// Keep a syscall-layer call's arguments from its kprobe to its kretprobe (kprobe backend;
/// apart from `stash`'s, as the protocol function's call runs inside it).
#[inline(always)]
pub fn stash_syscall(kind: EventKind, args: [u64; 5]) {
    keep(&PENDING_SYSCALL, kind, args);
}

#[inline(always)]
pub fn take_syscall(kind: EventKind) -> Option<[u64; 5]> {
    take_from(&PENDING_SYSCALL, kind)
}

/// Keep `args` for this thread's call of `kind` until its return. An entry this thread
/// already has is a call whose return never ran — a kretprobe the kernel did not arm
/// (`maxactive` exhausted): that call is lost, and counted (a thread runs one call of these
/// functions at a time; a protocol function's call is inside the syscall function's, in
/// the other map).
#[inline(always)]
fn keep(map: &LruHashMap<u32, PendingCall>, kind: EventKind, args: [u64; 5]) {
    let tid = tid();
    if unsafe { map.get(tid) }.is_some() {
        count(CTR_LOST_RETURN);
    }
    let call = PendingCall {
        kind: kind as u8,
        _pad: [0; 7],
        args,
    };
    if map.insert(tid, call, 0).is_err() {
        count(CTR_LOST_PENDING);
    }
}

/// This thread's kept arguments, if they belong to `kind` (removed then). Another kind's are
/// left: its call is in flight, or its return was missed, which the thread's next call
/// counts (`keep`).
#[inline(always)]
fn take_from(map: &LruHashMap<u32, PendingCall>, kind: EventKind) -> Option<[u64; 5]> {
    let tid = tid();
    let call = unsafe { *map.get(tid)? };
    if call.kind != kind as u8 {
        return None;
    }
    let _ = map.remove(tid);
    Some(call.args)
}

/// A syscall-layer function of `kind` returned `ret` (`__sys_bind(fd, uaddr, addrlen)`,
/// `__sys_listen(fd, backlog)`, `__sys_setsockopt(fd, level, optname, optval, optlen)`):
/// the syscall as the tracepoint backend reports it. Entry filters were asked by the hook.
#[inline(always)]
pub fn syscall_returned<C: EbpfContext>(
    ctx: &C,
    caller: &Caller,
    kind: EventKind,
    args: [u64; 5],
    ret: i32,
) {
    match kind {
        EventKind::Bind => bind_returned(ctx, caller, args, ret),
        EventKind::Listen => listen_returned(ctx, caller, args, ret),
        _ => setsockopt_returned(ctx, caller, args, ret),
    }
}

/// Whether a setsockopt syscall-layer call is one to report (asked at entry).
#[inline(always)]
pub fn sys_setsockopt_wanted(caller: &Caller, level: i32, optname: i32) -> bool {
    is_listener_option(level, optname) && enabled(caller)
}

/// `__secure_computing` returned `ret`: -1 is a syscall seccomp refused (an errno filter,
/// a trap, a user-space supervisor's answer), which the syscall function never sees; its
/// result is already in the caller's `ax`. Reported when it is a bind, listen or listener
/// setsockopt of x86_64 or a direct ia32 one (socketcall(2)'s arguments are in the caller's
/// memory, not read here).
#[inline(always)]
pub fn seccomp_returned<C: EbpfContext>(ctx: &C, ret: i32) {
    if ret != -1 {
        return;
    }
    let caller = Caller::current();
    let kind = match caller.syscall() {
        Syscall::Bind => EventKind::Bind,
        Syscall::Listen => EventKind::Listen,
        Syscall::Setsockopt => EventKind::Setsockopt,
        _ => return,
    };
    let args = if caller.in_compat_syscall() {
        caller.syscall_args_ia32()
    } else {
        caller.syscall_args(5)
    };
    let (Some(args), Some(ret)) = (args, caller.syscall_ret()) else {
        count(CTR_SOCK_READ_FAIL);
        return;
    };
    let wanted = match kind {
        EventKind::Setsockopt => sys_setsockopt_wanted(&caller, args[1] as i32, args[2] as i32),
        _ => enabled(&caller),
    };
    if wanted {
        syscall_returned(ctx, &caller, kind, args, ret);
    }
}

#[inline(always)]
fn tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

/// Keep a call's arguments from function entry to return (kprobe/kretprobe), and mark a
/// listen in flight (so inet_sock_set_state leaves it to the listen hook).
#[inline(always)]
pub fn stash(kind: EventKind, args: [u64; 5]) {
    keep(&PENDING, kind, args);
}

/// This thread's stashed arguments, if they belong to `kind`.
#[inline(always)]
pub fn take(kind: EventKind) -> Option<[u64; 5]> {
    take_from(&PENDING, kind)
}

/// The event common part: reserve (the filters decide first), fill, add the socket, submit.
#[inline(always)]
fn emit(
    caller: &Caller,
    kind: EventKind,
    ret: i32,
    about: About,
    src: u8,
    fill: impl FnOnce(&mut Event),
) {
    let Some(mut entry) = reserve(caller, kind, -1, ret, &about) else {
        return;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.source = src;
    ev.flags |= F_NO_FD;
    fill(ev);
    fill_sock(caller, ev, &about);
    submit(entry);
}

/// `inet_bind`/`inet6_bind`/`unix_bind(struct socket *, struct sockaddr *, int)` returned.
#[inline(always)]
pub fn bind(socket: u64, kaddr: u64, addrlen: i32, ret: i32) {
    let caller = Caller::current();
    if reported_by_syscall_hook(&caller, EventKind::Bind) || !enabled(&caller) {
        return;
    }
    let about = About::socket(socket).with_sockaddr(&config(), kaddr, addrlen as u32, Mem::Kernel);
    emit(
        &caller,
        EventKind::Bind,
        ret,
        about,
        source(&caller),
        |ev| copy_sockaddr(ev, kaddr, addrlen as u32, Mem::Kernel),
    );
}

/// `inet_listen`/`unix_listen(struct socket *, int backlog)` returned. The callers clamp
/// `backlog` to somaxconn first, so what was asked is listen(2)'s own argument; for other
/// callers it is known only below the clamp.
#[inline(always)]
pub fn listen(socket: u64, backlog: i32, ret: i32) {
    let caller = Caller::current();
    if reported_by_syscall_hook(&caller, EventKind::Listen) || !enabled(&caller) {
        return;
    }
    let about = About::socket(socket);
    let src = source(&caller);
    let asked = if src == SOURCE_SYSCALL {
        caller.syscall_arg1().map(|v| v as i32)
    } else {
        somaxconn(about.sk)
            .filter(|&max| (backlog as u32) < max)
            .map(|_| backlog)
    };
    emit(
        &caller,
        EventKind::Listen,
        ret,
        about,
        src,
        |ev| match asked {
            Some(b) => ev.arg0 = b as i64,
            None => ev.flags |= F_NO_BACKLOG,
        },
    );
}

/// Whether a setsockopt call is one lsn-trace reports: hooks ask at entry.
#[inline(always)]
pub fn sockopt_wanted(caller: &Caller, level: i32, optname: i32) -> bool {
    is_listener_option(level, optname)
        && !reported_by_syscall_hook(caller, EventKind::Setsockopt)
        && enabled(caller)
}

/// A setsockopt function returned. `first` is its first argument (a `struct sock *`, or for
/// `sock_setsockopt` a `struct socket *`: `via_socket`); `optval` is the `sockptr_t` as its
/// two 8-byte halves.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn setsockopt(
    caller: &Caller,
    first: u64,
    via_socket: bool,
    level: i32,
    optname: i32,
    optval: [u64; 2],
    optlen: u32,
    ret: i32,
) {
    let about = if via_socket {
        About::socket(first)
    } else {
        About::sock(first)
    };
    let mem = if (optval[1] >> (kfunc().sockptr_kernel_bit & 63)) & 1 != 0 {
        Mem::Kernel
    } else {
        Mem::User
    };
    emit(
        caller,
        EventKind::Setsockopt,
        ret,
        about,
        source(caller),
        |ev| {
            ev.arg0 = level as i64;
            ev.arg1 = optname;
            ev.arg2 = optlen as i32;
            copy_optval(ev, optval[0], optlen as i32, mem);
        },
    );
}

/// Whether the SOL_SOCKET function hooked takes a `struct socket *`.
#[inline(always)]
pub fn sol_socket_via_socket() -> bool {
    kfunc().sol_socket_takes_socket != 0
}
