//! `cargo xtask bench`: what tracing costs, side by side with strace and bpftrace.
//!
//! The workload is `lsn-bench` (crate `bench/`): a bind storm (5 reported events per cycle:
//! 2 setsockopt, bind, listen, the listener's close) then a getppid loop (the tax every
//! other syscall on the host pays). Each round runs every configuration once, in turn, so
//! that a burst of load from elsewhere on the machine hits all of them alike; figures are
//! medians over the rounds, storm throughput a ratio to the same round's untraced run.
//! Then one long storm per lsn-trace backend with its JSON piped here and counted: every
//! event the workload made must be reported, none lost. Then, per backend, one storm with
//! kernel.bpf_stats_enabled: what each eBPF program costs in the kernel, per run and per
//! storm cycle.
//!
//! `--kernel 6.1|6.12|all` runs all that in a QEMU VM on Debian's kernel instead (the host
//! kernel allows only the tracepoint backend): the host builds everything, then boots the VM
//! ([`vm::run_in_vm`]) with this very binary as `bench --in-guest`, which measures with the
//! same code against the guest kernel and writes its JSON to the results share; the host
//! prints the table and keeps it as target/bench/latest-KERNEL.json. Under software
//! emulation absolute figures are the emulation's; ratios and the tax compare runs made side
//! by side in one guest.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

mod agent;
mod bpf_stats;
mod in_vm;
mod machine;
mod render;
mod replay;
mod report_log;
mod rounds;
mod workload;

use crate::cmd::{self, is_root, run};
use crate::setup::{self, AptPackage};
use in_vm::{vm_bench, vm_series};
use machine::machine;
use render::render;
use rounds::measure;
use workload::Tools;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interleaved rounds (each runs every configuration once); figures are medians.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// Storm cycles per run in the rounds [default: 200000 on the host, 10000 in a VM].
    #[arg(long)]
    cycles: Option<u64>,
    /// getppid calls per run of the tax probe [default: 500000 on the host, 200000 in a VM].
    #[arg(long)]
    tax_calls: Option<u64>,
    /// Storm cycles of the long run per backend whose JSON is counted (0: skip it)
    /// [default: 1000000 on the host, 50000 in a VM].
    #[arg(long)]
    full_cycles: Option<u64>,
    /// strace runs 1/N of the storm cycles and getppid calls (its ratio and tax are per
    /// cycle and per call, so comparable) [default: 1 on the host, 100 in a VM, where
    /// ptrace under software emulation is ~300× slower than untraced].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    strace_scale: Option<u64>,
    /// Run the benchmark in a QEMU VM on Debian's kernel of this series (6.1, 6.12, or `all`;
    /// repeatable) instead of on the host: every backend that kernel allows. Writes
    /// target/bench/latest-KERNEL.json.
    #[arg(long = "kernel", value_name = "KERNEL")]
    kernels: Vec<String>,
    /// Where to write the results (default: target/bench/latest.json, or
    /// target/bench/latest-KERNEL.json with --kernel).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only the replay bench: instructions and allocations per event of each output on a
    /// recorded storm, counted with callgrind (no kernel involved, no root needed).
    #[arg(long, conflicts_with = "kernels")]
    replay: bool,
    /// Record the replay bench's storm again (bench/replay/storm.raw), after a change of
    /// the kernel side's record layout.
    #[arg(long, conflicts_with_all = ["kernels", "replay"])]
    record_replay: bool,
    /// A replay section of an earlier run (the `replay` key of its JSON, or a file written
    /// by `--replay --out`): the dated report shows its instruction counts beside this
    /// run's, as before / after.
    #[arg(long, value_name = "JSON")]
    replay_baseline: Option<PathBuf>,
    /// Where the host run's dated Markdown report goes [default: docs/bench/YYYY-MM-DD.md,
    /// today's date in UTC; `-` for none].
    #[arg(long, value_name = "MD")]
    report: Option<PathBuf>,
    /// Inside the VM: measure with what the host built (no set-up, no build).
    #[arg(long, hide = true)]
    in_guest: bool,
    /// Only the report bench: `lsn-trace report` over a generated audit log of this many
    /// records (time and peak RSS; no privileges needed). Writes target/bench/report.json.
    #[arg(long, value_name = "N")]
    report_records: Option<u64>,
}

/// The sizes of a benchmark run, with the defaults of where it runs resolved.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    rounds: u64,
    cycles: u64,
    tax_calls: u64,
    full_cycles: u64,
    strace_scale: u64,
}

impl Sizes {
    /// Under software emulation everything is ~7× (the storm) to ~300× (strace) slower:
    /// smaller runs keep a VM bench within minutes.
    fn of(args: &Args, in_vm: bool) -> Sizes {
        let pick = |v: Option<u64>, host: u64, vm: u64| v.unwrap_or(if in_vm { vm } else { host });
        Sizes {
            rounds: args.rounds,
            cycles: pick(args.cycles, 200_000, 10_000),
            tax_calls: pick(args.tax_calls, 500_000, 200_000),
            full_cycles: pick(args.full_cycles, 1_000_000, 50_000),
            strace_scale: pick(args.strace_scale, 1, 100),
        }
    }
}

/// valgrind, for the replay bench's instruction counts.
const VALGRIND: AptPackage = AptPackage {
    name: "valgrind",
    program: Some("valgrind"),
    why: "bench: instructions per event of the replay (callgrind)",
};

pub fn bench(args: &Args) -> Result<()> {
    if let Some(n) = args.report_records {
        return report_log::bench(n, args.out.clone());
    }
    if args.replay {
        setup::setup()?;
        setup::apt_install(&[VALGRIND])?;
        let bin = crate::run::build_lsn_trace()?;
        let mut report = json!({ "machine": machine(), "replay": replay::measure(&bin)? });
        report["replay"]["commit"] = commit().into();
        println!("{}", replay::render(&report["replay"]));
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| cmd::target_dir().join("bench").join("replay.json"));
        return write_report(&report, &out);
    }
    if !is_root() {
        bail!(
            "`cargo xtask bench` must run as root: it loads eBPF programs (lsn-trace, bpftrace) \
             and reads the agents' resource usage"
        );
    }
    if args.in_guest {
        // The guest's root is the host's, read-only: what the host built is all there is.
        let report = measure(&Tools::built(), &Sizes::of(args, true))?;
        let out = args.out.clone().context("--in-guest needs --out")?;
        return write_report(&report, &out);
    }
    let series = vm_series(&args.kernels)?;
    if args.out.is_some() && series.len() > 1 {
        bail!("--out names one file: give it with a single --kernel (or none)");
    }
    setup::setup()?;
    setup::apt_install(&[
        AptPackage {
            name: "strace",
            program: Some("strace"),
            why: "bench: compared with lsn-trace",
        },
        AptPackage {
            name: "bpftrace",
            program: Some("bpftrace"),
            why: "bench: compared with lsn-trace",
        },
        VALGRIND,
    ])?;
    crate::run::build_lsn_trace()?;
    run(Command::new("cargo")
        .current_dir(cmd::workspace_root())
        .args(["build", "--release", "-p", "lsn-bench"]))?;
    if args.record_replay {
        let tools = Tools::built();
        return replay::record(&tools.lsn_trace, &tools.workload);
    }
    if series.is_empty() {
        let tools = Tools::built();
        let mut report = measure(&tools, &Sizes::of(args, false))?;
        // Instructions do not depend on the kernel: measured once, on the host.
        report["replay"] = replay::measure(&tools.lsn_trace)?;
        report["commit"] = commit().into();
        report["replay"]["commit"] = commit().into();
        let table = render(&report);
        println!("{table}");
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| cmd::target_dir().join("bench").join("latest.json"));
        write_report(&report, &out)?;
        let baseline = match &args.replay_baseline {
            Some(p) => Some(read_replay(p)?),
            None => None,
        };
        let md = match &args.report {
            Some(p) if p.as_os_str() == "-" => return Ok(()),
            Some(p) => p.clone(),
            None => cmd::workspace_root()
                .join("docs")
                .join("bench")
                .join(format!("{}.md", today_utc())),
        };
        let text = dated_report(&report, &table, baseline.as_ref(), &today_utc());
        if let Some(dir) = md.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(&md, text).with_context(|| format!("writing {}", md.display()))?;
        println!("report: {}", md.display());
        return Ok(());
    }
    setup::setup_vm()?;
    for s in series {
        let out = args.out.clone().unwrap_or_else(|| {
            cmd::target_dir()
                .join("bench")
                .join(format!("latest-{}.json", s.name))
        });
        vm_bench(s, &Sizes::of(args, true), &out)?;
    }
    Ok(())
}

/// The replay section of a bench JSON (`{"replay": …}`) or of a `--replay --out` file.
fn read_replay(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let replay = v.get("replay").cloned().unwrap_or(v);
    if !replay["formats"].is_array() {
        bail!("{}: no replay section (`formats`)", path.display());
    }
    Ok(replay)
}

/// The tree measured: `git describe --always --dirty`.
fn commit() -> Option<String> {
    cmd::capture(
        Command::new("git")
            .current_dir(cmd::workspace_root())
            .args(["describe", "--always", "--dirty"]),
    )
    .map(|c| c.trim().to_owned())
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_date(secs / 86_400)
}

/// The date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The dated report (docs/bench/YYYY-MM-DD.md): how it was run, the table as printed, and
/// the replay's instruction counts beside the baseline's when one was given.
fn dated_report(report: &Value, table: &str, baseline: Option<&Value>, date: &str) -> String {
    let mut s = format!("# `cargo xtask bench`, {date}\n\n");
    s += &format!(
        "Commit {}; {} rounds of {} storm cycles, long storm {} cycles. Written by the bench \
         itself (`cargo xtask bench`, see docs/performance.md for how to read it). The machine \
         is shared: storm ratios compare runs made side by side in one round; the load at each \
         round's start is in the table's header.\n\n",
        report["commit"].as_str().unwrap_or("?"),
        report["rounds"],
        report["cycles"],
        report["long_storm"]
            .as_array()
            .and_then(|l| l.first())
            .map_or_else(|| "0".into(), |l| l["cycles"].to_string()),
    );
    s += table;
    s += "\n";
    if let (Some(before), Some(after)) = (baseline, report.get("replay")) {
        s += &replay::render_against(before, after);
    }
    s
}

fn write_report(report: &Value, out: &Path) -> Result<()> {
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(out, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("results: {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cli: &[&str]) -> Args {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let argv = std::iter::once("bench").chain(cli.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn kernels_named_once_in_order_and_all_expands() {
        let names = |a: &Args| -> Vec<&str> {
            vm_series(&a.kernels)
                .unwrap()
                .iter()
                .map(|s| s.name)
                .collect()
        };
        assert!(names(&args(&[])).is_empty());
        assert_eq!(
            names(&args(&["--kernel", "6.12", "--kernel", "6.1"])),
            ["6.12", "6.1"]
        );
        assert_eq!(
            names(&args(&["--kernel", "6.12", "--kernel", "all"])),
            ["6.12", "6.1"]
        );
        let Err(err) = vm_series(&["5.10".into()]) else {
            panic!("5.10 is no series of the VM runner");
        };
        let err = err.to_string();
        assert!(err.contains("unknown kernel \"5.10\""), "{err}");
    }

    #[test]
    fn dates_from_days_since_the_epoch() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(20_790), "2026-12-03");
        assert_eq!(civil_date(20_819), "2027-01-01");
    }

    #[test]
    fn vm_runs_are_smaller_unless_told() {
        let host = Sizes::of(&args(&[]), false);
        assert_eq!(
            (
                host.cycles,
                host.tax_calls,
                host.full_cycles,
                host.strace_scale
            ),
            (200_000, 500_000, 1_000_000, 1)
        );
        let vm = Sizes::of(&args(&[]), true);
        assert_eq!(
            (vm.cycles, vm.tax_calls, vm.full_cycles, vm.strace_scale),
            (10_000, 200_000, 50_000, 100)
        );
        let told = Sizes::of(&args(&["--cycles", "7", "--strace-scale", "3"]), true);
        assert_eq!((told.cycles, told.strace_scale), (7, 3));
    }
}
