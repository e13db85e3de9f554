//! Reading kernel structs through the offsets table (no CO-RE in Rust eBPF: the agent
//! resolves every field from the running kernel's BTF; an unresolved one stays unknown).
use aya_ebpf::helpers::{
    bpf_get_current_task, bpf_probe_read_kernel,
    generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
};
use lsn_trace_common::*;

use crate::maps::{OFFSETS, SOCK_SCRATCH};

macro_rules! off {
    ($f:ident) => {
        unsafe { core::ptr::read_volatile(&raw const OFFSETS.$f) }
    };
}

/// Load the field at `base + f.offset`; None when unresolved or unreadable.
#[inline(always)]
fn read(base: u64, f: Field) -> Option<u64> {
    if base == 0 {
        return None;
    }
    let at = base + f.offset as u64;
    let raw = unsafe {
        match f.size {
            1 => bpf_probe_read_kernel(at as *const u8).ok()? as u64,
            2 => bpf_probe_read_kernel(at as *const u16).ok()? as u64,
            4 => bpf_probe_read_kernel(at as *const u32).ok()? as u64,
            8 => bpf_probe_read_kernel(at as *const u64).ok()?,
            _ => return None,
        }
    };
    Some(f.extract(raw))
}

#[inline(always)]
fn read_ptr(base: u64, f: Field) -> Option<u64> {
    match read(base, f)? {
        0 => None,
        p => Some(p),
    }
}

/// `current->files->fdt->fd[fd]->private_data->sk`: the socket behind a descriptor of the
/// calling task. Only called after the syscall accepted `fd` as a socket.
#[inline(always)]
pub fn sock_from_fd(fd: i32) -> Option<u64> {
    if fd < 0 {
        return None;
    }
    let task = unsafe { bpf_get_current_task() };
    let files = read_ptr(task, off!(task_files))?;
    let fdt = read_ptr(files, off!(files_fdt))?;
    let max = read(fdt, off!(fdt_max_fds))?;
    if fd as u64 >= max {
        return None;
    }
    let fds = read_ptr(fdt, off!(fdt_fd))?;
    let file: u64 = unsafe { bpf_probe_read_kernel((fds + fd as u64 * 8) as *const u64).ok()? };
    let socket = read_ptr(file, off!(file_private_data))?;
    read_ptr(socket, off!(socket_sk))
}

/// A unix socket's bound address: (kernel pointer to its sockaddr_un, length).
#[inline(always)]
pub fn unix_address(sk: u64) -> Option<(u64, u64)> {
    let name = off!(unix_address_name);
    if !name.is_known() {
        return None;
    }
    let addr = read_ptr(sk, off!(unix_sock_addr))?;
    let len = read(addr, off!(unix_address_len))?;
    Some((addr + name.offset as u64, len))
}

/// `socket->sk`: the sock of a `struct socket *` (kernel-function hooks get the latter).
#[inline(always)]
pub fn socket_sk(socket: u64) -> Option<u64> {
    read_ptr(socket, off!(socket_sk))
}

/// `current->flags` (PF_*), None when unresolved.
#[inline(always)]
pub fn current_task_flags() -> Option<u64> {
    read(unsafe { bpf_get_current_task() }, off!(task_flags))
}

// x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
pub const NR_BIND: u64 = 49;
pub const NR_LISTEN: u64 = 50;
pub const NR_SETSOCKOPT: u64 = 54;
pub const NR_IO_URING_ENTER: u64 = 426;

/// The user registers saved at syscall entry (`task_pt_regs(current)`).
#[inline(always)]
fn current_regs() -> u64 {
    unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) as u64 }
}

/// The number of the syscall the calling task is in.
#[inline(always)]
pub fn current_syscall_nr() -> Option<u64> {
    read(current_regs(), off!(pt_regs_orig_ax))
}

/// The second argument of the syscall the calling task is in, as the caller passed it.
#[inline(always)]
pub fn current_syscall_arg1() -> Option<u64> {
    read(current_regs(), off!(pt_regs_arg1))
}

/// The first `n` (≤ 5) arguments of the syscall the calling task is in, from the registers
/// saved at its entry (which the kernel leaves as they were): what a sys_exit tracepoint,
/// which carries only the return value, needs to know about the call. The five registers
/// lie within 64 bytes of `pt_regs` (x86_64: r10 … di), copied with one read. (Written
/// out rather than looped over arrays: LLVM turns those into BPF memset/memcpy calls,
/// whose returned stack pointer the verifier refuses.)
#[inline(always)]
pub fn current_syscall_args(n: usize) -> Option<[u64; 5]> {
    let regs = current_regs();
    let (f0, f1, f2, f3, f4) = (
        off!(pt_regs_arg0),
        off!(pt_regs_arg1),
        off!(pt_regs_arg2),
        off!(pt_regs_arg3),
        off!(pt_regs_arg4),
    );
    let lo = f0
        .offset
        .min(f1.offset)
        .min(f2.offset)
        .min(f3.offset)
        .min(f4.offset);
    // Not zeroed first: the read fills it, or the arguments are unknown.
    let mut window = core::mem::MaybeUninit::<[u64; 8]>::uninit();
    let r = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            window.as_mut_ptr() as *mut _,
            64,
            (regs + lo as u64) as *const _,
        )
    };
    if r != 0 {
        return None;
    }
    let w = unsafe { window.assume_init() };
    Some([
        syscall_arg(&w, lo, 0 < n, f0)?,
        syscall_arg(&w, lo, 1 < n, f1)?,
        syscall_arg(&w, lo, 2 < n, f2)?,
        syscall_arg(&w, lo, 3 < n, f3)?,
        syscall_arg(&w, lo, 4 < n, f4)?,
    ])
}

/// One register from the window `current_syscall_args` copied (0 when not `wanted`).
/// Inlined: an outlined function returning an Option returns a pointer to the caller's
/// stack, which the verifier refuses.
#[inline(always)]
fn syscall_arg(window: &[u64; 8], lo: u16, wanted: bool, f: Field) -> Option<u64> {
    if !wanted {
        return Some(0);
    }
    let rel = (f.offset - lo) as usize;
    if f.size != 8 || rel % 8 != 0 || rel >= 64 {
        return None;
    }
    Some(window[rel / 8])
}

/// net.core.somaxconn of the socket's network namespace.
#[inline(always)]
pub fn somaxconn(sk: u64) -> Option<u32> {
    let net = read_ptr(sk, off!(skc_net))?;
    read(net, off!(net_somaxconn)).map(|v| v as u32)
}

/// The calling task's parent's tgid (for the audit record; 0 when unknown).
#[inline(always)]
pub fn current_ppid() -> u32 {
    let task = unsafe { bpf_get_current_task() };
    read_ptr(task, off!(task_real_parent))
        .and_then(|parent| read(parent, off!(task_tgid)))
        .unwrap_or(0) as u32
}

/// The tgid of a `struct task_struct *`.
#[inline(always)]
pub fn task_tgid(task: u64) -> Option<u32> {
    read(task, off!(task_tgid)).map(|v| v as u32)
}

/// Inode of the calling task's network namespace (`current->nsproxy->net_ns->ns.inum`).
#[inline(always)]
pub fn current_netns() -> Option<u32> {
    let task = unsafe { bpf_get_current_task() };
    let nsproxy = read_ptr(task, off!(task_nsproxy))?;
    let net = read_ptr(nsproxy, off!(nsproxy_net_ns))?;
    read(net, off!(net_ns_inum)).map(|v| v as u32)
}

/// One `struct sock` to read fields of: its first `sock_span` bytes copied with one helper
/// call into per-CPU scratch, or, when the span is unknown or the copy failed, the sock
/// itself, read field by field. Programs on one CPU do not nest where a view is in use
/// (bind, listen, setsockopt and a listener's state changes run in process context).
pub struct SockView {
    sk: u64,
    /// The copy; null = read from `sk`.
    copy: *const u8,
}

impl SockView {
    #[inline(always)]
    pub fn load(sk: u64) -> SockView {
        let mut view = SockView {
            sk,
            copy: core::ptr::null(),
        };
        let span = unsafe { core::ptr::read_volatile(&raw const OFFSETS.sock_span) } as u64;
        if sk == 0 || span == 0 || span > SOCK_SNAPSHOT as u64 {
            return view;
        }
        let Some(buf) = SOCK_SCRATCH.get_ptr_mut(0) else {
            return view;
        };
        let n = bounded(span, SOCK_SNAPSHOT as u64);
        let r = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(buf as *mut _, n, sk as *const _)
        };
        if r == 0 {
            view.copy = buf as *const u8;
        }
        view
    }

    /// The field's value; None when unresolved or unreadable.
    #[inline(always)]
    pub fn get(&self, f: Field) -> Option<u64> {
        if self.copy.is_null() {
            return read(self.sk, f);
        }
        // The mask keeps the verifier's view of the offset inside the scratch value; the
        // agent only sets a span that holds every field.
        let at = unsafe { self.copy.add(f.offset as usize & (SOCK_SNAPSHOT - 1)) };
        let raw = unsafe {
            match f.size {
                1 => *at as u64,
                2 => core::ptr::read_unaligned(at as *const u16) as u64,
                4 => core::ptr::read_unaligned(at as *const u32) as u64,
                8 => core::ptr::read_unaligned(at as *const u64),
                _ => return None,
            }
        };
        Some(f.extract(raw))
    }

    #[inline(always)]
    pub fn get_ptr(&self, f: Field) -> Option<u64> {
        match self.get(f)? {
            0 => None,
            p => Some(p),
        }
    }

    /// `N` bytes of an array field (an address) of exactly that size.
    #[inline(always)]
    pub fn bytes<const N: usize>(&self, f: Field) -> Option<[u8; N]> {
        if !f.is_known() {
            return None;
        }
        if self.copy.is_null() {
            return unsafe { bpf_probe_read_kernel((self.sk + f.offset as u64) as *const [u8; N]) }
                .ok();
        }
        let at = unsafe { self.copy.add(f.offset as usize & (SOCK_SNAPSHOT - 1)) };
        Some(unsafe { core::ptr::read_unaligned(at as *const [u8; N]) })
    }
}

/// `min(v, max)` in a form the verifier can follow: the volatile load stops LLVM from
/// handing the helper the unbounded original register instead of the clamped one.
#[inline(always)]
pub fn bounded(v: u64, max: u64) -> u32 {
    let slot = v;
    let v = unsafe { core::ptr::read_volatile(&slot) };
    (if v > max { max } else { v }) as u32
}

/// The few socket fields the filters look at (see `filter::call_wanted`), without the
/// cost (and stack) of a whole `read_sock`. 0 = unknown for each.
#[derive(Clone, Copy, Default)]
pub struct SockKey {
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub num: u16,
    pub netns: u32,
    pub type_known: bool,
    pub protocol_known: bool,
}

#[inline(always)]
pub fn sock_key(sk: &SockView) -> SockKey {
    let mut k = SockKey::default();
    if let Some(v) = sk.get(off!(skc_family)) {
        k.family = v as u16;
    }
    if let Some(v) = sk.get(off!(sk_type)) {
        k.sock_type = v as u16;
        k.type_known = true;
    }
    if let Some(v) = sk.get(off!(sk_protocol)) {
        k.protocol = v as u16;
        k.protocol_known = true;
    }
    if let Some(v) = sk.get(off!(skc_num)) {
        k.num = v as u16;
    }
    if let Some(net) = sk.get_ptr(off!(skc_net))
        && let Some(inum) = read(net, off!(net_ns_inum))
    {
        k.netns = inum as u32;
    }
    k
}

macro_rules! fill {
    ($st:ident, $sk:expr, $known:ident, $field:ident, $off:ident, $ty:ty) => {
        if let Some(v) = $sk.get(off!($off)) {
            $st.$field = v as $ty;
            $st.known |= $known;
        }
    };
}

/// Snapshot the fields of `struct sock` that decide how it listens.
#[inline(always)]
pub fn read_sock(sk: &SockView, st: &mut SockState) {
    fill!(st, sk, K_FAMILY, family, skc_family, u16);
    fill!(st, sk, K_TYPE, sock_type, sk_type, u16);
    fill!(st, sk, K_PROTOCOL, protocol, sk_protocol, u16);
    fill!(st, sk, K_STATE, state, skc_state, u8);
    fill!(st, sk, K_NUM, num, skc_num, u16);
    fill!(st, sk, K_V6ONLY, v6only, skc_ipv6only, u8);
    fill!(st, sk, K_REUSE, reuse, skc_reuse, u8);
    fill!(st, sk, K_REUSEPORT, reuseport, skc_reuseport, u8);
    fill!(st, sk, K_FREEBIND, freebind, inet_freebind, u8);
    fill!(st, sk, K_TRANSPARENT, transparent, inet_transparent, u8);
    fill!(st, sk, K_BIND_NO_PORT, bind_no_port, inet_bind_no_port, u8);
    fill!(st, sk, K_BOUND_DEV, bound_dev_if, skc_bound_dev_if, i32);
    fill!(st, sk, K_BACKLOG, max_ack_backlog, sk_max_ack_backlog, u32);
    if let Some(a) = sk.bytes::<4>(off!(skc_rcv_saddr)) {
        st.rcv_saddr = a;
        st.known |= K_RCV_SADDR;
    }
    if let Some(a) = sk.bytes::<16>(off!(skc_v6_rcv_saddr)) {
        st.v6_rcv_saddr = a;
        st.known |= K_V6_RCV_SADDR;
    }
    if let Some(net) = sk.get_ptr(off!(skc_net))
        && let Some(inum) = read(net, off!(net_ns_inum))
    {
        st.netns = inum as u32;
        st.known |= K_NETNS;
    }
    if let Some(socket) = sk.get_ptr(off!(sk_socket))
        && let Some(ino) = read(socket, off!(socket_ino))
    {
        st.ino = ino;
        st.known |= K_INO;
    }
}
