//! Strings chosen by a hostile local user — a process name set with prctl(PR_SET_NAME), the
//! name of a file it executes, unix socket paths and abstract names — reach the terminal
//! escaped and unambiguous, and the JSON exact.
use std::{
    io::{BufRead, BufReader, Read},
    os::unix::{ffi::OsStrExt as _, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use lsn_trace_tests::{ATTACH_LINE, Tracer, bin, sock::*};

const PYTHON: &str = "/usr/bin/python3";

/// A name that clears the screen, turns it red and forges a line (15 bytes: the most a
/// task name holds).
const EVIL: &[u8] = b"\x1b[2J\x1b[31mEVIL\n\r";
/// How the terminal must show it.
const EVIL_ESCAPED: &str = "\\x1b[2J\\x1b[31mEVIL\\x0a\\x0d";

/// Sets its own name (hex argv[1]) with prctl(PR_SET_NAME), listens on 127.0.0.1:0, prints
/// the port, and holds it until stdin closes.
const HOLDER: &str = "import ctypes,socket,sys\n\
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(bytes.fromhex(sys.argv[1])), 0, 0, 0)\n\
    s=socket.socket()\n\
    s.bind(('127.0.0.1',0))\n\
    s.listen(1)\n\
    print(s.getsockname()[1],flush=True)\n\
    sys.stdin.read()\n";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn dir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("lsn-trace-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// What a terminal would receive from it: no control byte but the newlines ending lines,
/// no character that reorders or hides text.
fn assert_terminal_safe(out: &[u8]) {
    let text = String::from_utf8(out.to_vec()).expect("terminal output is UTF-8");
    for (i, c) in text.chars().enumerate() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c as u32, 0x200b..=0x200f | 0x2028..=0x202e | 0x2066..=0x2069 | 0xfeff);
        assert!(!bad, "raw {c:?} at char {i} in:\n{text}");
    }
    for line in text.lines() {
        assert!(!line.starts_with("EVIL"), "forged line: {line:?}\n{text}");
    }
}

#[test]
fn a_hostile_process_name_cannot_drive_the_terminal_in_why_or_the_summary() {
    // The holder of a port runs as nobody and names itself EVIL; root's `-- CMD` then fails
    // to bind that port: the `↳ why:` line and the summary name the holder.
    let mut holder = Command::new(PYTHON)
        .args(["-c", HOLDER, &hex(EVIL)])
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut port = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port: u16 = port.trim().parse().expect("the holder's port");
    let script = format!(
        "import socket\ns=socket.socket()\ntry: s.bind(('127.0.0.1',{port}))\nexcept OSError: pass\n"
    );
    let out = Command::new(bin())
        .args(["--format", "human", "--", PYTHON, "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_terminal_safe(&out.stdout);
    assert_terminal_safe(&out.stderr);
    let why = stdout
        .lines()
        .find(|l| l.contains("↳ why:"))
        .unwrap_or_else(|| panic!("no why line: {stdout}"));
    assert!(why.contains(EVIL_ESCAPED), "{why}");
    assert!(
        stderr.contains(&format!("held by {EVIL_ESCAPED} (pid {})", holder.id())),
        "the -- CMD summary: {stderr}"
    );
}

#[test]
fn hostile_names_set_by_exec_and_prctl_are_exact_in_json_and_escaped_for_people() {
    let d = dir("exec");
    // A file name with a newline, a right-to-left override, a backslash sequence and a byte
    // that is not UTF-8; its first 15 bytes become the task's name at exec.
    let name: &[u8] = b"a\nb\xe2\x80\xae\\x0a\xffzzzzzzz";
    let link = d.0.join(std::ffi::OsStr::from_bytes(name));
    std::os::unix::fs::symlink(PYTHON, &link).unwrap();
    let comm = &name[..15];
    // Binds once under the exec'd name, then renames itself EVIL and binds again.
    let script = format!(
        "import ctypes,socket\n\
         a=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); a.bind(('127.0.0.1',0))\n\
         ctypes.CDLL(None).prctl(15, ctypes.c_char_p(bytes.fromhex('{}')), 0, 0, 0)\n\
         b=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); b.bind(('127.0.0.1',0))\n",
        hex(EVIL)
    );
    // JSON: the exact names (the byte that is not UTF-8 in its documented form, U+10FF00+byte).
    let json = Command::new(bin())
        .arg("--json")
        .arg("--")
        .arg(&link)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(json.status.success(), "{json:?}");
    let binds: Vec<serde_json::Value> = String::from_utf8(json.stdout)
        .expect("JSON output is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v: &serde_json::Value| v["event"] == "bind")
        .collect();
    assert_eq!(binds.len(), 2, "{binds:#?}");
    let exact = |b: &[u8]| -> String {
        let mut s = String::new();
        for chunk in b.utf8_chunks() {
            s.push_str(chunk.valid());
            for &x in chunk.invalid() {
                s.push(char::from_u32(0x10_FF00 + u32::from(x)).unwrap());
            }
        }
        s
    };
    assert_eq!(binds[0]["comm"], exact(comm));
    assert_eq!(binds[1]["comm"], std::str::from_utf8(EVIL).unwrap());

    // For people: escaped, the backslash of the name doubled so it is not a newline.
    let human = Command::new(bin())
        .args(["--format", "human", "--"])
        .arg(&link)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(human.status.success(), "{human:?}");
    assert_terminal_safe(&human.stdout);
    assert_terminal_safe(&human.stderr);
    let stdout = String::from_utf8(human.stdout).unwrap();
    assert!(
        stdout.contains("a\\x0ab\\u{202e}\\\\x0a\\xffzzz"),
        "{stdout}"
    );
    assert!(stdout.contains(EVIL_ESCAPED), "{stdout}");
}

/// `lsn-trace --format human -p ME` until `f` is done: everything it printed.
fn human_trace_of_self(f: impl FnOnce()) -> (Vec<u8>, Vec<u8>) {
    let mut child = Command::new(bin())
        .args(["--format", "human", "-p", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut stderr = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "exited before attaching"
        );
        stderr.extend_from_slice(line.as_bytes());
        if line.contains(ATTACH_LINE) {
            break;
        }
    }
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    f();
    // Past the 50 ms drain.
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    err.read_to_end(&mut stderr).unwrap();
    child.wait().unwrap();
    (reader.join().unwrap(), stderr)
}

#[test]
fn unix_paths_and_abstract_names_are_unambiguous() {
    let d = dir("unix");
    let base = d.0.as_os_str().as_encoded_bytes().to_vec();
    let path = |tail: &[u8]| -> Vec<u8> { [&base[..], b"/", tail].concat() };
    let newline = path(b"a\nb.sock");
    let four_chars = path(b"a\\x0ab.sock");
    // haproxy's abns@: padded with NULs to the whole sun_path; and the same with real `@`s.
    let mut padded = vec![0u8];
    padded.extend_from_slice(b"lsn-hostile");
    let at = [&padded[..], &[b'@'; 20][..]].concat();
    padded.resize(108, 0);
    let mut keep = Vec::new();
    let bind_all = |keep: &mut Vec<Fd>| {
        for p in [&newline, &four_chars, &padded, &at] {
            let fd = socket(libc::AF_UNIX, libc::SOCK_DGRAM);
            let (sun, len) = sun_path(p);
            bind_raw(&fd, &sun, len).unwrap();
            keep.push(fd);
        }
    };
    let (stdout, stderr) = human_trace_of_self(|| bind_all(&mut keep));
    drop(std::mem::take(&mut keep));
    assert_terminal_safe(&stdout);
    assert_terminal_safe(&stderr);
    let text = String::from_utf8(stdout).unwrap();
    let dir_s = d.0.to_str().unwrap();
    assert!(text.contains(&format!("{dir_s}/a\\x0ab.sock")), "{text}");
    assert!(text.contains(&format!("{dir_s}/a\\\\x0ab.sock")), "{text}");
    assert!(
        text.contains("@lsn-hostile (+96 trailing NUL bytes)"),
        "the padding abbreviated, and said: {text}"
    );
    assert!(
        text.contains(&format!("@lsn-hostile{}", "@".repeat(20))),
        "{text}"
    );

    // JSON: exact and reversible.
    for p in [&newline, &four_chars] {
        let _ = std::fs::remove_file(Path::new(std::ffi::OsStr::from_bytes(p)));
    }
    let t = Tracer::start(&["-p", &std::process::id().to_string()]);
    bind_all(&mut keep);
    let me = lsn_trace_tests::tid();
    let binds = t.wait_n(4, Duration::from_secs(20), |v| {
        v["tid"] == me && v["event"] == "bind" && v["family"] == "unix"
    });
    let addrs: Vec<&str> = binds.iter().map(|v| v["addr"].as_str().unwrap()).collect();
    let abstract_exact = |b: &[u8]| format!("@{}", std::str::from_utf8(&b[1..]).unwrap());
    assert_eq!(
        addrs,
        [
            std::str::from_utf8(&newline).unwrap().to_owned(),
            std::str::from_utf8(&four_chars).unwrap().to_owned(),
            abstract_exact(&padded),
            abstract_exact(&at),
        ]
    );
}
