//! Small helpers shared by the subcommands: run a command (printing it first), find a
//! program, know whether we are root, and build a command that runs as root.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context as _, Result, bail};

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in a workspace")
        .to_path_buf()
}

/// Cargo's target directory (CARGO_TARGET_DIR, else `<root>/target`).
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The release build of the agent.
pub fn lsn_trace_bin() -> PathBuf {
    target_dir().join("release").join("lsn-trace")
}

/// `$CARGO_HOME/bin` (default `~/.cargo/bin`), where `cargo install` puts bpf-linker.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(home.join("bin"))
}

/// Whether the effective uid is 0 (read from /proc/self/status: no libc needed).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The first executable called `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A command that runs `program` as root: directly when we are root, else through
/// `sudo env K=V program` (sudo would drop the environment otherwise).
pub fn as_root(program: &str, envs: &[(&str, &str)]) -> Result<Command> {
    if is_root() {
        let mut cmd = Command::new(program);
        cmd.envs(envs.iter().copied());
        return Ok(cmd);
    }
    if which("sudo").is_none() {
        bail!("`{program}` must run as root, and sudo is not installed: run this as root");
    }
    let mut cmd = Command::new("sudo");
    if !envs.is_empty() {
        cmd.arg("env");
        cmd.args(envs.iter().map(|(k, v)| format!("{k}={v}")));
    }
    cmd.arg(program);
    Ok(cmd)
}

/// `KEY=value program arg …` as a person would type it (a PATH that only prefixes the
/// current one is shown as `dir:$PATH`).
pub fn display(cmd: &Command) -> String {
    let cur_path = env::var("PATH").unwrap_or_default();
    let mut words = Vec::new();
    for (k, v) in cmd.get_envs() {
        let Some(v) = v else { continue };
        let mut v = v.to_string_lossy().into_owned();
        if k == "PATH"
            && !cur_path.is_empty()
            && let Some(prefix) = v.strip_suffix(&cur_path)
        {
            v = format!("{prefix}$PATH");
        }
        words.push(format!("{}={v}", k.to_string_lossy()));
    }
    words.push(quote(cmd.get_program()));
    words.extend(cmd.get_args().map(quote));
    words.join(" ")
}

fn quote(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Print `$ cmd args`, run it, and return its exit status (an error only if it could not
/// be started).
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    let shown = display(cmd);
    eprintln!("$ {shown}");
    cmd.status()
        .with_context(|| format!("could not run `{shown}`"))
}

/// Print `$ cmd args`, run it, and fail with an error naming the command unless it
/// succeeds.
pub fn run(cmd: &mut Command) -> Result<()> {
    let st = status(cmd)?;
    if !st.success() {
        bail!("`{}` failed ({st})", display(cmd));
    }
    Ok(())
}

/// Run a check quietly: true when the command starts and exits 0.
pub fn probe(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run a check quietly and capture its stdout (None when it cannot start or fails).
pub fn capture(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The exit code to forward for a child's status (128+signal when it was killed).
pub fn exit_code(st: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    st.code()
        .or_else(|| st.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::display;
    use std::process::Command;

    #[test]
    fn displays_commands_as_typed() {
        let mut cmd = Command::new("cargo");
        cmd.args(["test", "--", "name with space", "it's"]);
        assert_eq!(display(&cmd), r"cargo test -- 'name with space' 'it'\''s'");
        let path = std::env::var("PATH").unwrap_or_default();
        if !path.is_empty() {
            let mut cmd = Command::new("cargo");
            cmd.env("PATH", format!("/usr/lib/llvm-22/bin:{path}"))
                .arg("install");
            assert_eq!(
                display(&cmd),
                "PATH=/usr/lib/llvm-22/bin:$PATH cargo install"
            );
        }
    }
}
