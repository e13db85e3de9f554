//! The OCI image (`cargo xtask image`) run as the agent exactly as the README's contract
//! says — `podman run -d --pid=host --cap-add=BPF --cap-add=PERFMON --cap-add=SYS_PTRACE
//! --cap-add=DAC_READ_SEARCH --cap-add=SYS_ADMIN --security-opt seccomp=unconfined
//! -v /sys:/sys:ro localhost/lsn-trace:latest`, its default command — records on its stdout
//! the listeners of two other containers, with their names and image, and a host
//! process's. And the DaemonSet manifest validates against Kubernetes's schemas.
use std::{
    net::Ipv4Addr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use lsn_trace_tests::{Value, podman::*, sock::*};

/// $LSN_TRACE_IMAGE (`cargo xtask test` builds it), else the `latest` tag.
fn image() -> String {
    std::env::var("LSN_TRACE_IMAGE").unwrap_or_else(|_| "localhost/lsn-trace:latest".into())
}

/// The contract's flags, each needed (see deploy/kubernetes/lsn-trace.yaml for why).
const AGENT_FLAGS: [&str; 10] = [
    "--pid=host",
    "--cap-add=BPF",
    "--cap-add=PERFMON",
    "--cap-add=SYS_PTRACE",
    "--cap-add=DAC_READ_SEARCH",
    "--cap-add=SYS_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
    "-v",
    "/sys:/sys:ro",
];

/// The JSON records the agent wrote on stdout so far.
fn records(agent: &Container) -> Vec<Value> {
    agent
        .logs()
        .0
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait_record(agent: &Container, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = records(agent).into_iter().find(|r| pred(r)) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never recorded {what}; its stderr: {}",
            agent.logs().1
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_image_as_agent_records_other_containers_and_the_host() {
    let image = image();
    let me = std::process::id();
    let agent = Container::run(&format!("lsn-trace-agent-{me}"), &AGENT_FLAGS, &image, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !agent.logs().1.contains("lsn-trace: attached") {
        assert!(
            Instant::now() < deadline,
            "the agent did not attach: {:?}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = wait_record(&agent, "its start", |r| r["record"] == "start");
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"));
    wait_record(&agent, "its snapshot", |r| r["record"] == "snapshot_end");

    let bb = busybox_image();
    let (p1, p2) = (free_port(), free_port());
    let web = Container::run(
        &format!("lsn-trace-web-{me}"),
        &[],
        bb,
        &["/bin/httpd", "-f", "-p", &p1.to_string()],
    );
    let cache = Container::run(
        &format!("lsn-trace-cache-{me}"),
        &[],
        bb,
        &["/bin/nc", "-l", "-p", &p2.to_string()],
    );
    for (c, port, comm) in [(&web, p1, "httpd"), (&cache, p2, "nc")] {
        let rec = wait_record(&agent, &format!("{comm} on port {port}"), |r| {
            r["record"] == "open" && r["port"] == port
        });
        assert_eq!(rec["comm"], comm, "{rec}");
        assert_eq!(rec["protocol"], "tcp", "{rec}");
        assert_eq!(rec["container_runtime"], "podman", "{rec}");
        assert_eq!(rec["container_id"], c.id.as_str(), "{rec}");
        assert_eq!(rec["container_name"], c.name.as_str(), "{rec}");
        assert_eq!(rec["container_image"], BUSYBOX_IMAGE, "{rec}");
        assert_eq!(rec["exe"], "/bin/busybox", "{rec}");
    }

    // A listener of a host process: this test's own.
    let host = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&host, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&host, 4).unwrap();
    let port = local_port(&host);
    let rec = wait_record(&agent, "the host listener", |r| {
        r["record"] == "open" && r["port"] == port && r["pid"] == me
    });
    assert_eq!(rec["addr"], "127.0.0.1", "{rec}");
    assert_eq!(rec["container_id"], Value::Null, "{rec}");
    assert_eq!(
        rec["exe"].as_str().map(Path::new),
        Some(std::env::current_exe().unwrap().as_path()),
        "{rec}"
    );
}

#[test]
fn daemonset_validates_against_the_kubernetes_schemas() {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/lsn-trace.yaml");
    let out = Command::new("kubernetes-validate")
        .args(["--strict"])
        .arg(&manifest)
        .output()
        .expect("kubernetes-validate (PyPI; cargo xtask setup installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    // One line per resource: the namespace, service account and daemon set, all valid.
    for resource in ["namespace", "serviceaccount", "daemonset"] {
        let line = format!("passed for resource {resource}/lsn-trace");
        assert!(said.contains(&line), "{resource} not validated: {said}");
    }
    let text = std::fs::read_to_string(&manifest).unwrap();
    // The validator rejects what the schemas do not allow: a field of the wrong type.
    let broken = std::env::temp_dir().join(format!("lsn-trace-ds-{}.yaml", std::process::id()));
    std::fs::write(
        &broken,
        text.replace("hostPID: true", "hostPID: yes-please"),
    )
    .unwrap();
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(&broken)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&broken);
    assert!(!out.status.success(), "a broken manifest passed");
    // The contract the image is tested with, in the manifest too.
    for cap in [
        "BPF",
        "PERFMON",
        "SYS_PTRACE",
        "DAC_READ_SEARCH",
        "SYS_ADMIN",
    ] {
        assert!(
            text.contains(&format!("- {cap}")),
            "capability {cap} missing"
        );
    }
    for needle in [
        "hostPID: true",
        "/healthz",
        "prometheus.io/scrape",
        "Unconfined",
    ] {
        assert!(text.contains(needle), "{needle} missing");
    }
}
