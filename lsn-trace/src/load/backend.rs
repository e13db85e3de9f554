//! Loading the programs and attaching one backend. Every backend emits the same events;
//! a backend is only the set of attach points (and where the arguments come from).
use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    programs::{KProbe, ProgramError, RawTracePoint, TracePoint},
};
use lsn_trace_common::{
    CFG_ENABLED, CFG_EXEC, CFG_FOLLOW_ONLY, CFG_TRACK, Config, ExecOffsets, KernelOffsets,
    KfuncConfig, SYSCALL_HOOK_BIND, SYSCALL_HOOK_LISTEN, SYSCALL_HOOK_SETSOCKOPT, kfunc_call_insn,
};

use crate::{
    errno,
    filter::KernelFilter,
    hookplan::{self, Role},
    probe,
};

/// The eBPF object build.rs built (aya-build), writable: its kfunc calls are set for the
/// running kernel in place before each load (`with_object`). A copy would be 6 MB, three
/// quarters of it DWARF the loader never reads: +6 MB of peak RSS, where writing in place
/// copies only the pages that hold calls. 8-aligned, as the ELF parser wants it.
static mut OBJ: Aligned<[u8; OBJ_LEN]> =
    Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/lsn-trace")));
const OBJ_LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/lsn-trace")).len();

#[repr(C, align(8))]
struct Aligned<T>(T);

include!(concat!(env!("OUT_DIR"), "/kfunc_calls.rs"));

/// Held while the object is patched and loaded.
static OBJ_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// Probe the kernel and take the first that loads and attaches: fentry, kprobe,
    /// tracepoint.
    Auto,
    /// fentry/fexit on inet_bind, inet6_bind, inet_listen and the setsockopt functions
    /// (BPF trampolines: no cost to unrelated syscalls; sees io_uring and in-kernel binds).
    Fentry,
    /// kprobe/kretprobe on the same functions, where the kernel has no BPF trampolines.
    Kprobe,
    /// syscalls:sys_exit_{bind,listen,setsockopt} + raw tracepoint inet_sock_set_state.
    Tracepoint,
}

impl BackendChoice {
    fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
            Self::Tracepoint => "tracepoint",
        }
    }
}

/// (program, category, tracepoint)
const SYSCALL_TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("sys_exit_bind", "syscalls", "sys_exit_bind"),
    ("sys_exit_listen", "syscalls", "sys_exit_listen"),
    ("sys_exit_setsockopt", "syscalls", "sys_exit_setsockopt"),
];

/// Every backend: listeners' closes, and TCP LISTEN transitions no listen hook explains —
/// (program, raw tracepoint): raw, so the TCP state changes that are not events (every
/// connection's) do not pay for a perf record first.
const SET_STATE: (&str, &str) = ("inet_sock_set_state", "inet_sock_set_state");

/// The tracepoint backend, on a kernel that runs 32-bit programs: their calls, which the
/// syscall tracepoints skip (program, raw tracepoint).
const SYS_EXIT_IA32: (&str, &str) = ("sys_exit_ia32", "sys_exit");

pub struct Loaded {
    pub ebpf: Ebpf,
    pub backend: &'static str,
    /// One line for the user: what is attached and what it costs.
    pub description: String,
    /// The backends `auto` passed over, each with why ("fentry: BPF_PROG_LOAD refused
    /// (EPERM)").
    pub passed_over: Vec<String>,
    /// The exec capture is attached (`LoadOptions::exec`): the tracer reads `EXECS`.
    pub exec: bool,
}

pub struct LoadOptions {
    pub offsets: KernelOffsets,
    /// `bpf_rdonly_cast`'s BTF id (offsets::Resolved::cast_kfunc).
    pub cast_kfunc: Option<u32>,
    pub ring_bytes: u32,
    pub wakeup_bytes: u32,
    pub filter: KernelFilter,
    /// Follow process trees (`-- CMD`, `-p`): CFG_TRACK, and CFG_FOLLOW_ONLY unless --all.
    pub follow: Option<FollowMode>,
    /// The kernel functions the fentry and kprobe backends hook (or why they cannot).
    pub kfunc: Result<hookplan::Plan>,
    /// `--ia32`: the tracepoint backend hooks raw_syscalls' sys_exit for 32-bit callers
    /// (where the kernel runs them).
    pub ia32_tracepoint: bool,
    /// Audit: capture who each process becomes at exec (`exec` capture, issue 18), with
    /// these offsets; None = not loaded (the live trace does not pay for it).
    pub exec: Option<ExecOffsets>,
}

impl LoadOptions {
    /// Whether the tracepoint backend hooks 32-bit callers' syscalls.
    fn tracepoint_ia32(&self) -> bool {
        self.ia32_tracepoint && self.kfunc.as_ref().is_ok_and(|p| p.ia32)
    }
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

/// `casts`: with the kernel-struct casts the offsets allow (`opts.cast_kfunc`), else none.
/// `kfunc_backend`: for fentry or kprobe (whose syscall-layer hooks the programs are told
/// of; the tracepoint backend has none).
/// Also whether the exec capture is attached (asked for and loaded).
fn load(opts: &LoadOptions, casts: bool, kfunc_backend: bool) -> Result<(Ebpf, bool)> {
    let (offsets, cast_kfunc) = match opts.cast_kfunc {
        Some(id) if casts => (opts.offsets, Some(id)),
        _ => (opts.offsets.without_casts(), None),
    };
    let mut flags = CFG_ENABLED | opts.filter.flags;
    match opts.follow {
        Some(FollowMode::Only) => flags |= CFG_TRACK | CFG_FOLLOW_ONLY,
        Some(FollowMode::All) => flags |= CFG_TRACK,
        None => {}
    }
    if opts.exec.is_some() {
        flags |= CFG_EXEC;
    }
    let config = Config {
        flags,
        self_pid: std::process::id(),
        wakeup_bytes: opts.wakeup_bytes,
        protos: opts.filter.protos,
        families: opts.filter.families,
    };
    let kfunc_config = match &opts.kfunc {
        Ok(plan) if kfunc_backend => plan.config,
        // The tracepoint backend: only its raw sys_exit hook reports 32-bit calls.
        Ok(plan) => KfuncConfig {
            syscall_hooks: if opts.tracepoint_ia32() {
                SYSCALL_HOOK_BIND | SYSCALL_HOOK_LISTEN | SYSCALL_HOOK_SETSOCKOPT
            } else {
                0
            },
            ..plan.config
        },
        Err(_) => KfuncConfig::default(),
    };
    let exec_offsets = opts.exec.unwrap_or(ExecOffsets::UNRESOLVED);
    let mut loader = EbpfLoader::new();
    // new() has parsed the kernel's BTF, but these programs have no CO-RE relocations to
    // apply (offsets.rs resolves the offsets): free it before the load, not after.
    loader
        .btf(None)
        .override_global("OFFSETS", &offsets, true)
        .override_global("CONFIG", &config, true)
        .override_global("KFUNC", &kfunc_config, true)
        .map_max_entries("EVENTS", opts.ring_bytes)
        .override_global("EXEC_OFFSETS", &exec_offsets, true)
        .map_max_entries("EXECS", exec_ring_bytes(opts.exec.is_some()));
    let mut ebpf = with_object(cast_kfunc, |obj| loader.load(obj))
        .context("loading the eBPF object (maps and globals)")?;
    // The BTF parses (ours and aya's) left megabytes of freed heap behind: give them back
    // now, before the ring buffer is mapped, so they do not add to the agent's footprint.
    return_freed_heap();
    opts.filter.apply(&mut ebpf)?;
    if opts.follow.is_some() {
        attach_follow(&mut ebpf)?;
    }
    // Without it the audit still runs, as before it existed: said, not fatal.
    let exec = opts.exec.is_some()
        && match attach_raw_tracepoint(&mut ebpf, EXEC_HOOK.0, EXEC_HOOK.1) {
            Ok(()) => true,
            Err(e) => {
                log::warn!(
                    "the exec capture is not attached ({e}): a process gone before /proc is \
                     read will have only what its events carry"
                );
                false
            }
        };
    // A forked child's lineage means something only beside its execs (a child that
    // exec()ed is not its parent's program): attached only with the exec capture.
    if exec && let Err(e) = attach_raw_tracepoint(&mut ebpf, FORK_HOOK.0, FORK_HOOK.1) {
        log::warn!(
            "the fork capture is not attached ({e}): a forked child gone before /proc is \
             read will have only what its events carry"
        );
    }
    Ok((ebpf, exec))
}

// ---- Exec capture (issue 18) ------------------------------------------------------------
/// Every backend, in audit: (program, raw tracepoint).
const EXEC_HOOK: (&str, &str) = ("sched_process_exec", "sched_process_exec");
/// With it: who a new process was forked from (`ForkRecord`, same ring).
const FORK_HOOK: (&str, &str) = ("fork_lineage", "sched_process_fork");

/// The `EXECS` ring: 4 MiB holds ~5,000 exec records (808 bytes each; a fork's is 40), 100 ms of an exec storm
/// of 50,000/s between two drains (at most 50 ms apart); one page when unused.
fn exec_ring_bytes(used: bool) -> u32 {
    if used {
        4 << 20
    } else {
        // SAFETY: sysconf has no preconditions.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u32 }
    }
}
// ---- end of the exec capture ------------------------------------------------------------

/// `f` of the eBPF object with its kfunc calls made for this kernel: calling
/// `bpf_rdonly_cast` by its id, or, without it, the register move the verifier would have
/// inlined it to (the programs take that path only where the kfunc exists, but the kernel
/// refuses an object naming a kfunc it lacks). Built with `KFUNC_CAST_PLACEHOLDER` ids.
fn with_object<R>(cast: Option<u32>, f: impl FnOnce(&[u8]) -> R) -> R {
    let _only_us = OBJ_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let obj = &raw mut OBJ;
    // SAFETY: OBJ is only reached here, under the lock.
    let obj = unsafe { &mut (*obj).0 };
    let insn: u64 = match cast {
        Some(id) => kfunc_call_insn(id),
        // BPF_ALU64 | BPF_MOV | BPF_X, dst r0, src r1.
        None => 0x10bf,
    };
    // Where build.rs found them: only the pages holding calls are read (and copied on
    // write), not the whole object.
    for i in KFUNC_CALLS {
        obj[i * 8..i * 8 + 8].copy_from_slice(&insn.to_le_bytes());
    }
    f(obj)
}

/// Hand freed heap back to the system: glibc keeps it otherwise, and the parses at start-up
/// leave megabytes behind that a long-lived agent would hold for nothing.
fn return_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; no pointer is invalidated.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn attach_follow(ebpf: &mut Ebpf) -> Result<()> {
    for &(prog, tp) in FOLLOW_HOOKS {
        attach_raw_tracepoint(ebpf, prog, tp)
            .map_err(|e| anyhow!("{e} (needed to follow processes)"))?;
    }
    Ok(())
}

fn attach_tracepoints(ebpf: &mut Ebpf, ia32: bool) -> Result<()> {
    for &(prog, category, name) in SYSCALL_TRACEPOINTS {
        let p: &mut TracePoint = program(ebpf, prog)?;
        p.load().map_err(|e| anyhow!("{}", load_error(prog, &e)))?;
        p.attach(category, name)
            .with_context(|| format!("attaching to tracepoint {category}:{name}"))?;
    }
    if ia32 {
        let (prog, tp) = SYS_EXIT_IA32;
        attach_raw_tracepoint(ebpf, prog, tp)
            .map_err(|e| anyhow!("{e} (32-bit programs' calls)"))?;
    }
    attach_set_state(ebpf).map_err(|e| anyhow!(e))
}

fn program<'a, T>(ebpf: &'a mut Ebpf, prog: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    Ok(ebpf
        .program_mut(prog)
        .ok_or_else(|| anyhow!("program {prog} missing from the eBPF object"))?
        .try_into()?)
}

/// Why BPF_PROG_LOAD failed, in a few words: EPERM is the kernel refusing the program type
/// (lockdown, or no BPF trampolines), anything else is the verifier's (its log at -vv).
fn load_error(prog: &str, e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let errno = io_error.raw_os_error().unwrap_or(0);
            let name = errno::name(errno).unwrap_or("?");
            if errno == libc::EPERM {
                return format!("BPF_PROG_LOAD refused ({name})");
            }
            log::debug!("verifier log of {prog}:\n{verifier_log}");
            // The verifier's complaint is the last line before its statistics.
            let stats = [
                "processed ",
                "verification time",
                "stack depth",
                "max_states",
            ];
            let last = verifier_log
                .to_string()
                .lines()
                .map(str::trim)
                .rev()
                .find(|l| !l.is_empty() && !stats.iter().any(|s| l.starts_with(s)))
                .unwrap_or("")
                .to_owned();
            format!("BPF_PROG_LOAD of {prog} failed ({name}): {last}")
        }
        e => format!("loading {prog}: {e}"),
    }
}

/// The fentry/fexit programs of each role (lsn-trace-ebpf/src/hooks/fentry.rs).
fn fentry_programs(role: Role, f: &str) -> &'static [&'static str] {
    match (role, f) {
        (Role::Bind, "inet_bind") => &["fexit_inet_bind"],
        (Role::Bind, "inet6_bind") => &["fexit_inet6_bind"],
        (Role::Bind, _) => &["fexit_unix_bind"],
        (Role::Listen, "inet_listen") => &["fentry_inet_listen", "fexit_inet_listen"],
        (Role::Listen, "sock_no_listen") => &["fexit_sock_no_listen"],
        (Role::Listen, _) => &["fexit_unix_listen"],
        (Role::SockoptSocket, _) => &["fexit_sockopt_socket"],
        (Role::SockoptIp, _) => &["fexit_sockopt_ip"],
        (Role::SockoptIpv6, _) => &["fexit_sockopt_ipv6"],
        (Role::SysBind, _) => &["fexit_sys_bind"],
        (Role::SysListen, _) => &["fexit_sys_listen"],
        (Role::SysSetsockopt, _) => &["fexit_sys_setsockopt"],
        (Role::Seccomp, _) => &["fexit_seccomp"],
    }
}

/// The kprobe/kretprobe pair of each role (lsn-trace-ebpf/src/hooks/kprobe.rs): one pair serves
/// every function of that shape.
fn kprobe_programs(role: Role) -> &'static [&'static str] {
    match role {
        Role::Bind => &["kprobe_bind", "kretprobe_bind"],
        Role::Listen => &["kprobe_listen", "kretprobe_listen"],
        Role::SockoptSocket => &["kprobe_sockopt_socket", "kretprobe_sockopt_socket"],
        Role::SockoptIp | Role::SockoptIpv6 => &["kprobe_sockopt_ip", "kretprobe_sockopt_ip"],
        Role::SysBind => &["kprobe_sys_bind", "kretprobe_sys_bind"],
        Role::SysListen => &["kprobe_sys_listen", "kretprobe_sys_listen"],
        Role::SysSetsockopt => &["kprobe_sys_setsockopt", "kretprobe_sys_setsockopt"],
        // Only its return matters.
        Role::Seccomp => &["kretprobe_seccomp"],
    }
}

/// Attach a backend's programs; Err is the reason, for the attach line.
fn attach_fentry(ebpf: &mut Ebpf, plan: &hookplan::Plan) -> Result<(), String> {
    let btf = aya::Btf::from_sys_fs().map_err(|e| format!("reading kernel BTF: {e}"))?;
    for &(role, f) in &plan.hooks {
        for &prog in fentry_programs(role, f) {
            let p = ebpf
                .program_mut(prog)
                .ok_or_else(|| format!("program {prog} missing from the eBPF object"))?;
            let attached = match p {
                aya::programs::Program::FEntry(p) => {
                    p.load(f, &btf).map_err(|e| load_error(prog, &e))?;
                    p.attach().map(drop)
                }
                aya::programs::Program::FExit(p) => {
                    p.load(f, &btf).map_err(|e| load_error(prog, &e))?;
                    p.attach().map(drop)
                }
                _ => return Err(format!("program {prog} is not fentry/fexit")),
            };
            attached.map_err(|e| format!("attaching {prog} to {f}: {e}"))?;
        }
    }
    attach_set_state(ebpf)
}

const NO_KPROBES: &str = "kernel built without kprobes";

/// Whether this kernel can have kprobes at all: perf's kprobe PMU (4.17+) or the tracefs
/// kprobe_events file (what aya falls back to) exist only with CONFIG_KPROBES.
fn kprobes_available() -> bool {
    [
        "/sys/bus/event_source/devices/kprobe",
        "/sys/kernel/tracing/kprobe_events",
        "/sys/kernel/debug/tracing/kprobe_events",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

fn attach_kprobes(ebpf: &mut Ebpf, plan: &hookplan::Plan) -> Result<(), String> {
    if !kprobes_available() {
        return Err(NO_KPROBES.into());
    }
    for &(role, f) in &plan.hooks {
        for &prog in kprobe_programs(role) {
            let p: &mut KProbe = program(ebpf, prog).map_err(|e| e.to_string())?;
            if p.fd().is_err() {
                p.load().map_err(|e| load_error(prog, &e))?;
            }
            p.attach(f, 0)
                .map_err(|e| format!("attaching {prog} to {f}: {e}"))?;
        }
    }
    attach_set_state(ebpf)
}

fn attach_set_state(ebpf: &mut Ebpf) -> Result<(), String> {
    let (prog, tp) = SET_STATE;
    attach_raw_tracepoint(ebpf, prog, tp)
}

/// Load program `prog` and attach it to raw tracepoint `tp`.
fn attach_raw_tracepoint(ebpf: &mut Ebpf, prog: &str, tp: &str) -> Result<(), String> {
    let p: &mut RawTracePoint = program(ebpf, prog).map_err(|e| e.to_string())?;
    p.load().map_err(|e| load_error(prog, &e))?;
    p.attach(tp)
        .map_err(|e| format!("attaching to raw tracepoint {tp}: {e}"))?;
    Ok(())
}

fn hooked(plan: &hookplan::Plan) -> String {
    plan.hooks
        .iter()
        .map(|h| h.1)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Load the object and attach one backend: Ok, or the reason it is not available here.
fn try_backend(choice: BackendChoice, opts: &LoadOptions, casts: bool) -> Result<Loaded, String> {
    let plan = || opts.kfunc.as_ref().map_err(|e| format!("{e:#}"));
    // What the kernel cannot do at all is asked before the object is loaded for nothing.
    match choice {
        BackendChoice::Fentry => probe::fentry(plan()?.probe_func_id)?,
        BackendChoice::Kprobe if !kprobes_available() => {
            return Err(NO_KPROBES.into());
        }
        _ => {}
    }
    let kfunc_backend = matches!(choice, BackendChoice::Fentry | BackendChoice::Kprobe);
    let (mut ebpf, exec) = load(opts, casts, kfunc_backend).map_err(|e| format!("{e:#}"))?;
    let description = match choice {
        BackendChoice::Fentry => {
            let plan = plan()?;
            attach_fentry(&mut ebpf, plan)?;
            // attach_fentry parsed aya's copy of the kernel BTF (~15 MB, freed by now).
            return_freed_heap();
            format!(
                "fentry/fexit on {} + raw tracepoint inet_sock_set_state (no cost to unrelated \
                 syscalls)",
                hooked(plan)
            )
        }
        BackendChoice::Kprobe => {
            let plan = plan()?;
            attach_kprobes(&mut ebpf, plan)?;
            format!(
                "kprobe/kretprobe on {} + raw tracepoint inet_sock_set_state (no cost to \
                 unrelated syscalls)",
                hooked(plan)
            )
        }
        BackendChoice::Tracepoint | BackendChoice::Auto => {
            let ia32 = opts.tracepoint_ia32();
            attach_tracepoints(&mut ebpf, ia32).map_err(|e| format!("{e:#}"))?;
            let unseen = opts.kfunc.as_ref().is_ok_and(|p| p.ia32) && !ia32;
            format!(
                "syscalls:sys_exit_{{bind,listen,setsockopt}} + raw tracepoint{} \
                 inet_sock_set_state (while attached every syscall on the host pays the \
                 syscall-tracepoint cost, ~30 ns{}){}",
                if ia32 { "s sys_exit and" } else { "" },
                if ia32 {
                    ", and ~150 ns more for the 32-bit hook"
                } else {
                    ""
                },
                if unseen {
                    "; 32-bit programs' calls are not seen (--ia32)"
                } else {
                    ""
                }
            )
        }
    };
    if let Ok(plan) = &opts.kfunc
        && choice != BackendChoice::Tracepoint
    {
        for note in &plan.notes {
            log::warn!("{note}");
        }
    }
    Ok(Loaded {
        ebpf,
        backend: choice.name(),
        description,
        passed_over: Vec::new(),
        exec,
    })
}

pub fn load_and_attach(choice: BackendChoice, opts: &LoadOptions) -> Result<Loaded> {
    let order: &[BackendChoice] = match choice {
        BackendChoice::Auto => &[
            BackendChoice::Fentry,
            BackendChoice::Kprobe,
            BackendChoice::Tracepoint,
        ],
        forced => &[forced][..],
    };
    let mut passed_over = Vec::new();
    for &b in order {
        let mut result = try_backend(b, opts, true);
        // The casts are verified on the kernels the tests boot (6.12, and the host's); a
        // verifier elsewhere that refuses them still takes the helper reads, which load
        // wherever the programs do.
        if let Err(why) = &result
            && opts.cast_kfunc.is_some()
            && let Ok(loaded) = try_backend(b, opts, false)
        {
            log::warn!(
                "backend {}: the programs did not load reading kernel structs through \
                 bpf_rdonly_cast ({why}); loaded them with bpf_probe_read_kernel instead",
                b.name()
            );
            result = Ok(loaded);
        }
        match result {
            Ok(mut loaded) => {
                loaded.passed_over = passed_over;
                return Ok(loaded);
            }
            Err(why) => passed_over.push(format!("{}: {why}", b.name())),
        }
    }
    if choice == BackendChoice::Auto {
        bail!(
            "no backend loads on this kernel: {}",
            passed_over.join("; ")
        )
    }
    bail!("backend {}", passed_over.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsn_trace_common::KFUNC_CAST_PLACEHOLDER;

    /// Every call in the built object becomes the kfunc's call, or the move where there
    /// is none, each time; nothing else changes.
    #[test]
    fn kfunc_calls_patched() {
        let words = |obj: &[u8]| -> Vec<u64> {
            obj.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let count = |w: &[u64], x: u64| w.iter().filter(|&&y| y == x).count();
        let original = with_object(Some(KFUNC_CAST_PLACEHOLDER), words);
        let calls = count(&original, kfunc_call_insn(KFUNC_CAST_PLACEHOLDER));
        assert!(calls > 0);
        let with = with_object(Some(0x1234), words);
        assert_eq!(count(&with, 0x1234_0000_2085), calls);
        let without = with_object(None, words);
        assert_eq!(count(&without, 0x10bf), count(&original, 0x10bf) + calls);
        // Back and forth: the second patch finds what the first left.
        let again = with_object(Some(0x1234), words);
        assert_eq!(again, with);
        let changed = |a: &[u64]| original.iter().zip(a).filter(|(x, y)| x != y).count();
        assert_eq!((changed(&with), changed(&without)), (calls, calls));
    }
}
