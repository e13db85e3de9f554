//! Building and submitting events: the one piece every hook and backend shares.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_ktime_get_ns, generated::bpf_probe_read_kernel},
    maps::ring_buf::RingBufEntry,
};
use lsn_trace_common::*;

pub use crate::filter::About;
use crate::{
    filter,
    kernel::{Caller, Mem, SockView, bounded, probe_read, read_sock, unix_address},
    maps::{EVENTS, FOLLOW, config, count, count_get, is_self_check},
};

/// A reserved, zeroed event with the caller's identity filled in. None when the filters
/// drop the call (counted, and decided before reserving: a filtered-out event costs no
/// ring-buffer space) or when the ring buffer is full (the loss counted).
#[inline(always)]
pub fn reserve(
    caller: &Caller,
    kind: EventKind,
    fd: i32,
    ret: i32,
    about: &About,
) -> Option<RingBufEntry<Event>> {
    let cfg = config();
    // Only the self-check thread of the agent's process gets this far (`enabled`).
    let self_check = caller.tgid() == cfg.self_pid;
    if !self_check && !filter::call_wanted(&cfg, caller, ret, about) {
        count(CTR_FILTERED);
        return None;
    }
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count(CTR_LOST_RINGBUF);
        return None;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        zero(ev);
        let ev = &mut *ev;
        let uid_gid = caller.uid_gid();
        ev.ts_ns = bpf_ktime_get_ns();
        ev.pid = caller.tgid();
        ev.tid = caller.tid();
        ev.uid = uid_gid as u32;
        ev.gid = (uid_gid >> 32) as u32;
        if let Some(euid) = caller.euid() {
            ev.euid = euid;
            ev.flags |= F_EUID;
        }
        ev.ppid = caller.ppid();
        ev.start_boottime = caller.start_boottime();
        ev.fd = fd;
        ev.ret = ret;
        ev.kind = kind as u8;
        caller.comm(&mut ev.comm);
        if cfg.flags & CFG_TRACK != 0 && FOLLOW.get(ev.pid).is_some() {
            ev.flags |= F_FOLLOWED;
        }
        if self_check {
            ev.flags |= F_SELF_CHECK;
        }
    }
    Some(entry)
}

/// Zero a fresh record with plain 8-byte stores: `write_bytes` becomes a call to the BPF
/// `memset`, a byte loop that cost as much as all the event's other stores together.
#[inline(always)]
fn zero(ev: *mut Event) {
    const WORDS: usize = core::mem::size_of::<Event>() / 8;
    const _: () = assert!(core::mem::size_of::<Event>() % 8 == 0);
    let w = ev as *mut u64;
    let mut i = 0;
    while i < WORDS {
        // Volatile, or LLVM folds the loop back into that memset.
        unsafe { core::ptr::write_volatile(w.add(i), 0) };
        i += 1;
    }
}

/// The socket part of the event.
#[inline(always)]
pub fn fill_sock(caller: &Caller, ev: &mut Event, about: &About) {
    // (SockView::load of no socket reads nothing; fill_sock_from then returns.)
    fill_sock_from(caller, ev, about, &SockView::load(about.sk));
}

/// `fill_sock` from a view of the socket the hook already loaded.
#[inline(always)]
pub fn fill_sock_from(caller: &Caller, ev: &mut Event, about: &About, view: &SockView) {
    if about.sk == 0 {
        return;
    }
    ev.sock_ptr = about.sk;
    ev.flags |= F_SOCK;
    read_sock(caller, view, about.ino, &mut ev.sock);
    if !view.intact() {
        // What the fields hold now is another socket's: known again only as re-read.
        ev.sock.known = 0;
        read_sock(caller, &SockView::direct(about.sk), about.ino, &mut ev.sock);
    }
    // listen(2) names no address: for a unix listener, report the one it holds (the only
    // place its path is known, e.g. after an autobind).
    if ev.kind == EventKind::Listen as u8
        && ev.sock.known & K_FAMILY != 0
        && ev.sock.family == 1 // AF_UNIX
        && let Some((name, len)) = unix_address(about.sk)
    {
        let n = bounded(len, SOCKADDR_CAP as u64);
        let r =
            unsafe { bpf_probe_read_kernel(ev.addr.as_mut_ptr() as *mut _, n, name as *const _) };
        if r == 0 {
            ev.addrlen = n;
            ev.flags |= F_ADDR_READ;
        }
    }
}

/// Copy what a call names (`len` bytes at `src`, at most the buffer's size) into an event's
/// buffer: None when there is nothing to copy, else whether it was read. Exit hooks run
/// after the kernel's own copy_from_user faulted the page in, so a resident-only read does
/// not lose it. Unreadable, the buffer carries a user pointer instead (strace prints it) —
/// never a kernel one: a kernel address stays in the kernel (and the verifier refuses to
/// let a BTF pointer into the ring buffer).
#[inline(always)]
fn copy_in<const CAP: usize>(buf: &mut [u8; CAP], src: u64, len: u64, mem: Mem) -> Option<bool> {
    let n = bounded(len, CAP as u64);
    if n == 0 {
        return None;
    }
    let read = probe_read(buf.as_mut_ptr(), n, src, mem) == 0;
    if !read && mem == Mem::User {
        unsafe { core::ptr::write_unaligned(buf.as_mut_ptr() as *mut u64, src) };
    }
    Some(read)
}

/// The sockaddr passed to bind: `addrlen` as given, up to `SOCKADDR_CAP` bytes of it.
#[inline(always)]
pub fn copy_sockaddr(ev: &mut Event, addr: u64, addrlen: u32, mem: Mem) {
    ev.addrlen = addrlen;
    match copy_in(&mut ev.addr, addr, addrlen as u64, mem) {
        Some(true) => ev.flags |= F_ADDR_READ,
        Some(false) => ev.flags |= F_ADDR_FAULT,
        None => {}
    }
}

/// A setsockopt value: up to `OPTVAL_CAP` bytes of it (none for a negative optlen).
#[inline(always)]
pub fn copy_optval(ev: &mut Event, val: u64, optlen: i32, mem: Mem) {
    if optlen < 0 {
        return;
    }
    match copy_in(&mut ev.optval, val, optlen as u64, mem) {
        Some(true) => ev.flags |= F_OPTVAL_READ,
        Some(false) => ev.flags |= F_OPTVAL_FAULT,
        None => {}
    }
}

/// An sctp_bindx() array (setsockopt SOL_SCTP, SCTP_SOCKOPT_BINDX_ADD/_REM: `optlen` bytes
/// of packed sockaddr_in/sockaddr_in6): its first `SOCKADDR_CAP` bytes where bind's
/// sockaddr goes, and in `optval` the whole array walked as the kernel walks it
/// (sctp_setsockopt_bindx: each address as long as its family says), so the addresses
/// that did not fit are counted, never dropped unsaid.
#[inline(always)]
pub fn copy_bindx(ev: &mut Event, val: u64, optlen: i32, mem: Mem) {
    use lsn_trace_common::sockopt::*;
    if optlen < 0 {
        return;
    }
    ev.addrlen = optlen as u32;
    match copy_in(&mut ev.addr, val, optlen as u64, mem) {
        Some(true) => ev.flags |= F_ADDR_READ,
        Some(false) => {
            ev.flags |= F_ADDR_FAULT;
            return;
        }
        None => return,
    }
    let len = optlen as u32;
    let mut walk = BindxWalk {
        status: BINDX_MORE,
        ..BindxWalk::default()
    };
    for _ in 0..BINDX_WALK {
        if walk.end >= len {
            walk.status = BINDX_WHOLE;
            break;
        }
        let mut family = [0u8; 2];
        let step = if walk.end + 2 > len {
            0
        } else if probe_read(family.as_mut_ptr(), 2, val + walk.end as u64, mem) != 0 {
            return; // F_OPTVAL_READ stays clear: not walked
        } else {
            match u16::from_ne_bytes(family) {
                2 => 16,  // AF_INET: sockaddr_in
                10 => 28, // AF_INET6: sockaddr_in6
                _ => 0,
            }
        };
        if step == 0 || walk.end + step > len {
            walk.status = BINDX_MALFORMED;
            break;
        }
        walk.end += step;
        walk.count += 1;
    }
    if walk.status == BINDX_MORE && walk.end >= len {
        walk.status = BINDX_WHOLE;
    }
    unsafe { core::ptr::write_unaligned(ev.optval.as_mut_ptr() as *mut BindxWalk, walk) };
    ev.flags |= F_OPTVAL_READ;
}

/// Submit, waking the reader only when the backlog has crossed a multiple of
/// `wakeup_bytes` (it also drains on a short timer), so a storm costs one wake-up per batch
/// rather than one per event. "Crossed", not "is above": a backlog the reader has not yet
/// drained would otherwise make every later event force a wake-up (an IPI each, the storm's
/// largest cost). The backlog is asked every `WAKEUP_CHECK_EVERY`-th event of a CPU, over
/// that many events' worth of records.
#[inline(always)]
pub fn submit(mut entry: RingBufEntry<Event>) {
    let threshold = config().wakeup_bytes as u64;
    // A failure wakes the reader at once: explaining it (who holds the port) means looking
    // while the culprit still exists.
    let failed = unsafe { (*entry.as_mut_ptr()).ret } != 0;
    let nth = count_get(CTR_EMITTED);
    let flags = if threshold == 0 {
        0
    } else if failed {
        BPF_RB_FORCE_WAKEUP as u64
    } else if nth % WAKEUP_CHECK_EVERY == 0 {
        // The backlog with this record (reserved, so already counted), and as it was that
        // many records ago (other CPUs' records count as this CPU's: at worst an early
        // wake-up).
        let with = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
        let before = with.saturating_sub(WAKEUP_CHECK_EVERY * RECORD_BYTES);
        if with / threshold != before / threshold {
            BPF_RB_FORCE_WAKEUP as u64
        } else {
            BPF_RB_NO_WAKEUP as u64
        }
    } else {
        BPF_RB_NO_WAKEUP as u64
    };
    entry.submit(flags);
}

/// How often `submit` asks for the backlog (a helper call): a power of two.
const WAKEUP_CHECK_EVERY: u64 = 16;

/// What one event takes in the ring: the 8-byte record header, the event, rounded up to 8.
const RECORD_BYTES: u64 = (8 + core::mem::size_of::<Event>() as u64 + 7) & !7;

/// Whether this task's events are wanted at all: hooks ask first, before any work. A caller
/// the filters drop is counted as filtered.
#[inline(always)]
pub fn enabled(caller: &Caller) -> bool {
    enabled_counting(caller, true)
}

/// `enabled`, counting a drop or not (when the same call was already counted, e.g. the
/// LISTEN transition of a listen(2) that entry filtering dropped).
#[inline(always)]
pub fn enabled_counting(caller: &Caller, counted: bool) -> bool {
    let cfg = config();
    if cfg.flags & CFG_ENABLED == 0 {
        return false;
    }
    let pid = caller.tgid();
    if pid == cfg.self_pid {
        // The agent's own calls: only its self-check, past every filter.
        return is_self_check(caller.tid());
    }
    if !filter::task_wanted(&cfg, caller) {
        if counted {
            count(CTR_FILTERED);
        }
        return false;
    }
    true
}
