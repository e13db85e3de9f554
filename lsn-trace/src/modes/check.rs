//! `lsn-trace check --policy FILE`: the listeners on this host now (audit's start-up
//! snapshot: every network namespace, with owners and identity), each decided by the
//! policy. Exit status 0 when all are allowed, 1 when any is not (for cron, CI and
//! configuration management), 2 when the check could not be made.
use std::{path::PathBuf, process::ExitCode};

use serde_json::Value;

use crate::{
    audit::{identity::Identities, snapshot_records},
    policy::{Decision, Policy},
    report::{
        render::{Out, Row},
        replay::Found,
        time,
    },
};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The policy (TOML; see packaging/lsn-trace-policy.toml).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// JSON Lines: each listener as an audit `snapshot` record, plus `policy`.
    #[arg(long)]
    pub json: bool,
    /// List only the listeners the policy does not allow.
    #[arg(long)]
    pub alerts_only: bool,
}

pub fn run(args: CheckArgs, json: bool) -> ExitCode {
    match check(&args, json || args.json) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            say!("lsn-trace: check: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether every listener is allowed.
fn check(args: &CheckArgs, json: bool) -> anyhow::Result<bool> {
    let policy = Policy::load(&args.policy)?;
    let mut ids = Identities::new();
    let (records, end) = snapshot_records(&mut ids, &mut |_, _| {});
    let mut alerts = 0;
    let total = records.len();
    let mut rows = Vec::new();
    for rec in records {
        let alert = policy.decide(&rec).decision == Decision::Alert;
        alerts += usize::from(alert);
        if args.alerts_only && !alert {
            continue;
        }
        let since = rec
            .get("time")
            .and_then(Value::as_str)
            .and_then(time::parse_record_time)
            .unwrap_or(0);
        rows.push(Row {
            rec,
            found: Found::Snapshot,
            since,
            diff: None,
            uncertain: None,
        });
    }
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let zone = time::Local;
    let mut out = Out {
        json,
        policy: Some(&policy),
        zone: &zone,
        w: &mut w,
    };
    out.table(rows)?;
    out.heading(&format!(
        "{alerts} of {total} listener{} not allowed by {}",
        if total == 1 { "" } else { "s" },
        crate::text::terminal(&args.policy.display().to_string()).into_owned()
    ))?;
    if end.get("owners_complete") == Some(&Value::Bool(false)) {
        out.note(
            "snapshot-incomplete",
            "not every listener's owner was found (the /proc scan ran out of time, or a \
             process's fds were not readable without root): those show no process, and rules \
             on who cannot match them",
        )?;
    }
    if let Some(errs) = end.get("errors").and_then(Value::as_array)
        && !errs.is_empty()
    {
        let list: Vec<&str> = errs.iter().filter_map(Value::as_str).collect();
        out.note(
            "snapshot-incomplete",
            &format!(
                "namespaces not seen: {}",
                crate::text::terminal(&list.join("; ")).into_owned()
            ),
        )?;
    }
    Ok(alerts == 0)
}
