//! The agent's loop: ring buffer -> decode -> pipeline (story, then sinks), until told to
//! stop. Lost events are counted in the kernel (per-CPU) and surfaced as they appear.
use std::{
    future::Future,
    io,
    os::fd::{AsFd as _, AsRawFd as _},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, Map, MapData, PerCpuArray};
use aya_log::EbpfLogger;
use lsn_trace_common as wire;
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    backend::Loaded,
    event::{Decoder, Event},
    pipeline::Pipeline,
    replay::Recording,
    ring::EventRing,
    stream::exec,
};

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub events: u64,
    /// Every loss of the run: events the kernel side could not hand over, and records a
    /// sink could not keep.
    pub lost: u64,
    /// `lost` by reason (a short name each), in the order they first happened.
    pub lost_by: Vec<(&'static str, u64)>,
    /// Events the filters dropped in the kernel, never reaching the ring buffer.
    pub filtered: u64,
}

impl Stats {
    /// Count `n` lost for `why`.
    pub fn add_lost(&mut self, n: u64, why: &'static str) {
        self.lost += n;
        match self.lost_by.iter_mut().find(|(w, _)| *w == why) {
            Some((_, c)) => *c += n,
            None => self.lost_by.push((why, n)),
        }
    }

    /// The line lsn-trace ends with on stderr; when something was lost, by reason after a
    /// `; `.
    pub fn stopped_line(&self) -> String {
        let mut line = format!(
            "lsn-trace: stopped: {} events, {} lost, {} filtered in kernel",
            self.events, self.lost, self.filtered
        );
        if !self.lost_by.is_empty() {
            let by: Vec<String> = self
                .lost_by
                .iter()
                .map(|(w, n)| format!("{n} {w}"))
                .collect();
            line.push_str(&format!("; lost: {}", by.join(", ")));
        }
        line
    }
}

/// Short names of the reasons events are lost (`Stats::lost_by`).
pub const LOST_RING_FULL: &str = "ring buffer full";
pub const LOST_PENDING: &str = "too many syscalls in flight";
pub const LOST_SKIPPED: &str = "hooks skipped by the kernel";
pub const LOST_AT_STOP: &str = "left in the ring at stop";
pub const LOST_ARGS_UNREADABLE: &str = "arguments unreadable";
pub const LOST_RETURN_MISSED: &str = "returns not seen (kretprobe maxactive)";

pub struct Tracer {
    ring: AsyncFd<EventRing>,
    counters: PerCpuArray<MapData, u64>,
    /// The self-check threads' ids (tid -> CPU), for the programs (`selfcheck`).
    self_check: HashMap<MapData, u32, u32>,
    /// Events that arrived during the self-check, before there was a sink for them.
    held: Vec<Event>,
    logger: Option<AsyncFd<EbpfLogger<&'static dyn log::Log>>>,
    decoder: Decoder,
    lost_reported: [u64; 4],
    skipped: SkippedRuns,
    stats: Stats,
    /// `--record-raw`: every record also goes to this file, for `replay`.
    recording: Option<Recording>,
    /// The audit's exec capture (`EXECS`), read before each chunk of events.
    execs: Option<ExecRing>,
    // Kept last: dropping it detaches the programs.
    _loaded: Loaded,
}

/// Register a map's fd with the runtime (which must be entered).
fn readable<T: std::os::fd::AsRawFd>(map: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: the fd belongs to `map`, which the AsyncFd owns and never closes early.
    unsafe { AsyncFd::register_with_interest(map, Interest::READABLE) }.map_err(|e| e.into())
}

/// How often the ring is drained when the kernel side did not wake us (it only wakes the
/// reader once a batch is pending): bounds the latency of a lone event.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// One turn of the loop reads at most this many records, or for at most this long, then
/// flushes the sink and looks at signals: under a storm that never lets the ring empty,
/// records still reach the output (the audit log) and SIGINT/SIGTERM/SIGHUP still act,
/// within a turn. Checked every `DRAIN_CHUNK` records.
const DRAIN_RECORDS: usize = 4096;
const DRAIN_TIME: Duration = Duration::from_millis(50);
const DRAIN_CHUNK: usize = 256;
/// Between two turns of a storm: ~2% of a turn, for the runtime to see signals.
const TURN_PAUSE: Duration = Duration::from_millis(1);
/// How long the drain after the stop signal reads what was submitted before it; the stop
/// then acts within this and a turn (the rest is counted lost).
const FINAL_DRAIN_TIME: Duration = Duration::from_millis(250);

impl Tracer {
    pub fn new(mut loaded: Loaded) -> Result<Tracer> {
        let ring = match loaded.ebpf.take_map("EVENTS").context("EVENTS map")? {
            Map::RingBuf(data) => EventRing::new(data)?,
            _ => anyhow::bail!("EVENTS is not a ring buffer map"),
        };
        let counters =
            PerCpuArray::try_from(loaded.ebpf.take_map("COUNTERS").context("COUNTERS map")?)?;
        let self_check = HashMap::try_from(
            loaded
                .ebpf
                .take_map("SELF_CHECK")
                .context("SELF_CHECK map")?,
        )?;
        let logger = match EbpfLogger::init(&mut loaded.ebpf) {
            Ok(l) => Some(readable(l)?),
            Err(e) => {
                log::debug!("eBPF logger unavailable: {e}");
                None
            }
        };
        let skipped = SkippedRuns::of(&loaded);
        let execs = if loaded.exec {
            match loaded.ebpf.take_map("EXECS").context("EXECS map")? {
                Map::RingBuf(data) => Some(ExecRing {
                    ring: EventRing::new(data)?,
                    lost_reported: 0,
                    prog_fds: ["sched_process_exec", "fork_lineage"]
                        .into_iter()
                        .filter_map(|name| loaded.ebpf.program(name))
                        .filter_map(|p| p.fd().ok())
                        .map(|fd| fd.as_fd().as_raw_fd())
                        .collect(),
                }),
                _ => anyhow::bail!("EXECS is not a ring buffer map"),
            }
        } else {
            None
        };
        Ok(Tracer {
            ring: readable(ring)?,
            counters,
            self_check,
            held: Vec::new(),
            logger,
            decoder: Decoder::new(),
            lost_reported: [0; 4],
            skipped,
            stats: Stats::default(),
            recording: None,
            execs,
            _loaded: loaded,
        })
    }

    /// Write every record the ring delivers from now on to `path` (see `replay`).
    pub fn record_to(&mut self, path: &std::path::Path) -> Result<()> {
        self.recording = Some(Recording::create(path, &self.decoder)?);
        Ok(())
    }

    fn counter(&self, idx: u32) -> u64 {
        self.counters
            .get(&idx, 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0)
    }

    /// Let the calls of thread `tid` of this process (pinned to `cpu`) through every filter,
    /// marked as the self-check's.
    pub fn add_self_check(&mut self, tid: u32, cpu: u32) -> Result<()> {
        self.self_check
            .insert(tid, cpu, 0)
            .context("adding a self-check thread")
    }

    pub fn remove_self_check(&mut self, tid: u32) -> Result<()> {
        self.self_check
            .remove(&tid)
            .context("removing a self-check thread")
    }

    /// Before there is a pipeline (the self-check): the self-check's events to `on_check`,
    /// every other event kept for the pipeline `run` is given.
    pub fn drain_held(&mut self, mut on_check: impl FnMut(&Event)) -> io::Result<()> {
        let Tracer {
            ring,
            decoder,
            stats,
            held,
            recording,
            ..
        } = self;
        ring.get_mut()
            .drain(usize::MAX, None, |item| {
                let Some(raw) = read_event(item) else {
                    return Ok(());
                };
                let check = raw.flags & wire::F_SELF_CHECK != 0;
                if !check && let Some(r) = recording.as_mut() {
                    r.record(item)?;
                }
                if let Some(ev) = decoder.decode(&raw) {
                    if check {
                        on_check(&ev);
                    } else {
                        stats.events += 1;
                        held.push(ev);
                    }
                }
                Ok(())
            })
            .map(drop)
    }

    /// Deliver what the ring holds — one turn's worth (`DRAIN_RECORDS`, `DRAIN_TIME`), or
    /// for the `last` drain what was submitted until now — and what was lost meanwhile
    /// (the last drain asks for skipped runs whenever it was last asked); then flush the
    /// sink. True when records are left for the next turn.
    fn drain(&mut self, pipeline: &mut Pipeline<'_>, last: bool) -> io::Result<bool> {
        let Tracer {
            ring,
            decoder,
            stats,
            recording,
            execs,
            ..
        } = self;
        let ring = ring.get_mut();
        let until = last.then(|| ring.submitted());
        let started = Instant::now();
        let mut handed = 0;
        let more = loop {
            let mut n = 0;
            // The execs first, then only events submitted before they were read: an
            // event's exec (committed before its process went on) is known before it.
            let chunk_until = match execs {
                Some(x) => {
                    let now = ring.submitted();
                    x.deliver(pipeline, decoder.boot_to_wall_ns())?;
                    Some(until.map_or(now, |u| earlier(u, now)))
                }
                None => until,
            };
            let more = ring.drain(DRAIN_CHUNK, chunk_until, |item| {
                n += 1;
                let Some(raw) = read_event(item) else {
                    return Ok(());
                };
                // A self-check event still in flight when the check ended: not the host's.
                if raw.flags & wire::F_SELF_CHECK != 0 {
                    return Ok(());
                }
                if let Some(r) = recording.as_mut() {
                    r.record(item)?;
                }
                if let Some(ev) = decoder.decode(&raw) {
                    stats.events += 1;
                    pipeline.event(&ev)?;
                }
                Ok(())
            })?;
            handed += n;
            // Stopped at its own `chunk_until` with more submitted since: not the end.
            let cut = chunk_until != until && n > 0 && chunk_until != Some(ring.submitted());
            if !more && !cut {
                break false;
            }
            if last && started.elapsed() >= FINAL_DRAIN_TIME {
                // A storm filled the ring just before the stop: what it holds beyond the
                // final drain's time is counted (cheaply, undecoded), not read.
                let mut left = 0;
                ring.drain(usize::MAX, until, |_| {
                    left += 1;
                    Ok(())
                })?;
                stats.add_lost(left, LOST_AT_STOP);
                pipeline.lost(
                    left,
                    "still in the ring buffer when the stop signal's final drain ran out of \
                     time",
                )?;
                break false;
            }
            if !last && (handed >= DRAIN_RECORDS || started.elapsed() >= DRAIN_TIME) {
                break true;
            }
        };
        if let Some(r) = recording {
            r.flush()?;
        }
        self.report_lost(pipeline)?;
        self.report_skipped(pipeline, last)?;
        pipeline.flush()?;
        Ok(more)
    }

    /// Runs of our programs the kernel skipped since last asked (at most every
    /// `SKIPPED_EVERY`, unless `now`): lost events like the others.
    fn report_skipped(&mut self, pipeline: &mut Pipeline<'_>, now: bool) -> io::Result<()> {
        if let Some(n) = self.skipped.new_since_last(now) {
            self.stats.add_lost(n, LOST_SKIPPED);
            pipeline.lost(
                n,
                "the kernel skipped lsn-trace's hooks while another eBPF program ran on the \
                 same CPU (BPF recursion guard; a preemptible kernel makes it likelier)",
            )?;
        }
        Ok(())
    }

    fn report_lost(&mut self, pipeline: &mut Pipeline<'_>) -> io::Result<()> {
        for (i, (idx, why, reason)) in [
            (
                wire::CTR_LOST_RINGBUF,
                LOST_RING_FULL,
                "ring buffer full; raise --ring-size",
            ),
            (
                wire::CTR_LOST_PENDING,
                LOST_PENDING,
                "too many syscalls in flight",
            ),
            (
                wire::CTR_SOCK_READ_FAIL,
                LOST_ARGS_UNREADABLE,
                "the call's arguments could not be read (its saved registers); for \
                 setsockopt, this may count options lsn-trace does not report",
            ),
            (
                wire::CTR_LOST_RETURN,
                LOST_RETURN_MISSED,
                "calls whose return the kernel did not probe (kprobe backend: more threads \
                 in one function at once than its kretprobe's maxactive)",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let total = self.counter(idx);
            if total > self.lost_reported[i] {
                let n = total - self.lost_reported[i];
                self.lost_reported[i] = total;
                self.stats.add_lost(n, why);
                pipeline.lost(n, reason)?;
            }
        }
        if self.execs.is_some() {
            let full = self.counter(wire::CTR_EXEC_LOST);
            if let Some(x) = &mut self.execs
                && let total = full
                    + x.prog_fds
                        .iter()
                        .map(|&fd| recursion_misses(fd))
                        .sum::<u64>()
                && total > x.lost_reported
            {
                let n = total - x.lost_reported;
                x.lost_reported = total;
                self.stats.add_lost(n, LOST_EXEC);
                pipeline.lost(
                    n,
                    "exec captures lost (the EXECS ring full, or the hook skipped by the \
                     kernel): those processes' records may have no exe and cmdline",
                )?;
            }
        }
        Ok(())
    }

    fn flush_logs(&mut self) {
        if let Some(l) = &mut self.logger {
            l.get_mut().flush();
        }
    }

    /// Run until `stop` completes or the sinks' reader goes away.
    pub async fn run(
        &mut self,
        pipeline: &mut Pipeline<'_>,
        stop: impl Future<Output = ()>,
    ) -> Result<Stats> {
        tokio::pin!(stop);
        if let Some(x) = &mut self.execs {
            x.deliver(pipeline, self.decoder.boot_to_wall_ns())?;
        }
        for ev in std::mem::take(&mut self.held) {
            pipeline.event(&ev)?;
        }
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        // Records left in the ring after a turn (a storm): the next turn comes right away,
        // after the stop signal and the logger had their chance (`biased`), so a signal acts
        // within a turn, and the sink flushes every turn.
        let mut more = false;
        let result: io::Result<()> = async {
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    guard = async { match &mut self.logger {
                        Some(l) => l.readable_mut().await.map(|mut g| g.clear_ready()),
                        None => std::future::pending().await,
                    } } => { guard?; self.flush_logs(); }
                    // A sleep, not a yield: only a runtime with nothing ready parks, and only
                    // its park reads the signals (a yield let SIGTERM wait out the storm).
                    _ = tokio::time::sleep(TURN_PAUSE), if more => more = self.drain(pipeline, false)?,
                    guard = self.ring.readable_mut() => {
                        let mut guard = guard?;
                        guard.clear_ready();
                        drop(guard);
                        more = self.drain(pipeline, false)?;
                    }
                    _ = tick.tick() => more = self.drain(pipeline, false)?,
                }
            }
            // What was submitted before the stop still belongs to the trace.
            self.drain(pipeline, true).map(drop)
        }
        .await;
        self.flush_logs();
        self.stats.filtered = self.counter(wire::CTR_FILTERED);
        log::info!(
            "records submitted by the programs: {} (self-check's included)",
            self.counter(wire::CTR_EMITTED)
        );
        match result {
            Ok(()) => Ok(self.stats.clone()),
            // `lsn-trace | head`: the reader is gone, which is an ending, not an error.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(self.stats.clone()),
            Err(e) => Err(e.into()),
        }
    }
}

// ---- Exec capture (issue 18) ------------------------------------------------------------

/// The `EXECS` ring and the losses of it already reported.
struct ExecRing {
    ring: EventRing,
    lost_reported: u64,
    /// The exec and fork programs' descriptors (owned by `Tracer::_loaded`): their runs the
    /// kernel skipped (`SkippedRuns`) are captures lost too.
    prog_fds: Vec<i32>,
}

/// Why exec captures are lost (`Stats::lost_by`).
pub const LOST_EXEC: &str = "exec captures lost";

impl ExecRing {
    /// Every exec and fork record committed until now, to the sinks (not the story).
    fn deliver(&mut self, pipeline: &mut Pipeline<'_>, boot_to_wall_ns: i64) -> io::Result<()> {
        self.ring.drain(usize::MAX, None, |item| {
            if let Some(x) = exec::decode(item, boot_to_wall_ns) {
                pipeline.exec(&x);
            } else if let Some(f) = exec::decode_fork(item, boot_to_wall_ns) {
                pipeline.fork(&f);
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// Of two ring positions (not far apart), the earlier.
fn earlier(a: usize, b: usize) -> usize {
    if (b.wrapping_sub(a) as isize) >= 0 {
        a
    } else {
        b
    }
}
// ---- end of the exec capture ------------------------------------------------------------

/// A ring-buffer record as the event the programs wrote (None: too short to be one).
fn read_event(item: &[u8]) -> Option<wire::Event> {
    if item.len() < std::mem::size_of::<wire::Event>() {
        return None;
    }
    // SAFETY: the programs write whole `wire::Event`s; read unaligned to be safe.
    Some(unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) })
}

/// How often the programs' skipped runs are asked for (a read of each one's fdinfo).
const SKIPPED_EVERY: Duration = Duration::from_millis(500);

/// The kernel runs one tracing program at a time per CPU: a hook that fires while that
/// program is already running there (on a kernel whose fentry programs can be preempted,
/// another task's call of the same function; an interrupt's, anywhere) is skipped, and
/// only counted, as the program's `recursion_misses` (5.12+, in its fdinfo). Each skipped
/// run is an event the ring buffer never saw.
struct SkippedRuns {
    /// The loaded programs' descriptors (owned by `Tracer::_loaded`).
    fds: Vec<i32>,
    reported: u64,
    asked: Option<Instant>,
}

impl SkippedRuns {
    fn of(loaded: &Loaded) -> SkippedRuns {
        // Every hook whose run makes an event, or (kprobe entries) its arguments. Not the
        // fentry entry hooks (a mark the exit hook makes up for) nor process ancestry.
        let fds = loaded
            .ebpf
            .programs()
            .filter(|(name, _)| !name.starts_with("fentry_") && !name.starts_with("sched_process_"))
            .filter_map(|(_, p)| p.fd().ok())
            .map(|fd| fd.as_fd().as_raw_fd())
            .collect();
        SkippedRuns {
            fds,
            reported: 0,
            asked: None,
        }
    }

    /// How many more runs were skipped, when there are any (and it is time to ask).
    fn new_since_last(&mut self, now: bool) -> Option<u64> {
        if !now && self.asked.is_some_and(|t| t.elapsed() < SKIPPED_EVERY) {
            return None;
        }
        self.asked = Some(Instant::now());
        let total: u64 = self.fds.iter().map(|&fd| recursion_misses(fd)).sum();
        let n = total.checked_sub(self.reported).filter(|&n| n > 0)?;
        self.reported = total;
        Some(n)
    }
}

/// A program's `recursion_misses` from the fdinfo of its descriptor in this process; 0 when
/// the kernel does not report it.
fn recursion_misses(fd: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("recursion_misses:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}
