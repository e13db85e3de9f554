//! The machine a bench ran on: CPUs, kernel, clock source, load.
use std::fs;
use std::thread;

use serde_json::{Value, json};

pub(super) fn machine() -> Value {
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    // bpf_ktime_get_ns and bpf_stats read it: a VM that fell back from tsc pays for it.
    let clocksource =
        fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into());
    json!({
        "nproc": thread::available_parallelism().map_or(0, |n| n.get()),
        "clocksource": clocksource,
        "cpu": model,
        "kernel": kernel,
        "load_before": loadavg(),
    })
}

pub(super) fn machine_line(m: &Value) -> String {
    format!(
        "{} CPUs ({}), Linux {}, load before: {}",
        m["nproc"],
        m["cpu"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?"),
        m["load_before"].as_str().unwrap_or("?")
    )
}

pub(super) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
