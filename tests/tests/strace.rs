//! `--format strace` against the real strace: one program (tests/src/bin/lsn-sock-demo.rs)
//! runs under `strace -f` while lsn-trace watches; the bind/listen/setsockopt lines of its
//! child must be identical, `[pid N]` prefix and column alignment included.
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use lsn_trace_tests::{ATTACH_LINE, bin};

#[test]
fn lines_are_what_strace_prints() {
    // strace shows syscalls: the syscall tracepoints see the same calls with the same fds
    // (kernel-function backends see no fd, nor calls that fail before the socket's code).
    let mut tracer = Command::new(bin())
        .args(["--format", "strace", "--backend", "tracepoint"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lsn-trace");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let out = tracer.stdout.take().unwrap();
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    let mut err = BufReader::new(tracer.stderr.take().unwrap());
    let mut first = String::new();
    while !first.contains(ATTACH_LINE) {
        first.clear();
        if err.read_line(&mut first).unwrap() == 0 {
            panic!("lsn-trace exited before attaching");
        }
    }
    std::thread::spawn(move || for _ in err.lines() {});

    let demo = Command::new("strace")
        .args(["-f", "-e", "trace=bind,listen,setsockopt"])
        .arg(env!("CARGO_BIN_EXE_lsn-sock-demo"))
        .output()
        .expect("run strace (installed by `cargo xtask setup`)");
    assert!(demo.status.success(), "{demo:?}");
    let child: u32 = String::from_utf8(demo.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let prefix = format!("[pid {child:>5}] ");
    // strace also prints `+++ exited` and signal lines: keep the calls.
    let is_call = |l: &&str| {
        l.strip_prefix(&prefix).is_some_and(|c| {
            ["bind(", "listen(", "setsockopt("]
                .iter()
                .any(|s| c.starts_with(s))
        })
    };
    let strace_text = String::from_utf8(demo.stderr).unwrap();
    let want: Vec<&str> = strace_text.lines().filter(is_call).collect();
    assert_eq!(want.len(), 17, "strace printed:\n{strace_text}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let got: Vec<String> = loop {
        let got: Vec<String> = lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| is_call(&l.as_str()))
            .cloned()
            .collect();
        if got.len() >= want.len() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    tracer.kill().ok();
    tracer.wait().ok();
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(g, w, "\nlsn-trace: {g}\nstrace:    {w}");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "lsn-trace printed:\n{}",
        got.join("\n")
    );
}
