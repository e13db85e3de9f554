//! Real daemons from Debian packages (installed by `cargo xtask setup`) run under
//! `lsn-trace -- CMD`: what a person reads in the JSON and in the final summary when they
//! trace nginx, redis, memcached or dnsmasq starting up — dual-stack pairs, loopback-only
//! binds, unix sockets, UDP, SO_REUSEPORT, backlogs clamped by somaxconn, daemonizing forks,
//! a reload, and a port already taken by another daemon.
//!
//! Daemons listen on loopback or on free high ports only, with their configuration, pid
//! files and logs in a temporary directory; a `Daemons` guard kills whatever they left
//! running (pid files, and processes naming that directory) even when an assertion fails.
//! Readiness is polled (the port answers, or the trace shows the bind), never slept for.
use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use lsn_trace_tests::{Tracer, Value, read_sysctl, sock::*};

/// Daemon start-up on a loaded 2-core machine can take seconds.
const START: Duration = Duration::from_secs(30);

/// A temporary directory for one daemon run, and the guard that kills what ran from it.
struct Daemons {
    dir: PathBuf,
    /// Processes started directly by the test (not through lsn-trace).
    children: Vec<Child>,
}

impl Daemons {
    fn new(name: &str) -> Daemons {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lsn-daemons-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // Daemons that drop privileges (memcached -u nobody) write their pid file here too.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        Daemons {
            dir,
            children: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        fs::write(&p, text).unwrap();
        p
    }

    /// Start a daemon directly (not traced), in its own process group.
    fn spawn(&mut self, cmd: &mut Command) -> u32 {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?} (installed by cargo xtask setup): {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// The pid a daemon wrote into `name`, once it did.
    fn pid_file(&self, name: &str, timeout: Duration) -> i32 {
        let p = self.dir.join(name);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pid) = fs::read_to_string(&p)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "{} not written within {timeout:?}; log: {}",
                p.display(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every *.log in the directory, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                out.push_str(&format!(
                    "\n--- {}\n{}",
                    e.path().display(),
                    fs::read_to_string(e.path()).unwrap_or_default()
                ));
            }
        }
        out
    }

    /// Processes of ours still alive: those we spawned, those named in pid files, those
    /// whose command line mentions our directory (each daemon is given a path in it), and
    /// every process in their process groups or sessions (nginx's workers name nothing).
    fn leftovers(&self, roots: &mut Vec<i32>) -> Vec<i32> {
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "pid")
                && let Some(pid) = fs::read_to_string(e.path())
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                && !roots.contains(&pid)
            {
                roots.push(pid);
            }
        }
        let needle = self.dir.to_str().unwrap().as_bytes();
        let me = std::process::id() as i32;
        let mut procs = Vec::new();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline"))
                && cmd.windows(needle.len()).any(|w| w == needle)
                && !roots.contains(&pid)
            {
                roots.push(pid);
            }
            // stat: pid (comm) state ppid pgrp session ...
            if let Some((pgrp, sid)) = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| {
                    let mut f = st.rsplit_once(") ")?.1.split(' ').skip(2);
                    Some((
                        f.next()?.parse::<i32>().ok()?,
                        f.next()?.parse::<i32>().ok()?,
                    ))
                })
            {
                procs.push((pid, pgrp, sid));
            }
        }
        let mut pids: Vec<i32> = procs
            .into_iter()
            .filter(|(pid, pgrp, sid)| {
                roots.contains(pid) || roots.contains(pgrp) || roots.contains(sid)
            })
            .map(|(pid, _, _)| pid)
            .collect();
        pids.retain(|&p| p > 1 && p != me && alive(p));
        pids
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        // Our own process id is never a root: the test process is in none of these groups.
        let mut roots: Vec<i32> = self.children.iter().map(|c| c.id() as i32).collect();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..5 {
            let pids = self.leftovers(&mut roots);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn alive(pid: i32) -> bool {
    // A zombie has exited already (its parent, maybe lsn-trace, reaps it later).
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, r)| !r.starts_with('Z'))
    })
}

/// A port free for TCP and UDP on every address (wildcard dual-stack probes).
fn free_port_tcp_udp() -> u16 {
    loop {
        let p = free_port();
        let u = socket(libc::AF_INET6, libc::SOCK_DGRAM);
        if bind(&u, &sin6(Ipv6Addr::UNSPECIFIED, p, 0)).is_ok() {
            return p;
        }
    }
}

/// Poll until `addr` accepts a TCP connection (`t`: the trace the daemon runs under, whose
/// stderr is the daemon's).
fn wait_tcp(addr: SocketAddr, d: &Daemons, t: Option<&Tracer>) {
    let deadline = Instant::now() + START;
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{addr} did not answer within {START:?}; {}\nstderr: {:#?}\nevents: {:#?}",
            d.logs(),
            t.map(Tracer::stderr),
            t.map(|t| t.seen(|_| true))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait for `lsn-trace -- CMD` to end; its exit status and its summary (stderr from the
/// `summary:` line on).
fn finish(t: &Tracer) -> (Option<i32>, Vec<String>, String) {
    let (status, stderr) = t.wait_exit(START);
    let at = stderr
        .iter()
        .position(|l| l.starts_with("lsn-trace: summary:"))
        .unwrap_or_else(|| panic!("no summary: {stderr:#?}"));
    let summary = stderr[at..].join("\n");
    (status.code(), stderr, summary)
}

/// Stop a trace whose CMD exited but whose daemon still runs (the user's Ctrl-C).
fn interrupt(t: &Tracer) -> (Option<i32>, Vec<String>, String) {
    t.wait_stderr("still following", START);
    unsafe { libc::kill(t.pid() as i32, libc::SIGINT) };
    finish(t)
}

fn one(t: &Tracer, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let found = t.seen(&pred);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {what}, got {found:#?}\nall events: {:#?}",
        t.seen(|_| true)
    );
    found.into_iter().next().unwrap()
}

fn text(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing: {v:#}"))
        .to_owned()
}

/// The pid from a summary head `COMM (pid N) exited, status S`.
fn cmd_pid(summary: &str, comm: &str) -> i64 {
    let head = format!("lsn-trace: summary: {comm} (pid ");
    summary
        .strip_prefix(&head)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("summary does not start with {head:?}: {summary}"))
}

fn nginx_conf(d: &Daemons, daemon: bool, servers: &str) -> String {
    let dir = d.dir.display();
    d.write(
        "nginx.conf",
        &format!(
            "daemon {on};\nmaster_process on;\nworker_processes 2;\npid {dir}/nginx.pid;\n\
             error_log {dir}/error.log info;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  \
             proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n\
             {servers}\n}}\n",
            on = if daemon { "on" } else { "off" },
        ),
    )
}

fn nginx_args<'a>(d: &'a Daemons, conf: &'a str) -> Vec<String> {
    // -e: nginx opens its error log before reading the configuration.
    ["nginx", "-p", d.dir.to_str().unwrap(), "-e"]
        .into_iter()
        .map(str::to_owned)
        .chain([d.path("error.log"), "-c".into(), conf.to_owned()])
        .collect()
}

/// `lsn-trace -- nginx` with `daemon on` (docs/usage.md's example): the dual-stack pair
/// `listen P; listen [::]:P ipv6only=on;` with a backlog above somaxconn, and a
/// `reuseport` listener cloned per worker. The daemonized master holds them after CMD exits:
/// the trace goes on, and their close when the master stops is traced too.
#[test]
fn nginx_daemon_dual_stack_pair_reuseport_and_backlog() {
    let d = Daemons::new("nginx");
    let (p, rp) = (free_port(), free_port());
    let conf = nginx_conf(
        &d,
        true,
        &format!(
            "  server {{ listen {p} backlog=65535; listen [::]:{p} ipv6only=on; \
             location / {{ return 200 \"ok\\n\"; }} }}\n  \
             server {{ listen 127.0.0.1:{rp} reuseport; location / {{ return 200 \"rp\\n\"; }} }}"
        ),
    );
    let args = nginx_args(&d, &conf);
    let mut argv = vec!["--"];
    argv.extend(args.iter().map(String::as_str));
    let t = Tracer::start(&argv);
    let master = d.pid_file("nginx.pid", START);
    wait_tcp((Ipv4Addr::LOCALHOST, p).into(), &d, Some(&t));
    wait_tcp((Ipv6Addr::LOCALHOST, p).into(), &d, Some(&t));
    wait_tcp((Ipv4Addr::LOCALHOST, rp).into(), &d, Some(&t));
    // The master, and its workers if they were forked by the time CMD's exit was seen.
    let following = t.wait_stderr("still following", START);
    assert!(
        following.starts_with("lsn-trace: nginx exited (status 0); still following ")
            && following
                .split(|c: char| !c.is_ascii_digit())
                .any(|n| n == master.to_string()),
        "{following}"
    );
    // Graceful stop of the daemon: the trace ends once it and its workers are gone.
    unsafe { libc::kill(master, libc::SIGTERM) };
    let (code, stderr, summary) = finish(&t);
    assert_eq!(code, Some(0), "{stderr:#?}");
    let cmd = cmd_pid(&summary, "nginx");
    assert_ne!(cmd, i64::from(master));

    let somaxconn = read_sysctl("net/core/somaxconn");
    // IPv4 half: 0.0.0.0:P, backlog 65535 asked, clamped by the kernel.
    let bind4 = one(&t, "bind 0.0.0.0", |v| {
        v["event"] == "bind" && v["family"] == "inet" && v["port"] == p
    });
    assert_eq!(bind4["pid"], cmd);
    assert_eq!(bind4["addr"], "0.0.0.0");
    assert_eq!(bind4["protocol"], "tcp");
    assert_eq!(bind4["error"], Value::Null);
    assert_eq!(bind4["reuseaddr"], true);
    assert_eq!(bind4["reuseport"], false);
    assert_eq!(bind4["v6only"], Value::Null);
    assert_eq!(bind4["verdict"], "all-ipv4");
    let id4 = text(&bind4, "sock_id");
    // nginx calls listen() again on its sockets after configuring them: the first one makes
    // the listener (and carries the summary), the second changes nothing.
    let listens4 = t.seen(|v| v["event"] == "listen" && v["sock_id"] == id4.as_str());
    assert!(!listens4.is_empty(), "{stderr:#?}");
    for l in &listens4 {
        assert_eq!(l["backlog"], 65535);
        assert_eq!(l["backlog_effective"], somaxconn.min(65535));
        assert_eq!(l["addr"], "0.0.0.0");
        assert_eq!(l["port"], p);
    }
    let s4 = text(&listens4[0], "summary");
    assert!(
        s4.starts_with(&format!(
            "nginx[{cmd}] LISTEN tcp 0.0.0.0:{p}  every IPv4 address"
        )),
        "{s4}"
    );
    if somaxconn < 65535 {
        assert!(
            s4.contains(&format!(
                "backlog 65535 clamped to {somaxconn} (net.core.somaxconn)"
            )),
            "{s4}"
        );
    }
    assert!(listens4[1..].iter().all(|l| l["summary"].is_null()));

    // IPv6 half: [::]:P with IPV6_V6ONLY=1 set explicitly, default backlog 511.
    let bind6 = one(&t, "bind [::]", |v| {
        v["event"] == "bind" && v["family"] == "inet6" && v["port"] == p
    });
    let id6 = text(&bind6, "sock_id");
    let opt = one(&t, "IPV6_V6ONLY", |v| {
        v["event"] == "setsockopt" && v["sock_id"] == id6.as_str() && v["option"] == "IPV6_V6ONLY"
    });
    assert_eq!(opt["level"], "SOL_IPV6");
    assert_eq!(opt["value"], 1);
    assert_eq!(bind6["addr"], "::");
    assert_eq!(bind6["v6only"], true);
    assert_eq!(bind6["v6only_source"], "explicit");
    assert_eq!(bind6["verdict"], "ipv6-only-any");
    let listens6 = t.seen(|v| v["event"] == "listen" && v["sock_id"] == id6.as_str());
    assert!(!listens6.is_empty());
    assert_eq!(listens6[0]["backlog"], 511);
    assert_eq!(listens6[0]["backlog_effective"], somaxconn.min(511));
    assert_eq!(listens6[0]["v6only"], true);
    let s6 = text(&listens6[0], "summary");
    assert!(
        s6.starts_with(&format!("nginx[{cmd}] LISTEN tcp [::]:{p}  IPv6 only")),
        "{s6}"
    );
    assert!(s6.contains("[V6ONLY=1, set explicitly]"), "{s6}");
    assert!(
        s6.contains(&format!("IPv4 is served by its other socket 0.0.0.0:{p}")),
        "{s6}"
    );

    // reuseport: one socket per worker on the same address, both binds succeed.
    let rbinds = t.seen(|v| v["event"] == "bind" && v["port"] == rp);
    assert_eq!(rbinds.len(), 2, "{rbinds:#?}");
    assert_ne!(rbinds[0]["sock_id"], rbinds[1]["sock_id"]);
    for b in &rbinds {
        assert_eq!(b["addr"], "127.0.0.1");
        assert_eq!(b["error"], Value::Null);
        assert_eq!(b["reuseport"], true);
        assert_eq!(b["verdict"], "loopback");
        let id = text(b, "sock_id");
        one(&t, "SO_REUSEPORT", |v| {
            v["event"] == "setsockopt"
                && v["sock_id"] == id.as_str()
                && v["option"] == "SO_REUSEPORT"
        });
    }

    // Every listener closed by the daemonized master (not CMD) when it stopped.
    for id in [id4.clone(), id6.clone()]
        .into_iter()
        .chain(rbinds.iter().map(|b| text(b, "sock_id")))
    {
        let c = one(&t, "close", |v| {
            v["event"] == "close" && v["sock_id"] == id.as_str()
        });
        assert_eq!(c["pid"], master, "{c:#}");
        assert_eq!(c["source"], "kernel");
    }

    let line = |addr: &str| format!("  listening  tcp {addr}  nginx (pid {cmd}), closed");
    for addr in [
        format!("0.0.0.0:{p}"),
        format!("[::]:{p}"),
        format!("127.0.0.1:{rp}"),
    ] {
        assert!(summary.contains(&line(&addr)), "{summary}");
    }
    assert_eq!(
        summary.matches(&line(&format!("127.0.0.1:{rp}"))).count(),
        2,
        "{summary}"
    );
    assert!(
        summary.contains("→ IPv6 only (V6ONLY=1) on every interface"),
        "{summary}"
    );
    assert!(
        t.seen(|v| v["comm"] != "nginx").is_empty(),
        "only nginx was followed"
    );
}

/// Ctrl-C while the daemonized nginx still runs: the process that bound exited (nginx binds
/// before it forks), yet its listeners are open — held now by the master it forked. The
/// summary must say so, not that nothing listens.
#[test]
fn nginx_daemon_interrupted_its_listeners_are_held_by_the_master() {
    let d = Daemons::new("nginx-int");
    let p = free_port();
    let conf = nginx_conf(&d, true, &format!("  server {{ listen 127.0.0.1:{p}; }}"));
    let args = nginx_args(&d, &conf);
    let mut argv = vec!["--"];
    argv.extend(args.iter().map(String::as_str));
    let t = Tracer::start(&argv);
    let master = d.pid_file("nginx.pid", START);
    wait_tcp((Ipv4Addr::LOCALHOST, p).into(), &d, Some(&t));
    let (code, stderr, summary) = interrupt(&t);
    assert_eq!(code, Some(0), "{stderr:#?}");
    let cmd = cmd_pid(&summary, "nginx");
    assert_ne!(cmd, i64::from(master));
    let line = format!(
        "  listening  tcp 127.0.0.1:{p}  nginx (pid {cmd}), still open, held now by nginx (pid "
    );
    let holder: i32 = summary
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {line:?}…: {summary}"));
    // The master, or one of its workers (they share the socket; the first found is named).
    let ppid = fs::read_to_string(format!("/proc/{holder}/stat"))
        .ok()
        .and_then(|st| {
            st.rsplit_once(") ")?
                .1
                .split(' ')
                .nth(1)?
                .parse::<i32>()
                .ok()
        });
    assert!(
        holder == master || ppid == Some(master),
        "{holder} is neither nginx's master {master} nor a worker: {summary}"
    );
    assert!(!summary.contains("nothing listens"), "{summary}");
}

/// A system-wide trace filtered in the kernel by `--comm nginx`, attached to an nginx that
/// already runs: after `listen` is added to its configuration and it is reloaded (SIGHUP),
/// the master binds only the new address (the old listener is kept across the reload), and
/// that is all the trace shows.
#[test]
fn nginx_reload_binds_only_the_new_listener_seen_with_comm_filter() {
    let mut d = Daemons::new("nginx-reload");
    let (p, p2) = (free_port(), free_port());
    let server = |extra: &str| format!("  server {{ listen 127.0.0.1:{p};{extra} }}");
    let conf = nginx_conf(&d, false, &server(""));
    let args = nginx_args(&d, &conf);
    let master = d.spawn(Command::new(&args[0]).args(&args[1..]));
    wait_tcp((Ipv4Addr::LOCALHOST, p).into(), &d, None);
    let t = Tracer::start(&["--comm", "nginx"]);
    nginx_conf(&d, false, &server(&format!(" listen [::1]:{p2};")));
    unsafe { libc::kill(master as i32, libc::SIGHUP) };
    wait_tcp((Ipv6Addr::LOCALHOST, p2).into(), &d, Some(&t));
    // The first listen() makes the listener (nginx calls it again after configuring it).
    let l = t.wait_n(1, START, |v| v["event"] == "listen" && v["port"] == p2)[0].clone();
    assert_eq!(l["pid"], master);
    assert_eq!(l["addr"], "::1");
    assert!(
        text(&l, "summary").starts_with(&format!(
            "nginx[{master}] LISTEN tcp [::1]:{p2}  loopback only"
        )),
        "{l:#}"
    );
    let binds = t.seen(|v| v["event"] == "bind" && v["pid"] == master);
    assert_eq!(binds.len(), 1, "only the new address is bound: {binds:#?}");
    assert_eq!(binds[0]["port"], p2);
    assert_eq!(binds[0]["family"], "inet6");
    // nginx sets IPV6_V6ONLY on every IPv6 listener, [::1] included.
    assert_eq!(binds[0]["v6only"], true);
    assert_eq!(binds[0]["verdict"], "loopback");
    assert!(
        t.seen(|v| v["comm"] != "nginx").is_empty(),
        "--comm nginx let another program through"
    );
}

/// A second nginx on a port the first one holds: nginx retries bind() five times, then
/// gives up. Every failure names the first nginx as the holder, and the summary says plainly
/// that nothing listens, and why.
#[test]
fn nginx_on_a_port_another_nginx_holds_fails_and_names_it() {
    let mut d = Daemons::new("nginx2");
    let p = free_port();
    let first_conf = d.write(
        "first.conf",
        &format!(
            "daemon off;\nmaster_process off;\npid {dir}/first.pid;\nerror_log {dir}/first.log;\n\
             events {{ worker_connections 16; }}\nhttp {{ access_log off; \
             client_body_temp_path {dir}/body1; proxy_temp_path {dir}/proxy1; \
             fastcgi_temp_path {dir}/fastcgi1; server {{ listen 127.0.0.1:{p}; }} }}\n",
            dir = d.dir.display()
        ),
    );
    let first_args = nginx_args(&d, &first_conf);
    let first = d.spawn(Command::new(&first_args[0]).args(&first_args[1..]));
    wait_tcp((Ipv4Addr::LOCALHOST, p).into(), &d, None);

    let conf = nginx_conf(&d, false, &format!("  server {{ listen 127.0.0.1:{p}; }}"));
    let args = nginx_args(&d, &conf);
    let mut argv = vec!["--"];
    argv.extend(args.iter().map(String::as_str));
    let t = Tracer::start(&argv);
    let (code, stderr, summary) = finish(&t);
    assert_eq!(
        code,
        Some(1),
        "nginx exits 1 when it cannot bind: {stderr:#?}"
    );
    let cmd = cmd_pid(&summary, "nginx");

    let fails = t.seen(|v| v["event"] == "bind");
    assert_eq!(fails.len(), 5, "nginx tries five times: {fails:#?}");
    for f in &fails {
        assert_eq!(f["pid"], cmd);
        assert_eq!(f["addr"], "127.0.0.1");
        assert_eq!(f["port"], p);
        assert_eq!(f["errno"], libc::EADDRINUSE);
        assert_eq!(f["error"], "EADDRINUSE");
        assert_eq!(f["reuseaddr"], true);
        let h = &f["holders"][0];
        assert_eq!(h["state"], "LISTEN");
        assert_eq!(h["addr"], "127.0.0.1");
        assert_eq!(h["port"], p);
        let why = text(f, "explanation");
        // The owner scan of /proc is bounded per event (50 ms) so a retry storm cannot
        // stall the agent: on a loaded box it may run out, and then says so.
        if h["pid"].is_null() {
            assert!(
                why.contains("not found within the 50 ms scan budget"),
                "{f:#}"
            );
            continue;
        }
        assert_eq!(h["pid"], first, "{f:#}");
        assert_eq!(h["comm"], "nginx");
        assert!(
            why.starts_with(&format!(
                "127.0.0.1:{p}/tcp is held by nginx[{first}] (LISTEN 127.0.0.1:{p}"
            )),
            "{why}"
        );
    }
    let held = format!("nginx (pid {first}) on 127.0.0.1:{p} (LISTEN)");
    assert!(
        summary.contains(&format!(
            "  failed     bind tcp 127.0.0.1:{p}: EADDRINUSE (Address already in use), 5 times  \
             nginx (pid {cmd}); port held now by {held}"
        )),
        "{summary}"
    );
    assert!(
        summary.ends_with(&format!(
            "  nothing listens: nginx exited after 5 failed binds on 127.0.0.1:{p}: \
             EADDRINUSE, held by {held}"
        )),
        "{summary}"
    );
}

fn redis_args(d: &Daemons, port: u16, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "redis-server",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        d.dir.to_str().unwrap(),
        "--logfile",
        &d.path("redis.log"),
        "--pidfile",
        &d.path("redis.pid"),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

/// Send PING, expect +PONG: the daemon is ready.
fn redis_ping(mut s: impl Read + Write) {
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0; 7];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}

/// redis with `daemonize yes`, `bind 127.0.0.1 ::1` and a unix socket: the daemon (a
/// child of CMD) binds after CMD exited; every listener is loopback-only or a path, and the
/// summary after Ctrl-C says all three are still open, held by the daemon.
#[test]
fn redis_daemon_loopback_pair_and_unix_socket() {
    let d = Daemons::new("redis");
    let p = free_port();
    let sock = d.path("redis.sock");
    let args = redis_args(
        &d,
        p,
        &[
            "--bind",
            "127.0.0.1 ::1",
            "--unixsocket",
            &sock,
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
        ],
    );
    let mut argv = vec!["--"];
    argv.extend(args.iter().map(String::as_str));
    let t = Tracer::start(&argv);
    let daemon = d.pid_file("redis.pid", START);
    wait_tcp((Ipv4Addr::LOCALHOST, p).into(), &d, Some(&t));
    wait_tcp((Ipv6Addr::LOCALHOST, p).into(), &d, Some(&t));
    redis_ping(TcpStream::connect((Ipv6Addr::LOCALHOST, p)).unwrap());
    redis_ping(UnixStream::connect(&sock).unwrap());
    t.wait_n(3, START, |v| v["event"] == "listen" && v["pid"] == daemon);
    let (code, stderr, summary) = interrupt(&t);
    assert_eq!(code, Some(0), "CMD's status: {stderr:#?}");
    let cmd = cmd_pid(&summary, "redis-server");
    assert_ne!(cmd, i64::from(daemon));
    assert!(
        stderr.iter().any(|l| l
            == &format!(
                "lsn-trace: redis-server exited (status 0); still following 1 process \
                 (pid {daemon}): Ctrl-C to stop"
            )),
        "{stderr:#?}"
    );
    assert!(
        t.seen(|v| v["pid"] == cmd).is_empty(),
        "CMD itself binds nothing"
    );

    let somaxconn = read_sysctl("net/core/somaxconn");
    let b4 = one(&t, "bind 127.0.0.1", |v| {
        v["event"] == "bind" && v["family"] == "inet"
    });
    let b6 = one(&t, "bind ::1", |v| {
        v["event"] == "bind" && v["family"] == "inet6"
    });
    let bu = one(&t, "bind unix", |v| {
        v["event"] == "bind" && v["family"] == "unix"
    });
    for (b, addr) in [(&b4, "127.0.0.1"), (&b6, "::1")] {
        assert_eq!(b["pid"], daemon);
        assert_eq!(b["addr"], addr);
        assert_eq!(b["port"], p);
        assert_eq!(b["bound_port"], p);
        assert_eq!(b["protocol"], "tcp");
        assert_eq!(b["error"], Value::Null);
        assert_eq!(b["verdict"], "loopback");
    }
    assert_eq!(b4["v6only"], Value::Null);
    // redis sets IPV6_V6ONLY on its IPv6 sockets.
    assert_eq!(b6["v6only"], true);
    assert_eq!(b6["v6only_source"], "explicit");
    assert_eq!(bu["pid"], daemon);
    assert_eq!(bu["addr"], sock.as_str());
    assert_eq!(bu["protocol"], "u_str");
    assert_eq!(bu["verdict"], "unix-path");
    assert_eq!(bu["port"], Value::Null);

    let listen_of = |b: &Value| {
        let id = text(b, "sock_id");
        one(&t, "listen", |v| {
            v["event"] == "listen" && v["sock_id"] == id.as_str()
        })
    };
    let (l4, l6, lu) = (listen_of(&b4), listen_of(&b6), listen_of(&bu));
    for l in [&l4, &l6, &lu] {
        // tcp-backlog's default; the kernel applies min(backlog, somaxconn).
        assert_eq!(l["backlog"], 511);
        assert_eq!(l["backlog_effective"], somaxconn.min(511));
        assert_eq!(l["pid"], daemon);
    }
    let s4 = text(&l4, "summary");
    assert!(
        s4.starts_with(&format!(
            "redis-server[{daemon}] LISTEN tcp 127.0.0.1:{p}  loopback only"
        )),
        "{s4}"
    );
    assert!(s4.ends_with(&format!("Connect: 127.0.0.1:{p}")), "{s4}");
    let s6 = text(&l6, "summary");
    assert!(
        s6.starts_with(&format!(
            "redis-server[{daemon}] LISTEN tcp [::1]:{p}  loopback only"
        )),
        "{s6}"
    );
    assert!(s6.contains("[V6ONLY=1, set explicitly]"), "{s6}");
    assert!(s6.ends_with(&format!("Connect: [::1]:{p}")), "{s6}");
    assert_eq!(lu["addr"], sock.as_str(), "listen: the path it listens on");
    let su = text(&lu, "summary");
    assert!(
        su.starts_with(&format!(
            "redis-server[{daemon}] LISTEN u_str {sock}  a filesystem socket at {sock}"
        )),
        "{su}"
    );
    assert!(su.ends_with(&format!("Connect: {sock}")), "{su}");

    for (proto, addr) in [
        ("tcp", format!("127.0.0.1:{p}")),
        ("tcp", format!("[::1]:{p}")),
        ("u_str", sock.clone()),
    ] {
        let line = format!("  listening  {proto} {addr}  redis-server (pid {daemon}), still open");
        assert!(summary.contains(&line), "{line}\n{summary}");
    }
    assert!(!summary.contains("nothing listens"), "{summary}");
}

/// memcached on a port a running memcached holds: redis fails once and exits; the summary
/// names memcached as the holder.
#[test]
fn redis_on_a_port_memcached_holds_fails_and_names_it() {
    let mut d = Daemons::new("redis-held");
    let p = free_port();
    let holder = d.spawn(Command::new("memcached").args([
        "-u",
        "nobody",
        "-l",
        "127.0.0.1",
        "-p",
        &p.to_string(),
        "-U",
        "0",
        "-P",
        &d.path("memcached-holder.pid"),
    ]));
    wait_tcp((Ipv4Addr::LOCALHOST, p).into(), &d, None);
    let args = redis_args(&d, p, &["--bind", "127.0.0.1"]);
    let mut argv = vec!["--"];
    argv.extend(args.iter().map(String::as_str));
    let t = Tracer::start(&argv);
    let (code, stderr, summary) = finish(&t);
    assert_eq!(code, Some(1), "{stderr:#?}{}", d.logs());
    let cmd = cmd_pid(&summary, "redis-server");
    let f = one(&t, "failed bind", |v| v["event"] == "bind");
    assert_eq!(f["pid"], cmd);
    assert_eq!(f["addr"], "127.0.0.1");
    assert_eq!(f["port"], p);
    assert_eq!(f["error"], "EADDRINUSE");
    assert_eq!(f["holders"][0]["state"], "LISTEN");
    // (pid null: the bounded owner scan ran out on a loaded box; the summary's is not.)
    if !f["holders"][0]["pid"].is_null() {
        assert_eq!(f["holders"][0]["pid"], holder);
        assert_eq!(f["holders"][0]["comm"], "memcached");
    }
    assert!(t.seen(|v| v["event"] == "listen").is_empty());
    assert!(
        summary.ends_with(&format!(
            "  nothing listens: redis-server exited after 1 failed bind on 127.0.0.1:{p}: \
             EADDRINUSE, held by memcached (pid {holder}) on 127.0.0.1:{p} (LISTEN)"
        )),
        "{summary}"
    );
}

/// `memcached -d`: CMD forks, its child setsid()s, drops to nobody and only then binds TCP
/// and UDP — after CMD exited. Follow mode must see those binds and keep tracing.
#[test]
fn memcached_daemonizes_then_binds_tcp_and_udp() {
    let d = Daemons::new("memcached");
    let (p, up) = (free_port(), free_port_tcp_udp());
    let args: Vec<String> = [
        "memcached",
        "-d",
        "-u",
        "nobody",
        "-l",
        "127.0.0.1",
        "-p",
        &p.to_string(),
        "-U",
        &up.to_string(),
        "-b",
        "300",
        "-P",
        &d.path("memcached.pid"),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let mut argv = vec!["--"];
    argv.extend(args.iter().map(String::as_str));
    let t = Tracer::start(&argv);
    wait_tcp((Ipv4Addr::LOCALHOST, p).into(), &d, Some(&t));
    let udp = t
        .wait_n(1, START, |v| v["event"] == "bind" && v["protocol"] == "udp")
        .pop()
        .unwrap();
    let (code, stderr, summary) = interrupt(&t);
    assert_eq!(code, Some(0), "{stderr:#?}");
    let cmd = cmd_pid(&summary, "memcached");
    let daemon = udp["pid"].as_i64().unwrap();
    assert_ne!(daemon, cmd, "the daemon binds, not CMD");
    assert!(
        stderr.iter().any(|l| l
            == &format!(
                "lsn-trace: memcached exited (status 0); still following 1 process \
                 (pid {daemon}): Ctrl-C to stop"
            )),
        "{stderr:#?}"
    );

    let tcp = one(&t, "tcp bind", |v| {
        v["event"] == "bind" && v["protocol"] == "tcp"
    });
    for b in [&tcp, &udp] {
        assert_eq!(b["pid"], daemon);
        assert_eq!(b["addr"], "127.0.0.1");
        assert_eq!(b["family"], "inet");
        assert_eq!(b["error"], Value::Null);
        assert_eq!(b["reuseaddr"], true);
        assert_eq!(b["verdict"], "loopback");
    }
    assert_eq!(tcp["port"], p);
    assert_eq!(udp["port"], up);
    assert_eq!(udp["type"], "dgram");
    let id = text(&tcp, "sock_id");
    let l = one(&t, "listen", |v| {
        v["event"] == "listen" && v["sock_id"] == id.as_str()
    });
    assert_eq!(l["backlog"], 300);
    assert_eq!(
        l["backlog_effective"],
        read_sysctl("net/core/somaxconn").min(300)
    );
    assert!(
        text(&l, "summary").starts_with(&format!(
            "memcached[{daemon}] LISTEN tcp 127.0.0.1:{p}  loopback only"
        )),
        "{l:#}"
    );
    // A UDP socket receives once bound: its bind is its "listen", and carries the summary.
    let su = text(&udp, "summary");
    assert!(
        su.starts_with(&format!(
            "memcached[{daemon}] BOUND udp 127.0.0.1:{up}  loopback only"
        )),
        "{su}"
    );
    assert!(
        su.ends_with(&format!("Send datagrams to 127.0.0.1:{up}")),
        "{su}"
    );

    assert!(
        summary.contains(&format!(
            "  listening  tcp 127.0.0.1:{p}  memcached (pid {daemon}), still open"
        )),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "  bound      udp 127.0.0.1:{up}  memcached (pid {daemon}), still open"
        )),
        "{summary}"
    );
    assert!(!summary.contains("nothing listens"), "{summary}");
    // Its pid file is written after the binds; the guard kills the daemon either way.
    d.pid_file("memcached.pid", START);
}

/// dnsmasq binds its DNS port (UDP and TCP) as root, then forks into the background and the
/// process that bound exits. Ctrl-C while it runs: both sockets are still open, held now by
/// the daemon — the datagram one included, which has no close event to go by.
#[test]
fn dnsmasq_binds_then_daemonizes_udp_and_tcp_held_by_the_daemon() {
    let d = Daemons::new("dnsmasq");
    let p = free_port_tcp_udp();
    let args: Vec<String> = [
        "dnsmasq".to_owned(),
        "--conf-file=/dev/null".into(),
        format!("--port={p}"),
        "--listen-address=127.0.0.1".into(),
        "--bind-interfaces".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--user=nobody".into(),
        format!("--pid-file={}", d.path("dnsmasq.pid")),
    ]
    .into();
    let mut argv = vec!["--"];
    argv.extend(args.iter().map(String::as_str));
    let t = Tracer::start(&argv);
    wait_tcp((Ipv4Addr::LOCALHOST, p).into(), &d, Some(&t));
    let daemon = d.pid_file("dnsmasq.pid", START);
    let (code, stderr, summary) = interrupt(&t);
    assert_eq!(code, Some(0), "{stderr:#?}");
    let cmd = cmd_pid(&summary, "dnsmasq");
    assert_ne!(cmd, i64::from(daemon));

    let udp = one(&t, "udp bind", |v| {
        v["event"] == "bind" && v["protocol"] == "udp"
    });
    let tcp = one(&t, "tcp bind", |v| {
        v["event"] == "bind" && v["protocol"] == "tcp"
    });
    for b in [&udp, &tcp] {
        assert_eq!(b["pid"], cmd, "dnsmasq binds before it forks");
        assert_eq!(b["addr"], "127.0.0.1");
        assert_eq!(b["port"], p);
        assert_eq!(b["error"], Value::Null);
        assert_eq!(b["verdict"], "loopback");
    }
    let su = text(&udp, "summary");
    assert!(
        su.starts_with(&format!(
            "dnsmasq[{cmd}] BOUND udp 127.0.0.1:{p}  loopback only"
        )),
        "{su}"
    );
    assert!(
        su.ends_with(&format!("Send datagrams to 127.0.0.1:{p}")),
        "{su}"
    );
    let held = format!("still open, held now by dnsmasq (pid {daemon})");
    assert!(
        summary.contains(&format!(
            "  bound      udp 127.0.0.1:{p}  dnsmasq (pid {cmd}), {held}"
        )),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "  listening  tcp 127.0.0.1:{p}  dnsmasq (pid {cmd}), {held}"
        )),
        "{summary}"
    );
    assert!(!summary.contains("nothing listens"), "{summary}");
}
