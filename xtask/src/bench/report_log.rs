//! `cargo xtask bench --report-records N`: `lsn-trace report` over a generated audit log of N
//! records (time and peak RSS of `--at` in the middle of the log and at its end). No
//! privileges, no kernel: the log is made here, in the shape `lsn-trace audit` writes.
//!
//! The log is a busy host's month compressed: every record has the full key set of a
//! real one (~1.1 KB, cmdline and summary included); 1,000 TCP listener slots are reopened
//! over and over (each reopen a close and an open of a new socket), with a failed bind
//! (EADDRINUSE, with its holder and explanation) every 10 records, a UDP bind every 20, a
//! lost record every 100,000 and an agent restart (stop, start, snapshot of what is open)
//! every 500,000. The answer's size is the live table, whatever N is.
use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::cmd::{self, run};

const SLOTS: u64 = 1000;
/// The simulated span: 30 days of December, whatever the number of records.
const SPAN_US: u64 = 30 * 86_400 * 1_000_000;

/// RFC 3339 of a moment `us` after 2026-12-01T00:00:00Z, within that month (the log's
/// span is kept inside December: no calendar to compute).
fn rfc3339(us: u64) -> String {
    let secs = us / 1_000_000;
    format!(
        "2026-12-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        1 + secs / 86_400,
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        us % 1_000_000
    )
}

/// A listener record with every key audit writes.
fn listener(kind: &str, us: u64, inode: u64, port: u64, pid: u64, udp: bool) -> Value {
    let addr = if udp { "0.0.0.0" } else { "::" };
    let mut head = json!({
        "addr": addr, "addrlen": null, "backlog": if udp { Value::Null } else { json!(511) },
        "backlog_effective": if udp { Value::Null } else { json!(511) },
        "bind_address_no_port": false, "bound_addr": addr, "bound_dev_if": 0,
        "bound_port": port, "cgroup": "/system.slice/app.service",
        "cmdline": ["/usr/sbin/app", "--config", "/etc/app/app.conf", "--workers", "4"],
        "comm": "app", "container_id": null, "container_runtime": null, "device": null,
        "errno": null, "error": null, "event": if udp { "bind" } else { "listen" },
        "exe": "/usr/sbin/app", "explanation": null,
        "family": if udp { "inet" } else { "inet6" }, "fd": 7, "freebind": false, "gid": 0,
    });
    let rest = json!({
        "holders": null, "identity": "live", "inode": inode, "level": null,
        "meaning": "dual-stack on every interface: accepts IPv6 and IPv4 (IPv4 clients appear as ::ffff:a.b.c.d) [V6ONLY=0, inherited from net.ipv6.bindv6only=0]",
        "netns": 4026531833u64, "option": null, "pid": pid, "port": port, "ppid": 1,
        "protocol": if udp { "udp" } else { "tcp" }, "record": kind, "reuseaddr": true,
        "reuseport": false, "scope_id": 0, "sock_id": format!("{inode:016x}"),
        "source": "syscall",
        "summary": format!("app[{pid}] LISTEN tcp [::]:{port}  dual-stack on every interface: accepts IPv6 and IPv4 (IPv4 clients appear as ::ffff:a.b.c.d) [V6ONLY=0, inherited from net.ipv6.bindv6only=0]. Connect: http://localhost:{port}/"),
        "systemd_unit": "app.service", "tid": pid, "time": rfc3339(us), "transparent": false,
        "type": if udp { "dgram" } else { "stream" }, "uid": 0, "user": "root",
        "v6only": false, "v6only_source": "sysctl", "value": null, "verdict": "dual-stack",
        "verdict_flags": [],
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut head, rest) {
        a.extend(b);
    }
    head
}

/// Write the log: `n` records. Returns its size in bytes and its last record's time.
pub fn generate(path: &Path, n: u64) -> Result<(u64, u64)> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut inode = 1_000_000u64;
    // slot → (inode, port) of its listener now.
    let mut slots: Vec<(u64, u64)> = Vec::new();
    let line = |w: &mut BufWriter<File>, v: &Value| -> Result<()> {
        serde_json::to_writer(&mut *w, v)?;
        w.write_all(b"\n")?;
        Ok(())
    };
    let mut i = 0u64;
    let step = (SPAN_US / n.max(1)).max(1);
    let mut us = 0u64;
    let mut restart = true;
    while i < n {
        us += step;
        if restart {
            restart = false;
            line(
                &mut w,
                &json!({"record": "start", "time": rfc3339(us), "version": "0.1.0", "pid": 1, "backend": "tracepoint", "log": path, "host": "bench"}),
            )?;
            for (s, &(ino, port)) in slots.iter().enumerate() {
                line(
                    &mut w,
                    &listener("snapshot", us, ino, port, 1000 + s as u64, false),
                )?;
            }
            line(
                &mut w,
                &json!({"record": "snapshot_end", "time": rfc3339(us), "namespaces": 1, "listeners": slots.len(), "owners_complete": true, "errors": []}),
            )?;
            i += slots.len() as u64 + 2;
            continue;
        }
        if i > 0 && i % 500_000 < 3 {
            line(
                &mut w,
                &json!({"record": "stop", "time": rfc3339(us), "events": i, "lost": 0, "filtered": 0, "records": i}),
            )?;
            i += 1;
            restart = true;
            continue;
        }
        if i % 100_000 == 7 {
            line(
                &mut w,
                &json!({"record": "lost", "event": "lost", "time": rfc3339(us), "count": 12, "reason": "ring buffer full; raise --ring-size"}),
            )?;
        } else if i % 20 == 5 {
            inode += 1;
            line(
                &mut w,
                &listener("open", us, inode, 40_000 + i % 20_000, 9000, true),
            )?;
        } else if i % 10 == 3 && !slots.is_empty() {
            let (_, port) = slots[(i / 10 % slots.len() as u64) as usize];
            let mut f = listener("failed", us, inode + 1, port, 7000, false);
            f["errno"] = 98.into();
            f["error"] = "EADDRINUSE".into();
            f["explanation"] = format!("[::]:{port}/tcp is held by app[1000] (LISTEN [::]:{port} uid 0). Why: both ask for the same address [::]:{port}. SO_REUSEADDR would not help: Linux never lets two TCP sockets listen on the same address and port with it").into();
            f["holders"] = json!([{"addr": "::", "comm": "app", "pid": 1000, "port": port, "protocol": "tcp", "remote": null, "state": "LISTEN", "uid": 0}]);
            f["summary"] = Value::Null;
            line(&mut w, &f)?;
        } else {
            let s = (i % SLOTS) as usize;
            if s < slots.len() {
                let (ino, port) = slots[s];
                line(
                    &mut w,
                    &listener("close", us, ino, port, 1000 + s as u64, false),
                )?;
                i += 1;
            }
            inode += 1;
            let port = 10_000 + s as u64;
            line(
                &mut w,
                &listener("open", us, inode, port, 1000 + s as u64, false),
            )?;
            if s < slots.len() {
                slots[s] = (inode, port);
            } else {
                slots.push((inode, port));
            }
        }
        i += 1;
    }
    w.flush()?;
    drop(w);
    Ok((std::fs::metadata(path)?.len(), us))
}

/// Run `cmd`, returning (wall seconds, CPU seconds, peak RSS in KiB) from wait4's rusage.
/// CPU time is the figure to compare on a shared machine: wall time there is mostly the
/// other processes' load.
fn measured(cmd: &mut Command) -> Result<(f64, f64, u64)> {
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {}", cmd::display(cmd)))?;
    let mut status = 0;
    // SAFETY: wait4 on our own child, writing into locals.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let secs = start.elapsed().as_secs_f64();
    if pid < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("`{}` failed (status {status})", cmd::display(cmd));
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((secs, tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss as u64))
}

pub fn bench(records: u64, out: Option<PathBuf>) -> Result<()> {
    run(Command::new("cargo").args(["build", "--release", "-p", "lsn-trace"]))?;
    let dir = PathBuf::from("target/bench");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("report-log.jsonl");
    let t = Instant::now();
    let (bytes, end_us) = generate(&log, records)?;
    eprintln!(
        "xtask: bench: generated {} ({records} records, {} MB) in {:.1?}",
        log.display(),
        bytes / 1_000_000,
        t.elapsed()
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "lsn-trace report over {records} records, {} MB (load average: {})",
        bytes / 1_000_000,
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    let bin = PathBuf::from("target/release/lsn-trace");
    // The middle of the simulated span, and the end (no --at).
    let middle = rfc3339(end_us / 2);
    let mut rows = Vec::new();
    for (name, at) in [
        ("report --at (middle of the log)", Some(middle.as_str())),
        ("report (now: the whole log)", None),
    ] {
        // Once to warm the page cache, then measured.
        let mut cmd = Command::new(&bin);
        cmd.arg("report").arg(&log);
        if let Some(a) = at {
            cmd.args(["--at", a]);
        }
        measured(&mut cmd)?;
        let (secs, cpu, rss) = measured(&mut cmd)?;
        let read = if at.is_some() { bytes / 2 } else { bytes };
        println!(
            "{name:<34} {secs:>6.2} s wall, {cpu:>5.2} s CPU  peak RSS {:>5.1} MB  ({:.0} MB \
             and {:.0}k records per CPU second)",
            rss as f64 / 1024.0,
            read as f64 / 1e6 / cpu,
            records as f64 * (read as f64 / bytes as f64) / 1e3 / cpu
        );
        rows.push(json!({"name": name, "wall_seconds": secs, "cpu_seconds": cpu, "peak_rss_kib": rss, "log_bytes": bytes, "records": records}));
    }
    let out = out.unwrap_or_else(|| dir.join("report.json"));
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json!({"report": rows}))?,
    )?;
    eprintln!("xtask: bench: wrote {}", out.display());
    Ok(())
}
