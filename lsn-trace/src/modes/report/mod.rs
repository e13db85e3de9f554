//! `lsn-trace report [LOG…]`: questions to the audit log, answered from the log alone (no
//! privileges): what listened at a moment and who opened it, a port's or a process's
//! timeline, what opened and failed in a window, what changed between two moments — with
//! the gaps (agent not running, lost events, incomplete snapshots) said where they matter.
//!
//! Pure parts, tested without a kernel: `time` (what the user types), `record` (a log
//! line), `replay` (records into the listener table), `view` (the answers), `render`
//! (table, timeline, JSON). I/O: `files` and `run` here.
pub mod files;
pub mod record;
pub mod render;
pub mod replay;
pub mod time;
pub mod view;

use std::{io::Write, path::PathBuf, process::ExitCode};

use anyhow::{Result, bail};

use self::{
    files::Lines,
    render::Out,
    view::{Driver, Filter, Query},
};
use crate::policy::{AddrMatch, Pattern, Policy};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Audit logs, read in rotation order whatever order they are given in (`.2.gz`, `.1`,
    /// then the current one); `-` for stdin. Default: /var/log/lsn-trace/audit.jsonl and
    /// its rotations beside it.
    #[arg(value_name = "LOG")]
    pub logs: Vec<String>,
    /// The listeners open at TIME: RFC 3339 (2026-12-02T03:12:00Z; without a zone, local
    /// time), 03:12, `yesterday 03:12`, -2h … Default: now, per the log's last record.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, conflicts_with_all = ["diff", "timeline", "since"])]
    pub at: Option<String>,
    /// Every open, failure and close of the filtered port or process, in order (with
    /// --since/--until: within that window).
    #[arg(long)]
    pub timeline: bool,
    /// Listeners opened from TIME on, and failures, counted (with --timeline: where the
    /// timeline starts).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// The end of the --since or --timeline window.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// What appeared and disappeared between two moments.
    #[arg(long, num_args = 2, value_names = ["T1", "T2"], allow_hyphen_values = true, conflicts_with_all = ["timeline", "since", "until"])]
    pub diff: Option<Vec<String>>,
    /// Only listeners (and failures) on this port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Only this address or prefix (127.0.0.1, 10.0.0.0/8, ::), or unix path.
    #[arg(long, value_name = "ADDR")]
    pub addr: Option<String>,
    /// Only processes of this name (comm).
    #[arg(long, value_name = "COMM")]
    pub comm: Option<String>,
    /// Only this systemd unit (nginx.service; a trailing * matches any rest).
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,
    /// Only this container (its id or a prefix of it, or its name).
    #[arg(long, value_name = "ID")]
    pub container: Option<String>,
    /// JSON Lines: each listener (or timeline entry) as its audit record, plus `policy`.
    #[arg(long)]
    pub json: bool,
    /// Decide each listener with this policy (TOML; see packaging/lsn-trace-policy.toml).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

fn filter(a: &ReportArgs) -> Result<Filter> {
    let one = |s: &str, what: &str| -> Result<_> {
        let mut v = AddrMatch::parse(s).map_err(|e| anyhow::anyhow!("--{what}: {e}"))?;
        Ok(v.remove(0))
    };
    Ok(Filter {
        port: a.port.map(u64::from),
        addr: a.addr.as_deref().map(|s| one(s, "addr")).transpose()?,
        comm: a.comm.clone(),
        unit: a
            .unit
            .as_deref()
            .map(|u| Pattern::parse(u).map_err(|e| anyhow::anyhow!("--unit: {e}")))
            .transpose()?,
        container: a.container.clone(),
    })
}

fn query(a: &ReportArgs, now: time::Micros) -> Result<Query> {
    let zone = time::Local;
    let t = |s: &str| time::parse(s, now, &zone).map_err(anyhow::Error::msg);
    if let Some(d) = &a.diff {
        let (t1, t2) = (t(&d[0])?, t(&d[1])?);
        if t2 < t1 {
            bail!("--diff T1 T2: T2 ({}) is before T1 ({})", d[1], d[0]);
        }
        return Ok(Query::Diff(t1, t2));
    }
    let since = a.since.as_deref().map(t).transpose()?;
    let until = a.until.as_deref().map(t).transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && u < s
    {
        bail!("--until is before --since");
    }
    if a.timeline {
        return Ok(Query::Timeline { from: since, until });
    }
    if let Some(from) = since {
        return Ok(Query::Window { from, until });
    }
    if until.is_some() {
        bail!("--until ends a --since or --timeline window: give one of them too");
    }
    Ok(Query::At(a.at.as_deref().map(t).transpose()?))
}

/// The logs to read, in order.
fn logs(a: &ReportArgs) -> Result<Vec<String>> {
    if !a.logs.is_empty() {
        return Ok(files::order(a.logs.clone()));
    }
    let base = PathBuf::from(files::DEFAULT_LOG);
    let found = files::with_rotations(&base).unwrap_or_default();
    if found.is_empty() {
        bail!(
            "no audit log at {} (where `lsn-trace audit` logs as a service): give the log's \
             path, or - for stdin",
            files::DEFAULT_LOG
        );
    }
    Ok(found)
}

pub fn run(args: ReportArgs, json: bool) -> ExitCode {
    match answer(args, json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("lsn-trace: report: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn answer(args: ReportArgs, json: bool) -> Result<()> {
    let policy = args.policy.as_deref().map(Policy::load).transpose()?;
    let filter = filter(&args)?;
    let query = query(&args, time::now())?;
    if matches!(query, Query::Timeline { .. }) && filter.is_empty() {
        bail!(
            "--timeline follows one port or process: give --port, --addr, --comm, --unit or --container"
        );
    }
    let logs = logs(&args)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let zone = time::Local;
    let out = Out {
        json: json || args.json,
        policy: policy.as_ref(),
        zone: &zone,
        w: &mut w,
    };
    let mut driver = Driver::new(query, filter, out);
    let mut skipped = 0u64;
    'files: for name in &logs {
        let shown = crate::text::terminal(files::display(name)).into_owned();
        let reader = files::open(name).map_err(|e| anyhow::anyhow!("cannot read {shown}: {e}"))?;
        let mut lines = Lines::new(reader);
        loop {
            let whole = match lines.next_line() {
                Ok(Some(w)) => w,
                Ok(None) => break,
                Err(e) => {
                    say!(
                        "lsn-trace: report: {shown}: unreadable after line {}: {e}; the rest of \
                         this file is skipped",
                        lines.number
                    );
                    skipped += 1;
                    break;
                }
            };
            if lines.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let n = lines.number;
            let parsed = std::str::from_utf8(&lines.buf)
                .map_err(|e| e.to_string())
                .and_then(|s| record::parse(s).map(|r| (s, r)).map_err(|e| e.to_string()));
            match parsed {
                Ok((line, rec)) => {
                    driver.feed(&rec, line)?;
                    if driver.done() {
                        break 'files;
                    }
                }
                Err(e) => {
                    skipped += 1;
                    let cut = if whole {
                        ""
                    } else {
                        " (the file's last line, without its newline: cut off, or being written)"
                    };
                    say!(
                        "lsn-trace: report: {shown}:{n}: not a whole audit record ({e}){cut}; skipped"
                    );
                }
            }
        }
    }
    let replay = driver.finish()?;
    let c = replay.counts;
    if skipped > 0 {
        say!("lsn-trace: report: {skipped} line(s) could not be read (above); the rest was");
    }
    if c.unknown_kinds > 0 {
        say!(
            "lsn-trace: report: {} records of kinds this version does not know were skipped",
            c.unknown_kinds
        );
    }
    std::io::stdout().flush()?;
    Ok(())
}
