//! Backend choice (`--backend auto|fentry|kprobe|tracepoint`) and what only the
//! kernel-function backends see (io_uring). Kernel-aware: the same tests pass on the host
//! (tracepoint only) and on the VM kernels (all three).
use std::{net::Ipv4Addr, path::Path, time::Duration};

use io_uring::{IoUring, opcode, types};
use lsn_trace_tests::{Tracer, Value, sock::*, try_backend};

const ORDER: [&str; 3] = ["fentry", "kprobe", "tracepoint"];

/// Whether this kernel has kprobes at all (CONFIG_KPROBES): perf's kprobe PMU or tracefs's
/// kprobe_events.
fn kernel_has_kprobes() -> bool {
    [
        "/sys/bus/event_source/devices/kprobe",
        "/sys/kernel/tracing/kprobe_events",
        "/sys/kernel/debug/tracing/kprobe_events",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
}

#[test]
fn auto_takes_the_first_backend_that_attaches_and_says_why_it_passed_over_the_others() {
    let forced: Vec<(&str, Result<String, String>)> =
        ORDER.iter().map(|&b| (b, try_backend(b))).collect();
    for (b, r) in &forced {
        match r {
            Ok(line) => assert!(
                line.starts_with(&format!("lsn-trace: attached, backend {b}: ")),
                "{line}"
            ),
            // A forced backend fails with its reason, on one line.
            Err(e) => assert!(
                e.starts_with(&format!("lsn-trace: error: backend {b}: ")),
                "{e}"
            ),
        }
    }
    // The reasons a kernel can give. A kernel with BTF either runs BPF trampolines or
    // refuses the program type; any other fentry failure (a verifier rejection) is a bug.
    let (fentry, kprobe, tracepoint) = (&forced[0].1, &forced[1].1, &forced[2].1);
    if let Err(e) = fentry {
        assert_eq!(
            e,
            "lsn-trace: error: backend fentry: BPF_PROG_LOAD refused (EPERM)"
        );
    }
    if kernel_has_kprobes() {
        assert!(kprobe.is_ok(), "{kprobe:?}");
    } else {
        assert_eq!(
            kprobe.as_ref().unwrap_err(),
            "lsn-trace: error: backend kprobe: kernel built without kprobes"
        );
    }
    assert!(tracepoint.is_ok(), "{tracepoint:?}");

    let (chosen, _) = forced.iter().find(|(_, r)| r.is_ok()).unwrap();
    let passed_over: Vec<String> = forced
        .iter()
        .take_while(|(b, _)| b != chosen)
        .map(|(_, r)| {
            r.as_ref()
                .unwrap_err()
                .trim_start_matches("lsn-trace: error: backend ")
                .to_owned()
        })
        .collect();
    let expected = if passed_over.is_empty() {
        format!("lsn-trace: attached, backend {chosen}: ")
    } else {
        format!(
            "lsn-trace: attached, backend {chosen} (passed over: {}): ",
            passed_over.join("; ")
        )
    };
    let t = Tracer::start(&["--backend", "auto"]);
    let line = t.wait_stderr(lsn_trace_tests::ATTACH_LINE, Duration::from_secs(1));
    assert!(line.starts_with(&expected), "{line}\nexpected: {expected}");
}

/// (major, minor) of the running kernel.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut n = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse().unwrap());
    (n.next().unwrap(), n.next().unwrap())
}

/// Submit one SQE and wait for its completion's result.
fn complete(ring: &mut IoUring, sqe: io_uring::squeue::Entry) -> i32 {
    unsafe { ring.submission().push(&sqe).expect("submission queue full") };
    ring.submit_and_wait(1).expect("io_uring_enter");
    ring.completion().next().expect("a completion").result()
}

#[test]
fn io_uring_bind_and_listen() {
    let t = Tracer::shared();
    let mut ring = IoUring::new(4).expect("io_uring_setup");
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM);
    let port = free_port();
    let sa = sin(Ipv4Addr::LOCALHOST, port);
    let bind = opcode::Bind::new(
        types::Fd(fd.0),
        (&sa as *const libc::sockaddr_in).cast(),
        size_of::<libc::sockaddr_in>() as u32,
    )
    .build();
    let res = complete(&mut ring, bind);
    if kernel_version() < (6, 11) {
        // No IORING_OP_BIND/LISTEN before 6.11: nothing to see.
        assert_eq!(
            res,
            -libc::EINVAL,
            "IORING_OP_BIND on {:?}",
            kernel_version()
        );
        return;
    }
    assert_eq!(res, 0, "IORING_OP_BIND");
    let res = complete(&mut ring, opcode::Listen::new(types::Fd(fd.0), 7).build());
    assert_eq!(res, 0, "IORING_OP_LISTEN");
    assert_eq!(local_port(&fd), port);

    // io_uring may run the request in a worker thread of this process: match by pid and the
    // port asked for (free_port's own probe bound port 0) or held.
    let pid = std::process::id();
    let ours = |event: &'static str| {
        let key = if event == "bind" {
            "port"
        } else {
            "bound_port"
        };
        move |v: &Value| v["pid"] == pid && v["event"] == event && v[key] == port
    };
    let l = t
        .wait_n(1, Duration::from_secs(20), ours("listen"))
        .remove(0);
    assert_eq!(
        l["fd"],
        Value::Null,
        "io_uring names a socket, never an fd here"
    );
    assert_eq!(l["addr"], "127.0.0.1");
    assert_eq!(l["errno"], Value::Null);
    if t.hooks_kernel_functions() {
        assert_eq!(l["source"], "io_uring");
        assert_eq!(l["backlog"], 7);
        assert_eq!(l["backlog_effective"], 7);
        let b = t.wait_n(1, Duration::from_secs(20), ours("bind")).remove(0);
        assert_eq!(b["source"], "io_uring");
        assert_eq!(b["fd"], Value::Null);
        assert_eq!(b["addr"], "127.0.0.1");
        assert_eq!(b["port"], port);
        assert_eq!(b["errno"], Value::Null);
        assert_eq!(b["sock_id"], l["sock_id"]);
    } else {
        // Syscall tracepoints see neither request; inet_sock_set_state sees the socket
        // enter LISTEN, with no backlog asked (no listen(2) carried one).
        assert_eq!(l["source"], "kernel");
        assert_eq!(l["backlog"], Value::Null);
        assert_eq!(l["backlog_effective"], 7);
        assert!(t.seen(ours("bind")).is_empty());
    }
    // Reported once: the LISTEN transition happens inside the listen hook's call, and
    // would have been emitted before the listen event.
    assert_eq!(
        t.seen(ours("listen")).len(),
        1,
        "{:#?}",
        t.seen(ours("listen"))
    );
}
