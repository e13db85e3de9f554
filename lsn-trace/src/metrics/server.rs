//! The HTTP endpoint of `--metrics`: GET /metrics (OpenMetrics text) and GET /healthz
//! (200 once the hooks are attached, 503 before), on a thread of its own.
//!
//! `tiny_http`: a small, long-lived HTTP/1.1 server crate with no async runtime of its
//! own. A thread of its own means a slow or stuck scraper never delays the ring buffer's
//! drain (the tracer's single-threaded loop), and the tracer's work never delays a scrape.
//! A full framework (hyper, axum) would add dozens of crates for two fixed routes.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, OnceLock},
};

use anyhow::{Result, anyhow};
use prometheus_client::registry::Registry;
use tiny_http::{Header, Method, Response, Server};

/// `--metrics` value: `ADDR:PORT` (`[::1]:9464`, `0.0.0.0:9464`), or a port alone, which
/// listens on loopback only (the metrics say which listeners a host has: exposing them is
/// a choice to make explicitly).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port = match s.strip_prefix("localhost:") {
        Some(p) => p,
        None => s,
    };
    match port.parse::<u16>() {
        Ok(p) => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)),
        Err(_) => Err(format!(
            "`{s}` is not ADDR:PORT or PORT: e.g. 127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464 (every \
             interface), or 9464 (loopback)"
        )),
    }
}

/// Until the hooks are attached there is no registry: /metrics and /healthz answer 503.
pub type Published = Arc<OnceLock<Arc<Registry>>>;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Listen on `addr` now (a taken port is an error before anything is loaded) and serve
/// from a thread that lives as long as the process. Returns the address it listens on.
pub fn start(addr: SocketAddr) -> Result<(Published, SocketAddr)> {
    let server = Server::http(addr).map_err(|e| {
        anyhow!("--metrics {addr}: cannot listen: {e} (is another agent or exporter on that port?)")
    })?;
    let bound = server.server_addr().to_ip().unwrap_or(addr);
    let published: Published = Arc::new(OnceLock::new());
    let shared = published.clone();
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                let (status, body, ctype) = answer(req.method(), req.url(), shared.get());
                let mut resp = Response::from_string(body).with_status_code(status);
                if let Ok(h) = Header::from_bytes("Content-Type", ctype) {
                    resp = resp.with_header(h);
                }
                // A scraper that hung up is no concern of ours.
                let _ = req.respond(resp);
            }
        })?;
    Ok((published, bound))
}

/// Status, body and content type for a request (pure, for the unit tests).
fn answer(
    method: &Method,
    url: &str,
    registry: Option<&Arc<Registry>>,
) -> (u16, String, &'static str) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if !matches!(method, Method::Get | Method::Head) {
        return (405, "only GET and HEAD\n".into(), TEXT);
    }
    let path = url.split('?').next().unwrap_or(url);
    match (path, registry) {
        ("/metrics", Some(r)) => (200, super::encode(r), OPENMETRICS),
        ("/healthz", Some(_)) => (200, "ok: hooks attached\n".into(), TEXT),
        ("/metrics" | "/healthz", None) => (503, "not attached yet\n".into(), TEXT),
        _ => (404, "not found: try /metrics or /healthz\n".into(), TEXT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("9464"), Ok("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            parse_addr("localhost:9464"),
            Ok("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            parse_addr("0.0.0.0:9464"),
            Ok("0.0.0.0:9464".parse().unwrap())
        );
        assert_eq!(parse_addr("[::1]:80"), Ok("[::1]:80".parse().unwrap()));
        assert!(parse_addr("host:x").unwrap_err().contains("ADDR:PORT"));
        assert!(parse_addr("70000").is_err());
    }

    #[test]
    fn routes() {
        let m = super::super::Metrics::new("tracepoint", "6.18");
        let r = m.registry();
        assert_eq!(answer(&Method::Get, "/healthz", None).0, 503);
        assert_eq!(answer(&Method::Get, "/metrics", None).0, 503);
        assert_eq!(answer(&Method::Get, "/healthz", Some(&r)).0, 200);
        let (status, body, ctype) = answer(&Method::Get, "/metrics?x=1", Some(&r));
        assert_eq!((status, ctype), (200, OPENMETRICS));
        assert!(body.contains("lsn_trace_build_info{"), "{body}");
        assert_eq!(answer(&Method::Get, "/", Some(&r)).0, 404);
        assert_eq!(answer(&Method::Post, "/metrics", Some(&r)).0, 405);
    }

    #[test]
    fn serves_over_http() {
        let (published, addr) = start("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(addr.port(), 0);
        let get = |path: &str| {
            use std::io::{Read as _, Write as _};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        assert!(
            get("/healthz").starts_with("HTTP/1.0 503"),
            "{}",
            get("/healthz")
        );
        let m = super::super::Metrics::new("tracepoint", "6.18");
        published.set(m.registry()).ok().unwrap();
        assert!(get("/healthz").starts_with("HTTP/1.0 200"));
        let metrics = get("/metrics");
        assert!(metrics.contains("lsn_trace_build_info"), "{metrics}");
        let taken = start(addr).unwrap_err().to_string();
        assert!(taken.contains("cannot listen"), "{taken}");
    }
}
