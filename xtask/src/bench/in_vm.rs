//! The benchmark in a QEMU VM on another kernel: this very xtask binary, `bench
//! --in-guest`, booted with the host's builds; its JSON back through the results share.
use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::machine::machine;
use super::render::render;
use super::{Sizes, write_report};
use crate::cmd;
use crate::vm;

/// The kernels named by `--kernel` (`all`: every series the VM runner knows), in order.
pub(super) fn vm_series(names: &[String]) -> Result<Vec<&'static vm::Series>> {
    let mut out: Vec<&'static vm::Series> = Vec::new();
    for n in names {
        let add: Vec<&'static vm::Series> = if n == "all" {
            vm::SERIES.iter().collect()
        } else {
            vec![vm::series(n)?]
        };
        for s in add {
            if !out.iter().any(|o| o.name == s.name) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// The benchmark inside a VM on kernel `s`: this very xtask binary, `bench --in-guest`,
/// against what the host built; its JSON comes back through the results share.
pub(super) fn vm_bench(s: &vm::Series, sizes: &Sizes, out: &Path) -> Result<()> {
    let kernel = vm::kernel(s)?;
    let results = cmd::target_dir()
        .join("vm")
        .join(format!("bench-{}", s.name));
    fs::create_dir_all(&results)?;
    let results = fs::canonicalize(&results)?;
    let guest_json = results.join("bench.json");
    let _ = fs::remove_file(&guest_json);
    let exe = std::env::current_exe().context("the xtask binary's path")?;
    let mut command: Vec<String> = vec![exe.to_string_lossy().into_owned(), "bench".into()];
    command.push("--in-guest".into());
    for (flag, v) in [
        ("--rounds", sizes.rounds),
        ("--cycles", sizes.cycles),
        ("--tax-calls", sizes.tax_calls),
        ("--full-cycles", sizes.full_cycles),
        ("--strace-scale", sizes.strace_scale),
    ] {
        command.extend([flag.to_owned(), v.to_string()]);
    }
    command.extend(["--out".into(), guest_json.to_string_lossy().into_owned()]);
    let mut envs = vm::guest_env(&results);
    // The guest finds the host's builds where the host put them.
    let target = fs::canonicalize(cmd::target_dir())?;
    envs.push((
        "CARGO_TARGET_DIR".into(),
        target.to_string_lossy().into_owned(),
    ));
    eprintln!(
        "bench: in a VM on {} ({} {}), under software emulation",
        s.name, kernel.package, kernel.version
    );
    let host = machine();
    let outcome = vm::run_in_vm(
        &kernel,
        &command,
        &vm::RunOptions {
            results: &results,
            cwd: cmd::workspace_root(),
            envs,
            echo: true,
            kernel_args: "",
            timeout: None,
            label: "",
        },
    )?;
    if outcome.code != Some(0) {
        bail!(
            "the bench in the {} VM failed (guest exit status {}); its console: {}",
            s.name,
            outcome
                .code
                .map_or_else(|| "none".into(), |c| c.to_string()),
            results.join("console.log").display()
        );
    }
    let text = fs::read_to_string(&guest_json)
        .with_context(|| format!("the guest wrote no {}", guest_json.display()))?;
    let mut report: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", guest_json.display()))?;
    report["machine"]["emulation"] = json!(format!(
        "QEMU TCG software emulation (2 vCPUs), Debian {} {}, on the host's {} CPUs ({}), host \
         load before: {}",
        kernel.package,
        kernel.version,
        host["nproc"],
        host["cpu"].as_str().unwrap_or("?"),
        host["load_before"].as_str().unwrap_or("?"),
    ));
    report["vm_seconds"] = json!(outcome.elapsed.as_secs_f64());
    println!("{}", render(&report));
    write_report(&report, out)
}
