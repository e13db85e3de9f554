//! Real containers with podman (Debian's podman + runc): images built from a tarball of
//! files (`podman import`: nothing can be pulled here), containers removed on drop.
//!
//! This host's podman runs with `--runtime runc` (crun refuses the hybrid cgroups) and
//! explicit ulimits (the defaults ask for more than the sandbox allows).
use std::{
    path::Path,
    process::{Command, Output},
};

/// `podman` with this host's runtime.
pub fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc"]);
    c
}

/// The flags every `podman run` here needs.
pub const RUN_FLAGS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
];

fn checked(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .expect("run podman (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An image of static busybox (`/bin/busybox` of Debian's busybox-static) with `httpd`
/// and `nc` as its own names, so processes in it have those comms. Built once per host.
pub const BUSYBOX_IMAGE: &str = "localhost/lsn-trace-test-busybox:latest";

pub fn busybox_image() -> &'static str {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        if podman()
            .args(["image", "exists", BUSYBOX_IMAGE])
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        let dir = std::env::temp_dir().join(format!("lsn-trace-busybox-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .expect("/bin/busybox (Debian's busybox-static; cargo xtask setup installs it)");
        for name in ["sh", "httpd", "nc", "sleep"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(name)).unwrap();
        }
        let tar = dir.join("rootfs.tar");
        checked(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        );
        import(&tar, BUSYBOX_IMAGE, r#"CMD ["/bin/sh"]"#);
        let _ = std::fs::remove_dir_all(&dir);
    });
    BUSYBOX_IMAGE
}

/// `podman import` a root file system tarball as `name`, with one Dockerfile instruction.
pub fn import(tar: &Path, name: &str, change: &str) {
    checked(
        podman()
            .arg("import")
            .args(["--change", change])
            .arg(tar)
            .arg(name),
    );
}

/// A running container, removed (killed at once) on drop.
pub struct Container {
    pub id: String,
    pub name: String,
}

impl Container {
    /// `podman run -d --name NAME [extra…] IMAGE CMD…`.
    pub fn run(name: &str, extra: &[&str], image: &str, cmd: &[&str]) -> Container {
        let _ = podman().args(["rm", "-f", "-t", "0", name]).output();
        let out = checked(
            podman()
                .args(["run", "-d", "--name", name])
                .args(RUN_FLAGS)
                .args(extra)
                .arg(image)
                .args(cmd),
        );
        Container {
            id: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            name: name.to_owned(),
        }
    }

    /// `podman logs` so far (stdout, stderr).
    pub fn logs(&self) -> (String, String) {
        let out = podman().args(["logs", &self.id]).output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.id]).output();
    }
}
