//! `lsn-trace report`, `audit --policy` and `check`, end to end: real logs written by
//! `lsn-trace audit` around real listeners this test opens (rotated by rename + SIGHUP,
//! gzip'd, across a stop and a restart), then questions asked of them.
use std::{
    io::{BufRead, BufReader, Write as _},
    net::{Ipv4Addr, Ipv6Addr},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use lsn_trace_tests::{
    Tracer, Value, bin,
    logs::{dir, wait_records},
    sock::*,
    tid,
};

/// `lsn-trace --pid ME audit --log PATH ARGS…`, once its snapshot is written.
fn start_audit(path: &Path, extra: &[&str]) -> Tracer {
    let me = std::process::id().to_string();
    let mut args = vec!["--pid", &me, "audit", "--log", path.to_str().unwrap()];
    args.extend(extra);
    let t = Tracer::start(&args);
    wait_records(path, 1, |v| v["record"] == "snapshot_end");
    t
}

fn stop(t: Tracer) {
    let (status, stderr) = t.terminate();
    assert!(status.success(), "{status:?} {stderr:#?}");
}

/// The wall clock now as RFC 3339 UTC with microseconds (what `--at` takes), from date(1).
fn now_rfc3339() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .expect("date (coreutils)");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A moment between two records: noted, with time on either side of it.
fn moment() -> String {
    std::thread::sleep(Duration::from_millis(300));
    let t = now_rfc3339();
    std::thread::sleep(Duration::from_millis(300));
    t
}

fn report(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("report")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `report --json ARGS`: its objects, split into listeners/entries and gap/note objects.
fn report_json(args: &[&str]) -> (Vec<Value>, Vec<Value>) {
    let mut a = vec!["--json"];
    a.extend(args);
    let out = report(&a);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "report {args:?}: {stderr}");
    let all: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    all.into_iter()
        .partition(|v| v["record"] != "gap" && v["record"] != "note")
}

fn tcp_listener(ip: Ipv4Addr) -> (Fd, u16) {
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&fd, &sin(ip, 0)).unwrap();
    listen(&fd, 8).unwrap();
    let p = local_port(&fd);
    (fd, p)
}

fn opened(log: &Path, port: u16) -> Value {
    wait_records(log, 1, |v| v["record"] == "open" && v["port"] == port)
        .pop()
        .unwrap()
}

fn gzip(path: &Path) {
    let ok = Command::new("gzip").arg("-f").arg(path).status().unwrap();
    assert!(ok.success(), "gzip {}", path.display());
}

#[test]
fn listeners_at_a_moment_across_rotation_restart_and_gap() {
    let d = dir("at");
    let log = d.join("audit.jsonl");
    let before = now_rfc3339();
    std::thread::sleep(Duration::from_millis(300));
    let a = start_audit(&log, &[]);
    let t_start = moment();
    let (l1, p1) = tcp_listener(Ipv4Addr::LOCALHOST);
    opened(&log, p1);
    let t_a = moment();
    // logrotate: rename, HUP; the close and the next open land in the new file.
    std::fs::rename(&log, d.join("audit.jsonl.1")).unwrap();
    unsafe { libc::kill(a.pid() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(Instant::now() < deadline, "no new log after SIGHUP");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(l1);
    wait_records(&log, 1, |v| v["record"] == "close" && v["port"] == p1);
    let (l2, p2) = tcp_listener(Ipv4Addr::LOCALHOST);
    opened(&log, p2);
    let t_b = moment();
    stop(a);
    // While the agent is not running: l2 closes, l3 opens.
    std::thread::sleep(Duration::from_millis(300));
    drop(l2);
    let t_gap = moment();
    let (_l3, p3) = tcp_listener(Ipv4Addr::LOCALHOST);
    std::thread::sleep(Duration::from_millis(300));
    // Second rotation: .1 → .2.gz, current → .1; the restarted agent writes a new file.
    std::fs::rename(d.join("audit.jsonl.1"), d.join("audit.jsonl.2")).unwrap();
    gzip(&d.join("audit.jsonl.2"));
    std::fs::rename(&log, d.join("audit.jsonl.1")).unwrap();
    let b = start_audit(&log, &[]);
    let t_c = moment();
    stop(b);
    // Given in the wrong order: read oldest first all the same.
    let logs: Vec<String> = ["audit.jsonl", "audit.jsonl.2.gz", "audit.jsonl.1"]
        .iter()
        .map(|n| d.join(n).to_str().unwrap().to_owned())
        .collect();
    let at = |t: &str, port: u16| {
        let p = port.to_string();
        let mut args: Vec<&str> = logs.iter().map(String::as_str).collect();
        args.extend(["--at", t, "--port", &p]);
        report_json(&args)
    };
    let me = std::process::id();

    let (rows, notes) = at(&before, p1);
    assert!(rows.is_empty(), "{rows:#?}");
    assert_eq!(notes[0]["kind"], "before-log", "{notes:#?}");
    assert!(at(&t_start, p1).0.is_empty(), "not open yet");

    let (rows, notes) = at(&t_a, p1);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["record"], "open");
    assert_eq!(rows[0]["event"], "listen");
    assert_eq!(rows[0]["addr"], "127.0.0.1");
    assert_eq!(rows[0]["port"], p1);
    assert_eq!(rows[0]["pid"], me);
    assert_eq!(rows[0]["verdict"], "loopback");
    assert_eq!(
        rows[0]["exe"],
        std::env::current_exe().unwrap().to_str().unwrap()
    );
    assert!(rows[0].get("uncertain").is_none());
    assert!(notes.is_empty(), "{notes:#?}");

    // After the HUP: the close was read from the new file.
    assert!(at(&t_b, p1).0.is_empty(), "closed by then");
    let (rows, _) = at(&t_b, p2);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["port"], p2);

    // Inside the gap: what was open before it, not found after it, is uncertain; what the
    // next snapshot found is "opened at an unknown time"; the gap is said.
    let (rows, notes) = at(&t_gap, p2);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let why = rows[0]["uncertain"].as_str().unwrap();
    assert!(why.contains("closed at an unknown time between"), "{why}");
    assert!(
        notes
            .iter()
            .any(|n| n["record"] == "gap" && n["kind"] == "not-running"),
        "{notes:#?}"
    );
    let (rows, _) = at(&t_gap, p3);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["record"], "snapshot");
    assert!(
        rows[0]["uncertain"]
            .as_str()
            .unwrap()
            .contains("opened at an unknown time before it"),
        "{rows:#?}"
    );

    // After the restart: the snapshot's view.
    let (rows, _) = at(&t_c, p3);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["record"], "snapshot");
    assert_eq!(rows[0]["pid"], me);
    assert!(rows[0].get("uncertain").is_none());
    assert!(at(&t_c, p2).0.is_empty());

    // Now (the log's end): the agent stopped, and the report says so.
    let mut args: Vec<&str> = logs.iter().map(String::as_str).collect();
    let p3s = p3.to_string();
    args.extend(["--port", &p3s]);
    let (rows, notes) = report_json(&args);
    assert_eq!(rows.len(), 1);
    assert!(
        notes.iter().any(|n| n["kind"] == "not-running"),
        "{notes:#?}"
    );

    // The human table: one aligned line, header first.
    let out = report(&args);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("Listeners now"), "{text}");
    assert!(lines[1].starts_with("PROTO  ADDRESS"), "{text}");
    assert!(
        lines[2].starts_with(&format!("tcp    127.0.0.1:{p3}")),
        "{text}"
    );
    assert!(lines[2].contains(&format!("[{me}]")), "{text}");
    assert!(lines[2].contains("snapshot"), "{text}");
    assert_eq!(lines[3], "1 listener matching", "{text}");

    // The diff: p1 disappeared, p3 appeared; p2 came and went in between.
    let diff = |port: u16| {
        let p = port.to_string();
        let mut args: Vec<&str> = logs.iter().map(String::as_str).collect();
        args.extend(["--diff", &t_a, &t_c, "--port", &p]);
        report_json(&args)
    };
    let (rows, notes) = diff(p1);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["diff"], "disappeared");
    assert!(
        notes.iter().any(|n| n["kind"] == "not-running"),
        "{notes:#?}"
    );
    let (rows, _) = diff(p3);
    assert_eq!(rows[0]["diff"], "appeared");
    assert!(diff(p2).0.is_empty());
}

#[test]
fn a_timeline_of_a_port_with_a_failure_and_its_holder_and_the_window() {
    let d = dir("timeline");
    let log = d.join("audit.jsonl");
    let a = start_audit(&log, &[]);
    let t0 = moment();
    let (holder, port) = tcp_listener(Ipv4Addr::LOCALHOST);
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    let err = bind(&fd, &sin(Ipv4Addr::LOCALHOST, port)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    let me = tid();
    wait_records(&log, 1, |v| v["record"] == "failed" && v["tid"] == me);
    drop(holder);
    wait_records(&log, 1, |v| v["record"] == "close" && v["port"] == port);
    stop(a);
    let p = port.to_string();
    let l = log.to_str().unwrap();

    let (entries, _) = report_json(&[l, "--timeline", "--port", &p]);
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["record"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["open", "failed", "close"], "{entries:#?}");
    assert_eq!(entries[1]["error"], "EADDRINUSE");
    assert_eq!(entries[1]["holders"][0]["pid"], std::process::id());
    assert_eq!(entries[2]["sock_id"], entries[0]["sock_id"]);

    let out = report(&[l, "--timeline", "--port", &p]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let holder = format!("{}[{}]", comm.trim(), std::process::id());
    assert!(lines[0].contains("  open     tcp    127.0.0.1:"), "{text}");
    assert!(lines[1].contains("  failed   tcp    127.0.0.1:"), "{text}");
    assert!(
        lines[1].ends_with(&format!(
            "EADDRINUSE, held by {holder} (LISTEN 127.0.0.1:{port})"
        )),
        "{text}"
    );
    assert!(lines[2].starts_with("    ↳ "), "the explanation: {text}");
    assert!(lines[3].contains("  close    tcp"), "{text}");

    // A timeline needs something to follow.
    let out = report(&[l, "--timeline"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--timeline follows one port"));

    // The window: one listener opened, one failure, counted.
    let (entries, _) = report_json(&[l, "--since", &t0, "--port", &p]);
    assert_eq!(entries.len(), 2, "{entries:#?}");
    assert_eq!(entries[0]["record"], "open");
    assert_eq!(entries[1]["record"], "failures");
    assert_eq!(entries[1]["count"], 1);
    assert_eq!(entries[1]["error"], "EADDRINUSE");
    let out = report(&[l, "--since", &t0, "--port", &p]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("1 listener opened, 1 failure between"),
        "{text}"
    );
    assert!(
        text.contains(&format!("1× EADDRINUSE tcp 127.0.0.1:{port} {holder}")),
        "{text}"
    );
}

#[test]
fn a_malformed_or_truncated_line_is_reported_with_file_and_line_and_the_rest_read() {
    let d = dir("malformed");
    let log = d.join("audit.jsonl");
    let a = start_audit(&log, &[]);
    let (_l1, p1) = tcp_listener(Ipv4Addr::LOCALHOST);
    opened(&log, p1);
    stop(a);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let open_at = lines
        .iter()
        .position(|l| l.contains("\"record\":\"open\""))
        .unwrap();
    // A line torn by a crash before the open (its start glued to nothing), and a last line
    // cut off.
    let torn = &lines[open_at][..40];
    lines.insert(open_at, torn);
    let mut bad = lines.join("\n");
    bad.push_str("\n{\"record\":\"open\",\"time\":\"2026-");
    let bad_path = d.join("bad.jsonl");
    std::fs::write(&bad_path, &bad).unwrap();
    let p = p1.to_string();
    let out = report(&["--json", bad_path.to_str().unwrap(), "--port", &p]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let name = bad_path.display();
    assert!(
        stderr.contains(&format!(
            "{name}:{}: not a whole audit record (",
            open_at + 1
        )),
        "{stderr}"
    );
    let last = lines.len() + 1;
    assert!(
        stderr.contains(&format!("{name}:{last}: not a whole audit record (")),
        "{stderr}"
    );
    assert!(stderr.contains("cut off, or being written"), "{stderr}");
    assert!(stderr.contains("2 line(s) could not be read"), "{stderr}");
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["record"] == "open")
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "the listener after the torn line is still read"
    );
    assert_eq!(rows[0]["port"], p1);
    // stdin works alike.
    let mut child = Command::new(bin())
        .args(["report", "--json", "-", "--port", &p])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bad.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("stdin:{}:", open_at + 1)));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("\"port\":{p1}")));
}

/// A python3 listener on 127.0.0.1:PORT (0: any) in the given cgroup v2 group, as uid.
struct Daemon {
    child: std::process::Child,
    port: u16,
}

impl Daemon {
    fn start(proto: &str, uid: u32, cgroup: Option<&Path>) -> Daemon {
        let script = format!(
            "import socket,sys\n\
             sys.stdin.readline()\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_{})\n\
             s.bind(('127.0.0.1',0))\n\
             {}\n\
             print(s.getsockname()[1],flush=True)\n\
             sys.stdin.read()\n",
            if proto == "udp" { "DGRAM" } else { "STREAM" },
            if proto == "udp" { "" } else { "s.listen(4)" },
        );
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", &script])
            .uid(uid)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(cg) = cgroup {
            std::fs::write(cg.join("cgroup.procs"), child.id().to_string()).unwrap();
        }
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Daemon {
            port: line.trim().parse().unwrap(),
            child,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cgroup v2 group named like a systemd service, in the host's cgroup2 hierarchy (mounted
/// for the test where nothing mounts it, as in the VM guests); removed on drop.
struct Unit {
    group: PathBuf,
    mounted: Option<PathBuf>,
}

impl Unit {
    fn create(name: &str, scratch: &Path) -> Unit {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let root = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        });
        let (root, mounted) = match root {
            Some(r) => (r, None),
            None => {
                let at = scratch.join("cgroup2");
                std::fs::create_dir_all(&at).unwrap();
                let ok = Command::new("mount")
                    .args(["-t", "cgroup2", "none"])
                    .arg(&at)
                    .status()
                    .unwrap();
                assert!(ok.success(), "mount -t cgroup2 on {}", at.display());
                (at.clone(), Some(at))
            }
        };
        let group = root.join(name);
        std::fs::create_dir_all(&group).unwrap();
        Unit { group, mounted }
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.group);
        if let Some(at) = &self.mounted {
            let _ = Command::new("umount").arg("-l").arg(at).status();
        }
    }
}

#[test]
fn policy_decisions_for_each_rule_kind_in_audit_report_and_check() {
    let d = dir("policy");
    let log = d.join("audit.jsonl");
    let unit_name = format!("lsn-report-{}.service", std::process::id());
    let unit = Unit::create(&unit_name, &d);
    let comm = std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_owned();
    let exe = std::env::current_exe().unwrap();
    let policy = d.join("policy.toml");
    // Listeners, each meant for one rule: by this process (exe, comm, addr, scope,
    // protocol, port), by python3 as nobody (user), python3 in a unit (unit).
    let (_a, pa) = tcp_listener(Ipv4Addr::new(127, 0, 0, 2));
    let (_b, pb) = tcp_listener(Ipv4Addr::LOCALHOST);
    let u = socket(libc::AF_INET6, libc::SOCK_DGRAM);
    bind(&u, &sin6(Ipv6Addr::LOCALHOST, 0, 0)).unwrap();
    let pu = local_port(&u);
    let (_e, pe) = tcp_listener(Ipv4Addr::LOCALHOST);
    let (_f, pf) = tcp_listener(Ipv4Addr::LOCALHOST);
    std::fs::write(
        &policy,
        format!(
            "default = \"alert\"\n\
             [[rule]]\nname = \"by-addr\"\ndecision = \"alert\"\naddr = \"127.0.0.2/32\"\n\
             [[rule]]\nname = \"by-exe\"\ndecision = \"allow\"\nexe = \"{}\"\nport = {pb}\n\
             [[rule]]\nname = \"by-protocol\"\ndecision = \"allow\"\nprotocol = \"udp\"\nport = \"{pu}-{pu}\"\n\
             [[rule]]\nname = \"by-comm\"\ndecision = \"allow\"\ncomm = \"{comm}\"\nport = \"1,{pe}\"\n\
             [[rule]]\nname = \"by-user\"\ndecision = \"allow\"\nuser = \"nobody\"\n\
             [[rule]]\nname = \"by-unit\"\ndecision = \"allow\"\nunit = \"{unit_name}\"\n\
             [[rule]]\nname = \"by-image\"\ndecision = \"allow\"\nimage = \"*\"\n\
             [[rule]]\nname = \"by-namespace\"\ndecision = \"allow\"\nk8s_namespace = \"*\"\n\
             [[rule]]\nname = \"by-scope\"\ndecision = \"alert\"\nscope = \"loopback\"\nport = {pf}\n",
            exe.display()
        ),
    )
    .unwrap();
    // pa, pb, pu, pe, pf exist before the agent starts: snapshot records. The daemons
    // open after: open records.
    let t = Tracer::start(&[
        "audit",
        "--log",
        log.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    wait_records(&log, 1, |v| v["record"] == "snapshot_end");
    let nobody = Daemon::start("tcp", 65534, None);
    let in_unit = Daemon::start("udp", 0, Some(&unit.group));
    let (pn, pi) = (nobody.port, in_unit.port);
    let decided = |port: u16| -> Value {
        wait_records(&log, 1, |v| {
            (v["record"] == "open" || v["record"] == "snapshot")
                && (v["bound_port"] == port || v["port"] == port)
                && v["addr"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("127.") || a == "::1")
        })
        .pop()
        .unwrap()
    };
    let expect = [
        (pa, "alert", "by-addr", "snapshot"),
        (pb, "allow", "by-exe", "snapshot"),
        (pu, "allow", "by-protocol", "snapshot"),
        (pe, "allow", "by-comm", "snapshot"),
        (pf, "alert", "by-scope", "snapshot"),
        (pn, "allow", "by-user", "open"),
        (pi, "allow", "by-unit", "open"),
    ];
    for (port, decision, rule, record) in expect {
        let r = decided(port);
        assert_eq!(r["record"], record, "{r:#}");
        assert_eq!(
            r["policy"],
            serde_json::json!({"decision": decision, "rule": rule}),
            "port {port}: {r:#}"
        );
    }
    assert_eq!(decided(pi)["systemd_unit"], unit_name.as_str());
    // One alert record per listener not allowed, with its keys, and a line on stderr.
    let alerts = wait_records(&log, 2, |v| {
        v["record"] == "alert" && (v["port"] == pa || v["port"] == pf)
    });
    assert!(
        alerts
            .iter()
            .all(|a| a["alert_of"] == "snapshot" && a["pid"] == std::process::id())
    );
    t.wait_stderr(
        &format!("ALERT: not allowed by the policy (by-addr): {comm}["),
        Duration::from_secs(5),
    );
    stop(t);

    // Applied after the fact, a policy written today decides again.
    let later = d.join("later.toml");
    std::fs::write(
        &later,
        format!("default = \"allow\"\n[[rule]]\ndecision = \"alert\"\nport = {pb}\n"),
    )
    .unwrap();
    let l = log.to_str().unwrap();
    for (port, decision, rule) in [(pb, "alert", "#1"), (pa, "allow", "default")] {
        let p = port.to_string();
        let (rows, _) = report_json(&[l, "--port", &p, "--policy", later.to_str().unwrap()]);
        let r = rows
            .iter()
            .find(|r| r["addr"].as_str().unwrap().starts_with("127."))
            .unwrap();
        assert_eq!(
            r["policy"],
            serde_json::json!({"decision": decision, "rule": rule})
        );
    }
    // Without --policy, the record's own decision (audit's) is kept.
    let p = pa.to_string();
    let (rows, _) = report_json(&[l, "--port", &p]);
    assert_eq!(rows[0]["policy"]["rule"], "by-addr");

    // check: the live host now. Our listener on pf alerts; allowing all passes.
    let out = Command::new(bin())
        .args(["check", "--json", "--policy", policy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let r = rows
        .iter()
        .find(|r| r["port"] == pf && r["addr"] == "127.0.0.1")
        .unwrap();
    assert_eq!(
        r["policy"],
        serde_json::json!({"decision": "alert", "rule": "by-scope"})
    );
    assert_eq!(r["pid"], std::process::id());
    let all = d.join("all.toml");
    std::fs::write(&all, "default = \"allow\"\n").unwrap();
    let out = Command::new(bin())
        .args(["check", "--policy", all.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(" listeners not allowed by"));
    drop((nobody, in_unit, u));
}

#[test]
fn a_malformed_policy_is_an_error_with_line_and_column_before_anything_runs() {
    let d = dir("badpolicy");
    let bad = d.join("bad.toml");
    std::fs::write(
        &bad,
        "default = \"alert\"\n[[rule]]\ndecision = \"allow\"\nport = \"80-x\"\n",
    )
    .unwrap();
    let where_ = format!("{}:4:8: `x` is not a port", bad.display());
    let log = d.join("audit.jsonl");
    let audit = Command::new(bin())
        .args([
            "audit",
            "--log",
            log.to_str().unwrap(),
            "--policy",
            bad.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&audit.stderr);
    assert_eq!(audit.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&where_), "{stderr}");
    assert!(!stderr.contains("attached"), "{stderr}");
    assert!(!log.exists(), "no log created for a run that cannot start");
    let check = Command::new(bin())
        .args(["check", "--policy", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&check.stderr).contains(&where_));
    std::fs::write(&log, "").unwrap();
    let rep = report(&[log.to_str().unwrap(), "--policy", bad.to_str().unwrap()]);
    assert_eq!(rep.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&rep.stderr).contains(&where_));
}
