//! Which container: `lsn-trace audit` records of listeners in real podman containers carry
//! the container's id, runtime, name and image, read from podman's own state (no API
//! call) — for a container that listened before the agent started (snapshot record) and
//! one that starts listening after (open record).
use std::time::Duration;

use lsn_trace_tests::{Tracer, Value, podman::*, sock::free_port};

fn assert_container(rec: &Value, c: &Container, comm: &str) {
    assert_eq!(rec["comm"], comm, "{rec}");
    assert_eq!(rec["container_runtime"], "podman", "{rec}");
    assert_eq!(rec["container_id"], c.id.as_str(), "{rec}");
    assert_eq!(rec["container_name"], c.name.as_str(), "{rec}");
    assert_eq!(rec["container_image"], BUSYBOX_IMAGE, "{rec}");
    assert_eq!(
        rec["cgroup"],
        format!("/libpod_parent/libpod-{}", c.id),
        "{rec}"
    );
    for key in ["k8s_namespace", "k8s_pod", "k8s_container"] {
        assert_eq!(rec[key], Value::Null, "{key}: {rec}");
    }
}

#[test]
fn podman_containers_are_named_in_snapshot_and_open_records() {
    let image = busybox_image();
    let (before, after) = (free_port(), free_port());
    let me = std::process::id();
    let early = Container::run(
        &format!("lsn-trace-early-{me}"),
        &[],
        image,
        &["/bin/httpd", "-f", "-p", &before.to_string()],
    );
    // httpd is listening once its port is in the container's /proc/net/tcp (its own netns):
    // ask podman to run the check inside it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let hex = format!(":{before:04X} ");
    loop {
        let out = podman()
            .args([
                "exec",
                &early.id,
                "/bin/sh",
                "-c",
                "cat /proc/net/tcp /proc/net/tcp6",
            ])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&hex) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "httpd never listened: {:?}",
            early.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ports = format!("{before},{after}");
    // Only these two ports: the host's other listeners cannot crowd the records out.
    let t = Tracer::start(&["--port", &ports, "audit"]);
    let snap = t.wait_n(1, Duration::from_secs(30), |v| {
        v["record"] == "snapshot" && v["port"] == before
    });
    assert_container(&snap[0], &early, "httpd");
    let late = Container::run(
        &format!("lsn-trace-late-{me}"),
        &[],
        image,
        &["/bin/nc", "-l", "-p", &after.to_string()],
    );
    let open = t.wait_n(1, Duration::from_secs(30), |v| {
        v["record"] == "open" && v["port"] == after
    });
    assert_container(&open[0], &late, "nc");
    assert_eq!(open[0]["identity"], "live");
    drop(late);
    let (status, _) = t.terminate();
    assert!(status.success());
}
