//! The socket's story end to end: verdicts and listener summaries on real sockets, and
//! failures explained with facts looked up live (who holds the port, which addresses
//! exist, the privileged-port threshold). Culprits are real other processes.
use std::{
    io::{BufRead, BufReader, Write},
    net::{Ipv4Addr, Ipv6Addr},
    os::unix::fs::PermissionsExt,
    process::{Child, ChildStdin, Command, Stdio},
    time::Duration,
};

use lsn_trace_tests::{Tracer, Value, read_sysctl, sock::*, tid};

/// One tracer for this file that follows this test process and the processes it starts
/// (`-p PID -f`): the records carry long sentences, and a host-wide trace would make the
/// harness parse every other engineer's bind storm too.
fn tracer() -> &'static Tracer {
    static T: std::sync::OnceLock<Tracer> = std::sync::OnceLock::new();
    T.get_or_init(|| Tracer::start(&["-p", &std::process::id().to_string(), "-f"]))
}

/// The record of `kind` on socket `fd` from this thread (waits for it). Matched by the
/// socket's inode, which every backend reports (the fd is null on kernel-function ones).
fn rec(t: &Tracer, kind: &str, fd: &Fd) -> Value {
    let me = tid();
    let ino = inode(fd);
    t.wait_n(1, Duration::from_secs(20), |v| {
        v["tid"] == me && v["event"] == kind && v["inode"] == ino
    })
    .pop()
    .unwrap()
}

/// How an explanation names the socket: its fd (every backend sees a syscall's).
fn subject(_t: &Tracer, fd: &Fd) -> String {
    format!("fd {}", fd.0)
}

/// This test process's name, as the records' `comm` gives it.
fn process_name() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_owned()
}

fn text(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing: {v:#}"))
        .to_owned()
}

/// Another process running a Python snippet; its first stdout line is returned, and it
/// lives until dropped (stdin closed, then killed).
struct Py {
    child: Child,
    stdin: Option<ChildStdin>,
    line: String,
}

impl Py {
    fn run(code: &str) -> Py {
        Py::spawn(Command::new("python3").args(["-c", code]))
    }

    fn spawn(cmd: &mut Command) -> Py {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (installed by cargo xtask setup)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let stdin = child.stdin.take();
        Py {
            child,
            stdin,
            line: line.trim().to_owned(),
        }
    }

    /// A python that, as nobody, binds a socket of `family` (a `socket.AF_*` name) to
    /// `addr` (a Python expression) and prints `bound` or the errno; held open until dropped.
    /// Its bind event, once lsn-trace has reported it.
    fn bind_as_nobody(t: &Tracer, family: &str, addr: &str) -> (Py, Value) {
        let py = Py::run(&format!(
            "import os,socket,sys\n\
             os.setgid(65534); os.setuid(65534)\n\
             s=socket.socket(socket.{family})\n\
             try:\n  s.bind({addr}); print('bound',flush=True)\n\
             except OSError as e:\n  print(e.errno,flush=True)\n\
             sys.stdin.read()"
        ));
        let pid = py.pid();
        let b = t
            .wait_n(1, Duration::from_secs(20), |v| {
                v["pid"] == pid && v["event"] == "bind"
            })
            .pop()
            .unwrap();
        (py, b)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn comm(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.pid()))
            .unwrap()
            .trim()
            .to_owned()
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"\n");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process listening on `addr` port 0; returns it and the port.
fn holder(addr: &str) -> (Py, u16) {
    let p = Py::run(&format!(
        "import socket,sys\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_STREAM)\n\
         s.bind(('{addr}',0)); s.listen(8)\n\
         print(s.getsockname()[1],flush=True); sys.stdin.read()"
    ));
    let port = p.line.parse().expect("holder printed its port");
    (p, port)
}

#[test]
fn listener_summaries_for_a_two_socket_dual_stack_server() {
    let t = tracer();
    let port = free_port();
    let s4 = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&s4, &sin(Ipv4Addr::UNSPECIFIED, port)).unwrap();
    listen(&s4, 16).unwrap();
    let s6 = socket(libc::AF_INET6, libc::SOCK_STREAM);
    setsockopt_int(&s6, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1).unwrap();
    bind(&s6, &sin6(Ipv6Addr::UNSPECIFIED, port, 0)).unwrap();
    listen(&s6, 16).unwrap();

    let l4 = rec(t, "listen", &s4);
    assert_eq!(l4["verdict"], "all-ipv4");
    assert_eq!(l4["v6only_source"], Value::Null);
    assert!(
        text(&l4, "meaning").contains("every IPv4 address"),
        "{l4:#}"
    );
    let sum4 = text(&l4, "summary");
    let me = format!("{}[{}]", process_name(), std::process::id());
    assert!(
        sum4.starts_with(&format!("{me} LISTEN tcp 0.0.0.0:{port}  ")),
        "{sum4}"
    );
    assert!(
        sum4.ends_with(&format!("Connect: 127.0.0.1:{port}")),
        "{sum4}"
    );

    let l6 = rec(t, "listen", &s6);
    assert_eq!(l6["verdict"], "ipv6-only-any");
    assert_eq!(l6["v6only_source"], "explicit");
    // existing keys stay as they were
    assert_eq!(l6["v6only"], true);
    assert_eq!(l6["backlog"], 16);
    let sum6 = text(&l6, "summary");
    assert!(
        sum6.starts_with(&format!("{me} LISTEN tcp [::]:{port}  ")),
        "{sum6}"
    );
    assert!(sum6.contains("[V6ONLY=1, set explicitly]"), "{sum6}");
    assert!(!sum6.contains("IPv4 clients need another socket"), "{sum6}");
    assert!(
        sum6.contains(&format!(
            "IPv4 is served by its other socket 0.0.0.0:{port}"
        )),
        "{sum6}"
    );
    assert!(
        sum6.ends_with(&format!("Connect: localhost:{port}")),
        "{sum6}"
    );
    // the bind records carry the verdict too, but no summary: binding is not listening
    let b6 = rec(t, "bind", &s6);
    assert_eq!(b6["verdict"], "ipv6-only-any");
    assert_eq!(b6["summary"], Value::Null);
}

#[test]
fn v6only_inherited_from_the_sysctl() {
    let t = tracer();
    let fd = socket(libc::AF_INET6, libc::SOCK_STREAM);
    bind(&fd, &sin6(Ipv6Addr::UNSPECIFIED, 0, 0)).unwrap();
    listen(&fd, 4).unwrap();
    let l = rec(t, "listen", &fd);
    let default = read_sysctl("net/ipv6/bindv6only");
    assert_eq!(l["v6only_source"], "sysctl");
    assert_eq!(
        l["verdict"],
        if default == 0 {
            "dual-stack"
        } else {
            "ipv6-only-any"
        }
    );
    let m = text(&l, "meaning");
    assert!(
        m.contains(&format!("inherited from net.ipv6.bindv6only={default}")),
        "{m}"
    );
    let picked = local_port(&fd);
    assert!(
        text(&l, "summary").contains(&format!("port {picked} was chosen by the kernel")),
        "{l:#}"
    );
}

/// Binding one IPv6 address sets IPV6_V6ONLY in the kernel: with no setsockopt, the record
/// says so rather than "set before this trace began".
#[test]
fn v6only_of_one_ipv6_address_is_set_by_the_kernel() {
    let t = tracer();
    let fd = socket(libc::AF_INET6, libc::SOCK_DGRAM);
    bind(&fd, &sin6(Ipv6Addr::LOCALHOST, 0, 0)).unwrap();
    let b = rec(t, "bind", &fd);
    assert_eq!(b["v6only"], true, "{b:#}");
    assert_eq!(b["v6only_source"], "address", "{b:#}");
    let m = text(&b, "meaning");
    assert!(
        m.ends_with("[V6ONLY=1, set by the kernel on binding one IPv6 address]"),
        "{m}"
    );
}

#[test]
fn eaddrinuse_names_the_other_process_holding_the_port() {
    let t = tracer();
    let (py, port) = holder("127.0.0.1");
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
    let err = bind(&fd, &sin(Ipv4Addr::LOCALHOST, port)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    let b = rec(t, "bind", &fd);
    assert_eq!(b["error"], "EADDRINUSE");
    let h = &b["holders"][0];
    assert_eq!(h["pid"], py.pid(), "{b:#}");
    assert_eq!(h["comm"], py.comm());
    assert_eq!(h["state"], "LISTEN");
    assert_eq!(h["addr"], "127.0.0.1");
    assert_eq!(h["port"], port);
    assert_eq!(h["protocol"], "tcp");
    let why = text(&b, "explanation");
    assert!(
        why.starts_with(&format!(
            "127.0.0.1:{port}/tcp is held by {}[{}] (LISTEN 127.0.0.1:{port}",
            py.comm(),
            py.pid()
        )),
        "{why}"
    );
    assert!(why.contains("both ask for the same address"), "{why}");
    assert!(why.contains("SO_REUSEADDR would not help"), "{why}");
    assert!(
        why.contains("SO_REUSEPORT would allow a second listener only if"),
        "{why}"
    );
    // the same verdict as ss
    let ss = Command::new("ss")
        .args(["-Htlnp", &format!("sport = :{port}")])
        .output()
        .unwrap();
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(ss.contains(&format!("pid={}", py.pid())), "{ss}");
}

#[test]
fn dual_stack_bind_collides_with_an_ipv4_wildcard_and_v6only_fixes_it() {
    let t = tracer();
    let (py, port) = holder("0.0.0.0");
    // [::] with V6ONLY=0 also claims IPv4: EADDRINUSE
    let dual = socket(libc::AF_INET6, libc::SOCK_STREAM);
    setsockopt_int(&dual, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0).unwrap();
    let err = bind(&dual, &sin6(Ipv6Addr::UNSPECIFIED, port, 0)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    // [::] with V6ONLY=1 does not
    let v6 = socket(libc::AF_INET6, libc::SOCK_STREAM);
    setsockopt_int(&v6, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1).unwrap();
    bind(&v6, &sin6(Ipv6Addr::UNSPECIFIED, port, 0)).unwrap();
    // No setsockopt (`python3 -m http.server --bind ::`): V6ONLY is the sysctl's, and
    // refused where that makes it dual-stack.
    let sysctl_dual = read_sysctl("net/ipv6/bindv6only") == 0;
    let plain = socket(libc::AF_INET6, libc::SOCK_STREAM);
    let r = bind(&plain, &sin6(Ipv6Addr::UNSPECIFIED, port, 0));
    assert_eq!(r.is_err(), sysctl_dual, "{r:?}");

    let b = rec(t, "bind", &dual);
    // The failed bind says where its V6ONLY came from, as a successful one does.
    assert_eq!(b["v6only"], false, "{b:#}");
    assert_eq!(b["v6only_source"], "explicit", "{b:#}");
    let why = text(&b, "explanation");
    assert!(
        why.contains(&format!(
            "[::]:{port} is dual-stack (IPV6_V6ONLY=0, set explicitly): it claims IPv4 port \
             {port} too, and 0.0.0.0:{port} already has it"
        )),
        "{why}"
    );
    assert!(
        why.contains("Set IPV6_V6ONLY=1 on the IPv6 socket"),
        "{why}"
    );
    let h = &b["holders"][0];
    assert_eq!(h["pid"], py.pid(), "{b:#}");
    assert_eq!(h["addr"], "0.0.0.0");
    assert_eq!(h["state"], "LISTEN");

    let ok = rec(t, "bind", &v6);
    assert_eq!(ok["errno"], Value::Null);
    assert_eq!(ok["explanation"], Value::Null);
    assert_eq!(ok["verdict"], "ipv6-only-any");
    assert_eq!(ok["v6only_source"], "explicit");

    let p = rec(t, "bind", &plain);
    assert_eq!(p["v6only_source"], "sysctl", "{p:#}");
    if sysctl_dual {
        assert_eq!(p["error"], "EADDRINUSE", "{p:#}");
        let why = text(&p, "explanation");
        assert!(
            why.contains("(IPV6_V6ONLY=0, inherited from net.ipv6.bindv6only=0)"),
            "{why}"
        );
    }
}

#[test]
fn a_time_wait_leftover_and_what_so_reuseaddr_changes() {
    let t = tracer();
    // A server whose side closes first keeps the TIME-WAIT on its own port. Port 0: a
    // probed "free" port can be taken by another test's connection before we bind it.
    let (tw_ready, port) = std::thread::spawn(move || {
        let l = socket(libc::AF_INET, libc::SOCK_STREAM);
        setsockopt_int(&l, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
        bind(&l, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = local_port(&l);
        listen(&l, 1).unwrap();
        let c = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let a = unsafe { libc::accept(l.0, std::ptr::null_mut(), std::ptr::null_mut()) };
        assert!(a >= 0);
        drop(Fd(a)); // server closes first
        let mut buf = [0u8; 1];
        use std::io::Read;
        let _ = (&c).read(&mut buf); // wait for its FIN
        drop(c);
        drop(l);
        (true, port)
    })
    .join()
    .unwrap();
    assert!(tw_ready);
    // The server's side passes through FIN-WAIT-2 first: wait for TIME-WAIT proper.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ss = Command::new("ss")
            .args(["-Htan", "state", "time-wait", &format!("sport = :{port}")])
            .output()
            .unwrap();
        if !ss.stdout.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no TIME-WAIT on {port}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    let err = bind(&fd, &sin(Ipv4Addr::LOCALHOST, port)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    let b = rec(t, "bind", &fd);
    let why = text(&b, "explanation");
    assert!(
        why.starts_with(&format!(
            "127.0.0.1:{port}/tcp is held by a TIME-WAIT leftover of a closed connection"
        )),
        "{why}"
    );
    assert!(
        why.contains("SO_REUSEADDR set before bind would have let this bind succeed"),
        "{why}"
    );
    assert_eq!(b["holders"][0]["state"], "TIME-WAIT");
    assert_eq!(b["holders"][0]["pid"], Value::Null);
    // ...and it is true: the same bind with SO_REUSEADDR succeeds.
    let fd2 = socket(libc::AF_INET, libc::SOCK_STREAM);
    setsockopt_int(&fd2, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
    bind(&fd2, &sin(Ipv4Addr::LOCALHOST, port)).unwrap();
}

#[test]
fn second_listener_with_so_reuseaddr_fails_at_listen() {
    let t = tracer();
    // Both bind with SO_REUSEADDR (neither listens yet); the second's listen fails.
    let (_a, b) = failed_listen();
    let l = rec(t, "listen", &b);
    let why = text(&l, "explanation");
    assert!(
        why.contains("SO_REUSEADDR would not help: Linux never lets two TCP sockets listen"),
        "{why}"
    );
    assert!(
        why.contains("listen() is where TCP refuses the second listener"),
        "{why}"
    );
    // the holder is the other socket, not the failing one itself
    let holders = l["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1, "{l:#}");
    assert_eq!(holders[0]["pid"], std::process::id());
    assert_eq!(holders[0]["state"], "LISTEN");
}

#[test]
fn eaddrnotavail_lists_the_addresses_that_exist() {
    let t = tracer();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    // TEST-NET-2: documentation space, on no interface
    let err = bind(&fd, &sin(Ipv4Addr::new(198, 51, 100, 77), 0)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL));
    let why = text(&rec(t, "bind", &fd), "explanation");
    assert!(
        why.starts_with("198.51.100.77 is not assigned to any interface"),
        "{why}"
    );
    assert!(why.contains("lo: 127.0.0.1/8"), "{why}");
    assert!(why.contains("IP_FREEBIND"), "{why}");
}

#[test]
fn eacces_below_the_unprivileged_port_start() {
    let t = tracer();
    let start = read_sysctl("net/ipv4/ip_unprivileged_port_start");
    assert!(
        start > 1,
        "this test needs privileged ports (ip_unprivileged_port_start={start})"
    );
    let port = start - 1;
    let (py, b) = Py::bind_as_nobody(t, "AF_INET", &format!("('127.0.0.1',{port})"));
    assert_eq!(py.line, libc::EACCES.to_string());
    let pid = py.pid();
    assert_eq!(b["error"], "EACCES");
    let why = text(&b, "explanation");
    assert!(
        why.starts_with(&format!(
            "port {port} is privileged in this network namespace \
             (net.ipv4.ip_unprivileged_port_start={start}) and {}[{pid}] (uid 65534) runs \
             without CAP_NET_BIND_SERVICE",
            py.comm()
        )),
        "{why}"
    );
    assert!(why.contains("setcap cap_net_bind_service=+ep /"), "{why}");
    assert!(
        why.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"),
        "{why}"
    );
    assert!(
        why.contains(&format!("net.ipv4.ip_unprivileged_port_start={port}")),
        "{why}"
    );
    assert!(why.contains(&format!("use a port >= {start}")), "{why}");
}

#[test]
fn short_true_sentences_for_the_other_errors() {
    let t = tracer();
    // EINVAL: already bound
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = local_port(&fd);
    assert_eq!(
        bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EINVAL)
    );
    let (me, ino) = (tid(), inode(&fd));
    let binds = t.wait_n(2, Duration::from_secs(20), |v| {
        v["tid"] == me && v["event"] == "bind" && v["inode"] == ino
    });
    assert_eq!(
        text(&binds[1], "explanation"),
        format!(
            "{} is already bound (to 127.0.0.1:{port}): a socket binds once. Create a new \
             socket for another address",
            subject(t, &fd)
        )
    );
    // EINVAL: a sockaddr_in cut short
    let short = socket(libc::AF_INET, libc::SOCK_STREAM);
    let err = bind_raw(&short, &sin(Ipv4Addr::LOCALHOST, 0), 8).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    assert_eq!(
        text(&rec(t, "bind", &short), "explanation"),
        "address length 8 is too short for AF_INET (needs 16): pass sizeof the sockaddr \
         structure"
    );
    // EAFNOSUPPORT: an IPv6 address on an IPv4 socket
    let v4 = socket(libc::AF_INET, libc::SOCK_STREAM);
    let err = bind(&v4, &sin6(Ipv6Addr::LOCALHOST, 0, 0)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EAFNOSUPPORT));
    assert_eq!(
        text(&rec(t, "bind", &v4), "explanation"),
        "an AF_INET6 address was passed to an AF_INET socket: the address family must match \
         the socket's"
    );
    // EFAULT and ENOTSOCK fail in bind(2) before any socket code runs: every backend sees
    // them (the kernel-function ones at the syscall layer).
    let f = socket(libc::AF_INET, libc::SOCK_STREAM);
    assert_eq!(
        unsafe { libc::bind(f.0, 0x10 as *const libc::sockaddr, 16) },
        -1
    );
    assert!(
        text(&rec(t, "bind", &f), "explanation")
            .starts_with("the bind argument points outside the process's memory"),
    );
    // ENOTSOCK: a pipe (no socket, no socket inode: matched by its fd)
    let mut p = [0i32; 2];
    assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
    let (r, _w) = (Fd(p[0]), Fd(p[1]));
    let sa = sin(Ipv4Addr::LOCALHOST, 0);
    assert!(bind(&r, &sa).is_err());
    let b = t
        .wait_n(1, Duration::from_secs(20), |v| {
            v["tid"] == me && v["event"] == "bind" && v["fd"] == r.0
        })
        .pop()
        .unwrap();
    assert_eq!(b["inode"], Value::Null, "a pipe is no socket: {b:#}");
    assert_eq!(
        text(&b, "explanation"),
        format!("fd {} is a file descriptor, but not a socket", r.0)
    );
    // EOPNOTSUPP: listen on UDP
    let u = socket(libc::AF_INET, libc::SOCK_DGRAM);
    assert_eq!(
        listen(&u, 1).unwrap_err().raw_os_error(),
        Some(libc::EOPNOTSUPP)
    );
    assert!(text(&rec(t, "listen", &u), "explanation").contains("datagram socket"),);
}

#[test]
fn udp_port_in_use_names_the_holder_and_the_reuse_rules() {
    let t = tracer();
    let a = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&a, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = local_port(&a);
    let b = socket(libc::AF_INET, libc::SOCK_DGRAM);
    let err = bind(&b, &sin(Ipv4Addr::UNSPECIFIED, port)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    let r = rec(t, "bind", &b);
    let why = text(&r, "explanation");
    assert!(
        why.starts_with(&format!(
            "0.0.0.0:{port}/udp is held by {}[{}] (UNCONN 127.0.0.1:{port}",
            process_name(),
            std::process::id()
        )),
        "{why}"
    );
    assert!(
        why.contains(
            "the wildcard 0.0.0.0:{port} covers every local address"
                .replace("{port}", &port.to_string())
                .as_str()
        ),
        "{why}"
    );
    assert!(
        why.contains("SO_REUSEADDR on both sockets lets UDP share the port"),
        "{why}"
    );
    assert_eq!(r["holders"][0]["protocol"], "udp");
    assert_eq!(r["holders"][0]["state"], "UNCONN");
}

#[test]
fn unix_bind_failures_name_the_directory() {
    let t = tracer();
    // ENOENT: the directory is missing
    let missing = format!("/tmp/lsn-story-missing-{}/x.sock", std::process::id());
    let s = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    let (sun, len) = sun_path(missing.as_bytes());
    assert_eq!(
        bind_raw(&s, &sun, len).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
    assert_eq!(
        text(&rec(t, "bind", &s), "explanation"),
        "a directory in the socket path does not exist: create it before bind"
    );
    // EACCES: nobody may not create a file in a root-owned 0755 directory
    let dir = format!("/tmp/lsn-story-ro-{}", std::process::id());
    let _ = std::fs::create_dir(&dir);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (py, b) = Py::bind_as_nobody(t, "AF_UNIX", &format!("'{dir}/x.sock'"));
    assert_eq!(py.line, libc::EACCES.to_string());
    let pid = py.pid();
    assert_eq!(
        text(&b, "explanation"),
        format!(
            "{}[{pid}] (uid 65534) may not create {dir}/x.sock: a unix socket's bind creates \
             the file, which needs write and search permission on {dir}",
            py.comm()
        )
    );
    drop(py);
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn udp_listener_verdict() {
    let t = tracer();
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = local_port(&fd);
    let b = rec(t, "bind", &fd);
    assert_eq!(b["verdict"], "loopback");
    assert!(text(&b, "meaning").contains("not reachable from other hosts"));
    let s = text(&b, "summary");
    assert!(s.contains(&format!(" BOUND udp 127.0.0.1:{port}  ")), "{s}");
    assert!(s.contains("UDP: receives datagrams once bound"), "{s}");
    assert!(
        s.ends_with(&format!("Send datagrams to 127.0.0.1:{port}")),
        "{s}"
    );
}

#[test]
fn unix_socket_verdicts() {
    let t = tracer();
    let me = tid();
    let path = format!("/tmp/lsn-story-{}-{me}.sock", std::process::id());
    let _ = std::fs::remove_file(&path);
    let s1 = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    let (sun, len) = sun_path(path.as_bytes());
    bind_raw(&s1, &sun, len).unwrap();
    listen(&s1, 8).unwrap();
    let l = rec(t, "listen", &s1);
    // mode from the umask at bind; nothing changes it afterwards
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(l["verdict"], "unix-path");
    let m = text(&l, "meaning");
    assert!(
        m.contains(&format!(
            "(mode {:04o}, owner {}:{}",
            meta.permissions().mode() & 0o7777,
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::gid(&meta)
        )),
        "{m}"
    );
    assert!(
        text(&l, "summary").starts_with(&format!(
            "{}[{}] LISTEN u_str {path}  a filesystem socket at {path}",
            process_name(),
            std::process::id()
        )),
        "{l:#}"
    );
    // bind over the existing file: EADDRINUSE, explained
    let s2 = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    assert_eq!(
        bind_raw(&s2, &sun, len).unwrap_err().raw_os_error(),
        Some(libc::EADDRINUSE)
    );
    assert!(
        text(&rec(t, "bind", &s2), "explanation").starts_with(&format!(
            "{path} already exists: a unix socket's bind creates"
        )),
    );
    let _ = std::fs::remove_file(&path);
    // abstract (datagram: bound = receiving, so a summary at bind)
    let s3 = socket(libc::AF_UNIX, libc::SOCK_DGRAM);
    let name = format!("\0lsn-story-{me}");
    let (sun, len) = sun_path(name.as_bytes());
    bind_raw(&s3, &sun, len).unwrap();
    let b3 = rec(t, "bind", &s3);
    assert_eq!(b3["verdict"], "unix-abstract");
    assert!(
        text(&b3, "summary").contains(&format!("BOUND u_dgr @lsn-story-{me}")),
        "{b3:#}"
    );
    // autobind
    let s4 = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    let (sun, _) = sun_path(b"");
    bind_raw(&s4, &sun, 2).unwrap();
    assert_eq!(rec(t, "bind", &s4)["verdict"], "unix-autobind");
}

#[test]
fn failures_are_explained_from_the_callers_own_network_namespace() {
    let t = tracer();
    // Here, in lsn-trace's namespace, this test holds 0.0.0.0:P...
    let port = free_port();
    let host = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&host, &sin(Ipv4Addr::UNSPECIFIED, port)).unwrap();
    listen(&host, 1).unwrap();
    // ...and in a fresh namespace a process holds P too, collides with itself, binds an
    // address that exists only out here, and (privileged threshold raised to 2000 there)
    // binds port 1500 as nobody.
    let code = format!(
        "import socket,os,sys\n\
         a=socket.socket(); a.bind(('0.0.0.0',{port})); a.listen(4)\n\
         r=[]\n\
         for addr in [('0.0.0.0',{port}), ('{eth}',0)]:\n  \
           try: socket.socket().bind(addr)\n  \
           except OSError as e: r.append(e.errno)\n\
         open('/proc/sys/net/ipv4/ip_unprivileged_port_start','w').write('2000')\n\
         os.setgid(65534); os.setuid(65534)\n\
         try: socket.socket().bind(('0.0.0.0',1500))\n\
         except OSError as e: r.append(e.errno)\n\
         print(' '.join(map(str,r)),flush=True); sys.stdin.read()",
        eth = host_address()
    );
    // lo up: with no interface up at all, the kernel accepts binds to any IPv4 address.
    let py = Py::spawn(Command::new("unshare").args([
        "-n",
        "sh",
        "-c",
        "ip link set lo up && exec python3 -c \"$0\"",
        &code,
    ]));
    assert_eq!(
        py.line,
        format!(
            "{} {} {}",
            libc::EADDRINUSE,
            libc::EADDRNOTAVAIL,
            libc::EACCES
        )
    );
    let pid = py.pid();
    let binds = t.wait_n(4, Duration::from_secs(20), |v| {
        v["pid"] == pid && v["event"] == "bind"
    });
    let by = |e: &str| binds.iter().find(|b| b["error"] == e).unwrap().clone();
    let inuse = by("EADDRINUSE");
    let holders = inuse["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1, "{inuse:#}");
    assert_eq!(holders[0]["pid"], pid, "the namespace's holder, not ours");
    assert!(
        !text(&inuse, "explanation").contains(&format!("[{}]", std::process::id())),
        "{inuse:#}"
    );
    let na = text(&by("EADDRNOTAVAIL"), "explanation");
    assert!(
        na.contains(&format!(
            "{} is not assigned to any interface in this process's network namespace",
            host_address()
        )),
        "{na}"
    );
    assert!(na.contains("(there: lo: 127.0.0.1/8"), "{na}");
    assert!(
        !na.contains("eth"),
        "only the namespace's own interfaces: {na}"
    );
    let acc = text(&by("EACCES"), "explanation");
    assert!(
        acc.starts_with(
            "port 1500 is privileged in this network namespace \
             (net.ipv4.ip_unprivileged_port_start=2000)"
        ),
        "{acc}"
    );
}

/// An IPv4 address assigned to a non-loopback interface here (fallback: one that is not,
/// which a fresh namespace lacks all the same).
fn host_address() -> String {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("ip (iproute2, installed by cargo xtask setup)");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or("192.0.2.1")
        .to_owned()
}

#[test]
fn an_ipv6_option_on_an_ipv4_socket_is_explained() {
    // Dual-stack code (Python's http.server) sets IPV6_V6ONLY=0 on whatever socket it got
    // and ignores the error; on an AF_INET socket the kernel answers ENOPROTOOPT.
    let t = tracer();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    let err = setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOPROTOOPT));
    // Seen at the syscall layer on every backend (an IPv4 socket never reaches the SOL_IPV6
    // functions: ip_setsockopt refuses other levels first).
    let r = rec(t, "setsockopt", &fd);
    assert_eq!(r["error"], "ENOPROTOOPT");
    assert_eq!(r["family"], "inet");
    assert_eq!(r["option"], "IPV6_V6ONLY");
    assert_eq!(r["value"], 0);
    assert_eq!(
        text(&r, "explanation"),
        format!(
            "IPV6_V6ONLY is an IPv6 option and fd {} is an IPv4 (AF_INET) socket: the kernel \
             refuses it, and the socket stays IPv4-only. Harmless if the program ignores the \
             error (dual-stack code often tries it on every socket); to take IPv6 clients \
             too, it needs an AF_INET6 socket",
            fd.0
        )
    );
}

/// A link-local listener keeps its scope after bind (issue 14): its listen and close say
/// `fe80::1%lo` and scope 1 as its bind does. In a network namespace of its own, where lo
/// (index 1, as in the tracer's) holds fe80::1.
#[test]
fn a_link_local_listener_keeps_its_scope() {
    let t = tracer();
    let code = "import socket,sys\n\
                s=socket.socket(socket.AF_INET6)\n\
                s.bind(('fe80::1',0,0,1)); s.listen(3)\n\
                print(s.getsockname()[1],flush=True)\n\
                sys.stdin.read(); s.close(); print('closed',flush=True)";
    let mut py = Py::spawn(Command::new("unshare").args([
        "-n",
        "sh",
        "-c",
        "ip link set lo up && ip addr add fe80::1/64 dev lo nodad && exec python3 -c \"$0\"",
        code,
    ]));
    let port: u16 = py.line.parse().expect("the listener's port");
    let pid = py.pid();
    // By the socket, not by pid alone: in a guest that ran many test binaries the pid
    // counter wraps, and an earlier process with this pid has events in the trace too.
    let got = |kind: &str, sock: Option<&Value>| {
        t.wait_n(1, Duration::from_secs(20), |v| {
            v["pid"] == pid
                && v["event"] == kind
                && sock.is_none_or(|s| v["sock_id"] == *s)
                && (sock.is_some() || v["addr"] == "fe80::1%lo")
        })
        .pop()
        .unwrap()
    };
    let b = got("bind", None);
    assert_eq!(b["addr"], "fe80::1%lo", "{b:#}");
    assert_eq!(b["scope_id"], 1);
    let l = got("listen", Some(&b["sock_id"]));
    assert_eq!(l["addr"], "fe80::1%lo", "{l:#}");
    assert_eq!(l["scope_id"], 1, "{l:#}");
    assert_eq!(l["port"], port);
    let summary = text(&l, "summary");
    assert!(
        summary.contains(&format!(" [fe80::1%lo]:{port} ")),
        "{summary}"
    );
    drop(py.stdin.take());
    let c = got("close", Some(&l["sock_id"]));
    assert_eq!(c["addr"], "fe80::1%lo", "{c:#}");
    assert_eq!(c["scope_id"], 1, "{c:#}");
    assert_eq!(c["port"], port);
}
