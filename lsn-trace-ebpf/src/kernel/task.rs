//! The task a program runs for (`Caller`): its identity, credentials, namespace, the
//! syscall it is in and its arguments, its descriptors.
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid, generated::bpf_task_pt_regs,
};
use lsn_trace_common::*;

use super::{
    fields::{Typed, read, read_ptr},
    syscall::*,
};

/// The tgid of a `struct task_struct *`.
#[inline(always)]
pub fn task_tgid(task: u64) -> Option<u32> {
    read(task, off!(task_tgid)).map(|v| v as u32)
}

/// The `start_boottime` of a `struct task_struct *` (its own, not its group leader's).
#[inline(always)]
pub fn task_start_boottime(task: u64) -> Option<u64> {
    read(task, off!(task_start_boottime))
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
    pub(super) task: Typed,
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

    /// The effective uid (`current->cred->euid`), None when unresolved.
    #[inline(always)]
    pub fn euid(&self) -> Option<u32> {
        let cred = self.task.ptr(off!(task_cred))?;
        cred.scalar(off!(cred_euid)).map(|v| v as u32)
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
}
