//! `cargo xtask test`: set-up, the release build of the agent, then every test of the
//! workspace as root (the end-to-end tests in `tests/` start target/release/lsn-trace, named
//! by LSN_TRACE_BIN), then — unless `--no-vm` — the same tests in VMs on other kernels.

use std::env;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, exit_code, is_root, status, which};
use crate::run::build_lsn_trace;
use crate::setup::{setup, setup_vm};
use crate::vm;

/// Default parallelism of the test harness (the end-to-end tests each start a tracer).
const TEST_THREADS: &str = "--test-threads=4";

/// Outcome of the test run: `Ok(code)`, 0 when everything passed.
pub fn test(no_vm: bool, vm_only: bool, extra: &[String]) -> Result<i32> {
    setup()?;
    if !no_vm {
        setup_vm()?;
    }
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
    if !vm_only {
        // The package and the image the package and image tests install and run
        // (tests/tests/package.rs, image.rs); the image is rebuilt only when it changed.
        let deb = crate::dist::package(&bin, true)?;
        let image = crate::image::build(&bin)?;
        let bin = bin.to_string_lossy();
        let envs = [
            ("LSN_TRACE_BIN", bin.as_ref()),
            ("LSN_TRACE_DEB", &deb.to_string_lossy()),
            ("LSN_TRACE_IMAGE", &image),
        ];
        let code = host_tests(&envs, &test_args, &harness)?;
        if code != 0 {
            return Ok(code);
        }
    }

    let bin = bin.to_string_lossy().into_owned();
    if !no_vm {
        let mut compile = Command::new("cargo");
        compile.current_dir(&root_dir);
        test_args(&mut compile);
        compile.args(["--no-run", "--message-format=json"]);
        let tests = e2e_test_binaries(&mut compile)?;
        let harness: Vec<String> = harness_args.to_vec();
        if !vm_matrix(&bin, &tests, &harness)? {
            return Ok(1);
        }
    }
    Ok(0)
}

/// Every test of the workspace on the host, as root; the exit code (0: all passed).
fn host_tests(
    envs: &[(&str, &str)],
    test_args: &dyn Fn(&mut Command),
    harness: &[String],
) -> Result<i32> {
    let root_dir = cmd::workspace_root();
    let mut cargo = if is_root() {
        let mut c = Command::new("cargo");
        c.envs(envs.iter().copied());
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
        for (var, val) in envs {
            c.arg(format!("{var}={val}"));
        }
        c.arg("cargo");
        c
    };
    cargo.current_dir(&root_dir);
    test_args(&mut cargo);
    cargo.arg("--").args(harness);
    // cargo test's own output (its `test result:` summary lines) goes through untouched.
    let host_start = Instant::now();
    let st = status(&mut cargo)?;
    let host_time = host_start.elapsed();
    if !st.success() {
        eprintln!("xtask test: local tests failed ({st})");
        return Ok(exit_code(st));
    }
    eprintln!(
        "xtask test: host tests passed in {:.0}s",
        host_time.as_secs_f64()
    );

    Ok(0)
}

/// Backends the VM matrix runs the end-to-end tests with, on every kernel of
/// [`vm::SERIES`], in one boot (each is passed to the harness as LSN_TRACE_BACKEND, which
/// makes it start `lsn-trace --backend NAME`).
/// Debian's kernels allow all three (the host only `tracepoint`, which the host run covers).
const VM_BACKENDS: &[&str] = &["fentry", "kprobe", "tracepoint"];

/// One more boot per kernel: the kernel preemptible (`preempt=full`, as PREEMPT kernels
/// are; Debian's default is voluntary), with the fentry backend, whose programs then can
/// lose the CPU mid-run, for the test binary that checks nothing goes missing silently.
const VM_PREEMPTIBLE: VmBoot = VmBoot {
    backends: &["fentry"],
    kernel_args: "preempt=full",
    only: Some("lost"),
};

/// Test binaries the VM matrix leaves out: they test what is built around the events
/// (metrics scraped by a real Prometheus, containers, the package, the image), which every backend feeds
/// alike, and under software emulation their servers would cost minutes per boot. And
/// `audit_storm`: wall-clock bounds on the agent's reader under a storm (records on disk
/// within a second, SIGTERM acting within one), which no backend changes and an agent
/// emulated 5–20× slower cannot meet. And what never asks the kernel for events of its own
/// (`explain` reads addresses; `report` reads audit logs, the audit tests cover writing
/// them on every backend).
const HOST_ONLY: &[&str] = &[
    "metrics",
    "containers",
    "package",
    "image",
    "audit_storm",
    "explain",
    "report",
];

/// A VM boot of the matrix: the backends it runs the tests with, one after the other (a
/// boot is shared: booting costs 10–15 s of emulation each), extra kernel arguments, which
/// test binary (all when None).
#[derive(Clone, Copy)]
struct VmBoot {
    backends: &'static [&'static str],
    kernel_args: &'static str,
    only: Option<&'static str>,
}

impl VmBoot {
    /// The name of `backend`'s row for this boot.
    fn name(&self, backend: &str) -> String {
        match self.kernel_args {
            "" => backend.to_owned(),
            args => format!("{backend} {args}"),
        }
    }
}

/// Test threads per test binary in a VM (2 vCPUs under software emulation), unless the
/// harness arguments say otherwise.
const VM_TEST_THREADS: &str = "--test-threads=2";

/// A boot of the matrix may run this long per backend it runs, plus the boot itself, before
/// it is killed: one backend's binaries take ~9 minutes under emulation on an idle 2-CPU
/// host and twice that on a busy one, so one limit for the whole boot (the VM's default,
/// 30 min) killed healthy three-backend boots. A hang is caught sooner, per binary
/// (`VM_BINARY_TIMEOUT`).
const VM_BACKEND_BUDGET: Duration = Duration::from_secs(20 * 60);
const VM_BOOT_BASE: Duration = Duration::from_secs(5 * 60);
/// One test binary in a guest (attach, the slowest, ~3 minutes).
const VM_BINARY_TIMEOUT: &str = "900";

/// The end-to-end test executables (package lsn-trace-tests, kind `test`) that `compile`
/// (`cargo test … --no-run --message-format=json`, the same arguments as the host run, so
/// nothing is rebuilt) reports.
fn e2e_test_binaries(compile: &mut Command) -> Result<Vec<PathBuf>> {
    eprintln!("$ {}", cmd::display(compile));
    let out = compile
        .stderr(Stdio::inherit())
        .output()
        .context("could not run cargo test --no-run")?;
    if !out.status.success() {
        bail!("`{}` failed ({})", cmd::display(compile), out.status);
    }
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_e2e = msg["reason"] == "compiler-artifact"
            && msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"))
            && msg["package_id"]
                .as_str()
                .is_some_and(|id| id.contains("lsn-trace-tests"));
        if let (true, Some(exe)) = (is_e2e, msg["executable"].as_str()) {
            bins.push(PathBuf::from(exe));
        }
    }
    if bins.is_empty() {
        bail!("cargo reported no end-to-end test executables (package lsn-trace-tests)");
    }
    bins.sort();
    Ok(bins)
}

/// A test binary's name without cargo's hash: `deps/core-0123abcd` -> `core`.
fn test_name(exe: &std::path::Path) -> String {
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('-') {
        Some((stem, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => stem.to_owned(),
        _ => name,
    }
}

/// The guest's shell script: for each backend, every test binary in turn, a start and an
/// exit line around each, named `BACKEND/BINARY` (the host reads results from those); exit
/// 1 when any failed.
fn guest_script(backends: &[&str], tests: &[PathBuf], harness: &[String]) -> String {
    let mut args: Vec<String> = harness.iter().map(|a| sh_word(a)).collect();
    if !harness.iter().any(|a| a.starts_with("--test-threads")) {
        args.push(VM_TEST_THREADS.to_owned());
    }
    if !harness.iter().any(|a| a.starts_with("--color")) {
        // The console is a terminal: plain text is what CI logs and the summary want.
        args.push("--color=never".to_owned());
    }
    let mut s = String::from("echo\nrc=0\n");
    for backend in backends {
        // LSN_TRACE_BACKEND makes the harness start `lsn-trace --backend NAME`.
        s.push_str(&format!("export LSN_TRACE_BACKEND={}\n", sh_word(backend)));
        for t in tests {
            let name = format!("{backend}/{}", test_name(t));
            s.push_str(&format!(
                "echo 'vm-test-start: {name}'\ntimeout {VM_BINARY_TIMEOUT} {} {}\nr=$?\n[ $r = 124 ] && echo 'vm: {name}: no end after {VM_BINARY_TIMEOUT}s: killed'\necho \"vm-test-exit: {name} $r\"\n[ $r = 0 ] || rc=1\n",
                sh_word(&t.to_string_lossy()),
                args.join(" ")
            ));
        }
    }
    s.push_str("exit $rc\n");
    s
}

fn sh_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What one test binary reported in a VM: its `test result:` line and exit status.
#[derive(Debug, PartialEq)]
struct BinaryResult {
    name: String,
    summary: Option<String>,
    code: Option<i32>,
}

/// Per test binary, from the guest's console (see [`guest_script`]).
fn binary_results(console: &str) -> Vec<BinaryResult> {
    let mut results: Vec<BinaryResult> = Vec::new();
    for line in console.lines() {
        // Found anywhere in the line: the firmware's last words have no line end.
        if let Some(name) = line
            .find("vm-test-start: ")
            .map(|i| &line[i + "vm-test-start: ".len()..])
        {
            results.push(BinaryResult {
                name: name.trim().to_owned(),
                summary: None,
                code: None,
            });
        } else if let Some(r) = results.last_mut() {
            if let Some(rest) = line.strip_prefix("vm-test-exit: ") {
                r.code = rest.rsplit(' ').next().and_then(|c| c.parse().ok());
            } else if let Some(sum) = line.trim().strip_prefix("test result: ") {
                r.summary = Some(sum.to_owned());
            }
        }
    }
    results
}

/// The results of `backend` in a boot's console: its test binaries' (named without the
/// backend), and whether all of the `expected` ran and passed.
fn backend_results(console: &str, backend: &str, expected: usize) -> (bool, Vec<BinaryResult>) {
    let prefix = format!("{backend}/");
    let bins: Vec<BinaryResult> = binary_results(console)
        .into_iter()
        .filter_map(|b| {
            Some(BinaryResult {
                name: b.name.strip_prefix(&prefix)?.to_owned(),
                ..b
            })
        })
        .collect();
    let ok = bins.len() == expected && bins.iter().all(|b| b.code == Some(0));
    (ok, bins)
}

/// One row of the matrix summary: a (kernel, backend) run.
struct Row {
    series: &'static str,
    package: String,
    backend: String,
    results: PathBuf,
    expected: usize,
    ok: bool,
    elapsed: std::time::Duration,
    code: Option<i32>,
    bins: Vec<BinaryResult>,
}

/// The boots of one kernel of the matrix ([`VM_BACKENDS`], then [`VM_PREEMPTIBLE`]), each
/// backend that failed booted once more; a row per (kernel, backend).
fn kernel_boots(
    s: &vm::Series,
    kernel: &vm::Kernel,
    bin: &str,
    all_tests: &[PathBuf],
    harness: &[String],
) -> Result<Vec<Row>> {
    let tests_dir = cmd::workspace_root().join("tests");
    let label = format!("[{}] ", s.name);
    let mut rows: Vec<Row> = Vec::new();
    let boots = [
        VmBoot {
            backends: VM_BACKENDS,
            kernel_args: "",
            only: None,
        },
        VM_PREEMPTIBLE,
    ];
    for boot in &boots {
        let tests: Vec<PathBuf> = all_tests
            .iter()
            .filter(|t| boot.only.is_none_or(|name| test_name(t) == name))
            .filter(|t| !HOST_ONLY.contains(&test_name(t).as_str()))
            .cloned()
            .collect();
        if tests.is_empty() {
            // Filtered out (`cargo xtask test -- --test NAME`): nothing to boot for.
            continue;
        }
        let results = cmd::target_dir().join("vm").join(format!(
            "{}-{}",
            s.name,
            boot.name(&boot.backends.join("-")).replace([' ', '='], "-")
        ));
        let mut envs = vm::guest_env(&results);
        envs.push(("LSN_TRACE_BIN".into(), bin.to_owned()));
        envs.push(("RUST_BACKTRACE".into(), "1".into()));
        // Software emulation stretches every timing: the backends whose run failed boot
        // once more, and a pass then is still reported as a flake (with the failures
        // above it).
        let mut pending: Vec<&str> = boot.backends.to_vec();
        for attempt in 1..=2 {
            eprintln!(
                "vm: {} ({} {}), backends {}{}: {} test binaries each",
                s.name,
                kernel.package,
                kernel.version,
                pending.join(", "),
                match boot.kernel_args {
                    "" => String::new(),
                    a => format!(" ({a})"),
                },
                tests.len()
            );
            let script = guest_script(&pending, &tests, harness);
            let out = vm::run_in_vm(
                kernel,
                &["sh".into(), "-c".into(), script],
                &vm::RunOptions {
                    results: &results,
                    cwd: tests_dir.clone(),
                    envs: envs.clone(),
                    echo: true,
                    label: &label,
                    kernel_args: boot.kernel_args,
                    timeout: Some(VM_BOOT_BASE + VM_BACKEND_BUDGET * pending.len() as u32),
                },
            )?;
            let mut failed = Vec::new();
            for &backend in &pending {
                let (ok, bins) = backend_results(&out.console, backend, tests.len());
                let name = boot.name(backend);
                if !ok && attempt == 1 {
                    let names: Vec<&str> = bins
                        .iter()
                        .filter(|b| b.code != Some(0))
                        .map(|b| b.name.as_str())
                        .collect();
                    eprintln!(
                        "vm: {} backend {name}: failed ({names:?}, guest exit status {:?}); \
                         booting once more",
                        s.name, out.code
                    );
                    failed.push(backend);
                    continue;
                }
                if ok && attempt == 2 {
                    eprintln!(
                        "vm: FLAKY: {} backend {name} failed its first run and passed the \
                         second; the first run's failures are above",
                        s.name
                    );
                }
                rows.push(Row {
                    series: s.name,
                    package: kernel.package.clone(),
                    backend: name,
                    results: results.clone(),
                    expected: tests.len(),
                    ok,
                    elapsed: out.elapsed,
                    code: out.code,
                    bins,
                });
            }
            if failed.is_empty() {
                break;
            }
            pending = failed;
        }
    }
    Ok(rows)
}

/// The end-to-end tests on every kernel of [`vm::SERIES`] with every backend of
/// [`VM_BACKENDS`] — one VM boot per kernel runs them all, backend after backend — and the
/// [`VM_PREEMPTIBLE`] boot; prints a summary. True when all passed.
fn vm_matrix(bin: &str, all_tests: &[PathBuf], harness: &[String]) -> Result<bool> {
    let matrix_start = Instant::now();
    // Fetched one after the other (apt-get download), then booted side by side, a thread
    // per kernel: a guest under TCG keeps about one of the host's CPUs busy, so two kernels
    // at once take about as long as one (the matrix was ~55 min one after the other).
    let kernels = vm::SERIES
        .iter()
        .map(|s| Ok((s, vm::kernel(s)?)))
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<Row> = std::thread::scope(|scope| {
        let runs: Vec<_> = kernels
            .iter()
            .map(|(s, kernel)| {
                scope.spawn(move || kernel_boots(s, kernel, bin, all_tests, harness))
            })
            .collect();
        runs.into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a VM thread panicked")))
            })
            .collect::<Result<Vec<Vec<Row>>>>()
    })?
    .into_iter()
    .flatten()
    .collect();

    eprintln!(
        "\nvm matrix ({:.0}s in all):",
        matrix_start.elapsed().as_secs_f64()
    );
    for r in &rows {
        eprintln!(
            "  {} ({}), backend {}: {} (its boot {:.0}s, guest exit status {})",
            r.series,
            r.package,
            r.backend,
            if r.ok { "passed" } else { "FAILED" },
            r.elapsed.as_secs_f64(),
            r.code.map_or("none".into(), |c| c.to_string()),
        );
        for b in &r.bins {
            eprintln!(
                "    {}: {}",
                b.name,
                b.summary.as_deref().unwrap_or("no `test result:` line")
            );
        }
        if r.bins.len() != r.expected {
            eprintln!(
                "    ran {} of {} test binaries (console log in {})",
                r.bins.len(),
                r.expected,
                r.results.display()
            );
        }
    }
    let all_ok = rows.iter().all(|r| r.ok);
    if !all_ok {
        eprintln!("xtask test: the VM matrix failed");
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_results_from_the_console() {
        assert_eq!(
            test_name(std::path::Path::new("/t/release/deps/core-0123abcdef")),
            "core"
        );
        assert_eq!(
            test_name(std::path::Path::new("/t/deps/lost-tests")),
            "lost-tests"
        );
        let console = "\
Booting from ROM..vm-test-start: core

running 2 tests
test a ... ok
test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.0s

vm-test-exit: core 0
vm-test-start: lost
thread 'main' panicked
vm-test-exit: lost 101
";
        assert_eq!(
            binary_results(console),
            [
                BinaryResult {
                    name: "core".into(),
                    summary: Some(
                        "ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; \
                         finished in 1.0s"
                            .into()
                    ),
                    code: Some(0),
                },
                BinaryResult {
                    name: "lost".into(),
                    summary: None,
                    code: Some(101),
                },
            ]
        );
    }

    /// One boot runs every backend: each backend's rows come from its own markers.
    #[test]
    fn backends_of_one_boot() {
        let script = guest_script(
            &["fentry", "tracepoint"],
            &[PathBuf::from("/t/deps/core-0123abcd")],
            &[],
        );
        assert!(
            script.contains("export LSN_TRACE_BACKEND='fentry'\necho 'vm-test-start: fentry/core'")
        );
        assert!(script.contains("echo \"vm-test-exit: tracepoint/core $r\""));
        let console = "\
vm-test-start: fentry/core
test result: ok. 2 passed; 0 failed
vm-test-exit: fentry/core 0
vm-test-start: tracepoint/core
vm-test-exit: tracepoint/core 101
";
        let (ok, bins) = backend_results(console, "fentry", 1);
        assert!(ok);
        assert_eq!(bins[0].name, "core");
        assert!(!backend_results(console, "tracepoint", 1).0);
        // A backend whose binaries never ran (the guest died first) failed.
        assert_eq!(backend_results(console, "kprobe", 1), (false, vec![]));
    }
}
