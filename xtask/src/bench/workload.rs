//! The workload (`lsn-bench`) run once, directly or under a tracer that starts it, and
//! what one run measured.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cmd::{self, display};

/// Events lsn-trace reports per storm cycle.
pub(super) const EVENTS_PER_CYCLE: u64 = 5;
/// The same, by kind (`event` key of the JSON records).
pub(super) const EVENTS_BY_KIND: [(&str, u64); 4] =
    [("setsockopt", 2), ("bind", 1), ("listen", 1), ("close", 1)];

/// One run of the workload under one configuration.
#[derive(Clone, Debug, Default)]
pub(super) struct Run {
    pub(super) storm_per_sec: f64,
    pub(super) tax_ns: f64,
    /// lsn-trace only: from its start to its "attached" line.
    pub(super) attach_ms: Option<f64>,
    /// lsn-trace only: user+system CPU of the agent, its peak RSS, its stop line.
    pub(super) cpu_s: Option<f64>,
    pub(super) peak_rss_kb: Option<u64>,
    pub(super) stop_events: Option<u64>,
    pub(super) lost: Option<u64>,
    /// Counted runs: lines of the workload's pid in the agent's JSON output.
    pub(super) reported: Option<u64>,
    /// Counted runs: the workload's records by event kind.
    pub(super) reported_by_kind: Option<HashMap<String, u64>>,
    pub(super) workload_pid: u32,
    /// Audit runs: the records the storm made (`reported` then counts those in the log).
    pub(super) records_made: Option<u64>,
    /// Audit runs: the log's size at the end.
    pub(super) log_bytes: Option<u64>,
}

pub(super) struct Tools {
    pub(super) lsn_trace: PathBuf,
    pub(super) workload: PathBuf,
}

impl Tools {
    /// The release builds in the target directory.
    pub(super) fn built() -> Tools {
        Tools {
            lsn_trace: cmd::lsn_trace_bin(),
            workload: cmd::target_dir().join("release").join("lsn-bench"),
        }
    }
}

impl Run {
    pub(super) fn storm_cycles_made(&self, cycles: u64) -> u64 {
        cycles * EVENTS_PER_CYCLE
    }
}

pub(super) fn workload_args(cycles: u64, tax: u64) -> [String; 3] {
    ["run".into(), cycles.to_string(), tax.to_string()]
}

/// Run the workload (directly or under a tracer that starts it) and parse its two lines.
pub(super) fn workload(cmd: &mut Command) -> Result<Run> {
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
