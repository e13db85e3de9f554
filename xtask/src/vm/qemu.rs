//! One VM run: QEMU booted on the kernel and initramfs, the console read until the
//! command's exit marker (or the timeout), the outcome.
use std::env;
use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};

use super::Kernel;
use super::initramfs::{Cpio, busybox, command_script, init_script, sh_quote};
use crate::cmd;

/// How long a VM may run before it is killed (override: LSN_TRACE_VM_TIMEOUT, seconds).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

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
    /// Put before each echoed line (guests booted side by side: `[6.1] `).
    pub label: &'a str,
    /// Added to the kernel's command line (`preempt=full`).
    pub kernel_args: &'a str,
    /// How long the VM may run before it is killed (None: `DEFAULT_TIMEOUT`);
    /// LSN_TRACE_VM_TIMEOUT overrides either.
    pub timeout: Option<Duration>,
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
        .unwrap_or(opts.timeout.unwrap_or(DEFAULT_TIMEOUT));
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
                    let _ = writeln!(stdout.lock(), "{}{line}", opts.label);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
