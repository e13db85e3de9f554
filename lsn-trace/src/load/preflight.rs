//! What must hold before loading anything: privileges and tracefs. Each failure says
//! what is missing and how to fix it.
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
        std::env::args().collect::<Vec<_>>().join(" ")
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
