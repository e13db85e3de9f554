//! `cargo xtask vm --kernel 6.1|6.12 [-- COMMAND ARGS…]`: run a command as root on another
//! kernel, in a QEMU VM (software emulation: this machine's /dev/kvm cannot run stock
//! kernels), against the host's own files.
//!
//! * The kernel is Debian's newest `linux-image` of the series, fetched with
//!   `apt-get download`, unpacked with `dpkg-deb -x`; its vmlinuz and the modules 9p needs
//!   (decompressed, in dependency order) are kept in the cache ([`kernel::cache_dir`]), so
//!   later runs on the same machine skip all that.
//! * The initramfs (built per run: a few MB) holds busybox-static, those modules and an init
//!   script that loads them, mounts the host's `/` read-only over 9p, mounts the writable
//!   results share at its host path, mounts proc/sys/dev/tracefs/debugfs/bpffs and tmpfs on
//!   /tmp and /run, brings `lo` up, switches root to the host's and runs the command.
//! * The command's output and a marker line with its exit status come back on the serial
//!   console (QEMU's stdout), which is also saved as `console.log` in the results directory.

use std::env;
use std::fs;
use std::path::Path;

use anyhow::Result;

mod initramfs;
mod kernel;
mod qemu;

pub use kernel::{Kernel, SERIES, Series, kernel, series};
pub use qemu::{RunOptions, run_in_vm};

use crate::cmd;

/// `cargo xtask vm --kernel K [-- COMMAND…]`.
pub fn vm_command(kernel_name: &str, command: &[String]) -> Result<i32> {
    crate::setup::setup_vm()?;
    let s = series(kernel_name)?;
    let k = kernel(s)?;
    eprintln!("vm: kernel {} {}", k.package, k.version);
    let command: Vec<String> = if command.is_empty() {
        vec!["uname".into(), "-a".into()]
    } else {
        command.to_vec()
    };
    let results = cmd::target_dir().join("vm").join(s.name);
    let envs = guest_env(&results);
    let out = run_in_vm(
        &k,
        &command,
        &RunOptions {
            results: &results,
            cwd: env::current_dir()?,
            envs,
            echo: true,
            kernel_args: "",
            timeout: None,
            label: "",
        },
    )?;
    eprintln!(
        "vm: {} ({}) exited {} in {:.1}s; console log and the writable share: {}",
        s.name,
        k.package,
        out.code.map_or("without status".into(), |c| c.to_string()),
        out.elapsed.as_secs_f64(),
        results.display()
    );
    Ok(out.code.unwrap_or(125))
}

/// The environment of the guest command: the caller's PATH and toolchain locations,
/// LSN_VM_OUT naming the writable share.
pub fn guest_env(results: &Path) -> Vec<(String, String)> {
    let mut envs: Vec<(String, String)> = ["PATH", "CARGO_HOME", "RUSTUP_HOME", "TERM"]
        .iter()
        .filter_map(|k| env::var(k).ok().map(|v| ((*k).to_owned(), v)))
        .collect();
    envs.push(("HOME".into(), "/root".into()));
    envs.push((
        "LSN_VM_OUT".into(),
        fs::canonicalize(results)
            .unwrap_or_else(|_| results.to_path_buf())
            .to_string_lossy()
            .into_owned(),
    ));
    envs
}
