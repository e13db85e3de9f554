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

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};

mod replay;

use crate::cmd::{self, display, is_root, run};
use crate::setup::{self, AptPackage};
use crate::vm;

/// Events lsn-trace reports per storm cycle.
const EVENTS_PER_CYCLE: u64 = 5;
/// The same, by kind (`event` key of the JSON records).
const EVENTS_BY_KIND: [(&str, u64); 4] =
    [("setsockopt", 2), ("bind", 1), ("listen", 1), ("close", 1)];

/// JSON lines counted per (pid, event kind).
type Counts = HashMap<(u32, String), u64>;
/// How long an agent may take to attach before the run is abandoned.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

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

#[derive(Clone, Debug)]
enum Config {
    Untraced,
    LsnTrace {
        backend: String,
        json: bool,
    },
    /// Runs 1/scale of the cycles and calls.
    Strace {
        scale: u64,
    },
    BpftracePrintf,
    BpftraceCount,
    /// Counting on the kernel functions the fentry backend hooks: that backend's floor.
    BpftraceKfuncCount,
}

impl Config {
    fn name(&self) -> String {
        match self {
            Config::Untraced => "untraced".into(),
            Config::LsnTrace { backend, json } => format!(
                "lsn-trace {backend} {} > /dev/null",
                if *json { "--json" } else { "(human)" }
            ),
            Config::Strace { scale: 1 } => "strace -f -e trace=bind,listen,setsockopt".into(),
            Config::Strace { scale } => {
                format!(
                    "strace -f -e trace=bind,listen,setsockopt (1/{scale} of the cycles and calls)"
                )
            }
            Config::BpftracePrintf => "bpftrace, printf per event".into(),
            Config::BpftraceCount => "bpftrace, count in kernel (floor)".into(),
            Config::BpftraceKfuncCount => {
                "bpftrace, count on the kernel functions (fentry floor, no set_state)".into()
            }
        }
    }
}

/// One run of the workload under one configuration.
#[derive(Clone, Debug, Default)]
struct Run {
    storm_per_sec: f64,
    tax_ns: f64,
    /// lsn-trace only: from its start to its "attached" line.
    attach_ms: Option<f64>,
    /// lsn-trace only: user+system CPU of the agent, its peak RSS, its stop line.
    cpu_s: Option<f64>,
    peak_rss_kb: Option<u64>,
    stop_events: Option<u64>,
    lost: Option<u64>,
    /// Counted runs: lines of the workload's pid in the agent's JSON output.
    reported: Option<u64>,
    /// Counted runs: the workload's records by event kind.
    reported_by_kind: Option<HashMap<String, u64>>,
    workload_pid: u32,
}

struct Tools {
    lsn_trace: PathBuf,
    workload: PathBuf,
}

/// valgrind, for the replay bench's instruction counts.
const VALGRIND: AptPackage = AptPackage {
    name: "valgrind",
    program: Some("valgrind"),
    why: "bench: instructions per event of the replay (callgrind)",
};

pub fn bench(args: &Args) -> Result<()> {
    if let Some(n) = args.report_records {
        return crate::bench_report::bench(n, args.out.clone());
    }
    if args.replay {
        setup::setup()?;
        setup::apt_install(&[VALGRIND])?;
        let bin = crate::run::build_lsn_trace()?;
        let report = json!({ "machine": machine(), "replay": replay::measure(&bin)? });
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
        println!("{}", render(&report));
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| cmd::target_dir().join("bench").join("latest.json"));
        return write_report(&report, &out);
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

/// The kernels named by `--kernel` (`all`: every series the VM runner knows), in order.
fn vm_series(names: &[String]) -> Result<Vec<&'static vm::Series>> {
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
fn vm_bench(s: &vm::Series, sizes: &Sizes, out: &Path) -> Result<()> {
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

fn write_report(report: &Value, out: &Path) -> Result<()> {
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(out, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("results: {}", out.display());
    Ok(())
}

impl Tools {
    /// The release builds in the target directory.
    fn built() -> Tools {
        Tools {
            lsn_trace: cmd::lsn_trace_bin(),
            workload: cmd::target_dir().join("release").join("lsn-bench"),
        }
    }
}

/// Every configuration, interleaved in rounds, then the long storms: the report.
fn measure(tools: &Tools, sizes: &Sizes) -> Result<Value> {
    let machine = machine();
    eprintln!("bench: machine: {}", machine_line(&machine));
    let mut backends = Vec::new();
    let mut unavailable = Vec::new();
    for b in lsn_trace_backends(&tools.lsn_trace)? {
        match probe_backend(&tools.lsn_trace, &b) {
            Ok(()) => backends.push(b),
            Err(why) => {
                eprintln!("bench: backend {b}: not available on this kernel: {why}");
                unavailable.push(json!({"backend": b, "why": why}));
            }
        }
    }
    if backends.is_empty() {
        bail!("no lsn-trace backend attaches on this kernel: nothing to measure");
    }
    let mut configs = vec![Config::Untraced];
    for b in &backends {
        for json in [true, false] {
            configs.push(Config::LsnTrace {
                backend: b.clone(),
                json,
            });
        }
    }
    configs.extend([
        Config::Strace {
            scale: sizes.strace_scale,
        },
        Config::BpftracePrintf,
        Config::BpftraceCount,
    ]);
    if backends.iter().any(|b| b == "fentry") {
        configs.push(Config::BpftraceKfuncCount);
    }

    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); configs.len()];
    for round in 1..=sizes.rounds {
        for (i, c) in configs.iter().enumerate() {
            eprintln!("bench: round {round}/{}: {}", sizes.rounds, c.name());
            let r = run_config(tools, c, sizes.cycles, sizes.tax_calls)
                .with_context(|| format!("round {round}: {}", c.name()))?;
            eprintln!(
                "bench:   {:.0} cycles/s, getppid {:.1} ns{}",
                r.storm_per_sec,
                r.tax_ns,
                r.cpu_s
                    .map(|c| format!(", agent CPU {c:.2} s"))
                    .unwrap_or_default()
            );
            runs[i].push(r);
        }
    }
    let untraced_tax = median(runs[0].iter().map(|r| r.tax_ns).collect());
    let untraced_rate = median(runs[0].iter().map(|r| r.storm_per_sec).collect());

    let mut full = Vec::new();
    if sizes.full_cycles > 0 {
        for b in &backends {
            eprintln!(
                "bench: long storm, {} cycles, lsn-trace --backend {b} --json counted",
                sizes.full_cycles
            );
            let r = lsn_trace_run(tools, b, true, Output::Count, sizes.full_cycles, 0)?;
            full.push((b.clone(), r));
        }
    }
    let profiles = bpf_profiles(tools, &backends, sizes.cycles, untraced_rate)?;
    let load_after = loadavg();

    let rows: Vec<Value> = configs
        .iter()
        .zip(&runs)
        .map(|(c, rs)| summarize(c, rs, &runs[0], untraced_tax))
        .collect();
    let long: Vec<Value> = full
        .iter()
        .map(|(b, r)| {
            let made = r.storm_cycles_made(sizes.full_cycles);
            json!({
                "config": format!("lsn-trace {b} --json, counted"),
                "cycles": sizes.full_cycles,
                "storm_per_sec": r.storm_per_sec,
                "storm_ratio": r.storm_per_sec / untraced_rate,
                "events_made": made,
                "events_reported": r.reported,
                "missing_by_kind": missing_by_kind(r, sizes.full_cycles),
                "lost": r.lost,
                "agent_cpu_s": r.cpu_s,
                "agent_cpu_s_per_100k": per_100k(r),
                "peak_rss_mb": r.peak_rss_kb.map(|k| k as f64 / 1024.0),
                "attach_ms": r.attach_ms,
            })
        })
        .collect();
    let report = json!({
        "machine": machine,
        "load_after": load_after,
        "rounds": sizes.rounds,
        "cycles": sizes.cycles,
        "tax_calls": sizes.tax_calls,
        "strace_scale": sizes.strace_scale,
        "events_per_cycle": EVENTS_PER_CYCLE,
        "untraced_storm_per_sec": untraced_rate,
        "untraced_getppid_ns": untraced_tax,
        "configs": rows,
        "long_storm": long,
        "unavailable_backends": unavailable,
        "bpf_stats": profiles,
    });
    Ok(report)
}

impl Run {
    fn storm_cycles_made(&self, cycles: u64) -> u64 {
        cycles * EVENTS_PER_CYCLE
    }
}

fn per_100k(r: &Run) -> Option<f64> {
    match (r.cpu_s, r.stop_events) {
        (Some(cpu), Some(ev)) if ev > 0 => Some(cpu * 100_000.0 / ev as f64),
        _ => None,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn stats(v: Vec<f64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    json!({"median": median(v), "min": min, "max": max})
}

fn summarize(c: &Config, rs: &[Run], untraced: &[Run], untraced_tax: f64) -> Value {
    let ratios: Vec<f64> = rs
        .iter()
        .zip(untraced)
        .map(|(r, u)| r.storm_per_sec / u.storm_per_sec)
        .collect();
    // Each round's tax against the same round's untraced run: the spread is the noise a
    // tax near zero is to be told apart from.
    let round_tax: Vec<f64> = rs
        .iter()
        .zip(untraced)
        .map(|(r, u)| r.tax_ns - u.tax_ns)
        .collect();
    let tax = median(rs.iter().map(|r| r.tax_ns).collect());
    let opt = |f: fn(&Run) -> Option<f64>| -> Value {
        let v: Vec<f64> = rs.iter().filter_map(f).collect();
        stats(v)
    };
    json!({
        "config": c.name(),
        "storm_per_sec": stats(rs.iter().map(|r| r.storm_per_sec).collect()),
        "storm_ratio": stats(ratios),
        "getppid_ns": tax,
        "tax_ns": tax - untraced_tax,
        "tax_pct": (tax - untraced_tax) / untraced_tax * 100.0,
        "tax_ns_per_round": stats(round_tax),
        "lost": rs.iter().map(|r| r.lost).sum::<Option<u64>>(),
        "events_per_run": opt(|r| r.stop_events.map(|e| e as f64)),
        "agent_cpu_s_per_100k": opt(per_100k),
        "peak_rss_mb": opt(|r| r.peak_rss_kb.map(|k| k as f64 / 1024.0)),
        "attach_ms": opt(|r| r.attach_ms),
    })
}

fn f(v: &Value, key: &str, fmt: impl Fn(f64) -> String) -> String {
    v.get(key)
        .and_then(|x| x.get("median").or(Some(x)))
        .and_then(Value::as_f64)
        .map_or_else(|| "—".into(), fmt)
}

/// The table, as Markdown (docs/performance.md carries it as is).
fn render(r: &Value) -> String {
    let mut s = String::new();
    s += &format!(
        "Machine: {}; load after: {}\n",
        machine_line(&r["machine"]),
        r["load_after"].as_str().unwrap_or("?")
    );
    s += &format!(
        "{} interleaved rounds of {} storm cycles ({} events each) + {} getppid; untraced: \
         {:.0} cycles/s, getppid {:.1} ns\n",
        r["rounds"],
        r["cycles"],
        r["cycles"].as_u64().unwrap_or(0) * EVENTS_PER_CYCLE,
        r["tax_calls"],
        r["untraced_storm_per_sec"].as_f64().unwrap_or(f64::NAN),
        r["untraced_getppid_ns"].as_f64().unwrap_or(f64::NAN),
    );
    if let Some(e) = r["machine"]["emulation"].as_str() {
        s += &format!(
            "Emulated: {e}. Absolute figures (cycles/s, ns, ms, CPU) are those of the \
             emulation; the ratios and the tax compare runs side by side in the same guest.\n"
        );
    }
    if let Some(secs) = r["vm_seconds"].as_f64() {
        s += &format!("The VM ran {secs:.0} s (boot to power-off).\n");
    }
    s += "\n| configuration | storm ratio median [min–max] | cycles/s | getppid tax median \
          [per-round min–max] | lost | agent CPU s/100k ev | peak RSS MB | attach ms |\n";
    s += "| --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for c in r["configs"].as_array().into_iter().flatten() {
        let ratio = &c["storm_ratio"];
        s += &format!(
            "| {} | {:.3} [{:.3}–{:.3}] | {} | {:+.1} ns ({:+.1}%) [{:+.1}…{:+.1}] | {} | {} | {} \
             | {} |\n",
            c["config"].as_str().unwrap_or("?"),
            ratio["median"].as_f64().unwrap_or(f64::NAN),
            ratio["min"].as_f64().unwrap_or(f64::NAN),
            ratio["max"].as_f64().unwrap_or(f64::NAN),
            f(c, "storm_per_sec", |x| format!("{x:.0}")),
            c["tax_ns"].as_f64().unwrap_or(f64::NAN),
            c["tax_pct"].as_f64().unwrap_or(f64::NAN),
            c["tax_ns_per_round"]["min"].as_f64().unwrap_or(f64::NAN),
            c["tax_ns_per_round"]["max"].as_f64().unwrap_or(f64::NAN),
            c["lost"]
                .as_u64()
                .map_or_else(|| "—".into(), |x| x.to_string()),
            f(c, "agent_cpu_s_per_100k", |x| format!("{x:.3}")),
            f(c, "peak_rss_mb", |x| format!("{x:.1}")),
            f(c, "attach_ms", |x| format!("{x:.0}")),
        );
    }
    let long = r["long_storm"].as_array().cloned().unwrap_or_default();
    if !long.is_empty() {
        s += "\n| long storm (JSON counted) | cycles | storm ratio | events reported / made | \
              missing by kind | lost | agent CPU s/100k ev | peak RSS MB | attach ms |\n";
        s += "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
        for l in &long {
            s += &format!(
                "| {} | {} | {:.3} | {} / {} | {} | {} | {} | {} | {} |\n",
                l["config"].as_str().unwrap_or("?"),
                l["cycles"],
                l["storm_ratio"].as_f64().unwrap_or(f64::NAN),
                l["events_reported"],
                l["events_made"],
                match l["missing_by_kind"].as_object() {
                    Some(m) if !m.is_empty() => m
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    _ => "none".into(),
                },
                l["lost"],
                f(l, "agent_cpu_s_per_100k", |x| format!("{x:.3}")),
                f(l, "peak_rss_mb", |x| format!("{x:.1}")),
                f(l, "attach_ms", |x| format!("{x:.0}")),
            );
        }
    }
    let profiles = r["bpf_stats"].as_array().cloned().unwrap_or_default();
    if !profiles.is_empty() {
        s += &format!(
            "\n| in-kernel cost (bpf_stats, one storm of {} cycles) | program | runs per cycle | ns \
             per run | ns per cycle |\n",
            profiles[0]["cycles"]
        );
        s += "| --- | --- | --- | --- | --- |\n";
        for p in &profiles {
            let cycles = p["cycles"].as_f64().unwrap_or(f64::NAN);
            for prog in p["programs"].as_array().into_iter().flatten() {
                s += &format!(
                    "| {} | {} | {:.2} | {} | {:.0} |\n",
                    p["backend"].as_str().unwrap_or("?"),
                    prog["name"].as_str().unwrap_or("?"),
                    prog["runs"].as_f64().unwrap_or(f64::NAN) / cycles,
                    prog["ns_per_run"]
                        .as_f64()
                        .map_or_else(|| "—".into(), |x| format!("{x:.0}")),
                    prog["ns_per_cycle"].as_f64().unwrap_or(f64::NAN),
                );
            }
            s += &format!(
                "| {} | **all** | | | **{:.0}** ({:.1}% of an untraced cycle, {:.0} ns) |\n",
                p["backend"].as_str().unwrap_or("?"),
                p["ns_per_cycle"].as_f64().unwrap_or(f64::NAN),
                p["share_of_untraced_cycle"].as_f64().unwrap_or(f64::NAN) * 100.0,
                p["untraced_ns_per_cycle"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    if r["replay"].is_object() {
        s += &replay::render(&r["replay"]);
    }
    for u in r["unavailable_backends"].as_array().into_iter().flatten() {
        s += &format!(
            "\nbackend {}: not available on this kernel ({})",
            u["backend"].as_str().unwrap_or("?"),
            u["why"].as_str().unwrap_or("?")
        );
    }
    s
}

fn machine() -> Value {
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    // bpf_ktime_get_ns and bpf_stats read it: a VM that fell back from tsc pays for it.
    let clocksource =
        fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into());
    json!({
        "nproc": thread::available_parallelism().map_or(0, |n| n.get()),
        "clocksource": clocksource,
        "cpu": model,
        "kernel": kernel,
        "load_before": loadavg(),
    })
}

fn machine_line(m: &Value) -> String {
    format!(
        "{} CPUs ({}), Linux {}, load before: {}",
        m["nproc"],
        m["cpu"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?"),
        m["load_before"].as_str().unwrap_or("?")
    )
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The `--backend` values lsn-trace accepts (from its help), but `auto`.
fn lsn_trace_backends(bin: &Path) -> Result<Vec<String>> {
    let help = cmd::capture(Command::new(bin).arg("-h"))
        .ok_or_else(|| anyhow!("`{} -h` failed", bin.display()))?;
    let line = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--backend"))
        .find_map(|l| l.split("[possible values: ").nth(1))
        .ok_or_else(|| anyhow!("`lsn-trace -h` lists no --backend values"))?;
    Ok(line
        .trim_end_matches([']', ' '])
        .split(", ")
        .filter(|b| *b != "auto")
        .map(str::to_owned)
        .collect())
}

/// Whether lsn-trace attaches with this backend (its error when it does not).
fn probe_backend(bin: &Path, backend: &str) -> Result<(), String> {
    let mut agent =
        Agent::start(bin, backend, false, Output::Null).map_err(|e| format!("{e:#}"))?;
    agent.stop().map(drop).map_err(|e| format!("{e:#}"))
}

fn run_config(tools: &Tools, c: &Config, cycles: u64, tax: u64) -> Result<Run> {
    match c {
        Config::Untraced => {
            workload(Command::new(&tools.workload).args(workload_args(cycles, tax)))
        }
        Config::LsnTrace { backend, json } => {
            lsn_trace_run(tools, backend, *json, Output::Null, cycles, tax)
        }
        Config::Strace { scale } => workload(
            Command::new("strace")
                .args([
                    "-f",
                    "-e",
                    "trace=bind,listen,setsockopt",
                    "-o",
                    "/dev/null",
                ])
                .arg(&tools.workload)
                .args(workload_args(
                    (cycles / scale).max(1),
                    if tax == 0 { 0 } else { (tax / scale).max(1) },
                )),
        ),
        Config::BpftracePrintf | Config::BpftraceCount | Config::BpftraceKfuncCount => {
            let action = if matches!(c, Config::BpftracePrintf) {
                r#"printf("%d %d %s %s %d\n", pid, tid, comm, probe, args->ret);"#
            } else {
                "@[probe] = count();"
            };
            let prog = if matches!(c, Config::BpftraceKfuncCount) {
                // The kernel functions the storm meets under `--backend fentry` (the
                // setsockopt ones of 6.0+), with nothing done in them. Not its raw
                // tracepoint: Debian's bpftrace 0.17 has no `rawtracepoint:`.
                format!(
                    "kretfunc:inet6_bind,kfunc:inet_listen,kretfunc:inet_listen,\
                     kretfunc:sk_setsockopt,kretfunc:do_ipv6_setsockopt {{ {action} }}"
                )
            } else {
                format!(
                    "tracepoint:syscalls:sys_exit_bind,tracepoint:syscalls:sys_exit_listen,\
                     tracepoint:syscalls:sys_exit_setsockopt {{ {action} }}"
                )
            };
            let target = format!(
                "{} {}",
                tools.workload.display(),
                workload_args(cycles, tax).join(" ")
            );
            // -c starts the workload once every probe is attached, and ends with it.
            workload(Command::new("bpftrace").args(["-o", "/dev/null", "-c", &target, "-e", &prog]))
        }
    }
}

fn workload_args(cycles: u64, tax: u64) -> [String; 3] {
    ["run".into(), cycles.to_string(), tax.to_string()]
}

/// Run the workload (directly or under a tracer that starts it) and parse its two lines.
fn workload(cmd: &mut Command) -> Result<Run> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("could not run `{}`", display(cmd)))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}{}",
            display(cmd),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut run = Run::default();
    for line in stdout.lines().filter(|l| l.starts_with("{\"pid\"")) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("workload: {line}"))?;
        run.workload_pid = v["pid"].as_u64().unwrap_or(0) as u32;
        if let Some(r) = v["per_sec"].as_f64() {
            run.storm_per_sec = r;
        }
        if let Some(t) = v["ns_per_call"].as_f64() {
            run.tax_ns = t;
        }
    }
    if run.storm_per_sec == 0.0 && run.tax_ns == 0.0 {
        bail!("`{}` printed no result: {stdout}", display(cmd));
    }
    Ok(run)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Null,
    /// Piped here: lines per pid counted.
    Count,
}

/// A running lsn-trace.
struct Agent {
    child: Child,
    attach_ms: f64,
    stderr: mpsc::Receiver<String>,
    reaped: bool,
    counter: Option<thread::JoinHandle<Result<Counts>>>,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// kernel.bpf_stats_enabled set to 1 while this lives (it costs two clock reads per
/// program run, so the measured rounds run without it), then put back.
struct BpfStatsOn(String);

impl BpfStatsOn {
    fn enable() -> Result<BpfStatsOn> {
        let old = fs::read_to_string(BPF_STATS).with_context(|| format!("reading {BPF_STATS}"))?;
        fs::write(BPF_STATS, "1").with_context(|| format!("writing 1 to {BPF_STATS}"))?;
        Ok(BpfStatsOn(old.trim().to_owned()))
    }
}

impl Drop for BpfStatsOn {
    fn drop(&mut self) {
        let _ = fs::write(BPF_STATS, &self.0);
    }
}

/// Per backend, one storm with kernel.bpf_stats_enabled: what each of lsn-trace's programs
/// costs in the kernel, per run and per storm cycle, against an untraced cycle. Empty when
/// the kernel has no bpf_stats.
fn bpf_profiles(
    tools: &Tools,
    backends: &[String],
    cycles: u64,
    untraced_rate: f64,
) -> Result<Vec<Value>> {
    if !Path::new(BPF_STATS).exists() || cycles == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for b in backends {
        eprintln!(
            "bench: in-kernel cost, {cycles} cycles, lsn-trace --backend {b} --json, kernel.bpf_stats_enabled=1"
        );
        let _on = BpfStatsOn::enable()?;
        let mut agent = Agent::start(&tools.lsn_trace, b, true, Output::Null)?;
        workload(Command::new(&tools.workload).args(workload_args(cycles, 0)))?;
        agent.wait_idle();
        let stats = agent.prog_stats();
        // Named while the agent holds them: its exit unloads them.
        let names: Vec<String> = stats.iter().map(|p| prog_name(p.id)).collect();
        agent.stop()?;
        let mut programs: Vec<Value> = stats
            .iter()
            .zip(names)
            .map(|(p, name)| {
                json!({
                    "name": name,
                    "runs": p.runs,
                    "ns_per_run": (p.runs > 0).then(|| p.ns as f64 / p.runs as f64),
                    "ns_per_cycle": p.ns as f64 / cycles as f64,
                })
            })
            .collect();
        programs.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let total = stats.iter().map(|p| p.ns).sum::<u64>() as f64 / cycles as f64;
        let untraced_ns = 1e9 / untraced_rate;
        out.push(json!({
            "backend": b,
            "cycles": cycles,
            "programs": programs,
            "ns_per_cycle": total,
            "untraced_ns_per_cycle": untraced_ns,
            "share_of_untraced_cycle": total / untraced_ns,
        }));
    }
    Ok(out)
}

/// A program's name (bpftool), else its id.
fn prog_name(id: u64) -> String {
    cmd::capture(Command::new("bpftool").args(["prog", "show", "id", &id.to_string(), "--json"]))
        .and_then(|j| serde_json::from_str::<Value>(&j).ok())
        .and_then(|v| v["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("id {id}"))
}

/// One eBPF program's counters (kernel.bpf_stats_enabled).
struct ProgStat {
    id: u64,
    runs: u64,
    ns: u64,
}

/// utime + stime of a process, in clock ticks (0 when it is gone).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) end with ')'; utime and stime are
    // the 14th and 15th fields, the 12th and 13th after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

struct Stopped {
    cpu_s: f64,
    peak_rss_kb: u64,
    events: u64,
    lost: u64,
    per_pid: Option<Counts>,
}

impl Agent {
    fn start(bin: &Path, backend: &str, json: bool, output: Output) -> Result<Agent> {
        Agent::start_with(bin, backend, json, output, &[])
    }

    /// `start`, with more arguments for lsn-trace.
    fn start_with(
        bin: &Path,
        backend: &str,
        json: bool,
        output: Output,
        extra: &[std::ffi::OsString],
    ) -> Result<Agent> {
        let mut cmd = Command::new(bin);
        cmd.args(["--backend", backend]);
        if json {
            cmd.arg("--json");
        }
        cmd.args(extra);
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
        cmd.stdout(match output {
            Output::Null => Stdio::null(),
            Output::Count => Stdio::piped(),
        });
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not run `{}`", display(&cmd)))?;
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("piped");
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let counter = child
            .stdout
            .take()
            .map(|out| thread::spawn(move || count_pids(out)));
        let mut early = Vec::new();
        let attach_ms = loop {
            match rx.recv_timeout(ATTACH_TIMEOUT) {
                Ok(line) if line.starts_with("lsn-trace: attached") => {
                    break t0.elapsed().as_secs_f64() * 1e3;
                }
                Ok(line) => early.push(line),
                Err(_) => {
                    // Exited (stderr closed) or hung: either way it did not attach.
                    let _ = child.kill();
                    let st = child.wait()?;
                    bail!(
                        "`{}` did not attach ({st}): {}",
                        display(&cmd),
                        early.join(" / ")
                    );
                }
            }
        };
        Ok(Agent {
            child,
            attach_ms,
            stderr: rx,
            reaped: false,
            counter,
        })
    }

    /// Until the agent has used no CPU for 200 ms (it has read everything the ring held),
    /// at most 60 s.
    fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = cpu_ticks(self.child.id());
        let mut quiet = 0;
        while quiet < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
            let now = cpu_ticks(self.child.id());
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
    }

    /// The agent's programs' run counts and times, as the kernel keeps them while
    /// kernel.bpf_stats_enabled is 1: from /proc/PID/fdinfo of its program fds.
    fn prog_stats(&self) -> Vec<ProgStat> {
        let dir = format!("/proc/{}/fdinfo", self.child.id());
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(info) = fs::read_to_string(e.path()) else {
                continue;
            };
            let field = |k: &str| -> Option<u64> {
                info.lines()
                    .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                    .and_then(|v| v.trim().parse().ok())
            };
            if let (Some(id), Some(runs), Some(ns)) =
                (field("prog_id"), field("run_cnt"), field("run_time_ns"))
                && !out.iter().any(|p: &ProgStat| p.id == id)
            {
                out.push(ProgStat { id, runs, ns });
            }
        }
        out
    }

    /// SIGTERM, then its resource usage (wait4) and its stop line.
    fn stop(&mut self) -> Result<Stopped> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: our own child, not yet waited for.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut status = 0;
        // SAFETY: all-zero is a valid rusage; wait4 fills it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers; the pid is our unwaited child.
        if unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } != pid {
            bail!("wait4({pid}): {}", std::io::Error::last_os_error());
        }
        self.reaped = true;
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let lines: Vec<String> = self.stderr.iter().collect();
        let stop = lines
            .iter()
            .find_map(|l| l.strip_prefix("lsn-trace: stopped: "))
            .ok_or_else(|| anyhow!("lsn-trace printed no stop line: {}", lines.join(" / ")))?;
        // "N events, M lost, K filtered in kernel"
        let num = |word: &str| -> Result<u64> {
            stop.split(", ")
                .find_map(|p| p.strip_suffix(word))
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| anyhow!("stop line without `{word}`: {stop}"))
        };
        let per_pid = match self.counter.take() {
            Some(h) => Some(h.join().map_err(|_| anyhow!("counter panicked"))??),
            None => None,
        };
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            bail!(
                "lsn-trace ended with wait status {status}: {}",
                lines.join(" / ")
            );
        }
        Ok(Stopped {
            cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
            peak_rss_kb: ru.ru_maxrss as u64,
            events: num(" events")?,
            lost: num(" lost")?,
            per_pid,
        })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A run that failed midway must not leave an agent attached.
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn lsn_trace_run(
    tools: &Tools,
    backend: &str,
    json: bool,
    output: Output,
    cycles: u64,
    tax: u64,
) -> Result<Run> {
    let mut agent = Agent::start(&tools.lsn_trace, backend, json, output)?;
    let mut run = workload(Command::new(&tools.workload).args(workload_args(cycles, 0)))?;
    if tax > 0 {
        // The tax is what the attached hooks cost every other syscall, not the agent still
        // draining the storm's backlog on the other CPU (with a slow output, or under
        // emulation, that took seconds and made the tax the agent's CPU time).
        agent.wait_idle();
        let t = workload(Command::new(&tools.workload).args(["tax".into(), tax.to_string()]))?;
        run.tax_ns = t.tax_ns;
    }
    let stopped = agent.stop()?;
    run.attach_ms = Some(agent.attach_ms);
    run.cpu_s = Some(stopped.cpu_s);
    run.peak_rss_kb = Some(stopped.peak_rss_kb);
    run.stop_events = Some(stopped.events);
    run.lost = Some(stopped.lost);
    if let Some(counts) = stopped.per_pid {
        let mut by_kind = HashMap::new();
        for ((pid, kind), n) in counts {
            if pid == run.workload_pid {
                *by_kind.entry(kind).or_insert(0) += n;
            }
        }
        run.reported = Some(by_kind.values().sum());
        run.reported_by_kind = Some(by_kind);
    }
    Ok(run)
}

/// JSON Lines on `out`: how many lines each (`"pid"`, `"event"`) has. Reads in large
/// blocks and looks only at the start of each line, to cost the machine little while the
/// agent runs.
fn count_pids(out: impl Read) -> Result<Counts> {
    const KEY: &[u8] = b",\"pid\":";
    const EVENT: &[u8] = b"{\"event\":\"";
    let mut counts = Counts::new();
    let mut reader = BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let head = &line[..line.len().min(128)];
        let Some(at) = head.windows(KEY.len()).position(|w| w == KEY) else {
            continue;
        };
        let pid = head[at + KEY.len()..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
        let kind = head
            .strip_prefix(EVENT)
            .and_then(|rest| rest.split(|&b| b == b'"').next())
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        *counts.entry((pid, kind)).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Events made minus events reported, by kind, for the kinds where they differ.
fn missing_by_kind(r: &Run, cycles: u64) -> Value {
    let Some(by_kind) = &r.reported_by_kind else {
        return Value::Null;
    };
    let mut missing = serde_json::Map::new();
    for (kind, per_cycle) in EVENTS_BY_KIND {
        let made = (cycles * per_cycle) as i64;
        let got = by_kind.get(kind).copied().unwrap_or(0) as i64;
        if made != got {
            missing.insert(kind.into(), json!(made - got));
        }
    }
    Value::Object(missing)
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

    #[test]
    fn cpu_ticks_of_a_busy_process_grow() {
        let me = std::process::id();
        let before = cpu_ticks(me);
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_ticks(me) > before);
        assert_eq!(cpu_ticks(u32::MAX), 0);
    }

    #[test]
    fn table_says_emulated_and_shows_the_in_kernel_cost() {
        let report = json!({
            "machine": {"nproc": 2, "cpu": "QEMU", "kernel": "6.12.1", "load_before": "0",
                        "emulation": "QEMU TCG"},
            "load_after": "1", "rounds": 5, "cycles": 100, "tax_calls": 10,
            "untraced_storm_per_sec": 1000.0, "untraced_getppid_ns": 500.0,
            "vm_seconds": 61.0,
            "configs": [{
                "config": "lsn-trace fentry --json > /dev/null",
                "storm_ratio": {"median": 0.9, "min": 0.8, "max": 1.0},
                "storm_per_sec": {"median": 900.0},
                "tax_ns": 2.0, "tax_pct": 0.4,
                "tax_ns_per_round": {"median": 2.0, "min": -5.0, "max": 6.5},
                "lost": 0,
            }],
            "bpf_stats": [{
                "backend": "fentry", "cycles": 100,
                "programs": [{"name": "fexit_inet_bind", "runs": 100, "ns_per_run": 800.0,
                              "ns_per_cycle": 800.0}],
                "ns_per_cycle": 800.0, "untraced_ns_per_cycle": 1e6,
                "share_of_untraced_cycle": 0.0008,
            }],
        });
        let t = render(&report);
        assert!(t.contains("Emulated: QEMU TCG."), "{t}");
        assert!(t.contains("The VM ran 61 s"), "{t}");
        assert!(
            t.contains("| +2.0 ns (+0.4%) [-5.0…+6.5] | 0 |"),
            "tax with its per-round spread: {t}"
        );
        assert!(
            t.contains("| fentry | fexit_inet_bind | 1.00 | 800 | 800 |"),
            "{t}"
        );
        assert!(
            t.contains(
                "| fentry | **all** | | | **800** (0.1% of an untraced cycle, 1000000 ns) |"
            ),
            "{t}"
        );
    }
}
