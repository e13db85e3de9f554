//! Loading the programs and attaching one backend. Every backend emits the same events;
//! a backend is only the set of attach points (and where the arguments come from).
use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    programs::{RawTracePoint, TracePoint},
};
use lsn_trace_common::{CFG_ENABLED, CFG_FOLLOW_ONLY, CFG_TRACK, Config, KernelOffsets};

use crate::filter::KernelFilter;

/// The compiled eBPF object, built by build.rs (aya-build).
static OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lsn-trace"));

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// Probe the kernel and take the best backend that loads and attaches.
    Auto,
    /// syscalls:sys_{enter,exit}_{bind,listen,setsockopt} + sock:inet_sock_set_state.
    Tracepoint,
}

/// (program, category, tracepoint)
const TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("sys_enter_bind", "syscalls", "sys_enter_bind"),
    ("sys_exit_bind", "syscalls", "sys_exit_bind"),
    ("sys_enter_listen", "syscalls", "sys_enter_listen"),
    ("sys_exit_listen", "syscalls", "sys_exit_listen"),
    ("sys_enter_setsockopt", "syscalls", "sys_enter_setsockopt"),
    ("sys_exit_setsockopt", "syscalls", "sys_exit_setsockopt"),
    ("inet_sock_set_state", "sock", "inet_sock_set_state"),
];

pub struct Loaded {
    pub ebpf: Ebpf,
    pub backend: &'static str,
    /// One line for the user: what is attached and what it costs.
    pub description: String,
}

pub struct LoadOptions {
    pub offsets: KernelOffsets,
    pub ring_bytes: u32,
    pub wakeup_bytes: u32,
    pub filter: KernelFilter,
    /// Follow process trees (`-- CMD`, `-p`): CFG_TRACK, and CFG_FOLLOW_ONLY unless --all.
    pub follow: Option<FollowMode>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowMode {
    /// Only the followed processes' events.
    Only,
    /// Every event, the followed ones marked.
    All,
}

/// Process ancestry, shared by every backend: (program, raw tracepoint).
const FOLLOW_HOOKS: &[(&str, &str)] = &[
    ("sched_process_fork", "sched_process_fork"),
    ("sched_process_exit", "sched_process_exit"),
];

fn load(opts: &LoadOptions) -> Result<Ebpf> {
    let mut flags = CFG_ENABLED | opts.filter.flags;
    match opts.follow {
        Some(FollowMode::Only) => flags |= CFG_TRACK | CFG_FOLLOW_ONLY,
        Some(FollowMode::All) => flags |= CFG_TRACK,
        None => {}
    }
    let config = Config {
        flags,
        self_pid: std::process::id(),
        wakeup_bytes: opts.wakeup_bytes,
        protos: opts.filter.protos,
        families: opts.filter.families,
    };
    let mut ebpf = EbpfLoader::new()
        // new() has parsed the kernel's BTF, but these programs have no CO-RE relocations
        // to apply (offsets.rs resolves the offsets): free it before the load, not after.
        .btf(None)
        .override_global("OFFSETS", &opts.offsets, true)
        .override_global("CONFIG", &config, true)
        .map_max_entries("EVENTS", opts.ring_bytes)
        .load(OBJ)
        .context("loading the eBPF object (maps and globals)")?;
    // The BTF parses (ours and aya's) left megabytes of freed heap behind: give them back
    // now, before the ring buffer is mapped, so they do not add to the agent's footprint.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; no pointer is invalidated.
    unsafe {
        libc::malloc_trim(0);
    }
    opts.filter.apply(&mut ebpf)?;
    if opts.follow.is_some() {
        attach_follow(&mut ebpf)?;
    }
    Ok(ebpf)
}

fn attach_follow(ebpf: &mut Ebpf) -> Result<()> {
    for &(prog, tp) in FOLLOW_HOOKS {
        let p: &mut RawTracePoint = ebpf
            .program_mut(prog)
            .ok_or_else(|| anyhow!("program {prog} missing from the eBPF object"))?
            .try_into()?;
        p.load()
            .with_context(|| format!("loading program {prog} (BPF_PROG_LOAD)"))?;
        p.attach(tp).with_context(|| {
            format!("attaching to raw tracepoint {tp} (needed to follow processes)")
        })?;
    }
    Ok(())
}

fn attach_tracepoints(ebpf: &mut Ebpf) -> Result<()> {
    for &(prog, category, name) in TRACEPOINTS {
        let p: &mut TracePoint = ebpf
            .program_mut(prog)
            .ok_or_else(|| anyhow!("program {prog} missing from the eBPF object"))?
            .try_into()?;
        p.load()
            .with_context(|| format!("loading program {prog} (BPF_PROG_LOAD)"))?;
        p.attach(category, name)
            .with_context(|| format!("attaching to tracepoint {category}:{name}"))?;
    }
    Ok(())
}

pub fn load_and_attach(choice: BackendChoice, opts: &LoadOptions) -> Result<Loaded> {
    match choice {
        BackendChoice::Auto | BackendChoice::Tracepoint => {
            let mut ebpf = load(opts)?;
            attach_tracepoints(&mut ebpf).context("backend tracepoint")?;
            Ok(Loaded {
                ebpf,
                backend: "tracepoint",
                description: "syscalls:sys_{enter,exit}_{bind,listen,setsockopt} + \
                              sock:inet_sock_set_state (while attached every syscall on the \
                              host pays the syscall-tracepoint cost, ~30 ns)"
                    .into(),
            })
        }
    }
}
