//! Loads of kernel memory: a field of the offsets table read through a helper (`read`)
//! or, where the verifier knows the pointer's BTF type, as a plain load (`Typed`).
use aya_ebpf::helpers::{
    bpf_probe_read_kernel,
    generated::{self, bpf_get_current_task_btf},
};
use lsn_trace_common::*;

/// Load the field at `base + f.offset`; None when unresolved or unreadable.
#[inline(always)]
pub(super) fn read(base: u64, f: Field) -> Option<u64> {
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
pub(super) fn read_ptr(base: u64, f: Field) -> Option<u64> {
    match read(base, f)? {
        0 => None,
        p => Some(p),
    }
}

/// Field `f` loaded at `at` (its address: `base + offset`) with one load of its size, a
/// bitfield extracted. `at` must be readable for that size: a typed pointer the verifier
/// checks, or a copy in a map value.
#[inline(always)]
pub(super) unsafe fn load_field(at: *const u8, f: Field) -> Option<u64> {
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
pub(super) unsafe fn load8(base: *const u8, off: usize) -> u64 {
    let words = unsafe { base.add(off & !7) } as *const u64;
    let (lo, hi) = unsafe { (*words, *words.add(1)) };
    let bits = (off & 7) * 8;
    // `hi << (64 - bits)`, in two steps so that bits = 0 shifts it out rather than by 64.
    lo >> bits | (hi << 1) << (63 - bits)
}

/// A kernel pointer whose BTF type the verifier knows: the current task
/// (`bpf_get_current_task_btf`), its saved registers, and struct pointers loaded from their
/// fields. Its fields are plain loads, which the verifier checks against the kernel's BTF
/// (the offsets are constants to it) and the JIT guards against faults — a few instructions
/// where `bpf_probe_read_kernel` is a helper call (~30 ns). A pointer to something other than
/// a struct loaded from it is a plain number to the verifier: read those with `read`.
#[derive(Clone, Copy)]
pub struct Typed(pub(super) *const u8);

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
pub(super) fn rdonly_cast(addr: u64, btf_id: u32) -> *const u8 {
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
