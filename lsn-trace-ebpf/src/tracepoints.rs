//! The `tracepoint` backend: syscalls:sys_{enter,exit}_{bind,listen,setsockopt} and
//! sock:inet_sock_set_state. Entry hooks only keep the arguments (user memory may not be
//! resident yet, and tracepoint programs cannot fault it in); exit hooks read everything
//! once the kernel has copied it and build the event.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use aya_log_ebpf::warn;
use lsn_trace_common::{sockopt::is_listener_option, *};

use crate::{
    emit::{
        About, copy_user_optval, copy_user_sockaddr, enabled, enabled_counting, fill_sock, reserve,
        submit,
    },
    kernel::sock_from_fd,
    maps::{PENDING, config, count},
};

// Layout of the syscall tracepoints: 8 bytes of common header + __syscall_nr, then one
// 8-byte slot per argument from offset 16 (`ret` at 16 on exit). Stable since they exist.
const ARG0: usize = 16;
const RET: usize = 16;

// sock:inet_sock_set_state
const SS_SKADDR: usize = 8;
const SS_OLDSTATE: usize = 16;
const SS_NEWSTATE: usize = 20;
const SS_SPORT: usize = 24;
const TCP_LISTEN: i32 = 10;
const TCP_CLOSE: i32 = 7;

const ENOTSOCK: i32 = 88;
const EBADF: i32 = 9;

#[inline(always)]
fn tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
fn stash(ctx: &TracePointContext, kind: EventKind, nargs: usize) {
    if !enabled() {
        return;
    }
    let mut call = PendingCall {
        kind: kind as u8,
        ..Default::default()
    };
    let mut i = 0;
    while i < 5 {
        if i < nargs {
            call.args[i] = unsafe { ctx.read_at::<u64>(ARG0 + 8 * i).unwrap_or(0) };
        }
        i += 1;
    }
    if PENDING.insert(tid(), call, 0).is_err() {
        count(CTR_LOST_PENDING);
    }
}

/// Take this thread's stashed arguments, if they belong to `kind`.
#[inline(always)]
fn take(kind: EventKind) -> Option<PendingCall> {
    let tid = tid();
    let call = unsafe { *PENDING.get(tid)? };
    let _ = PENDING.remove(tid);
    (call.kind == kind as u8).then_some(call)
}

#[inline(always)]
fn ret(ctx: &TracePointContext) -> i32 {
    unsafe { ctx.read_at::<i64>(RET).unwrap_or(0) as i32 }
}

/// The socket behind `fd`; only looked up when the kernel accepted the descriptor.
#[inline(always)]
fn sock_of_fd(ctx: &TracePointContext, fd: i32, ret: i32) -> About {
    if ret == -EBADF || ret == -ENOTSOCK {
        return About::sock(0);
    }
    match sock_from_fd(fd) {
        Some(sk) => About::sock(sk),
        None => {
            count(CTR_SOCK_READ_FAIL);
            warn!(
                ctx,
                "lsn-trace: fd {} of the calling task did not resolve to a socket", fd
            );
            About::sock(0)
        }
    }
}

/// The exit half shared by every syscall: take the stashed arguments, ask the filters
/// (before reserving), build the event (`fill` adds what is specific to the call), add the
/// socket's state, submit.
#[inline(always)]
fn exit_event(ctx: &TracePointContext, kind: EventKind, fill: impl FnOnce(&mut Event, [u64; 5])) {
    let Some(call) = take(kind) else { return };
    let fd = call.args[0] as i32;
    let ret = ret(ctx);
    let mut about = sock_of_fd(ctx, fd, ret);
    if kind == EventKind::Bind {
        about = about.with_user_sockaddr(&config(), call.args[1], call.args[2] as u32);
    }
    let Some(mut entry) = reserve(kind, fd, ret, &about) else {
        return;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill(ev, call.args);
    fill_sock(ev, &about);
    submit(entry);
}

#[tracepoint]
pub fn sys_enter_bind(ctx: TracePointContext) -> u32 {
    stash(&ctx, EventKind::Bind, 3);
    0
}

#[tracepoint]
pub fn sys_exit_bind(ctx: TracePointContext) -> u32 {
    exit_event(&ctx, EventKind::Bind, |ev, [_, uaddr, addrlen, ..]| {
        copy_user_sockaddr(ev, uaddr, addrlen as u32)
    });
    0
}

#[tracepoint]
pub fn sys_enter_listen(ctx: TracePointContext) -> u32 {
    stash(&ctx, EventKind::Listen, 2);
    0
}

#[tracepoint]
pub fn sys_exit_listen(ctx: TracePointContext) -> u32 {
    exit_event(&ctx, EventKind::Listen, |ev, [_, backlog, ..]| {
        ev.arg0 = backlog as i32 as i64
    });
    0
}

#[tracepoint]
pub fn sys_enter_setsockopt(ctx: TracePointContext) -> u32 {
    // Filtered here: only options that shape a listener cost an event.
    let level = unsafe { ctx.read_at::<u64>(ARG0 + 8).unwrap_or(0) } as i32;
    let optname = unsafe { ctx.read_at::<u64>(ARG0 + 16).unwrap_or(0) } as i32;
    if is_listener_option(level, optname) {
        stash(&ctx, EventKind::Setsockopt, 5);
    }
    0
}

#[tracepoint]
pub fn sys_exit_setsockopt(ctx: TracePointContext) -> u32 {
    exit_event(
        &ctx,
        EventKind::Setsockopt,
        |ev, [_, level, optname, optval, optlen]| {
            ev.arg0 = level as i32 as i64;
            ev.arg1 = optname as i32;
            ev.arg2 = optlen as i32;
            copy_user_optval(ev, optval, optlen as i32);
        },
    );
    0
}

/// TCP LISTEN transitions that no listen(2) of this thread explains (io_uring, in-kernel
/// listeners), and every listener's close.
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let old: i32 = unsafe { ctx.read_at(SS_OLDSTATE).unwrap_or(0) };
    let new: i32 = unsafe { ctx.read_at(SS_NEWSTATE).unwrap_or(0) };
    let kind = if new == TCP_LISTEN {
        if let Some(call) = unsafe { PENDING.get(tid()) }
            && call.kind == EventKind::Listen as u8
        {
            return 0; // sys_exit_listen reports it with the fd and backlog
        }
        EventKind::ListenState
    } else if old == TCP_LISTEN && new == TCP_CLOSE {
        EventKind::ListenClose
    } else {
        return 0;
    };
    // Asked only now: every TCP state change passes here, and only these are events. A LISTEN
    // transition of an unwanted caller is most likely its listen(2), already counted as
    // filtered at syscall entry: not counted twice.
    if !enabled_counting(kind != EventKind::ListenState) {
        return 0;
    }
    let sk: u64 = unsafe { ctx.read_at(SS_SKADDR).unwrap_or(0) };
    let mut about = About::sock(sk);
    // A closing listener may already have released its port in the socket; the
    // tracepoint recorded it before that.
    let sport = unsafe { ctx.read_at::<u16>(SS_SPORT).unwrap_or(0) };
    about.hook_port = sport;
    let Some(mut entry) = reserve(kind, -1, 0, &about) else {
        return 0;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.source = SOURCE_KERNEL;
    ev.flags |= F_NO_FD;
    fill_sock(ev, &about);
    if ev.sock.num == 0 {
        ev.sock.num = sport;
        ev.sock.known |= K_NUM;
    }
    submit(entry);
    0
}
