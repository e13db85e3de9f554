//! `lsn-trace audit --metrics`, end to end: the real agent, a real Prometheus server
//! scraping it every second, and the values Prometheus's query API returns after binds,
//! listens, failures and a close this test makes.
//!
//! The agent follows this test process only (`--pid`), so other processes of a busy host
//! add nothing after the start; what the host already had is in the snapshot records the
//! agent printed, and the listener gauges are checked as that baseline plus our changes.
use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use std::sync::Mutex;

use lsn_trace_tests::{Tracer, prometheus::*, sock::*};

/// The exact-counts test counts every listener this process opens: the other test's
/// port holder must not open one meanwhile.
static SERIAL: Mutex<()> = Mutex::new(());

const SCRAPE: Duration = Duration::from_secs(30);

fn metrics_addr(t: &Tracer) -> SocketAddr {
    let line = t.wait_stderr("metrics on http://", Duration::from_secs(10));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    addr.parse().unwrap()
}

#[test]
fn prometheus_scrapes_exact_counts() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let prom_addr: SocketAddr = (Ipv4Addr::LOCALHOST, free_port()).into();
    let me = std::process::id().to_string();
    // Port 0: the agent says which port it got.
    let t = Tracer::start(&["--pid", &me, "audit", "--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&t);
    assert!(addr.ip().is_loopback());
    let snapshot = t.wait_n(1, Duration::from_secs(30), |v| {
        v["record"] == "snapshot_end"
    });
    let start = t.wait_n(1, Duration::from_secs(1), |v| v["record"] == "start");
    let backend = start[0]["backend"].as_str().unwrap().to_owned();
    // /healthz: 200 once attached (the snapshot is written by then too).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while http_get(addr, "/healthz").map(|r| r.0).ok() != Some(200) {
        assert!(std::time::Instant::now() < deadline, "/healthz never 200");
        std::thread::sleep(Duration::from_millis(100));
    }
    let snapshot_count = snapshot[0]["listeners"].as_u64().unwrap();
    let snaps = t.seen(|v| v["record"] == "snapshot");
    assert_eq!(snaps.len() as u64, snapshot_count);
    let mut baseline: HashMap<(String, String, String), f64> = HashMap::new();
    for s in &snaps {
        let key = |k: &str| s[k].as_str().unwrap_or("unknown").to_owned();
        *baseline
            .entry((key("protocol"), key("family"), key("verdict")))
            .or_default() += 1.0;
    }
    let base = |p: &str, f: &str, s: &str| {
        baseline
            .get(&(p.into(), f.into(), s.into()))
            .copied()
            .unwrap_or(0.0)
    };

    let prom = Prometheus::start(prom_addr, &[addr]);
    prom.wait_value("up{job=\"lsn-trace\"}", 1.0, SCRAPE);

    // Two loopback TCP listeners, one on every IPv4 address, one IPv6-only UDP receiver.
    let lo1 = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&lo1, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&lo1, 16).unwrap();
    let lo2 = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&lo2, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&lo2, 16).unwrap();
    let any4 = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&any4, &sin(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    listen(&any4, 16).unwrap();
    let udp6 = socket(libc::AF_INET6, libc::SOCK_DGRAM);
    setsockopt_int(&udp6, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1).unwrap();
    bind(&udp6, &sin6(Ipv6Addr::UNSPECIFIED, 0, 0)).unwrap();
    // Failures: two EADDRINUSE on a held port, one EADDRNOTAVAIL (TEST-NET-1 is on no
    // interface), one EOPNOTSUPP from listen(2) on a datagram socket.
    let held = local_port(&lo1);
    for _ in 0..2 {
        let s = socket(libc::AF_INET, libc::SOCK_STREAM);
        let e = bind(&s, &sin(Ipv4Addr::LOCALHOST, held)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
    }
    let s = socket(libc::AF_INET, libc::SOCK_STREAM);
    let e = bind(&s, &sin(Ipv4Addr::new(192, 0, 2, 1), 0)).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL));
    let e = listen(&udp6, 1).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP));
    // One loopback listener closes.
    drop(lo2);
    t.wait_n(1, SCRAPE, |v| v["record"] == "close");

    // The last change is in a scrape: every value below is from one at least as recent.
    prom.wait_value(
        "lsn_trace_listener_closes_total{protocol=\"tcp\"}",
        1.0,
        SCRAPE,
    );
    let records = |kind: &str| t.seen(|v| v["record"] == kind).len() as f64;
    assert_eq!(
        (records("open"), records("failed"), records("close")),
        (4.0, 4.0, 1.0)
    );
    let v = |q: &str| prom.value(q);
    let listeners = |p, f, s| {
        v(&format!(
            "lsn_trace_listeners{{protocol=\"{p}\",family=\"{f}\",scope=\"{s}\"}}"
        ))
    };
    assert_eq!(
        listeners("tcp", "inet", "loopback"),
        Some(base("tcp", "inet", "loopback") + 1.0)
    );
    assert_eq!(
        listeners("tcp", "inet", "all-ipv4"),
        Some(base("tcp", "inet", "all-ipv4") + 1.0)
    );
    assert_eq!(
        listeners("udp", "inet6", "ipv6-only-any"),
        Some(base("udp", "inet6", "ipv6-only-any") + 1.0)
    );
    // Every series the snapshot made, and nothing else, beside ours.
    let total: f64 = prom
        .query("lsn_trace_listeners")
        .iter()
        .map(|(_, x)| x)
        .sum();
    assert_eq!(total, snapshot_count as f64 + 3.0);
    let opens = |p, s| {
        v(&format!(
            "lsn_trace_listener_opens_total{{protocol=\"{p}\",scope=\"{s}\"}}"
        ))
    };
    assert_eq!(opens("tcp", "loopback"), Some(2.0));
    assert_eq!(opens("tcp", "all-ipv4"), Some(1.0));
    assert_eq!(opens("udp", "ipv6-only-any"), Some(1.0));
    assert_eq!(
        v("sum(lsn_trace_listener_opens_total)"),
        Some(4.0),
        "no other opens"
    );
    assert_eq!(
        v("lsn_trace_bind_failures_total{errno=\"EADDRINUSE\",protocol=\"tcp\"}"),
        Some(2.0)
    );
    assert_eq!(
        v("lsn_trace_bind_failures_total{errno=\"EADDRNOTAVAIL\",protocol=\"tcp\"}"),
        Some(1.0)
    );
    assert_eq!(v("sum(lsn_trace_bind_failures_total)"), Some(3.0));
    assert_eq!(
        v("lsn_trace_listen_failures_total{errno=\"EOPNOTSUPP\"}"),
        Some(1.0)
    );
    assert_eq!(v("sum(lsn_trace_listen_failures_total)"), Some(1.0));
    assert_eq!(v("sum(lsn_trace_events_lost_total)"), Some(0.0));
    assert_eq!(
        v("lsn_trace_events_lost_total{reason=\"ring_buffer_full\"}"),
        Some(0.0)
    );
    assert_eq!(v("lsn_trace_log_write_errors_total"), Some(0.0));
    assert_eq!(v("lsn_trace_log_buffered_bytes"), Some(0.0));
    let rec = |kind: &str| v(&format!("lsn_trace_records_total{{record=\"{kind}\"}}"));
    assert_eq!(rec("start"), Some(1.0));
    assert_eq!(
        rec("snapshot"),
        Some(snapshot_count as f64).filter(|&n| n > 0.0)
    );
    assert_eq!(rec("snapshot_end"), Some(1.0));
    assert_eq!(rec("open"), Some(4.0));
    assert_eq!(rec("failed"), Some(4.0));
    assert_eq!(rec("close"), Some(1.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(
        v(&format!(
            "lsn_trace_build_info{{version=\"{}\",backend=\"{backend}\",kernel=\"{}\"}}",
            env!("CARGO_PKG_VERSION"),
            kernel.trim()
        )),
        Some(1.0)
    );
    // No series has a pid, port or address label: only these label names exist.
    let series = prom.api("series", &[("match[]", "{__name__=~\"lsn_trace_.+\"}")]);
    let allowed = [
        "__name__", "job", "instance", "protocol", "family", "scope", "errno", "reason", "record",
        "version", "backend", "kernel",
    ];
    for s in series.as_array().unwrap() {
        for label in s.as_object().unwrap().keys() {
            assert!(allowed.contains(&label.as_str()), "label {label} in {s}");
        }
    }
    drop((lo1, any4, udp6));
    let (status, _) = t.terminate();
    assert!(status.success());
}

#[test]
fn metrics_address_taken_is_a_clear_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let out = std::process::Command::new(lsn_trace_tests::bin())
        .args(["audit", "--metrics", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--metrics {addr}: cannot listen")),
        "{err}"
    );
    let out = std::process::Command::new(lsn_trace_tests::bin())
        .args(["audit", "--metrics", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not ADDR:PORT or PORT"));
}
