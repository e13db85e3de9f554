//! `cargo xtask bench`: what tracing costs, side by side with strace and bpftrace.
//!
//! The workload is `lsn-bench` (crate `bench/`): a bind storm (5 reported events per cycle:
//! 2 setsockopt, bind, listen, the listener's close) then a getppid loop (the tax every
//! other syscall on the host pays). Each round runs every configuration once, in turn, so
//! that a burst of load from elsewhere on the machine hits all of them alike; figures are
//! medians over the rounds, storm throughput a ratio to the same round's untraced run.
//! Then one long storm per lsn-trace backend with its JSON piped here and counted: every
//! event the workload made must be reported, none lost.

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

use crate::cmd::{self, display, is_root, run};
use crate::setup::{self, AptPackage};

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
    /// Storm cycles per run in the rounds.
    #[arg(long, default_value_t = 200_000)]
    cycles: u64,
    /// getppid calls per run of the tax probe.
    #[arg(long, default_value_t = 500_000)]
    tax_calls: u64,
    /// Storm cycles of the long run per backend whose JSON is counted (0: skip it).
    #[arg(long, default_value_t = 1_000_000)]
    full_cycles: u64,
    /// Where to write the results (default: target/bench/latest.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Debug)]
enum Config {
    Untraced,
    LsnTrace { backend: String, json: bool },
    Strace,
    BpftracePrintf,
    BpftraceCount,
}

impl Config {
    fn name(&self) -> String {
        match self {
            Config::Untraced => "untraced".into(),
            Config::LsnTrace { backend, json } => format!(
                "lsn-trace {backend} {} > /dev/null",
                if *json { "--json" } else { "(human)" }
            ),
            Config::Strace => "strace -f -e trace=bind,listen,setsockopt".into(),
            Config::BpftracePrintf => "bpftrace, printf per event".into(),
            Config::BpftraceCount => "bpftrace, count in kernel (floor)".into(),
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

pub fn bench(args: &Args) -> Result<()> {
    if !is_root() {
        bail!(
            "`cargo xtask bench` must run as root: it loads eBPF programs (lsn-trace, bpftrace) \
             and reads the agents' resource usage"
        );
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
    ])?;
    let lsn_trace = crate::run::build_lsn_trace()?;
    run(Command::new("cargo")
        .current_dir(cmd::workspace_root())
        .args(["build", "--release", "-p", "lsn-bench"]))?;
    let tools = Tools {
        lsn_trace,
        workload: cmd::target_dir().join("release").join("lsn-bench"),
    };

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
        Config::Strace,
        Config::BpftracePrintf,
        Config::BpftraceCount,
    ]);

    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); configs.len()];
    for round in 1..=args.rounds {
        for (i, c) in configs.iter().enumerate() {
            eprintln!("bench: round {round}/{}: {}", args.rounds, c.name());
            let r = run_config(&tools, c, args.cycles, args.tax_calls)
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
    let untraced: Vec<f64> = runs[0].iter().map(|r| r.storm_per_sec).collect();
    let untraced_tax = median(runs[0].iter().map(|r| r.tax_ns).collect());
    let untraced_rate = median(untraced.clone());

    let mut full = Vec::new();
    if args.full_cycles > 0 {
        for b in &backends {
            eprintln!(
                "bench: long storm, {} cycles, lsn-trace --backend {b} --json counted",
                args.full_cycles
            );
            let r = lsn_trace_run(&tools, b, true, Output::Count, args.full_cycles, 0)?;
            full.push((b.clone(), r));
        }
    }
    let load_after = loadavg();

    let rows: Vec<Value> = configs
        .iter()
        .zip(&runs)
        .map(|(c, rs)| summarize(c, rs, &untraced, untraced_tax))
        .collect();
    let long: Vec<Value> = full
        .iter()
        .map(|(b, r)| {
            let made = r.storm_cycles_made(args.full_cycles);
            json!({
                "config": format!("lsn-trace {b} --json, counted"),
                "cycles": args.full_cycles,
                "storm_per_sec": r.storm_per_sec,
                "storm_ratio": r.storm_per_sec / untraced_rate,
                "events_made": made,
                "events_reported": r.reported,
                "missing_by_kind": missing_by_kind(r, args.full_cycles),
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
        "rounds": args.rounds,
        "cycles": args.cycles,
        "tax_calls": args.tax_calls,
        "events_per_cycle": EVENTS_PER_CYCLE,
        "untraced_storm_per_sec": untraced_rate,
        "untraced_getppid_ns": untraced_tax,
        "configs": rows,
        "long_storm": long,
        "unavailable_backends": unavailable,
    });
    let table = render(&report);
    println!("{table}");
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| cmd::target_dir().join("bench").join("latest.json"));
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("results: {}", out.display());
    Ok(())
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

fn summarize(c: &Config, rs: &[Run], untraced: &[f64], untraced_tax: f64) -> Value {
    let ratios: Vec<f64> = rs
        .iter()
        .zip(untraced)
        .map(|(r, u)| r.storm_per_sec / u)
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

/// The table, as Markdown (the README carries it as is).
fn render(r: &Value) -> String {
    let mut s = String::new();
    s += &format!(
        "Machine: {}; load after: {}\n",
        machine_line(&r["machine"]),
        r["load_after"].as_str().unwrap_or("?")
    );
    s += &format!(
        "{} interleaved rounds of {} storm cycles ({} events each) + {} getppid; untraced: \
         {:.0} cycles/s, getppid {:.1} ns\n\n",
        r["rounds"],
        r["cycles"],
        r["cycles"].as_u64().unwrap_or(0) * EVENTS_PER_CYCLE,
        r["tax_calls"],
        r["untraced_storm_per_sec"].as_f64().unwrap_or(f64::NAN),
        r["untraced_getppid_ns"].as_f64().unwrap_or(f64::NAN),
    );
    s += "| configuration | storm ratio median [min–max] | cycles/s | getppid tax | lost \
          | agent CPU s/100k ev | peak RSS MB | attach ms |\n";
    s += "| --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for c in r["configs"].as_array().into_iter().flatten() {
        let ratio = &c["storm_ratio"];
        s += &format!(
            "| {} | {:.3} [{:.3}–{:.3}] | {} | {:+.1} ns ({:+.1}%) | {} | {} | {} | {} |\n",
            c["config"].as_str().unwrap_or("?"),
            ratio["median"].as_f64().unwrap_or(f64::NAN),
            ratio["min"].as_f64().unwrap_or(f64::NAN),
            ratio["max"].as_f64().unwrap_or(f64::NAN),
            f(c, "storm_per_sec", |x| format!("{x:.0}")),
            c["tax_ns"].as_f64().unwrap_or(f64::NAN),
            c["tax_pct"].as_f64().unwrap_or(f64::NAN),
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
    json!({
        "nproc": thread::available_parallelism().map_or(0, |n| n.get()),
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
        Config::Strace => workload(
            Command::new("strace")
                .args([
                    "-f",
                    "-e",
                    "trace=bind,listen,setsockopt",
                    "-o",
                    "/dev/null",
                ])
                .arg(&tools.workload)
                .args(workload_args(cycles, tax)),
        ),
        Config::BpftracePrintf | Config::BpftraceCount => {
            let action = if matches!(c, Config::BpftracePrintf) {
                r#"printf("%d %d %s %s %d\n", pid, tid, comm, probe, args->ret);"#
            } else {
                "@[probe] = count();"
            };
            let prog = format!(
                "tracepoint:syscalls:sys_exit_bind,tracepoint:syscalls:sys_exit_listen,\
                 tracepoint:syscalls:sys_exit_setsockopt {{ {action} }}"
            );
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
    if run.storm_per_sec == 0.0 {
        bail!("`{}` printed no storm result: {stdout}", display(cmd));
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

struct Stopped {
    cpu_s: f64,
    peak_rss_kb: u64,
    events: u64,
    lost: u64,
    per_pid: Option<Counts>,
}

impl Agent {
    fn start(bin: &Path, backend: &str, json: bool, output: Output) -> Result<Agent> {
        let mut cmd = Command::new(bin);
        cmd.args(["--backend", backend]);
        if json {
            cmd.arg("--json");
        }
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
    let mut run = workload(Command::new(&tools.workload).args(workload_args(cycles, tax)))?;
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
