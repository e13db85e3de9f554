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

/// containerd, started for the test when it is not running (and stopped after).
struct Containerd(Option<std::process::Child>);

impl Containerd {
    fn ensure() -> Containerd {
        let up = || {
            ctr()
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if up() {
            return Containerd(None);
        }
        let log =
            std::fs::File::create(std::env::temp_dir().join("lsn-trace-containerd.log")).unwrap();
        let child = std::process::Command::new("containerd")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (Debian's containerd; cargo xtask setup installs it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !up() {
            assert!(
                std::time::Instant::now() < deadline,
                "containerd did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Containerd(Some(child))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

/// `ctr` in the namespace Kubernetes's CRI plugin uses.
fn ctr() -> std::process::Command {
    let mut c = std::process::Command::new("ctr");
    c.args(["-n", "k8s.io"]);
    c
}

/// A containerd task, killed and deleted on drop.
struct Task(String);

impl Drop for Task {
    fn drop(&mut self) {
        let _ = ctr().args(["task", "rm", "-f", &self.0]).output();
        let _ = ctr().args(["containers", "rm", &self.0]).output();
    }
}

/// A container as the CRI plugin makes it for a pod, with real containerd: the bundle
/// containerd writes (`/run/containerd/io.containerd.runtime.v2.task/k8s.io/ID/config.json`)
/// carries the CRI annotations, and the cgroup is the kubelet's cgroupfs layout
/// (`/kubepods/besteffort/pod<uid>/<id>`, which names no runtime). No kubelet runs here:
/// `ctr` sets what the CRI plugin would.
#[test]
fn a_containerd_pod_container_is_named_from_its_bundle() {
    let _containerd = Containerd::ensure();
    let image = busybox_image();
    let have = ctr().args(["images", "ls", "-q"]).output().unwrap();
    if !String::from_utf8_lossy(&have.stdout)
        .lines()
        .any(|l| l == image)
    {
        let tar = std::env::temp_dir().join(format!("lsn-trace-bb-{}.tar", std::process::id()));
        let out = podman()
            .args(["save", "--format", "docker-archive", "-o"])
            .arg(&tar)
            .arg(image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = ctr().args(["images", "import"]).arg(&tar).output().unwrap();
        let _ = std::fs::remove_file(&tar);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let port = free_port();
    let id = format!("{:016x}{:048x}", std::process::id(), port);
    let t = Tracer::start(&["--port", &port.to_string(), "audit"]);
    let task = Task(id.clone());
    let annotation = |k: &str, v: &str| format!("--annotation=io.kubernetes.cri.{k}={v}");
    let out = ctr()
        .args(["run", "-d", "--net-host"])
        .arg(format!(
            "--cgroup=/kubepods/besteffort/pod6c2d8f0e-4b1a-4e5f-9c3d-{:012x}/{id}",
            port
        ))
        .arg(annotation("container-type", "container"))
        .arg(annotation("sandbox-id", &"9".repeat(64)))
        .arg(annotation("sandbox-namespace", "shop"))
        .arg(annotation("sandbox-name", "web-7d9f8c6b5-x2k4p"))
        .arg(annotation("container-name", "httpd"))
        .arg(annotation("image-name", image))
        .args([image, &task.0, "/bin/httpd", "-f", "-p", &port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let open = t.wait_n(1, Duration::from_secs(30), |v| {
        v["record"] == "open" && v["port"] == port
    });
    let rec = &open[0];
    assert_eq!(rec["comm"], "httpd", "{rec}");
    assert_eq!(rec["container_runtime"], "kubernetes", "{rec}");
    assert_eq!(rec["container_id"], id.as_str(), "{rec}");
    assert_eq!(rec["container_name"], "httpd", "{rec}");
    assert_eq!(rec["container_image"], image, "{rec}");
    assert_eq!(rec["k8s_namespace"], "shop", "{rec}");
    assert_eq!(rec["k8s_pod"], "web-7d9f8c6b5-x2k4p", "{rec}");
    assert_eq!(rec["k8s_container"], "httpd", "{rec}");
    drop(task);
    let (status, _) = t.terminate();
    assert!(status.success());
}
