//! The syscall a task is in: x86_64's numbers and the 32-bit ABIs'.

// x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
pub const NR_BIND: u64 = 49;
pub const NR_LISTEN: u64 = 50;
pub const NR_SETSOCKOPT: u64 = 54;
pub const NR_IO_URING_ENTER: u64 = 426;
// ia32 (arch/x86/entry/syscalls/syscall_32.tbl): the direct socket calls (4.3+) and
// socketcall(2), which multiplexes them all; io_uring_enter has the same number in both.
pub(super) const NR_IA32_SOCKETCALL: u64 = 102;
pub(super) const NR_IA32_BIND: u64 = 361;
pub(super) const NR_IA32_LISTEN: u64 = 363;
pub(super) const NR_IA32_SETSOCKOPT: u64 = 366;
/// x32 syscalls are x86_64's numbers with this bit (`__X32_SYSCALL_BIT`).
pub(super) const X32_SYSCALL_BIT: u64 = 0x4000_0000;
/// `thread_info.status`: the task is in a 32-bit syscall (arch/x86/include/asm/thread_info.h).
pub(super) const TS_COMPAT: u64 = 0x0002;

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
