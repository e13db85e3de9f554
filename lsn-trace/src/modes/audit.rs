//! `lsn-trace audit`: a log of every listener, for running as a service. A `Sink` of the
//! core event stream that keeps only what opens, fails to open or closes a listener (the
//! story's `ListenerChange`: an `open`, `failed` or `close` record), adds who the process
//! is (read from /proc as the event arrives), and appends one JSON object per line to a
//! file or stdout. Records carry the keys of `--json` plus `record` and the identity keys
//! (docs/audit.md). UDP and unix closes are not recorded: the kernel side sees only
//! a TCP listener leaving LISTEN.
pub mod container;
pub mod identity;
pub mod log;
pub mod snapshot;

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context as _, Result};
use serde_json::{Map, Value, json};

use self::{
    identity::{Identities, ProcInfo},
    log::Log,
};
use crate::{
    errno,
    event::Event,
    metrics::{self, AuditCounters, Metrics, server},
    output::{
        self, json as jsonout,
        json_fast::{self as record, Object as _, Sorted, key},
    },
    pipeline::{Pipeline, Sink, Tee},
    policy::{Decision, Policy},
    sockaddr::AF_UNIX,
    sockdiag,
    story::{self, ListenerChange},
    tracer::{Stats, Tracer},
};

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Append JSON Lines to this file (created 0640, never truncated; SIGHUP reopens it,
    /// for logrotate). Without it, records go to stdout (for journald).
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Decide every open and snapshot record with this policy (TOML): each gets
    /// `"policy": {"decision", "rule"}`, and a listener not allowed also an `alert` record
    /// and a line on stderr.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Serve Prometheus metrics on http://ADDR:PORT/metrics (and /healthz, 200 once the
    /// hooks are attached). A port alone listens on loopback; give 0.0.0.0:PORT or [::]:PORT
    /// to be scraped from other hosts.
    #[arg(long, value_name = "ADDR:PORT", value_parser = server::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
}

pub struct Audit {
    log: Log,
    ids: Identities,
    records: u64,
    policy: Option<Policy>,
    /// `--metrics`: the endpoint (listening from `open` on) and what this sink counts
    /// itself (from `run` on, when the backend is known; the listener metrics are a sink
    /// beside this one).
    serve: Option<server::Published>,
    counters: Option<AuditCounters>,
    /// Records the log dropped (counted by reason; `events` unused).
    dropped: Stats,
    /// The record being made (event and snapshot records: the hot path writes no `Value`),
    /// and the line it makes.
    rec: Sorted,
    line: Vec<u8>,
    /// The identity keys of the process last recorded, as written: a process's records
    /// come in runs (a daemon's listeners, a storm), and its strings are escaped once.
    proc_keys: ProcKeys,
}

/// A process's /proc identity keys written once (`write_proc_info`), then given again to
/// each record of the same `ProcInfo` (the same `Arc`: what it holds never changes).
#[derive(Default)]
struct ProcKeys {
    of: Option<Arc<ProcInfo>>,
    values: Vec<u8>,
    /// Key, its token, and where its value ends in `values` (it starts where the previous
    /// one ends).
    keys: Vec<(&'static str, &'static [u8], usize)>,
}

impl record::Object for ProcKeys {
    fn key(&mut self, k: &'static str, token: &'static [u8]) -> &mut Vec<u8> {
        if let Some(last) = self.keys.last_mut() {
            last.2 = self.values.len();
        }
        self.keys.push((k, token, self.values.len()));
        &mut self.values
    }
}

impl ProcKeys {
    /// `info`'s keys into `o`, written again only when `info` is not the last one's.
    fn write(&mut self, o: &mut Sorted, info: &Arc<ProcInfo>) {
        if !self.of.as_ref().is_some_and(|of| Arc::ptr_eq(of, info)) {
            self.values.clear();
            self.keys.clear();
            write_proc_info(self, info);
            if let Some(last) = self.keys.last_mut() {
                last.2 = self.values.len();
            }
            self.of = Some(Arc::clone(info));
        }
        let mut start = 0;
        for &(k, token, end) in &self.keys {
            o.key(k, token).extend_from_slice(&self.values[start..end]);
            start = end;
        }
    }
}

/// Short names of the log's reasons for losing records (`Stats::lost_by`).
const LOST_UNWRITABLE: &str = "audit log unwritable";
const LOST_BEHIND: &str = "audit writer behind";

/// The error line of a log path that cannot be opened: the path, the errno's name and
/// what is wrong (a refused path says why and what to do).
fn open_error(path: &std::path::Path, e: std::io::Error) -> anyhow::Error {
    if let Some(r) = e.get_ref().and_then(|r| r.downcast_ref::<log::Refused>()) {
        return anyhow::anyhow!("refusing the audit log {}: {r}", path.display());
    }
    let name = e.raw_os_error().and_then(errno::name).unwrap_or("error");
    anyhow::anyhow!("cannot open the audit log {}: {name}: {e}", path.display())
}

/// Check the log path before anything is loaded, creating nothing: a run that cannot start
/// (no privileges, no backend) must not leave a file behind.
pub fn check(args: &AuditArgs) -> Result<()> {
    match &args.log {
        Some(p) => log::check(p).map_err(|e| open_error(p, e)),
        None => Ok(()),
    }
}

/// Open the log (creating it if absent; `check` said why it could not be) and take over
/// SIGHUP. Called once the trace is attached.
pub fn open(args: &AuditArgs) -> Result<Audit> {
    // A policy that does not parse stops the run before the log is touched.
    let policy = args.policy.as_deref().map(Policy::load).transpose()?;
    let log = match &args.log {
        None => Log::stdout(),
        Some(p) => Log::file(p).map_err(|e| open_error(p, e))?,
    };
    log::install_hup_handler().context("installing the SIGHUP handler")?;
    let serve = match args.metrics {
        Some(addr) => {
            let (published, bound) = server::start(addr)?;
            say!("lsn-trace: metrics on http://{bound}/metrics (503 until attached)");
            Some(published)
        }
        None => None,
    };
    Ok(Audit {
        log,
        ids: Identities::new(),
        records: 0,
        policy,
        serve,
        counters: None,
        dropped: Stats::default(),
        rec: Sorted::default(),
        line: Vec::new(),
        proc_keys: ProcKeys::default(),
    })
}

/// The `record` key of an event's record.
fn record_kind(change: ListenerChange) -> &'static str {
    match change {
        ListenerChange::Open => "open",
        ListenerChange::Failed => "failed",
        ListenerChange::Close => "close",
    }
}

fn now_time() -> String {
    output::rfc3339(output::now_ns())
}

/// A record's keys without those whose value is `null`, as `Sorted` writes them: a
/// missing key reads as `null` (`jq`, `lsn-trace report`), and the log is smaller.
struct NonNull<'a>(&'a Map<String, Value>);

impl serde::Serialize for NonNull<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(_, v)| !v.is_null()) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A JSON object of a `Serialize` struct (records are flat objects).
fn object(v: impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

impl Audit {
    fn write(&mut self, rec: &Map<String, Value>) {
        // Serializing a Value into a Vec cannot fail.
        let line = serde_json::to_vec(&NonNull(rec)).expect("serialize audit record");
        if self.log.push(&line) {
            self.records += 1;
            if let Some(c) = &mut self.counters
                && let Some(Value::String(kind)) = rec.get("record")
            {
                c.written(kind);
            }
        }
    }

    /// Write a listener record (`open`, `snapshot`), decided by the policy if there is one:
    /// one not allowed is also an `alert` record (the listener's keys, `record: "alert"`,
    /// `alert_of` its record kind) and a line on stderr, for the journal.
    fn write_listener(&mut self, mut rec: Map<String, Value>) {
        let Some(policy) = &self.policy else {
            self.write(&rec);
            return;
        };
        let outcome = policy.decide(&rec);
        rec.insert("policy".into(), outcome.to_json());
        self.write(&rec);
        if outcome.decision == Decision::Alert {
            let what = rec
                .get("summary")
                .and_then(Value::as_str)
                .map(|s| crate::text::terminal(s).into_owned())
                .unwrap_or_default();
            say!(
                "lsn-trace: ALERT: not allowed by the policy ({}): {what}",
                crate::text::terminal(&outcome.rule).into_owned()
            );
            let of = rec.insert("record".into(), "alert".into());
            rec.insert("alert_of".into(), of.unwrap_or(Value::Null));
            self.write(&rec);
        }
    }

    /// The record gathered in `rec`, to the log.
    fn write_gathered(&mut self, kind: &str) {
        if self.log.push_with(|buf| self.rec.write(buf)) {
            self.records += 1;
            if let Some(c) = &mut self.counters {
                c.written(kind);
            }
        }
    }

    /// The identity keys of the record being made of `ev`: who its process (the instance
    /// started at `ev.start`, in ticks and in ns, when known) is, from /proc, the cache or
    /// its exec at the event's time.
    fn identify_gathered(&mut self, ev: &Event) {
        let start = (ev.start, ev.raw.start_ns);
        let (info, source) = self.ids.of_event(ev.pid, &ev.comm, start, ev.time_ns);
        let user = self.ids.user_name(ev.uid);
        let o = &mut self.rec;
        record::name(key!(o, "identity"), source.name());
        record::opt_str(key!(o, "user"), user);
        // `ppid` and `netns` as `write_fields` gave them (null where the event has none):
        // /proc's where the event's are unknown.
        if ev.ppid.is_none() {
            record::opt_int(key!(o, "ppid"), info.ppid);
        }
        // The caller's namespace where the socket's could not be read.
        if ev.sock.as_ref().and_then(|s| s.netns).is_none() {
            record::opt_int(key!(o, "netns"), info.proc_netns);
        }
        self.proc_keys.write(o, &info);
    }

    /// An event's record (`record`, the keys of `--json`, the identity keys) into `rec`.
    fn event_record(&mut self, ev: &Event, note: &story::Note, change: ListenerChange) {
        let o = &mut self.rec;
        record::str(key!(o, "record"), record_kind(change));
        record::write_fields(o, ev, output::Options::default(), note);
        // The kernel side reads a unix listener's own address at listen where the kernel's
        // layout is known; elsewhere, the path its bind asked for, as the story kept it.
        if change == ListenerChange::Open
            && ev.family() == Some(AF_UNIX)
            && o.value("addr").is_none_or(|v| v == b"null")
            && let Some(path) = note.local.as_ref().and_then(|a| a.host())
        {
            record::str(key!(o, "addr"), &path);
        }
        self.identify_gathered(ev);
    }

    fn start_record(&mut self, backend: &str) {
        let mut rec = object(json!({
            "record": "start",
            "time": now_time(),
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "backend": backend,
            "log": self.log.path().map(|p| p.display().to_string()),
        }));
        if let Some(h) = lsn_trace::procfs::sysctl_text("kernel/hostname") {
            rec.insert("host".into(), h.trim().into());
        }
        self.write(&rec);
    }

    /// One `snapshot` record per listener that exists now, in every network namespace,
    /// then a `snapshot_end` record with what was covered.
    fn snapshot(&mut self, mut metrics: Option<&mut Metrics>) {
        let (records, end) = snapshot_records(&mut self.ids, &mut |ev, note| {
            if let Some(m) = metrics.as_deref_mut() {
                m.record("snapshot", ev, note);
            }
        });
        for rec in records {
            self.write_listener(rec);
        }
        self.write(&end);
    }

    /// The stop record: every loss of the run (the kernel side's and the log's), in all
    /// and by reason.
    fn stop_record(&mut self, stats: &Stats) {
        let by: Map<String, Value> = stats
            .lost_by
            .iter()
            .map(|(why, n)| ((*why).to_owned(), json!(n)))
            .collect();
        let rec = object(json!({
            "record": "stop",
            "time": now_time(),
            "events": stats.events,
            "lost": stats.lost,
            "lost_by": by,
            "filtered": stats.filtered,
            "records": self.records + 1,
        }));
        self.write(&rec);
    }

    /// Records the log could not hold become a `lost` record once it takes them again.
    fn report_dropped(&mut self) {
        if self.log.pending() != 0 {
            return;
        }
        for (i, (why, reason)) in [
            (
                LOST_UNWRITABLE,
                "audit log unwritable: records beyond what memory holds",
            ),
            (
                LOST_BEHIND,
                "audit writer behind: records beyond what memory holds",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let n = std::mem::take(&mut self.log.dropped[i]);
            if n > 0 {
                if let Some(c) = &mut self.counters {
                    c.log_dropped(n, i == 1);
                }
                self.dropped.add_lost(n, why);
                self.lost_record(n, reason);
            }
        }
    }

    fn lost_record(&mut self, count: u64, reason: &str) {
        let mut rec = Map::new();
        rec.insert("record".into(), "lost".into());
        rec.append(&mut object(jsonout::lost_record(count, reason)));
        self.write(&rec);
    }

    /// Write the start record, then trace into the log until `stop` (SIGTERM/SIGINT, caught
    /// from before the attach line); then the stop record, flushed.
    pub async fn run(
        mut self,
        tracer: &mut Tracer,
        backend: &str,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Stats> {
        let mut metrics = self
            .serve
            .is_some()
            .then(|| Metrics::new(backend, &metrics::kernel_release()));
        self.counters = metrics.as_ref().map(Metrics::audit_counters);
        self.start_record(backend);
        self.flush()?;
        // After the attach: a listener opened meanwhile is in the snapshot, the stream, or
        // both — never in neither.
        self.snapshot(metrics.as_mut());
        self.flush()?;
        let mut stats = match metrics {
            Some(mut m) => {
                // Scrapes see the snapshot whole, never half of it.
                if let Some(serve) = &self.serve {
                    let _ = serve.set(m.registry());
                }
                let mut sinks = Tee(vec![&mut self, &mut m]);
                tracer.run(&mut Pipeline::new(&mut sinks), stop).await?
            }
            None => tracer.run(&mut Pipeline::new(&mut self), stop).await?,
        };
        // Records dropped since the last flush, then the log's losses join the kernel's.
        let _ = self.log.flush();
        self.report_dropped();
        for &(why, n) in &self.dropped.lost_by {
            stats.add_lost(n, why);
        }
        self.stop_record(&stats);
        self.finish();
        Ok(stats)
    }

    /// Last flush: a failing log gets a few more tries before what it holds is given up.
    fn finish(&mut self) {
        for _ in 0..20 {
            if self.log.flush().is_err() || self.log.pending() == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        say!(
            "lsn-trace: audit log: {} bytes of records could not be written before exit",
            self.log.pending()
        );
    }
}

/// The identity keys: who `pid` is, from /proc or the cache.
fn identify(
    ids: &mut Identities,
    rec: &mut Map<String, Value>,
    pid: u32,
    comm: &str,
    start: Option<u64>,
    uid: Option<u32>,
) {
    let (info, source) = ids.of(pid, comm, start);
    rec.insert("identity".into(), json!(source));
    let user = uid.and_then(|u| ids.user_name(u));
    rec.insert("user".into(), json!(user));
    if rec.get("ppid").is_none_or(Value::is_null) {
        rec.insert("ppid".into(), json!(info.ppid));
    }
    // The caller's namespace where the socket's could not be read.
    if rec.get("netns").is_none_or(Value::is_null) {
        rec.insert("netns".into(), json!(info.proc_netns));
    }
    rec.append(&mut object(&*info));
}

/// The `snapshot` records of every listener that exists now, in every network namespace,
/// and the `snapshot_end` record saying what was covered (also `lsn-trace check`'s view
/// of the host).
/// `seen` is handed each listener with its note (the metrics count them).
pub fn snapshot_records(
    ids: &mut Identities,
    seen: &mut dyn FnMut(&Event, &story::Note),
) -> (Vec<Map<String, Value>>, Map<String, Value>) {
    let now = output::now_ns();
    let mut out = Vec::new();
    let namespaces = snapshot::namespaces();
    let ours = namespaces.first().map(|n| n.inode);
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for ns in &namespaces {
        match snapshot::listeners(ns, now) {
            Ok(f) => found.extend(f),
            Err(e) => {
                say!(
                    "lsn-trace: audit snapshot: network namespace net:[{}]: {e}",
                    ns.inode
                );
                errors.push(format!("net:[{}]: {e}", ns.inode));
            }
        }
    }
    let inodes: Vec<u32> = found.iter().map(|f| f.inode).filter(|&i| i != 0).collect();
    let owners = sockdiag::owners(&inodes, &[], snapshot::OWNER_BUDGET);
    // Its own story: what each address means, as for an event (no history to share).
    let mut story = story::Story::new();
    for f in &mut found {
        let unix = f.event.family() == Some(AF_UNIX);
        let mut who = owners.found.get(&f.inode).cloned().unwrap_or_default();
        who.sort_by_key(|o| o.pid);
        if let Some(o) = who.first() {
            f.event.pid = o.pid;
            f.event.comm = o.comm.as_str().into();
        }
        let mut rec = Map::new();
        rec.insert("record".into(), "snapshot".into());
        // The story keys sockets by identity: the inode serves, and is not printed (a
        // snapshot record's socket has no sock_id a later close could match).
        f.event.sock_id = Some((1 << 63) | u64::from(f.inode));
        let note = story.observe(&f.event);
        seen(&f.event, &note);
        rec.append(&mut event_fields(&f.event, &note));
        rec.insert("sock_id".into(), Value::Null);
        rec.insert("state".into(), f.state.into());
        let source = if unix { "proc_net_unix" } else { "sock_diag" };
        rec.insert("source".into(), source.into());
        for key in ["tid", "gid"] {
            rec.insert(key.into(), Value::Null);
        }
        // The socket's uid is in sock_diag's answer, not in /proc/net/unix.
        let uid = (!unix).then_some(f.event.uid);
        rec.insert("uid".into(), json!(uid));
        if Some(f.netns) != ours {
            // An interface index names an interface of that namespace, not ours.
            rec.insert("device".into(), Value::Null);
        }
        if who.is_empty() {
            // The story names the owner as comm[pid]; there is none to name.
            if let Some(Value::String(sum)) = rec.get_mut("summary")
                && let Some(rest) = sum.strip_prefix("[0] ")
            {
                *sum = format!("(no owning process) {rest}");
            }
            for key in [
                "pid", "comm", "ppid", "identity", "exe", "cmdline", "cgroup",
            ] {
                rec.insert(key.into(), Value::Null);
            }
            for key in ["container_id", "container_runtime", "systemd_unit"]
                .into_iter()
                .chain(identity::CONTAINER_KEYS)
            {
                rec.insert(key.into(), Value::Null);
            }
            let user = uid.and_then(|u| ids.user_name(u));
            rec.insert("user".into(), json!(user));
        } else {
            let (pid, comm) = (f.event.pid, f.event.comm.clone());
            identify(ids, &mut rec, pid, &comm, None, uid);
            // The socket's namespace, not the owner's (it may have moved since).
            rec.insert("netns".into(), json!(f.netns));
        }
        if who.len() > 1 {
            let list: Vec<Value> = who
                .iter()
                .map(|o| json!({"pid": o.pid, "comm": o.comm}))
                .collect();
            rec.insert("owners".into(), Value::Array(list));
        }
        out.push(rec);
    }
    let end = object(json!({
        "record": "snapshot_end",
        "time": now_time(),
        "namespaces": namespaces.len(),
        "listeners": found.len(),
        "owners_complete": owners.complete,
        "errors": errors,
    }));
    (out, end)
}

/// The keys of `--json` for an event and its note, as a map to add to (the snapshot's
/// records, made once at start: the one JSON writer, read back).
fn event_fields(ev: &Event, note: &story::Note) -> Map<String, Value> {
    let mut o = Sorted::default();
    record::write_fields(&mut o, ev, output::Options::default(), note);
    let mut line = Vec::new();
    o.write(&mut line);
    serde_json::from_slice(&line).expect("a record just written")
}

/// The /proc part of the identity keys (`ProcInfo`'s, as serde names them).
fn write_proc_info(o: &mut impl record::Object, info: &ProcInfo) {
    record::opt_str(key!(o, "exe"), info.exe.as_deref());
    let out = key!(o, "cmdline");
    match &info.cmdline {
        Some(args) => {
            out.push(b'[');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                record::str(out, a);
            }
            out.push(b']');
        }
        None => record::null(out),
    }
    if info.cmdline_truncated {
        record::bool(key!(o, "cmdline_truncated"), true);
    }
    record::opt_str(key!(o, "cgroup"), info.cgroup.as_deref());
    record::opt_str(key!(o, "container_id"), info.container_id.as_deref());
    record::opt_str(key!(o, "container_runtime"), info.container_runtime);
    record::opt_str(key!(o, "systemd_unit"), info.systemd_unit.as_deref());
    let c = &info.container;
    record::opt_str(key!(o, "container_name"), c.container_name.as_deref());
    record::opt_str(key!(o, "container_image"), c.container_image.as_deref());
    record::opt_str(key!(o, "k8s_namespace"), c.k8s_namespace.as_deref());
    record::opt_str(key!(o, "k8s_pod"), c.k8s_pod.as_deref());
    record::opt_str(key!(o, "k8s_container"), c.k8s_container.as_deref());
}

impl Sink for Audit {
    fn exec(&mut self, exec: &crate::stream::exec::Exec) {
        self.ids.exec(exec);
    }

    fn fork(&mut self, fork: &crate::stream::exec::Fork) {
        self.ids.fork(fork);
    }

    fn event(&mut self, ev: &Event, note: &story::Note) -> std::io::Result<()> {
        if let Some(change) = note.listener {
            self.event_record(ev, note, change);
            if change == ListenerChange::Open && self.policy.is_some() {
                // The policy decides on the record's keys: read back, for this record only.
                self.line.clear();
                self.rec.write(&mut self.line);
                let rec: Map<String, Value> =
                    serde_json::from_slice(&self.line).expect("a record just written");
                self.write_listener(rec);
            } else {
                self.write_gathered(record_kind(change));
            }
        }
        Ok(())
    }

    fn lost(&mut self, count: u64, reason: &str) -> std::io::Result<()> {
        if reason.starts_with(crate::stream::tracer::LOST_EXEC) {
            self.ids.execs_lost(crate::output::now_ns());
        }
        self.lost_record(count, reason);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.log.flush()?;
        self.report_dropped();
        if self.log.pending() > 0 {
            self.log.flush()?;
        }
        if let Some(c) = &mut self.counters {
            c.log_state(
                std::mem::take(&mut self.log.write_errors),
                self.log.pending(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::{IPPROTO_TCP, IPPROTO_UDP, Kind, Request, SOCK_DGRAM, SOCK_STREAM, Sock};
    use crate::sockaddr::{AF_INET, AF_INET6, SockAddr};

    /// An event of this process on socket 7 (other tests build theirs from it).
    pub(crate) fn ev(kind: Kind, errno: i32, family: u16, ty: u16, proto: u16) -> Event {
        Event {
            euid: None,
            state_unknown: None,
            kind,
            time_ns: 0,
            pid: std::process::id(),
            tid: std::process::id(),
            ppid: None,
            uid: 0,
            gid: 0,
            comm: "t".into(),
            fd: Some(3),
            errno,
            source: crate::event::Source::Syscall,
            request: Request::None,
            sock: Some(Sock {
                family: Some(family),
                sock_type: Some(ty),
                protocol: Some(proto),
                ..Sock::default()
            }),
            sock_id: Some(7),
            raw: Default::default(),
            followed: false,
            start: None,
        }
    }

    /// The story's listener rule, as audit records.
    fn record_of(events: &[Event]) -> Vec<Option<&'static str>> {
        let mut st = story::Story::new();
        events
            .iter()
            .map(|e| st.observe(e).listener.map(record_kind))
            .collect()
    }

    #[test]
    fn what_is_a_listener() {
        let tcp = |k, e| record_of(&[ev(k, e, AF_INET, SOCK_STREAM, IPPROTO_TCP)])[0];
        let udp = |k, e| record_of(&[ev(k, e, AF_INET6, SOCK_DGRAM, IPPROTO_UDP)])[0];
        assert_eq!(tcp(Kind::Bind, 0), None, "a TCP bind opens nothing yet");
        assert_eq!(tcp(Kind::Listen, 0), Some("open"));
        assert_eq!(tcp(Kind::ListenState, 0), Some("open"));
        assert_eq!(tcp(Kind::Bind, 98), Some("failed"));
        assert_eq!(tcp(Kind::Listen, 22), Some("failed"));
        assert_eq!(tcp(Kind::Close, 0), Some("close"));
        assert_eq!(tcp(Kind::Setsockopt, 0), None);
        assert_eq!(udp(Kind::Bind, 0), Some("open"));
        assert_eq!(udp(Kind::Bind, 98), Some("failed"));
        let unix_dgram = ev(Kind::Bind, 0, AF_UNIX, SOCK_DGRAM, 0);
        assert_eq!(record_of(&[unix_dgram]), [Some("open")]);
        let unix_stream = ev(Kind::Bind, 0, AF_UNIX, SOCK_STREAM, 0);
        assert_eq!(record_of(&[unix_stream]), [None]);
        let netlink = ev(Kind::Bind, 0, 16, SOCK_DGRAM, 0);
        assert_eq!(record_of(&[netlink]), [None]);
        // listen(2) again on a listener (a new backlog) opens nothing new; after its close,
        // the same socket identity listening again is a new listener.
        let mut listen = ev(Kind::Listen, 0, AF_INET, SOCK_STREAM, IPPROTO_TCP);
        listen.request = Request::Listen { backlog: Some(8) };
        let close = ev(Kind::Close, 0, AF_INET, SOCK_STREAM, IPPROTO_TCP);
        assert_eq!(
            record_of(&[listen.clone(), listen.clone(), close, listen]),
            [Some("open"), None, Some("close"), Some("open")]
        );
    }

    /// The identity keys written by hand are `ProcInfo`'s as serde has them (nulls left
    /// out): a field added there and not here fails this.
    #[test]
    fn proc_info_keys_are_serdes() {
        let info = identity::read_proc(std::process::id());
        let mut o = Sorted::default();
        write_proc_info(&mut o, &info);
        let mut line = Vec::new();
        o.write(&mut line);
        let want = serde_json::to_string(&NonNull(&object(&info))).unwrap();
        assert_eq!(String::from_utf8(line).unwrap(), want);
    }

    #[test]
    fn unix_listener_gets_its_bound_path() {
        let mut a = Audit {
            log: Log::stdout(),
            ids: Identities::new(),
            records: 0,
            policy: None,
            serve: None,
            counters: None,
            dropped: Stats::default(),
            rec: Sorted::default(),
            line: Vec::new(),
            proc_keys: ProcKeys::default(),
        };
        let mut st = story::Story::new();
        let mut bind = ev(Kind::Bind, 0, AF_UNIX, SOCK_STREAM, 0);
        bind.request = Request::Bind(SockAddr::UnixPath(b"/run/x.sock".to_vec()));
        assert_eq!(st.observe(&bind).listener, None);
        let listen = ev(Kind::Listen, 0, AF_UNIX, SOCK_STREAM, 0);
        let note = st.observe(&listen);
        assert_eq!(note.listener, Some(ListenerChange::Open));
        a.event_record(&listen, &note, ListenerChange::Open);
        let mut line = Vec::new();
        a.rec.write(&mut line);
        let rec: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(rec["addr"], "/run/x.sock");
        assert_eq!(rec["record"], "open");
        assert_eq!(rec["event"], "listen");
        assert_eq!(rec["identity"], "live");
        assert_eq!(rec["user"], "root");
        assert!(rec["exe"].is_string());
    }
}
