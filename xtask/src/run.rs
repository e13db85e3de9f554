//! `cargo xtask build` and `cargo xtask run`: set-up, the release build of the agent (the
//! eBPF object is built by its build.rs and embedded), then the live tracer as root.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, display, is_root, run, which};
use crate::setup::setup;

/// `cargo build --release -p lsn-trace`; returns the binary's path.
pub fn build_lsn_trace() -> Result<PathBuf> {
    let mut cargo = Command::new("cargo");
    cargo
        .current_dir(cmd::workspace_root())
        .args(["build", "--release", "-p", "lsn-trace"]);
    run(&mut cargo)?;
    let bin = cmd::lsn_trace_bin();
    if !bin.is_file() {
        bail!(
            "`{}` succeeded but {} does not exist",
            display(&cargo),
            bin.display()
        );
    }
    Ok(bin)
}

pub fn build() -> Result<()> {
    setup()?;
    let bin = build_lsn_trace()?;
    println!("{}", bin.display());
    Ok(())
}

/// Replace this process with the tracer (through `sudo -E` when not root), so its exit
/// status, Ctrl-C and SIGTERM are the tracer's own.
pub fn run_tracer(args: &[String]) -> Result<()> {
    setup()?;
    let bin = build_lsn_trace()?;
    let mut cmd = if is_root() {
        Command::new(&bin)
    } else {
        if which("sudo").is_none() {
            bail!("lsn-trace needs root and sudo is not installed: run `cargo xtask run` as root");
        }
        let mut sudo = Command::new("sudo");
        sudo.arg("-E").arg(&bin);
        sudo
    };
    cmd.args(args);
    eprintln!("$ {}", display(&cmd));
    let err = cmd.exec();
    Err(err).with_context(|| format!("could not run `{}`", display(&cmd)))
}
