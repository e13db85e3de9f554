//! Filters, decided in the kernel: what a filter drops never reaches lsn-trace's output,
//! and the stop summary counts it as "filtered in kernel" (the in-kernel counter), which is
//! how these tests prove the dropped calls never crossed the ring buffer. Other processes
//! on the host may bind at any time: they can only add to that count, so it is checked as
//! a lower bound, and events are matched by our own pids and ports.
use std::{
    ffi::CStr,
    net::{Ipv4Addr, Ipv6Addr},
    os::unix::fs::MetadataExt,
    time::Duration,
};

use lsn_trace_tests::{Tracer, Value, sock::*, tid};

/// Stop the tracer; the number its summary line says the kernel filtered out.
fn stop_and_count_filtered(t: &Tracer) -> u64 {
    let (status, stderr) = t.terminate();
    assert!(status.success(), "{status:?} {stderr:#?}");
    let line = stderr
        .iter()
        .find(|l| l.contains("lsn-trace: stopped:"))
        .unwrap_or_else(|| panic!("no summary line: {stderr:#?}"));
    // Losses by reason, if any, follow after a `; `.
    let line = line.split("; ").next().unwrap();
    let before = line
        .strip_suffix(" filtered in kernel")
        .unwrap_or_else(|| panic!("summary does not end with the filtered count: {line}"));
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"))
}

/// Fork; the child runs `f` (raw syscalls only: we are a threaded process) and exits with
/// its result, which must be 0. Returns the child's pid.
fn in_child(f: impl FnOnce() -> i32) -> i32 {
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let rc = f();
        unsafe { libc::_exit(rc) };
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {pid} failed: status {status:#x}"
    );
    pid
}

/// In a child: bind a UDP socket to 127.0.0.1:0 (0 on success).
fn child_udp_bind() -> i32 {
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        let sa = sin(Ipv4Addr::LOCALHOST, 0);
        if s < 0 || libc::bind(s, (&sa as *const libc::sockaddr_in).cast(), 16) != 0 {
            return 90;
        }
        libc::close(s);
        0
    }
}

fn binds_of(t: &Tracer, pid: i32) -> Vec<Value> {
    t.seen(|v| v["pid"] == pid && v["event"] == "bind")
}

fn wait_bind_of_pid(t: &Tracer, pid: i32) -> Value {
    t.wait_n(1, Duration::from_secs(20), |v| {
        v["pid"] == pid && v["event"] == "bind"
    })
    .pop()
    .unwrap()
}

#[test]
fn port_filter_ors_its_values_and_drops_the_rest_in_the_kernel() {
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let t = Tracer::start(&["--port", &p1.to_string(), "--port", &p2.to_string()]);
    let me = tid();
    // Dropped first, so that had they been emitted they would precede what we wait for.
    let other = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&other, &sin(Ipv4Addr::LOCALHOST, p3)).unwrap();
    listen(&other, 8).unwrap();
    drop(other); // close of a listener: a third dropped event
    let a = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&a, &sin(Ipv4Addr::LOCALHOST, p1)).unwrap();
    listen(&a, 8).unwrap();
    let b = socket(libc::AF_INET6, libc::SOCK_DGRAM);
    bind(&b, &sin6(Ipv6Addr::LOCALHOST, p2, 0)).unwrap();
    t.events_of(me, "listen", 1);
    let binds = t.events_of(me, "bind", 2);
    assert_eq!(binds[0]["port"], p1);
    assert_eq!(binds[1]["port"], p2);
    let filtered = stop_and_count_filtered(&t);
    let mine = t.seen(|v| v["tid"] == me);
    assert!(
        mine.iter()
            .all(|v| v["port"] == p1 || v["port"] == p2 || v["bound_port"] == p1),
        "an event for another port reached userspace: {mine:#?}"
    );
    assert!(
        mine.iter().all(|v| v["port"] != p3),
        "port {p3} was not filtered: {mine:#?}"
    );
    assert!(
        filtered >= 3,
        "bind+listen+close on {p3} were dropped, but only {filtered} counted"
    );
}

#[test]
fn pid_filter_shows_only_that_process() {
    let mut pipe = [0; 2];
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let child = unsafe { libc::fork() };
    assert!(child >= 0);
    if child == 0 {
        unsafe {
            let mut b = 0u8;
            libc::close(pipe[1]);
            if libc::read(pipe[0], (&mut b as *mut u8).cast(), 1) != 1 {
                libc::_exit(91);
            }
            libc::_exit(child_udp_bind());
        }
    }
    unsafe { libc::close(pipe[0]) };
    let t = Tracer::start(&["--pid", &child.to_string()]);
    // Ours first: must not show.
    let me = tid();
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    unsafe {
        libc::write(pipe[1], b"x".as_ptr().cast(), 1);
        libc::close(pipe[1]);
        let mut status = 0;
        libc::waitpid(child, &mut status, 0);
        assert_eq!(status, 0, "child failed");
    }
    let b = wait_bind_of_pid(&t, child);
    assert_eq!(b["addr"], "127.0.0.1");
    let filtered = stop_and_count_filtered(&t);
    assert!(t.seen(|v| v["tid"] == me).is_empty(), "our bind was shown");
    assert!(filtered >= 1);
}

#[test]
fn comm_filter_matches_the_process_name() {
    let t = Tracer::start(&["--comm", "lsnt-keep", "--comm", "lsnt-also"]);
    let named = |name: &'static CStr| {
        in_child(move || unsafe {
            libc::prctl(libc::PR_SET_NAME, name.as_ptr());
            child_udp_bind()
        })
    };
    let dropped = named(c"lsnt-drop");
    let kept = named(c"lsnt-keep");
    let also = named(c"lsnt-also");
    assert_eq!(wait_bind_of_pid(&t, kept)["comm"], "lsnt-keep");
    assert_eq!(wait_bind_of_pid(&t, also)["comm"], "lsnt-also");
    let filtered = stop_and_count_filtered(&t);
    assert!(binds_of(&t, dropped).is_empty());
    assert!(filtered >= 1);
}

#[test]
fn comm_is_the_process_name_even_when_another_thread_binds() {
    // A daemon's worker thread has its own name (redis's listeners are closed at exit by
    // `jemalloc_bg_thd`): the record and `--comm` still speak of the process.
    let t = Tracer::start(&["--comm", "lsnt-proc"]);
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import ctypes,socket,threading,os\n\
             prctl=ctypes.CDLL(None).prctl\n\
             prctl(15, b'lsnt-proc')\n\
             def work():\n  \
               prctl(15, b'lsnt-worker')\n  \
               s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))\n  \
               print(threading.get_native_id(), flush=True)\n\
             w=threading.Thread(target=work); w.start(); w.join()\n\
             print(os.getpid(), flush=True)",
        ])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<i64> = text.lines().map(|l| l.parse().unwrap()).collect();
    let (worker, pid) = (ids[0], ids[1]);
    assert_ne!(worker, pid);
    let b = wait_bind_of_pid(&t, pid as i32);
    assert_eq!(b["tid"], worker);
    assert_eq!(b["comm"], "lsnt-proc");
}

#[test]
fn uid_filter_by_user_name() {
    let t = Tracer::start(&["--uid", "nobody"]);
    let root = in_child(child_udp_bind);
    let nobody = in_child(|| unsafe {
        if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
            return 92;
        }
        child_udp_bind()
    });
    let b = wait_bind_of_pid(&t, nobody);
    assert_eq!(b["uid"], 65534);
    let filtered = stop_and_count_filtered(&t);
    assert!(binds_of(&t, root).is_empty(), "uid 0's bind was shown");
    assert!(filtered >= 1);
}

#[test]
fn family_filter_uses_the_requested_family() {
    // --pid too: a bind storm elsewhere on the host (inet6 ::1) must not fill the ring.
    let me_pid = std::process::id().to_string();
    let t = Tracer::start(&["--family", "inet6", "--pid", &me_pid]);
    let me = tid();
    let v4 = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&v4, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let v6 = socket(libc::AF_INET6, libc::SOCK_DGRAM);
    bind(&v6, &sin6(Ipv6Addr::LOCALHOST, 0, 0)).unwrap();
    let b = t.events_of(me, "bind", 1);
    assert_eq!(b[0]["family"], "inet6");
    let filtered = stop_and_count_filtered(&t);
    let mine = t.seen(|v| v["tid"] == me);
    assert!(mine.iter().all(|v| v["family"] == "inet6"), "{mine:#?}");
    assert!(filtered >= 1);
}

#[test]
fn proto_filter_and_port_filter_combine_with_and() {
    let port = free_port();
    let other_port = free_port();
    let t = Tracer::start(&["--proto", "tcp", "--port", &port.to_string()]);
    let me = tid();
    let udp = socket(libc::AF_INET, libc::SOCK_DGRAM); // right port, wrong protocol
    bind(&udp, &sin(Ipv4Addr::LOCALHOST, port)).unwrap();
    let tcp_other = socket(libc::AF_INET, libc::SOCK_STREAM); // right protocol, wrong port
    bind(&tcp_other, &sin(Ipv4Addr::LOCALHOST, other_port)).unwrap();
    let tcp = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&tcp, &sin(Ipv4Addr::LOCALHOST, port)).unwrap();
    let b = t.events_of(me, "bind", 1);
    assert_eq!(b[0]["protocol"], "tcp");
    assert_eq!(b[0]["port"], port);
    let filtered = stop_and_count_filtered(&t);
    let mine = t.seen(|v| v["tid"] == me);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert!(filtered >= 2);
}

#[test]
fn failed_filter_shows_only_failures() {
    let me_pid = std::process::id().to_string();
    let t = Tracer::start(&["--failed", "--pid", &me_pid]);
    let me = tid();
    let a = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&a, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = local_port(&a);
    let b = socket(libc::AF_INET, libc::SOCK_STREAM);
    let err = bind(&b, &sin(Ipv4Addr::LOCALHOST, port)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    let ev = t.events_of(me, "bind", 1);
    assert_eq!(ev[0]["error"], "EADDRINUSE");
    assert_eq!(ev[0]["port"], port);
    let filtered = stop_and_count_filtered(&t);
    let mine = t.seen(|v| v["tid"] == me);
    assert_eq!(mine.len(), 1, "only the failure: {mine:#?}");
    assert!(filtered >= 1);
}

#[test]
fn netns_filter_by_namespace_inode() {
    let ours = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    // --comm too: only our children, whatever else binds in this namespace.
    let t = Tracer::start(&["--netns", &ours.to_string(), "--comm", "lsnt-netns"]);
    let elsewhere = in_child(|| unsafe {
        libc::prctl(libc::PR_SET_NAME, c"lsnt-netns".as_ptr());
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return 93;
        }
        // A fresh namespace has lo down, but binding 0.0.0.0 works.
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        let sa = sin(Ipv4Addr::UNSPECIFIED, 0);
        if libc::bind(s, (&sa as *const libc::sockaddr_in).cast(), 16) != 0 {
            return 94;
        }
        0
    });
    let here = in_child(|| unsafe {
        libc::prctl(libc::PR_SET_NAME, c"lsnt-netns".as_ptr());
        child_udp_bind()
    });
    let b = wait_bind_of_pid(&t, here);
    assert_eq!(b["netns"], ours);
    let filtered = stop_and_count_filtered(&t);
    assert!(binds_of(&t, elsewhere).is_empty(), "other namespace shown");
    assert!(filtered >= 1);
}

#[test]
fn relative_timestamps_add_rel_and_keep_time() {
    let t = Tracer::start(&["-t", "--pid", &std::process::id().to_string()]);
    let me = tid();
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let b = t.events_of(me, "bind", 1).pop().unwrap();
    let rel = b["rel"].as_f64().expect("rel is a number");
    assert!((0.0..60.0).contains(&rel), "rel {rel}");
    assert!(b["time"].as_str().is_some_and(|s| s.ends_with('Z')));
}

#[test]
fn bad_filter_values_are_rejected_clearly() {
    for (args, needle) in [
        (&["--port", "0"][..], "1 to 65535"),
        (&["--proto", "quic"][..], "tcp"),
        (&["--family", "appletalk"][..], "inet6"),
    ] {
        let out = std::process::Command::new(lsn_trace_tests::bin())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = std::process::Command::new(lsn_trace_tests::bin())
        .args(["--uid", "no-such-user-here"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no user `no-such-user-here`"), "{err}");
}

/// bind(AF_UNSPEC, INADDR_ANY, port) on an AF_INET socket: the kernel binds it as AF_INET
/// (inet_bind's compatibility rule), so it is reported as inet with its port, and `--port`
/// finds it.
#[test]
fn an_af_unspec_bind_on_an_inet_socket_is_inet_and_found_by_port() {
    let port = free_port();
    let t = Tracer::start(&["--port", &port.to_string()]);
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    let mut sa = sin(Ipv4Addr::UNSPECIFIED, port);
    sa.sin_family = libc::AF_UNSPEC as libc::sa_family_t;
    bind(&fd, &sa).unwrap();
    assert_eq!(local_port(&fd), port, "the kernel bound it as AF_INET");
    let b = t.events_of(tid(), "bind", 1).pop().unwrap();
    assert_eq!(b["family"], "inet");
    assert_eq!(b["addr"], "0.0.0.0");
    assert_eq!(b["port"], port);
    assert_eq!(b["bound_port"], port);
    assert_eq!(b["errno"], Value::Null);
    assert_eq!(b["addrlen"], Value::Null, "decoded: no raw length");
    let (status, _) = t.terminate();
    assert!(status.success());
}

#[test]
fn a_netns_that_does_not_exist_is_a_clear_error() {
    let out = std::process::Command::new(lsn_trace_tests::bin())
        .args(["--netns", "12345", "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--netns 12345: no network namespace with inode 12345 exists"),
        "{err}"
    );
    let ours = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    assert!(
        err.contains(&ours.to_string()),
        "lists those that exist: {err}"
    );
    assert!(!err.contains("attached"), "nothing traced: {err}");
}

/// `--pid` of no process, or of a thread (events carry the process id), would trace
/// nothing: refused with what to give instead, before anything is loaded.
#[test]
fn a_pid_that_is_no_process_is_a_clear_error() {
    let run = |pid: &str| {
        let out = std::process::Command::new(lsn_trace_tests::bin())
            .args(["--pid", pid, "--json"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(!err.contains("attached"), "nothing traced: {err}");
        err
    };
    // Above the kernel's pid ceiling (PID_MAX_LIMIT, 2^22): never a process.
    let err = run("99999999");
    assert!(
        err.contains("--pid 99999999: no such process") && err.contains("lsn-trace -- CMD"),
        "{err}"
    );
    assert!(run("0").contains("--pid 0: not a process"));
    // A thread of this test process (the harness runs tests on threads of their own).
    let me = std::process::id();
    let (tid, err) = std::thread::scope(|s| {
        s.spawn(|| {
            let tid = unsafe { libc::gettid() } as u32;
            (tid, run(&tid.to_string()))
        })
        .join()
        .unwrap()
    });
    assert_ne!(tid, me);
    assert!(
        err.contains(&format!(
            "--pid {tid}: that is a thread of process {me}, and events carry the process id: \
             give --pid {me}"
        )),
        "{err}"
    );
}

/// The `sudo …` line suggested to a user without privileges, pasted into sh, runs exactly
/// the command line that was refused: each argument survives, spaces and quotes included.
#[test]
fn the_suggested_sudo_line_reads_back_as_the_same_arguments() {
    use std::os::unix::process::CommandExt;
    let args = ["--", "sh", "-c", "echo a b; echo 'it''s' \"$HOME\" `x` \\"];
    let out = std::process::Command::new(lsn_trace_tests::bin())
        .args(args)
        .uid(65534)
        .gid(65534)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("Run it as root:"))
        .unwrap_or_else(|| panic!("no sudo line: {err}"))
        .trim();
    assert!(line.starts_with("sudo "), "{line}");
    // `sudo` as a shell function printing each argument it gets, NUL-terminated.
    let script = format!("sudo() {{ for a in \"$@\"; do printf '%s\\0' \"$a\"; done; }}\n{line}\n");
    let sh = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(sh.status.success(), "{sh:?}");
    let got: Vec<String> = String::from_utf8(sh.stdout)
        .unwrap()
        .split_terminator('\0')
        .map(str::to_owned)
        .collect();
    let mut want = vec![lsn_trace_tests::bin().to_str().unwrap().to_owned()];
    want.extend(args.iter().map(|a| a.to_string()));
    assert_eq!(got, want, "pasted: {line}");
}
