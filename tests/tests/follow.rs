//! `lsn-trace -- CMD` and `-p PID`: the followed processes' events and only theirs, the
//! process tree tracked in the kernel (double-forking daemons included), signals forwarded,
//! CMD's exit status passed through, and the summary on stderr.
//!
//! CMD's stdout is lsn-trace's stdout, which the harness parses as JSON: the helpers
//! write to stderr only. Other processes on the host (and this test process, which binds
//! on purpose) must never show up unmarked.
use std::{
    io::{BufRead, BufReader, Write},
    net::Ipv4Addr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lsn_trace_tests::{Tracer, Value, sock::*};

const PY: &str = "/usr/bin/python3";

/// A python helper's pid, from the `NAME=PID` it wrote on stderr. Anywhere in a line: the
/// helper shares stderr with lsn-trace, whose line may be split around it.
fn reported_pid(t: &Tracer, stderr: &[String], name: &str) -> i64 {
    let prefix = format!("{name}=");
    stderr
        .iter()
        .find_map(|l| l.find(&prefix).map(|i| &l[i + prefix.len()..]))
        .unwrap_or_else(|| {
            panic!(
                "helper did not report {name}: {stderr:#?}\nevents: {:#?}",
                t.seen(|_| true)
            )
        })
        .trim()
        .parse()
        .unwrap()
}

fn summary(stderr: &[String]) -> String {
    let at = stderr
        .iter()
        .position(|l| l.starts_with("lsn-trace: summary:"))
        .unwrap_or_else(|| panic!("no summary: {stderr:#?}"));
    stderr[at..].join("\n")
}

/// While lsn-trace runs, bind in this (unfollowed) process: must not be shown.
fn bind_here() -> Fd {
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    fd
}

const FORK_AND_LISTEN: &str = r#"
import os, socket, sys, time
pid = os.fork()
if pid == 0:
    print(f"child={os.getpid()}", file=sys.stderr, flush=True)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print(f"port={s.getsockname()[1]}", file=sys.stderr, flush=True)
    time.sleep(0.3)
    os._exit(0)
os.waitpid(pid, 0)
"#;

#[test]
fn a_forking_child_is_followed_and_the_exit_status_passed_through() {
    let script = format!("exec 1>&2; {PY} -c '{FORK_AND_LISTEN}'; sleep 0.5; exit 7");
    let t = Tracer::start(&["--", "sh", "-c", &script]);
    let mine = bind_here();
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    drop(mine);
    assert_eq!(status.code(), Some(7), "{stderr:#?}");
    let child = reported_pid(&t, &stderr, "child");
    let port = reported_pid(&t, &stderr, "port");
    let b = t
        .seen(|v| v["pid"] == child && v["event"] == "bind")
        .pop()
        .unwrap_or_else(|| panic!("child's bind missing: {stderr:#?}"));
    assert_eq!(b["comm"], "python3");
    assert_eq!(b["bound_port"], port);
    let l = t.seen(|v| v["pid"] == child && v["event"] == "listen");
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["backlog"], 16);
    let me = std::process::id();
    assert!(
        t.seen(|v| v["pid"] == me).is_empty(),
        "an unrelated process's bind was shown"
    );
    // Only followed processes: every event is from the tree (python3, or sh).
    let all = t.seen(|_| true);
    assert!(
        all.iter()
            .all(|v| v["comm"] == "python3" || v["comm"] == "sh"),
        "{all:#?}"
    );
    let s = summary(&stderr);
    assert!(s.contains("sh (pid "), "{s}");
    assert!(s.contains("exited, status 7"), "{s}");
    assert!(
        s.contains(&format!(
            "listening  tcp 127.0.0.1:{port}  python3 (pid {child})"
        )),
        "{s}"
    );
}

const DAEMON: &str = r#"
import os, socket, sys, time
if os.fork() > 0:
    os._exit(0)
os.setsid()
if os.fork() > 0:
    os._exit(0)
print(f"daemon={os.getpid()}", file=sys.stderr, flush=True)
time.sleep(0.7)
s = socket.socket(socket.AF_INET6)
s.bind(("::1", 0))
s.listen(8)
print(f"port={s.getsockname()[1]}", file=sys.stderr, flush=True)
time.sleep(0.3)
"#;

#[test]
fn a_double_forking_daemon_is_followed_until_it_exits() {
    let t = Tracer::start(&["--", PY, "-c", DAEMON]);
    let mine = bind_here();
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    drop(mine);
    assert_eq!(status.code(), Some(0), "{stderr:#?}");
    let daemon = reported_pid(&t, &stderr, "daemon");
    let port = reported_pid(&t, &stderr, "port");
    let b = t
        .seen(|v| v["pid"] == daemon && v["event"] == "bind")
        .pop()
        .unwrap_or_else(|| panic!("the daemon's bind was not followed: {stderr:#?}"));
    assert_eq!(b["addr"], "::1");
    assert_eq!(b["bound_port"], port);
    // CMD itself exited long before: lsn-trace said it kept following. How many it still
    // follows then depends on whether the middle process has exited yet (1 or 2).
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("python3 exited (status 0); still following")
                && (l.contains("following 1 process (pid ")
                    || l.contains("following 2 processes (pid "))),
        "{stderr:#?}"
    );
    let s = summary(&stderr);
    assert!(
        s.contains(&format!(
            "listening  tcp [::1]:{port}  python3 (pid {daemon})"
        )),
        "{s}"
    );
    // Its listener closed when it exited, and that close is part of its trace.
    assert_eq!(
        t.seen(|v| v["pid"] == daemon && v["event"] == "close")
            .len(),
        1,
        "{stderr:#?}"
    );
    assert!(t.seen(|v| v["pid"] == std::process::id()).is_empty());
}

#[test]
fn eaddrinuse_names_who_holds_the_port() {
    // This (unfollowed) process holds the port; CMD fails to bind it three times.
    let held = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&held, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&held, 8).unwrap();
    let port = local_port(&held);
    let code = format!(
        "import socket\nfor _ in range(3):\n    s = socket.socket()\n    try:\n        \
         s.bind(('127.0.0.1', {port}))\n    except OSError:\n        pass\n"
    );
    let t = Tracer::start(&["--", PY, "-c", &code]);
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    drop(held);
    assert_eq!(status.code(), Some(0), "{stderr:#?}");
    let s = summary(&stderr);
    let me = std::process::id();
    assert!(
        s.contains(&format!(
            "nothing listens: python3 exited after 3 failed binds on 127.0.0.1:{port}: \
             EADDRINUSE, held by "
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!("(pid {me}) on 127.0.0.1:{port} (LISTEN)")),
        "{s}"
    );
}

#[test]
fn signals_reach_cmd_and_its_death_is_the_exit_status() {
    let t = Tracer::start(&["--", "sleep", "30"]);
    let started = Instant::now();
    unsafe { libc::kill(t.pid() as i32, libc::SIGTERM) };
    let (status, stderr) = t.wait_exit(Duration::from_secs(20));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{stderr:#?}");
    let s = summary(&stderr);
    assert!(s.contains("sleep (pid "), "{s}");
    assert!(s.contains("killed by SIGTERM"), "{s}");
    assert!(
        s.contains("nothing listens: no bind or listen call was made"),
        "{s}"
    );
}

const FAIL_TWICE: &str = r#"
import socket, sys
held = socket.socket()
held.bind(("127.0.0.1", 0))
held.listen()
port = held.getsockname()[1]
print(f"port={port}", file=sys.stderr, flush=True)
held.close()
# Hold it in a way the trace does not see as ours... (it is ours: all binds are shown)
busy = socket.socket()
busy.bind(("127.0.0.1", port))
busy.listen()
for _ in range(2):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        pass
busy.close()
sys.exit(3)
"#;

#[test]
fn a_service_manager_command_is_told_where_the_binds_happen() {
    // `lsn-trace -- systemctl start nginx` follows systemctl, but systemd (pid 1) starts
    // nginx: nothing of it is systemctl's descendant. The summary must say so, not just
    // "no bind was made". (--version: the real binary, no service touched.)
    let t = Tracer::start(&["--", "systemctl", "--version"]);
    let (status, stderr) = t.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{stderr:#?}");
    let s = summary(&stderr);
    assert!(
        s.contains(
            "nothing listens: no bind or listen call was made: systemctl has the init system \
             (systemd: pid 1) start the daemon, and its binds are not systemctl's nor its \
             children's. Run `sudo lsn-trace --comm NAME` (or with no filter) in another \
             terminal, then `systemctl …`"
        ),
        "{s}"
    );
}

#[test]
fn failures_are_summarised_with_their_errno() {
    let t = Tracer::start(&["--", PY, "-c", FAIL_TWICE]);
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "{stderr:#?}");
    let port = reported_pid(&t, &stderr, "port");
    let s = summary(&stderr);
    assert!(
        s.contains(&format!(
            "failed     bind tcp 127.0.0.1:{port}: EADDRINUSE (Address already in use), 2 times"
        )),
        "{s}"
    );
    assert!(s.contains("python3 (pid"), "{s}");
}

const BIND_UDP: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
"#;

fn uid_of_bind(t: &Tracer, stderr: &[String]) -> Value {
    let b = t.seen(|v| v["event"] == "bind" && v["comm"] == "python3");
    assert_eq!(b.len(), 1, "{b:#?} {stderr:#?}");
    b[0]["uid"].clone()
}

#[test]
fn user_runs_cmd_as_that_user() {
    let t = Tracer::start(&["--user", "nobody", "--", PY, "-c", BIND_UDP]);
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{stderr:#?}");
    assert_eq!(uid_of_bind(&t, &stderr), 65534);
}

#[test]
fn under_sudo_cmd_runs_as_the_invoking_user() {
    let env = [
        ("SUDO_UID", "65534"),
        ("SUDO_GID", "65534"),
        ("SUDO_USER", "nobody"),
    ];
    let t = Tracer::start_with_env(&["--", PY, "-c", BIND_UDP], &env);
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{stderr:#?}");
    assert_eq!(uid_of_bind(&t, &stderr), 65534);
    // ... unless asked for root explicitly.
    let t = Tracer::start_with_env(&["--user", "root", "--", PY, "-c", BIND_UDP], &env);
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{stderr:#?}");
    assert_eq!(uid_of_bind(&t, &stderr), 0);
}

/// A python process that, at each line on stdin, forks a child that binds, binds itself,
/// and exits at EOF.
const ON_CUE: &str = r#"
import os, socket, sys
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind(("127.0.0.1", 0))
        print(f"child={os.getpid()}", file=sys.stderr, flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    print("done", file=sys.stderr, flush=True)
"#;

fn attach_run(extra: &[&str]) -> (Tracer, i64, i64) {
    let mut py = Command::new(PY)
        .args(["-c", ON_CUE])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = py.id().to_string();
    let mut args = vec!["-p", &pid];
    args.extend_from_slice(extra);
    let t = Tracer::start(&args);
    let mut stdin = py.stdin.take().unwrap();
    writeln!(stdin).unwrap();
    stdin.flush().unwrap();
    let mut err = BufReader::new(py.stderr.take().unwrap());
    let mut child = 0;
    for line in (&mut err).lines() {
        let line = line.unwrap();
        if let Some(c) = line.strip_prefix("child=") {
            child = c.parse().unwrap();
        }
        if line == "done" {
            break;
        }
    }
    drop(stdin); // EOF: the process exits, and lsn-trace with it
    assert!(py.wait().unwrap().success());
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{stderr:#?}");
    assert!(
        summary(&stderr).contains(&format!("pid {pid}")),
        "{stderr:#?}"
    );
    (t, py.id() as i64, child)
}

#[test]
fn attach_to_a_running_process_and_stop_when_it_exits() {
    let (t, parent, child) = attach_run(&[]);
    assert_eq!(
        t.seen(|v| v["pid"] == parent && v["event"] == "bind").len(),
        1
    );
    assert!(
        t.seen(|v| v["pid"] == child).is_empty(),
        "without -f its children are not followed"
    );
    assert!(t.seen(|v| v["pid"] != parent).is_empty());
}

#[test]
fn attach_with_f_follows_future_children() {
    let (t, parent, child) = attach_run(&["-f"]);
    assert_eq!(
        t.seen(|v| v["pid"] == parent && v["event"] == "bind").len(),
        1
    );
    assert_eq!(
        t.seen(|v| v["pid"] == child && v["event"] == "bind").len(),
        1
    );
}

#[test]
fn all_shows_the_host_too_and_marks_the_followed() {
    let script = format!("exec 1>&2; {PY} -c '{BIND_UDP}'; sleep 0.5");
    let t = Tracer::start(&["--all", "--", "sh", "-c", &script]);
    let mine = bind_here();
    let me = lsn_trace_tests::tid();
    let ours = t.events_of(me, "bind", 1).pop().unwrap();
    assert_eq!(ours["followed"], false);
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    drop(mine);
    assert!(status.success(), "{stderr:#?}");
    let theirs = t.seen(|v| v["event"] == "bind" && v["followed"] == true);
    assert_eq!(theirs.len(), 1, "{theirs:#?}");
    assert_eq!(theirs[0]["comm"], "python3");
}

#[test]
fn a_command_that_does_not_exist_exits_127() {
    let out = Command::new(lsn_trace_tests::bin())
        .args(["--", "/no/such/program"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot run `/no/such/program`"), "{err}");
}

/// A program that keeps running past what used to end its following: `exec` — a second
/// thread calls execve() (the kernel kills the main thread, the execing thread takes the
/// process's pid) and the new image binds; `pthread-exit` — the main thread calls
/// pthread_exit() and another thread binds after, a second later. Compiled for the test.
const THREADED_C: &str = r#"
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static char *self;
static int bind_listen(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (s < 0 || bind(s, (void *)&a, sizeof a) || listen(s, 7) || getsockname(s, (void *)&a, &n))
        return 1;
    fprintf(stderr, "port=%d\n", ntohs(a.sin_port));
    return 0;
}
static void *exec_thread(void *arg) {
    (void)arg;
    usleep(100000);
    execl(self, self, "bind", (char *)0);
    return 0;
}
static void *late_bind(void *arg) {
    (void)arg;
    usleep(1000000);
    _exit(bind_listen());
}
int main(int argc, char **argv) {
    pthread_t t;
    self = argv[0];
    /* Binds a second after: well past the agent's grace for a process's exit. */
    if (argc > 1 && !strcmp(argv[1], "bind")) {
        usleep(1000000);
        return bind_listen();
    }
    /* The go-ahead on stdin: the tracer follows this pid from then on (-p). */
    while (getchar() != '\n' && !feof(stdin))
        ;
    if (argc > 1 && !strcmp(argv[1], "exec")) {
        pthread_create(&t, 0, exec_thread, 0);
        pause();
    }
    if (argc > 1 && !strcmp(argv[1], "pthread-exit")) {
        pthread_create(&t, 0, late_bind, 0);
        pthread_exit(0);
    }
    return 2;
}
"#;

/// THREADED_C built into a directory of the test's own under the temporary directory (the
/// build tree is read-only in the VM guests).
fn threaded_program() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lsn-trace-follow-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("threads.c");
    std::fs::write(&src, THREADED_C).unwrap();
    let bin = dir.join(format!("threads-{}", std::process::id()));
    let out = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// `-p PID` of the program in `mode`: its bind after the main thread is gone is reported,
/// and the trace ends when the process does.
fn followed_through(mode: &str) {
    let bin = threaded_program();
    let mut prog = Command::new(&bin)
        .arg(mode)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = prog.id();
    let t = Tracer::start(&["-p", &pid.to_string()]);
    prog.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut line = String::new();
    BufReader::new(prog.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: i64 = line
        .trim()
        .strip_prefix("port=")
        .unwrap_or_else(|| panic!("{mode}: {line:?}"))
        .parse()
        .unwrap();
    assert!(prog.wait().unwrap().success());
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{stderr:#?}");
    let binds = t.seen(|v| v["event"] == "bind" && v["bound_port"] == port);
    assert_eq!(
        binds.len(),
        1,
        "{mode}: the bind after it: {:#?}",
        t.seen(|_| true)
    );
    assert_eq!(binds[0]["pid"], pid);
    let listens = t.seen(|v| v["event"] == "listen" && v["bound_port"] == port);
    assert_eq!(listens.len(), 1, "{mode}");
    assert_eq!(listens[0]["backlog"], 7);
}

#[test]
fn a_thread_that_execs_is_still_followed() {
    followed_through("exec");
}

#[test]
fn a_process_whose_main_thread_exited_is_still_followed() {
    followed_through("pthread-exit");
}

/// `-- setpriv … python3 …` is one process across the exec (issue 14): the summary names
/// it one way, `setpriv → python3 (pid N)` in its head and `python3 (pid N)` in its lines.
#[test]
fn one_process_has_one_name_across_an_exec() {
    let code = "import os,socket,sys\n\
                print(f'pid={os.getpid()}',file=sys.stderr,flush=True)\n\
                s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(4)\n\
                print(f'port={s.getsockname()[1]}',file=sys.stderr,flush=True)";
    let t = Tracer::start(&["--", "setpriv", "--inh-caps=-all", PY, "-c", code]);
    let (status, stderr) = t.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{stderr:#?}");
    let pid = reported_pid(&t, &stderr, "pid");
    let port = reported_pid(&t, &stderr, "port");
    let s = summary(&stderr);
    assert!(
        s.starts_with(&format!(
            "lsn-trace: summary: setpriv → python3 (pid {pid}) exited, status 0"
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "listening  tcp 127.0.0.1:{port}  python3 (pid {pid}), closed"
        )),
        "{s}"
    );
    assert!(!s.contains("setpriv (pid"), "{s}");
}

/// haproxy binds its stats socket as `NAME.PID.tmp`, listens and renames it into place:
/// the summary names the path as bound and says it no longer exists (issue 14).
#[test]
fn a_unix_listener_renamed_after_bind_is_said_so() {
    let dir = std::env::temp_dir().join(format!("lsn-rename-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let code = "import os,socket,sys\n\
                d=sys.argv[1]; sys.stdin.readline()\n\
                tmp=f'{d}/hap.sock.{os.getpid()}.tmp'\n\
                s=socket.socket(socket.AF_UNIX); s.bind(tmp); s.listen(4)\n\
                os.rename(tmp, f'{d}/hap.sock')\n\
                print('ready',file=sys.stderr,flush=True); sys.stdin.readline()";
    let mut prog = Command::new(PY)
        .args(["-c", code, dir.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = prog.id();
    let t = Tracer::start(&["-p", &pid.to_string()]);
    let mut stdin = prog.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    let mut line = String::new();
    BufReader::new(prog.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    t.wait_n(1, Duration::from_secs(20), |v| {
        v["pid"] == pid && v["event"] == "listen"
    });
    let (_, stderr) = t.terminate();
    drop(stdin);
    let _ = prog.wait();
    let s = summary(&stderr);
    let tmp = format!("{}/hap.sock.{pid}.tmp", dir.display());
    assert!(
        s.contains(&format!(
            "listening  u_str {tmp}  python3 (pid {pid}), still open; that path no longer \
             exists: renamed or removed since its bind (the socket keeps its first name)"
        )),
        "{s}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
