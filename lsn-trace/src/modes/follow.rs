//! `lsn-trace -- CMD ARGS…` and `lsn-trace -p PID [-f]`: run or attach to processes and
//! show only their events. Who belongs is decided in the kernel: the FOLLOW map, which the
//! sched_process_fork/exit programs keep (lsn-trace-ebpf/src/follow.rs). Here: start CMD
//! as the right user once everything is attached, forward signals to it, and decide when
//! the trace is over (every followed process gone, or the user says stop once CMD is).
use std::{
    ffi::OsString,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::{CommandExt as _, ExitStatusExt},
    },
    process::ExitStatus,
    sync::atomic::{AtomicI32, Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{HashMap, MapData};
use lsn_trace_common::{FOLLOW_EXITED, FOLLOW_SELF, FOLLOW_TREE};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    pipeline::{Pipeline, Sink, Tee},
    story::holders::{held_by, holds},
    summary::Summary,
    tracer::Tracer,
    user::{self, User},
};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct FollowArgs {
    /// Follow this running process (repeatable): only its events, and lsn-trace stops
    /// when it exits. With -f its future children too.
    #[arg(
        short = 'p',
        long = "attach",
        value_name = "PID",
        conflicts_with = "cmd"
    )]
    pub attach: Vec<u32>,
    /// With -p: follow the children the process forks from now on, as strace -f.
    #[arg(short = 'f', long = "follow-forks", requires = "attach")]
    pub follow_forks: bool,
    /// With -- CMD or -p: show every event on the host too, the followed ones marked.
    #[arg(long)]
    pub all: bool,
    /// Run CMD as this user (name or uid). Default: the user who ran sudo, else as is.
    #[arg(short = 'u', long, value_name = "USER", requires = "cmd")]
    pub user: Option<String>,
    /// The command to start under the tracer, after `--`: it and all its descendants
    /// (double-forking daemons included) are followed from their first instruction.
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

/// Who CMD runs as, when it is not lsn-trace's own identity.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub user: User,
    pub groups: Vec<libc::gid_t>,
}

/// What to follow, decided before anything is loaded so that bad input fails early.
pub enum Plan {
    Run {
        cmd: Vec<OsString>,
        run_as: Option<RunAs>,
    },
    Attach {
        pids: Vec<u32>,
        tree: bool,
    },
}

impl FollowArgs {
    pub fn plan(&self) -> Result<Option<Plan>> {
        if !self.cmd.is_empty() {
            return Ok(Some(Plan::Run {
                cmd: self.cmd.clone(),
                run_as: run_as(self.user.as_deref())?,
            }));
        }
        if !self.attach.is_empty() {
            for &pid in &self.attach {
                if !alive(pid) {
                    bail!("-p {pid}: no such process");
                }
            }
            return Ok(Some(Plan::Attach {
                pids: self.attach.clone(),
                tree: self.follow_forks,
            }));
        }
        if self.all {
            bail!(
                "--all only makes sense with -- CMD or -p PID (without them every event is shown)"
            );
        }
        Ok(None)
    }
}

/// `--user`, else the user who ran sudo (SUDO_UID/SUDO_GID/SUDO_USER), else None (CMD
/// runs as lsn-trace does: root only when asked for or when not run through sudo).
fn run_as(spec: Option<&str>) -> Result<Option<RunAs>> {
    let user = match spec {
        Some(s) => user::resolve(s).with_context(|| format!("--user {s}"))?,
        None => {
            let Some(uid) = std::env::var("SUDO_UID")
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
            else {
                return Ok(None);
            };
            if unsafe { libc::geteuid() } != 0 {
                return Ok(None);
            }
            let mut u = std::env::var("SUDO_USER")
                .ok()
                .and_then(|n| user::by_name(&n))
                .filter(|u| u.uid == uid)
                .or_else(|| user::by_uid(uid))
                .unwrap_or(User {
                    name: uid.to_string(),
                    uid,
                    gid: uid,
                    home: "/".into(),
                });
            if let Some(gid) = std::env::var("SUDO_GID").ok().and_then(|v| v.parse().ok()) {
                u.gid = gid;
            }
            u
        }
    };
    let groups = user::groups(&user);
    Ok(Some(RunAs { user, groups }))
}

use lsn_trace::procfs::process_exists as alive;

// --- signals ------------------------------------------------------------------------

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

/// Records (signal, sent by a process) for the loop. A signal the terminal generated
/// (Ctrl-C: si_code > 0) already reached CMD, which shares our process group; one sent
/// with kill(2) (si_code <= 0) reached only us and is forwarded.
extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    unsafe {
        let saved = *libc::__errno_location();
        let from_process = !info.is_null() && (*info).si_code <= 0;
        let msg = [sig as u8, from_process as u8];
        libc::write(SIGNAL_PIPE.load(Ordering::Relaxed), msg.as_ptr().cast(), 2);
        *libc::__errno_location() = saved;
    }
}

pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

pub struct Signals {
    rx: AsyncFd<OwnedFd>,
}

#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub sig: libc::c_int,
    pub from_process: bool,
}

impl Signals {
    /// Catch SIGINT/SIGTERM/SIGHUP/SIGQUIT (the runtime must be entered).
    pub fn install() -> Result<Signals> {
        let mut fds = [0; 2];
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(std::io::Error::last_os_error()).context("pipe for signals");
        }
        let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The write end lives as long as the process: the handler may run at any time.
        SIGNAL_PIPE.store(tx.as_raw_fd(), Ordering::Relaxed);
        std::mem::forget(tx);
        for sig in FORWARDED {
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            unsafe { libc::sigemptyset(&mut sa.sa_mask) };
            if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
                return Err(std::io::Error::last_os_error()).context("sigaction");
            }
        }
        // SAFETY: the fd is owned by the AsyncFd and closed only when it is dropped.
        let rx = unsafe { AsyncFd::register_with_interest(rx, Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Signals { rx })
    }

    pub async fn recv(&mut self) -> Received {
        loop {
            let Ok(mut guard) = self.rx.readable_mut().await else {
                return std::future::pending().await;
            };
            let mut msg = [0u8; 2];
            let n =
                unsafe { libc::read(guard.get_inner().as_raw_fd(), msg.as_mut_ptr().cast(), 2) };
            if n == 2 {
                return Received {
                    sig: msg[0] as libc::c_int,
                    from_process: msg[1] != 0,
                };
            }
            guard.clear_ready();
        }
    }
}

// --- the followed set ---------------------------------------------------------------

pub struct Followed {
    map: HashMap<MapData, u32, u8>,
    /// Seen marked exited once: removed the next time.
    exiting: Vec<u32>,
}

impl Followed {
    pub fn new(map: aya::maps::Map) -> Result<Followed> {
        Ok(Followed {
            map: HashMap::try_from(map).context("FOLLOW map")?,
            exiting: Vec::new(),
        })
    }

    pub fn add(&mut self, pid: u32, tree: bool) -> Result<()> {
        let v = if tree { FOLLOW_TREE } else { FOLLOW_SELF };
        self.map
            .insert(pid, v, 0)
            .with_context(|| format!("following pid {pid}"))
    }

    pub fn remove(&mut self, pid: u32) {
        let _ = self.map.remove(&pid);
    }

    /// The followed processes still running. Entries the kernel marked exited are
    /// removed here (after a grace period for the closes of their exit to be traced), as are
    /// those whose process is gone without the kernel having seen it exit (it exited before
    /// it was added).
    pub fn live(&mut self) -> Vec<u32> {
        let entries: Vec<(u32, u8)> = self.map.iter().filter_map(|e| e.ok()).collect();
        let mut live = Vec::new();
        for (pid, v) in entries {
            if v & FOLLOW_EXITED != 0 {
                if !self.exiting.contains(&pid) {
                    self.exiting.push(pid);
                    continue;
                }
                self.exiting.retain(|&p| p != pid);
                self.remove(pid);
            } else if alive(pid) {
                live.push(pid);
            } else {
                self.remove(pid);
            }
        }
        live
    }

    /// Whether exited processes are still in their grace period.
    pub fn draining(&self) -> bool {
        !self.exiting.is_empty()
    }
}

/// Start CMD as a followed process: lsn-trace itself is in FOLLOW (as a tree) only for the
/// fork, so the child is followed by the kernel from the fork on — before it can bind.
pub fn spawn(
    followed: &mut Followed,
    cmd: &[OsString],
    run_as: Option<&RunAs>,
) -> Result<tokio::process::Child> {
    let me = std::process::id();
    followed.add(me, true)?;
    let mut c = std::process::Command::new(&cmd[0]);
    c.args(&cmd[1..]);
    if let Some(r) = run_as {
        c.env("HOME", &r.user.home)
            .env("USER", &r.user.name)
            .env("LOGNAME", &r.user.name);
        let (uid, gid, groups) = (r.user.uid, r.user.gid, r.groups.clone());
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = tokio::process::Command::from(c).spawn();
    followed.remove(me);
    let name = cmd[0].to_string_lossy();
    child.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!("cannot run `{name}`: command not found"),
        _ => anyhow!("cannot run `{name}`: {e}"),
    })
}

/// How the followed run ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// CMD's exit status (None with -p, or when the trace was stopped first).
    pub status: Option<ExitStatus>,
    /// Followed processes still running when the trace stopped.
    pub still_running: Vec<u32>,
}

/// lsn-trace's own exit code for CMD's status: its code, or 128+signal as shells do.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => 128u8.wrapping_add(s as u8),
        _ => 1,
    }
}

const POLL: Duration = Duration::from_millis(100);

/// Resolves when the trace is over. With CMD: signals go to CMD while it runs (a third
/// one stops the trace anyway); once CMD has exited, the trace ends when no followed
/// process is left, or at the next signal (a daemon CMD left behind keeps running).
pub async fn supervise(
    mut child: Option<tokio::process::Child>,
    followed: &mut Followed,
    signals: &mut Signals,
    name: &str,
    out: &mut Outcome,
) {
    let mut tick = tokio::time::interval(POLL);
    let mut ignored = 0;
    let mut announced = false;
    loop {
        tokio::select! {
            status = async { child.as_mut().unwrap().wait().await }, if child.is_some() => {
                child = None;
                match status {
                    Ok(s) => out.status = Some(s),
                    Err(e) => log::warn!("waiting for {name}: {e}"),
                }
            }
            sig = signals.recv() => {
                match &child {
                    Some(c) => {
                        if let Some(pid) = c.id()
                            && sig.from_process
                        {
                            unsafe { libc::kill(pid as i32, sig.sig) };
                        }
                        ignored += 1;
                        if ignored >= 3 {
                            say!("lsn-trace: {name} (pid {}) is still running; stopping the trace", c.id().unwrap_or(0));
                            break;
                        }
                    }
                    None => break,
                }
            }
            _ = tick.tick() => {}
        }
        if child.is_none() {
            let live = followed.live();
            if live.is_empty() && !followed.draining() {
                break;
            }
            if live.is_empty() {
                continue;
            }
            if !announced {
                announced = true;
                let what = match out.status {
                    Some(s) => format!("{name} exited ({})", describe_status(s)),
                    None => format!("{name} is gone"),
                };
                say!(
                    "lsn-trace: {what}; still following {} process{} ({}): Ctrl-C to stop",
                    live.len(),
                    if live.len() == 1 { "" } else { "es" },
                    pid_list(&live)
                );
            }
        }
    }
    out.still_running = followed.live();
}

/// Like `supervise` for -p: until the processes are gone or a signal says stop (never
/// forwarded: they are not ours).
pub async fn watch(followed: &mut Followed, signals: &mut Signals, out: &mut Outcome) {
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = signals.recv() => break,
            _ = tick.tick() => {
                if followed.live().is_empty() && !followed.draining() {
                    break;
                }
            }
        }
    }
    out.still_running = followed.live();
}

pub fn describe_status(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("status {c}"),
        (None, Some(sig)) => format!(
            "killed by {}",
            signame(sig).map_or_else(|| format!("signal {sig}"), str::to_owned)
        ),
        _ => format!("{s}"),
    }
}

pub fn pid_list(pids: &[u32]) -> String {
    let mut s: Vec<String> = pids.iter().take(8).map(u32::to_string).collect();
    if pids.len() > 8 {
        s.push("…".into());
    }
    format!("pid {}", s.join(", "))
}

fn signame(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => return None,
    })
}

/// CMD's name as the summary says it: the file name of its path.
fn command_name(cmd: &std::ffi::OsStr) -> String {
    std::path::Path::new(cmd)
        .file_name()
        .unwrap_or(cmd)
        .to_string_lossy()
        .into_owned()
}

/// Whether `path` is known not to exist for process `pid`: only where it sees the files we
/// do (our mount namespace and root; a container's absolute symlinks would resolve against
/// ours through /proc/PID/root). Not known (false) elsewhere, or once the process is gone.
fn path_gone(pid: u32, path: &[u8]) -> bool {
    use std::os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _};
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).ok();
    let root = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let ours = ns("self").is_some_and(|n| ns(&pid.to_string()) == Some(n))
        && root("/").is_some_and(|r| root(&format!("/proc/{pid}/root")) == Some(r));
    ours && matches!(
        std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    ) && alive(pid)
}

/// What the summary's head says was followed, before CMD's name is known for sure.
enum Head {
    Cmd { name: String, pid: u32, end: String },
    Pids(String),
}

/// The rest of a followed run, once everything is attached: start CMD (or watch the -p
/// processes), trace until `supervise`/`watch` say it is over, print the stop line and the
/// summary. Returns lsn-trace's exit code: CMD's.
pub fn run(
    rt: &tokio::runtime::Runtime,
    tracer: &mut Tracer,
    sink: &mut dyn Sink,
    plan: Plan,
    mut followed: Followed,
    mut signals: Signals,
) -> Result<u8> {
    let mut summary = match &plan {
        Plan::Run { cmd, .. } => Summary::of_command(&command_name(&cmd[0])),
        Plan::Attach { .. } => Summary::default(),
    };
    let mut sinks = Tee(vec![sink, &mut summary]);
    let mut pipeline = Pipeline::new(&mut sinks);
    let mut outcome = Outcome::default();
    let (head, code) = match plan {
        Plan::Run { cmd, run_as } => {
            let name = command_name(&cmd[0]);
            let child = match spawn(&mut followed, &cmd, run_as.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    say_lines!("lsn-trace: error: {e:#}");
                    // As shells say it: 127 not found, 126 found but not runnable.
                    return Ok(if format!("{e}").contains("not found") {
                        127
                    } else {
                        126
                    });
                }
            };
            let pid = child.id().unwrap_or(0);
            match &run_as {
                Some(r) => log::info!(
                    "started {name} (pid {pid}) as {} (uid {})",
                    r.user.name,
                    r.user.uid
                ),
                None => log::info!("started {name} (pid {pid})"),
            }
            let stop = supervise(
                Some(child),
                &mut followed,
                &mut signals,
                &name,
                &mut outcome,
            );
            let stats = rt.block_on(tracer.run(&mut pipeline, stop))?;
            say!("{}", stats.stopped_line());
            let end = match outcome.status {
                Some(s) => format!("exited, {}", describe_status(s)),
                None => "still running".to_owned(),
            };
            (
                Head::Cmd { name, pid, end },
                outcome.status.map_or(1, exit_code),
            )
        }
        Plan::Attach { pids, .. } => {
            let stop = watch(&mut followed, &mut signals, &mut outcome);
            let stats = rt.block_on(tracer.run(&mut pipeline, stop))?;
            say!("{}", stats.stopped_line());
            (Head::Pids(pid_list(&pids)), 0)
        }
    };
    drop(pipeline);
    drop(sinks);
    // CMD by the name it ran as and, if it exec()ed another program, that one's too.
    let mut head = match head {
        Head::Cmd { name, pid, end } => {
            format!("{} (pid {pid}) {end}", summary.command_name(pid, &name))
        }
        Head::Pids(p) => p,
    };
    if !outcome.still_running.is_empty() {
        head.push_str(&format!(
            "; still running: {}",
            pid_list(&outcome.still_running)
        ));
    }
    summary.check_paths(path_gone);
    for line in summary.render(&head, alive, held_by, holds) {
        say!("{line}");
    }
    Ok(code)
}
