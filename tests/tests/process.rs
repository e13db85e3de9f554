//! Behaviour of the tracer process itself, and binds from other processes and users.
use std::{os::unix::process::CommandExt, process::Command, time::Duration};

use lsn_trace_tests::{Tracer, bin};

/// Fork a child that, in a network namespace of its own where ports below 1024 are
/// privileged, drops to uid 65534 and binds 0.0.0.0:80. Returns (pid, errno it saw).
fn unprivileged_bind_port_80() -> (i32, i32) {
    let sysctl = c"/proc/sys/net/ipv4/ip_unprivileged_port_start";
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // Child: raw syscalls only (we forked a threaded process).
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                libc::_exit(100);
            }
            let f = libc::open(sysctl.as_ptr(), libc::O_WRONLY);
            if f < 0 || libc::write(f, b"1024".as_ptr().cast(), 4) != 4 {
                libc::_exit(101);
            }
            libc::close(f);
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(102);
            }
            let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let sa = lsn_trace_tests::sock::sin(std::net::Ipv4Addr::UNSPECIFIED, 80);
            let rc = libc::bind(s, (&sa as *const libc::sockaddr_in).cast(), 16);
            let errno = if rc == 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::_exit(errno);
        }
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status));
    (pid, libc::WEXITSTATUS(status))
}

#[test]
fn eacces_for_a_privileged_port_without_the_capability() {
    let t = Tracer::shared();
    let (pid, errno) = unprivileged_bind_port_80();
    assert_eq!(
        errno,
        libc::EACCES,
        "child setup failed or bind did not fail as expected"
    );
    let b = t
        .wait_n(1, Duration::from_secs(20), |v| {
            v["pid"] == pid && v["event"] == "bind"
        })
        .pop()
        .unwrap();
    assert_eq!(b["uid"], 65534);
    assert_eq!(b["errno"], libc::EACCES);
    assert_eq!(b["error"], "EACCES");
    assert_eq!(b["addr"], "0.0.0.0");
    assert_eq!(b["port"], 80);
    // the child's own network namespace, not ours
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(format!("net:[{}]", b["netns"]), ours.to_string_lossy());
}

#[test]
fn sigterm_ends_cleanly_with_a_summary() {
    // Only this process: "0 lost" must not depend on what the rest of the host does.
    let t = Tracer::start(&["--pid", &std::process::id().to_string()]);
    let fd = lsn_trace_tests::sock::socket(libc::AF_INET, libc::SOCK_DGRAM);
    lsn_trace_tests::sock::bind(
        &fd,
        &lsn_trace_tests::sock::sin(std::net::Ipv4Addr::LOCALHOST, 0),
    )
    .unwrap();
    let me = lsn_trace_tests::tid();
    t.events_of(me, "bind", 1);
    let (status, stderr) = t.terminate();
    assert!(
        status.success(),
        "exit status {status:?}, stderr {stderr:#?}"
    );
    let summary = stderr
        .iter()
        .find(|l| l.contains("stopped"))
        .expect("summary line");
    assert!(
        summary.contains(" events") && summary.contains(" lost"),
        "{summary}"
    );
    assert!(summary.contains(" 0 lost"), "{summary}");
}

#[test]
fn without_privileges_it_says_what_is_missing() {
    let out = unsafe {
        Command::new(bin())
            .pre_exec(|| {
                if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
            .output()
            .unwrap()
    };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("root") && err.contains("sudo"), "{err}");
    assert!(err.contains("CAP_BPF"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_flags_are_rejected_clearly() {
    let out = Command::new(bin())
        .args(["--ring-size", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("power of two"), "{err}");
    let out = Command::new(bin()).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn attach_line_names_the_backend() {
    let line = Tracer::shared().wait_stderr(lsn_trace_tests::ATTACH_LINE, Duration::from_secs(1));
    // The one asked for, else the first this kernel allows, in auto's order.
    let expected = lsn_trace_tests::backend_under_test().unwrap_or_else(|| {
        ["fentry", "kprobe", "tracepoint"]
            .into_iter()
            .find(|b| lsn_trace_tests::try_backend(b).is_ok())
            .expect("some backend attaches")
            .to_owned()
    });
    assert!(
        line.starts_with(&format!("lsn-trace: attached, backend {expected}")),
        "{line}"
    );
}

/// Binds a netlink socket of each type (what glibc's resolver, `ip` and systemd do all the
/// time), a packet socket, then listens on TCP: prints the port on stderr.
const NETLINK_THEN_LISTEN: &str = r#"
import socket, sys
for ty in (socket.SOCK_RAW, socket.SOCK_DGRAM):
    n = socket.socket(socket.AF_NETLINK, ty, socket.NETLINK_ROUTE)
    n.bind((0, 0))
p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
p.bind(("lo", 0))
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4)
print(f"port={s.getsockname()[1]}", file=sys.stderr, flush=True)
"#;

fn run_netlink_then_listen(args: &[&str]) -> (String, String) {
    let out = Command::new(bin())
        .args(args)
        .args(["--", "/usr/bin/python3", "-c", NETLINK_THEN_LISTEN])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The default human output shows the sockets a person acts on: the netlink and packet
/// binds are left out (and counted), the listener is shown; `--family` and `--json` show
/// them.
#[test]
fn human_output_leaves_out_sockets_that_can_never_listen() {
    let (stdout, stderr) = run_netlink_then_listen(&[]);
    let port = stderr
        .lines()
        .find_map(|l| l.split("port=").nth(1))
        .unwrap_or_else(|| panic!("no port: {stderr}"))
        .trim()
        .to_owned();
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(" listen ") && l.contains(&format!("127.0.0.1:{port} "))),
        "{stdout}"
    );
    for family in ["netlink", "packet", "family 16", "family 17"] {
        assert!(!stdout.contains(family), "{family}: {stdout}");
    }
    assert!(
        stderr.contains(
            "lsn-trace: 3 events of sockets that can never listen (netlink, packet …) not \
             shown; --family or --json shows them"
        ),
        "{stderr}"
    );
    // Asked for: shown, and nothing is said left out.
    let (stdout, stderr) = run_netlink_then_listen(&["--family", "16"]);
    assert_eq!(
        stdout.lines().filter(|l| l.contains(" bind ")).count(),
        2,
        "{stdout}"
    );
    assert!(!stderr.contains("not shown"), "{stderr}");
    let (stdout, _) = run_netlink_then_listen(&["--json"]);
    let families: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(r#""event":"bind""#))
        .filter_map(|l| l.split(r#""family":""#).nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        families,
        ["netlink", "netlink", "packet", "inet"],
        "{stdout}"
    );
}
