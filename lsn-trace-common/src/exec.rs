//! The exec capture (issue 18: short-lived processes' identity).
//!
//! A process that binds and exits before the agent reads /proc still said who it is when
//! it exec()ed: `sched_process_exec` sends one `ExecRecord` into the `EXECS` ring (not
//! `EVENTS`: the event layout and the replay files stay as they are), only when the agent
//! sets `CFG_EXEC` (audit), keyed by the process instance (pid, `start_boottime`).
use crate::Field;

/// `Config::flags`: attach the exec capture (audit only; the live trace does not pay).
pub const CFG_EXEC: u32 = 1 << 11;
/// Bytes of the executed file's path kept (its names, leaf first, each NUL-ended), in a
/// buffer twice as large (so that the verifier sees every write inside it); longer is not
/// kept: a cut path would name another file.
pub const EXEC_PATH_CAP: usize = 256;
/// Bytes of the new argv kept (`mm->arg_start..arg_end`, NUL-separated).
pub const EXEC_ARGS_CAP: usize = 512;
/// `ExecRecord::flags`: the path was read (`path_len` bytes) ...
pub const EXEC_PATH_READ: u16 = 1 << 0;
/// ... or it is longer than `EXEC_PATH_CAP` or deeper than the walk goes (not kept).
pub const EXEC_PATH_LONG: u16 = 1 << 1;
/// The argv was read (`args_len` bytes) ...
pub const EXEC_ARGS_READ: u16 = 1 << 2;
/// ... and it is longer than what was kept (`args_total` says how long).
pub const EXEC_ARGS_CUT: u16 = 1 << 3;
/// `COUNTERS` index: exec records the `EXECS` ring had no room for.
pub const CTR_EXEC_LOST: u32 = crate::N_COUNTERS;
/// `COUNTERS` entries with the exec capture's.
pub const N_COUNTERS_ALL: u32 = crate::N_COUNTERS + 1;

/// One exec: who the process became. Same clock and unit as `Event::start_boottime`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecRecord {
    /// CLOCK_MONOTONIC at the exec, as `Event::ts_ns`: an event takes the last exec of its
    /// process before it (a process may exec again after its bind).
    pub ts_ns: u64,
    pub start_boottime: u64,
    pub pid: u32,
    pub flags: u16,
    pub path_len: u16,
    pub args_len: u32,
    /// `arg_end - arg_start`: the whole argv's length.
    pub args_total: u32,
    /// The file /proc/PID/exe names (`mm->exe_file`): the names from it up to its mount
    /// namespace's root, leaf first, each ended by a NUL, crossing mounts as `d_path` does.
    pub path: [u8; 2 * EXEC_PATH_CAP],
    pub args: [u8; EXEC_ARGS_CAP],
}

/// One fork: a new process (not a thread) and the process instance it was forked from,
/// into the same `EXECS` ring (told from an `ExecRecord` by its size). A child that binds
/// without exec()ing runs its parent's executable with its parent's argv: the audit names
/// it by them when it is gone before /proc is read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkRecord {
    /// CLOCK_MONOTONIC at the fork, as `ExecRecord::ts_ns`.
    pub ts_ns: u64,
    /// The child's `start_boottime`, as `Event::start_boottime`: with `pid`, its instance.
    pub start_boottime: u64,
    /// The parent's (its process's group leader's).
    pub parent_start_boottime: u64,
    pub pid: u32,
    pub parent_pid: u32,
}

/// The fields the exec capture reads, resolved from BTF like `KernelOffsets` (the global
/// `EXEC_OFFSETS`): `task->mm`, its `exe_file` and argv bounds, and what a path walk from a
/// `struct file` to its root reads (`mount_mnt`: only the offset of `struct mount`'s
/// `struct vfsmount mnt`, the `vfsmount *` a path holds).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecOffsets {
    pub task_mm: Field,
    pub mm_arg_start: Field,
    pub mm_arg_end: Field,
    pub mm_exe_file: Field,
    pub file_path_mnt: Field,
    pub file_path_dentry: Field,
    pub dentry_parent: Field,
    pub dentry_name: Field,
    pub vfsmount_root: Field,
    pub mount_mnt: Field,
    pub mount_parent: Field,
    pub mount_mountpoint: Field,
}

impl ExecOffsets {
    pub const UNRESOLVED: Self = Self {
        task_mm: Field::NONE,
        mm_arg_start: Field::NONE,
        mm_arg_end: Field::NONE,
        mm_exe_file: Field::NONE,
        file_path_mnt: Field::NONE,
        file_path_dentry: Field::NONE,
        dentry_parent: Field::NONE,
        dentry_name: Field::NONE,
        vfsmount_root: Field::NONE,
        mount_mnt: Field::NONE,
        mount_parent: Field::NONE,
        mount_mountpoint: Field::NONE,
    };

    pub const fn fields(&self) -> [Field; 12] {
        [
            self.task_mm,
            self.mm_arg_start,
            self.mm_arg_end,
            self.mm_exe_file,
            self.file_path_mnt,
            self.file_path_dentry,
            self.dentry_parent,
            self.dentry_name,
            self.vfsmount_root,
            self.mount_mnt,
            self.mount_parent,
            self.mount_mountpoint,
        ]
    }
}
