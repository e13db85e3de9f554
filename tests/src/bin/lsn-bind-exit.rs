//! A process gone within a millisecond of its bind, for tests/tests/audit_exec.rs (the
//! audit's exec capture):
//! * `lsn-bind-exit TAG [PORT]`: a TCP listener on 127.0.0.1:PORT (0: any port), then
//!   exit at once (status 0 listening, 1 when the bind failed — EADDRINUSE on a held PORT).
//! * `lsn-bind-exit --exec-loop N`: fork+exec `lsn-bind-exit --noop` N times, one after
//!   another, and print the execs per second (the exec hook's cost, with and without).
//! * `lsn-bind-exit --fork N PORT`: once a line comes on stdin, fork N children that never
//!   exec: each binds as `TAG PORT` would (every fourth PORT, the others any port) and
//!   `_exit`s at once; print `PID STATUS` of each once all exited, then wait for stdin's end
//!   (a forking server whose children are gone before the agent reads them).
use std::{
    io::{BufRead, Write},
    net::Ipv4Addr,
    process::Command,
    time::Instant,
};

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
        Some("--fork") => {
            let n: u32 = args[2].parse().expect("a count");
            let busy: u16 = args[3].parse().expect("a port");
            let stdin = std::io::stdin();
            let mut line = String::new();
            stdin.lock().read_line(&mut line).unwrap();
            let mut kids = Vec::new();
            for i in 0..n {
                let port = if i % 4 == 0 { busy } else { 0 };
                // SAFETY: single-threaded; the child only binds and _exits.
                match unsafe { libc::fork() } {
                    0 => unsafe { libc::_exit(bind_listen(port)) },
                    pid if pid > 0 => kids.push(pid),
                    _ => panic!("fork: {}", std::io::Error::last_os_error()),
                }
            }
            let mut out = std::io::stdout().lock();
            for pid in kids {
                let mut status = 0;
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                writeln!(out, "{pid} {}", libc::WEXITSTATUS(status)).unwrap();
            }
            out.flush().unwrap();
            drop(out);
            while stdin.lock().read_line(&mut line).is_ok_and(|n| n > 0) {}
        }
        Some(_) => {
            let port = args.get(2).map_or(0, |p| p.parse().expect("a port"));
            std::process::exit(bind_listen(port));
        }
        None => panic!("usage: lsn-bind-exit TAG [PORT] | --exec-loop N | --fork N PORT"),
    }
}

/// A TCP listener on 127.0.0.1:`port`: 0 listening, 1 when the bind failed.
fn bind_listen(port: u16) -> i32 {
    let s = socket(libc::AF_INET, libc::SOCK_STREAM);
    if bind(&s, &sin(Ipv4Addr::LOCALHOST, port)).is_err() {
        return 1;
    }
    listen(&s, 8).unwrap();
    0
}
