//! `cargo xtask image`: the OCI image `localhost/lsn-trace:VERSION` (and `:latest`), built
//! without pulling any base image: a root file system of the release binary and the shared
//! libraries it links (as `ldd` lists them: glibc, libgcc_s, the dynamic loader), imported
//! with `podman import`. Entrypoint `/usr/bin/lsn-trace`, default command `audit`: records
//! on stdout, where `kubectl logs` and node log collectors look.
//!
//! No /etc/passwd: user names of the host's uids are not the image's to say, so records
//! from the image carry `user: null` and the uid. Rebuilt only when the file system changes
//! (its digest is a label of the image).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, capture, run};
use crate::run::build_lsn_trace;
use crate::setup::setup;

pub const REPO: &str = "localhost/lsn-trace";
const DIGEST_LABEL: &str = "io.lsn-trace.rootfs-sha256";

pub fn image() -> Result<()> {
    setup()?;
    let bin = build_lsn_trace()?;
    let tag = build(&bin)?;
    println!("{tag}");
    Ok(())
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc"]);
    c
}

/// The shared objects `bin` loads, by absolute path (`ldd`'s `=> /path` and the loader).
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = capture(Command::new("ldd").arg(bin)).context("ldd failed")?;
    let mut libs = Vec::new();
    for line in out.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    if !libs
        .iter()
        .any(|l| l.to_string_lossy().contains("ld-linux"))
    {
        bail!("ldd {} named no dynamic loader: {out}", bin.display());
    }
    Ok(libs)
}

/// Build (or find up to date) the image of `bin`; returns `REPO:VERSION`.
pub fn build(bin: &Path) -> Result<String> {
    let version = env!("CARGO_PKG_VERSION");
    let tag = format!("{REPO}:{version}");
    let dir = cmd::target_dir().join("image");
    let root = dir.join("rootfs");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(root.join("usr/bin"))?;
    std::fs::copy(bin, root.join("usr/bin/lsn-trace"))?;
    for lib in shared_libraries(bin)? {
        // The loader's path (/lib64/ld-linux-x86-64.so.2) is written in the binary: keep
        // every library at the path the host has it, its symlinks resolved.
        let dest = root.join(lib.strip_prefix("/")?);
        std::fs::create_dir_all(dest.parent().unwrap())?;
        std::fs::copy(std::fs::canonicalize(&lib)?, &dest)
            .with_context(|| format!("copying {}", lib.display()))?;
    }
    // Mount points the contract bind-mounts over, and tracefs's, present in the image.
    for d in ["sys", "proc", "dev", "tmp", "var/log/lsn-trace"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let tar = dir.join("rootfs.tar");
    // Sorted names, fixed owner and time: the same files make the same tarball (the cache).
    run(Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
        ])
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."))?;
    let digest = capture(Command::new("sha256sum").arg(&tar))
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .context("sha256sum failed")?;
    let have = capture(podman().args([
        "image",
        "inspect",
        "--format",
        &format!("{{{{index .Labels \"{DIGEST_LABEL}\"}}}}"),
        &tag,
    ]));
    if have.as_deref().map(str::trim) == Some(digest.as_str()) {
        eprintln!("image: {tag} is up to date");
    } else {
        run(podman()
            .arg("import")
            .args(["--change", r#"ENTRYPOINT ["/usr/bin/lsn-trace"]"#])
            .args(["--change", r#"CMD ["audit"]"#])
            .args(["--change", &format!("LABEL {DIGEST_LABEL}={digest}")])
            .args([
                "--change",
                &format!("LABEL org.opencontainers.image.version={version}"),
            ])
            .args(["--change", "LABEL org.opencontainers.image.title=lsn-trace"])
            .arg(&tar)
            .arg(&tag))?;
    }
    run(podman().args(["tag", &tag, &format!("{REPO}:latest")]))?;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("image: {tag} and {REPO}:latest");
    Ok(tag)
}
