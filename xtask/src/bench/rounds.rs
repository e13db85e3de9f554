//! The measured rounds: every configuration (untraced, lsn-trace per backend and output,
//! strace, bpftrace) run once a round, then the long storms whose JSON is counted, then the
//! in-kernel cost; the medians and ratios of the report.
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};

use super::Sizes;
use super::agent::{Agent, Output, audit_run, lsn_trace_run, lsn_trace_run_with};
use super::bpf_stats::bpf_profiles;
use super::machine::{loadavg, machine, machine_line};
use super::workload::{EVENTS_BY_KIND, EVENTS_PER_CYCLE, Run, Tools, workload, workload_args};
use crate::cmd;

#[derive(Clone, Debug)]
enum Config {
    Untraced,
    LsnTrace {
        backend: String,
        format: Format,
    },
    /// `lsn-trace audit --log FILE`: the records the workload made counted in the file.
    Audit {
        backend: String,
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

/// lsn-trace's live outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Human,
    /// `--format strace`: lsn-trace's strace-like lines (not strace itself).
    Strace,
}

impl Format {
    fn label(self) -> &'static str {
        match self {
            Format::Json => "--json",
            Format::Human => "(human)",
            Format::Strace => "--format strace",
        }
    }
}

impl Config {
    fn name(&self) -> String {
        match self {
            Config::Untraced => "untraced".into(),
            Config::LsnTrace { backend, format } => {
                format!("lsn-trace {backend} {} > /dev/null", format.label())
            }
            Config::Audit { backend } => format!("lsn-trace {backend} audit --log FILE"),
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

/// Every configuration, interleaved in rounds, then the long storms: the report.
pub(super) fn measure(tools: &Tools, sizes: &Sizes) -> Result<Value> {
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
        for format in [Format::Json, Format::Human, Format::Strace] {
            configs.push(Config::LsnTrace {
                backend: b.clone(),
                format,
            });
        }
        configs.push(Config::Audit { backend: b.clone() });
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
    // The machine is shared: what else ran, round by round (load average, QEMU guests).
    let mut load_per_round = Vec::new();
    for round in 1..=sizes.rounds {
        let load = json!({"round": round, "loadavg": loadavg(), "qemu_guests": qemu_guests()});
        eprintln!(
            "bench: round {round}/{}: load {}, {} QEMU guest(s) running",
            sizes.rounds,
            load["loadavg"].as_str().unwrap_or("?"),
            load["qemu_guests"]
        );
        load_per_round.push(load);
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
            full.push((format!("lsn-trace {b} --json, counted"), r));
            eprintln!(
                "bench: long storm, {} cycles, lsn-trace --backend {b} audit, log counted",
                sizes.full_cycles
            );
            let r = audit_run(tools, b, sizes.full_cycles, 0)?;
            full.push((format!("lsn-trace {b} audit, log counted"), r));
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
        .map(|(name, r)| {
            let made = r.storm_cycles_made(sizes.full_cycles);
            json!({
                "config": name,
                "cycles": sizes.full_cycles,
                "storm_per_sec": r.storm_per_sec,
                "storm_ratio": r.storm_per_sec / untraced_rate,
                "events_made": made,
                // Audit rows count records in their log instead (`records_on_disk`).
                "events_reported": if r.records_made.is_some() { Value::Null } else { json!(r.reported) },
                "missing_by_kind": missing_by_kind(r, sizes.full_cycles),
                "records_made": r.records_made,
                "records_on_disk": r.records_made.and(r.reported),
                "log_mb": r.log_bytes.map(|b| b as f64 / 1e6),
                "agent_cpu_s_per_100k_records": per_100k_records(r),
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
        "load_per_round": load_per_round,
        "configs": rows,
        "long_storm": long,
        "unavailable_backends": unavailable,
        "bpf_stats": profiles,
    });
    Ok(report)
}

/// Audit runs: agent CPU per 100,000 records the storm made.
fn per_100k_records(r: &Run) -> Option<f64> {
    match (r.cpu_s, r.records_made) {
        (Some(cpu), Some(n)) if n > 0 => Some(cpu * 100_000.0 / n as f64),
        _ => None,
    }
}

/// QEMU processes running now (other engineers' guests share the CPUs).
fn qemu_guests() -> usize {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| fs::read(e.path().join("comm")).is_ok_and(|c| c.starts_with(b"qemu-system")))
        .count()
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
        "records_made": rs.iter().map(|r| r.records_made).sum::<Option<u64>>(),
        "records_on_disk": rs.iter().map(|r| r.records_made.and(r.reported)).sum::<Option<u64>>(),
        "agent_cpu_s_per_100k_records": opt(per_100k_records),
    })
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
        Config::LsnTrace {
            backend,
            format: Format::Strace,
        } => lsn_trace_run_with(
            tools,
            backend,
            false,
            &["--format".into(), "strace".into()],
            cycles,
            tax,
        ),
        Config::LsnTrace { backend, format } => lsn_trace_run(
            tools,
            backend,
            *format == Format::Json,
            Output::Null,
            cycles,
            tax,
        ),
        Config::Audit { backend } => audit_run(tools, backend, cycles, tax),
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
