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
