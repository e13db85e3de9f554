//! What each of lsn-trace's eBPF programs costs in the kernel (kernel.bpf_stats_enabled).
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::agent::{Agent, Output};
use super::workload::{Tools, workload, workload_args};
use crate::cmd;

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
pub(super) fn bpf_profiles(
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
        let stats = prog_stats(agent.pid());
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

/// The run counts and times of process `pid`'s programs, as the kernel keeps them while
/// kernel.bpf_stats_enabled is 1: from /proc/PID/fdinfo of its program fds.
fn prog_stats(pid: u32) -> Vec<ProgStat> {
    let dir = format!("/proc/{pid}/fdinfo");
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
