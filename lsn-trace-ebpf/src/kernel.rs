//! Reading kernel structs through the offsets table (no CO-RE in Rust eBPF: the agent
//! resolves every field from the running kernel's BTF; an unresolved one stays unknown).
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel,
    generated::{self, bpf_get_current_task_btf, bpf_task_pt_regs},
};
use lsn_trace_common::*;

use crate::maps::{OFFSETS, SCRATCH_GEN_AT, SOCK_SCRATCH, SOCKET_AT};

/// One field of the offsets table, with one 8-byte load (volatile: the placeholder value
/// must not be folded at compile time; the verifier knows the loaded value, as the table is
/// read-only, and follows only the paths it allows).
macro_rules! off {
    ($f:ident) => {
        Field::from_bits(unsafe { core::ptr::read_volatile(&raw const OFFSETS.$f as *const u64) })
    };
}

/// The offsets table's `btf_*` id, loaded where it is used (a constant to the verifier
/// there, whatever LLVM did with an earlier copy).
macro_rules! btf_id {
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
    Some(f.from_sized_load(raw))
}

#[inline(always)]
fn read_ptr(base: u64, f: Field) -> Option<u64> {
    match read(base, f)? {
        0 => None,
        p => Some(p),
    }
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

/// `socket->sk` and the socket's inode number (0 = unknown) from a `struct socket *`
/// (`struct socket` heads a `struct socket_alloc`, whose inode follows it): two loads
/// through the pointer cast to that, else one read of the window the agent found holding
/// both, else one read each — the inode then left to `read_sock`, which finds it from the
/// sock.
#[inline(always)]
pub fn socket_sk_ino(socket: u64) -> Option<(u64, u64)> {
    if let Some(s) = Typed::cast(socket, btf_id!(btf_socket_alloc)) {
        let sk = s.ptr(off!(socket_sk))?;
        return Some((sk.addr(), s.scalar(off!(socket_ino)).unwrap_or(0)));
    }
    let start = unsafe { core::ptr::read_volatile(&raw const OFFSETS.socket_window_start) };
    let len = unsafe { core::ptr::read_volatile(&raw const OFFSETS.socket_window_len) };
    if socket != 0
        && len != 0
        && let Some(scratch) = Scratch::claim()
    {
        let win = unsafe { scratch.buf.add(SOCKET_AT) };
        let n = bounded(len as u64, SOCKET_WINDOW as u64);
        let r = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                win as *mut _,
                n,
                (socket + start as u64) as *const _,
            )
        };
        if r == 0 {
            let at = |f: Field| {
                let rel = (f.offset.wrapping_sub(start)) as usize & (SOCKET_WINDOW - 1);
                f.extract(unsafe { load8(win, rel) })
            };
            let (sk, ino) = (at(off!(socket_sk)), at(off!(socket_ino)));
            if scratch.intact() {
                return if sk == 0 { None } else { Some((sk, ino)) };
            }
        }
    }
    Some((read_ptr(socket, off!(socket_sk))?, 0))
}

/// Field `f` loaded at `at` (its address: `base + offset`) with one load of its size, a
/// bitfield extracted. `at` must be readable for that size: a typed pointer the verifier
/// checks, or a copy in a map value.
#[inline(always)]
unsafe fn load_field(at: *const u8, f: Field) -> Option<u64> {
    let raw = unsafe {
        match f.size {
            1 => *at as u64,
            2 => *(at as *const u16) as u64,
            4 => *(at as *const u32) as u64,
            8 => *(at as *const u64),
            _ => return None,
        }
    };
    Some(f.from_sized_load(raw))
}

/// The 8 bytes at `base + off` (`base` 8-aligned), from the two aligned words around them:
/// an unaligned load would be eight byte loads.
#[inline(always)]
unsafe fn load8(base: *const u8, off: usize) -> u64 {
    let words = unsafe { base.add(off & !7) } as *const u64;
    let (lo, hi) = unsafe { (*words, *words.add(1)) };
    let bits = (off & 7) * 8;
    // `hi << (64 - bits)`, in two steps so that bits = 0 shifts it out rather than by 64.
    lo >> bits | (hi << 1) << (63 - bits)
}

// x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
pub const NR_BIND: u64 = 49;
pub const NR_LISTEN: u64 = 50;
pub const NR_SETSOCKOPT: u64 = 54;
pub const NR_IO_URING_ENTER: u64 = 426;
// ia32 (arch/x86/entry/syscalls/syscall_32.tbl): the direct socket calls (4.3+) and
// socketcall(2), which multiplexes them all; io_uring_enter has the same number in both.
const NR_IA32_SOCKETCALL: u64 = 102;
const NR_IA32_BIND: u64 = 361;
const NR_IA32_LISTEN: u64 = 363;
const NR_IA32_SETSOCKOPT: u64 = 366;
/// x32 syscalls are x86_64's numbers with this bit (`__X32_SYSCALL_BIT`).
const X32_SYSCALL_BIT: u64 = 0x4000_0000;
/// `thread_info.status`: the task is in a 32-bit syscall (arch/x86/include/asm/thread_info.h).
const TS_COMPAT: u64 = 0x0002;

/// The syscall a task is in, whatever its ABI (x86_64, x32, ia32).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Syscall {
    Bind,
    Listen,
    Setsockopt,
    /// ia32 socketcall(2): any of the socket calls.
    Socketcall,
    IoUringEnter,
    /// Another syscall, or none known (a kernel thread).
    Other,
}

const IPPROTO_TCP: u64 = 6;
const IPPROTO_MPTCP: u64 = 262;

/// The MPTCP socket a TCP subflow belongs to (`tcp_sock.is_mptcp`, then its
/// `mptcp_subflow_context.conn`); None for any other TCP socket. Only for a TCP sock.
#[inline(always)]
fn mptcp_parent(sk: u64) -> Option<u64> {
    if read(sk, off!(tcp_is_mptcp))? == 0 {
        return None;
    }
    read_ptr(read_ptr(sk, off!(icsk_ulp_data))?, off!(subflow_conn))
}

/// The sock a listener's state change is reported for, one socket one story: a TCP
/// subflow's is its MPTCP socket's (the one bind and listen named, whose close it is);
/// None for an MPTCP socket's own change, which repeats its first subflow's where a kernel
/// traces it at all.
#[inline(always)]
pub fn listener_of(sk: u64) -> Option<u64> {
    match read(sk, off!(sk_protocol)) {
        Some(IPPROTO_MPTCP) => None,
        Some(IPPROTO_TCP) => Some(mptcp_parent(sk).unwrap_or(sk)),
        _ => Some(sk),
    }
}

/// An MPTCP listener's effective backlog: its first subflow's, the TCP socket that listens
/// (the MPTCP socket's own `sk_max_ack_backlog` stays 0).
#[inline(always)]
fn mptcp_backlog(sk: u64) -> Option<u64> {
    read(read_ptr(sk, off!(mptcp_first))?, off!(sk_max_ack_backlog))
}

/// net.core.somaxconn of the socket's network namespace.
#[inline(always)]
pub fn somaxconn(sk: u64) -> Option<u32> {
    let net = read_ptr(sk, off!(skc_net))?;
    read(net, off!(net_somaxconn)).map(|v| v as u32)
}

/// The tgid of a `struct task_struct *`.
#[inline(always)]
pub fn task_tgid(task: u64) -> Option<u32> {
    read(task, off!(task_tgid)).map(|v| v as u32)
}

/// Whether the exiting `task` was its process's last live thread (`signal->live`, which
/// do_exit decrements before sched_process_exit); None when that cannot be read.
#[inline(always)]
pub fn group_dead(task: u64) -> Option<bool> {
    let signal = read_ptr(task, off!(task_signal))?;
    read(signal, off!(signal_live)).map(|live| live as i32 <= 0)
}

/// The task a program runs for, asked of the kernel once per run and handed to whatever
/// needs it: every helper call is a call and a return (dear on this hardware, with its
/// return-thunk mitigations), where the task's own fields are plain loads (`Typed`).
#[derive(Clone, Copy)]
pub struct Caller {
    pub pid_tgid: u64,
    task: Typed,
}

impl Caller {
    #[inline(always)]
    pub fn current() -> Caller {
        let task = Typed::current_task();
        // `bpf_get_current_pid_tgid` is these two fields; loaded, they save a call.
        let pid_tgid = match (task.scalar(off!(task_tgid)), task.scalar(off!(task_pid))) {
            (Some(tgid), Some(pid)) => tgid << 32 | pid,
            _ => bpf_get_current_pid_tgid(),
        };
        Caller { pid_tgid, task }
    }

    #[inline(always)]
    pub fn tgid(&self) -> u32 {
        (self.pid_tgid >> 32) as u32
    }

    #[inline(always)]
    pub fn tid(&self) -> u32 {
        self.pid_tgid as u32
    }

    /// uid and gid as `bpf_get_current_uid_gid` gives them (gid in the high half):
    /// `current->cred->{uid,gid}`, whose values are those of the initial user namespace,
    /// which is all that helper's translation does.
    #[inline(always)]
    pub fn uid_gid(&self) -> u64 {
        if let Some(cred) = self.task.ptr(off!(task_cred))
            && let Some(uid) = cred.scalar(off!(cred_uid))
            && let Some(gid) = cred.scalar(off!(cred_gid))
        {
            return gid << 32 | uid;
        }
        bpf_get_current_uid_gid()
    }

    /// The parent's tgid (for the audit record; 0 when unknown).
    #[inline(always)]
    pub fn ppid(&self) -> u32 {
        self.task
            .ptr(off!(task_real_parent))
            .and_then(|parent| parent.scalar(off!(task_tgid)))
            .unwrap_or(0) as u32
    }

    /// When the process started (its main thread's `start_boottime`; 0 when unknown).
    #[inline(always)]
    pub fn start_boottime(&self) -> u64 {
        self.task
            .ptr(off!(task_group_leader))
            .and_then(|leader| leader.scalar(off!(task_start_boottime)))
            .unwrap_or(0)
    }

    /// The process's name: its main thread's `comm`, as `ps -o comm` and /proc/PID/comm
    /// show it — not the calling thread's (a daemon's worker or allocator thread closing
    /// its listener is still that daemon, for the record and for `--comm`). Byte by byte
    /// (the verifier allows no wider load inside a `char[]`), where `bpf_get_current_comm`
    /// costs a call, a string copy and a memset. Zeros when unresolved; the agent reads up
    /// to the first NUL.
    #[inline(always)]
    pub fn comm(&self, comm: &mut [u8; TASK_COMM_LEN]) {
        let f = off!(task_comm);
        let task = self.task.ptr(off!(task_group_leader)).unwrap_or(self.task);
        if f.size as usize != TASK_COMM_LEN || task.0.is_null() {
            return;
        }
        let at = unsafe { task.0.add(f.offset as usize) };
        let mut i = 0;
        while i < TASK_COMM_LEN {
            // Volatile: LLVM would merge the byte loads into wider ones.
            comm[i] = unsafe { core::ptr::read_volatile(at.add(i)) };
            i += 1;
        }
    }

    /// `comm` as the `--comm` keys are: zeros after the NUL (older kernels left stale bytes
    /// there after a rename).
    #[inline(always)]
    pub fn comm_key(&self) -> [u8; TASK_COMM_LEN] {
        let mut comm = [0u8; TASK_COMM_LEN];
        self.comm(&mut comm);
        let mut ended = false;
        let mut i = 0;
        while i < TASK_COMM_LEN {
            ended |= comm[i] == 0;
            if ended {
                comm[i] = 0;
            }
            i += 1;
        }
        comm
    }

    /// `current->nsproxy->net_ns`.
    #[inline(always)]
    fn net(&self) -> Option<Typed> {
        self.task.ptr(off!(task_nsproxy))?.ptr(off!(nsproxy_net_ns))
    }

    /// Inode of the task's network namespace (`--netns` filtering at entry).
    #[inline(always)]
    pub fn netns(&self) -> Option<u32> {
        self.net()?.scalar(off!(net_ns_inum)).map(|v| v as u32)
    }

    /// Inode of the network namespace `net` (a `struct net *` read from a socket): the
    /// task's own, read with plain loads, when it is that one (nearly always), else read
    /// with the helper.
    #[inline(always)]
    pub fn netns_of(&self, net: u64) -> Option<u32> {
        if let Some(own) = self.net()
            && own.addr() == net
        {
            return own.scalar(off!(net_ns_inum)).map(|v| v as u32);
        }
        read(net, off!(net_ns_inum)).map(|v| v as u32)
    }

    /// `current->flags` (PF_*), None when unresolved.
    #[inline(always)]
    pub fn flags(&self) -> Option<u64> {
        self.task.scalar(off!(task_flags))
    }

    /// The user registers saved at syscall entry (`task_pt_regs(current)`).
    #[inline(always)]
    fn regs(&self) -> Typed {
        Typed(unsafe { bpf_task_pt_regs(self.task.0 as *mut _) } as *const u8)
    }

    /// The number of the syscall the task is in.
    #[inline(always)]
    pub fn syscall_nr(&self) -> Option<u64> {
        self.regs().scalar(off!(pt_regs_orig_ax))
    }

    /// Whether the task is in a 32-bit (ia32) syscall.
    #[inline(always)]
    pub fn in_compat_syscall(&self) -> bool {
        self.task
            .scalar(off!(task_ti_status))
            .is_some_and(|s| s & TS_COMPAT != 0)
    }

    /// The syscall the task is in.
    #[inline(always)]
    pub fn syscall(&self) -> Syscall {
        let Some(nr) = self.syscall_nr() else {
            return Syscall::Other;
        };
        if self.in_compat_syscall() {
            return match nr {
                NR_IA32_BIND => Syscall::Bind,
                NR_IA32_LISTEN => Syscall::Listen,
                NR_IA32_SETSOCKOPT => Syscall::Setsockopt,
                NR_IA32_SOCKETCALL => Syscall::Socketcall,
                NR_IO_URING_ENTER => Syscall::IoUringEnter,
                _ => Syscall::Other,
            };
        }
        match nr & !X32_SYSCALL_BIT {
            NR_BIND => Syscall::Bind,
            NR_LISTEN => Syscall::Listen,
            NR_SETSOCKOPT => Syscall::Setsockopt,
            NR_IO_URING_ENTER => Syscall::IoUringEnter,
            _ => Syscall::Other,
        }
    }

    /// `syscall_args` of an ia32 syscall (`bx`, `cx`, `dx`, `si`, `di`).
    #[inline(always)]
    pub fn syscall_args_ia32(&self) -> Option<[u64; 5]> {
        let regs = self.regs();
        Some([
            regs.scalar(off!(pt_regs_bx))?,
            regs.scalar(off!(pt_regs_cx))?,
            regs.scalar(off!(pt_regs_arg2))?,
            regs.scalar(off!(pt_regs_arg1))?,
            regs.scalar(off!(pt_regs_arg0))?,
        ])
    }

    /// The return value a syscall skipped at entry (seccomp) gives the caller: what the
    /// kernel put in `ax`.
    #[inline(always)]
    pub fn syscall_ret(&self) -> Option<i32> {
        self.regs()
            .scalar(off!(pt_regs_ax))
            .map(|v| v as i64 as i32)
    }

    /// The second argument of the syscall the task is in, as the caller passed it.
    #[inline(always)]
    pub fn syscall_arg1(&self) -> Option<u64> {
        self.regs().scalar(off!(pt_regs_arg1))
    }

    /// The first `n` (≤ 5) arguments of the syscall the task is in, from the registers
    /// saved at its entry (which the kernel leaves as they were): what a sys_exit
    /// tracepoint, which carries only the return value, needs to know about the call.
    /// (Written out rather than looped over an array: LLVM turns those into BPF
    /// memset/memcpy calls.)
    #[inline(always)]
    pub fn syscall_args(&self, n: usize) -> Option<[u64; 5]> {
        let regs = self.regs();
        let arg = |wanted: bool, f: Field| if wanted { regs.scalar(f) } else { Some(0) };
        Some([
            arg(0 < n, off!(pt_regs_arg0))?,
            arg(1 < n, off!(pt_regs_arg1))?,
            arg(2 < n, off!(pt_regs_arg2))?,
            arg(3 < n, off!(pt_regs_arg3))?,
            arg(4 < n, off!(pt_regs_arg4))?,
        ])
    }

    /// `files->fdt->fd[fd]->private_data->sk`: the socket behind a descriptor of the task,
    /// with its inode number (`socket_sk_ino`). Only called after the syscall accepted `fd`
    /// as a socket. From the descriptor array on the pointers are untyped to the verifier
    /// (`struct file **` is no struct pointer, `private_data` a `void *`): cast back to
    /// their types where the kernel can (no call), else read with the helper (three calls).
    #[inline(always)]
    pub fn sock_from_fd(&self, fd: i32) -> Option<(u64, u64)> {
        if fd < 0 {
            return None;
        }
        let fdt = self.task.ptr(off!(task_files))?.ptr(off!(files_fdt))?;
        if fd as u64 >= fdt.scalar(off!(fdt_max_fds))? {
            return None;
        }
        let fds = fdt.untyped_ptr(off!(fdt_fd))?;
        let slot = fds + fd as u64 * 8;
        // The slot read as `fd_array[0]` of a `files_struct` placed around it: a typed
        // `struct file *` without a helper call (`fd_array` itself only holds the first 64).
        let fd_array = off!(files_fd_array);
        if let Some(files) = Typed::cast(
            slot.wrapping_sub(fd_array.offset as u64),
            btf_id!(btf_files_struct),
        ) {
            return socket_sk_ino(files.ptr(fd_array)?.untyped_ptr(off!(file_private_data))?);
        }
        let file: u64 = unsafe { bpf_probe_read_kernel(slot as *const u64).ok()? };
        socket_sk_ino(read_ptr(file, off!(file_private_data))?)
    }
}

/// A kernel pointer whose BTF type the verifier knows: the current task
/// (`bpf_get_current_task_btf`), its saved registers, and struct pointers loaded from their
/// fields. Its fields are plain loads, which the verifier checks against the kernel's BTF
/// (the offsets are constants to it) and the JIT guards against faults — a few instructions
/// where `bpf_probe_read_kernel` is a helper call (~30 ns). A pointer to something other than
/// a struct loaded from it is a plain number to the verifier: read those with `read`.
#[derive(Clone, Copy)]
pub struct Typed(*const u8);

impl Typed {
    #[inline(always)]
    pub fn current_task() -> Typed {
        Typed(unsafe { bpf_get_current_task_btf() } as *const u8)
    }

    /// `addr` as a pointer to the kernel struct whose BTF id is `btf_id` (one of the
    /// offsets table's `btf_*`): None when this kernel has no cast (id 0) or `addr` is 0.
    /// Its loads are fault-guarded, but it is untrusted: good for reading, nothing else.
    #[inline(always)]
    pub fn cast(addr: u64, btf_id: u32) -> Option<Typed> {
        if btf_id == 0 || addr == 0 {
            return None;
        }
        Some(Typed(rdonly_cast(addr, btf_id)))
    }

    #[inline(always)]
    pub fn addr(self) -> u64 {
        self.0 as u64
    }

    /// An integer field (or bitfield).
    #[inline(always)]
    pub fn scalar(self, f: Field) -> Option<u64> {
        if self.0.is_null() {
            return None;
        }
        let at = unsafe { self.0.add(f.offset as usize) };
        unsafe { load_field(at, f) }
    }

    /// A pointer field to something other than a struct (`struct file **`): loaded, but a
    /// number to the verifier, to read through with the helper.
    #[inline(always)]
    pub fn untyped_ptr(self, f: Field) -> Option<u64> {
        if self.0.is_null() || f.size != 8 {
            return None;
        }
        match unsafe { *(self.0.add(f.offset as usize) as *const u64) } {
            0 => None,
            p => Some(p),
        }
    }

    /// A struct pointer field; None when unresolved or null. (No bitfield extraction: the
    /// verifier refuses shifts of a pointer, even by 0.)
    #[inline(always)]
    pub fn ptr(self, f: Field) -> Option<Typed> {
        if self.0.is_null() || f.size != 8 {
            return None;
        }
        let p = unsafe { *(self.0.add(f.offset as usize) as *const *const u8) };
        if p.is_null() { None } else { Some(Typed(p)) }
    }
}

/// `bpf_rdonly_cast(addr, btf_id)`, a kfunc: no Rust eBPF toolchain emits kfunc calls, so
/// the instruction is spelled out, with a placeholder for the kfunc's BTF id that the agent
/// replaces before loading (`KFUNC_CAST_PLACEHOLDER`). The verifier inlines the call into a
/// register move; what it changes is how it sees the result (a pointer to `btf_id`, which
/// must be a constant to it: the offsets table is read-only).
#[inline(always)]
fn rdonly_cast(addr: u64, btf_id: u32) -> *const u8 {
    let typed: *const u8;
    unsafe {
        core::arch::asm!(
            // call: BPF_JMP | BPF_CALL, src_reg BPF_PSEUDO_KFUNC_CALL, off 0, imm the id.
            ".byte 0x85, 0x20, 0, 0",
            ".4byte {id}",
            id = const KFUNC_CAST_PLACEHOLDER,
            inlateout("r1") addr => _,
            inlateout("r2") btf_id as u64 => _,
            lateout("r0") typed,
            lateout("r3") _,
            lateout("r4") _,
            lateout("r5") _,
            options(pure, nomem, nostack),
        );
    }
    typed
}

/// This CPU's `SOCK_SCRATCH`, claimed for one copy: its generation bumped, so that any
/// copy made into it after ours (by a program that took the CPU meanwhile) shows.
#[derive(Clone, Copy)]
pub struct Scratch {
    buf: *mut u8,
    generation: u64,
}

impl Scratch {
    #[inline(always)]
    fn claim() -> Option<Scratch> {
        let buf = SOCK_SCRATCH.get_ptr_mut(0)? as *mut u8;
        let at = unsafe { buf.add(SCRATCH_GEN_AT) } as *mut u64;
        let generation = unsafe { core::ptr::read_volatile(at) }.wrapping_add(1);
        unsafe { core::ptr::write_volatile(at, generation) };
        Some(Scratch { buf, generation })
    }

    /// Whether no copy replaced ours: asked after the last read of it (the empty asm keeps
    /// the compiler from moving those reads past the question).
    #[inline(always)]
    fn intact(&self) -> bool {
        unsafe { core::arch::asm!("", options(nostack, preserves_flags)) };
        let at = unsafe { self.buf.add(SCRATCH_GEN_AT) } as *const u64;
        unsafe { core::ptr::read_volatile(at) == self.generation }
    }
}

/// One `struct sock` to read fields of: where the kernel has `bpf_rdonly_cast`, the sock
/// itself as a typed pointer (plain loads, no copy); else its first `sock_span` bytes
/// copied with one helper call into per-CPU scratch, or, when the span is unknown or the
/// copy failed, the sock read field by field. Which of the first two is decided by the
/// offsets table, so a program verifies with one of them only (the verifier refuses one
/// load instruction serving two kinds of pointer). Programs on one CPU do not nest where a
/// copy is in use (bind, listen, setsockopt and a listener's state changes run in process
/// context).
pub struct SockView {
    sk: u64,
    /// The copy, or, where the kernel has the cast, the sock itself as a typed pointer (no
    /// copy needed); null = read from `sk`.
    copy: *const u8,
    /// The scratch the copy is in (`copy` non-null, no cast).
    scratch: Option<Scratch>,
}

impl SockView {
    /// The sock read field by field with the helper: what a view whose copy was replaced
    /// (`intact`) is read again with.
    #[inline(always)]
    pub fn direct(sk: u64) -> SockView {
        SockView {
            sk,
            copy: core::ptr::null(),
            scratch: None,
        }
    }

    /// Whether what was read from this view is the sock's: false when its copy was replaced
    /// before the last read (ask after it; then read again from `direct`).
    #[inline(always)]
    pub fn intact(&self) -> bool {
        match self.scratch {
            Some(s) if btf_id!(btf_sock) == 0 && !self.copy.is_null() => s.intact(),
            _ => true,
        }
    }

    #[inline(always)]
    pub fn load(sk: u64) -> SockView {
        let mut view = SockView::direct(sk);
        if let Some(typed) = Typed::cast(sk, btf_id!(btf_sock)) {
            view.copy = typed.0;
            return view;
        }
        let span = unsafe { core::ptr::read_volatile(&raw const OFFSETS.sock_span) } as u64;
        if sk == 0 || span == 0 || span > SOCK_SNAPSHOT as u64 {
            return view;
        }
        let Some(scratch) = Scratch::claim() else {
            return view;
        };
        let n = bounded(span, SOCK_SNAPSHOT as u64);
        let r = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                scratch.buf as *mut _,
                n,
                sk as *const _,
            )
        };
        if r == 0 {
            view.copy = scratch.buf as *const u8;
            view.scratch = Some(scratch);
        }
        view
    }

    /// The field's value; None when unresolved or unreadable.
    #[inline(always)]
    pub fn get(&self, f: Field) -> Option<u64> {
        if self.copy.is_null() {
            return read(self.sk, f);
        }
        if !f.is_known() {
            return None;
        }
        if btf_id!(btf_sock) != 0 {
            return Typed(self.copy).scalar(f);
        }
        // One load of the field's size (every field, and every bitfield's load unit, is
        // aligned to its size: offsets.rs). The mask keeps the verifier's view of the offset
        // inside the scratch value (longer than any span); the agent only sets a span that
        // holds every field.
        let at = unsafe { self.copy.add(f.offset as usize & (SOCK_SNAPSHOT - 1)) };
        unsafe { load_field(at, f) }
    }

    #[inline(always)]
    pub fn get_ptr(&self, f: Field) -> Option<u64> {
        match self.get(f)? {
            0 => None,
            p => Some(p),
        }
    }

    /// `4 * N` bytes of an array field (an address: `__be32`, `struct in6_addr`, both
    /// 4-byte aligned) of exactly that size, as 32-bit words in memory order.
    #[inline(always)]
    pub fn words<const N: usize>(&self, f: Field) -> Option<[u32; N]> {
        if !f.is_known() {
            return None;
        }
        if self.copy.is_null() {
            return unsafe {
                bpf_probe_read_kernel((self.sk + f.offset as u64) as *const [u32; N])
            }
            .ok();
        }
        let at = if btf_id!(btf_sock) != 0 {
            unsafe { self.copy.add(f.offset as usize) }
        } else {
            unsafe { self.copy.add(f.offset as usize & (SOCK_SNAPSHOT - 1)) }
        } as *const u32;
        let mut w = [0u32; N];
        let mut i = 0;
        while i < N {
            w[i] = unsafe { *at.add(i) };
            i += 1;
        }
        Some(w)
    }
}

/// Where a buffer a call names lives: the caller's memory (syscall arguments) or the
/// kernel's (what kernel functions are handed: their own copy of a sockaddr, a kernel
/// `sockptr_t`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mem {
    User,
    Kernel,
}

/// `bpf_probe_read_user` or `bpf_probe_read_kernel`, as `mem` says: 0 or -errno.
#[inline(always)]
pub fn probe_read(dst: *mut u8, n: u32, src: u64, mem: Mem) -> i64 {
    let (dst, src) = (dst as *mut _, src as *const _);
    unsafe {
        match mem {
            Mem::User => generated::bpf_probe_read_user(dst, n, src),
            Mem::Kernel => generated::bpf_probe_read_kernel(dst, n, src),
        }
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

/// `inet_sock.inet_sport` in host order (0 when unknown): a closing listener's port, which
/// the kernel may have released from `skc_num` by the time its state changes.
#[inline(always)]
pub fn inet_sport(sk: &SockView) -> u16 {
    sk.get(off!(inet_sport))
        .map_or(0, |p| u16::from_be(p as u16))
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
pub fn sock_key(caller: &Caller, sk: &SockView) -> SockKey {
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
        && let Some(inum) = caller.netns_of(net)
    {
        k.netns = inum;
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

/// Snapshot the fields of `struct sock` that decide how it listens. `ino`: the socket's
/// inode number when the caller already has it (0 = read it here).
#[inline(always)]
pub fn read_sock(caller: &Caller, sk: &SockView, ino: u64, st: &mut SockState) {
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
    if st.known & K_PROTOCOL != 0
        && st.protocol as u64 == IPPROTO_MPTCP
        && let Some(b) = mptcp_backlog(sk.sk)
    {
        st.max_ack_backlog = b as u32;
        st.known |= K_BACKLOG;
    }
    if let Some([a]) = sk.words::<1>(off!(skc_rcv_saddr)) {
        st.rcv_saddr = a.to_ne_bytes();
        st.known |= K_RCV_SADDR;
    }
    if let Some(a) = sk.words::<4>(off!(skc_v6_rcv_saddr)) {
        // Stored as the words were loaded, so the bytes land in memory order (aligned
        // stores: one each, where an unaligned one is four).
        const _: () = assert!(core::mem::offset_of!(SockState, v6_rcv_saddr) % 4 == 0);
        let dst = st.v6_rcv_saddr.as_mut_ptr() as *mut u32;
        let mut i = 0;
        while i < 4 {
            unsafe { *dst.add(i) = a[i] };
            i += 1;
        }
        st.known |= K_V6_RCV_SADDR;
    }
    if let Some(net) = sk.get_ptr(off!(skc_net))
        && let Some(inum) = caller.netns_of(net)
    {
        st.netns = inum;
        st.known |= K_NETNS;
    }
    // The inode number: the caller's, else the sock's own copy of it (6.16+, in the view:
    // no call), else through its socket.
    let ino = if ino != 0 {
        Some(ino)
    } else if let Some(ino) = sk.get(off!(sk_ino)).filter(|&i| i != 0) {
        Some(ino)
    } else if let Some(socket) = sk.get_ptr(off!(sk_socket)) {
        read(socket, off!(socket_ino))
    } else {
        None
    };
    if let Some(ino) = ino {
        st.ino = ino;
        st.known |= K_INO;
    }
}
