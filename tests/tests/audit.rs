//! `lsn-trace audit --log PATH`, end to end: the real binary writing a real file, real
//! daemons (python3 as another user), real rotation by rename + SIGHUP.
use std::{
    io::{BufRead, BufReader},
    net::Ipv4Addr,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{OnceLock, RwLock, RwLockReadGuard},
    time::{Duration, Instant},
};

use lsn_trace_tests::{
    Tracer, Value, bin,
    logs::{dir, final_records, start_audit, wait_records},
    sock::*,
    tid,
};

/// The lost-events test floods the ring buffer of every lsn-trace this process started
/// (they all see its binds): the other tests hold this shared, it holds it exclusively.
static FLOOD: RwLock<()> = RwLock::new(());

fn calm() -> RwLockReadGuard<'static, ()> {
    FLOOD.read().unwrap_or_else(|e| e.into_inner())
}

fn netns_inode(pid: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino()
}

/// One audit instance (on stdout, read by the harness) for the tests that only add
/// records of their own. On stdout, it also ends when the test binary does.
fn shared() -> &'static Tracer {
    static S: OnceLock<Tracer> = OnceLock::new();
    S.get_or_init(|| {
        let t = Tracer::start(&["audit"]);
        // Until the snapshot is written: a test's listener that the snapshot also finds has
        // its identity read (and cached) there first, and its open record then says
        // "cached", not "live" (CI saw it).
        t.wait_n(1, Duration::from_secs(20), |v| {
            v["record"] == "snapshot_end"
        });
        t
    })
}

/// The snapshot's errors but those of namespaces that vanished before they were entered:
/// other tests make and delete namespaces while a snapshot lists them (its path is gone: no
/// refusal, and nothing listens there any more).
fn snapshot_refusals(end: &Value) -> Vec<&Value> {
    end["errors"]
        .as_array()
        .expect("snapshot_end has errors")
        .iter()
        .filter(|e| {
            !e.as_str()
                .is_some_and(|e| e.contains("No such file or directory"))
        })
        .collect()
}

fn wait(t: &Tracer, pred: impl Fn(&Value) -> bool) -> Value {
    t.wait_n(1, Duration::from_secs(20), pred).pop().unwrap()
}

fn user_name(uid: u32) -> String {
    let pw = unsafe { libc::getpwuid(uid) };
    assert!(!pw.is_null(), "uid {uid} has no passwd entry");
    unsafe { std::ffi::CStr::from_ptr((*pw).pw_name) }
        .to_string_lossy()
        .into_owned()
}

/// python3 from the system (not a pyenv shim): its exe link is what the record must name.
const PYTHON: &str = "/usr/bin/python3";

#[test]
fn a_daemon_of_another_user_opens_and_closes_a_listener_with_its_identity() {
    let _calm = calm();
    let s = shared();
    let marker = format!("lsn-audit-daemon-{}", std::process::id());
    // Listens, says on which port, and exits (closing the listener) when stdin closes.
    let script = "import socket,sys\n\
                  s=socket.socket()\n\
                  s.bind(('127.0.0.1',0))\n\
                  s.listen(7)\n\
                  print(s.getsockname()[1],flush=True)\n\
                  sys.stdin.read()\n";
    let mut child = Command::new(PYTHON)
        .args(["-c", script, &marker])
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let pid = child.id();
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port: u16 = port.trim().parse().expect("python printed its port");
    let open = wait(s, |v| v["record"] == "open" && v["pid"] == pid);
    drop(child.stdin.take());
    child.wait().unwrap();
    let close = wait(s, |v| v["record"] == "close" && v["port"] == port);

    let exe = std::fs::canonicalize(PYTHON).unwrap();
    let cmdline = serde_json::json!([PYTHON, "-c", script, marker]);
    assert_eq!(open["event"], "listen");
    assert_eq!(open["protocol"], "tcp");
    assert_eq!(open["addr"], "127.0.0.1");
    assert_eq!(open["port"], port);
    assert_eq!(open["backlog"], 7);
    assert_eq!(open["uid"], 65534);
    assert_eq!(open["user"], user_name(65534));
    assert_eq!(open["ppid"], std::process::id());
    assert_eq!(open["comm"], "python3");
    assert_eq!(open["exe"], exe.to_str().unwrap());
    assert_eq!(open["cmdline"], cmdline);
    assert_eq!(open["identity"], "live");
    assert!(open["cgroup"].as_str().is_some_and(|c| c.starts_with('/')));
    assert_eq!(open["netns"], netns_inode("self"));

    // Closed as the process exits: /proc no longer has its exe by then, the record still
    // names it (from what was read at open).
    assert_eq!(close["pid"], pid);
    assert_eq!(close["sock_id"], open["sock_id"]);
    assert_eq!(close["event"], "close");
    assert_eq!(close["addr"], "127.0.0.1");
    assert_eq!(close["uid"], 65534);
    assert_eq!(close["user"], user_name(65534));
    assert_eq!(close["exe"], open["exe"]);
    assert_eq!(close["cmdline"], cmdline);
    assert_eq!(close["cgroup"], open["cgroup"]);
    assert!(
        close["identity"] == "cached" || close["identity"] == "live",
        "{close:#}"
    );
}

#[test]
fn a_failed_bind_is_recorded_with_the_error_and_who_asked() {
    let _calm = calm();
    let s = shared();
    let holder = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&holder, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&holder, 1).unwrap();
    let port = local_port(&holder);
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    let err = bind(&fd, &sin(Ipv4Addr::LOCALHOST, port)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    let me = tid();
    let f = wait(s, |v| v["record"] == "failed" && v["tid"] == me);
    assert_eq!(f["event"], "bind");
    assert_eq!(f["error"], "EADDRINUSE");
    assert_eq!(f["errno"], libc::EADDRINUSE);
    assert_eq!(f["addr"], "127.0.0.1");
    assert_eq!(f["port"], port);
    assert_eq!(f["fd"], s.fd_json(fd.0));
    assert_eq!(
        f["inode"],
        inode(&fd),
        "the socket's inode, on every backend"
    );
    assert_eq!(f["pid"], std::process::id());
    assert_eq!(f["uid"], 0);
    assert_eq!(f["user"], user_name(0));
    // Read for this event, or within the second before for an earlier one of ours.
    assert!(
        f["identity"] == "live" || f["identity"] == "cached",
        "{f:#}"
    );
    assert_eq!(
        f["exe"],
        std::env::current_exe().unwrap().to_str().unwrap(),
        "{f:#}"
    );
    // The holder's open is in the log too; the failed socket never opened anything.
    let opens = s.seen(|v| v["record"] == "open" && v["tid"] == me);
    assert_eq!(opens.len(), 1, "{opens:#?}");
    assert_eq!(opens[0]["port"], port);
}

/// A listen() that fails in get_port (the kernel moves its socket CLOSE → LISTEN → CLOSE
/// inside the call) is a `failed` record, and no `close`: the socket never listened.
#[test]
fn a_failed_listen_writes_no_close_record() {
    let _calm = calm();
    let s = shared();
    let (holder, loser) = failed_listen();
    let me = tid();
    let (holder_ino, loser_ino) = (inode(&holder), inode(&loser));
    let f = wait(s, |v| v["record"] == "failed" && v["inode"] == loser_ino);
    assert_eq!(f["event"], "listen");
    assert_eq!(f["error"], "EADDRINUSE");
    drop(holder);
    let c = wait(s, |v| v["record"] == "close" && v["inode"] == holder_ino);
    assert_eq!(c["tid"], me);
    drop(loser);
    std::thread::sleep(Duration::from_millis(300));
    let ghost = s.seen(|v| v["record"] == "close" && v["inode"] == loser_ino);
    assert!(ghost.is_empty(), "{ghost:#?}");
}

/// UDP binds from this thread: each is an `open` record. Returns their ports.
fn udp_binds(n: usize, keep: &mut Vec<Fd>) -> Vec<u16> {
    (0..n)
        .map(|_| {
            let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
            bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
            let p = local_port(&fd);
            // Kept open so no port repeats within the test.
            keep.push(fd);
            p
        })
        .collect()
}

#[test]
fn sighup_after_rename_moves_to_a_new_file_and_loses_nothing() {
    let _calm = calm();
    let d = dir("rotate");
    let log = d.join("audit.jsonl");
    let rotated = d.join("audit.jsonl.1");
    let t = start_audit(&log);
    let me = tid();
    let ours = |v: &Value| v["record"] == "open" && v["tid"] == me;
    let mut keep = Vec::new();
    let mut ports = udp_binds(100, &mut keep);
    wait_records(&log, 100, ours);
    // logrotate: rename, (more records land in the renamed file), then HUP.
    std::fs::rename(&log, &rotated).unwrap();
    ports.extend(udp_binds(100, &mut keep));
    unsafe { libc::kill(t.pid() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(Instant::now() < deadline, "no new log file after SIGHUP");
        std::thread::sleep(Duration::from_millis(20));
    }
    ports.extend(udp_binds(100, &mut keep));
    wait_records(&log, 100, ours);
    let (status, stderr) = t.terminate();
    assert!(status.success(), "{status:?} {stderr:#?}");

    let old = final_records(&rotated);
    let new = final_records(&log);
    assert_eq!(old[0]["record"], "start");
    assert_eq!(
        new.last().unwrap()["record"],
        "stop",
        "SIGTERM flushes a stop record"
    );
    let mut seen: Vec<u16> = old
        .iter()
        .chain(&new)
        .filter(|v| ours(v))
        .map(|v| v["bound_port"].as_u64().unwrap() as u16)
        .collect();
    assert_eq!(seen.len(), 300, "every bind once, across both files");
    assert!(
        new.iter().filter(|v| ours(v)).count() >= 100,
        "what came after the HUP is in the new file"
    );
    seen.sort_unstable();
    ports.sort_unstable();
    assert_eq!(seen, ports);
    for p in [&log, &rotated] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", p.display());
    }
}

#[test]
fn an_existing_log_is_appended_to_never_truncated() {
    let _calm = calm();
    let d = dir("append");
    let log = d.join("audit.jsonl");
    let before = "{\"record\":\"from an earlier run\"}\n";
    std::fs::write(&log, before).unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600)).unwrap();
    let t = start_audit(&log);
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let me = tid();
    wait_records(&log, 1, |v| v["record"] == "open" && v["tid"] == me);
    let (status, _) = t.terminate();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with(before), "{text}");
    let recs = final_records(&log);
    assert_eq!(recs[1]["record"], "start");
    assert_eq!(recs.last().unwrap()["record"], "stop");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the mode of an existing log is the admin's choice"
    );
}

#[test]
fn an_unwritable_log_path_is_a_clear_error() {
    let _calm = calm();
    let d = dir("unwritable");
    for (path, errno) in [
        (d.join("no-such-dir").join("audit.jsonl"), "ENOENT"),
        (d.to_path_buf(), "EISDIR"),
    ] {
        let out = Command::new(bin())
            .args(["audit", "--log", path.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "cannot open the audit log {}: {errno}",
                path.display()
            )),
            "{stderr}"
        );
        assert!(!stderr.contains("attached"), "nothing loaded: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// `lsn-trace audit --log PATH` that must refuse to start: its stderr (exit 1, nothing
/// loaded, nothing on stdout).
fn refused_start(path: &Path, uid: Option<u32>) -> String {
    let mut cmd = Command::new(bin());
    cmd.args(["audit", "--log", path.to_str().unwrap()])
        .stdin(Stdio::null());
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("attached"), "nothing loaded: {stderr}");
    assert!(out.stdout.is_empty());
    stderr
}

#[test]
fn a_symlink_planted_by_another_user_is_refused_and_its_target_untouched() {
    use std::os::unix::fs::MetadataExt;
    let _calm = calm();
    let d = dir("symlink");
    // /tmp-like: world-writable and sticky, where `nobody` can plant names.
    let public = d.join("public");
    std::fs::create_dir(&public).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let secret = d.join("root-only");
    std::fs::write(&secret, "secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = public.join("audit.jsonl");
    // Planted by nobody, as a hostile local user would.
    let st = Command::new("ln")
        .arg("-s")
        .arg(&secret)
        .arg(&log)
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(st.success());
    let stderr = refused_start(&log, None);
    assert!(
        stderr.contains(&format!("refusing the audit log {}", log.display()))
            && stderr.contains("is a symbolic link"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret\n");

    // A regular file planted there by nobody: not ours, refused.
    std::fs::remove_file(&log).unwrap();
    let st = Command::new("touch")
        .arg(&log)
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(st.success());
    let stderr = refused_start(&log, None);
    assert!(
        stderr.contains("is owned by uid 65534, not by uid 0"),
        "{stderr}"
    );
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);

    // A hard link to a file of ours (two names: one may be someone else's to read).
    std::fs::remove_file(&log).unwrap();
    let mine = d.join("mine.jsonl");
    std::fs::write(&mine, "").unwrap();
    std::fs::hard_link(&mine, &log).unwrap();
    let stderr = refused_start(&log, None);
    assert!(stderr.contains("has 2 hard links"), "{stderr}");

    // A directory others can write without the sticky bit: they could swap the file.
    let open_dir = d.join("open");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let stderr = refused_start(&open_dir.join("audit.jsonl"), None);
    assert!(
        stderr.contains("is writable by everyone (mode 0777, not sticky)"),
        "{stderr}"
    );
    assert!(!open_dir.join("audit.jsonl").exists(), "nothing created");

    // A directory owned by another user.
    let theirs = d.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let stderr = refused_start(&theirs.join("audit.jsonl"), None);
    assert!(stderr.contains("is owned by uid 65534"), "{stderr}");
    assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), 65534);
}

#[test]
fn a_run_that_cannot_start_creates_no_file() {
    let _calm = calm();
    let d = dir("nobody");
    std::fs::set_permissions(&*d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let log = d.join("audit.jsonl");
    let stderr = refused_start(&log, Some(65534));
    assert!(stderr.contains("needs root"), "{stderr}");
    assert!(!log.exists(), "no 0-byte file left behind");
}

#[test]
fn an_existing_log_others_can_read_or_write_is_made_private_and_said() {
    let _calm = calm();
    let d = dir("mode0666");
    let log = d.join("audit.jsonl");
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    let t = start_audit(&log);
    wait_records(&log, 1, |v| v["record"] == "snapshot_end");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    let (status, stderr) = t.terminate();
    assert!(status.success());
    let msg = format!("mode of {} changed from 0666 to 0640", log.display());
    assert!(stderr.iter().any(|l| l.contains(&msg)), "{stderr:#?}");
}

#[test]
fn a_torn_last_line_is_ended_so_the_start_record_is_a_line_of_its_own() {
    let _calm = calm();
    let d = dir("torn");
    let log = d.join("audit.jsonl");
    let torn = "{\"record\":\"open\",\"a\":1}\n{\"record\":\"op";
    std::fs::write(&log, torn).unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640)).unwrap();
    let t = start_audit(&log);
    let (status, stderr) = t.terminate();
    assert!(status.success());
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("ended in the middle of a record")),
        "{stderr:#?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let after = text.strip_prefix(torn).unwrap();
    let mut lines = after
        .strip_prefix('\n')
        .expect("the torn line ended")
        .lines();
    let start: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(start["record"], "start");
    for l in lines {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
}

#[test]
fn a_log_deleted_while_running_is_noticed_and_created_again() {
    let _calm = calm();
    let d = dir("deleted");
    let log = d.join("audit.jsonl");
    let t = start_audit(&log);
    let me = tid();
    let mut keep = Vec::new();
    wait_records(&log, 1, |v| v["record"] == "snapshot_end");
    std::fs::remove_file(&log).unwrap();
    let ports = udp_binds(3, &mut keep);
    let recs = wait_records(&log, 3, |v| v["record"] == "open" && v["tid"] == me);
    let seen: Vec<u64> = recs
        .iter()
        .map(|v| v["bound_port"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seen,
        ports.iter().map(|&p| u64::from(p)).collect::<Vec<_>>()
    );
    let (status, stderr) = t.terminate();
    assert!(status.success());
    let all = final_records(&log);
    assert_eq!(all[0]["record"], "log_deleted", "{all:#?}");
    assert_eq!(all[0]["log"], log.to_str().unwrap());
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let msg = format!("AUDIT LOG {} WAS DELETED while in use", log.display());
    assert!(stderr.iter().any(|l| l.contains(&msg)), "{stderr:#?}");
}

#[test]
fn without_log_records_go_to_stdout() {
    let _calm = calm();
    // The harness reads stdout as JSON Lines (and adds --json, which audit ignores).
    let t = Tracer::start(&["audit"]);
    t.wait_n(1, Duration::from_secs(20), |v| v["record"] == "start");
    let fd = socket(libc::AF_INET6, libc::SOCK_DGRAM);
    bind(&fd, &sin6(std::net::Ipv6Addr::LOCALHOST, 0, 0)).unwrap();
    let me = tid();
    let o = t
        .wait_n(1, Duration::from_secs(20), |v| {
            v["record"] == "open" && v["tid"] == me
        })
        .pop()
        .unwrap();
    assert_eq!(o["protocol"], "udp");
    assert_eq!(o["addr"], "::1");
    assert_eq!(o["bound_port"], local_port(&fd));
    // A HUP has no file to reopen here, and must not end the run.
    unsafe { libc::kill(t.pid() as i32, libc::SIGHUP) };
    let fd2 = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&fd2, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    t.wait_n(2, Duration::from_secs(20), |v| {
        v["record"] == "open" && v["tid"] == me
    });
    let (status, _) = t.terminate();
    assert!(status.success());
    assert_eq!(
        t.seen(|v| v["record"] == "stop").len(),
        1,
        "SIGTERM ends with a stop record"
    );
}

/// A named network namespace (`ip netns add`) with a python3 listening on [::]:4242 in it;
/// both removed on drop.
struct NetnsDaemon {
    name: String,
    child: std::process::Child,
}

impl NetnsDaemon {
    fn start(tag: &str) -> NetnsDaemon {
        let name = format!("lsnt-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip (iproute2)");
        assert!(ok.success(), "ip netns add {name}");
        let script = "import socket,sys\n\
                      s=socket.socket(socket.AF_INET6)\n\
                      s.bind(('::',4242))\n\
                      s.listen(3)\n\
                      print('ready',flush=True)\n\
                      sys.stdin.read()\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", &name, PYTHON, "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        NetnsDaemon { name, child }
    }
}

impl Drop for NetnsDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn the_snapshot_lists_listeners_that_existed_before_start_in_every_namespace() {
    let _calm = calm();
    // Before lsn-trace starts: a TCP listener, a bound UDP socket and a unix listener of
    // this process, and a daemon in a namespace of its own.
    let tcp = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&tcp, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&tcp, 5).unwrap();
    let udp = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&udp, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let d = dir("snapshot");
    let unix_path = d.join("listener.sock");
    let ux = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    let (sun, len) = sun_path(unix_path.to_str().unwrap().as_bytes());
    bind_raw(&ux, &sun, len).unwrap();
    listen(&ux, 5).unwrap();
    let daemon = NetnsDaemon::start("snap");
    let their_ns = netns_inode(&daemon.child.id().to_string());
    assert_ne!(their_ns, netns_inode("self"));

    let t = Tracer::start(&["audit"]);
    let end = wait(&t, |v| v["record"] == "snapshot_end");
    let all = t.seen(|_| true);
    let snaps: Vec<&Value> = all.iter().filter(|v| v["record"] == "snapshot").collect();
    let pos = |v: &Value| all.iter().position(|x| x == v).unwrap();
    assert_eq!(
        all[0]["record"], "start",
        "the log begins with the start record"
    );
    assert!(snaps.iter().all(|v| pos(v) < pos(&end)));
    assert_eq!(snapshot_refusals(&end), Vec::<&Value>::new(), "{end}");
    assert!(end["namespaces"].as_u64().unwrap() >= 2, "{end}");
    assert_eq!(end["listeners"], snaps.len());

    let me = std::process::id();
    let exe = std::env::current_exe().unwrap();
    let find = |pred: &dyn Fn(&Value) -> bool| -> Value {
        snaps
            .iter()
            .find(|v| pred(v))
            .map(|v| (*v).clone())
            .unwrap_or_else(|| panic!("not in the snapshot: {snaps:#?}"))
    };
    let l = find(&|v| v["protocol"] == "tcp" && v["port"] == local_port(&tcp));
    assert_eq!(l["event"], "listen");
    assert_eq!(l["state"], "LISTEN");
    assert_eq!(l["addr"], "127.0.0.1");
    assert_eq!(l["pid"], me);
    assert_eq!(l["exe"], exe.to_str().unwrap());
    assert_eq!(l["uid"], 0);
    assert_eq!(l["user"], user_name(0));
    assert_eq!(l["netns"], netns_inode("self"));
    assert_eq!(l["source"], "sock_diag");
    assert_eq!(
        l["verdict"], "loopback",
        "the story's keys, as for an event"
    );
    let summary = l["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("[{me}] LISTEN tcp 127.0.0.1:{}", local_port(&tcp))),
        "{summary}"
    );
    assert_eq!(l["sock_id"], Value::Null);

    let u = find(&|v| v["protocol"] == "udp" && v["port"] == local_port(&udp));
    assert_eq!(u["state"], "UNCONN");
    assert_eq!(u["addr"], "127.0.0.1");
    assert_eq!(u["pid"], me);

    let x = find(&|v| v["addr"] == unix_path.to_str().unwrap());
    assert_eq!(x["protocol"], "u_str");
    assert_eq!(x["state"], "LISTEN");
    assert_eq!(x["source"], "proc_net_unix");
    assert_eq!(x["pid"], me);

    let n = find(&|v| v["netns"] == their_ns && v["port"] == 4242);
    assert_eq!(n["protocol"], "tcp");
    assert_eq!(n["addr"], "::");
    assert_eq!(n["pid"], daemon.child.id());
    assert_eq!(n["comm"], "python3");
    assert_eq!(
        n["exe"],
        std::fs::canonicalize(PYTHON).unwrap().to_str().unwrap()
    );
    let (status, _) = t.terminate();
    assert!(status.success());
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(at: PathBuf, size: &str) -> SmallFs {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs on {}", at.display());
        SmallFs(at)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_reported_loudly_and_nothing_is_lost_once_space_returns() {
    let _calm = calm();
    let d = dir("full");
    let fs = SmallFs::mount(d.join("mnt"), "4m");
    let log = fs.0.join("audit.jsonl");
    // Fill the file system to the last byte.
    let filler = fs.0.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![b'x'; 4096];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
                    break;
                }
            }
        }
    }
    let t = start_audit(&log);
    let me = tid();
    let ours = |v: &Value| v["record"] == "open" && v["tid"] == me;
    let mut keep = Vec::new();
    let mut ports = udp_binds(50, &mut keep);
    let alarm = t.wait_stderr("CANNOT BE WRITTEN", Duration::from_secs(20));
    assert!(alarm.contains(log.to_str().unwrap()), "{alarm}");
    assert!(alarm.contains("No space left on device"), "{alarm}");
    assert!(alarm.contains("tracing continues"), "{alarm}");
    ports.extend(udp_binds(50, &mut keep));
    // Still tracing, still holding: free the space and everything arrives, in order.
    std::fs::remove_file(&filler).unwrap();
    wait_records(&log, 100, ours);
    t.wait_stderr("writable again", Duration::from_secs(20));
    let (status, stderr) = t.terminate();
    assert!(status.success(), "{stderr:#?}");
    let recs = final_records(&log);
    assert_eq!(recs[0]["record"], "start", "held records keep their order");
    assert_eq!(recs.last().unwrap()["record"], "stop");
    let mut seen: Vec<u16> = recs
        .iter()
        .filter(|v| ours(v))
        .map(|v| v["bound_port"].as_u64().unwrap() as u16)
        .collect();
    seen.sort_unstable();
    ports.sort_unstable();
    assert_eq!(seen, ports, "each bind exactly once");
}

fn unit_file() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/lsn-trace-audit.service");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The capabilities a unit line grants, as setpriv names them (`bpf`, `sys_admin`, …).
fn unit_caps(unit: &str, key: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"));
    line.split_whitespace()
        .map(|c| c.strip_prefix("CAP_").unwrap().to_lowercase())
        .collect()
}

#[test]
fn the_unit_file_verifies() {
    let _calm = calm();
    let d = dir("unit");
    // verify checks that ExecStart's binary exists: point it at the one under test.
    let unit = unit_file().replace("/usr/local/bin/lsn-trace", bin().to_str().unwrap());
    let path = d.join("lsn-trace-audit.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (installed by cargo xtask setup)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("lsn-trace-audit.service"),
        "warnings: {stderr}"
    );
}

/// Run `lsn-trace --pid ME audit --log PATH` with only `caps` in its bounding set (what
/// the unit's CapabilityBoundingSet does), until its snapshot is written and one UDP bind
/// of ours is recorded; returns the snapshot_end record and the records.
fn audit_with_caps(caps: &[String], log: &Path) -> (Value, Vec<Value>) {
    audit_sandboxed(caps, &[], log)
}

/// `audit_with_caps`, lsn-trace started through `wrapper` (a command that execs its
/// arguments) inside the reduced bounding set.
fn audit_sandboxed(caps: &[String], wrapper: &[&str], log: &Path) -> (Value, Vec<Value>) {
    let set = format!(
        "-all,{}",
        caps.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let me = std::process::id().to_string();
    let mut child = Command::new("setpriv")
        .arg(format!("--bounding-set={set}"))
        .args(wrapper)
        .arg(bin())
        .args(["--pid", &me, "audit", "--log", log.to_str().unwrap()])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux)");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("lsn-trace with {set} exited before attaching: {seen}");
        }
        seen.push_str(&line);
        if line.contains("lsn-trace: attached") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let end = wait_records(log, 1, |v| v["record"] == "snapshot_end")
        .pop()
        .unwrap();
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM);
    bind(&fd, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = local_port(&fd);
    wait_records(log, 1, |v| v["record"] == "open" && v["bound_port"] == port);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    (end, final_records(log))
}

#[test]
fn the_units_capabilities_suffice_and_sys_admin_serves_only_other_namespaces() {
    let _calm = calm();
    let unit = unit_file();
    let caps = unit_caps(&unit, "CapabilityBoundingSet");
    assert_eq!(caps, unit_caps(&unit, "AmbientCapabilities"));
    assert!(caps.contains(&"sys_admin".to_owned()));
    let daemon = NetnsDaemon::start("caps");
    let theirs = netns_inode(&daemon.child.id().to_string());
    let d = dir("caps");

    let (end, recs) = audit_with_caps(&caps, &d.join("all.jsonl"));
    assert_eq!(snapshot_refusals(&end), Vec::<&Value>::new(), "{end}");
    let n = recs
        .iter()
        .find(|v| v["record"] == "snapshot" && v["netns"] == theirs && v["port"] == 4242)
        .unwrap_or_else(|| panic!("the other namespace's listener: {recs:#?}"));
    // With CAP_SYS_PTRACE, the identity of the owner is readable.
    assert_eq!(
        n["exe"],
        std::fs::canonicalize(PYTHON).unwrap().to_str().unwrap()
    );

    let without: Vec<String> = caps.into_iter().filter(|c| c != "sys_admin").collect();
    // Debian's kernels default to kernel.perf_event_paranoid=3, a Debian patch that refuses
    // perf_event_open (how tracepoints attach) without CAP_SYS_ADMIN: there the live trace
    // needs it too, and the reduced set must fail to start, loudly.
    if lsn_trace_tests::read_sysctl("kernel/perf_event_paranoid") > 2 {
        let out = Command::new("setpriv")
            .arg(format!(
                "--bounding-set=-all,{}",
                without
                    .iter()
                    .map(|c| format!("+{c}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ))
            .arg(bin())
            // tracepoints: fentry attaches through bpf links, which this sysctl does not gate
            .args([
                "--backend",
                "tracepoint",
                "--pid",
                &std::process::id().to_string(),
                "audit",
                "--log",
            ])
            .arg(d.join("less.jsonl"))
            .stdin(Stdio::null())
            .output()
            .expect("setpriv (util-linux)");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("lsn-trace: error:"), "{err}");
        return;
    }
    let (end, recs) = audit_with_caps(&without, &d.join("less.jsonl"));
    let errors = end["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| {
            let e = e.as_str().unwrap();
            e.contains(&format!("net:[{theirs}]")) && e.contains("not permitted")
        }),
        "{end}"
    );
    assert!(
        !recs
            .iter()
            .any(|v| v["record"] == "snapshot" && v["netns"] == theirs),
        "no snapshot of a namespace it could not enter"
    );
}

/// The unit's value of `key` (every line of it, space-joined).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// The system calls of a systemd syscall set or name, its nested sets expanded.
fn syscall_set(name: &str, out: &mut std::collections::BTreeSet<String>) {
    if !name.starts_with('@') {
        out.insert(name.to_owned());
        return;
    }
    let list = Command::new("systemd-analyze")
        .args(["syscall-filter", name])
        .output()
        .expect("systemd-analyze (installed by cargo xtask setup)");
    assert!(list.status.success(), "{name}: {list:?}");
    for l in String::from_utf8(list.stdout).unwrap().lines().skip(1) {
        let l = l.trim();
        if !l.is_empty() && !l.starts_with('#') {
            syscall_set(l, out);
        }
    }
}

/// Loads a seccomp filter allowing the calls named in argv[1] (comma-separated; any other
/// fails with EPERM, as SystemCallErrorNumber=EPERM), then execs argv[2..].
const SECCOMP_EXEC: &str = "import os,sys,errno,seccomp
f=seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for n in sys.argv[1].split(','):
    try: f.add_rule(seccomp.ALLOW, n)
    except Exception: pass
f.load()
os.execv(sys.argv[2], sys.argv[2:])
";

/// The unit's SystemCallFilter, as systemd applies it (the allowed sets, less the `~`
/// ones; any other call fails with SystemCallErrorNumber), loaded with libseccomp before
/// lsn-trace runs, inside the unit's capability set: it attaches, snapshots every
/// namespace and records.
#[test]
fn the_units_syscall_filter_holds() {
    let _calm = calm();
    let unit = unit_file();
    let mut allowed = std::collections::BTreeSet::new();
    let mut denied = std::collections::BTreeSet::new();
    let filters = unit_values(&unit, "SystemCallFilter");
    assert!(!filters.is_empty(), "the unit filters system calls");
    let mut deny = false;
    for f in &filters {
        match f.strip_prefix('~') {
            Some(first) => {
                deny = true;
                syscall_set(first, &mut denied);
            }
            None if deny => syscall_set(f, &mut denied),
            None => syscall_set(f, &mut allowed),
        }
    }
    assert_eq!(unit_values(&unit, "SystemCallErrorNumber"), ["EPERM"]);
    let allow: Vec<&String> = allowed.difference(&denied).collect();
    assert!(!allow.iter().any(|s| *s == "mount" || *s == "reboot"));
    let names = allow
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
    // Debian's python3 (python3-seccomp), not a pyenv shim's.
    let wrapper = [PYTHON, "-c", SECCOMP_EXEC, &names];
    let caps = unit_caps(&unit, "CapabilityBoundingSet");
    let daemon = NetnsDaemon::start("seccomp");
    let theirs = netns_inode(&daemon.child.id().to_string());
    let d = dir("seccomp");
    let (end, recs) = audit_sandboxed(&caps, &wrapper, &d.join("audit.jsonl"));
    assert_eq!(snapshot_refusals(&end), Vec::<&Value>::new(), "{end}");
    assert!(
        recs.iter()
            .any(|v| v["record"] == "snapshot" && v["netns"] == theirs && v["port"] == 4242),
        "setns(2) passes the filter: {recs:#?}"
    );
    // The filter is real: a call it leaves out fails (mount(2), with every capability).
    let probe = Command::new(PYTHON)
        .args(["-c", SECCOMP_EXEC, &names])
        .args(["/bin/sh", "-c", "mount -t tmpfs none /mnt 2>&1; echo rc=$?"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&probe.stdout);
    assert!(
        said.contains("rc=")
            && !said.contains("rc=0")
            && (said.contains("permission denied") || said.contains("not permitted")),
        "{said}"
    );
}

#[test]
fn lost_events_become_a_lost_record_in_the_log() {
    let _flood = FLOOD.write().unwrap_or_else(|e| e.into_inner());
    const BINDS: usize = 20_000; // ~300 bytes each: several times the 1 MiB ring
    let d = dir("lost");
    let log = d.join("audit.jsonl");
    let me_pid = std::process::id().to_string();
    let t = Tracer::start(&[
        "--pid",
        &me_pid,
        "--ring-size",
        "1",
        "audit",
        "--log",
        log.to_str().unwrap(),
    ]);
    wait_records(&log, 1, |v| v["record"] == "snapshot_end");
    let me = t.overflow_ring(BINDS);
    let lost = wait_records(&log, 1, |v| v["record"] == "lost")
        .pop()
        .unwrap();
    assert_eq!(lost["event"], "lost");
    assert!(
        lost["reason"]
            .as_str()
            .unwrap()
            .contains("ring buffer full"),
        "{lost}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, stderr) = t.terminate();
    assert!(status.success());
    let recs = final_records(&log);
    let ours = recs
        .iter()
        .filter(|v| v["record"] == "open" && v["tid"] == me)
        .count();
    let lost: u64 = recs
        .iter()
        .filter(|v| v["record"] == "lost")
        .map(|v| v["count"].as_u64().unwrap())
        .sum();
    assert!(ours < BINDS, "the ring cannot have held all {BINDS}");
    // --pid keeps other processes out; this process's other test threads may lose some too.
    assert!(
        ours as u64 + lost >= BINDS as u64,
        "ours {ours} + lost {lost} < {BINDS}"
    );
    let stop = recs.last().unwrap();
    assert_eq!(stop["record"], "stop");
    assert_eq!(stop["lost"], lost);
    // By reason, in the stop record and in the stop line.
    let by = stop["lost_by"].as_object().unwrap();
    assert_eq!(
        by.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        lost,
        "{by:?}"
    );
    let full = by["ring buffer full"].as_u64().unwrap();
    assert!(full > 0, "{by:?}");
    let line = stderr.iter().find(|l| l.contains("stopped:")).unwrap();
    assert!(line.contains(&format!(", {lost} lost,")), "{line}");
    assert!(
        line.contains(&format!("; lost: {full} ring buffer full")),
        "{line}"
    );
}

#[test]
fn a_unix_listener_and_a_bound_unix_datagram_socket_are_opens_with_their_paths() {
    let _calm = calm();
    let s = shared();
    let d = dir("unix");
    let me = tid();
    let stream_path = d.join("stream.sock");
    let ux = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    let (sun, len) = sun_path(stream_path.to_str().unwrap().as_bytes());
    bind_raw(&ux, &sun, len).unwrap();
    // Bound but not listening yet: not a listener.
    let dgram_path = d.join("dgram.sock");
    let dg = socket(libc::AF_UNIX, libc::SOCK_DGRAM);
    let (sun, len) = sun_path(dgram_path.to_str().unwrap().as_bytes());
    bind_raw(&dg, &sun, len).unwrap();
    listen(&ux, 4).unwrap();
    let opens = s.wait_n(2, Duration::from_secs(20), |v| {
        v["record"] == "open" && v["tid"] == me
    });
    assert_eq!(opens[0]["event"], "bind");
    assert_eq!(opens[0]["protocol"], "u_dgr");
    assert_eq!(opens[0]["addr"], dgram_path.to_str().unwrap());
    assert_eq!(opens[1]["event"], "listen");
    assert_eq!(opens[1]["protocol"], "u_str");
    assert_eq!(opens[1]["addr"], stream_path.to_str().unwrap());
    assert_eq!(opens[1]["backlog"], 4);
    assert_eq!(s.seen(|v| v["record"] == "open" && v["tid"] == me).len(), 2);
}

/// Spawn `cmd` as pid `pid` (through /proc/sys/kernel/ns_last_pid; another process of the
/// host may take the pid first: then it is retried). None if the pid could not be had.
///
/// The pid counter is put back where it was after, so later threads and processes get fresh
/// ids: the pids after `pid` were used before, and a test that names its events by tid (in a
/// log shared with other tests) would otherwise find an old thread's records under its own.
fn spawn_as_pid(pid: u32, mut cmd: Command) -> Option<std::process::Child> {
    let last_pid = "/proc/sys/kernel/ns_last_pid";
    let before: u32 = std::fs::read_to_string(last_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
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
    let now: u32 = std::fs::read_to_string(last_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if now < before {
        std::fs::write(last_pid, before.to_string()).unwrap();
    }
    found
}

/// A python3 that binds a UDP socket on 127.0.0.1 and exits once its stdin closes (argv
/// carries `tag`).
fn python_binder(tag: &str) -> Command {
    let mut c = Command::new(PYTHON);
    c.args([
        "-c",
        "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.bind(('127.0.0.1',0))\nsys.stdin.read()\n",
        tag,
    ])
    .stdin(Stdio::piped());
    c
}

/// A pid reused by another program never gives that program's identity to the first
/// one's record: identity is tied to the process instance (pid and start time, sent by
/// the kernel side with the event).
#[test]
fn a_reused_pid_never_lends_its_identity_to_another_process() {
    let _calm = calm();
    let t = Tracer::start(&["audit"]);
    t.wait_n(1, Duration::from_secs(20), |v| {
        v["record"] == "snapshot_end"
    });
    let sleep_exe = std::fs::canonicalize("/bin/sleep").unwrap();

    // 1. The event is read after its process exited and the pid went to `sleep`.
    unsafe { libc::kill(t.pid() as i32, libc::SIGSTOP) };
    let mut a = python_binder("first").spawn().unwrap();
    let pid = a.id();
    drop(a.stdin.take());
    assert!(a.wait().unwrap().success());
    let mut sleeper = Command::new("/bin/sleep");
    sleeper.arg("30");
    let reuser = spawn_as_pid(pid, sleeper);
    unsafe { libc::kill(t.pid() as i32, libc::SIGCONT) };
    let mut reuser = reuser.expect("pid reuse through ns_last_pid");
    let rec = wait(&t, |v| v["record"] == "open" && v["pid"] == pid);
    let _ = reuser.kill();
    let _ = reuser.wait();
    assert_ne!(rec["exe"], sleep_exe.to_str().unwrap(), "{rec:#}");
    assert_ne!(
        rec["cmdline"],
        serde_json::json!(["/bin/sleep", "30"]),
        "{rec:#}"
    );
    // Gone, never seen in /proc: who it was comes from its exec (the exec capture), of that
    // very instance.
    assert_eq!(rec["identity"], "exec", "{rec:#}");
    let python = std::fs::canonicalize(PYTHON).unwrap();
    assert_eq!(rec["exe"], python.to_str().unwrap(), "{rec:#}");
    assert_eq!(rec["cmdline"][0], PYTHON, "{rec:#}");
    assert_eq!(rec["cmdline"][3], "first", "{rec:#}");
    assert_eq!(rec["comm"], "python3");

    // 2. Same pid and same comm within a second (what the cache once took as the same
    // process): another instance, its own cmdline.
    let mut first = python_binder("instance-1").spawn().unwrap();
    let pid = first.id();
    let r1 = wait(&t, |v| v["record"] == "open" && v["pid"] == pid);
    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
    let mut second = spawn_as_pid(pid, python_binder("instance-2")).expect("pid reuse");
    let recs = t.wait_n(2, Duration::from_secs(20), |v| {
        v["record"] == "open" && v["pid"] == pid
    });
    drop(second.stdin.take());
    assert!(second.wait().unwrap().success());
    assert_eq!(r1["cmdline"][3], "instance-1", "{r1:#}");
    assert_eq!(r1["identity"], "live");
    let r2 = &recs[1];
    assert_eq!(r2["cmdline"][3], "instance-2", "{r2:#}");
    assert_eq!(r2["identity"], "live");
    let _ = t.terminate();
}
