//! The `tracepoint` backend: syscalls:sys_exit_{bind,listen,setsockopt}, and the raw
//! tracepoint inet_sock_set_state (every backend's). Exit hooks only: the call's arguments
//! are still in the registers saved at syscall entry, and by exit the kernel has copied the
//! caller's memory in (so a resident-only read of it does not fail). No entry hooks means
//! no per-thread map to fill at entry and empty at exit — a fifth of the tracing cost of a
//! bind storm.
use aya_ebpf::{
    EbpfContext,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use aya_log_ebpf::warn;
use lsn_trace_common::{
    sockopt::{is_bindx, is_listener_option},
    *,
};

use crate::{
    emit::{
        About, copy_bindx, copy_optval, copy_sockaddr, enabled, enabled_counting, fill_sock,
        fill_sock_from, reserve, submit,
    },
    kernel::{
        Caller, FdFile, Mem, SockView, Syscall, inet_sport, listener_of, probe_read, sock_socket,
    },
    maps::{PENDING, config, count, kfunc},
};

// sys_exit_*: 8 bytes of common header + __syscall_nr, then `ret` at 16. Stable since they
// exist.
const RET: usize = 16;

const TCP_LISTEN: i32 = 10;
const TCP_CLOSE: i32 = 7;
/// SCTP's states are TCP's numbers (include/net/sctp/constants.h): a listener's close is
/// LISTENING -> CLOSING, i.e. TCP_LISTEN -> TCP_CLOSE_WAIT, which no TCP socket does.
const TCP_CLOSE_WAIT: i32 = 8;

const ENOTSOCK: i32 = 88;
const EBADF: i32 = 9;

#[inline(always)]
fn ret(ctx: &TracePointContext) -> i32 {
    field::<i64>(ctx, RET) as i32
}

/// A field of the tracepoint's record, loaded straight from the context: the verifier lets a
/// tracepoint program read its record with aligned loads, where `read_at` is a
/// `bpf_probe_read_kernel` call (five per storm cycle of these, the cost of an event's worth
/// of work).
#[inline(always)]
fn field<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    // Volatile: one load of exactly this size at exactly this offset, as the verifier
    // checks it (size-aligned, inside the record).
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(offset) as *const T) }
}

/// The socket behind `fd`; only looked up when the kernel did not refuse the descriptor
/// (EBADF: no file; ENOTSOCK: the kernel found it is no socket).
#[inline(always)]
fn sock_of_fd<C: EbpfContext>(ctx: &C, caller: &Caller, fd: i32, ret: i32) -> About {
    let not_a_socket = About {
        no_state: F_NOT_SOCKET,
        ..About::sock(0)
    };
    if ret == -EBADF {
        return About::sock(0);
    }
    if ret == -ENOTSOCK {
        return not_a_socket;
    }
    match caller.sock_from_fd(fd) {
        FdFile::Socket(sk, ino) => About {
            ino,
            ..About::sock(sk)
        },
        FdFile::NotASocket => not_a_socket,
        FdFile::Unresolved => {
            count(CTR_FD_UNRESOLVED);
            warn!(
                ctx,
                "lsn-trace: fd {} of the calling task did not resolve to a socket", fd
            );
            About::sock(0)
        }
    }
}

/// Every syscall's exit: its `nargs` arguments (the caller filters were asked first), the
/// filters on what the call is about (before reserving), the event (`fill` adds what is
/// specific to the call), the socket's state, submit.
#[inline(always)]
fn exit_event<C: EbpfContext>(
    ctx: &C,
    caller: &Caller,
    kind: EventKind,
    args: [u64; 5],
    ret: i32,
    fill: impl FnOnce(&mut Event, [u64; 5]),
) {
    let fd = args[0] as i32;
    let mut about = sock_of_fd(ctx, caller, fd, ret);
    if kind == EventKind::Bind {
        about = about.with_sockaddr(&config(), args[1], args[2] as u32, Mem::User);
    }
    if kind == EventKind::Setsockopt && is_bindx(args[1] as i32, args[2] as i32) {
        about = about.with_bindx_port(&config(), args[3], args[4] as i32, Mem::User);
    }
    let Some(mut entry) = reserve(caller, kind, fd, ret, &about) else {
        return;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.flags |= about.no_state;
    fill(ev, args);
    fill_sock(caller, ev, &about);
    submit(entry);
}

// The calls as the syscall returns them: `args` as the caller passed them, `ret` what it
// got. Shared with the kernel-function backends' hooks on the syscall layer (`__sys_bind` …,
// kernel_calls.rs), so a syscall is one event, alike on every backend.

/// bind(fd, uaddr, addrlen) returned `ret`.
#[inline(always)]
pub fn bind_returned<C: EbpfContext>(ctx: &C, caller: &Caller, args: [u64; 5], ret: i32) {
    exit_event(
        ctx,
        caller,
        EventKind::Bind,
        args,
        ret,
        |ev, [_, uaddr, addrlen, ..]| copy_sockaddr(ev, uaddr, addrlen as u32, Mem::User),
    );
}

/// listen(fd, backlog) returned `ret`.
#[inline(always)]
pub fn listen_returned<C: EbpfContext>(ctx: &C, caller: &Caller, args: [u64; 5], ret: i32) {
    exit_event(
        ctx,
        caller,
        EventKind::Listen,
        args,
        ret,
        |ev, [_, backlog, ..]| ev.arg0 = backlog as i32 as i64,
    );
}

/// setsockopt(fd, level, optname, optval, optlen) of a listener option returned `ret`.
#[inline(always)]
pub fn setsockopt_returned<C: EbpfContext>(ctx: &C, caller: &Caller, args: [u64; 5], ret: i32) {
    exit_event(
        ctx,
        caller,
        EventKind::Setsockopt,
        args,
        ret,
        |ev, [_, level, optname, optval, optlen]| {
            ev.arg0 = level as i32 as i64;
            ev.arg1 = optname as i32;
            ev.arg2 = optlen as i32;
            if is_bindx(level as i32, optname as i32) {
                copy_bindx(ev, optval, optlen as i32, Mem::User);
            } else {
                copy_optval(ev, optval, optlen as i32, Mem::User);
            }
        },
    );
}

/// The calling task's syscall arguments, for a caller the filters want.
#[inline(always)]
pub fn wanted_args(caller: &Caller, n: usize) -> Option<[u64; 5]> {
    if !enabled(caller) {
        return None;
    }
    let args = caller.syscall_args(n);
    if args.is_none() {
        count(CTR_SOCK_READ_FAIL);
    }
    args
}

#[tracepoint]
#[inline(always)] // one body: outlined, its constant return left R0 holding a stack pointer
pub fn sys_exit_bind(ctx: TracePointContext) -> u32 {
    let caller = Caller::current();
    if let Some(args) = wanted_args(&caller, 3) {
        bind_returned(&ctx, &caller, args, ret(&ctx));
    }
    0
}

#[tracepoint]
#[inline(always)] // one body: outlined, its constant return left R0 holding a stack pointer
pub fn sys_exit_listen(ctx: TracePointContext) -> u32 {
    let caller = Caller::current();
    if let Some(args) = wanted_args(&caller, 2) {
        listen_returned(&ctx, &caller, args, ret(&ctx));
    }
    0
}

#[tracepoint]
#[inline(always)] // one body: outlined, its constant return left R0 holding a stack pointer
pub fn sys_exit_setsockopt(ctx: TracePointContext) -> u32 {
    // Only options that shape a listener cost an event (asked before the filters, so other
    // options are not counted as filtered).
    let caller = Caller::current();
    let Some(args) = caller.syscall_args(5) else {
        count(CTR_SOCK_READ_FAIL);
        return 0;
    };
    if !is_listener_option(args[1] as i32, args[2] as i32) || !enabled(&caller) {
        return 0;
    }
    setsockopt_returned(&ctx, &caller, args, ret(&ctx));
    0
}

// socketcall(2)'s calls (include/uapi/linux/net.h).
const SYS_BIND: u64 = 2;
const SYS_LISTEN: u64 = 4;
const SYS_SETSOCKOPT: u64 = 14;

/// 32-bit (ia32) callers' bind, listen and listener setsockopt, direct or through
/// socketcall(2): the syscall tracepoints above skip every ia32 syscall (x86's
/// ARCH_TRACE_IGNORE_COMPAT_SYSCALLS), the raw `sys_exit` one does not. It runs for every
/// syscall exit on the host: anything but a 32-bit call returns at its first check.
#[raw_tracepoint(tracepoint = "sys_exit")]
#[inline(always)] // one body: outlined, its constant return left R0 holding a stack pointer
pub fn sys_exit_ia32(ctx: RawTracePointContext) -> i32 {
    let caller = Caller::current();
    if !caller.in_compat_syscall() {
        return 0;
    }
    let (kind, regs) = match caller.syscall() {
        Syscall::Bind => (EventKind::Bind, caller.syscall_args_ia32()),
        Syscall::Listen => (EventKind::Listen, caller.syscall_args_ia32()),
        Syscall::Setsockopt => (EventKind::Setsockopt, caller.syscall_args_ia32()),
        Syscall::Socketcall => match caller.syscall_args_ia32() {
            // socketcall(call, unsigned long *args): 32-bit words the kernel has read.
            Some([call, at, ..]) => {
                let kind = match call {
                    SYS_BIND => EventKind::Bind,
                    SYS_LISTEN => EventKind::Listen,
                    SYS_SETSOCKOPT => EventKind::Setsockopt,
                    _ => return 0,
                };
                let mut w = [0u32; 5];
                let r = probe_read(w.as_mut_ptr() as *mut u8, 20, at, Mem::User);
                let args = (r == 0).then_some([
                    w[0] as u64,
                    w[1] as u64,
                    w[2] as u64,
                    w[3] as u64,
                    w[4] as u64,
                ]);
                (kind, args)
            }
            None => (EventKind::Bind, None),
        },
        _ => return 0,
    };
    let Some(args) = regs else {
        count(CTR_SOCK_READ_FAIL);
        return 0;
    };
    let ret = ctx.arg::<u64>(1) as i64 as i32;
    match kind {
        EventKind::Setsockopt => {
            if is_listener_option(args[1] as i32, args[2] as i32) && enabled(&caller) {
                setsockopt_returned(&ctx, &caller, args, ret);
            }
        }
        _ if !enabled(&caller) => {}
        EventKind::Bind => bind_returned(&ctx, &caller, args, ret),
        _ => listen_returned(&ctx, &caller, args, ret),
    }
    0
}

/// TCP LISTEN transitions that no listen(2) of this thread explains (io_uring, in-kernel
/// listeners), and every listener's close. TP_PROTO(const struct sock *sk, int oldstate,
/// int newstate), hooked as a raw tracepoint: the classic one first assembles a perf record
/// (addresses, ports, family) for every state change of every TCP socket on the host — a
/// connection makes six or more — before the program looks at it (empty programs in the
/// bind storm: 3.4% of its throughput as a tracepoint, 1.2% raw).
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
#[inline(always)] // one body: outlined, its constant return left R0 holding a stack pointer
pub fn inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    let old = ctx.arg::<u64>(1) as i32;
    let new = ctx.arg::<u64>(2) as i32;
    let kind = if new == TCP_LISTEN {
        EventKind::ListenState
    } else if old == TCP_LISTEN && (new == TCP_CLOSE || new == TCP_CLOSE_WAIT) {
        EventKind::ListenClose
    } else {
        return 0;
    };
    let caller = Caller::current();
    // The kernel-function backends' listen in flight, for this very socket: a mark whose
    // return was missed (kprobe, counted lost at the thread's next call) is not taken for
    // a later change's. (Its `struct socket *`: an MPTCP listen's is its subflow's, whose
    // sock this is.)
    let listen_pending = unsafe { PENDING.get(caller.tid()) }.is_some_and(|call| {
        call.kind == EventKind::Listen as u8 && sock_socket(ctx.arg(0)) == Some(call.args[0])
    });
    // A listen that fails in get_port moves the socket CLOSE → LISTEN → CLOSE inside the
    // call: that LISTEN → CLOSE is the failed listen's own undoing, not a listener's close.
    if kind == EventKind::ListenClose && (caller.syscall() == Syscall::Listen || listen_pending) {
        return 0;
    }
    // listen(2) is reported by sys_exit_listen or __sys_listen's hook, with the fd and
    // backlog (a 32-bit one only by the latter: the syscall tracepoints skip ia32 calls); a
    // listen the kernel-function hooks have in flight (io_uring's too) by their return hook.
    if kind == EventKind::ListenState && (listen_syscall_reported(&caller) || listen_pending) {
        return 0;
    }
    // Asked only now: every TCP state change passes here, and only these are events. A LISTEN
    // transition of an unwanted caller is most likely its listen(2), already counted as
    // filtered at syscall entry: not counted twice.
    if !enabled_counting(&caller, kind != EventKind::ListenState) {
        return 0;
    }
    let Some(sk) = listener_of(ctx.arg(0)) else {
        return 0;
    };
    let view = SockView::load(sk);
    let mut about = About::sock(sk);
    // A closing listener may already have released its port (skc_num); inet_sport keeps it.
    let sport = inet_sport(&view);
    let sport = if view.intact() {
        sport
    } else {
        inet_sport(&SockView::direct(sk))
    };
    about.hook_port = sport;
    let Some(mut entry) = reserve(&caller, kind, -1, 0, &about) else {
        return 0;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.source = SOURCE_KERNEL;
    ev.flags |= F_NO_FD;
    fill_sock_from(&caller, ev, &about, &view);
    if ev.sock.num == 0 && sport != 0 {
        ev.sock.num = sport;
        ev.sock.known |= K_NUM;
    }
    submit(entry);
    0
}

/// Whether the listen syscall the caller is in is reported by a syscall hook.
#[inline(always)]
fn listen_syscall_reported(caller: &Caller) -> bool {
    match caller.syscall() {
        Syscall::Listen | Syscall::Socketcall => {
            !caller.in_compat_syscall() || kfunc().syscall_hooks & SYSCALL_HOOK_LISTEN != 0
        }
        _ => false,
    }
}
