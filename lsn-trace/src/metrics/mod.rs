//! `lsn-trace audit --metrics ADDR:PORT`: the audit's records counted as Prometheus metrics
//! (the official `prometheus-client` crate), served by `server` on /metrics.
//!
//! Labels are bounded sets only — protocol, family, verdict kind, errno name, record kind,
//! lost-event reason — never a pid, port or address (each would make a series per
//! listener, which is what the log is for).
//!
//! `lsn_trace_listeners` is the snapshot plus opens minus closes. The kernel side sees a
//! close only for a TCP (and MPTCP) listener leaving LISTEN: datagram and unix listeners
//! are counted from their open on and never leave the gauge (their series say so in
//! their help text).
pub mod server;

use std::{
    collections::{HashMap, HashSet},
    io,
    sync::Arc,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::Registry,
};

use crate::{
    errno,
    event::{Event, Kind},
    pipeline::Sink,
    sockaddr::{AF_INET, AF_INET6, AF_UNIX},
    story::{ListenerChange, Note},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    protocol: &'static str,
    family: &'static str,
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpenLabels {
    protocol: &'static str,
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BindFailureLabels {
    errno: &'static str,
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrnoLabel {
    errno: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecordLabel {
    record: &'static str,
}

/// The `record` values of audit records (docs/audit.md).
const RECORD_KINDS: [&str; 9] = [
    "start",
    "snapshot",
    "snapshot_end",
    "open",
    "failed",
    "close",
    "alert",
    "lost",
    "stop",
];

/// A label value for what is not known (a protocol the event could not read).
const UNKNOWN: &str = "unknown";

/// Listeners whose close the kernel side reports, and so can leave the gauge.
fn close_is_seen(protocol: &str) -> bool {
    matches!(protocol, "tcp" | "mptcp")
}

fn family_name(family: Option<u16>) -> &'static str {
    match family {
        Some(AF_INET) => "inet",
        Some(AF_INET6) => "inet6",
        Some(AF_UNIX) => "unix",
        _ => UNKNOWN,
    }
}

/// The `reason` label of a lost-events report: a fixed name for each reason the tracer
/// gives (its text is for people and may change; the label is for alerts and may not).
pub fn lost_reason(text: &str) -> &'static str {
    // First: its text also says "skipped".
    if text.starts_with("exec captures") {
        "exec_captures"
    } else if text.starts_with("ring buffer full") {
        "ring_buffer_full"
    } else if text.contains("in flight") {
        "syscalls_in_flight"
    } else if text.contains("skipped") {
        "hooks_skipped"
    } else if text.contains("arguments could not be read") {
        "arguments_unreadable"
    } else {
        "other"
    }
}

/// The reason label of audit records the log could not hold.
const LOST_LOG_FULL: &str = "audit_log_full";
/// … and records dropped because the writer fell behind a storm (the disk was fine).
const LOST_WRITER_BEHIND: &str = "audit_writer_behind";

const LOST_REASONS: [&str; 7] = [
    "ring_buffer_full",
    "syscalls_in_flight",
    "hooks_skipped",
    "arguments_unreadable",
    LOST_LOG_FULL,
    LOST_WRITER_BEHIND,
    // The audit's exec capture (identities, not events).
    "exec_captures",
];

/// A listener the gauge counts: its labels, by the key its close will carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Inode(u64),
    Sock(u64),
}

/// The listeners the gauge holds (a host has thousands at most; entries leave at close).
const OPEN_CAP: usize = 1 << 20;

/// What the audit sink itself counts: its records and its log (handles onto the same
/// registry as [`Metrics`]'s).
#[derive(Clone)]
pub struct AuditCounters {
    lost: Family<ReasonLabel, Counter>,
    log_write_errors: Counter,
    log_buffered: Gauge,
    records: Family<RecordLabel, Counter>,
}

/// The listener metrics: a sink of the pipeline (`(&Event, &Note)`), plus the snapshot's
/// listeners (`record("snapshot", …)`).
pub struct Metrics {
    /// Shared with the HTTP server's thread, which encodes it at each scrape.
    registry: Arc<Registry>,
    listeners: Family<ListenerLabels, Gauge>,
    opens: Family<OpenLabels, Counter>,
    closes: Family<ProtocolLabel, Counter>,
    bind_failures: Family<BindFailureLabels, Counter>,
    listen_failures: Family<ErrnoLabel, Counter>,
    lost: Family<ReasonLabel, Counter>,
    audit: AuditCounters,
    /// Its own table, not the story's: the gauge holds the snapshot's listeners too, which
    /// the pipeline's story never saw, and must take a close away from the series its open
    /// went to.
    open: HashMap<Key, ListenerLabels>,
    /// Snapshot listeners whose close is never seen: an open event of one of them (opened
    /// between the attach and the snapshot) is not counted a second time.
    snapshot_only: HashSet<u64>,
}

impl Metrics {
    pub fn new(backend: &str, kernel: &str) -> Metrics {
        let mut registry = Registry::with_prefix("lsn_trace");
        let listeners = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "listeners",
            "Listeners open now: the startup snapshot plus opens minus closes (closes are \
             seen for TCP and MPTCP only: other protocols' series only grow)",
            listeners.clone(),
        );
        let opens = Family::<OpenLabels, Counter>::default();
        registry.register(
            "listener_opens",
            "Listeners opened since start (successful listen(2); bind(2) of a datagram socket)",
            opens.clone(),
        );
        let closes = Family::<ProtocolLabel, Counter>::default();
        registry.register(
            "listener_closes",
            "Listeners closed since start (TCP and MPTCP leaving LISTEN)",
            closes.clone(),
        );
        let bind_failures = Family::<BindFailureLabels, Counter>::default();
        registry.register(
            "bind_failures",
            "Failed bind(2) calls, by errno name",
            bind_failures.clone(),
        );
        let listen_failures = Family::<ErrnoLabel, Counter>::default();
        registry.register(
            "listen_failures",
            "Failed listen(2) calls, by errno name",
            listen_failures.clone(),
        );
        let lost = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "events_lost",
            "Events the kernel side could not deliver, and audit records the log could not \
             hold (audit_log_full, audit_writer_behind)",
            lost.clone(),
        );
        // At 0 from the start: an alert on their rate needs the series before the first loss.
        for reason in LOST_REASONS {
            drop(lost.get_or_create(&ReasonLabel { reason }));
        }
        let log_write_errors = Counter::default();
        registry.register(
            "log_write_errors",
            "Failed writes of the audit log (records are held and retried)",
            log_write_errors.clone(),
        );
        let log_buffered = Gauge::default();
        registry.register(
            "log_buffered_bytes",
            "Bytes of audit records not written to the log yet",
            log_buffered.clone(),
        );
        let records = Family::<RecordLabel, Counter>::default();
        registry.register(
            "records",
            "Audit records written, by record kind",
            records.clone(),
        );
        registry.register(
            "build",
            "The agent's version, the kernel hooks it attached and the running kernel",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("backend", backend.to_owned()),
                ("kernel", kernel.to_owned()),
            ]),
        );
        Metrics {
            registry: Arc::new(registry),
            listeners,
            opens,
            closes,
            bind_failures,
            listen_failures,
            lost: lost.clone(),
            audit: AuditCounters {
                lost,
                log_write_errors,
                log_buffered,
                records,
            },
            open: HashMap::new(),
            snapshot_only: HashSet::new(),
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    pub fn audit_counters(&self) -> AuditCounters {
        self.audit.clone()
    }

    #[cfg(test)]
    fn encode(&self) -> String {
        encode(&self.registry)
    }

    /// One audit record of an event (`open`, `failed`, `close`) or of the startup snapshot
    /// (`snapshot`), with what the story made of it.
    pub fn record(&mut self, record: &'static str, ev: &Event, note: &Note) {
        let protocol = ev.protocol().unwrap_or(UNKNOWN);
        let inode = ev.sock.as_ref().and_then(|s| s.inode).filter(|&i| i != 0);
        match record {
            "snapshot" | "open" => {
                let labels = ListenerLabels {
                    protocol,
                    family: family_name(ev.family()),
                    scope: note.verdict.unwrap_or(UNKNOWN),
                };
                if record == "open" {
                    self.opens
                        .get_or_create(&OpenLabels {
                            protocol,
                            scope: labels.scope,
                        })
                        .inc();
                }
                // A snapshot record's sock_id is made up (no close can match it).
                let key = inode.map(Key::Inode).or_else(|| {
                    (record == "open")
                        .then_some(ev.sock_id.map(Key::Sock))
                        .flatten()
                });
                if close_is_seen(protocol) {
                    if let Some(k) = key {
                        if self.open.contains_key(&k) {
                            return; // In the snapshot and in the stream: counted once.
                        }
                        if self.open.len() < OPEN_CAP {
                            self.open.insert(k, labels.clone());
                        }
                    }
                } else if let Some(i) = inode {
                    if record == "snapshot" {
                        self.snapshot_only.insert(i);
                    } else if self.snapshot_only.remove(&i) {
                        return;
                    }
                }
                self.listeners.get_or_create(&labels).inc();
            }
            "close" => {
                self.closes.get_or_create(&ProtocolLabel { protocol }).inc();
                // A listener the gauge never counted (opened before start and missed by
                // the snapshot, or beyond the filters) takes nothing away from it.
                let labels = inode
                    .and_then(|i| self.open.remove(&Key::Inode(i)))
                    .or_else(|| ev.sock_id.and_then(|s| self.open.remove(&Key::Sock(s))));
                if let Some(labels) = labels {
                    self.listeners.get_or_create(&labels).dec();
                }
            }
            "failed" => {
                let errno = errno::name(ev.errno).unwrap_or(UNKNOWN);
                match ev.kind {
                    Kind::Listen => self
                        .listen_failures
                        .get_or_create(&ErrnoLabel { errno })
                        .inc(),
                    _ => self
                        .bind_failures
                        .get_or_create(&BindFailureLabels { errno, protocol })
                        .inc(),
                };
            }
            _ => {}
        }
    }

    pub fn lost(&mut self, reason: &'static str, count: u64) {
        self.lost
            .get_or_create(&ReasonLabel { reason })
            .inc_by(count);
    }
}

impl Sink for Metrics {
    fn event(&mut self, ev: &Event, note: &Note) -> io::Result<()> {
        if let Some(change) = note.listener {
            let record = match change {
                ListenerChange::Open => "open",
                ListenerChange::Failed => "failed",
                ListenerChange::Close => "close",
            };
            self.record(record, ev, note);
        }
        Ok(())
    }

    fn lost(&mut self, count: u64, reason: &str) -> io::Result<()> {
        Metrics::lost(self, lost_reason(reason), count);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AuditCounters {
    /// An audit record of kind `record` written to (held for) the log.
    pub fn written(&mut self, record: &str) {
        let record = RECORD_KINDS
            .iter()
            .find(|&&k| k == record)
            .copied()
            .unwrap_or("other");
        self.records.get_or_create(&RecordLabel { record }).inc();
    }

    /// Audit records the log dropped: it could not be written, or (`behind`) its writer
    /// fell behind the events.
    pub fn log_dropped(&mut self, count: u64, behind: bool) {
        let reason = if behind {
            LOST_WRITER_BEHIND
        } else {
            LOST_LOG_FULL
        };
        self.lost
            .get_or_create(&ReasonLabel { reason })
            .inc_by(count);
    }

    /// The log's state after a flush: write errors since the last call, bytes still held.
    pub fn log_state(&mut self, new_write_errors: u64, buffered: usize) {
        if new_write_errors > 0 {
            self.log_write_errors.inc_by(new_write_errors);
        }
        self.log_buffered
            .set(i64::try_from(buffered).unwrap_or(i64::MAX));
    }
}

/// The metrics in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    prometheus_client::encoding::text::encode(&mut out, registry).expect("encode metrics");
    out
}

/// The running kernel's release (uname -r), for build_info.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| UNKNOWN.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{IPPROTO_TCP, IPPROTO_UDP, SOCK_DGRAM, SOCK_STREAM};

    /// The audit tests' event, on the socket of `inode`.
    fn ev(kind: Kind, errno: i32, family: u16, ty: u16, proto: u16, inode: u64) -> Event {
        let mut e = crate::audit::tests::ev(kind, errno, family, ty, proto);
        if let Some(s) = e.sock.as_mut() {
            s.inode = Some(inode);
        }
        e.sock_id = Some(inode + 1000);
        e
    }

    fn note(verdict: &'static str) -> Note {
        Note {
            verdict: Some(verdict),
            ..Note::default()
        }
    }

    /// The value of one series in the encoded text (`name{labels} value`).
    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_owned)
    }

    #[test]
    fn listeners_are_snapshot_plus_opens_minus_closes() {
        let mut m = Metrics::new("tracepoint", "6.18.0");
        let tcp = |inode| ev(Kind::Listen, 0, AF_INET, SOCK_STREAM, IPPROTO_TCP, inode);
        let udp = |inode| ev(Kind::Bind, 0, AF_INET6, SOCK_DGRAM, IPPROTO_UDP, inode);
        m.record("snapshot", &tcp(1), &note("loopback"));
        m.record("snapshot", &udp(2), &note("dual-stack"));
        m.record("open", &tcp(3), &note("loopback"));
        m.record("open", &tcp(4), &note("all-ipv4"));
        // Opened between attach and snapshot: in both, counted once.
        m.record("open", &tcp(1), &note("loopback"));
        m.record("open", &udp(2), &note("dual-stack"));
        // Closes of a snapshot listener and of a streamed one; one never counted.
        m.record(
            "close",
            &ev(Kind::Close, 0, AF_INET, SOCK_STREAM, IPPROTO_TCP, 1),
            &Note::default(),
        );
        m.record(
            "close",
            &ev(Kind::Close, 0, AF_INET, SOCK_STREAM, IPPROTO_TCP, 4),
            &Note::default(),
        );
        m.record(
            "close",
            &ev(Kind::Close, 0, AF_INET, SOCK_STREAM, IPPROTO_TCP, 99),
            &Note::default(),
        );
        let t = m.encode();
        let l = |p, f, s| {
            value(
                &t,
                &format!("lsn_trace_listeners{{protocol=\"{p}\",family=\"{f}\",scope=\"{s}\"}}"),
            )
        };
        assert_eq!(l("tcp", "inet", "loopback").as_deref(), Some("1"));
        assert_eq!(l("tcp", "inet", "all-ipv4").as_deref(), Some("0"));
        assert_eq!(l("udp", "inet6", "dual-stack").as_deref(), Some("1"));
        let o = |p, s| {
            value(
                &t,
                &format!("lsn_trace_listener_opens_total{{protocol=\"{p}\",scope=\"{s}\"}}"),
            )
        };
        assert_eq!(o("tcp", "loopback").as_deref(), Some("2"));
        assert_eq!(o("tcp", "all-ipv4").as_deref(), Some("1"));
        assert_eq!(o("udp", "dual-stack").as_deref(), Some("1"));
        assert_eq!(
            value(&t, "lsn_trace_listener_closes_total{protocol=\"tcp\"}").as_deref(),
            Some("3")
        );
    }

    #[test]
    fn failures_by_errno_name_and_the_rest() {
        let mut m = Metrics::new("fentry", "6.12.1");
        let bind = ev(Kind::Bind, 98, AF_INET, SOCK_STREAM, IPPROTO_TCP, 5);
        m.record("failed", &bind, &Note::default());
        m.record("failed", &bind, &Note::default());
        let listen = ev(Kind::Listen, 95, AF_INET, SOCK_DGRAM, IPPROTO_UDP, 6);
        m.record("failed", &listen, &Note::default());
        m.lost(lost_reason("ring buffer full; raise --ring-size"), 7);
        let mut a = m.audit_counters();
        a.log_dropped(2, false);
        a.log_dropped(5, true);
        a.log_state(3, 4096);
        a.written("start");
        a.written("open");
        a.written("open");
        a.written("alert");
        let t = m.encode();
        let v = |s: &str| value(&t, s);
        assert_eq!(
            v("lsn_trace_bind_failures_total{errno=\"EADDRINUSE\",protocol=\"tcp\"}").as_deref(),
            Some("2")
        );
        assert_eq!(
            v("lsn_trace_listen_failures_total{errno=\"EOPNOTSUPP\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("lsn_trace_events_lost_total{reason=\"ring_buffer_full\"}").as_deref(),
            Some("7")
        );
        assert_eq!(
            v("lsn_trace_events_lost_total{reason=\"audit_log_full\"}").as_deref(),
            Some("2")
        );
        assert_eq!(
            v("lsn_trace_events_lost_total{reason=\"audit_writer_behind\"}").as_deref(),
            Some("5")
        );
        assert_eq!(
            v("lsn_trace_events_lost_total{reason=\"hooks_skipped\"}").as_deref(),
            Some("0")
        );
        assert_eq!(
            v("lsn_trace_events_lost_total{reason=\"arguments_unreadable\"}").as_deref(),
            Some("0")
        );
        assert_eq!(
            v("lsn_trace_records_total{record=\"alert\"}").as_deref(),
            Some("1")
        );
        assert_eq!(v("lsn_trace_log_write_errors_total").as_deref(), Some("3"));
        assert_eq!(v("lsn_trace_log_buffered_bytes").as_deref(), Some("4096"));
        assert_eq!(
            v("lsn_trace_build_info{version=\"0.1.0\",backend=\"fentry\",kernel=\"6.12.1\"}")
                .as_deref(),
            Some("1")
        );
        assert_eq!(
            v("lsn_trace_records_total{record=\"start\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("lsn_trace_records_total{record=\"open\"}").as_deref(),
            Some("2")
        );
        assert!(t.ends_with("# EOF\n"), "{t}");
    }

    #[test]
    fn lost_reasons_are_fixed_names() {
        assert_eq!(
            lost_reason("ring buffer full; raise --ring-size"),
            "ring_buffer_full"
        );
        assert_eq!(
            lost_reason("too many syscalls in flight"),
            "syscalls_in_flight"
        );
        assert_eq!(
            lost_reason("the kernel skipped lsn-trace's hooks while another eBPF program ran"),
            "hooks_skipped"
        );
        assert_eq!(
            lost_reason(
                "exec captures lost (the EXECS ring full, or the hook skipped by the kernel)"
            ),
            "exec_captures"
        );
        assert_eq!(lost_reason("something new"), "other");
    }
}
