//! The paths users hit that no protocol function of TCP/UDP sees: calls refused before the
//! protocol runs (seccomp, Landlock, addrlen out of range), MPTCP and SCTP listeners, and
//! 32-bit callers — on every backend the kernel allows (the VM matrix runs this file on
//! fentry, kprobe and tracepoint on 6.1 and 6.12; the host on tracepoint).
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    process::Command,
    time::Duration,
};

use lsn_trace_tests::{Tracer, Value, sock::*, tid};

fn tracer() -> &'static Tracer {
    Tracer::shared()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut it = r.trim().split(['.', '-']).map(|p| p.parse().unwrap_or(0));
    (it.next().unwrap(), it.next().unwrap())
}

/// Run `f` in a thread of its own (seccomp filters and Landlock domains are per thread: the
/// harness's other threads stay unrestricted); returns its result and its tid.
fn in_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> (R, i32) {
    std::thread::spawn(move || (f(), tid())).join().unwrap()
}

/// The one event of thread `tid` of kind `event` (waits for it; fails on a second).
fn only_event(t: &Tracer, tid: i32, event: &str) -> Value {
    let mut evs = t.events_of(tid, event, 1);
    std::thread::sleep(Duration::from_millis(300));
    let all = t.seen(|v| v["tid"] == tid && v["event"] == event);
    assert_eq!(all.len(), 1, "one {event} of thread {tid}: {all:#?}");
    evs.remove(0)
}

/// A classic-BPF seccomp filter on this thread: syscall `nr` fails with `err`, every other
/// one is allowed.
fn seccomp_refuse(nr: i64, err: i32) {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let filter = [
        stmt(ld, 4), // seccomp_data.arch
        jeq(AUDIT_ARCH_X86_64, 1, 0),
        stmt(ret, RET_ALLOW),
        stmt(ld, 0), // seccomp_data.nr
        jeq(nr as u32, 0, 1),
        stmt(ret, RET_ERRNO | err as u32),
        stmt(ret, RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: prctl with a filter that outlives the call (the kernel copies it).
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    assert_eq!(rc, 0, "PR_SET_SECCOMP: errno {}", errno());
}

/// A bind a seccomp filter refuses with `err`: the syscall never runs, and still it is
/// reported, with its address, its fd and the filter's errno.
fn seccomp_refused_bind(err: i32, name: &str) {
    let t = tracer();
    let port = free_port();
    let ((rc, e, fd), me) = in_thread(move || {
        let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
        seccomp_refuse(libc::SYS_bind, err);
        let rc = bind(&fd, &sin(Ipv4Addr::LOCALHOST, port));
        let e = rc.as_ref().err().and_then(|e| e.raw_os_error());
        let n = fd.0;
        std::mem::forget(fd);
        (rc.is_ok(), e, n)
    });
    let _fd = Fd(fd);
    assert!(!rc);
    assert_eq!(e, Some(err));
    let b = only_event(t, me, "bind");
    assert_eq!(b["errno"], err, "{b:#}");
    assert_eq!(b["error"], name);
    assert_eq!(b["source"], "syscall");
    assert_eq!(b["fd"], fd);
    assert_eq!(b["family"], "inet");
    assert_eq!(b["protocol"], "tcp");
    assert_eq!(b["addr"], "127.0.0.1");
    assert_eq!(b["port"], port);
    assert_eq!(b["bound_port"], 0, "the socket stayed unbound: {b:#}");
}

#[test]
fn seccomp_refused_bind_eacces() {
    seccomp_refused_bind(libc::EACCES, "EACCES");
}

#[test]
fn seccomp_refused_bind_eperm() {
    seccomp_refused_bind(libc::EPERM, "EPERM");
}

/// Landlock's LANDLOCK_ACCESS_NET_BIND_TCP (6.7+): an LSM refusing the bind in
/// security_socket_bind, before the protocol's bind runs.
#[test]
fn landlock_refused_bind() {
    if kernel_version() < (6, 7) {
        eprintln!("skipped: Landlock has no network rules before 6.7");
        return;
    }
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    const LANDLOCK_ACCESS_NET_BIND_TCP: u64 = 1;
    // SAFETY: the version query takes no attribute.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    assert!(
        abi >= 4,
        "Landlock ABI {abi} (errno {}): this kernel needs `landlock` in its lsm= list \
         (/sys/kernel/security/lsm) for this test",
        errno()
    );
    let t = tracer();
    let port = free_port();
    let ((e, fd), me) = in_thread(move || {
        let fd = socket(libc::AF_INET6, libc::SOCK_STREAM);
        // struct landlock_ruleset_attr { u64 handled_access_fs, handled_access_net; }
        let attr: [u64; 2] = [0, LANDLOCK_ACCESS_NET_BIND_TCP];
        // SAFETY: attr outlives the call; its size is passed.
        let ruleset =
            unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, attr.as_ptr(), 16, 0) };
        assert!(ruleset >= 0, "landlock_create_ruleset: errno {}", errno());
        // SAFETY: plain prctl/syscalls on this thread.
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            assert_eq!(
                libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0),
                0,
                "landlock_restrict_self: errno {}",
                errno()
            );
            libc::close(ruleset as i32);
        }
        let e = bind(&fd, &sin6(Ipv6Addr::LOCALHOST, port, 0))
            .err()
            .and_then(|e| e.raw_os_error());
        let n = fd.0;
        std::mem::forget(fd);
        (e, n)
    });
    let _fd = Fd(fd);
    assert_eq!(e, Some(libc::EACCES));
    let b = only_event(t, me, "bind");
    assert_eq!(b["errno"], libc::EACCES, "{b:#}");
    assert_eq!(b["error"], "EACCES");
    assert_eq!(b["source"], "syscall");
    assert_eq!(b["fd"], fd);
    assert_eq!(b["family"], "inet6");
    assert_eq!(b["addr"], "::1");
    assert_eq!(b["port"], port);
    assert_eq!(b["bound_port"], 0);
}

/// addrlen out of range fails in the socket layer (move_addr_to_kernel: below 0 or above
/// sizeof(struct sockaddr_storage)); 0 passes there and the protocol refuses it.
#[test]
fn addrlen_out_of_range() {
    let t = tracer();
    let me = tid();
    // 129 bytes of memory that hold an AF_INET sockaddr: only the length is wrong.
    let mut buf = [0u8; 160];
    let sa = sin(Ipv4Addr::LOCALHOST, 0);
    // SAFETY: a sockaddr_in copied into a larger byte buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&sa as *const libc::sockaddr_in).cast::<u8>(),
            buf.as_mut_ptr(),
            size_of::<libc::sockaddr_in>(),
        )
    };
    for len in [-1i32, 0, 129] {
        let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
        // SAFETY: buf is valid for 160 bytes.
        let rc = unsafe { libc::bind(fd.0, buf.as_ptr().cast(), len as libc::socklen_t) };
        assert_eq!((rc, errno()), (-1, libc::EINVAL), "addrlen {len}");
        let b = t
            .wait_n(1, Duration::from_secs(20), |v| {
                v["tid"] == me && v["event"] == "bind" && v["inode"] == inode(&fd)
            })
            .remove(0);
        assert_eq!(b["errno"], libc::EINVAL, "addrlen {len}: {b:#}");
        assert_eq!(b["error"], "EINVAL");
        assert_eq!(b["source"], "syscall");
        assert_eq!(b["fd"], fd.0);
        assert_eq!(b["bound_port"], 0);
        if len != 0 {
            assert_eq!(b["family"], "inet", "addrlen {len}: {b:#}");
        } else {
            assert_eq!(b["addr"], Value::Null, "nothing was passed: {b:#}");
        }
    }
}

/// A stream listener of `protocol` (an IPPROTO_*): socket, bind to `addr` port 0, listen
/// with backlog 7, close. Its story is one socket: the bind (the address asked, the port
/// the kernel picked), the listen (the backlog asked and the one the kernel applied) and
/// one close, all with its fd (syscalls) or its inode, and nothing else about its port.
/// None when the kernel has no such protocol (socket(2): EPROTONOSUPPORT).
fn listener_story(family: i32, protocol: i32, name: &str) -> Option<()> {
    let t = tracer();
    let me = tid();
    // SAFETY: plain socket(2).
    let raw = unsafe { libc::socket(family, libc::SOCK_STREAM, protocol) };
    if raw < 0 && errno() == libc::EPROTONOSUPPORT {
        return None;
    }
    assert!(raw >= 0, "socket({name}): errno {}", errno());
    let fd = Fd(raw);
    let (addr, rc) = if family == libc::AF_INET6 {
        ("::1", bind(&fd, &sin6(Ipv6Addr::LOCALHOST, 0, 0)))
    } else {
        ("127.0.0.1", bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)))
    };
    rc.unwrap();
    listen(&fd, 7).unwrap();
    let port = local_port(&fd);
    let ino = inode(&fd);
    drop(fd);
    let b = t.events_of(me, "bind", 1).remove(0);
    let l = t.events_of(me, "listen", 1).remove(0);
    for e in [&b, &l] {
        assert_eq!(e["protocol"], name, "{e:#}");
        assert_eq!(
            e["family"],
            if family == libc::AF_INET6 {
                "inet6"
            } else {
                "inet"
            }
        );
        assert_eq!(e["source"], "syscall");
        assert_eq!(e["fd"], raw);
        assert_eq!(e["inode"], ino);
        assert_eq!(e["errno"], Value::Null);
        assert_eq!(e["bound_port"], port);
        assert_eq!(e["bound_addr"], addr);
    }
    assert_eq!(b["addr"], addr);
    assert_eq!(b["port"], 0);
    assert_eq!(l["backlog"], 7);
    assert_eq!(l["backlog_effective"], 7, "{l:#}");
    assert_eq!(l["sock_id"], b["sock_id"]);
    let about_port = |v: &Value| v["bound_port"] == port || v["port"] == port;
    let c = t
        .wait_n(1, Duration::from_secs(20), |v| {
            v["event"] == "close" && about_port(v)
        })
        .remove(0);
    assert_eq!(c["sock_id"], l["sock_id"], "{c:#}");
    assert_eq!(c["protocol"], name);
    assert_eq!(c["inode"], ino);
    std::thread::sleep(Duration::from_millis(500));
    let ours = t.seen(|v| v["event"] != "setsockopt" && about_port(v));
    assert_eq!(ours.len(), 3, "bind, listen, one close: {ours:#?}");
    assert!(
        ours.iter().all(|v| v["sock_id"] == l["sock_id"]),
        "{ours:#?}"
    );
    Some(())
}

/// An MPTCP listener (Go 1.24+'s default) is one socket: its effective backlog is held by
/// its first subflow (the TCP socket that listens), which never shows as a socket of its
/// own, not even at the close.
fn mptcp_listener(family: i32) {
    let seen = listener_story(family, libc::IPPROTO_MPTCP, "mptcp");
    assert!(
        seen.is_some(),
        "socket(IPPROTO_MPTCP): net.mptcp.enabled=0?"
    );
}

#[test]
fn mptcp_listener_v4() {
    mptcp_listener(libc::AF_INET);
}

#[test]
fn mptcp_listener_v6() {
    mptcp_listener(libc::AF_INET6);
}

/// An SCTP listener (the Debian kernels have SCTP as a module: the VM guests load it; the
/// host's kernel has none); its close is SCTP's LISTENING -> CLOSING.
#[test]
fn sctp_listener() {
    if listener_story(libc::AF_INET, libc::IPPROTO_SCTP, "sctp").is_none() {
        assert!(
            std::env::var_os("LSN_VM_OUT").is_none(),
            "the VM guests load sctp: socket(IPPROTO_SCTP) must work there"
        );
        eprintln!("skipped: this kernel has no SCTP");
    }
}

const SOL_SCTP: i32 = 132;
const SCTP_SOCKOPT_BINDX_ADD: i32 = 100;
const SCTP_SOCKOPT_BINDX_REM: i32 = 101;

/// sctp_bindx(3): setsockopt(SOL_SCTP, op) of `array` (packed sockaddrs); the errno.
fn bindx(fd: &Fd, op: i32, array: &[u8]) -> i32 {
    // SAFETY: setsockopt reading `array.len()` bytes of it.
    let rc = unsafe {
        libc::setsockopt(
            fd.0,
            SOL_SCTP,
            op,
            array.as_ptr().cast(),
            array.len() as u32,
        )
    };
    if rc == 0 { 0 } else { errno() }
}

/// The bytes of a sockaddr_in.
fn sin_bytes(ip: Ipv4Addr, port: u16) -> Vec<u8> {
    let a = sin(ip, port);
    // SAFETY: plain data, read as its bytes.
    unsafe { std::slice::from_raw_parts((&a as *const libc::sockaddr_in).cast::<u8>(), 16) }
        .to_vec()
}

/// What one bindx event must say: the option, errno, the addresses shown (addr, port),
/// `count`, `omitted`, `malformed_at` and the socket's `bound_port`.
struct BindxCall {
    option: &'static str,
    errno: i32,
    addrs: Vec<(String, u64)>,
    count: u64,
    omitted: u64,
    malformed_at: Option<u64>,
    bound_port: u16,
}

/// `value.addrs` of a bindx event: (addr, port) in order, all of family inet.
fn bindx_addrs(v: &Value) -> Vec<(String, u64)> {
    v["value"]["addrs"]
        .as_array()
        .unwrap_or_else(|| panic!("value.addrs: {v:#}"))
        .iter()
        .map(|a| {
            assert_eq!(a["family"], "inet", "{v:#}");
            (
                a["addr"].as_str().unwrap().to_owned(),
                a["port"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// sctp_bindx(): an SCTP socket bound to two addresses on one port with
/// SCTP_SOCKOPT_BINDX_ADD, listening, one address removed with _REM; then ten addresses
/// added at once (eight fit in an event: the other two counted), one the host does not
/// have (EADDRNOTAVAIL), a malformed array (EINVAL) — each call reported with its exact
/// addresses, port, errno and fd, and the story's bound addresses after each; `--port`
/// finds a failed bindx of a socket that holds no port by the port it asked for.
#[test]
fn sctp_bindx() {
    let t = tracer();
    let me = tid();
    // SAFETY: plain socket(2).
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP) };
    if raw < 0 && errno() == libc::EPROTONOSUPPORT {
        assert!(
            std::env::var_os("LSN_VM_OUT").is_none(),
            "the VM guests load sctp: socket(IPPROTO_SCTP) must work there"
        );
        eprintln!("skipped: this kernel has no SCTP");
        return;
    }
    assert!(raw >= 0, "socket(sctp): errno {}", errno());
    let fd = Fd(raw);
    let port = free_port();
    let other_port = free_port();
    let only = Tracer::start(&[
        "--port",
        &other_port.to_string(),
        "-p",
        &std::process::id().to_string(),
        "-f",
    ]);
    let lo = |last: u8| Ipv4Addr::new(127, 0, 0, last);
    let at = |ips: &[u8]| -> Vec<(String, u64)> {
        ips.iter()
            .map(|&i| (lo(i).to_string(), port as u64))
            .collect()
    };
    // Unbound, as the story sees it (bound_port 0): its bound addresses start empty.
    setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
    let two: Vec<u8> = [sin_bytes(lo(1), port), sin_bytes(lo(2), port)].concat();
    assert_eq!(bindx(&fd, SCTP_SOCKOPT_BINDX_ADD, &two), 0);
    listen(&fd, 5).unwrap();
    assert_eq!(local_port(&fd), port);
    assert_eq!(
        bindx(&fd, SCTP_SOCKOPT_BINDX_REM, &sin_bytes(lo(2), port)),
        0
    );
    let absent = sin_bytes(Ipv4Addr::new(192, 0, 2, 1), port); // TEST-NET-1
    assert_eq!(
        bindx(&fd, SCTP_SOCKOPT_BINDX_ADD, &absent),
        libc::EADDRNOTAVAIL
    );
    let malformed = [sin_bytes(lo(3), port), vec![7, 0, 0, 0]].concat();
    assert_eq!(bindx(&fd, SCTP_SOCKOPT_BINDX_ADD, &malformed), libc::EINVAL);
    let ten: Vec<u8> = (10..20).flat_map(|i| sin_bytes(lo(i), port)).collect();
    assert_eq!(bindx(&fd, SCTP_SOCKOPT_BINDX_ADD, &ten), 0);
    // A socket that holds no port: the failed call is found by the port it asked for.
    // SAFETY: plain socket(2).
    let fd2 = Fd(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP) });
    let absent2 = sin_bytes(Ipv4Addr::new(192, 0, 2, 1), other_port);
    assert_eq!(
        bindx(&fd2, SCTP_SOCKOPT_BINDX_ADD, &absent2),
        libc::EADDRNOTAVAIL
    );
    let ino = inode(&fd);

    let is_bindx = |v: &Value| {
        v["level"] == "SOL_SCTP" && v["option"].as_str().is_some_and(|o| o.starts_with("SCTP"))
    };
    let evs = t.wait_n(6, Duration::from_secs(20), |v| {
        v["tid"] == me && v["event"] == "setsockopt" && is_bindx(v)
    });
    let l = t.events_of(me, "listen", 1).remove(0);
    const ADD: &str = "SCTP_SOCKOPT_BINDX_ADD";
    let call = |option, errno, addrs, count, omitted, malformed_at, bound_port| BindxCall {
        option,
        errno,
        addrs,
        count,
        omitted,
        malformed_at,
        bound_port,
    };
    let absent = |p: u16| vec![("192.0.2.1".to_owned(), p as u64)];
    let want = [
        call(ADD, 0, at(&[1, 2]), 2, 0, None, port),
        call("SCTP_SOCKOPT_BINDX_REM", 0, at(&[2]), 1, 0, None, port),
        call(ADD, libc::EADDRNOTAVAIL, absent(port), 1, 0, None, port),
        call(ADD, libc::EINVAL, at(&[3]), 1, 0, Some(16), port),
        call(
            ADD,
            0,
            at(&[10, 11, 12, 13, 14, 15, 16, 17]),
            10,
            2,
            None,
            port,
        ),
        call(ADD, libc::EADDRNOTAVAIL, absent(other_port), 1, 0, None, 0),
    ];
    for (
        i,
        (
            e,
            BindxCall {
                option,
                errno: err,
                addrs,
                count,
                omitted,
                malformed_at: malformed,
                bound_port: bound,
            },
        ),
    ) in evs.iter().zip(want).enumerate()
    {
        assert_eq!(e["option"], option, "call {i}: {e:#}");
        assert_eq!(e["fd"], if i < 5 { raw } else { fd2.0 }, "call {i}: {e:#}");
        assert_eq!(e["source"], "syscall");
        assert_eq!(e["protocol"], "sctp", "call {i}: {e:#}");
        assert_eq!(e["family"], "inet");
        if err == 0 {
            assert_eq!(e["errno"], Value::Null, "call {i}: {e:#}");
        } else {
            assert_eq!(e["errno"], err, "call {i}: {e:#}");
        }
        assert_eq!(bindx_addrs(e), addrs, "call {i}: {e:#}");
        assert_eq!(e["value"]["count"], count, "call {i}: {e:#}");
        assert_eq!(e["value"]["omitted"], omitted, "call {i}: {e:#}");
        assert_eq!(
            e["value"]["malformed_at"].as_u64(),
            malformed,
            "call {i}: {e:#}"
        );
        assert_eq!(e["bound_port"], bound, "call {i}: {e:#}");
        if i < 5 {
            assert_eq!(e["inode"], ino, "call {i}: {e:#}");
            assert_eq!(e["sock_id"], l["sock_id"], "call {i}: {e:#}");
        }
    }
    // The story: the socket's bound addresses after each call, and both in the listener's
    // summary.
    let bound = |v: &Value| -> Vec<(String, u64)> {
        v["bound_addrs"]
            .as_array()
            .unwrap_or_else(|| panic!("bound_addrs: {v:#}"))
            .iter()
            .map(|a| {
                (
                    a["addr"].as_str().unwrap().to_owned(),
                    a["port"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(bound(&evs[0]), at(&[1, 2]));
    assert_eq!(bound(&l), at(&[1, 2]), "{l:#}");
    assert_eq!(bound(&evs[1]), at(&[1]));
    // Refused (the kernel undoes what the call added): as before.
    assert_eq!(bound(&evs[2]), at(&[1]), "{:#}", evs[2]);
    assert_eq!(bound(&evs[3]), at(&[1]), "{:#}", evs[3]);
    let why = |v: &Value| v["explanation"].as_str().unwrap_or_default().to_owned();
    assert!(
        why(&evs[2]).starts_with("192.0.2.1:"),
        "the absent address named: {:#}",
        evs[2]
    );
    assert!(
        why(&evs[2]).contains("not assigned to any interface"),
        "{:#}",
        evs[2]
    );
    assert!(
        why(&evs[3]).contains("(20 bytes) is malformed at byte 16"),
        "{:#}",
        evs[3]
    );
    // Two of the ten not in the event: which addresses the socket has is not known exactly.
    assert_eq!(evs[4]["bound_addrs"], Value::Null, "{:#}", evs[4]);
    let summary = l["summary"].as_str().unwrap_or_else(|| panic!("{l:#}"));
    assert!(
        summary.contains(&format!("127.0.0.1:{port},127.0.0.2:{port}")),
        "{summary}"
    );
    assert_eq!(l["backlog"], 5);
    let found = only.wait_n(1, Duration::from_secs(20), |v| v["event"] == "setsockopt");
    std::thread::sleep(Duration::from_millis(300));
    let seen = only.seen(|v| v["event"] != "lost");
    assert_eq!(seen.len(), 1, "--port {other_port}: {seen:#?}");
    assert_eq!(found[0]["fd"], fd2.0);
    assert_eq!(
        bindx_addrs(&found[0]),
        [("192.0.2.1".to_owned(), other_port as u64)]
    );
    only.terminate();
}

/// sctp_bindx() on an AF_INET6 socket of an IPv6 and an IPv4 address (a sockaddr_in6 of
/// 28 bytes, then a sockaddr_in of 16): both reported exactly, and both in the story.
#[test]
fn sctp_bindx_v6_and_v4() {
    let t = tracer();
    let me = tid();
    // SAFETY: plain socket(2).
    let raw = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_SCTP) };
    if raw < 0 && errno() == libc::EPROTONOSUPPORT {
        assert!(
            std::env::var_os("LSN_VM_OUT").is_none(),
            "the VM guests load sctp"
        );
        eprintln!("skipped: this kernel has no SCTP");
        return;
    }
    assert!(raw >= 0, "socket(sctp6): errno {}", errno());
    let fd = Fd(raw);
    let port = free_port();
    // IPv4 addresses on an AF_INET6 socket need V6ONLY off, whatever the sysctl says.
    setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0).unwrap();
    let a6 = sin6(Ipv6Addr::LOCALHOST, port, 0);
    // SAFETY: plain data, read as its bytes.
    let mut array =
        unsafe { std::slice::from_raw_parts((&a6 as *const libc::sockaddr_in6).cast::<u8>(), 28) }
            .to_vec();
    array.extend(sin_bytes(Ipv4Addr::LOCALHOST, port));
    assert_eq!(bindx(&fd, SCTP_SOCKOPT_BINDX_ADD, &array), 0);
    listen(&fd, 3).unwrap();
    let e = t
        .wait_n(1, Duration::from_secs(20), |v| {
            v["tid"] == me && v["option"] == "SCTP_SOCKOPT_BINDX_ADD"
        })
        .remove(0);
    let l = t.events_of(me, "listen", 1).remove(0);
    assert_eq!(e["fd"], raw, "{e:#}");
    assert_eq!(e["errno"], Value::Null, "{e:#}");
    assert_eq!(e["family"], "inet6");
    assert_eq!(e["protocol"], "sctp");
    assert_eq!(e["bound_port"], port);
    let want = serde_json::json!([
        {"addr": "::1", "family": "inet6", "port": port},
        {"addr": "127.0.0.1", "family": "inet", "port": port},
    ]);
    assert_eq!(e["value"]["addrs"], want, "{e:#}");
    assert_eq!(e["value"]["count"], 2);
    assert_eq!(e["value"]["omitted"], 0);
    assert_eq!(e["bound_addrs"], want, "{e:#}");
    assert_eq!(l["bound_addrs"], want, "{l:#}");
    let summary = l["summary"].as_str().unwrap_or_else(|| panic!("{l:#}"));
    assert!(
        summary.contains(&format!("[::1]:{port},127.0.0.1:{port}")),
        "{summary}"
    );
}

/// A 32-bit program (gcc -m32 -static): setsockopt, bind and listen through the ia32
/// syscalls (`int $0x80`), once directly and once through socketcall(2).
const PROGRAM_32: &str = r#"
#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>
static long sys(long nr, long a, long b, long c, long d, long e) {
    long r;
    __asm__ volatile("int $0x80"
                     : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                     : "memory");
    return r;
}
static int port_of(int fd) {
    struct sockaddr_in a; socklen_t n = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &n);
    return ntohs(a.sin_port);
}
int main(void) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    int one = 1;
    /* socket 359, bind 361, listen 363, setsockopt 366 */
    int fd = sys(359, AF_INET, SOCK_STREAM, 0, 0, 0);
    long r1 = sys(366, fd, SOL_SOCKET, SO_REUSEADDR, (long)&one, sizeof one);
    long r2 = sys(361, fd, (long)&a, sizeof a, 0, 0);
    long r3 = sys(363, fd, 9, 0, 0, 0);
    printf("direct %d %d %ld %ld %ld\n", fd, port_of(fd), r1, r2, r3);
    /* socketcall 102: SYS_SOCKET 1, SYS_BIND 2, SYS_LISTEN 4, SYS_SETSOCKOPT 14 */
    long s[5] = { AF_INET, SOCK_STREAM, 0 };
    int fd2 = sys(102, 1, (long)s, 0, 0, 0);
    long o[5] = { fd2, SOL_SOCKET, SO_REUSEADDR, (long)&one, sizeof one };
    long q1 = sys(102, 14, (long)o, 0, 0, 0);
    long b[3] = { fd2, (long)&a, sizeof a };
    long q2 = sys(102, 2, (long)b, 0, 0, 0);
    long l[2] = { fd2, 9 };
    long q3 = sys(102, 4, (long)l, 0, 0, 0);
    printf("socketcall %d %d %ld %ld %ld\n", fd2, port_of(fd2), q1, q2, q3);
    fflush(stdout);
    return 0;
}
"#;

/// The 32-bit program built and run: its two lines, `direct|socketcall FD PORT R1 R2 R3`.
fn run_program_32bit() -> Vec<Vec<String>> {
    let dir = std::env::temp_dir().join(format!("lsn-trace-m32-{}-{}", std::process::id(), tid()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("m32.c");
    let exe = dir.join("m32");
    std::fs::write(&src, PROGRAM_32).unwrap();
    let cc = Command::new("gcc")
        .args(["-m32", "-static", "-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run gcc (cargo xtask setup installs gcc-multilib)");
    assert!(
        cc.status.success(),
        "gcc -m32 -static (gcc-multilib): {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<String>> = stdout
        .lines()
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for w in &lines {
        assert_eq!(&w[3..], ["0", "0", "0"], "{stdout}");
    }
    lines
}

/// On fentry and kprobe (the syscall layer), and on tracepoint with `--ia32` (raw_syscalls'
/// sys_exit), a 32-bit program's calls are reported as a 64-bit one's.
#[test]
fn program_32bit() {
    let shared = tracer();
    let own;
    let t = if shared.hooks_kernel_functions() {
        shared
    } else {
        own = Tracer::start(&["-p", &std::process::id().to_string(), "-f", "--ia32"]);
        &own
    };
    let lines = run_program_32bit();
    for w in &lines {
        let (fd, port): (i32, u16) = (w[1].parse().unwrap(), w[2].parse().unwrap());
        let listen = |v: &Value| v["event"] == "listen" && v["bound_port"] == port;
        let l = t.wait_n(1, Duration::from_secs(20), listen).remove(0);
        let pid = l["pid"].clone();
        assert_eq!(l["backlog_effective"], 9, "{}: {l:#}", w[0]);
        assert_eq!(l["addr"], "127.0.0.1");
        // Every backend sees 32-bit callers as it sees 64-bit ones: the kernel-function
        // backends at the syscall layer, tracepoint through raw_syscalls' sys_exit.
        assert_eq!(l["source"], "syscall", "{}: {l:#}", w[0]);
        assert_eq!(l["fd"], fd);
        assert_eq!(l["backlog"], 9);
        let of = |event: &'static str| {
            let pid = pid.clone();
            move |v: &Value| v["pid"] == pid && v["event"] == event && v["fd"] == fd
        };
        let b = t.wait_n(1, Duration::from_secs(20), of("bind")).remove(0);
        assert_eq!(b["source"], "syscall", "{}: {b:#}", w[0]);
        assert_eq!(b["addr"], "127.0.0.1");
        assert_eq!(b["port"], 0);
        assert_eq!(b["bound_port"], port);
        let o = t
            .wait_n(1, Duration::from_secs(20), of("setsockopt"))
            .remove(0);
        assert_eq!(o["source"], "syscall", "{}: {o:#}", w[0]);
        assert_eq!(o["option"], "SO_REUSEADDR");
        assert_eq!(o["value"], 1);
        std::thread::sleep(Duration::from_millis(300));
        for event in ["bind", "listen", "setsockopt"] {
            let n = t.seen(of(event)).len();
            assert_eq!(n, 1, "{}: one {event}", w[0]);
        }
        // The same listener in every event: one socket.
        let all = t.seen(|v| v["pid"] == pid && v["bound_port"] == port);
        assert!(all.iter().all(|v| v["sock_id"] == l["sock_id"]), "{all:#?}");
    }
}

/// Without `--ia32` the tracepoint backend does not see 32-bit programs' calls (the
/// syscall tracepoints skip them, and the raw sys_exit hook is off): the attach line says
/// so, and a listener shows only as the socket entering LISTEN, with no call behind it.
#[test]
fn program_32bit_tracepoint_without_ia32() {
    let t = tracer();
    if t.hooks_kernel_functions() {
        return;
    }
    let attach = t.wait_stderr(lsn_trace_tests::ATTACH_LINE, Duration::from_secs(1));
    assert!(
        attach.contains("32-bit programs' calls are not seen (--ia32)"),
        "{attach}"
    );
    for w in run_program_32bit() {
        let port: u16 = w[2].parse().unwrap();
        let listen = |v: &Value| v["event"] == "listen" && v["bound_port"] == port;
        let l = t.wait_n(1, Duration::from_secs(20), listen).remove(0);
        assert_eq!(l["source"], "kernel", "{}: {l:#}", w[0]);
        assert_eq!(l["fd"], Value::Null);
        assert_eq!(l["backlog"], Value::Null);
        assert_eq!(l["backlog_effective"], 9);
        std::thread::sleep(Duration::from_millis(300));
        let pid = l["pid"].clone();
        let calls = t.seen(|v| v["pid"] == pid && v["source"] == "syscall");
        assert!(calls.is_empty(), "{}: {calls:#?}", w[0]);
    }
}

/// The effective uid beside the real one (a setuid-root program run by a user binds port 80
/// as root, not as that user): a thread of its own (the raw setresuid(2) changes only the
/// calling thread's credentials, not the harness's other threads') with real uid 1000 and
/// effective 0 — a setuid-root program's — binds; then one with real 0 and effective 4321.
/// Every backend reads `cred->euid` the same way.
#[test]
fn effective_uid_beside_the_real_one() {
    let t = tracer();
    for (ruid, euid) in [(1000u32, 0u32), (0, 4321)] {
        let (port, me) = in_thread(move || {
            let r = unsafe { libc::syscall(libc::SYS_setresuid, ruid, euid, -1i32) };
            assert_eq!(r, 0, "setresuid({ruid}, {euid}): {}", errno());
            let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
            bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
            local_port(&fd)
        });
        let b = only_event(t, me, "bind");
        assert_eq!(b["uid"], ruid, "{b:#}");
        assert_eq!(b["euid"], euid, "{b:#}");
        assert_eq!(b["gid"], 0, "{b:#}");
        assert_eq!(b["bound_port"], port, "{b:#}");
        assert_eq!(b["errno"], Value::Null, "{b:#}");
    }
    // Unchanged, the two are the same.
    let (_, me) = in_thread(|| {
        let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
        bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    });
    let b = only_event(t, me, "bind");
    assert_eq!((b["uid"].clone(), b["euid"].clone()), (0.into(), 0.into()));
}

/// No socket state but a socket's: a descriptor is a socket only if its file is on sockfs.
/// A pipe's and a /proc file's `private_data` (a pipe_inode_info, a seq_file) are no
/// `struct socket`; read as one, they gave another object's bytes as the socket's state.
fn assert_not_a_socket(v: &Value) {
    assert_eq!(v["state_unknown"], "not_a_socket", "{v:#}");
    for key in [
        "inode",
        "sock_id",
        "netns",
        "type",
        "protocol",
        "bound_addr",
        "bound_port",
        "v6only",
        "reuseaddr",
        "reuseport",
        "freebind",
        "transparent",
        "bound_dev_if",
    ] {
        assert_eq!(v[key], Value::Null, "{key}: {v:#}");
    }
}

/// setsockopt(2) with a negative optlen on a descriptor that is no socket: before 6.8 the
/// kernel refuses the optlen (EINVAL) before it looks at the descriptor, since then the
/// descriptor (ENOTSOCK) — either way the event has the kernel's errno and no socket state.
/// And bind(2) and listen(2) on such descriptors: ENOTSOCK, no socket state.
#[test]
fn a_descriptor_that_is_no_socket_has_no_socket_state() {
    let t = tracer();
    let ((files, results), me) = in_thread(|| {
        let mut p = [0i32; 2];
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (r, w) = (Fd(p[0]), Fd(p[1]));
        let path = c"/proc/self/stat";
        let proc_file =
            Fd(
                check(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })
                    .unwrap(),
            );
        let one = 1i32;
        let mut results = Vec::new();
        for fd in [&r, &proc_file] {
            let rc = unsafe {
                libc::setsockopt(
                    fd.0,
                    libc::SOL_SOCKET,
                    libc::SO_REUSEADDR,
                    (&one as *const i32).cast(),
                    -1i32 as libc::socklen_t,
                )
            };
            assert_eq!(rc, -1);
            results.push(("setsockopt", fd.0, errno()));
        }
        let sa = sin(Ipv4Addr::LOCALHOST, 0);
        assert!(bind(&w, &sa).is_err());
        results.push(("bind", w.0, errno()));
        assert!(listen(&proc_file, 5).is_err());
        results.push(("listen", proc_file.0, errno()));
        ((r, w, proc_file), results)
    });
    let _ = files;
    for (event, fd, err) in results {
        if event == "setsockopt" {
            assert!(err == libc::EINVAL || err == libc::ENOTSOCK, "{err}");
        } else {
            assert_eq!(err, libc::ENOTSOCK, "{event}");
        }
        let v = t
            .wait_n(1, Duration::from_secs(20), |v| {
                v["tid"] == me && v["event"] == event && v["fd"] == fd
            })
            .pop()
            .unwrap();
        assert_eq!(v["errno"], err, "{v:#}");
        assert_not_a_socket(&v);
        if event == "setsockopt" {
            assert_eq!(v["level"], "SOL_SOCKET", "{v:#}");
            assert_eq!(v["option"], "SO_REUSEADDR", "{v:#}");
        }
        if event == "bind" {
            assert_eq!(v["addr"], "127.0.0.1", "{v:#}");
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(t.seen(|v| v["tid"] == me).len(), 4);
}
