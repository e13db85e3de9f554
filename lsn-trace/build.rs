use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// Build the eBPF object (nightly, build-std=core, bpf-linker) and leave it in OUT_DIR,
/// where main.rs embeds it.
fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "lsn-trace-ebpf")
        .ok_or_else(|| anyhow!("lsn-trace-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .context("ebpf manifest dir")?
        .as_str()
        .to_owned();
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir: &root_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
