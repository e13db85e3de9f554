//! The replay bench: the agent's cost per event in instructions, not seconds. A recorded
//! bind storm (`bench/replay/storm.raw`, made by [`record`]) goes through `lsn-trace replay`
//! — decode, story, then one output: `--json`, human, strace, the audit log — under
//! `valgrind --tool=callgrind`, which counts the instructions the agent itself executes
//! (user space: not the kernel's side of its write(2)s) the same on a loaded host as on an
//! idle one. Each format runs twice, with `SHORT` and `LONG` passes over the storm; the
//! difference divided by the events in between is the cost of one more event, without the
//! start-up both runs share. Calls to the C allocator are counted the same way.
//!
//! The records are attributed to the replaying process (`--as-pid self`), as the live
//! storm's are to a live workload: the audit log's identity look-ups then hit its cache as
//! they do live (it reads /proc again once a second, which a replay slowed down by
//! callgrind does more often per event than the live agent: a few dozen instructions per
//! event at most).
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::agent::{Agent, Output};
use super::workload::{EVENTS_PER_CYCLE, workload};
use crate::cmd::{self, capture, display};

/// The formats measured, as `lsn-trace replay --format` names them.
pub const FORMATS: [&str; 4] = ["json", "human", "strace", "audit"];
/// Passes over the storm of the two runs whose difference is measured.
const SHORT: u64 = 2;
const LONG: u64 = 22;
/// Storm cycles recorded by [`record`] (5 events each).
const RECORD_CYCLES: u64 = 20;

pub fn fixture() -> PathBuf {
    cmd::workspace_root()
        .join("bench")
        .join("replay")
        .join("storm.raw")
}

/// What one callgrind run counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counted {
    instructions: u64,
    allocations: u64,
}

/// Instructions and allocations per event of every format, as a report section.
pub fn measure(lsn_trace: &Path) -> Result<Value> {
    let fixture = fixture();
    let events = events_in(lsn_trace, &fixture)?;
    let out_dir = cmd::target_dir().join("bench").join("callgrind");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut rows = Vec::new();
    for format in FORMATS {
        let [short, long] = [SHORT, LONG].map(|passes| {
            let out = out_dir.join(format!("{format}-{passes}.out"));
            callgrind(lsn_trace, &fixture, format, passes, &out)
        });
        let (short, long) = (short?, long?);
        let more = ((LONG - SHORT) * events) as f64;
        let per_event = |f: fn(&Counted) -> u64| (f(&long) as f64 - f(&short) as f64) / more;
        let row = json!({
            "format": format,
            "instructions_per_event": per_event(|c| c.instructions),
            "allocations_per_event": per_event(|c| c.allocations),
            "instructions_at_start": short.instructions as f64
                - per_event(|c| c.instructions) * (SHORT * events) as f64,
            "profile": out_dir.join(format!("{format}-{LONG}.out")),
        });
        eprintln!(
            "bench: replay --format {format}: {:.0} instructions, {:.2} allocations per event",
            row["instructions_per_event"].as_f64().unwrap_or(f64::NAN),
            row["allocations_per_event"].as_f64().unwrap_or(f64::NAN),
        );
        rows.push(row);
    }
    Ok(json!({
        "fixture": fixture.strip_prefix(cmd::workspace_root()).unwrap_or(&fixture),
        "events": events,
        "passes": [SHORT, LONG],
        "valgrind": capture(Command::new("valgrind").arg("--version"))
            .map(|v| v.trim().to_owned()),
        "formats": rows,
    }))
}

/// Events in the recording: the lines of one pass of `--format json`.
fn events_in(lsn_trace: &Path, fixture: &Path) -> Result<u64> {
    let mut cmd = Command::new(lsn_trace);
    cmd.arg("replay").arg(fixture).args(["--format", "json"]);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run `{}`", display(&cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            display(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let n = out.stdout.iter().filter(|&&b| b == b'\n').count() as u64;
    if n == 0 {
        bail!("{} holds no event", fixture.display());
    }
    Ok(n)
}

fn callgrind(
    lsn_trace: &Path,
    fixture: &Path,
    format: &str,
    passes: u64,
    out: &Path,
) -> Result<Counted> {
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=callgrind", "--compress-strings=no"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(lsn_trace)
        .arg("replay")
        .arg(fixture)
        .args(["--format", format, "--as-pid", "self", "--repeat"])
        .arg(passes.to_string());
    let run = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("could not run `{}`", display(&cmd)))?;
    if !run.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            display(&cmd),
            run.status,
            String::from_utf8_lossy(&run.stderr).trim()
        );
    }
    let text = fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    parse(&text).with_context(|| format!("{}: no instruction total", out.display()))
}

/// The C allocator's entry points: every Rust allocation ends in one of them.
const ALLOCATORS: [&str; 5] = [
    "malloc",
    "calloc",
    "realloc",
    "posix_memalign",
    "aligned_alloc",
];

/// The total of a callgrind output file (`--compress-strings=no`) and its calls into the
/// allocator.
fn parse(text: &str) -> Option<Counted> {
    let mut counted = Counted::default();
    let mut total = None;
    let mut callee_allocates = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("cfn=") {
            callee_allocates = ALLOCATORS.contains(&name.trim());
        } else if let Some(calls) = line.strip_prefix("calls=") {
            if callee_allocates {
                counted.allocations += calls
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            callee_allocates = false;
        } else if let Some(t) = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))
        {
            total = t.trim().parse().ok().or(total);
        }
    }
    counted.instructions = total?;
    Some(counted)
}

/// The report's rows as a Markdown table.
pub fn render(r: &Value) -> String {
    let mut s = format!(
        "\n| replay of {} ({} events × {}−{} passes, callgrind) | instructions per event | \
         allocations per event |\n| --- | --- | --- |\n",
        r["fixture"].as_str().unwrap_or("?"),
        r["events"],
        r["passes"][1],
        r["passes"][0],
    );
    for f in r["formats"].as_array().into_iter().flatten() {
        s += &format!(
            "| {} | {:.0} | {:.2} |\n",
            f["format"].as_str().unwrap_or("?"),
            f["instructions_per_event"].as_f64().unwrap_or(f64::NAN),
            f["allocations_per_event"].as_f64().unwrap_or(f64::NAN),
        );
    }
    s
}

/// Two replay sections side by side: instructions and allocations per event before (an
/// earlier run's) and after (this run's), per format.
pub fn render_against(before: &Value, after: &Value) -> String {
    let find = |r: &Value, f: &str, k: &str| -> Option<f64> {
        r["formats"]
            .as_array()?
            .iter()
            .find(|x| x["format"] == f)?
            .get(k)?
            .as_f64()
    };
    let mut s = String::from(
        "\n| replay (callgrind, per event) | instructions before | after | after / before | \
         allocations before | after |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for f in after["formats"].as_array().into_iter().flatten() {
        let name = f["format"].as_str().unwrap_or("?");
        let num = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "—".into(), |x| format!("{x:.digits$}"))
        };
        let (ib, ia) = (
            find(before, name, "instructions_per_event"),
            find(after, name, "instructions_per_event"),
        );
        s += &format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            num(ib, 0),
            num(ia, 0),
            match (ib, ia) {
                (Some(b), Some(a)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "—".into(),
            },
            num(find(before, name, "allocations_per_event"), 2),
            num(find(after, name, "allocations_per_event"), 2),
        );
    }
    if let Some(c) = before["commit"].as_str() {
        s += &format!("\nBefore: commit {c}.\n");
    }
    s
}

/// Record the storm again (when `wire::Event` changed): lsn-trace with `--record-raw`
/// while the workload runs `RECORD_CYCLES` cycles, every record of them kept.
pub fn record(lsn_trace: &Path, storm: &Path) -> Result<()> {
    let out = fixture();
    let extra = [
        "--comm".into(),
        "lsn-bench".into(),
        "--record-raw".into(),
        out.clone().into_os_string(),
    ];
    let mut agent = Agent::start_with(lsn_trace, "auto", true, Output::Null, &extra)?;
    workload(Command::new(storm).args(["storm".to_owned(), RECORD_CYCLES.to_string()]))?;
    agent.wait_idle();
    let stopped = agent.stop()?;
    let want = RECORD_CYCLES * EVENTS_PER_CYCLE;
    if stopped.events != want || stopped.lost != 0 {
        bail!(
            "the recording holds {} events ({} lost), not the storm's {want}: record again",
            stopped.events,
            stopped.lost
        );
    }
    eprintln!(
        "bench: recorded {want} events to {}. The golden outputs beside it were made from the \
         previous recording: `LSN_REPLAY_BLESS=1 cargo test --release -p lsn-trace --test \
         replay` writes new ones; read their diff (times, ports and inodes only) before \
         committing both.",
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_allocator_calls() {
        let text = "events: Ir\nfn=main\n0 5\ncfn=malloc\ncalls=3 0\n0 40\ncfn=free\ncalls=2 0\n\
                    0 9\ncfn=realloc\ncalls=1 0\n0 7\nfn=malloc\n0 13\ntotals: 1234\n";
        assert_eq!(
            parse(text),
            Some(Counted {
                instructions: 1234,
                allocations: 4
            })
        );
        assert_eq!(parse("events: Ir\n"), None);
    }
}
