//! lsn-trace: how processes ask the Linux kernel to listen, live.
//!
//! hook (eBPF) -> event (ring buffer) -> decode -> story (per-socket reconstruction) ->
//! sinks (renderer on stdout, audit log, summary): see `pipeline`.

/// `eprintln!`, but the line goes out in one write(2): stderr is unbuffered, and
/// `eprintln!` writes each formatted piece on its own, so under `-- CMD` (which shares the
/// terminal) the command's output could land in the middle of lsn-trace's lines.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // Escaped (crate::text): a process's name or a path in it must not drive the terminal.
        let mut line = crate::text::terminal(&format!($($arg)*)).into_owned();
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}

/// `say!` for a message of several lines of our own (an error and its hint): each line
/// escaped, the newlines between them kept.
macro_rules! say_lines {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut line = crate::text::terminal_lines(&format!($($arg)*));
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}

mod assets;
mod kernel;
mod load;
mod metrics;
mod modes;
mod output;
mod pipeline;
mod story;
mod stream;
mod sys;

// Each module also by its short name (`crate::event`, `crate::failure` …): the folders say
// where it stands in the pipeline, the short paths keep the imports short and stable.
use kernel::{btf, hookplan, offsets, probe};
use load::{backend, filter, preflight, selfcheck};
use modes::{audit, check, explain, follow, policy, replay, report, summary};
use output::text;
use story::failure;
use stream::{errno, event, names, ring, sockaddr, tracer};
use sys::{netif, sockdiag, user};

use std::{io::Write, process::ExitCode};

use anyhow::{Context as _, Result};
use clap::Parser;

use crate::{
    backend::{BackendChoice, FollowMode, LoadOptions},
    output::{Format, Render},
    pipeline::{Pipeline, Sink},
    tracer::Tracer,
};

#[derive(Parser, Debug)]
#[command(
    name = "lsn-trace",
    version,
    about = "Trace how processes ask the kernel to listen: every bind(), listen() and \
             listener-shaping setsockopt() on the host, live, with what was asked and what \
             the kernel did."
)]
struct Cli {
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// JSON Lines on stdout (same as --format json).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Which kernel hooks to use.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
    /// Ring buffer size in MiB (a power of two): raise it if events are reported lost.
    /// 8 holds ~27,000 events, ~140 ms of a full-speed bind storm for a reader starved of CPU;
    /// the agent's memory stays under its startup peak (the ring is mapped twice: 16 MiB).
    #[arg(long, value_name = "MiB", default_value_t = 8, value_parser = ring_size)]
    ring_size: u32,
    /// Timestamps in seconds since the trace started (JSON: adds `rel`, keeps `time`).
    #[arg(short = 't', long)]
    relative: bool,
    /// Backend tracepoint: also see 32-bit (ia32) programs' calls, which the syscall
    /// tracepoints skip, through the raw tracepoint sys_exit — every syscall on the host then
    /// costs ~150 ns more while attached (measured on this project's host). The fentry and
    /// kprobe backends see them anyway, at no cost.
    #[arg(long)]
    ia32: bool,
    #[command(flatten)]
    filter: filter::FilterArgs,
    #[command(flatten)]
    follow: follow::FollowArgs,
    /// Also write every raw ring-buffer record to FILE, for `lsn-trace replay` (the bench's
    /// instruction counts).
    #[arg(long, value_name = "FILE", hide = true)]
    record_raw: Option<std::path::PathBuf>,
    /// More diagnostics on stderr (-v, -vv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Without a command: trace.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Explain what listening addresses mean (no privileges needed, nothing is traced).
    Explain(explain::Args),
    /// Run as a service: log every listener opened, failed and closed, with who opened it,
    /// as JSON Lines (after a snapshot of the existing ones). Output flags do not apply;
    /// --backend, --ring-size and the filters do, given before `audit`.
    Audit(audit::AuditArgs),
    /// Answer questions from the audit log (no privileges needed): what listened at a
    /// moment and who opened it, a port's timeline, what opened in a window, what changed.
    Report(report::ReportArgs),
    /// Check the listeners on this host now against a policy: exit 1 if any is not allowed.
    Check(check::CheckArgs),
    /// Feed a recording of `--record-raw` through decode, story and one output, on stdout
    /// (no kernel, no privileges): what `cargo xtask bench --replay` counts.
    #[command(hide = true)]
    Replay(replay::Args),
}

fn ring_size(s: &str) -> Result<u32, String> {
    let mib: u32 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of MiB"))?;
    if !(1..=1024).contains(&mib) || !mib.is_power_of_two() {
        return Err(format!(
            "{mib} MiB: the ring buffer size must be a power of two from 1 to 1024"
        ));
    }
    Ok(mib)
}

/// Renders to stdout, batching writes per drained batch.
struct StdoutSink {
    render: Box<dyn Render + Send>,
    /// Leave out the events of sockets that can never listen (the default human output).
    hide_never_listening: bool,
    /// Events left out so.
    hidden: u64,
    buf: Vec<u8>,
    out: std::io::Stdout,
}

impl StdoutSink {
    /// Said at the end: what the output left out, and how to see it.
    fn hidden_line(&self) -> Option<String> {
        (self.hidden > 0).then(|| {
            format!(
                "lsn-trace: {} event{} of sockets that can never listen (netlink, packet …) \
                 not shown; --family or --json shows them",
                self.hidden,
                if self.hidden == 1 { "" } else { "s" }
            )
        })
    }
}

impl Sink for StdoutSink {
    fn event(&mut self, ev: &event::Event, note: &story::Note) -> std::io::Result<()> {
        if self.hide_never_listening && ev.never_listens() {
            self.hidden += 1;
            return Ok(());
        }
        self.render.event_noted(&mut self.buf, ev, note);
        if self.buf.len() > 64 * 1024 {
            self.flush()?;
        }
        Ok(())
    }

    fn lost(&mut self, count: u64, reason: &str) -> std::io::Result<()> {
        self.render.lost(&mut self.buf, count, reason);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let mut out = self.out.lock();
            out.write_all(&self.buf)?;
            out.flush()?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// SIGINT or SIGTERM. The handlers are installed on the call, not on the first poll: a
/// signal sent as soon as the attached line appears must stop the trace, not kill it.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let sigs = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut int), Ok(mut term)) = sigs else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}

/// The audit's exec capture (issue 18): its offsets, or None (said) where this kernel's
/// BTF lacks a field it reads.
fn exec_offsets(btf: &btf::Btf) -> Option<lsn_trace_common::ExecOffsets> {
    let (offsets, missing) = offsets::resolve_exec(btf);
    if missing.is_empty() {
        return Some(offsets);
    }
    log::warn!(
        "kernel fields {} not found in BTF: no exec capture; the identity of a process gone \
         before /proc is read will be the event's only",
        missing.join(", ")
    );
    None
}

/// Runs the trace; the exit code (CMD's, when running one).
fn run(cli: Cli) -> Result<u8> {
    // First, so an unusable log path fails before anything is loaded (and nothing is
    // created until the trace is attached).
    let audit_args = match &cli.command {
        Some(Command::Audit(args)) => {
            audit::check(args)?;
            Some(args)
        }
        _ => None,
    };
    preflight::check_arch()?;
    preflight::check_privileges()?;
    preflight::check_kernel()?;
    let plan = cli.follow.plan()?;
    if audit_args.is_some() && plan.is_some() {
        anyhow::bail!("audit records the whole host: it takes no `-- CMD` or -p PID");
    }
    preflight::ensure_tracefs()?;
    let btf = btf::Btf::from_sys()?;
    let mut resolved = offsets::resolve(&btf);
    if let Some(kfunc) = resolved.cast_kfunc
        && let Err(why) = probe::rdonly_cast(kfunc, resolved.offsets.btf_sock)
    {
        log::debug!("bpf_rdonly_cast unusable ({why}): kernel structs read with the helper");
        resolved = resolved.without_casts();
    }
    match resolved.cast_kfunc {
        Some(id) => log::debug!("kernel structs read through bpf_rdonly_cast (kfunc {id})"),
        None => log::debug!("kernel structs read with bpf_probe_read_kernel (no cast kfunc)"),
    }
    let kfunc_plan = hookplan::plan(&btf);
    let exec = audit_args.and_then(|_| exec_offsets(&btf));
    // Only the offsets are needed from here on; the parsed types are megabytes, and aya's
    // loader is about to parse the same BTF again: do not hold both at once (peak RSS).
    drop(btf);
    for name in &resolved.missing {
        log::warn!("kernel field {name} not found in BTF: it will be reported as unknown (null)");
    }
    let kfilter = cli.filter.to_kernel()?;
    if kfilter.flags & lsn_trace_common::CFG_F_NETNS != 0
        && !(resolved.offsets.task_nsproxy.is_known() && resolved.offsets.nsproxy_net_ns.is_known())
    {
        log::warn!(
            "--netns: the caller's namespace is not resolvable on this kernel; filtering on \
             the socket's namespace only"
        );
    }
    let opts = LoadOptions {
        offsets: resolved.offsets,
        cast_kfunc: resolved.cast_kfunc,
        ring_bytes: cli.ring_size * 1024 * 1024,
        // An eighth of the ring: a wake-up is an IPI (a VM exit on a virtual machine), ~15 µs
        // of the storm's CPU each at 64 KiB; the reader also drains on a 50 ms timer, so
        // quiet traffic is not held back, and a burst wakes it long before the ring fills.
        wakeup_bytes: cli.ring_size * 1024 * 1024 / 8,
        filter: kfilter,
        follow: plan.as_ref().map(|_| {
            if cli.follow.all {
                FollowMode::All
            } else {
                FollowMode::Only
            }
        }),
        kfunc: kfunc_plan,
        ia32_tracepoint: cli.ia32,
        exec,
    };
    // `-t` counts from here: nothing traced can precede it.
    let start_ns = output::now_ns();
    let mut loaded = backend::load_and_attach(cli.backend, &opts)?;
    let format = if cli.json { Format::Json } else { cli.format };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let _rt = rt.enter();
    let mut following = match &plan {
        Some(_) => Some((
            follow::Followed::new(loaded.ebpf.take_map("FOLLOW").context("FOLLOW map")?)?,
            follow::Signals::install()?,
        )),
        None => None,
    };
    // -p: followed from before the attach line, which is the go-ahead for users and tests.
    if let (Some(follow::Plan::Attach { pids, tree }), Some((followed, _))) =
        (&plan, &mut following)
    {
        for &pid in pids {
            followed.add(pid, *tree)?;
        }
    }
    // Without a plan, SIGINT/SIGTERM stop the trace: caught from before the attach line, so
    // a signal sent as soon as it appears still ends with the summary.
    let stop = plan.is_none().then(stop_signal);
    // The log is created now that the run can start (before the attach line, which tells
    // users and tests that records are being written).
    let audit = audit_args.map(audit::open).transpose()?;
    let passed_over = if loaded.passed_over.is_empty() {
        String::new()
    } else {
        format!(" (passed over: {})", loaded.passed_over.join("; "))
    };
    let backend = loaded.backend;
    let description = std::mem::take(&mut loaded.description);
    let mut tracer = Tracer::new(loaded)?;
    if let Some(path) = &cli.record_raw {
        tracer.record_to(path)?;
    }
    // The line is the go-ahead: only once every hook was seen to fire.
    let check = selfcheck::run(&mut tracer)?;
    match check.warning() {
        Some(warning) => say!("{warning}"),
        None => log::info!("self-check: every hook fired within {:?}", check.took),
    }
    say!(
        "lsn-trace: attached, backend {backend}{passed_over}: {description}. Tracing; Ctrl-C to stop."
    );
    if let Some(audit) = audit {
        let stop = stop.expect("installed when there is no plan");
        let stats = rt.block_on(audit.run(&mut tracer, backend, stop))?;
        say!("{}", stats.stopped_line());
        return Ok(0);
    }
    let render_opts = output::Options {
        relative_to_ns: cli.relative.then_some(start_ns),
        mark_followed: plan.is_some() && cli.follow.all,
    };
    let mut sink = StdoutSink {
        render: output::renderer(format, render_opts),
        hide_never_listening: format == Format::Human && cli.filter.family.is_empty(),
        hidden: 0,
        buf: Vec::new(),
        out: std::io::stdout(),
    };
    let code = match (plan, following, stop) {
        (Some(plan), Some((followed, signals)), _) => {
            follow::run(&rt, &mut tracer, &mut sink, plan, followed, signals)?
        }
        (_, _, stop) => {
            let stop = stop.expect("installed when there is no plan");
            let stats = rt.block_on(tracer.run(&mut Pipeline::new(&mut sink), stop))?;
            say!("{}", stats.stopped_line());
            0
        }
    };
    if let Some(line) = sink.hidden_line() {
        say!("{line}");
    }
    Ok(code)
}

fn main() -> ExitCode {
    // Packaging (`cargo xtask dist`): not a subcommand, so that neither the man pages nor
    // the completions it writes show it.
    if let Some(dir) = std::env::var_os(assets::ENV) {
        let cmd = <Cli as clap::CommandFactory>::command();
        return match assets::generate(cmd, std::path::Path::new(&dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                say!("lsn-trace: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::Explain(args)) => return explain::run(args),
        Some(Command::Report(args)) => return report::run(args, cli.json),
        Some(Command::Check(args)) => return check::run(args, cli.json),
        Some(Command::Replay(args)) => return replay::run(args),
        other => cli.command = other,
    }
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say_lines!("lsn-trace: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
