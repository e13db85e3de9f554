//! A full ring buffer loses events: they must be counted in the kernel and reported, in
//! the stream and in the summary — never dropped silently.
use std::{collections::HashMap, time::Duration};

use lsn_trace_tests::Tracer;

#[test]
fn a_full_ring_buffer_is_counted_and_reported() {
    const BINDS: usize = 20_000; // ~300 bytes each: several times the 1 MiB ring
    let t = Tracer::start(&["--ring-size", "1"]);
    let me = t.overflow_ring(BINDS);
    let lost_records = t.wait_n(1, Duration::from_secs(20), |v| v["event"] == "lost");
    assert!(
        lost_records[0]["reason"]
            .as_str()
            .unwrap()
            .contains("ring buffer full")
    );
    // Let the reader drain what the ring held, then stop it.
    std::thread::sleep(Duration::from_millis(500));
    let (status, stderr) = t.terminate();
    assert!(status.success());
    let ours = t.seen(|v| v["tid"] == me && v["event"] == "bind").len();
    let lost: u64 = t
        .seen(|v| v["event"] == "lost")
        .iter()
        .map(|v| v["count"].as_u64().unwrap())
        .sum();
    assert!(lost > 0);
    assert!(ours < BINDS, "the ring cannot have held all {BINDS} events");
    // Other processes may lose events too, so the loss covers at least our missing ones.
    assert!(
        ours as u64 + lost >= BINDS as u64,
        "ours {ours} + lost {lost} < {BINDS}"
    );
    let summary = stderr.iter().find(|l| l.contains("stopped")).unwrap();
    assert!(
        summary.contains(&format!(" {lost} lost")),
        "{summary} vs {lost}"
    );
    assert!(
        stderr.iter().any(|l| l.contains("events lost")),
        "{stderr:#?}"
    );
}

/// Storms from several threads sharing one CPU: every event is reported or counted lost —
/// a hook the kernel skipped because another run of it held the CPU (fentry programs are
/// preemptible under preempt=full: the VM matrix boots one kernel so for this test) is a
/// lost event, not a silent gap — and no event carries another socket's state.
#[test]
fn storms_sharing_a_cpu_are_reported_or_counted_lost() {
    const THREADS: usize = 3;
    const CYCLES: usize = 1500;
    const PER_CYCLE: usize = 5; // setsockopt ×2, bind, listen, close
    let t = Tracer::start(&["-p", &std::process::id().to_string(), "--ring-size", "64"]);
    let tids: Vec<i32> = (0..THREADS)
        .map(|_| std::thread::spawn(|| storm_on_cpu0(CYCLES)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (status, _) = t.terminate();
    assert!(status.success());
    let ours = t.seen(|v| tids.iter().any(|&tid| v["tid"] == tid));
    let lost: u64 = t
        .seen(|v| v["event"] == "lost")
        .iter()
        .map(|v| v["count"].as_u64().unwrap())
        .sum();
    let made = (THREADS * CYCLES * PER_CYCLE) as u64;
    assert!(ours.len() as u64 <= made, "{} > {made}", ours.len());
    // Other threads of the host may have had runs skipped too: at least ours are counted.
    assert!(
        ours.len() as u64 + lost >= made,
        "reported {} + lost {lost} < made {made}",
        ours.len()
    );
    // Each socket's events come from the thread that made it, with its own port.
    let (mut tid_of, mut port_of) = (HashMap::new(), HashMap::new());
    for v in &ours {
        let Some(ino) = v["inode"].as_u64() else {
            continue;
        };
        let tid = tid_of.entry(ino).or_insert(v["tid"].clone());
        assert_eq!(*tid, v["tid"], "inode {ino}: {v:#}");
        if v["event"] == "bind" {
            port_of.insert(ino, v["bound_port"].clone());
        } else if v["event"] != "setsockopt"
            && let Some(port) = port_of.get(&ino)
        {
            assert_eq!(*port, v["bound_port"], "inode {ino}: {v:#}");
        }
    }
}

/// `cycles` × (socket AF_INET6, IPV6_V6ONLY, SO_REUSEADDR, bind [::1]:0, listen, close) on
/// CPU 0; the calling thread's id.
fn storm_on_cpu0(cycles: usize) -> i32 {
    use lsn_trace_tests::sock::*;
    // SAFETY: a zeroed cpu_set_t with CPU 0 set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        check(libc::sched_setaffinity(
            0,
            std::mem::size_of_val(&set),
            &set,
        ))
        .unwrap();
    }
    for _ in 0..cycles {
        let fd = socket(libc::AF_INET6, libc::SOCK_STREAM);
        setsockopt_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1).unwrap();
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
        bind(&fd, &sin6(std::net::Ipv6Addr::LOCALHOST, 0, 0)).unwrap();
        listen(&fd, 1).unwrap();
    }
    lsn_trace_tests::tid()
}
