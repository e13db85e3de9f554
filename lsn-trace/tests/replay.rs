//! Every output format, byte for byte, on a recorded bind storm (bench/replay/storm.raw:
//! 20 cycles of socket, IPV6_V6ONLY, SO_REUSEADDR, bind [::1]:0, listen, close, as the
//! tracepoint backend recorded them): `lsn-trace replay` against the golden outputs beside
//! it, made by the agent before its hot paths were rewritten for speed.
//!
//! The records are attributed to pid 4999999, above the kernel's pid ceiling (2^22), so the
//! audit log's identity look-up finds no process, wherever this runs. After a change of
//! output made on purpose: `LSN_REPLAY_BLESS=1 cargo test -p lsn-trace --test replay`
//! writes the new outputs (then read their diff).
use std::{path::PathBuf, process::Command};

const NO_SUCH_PID: &str = "4999999";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/replay")
}

fn replay(format: &str) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_lsn-trace"))
        .arg("replay")
        .arg(dir().join("storm.raw"))
        .args(["--format", format, "--as-pid", NO_SUCH_PID])
        .output()
        .expect("running lsn-trace replay");
    assert!(
        out.status.success(),
        "lsn-trace replay --format {format}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn check(format: &str) {
    let got = replay(format);
    let golden = dir().join(format!("storm.{format}"));
    if std::env::var_os("LSN_REPLAY_BLESS").is_some() {
        std::fs::write(&golden, &got).expect("writing the golden output");
        return;
    }
    let want = std::fs::read(&golden).expect("reading the golden output");
    if got != want {
        let (got, want) = (
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
        );
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "--format {format} differs from {} from line {}:\n got: {}\nwant: {}",
            golden.display(),
            first + 1,
            got.lines().nth(first).unwrap_or("(end)"),
            want.lines().nth(first).unwrap_or("(end)"),
        );
    }
}

#[test]
fn json_is_byte_identical() {
    check("json");
}

#[test]
fn human_is_byte_identical() {
    check("human");
}

#[test]
fn strace_is_byte_identical() {
    check("strace");
}

#[test]
fn audit_is_byte_identical() {
    check("audit");
}

/// Replaying twice over is the same records twice: a pass leaves the story as it found it
/// (every listener closed), so the bench's repeated passes each cost what the first does.
#[test]
fn a_second_pass_repeats_the_first() {
    let once = replay("json");
    let out = Command::new(env!("CARGO_BIN_EXE_lsn-trace"))
        .arg("replay")
        .arg(dir().join("storm.raw"))
        .args(["--format", "json", "--as-pid", NO_SUCH_PID, "--repeat", "2"])
        .output()
        .expect("running lsn-trace replay");
    assert!(out.status.success());
    assert_eq!(out.stdout, [once.clone(), once].concat());
}
