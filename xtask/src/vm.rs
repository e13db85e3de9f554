//! `cargo xtask vm --kernel 6.1|6.12 [-- COMMAND ARGS…]`: run a command as root on another
//! kernel, in a QEMU VM (software emulation: this machine's /dev/kvm cannot run stock
//! kernels), against the host's own files.
//!
//! * The kernel is Debian's newest `linux-image` of the series, fetched with
//!   `apt-get download`, unpacked with `dpkg-deb -x`; its vmlinuz and the modules 9p needs
//!   (decompressed, in dependency order) are kept in the cache ([`cache_dir`]), so later runs
//!   on the same machine skip all that.
//! * The initramfs (built per run: a few MB) holds busybox-static, those modules and an init
//!   script that loads them, mounts the host's `/` read-only over 9p, mounts the writable
//!   results share at its host path, mounts proc/sys/dev/tracefs/debugfs/bpffs and tmpfs on
//!   /tmp and /run, brings `lo` up, switches root to the host's and runs the command.
//! * The command's output and a marker line with its exit status come back on the serial
//!   console (QEMU's stdout), which is also saved as `console.log` in the results directory.

use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, capture, run};

/// A kernel series the VM runner knows how to fetch: Debian package names are
/// `linux-image-{prefix}{N}{suffix}`, the newest N wins (which leaves out -rt, -cloud, -dbg
/// and -unsigned: their suffix differs).
pub struct Series {
    pub name: &'static str,
    prefix: &'static str,
    suffix: &'static str,
}

pub const SERIES: &[Series] = &[
    Series {
        name: "6.1",
        prefix: "linux-image-6.1.0-",
        suffix: "-amd64",
    },
    Series {
        name: "6.12",
        prefix: "linux-image-6.12.",
        suffix: "+deb12-amd64",
    },
];

/// Modules the guest loads at boot (their dependencies are read from each module's
/// .modinfo): virtio-pci (built in on 6.12) and 9p over virtio, to mount the host's root;
/// the sock_diag handlers (lsn-trace lists a namespace's sockets through NETLINK_SOCK_DIAG,
/// and the guest cannot modprobe: the host's /lib/modules has no modules of its kernel);
/// veth and dummy for tests that build network namespaces; sctp (a module in Debian's
/// kernels) for the SCTP listener tests, after crc32c_generic, the crypto module its
/// libcrc32c asks for by a soft dependency (modinfo `softdep`, which `depends=` omits).
const WANTED_MODULES: &[&str] = &[
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "tcp_diag",
    "udp_diag",
    "raw_diag",
    "unix_diag",
    "veth",
    "dummy",
    "crc32c_generic",
    "sctp",
];

/// The content of a cache entry's `ready` file: an entry made for another module list is
/// made again.
fn ready_key() -> String {
    WANTED_MODULES.join(",")
}

/// Where the guest mounts the host's root before chrooting into it.
const GUEST_ROOT: &str = "/mnt/root";

/// How long a VM may run before it is killed (override: LSN_TRACE_VM_TIMEOUT, seconds).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub fn series(name: &str) -> Result<&'static Series> {
    SERIES.iter().find(|s| s.name == name).with_context(|| {
        let known: Vec<_> = SERIES.iter().map(|s| s.name).collect();
        format!(
            "unknown kernel {name:?}: the VM runner knows {}",
            known.join(", ")
        )
    })
}

/// The kernel cache: $LSN_TRACE_VM_CACHE, else $XDG_CACHE_HOME/lsn-trace/kernels, else
/// ~/.cache/lsn-trace/kernels.
fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = env::var_os("LSN_TRACE_VM_CACHE") {
        return Ok(d.into());
    }
    let base = match env::var_os("XDG_CACHE_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("lsn-trace").join("kernels"))
}

/// A kernel ready to boot.
pub struct Kernel {
    /// The Debian package, e.g. `linux-image-6.1.0-56-amd64`.
    pub package: String,
    /// Its version, e.g. `6.1.192-2`.
    pub version: String,
    vmlinuz: PathBuf,
    /// Decompressed modules, in load order.
    modules: Vec<PathBuf>,
}

fn abi_number(s: &Series, package: &str) -> Option<u32> {
    package
        .strip_prefix(s.prefix)?
        .strip_suffix(s.suffix)?
        .parse()
        .ok()
}

/// The newest package of the series in apt's lists; else the newest already in the cache
/// (so a machine without apt lists still runs what it has).
fn newest_package(s: &Series) -> Result<String> {
    let listed =
        capture(Command::new("apt-cache").args(["pkgnames", s.prefix])).unwrap_or_default();
    let cached = fs::read_dir(cache_dir()?)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("ready").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let newest = |names: &mut dyn Iterator<Item = String>| {
        names
            .filter_map(|n| abi_number(s, &n).map(|abi| (abi, n)))
            .max()
            .map(|(_, n)| n)
    };
    newest(&mut listed.lines().map(str::to_owned))
        .or_else(|| newest(&mut cached.into_iter()))
        .with_context(|| {
            format!(
                "no {}N{} package in apt's lists: run `apt-get update` (Debian bookworm's \
                 archive has them)",
                s.prefix, s.suffix
            )
        })
}

/// Fetch (or find in the cache) the newest kernel of the series.
pub fn kernel(s: &Series) -> Result<Kernel> {
    let package = newest_package(s)?;
    let dir = cache_dir()?.join(&package);
    if fs::read_to_string(dir.join("ready")).ok() != Some(ready_key()) {
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("could not remove the stale {}", dir.display()))?;
        }
        prepare(&package, &dir)?;
    }
    load_cached(&package, &dir)
}

fn load_cached(package: &str, dir: &Path) -> Result<Kernel> {
    let version = fs::read_to_string(dir.join("version"))?.trim().to_owned();
    let order = fs::read_to_string(dir.join("modules").join("order"))?;
    let modules = order
        .lines()
        .map(|m| dir.join("modules").join(format!("{m}.ko")))
        .collect();
    Ok(Kernel {
        package: package.to_owned(),
        version,
        vmlinuz: dir.join("vmlinuz"),
        modules,
    })
}

/// Download and unpack `package`, keep its vmlinuz and the 9p modules in `dir`.
fn prepare(package: &str, dir: &Path) -> Result<()> {
    let parent = dir.parent().context("cache dir has no parent")?;
    fs::create_dir_all(parent)
        .with_context(|| format!("could not create the kernel cache {}", parent.display()))?;
    // Built aside and renamed into place: an interrupted run leaves no half-made kernel.
    let tmp = parent.join(format!(".{package}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    eprintln!(
        "vm: fetching {package} (apt-get download; cached in {})",
        parent.display()
    );
    run(Command::new("apt-get")
        .current_dir(&tmp)
        .args(["download", package]))?;
    let deb = fs::read_dir(&tmp)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    let version = capture(
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg("Version"),
    )
    .context("dpkg-deb -f VERSION failed")?;
    let root = tmp.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let out = tmp.join("out");
    fs::create_dir_all(out.join("modules"))?;

    let vmlinuz = fs::read_dir(root.join("boot"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the package has no boot/vmlinuz-*")?;
    fs::copy(&vmlinuz, out.join("vmlinuz"))?;

    let moddir = fs::read_dir(root.join("lib/modules"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .next()
        .context("the package has no lib/modules/VERSION")?;
    let order = module_closure(&moddir, WANTED_MODULES)?;
    let mut names = String::new();
    for (name, bytes) in &order {
        fs::write(out.join("modules").join(format!("{name}.ko")), bytes)?;
        names.push_str(name);
        names.push('\n');
    }
    fs::write(out.join("modules").join("order"), names)?;
    fs::write(out.join("version"), version.trim())?;
    fs::write(out.join("ready"), ready_key())?;
    if dir.exists() {
        // Another run prepared it meanwhile.
        let _ = fs::remove_dir_all(&tmp);
        return Ok(());
    }
    fs::rename(&out, dir)?;
    let _ = fs::remove_dir_all(&tmp);
    eprintln!(
        "vm: {package} {} ready ({} modules: {})",
        version.trim(),
        order.len(),
        order
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// A module's name as the kernel knows it: the file name without `.ko[.xz|.zst|.gz]`,
/// dashes as underscores.
fn module_name(file: &str) -> Option<String> {
    let stem = file.split_once(".ko")?.0;
    Some(stem.replace('-', "_"))
}

/// The bytes of a module file, decompressed (busybox's insmod only takes plain .ko).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => Ok(fs::read(path)?),
        Some(tool) => {
            let out = Command::new(tool)
                .arg("-dc")
                .arg(path)
                .stderr(Stdio::inherit())
                .output()
                .with_context(|| format!("could not run `{tool}` to decompress {name}"))?;
            if !out.status.success() {
                bail!("`{tool} -dc {name}` failed ({})", out.status);
            }
            Ok(out.stdout)
        }
    }
}

/// `depends=` from a module's .modinfo section (NUL-separated `key=value` strings).
fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `wanted` and everything they depend on, dependencies first, as (name, plain .ko bytes);
/// modules built into the kernel (modules.builtin) are left out.
fn module_closure(moddir: &Path, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![moddir.join("kernel")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(n) = p
                .file_name()
                .and_then(|n| module_name(&n.to_string_lossy()))
            {
                files.insert(n, p);
            }
        }
    }
    let builtin: BTreeSet<String> = fs::read_to_string(moddir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| module_name(l.rsplit('/').next()?))
        .collect();

    fn visit(
        name: &str,
        files: &BTreeMap<String, PathBuf>,
        builtin: &BTreeSet<String>,
        done: &mut BTreeSet<String>,
        order: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        if !done.insert(name.to_owned()) {
            return Ok(());
        }
        let Some(path) = files.get(name) else {
            if builtin.contains(name) {
                return Ok(());
            }
            bail!("module {name} is neither in the kernel package nor built in");
        };
        let bytes = read_module(path)?;
        for dep in modinfo_depends(&bytes) {
            visit(&dep, files, builtin, done, order)?;
        }
        order.push((name.to_owned(), bytes));
        Ok(())
    }
    let mut done = BTreeSet::new();
    let mut order = Vec::new();
    for w in wanted {
        visit(w, &files, &builtin, &mut done, &mut order)?;
    }
    Ok(order)
}

/// A minimal newc ("070701") cpio archive writer: what the kernel unpacks as initramfs.
struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Cpio {
        Cpio {
            buf: Vec::new(),
            ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            u32::try_from(data.len()).expect("initramfs file under 4 GiB"),
            0,
            0,
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).expect("short name"),
            0,
        ];
        self.ino += 1;
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[], (0, 0));
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, data, (0, 0));
    }

    fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, &[], (major, minor));
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.buf
    }
}

/// The statically linked busybox of Debian's busybox-static.
fn busybox() -> Result<Vec<u8>> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if let Ok(bytes) = fs::read(p)
            && is_static_elf(&bytes)
        {
            return Ok(bytes);
        }
    }
    bail!("no statically linked busybox found: install busybox-static (cargo xtask setup --vm)")
}

/// Whether an ELF64 executable has no PT_INTERP (a dynamic one names its loader there, and
/// the initramfs has no loader).
fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let word = |o: usize| elf.get(o..o + 8).and_then(|b| b.try_into().ok());
    if !elf.starts_with(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (
        word(0x20).map(u64::from_le_bytes),
        u16_at(0x36),
        u16_at(0x38),
    ) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = usize::try_from(phoff).unwrap_or(usize::MAX) + i * usize::from(phentsize);
        elf.get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != PT_INTERP)
    })
}

/// Shell single-quoting.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// /init of the guest: everything after it runs as pid 1 under busybox sh.
fn init_script(kernel: &Kernel, results: &Path, marker: &str) -> String {
    let modules: Vec<String> = kernel
        .modules
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    let results = sh_quote(&results.to_string_lossy());
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() {{ echo "vm-init: $*"; echo; echo "{marker} 125"; poweroff -f; }}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in {modules}; do insmod /modules/$m.ko || fail "insmod $m failed"; done
R={GUEST_ROOT}
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot $R \
  || fail "could not mount the host's root over 9p"
OUT={results}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results $R$OUT \
  || fail "could not mount the results share at $OUT"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
# The host's root is read-only: writable scratch where programs expect it.
mount -t tmpfs tmpfs $R/tmp
mount -t tmpfs tmpfs $R/run
mount -t tracefs tracefs $R/sys/kernel/tracing
mount -t debugfs debugfs $R/sys/kernel/debug
mount -t bpf bpf $R/sys/fs/bpf
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
ip link set lo up
hostname lsn-trace-vm
# switch_root, not chroot: the host's root becomes the real root, so paths the kernel
# prints (/proc/PID/exe, seen from another mount namespace too) are the host's paths.
exec switch_root $R /bin/sh $OUT/guest.sh
fail "switch_root failed"
"#,
        modules = modules.join(" "),
    )
}

/// The command as a script the guest runs inside the chroot: same working directory (when
/// it exists there), the given environment.
fn command_script(cwd: &Path, envs: &[(String, String)], command: &[String]) -> String {
    let mut s = String::from("cd ");
    s.push_str(&sh_quote(&cwd.to_string_lossy()));
    s.push_str(" 2>/dev/null || cd /\n");
    for (k, v) in envs {
        s.push_str(&format!("export {k}={}\n", sh_quote(v)));
    }
    s.push_str("exec");
    for w in command {
        s.push(' ');
        s.push_str(&sh_quote(w));
    }
    s.push('\n');
    s
}

/// A VM run's outcome.
pub struct Outcome {
    /// The command's exit status in the guest (None: the VM ended without reporting one).
    pub code: Option<i32>,
    /// The console, minus the marker line.
    pub console: String,
    pub elapsed: Duration,
}

/// Options of a run.
pub struct RunOptions<'a> {
    /// Writable share, mounted in the guest at this same path.
    pub results: &'a Path,
    /// Working directory of the command (`/` when the guest cannot enter it).
    pub cwd: PathBuf,
    pub envs: Vec<(String, String)>,
    /// Echo the console to stdout as it comes.
    pub echo: bool,
    /// Added to the kernel's command line (`preempt=full`).
    pub kernel_args: &'a str,
}

/// Boot `kernel`, run `command` (default: an interactive-less `uname -a`) in the host's root
/// and power off.
pub fn run_in_vm(kernel: &Kernel, command: &[String], opts: &RunOptions) -> Result<Outcome> {
    fs::create_dir_all(opts.results)?;
    let results = fs::canonicalize(opts.results)?;
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let marker = format!("lsn-trace-vm-exit-{nonce:x}:");

    let mut cpio = Cpio::new();
    for d in ["bin", "dev", "proc", "sys", "mnt", "mnt/root", "modules"] {
        cpio.dir(d);
    }
    cpio.char_dev("dev/console", 5, 1);
    cpio.file("bin/busybox", 0o755, &busybox()?);
    for m in &kernel.modules {
        let name = m.file_name().context("module path")?.to_string_lossy();
        let bytes = fs::read(m).with_context(|| format!("could not read {}", m.display()))?;
        cpio.file(&format!("modules/{name}"), 0o644, &bytes);
    }
    cpio.file(
        "init",
        0o755,
        init_script(kernel, &results, &marker).as_bytes(),
    );
    let initrd = results.join("initramfs.cpio");
    fs::write(&initrd, cpio.finish())?;

    let script = results.join("command.sh");
    fs::write(&script, command_script(&opts.cwd, &opts.envs, command))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    // pid 1 after switch_root, with the host's /bin/sh: the command, the marker, power off.
    // Then wait in the shell itself: the power-off takes the 9p root away, and an external
    // `sleep` failing to load from it ended pid 1 — a "Kernel panic" at the end of the log.
    let guest = format!(
        "/bin/sh {script}\nrc=$?\necho\necho \"{marker} $rc\"\nsync\necho o > /proc/sysrq-trigger\nwhile :; do :; done\n",
        script = sh_quote(&script.to_string_lossy())
    );
    fs::write(results.join("guest.sh"), guest)?;

    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-m", "2048", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        // panic=-1: a guest panic reboots, and -no-reboot turns that into QEMU exiting.
        // tsc=reliable: under TCG the kernel may judge the emulated TSC unstable and fall
        // back to the HPET, each read of which is an emulated MMIO access; a 6.1 guest did,
        // and bpf_ktime_get_ns (once per event) then doubled the programs' cost in its bench.
        .args([
            "-append",
            &format!(
                "console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off tsc=reliable {}",
                opts.kernel_args
            ),
        ])
        .args([
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ])
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=results,security_model=none",
            results.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if cmd::which("qemu-system-x86_64").is_none() {
        bail!("qemu-system-x86_64 not found: install qemu-system-x86 (cargo xtask setup --vm)");
    }
    eprintln!("$ {}", cmd::display(&qemu));
    let start = Instant::now();
    let mut child = qemu.spawn().context("could not start qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("qemu stdout")?;

    let log_path = results.join("console.log");
    let mut log = fs::File::create(&log_path)?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut raw = Vec::new();
        while r.read_until(b'\n', &mut raw).is_ok_and(|n| n > 0) {
            let line = strip_escapes(String::from_utf8_lossy(&raw).trim_end_matches(['\r', '\n']));
            raw.clear();
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let timeout = env::var("LSN_TRACE_VM_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let mut code = None;
    let mut console = String::new();
    let stdout = std::io::stdout();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                writeln!(log, "{line}")?;
                if let Some(rest) = line.find(&marker).map(|i| &line[i + marker.len()..]) {
                    code = rest.trim().parse().ok();
                    continue;
                }
                if opts.echo {
                    let _ = writeln!(stdout.lock(), "{line}");
                }
                console.push_str(&line);
                console.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if start.elapsed() > timeout {
                    eprintln!(
                        "vm: no end after {}s: killing QEMU (LSN_TRACE_VM_TIMEOUT to change)",
                        timeout.as_secs()
                    );
                    let _ = child.kill();
                    break;
                }
            }
        }
    }
    let st = child.wait()?;
    let _ = reader.join();
    let elapsed = start.elapsed();
    if code.is_none() {
        eprintln!(
            "vm: the guest ended without reporting an exit status (QEMU {st}); console in {}",
            log_path.display()
        );
    }
    Ok(Outcome {
        code,
        console,
        elapsed,
    })
}

/// `line` without terminal escape sequences (SeaBIOS clears the screen, test harnesses
/// colour their output), so what the console says can be matched and logged as text.
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters, then a final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // Character set selection: one more byte.
            Some('(' | ')') => {
                chars.next();
            }
            _ => {}
        }
    }
    out
}

/// `cargo xtask vm --kernel K [-- COMMAND…]`.
pub fn vm_command(kernel_name: &str, command: &[String]) -> Result<i32> {
    crate::setup::setup_vm()?;
    let s = series(kernel_name)?;
    let k = kernel(s)?;
    eprintln!("vm: kernel {} {}", k.package, k.version);
    let command: Vec<String> = if command.is_empty() {
        vec!["uname".into(), "-a".into()]
    } else {
        command.to_vec()
    };
    let results = cmd::target_dir().join("vm").join(s.name);
    let envs = guest_env(&results);
    let out = run_in_vm(
        &k,
        &command,
        &RunOptions {
            results: &results,
            cwd: env::current_dir()?,
            envs,
            echo: true,
            kernel_args: "",
        },
    )?;
    eprintln!(
        "vm: {} ({}) exited {} in {:.1}s; console log and the writable share: {}",
        s.name,
        k.package,
        out.code.map_or("without status".into(), |c| c.to_string()),
        out.elapsed.as_secs_f64(),
        results.display()
    );
    Ok(out.code.unwrap_or(125))
}

/// The environment of the guest command: the caller's PATH and toolchain locations,
/// LSN_VM_OUT naming the writable share.
pub fn guest_env(results: &Path) -> Vec<(String, String)> {
    let mut envs: Vec<(String, String)> = ["PATH", "CARGO_HOME", "RUSTUP_HOME", "TERM"]
        .iter()
        .filter_map(|k| env::var(k).ok().map(|v| ((*k).to_owned(), v)))
        .collect();
    envs.push(("HOME".into(), "/root".into()));
    envs.push((
        "LSN_VM_OUT".into(),
        fs::canonicalize(results)
            .unwrap_or_else(|_| results.to_path_buf())
            .to_string_lossy()
            .into_owned(),
    ));
    envs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_package_numbers_of_the_series_only() {
        let s61 = series("6.1").unwrap();
        let s612 = series("6.12").unwrap();
        assert_eq!(abi_number(s61, "linux-image-6.1.0-56-amd64"), Some(56));
        assert_eq!(abi_number(s61, "linux-image-6.1.0-56-rt-amd64"), None);
        assert_eq!(abi_number(s61, "linux-image-6.1.0-56-amd64-unsigned"), None);
        assert_eq!(abi_number(s61, "linux-image-6.1.0-56-cloud-amd64"), None);
        assert_eq!(
            abi_number(s612, "linux-image-6.12.117+deb12-amd64"),
            Some(117)
        );
        assert_eq!(
            abi_number(s612, "linux-image-6.12.117+deb12-amd64-dbg"),
            None
        );
        assert_eq!(abi_number(s612, "linux-image-6.12-amd64"), None);
    }

    #[test]
    fn module_names_and_depends() {
        assert_eq!(
            module_name("9pnet_virtio.ko.xz").as_deref(),
            Some("9pnet_virtio")
        );
        assert_eq!(module_name("virtio-rng.ko").as_deref(), Some("virtio_rng"));
        assert_eq!(module_name("modules.order"), None);
        let ko = b"\x7fELF...\0license=GPL\0depends=virtio,9pnet,virtio_ring\0name=x\0";
        assert_eq!(modinfo_depends(ko), ["virtio", "9pnet", "virtio_ring"]);
        assert!(modinfo_depends(b"\0depends=\0name=9pnet\0").is_empty());
    }

    #[test]
    fn strips_terminal_escapes() {
        assert_eq!(
            strip_escapes("\x1bc\x1b[?7l\x1b[2Jvm-test-start: core"),
            "vm-test-start: core"
        );
        assert_eq!(
            strip_escapes("test result: \x1b[32mok\x1b(B\x1b[m. 18 passed"),
            "test result: ok. 18 passed"
        );
    }

    #[test]
    fn static_elf_check() {
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        if let Ok(sh) = fs::read("/bin/sh") {
            // Debian's dash is dynamically linked.
            assert!(!is_static_elf(&sh));
        }
    }

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::new();
        c.file("init", 0o755, b"abc");
        let buf = c.finish();
        assert!(buf.starts_with(b"070701"));
        // 110-byte header + "init\0" padded to 116, then "abc" padded to 120.
        assert_eq!(&buf[110..115], b"init\0");
        assert_eq!(&buf[116..119], b"abc");
        assert_eq!(&buf[120..126], b"070701");
        assert!(buf.len().is_multiple_of(4));
    }
}
