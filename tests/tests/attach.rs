//! The attach line is the go-ahead users and scripts start their daemon on: what happens
//! right after it must be seen (the agent prints it only once its own test calls came back
//! through every hook), and its own test calls are never shown.
use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::Duration,
};

use lsn_trace_tests::{Tracer, sock::*, tid};

/// A bind made the moment the attach line appears is reported, on each of 20 fresh starts,
/// from every CPU (one thread pinned to each).
#[test]
fn a_bind_right_after_the_attach_line_is_reported_on_every_start() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for round in 0..20 {
        let t = Tracer::start(&[]);
        let binds: Vec<(i32, u16, Fd)> = (0..cpus)
            .map(|cpu| {
                std::thread::spawn(move || {
                    pin_to(cpu);
                    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
                    bind(&fd, &sin(std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
                    (tid(), local_port(&fd), fd)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        for (cpu, (me, port, _fd)) in binds.iter().enumerate() {
            // Reported at all is the promise, not how soon: this tracer sees the host's
            // every event, the storm test's beside it, and under emulation (kprobe on a
            // busy host) draining those took longer than 10 s.
            let got = t.wait_n(1, Duration::from_secs(90), |v| {
                v["tid"] == *me && v["event"] == "bind" && v["bound_port"] == *port
            });
            assert_eq!(got[0]["addr"], "127.0.0.1", "round {round}, CPU {cpu}");
        }
        let (status, stderr) = t.terminate();
        assert!(status.success(), "round {round}: {stderr:#?}");
        // Every hook fired in the self-check: no warning before the attach line.
        assert!(
            !stderr.iter().any(|l| l.contains("not seen to fire")),
            "round {round}: {stderr:#?}"
        );
        // The self-check's own calls never reach the output.
        let own = t.seen(|v| v["pid"] == t.pid());
        assert!(own.is_empty(), "round {round}: {own:#?}");
    }
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one CPU set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        check(libc::sched_setaffinity(0, size_of_val(&set), &set)).unwrap();
    }
}

/// A storm started the moment the attach line appears: each of its calls is reported or
/// counted lost — no uncounted gap at the start.
#[test]
fn a_storm_right_after_the_attach_line_is_reported_or_counted_lost() {
    const CYCLES: usize = 20_000;
    const PER_CYCLE: usize = 5; // setsockopt ×2, bind, listen, close
    // The storm waits on its stdin for the go, so the tracer can follow its pid alone (the
    // lost count is then the storm's).
    let mut storm = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import socket, sys\n\
                 sys.stdin.readline()\n\
                 for _ in range({CYCLES}):\n\
                 \x20   s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n\
                 \x20   s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n\
                 \x20   s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                 \x20   s.bind(('::1', 0))\n\
                 \x20   s.listen(1)\n\
                 \x20   s.close()\n\
                 print('done', flush=True)\n"
            ),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let pid = storm.id();
    let t = Tracer::start(&["--pid", &pid.to_string()]);
    let mut go = storm.stdin.take().unwrap();
    go.write_all(b"go\n").unwrap();
    go.flush().unwrap();
    let mut line = String::new();
    BufReader::new(storm.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "done");
    assert!(storm.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(500));
    let (status, stderr) = t.terminate();
    assert!(status.success(), "{stderr:#?}");
    let reported = t.seen(|v| v["pid"] == pid).len() as u64;
    let lost: u64 = t
        .seen(|v| v["event"] == "lost")
        .iter()
        .map(|v| v["count"].as_u64().unwrap())
        .sum();
    let made = (CYCLES * PER_CYCLE) as u64;
    assert_eq!(reported + lost, made, "reported {reported} + lost {lost}");
}
