//! End-to-end harness: runs the real `lsn-trace` binary, waits for its attach line, and
//! lets tests wait for the JSON events their own sockets cause (filtered by pid/tid, so
//! whatever else the host does cannot break them).
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

pub use serde_json::Value;

pub mod logs;
pub mod podman;
pub mod prometheus;
pub mod sock;

/// The binary under test: $LSN_TRACE_BIN (set by `cargo xtask test`), else the workspace's
/// release build, else its debug build.
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LSN_TRACE_BIN") {
        return p.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for profile in ["release", "debug"] {
        let p = root.join("target").join(profile).join("lsn-trace");
        if p.exists() {
            return p;
        }
    }
    panic!("lsn-trace binary not found: build it (cargo build -p lsn-trace) or set LSN_TRACE_BIN");
}

pub const ATTACH_LINE: &str = "lsn-trace: attached";

/// The backend every test's tracer uses unless a test names one: $LSN_TRACE_BACKEND (the
/// VM matrix runs the suite once per backend), else lsn-trace's own choice (`auto`).
pub fn backend_under_test() -> Option<String> {
    std::env::var("LSN_TRACE_BACKEND")
        .ok()
        .filter(|b| !b.is_empty())
}

/// The backends that hook kernel functions rather than syscalls: they see a socket, not a
/// descriptor (the fd is null), and they also see io_uring's and the kernel's own calls.
pub const KERNEL_FUNCTION_BACKENDS: [&str; 2] = ["fentry", "kprobe"];

/// Run `lsn-trace --backend NAME` until it attaches or fails: Ok(attach line) or Err(the
/// error it printed).
pub fn try_backend(name: &str) -> Result<String, String> {
    let mut child = Command::new(bin())
        .args(["--json", "--backend", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lsn-trace");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.expect("read lsn-trace's stderr");
        if line.starts_with(ATTACH_LINE) {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            return Ok(line);
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{name}: {seen:#?}");
    let err = seen
        .into_iter()
        .find(|l| l.starts_with("lsn-trace: error: "))
        .expect("an error line");
    Err(err)
}

#[derive(Default)]
struct Shared {
    lines: Vec<Value>,
    stderr: Vec<String>,
    /// Its stdout (`exited`) and stderr (`stderr_done`) were read to their end.
    exited: bool,
    stderr_done: bool,
}

/// A running lsn-trace with its JSON output collected.
pub struct Tracer {
    child: Mutex<Child>,
    state: Arc<(Mutex<Shared>, Condvar)>,
}

impl Tracer {
    /// Start `lsn-trace --json ARGS` and return once it printed its attach line.
    pub fn start(args: &[&str]) -> Tracer {
        Tracer::start_with_env(args, &[])
    }

    /// `start`, with extra environment variables for lsn-trace.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Tracer {
        let mut cmd = Command::new(bin());
        cmd.arg("--json").envs(env.iter().copied());
        // Before ARGS: top-level flags precede a subcommand (`audit`) or `-- CMD`.
        if let Some(b) = backend_under_test()
            && !args.contains(&"--backend")
        {
            cmd.args(["--backend", &b]);
        }
        cmd.args(args);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lsn-trace");
        let state = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
        let stdout = child.stdout.take().unwrap();
        let st = state.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("lsn-trace printed invalid JSON ({e}): {line}"));
                st.0.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .lines
                    .push(v);
                st.1.notify_all();
            }
            st.0.lock().unwrap_or_else(PoisonError::into_inner).exited = true;
            st.1.notify_all();
        });
        let stderr = child.stderr.take().unwrap();
        let st = state.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                st.0.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .stderr
                    .push(line);
                st.1.notify_all();
            }
            st.0.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stderr_done = true;
            st.1.notify_all();
        });
        let t = Tracer {
            child: Mutex::new(child),
            state,
        };
        t.wait_stderr(ATTACH_LINE, Duration::from_secs(60));
        t
    }

    /// One tracer for the whole test binary (tests run as threads and filter by tid). It
    /// follows this process and its children in the kernel (`-p self -f`), so a storm of
    /// binds elsewhere on the host cannot fill its ring and starve the tests.
    pub fn shared() -> &'static Tracer {
        static T: OnceLock<Tracer> = OnceLock::new();
        T.get_or_init(|| Tracer::start(&["-p", &std::process::id().to_string(), "-f"]))
    }

    /// The backend it attached (from its attach line: "attached, backend NAME").
    pub fn backend(&self) -> String {
        let line = self.wait_stderr(ATTACH_LINE, Duration::from_secs(1));
        let rest = line
            .split("backend ")
            .nth(1)
            .expect("backend in the attach line");
        rest.split([' ', ':']).next().unwrap().to_owned()
    }

    /// Whether it hooks kernel functions (fentry, kprobe) rather than syscalls.
    pub fn hooks_kernel_functions(&self) -> bool {
        KERNEL_FUNCTION_BACKENDS.contains(&self.backend().as_str())
    }

    /// The JSON `fd` an event of a syscall on descriptor `fd` carries: the descriptor, on
    /// every backend (the kernel-function backends hook the syscall layer too; only
    /// io_uring's and the kernel's own calls name a socket without an fd).
    pub fn fd_json(&self, fd: i32) -> Value {
        fd.into()
    }

    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.state;
        let mut g = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(l) = g.stderr.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "lsn-trace did not print {needle:?} within {timeout:?}; stderr: {:#?}",
                    g.stderr
                );
            }
            g = cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Wait until `n` events match `pred`; returns them in order.
    pub fn wait_n(&self, n: usize, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.state;
        let mut g = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let found: Vec<Value> = g.lines.iter().filter(|v| pred(v)).cloned().collect();
            if found.len() >= n {
                return found;
            }
            let now = Instant::now();
            if now >= deadline || g.exited {
                // Lost events explain a miss (another process storming the host).
                let lost: u64 = g
                    .lines
                    .iter()
                    .filter(|v| v["event"] == "lost")
                    .filter_map(|v| v["count"].as_u64())
                    .sum();
                let total = g.lines.len();
                drop(g);
                panic!(
                    "expected {n} matching events within {timeout:?}, got {}: {found:#?}\n\
                     ({total} events seen in all, {lost} reported lost)",
                    found.len(),
                );
            }
            g = cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The events of thread `tid` of kind `event` (waits for at least `n`).
    pub fn events_of(&self, tid: i32, event: &str, n: usize) -> Vec<Value> {
        self.wait_n(n, Duration::from_secs(20), |v| {
            v["tid"] == tid && v["event"] == event
        })
    }

    /// Everything seen so far that matches.
    pub fn seen(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.state
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .lines
            .iter()
            .filter(|v| pred(v))
            .cloned()
            .collect()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.state
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stderr
            .clone()
    }

    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id()
    }

    /// Overflow the ring buffer: with the reader stopped (SIGSTOP), bind `binds` UDP
    /// sockets on 127.0.0.1 from this thread, then let it go on. Returns this thread's tid,
    /// whose binds the ring could not all hold.
    pub fn overflow_ring(&self, binds: usize) -> i32 {
        use std::net::Ipv4Addr;
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        for _ in 0..binds {
            let fd = sock::socket(libc::AF_INET, libc::SOCK_DGRAM);
            sock::bind(&fd, &sock::sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        tid()
    }

    /// Wait for lsn-trace to end by itself (`-- CMD` done, `-p` processes gone): its exit
    /// status and everything it printed on stderr, once its output is read to the end.
    pub fn wait_exit(&self, timeout: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self
                .child
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_wait()
                .unwrap()
            {
                break s;
            }
            if Instant::now() >= deadline {
                panic!(
                    "lsn-trace still running after {timeout:?}; stderr: {:#?}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.read_to_the_end();
        (status, self.stderr())
    }

    /// Once lsn-trace exited: wait until its output is read to the end — the readers may be
    /// seconds behind it (a storm's lines parsed under emulation), and a count taken before
    /// they finish misses the last lines (its final `lost` lines among them). A pipe a child
    /// of it still holds never ends: then until no line came for 2 s (at most 60 s in all).
    fn read_to_the_end(&self) {
        let (lock, cv) = &*self.state;
        let mut g = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let cap = Instant::now() + Duration::from_secs(60);
        let mut seen = (g.lines.len(), g.stderr.len());
        let mut quiet_since = Instant::now();
        while !(g.exited && g.stderr_done) && Instant::now() < cap {
            g = cv
                .wait_timeout(g, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            let now = (g.lines.len(), g.stderr.len());
            if now != seen {
                seen = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= Duration::from_secs(2) {
                break;
            }
        }
    }

    /// SIGTERM, then the exit status and everything it printed on stderr.
    pub fn terminate(&self) -> (std::process::ExitStatus, Vec<String>) {
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        let status = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .wait()
            .unwrap();
        self.read_to_the_end();
        (status, self.stderr())
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn tid() -> i32 {
    unsafe { libc::gettid() }
}

pub fn read_sysctl(path: &str) -> i64 {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .unwrap_or_else(|e| panic!("read /proc/sys/{path}: {e}"))
        .trim()
        .parse()
        .unwrap()
}
