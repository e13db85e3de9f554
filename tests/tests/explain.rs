//! `lsn-trace explain`: the real binary, unprivileged path (no eBPF), exit statuses and JSON.
use std::{os::unix::net::UnixListener, process::Command};

use lsn_trace_tests::{Value, bin};

/// Exit status, stdout, stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("explain")
        .args(args)
        .output()
        .expect("run lsn-trace explain");
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `run` with --json: stdout as JSON Lines.
fn explain(args: &[&str]) -> (i32, Vec<Value>, String) {
    let mut all = vec!["--json"];
    all.extend(args);
    let (code, out, err) = run(&all);
    let lines = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (code, lines, err)
}

#[test]
fn every_seed_notation_parses_and_exits_0() {
    let inputs = [
        "127.0.0.1:8080",
        "[::]:22",
        ":::22",
        "*:22",
        ":22",
        "0.0.0.0:80",
        "localhost:8080",
        "::1:8080",
        "[fe80::1%eth0]:80",
        "127.0.0.1:3000-4000",
        "/run/x.sock",
        "@abstract",
        "::1",
    ];
    let (code, lines, stderr) = explain(&inputs);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), inputs.len());
    let kinds: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| {
            l["readings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["verdict"]["kind"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(kinds[0], ["loopback"]);
    assert_eq!(kinds[1], ["ipv6-any"]);
    assert_eq!(kinds[2], ["ipv6-any"]);
    assert_eq!(kinds[3], ["dual-stack"]);
    assert_eq!(kinds[4], ["dual-stack"]);
    assert_eq!(kinds[5], ["all-ipv4"]);
    assert!(kinds[6].iter().all(|k| *k == "loopback"), "{:?}", kinds[6]);
    assert_eq!(lines[7]["ambiguous"], true);
    assert_eq!(kinds[7], ["specific", "loopback"]);
    assert_eq!(kinds[8], ["link-local"]);
    assert_eq!(lines[9]["readings"][0]["port_end"], 4000);
    assert_eq!(kinds[10], ["unix-path"]);
    assert_eq!(kinds[11], ["unix-abstract"]);
    assert_eq!(kinds[12], ["loopback"]);
}

#[test]
fn garbage_and_legacy_forms_exit_2_with_a_message() {
    let (code, out, stderr) = run(&["127.0.0.1:8080", "127.1", "2130706433:80", "nope!"]);
    assert_eq!(code, 2);
    // the good one is still explained
    assert_eq!(
        out,
        "127.0.0.1:8080\n  loopback: loopback only — not reachable from other hosts, nor from \
         outside this container/network namespace\n  range: 127.0.0.0/8 loopback (RFC 1122)\n"
    );
    assert!(
        stderr.contains("`127.1` is not a dotted-quad IPv4 address"),
        "{stderr}"
    );
    assert!(stderr.contains("means 127.0.0.1"), "{stderr}");
    assert!(stderr.contains("`2130706433`") && stderr.contains("means 127.0.0.1"));
    assert!(stderr.contains("`nope!` is not an address"), "{stderr}");
    let (code, lines, _) = explain(&["017.0.0.1", "[::1]:80"]);
    assert_eq!(code, 2);
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("means 15.0.0.1")
    );
    assert_eq!(lines[1]["error"], Value::Null);
}

#[test]
fn unix_path_reports_the_real_socket_file() {
    let dir = std::env::temp_dir().join(format!("lsn-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let _ = std::fs::remove_file(&path);
    let _l = UnixListener::bind(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, lines, _) = explain(&[path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code, 0);
    let s = lines[0]["readings"][0]["verdict"]["sentence"]
        .as_str()
        .unwrap();
    assert!(s.contains("(mode 0640, owner 0:0"), "{s}");
}

#[test]
fn needs_no_privileges() {
    // A copy nobody can run (the build tree may not be traversable by other users).
    let dir = std::env::temp_dir().join(format!("lsn-explain-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("lsn-trace");
    std::fs::copy(bin(), &copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&copy)
        .args(["explain", "--json", "0.0.0.0:80"])
        .output()
        .expect("setpriv (util-linux)");
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["readings"][0]["verdict"]["kind"], "all-ipv4");
}

// ---- What people paste: real ss, netstat and lsof output of listeners this test opens ----

use lsn_trace_tests::sock::{self, Fd};
use std::{
    io::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    process::Stdio,
};

/// `lsn-trace explain --json -` fed `input`: (status, one report per line that is not a
/// header, stderr).
fn explain_stdin(input: &str, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut child = Command::new(bin())
        .args(["explain", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lsn-trace explain -");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = if extra.contains(&"--json") {
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    } else {
        vec![Value::String(stdout)]
    };
    (
        out.status.code().unwrap(),
        lines,
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A tool's real output (it must be installed: `cargo xtask setup` installs net-tools and
/// lsof).
fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (cargo xtask setup installs it)"));
    assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The listeners of one test: the host has others, so lines are picked by these ports.
struct Listeners {
    tcp4: (Fd, u16),
    dual: (Fd, u16),
    v6only: (Fd, u16),
    udp4: (Fd, u16),
    device: (Fd, u16),
    /// 127.0.0.1 on a port /etc/services names: (fd, port, name).
    named: (Fd, u16, &'static str),
    unix: (UnixListener, String),
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn open_listeners() -> Listeners {
    let tcp = |family, v6only: Option<i32>, device: Option<&str>| {
        let fd = sock::socket(family, libc::SOCK_STREAM);
        if let Some(v) = v6only {
            sock::setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, v).unwrap();
        }
        if let Some(dev) = device {
            sock::check(unsafe {
                libc::setsockopt(
                    fd.0,
                    libc::SOL_SOCKET,
                    libc::SO_BINDTODEVICE,
                    dev.as_ptr().cast(),
                    dev.len() as u32,
                )
            })
            .expect("SO_BINDTODEVICE (needs root: run through cargo xtask test)");
        }
        match family {
            libc::AF_INET => sock::bind(&fd, &sock::sin(Ipv4Addr::UNSPECIFIED, 0)),
            _ => sock::bind(&fd, &sock::sin6(Ipv6Addr::UNSPECIFIED, 0, 0)),
        }
        .unwrap();
        sock::listen(&fd, 8).unwrap();
        let port = sock::local_port(&fd);
        (fd, port)
    };
    let udp4 = {
        let fd = sock::socket(libc::AF_INET, libc::SOCK_DGRAM);
        sock::bind(&fd, &sock::sin(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = sock::local_port(&fd);
        (fd, port)
    };
    // Ports netbase's /etc/services names and no test daemon uses: the first one free.
    let named = [
        (9418, "git"),
        (3690, "svn"),
        (3260, "iscsi-target"),
        (1433, "ms-sql-s"),
        (2049, "nfs"),
        (873, "rsync"),
    ]
    .into_iter()
    .find_map(|(port, name)| {
        let fd = sock::socket(libc::AF_INET, libc::SOCK_STREAM);
        sock::bind(&fd, &sock::sin(Ipv4Addr::LOCALHOST, port)).ok()?;
        sock::listen(&fd, 8).ok()?;
        Some((fd, port, name))
    })
    .expect("a free named port on 127.0.0.1");
    // One directory per call: the tests of this file run in parallel threads.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("lsn-explain-paste-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("paste.sock");
    let _ = std::fs::remove_file(&path);
    let unix = UnixListener::bind(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
    Listeners {
        tcp4: tcp(libc::AF_INET, None, None),
        dual: tcp(libc::AF_INET6, Some(0), None),
        v6only: tcp(libc::AF_INET6, Some(1), None),
        udp4,
        device: tcp(libc::AF_INET, None, Some("lo")),
        named,
        unix: (unix, path.to_str().unwrap().to_string()),
        _dir: TempDir(dir),
    }
}

impl Listeners {
    /// (port, protocol, kind expected from a tool that shows V6ONLY and the device (ss),
    /// kind expected from one that shows neither (netstat, lsof)).
    fn inet(&self) -> Vec<(u16, &'static str, &'static str, &'static str)> {
        vec![
            (self.tcp4.1, "tcp", "all-ipv4", "all-ipv4"),
            (self.dual.1, "tcp", "dual-stack", "ipv6-any"),
            (self.v6only.1, "tcp", "ipv6-only-any", "ipv6-any"),
            (self.udp4.1, "udp", "all-ipv4", "all-ipv4"),
            (self.device.1, "tcp", "device-bound", "all-ipv4"),
            (self.named.1, "tcp", "loopback", "loopback"),
        ]
    }

    /// The lines of `output` about this test's inet listeners, with the header lines.
    fn pick(&self, output: &str, port_of: impl Fn(&str) -> Option<u16>) -> String {
        let ports: Vec<u16> = self.inet().iter().map(|x| x.0).collect();
        let mut picked: String = output
            .lines()
            .filter(|l| {
                l.starts_with("Netid")
                    || l.starts_with("Proto")
                    || l.starts_with("Active")
                    || l.starts_with("COMMAND")
                    || port_of(l).is_some_and(|p| ports.contains(&p))
            })
            .collect::<Vec<_>>()
            .join("\n");
        picked.push('\n');
        picked
    }
}

/// The port of a line's local address column, whatever the tool (`:PORT ` or `:PORT` at
/// the end of the column that holds it).
fn local_port_in(line: &str, column: usize) -> Option<u16> {
    let col = line.split_whitespace().nth(column)?;
    col.rsplit_once(':')?.1.parse().ok()
}

/// Every report is a listener of this test, explained with the verdict the tool's output
/// supports; every listener is there once.
fn check(reports: &[Value], format: &str, want: &[(u16, &str, &str)]) {
    let mut seen = Vec::new();
    for r in reports {
        assert_eq!(r["error"], Value::Null, "{r}");
        assert_eq!(r["skipped"], Value::Null, "{r}");
        assert_eq!(r["format"], format, "{r}");
        let x = &r["readings"][0];
        let port = x["port"].as_u64().unwrap() as u16;
        let (_, protocol, kind) = want
            .iter()
            .find(|w| w.0 == port)
            .unwrap_or_else(|| panic!("a report about port {port}, not this test's: {r}"));
        assert_eq!(x["verdict"]["kind"], *kind, "{format} port {port}: {r}");
        assert_eq!(r["line"]["protocol"], *protocol, "{r}");
        if *protocol == "udp" {
            assert!(
                x["verdict"]["sentence"].as_str().unwrap().contains("UDP"),
                "{r}"
            );
        }
        seen.push(port);
    }
    seen.sort();
    let mut all: Vec<u16> = want.iter().map(|w| w.0).collect();
    all.sort();
    assert_eq!(seen, all, "{format}: every listener explained once");
}

/// The lines of a tool's output about this test's listeners, explained and checked:
/// `shows_options` for a tool that prints V6ONLY and the device (ss).
fn explain_picked(
    l: &Listeners,
    out: &str,
    format: &str,
    shows_options: bool,
    port_of: impl Fn(&str) -> Option<u16>,
) -> (String, Vec<Value>) {
    let picked = l.pick(out, port_of);
    let (code, reports, stderr) = explain_stdin(&picked, &["--json"]);
    assert_eq!(code, 0, "{stderr}\n{picked}");
    let want: Vec<(u16, &str, &str)> = l
        .inet()
        .iter()
        .map(|x| (x.0, x.1, if shows_options { x.2 } else { x.3 }))
        .collect();
    check(&reports, format, &want);
    (picked, reports)
}

#[test]
fn ss_output_explained_line_by_line() {
    let l = open_listeners();
    let pid = std::process::id();
    let out = tool("ss", &["-tulnp"]);
    let (picked, reports) = explain_picked(&l, &out, "ss", true, |line| {
        line.contains(&format!("pid={pid},"))
            .then(|| local_port_in(line, 4))
            .flatten()
    });
    for r in &reports {
        let x = &r["readings"][0];
        let port = x["port"].as_u64().unwrap() as u16;
        let procs = &r["line"]["processes"][0];
        assert_eq!(procs["pid"], pid, "{r}");
        if port == l.device.1 {
            assert_eq!(x["device"], "lo", "{r}");
            assert_eq!(x["notation"], format!("0.0.0.0%lo:{port}"));
            assert!(
                x["verdict"]["flags"]
                    .as_array()
                    .unwrap()
                    .contains(&"device-bound".into())
            );
        }
        if port == l.v6only.1 || port == l.dual.1 {
            let notes = x["notes"].to_string();
            assert!(notes.contains("ss writes `*` for a dual-stack"), "{notes}");
        }
    }
    // the same, for a person: one explanation per listener, headers skipped, counted
    let (code, human, stderr) = explain_stdin(&picked, &[]);
    assert_eq!(code, 0);
    let human = human[0].as_str().unwrap();
    assert_eq!(human.matches("ss line: ").count(), 6, "{human}");
    assert!(
        human.contains(&format!(
            "ss line: tcp LISTEN 0.0.0.0%lo:{}",
            l.device.1
        )) && human.contains("device-bound: every IPv4 address on every interface (0.0.0.0), but only on interface lo"),
        "{human}"
    );
    assert!(
        stderr.contains("6 explained, 1 headers or blank, 0 not listeners (skipped; --json lists them), 0 refused"),
        "{stderr}"
    );

    // without -n: service names, read through /etc/services (and said so)
    let out = tool("ss", &["-tulp"]);
    let line = out
        .lines()
        .find(|x| {
            x.contains(&format!("127.0.0.1:{} ", l.named.2)) && x.contains(&format!("pid={pid},"))
        })
        .unwrap_or_else(|| panic!("ss -tulp shows 127.0.0.1:{}:\n{out}", l.named.2));
    let (code, lines, err) = explain(&[line]);
    assert_eq!(code, 0, "{err}");
    let x = &lines[0]["readings"][0];
    assert_eq!(x["port"], l.named.1);
    assert_eq!(x["service"]["name"], l.named.2);
    assert_eq!(x["service"]["source"], "/etc/services");
    assert_eq!(x["verdict"]["kind"], "loopback");

    // the whole host table in one command: nothing refused, every line accounted for
    let (code, _, stderr) = explain_stdin(&out, &[]);
    assert_eq!(code, 0, "{stderr}");
    let data_lines = out.lines().filter(|x| !x.starts_with("Netid")).count();
    assert!(
        stderr.contains(&format!("{data_lines} explained")) && stderr.contains(" 0 refused"),
        "{stderr}\n{out}"
    );
}

#[test]
fn ss_unix_output_reports_the_socket_file() {
    let l = open_listeners();
    let out = tool("ss", &["-xl"]);
    let line = out
        .lines()
        .find(|x| x.split_whitespace().nth(4) == Some(l.unix.1.as_str()))
        .unwrap_or_else(|| panic!("ss -xl shows {}:\n{out}", l.unix.1));
    let (code, lines, err) = explain_stdin(
        &format!("{}\n{line}\n", out.lines().next().unwrap()),
        &["--json"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines.len(), 1);
    let r = &lines[0];
    assert_eq!(
        (r["format"].as_str(), r["line"]["protocol"].as_str()),
        (Some("ss"), Some("u_str"))
    );
    assert_eq!(r["line"]["state"], "LISTEN");
    // ss's "port" column of a unix socket is its inode
    use std::os::{fd::AsRawFd, unix::fs::MetadataExt};
    let ino = std::fs::metadata(format!("/proc/self/fd/{}", l.unix.0.as_raw_fd()))
        .unwrap()
        .ino();
    assert_eq!(r["line"]["inode"], ino);
    let x = &r["readings"][0];
    assert_eq!(x["verdict"]["kind"], "unix-path");
    let s = x["verdict"]["sentence"].as_str().unwrap();
    assert!(s.contains("(mode 0660, owner 0:0"), "{s}");
}

#[test]
fn netstat_output_explained_line_by_line() {
    let l = open_listeners();
    let pid = std::process::id();
    let out = tool("netstat", &["-tulpn"]);
    let (_, reports) = explain_picked(&l, &out, "netstat", false, |line| {
        line.contains(&format!(" {pid}/"))
            .then(|| local_port_in(line, 3))
            .flatten()
    });
    for r in &reports {
        assert_eq!(r["line"]["processes"][0]["pid"], pid, "{r}");
        let notes = r["readings"][0]["notes"].to_string();
        // what netstat cannot show is said, not guessed
        assert!(
            notes.contains("netstat shows neither SO_BINDTODEVICE nor IPV6_V6ONLY"),
            "{notes}"
        );
        if r["readings"][0]["addr"] == "::" {
            assert!(notes.contains("net.ipv6.bindv6only"), "{notes}");
        }
    }
}

#[test]
fn lsof_output_explained_line_by_line() {
    let l = open_listeners();
    let pid = std::process::id().to_string();
    let out = tool("lsof", &["-i", "-P", "-n", "-a", "-p", &pid]);
    let (_, reports) = explain_picked(&l, &out, "lsof", false, |line| local_port_in(line, 8));
    for r in &reports {
        assert_eq!(r["line"]["processes"][0]["pid"].to_string(), pid, "{r}");
        let fd = r["line"]["processes"][0]["fd"].as_str().unwrap();
        assert!(fd.ends_with('u'), "{r}");
    }
    // with names (no -P, no -n): `localhost:git`, read through /etc/services and the hosts
    let out = tool("lsof", &["-i", "-a", "-p", &pid]);
    let line = out
        .lines()
        .find(|x| x.contains(&format!("TCP localhost:{} (LISTEN)", l.named.2)))
        .unwrap_or_else(|| panic!("lsof -i shows localhost:{}:\n{out}", l.named.2));
    let (code, lines, err) = explain(&[line]);
    assert_eq!(code, 0, "{err}");
    let x = &lines[0]["readings"][0];
    assert_eq!(
        (x["addr"].as_str(), x["port"].as_u64()),
        (Some("127.0.0.1"), Some(l.named.1 as u64))
    );
    assert_eq!(x["service"]["name"], l.named.2);
    assert_eq!(x["verdict"]["kind"], "loopback");
    assert!(x["notes"].to_string().contains(&format!(
        "port `{}` read as {}/tcp from /etc/services",
        l.named.2, l.named.1
    )));
    // the whole table of this process: connections and other tests' sockets included,
    // nothing refused
    let (code, _, stderr) = explain_stdin(&out, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(" 0 refused"), "{stderr}");
}

#[test]
fn pasted_notations_and_strict_mode() {
    let (code, lines, err) = explain(&["127.0.0.53%lo:53", "*:ssh", "0.0.0.0:*", "[::]:*"]);
    assert_eq!(code, 0, "{err}");
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["readings"][0]["verdict"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["loopback", "dual-stack", "all-ipv4", "ipv6-any"]);
    assert!(
        lines[0]["readings"][0]["verdict"]["flags"]
            .to_string()
            .contains("device-bound")
    );
    assert_eq!(lines[1]["readings"][0]["port"], 22);
    let (code, _, err) = run(&[""]);
    assert_eq!(code, 2);
    assert!(err.contains("empty address"), "{err}");
    // --strict: inet_pton's rules, today's messages
    let (code, _, err) = run(&["--strict", "127.0.0.53%lo:53", "*:ssh"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("a %scope (interface) belongs to IPv6 link-local addresses only"),
        "{err}"
    );
    assert!(err.contains("`ssh` is not a port"), "{err}");
}
