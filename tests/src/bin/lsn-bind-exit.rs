//! A process gone within a millisecond of its bind, for tests/tests/audit_exec.rs (the
//! audit's exec capture):
//! * `lsn-bind-exit TAG [PORT]`: a TCP listener on 127.0.0.1:PORT (0: any port), then
//!   exit at once (status 0 listening, 1 when the bind failed — EADDRINUSE on a held PORT).
//! * `lsn-bind-exit --exec-loop N`: fork+exec `lsn-bind-exit --noop` N times, one after
//!   another, and print the execs per second (the exec hook's cost, with and without).
use std::{net::Ipv4Addr, process::Command, time::Instant};

use lsn_trace_tests::sock::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--noop") => {}
        Some("--exec-loop") => {
            let n: u32 = args[2].parse().expect("a count");
            let me = std::env::current_exe().unwrap();
            let t = Instant::now();
            for _ in 0..n {
                assert!(Command::new(&me).arg("--noop").status().unwrap().success());
            }
            println!("{:.0}", f64::from(n) / t.elapsed().as_secs_f64());
        }
        Some(_) => {
            let port = args.get(2).map_or(0, |p| p.parse().expect("a port"));
            let s = socket(libc::AF_INET, libc::SOCK_STREAM);
            if bind(&s, &sin(Ipv4Addr::LOCALHOST, port)).is_err() {
                std::process::exit(1);
            }
            listen(&s, 8).unwrap();
        }
        None => panic!("usage: lsn-bind-exit TAG [PORT] | --exec-loop N"),
    }
}
