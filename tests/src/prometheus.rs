//! A real Prometheus server (Debian's `prometheus`) scraping targets on loopback every
//! second, with its own temporary storage, and a client of its query API.
use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// GET `path` from `addr` over HTTP/1.0: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Ok((status, body))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Start Prometheus on `listen` (loopback), scraping `targets` (job `lsn-trace`) every
    /// second; returns once it answers ready.
    pub fn start(listen: SocketAddr, targets: &[SocketAddr]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!(
            "lsn-trace-prometheus-{}-{}",
            std::process::id(),
            listen.port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: lsn-trace\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect(
                "run prometheus (Debian's `prometheus` package; cargo xtask setup installs it)",
            );
        let p = Prometheus {
            child,
            dir,
            addr: listen,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http_get(listen, "/-/ready") {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 60 s: {}",
                std::fs::read_to_string(p.dir.join("stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `GET /api/v1/PATH?QUERY`'s `data`, the request checked to have succeeded.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        let (status, body) = http_get(self.addr, &format!("/api/v1/{path}?{}", q.join("&")))
            .expect("query prometheus");
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("prometheus answered {status} non-JSON ({e}): {body}"));
        assert_eq!(v["status"], "success", "{path} {params:?}: {v}");
        v["data"].clone()
    }

    /// The instant vector of `query`: (labels, value) per series.
    pub fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let data = self.api("query", &[("query", query)]);
        data["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: {data}"))
            .iter()
            .map(|r| {
                let v = r["value"][1].as_str().and_then(|s| s.parse().ok());
                (r["metric"].clone(), v.expect("a sample value"))
            })
            .collect()
    }

    /// The value of a query that must name exactly one series (None when it names none).
    pub fn value(&self, query: &str) -> Option<f64> {
        let r = self.query(query);
        assert!(r.len() <= 1, "{query}: more than one series: {r:?}");
        r.first().map(|(_, v)| *v)
    }

    /// Wait until `query`'s single value is `want` (the scrapes after an action).
    pub fn wait_value(&self, query: &str, want: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.value(query);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query}: {got:?} after {timeout:?}, want {want}; targets: {}",
                self.api("targets", &[])
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
