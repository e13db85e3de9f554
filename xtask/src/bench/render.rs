//! The report as the Markdown table that is printed (docs/performance.md carries it as is).
use serde_json::Value;

use super::machine::machine_line;
use super::replay;
use super::workload::EVENTS_PER_CYCLE;

fn f(v: &Value, key: &str, fmt: impl Fn(f64) -> String) -> String {
    v.get(key)
        .and_then(|x| x.get("median").or(Some(x)))
        .and_then(Value::as_f64)
        .map_or_else(|| "—".into(), fmt)
}

/// An audit row's records found in its log / made by the storm, summed over the rounds.
fn records(c: &Value) -> String {
    match (c["records_on_disk"].as_u64(), c["records_made"].as_u64()) {
        (Some(on_disk), Some(made)) => format!("{on_disk} / {made}"),
        _ => "—".into(),
    }
}

/// `0.52–1.80 (1-min load average), 0–2 QEMU guests`
fn load_line(rounds: &[Value]) -> String {
    let one: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r["loadavg"].as_str()?.split(' ').next()?.parse().ok())
        .collect();
    let guests: Vec<u64> = rounds
        .iter()
        .filter_map(|r| r["qemu_guests"].as_u64())
        .collect();
    let range = |v: &[f64]| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    };
    let (lmin, lmax) = range(&one);
    let g: Vec<f64> = guests.iter().map(|&g| g as f64).collect();
    let (gmin, gmax) = range(&g);
    format!("{lmin:.2}–{lmax:.2} (1-min load average), {gmin:.0}–{gmax:.0} QEMU guest(s) running")
}

/// The table, as Markdown (docs/performance.md carries it as is).
pub(super) fn render(r: &Value) -> String {
    let mut s = String::new();
    s += &format!(
        "Machine: {}; load after: {}\n",
        machine_line(&r["machine"]),
        r["load_after"].as_str().unwrap_or("?")
    );
    s += &format!(
        "{} interleaved rounds of {} storm cycles ({} events each) + {} getppid; untraced: \
         {:.0} cycles/s, getppid {:.1} ns\n",
        r["rounds"],
        r["cycles"],
        r["cycles"].as_u64().unwrap_or(0) * EVENTS_PER_CYCLE,
        r["tax_calls"],
        r["untraced_storm_per_sec"].as_f64().unwrap_or(f64::NAN),
        r["untraced_getppid_ns"].as_f64().unwrap_or(f64::NAN),
    );
    if let Some(e) = r["machine"]["emulation"].as_str() {
        s += &format!(
            "Emulated: {e}. Absolute figures (cycles/s, ns, ms, CPU) are those of the \
             emulation; the ratios and the tax compare runs side by side in the same guest.\n"
        );
    }
    if let Some(secs) = r["vm_seconds"].as_f64() {
        s += &format!("The VM ran {secs:.0} s (boot to power-off).\n");
    }
    if let Some(rounds) = r["load_per_round"].as_array() {
        s += &format!("Load at each round's start: {}\n", load_line(rounds));
    }
    s += "\n| configuration | storm ratio median [min–max] | cycles/s | getppid tax median \
          [per-round min–max] | lost | agent CPU s/100k ev | audit records on disk / made | \
          agent CPU s/100k records | peak RSS MB | attach ms |\n";
    s += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for c in r["configs"].as_array().into_iter().flatten() {
        let ratio = &c["storm_ratio"];
        s += &format!(
            "| {} | {:.3} [{:.3}–{:.3}] | {} | {:+.1} ns ({:+.1}%) [{:+.1}…{:+.1}] | {} | {} | {} \
             | {} | {} | {} |\n",
            c["config"].as_str().unwrap_or("?"),
            ratio["median"].as_f64().unwrap_or(f64::NAN),
            ratio["min"].as_f64().unwrap_or(f64::NAN),
            ratio["max"].as_f64().unwrap_or(f64::NAN),
            f(c, "storm_per_sec", |x| format!("{x:.0}")),
            c["tax_ns"].as_f64().unwrap_or(f64::NAN),
            c["tax_pct"].as_f64().unwrap_or(f64::NAN),
            c["tax_ns_per_round"]["min"].as_f64().unwrap_or(f64::NAN),
            c["tax_ns_per_round"]["max"].as_f64().unwrap_or(f64::NAN),
            c["lost"]
                .as_u64()
                .map_or_else(|| "—".into(), |x| x.to_string()),
            f(c, "agent_cpu_s_per_100k", |x| format!("{x:.3}")),
            records(c),
            f(c, "agent_cpu_s_per_100k_records", |x| format!("{x:.3}")),
            f(c, "peak_rss_mb", |x| format!("{x:.1}")),
            f(c, "attach_ms", |x| format!("{x:.0}")),
        );
    }
    let long = r["long_storm"].as_array().cloned().unwrap_or_default();
    if !long.is_empty() {
        s += "\n| long storm (output counted) | cycles | storm ratio | reported / made | \
              missing by kind | lost | agent CPU s/100k ev | agent CPU s/100k records | peak RSS \
              MB | attach ms |\n";
        s += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
        for l in &long {
            let reported = if l["records_made"].is_u64() {
                format!("{} / {} records", l["records_on_disk"], l["records_made"])
            } else {
                format!("{} / {} events", l["events_reported"], l["events_made"])
            };
            s += &format!(
                "| {} | {} | {:.3} | {reported} | {} | {} | {} | {} | {} | {} |\n",
                l["config"].as_str().unwrap_or("?"),
                l["cycles"],
                l["storm_ratio"].as_f64().unwrap_or(f64::NAN),
                match l["missing_by_kind"].as_object() {
                    Some(m) if !m.is_empty() => m
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    _ => "none".into(),
                },
                l["lost"],
                f(l, "agent_cpu_s_per_100k", |x| format!("{x:.3}")),
                f(l, "agent_cpu_s_per_100k_records", |x| format!("{x:.3}")),
                f(l, "peak_rss_mb", |x| format!("{x:.1}")),
                f(l, "attach_ms", |x| format!("{x:.0}")),
            );
        }
    }
    let profiles = r["bpf_stats"].as_array().cloned().unwrap_or_default();
    if !profiles.is_empty() {
        s += &format!(
            "\n| in-kernel cost (bpf_stats, one storm of {} cycles) | program | runs per cycle | ns \
             per run | ns per cycle |\n",
            profiles[0]["cycles"]
        );
        s += "| --- | --- | --- | --- | --- |\n";
        for p in &profiles {
            let cycles = p["cycles"].as_f64().unwrap_or(f64::NAN);
            for prog in p["programs"].as_array().into_iter().flatten() {
                s += &format!(
                    "| {} | {} | {:.2} | {} | {:.0} |\n",
                    p["backend"].as_str().unwrap_or("?"),
                    prog["name"].as_str().unwrap_or("?"),
                    prog["runs"].as_f64().unwrap_or(f64::NAN) / cycles,
                    prog["ns_per_run"]
                        .as_f64()
                        .map_or_else(|| "—".into(), |x| format!("{x:.0}")),
                    prog["ns_per_cycle"].as_f64().unwrap_or(f64::NAN),
                );
            }
            s += &format!(
                "| {} | **all** | | | **{:.0}** ({:.1}% of an untraced cycle, {:.0} ns) |\n",
                p["backend"].as_str().unwrap_or("?"),
                p["ns_per_cycle"].as_f64().unwrap_or(f64::NAN),
                p["share_of_untraced_cycle"].as_f64().unwrap_or(f64::NAN) * 100.0,
                p["untraced_ns_per_cycle"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    if r["replay"].is_object() {
        s += &replay::render(&r["replay"]);
    }
    for u in r["unavailable_backends"].as_array().into_iter().flatten() {
        s += &format!(
            "\nbackend {}: not available on this kernel ({})",
            u["backend"].as_str().unwrap_or("?"),
            u["why"].as_str().unwrap_or("?")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn table_says_emulated_and_shows_the_in_kernel_cost() {
        let report = json!({
            "machine": {"nproc": 2, "cpu": "QEMU", "kernel": "6.12.1", "load_before": "0",
                        "emulation": "QEMU TCG"},
            "load_after": "1", "rounds": 5, "cycles": 100, "tax_calls": 10,
            "untraced_storm_per_sec": 1000.0, "untraced_getppid_ns": 500.0,
            "vm_seconds": 61.0,
            "configs": [{
                "config": "lsn-trace fentry --json > /dev/null",
                "storm_ratio": {"median": 0.9, "min": 0.8, "max": 1.0},
                "storm_per_sec": {"median": 900.0},
                "tax_ns": 2.0, "tax_pct": 0.4,
                "tax_ns_per_round": {"median": 2.0, "min": -5.0, "max": 6.5},
                "lost": 0,
            }],
            "bpf_stats": [{
                "backend": "fentry", "cycles": 100,
                "programs": [{"name": "fexit_inet_bind", "runs": 100, "ns_per_run": 800.0,
                              "ns_per_cycle": 800.0}],
                "ns_per_cycle": 800.0, "untraced_ns_per_cycle": 1e6,
                "share_of_untraced_cycle": 0.0008,
            }],
        });
        let t = render(&report);
        assert!(t.contains("Emulated: QEMU TCG."), "{t}");
        assert!(t.contains("The VM ran 61 s"), "{t}");
        assert!(
            t.contains("| +2.0 ns (+0.4%) [-5.0…+6.5] | 0 |"),
            "tax with its per-round spread: {t}"
        );
        assert!(
            t.contains("| fentry | fexit_inet_bind | 1.00 | 800 | 800 |"),
            "{t}"
        );
        assert!(
            t.contains(
                "| fentry | **all** | | | **800** (0.1% of an untraced cycle, 1000000 ns) |"
            ),
            "{t}"
        );
    }
}
