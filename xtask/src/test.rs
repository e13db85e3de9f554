//! `cargo xtask test`: set-up, the release build of the agent, then every test of the
//! workspace as root (the end-to-end tests in `tests/` start target/release/lsn-trace, named
//! by LSN_TRACE_BIN), then — unless `--no-vm` — the same tests in VMs on other kernels.

use std::env;
use std::process::Command;

use anyhow::{Result, bail};

use crate::cmd::{self, exit_code, is_root, status, which};
use crate::run::build_lsn_trace;
use crate::setup::setup;

/// Default parallelism of the test harness (the end-to-end tests each start a tracer).
const TEST_THREADS: &str = "--test-threads=4";

/// Outcome of the test run: `Ok(code)`, 0 when everything passed.
pub fn test(no_vm: bool, extra: &[String]) -> Result<i32> {
    setup()?;
    let bin = build_lsn_trace()?;

    // `extra` is `[cargo test args] [-- harness args]`.
    let (cargo_args, harness_args) = match extra.iter().position(|a| a == "--") {
        Some(i) => (&extra[..i], &extra[i + 1..]),
        None => (extra, &[][..]),
    };
    let mut harness: Vec<String> = harness_args.to_vec();
    if !harness.iter().any(|a| a.starts_with("--test-threads")) {
        harness.push(TEST_THREADS.to_owned());
    }
    // lsn-trace-ebpf only builds for bpfel-unknown-none (lsn-trace's build.rs does that):
    // built for the host its `#![no_main]` binary does not link.
    let test_args = |cmd: &mut Command| {
        cmd.args([
            "test",
            "--workspace",
            "--exclude",
            "lsn-trace-ebpf",
            "--release",
        ])
        .args(cargo_args);
    };

    let root_dir = cmd::workspace_root();
    let bin = bin.to_string_lossy().into_owned();
    let mut cargo = if is_root() {
        let mut c = Command::new("cargo");
        c.env("LSN_TRACE_BIN", &bin);
        c
    } else {
        // Compile as ourselves, so target/ and ~/.cargo stay ours; then only run as root.
        let mut compile = Command::new("cargo");
        compile.current_dir(&root_dir);
        test_args(&mut compile);
        compile.arg("--no-run");
        let st = status(&mut compile)?;
        if !st.success() {
            return Ok(exit_code(st));
        }
        if which("sudo").is_none() {
            bail!(
                "the end-to-end tests need root and sudo is not installed: run `cargo xtask test` as root"
            );
        }
        // sudo resets PATH and may reset HOME: hand the toolchain's locations over explicitly.
        let mut c = Command::new("sudo");
        c.arg("env");
        for var in [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "CARGO_TARGET_DIR",
        ] {
            if let Some(val) = env::var_os(var) {
                c.arg(format!("{var}={}", val.to_string_lossy()));
            }
        }
        c.arg(format!("LSN_TRACE_BIN={bin}")).arg("cargo");
        c
    };
    cargo.current_dir(&root_dir);
    test_args(&mut cargo);
    cargo.arg("--").args(&harness);
    // cargo test's own output (its `test result:` summary lines) goes through untouched.
    let st = status(&mut cargo)?;
    if !st.success() {
        eprintln!("xtask test: local tests failed ({st})");
        return Ok(exit_code(st));
    }

    if !no_vm {
        vm_matrix()?;
    }
    Ok(0)
}

/// HOOK — the same test suite in QEMU VMs on other kernels (Debian 6.1 and 6.12, where
/// kprobes and fentry work, so the other backends are exercised). Not implemented yet: it
/// runs nothing and claims nothing.
fn vm_matrix() -> Result<()> {
    eprintln!("vm: not yet implemented");
    Ok(())
}
