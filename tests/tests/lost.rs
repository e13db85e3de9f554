//! A full ring buffer loses events: they must be counted in the kernel and reported, in
//! the stream and in the summary — never dropped silently.
use std::time::Duration;

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
