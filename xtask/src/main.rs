//! `cargo xtask …`: the project's own set-up, build, run and test commands.
//!
//! * `setup` — install the toolchain prerequisites and test tools, mount tracefs (idempotent);
//! * `build` — setup, then the release build of lsn-trace (prints the binary's path);
//! * `run [-- ARGS…]` — setup, build, then the live tracer as root (sudo -E when not root);
//! * `test [--no-vm|--vm-only] [-- CARGO-TEST-ARGS…]` — setup, build, every test as root,
//!   then in VMs on other kernels;
//! * `bench [--kernel 6.1|6.12|all]` — setup, build, the overhead benchmark (lsn-trace vs
//!   strace vs bpftrace), on the host or in VMs on other kernels.
//! * `dist` — setup, build, then the Debian package (target/dist/lsn-trace_VERSION_ARCH.deb).
//! * `image` — setup, build, then the OCI image localhost/lsn-trace:VERSION and :latest.
//! * `vm --kernel 6.1|6.12 [-- COMMAND…]` — run a command as root on another kernel (QEMU).

mod bench;
mod cmd;
mod dist;
mod image;
mod run;
mod setup;
mod test;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "lsn-trace's set-up, build, run and test commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install llvm-22-dev, bpf-linker (LLVM 22), nightly + rust-src and the test tools;
    /// mount tracefs. Idempotent.
    Setup,
    /// Setup, then `cargo build --release -p lsn-trace`; prints the binary's path.
    Build,
    /// Setup, build, then the Debian package (cargo-deb): binary, systemd unit, logrotate
    /// snippet, man pages, shell completions; prints its path (under target/dist/).
    Dist,
    /// Setup, build, then the OCI image localhost/lsn-trace:VERSION and :latest (podman,
    /// from scratch: the binary and its shared libraries; default command `audit`).
    Image,
    /// Setup, build, then run the live tracer as root (through `sudo -E` when not root).
    Run {
        /// Arguments for lsn-trace (after `--`, e.g. `cargo xtask run -- --json`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, build, then every test of the workspace as root (end-to-end tests against the
    /// running kernel), then the VM matrix.
    Test {
        /// Skip the test runs in VMs on other kernels.
        #[arg(long)]
        no_vm: bool,
        /// Only the test runs in VMs (skip the host's).
        #[arg(long, conflicts_with = "no_vm")]
        vm_only: bool,
        /// Extra `cargo test` arguments (after `--`; a second `--` passes the rest to the
        /// test harness).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Setup, build, then the overhead benchmark as root: a bind storm and a syscall-tax
    /// probe, untraced and under lsn-trace, strace and bpftrace (interleaved rounds);
    /// prints a table and writes it as JSON (target/bench/latest.json). With `--kernel`, in
    /// a QEMU VM on that kernel instead (target/bench/latest-KERNEL.json).
    Bench(bench::Args),
    /// Run COMMAND (default `uname -a`) as root in a QEMU VM booted on Debian's kernel of
    /// that series, chrooted into this machine's root file system (read-only over 9p; /tmp
    /// is a tmpfs; $LSN_VM_OUT is a writable folder shared with the host, target/vm/KERNEL).
    /// The exit status is the command's.
    Vm {
        /// Kernel series: 6.1 or 6.12 (the newest Debian package of it; cached in
        /// ~/.cache/lsn-trace/kernels).
        #[arg(long)]
        kernel: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    add_cargo_bin_to_path();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup => setup::setup().map(|()| 0),
        Cmd::Build => run::build().map(|()| 0),
        Cmd::Dist => dist::dist().map(|()| 0),
        Cmd::Image => image::image().map(|()| 0),
        Cmd::Run { args } => run::run_tracer(&args).map(|()| 0),
        Cmd::Test {
            no_vm,
            vm_only,
            args,
        } => test::test(no_vm, vm_only, &args),
        Cmd::Bench(args) => bench::bench(&args).map(|()| 0),
        Cmd::Vm { kernel, command } => vm::vm_command(&kernel, &command),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo install` puts bpf-linker in ~/.cargo/bin: make sure the builds we start find it
/// even when that directory is not on the caller's PATH.
fn add_cargo_bin_to_path() {
    let Some(dir) = cmd::cargo_bin_dir() else {
        return;
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|p| p == dir) {
        return;
    }
    let joined = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path)));
    if let Ok(joined) = joined {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("PATH", joined) };
    }
}
