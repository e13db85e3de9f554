//! The core event stream, end to end: real sockets, the real binary, exact JSON.
use std::net::{Ipv4Addr, Ipv6Addr};

use lsn_trace_tests::{Tracer, Value, read_sysctl, sock::*, tid};

fn last_bind(t: &Tracer, tid: i32) -> Value {
    t.events_of(tid, "bind", 1).pop().unwrap()
}

#[test]
fn ipv4_tcp_bind_and_listen_on_loopback() {
    let t = Tracer::shared();
    let port = free_port();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, port)).unwrap();
    listen(&fd, 64).unwrap();
    let me = tid();
    let b = last_bind(t, me);
    assert_eq!(b["pid"], std::process::id());
    assert_eq!(b["fd"], t.fd_json(fd.0));
    assert_eq!(
        b["inode"],
        inode(&fd),
        "the socket's st_ino, on every backend"
    );
    assert_eq!(b["source"], "syscall");
    assert_eq!(b["family"], "inet");
    assert_eq!(b["protocol"], "tcp");
    assert_eq!(b["type"], "stream");
    assert_eq!(b["addr"], "127.0.0.1");
    assert_eq!(b["port"], port);
    assert_eq!(b["bound_addr"], "127.0.0.1");
    assert_eq!(b["bound_port"], port);
    assert_eq!(b["errno"], Value::Null);
    assert_eq!(b["error"], Value::Null);
    assert_eq!(
        b["v6only"],
        Value::Null,
        "v6only is only meaningful for inet6"
    );
    assert_eq!(b["reuseaddr"], false);
    assert_eq!(b["reuseport"], false);
    assert!(b["comm"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(b["netns"].as_u64().is_some_and(|n| n > 0));
    let l = t.events_of(me, "listen", 1).pop().unwrap();
    assert_eq!(l["fd"], t.fd_json(fd.0));
    assert_eq!(l["inode"], inode(&fd));
    assert_eq!(l["source"], "syscall");
    assert_eq!(l["backlog"], 64);
    assert_eq!(l["backlog_effective"], 64);
    assert_eq!(l["addr"], "127.0.0.1");
    assert_eq!(l["bound_port"], port);
    assert_eq!(l["errno"], Value::Null);
    assert_eq!(
        l["sock_id"], b["sock_id"],
        "bind and listen are on the same socket"
    );
}

fn v6_any(v6only: Option<i32>) -> (Value, Option<Value>, u16) {
    let t = Tracer::shared();
    let fd = socket(libc::AF_INET6, libc::SOCK_STREAM);
    if let Some(v) = v6only {
        setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, v).unwrap();
    }
    let port = free_port();
    bind(&fd, &sin6(Ipv6Addr::UNSPECIFIED, port, 0)).unwrap();
    let me = tid();
    let b = last_bind(t, me);
    let opt = v6only.map(|_| t.events_of(me, "setsockopt", 1).pop().unwrap());
    (b, opt, port)
}

#[test]
fn ipv6_any_v6only_explicitly_0() {
    let (b, opt, port) = v6_any(Some(0));
    let opt = opt.unwrap();
    assert_eq!(opt["level"], "SOL_IPV6");
    assert_eq!(opt["option"], "IPV6_V6ONLY");
    assert_eq!(opt["value"], 0);
    assert_eq!(opt["errno"], Value::Null);
    assert_eq!(b["family"], "inet6");
    assert_eq!(b["addr"], "::");
    assert_eq!(b["port"], port);
    assert_eq!(b["v6only"], false);
}

#[test]
fn ipv6_any_v6only_explicitly_1() {
    let (b, opt, _) = v6_any(Some(1));
    assert_eq!(opt.unwrap()["value"], 1);
    assert_eq!(b["v6only"], true);
}

#[test]
fn ipv6_any_v6only_from_sysctl_default() {
    let (b, _, _) = v6_any(None);
    let default = read_sysctl("net/ipv6/bindv6only") != 0;
    assert_eq!(b["v6only"], default);
}

/// A socket on a descriptor far past the 64 slots a task's table starts with (daemons
/// holding many files: the table is then a separate array): the tracepoint backend walks
/// `fdt->fd[fd]` to it, and every field must come out as for a low one.
#[test]
fn a_socket_on_a_high_descriptor() {
    let t = Tracer::shared();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }).unwrap();
    let at_least = (lim.rlim_cur.min(4096) as i32 - 16).max(64);
    let low = socket(libc::AF_INET6, libc::SOCK_STREAM);
    let fd = Fd(check(unsafe { libc::fcntl(low.0, libc::F_DUPFD_CLOEXEC, at_least) }).unwrap());
    drop(low);
    assert!(fd.0 >= 64, "fd {}", fd.0);
    setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1).unwrap();
    setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
    let port = free_port();
    bind(&fd, &sin6(Ipv6Addr::LOCALHOST, port, 0)).unwrap();
    listen(&fd, 9).unwrap();
    let me = tid();
    let b = last_bind(t, me);
    assert_eq!(b["fd"], t.fd_json(fd.0));
    assert_eq!(b["inode"], inode(&fd));
    assert_eq!(b["family"], "inet6");
    assert_eq!(b["protocol"], "tcp");
    assert_eq!(b["addr"], "::1");
    assert_eq!(b["bound_addr"], "::1");
    assert_eq!(b["bound_port"], port);
    assert_eq!(b["v6only"], true);
    assert_eq!(b["reuseaddr"], true);
    let opts = t.events_of(me, "setsockopt", 2);
    assert_eq!(opts[0]["option"], "IPV6_V6ONLY");
    assert_eq!(opts[1]["option"], "SO_REUSEADDR");
    assert_eq!(
        opts[1]["reuseaddr"], true,
        "the socket's state after the call"
    );
    for o in &opts {
        assert_eq!(o["fd"], t.fd_json(fd.0));
        assert_eq!(o["sock_id"], b["sock_id"]);
        assert_eq!(o["inode"], inode(&fd));
    }
    let l = t.events_of(me, "listen", 1).pop().unwrap();
    assert_eq!(l["sock_id"], b["sock_id"]);
    assert_eq!(l["backlog"], 9);
    assert_eq!(l["bound_port"], port);
}

#[test]
fn port_zero_reports_the_port_the_kernel_picked() {
    let t = Tracer::shared();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let b = last_bind(t, tid());
    assert_eq!(b["port"], 0);
    let picked = local_port(&fd);
    assert_ne!(picked, 0);
    assert_eq!(b["bound_port"], picked);
}

#[test]
fn eaddrinuse_keeps_the_requested_address() {
    let t = Tracer::shared();
    let holder = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&holder, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&holder, 1).unwrap();
    let port = local_port(&holder);
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    let err = bind(&fd, &sin(Ipv4Addr::LOCALHOST, port)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    let binds = t.events_of(tid(), "bind", 2);
    let b = &binds[1]; // this thread's second bind
    assert_eq!(b["fd"], t.fd_json(fd.0));
    assert_eq!(b["errno"], libc::EADDRINUSE);
    assert_eq!(b["error"], "EADDRINUSE");
    assert_eq!(b["addr"], "127.0.0.1");
    assert_eq!(b["port"], port);
    assert_eq!(b["bound_port"], 0, "nothing was bound");
}

#[test]
fn eaddrnotavail_for_an_address_not_on_this_host() {
    let t = Tracer::shared();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    let err = bind(&fd, &sin(Ipv4Addr::new(192, 0, 2, 1), 8080)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL));
    let b = last_bind(t, tid());
    assert_eq!(b["errno"], libc::EADDRNOTAVAIL);
    assert_eq!(b["error"], "EADDRNOTAVAIL");
    assert_eq!(b["addr"], "192.0.2.1");
    assert_eq!(b["port"], 8080);
}

#[test]
fn udp_bind() {
    let t = Tracer::shared();
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let b = last_bind(t, tid());
    assert_eq!(b["protocol"], "udp");
    assert_eq!(b["type"], "dgram");
    assert_eq!(b["bound_port"], local_port(&fd));
}

#[test]
fn unix_pathname_abstract_and_autobind() {
    let t = Tracer::shared();
    let me = tid();
    let path = format!("/tmp/lsn-trace-test-{}-{me}.sock", std::process::id());
    let _ = std::fs::remove_file(&path);
    let fd1 = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    let (sun, len) = sun_path(path.as_bytes());
    bind_raw(&fd1, &sun, len).unwrap();
    let fd2 = socket(libc::AF_UNIX, libc::SOCK_DGRAM);
    let name = format!("\0lsn-trace-test-{me}");
    let (sun, len) = sun_path(name.as_bytes());
    bind_raw(&fd2, &sun, len).unwrap();
    let fd3 = socket(libc::AF_UNIX, libc::SOCK_SEQPACKET);
    let (sun, _) = sun_path(b"");
    bind_raw(&fd3, &sun, 2).unwrap();
    let binds = t.events_of(me, "bind", 3);
    let _ = std::fs::remove_file(&path);
    let (b1, b2, b3) = (&binds[0], &binds[1], &binds[2]);
    for (b, fd) in [(b1, &fd1), (b2, &fd2), (b3, &fd3)] {
        assert_eq!(b["fd"], t.fd_json(fd.0));
    }
    assert_eq!(b1["family"], "unix");
    assert_eq!(b1["addr"], path);
    assert_eq!(b1["protocol"], "u_str");
    assert_eq!(b1["port"], Value::Null);
    assert_eq!(b2["addr"], format!("@lsn-trace-test-{me}"));
    assert_eq!(b2["protocol"], "u_dgr");
    assert_eq!(b3["addr"], "@(autobind)");
    assert_eq!(b3["protocol"], "u_seq");
    for b in [b1, b2, b3] {
        assert_eq!(b["errno"], Value::Null);
    }
}

#[test]
fn reuseaddr_and_reuseport() {
    let t = Tracer::shared();
    let me = tid();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
    setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1).unwrap();
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let opts = t.events_of(me, "setsockopt", 2);
    assert_eq!(opts[0]["level"], "SOL_SOCKET");
    assert_eq!(opts[0]["option"], "SO_REUSEADDR");
    assert_eq!(opts[0]["value"], 1);
    assert_eq!(opts[1]["option"], "SO_REUSEPORT");
    assert_eq!(opts[1]["value"], 1);
    let b = last_bind(t, me);
    assert_eq!(b["reuseaddr"], true);
    assert_eq!(b["reuseport"], true);
    // the option is reported even when it is set back to 0
    let fd2 = socket(libc::AF_INET, libc::SOCK_STREAM);
    setsockopt_int(&fd2, libc::SOL_SOCKET, libc::SO_REUSEADDR, 0).unwrap();
    let opts = t.events_of(me, "setsockopt", 3);
    assert_eq!(opts[2]["value"], 0);
    assert_eq!(opts[2]["fd"], t.fd_json(fd2.0));
}

#[test]
fn ipv4_mapped_ipv6_address() {
    let t = Tracer::shared();
    let fd = socket(libc::AF_INET6, libc::SOCK_STREAM);
    setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0).unwrap();
    let mapped: Ipv6Addr = "::ffff:127.0.0.1".parse().unwrap();
    bind(&fd, &sin6(mapped, 0, 0)).unwrap();
    let b = last_bind(t, tid());
    assert_eq!(b["family"], "inet6");
    assert_eq!(b["addr"], "::ffff:127.0.0.1");
    assert_eq!(b["bound_port"], local_port(&fd));
    assert_eq!(b["errno"], Value::Null);
}

#[test]
fn bad_sockaddr_pointer_is_efault_not_a_crash() {
    let t = Tracer::shared();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    let rc = unsafe { libc::bind(fd.0, 0x10 as *const libc::sockaddr, 16) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EFAULT)
    );
    let b = last_bind(t, tid());
    assert_eq!(b["errno"], libc::EFAULT);
    assert_eq!(b["error"], "EFAULT");
    assert_eq!(b["addr"], Value::Null);
    assert_eq!(b["addrlen"], 16);
    assert_eq!(b["fd"], fd.0);
}

#[test]
fn listen_without_bind_gets_an_ephemeral_port() {
    let t = Tracer::shared();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    listen(&fd, 5).unwrap();
    let l = t.events_of(tid(), "listen", 1).pop().unwrap();
    let port = local_port(&fd);
    assert_ne!(port, 0);
    assert_eq!(l["bound_port"], port);
    assert_eq!(l["addr"], "0.0.0.0");
}

#[test]
fn backlog_above_somaxconn_is_clamped() {
    let t = Tracer::shared();
    let somaxconn = read_sysctl("net/core/somaxconn");
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let asked = (somaxconn + 1000) as i32;
    listen(&fd, asked).unwrap();
    let l = t.events_of(tid(), "listen", 1).pop().unwrap();
    assert_eq!(l["backlog"], asked);
    assert_eq!(l["backlog_effective"], somaxconn);
}

#[test]
fn a_listener_closing_is_reported() {
    let t = Tracer::shared();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&fd, 5).unwrap();
    let port = local_port(&fd);
    let id = t.events_of(tid(), "listen", 1).pop().unwrap()["sock_id"].clone();
    let ino = inode(&fd);
    drop(fd);
    let c = t.events_of(tid(), "close", 1).pop().unwrap();
    assert_eq!(c["sock_id"], id);
    assert_eq!(
        c["inode"], ino,
        "the listener leaves LISTEN before its file is freed"
    );
    assert_eq!(c["port"], port);
    assert_eq!(c["fd"], Value::Null);
    assert_eq!(c["source"], "kernel");
}

/// listen() failing in get_port (EADDRINUSE: another socket listens on the port both bound
/// with SO_REUSEADDR) moves the socket CLOSE → LISTEN → CLOSE inside the call: it never
/// listened, so no close is reported — only the failed listen.
#[test]
fn a_failed_listen_reports_no_close() {
    let t = Tracer::shared();
    let (holder, loser) = failed_listen();
    let port = local_port(&holder);
    let me = tid();
    let loser_ino = inode(&loser);
    let listens = t.events_of(me, "listen", 2);
    let failed = listens.iter().find(|v| v["inode"] == loser_ino).unwrap();
    assert_eq!(failed["error"], "EADDRINUSE");
    assert_eq!(failed["backlog"], 5);
    // The holder's close, made after, is reported: by then the loser's would have been.
    let holder_ino = inode(&holder);
    drop(holder);
    let closes = t.wait_n(1, std::time::Duration::from_secs(20), |v| {
        v["tid"] == me && v["event"] == "close" && v["inode"] == holder_ino
    });
    assert_eq!(closes[0]["port"], port);
    drop(loser);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ghost = t.seen(|v| v["event"] == "close" && v["inode"] == loser_ino);
    assert!(
        ghost.is_empty(),
        "a close of a socket that never listened: {ghost:#?}"
    );
}

#[test]
fn freebind_allows_a_non_local_address() {
    let t = Tracer::shared();
    let me = tid();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    setsockopt_int(&fd, libc::IPPROTO_IP, libc::IP_FREEBIND, 1).unwrap();
    bind(&fd, &sin(Ipv4Addr::new(192, 0, 2, 1), 0)).unwrap();
    let opt = t.events_of(me, "setsockopt", 1).pop().unwrap();
    assert_eq!(opt["level"], "SOL_IP");
    assert_eq!(opt["option"], "IP_FREEBIND");
    assert_eq!(opt["value"], 1);
    let b = last_bind(t, me);
    assert_eq!(b["errno"], Value::Null);
    assert_eq!(b["addr"], "192.0.2.1");
    assert_eq!(b["bound_addr"], "192.0.2.1");
    assert_eq!(b["freebind"], true);
    assert_eq!(b["transparent"], false);
}

#[test]
fn bindtodevice_names_the_interface() {
    let t = Tracer::shared();
    let me = tid();
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
    let name = b"lo\0";
    check(unsafe {
        libc::setsockopt(
            fd.0,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            3,
        )
    })
    .unwrap();
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let opt = t.events_of(me, "setsockopt", 1).pop().unwrap();
    assert_eq!(opt["option"], "SO_BINDTODEVICE");
    assert_eq!(opt["value"], "lo");
    let b = last_bind(t, me);
    assert_eq!(b["bound_dev_if"], 1);
    assert_eq!(b["device"], "lo");
}

/// An interface index means something only in its network namespace: a socket bound to
/// device 1 in a namespace whose loopback is named `lsnlo0` is named by that namespace's
/// interface, not by the agent's `lo` (the agent's index 1).
#[test]
fn bindtodevice_in_another_namespace_is_named_by_that_namespace() {
    let t = Tracer::shared();
    let ns = format!("lsnt-if-{}", std::process::id());
    let ip = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    ip(&["netns", "add", &ns]);
    ip(&[
        "netns", "exec", &ns, "ip", "link", "set", "lo", "name", "lsnlo0",
    ]);
    // The process, and so its namespace, lives until its bind is reported: an agent
    // behind a loaded machine reads the names of a namespace still there (one gone gives
    // numbers, by design).
    let script = "import os, socket, sys\n\
                  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'lsnlo0')\n\
                  s.bind(('0.0.0.0', 0))\n\
                  print(os.getpid(), flush=True)\n\
                  sys.stdin.read()\n";
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let pid: i32 = line.trim().parse().expect("the child's pid");
    // `ip netns exec` binds netlink sockets before it execs python3 (same pid).
    let b = t
        .wait_n(1, std::time::Duration::from_secs(20), |v| {
            v["tid"] == pid && v["event"] == "bind" && v["family"] == "inet"
        })
        .pop();
    drop(child.stdin.take());
    let st = child.wait().unwrap();
    ip(&["netns", "del", &ns]);
    assert!(st.success(), "{st:?}");
    let b = b.expect("the inet bind");
    assert_eq!(b["errno"], Value::Null, "{b}");
    assert_eq!(b["bound_dev_if"], 1, "{b}");
    assert_eq!(b["device"], "lsnlo0", "{b}");
    let meaning = b["meaning"].as_str().unwrap();
    assert!(meaning.contains("only on interface lsnlo0"), "{meaning}");
    let opt = t.events_of(pid, "setsockopt", 1).pop().unwrap();
    assert_eq!(opt["value"], "lsnlo0", "{opt}");
}

#[test]
fn ipv6_link_local_with_scope() {
    let t = Tracer::shared();
    let fd = socket(libc::AF_INET6, libc::SOCK_DGRAM);
    // fe80::1%lo is not assigned, so the kernel refuses it — the request is still reported.
    let ll: Ipv6Addr = "fe80::1".parse().unwrap();
    let err = bind(&fd, &sin6(ll, 5353, 1)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL));
    let b = last_bind(t, tid());
    assert_eq!(b["addr"], "fe80::1%lo");
    assert_eq!(b["scope_id"], 1);
    assert_eq!(b["port"], 5353);
    assert_eq!(b["error"], "EADDRNOTAVAIL");
}

#[test]
fn unix_listeners_report_their_own_address() {
    let t = Tracer::shared();
    let me = tid();
    let path = format!("/tmp/lsn-trace-listen-{}-{me}.sock", std::process::id());
    let _ = std::fs::remove_file(&path);
    let named = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    let (sun, len) = sun_path(path.as_bytes());
    bind_raw(&named, &sun, len).unwrap();
    listen(&named, 8).unwrap();
    // bind() with only the family autobinds: the kernel picks an abstract name, which
    // only the socket itself knows afterwards
    let auto = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    let (sun, _) = sun_path(b"");
    bind_raw(&auto, &sun, 2).unwrap();
    listen(&auto, 8).unwrap();
    let listens = t.events_of(me, "listen", 2);
    let _ = std::fs::remove_file(&path);
    // this thread's listens, in order
    let (named_l, auto_l) = (&listens[0], &listens[1]);
    assert_eq!(named_l["fd"], t.fd_json(named.0));
    assert_eq!(auto_l["fd"], t.fd_json(auto.0));
    let by_fd = |fd: &Fd| {
        if fd.0 == named.0 {
            named_l.clone()
        } else {
            auto_l.clone()
        }
    };
    assert_eq!(by_fd(&named)["addr"], path);
    assert_eq!(by_fd(&named)["protocol"], "u_str");
    // the kernel's autobind name: five hex digits in the abstract namespace
    let mut ss: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut sl = std::mem::size_of_val(&ss) as u32;
    check(unsafe {
        libc::getsockname(auto.0, (&mut ss as *mut libc::sockaddr_un).cast(), &mut sl)
    })
    .unwrap();
    let name: String = ss.sun_path[1..sl as usize - 2]
        .iter()
        .map(|&c| c as u8 as char)
        .collect();
    assert_eq!(name.len(), 5, "{name:?}");
    assert_eq!(by_fd(&auto)["addr"], format!("@{name}"));
}

/// An MPTCP listener (Go 1.24+'s default) is one socket with one story: its backlog as
/// asked and as applied (held by its TCP subflow), and one close — the subflow never shows
/// as a second socket.
fn mptcp_listener(family: i32) {
    const IPPROTO_MPTCP: i32 = 262;
    let t = Tracer::shared();
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            IPPROTO_MPTCP,
        )
    };
    assert!(
        raw >= 0,
        "MPTCP socket: {}",
        std::io::Error::last_os_error()
    );
    let fd = Fd(raw);
    let (addr, family_name) = if family == libc::AF_INET {
        bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
        ("127.0.0.1", "inet")
    } else {
        bind(&fd, &sin6(Ipv6Addr::LOCALHOST, 0, 0)).unwrap();
        ("::1", "inet6")
    };
    listen(&fd, 11).unwrap();
    let port = local_port(&fd);
    let ino = inode(&fd);
    let me = tid();
    let l = t
        .events_of(me, "listen", 1)
        .into_iter()
        .find(|v| v["inode"] == ino)
        .unwrap();
    assert_eq!(l["protocol"], "mptcp");
    assert_eq!(l["family"], family_name);
    assert_eq!(l["addr"], addr);
    assert_eq!(l["bound_port"], port);
    assert_eq!(l["backlog"], 11);
    assert_eq!(
        l["backlog_effective"], 11,
        "the subflow's sk_max_ack_backlog"
    );
    drop(fd);
    let c = t.wait_n(1, std::time::Duration::from_secs(20), |v| {
        v["event"] == "close" && v["inode"] == ino
    });
    assert_eq!(c[0]["sock_id"], l["sock_id"]);
    assert_eq!(c[0]["protocol"], "mptcp");
    assert_eq!(c[0]["port"], port);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let of_it = t.seen(|v| v["inode"] == ino);
    let ids: std::collections::HashSet<String> =
        of_it.iter().map(|v| v["sock_id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "one socket, one sock_id: {of_it:#?}");
    let closes = of_it.iter().filter(|v| v["event"] == "close").count();
    assert_eq!(closes, 1, "{of_it:#?}");
}

#[test]
fn mptcp_ipv4_listener_is_one_socket() {
    mptcp_listener(libc::AF_INET);
}

#[test]
fn mptcp_ipv6_listener_is_one_socket() {
    mptcp_listener(libc::AF_INET6);
}

/// addrlen is an int: -1 (refused with EINVAL before any protocol runs) prints as -1.
#[test]
fn a_negative_addrlen_prints_as_passed() {
    let t = Tracer::shared();
    if t.hooks_kernel_functions() {
        return; // refused before the kernel functions run: the socket-layer hooks' part
    }
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    let sa = sin(Ipv4Addr::LOCALHOST, 0);
    let rc = unsafe { libc::bind(fd.0, (&sa as *const libc::sockaddr_in).cast(), u32::MAX) };
    assert_eq!(rc, -1);
    let b = last_bind(t, tid());
    assert_eq!(b["error"], "EINVAL");
    assert_eq!(b["addrlen"], -1);
}

/// SO_BINDTOIFINDEX (systemd's BindToDevice=) is a listener option, its index reported.
#[test]
fn bindtoifindex_is_a_listener_option() {
    const SO_BINDTOIFINDEX: i32 = 62;
    let t = Tracer::shared();
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    setsockopt_int(&fd, libc::SOL_SOCKET, SO_BINDTOIFINDEX, 1).unwrap();
    let o = t.events_of(tid(), "setsockopt", 1).pop().unwrap();
    assert_eq!(o["level"], "SOL_SOCKET");
    assert_eq!(o["option"], "SO_BINDTOIFINDEX");
    assert_eq!(o["value"], 1);
    assert_eq!(o["bound_dev_if"], 1, "lo");
}
