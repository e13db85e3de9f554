//! The Debian package (`cargo xtask dist`), installed for real on this host: `dpkg -i`,
//! `man` renders its pages, bash loads its completions, `systemd-analyze verify` passes on
//! the installed unit, the service is not started; `dpkg -r` keeps the audit logs and the
//! logrotate conffile and removes every other file, `apt-get install ./…deb` puts it back,
//! `dpkg -P` removes the rest. And the binary says plainly when the kernel has no BTF.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use lsn_trace_tests::bin;

const LOG_DIR: &str = "/var/log/lsn-trace";
const CONFFILE: &str = "/etc/logrotate.d/lsn-trace-audit";
const UNIT: &str = "/usr/lib/systemd/system/lsn-trace-audit.service";

/// $LSN_TRACE_DEB (`cargo xtask test` builds it), else the newest of target/dist/.
fn deb() -> PathBuf {
    if let Some(p) = std::env::var_os("LSN_TRACE_DEB") {
        return p.into();
    }
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dist");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dist)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    debs.retain(|p| p.extension().is_some_and(|e| e == "deb"));
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop().expect(
        "no package: run `cargo xtask dist` (or `cargo xtask test`, which sets LSN_TRACE_DEB)",
    )
}

fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// dpkg's status of the package: "install ok installed", "deinstall ok config-files", or
/// None when dpkg does not know it (purged).
fn status() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "lsn-trace"])
        .output()
        .unwrap();
    let s = text(&out);
    (out.status.success() && !s.contains("not-installed")).then_some(s)
}

fn dpkg(args: &[&str]) -> Output {
    sh(Command::new("dpkg").args(["--force-confold"]).args(args))
}

/// The regular files the package ships (`dpkg-deb -c`), as absolute paths.
fn shipped(deb: &Path) -> Vec<String> {
    let list = text(&sh(Command::new("dpkg-deb").arg("-c").arg(deb)));
    list.lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect()
}

#[test]
fn installs_renders_completes_verifies_removes_and_purges() {
    let deb = deb();
    // A package left by an interrupted run of this test is ours to take away; logs that
    // belong to no package are someone's: leave them, and this test cannot run.
    if status().is_some() {
        dpkg(&["-P", "lsn-trace"]);
    }
    assert!(
        !Path::new(LOG_DIR).exists(),
        "{LOG_DIR} exists without the package: not ours to purge"
    );
    let files = shipped(&deb);
    for f in [
        "/usr/bin/lsn-trace",
        UNIT,
        CONFFILE,
        "/usr/share/man/man1/lsn-trace.1.gz",
        "/usr/share/man/man1/lsn-trace-audit.1.gz",
        "/usr/share/man/man1/lsn-trace-explain.1.gz",
        "/usr/share/bash-completion/completions/lsn-trace",
        "/usr/share/zsh/vendor-completions/_lsn-trace",
        "/usr/share/fish/vendor_completions.d/lsn-trace.fish",
        "/usr/share/doc/lsn-trace/README.md",
        "/usr/share/doc/lsn-trace/LICENSE-MIT",
        "/usr/share/doc/lsn-trace/LICENSE-APACHE",
        "/usr/share/doc/lsn-trace/copyright",
    ] {
        assert!(
            files.iter().any(|p| p == f),
            "{f} not in the package: {files:#?}"
        );
    }

    dpkg(&["-i", deb.to_str().unwrap()]);
    assert_eq!(status().as_deref(), Some("install ok installed"));
    for f in &files {
        assert!(Path::new(f).is_file(), "{f} not installed");
    }
    let version = text(&sh(Command::new("/usr/bin/lsn-trace").arg("--version")));
    assert_eq!(
        version.trim(),
        format!("lsn-trace {}", env!("CARGO_PKG_VERSION"))
    );
    // Installing enables and starts nothing.
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/lsn-trace-audit.service").exists()
    );
    assert!(
        !Path::new(LOG_DIR).exists(),
        "the service ran: it created {LOG_DIR}"
    );
    let unit = std::fs::read_to_string(UNIT).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/lsn-trace audit --log /var/log/lsn-trace/audit.jsonl")
    );

    // man renders every page (plain text, as a terminal would show it).
    for (page, has) in [
        ("lsn-trace", "--backend"),
        ("lsn-trace-audit", "--metrics"),
        ("lsn-trace-explain", "lsn-trace explain"),
    ] {
        let out = sh(Command::new("man")
            .arg(page)
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat"));
        let shown = text(&out);
        let plain: String = shown.replace('\u{2010}', "-");
        assert!(
            plain.contains("NAME") && plain.contains(has),
            "man {page}:\n{shown}"
        );
    }
    // The completions load in bash.
    let out = sh(Command::new("bash").args([
        "--norc",
        "-c",
        "source /usr/share/bash-completion/completions/lsn-trace && complete -p lsn-trace",
    ]));
    assert!(
        text(&out).trim_end().ends_with(" lsn-trace")
            && text(&out).starts_with("complete ")
            && text(&out).contains(" -F _lsn__trace "),
        "{}",
        text(&out)
    );
    // The installed unit verifies (its ExecStart exists now), without a warning about it.
    let out = Command::new("systemd-analyze")
        .args(["verify", UNIT])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("lsn-trace-audit.service"),
        "warnings: {stderr}"
    );

    // What the service leaves when it has run: its log (LogsDirectory= makes the dir).
    std::fs::create_dir_all(LOG_DIR).unwrap();
    let log = format!("{LOG_DIR}/audit.jsonl");
    let mut agent = Command::new("/usr/bin/lsn-trace")
        .args(["--pid", "1", "audit", "--log", &log])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("snapshot_end")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the installed agent wrote no snapshot"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("\"record\":\"stop\""));

    // remove: every shipped file goes except the conffile; the logs stay.
    dpkg(&["-r", "lsn-trace"]);
    assert_eq!(status().as_deref(), Some("deinstall ok config-files"));
    for f in &files {
        assert_eq!(Path::new(f).exists(), f == CONFFILE, "{f} after dpkg -r");
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        logged,
        "dpkg -r touched the log"
    );

    // apt installs the file too; the log is still there.
    sh(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "--no-install-recommends",
            "-o",
            "DPkg::Lock::Timeout=600",
        ])
        .arg(&deb)
        .env("DEBIAN_FRONTEND", "noninteractive"));
    assert_eq!(status().as_deref(), Some("install ok installed"));
    assert!(Path::new("/usr/bin/lsn-trace").is_file());

    // purge: nothing of it is left, logs included.
    dpkg(&["-P", "lsn-trace"]);
    assert_eq!(status(), None);
    for f in &files {
        assert!(!Path::new(f).exists(), "{f} after dpkg -P");
    }
    assert!(!Path::new(LOG_DIR).exists(), "{LOG_DIR} after dpkg -P");
}

#[test]
fn a_kernel_without_btf_is_said_plainly() {
    // In a mount namespace of its own, /sys/kernel/btf is an empty tmpfs: no vmlinux.
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs none /sys/kernel/btf && exec \"$0\" audit",
        ])
        .arg(bin())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has no BTF (/sys/kernel/btf/vmlinux does not exist)")
            && err.contains("CONFIG_DEBUG_INFO_BTF"),
        "{err}"
    );
}
