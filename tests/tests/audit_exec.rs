//! The audit's exec capture (issue 18): processes that bind and exit before the agent reads
//! /proc — a storm of them, and pids reused while the agent looks away — carry the exe and
//! cmdline they exec()ed with, their own and never another instance's.
//! (`lsn-bind-exit`: tests/src/bin/lsn-bind-exit.rs.)
use std::{
    collections::HashMap,
    net::Ipv4Addr,
    process::{Child, Command, Stdio},
    sync::{Mutex, MutexGuard},
};

use lsn_trace_tests::{
    Tracer, Value,
    logs::{dir, records, wait_records},
    sock::*,
};

const HELPER: &str = env!("CARGO_BIN_EXE_lsn-bind-exit");
/// Its comm: the kernel filter keeps the host's other processes out of these logs.
const COMM: &str = "lsn-bind-exit";

fn helper_exe() -> String {
    std::fs::canonicalize(HELPER)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

/// The tests see each other's helpers (one comm) and move ns_last_pid: one at a time.
static ONE: Mutex<()> = Mutex::new(());

fn one() -> MutexGuard<'static, ()> {
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

fn audit(log: &std::path::Path) -> Tracer {
    let t = Tracer::start(&["--comm", COMM, "audit", "--log", log.to_str().unwrap()]);
    wait_records(log, 1, |v| v["record"] == "snapshot_end");
    t
}

fn stop(t: &Tracer, sig: i32) {
    assert_eq!(unsafe { libc::kill(t.pid() as i32, sig) }, 0);
}

fn helper(args: &[&str]) -> Command {
    let mut c = Command::new(HELPER);
    c.args(args).stdout(Stdio::null());
    c
}

/// `n` helpers at once, each tagged `TAG-i`; every fourth binds the held `busy` port and
/// fails (EADDRINUSE). Their pid -> (cmdline, whether the bind failed), once all exited.
fn storm(n: usize, tag: &str, busy: u16) -> HashMap<u64, (Vec<String>, bool)> {
    let busy = busy.to_string();
    let mut children: Vec<(Child, Vec<String>, bool)> = (0..n)
        .map(|i| {
            let tag = format!("{tag}-{i}");
            let fails = i % 4 == 0;
            let mut args = vec![tag];
            if fails {
                args.push(busy.clone());
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let child = helper(&argv).spawn().unwrap();
            let cmdline = std::iter::once(HELPER.to_owned()).chain(args).collect();
            (child, cmdline, fails)
        })
        .collect();
    let mut out = HashMap::new();
    for (child, cmdline, fails) in &mut children {
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(i32::from(*fails)), "{cmdline:?}");
        out.insert(u64::from(child.id()), (cmdline.clone(), *fails));
    }
    out
}

/// The storm's open/failed records (one per child) checked: each carries its own exe and
/// cmdline or none (never a wrong one). The shares (exe and cmdline, `identity`).
fn check(
    log: &std::path::Path,
    kids: &HashMap<u64, (Vec<String>, bool)>,
    identity: &str,
) -> (f64, f64) {
    let mine = |v: &Value| {
        (v["record"] == "open" || v["record"] == "failed")
            && v["pid"].as_u64().is_some_and(|p| kids.contains_key(&p))
    };
    let recs = wait_records(log, kids.len(), mine);
    assert_eq!(recs.len(), kids.len(), "one record per child");
    let exe = helper_exe();
    let (mut whole, mut by_exec) = (0, 0);
    for r in &recs {
        let (cmdline, fails) = &kids[&r["pid"].as_u64().unwrap()];
        assert_eq!(r["record"], if *fails { "failed" } else { "open" }, "{r:#}");
        if *fails {
            assert_eq!(r["errno"], libc::EADDRINUSE, "{r:#}");
        }
        if !r["exe"].is_null() {
            assert_eq!(r["exe"], exe.as_str(), "{r:#}");
        }
        if !r["cmdline"].is_null() {
            assert_eq!(r["cmdline"], serde_json::json!(cmdline), "{r:#}");
        }
        assert!(r.get("cmdline_truncated").is_none(), "{r:#}");
        if !r["exe"].is_null() && !r["cmdline"].is_null() {
            whole += 1;
        }
        if r["identity"] == identity {
            by_exec += 1;
        }
    }
    let n = recs.len() as f64;
    (f64::from(whole) / n, f64::from(by_exec) / n)
}

/// Hundreds of processes that bind and exit at once: with the agent stopped meanwhile
/// (every one gone when its events are read: /proc has nothing), then running (a real
/// storm). ≥ 99% of their records name the program and its arguments, exactly.
#[test]
fn a_storm_of_processes_gone_before_read_has_their_exe_and_cmdline() {
    let _one = one();
    let logs = dir("storm");
    let log = logs.join("audit.jsonl");
    let t = audit(&log);
    let held = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&held, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&held, 8).unwrap();
    let busy = local_port(&held);

    stop(&t, libc::SIGSTOP);
    let gone = storm(300, "stopped", busy);
    stop(&t, libc::SIGCONT);
    let (whole, by_exec) = check(&log, &gone, "exec");
    eprintln!(
        "agent stopped: exe+cmdline {:.1}%, identity exec {:.1}%",
        whole * 100.0,
        by_exec * 100.0
    );
    assert!(whole >= 0.99, "{whole}");
    // Nothing else could have said who they were.
    assert!(by_exec >= 0.99, "{by_exec}");

    let live = storm(300, "running", busy);
    let (whole, by_exec) = check(&log, &live, "exec");
    eprintln!(
        "agent running: exe+cmdline {:.1}%, identity exec {:.1}%",
        whole * 100.0,
        by_exec * 100.0
    );
    assert!(whole >= 0.99, "{whole}");

    let (status, _) = t.terminate();
    assert!(status.success());
    let stop_rec = records(&log).pop().unwrap();
    assert_eq!(stop_rec["record"], "stop");
    assert_eq!(stop_rec["lost"], 0, "{stop_rec:#}");
}

/// A forking server (`lsn-bind-exit --fork N PORT`), waiting for its go.
fn fork_server(n: usize, busy: u16) -> (Child, Vec<String>) {
    let args = ["--fork".to_string(), n.to_string(), busy.to_string()];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = helper(&argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let cmdline = std::iter::once(HELPER.to_owned()).chain(args).collect();
    (server, cmdline)
}

/// Its children forked, bound and exited: pid -> (the cmdline they ran: the server's,
/// whether the bind failed).
fn forks_of(server: &mut Child, cmdline: &[String]) -> HashMap<u64, (Vec<String>, bool)> {
    use std::io::{BufRead, Write};
    let mut stdin = server.stdin.as_ref().unwrap();
    stdin.write_all(b"go\n").unwrap();
    let n: usize = cmdline[2].parse().unwrap();
    let out = std::io::BufReader::new(server.stdout.as_mut().unwrap());
    out.lines()
        .take(n)
        .map(|l| {
            let l = l.unwrap();
            let (pid, status) = l.split_once(' ').unwrap();
            let fails = status == "1";
            (pid.parse().unwrap(), (cmdline.to_vec(), fails))
        })
        .collect()
}

/// A forking server's children bind and exit without exec()ing, all gone — the agent
/// stopped meanwhile — before their events are read: ≥ 99% of their records name the
/// program and arguments they ran, their parent's as forked (identity "fork"), exactly;
/// with the server started before the audit (its /proc read, alive) and under it (its
/// exec known; gone too by the time its children's events are read).
#[test]
fn forked_children_gone_before_read_are_named_by_their_parents_image() {
    let _one = one();
    let logs = dir("fork");
    let log = logs.join("audit.jsonl");
    let held = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&held, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&held, 8).unwrap();
    let busy = local_port(&held);
    let before = fork_server(200, busy);
    let t = audit(&log);
    let under = fork_server(200, busy);
    for ((mut server, cmdline), started) in [(before, "before"), (under, "under")] {
        stop(&t, libc::SIGSTOP);
        let kids = forks_of(&mut server, &cmdline);
        if started == "under" {
            drop(server.stdin.take());
            assert!(server.wait().unwrap().success());
        }
        stop(&t, libc::SIGCONT);
        let (whole, by_fork) = check(&log, &kids, "fork");
        eprintln!(
            "server started {started} audit: exe+cmdline {:.1}%, identity fork {:.1}%",
            whole * 100.0,
            by_fork * 100.0
        );
        assert!(whole >= 0.99, "{started}: {whole}");
        assert!(by_fork >= 0.99, "{started}: {by_fork}");
        drop(server.stdin.take());
        assert!(server.wait().unwrap().success());
    }
    let (status, _) = t.terminate();
    assert!(status.success());
    let stop_rec = records(&log).pop().unwrap();
    assert_eq!(stop_rec["record"], "stop");
    assert_eq!(stop_rec["lost"], 0, "{stop_rec:#}");
}

/// Spawn `cmd` as pid `pid` (through /proc/sys/kernel/ns_last_pid; another process of the
/// host may take the pid first: then it is retried), then put the pid counter back where it
/// was if that moved it backwards (as tests/tests/audit.rs does). None if the pid could
/// not be had.
fn spawn_as_pid(pid: u32, mut cmd: Command) -> Option<Child> {
    let last_pid = "/proc/sys/kernel/ns_last_pid";
    let read = || -> u32 {
        std::fs::read_to_string(last_pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = read();
    let mut found = None;
    for _ in 0..50 {
        std::fs::write(last_pid, (pid - 1).to_string()).unwrap();
        let mut child = cmd.spawn().unwrap();
        if child.id() == pid {
            found = Some(child);
            break;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    if read() < before {
        std::fs::write(last_pid, before.to_string()).unwrap();
    }
    found
}

/// One pid, three instances while the agent looks away: two runs of the same program (same
/// comm, same exe) that bind and exit, then `sleep`, alive when the agent reads /proc. Each
/// record has its own instance's cmdline; sleep lends nothing.
#[test]
fn a_reused_pid_gets_each_instances_own_exec_identity() {
    let _one = one();
    let logs = dir("reuse");
    let log = logs.join("audit.jsonl");
    let t = audit(&log);
    stop(&t, libc::SIGSTOP);
    let mut first = helper(&["first"]).spawn().unwrap();
    let pid = first.id();
    assert!(first.wait().unwrap().success());
    let mut second = spawn_as_pid(pid, helper(&["second"])).expect("pid reuse");
    assert!(second.wait().unwrap().success());
    let mut sleeper = Command::new("/bin/sleep");
    sleeper.arg("30");
    let sleeper = spawn_as_pid(pid, sleeper);
    stop(&t, libc::SIGCONT);
    let mut sleeper = sleeper.expect("pid reuse");
    let recs = wait_records(&log, 2, |v| v["record"] == "open" && v["pid"] == pid);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(recs.len(), 2, "{recs:#?}");
    for (r, tag) in recs.iter().zip(["first", "second"]) {
        assert_eq!(r["identity"], "exec", "{r:#}");
        assert_eq!(r["exe"], helper_exe().as_str(), "{r:#}");
        assert_eq!(r["cmdline"], serde_json::json!([HELPER, tag]), "{r:#}");
        assert_eq!(r["comm"], COMM);
    }
    let _ = t.terminate();
}
