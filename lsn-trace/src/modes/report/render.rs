//! How answers look: an aligned table (like `ss -tlnp`, with the verdict and who), one
//! line per timeline entry, notes for gaps; or JSON Lines carrying the audit records' own
//! keys, plus `policy`. Every string from a record is escaped before it reaches a terminal.
use std::io::{self, Write};

use serde_json::{Map, Value, json};

use super::{
    replay::{Found, Gap, GapKind},
    time::{self, Micros, Zone},
};
use crate::policy::{self, Policy};

pub struct Out<'a> {
    pub json: bool,
    pub policy: Option<&'a Policy>,
    pub zone: &'a dyn Zone,
    pub w: &'a mut dyn Write,
}

/// A listener of a table: its record, how it became known, and a mark (`+`, `-`, or why
/// it is uncertain).
pub struct Row {
    pub rec: Map<String, Value>,
    pub found: Found,
    pub since: Micros,
    /// `diff`: "appeared" / "disappeared".
    pub diff: Option<&'static str>,
    /// Why it may not have been open at that moment.
    pub uncertain: Option<String>,
}

pub fn parse_map(line: &str) -> Map<String, Value> {
    match serde_json::from_str(line) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn s<'a>(rec: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    rec.get(key).and_then(Value::as_str)
}

fn esc(v: &str) -> String {
    crate::text::terminal(v).into_owned()
}

pub fn rfc3339(t: Micros) -> String {
    crate::output::rfc3339(t.max(0) as u64 * 1000)
}

/// `127.0.0.1:80`, `[::]:80`, `/run/x.sock`, as ss writes them.
pub fn address(rec: &Map<String, Value>) -> String {
    let addr = s(rec, "addr");
    if let Some(a) = addr
        && a.starts_with(['/', '@'])
    {
        return esc(a);
    }
    let port = policy::listener_port(rec).map_or("?".into(), |p| p.to_string());
    match addr {
        Some(a) if a.contains(':') => format!("[{}]:{port}", esc(a)),
        Some(a) => format!("{}:{port}", esc(a)),
        None => format!("?:{port}"),
    }
}

/// `nginx[1190]`, or `-` when no process owns it (or none was found).
pub fn process(rec: &Map<String, Value>) -> String {
    match (s(rec, "comm"), rec.get("pid").and_then(Value::as_u64)) {
        (Some(c), Some(p)) => format!("{}[{p}]", esc(c)),
        (None, Some(p)) => format!("[{p}]"),
        _ => "-".into(),
    }
}

fn user(rec: &Map<String, Value>) -> String {
    match (s(rec, "user"), rec.get("uid").and_then(Value::as_u64)) {
        (Some(u), _) => esc(u),
        (None, Some(uid)) => uid.to_string(),
        _ => "-".into(),
    }
}

/// The pod, the container, or the systemd unit.
fn place(rec: &Map<String, Value>) -> String {
    if let (Some(ns), Some(pod)) = (s(rec, "k8s_namespace"), s(rec, "k8s_pod")) {
        return format!("pod {}/{}", esc(ns), esc(pod));
    }
    if let Some(name) = s(rec, "container_name") {
        return format!("container {}", esc(name));
    }
    if let Some(id) = s(rec, "container_id") {
        let rt = s(rec, "container_runtime").unwrap_or("container");
        return format!("{}:{}", esc(rt), esc(&id[..id.len().min(12)]));
    }
    s(rec, "systemd_unit").map_or("-".into(), esc)
}

fn policy_cell(rec: &Map<String, Value>) -> Option<String> {
    let p = rec.get("policy")?.as_object()?;
    Some(format!(
        "{} ({})",
        esc(p.get("decision")?.as_str()?),
        esc(p.get("rule").and_then(Value::as_str).unwrap_or("?"))
    ))
}

impl Out<'_> {
    /// The record with the policy's decision, where one applies: the policy given now, else
    /// the one the agent recorded (`audit --policy`).
    pub fn decide(&self, mut rec: Map<String, Value>) -> Map<String, Value> {
        if let Some(p) = self.policy
            && s(&rec, "record").is_some_and(policy::applies_to)
        {
            rec.insert("policy".into(), p.decide(&rec).to_json());
        }
        rec
    }

    fn line(&mut self, text: &str) -> io::Result<()> {
        self.w.write_all(text.as_bytes())?;
        self.w.write_all(b"\n")
    }

    pub fn object(&mut self, v: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut *self.w, v)?;
        self.w.write_all(b"\n")
    }

    pub fn heading(&mut self, text: &str) -> io::Result<()> {
        if self.json { Ok(()) } else { self.line(text) }
    }

    /// A table of listeners, aligned.
    pub fn table(&mut self, rows: Vec<Row>) -> io::Result<()> {
        let mut rows: Vec<Row> = rows
            .into_iter()
            .map(|mut r| {
                r.rec = self.decide(std::mem::take(&mut r.rec));
                r
            })
            .collect();
        rows.sort_by_key(|r| {
            (
                r.diff,
                policy::listener_port(&r.rec),
                s(&r.rec, "protocol").map(str::to_owned),
                s(&r.rec, "addr").map(str::to_owned),
                r.rec.get("pid").and_then(Value::as_u64),
            )
        });
        if self.json {
            for r in rows {
                let mut rec = r.rec;
                if let Some(d) = r.diff {
                    rec.insert("diff".into(), d.into());
                }
                if let Some(u) = r.uncertain {
                    rec.insert("uncertain".into(), u.into());
                }
                self.object(&Value::Object(rec))?;
            }
            return Ok(());
        }
        let with_policy = rows.iter().any(|r| r.rec.contains_key("policy"));
        let with_diff = rows.iter().any(|r| r.diff.is_some());
        let mut cells: Vec<Vec<String>> = Vec::new();
        let mut head: Vec<&str> = Vec::new();
        if with_diff {
            head.push("");
        }
        head.extend([
            "PROTO",
            "ADDRESS",
            "VERDICT",
            "PROCESS",
            "USER",
            "UNIT/CONTAINER",
            "SINCE",
            "FOUND",
        ]);
        if with_policy {
            head.push("POLICY");
        }
        head.push("EXE");
        cells.push(head.iter().map(|h| h.to_string()).collect());
        for r in &rows {
            let mut c = Vec::new();
            if with_diff {
                c.push(if r.diff == Some("appeared") { "+" } else { "-" }.into());
            }
            c.push(s(&r.rec, "protocol").map_or("-".into(), esc));
            c.push(address(&r.rec));
            c.push(s(&r.rec, "verdict").map_or("-".into(), esc));
            c.push(process(&r.rec));
            c.push(user(&r.rec));
            c.push(place(&r.rec));
            c.push(match r.found {
                Found::Opened => time::local(r.since, self.zone),
                Found::Snapshot => format!("<={}", time::local(r.since, self.zone)),
            });
            c.push(match (&r.uncertain, r.found) {
                (Some(_), _) => "uncertain".into(),
                (None, Found::Opened) => "opened".into(),
                (None, Found::Snapshot) => "snapshot".into(),
            });
            if with_policy {
                c.push(policy_cell(&r.rec).unwrap_or("-".into()));
            }
            c.push(s(&r.rec, "exe").map_or("-".into(), esc));
            cells.push(c);
        }
        let cols = cells[0].len();
        let widths: Vec<usize> = (0..cols)
            .map(|i| {
                cells
                    .iter()
                    .map(|c| c[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for c in &cells {
            let mut line = String::new();
            for (i, cell) in c.iter().enumerate() {
                if i + 1 == cols {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            self.line(line.trim_end())?;
        }
        for r in &rows {
            if let Some(u) = &r.uncertain {
                self.line(&format!("  ? {} {}: {u}", address(&r.rec), process(&r.rec)))?;
            }
        }
        Ok(())
    }

    /// One timeline entry: the record's moment, what happened, where, who, and why.
    pub fn entry(
        &mut self,
        what: &str,
        t: Micros,
        rec: Map<String, Value>,
        detail: Option<String>,
    ) -> io::Result<()> {
        let rec = self.decide(rec);
        if self.json {
            let mut rec = rec;
            if let Some(d) = detail.filter(|_| what == "gone") {
                rec.insert("gone".into(), d.into());
            }
            return self.object(&Value::Object(rec));
        }
        let mut line = format!(
            "{}  {what:<8} {:<6} {:<24} {:<20} {:<8}",
            local_us(t, self.zone),
            s(&rec, "protocol").map_or("-".into(), esc),
            address(&rec),
            process(&rec),
            user(&rec),
        );
        match what {
            "failed" => {
                line.push_str(&s(&rec, "error").map_or("failed".into(), esc));
                if let Some(h) = holders(&rec) {
                    line.push_str(&format!(", held by {h}"));
                }
            }
            "open" | "snapshot" => {
                line.push_str(&s(&rec, "verdict").map_or("-".into(), esc));
                if let Some(p) = policy_cell(&rec) {
                    line.push_str(&format!("  policy: {p}"));
                }
            }
            _ => {}
        }
        if let Some(d) = &detail
            && what != "failed"
        {
            line.push_str("  ");
            line.push_str(d);
        }
        self.line(line.trim_end())?;
        if what == "failed"
            && let Some(e) = s(&rec, "explanation")
        {
            self.line(&format!("    ↳ {}", esc(e)))?;
        }
        Ok(())
    }

    pub fn gap(&mut self, g: &Gap) -> io::Result<()> {
        if self.json {
            let mut v = json!({
                "record": "gap",
                "kind": gap_kind(&g.kind),
                "from": rfc3339(g.from),
                "to": rfc3339(g.to),
                "text": gap_text(g, self.zone),
            });
            if let GapKind::Lost { count, .. } = &g.kind {
                v["count"] = (*count).into();
            }
            return self.object(&v);
        }
        let text = gap_text(g, self.zone);
        self.line(&format!("! {text}"))
    }

    /// A note that is not a gap of the log (how the answer should be read).
    pub fn note(&mut self, kind: &str, text: &str) -> io::Result<()> {
        if self.json {
            return self.object(&json!({"record": "note", "kind": kind, "text": text}));
        }
        self.line(&format!("! {text}"))
    }
}

/// `python3[14053] (LISTEN 127.0.0.1:60431)`, for each holder of a failed bind's port.
fn holders(rec: &Map<String, Value>) -> Option<String> {
    let list = rec.get("holders")?.as_array()?;
    let parts: Vec<String> = list
        .iter()
        .filter_map(Value::as_object)
        .map(|h| {
            let who = process(h);
            let who = if who == "-" { "no process".into() } else { who };
            format!(
                "{who} ({} {})",
                s(h, "state").map_or("?".into(), esc),
                address(h)
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn local_us(t: Micros, zone: &dyn Zone) -> String {
    format!("{}.{:06}", time::local(t, zone), t.rem_euclid(1_000_000))
}

pub fn gap_kind(k: &GapKind) -> &'static str {
    match k {
        GapKind::NotRunning => "not-running",
        GapKind::EndedWithoutStop => "ended-without-stop",
        GapKind::LogBeginsMidRun => "log-begins-mid-run",
        GapKind::Lost { .. } => "lost",
        GapKind::SnapshotIncomplete { .. } => "snapshot-incomplete",
    }
}

pub fn gap_text(g: &Gap, zone: &dyn Zone) -> String {
    let (from, to) = (time::local(g.from, zone), time::local(g.to, zone));
    match &g.kind {
        GapKind::NotRunning => format!("unknown between {from} and {to} (agent not running)"),
        GapKind::EndedWithoutStop => format!(
            "unknown between {from} and {to} (agent not running: its run ended without a stop \
             record — killed or crashed — and its last records may be missing)"
        ),
        GapKind::LogBeginsMidRun => format!(
            "the log begins at {from} inside a run (its earlier files are gone): listeners \
             opened before {from} are unknown until the snapshot at {to}"
        ),
        GapKind::Lost { count, reasons } => {
            let why = if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", esc(&reasons.join("; ")))
            };
            let when = if from == to {
                format!("at {from}")
            } else {
                format!("between {from} and {to}")
            };
            format!(
                "{count} events lost {when}{why}: listeners opened or closed then may be \
                 missing"
            )
        }
        GapKind::SnapshotIncomplete {
            owners_complete,
            errors,
        } => {
            let mut why = Vec::new();
            if !owners_complete {
                why.push(
                    "not every listener's owner was found (the /proc scan ran out of time): \
                     those show no process"
                        .to_string(),
                );
            }
            if !errors.is_empty() {
                why.push(format!("not seen: {}", esc(&errors.join("; "))));
            }
            format!("the snapshot at {from} is incomplete: {}", why.join("; "))
        }
    }
}
