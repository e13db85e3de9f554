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
    drop_line_info()?;
    strip_dwarf()?;
    kfunc_calls()
}

/// Remove the object's DWARF (`llvm-objcopy --strip-debug`: 17 MB → 4.4 MB). bpf-linker
/// made the BTF the loader needs from it (`.BTF`, `.BTF.ext`, kept); the loader never
/// needs the DWARF itself, yet it is embedded in the agent and paged in as the object is
/// parsed. Without llvm-objcopy the object stays whole: said, not fatal.
fn strip_dwarf() -> anyhow::Result<()> {
    let path =
        std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?).join("lsn-trace");
    let stripped = path.with_extension("stripped");
    let tool = ["/usr/lib/llvm-22/bin/llvm-objcopy", "llvm-objcopy"]
        .into_iter()
        .find(|t| {
            std::process::Command::new(t)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(tool) = tool else {
        println!(
            "cargo:warning=llvm-objcopy not found: the eBPF object keeps its DWARF (the agent \
             is 12 MB larger and its start-up peak a few MB higher)"
        );
        return Ok(());
    };
    let st = std::process::Command::new(tool)
        .arg("--strip-debug")
        .arg(&path)
        .arg(&stripped)
        .status()
        .with_context(|| format!("running {tool}"))?;
    anyhow::ensure!(st.success(), "{tool} --strip-debug failed: {st}");
    std::fs::rename(&stripped, &path).context("replacing the eBPF object")
}

/// Empty the object's BTF line info (`.BTF.ext`'s `line_info_len` set to 0; its bytes
/// stay, unread): the loader copies a section's whole line info once per function in it
/// before keeping that function's lines (aya-obj 0.3's `get_func_and_line_info`), ~29 MB
/// of the agent's start-up peak for 70 functions, and the kernel needs none of it — line
/// info only annotates the verifier's log with source lines. `LSN_TRACE_BPF_LINE_INFO=1`
/// at build time keeps it, for reading a verifier rejection.
fn drop_line_info() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=LSN_TRACE_BPF_LINE_INFO");
    if std::env::var_os("LSN_TRACE_BPF_LINE_INFO").is_some_and(|v| v == "1") {
        return Ok(());
    }
    let path =
        std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?).join("lsn-trace");
    let mut obj = std::fs::read(&path).context("reading the eBPF object")?;
    let at = btf_ext_offset(&obj).context("the eBPF object has no .BTF.ext section")?;
    // struct btf_ext_header: magic u16, version u8, flags u8, hdr_len u32, func_info_off,
    // func_info_len, line_info_off, line_info_len (u32 each) …
    anyhow::ensure!(
        obj.get(at..at + 2) == Some(&0xeb9fu16.to_le_bytes()[..]),
        "no BTF.ext header at .BTF.ext"
    );
    obj[at + 20..at + 24].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(&path, obj).context("writing the eBPF object")
}

/// The file offset of the `.BTF.ext` section of a little-endian ELF64 object.
fn btf_ext_offset(elf: &[u8]) -> Option<usize> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (shoff, shentsize) = (u64_at(0x28)? as usize, u16_at(0x3a)? as usize);
    let (shnum, shstrndx) = (u16_at(0x3c)? as usize, u16_at(0x3e)? as usize);
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 24)? as usize;
    (0..shnum).find_map(|i| {
        let name = strtab + u32_at(header(i))? as usize;
        let name = elf.get(name..)?.split(|&b| b == 0).next()?;
        (name == b".BTF.ext").then(|| u64_at(header(i) + 24).map(|o| o as usize))?
    })
}

/// Where the object's kfunc calls are (8-byte word indices: BPF instructions are 8-aligned
/// in it), for the agent to set them for the running kernel without reading the whole
/// object.
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
