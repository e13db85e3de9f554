//! Asking the kernel cheaply whether a backend can load at all, before loading the whole
//! eBPF object for it (each load has aya parse the kernel's BTF again: tens of ms of the
//! time to the attach line). As libbpf-tools' solisten does: load the smallest program of
//! that type and see.
use std::os::fd::{FromRawFd as _, OwnedFd};

use crate::errno;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_FENTRY: u32 = 24;

/// `union bpf_attr` as BPF_PROG_LOAD reads it, up to `attach_btf_obj_fd` (5.11), laid out
/// as include/uapi/linux/bpf.h has it; later fields stay zero.
#[repr(C, align(8))]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    _pad: u32,
}

/// Whether an fentry program on vmlinux function `func_id` (a BTF type id) loads: Ok, or
/// the reason in the words the attach line uses ("BPF_PROG_LOAD refused (EPERM)").
pub fn fentry(func_id: u32) -> Result<(), String> {
    if func_id == 0 {
        return Err("inet_bind not in the kernel's BTF".into());
    }
    // r0 = 0; exit
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    prog_load(
        ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_TRACING,
            expected_attach_type: BPF_TRACE_FENTRY,
            attach_btf_id: func_id,
            ..Default::default()
        },
        &insns,
    )
}

/// Whether a program may call the kfunc `bpf_rdonly_cast` (BTF id `kfunc`) to cast to the
/// struct `to` (a BTF type id): the kernel has it, but kfunc calls also need the JIT
/// (`net.core.bpf_jit_enable=0` runs the interpreter, which cannot make them).
pub fn rdonly_cast(kfunc: u32, to: u32) -> Result<(), String> {
    let insns: [u64; 5] = [
        0x0000_0000_0000_01b7,                    // r1 = 0
        (to as u64) << 32 | 0x02b7,               // r2 = to
        lsn_trace_common::kfunc_call_insn(kfunc), // call kfunc
        0x0000_0000_0000_00b7,                    // r0 = 0
        0x0000_0000_0000_0095,                    // exit
    ];
    prog_load(
        ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_TRACEPOINT,
            ..Default::default()
        },
        &insns,
    )
}

/// Load `insns` as `attr` says (a GPL program), and unload it: Ok, or why it did not load.
fn prog_load(attr: ProgLoadAttr, insns: &[u64]) -> Result<(), String> {
    let license = c"GPL";
    let attr = ProgLoadAttr {
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..attr
    };
    // SAFETY: attr and the memory it points to outlive the call; the size is attr's own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>() as u32,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(format!(
            "BPF_PROG_LOAD refused ({})",
            errno::name(e).unwrap_or("?")
        ));
    }
    // SAFETY: a new descriptor the kernel just gave us; closing it unloads the probe.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe agrees with the kernel: on this one (6.18) `bpf_rdonly_cast` exists and
    /// loads, and a kernel function that is no kfunc is refused.
    #[test]
    fn rdonly_cast_probe() {
        let Some(btf) = crate::btf::tests::host_btf() else {
            return;
        };
        let Some(kfunc) = btf.func_id("bpf_rdonly_cast") else {
            eprintln!("skipped: this kernel has no bpf_rdonly_cast");
            return;
        };
        let sock = btf.composite("sock").unwrap();
        assert_eq!(rdonly_cast(kfunc, sock), Ok(()));
        let not_kfunc = btf.func_id("inet_bind").unwrap();
        assert_eq!(
            rdonly_cast(not_kfunc, sock),
            Err("BPF_PROG_LOAD refused (EACCES)".into())
        );
    }

    /// The attr's layout is the uapi one (offsets from include/uapi/linux/bpf.h).
    #[test]
    fn prog_load_attr_layout() {
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, func_info), 80);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, line_info), 96);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, attach_btf_id), 108);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, attach_btf_obj_fd), 112);
    }
}
