//! Process ancestry for `-- CMD` and `-p PID -f`: a child joins FOLLOW in the fork itself,
//! before it runs, so no bind of a double-forking daemon's start-up is missed and nothing
//! polls /proc. Raw tracepoints hand over the task pointers whatever the kernel's
//! tracepoint record layout (sched_process_fork's changed across versions).
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use lsn_trace_common::{CFG_TRACK, FOLLOW_EXITED, FOLLOW_TREE};

use crate::{
    kernel::{group_dead, task_tgid},
    maps::{FOLLOW, config},
};

/// TP_PROTO(struct task_struct *parent, struct task_struct *child), run by the parent.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    if config().flags & CFG_TRACK == 0 {
        return 0;
    }
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    match unsafe { FOLLOW.get(parent) } {
        Some(&v) if v & FOLLOW_TREE != 0 => {}
        _ => return 0,
    }
    let child: u64 = ctx.arg(1);
    if let Some(tgid) = task_tgid(child)
        && tgid != parent
    {
        // A full map only means this child goes unfollowed; the agent sizes it generously.
        let _ = FOLLOW.insert(tgid, FOLLOW_TREE, 0);
    }
    0
}

/// Run by the exiting task: the process is gone when its last thread exits — not when its
/// main thread does (pthread_exit; another thread's execve kills it and takes its pid, and
/// the process goes on). It is only marked here, because its descriptors (listeners) close
/// later in the same exit and those closes belong to its trace; the agent removes marked
/// entries. Where the live-thread count cannot be read, the main thread's exit is taken.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    if config().flags & CFG_TRACK == 0 {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let task = unsafe { bpf_get_current_task() };
    let exited = group_dead(task).unwrap_or(pid_tgid as u32 == tgid);
    if exited && let Some(v) = FOLLOW.get_ptr_mut(tgid) {
        unsafe { *v |= FOLLOW_EXITED };
    }
    0
}
