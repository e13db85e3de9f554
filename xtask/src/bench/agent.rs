//! A running lsn-trace: started until its "attached" line, its JSON counted per pid when
//! piped here, stopped with its resource usage and its stop line; a workload run under it.
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use super::workload::{Run, Tools, workload, workload_args};
use crate::cmd::display;

/// JSON lines counted per (pid, event kind).
type Counts = HashMap<(u32, String), u64>;
/// How long an agent may take to attach before the run is abandoned.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Output {
    Null,
    /// Piped here: lines per pid counted.
    Count,
}

/// A running lsn-trace.
pub(super) struct Agent {
    child: Child,
    attach_ms: f64,
    stderr: mpsc::Receiver<String>,
    reaped: bool,
    counter: Option<thread::JoinHandle<Result<Counts>>>,
}

/// utime + stime of a process, in clock ticks (0 when it is gone).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) end with ')'; utime and stime are
    // the 14th and 15th fields, the 12th and 13th after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

pub(super) struct Stopped {
    pub(super) cpu_s: f64,
    pub(super) peak_rss_kb: u64,
    pub(super) events: u64,
    pub(super) lost: u64,
    pub(super) per_pid: Option<Counts>,
}

impl Run {
    /// What an agent's run and its stop said: attach time, CPU, peak RSS, events, lost.
    fn took_stop(&mut self, agent: &Agent, stopped: &Stopped) {
        self.attach_ms = Some(agent.attach_ms);
        self.cpu_s = Some(stopped.cpu_s);
        self.peak_rss_kb = Some(stopped.peak_rss_kb);
        self.stop_events = Some(stopped.events);
        self.lost = Some(stopped.lost);
    }
}

impl Agent {
    pub(super) fn start(bin: &Path, backend: &str, json: bool, output: Output) -> Result<Agent> {
        Agent::start_with(bin, backend, json, output, &[])
    }

    /// `start`, with more arguments for lsn-trace.
    pub(super) fn start_with(
        bin: &Path,
        backend: &str,
        json: bool,
        output: Output,
        extra: &[std::ffi::OsString],
    ) -> Result<Agent> {
        let mut cmd = Command::new(bin);
        cmd.args(["--backend", backend]);
        if json {
            cmd.arg("--json");
        }
        cmd.args(extra);
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
        cmd.stdout(match output {
            Output::Null => Stdio::null(),
            Output::Count => Stdio::piped(),
        });
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not run `{}`", display(&cmd)))?;
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("piped");
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let counter = child
            .stdout
            .take()
            .map(|out| thread::spawn(move || count_pids(out)));
        let mut early = Vec::new();
        let attach_ms = loop {
            match rx.recv_timeout(ATTACH_TIMEOUT) {
                Ok(line) if line.starts_with("lsn-trace: attached") => {
                    break t0.elapsed().as_secs_f64() * 1e3;
                }
                Ok(line) => early.push(line),
                Err(_) => {
                    // Exited (stderr closed) or hung: either way it did not attach.
                    let _ = child.kill();
                    let st = child.wait()?;
                    bail!(
                        "`{}` did not attach ({st}): {}",
                        display(&cmd),
                        early.join(" / ")
                    );
                }
            }
        };
        Ok(Agent {
            child,
            attach_ms,
            stderr: rx,
            reaped: false,
            counter,
        })
    }

    /// Until the agent has used no CPU for 200 ms (it has read everything the ring held),
    /// at most 60 s.
    pub(super) fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = cpu_ticks(self.child.id());
        let mut quiet = 0;
        while quiet < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
            let now = cpu_ticks(self.child.id());
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
    }

    /// The agent's process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then its resource usage (wait4) and its stop line.
    pub(super) fn stop(&mut self) -> Result<Stopped> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: our own child, not yet waited for.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut status = 0;
        // SAFETY: all-zero is a valid rusage; wait4 fills it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers; the pid is our unwaited child.
        if unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } != pid {
            bail!("wait4({pid}): {}", std::io::Error::last_os_error());
        }
        self.reaped = true;
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let lines: Vec<String> = self.stderr.iter().collect();
        let stop = lines
            .iter()
            .find_map(|l| l.strip_prefix("lsn-trace: stopped: "))
            .ok_or_else(|| anyhow!("lsn-trace printed no stop line: {}", lines.join(" / ")))?;
        // "N events, M lost, K filtered in kernel"
        let num = |word: &str| -> Result<u64> {
            stop.split(", ")
                .find_map(|p| p.strip_suffix(word))
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| anyhow!("stop line without `{word}`: {stop}"))
        };
        let per_pid = match self.counter.take() {
            Some(h) => Some(h.join().map_err(|_| anyhow!("counter panicked"))??),
            None => None,
        };
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            bail!(
                "lsn-trace ended with wait status {status}: {}",
                lines.join(" / ")
            );
        }
        Ok(Stopped {
            cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
            peak_rss_kb: ru.ru_maxrss as u64,
            events: num(" events")?,
            lost: num(" lost")?,
            per_pid,
        })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A run that failed midway must not leave an agent attached.
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(super) fn lsn_trace_run(
    tools: &Tools,
    backend: &str,
    json: bool,
    output: Output,
    cycles: u64,
    tax: u64,
) -> Result<Run> {
    let agent = Agent::start(&tools.lsn_trace, backend, json, output)?;
    run_under(tools, agent, cycles, tax)
}

/// `lsn_trace_run` with more arguments for lsn-trace (`--format strace`), output to
/// /dev/null.
pub(super) fn lsn_trace_run_with(
    tools: &Tools,
    backend: &str,
    json: bool,
    extra: &[std::ffi::OsString],
    cycles: u64,
    tax: u64,
) -> Result<Run> {
    let agent = Agent::start_with(&tools.lsn_trace, backend, json, Output::Null, extra)?;
    run_under(tools, agent, cycles, tax)
}

/// The storm (then the tax) under a started agent, and what the agent measured.
fn run_under(tools: &Tools, mut agent: Agent, cycles: u64, tax: u64) -> Result<Run> {
    let mut run = workload(Command::new(&tools.workload).args(workload_args(cycles, 0)))?;
    if tax > 0 {
        // The tax is what the attached hooks cost every other syscall, not the agent still
        // draining the storm's backlog on the other CPU (with a slow output, or under
        // emulation, that took seconds and made the tax the agent's CPU time).
        agent.wait_idle();
        let t = workload(Command::new(&tools.workload).args(["tax".into(), tax.to_string()]))?;
        run.tax_ns = t.tax_ns;
    }
    let stopped = agent.stop()?;
    run.took_stop(&agent, &stopped);
    if let Some(counts) = stopped.per_pid {
        let mut by_kind = HashMap::new();
        for ((pid, kind), n) in counts {
            if pid == run.workload_pid {
                *by_kind.entry(kind).or_insert(0) += n;
            }
        }
        run.reported = Some(by_kind.values().sum());
        run.reported_by_kind = Some(by_kind);
    }
    Ok(run)
}

/// `lsn-trace --backend B audit --log FILE` under the storm, FILE in a directory of its own
/// under the temporary directory: its CPU, peak RSS, stop line, and the workload's records
/// found in the file (`reported`) against those the storm made (`records_made`: an open and
/// a close per cycle). The agent is given until it is idle before it is stopped: the records
/// are counted on disk, and the stop's final drain is for what came just before a stop.
pub(super) fn audit_run(tools: &Tools, backend: &str, cycles: u64, tax: u64) -> Result<Run> {
    let dir = std::env::temp_dir().join(format!("lsn-bench-audit-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join("audit.jsonl");
    let result = (|| {
        let extra = ["audit".into(), "--log".into(), log.clone().into_os_string()];
        let mut agent = Agent::start_with(&tools.lsn_trace, backend, false, Output::Null, &extra)?;
        let mut run = workload(Command::new(&tools.workload).args(workload_args(cycles, 0)))?;
        agent.wait_idle();
        if tax > 0 {
            let t = workload(Command::new(&tools.workload).args(["tax".into(), tax.to_string()]))?;
            run.tax_ns = t.tax_ns;
        }
        let stopped = agent.stop()?;
        run.took_stop(&agent, &stopped);
        let file = fs::File::open(&log).with_context(|| format!("opening {}", log.display()))?;
        let (records, bytes) = count_records(file, run.workload_pid)?;
        run.reported = Some(records);
        run.records_made = Some(cycles * AUDIT_RECORDS_PER_CYCLE);
        run.log_bytes = Some(bytes);
        Ok(run)
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

/// Audit records per storm cycle: the listener's open and its close.
pub(super) const AUDIT_RECORDS_PER_CYCLE: u64 = 2;

/// The lines of an audit log that are records of process `pid` (its `"pid":` key), and the
/// log's size.
fn count_records(log: impl Read, pid: u32) -> Result<(u64, u64)> {
    let key = format!(",\"pid\":{pid},");
    let key = key.as_bytes();
    let mut reader = BufReader::with_capacity(1 << 20, log);
    let mut line = Vec::with_capacity(4096);
    let (mut records, mut bytes) = (0, 0);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        if line.windows(key.len()).any(|w| w == key) {
            records += 1;
        }
    }
    Ok((records, bytes))
}

/// JSON Lines on `out`: how many lines each (`"pid"`, `"event"`) has. Reads in large
/// blocks and looks only at the start of each line, to cost the machine little while the
/// agent runs.
fn count_pids(out: impl Read) -> Result<Counts> {
    const KEY: &[u8] = b",\"pid\":";
    const EVENT: &[u8] = b"{\"event\":\"";
    let mut counts = Counts::new();
    let mut reader = BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let head = &line[..line.len().min(128)];
        let Some(at) = head.windows(KEY.len()).position(|w| w == KEY) else {
            continue;
        };
        let pid = head[at + KEY.len()..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
        let kind = head
            .strip_prefix(EVENT)
            .and_then(|rest| rest.split(|&b| b == b'"').next())
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        *counts.entry((pid, kind)).or_insert(0) += 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_records_are_counted_by_their_pid_key() {
        let log = concat!(
            "{\"backend\":\"tracepoint\",\"pid\":9,\"record\":\"start\"}\n",
            "{\"comm\":\"lsn-bench\",\"pid\":42,\"ppid\":9,\"record\":\"open\"}\n",
            "{\"comm\":\"x\",\"pid\":420,\"ppid\":42,\"record\":\"open\"}\n",
            "{\"comm\":\"lsn-bench\",\"pid\":42,\"ppid\":9,\"record\":\"close\"}\n",
            "{\"events\":15,\"record\":\"stop\"}\n",
        );
        assert_eq!(
            count_records(log.as_bytes(), 42).unwrap(),
            (2, log.len() as u64)
        );
        assert_eq!(count_records(log.as_bytes(), 9).unwrap().0, 1);
    }

    #[test]
    fn cpu_ticks_of_a_busy_process_grow() {
        let me = std::process::id();
        let before = cpu_ticks(me);
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_ticks(me) > before);
        assert_eq!(cpu_ticks(u32::MAX), 0);
    }
}
