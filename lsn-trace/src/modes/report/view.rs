//! The questions, answered while the log streams by: the listeners at a moment (`At`),
//! every open, failure and close of a port or process (`Timeline`), what opened and failed
//! in a window (`Window`), what appeared and disappeared between two moments (`Diff`).
//! Each keeps what its answer needs (a copy of the table at most), never the records.
use std::{collections::HashMap, io};

use serde_json::Value;

use super::{
    record::{Key, Kind, Rec, Who},
    render::{self, Out, Row},
    replay::{Change, Closing, Gap, GapKind, Listener, Replay, RunState},
    time::{self, Micros},
};
use crate::policy::{AddrMatch, Pattern};

/// `--port --addr --comm --unit --container`: every given one must hold.
#[derive(Default)]
pub struct Filter {
    pub port: Option<u64>,
    pub addr: Option<AddrMatch>,
    pub comm: Option<String>,
    pub unit: Option<Pattern>,
    pub container: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.port.is_none()
            && self.addr.is_none()
            && self.comm.is_none()
            && self.unit.is_none()
            && self.container.is_none()
    }

    pub fn holds(&self, w: &Who) -> bool {
        self.port.is_none_or(|p| w.port == Some(p))
            && self
                .addr
                .as_ref()
                .is_none_or(|a| w.addr.is_some_and(|v| a.holds(v)))
            && self
                .comm
                .as_ref()
                .is_none_or(|c| w.comm == Some(c.as_str()))
            && self
                .unit
                .as_ref()
                .is_none_or(|u| w.unit.is_some_and(|v| u.holds(v)))
            && self.container.as_ref().is_none_or(|c| {
                w.container_id.is_some_and(|id| id.starts_with(c.as_str()))
                    || w.container_name == Some(c.as_str())
            })
    }

    fn holds_line(&self, line: &str) -> bool {
        match super::record::parse(line) {
            Ok(r) => self.holds(&r.who()),
            Err(_) => false,
        }
    }
}

pub enum Query {
    /// None: now, per the last record.
    At(Option<Micros>),
    Timeline {
        from: Option<Micros>,
        until: Option<Micros>,
    },
    Window {
        from: Micros,
        until: Option<Micros>,
    },
    Diff(Micros, Micros),
}

/// The table at a moment, with what the answer depends on.
#[derive(Clone)]
struct Capture {
    table: HashMap<Key, Listener>,
    state: RunState,
    last_time: Option<Micros>,
    synced: bool,
    /// Lost events and snapshot shortfalls since the table was last synchronized.
    recent: Vec<Gap>,
}

/// A moment that fell while the agent was not running: what the next snapshot says.
struct Resolve {
    from: Micros,
    to: Option<Micros>,
    appeared: Vec<Key>,
    after: Option<HashMap<Key, Listener>>,
}

pub struct Driver<'a> {
    query: Query,
    filter: Filter,
    pub replay: Replay,
    out: Out<'a>,
    changes: Vec<Change>,
    recent: Vec<Gap>,
    first: Option<Capture>,
    second: Option<Capture>,
    resolve: Option<Resolve>,
    /// Gaps met along a timeline, window or diff, in order.
    gaps: Vec<Gap>,
    failures: HashMap<(String, String, String, String), Failures>,
    /// Lost records of a timeline not printed yet (consecutive ones print as one).
    lost: Option<Gap>,
    listed: u64,
    /// The first record's time (the replay may stop before applying it).
    log_begins: Option<Micros>,
    done: bool,
}

struct Failures {
    count: u64,
    first: Micros,
    last: Micros,
    example: String,
}

/// Consecutive lost records as one gap.
fn merge_lost(into: &mut Option<Gap>, g: &Gap) -> bool {
    let GapKind::Lost { count, reasons } = &g.kind else {
        return false;
    };
    match into {
        Some(Gap {
            kind:
                GapKind::Lost {
                    count: c,
                    reasons: r,
                },
            to,
            ..
        }) => {
            *c += count;
            for reason in reasons {
                if !r.contains(reason) {
                    r.push(reason.clone());
                }
            }
            *to = g.to;
        }
        _ => *into = Some(g.clone()),
    }
    true
}

fn push_gap(list: &mut Vec<Gap>, g: &Gap) {
    let mut last = list.pop();
    if matches!(
        last,
        Some(Gap {
            kind: GapKind::Lost { .. },
            ..
        })
    ) && merge_lost(&mut last, g)
    {
        list.extend(last);
        return;
    }
    list.extend(last);
    list.push(g.clone());
}

impl<'a> Driver<'a> {
    pub fn new(query: Query, filter: Filter, out: Out<'a>) -> Driver<'a> {
        Driver {
            query,
            filter,
            replay: Replay::new(),
            out,
            changes: Vec::new(),
            recent: Vec::new(),
            first: None,
            second: None,
            resolve: None,
            gaps: Vec::new(),
            failures: HashMap::new(),
            lost: None,
            listed: 0,
            log_begins: None,
            done: false,
        }
    }

    fn capture(&self) -> Capture {
        Capture {
            table: self.replay.table.clone(),
            state: self.replay.state,
            last_time: self.replay.last_time,
            synced: self.replay.synced,
            recent: self.recent.clone(),
        }
    }

    pub fn done(&self) -> bool {
        self.done
    }

    /// Take one record. After `done()`, the answer needs no more.
    pub fn feed(&mut self, rec: &Rec, line: &str) -> io::Result<()> {
        let t = self.replay.time_of(rec);
        self.log_begins.get_or_insert(t);
        match self.query {
            Query::At(Some(at)) if self.first.is_none() && t > at => {
                self.first = Some(self.capture());
                let stopped = matches!(self.replay.state, RunState::Stopped { .. });
                let restart = rec.kind() == Kind::Start && self.replay.state != RunState::Empty;
                if stopped || restart {
                    let from = match self.replay.state {
                        RunState::Stopped { at } => at,
                        _ => self.replay.last_time.unwrap_or(t),
                    };
                    self.resolve = Some(Resolve {
                        from,
                        to: None,
                        appeared: Vec::new(),
                        after: None,
                    });
                } else {
                    self.done = true;
                    return Ok(());
                }
            }
            Query::Diff(t1, _) if self.first.is_none() && t > t1 => {
                self.first = Some(self.capture());
            }
            _ => {}
        }
        if let Query::Diff(_, t2) = self.query
            && t > t2
        {
            self.second = Some(self.capture());
            self.done = true;
            return Ok(());
        }
        if let Query::Window { until: Some(u), .. } | Query::Timeline { until: Some(u), .. } =
            self.query
            && t > u
        {
            self.done = true;
            return Ok(());
        }
        let mut changes = std::mem::take(&mut self.changes);
        changes.clear();
        self.replay.apply(rec, line, &mut changes);
        for c in &changes {
            self.follow(c, t)?;
        }
        if matches!(self.query, Query::Timeline { .. } | Query::Window { .. })
            && self.in_window(t)
            && matches!(rec.kind(), Kind::Open | Kind::Close | Kind::Failed)
            && self.filter.holds(&rec.who())
        {
            self.record(rec, line, t)?;
        }
        self.changes = changes;
        Ok(())
    }

    fn in_window(&self, t: Micros) -> bool {
        match self.query {
            Query::Timeline { from, until } => {
                from.is_none_or(|f| t >= f) && until.is_none_or(|u| t <= u)
            }
            Query::Window { from, until } => t >= from && until.is_none_or(|u| t <= u),
            _ => false,
        }
    }

    /// What a change means to the answer being built.
    fn follow(&mut self, c: &Change, t: Micros) -> io::Result<()> {
        if let Some(r) = &mut self.resolve {
            match c {
                Change::Gap(g)
                    if matches!(g.kind, GapKind::NotRunning | GapKind::EndedWithoutStop) =>
                {
                    r.to = Some(g.to);
                }
                Change::Appeared(k) => r.appeared.push(k.clone()),
                Change::Synced => {
                    r.after = Some(self.replay.table.clone());
                    self.done = true;
                }
                _ => {}
            }
            return Ok(());
        }
        match c {
            Change::Synced => self.recent.clear(),
            Change::Gap(g) => {
                if matches!(
                    g.kind,
                    GapKind::Lost { .. } | GapKind::SnapshotIncomplete { .. }
                ) {
                    push_gap(&mut self.recent, g);
                }
                let wanted = match self.query {
                    Query::Diff(t1, t2) => g.to > t1 && g.from <= t2,
                    Query::Timeline { .. } | Query::Window { .. } => {
                        self.in_window(g.to) || self.in_window(g.from)
                    }
                    Query::At(_) => false,
                };
                if wanted {
                    if matches!(self.query, Query::Timeline { .. }) {
                        if !merge_lost(&mut self.lost, g) {
                            self.flush_lost()?;
                            self.out.gap(g)?;
                        }
                    } else {
                        push_gap(&mut self.gaps, g);
                    }
                }
            }
            Change::Appeared(k) if self.in_window(t) => {
                let Some(l) = self.replay.table.get(k) else {
                    return Ok(());
                };
                if self.filter.holds_line(&l.line) {
                    let (line, since) = (l.line.clone(), l.since);
                    let what = "snapshot";
                    let detail = "found by the start-up snapshot (opened before it)".to_string();
                    self.flush_lost()?;
                    self.listed += 1;
                    self.out
                        .entry(what, since, render::parse_map(&line), Some(detail))?;
                }
            }
            Change::Closed(l, how)
                if self.in_window(t)
                    && matches!(self.query, Query::Timeline { .. })
                    && self.filter.holds_line(&l.line) =>
            {
                let detail = match how {
                    Closing::NotInSnapshot { by } => format!(
                        "not found by the snapshot at {}: closed at an unknown time \
                         between {} and then",
                        time::local(*by, self.out.zone),
                        time::local(l.since, self.out.zone),
                    ),
                    Closing::Rebound { at } => format!(
                        "closed by {} (its address was bound again then)",
                        time::local(*at, self.out.zone)
                    ),
                    Closing::Traced => return Ok(()),
                };
                let mut rec = render::parse_map(&l.line);
                rec.insert("record".into(), "gone".into());
                self.flush_lost()?;
                self.out.entry("gone", t, rec, Some(detail))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn flush_lost(&mut self) -> io::Result<()> {
        if let Some(g) = self.lost.take() {
            self.out.gap(&g)?;
        }
        Ok(())
    }

    /// An open, close or failure inside a timeline or window.
    fn record(&mut self, rec: &Rec, line: &str, t: Micros) -> io::Result<()> {
        let kind = rec.kind();
        if let Query::Window { .. } = self.query {
            match kind {
                Kind::Open => {
                    self.listed += 1;
                    self.out.entry("open", t, render::parse_map(line), None)?;
                }
                Kind::Failed => {
                    let m = render::parse_map(line);
                    let text = |k: &str| {
                        let v = m.get(k).and_then(Value::as_str).unwrap_or("?");
                        crate::text::terminal(v).into_owned()
                    };
                    let key = (
                        text("error"),
                        text("protocol"),
                        render::address(&m),
                        render::process(&m),
                    );
                    let f = self.failures.entry(key).or_insert(Failures {
                        count: 0,
                        first: t,
                        last: t,
                        example: line.to_owned(),
                    });
                    f.count += 1;
                    f.last = t;
                }
                _ => {}
            }
            return Ok(());
        }
        let what = match kind {
            Kind::Open => "open",
            Kind::Close => "close",
            _ => "failed",
        };
        self.flush_lost()?;
        self.listed += 1;
        self.out.entry(what, t, render::parse_map(line), None)
    }

    fn header_span(&self) -> String {
        let z = self.out.zone;
        match (self.replay.first_time, self.replay.last_time) {
            (Some(a), Some(b)) => format!(
                "log from {} {}: {} records read, to {}",
                time::local(a, z),
                time::zone_name(a, z),
                self.replay.counts.records,
                time::local(b, z),
            ),
            _ => "log: no records".into(),
        }
    }

    fn rows(&self, c: &Capture) -> Vec<(Key, Row)> {
        c.table
            .iter()
            .filter(|(_, l)| self.filter.holds_line(&l.line))
            .map(|(k, l)| {
                let row = Row {
                    rec: render::parse_map(&l.line),
                    found: l.found,
                    since: l.since,
                    diff: None,
                    uncertain: None,
                };
                (k.clone(), row)
            })
            .collect()
    }

    /// Everything read: print the answer.
    pub fn finish(mut self) -> io::Result<Replay> {
        match self.query {
            Query::At(at) => self.finish_at(at)?,
            Query::Diff(t1, t2) => self.finish_diff(t1, t2)?,
            Query::Timeline { .. } => {
                self.flush_lost()?;
                if self.listed == 0 {
                    self.out.note("empty", "no matching record in the log")?;
                }
            }
            Query::Window { from, until } => self.finish_window(from, until)?,
        }
        self.out.w.flush()?;
        Ok(self.replay)
    }

    fn finish_at(&mut self, at: Option<Micros>) -> io::Result<()> {
        let z = self.out.zone;
        // Captured at the first record past the moment, or at the end of the log.
        let (cap, at_end) = match self.first.take() {
            Some(c) => (c, false),
            None => (self.capture(), true),
        };
        let when = match at {
            Some(t) => format!("at {} {}", time::local(t, z), time::zone_name(t, z)),
            None => "now (as of the log's last record)".into(),
        };
        let span = self.header_span();
        self.out.heading(&format!("Listeners {when} — {span}"))?;
        let mut rows = self.rows(&cap);
        let mut notes: Vec<Gap> = Vec::new();
        let mut text_notes: Vec<(&str, String)> = Vec::new();
        if let Some(r) = self.resolve.take() {
            let after = r.after.unwrap_or_default();
            let to = r.to;
            let until = to.map_or("the end of the log".into(), |t| time::local(t, z));
            for (k, row) in &mut rows {
                if to.is_some() && !after.contains_key(k) {
                    row.uncertain = Some(format!(
                        "not found by the snapshot at {until}: closed at an unknown time \
                         between {} and {until}",
                        time::local(r.from, z)
                    ));
                } else if to.is_none() {
                    row.uncertain = Some(format!(
                        "last known at {}; the agent has not run since",
                        time::local(r.from, z)
                    ));
                }
            }
            for k in &r.appeared {
                if let Some(l) = after.get(k)
                    && self.filter.holds_line(&l.line)
                {
                    rows.push((
                        k.clone(),
                        Row {
                            rec: render::parse_map(&l.line),
                            found: l.found,
                            since: l.since,
                            diff: None,
                            uncertain: Some(format!(
                                "found by the snapshot at {until}: opened at an unknown time \
                             before it, perhaps after {}",
                                time::local(r.from, z)
                            )),
                        },
                    ));
                }
            }
            let kind = match cap.state {
                RunState::Stopped { .. } => GapKind::NotRunning,
                _ => GapKind::EndedWithoutStop,
            };
            notes.push(Gap {
                kind,
                from: r.from,
                to: to.unwrap_or(r.from),
            });
            if to.is_none() {
                text_notes.push((
                    "not-running",
                    format!(
                        "the agent stopped at {} and the log says nothing after: what listened \
                         later is unknown",
                        time::local(r.from, z)
                    ),
                ));
            }
        } else {
            match (at, cap.state, cap.last_time) {
                (Some(t), _, _) if self.log_begins.is_some_and(|f| t < f) => text_notes.push((
                    "before-log",
                    format!(
                        "the log begins at {}: nothing is known before",
                        time::local(self.log_begins.unwrap_or(t), z)
                    ),
                )),
                (_, RunState::Empty, _) => {
                    text_notes.push(("empty", "the log has no records".into()))
                }
                (_, RunState::Stopped { at: stop }, _) if at_end => text_notes.push((
                    "not-running",
                    format!(
                        "the agent stopped at {} and the log says nothing after: these are the \
                         listeners as of then",
                        time::local(stop, z)
                    ),
                )),
                (Some(t), _, Some(last)) if at_end && t > last => text_notes.push((
                    "log-ends",
                    format!(
                        "the log ends at {}: these are the listeners as of then",
                        time::local(last, z)
                    ),
                )),
                _ => {}
            }
            if !cap.synced && matches!(cap.state, RunState::MidRun | RunState::Stopped { .. }) {
                text_notes.push((
                    "log-begins-mid-run",
                    format!(
                        "the log begins at {} inside a run (its earlier files are gone) and no \
                         snapshot follows before that moment: listeners opened before {} are \
                         unknown",
                        time::local(self.replay.first_time.unwrap_or(0), z),
                        time::local(self.replay.first_time.unwrap_or(0), z)
                    ),
                ));
            }
        }
        notes.extend(cap.recent.iter().cloned());
        let n = rows.len();
        self.out.table(rows.into_iter().map(|(_, r)| r).collect())?;
        if !self.out.json {
            self.out.heading(&format!(
                "{n} listener{}{}",
                if n == 1 { "" } else { "s" },
                if self.filter.is_empty() {
                    ""
                } else {
                    " matching"
                }
            ))?;
        }
        for g in &notes {
            self.out.gap(g)?;
        }
        for (k, t) in text_notes {
            self.out.note(k, &t)?;
        }
        self.untraced_note(&cap)
    }

    /// UDP and unix closes are not traced: say how long such rows may have been stale.
    fn untraced_note(&mut self, cap: &Capture) -> io::Result<()> {
        let n = cap
            .table
            .values()
            .filter(|l| !l.close_traced && self.filter.holds_line(&l.line))
            .count();
        if n > 0 {
            self.out.note(
                "close-untraced",
                &format!(
                    "{n} of these are UDP or unix sockets, whose closes the agent does not \
                     see: each is listed until a later snapshot no longer finds it or its \
                     address is bound again"
                ),
            )?;
        }
        Ok(())
    }

    fn finish_diff(&mut self, t1: Micros, t2: Micros) -> io::Result<()> {
        let z = self.out.zone;
        let a = match self.first.take() {
            Some(c) => c,
            None => self.capture(),
        };
        let b = match self.second.take() {
            Some(c) => c,
            None => self.capture(),
        };
        let span = self.header_span();
        self.out.heading(&format!(
            "Listeners that appeared (+) and disappeared (-) between {} and {} {} — {span}",
            time::local(t1, z),
            time::local(t2, z),
            time::zone_name(t2, z)
        ))?;
        let mut rows = Vec::new();
        for (cap, other, diff) in [(&b, &a, "appeared"), (&a, &b, "disappeared")] {
            for (k, l) in &cap.table {
                if !other.table.contains_key(k) && self.filter.holds_line(&l.line) {
                    rows.push(Row {
                        rec: render::parse_map(&l.line),
                        found: l.found,
                        since: l.since,
                        diff: Some(diff),
                        uncertain: None,
                    });
                }
            }
        }
        let n = rows.len();
        self.out.table(rows)?;
        if n == 0 {
            self.out
                .note("no-change", "no listener appeared or disappeared")?;
        }
        for g in std::mem::take(&mut self.gaps) {
            self.out.gap(&g)?;
        }
        for (t, c) in [(t1, &a), (t2, &b)] {
            if let RunState::Stopped { at } = c.state {
                self.out.note(
                    "not-running",
                    &format!(
                        "{} falls after the agent stopped at {}: the listeners as of then",
                        time::local(t, z),
                        time::local(at, z)
                    ),
                )?;
            }
        }
        Ok(())
    }

    fn finish_window(&mut self, from: Micros, until: Option<Micros>) -> io::Result<()> {
        let z = self.out.zone;
        let mut failures: Vec<_> = std::mem::take(&mut self.failures).into_iter().collect();
        failures.sort_by_key(|(_, f)| (std::cmp::Reverse(f.count), f.first));
        let total: u64 = failures.iter().map(|(_, f)| f.count).sum();
        let upto = until.map_or("the end of the log".into(), |u| time::local(u, z));
        if self.out.json {
            for (_, f) in &failures {
                let mut m = render::parse_map(&f.example);
                m.insert("record".into(), "failures".into());
                m.insert("count".into(), f.count.into());
                m.insert("first".into(), render::rfc3339(f.first).into());
                m.insert("last".into(), render::rfc3339(f.last).into());
                self.out.object(&Value::Object(m))?;
            }
        } else {
            self.out.heading(&format!(
                "{} listener{} opened, {total} failure{} between {} and {upto}",
                self.listed,
                if self.listed == 1 { "" } else { "s" },
                if total == 1 { "" } else { "s" },
                time::local(from, z),
            ))?;
            for ((err, proto, addr, who), f) in &failures {
                let m = render::parse_map(&f.example);
                let mut line = format!(
                    "  {}× {} {proto} {addr} {who} (first {}, last {})",
                    f.count,
                    err,
                    time::local(f.first, z),
                    time::local(f.last, z)
                );
                if let Some(e) = m.get("explanation").and_then(Value::as_str) {
                    line.push_str(&format!(
                        "\n    ↳ {}",
                        crate::text::terminal(e).into_owned()
                    ));
                }
                self.out.heading(&line)?;
            }
        }
        for g in std::mem::take(&mut self.gaps) {
            self.out.gap(&g)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{
        record,
        replay::tests::{line, tcp, udp},
        time::{Fixed, parse_record_time},
    };

    fn t(clock: &str) -> Micros {
        parse_record_time(&format!("2026-12-02T{clock}.000000Z")).unwrap()
    }

    /// The JSON objects a query prints over `lines`.
    fn ask(query: Query, filter: Filter, lines: &[String]) -> Vec<Value> {
        let mut buf = Vec::new();
        let zone = Fixed(0);
        let out = Out {
            json: true,
            policy: None,
            zone: &zone,
            w: &mut buf,
        };
        let mut d = Driver::new(query, filter, out);
        for l in lines {
            d.feed(&record::parse(l).unwrap(), l).unwrap();
            if d.done() {
                break;
            }
        }
        d.finish().unwrap();
        String::from_utf8(buf)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn log() -> Vec<String> {
        vec![
            line("start", "01:00:00", ""),
            line("snapshot", "01:00:00", &tcp(10, 22, 1)),
            line(
                "snapshot_end",
                "01:00:01",
                r#""owners_complete":true,"errors":[]"#,
            ),
            line("open", "01:05:00", &tcp(11, 80, 2)),
            line(
                "failed",
                "01:06:00",
                &tcp(12, 80, 3).replace(r#""comm":"d""#, r#""comm":"d","error":"EADDRINUSE""#),
            ),
            line(
                "lost",
                "01:07:00",
                r#""count":5,"reason":"ring buffer full""#,
            ),
            line("stop", "02:00:00", ""),
            line("start", "02:10:00", ""),
            line("snapshot", "02:10:00", &tcp(10, 22, 1)),
            line("snapshot", "02:10:00", &tcp(13, 8080, 4)),
            line(
                "snapshot_end",
                "02:10:01",
                r#""owners_complete":true,"errors":[]"#,
            ),
            line("open", "02:20:00", &udp(14, 53, 5)),
        ]
    }

    fn ports(v: &[Value]) -> Vec<u64> {
        let mut p: Vec<u64> = v
            .iter()
            .filter(|v| v["record"] != "gap" && v["record"] != "note")
            .filter_map(|v| crate::policy::listener_port(v.as_object().unwrap()))
            .collect();
        p.sort_unstable();
        p
    }

    #[test]
    fn at_a_moment_before_inside_and_after_a_gap() {
        assert_eq!(
            ports(&ask(
                Query::At(Some(t("01:05:30"))),
                Filter::default(),
                &log()
            )),
            [22, 80]
        );
        let lost = ask(Query::At(Some(t("01:08:00"))), Filter::default(), &log());
        assert!(
            lost.iter().any(|v| v["kind"] == "lost" && v["count"] == 5),
            "{lost:#?}"
        );
        let gap = ask(Query::At(Some(t("02:05:00"))), Filter::default(), &log());
        assert_eq!(ports(&gap), [22, 80, 8080]);
        let by_port = |p: u64| gap.iter().find(|v| v["port"] == p).unwrap();
        assert!(
            by_port(22).get("uncertain").is_none(),
            "open across the gap"
        );
        assert!(
            by_port(80)["uncertain"]
                .as_str()
                .unwrap()
                .contains("closed at an unknown time")
        );
        assert!(
            by_port(8080)["uncertain"]
                .as_str()
                .unwrap()
                .contains("opened at an unknown time")
        );
        assert!(
            gap.iter()
                .any(|v| v["kind"] == "not-running" && v["from"] == "2026-12-02T02:00:00.000000Z")
        );
        let now = ask(Query::At(None), Filter::default(), &log());
        assert_eq!(ports(&now), [22, 53, 8080]);
        assert!(
            now.iter().any(|v| v["kind"] == "close-untraced"),
            "{now:#?}"
        );
        let before = ask(Query::At(Some(t("00:30:00"))), Filter::default(), &log());
        assert_eq!(ports(&before), Vec::<u64>::new());
        assert!(before.iter().any(|v| v["kind"] == "before-log"));
    }

    #[test]
    fn diff_window_and_timeline() {
        let diff = ask(
            Query::Diff(t("01:05:30"), t("02:30:00")),
            Filter::default(),
            &log(),
        );
        let marked: Vec<(u64, &str)> = diff
            .iter()
            .filter(|v| v.get("diff").is_some())
            .map(|v| {
                (
                    crate::policy::listener_port(v.as_object().unwrap()).unwrap(),
                    v["diff"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            marked,
            [(53, "appeared"), (8080, "appeared"), (80, "disappeared")]
        );
        assert!(diff.iter().any(|v| v["kind"] == "not-running"));
        let window = ask(
            Query::Window {
                from: t("01:01:00"),
                until: Some(t("01:30:00")),
            },
            Filter::default(),
            &log(),
        );
        assert_eq!(window[0]["record"], "open");
        assert_eq!(window[1]["record"], "failures");
        assert_eq!(window[1]["count"], 1);
        let port80 = Filter {
            port: Some(80),
            ..Filter::default()
        };
        let tl = ask(
            Query::Timeline {
                from: None,
                until: None,
            },
            port80,
            &log(),
        );
        let kinds: Vec<&str> = tl.iter().map(|v| v["record"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["open", "failed", "gap", "gap", "gone"], "{tl:#?}");
        assert!(
            tl[4]["gone"]
                .as_str()
                .unwrap()
                .contains("not found by the snapshot at 2026-12-02 02:10:00")
        );
    }
}
