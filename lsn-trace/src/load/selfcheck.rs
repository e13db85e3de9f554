//! The attach line's proof. A hook the kernel accepted is not yet a hook that fires on every
//! CPU: the agent makes one call of each kind its hooks exist for (bind, listen and
//! setsockopt at each level, of each family hooked apart, and a listener's close) on
//! throwaway sockets, from threads of its own pinned one to each CPU, which the programs
//! let through every filter for this check alone (`SELF_CHECK`, events marked
//! `F_SELF_CHECK`, never shown nor counted), and says it is attached once every one of them
//! has come back through the ring buffer from every CPU — or says which never did.
use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{
    event::{Event, Kind, Request},
    sockaddr::{AF_INET, AF_INET6, AF_UNIX},
    tracer::Tracer,
};

/// One call the check makes, and how its event is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    BindInet,
    BindInet6,
    BindUnix,
    ListenInet,
    ListenUnix,
    /// listen(2) on a UDP socket: EOPNOTSUPP (sock_no_listen on the kernel-function backends).
    ListenUnsupported,
    SockoptSocket,
    SockoptIp,
    SockoptIpv6,
    /// A TCP listener leaving LISTEN (inet_sock_set_state).
    Close,
}

impl Check {
    const ALL: [Check; 10] = [
        Check::BindInet,
        Check::BindInet6,
        Check::BindUnix,
        Check::ListenInet,
        Check::ListenUnix,
        Check::ListenUnsupported,
        Check::SockoptSocket,
        Check::SockoptIp,
        Check::SockoptIpv6,
        Check::Close,
    ];

    fn name(self) -> &'static str {
        match self {
            Check::BindInet => "bind (inet)",
            Check::BindInet6 => "bind (inet6)",
            Check::BindUnix => "bind (unix)",
            Check::ListenInet => "listen (tcp)",
            Check::ListenUnix => "listen (unix)",
            Check::ListenUnsupported => "listen (udp: EOPNOTSUPP)",
            Check::SockoptSocket => "setsockopt SOL_SOCKET",
            Check::SockoptIp => "setsockopt SOL_IP",
            Check::SockoptIpv6 => "setsockopt SOL_IPV6",
            Check::Close => "a listener's close",
        }
    }

    /// Which check an event of the check thread answers.
    fn of(ev: &Event) -> Option<Check> {
        let sock_family = ev.sock.as_ref().and_then(|s| s.family);
        Some(match (&ev.kind, &ev.request) {
            (Kind::Bind, _) => match ev.family()? {
                AF_INET => Check::BindInet,
                AF_INET6 => Check::BindInet6,
                AF_UNIX => Check::BindUnix,
                _ => return None,
            },
            (Kind::Listen, _) if ev.errno == libc::EOPNOTSUPP => Check::ListenUnsupported,
            (Kind::Listen, _) => match sock_family? {
                AF_INET => Check::ListenInet,
                AF_UNIX => Check::ListenUnix,
                _ => return None,
            },
            (Kind::Setsockopt, Request::Setsockopt { level, .. }) => match *level {
                libc::SOL_SOCKET => Check::SockoptSocket,
                libc::SOL_IP => Check::SockoptIp,
                libc::SOL_IPV6 => Check::SockoptIpv6,
                _ => return None,
            },
            (Kind::Close, _) => Check::Close,
            _ => return None,
        })
    }
}

/// What the check found.
pub struct Outcome {
    /// The checks whose event never came back, with the CPU their call ran on (empty: every
    /// hook fired on every CPU).
    pub missing: Vec<String>,
    pub took: Duration,
}

impl Outcome {
    /// For the attach line: nothing when every hook fired, else which did not.
    pub fn warning(&self) -> Option<String> {
        (!self.missing.is_empty()).then(|| {
            format!(
                "lsn-trace: warning: these hooks were attached but not seen to fire within \
                 {:.1} s of the agent's own test calls, so what they hook may go unreported: {}",
                self.took.as_secs_f64(),
                self.missing.join(", ")
            )
        })
    }
}

/// How long to keep calling before a hook that never fired is given up on (on this
/// project's 2-CPU VM every hook fires on both CPUs within 5-50 ms of the attach, 400 ms
/// once under load).
const PATIENCE: Duration = Duration::from_secs(10);
/// Pause between two rounds of the calls (each round makes every call again).
const ROUND_EVERY: Duration = Duration::from_millis(5);

/// Run the check on an attached tracer: one thread pinned to each CPU the agent may run on
/// makes every call, round after round, until each one's event came back from each CPU, or
/// `PATIENCE` ran out. Events of other processes that arrive meanwhile are kept by the
/// tracer for its sink.
pub fn run(tracer: &mut Tracer) -> Result<Outcome> {
    let start = Instant::now();
    // Families the kernel lacks (IPv6 disabled) are not the hooks' fault.
    let checks: Vec<Check> = Check::ALL
        .into_iter()
        .filter(|c| !matches!(c, Check::BindInet6 | Check::SockoptIpv6) || have_inet6())
        .collect();
    let cpus = allowed_cpus();
    let stop = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = mpsc::channel();
    let mut workers = Vec::new();
    let mut gos = Vec::new();
    for &cpu in &cpus {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (stop, tid_tx) = (stop.clone(), tid_tx.clone());
        workers.push(
            std::thread::Builder::new()
                .name(format!("self-check-{cpu}"))
                .spawn(move || {
                    let pinned = pin_to(cpu);
                    let _ = tid_tx.send((unsafe { libc::gettid() } as u32, cpu, pinned));
                    if go_rx.recv().is_err() {
                        return;
                    }
                    while !stop.load(Ordering::Relaxed) {
                        calls();
                        std::thread::sleep(ROUND_EVERY);
                    }
                })
                .context("starting a self-check thread")?,
        );
        gos.push(go_tx);
    }
    drop(tid_tx);
    // (check, cpu) still to be seen; the CPU of each thread by its tid.
    let mut pending = Vec::new();
    let mut cpu_of = std::collections::HashMap::new();
    for _ in &cpus {
        let (tid, cpu, pinned) = tid_rx.recv().context("a self-check thread")?;
        if !pinned {
            log::debug!("self-check: could not pin a thread to CPU {cpu}");
        }
        tracer.add_self_check(tid, cpu)?;
        cpu_of.insert(tid, cpu);
        pending.extend(checks.iter().map(|&c| (c, cpu)));
    }
    for go in gos {
        let _ = go.send(());
    }
    while !pending.is_empty() && start.elapsed() < PATIENCE {
        tracer.drain_held(|ev| {
            if let (Some(c), Some(&cpu)) = (Check::of(ev), cpu_of.get(&ev.tid)) {
                pending.retain(|&p| p != (c, cpu));
            }
        })?;
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    for &tid in cpu_of.keys() {
        tracer.remove_self_check(tid)?;
    }
    // What the last round left in the ring is dropped here, not shown.
    tracer.drain_held(|_| {})?;
    let one_cpu = cpus.len() == 1;
    Ok(Outcome {
        missing: pending
            .into_iter()
            .map(|(c, cpu)| match one_cpu {
                true => c.name().to_owned(),
                false => format!("{} on CPU {cpu}", c.name()),
            })
            .collect(),
        took: start.elapsed(),
    })
}

/// The CPUs this process may run on (where its test calls can be made).
fn allowed_cpus() -> Vec<u32> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: a cpu_set_t of its own size, for this thread.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return vec![0];
    }
    let cpus: Vec<u32> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .map(|i| i as u32)
        .collect();
    if cpus.is_empty() { vec![0] } else { cpus }
}

/// Pin the calling thread to `cpu`: whether it worked.
fn pin_to(cpu: u32) -> bool {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu as usize, &mut set) };
    // SAFETY: as above.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0 }
}

fn have_inet6() -> bool {
    sock(libc::AF_INET6, libc::SOCK_STREAM).is_some()
}

fn sock(family: i32, ty: i32) -> Option<OwnedFd> {
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: a descriptor just returned to us, owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int(fd: &OwnedFd, level: i32, name: i32, v: i32) {
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const v).cast(),
            size_of::<i32>() as u32,
        )
    };
}

fn bind_raw<T>(fd: &OwnedFd, addr: &T) {
    unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const T).cast(),
            size_of::<T>() as u32,
        )
    };
}

/// One round of the calls; their results do not matter, only that they reach the hooks.
/// Ports are the kernel's choice (port 0) on loopback, the unix name abstract: nothing
/// another program could notice or collide with.
fn calls() {
    if let Some(s) = sock(libc::AF_INET, libc::SOCK_STREAM) {
        set_int(&s, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        set_int(&s, libc::SOL_IP, libc::IP_FREEBIND, 0);
        let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        bind_raw(&s, &a);
        unsafe { libc::listen(s.as_raw_fd(), 1) };
        // Dropped: the listener closes (LISTEN → CLOSE).
    }
    if let Some(s) = sock(libc::AF_INET6, libc::SOCK_STREAM) {
        set_int(&s, libc::SOL_IPV6, libc::IPV6_V6ONLY, 1);
        let mut a: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        a.sin6_family = AF_INET6;
        a.sin6_addr.s6_addr = std::net::Ipv6Addr::LOCALHOST.octets();
        bind_raw(&s, &a);
    }
    if let Some(s) = sock(libc::AF_UNIX, libc::SOCK_STREAM) {
        let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        a.sun_family = AF_UNIX;
        let name = format!("lsn-trace-self-check-{}", std::process::id());
        for (d, b) in a.sun_path[1..].iter_mut().zip(name.bytes()) {
            *d = b as libc::c_char;
        }
        let len = (size_of::<libc::sa_family_t>() + 1 + name.len()) as u32;
        unsafe { libc::bind(s.as_raw_fd(), (&raw const a).cast(), len) };
        unsafe { libc::listen(s.as_raw_fd(), 1) };
    }
    if let Some(s) = sock(libc::AF_INET, libc::SOCK_DGRAM) {
        unsafe { libc::listen(s.as_raw_fd(), 1) };
    }
}
