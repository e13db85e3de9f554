//! `cargo xtask setup`: install, idempotently, everything building and testing lsn-trace
//! needs on a fresh Debian machine, printing one line per step.
//!
//! * apt: llvm-22-dev (bpf-linker links against LLVM 22, the LLVM of rustc stable and of the
//!   nightly), and the end-to-end tests' tools: strace, iproute2 (`ip`), python3 (with python3-seccomp), and the
//!   real daemons they run under lsn-trace: nginx-light, redis-server, memcached,
//!   dnsmasq-base; net-tools, lsof and netbase (/etc/services), whose output `explain`
//!   reads; prometheus (scrapes `audit --metrics` in the tests); podman, runc and
//!   busybox-static, containerd (real containers in the tests); man-db (package tests);
//! * the nightly toolchain and its rust-src (the eBPF crate builds with build-std=core);
//! * bpf-linker built against LLVM 22; cargo-deb (`cargo xtask dist`); kubernetes-validate
//!   (pip: the DaemonSet manifest test);
//! * tracefs mounted at /sys/kernel/tracing (aya reads tracepoint ids there).

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, as_root, capture, probe, run, which};

const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";
/// The bpf-linker release verified with llvm-22 (DESIGN.md, "Toolchain recipe"); pinned so a
/// fresh machine gets the same one rather than a future release that may drop LLVM 22.
const BPF_LINKER_VERSION: &str = "0.13.0";
const TRACEFS: &str = "/sys/kernel/tracing";

/// An apt package, and the program whose presence on PATH is enough to skip it.
pub struct AptPackage {
    pub name: &'static str,
    pub program: Option<&'static str>,
    pub why: &'static str,
}

const APT_PACKAGES: &[AptPackage] = &[
    AptPackage {
        name: "llvm-22-dev",
        program: None,
        why: "bpf-linker links against it",
    },
    AptPackage {
        name: "strace",
        program: Some("strace"),
        why: "end-to-end tests",
    },
    AptPackage {
        name: "iproute2",
        program: Some("ip"),
        why: "end-to-end tests",
    },
    AptPackage {
        name: "python3",
        program: Some("python3"),
        why: "end-to-end tests",
    },
    AptPackage {
        name: "systemd",
        program: Some("systemd-analyze"),
        why: "end-to-end tests (the audit unit is checked with systemd-analyze verify)",
    },
    AptPackage {
        name: "python3-seccomp",
        program: None,
        why: "end-to-end tests (the audit unit's SystemCallFilter is loaded with libseccomp)",
    },
    AptPackage {
        name: "nginx-light",
        program: Some("nginx"),
        why: "end-to-end tests with real daemons (tests/tests/daemons.rs)",
    },
    AptPackage {
        name: "redis-server",
        program: Some("redis-server"),
        why: "end-to-end tests with real daemons (tests/tests/daemons.rs)",
    },
    AptPackage {
        name: "memcached",
        program: Some("memcached"),
        why: "end-to-end tests with real daemons (tests/tests/daemons.rs)",
    },
    AptPackage {
        name: "dnsmasq-base",
        program: Some("dnsmasq"),
        why: "end-to-end tests with real daemons (tests/tests/daemons.rs)",
    },
    AptPackage {
        name: "prometheus",
        program: Some("prometheus"),
        why: "end-to-end tests: a real Prometheus scrapes `audit --metrics` (tests/tests/metrics.rs)",
    },
    AptPackage {
        name: "podman",
        program: Some("podman"),
        why: "end-to-end tests: real containers (tests/tests/containers.rs)",
    },
    AptPackage {
        name: "runc",
        program: Some("runc"),
        why: "podman's runtime here (crun refuses this host's hybrid cgroups)",
    },
    AptPackage {
        name: "busybox-static",
        program: None,
        why: "the test containers' image (a static busybox, imported from a tarball)",
    },
    AptPackage {
        name: "containerd",
        program: Some("ctr"),
        why: "end-to-end tests: a container with a pod's CRI annotations in real containerd",
    },
    AptPackage {
        name: "man-db",
        program: Some("man"),
        why: "package tests: the installed man pages render (tests/tests/package.rs)",
    },
    AptPackage {
        name: "net-tools",
        program: Some("netstat"),
        why: "explain tests read real `netstat -tulpn` output (tests/tests/explain.rs)",
    },
    AptPackage {
        name: "lsof",
        program: Some("lsof"),
        why: "explain tests read real `lsof -i` output (tests/tests/explain.rs)",
    },
    AptPackage {
        name: "netbase",
        program: None,
        why: "/etc/services: explain tests read service names as ss, netstat and lsof print them",
    },
    AptPackage {
        name: "gcc-multilib",
        program: None,
        why: "end-to-end tests build a 32-bit program (gcc -m32 -static, tests/tests/paths.rs)",
    },
    AptPackage {
        name: "bpftool",
        program: None,
        why: "BTF resolver tests compare offsets with `bpftool btf dump`",
    },
];

/// What the VM runner (`cargo xtask vm`, the VM matrix of `cargo xtask test`) needs.
const VM_APT_PACKAGES: &[AptPackage] = &[
    AptPackage {
        name: "qemu-system-x86",
        program: Some("qemu-system-x86_64"),
        why: "VM runs on other kernels",
    },
    AptPackage {
        name: "busybox-static",
        program: None,
        why: "the VMs' initramfs",
    },
    AptPackage {
        name: "xz-utils",
        program: Some("xz"),
        why: "decompresses the VM kernels' modules",
    },
];

pub fn setup() -> Result<()> {
    apt_packages()?;
    nightly()?;
    rust_src()?;
    bpf_linker()?;
    cargo_deb()?;
    kubernetes_validate()?;
    tracefs()?;
    eprintln!("setup: done");
    Ok(())
}

fn step(msg: impl AsRef<str>) {
    eprintln!("setup: {}", msg.as_ref());
}

fn dpkg_installed(pkg: &str) -> bool {
    capture(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.trim_end().ends_with(" installed"))
}

fn apt_packages() -> Result<()> {
    apt_install(APT_PACKAGES)
}

/// The packages the VM runner needs (on top of [`setup`]'s).
pub fn setup_vm() -> Result<()> {
    apt_install(VM_APT_PACKAGES)
}

/// Install, through apt, those of `packages` that are absent (one line each).
pub fn apt_install(packages: &[AptPackage]) -> Result<()> {
    let mut missing = Vec::new();
    for p in packages {
        let present = p.program.is_some_and(|prog| which(prog).is_some())
            || dpkg_installed(p.name)
            // Not a Debian system: llvm-22's llvm-config is what bpf-linker's build looks for.
            || (p.name == "llvm-22-dev" && Path::new(LLVM_BIN).join("llvm-config").is_file());
        if present {
            step(format!("{} already installed", p.name));
        } else {
            step(format!("installing {} (apt; {})...", p.name, p.why));
            missing.push(p.name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if which("apt-get").is_none() {
        bail!(
            "apt-get not found: install {} with this system's package manager",
            missing.join(" ")
        );
    }
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    run(as_root("apt-get", &env)?.arg("update"))?;
    run(as_root("apt-get", &env)?
        // Other users of this machine may be running apt: wait for the lock.
        .args(["-o", "DPkg::Lock::Timeout=600"])
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing))
}

fn nightly() -> Result<()> {
    let have = capture(Command::new("rustup").args(["toolchain", "list"]))
        .context("`rustup toolchain list` failed: is rustup installed (https://rustup.rs)?")?
        .lines()
        .any(|l| l == "nightly" || l.starts_with("nightly-") || l.starts_with("nightly "));
    if have {
        step("nightly toolchain already installed");
        return Ok(());
    }
    step("installing the nightly toolchain (rustup; the eBPF crate builds with it)...");
    run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))
}

fn rust_src() -> Result<()> {
    let installed = capture(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    if installed
        .lines()
        .any(|l| l == "rust-src" || l.starts_with("rust-src-"))
    {
        step("rust-src (nightly) already installed");
        return Ok(());
    }
    step("installing rust-src for nightly (rustup; build-std=core for the eBPF target)...");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// Whether an installed bpf-linker runs, and — when it links LLVM dynamically — against
/// LLVM 22.
fn bpf_linker_ok() -> Result<bool, String> {
    if !probe(Command::new("bpf-linker").arg("--version")) {
        return Ok(false);
    }
    let Some(path) = which("bpf-linker") else {
        return Ok(true);
    };
    let Some(libs) = capture(Command::new("ldd").arg(&path)) else {
        return Ok(true);
    };
    match libs.lines().find(|l| l.contains("libLLVM")) {
        Some(l) if !l.contains("libLLVM.so.22") && !l.contains("libLLVM-22") => {
            Err(l.split_whitespace().next().unwrap_or(l).to_owned())
        }
        _ => Ok(true),
    }
}

fn bpf_linker() -> Result<()> {
    let force = match bpf_linker_ok() {
        Ok(true) => {
            step("bpf-linker already installed");
            return Ok(());
        }
        Ok(false) => {
            step(format!(
                "installing bpf-linker {BPF_LINKER_VERSION} for LLVM 22 (cargo install; a few minutes)..."
            ));
            false
        }
        Err(lib) => {
            step(format!(
                "bpf-linker is linked against {lib}, not LLVM 22: reinstalling it (cargo install; a few minutes)..."
            ));
            true
        }
    };
    let path = std::env::var("PATH").unwrap_or_default();
    let mut cmd = Command::new("cargo");
    cmd.env("PATH", format!("{LLVM_BIN}:{path}")).args([
        "install",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--no-default-features",
        "--features",
        "llvm-22",
    ]);
    if force {
        cmd.arg("--force");
    }
    run(&mut cmd)?;
    if !probe(Command::new("bpf-linker").arg("--version")) {
        let dir = cmd::cargo_bin_dir().map(|d| d.display().to_string());
        bail!(
            "bpf-linker was installed but does not run from PATH: add {} to PATH",
            dir.as_deref().unwrap_or("~/.cargo/bin")
        );
    }
    Ok(())
}

/// cargo-deb, for `cargo xtask dist` and the package tests (tests/tests/package.rs).
fn cargo_deb() -> Result<()> {
    if probe(Command::new("cargo").args(["deb", "--version"])) {
        step("cargo-deb already installed");
        return Ok(());
    }
    step(
        "installing cargo-deb (cargo install --locked; builds the Debian package, a few minutes)...",
    );
    run(Command::new("cargo").args(["install", "cargo-deb", "--locked"]))
}

/// kubernetes-validate (PyPI): the tests validate deploy/kubernetes/ against the current
/// Kubernetes release's schemas.
fn kubernetes_validate() -> Result<()> {
    if probe(Command::new("kubernetes-validate").arg("--version")) {
        step("kubernetes-validate already installed");
        return Ok(());
    }
    step("installing kubernetes-validate (pip; the DaemonSet manifest test)...");
    let pip = |extra: &[&str]| {
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg("kubernetes-validate")
            .status()
            .is_ok_and(|s| s.success())
    };
    // Debian's own python3 refuses to install beside its packages unless told to.
    if !(pip(&[]) || pip(&["--break-system-packages"])) {
        bail!("`python3 -m pip install kubernetes-validate` failed");
    }
    if !probe(Command::new("kubernetes-validate").arg("--version")) {
        bail!("kubernetes-validate was installed but does not run from PATH");
    }
    Ok(())
}

/// Whether a tracefs is mounted at /sys/kernel/tracing (from /proc/self/mountinfo:
/// field 5 is the mount point, the file system type follows the ` - ` separator).
fn tracefs_mounted() -> bool {
    fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| tracefs_in(&info))
}

fn tracefs_in(mountinfo: &str) -> bool {
    mountinfo.lines().any(|l| {
        let Some((left, right)) = l.split_once(" - ") else {
            return false;
        };
        left.split(' ').nth(4) == Some(TRACEFS) && right.split(' ').next() == Some("tracefs")
    })
}

fn tracefs() -> Result<()> {
    if tracefs_mounted() {
        step(format!("tracefs already mounted at {TRACEFS}"));
        return Ok(());
    }
    step(format!(
        "mounting tracefs at {TRACEFS} (aya reads tracepoint ids there)..."
    ));
    run(as_root("mount", &[])?.args(["-t", "tracefs", "nodev", TRACEFS]))
}

#[cfg(test)]
mod tests {
    use super::tracefs_in;

    #[test]
    fn finds_tracefs_in_mountinfo() {
        let sysfs = "22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n";
        let tracefs = "40 22 0:12 / /sys/kernel/tracing rw,relatime shared:18 - tracefs nodev rw\n";
        let debugfs = "41 22 0:7 / /sys/kernel/tracing rw,relatime - debugfs debugfs rw\n";
        assert!(tracefs_in(&format!("{sysfs}{tracefs}")));
        assert!(!tracefs_in(sysfs));
        assert!(!tracefs_in(debugfs));
    }
}
