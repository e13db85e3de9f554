//! What must hold before loading anything: privileges, a kernel new enough (BPF ring
//! buffer, BTF) and tracefs. Each failure says what is missing and how to fix it.
use std::path::Path;

use anyhow::{Result, bail};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// The programs read syscall numbers and arguments from x86_64's saved registers: elsewhere
/// they would report nothing, without a word.
pub fn check_arch() -> Result<()> {
    let arch = std::env::consts::ARCH;
    if arch != "x86_64" {
        bail!(
            "lsn-trace supports x86_64 only (this machine is {arch}): its programs read the \
             x86_64 syscall numbers and registers, and would report nothing here"
        );
    }
    Ok(())
}

pub fn check_privileges() -> Result<()> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let uid = unsafe { libc::geteuid() };
    bail!(
        "lsn-trace must load eBPF programs, which needs root (uid {uid} lacks CAP_BPF and \
         CAP_PERFMON, and CAP_SYS_ADMIN).\n  Run it as root:  sudo {}",
        std::env::args_os()
            .map(|a| crate::text::shell_quote(&crate::text::from_bytes(a.as_encoded_bytes())))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// aya finds tracepoint ids under tracefs; many systems do not mount it by default.
pub fn ensure_tracefs() -> Result<()> {
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(());
        }
    }
    let (src, target, fstype) = (c"nodev", c"/sys/kernel/tracing", c"tracefs");
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        log::info!("mounted tracefs at /sys/kernel/tracing");
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    bail!(
        "tracefs is not mounted and mounting it failed ({err}).\n  Mount it as root:  \
         mount -t tracefs nodev /sys/kernel/tracing"
    )
}

/// The BPF ring buffer map (BPF_MAP_TYPE_RINGBUF) the events travel through.
const RINGBUF_SINCE: (u32, u32) = (5, 8);
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// `5.10.0-28-amd64` → (5, 10).
fn major_minor(release: &str) -> Option<(u32, u32)> {
    let mut it = release.trim().split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Said plainly before anything fails obscurely: a kernel older than 5.8 (no BPF ring
/// buffer) or without BTF (no struct layout to read sockets by).
pub fn check_kernel() -> Result<()> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    if let Some(v) = major_minor(release)
        && v < RINGBUF_SINCE
    {
        bail!(
            "this kernel (Linux {release}) is too old: lsn-trace needs Linux {}.{} or newer, \
             for the BPF ring buffer its events travel through. Upgrade the kernel (every \
             distribution's current release has one).",
            RINGBUF_SINCE.0,
            RINGBUF_SINCE.1
        );
    }
    if !Path::new(VMLINUX_BTF).exists() {
        bail!(
            "this kernel (Linux {release}) has no BTF ({VMLINUX_BTF} does not exist): it was \
             built without CONFIG_DEBUG_INFO_BTF, and lsn-trace reads socket fields at offsets \
             it finds there. Use a kernel built with it (Debian 11+, Ubuntu 20.10+, Fedora \
             31+, RHEL 8.2+ ship one)."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(major_minor("5.10.0-28-amd64"), Some((5, 10)));
        assert_eq!(major_minor("6.18.44-fc-v1045\n"), Some((6, 18)));
        assert_eq!(major_minor("4.19.0"), Some((4, 19)));
        assert!(major_minor("4.19.0").unwrap() < RINGBUF_SINCE);
        assert!(major_minor("5.7.19").unwrap() < RINGBUF_SINCE);
        assert!(major_minor("5.8.0").unwrap() >= RINGBUF_SINCE);
        assert_eq!(major_minor("garbage"), None);
    }
}
