use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};
use lsn_trace_common::{KFUNC_CAST_PLACEHOLDER, kfunc_call_insn};

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
    )?;
    kfunc_calls()
}

/// Where the object's kfunc calls are (8-byte word indices: BPF instructions are 8-aligned
/// in it), for the agent to set them for the running kernel without reading the whole
/// object (three quarters of it DWARF the loader never touches: resident memory).
fn kfunc_calls() -> anyhow::Result<()> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?);
    let obj = std::fs::read(out.join("lsn-trace")).context("reading the eBPF object")?;
    let call = kfunc_call_insn(KFUNC_CAST_PLACEHOLDER).to_le_bytes();
    let at: Vec<usize> = obj
        .chunks_exact(8)
        .enumerate()
        .filter(|(_, w)| *w == call)
        .map(|(i, _)| i)
        .collect();
    anyhow::ensure!(!at.is_empty(), "no bpf_rdonly_cast call in the eBPF object");
    // A call off the 8-byte grid (a text section at an odd offset) would be missed here and
    // reach the kernel with the placeholder id.
    let anywhere = obj.windows(8).filter(|w| *w == call).count();
    anyhow::ensure!(
        anywhere == at.len(),
        "{anywhere} bpf_rdonly_cast calls in the eBPF object, {} of them 8-aligned",
        at.len()
    );
    std::fs::write(
        out.join("kfunc_calls.rs"),
        format!(
            "/// Word indices of the kfunc calls in `OBJ` (build.rs).\n\
             const KFUNC_CALLS: [usize; {}] = {at:?};\n",
            at.len()
        ),
    )
    .context("writing kfunc_calls.rs")
}
