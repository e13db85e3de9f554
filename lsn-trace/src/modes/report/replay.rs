//! Records, in log order, into the table of listeners open after them: opens add, closes
//! remove, a start-up snapshot re-synchronizes (what it does not find was closed while the
//! agent was not looking; what it finds that was not known opened then). Each step says
//! what changed, so views (at a moment, a timeline, a window, a diff) follow along without
//! the replay keeping any history: memory is the table, bounded by listeners.
use std::{
    collections::{HashMap, HashSet},
    rc::Rc,
};

use super::{
    record::{Key, Kind, Place, Rec},
    time::Micros,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Seen opening (an `open` record).
    Opened,
    /// Found by a start-up snapshot (a `snapshot` record): opened before it, when unknown.
    Snapshot,
}

#[derive(Clone, Debug)]
pub struct Listener {
    /// The record that made it known, as logged (the latest `open` of the socket, or its
    /// `snapshot`).
    pub line: Rc<str>,
    pub found: Found,
    /// Its open record's time, or the time of the snapshot that found it.
    pub since: Micros,
    pub pid: Option<u64>,
    pub place: Place,
    /// TCP: its close is traced. UDP and unix: it stays until a snapshot or a rebind of its
    /// address says it is gone.
    pub close_traced: bool,
    reuse: bool,
    /// The run (count of `start` records) it was last known in.
    run: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GapKind {
    /// Between a `stop` and the next `start`.
    NotRunning,
    /// Between a run's last record and the next `start`, with no `stop` between: the agent
    /// was killed or crashed (its last records may be lost too).
    EndedWithoutStop,
    /// The log's first record is not a `start` (its earlier files are gone): listeners
    /// opened before it are unknown until the next snapshot.
    LogBeginsMidRun,
    /// `lost` records: events the agent could not record.
    Lost { count: u64, reasons: Vec<String> },
    /// A snapshot whose owner scan ran out of time, or that could not enter namespaces.
    SnapshotIncomplete {
        owners_complete: bool,
        errors: Vec<String>,
    },
}

#[derive(Clone, Debug)]
pub struct Gap {
    pub kind: GapKind,
    pub from: Micros,
    pub to: Micros,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing {
    /// A `close` record.
    Traced,
    /// Not found by the snapshot of the run starting at `by` (closed in the gap before it,
    /// or — UDP, unix — at an unknown time since it was last seen).
    NotInSnapshot { by: Micros },
    /// Its address was bound again, at `at`, by a socket without SO_REUSEADDR/SO_REUSEPORT:
    /// it was closed by then.
    Rebound { at: Micros },
}

#[derive(Debug)]
pub enum Change {
    Opened,
    /// Another `open` of a known listener (a second listen() changing its backlog).
    Reopened,
    Closed(Listener, Closing),
    /// Found by a snapshot and not known before.
    Appeared(Key),
    Gap(Gap),
    /// A snapshot was reconciled (the table is synchronized with the host again).
    Synced,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// No record read yet.
    Empty,
    /// Records, but no `start` yet.
    MidRun,
    Running {
        since: Micros,
    },
    Stopped {
        at: Micros,
    },
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Counts {
    pub records: u64,
    pub unknown_kinds: u64,
    pub without_time: u64,
    pub unmatched_closes: u64,
}

struct Pending {
    found: Vec<(Key, Listener)>,
}

pub struct Replay {
    pub table: HashMap<Key, Listener>,
    /// Listeners whose close is not traced, by address: a rebind tells they are gone.
    untraced: HashMap<Place, Vec<Key>>,
    pub run: u32,
    pub state: RunState,
    pub first_time: Option<Micros>,
    pub last_time: Option<Micros>,
    /// Whether the table is complete: a snapshot has been reconciled since the log began.
    pub synced: bool,
    pending: Option<Pending>,
    pub counts: Counts,
}

/// `net:[4026532") …` prefixes of snapshot_end errors: namespaces it could not see.
fn uncovered_namespaces(errors: &[String]) -> HashSet<u64> {
    errors
        .iter()
        .filter_map(|e| e.strip_prefix("net:[")?.split(']').next()?.parse().ok())
        .collect()
}

impl Replay {
    pub fn new() -> Replay {
        Replay {
            table: HashMap::new(),
            untraced: HashMap::new(),
            run: 0,
            state: RunState::Empty,
            first_time: None,
            last_time: None,
            synced: false,
            pending: None,
            counts: Counts::default(),
        }
    }

    /// The time a record counts at: its own, else the last one's.
    pub fn time_of(&self, rec: &Rec) -> Micros {
        rec.time().or(self.last_time).unwrap_or(0)
    }

    fn remove(&mut self, key: &Key) -> Option<Listener> {
        let l = self.table.remove(key)?;
        if !l.close_traced
            && let Some(keys) = self.untraced.get_mut(&l.place)
        {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.untraced.remove(&l.place);
            }
        }
        Some(l)
    }

    fn insert(&mut self, key: Key, l: Listener) {
        if !l.close_traced {
            self.untraced
                .entry(l.place.clone())
                .or_default()
                .push(key.clone());
        }
        self.table.insert(key, l);
    }

    fn listener(&self, rec: &Rec, line: &str, found: Found, t: Micros) -> Listener {
        Listener {
            line: Rc::from(line),
            found,
            since: t,
            pid: rec.pid,
            place: rec.place(),
            close_traced: rec.close_traced(),
            reuse: rec.reuseaddr == Some(true) || rec.reuseport == Some(true),
            run: self.run,
        }
    }

    /// Apply one record; what it changed is appended to `out`.
    pub fn apply(&mut self, rec: &Rec, line: &str, out: &mut Vec<Change>) {
        let t = match rec.time() {
            Some(t) => t,
            None => {
                self.counts.without_time += 1;
                self.last_time.unwrap_or(0)
            }
        };
        self.counts.records += 1;
        self.first_time.get_or_insert(t);
        let kind = rec.kind();
        if self.state == RunState::Empty && kind != Kind::Start {
            self.state = RunState::MidRun;
        }
        match kind {
            Kind::Start => self.start(t, out),
            Kind::Snapshot => {
                let key = rec.key(self.run);
                let l = self.listener(rec, line, Found::Snapshot, t);
                self.pending
                    .get_or_insert(Pending { found: Vec::new() })
                    .found
                    .push((key, l));
            }
            Kind::SnapshotEnd => self.reconcile(rec, t, out),
            Kind::Open => self.open(rec, line, t, out),
            Kind::Close => {
                let key = rec.key(self.run);
                match self.remove(&key) {
                    Some(l) => out.push(Change::Closed(l, Closing::Traced)),
                    None => self.counts.unmatched_closes += 1,
                }
            }
            Kind::Lost => out.push(Change::Gap(Gap {
                kind: GapKind::Lost {
                    count: rec.count.unwrap_or(0),
                    reasons: rec.reason.iter().map(|r| r.to_string()).collect(),
                },
                from: t,
                to: t,
            })),
            Kind::Stop => self.state = RunState::Stopped { at: t },
            Kind::Failed | Kind::Alert => {}
            Kind::Other => self.counts.unknown_kinds += 1,
        }
        self.last_time = Some(self.last_time.map_or(t, |l| l.max(t)));
    }

    fn start(&mut self, t: Micros, out: &mut Vec<Change>) {
        let gap = match self.state {
            RunState::Empty => None,
            RunState::MidRun => Some((GapKind::LogBeginsMidRun, self.first_time.unwrap_or(t))),
            RunState::Running { .. } => {
                Some((GapKind::EndedWithoutStop, self.last_time.unwrap_or(t)))
            }
            RunState::Stopped { at } => Some((GapKind::NotRunning, at)),
        };
        if let Some((kind, from)) = gap {
            out.push(Change::Gap(Gap { kind, from, to: t }));
        }
        if self.pending.take().is_some() {
            // The previous run ended inside its snapshot.
            out.push(Change::Gap(Gap {
                kind: GapKind::SnapshotIncomplete {
                    owners_complete: false,
                    errors: vec!["the run ended before its snapshot did".into()],
                },
                from: self.last_time.unwrap_or(t),
                to: t,
            }));
        }
        self.run += 1;
        self.state = RunState::Running { since: t };
        self.pending = Some(Pending { found: Vec::new() });
    }

    fn reconcile(&mut self, rec: &Rec, t: Micros, out: &mut Vec<Change>) {
        let found = self.pending.take().map(|p| p.found).unwrap_or_default();
        let errors = rec.errors.clone().unwrap_or_default();
        let uncovered = uncovered_namespaces(&errors);
        let by = match self.state {
            RunState::Running { since } => since,
            _ => t,
        };
        let seen: HashSet<Key> = found.iter().map(|(k, _)| k.clone()).collect();
        // Known before this run, and not found now: gone while the agent was not looking.
        let gone: Vec<Key> = self
            .table
            .iter()
            .filter(|(k, l)| {
                l.run < self.run && !seen.contains(*k) && !uncovered.contains(&l.place.netns)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(l) = self.remove(&key) {
                out.push(Change::Closed(l, Closing::NotInSnapshot { by }));
            }
        }
        let run = self.run;
        for (key, new) in found {
            match self.table.get_mut(&key) {
                // The same socket (inode, and the same owner where both are known): it
                // stayed open across the gap; keep when it was opened.
                Some(old) if old.pid.is_none() || new.pid.is_none() || old.pid == new.pid => {
                    old.run = run;
                    if old.pid.is_none() {
                        old.pid = new.pid;
                    }
                }
                Some(_) => {
                    // A reused inode (the host rebooted): another socket.
                    if let Some(old) = self.remove(&key) {
                        out.push(Change::Closed(old, Closing::NotInSnapshot { by }));
                    }
                    self.insert(key.clone(), new);
                    out.push(Change::Appeared(key));
                }
                None => {
                    self.insert(key.clone(), new);
                    out.push(Change::Appeared(key));
                }
            }
        }
        self.synced = true;
        out.push(Change::Synced);
        let owners_complete = rec.owners_complete != Some(false);
        if !owners_complete || !errors.is_empty() {
            out.push(Change::Gap(Gap {
                kind: GapKind::SnapshotIncomplete {
                    owners_complete,
                    errors,
                },
                from: t,
                to: t,
            }));
        }
    }

    fn open(&mut self, rec: &Rec, line: &str, t: Micros, out: &mut Vec<Change>) {
        let key = rec.key(self.run);
        if let Some(l) = self.table.get_mut(&key) {
            l.line = Rc::from(line);
            l.run = self.run;
            out.push(Change::Reopened);
            return;
        }
        let new = self.listener(rec, line, Found::Opened, t);
        // Two sockets bound to one inet address and port without SO_REUSEADDR/SO_REUSEPORT
        // cannot coexist: the earlier one was closed by now. (Not unix: a path can be
        // unlinked and bound again while the old socket lives on.)
        let inet = !new.place.addr.starts_with(['/', '@']) && new.place.port != 0;
        if !new.close_traced
            && inet
            && !new.reuse
            && let Some(keys) = self.untraced.get(&new.place).cloned()
        {
            for k in keys {
                if let Some(old) = self.remove(&k) {
                    out.push(Change::Closed(old, Closing::Rebound { at: t }));
                }
            }
        }
        self.insert(key.clone(), new);
        out.push(Change::Opened);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::record;

    /// A record line as audit writes it (only the keys the replay reads).
    pub fn line(kind: &str, t: &str, extra: &str) -> String {
        let sep = if extra.is_empty() { "" } else { "," };
        format!(r#"{{"record":"{kind}","time":"2026-12-02T{t}.000000Z"{sep}{extra}}}"#)
    }

    pub fn tcp(inode: u64, port: u16, pid: u32) -> String {
        format!(
            r#""inode":{inode},"netns":1,"protocol":"tcp","addr":"0.0.0.0","port":{port},"bound_port":{port},"pid":{pid},"comm":"d""#
        )
    }

    pub fn udp(inode: u64, port: u16, pid: u32) -> String {
        format!(
            r#""inode":{inode},"netns":1,"protocol":"udp","addr":"0.0.0.0","port":0,"bound_port":{port},"pid":{pid},"reuseaddr":false,"reuseport":false"#
        )
    }

    pub fn feed(r: &mut Replay, lines: &[String]) -> Vec<Change> {
        let mut out = Vec::new();
        for l in lines {
            let rec = record::parse(l).unwrap();
            r.apply(&rec, l, &mut out);
        }
        out
    }

    fn ports(r: &Replay) -> Vec<u64> {
        let mut p: Vec<u64> = r.table.values().map(|l| l.place.port).collect();
        p.sort_unstable();
        p
    }

    #[test]
    fn opens_closes_and_a_restart_with_a_gap() {
        let mut r = Replay::new();
        let first = [
            line("start", "01:00:00", ""),
            line("snapshot", "01:00:00", &tcp(10, 22, 1)),
            line(
                "snapshot_end",
                "01:00:01",
                r#""owners_complete":true,"errors":[]"#,
            ),
            line("open", "01:05:00", &tcp(11, 80, 2)),
            line("open", "01:06:00", &tcp(12, 81, 3)),
            line("close", "01:07:00", &tcp(12, 81, 3)),
            line("stop", "02:00:00", ""),
        ];
        let ch = feed(&mut r, &first);
        assert_eq!(ports(&r), [22, 80]);
        assert!(matches!(ch[0], Change::Appeared(_)));
        assert_eq!(
            r.state,
            RunState::Stopped {
                at: 1796176800000000
            }
        );
        // While it was stopped: 80 closed, 8080 opened.
        let second = [
            line("start", "02:10:00", ""),
            line("snapshot", "02:10:00", &tcp(10, 22, 1)),
            line("snapshot", "02:10:00", &tcp(13, 8080, 4)),
            line(
                "snapshot_end",
                "02:10:01",
                r#""owners_complete":true,"errors":[]"#,
            ),
        ];
        let ch = feed(&mut r, &second);
        assert_eq!(ports(&r), [22, 8080]);
        let Change::Gap(g) = &ch[0] else {
            panic!("{ch:?}")
        };
        assert_eq!(g.kind, GapKind::NotRunning);
        assert!(ch.iter().any(
            |c| matches!(c, Change::Closed(l, Closing::NotInSnapshot { .. }) if l.place.port == 80)
        ));
        assert!(
            ch.iter()
                .any(|c| matches!(c, Change::Appeared(Key::Inode { inode: 13, .. })))
        );
        // The listener that stayed keeps the time it was first seen.
        let ssh = r.table.values().find(|l| l.place.port == 22).unwrap();
        assert_eq!(ssh.found, Found::Snapshot);
        assert_eq!(Some(ssh.since), record::parse(&first[1]).unwrap().time());
    }

    #[test]
    fn a_run_without_stop_and_a_log_that_begins_mid_run() {
        let mut r = Replay::new();
        let ch = feed(
            &mut r,
            &[
                line("open", "01:05:00", &tcp(11, 80, 2)),
                line("start", "01:10:00", ""),
                line(
                    "snapshot_end",
                    "01:10:01",
                    r#""owners_complete":false,"errors":[]"#,
                ),
                line("open", "01:11:00", &tcp(12, 81, 2)),
                line("start", "01:20:00", ""),
            ],
        );
        let kinds: Vec<GapKind> = ch
            .iter()
            .filter_map(|c| match c {
                Change::Gap(g) => Some(g.kind.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                GapKind::LogBeginsMidRun,
                GapKind::SnapshotIncomplete {
                    owners_complete: false,
                    errors: vec![]
                },
                GapKind::EndedWithoutStop
            ]
        );
    }

    #[test]
    fn udp_is_gone_when_its_address_is_bound_again_or_the_snapshot_misses_it() {
        let mut r = Replay::new();
        let ch = feed(
            &mut r,
            &[
                line("open", "01:00:00", &udp(20, 5353, 7)),
                line("open", "01:01:00", &udp(21, 5353, 8)),
            ],
        );
        assert!(matches!(
            ch[1],
            Change::Closed(Listener { pid: Some(7), .. }, Closing::Rebound { .. })
        ));
        assert_eq!(r.table.len(), 1);
        // With SO_REUSEPORT both may be bound.
        let shared = udp(22, 5353, 9).replace(r#""reuseport":false"#, r#""reuseport":true"#);
        feed(&mut r, &[line("open", "01:02:00", &shared)]);
        assert_eq!(r.table.len(), 2);
        feed(
            &mut r,
            &[
                line("start", "01:03:00", ""),
                line("snapshot", "01:03:00", &udp(22, 5353, 9)),
                line(
                    "snapshot_end",
                    "01:03:00",
                    r#""owners_complete":true,"errors":[]"#,
                ),
            ],
        );
        assert_eq!(r.table.len(), 1);
    }

    #[test]
    fn a_namespace_the_snapshot_could_not_enter_keeps_its_listeners() {
        let mut r = Replay::new();
        let other_ns = tcp(30, 443, 5).replace(r#""netns":1"#, r#""netns":4026532001"#);
        let ch = feed(
            &mut r,
            &[
                line("start", "01:00:00", ""),
                line(
                    "snapshot_end",
                    "01:00:00",
                    r#""owners_complete":true,"errors":[]"#,
                ),
                line("open", "01:01:00", &other_ns),
                line("stop", "01:02:00", ""),
                line("start", "01:03:00", ""),
                line(
                    "snapshot_end",
                    "01:03:00",
                    r#""owners_complete":true,"errors":["net:[4026532001]: Operation not permitted (os error 1)"]"#,
                ),
            ],
        );
        assert_eq!(r.table.len(), 1);
        assert!(ch.iter().any(|c| matches!(
            c,
            Change::Gap(Gap {
                kind: GapKind::SnapshotIncomplete { .. },
                ..
            })
        )));
    }
}
