//! `cargo xtask dist`: the Debian package (cargo-deb), from the release build and what
//! lsn-trace generates from its clap definitions (man pages, completions), with the
//! systemd unit and logrotate snippet of packaging/ (metadata: lsn-trace/Cargo.toml,
//! `[package.metadata.deb]`; maintainer scripts: packaging/debian/).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, run};
use crate::run::build_lsn_trace;
use crate::setup::setup;

/// Where the packaged binary lives (the unit's ExecStart).
const PACKAGED_BIN: &str = "/usr/bin/lsn-trace";
/// The unit in packaging/ runs a binary installed by hand.
const SOURCE_BIN: &str = "/usr/local/bin/lsn-trace";

pub fn dist() -> Result<()> {
    setup()?;
    let bin = build_lsn_trace()?;
    let deb = package(&bin, false)?;
    println!("{}", deb.display());
    Ok(())
}

/// Build the .deb of `bin` (already built); `fast`: lighter compression (the tests' copy).
/// Returns its path.
pub fn package(bin: &Path, fast: bool) -> Result<PathBuf> {
    let dist = cmd::target_dir().join("dist");
    // cargo-deb maps only paths under target/release/ to the real target directory.
    let assets = cmd::target_dir().join("release/package-assets");
    if assets.exists() {
        std::fs::remove_dir_all(&assets)
            .with_context(|| format!("removing {}", assets.display()))?;
    }
    std::fs::create_dir_all(&assets)?;
    run(Command::new(bin).env("LSN_TRACE_GENERATE_ASSETS", &assets))?;
    let man = assets.join("man");
    for page in std::fs::read_dir(&man)? {
        // -n: no name or time stamp in the header, so the package is reproducible.
        run(Command::new("gzip").args(["-9nf"]).arg(page?.path()))?;
    }
    let unit =
        std::fs::read_to_string(cmd::workspace_root().join("packaging/lsn-trace-audit.service"))
            .context("reading packaging/lsn-trace-audit.service")?;
    if !unit.contains(SOURCE_BIN) {
        bail!(
            "packaging/lsn-trace-audit.service no longer runs {SOURCE_BIN}: update xtask/src/dist.rs"
        );
    }
    std::fs::write(
        assets.join("lsn-trace-audit.service"),
        unit.replace(SOURCE_BIN, PACKAGED_BIN),
    )?;
    let mut deb = Command::new("cargo");
    deb.current_dir(cmd::workspace_root())
        .args(["deb", "-p", "lsn-trace", "--no-build", "--output"])
        .arg(&dist);
    if fast {
        deb.arg("--fast");
    }
    eprintln!("$ {}", cmd::display(&deb));
    let out = deb
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo deb (cargo xtask setup installs cargo-deb)")?;
    if !out.status.success() {
        bail!("cargo deb failed ({})", out.status);
    }
    // cargo deb prints the path of the package it wrote.
    let out = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(out.trim().lines().last().unwrap_or_default());
    if !path.is_file() {
        bail!("cargo deb did not name a package it wrote: {out:?}");
    }
    eprintln!("dist: {}", path.display());
    Ok(path)
}
