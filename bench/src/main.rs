//! The workload of `cargo xtask bench`, kept tiny so that what it measures is the kernel
//! and the tracer, not itself:
//!
//! * `lsn-bench storm N` — N × (socket AF_INET6, setsockopt IPV6_V6ONLY, setsockopt
//!   SO_REUSEADDR, bind [::1]:0, listen, close): the calls lsn-trace reports (2 setsockopt,
//!   bind, listen, and the listener's close = 5 events per cycle);
//! * `lsn-bench tax N` — N × getppid(), a cheap syscall no tracer here reports: what a
//!   tracer costs every other program on the host;
//! * `lsn-bench run N M` — the storm, then the tax probe, in one process (one tracer
//!   session, and a single command for the tracers that start their target: strace -f,
//!   bpftrace -c); M = 0 skips the tax probe.
//!
//! Each prints one line of JSON on stdout (`pid` is its own, so a tracer's output can be
//! filtered to it), and fails loudly on any syscall error: a storm that silently stopped
//! binding would measure nothing.
use std::{hint::black_box, io, mem, process::ExitCode, time::Instant};

fn check(what: &str, ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("{what}: {err}")));
    }
    Ok(ret)
}

fn set_int(fd: libc::c_int, level: libc::c_int, opt: libc::c_int, what: &str) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a pointer to a live c_int of the length passed.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&raw const one).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(what, ret).map(drop)
}

fn cycle(addr: &libc::sockaddr_in6) -> io::Result<()> {
    // SAFETY: plain syscalls on a descriptor this function owns and closes.
    unsafe {
        let fd = check(
            "socket",
            libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0),
        )?;
        let res = (|| {
            set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, "IPV6_V6ONLY")?;
            set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, "SO_REUSEADDR")?;
            check(
                "bind [::1]:0",
                libc::bind(
                    fd,
                    (addr as *const libc::sockaddr_in6).cast(),
                    mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                ),
            )?;
            check("listen", libc::listen(fd, 16)).map(drop)
        })();
        check("close", libc::close(fd))?;
        res
    }
}

fn storm(n: u64) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_in6 ([::]:0); then [::1]:0.
    let mut addr: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    addr.sin6_addr.s6_addr[15] = 1;
    let t0 = Instant::now();
    for _ in 0..n {
        cycle(&addr)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        r#"{{"pid":{},"cycles":{n},"secs":{secs:.6},"per_sec":{:.1}}}"#,
        std::process::id(),
        n as f64 / secs
    );
    Ok(())
}

fn tax(n: u64) {
    let t0 = Instant::now();
    for _ in 0..n {
        // SAFETY: getppid has no preconditions.
        black_box(unsafe { libc::getppid() });
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        r#"{{"pid":{},"calls":{n},"secs":{secs:.6},"ns_per_call":{:.2}}}"#,
        std::process::id(),
        secs * 1e9 / n as f64
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nums: Option<Vec<u64>> = args.iter().skip(1).map(|a| a.parse().ok()).collect();
    let result = match (args.first().map(String::as_str), nums.as_deref()) {
        (Some("storm"), Some(&[n])) => storm(n),
        (Some("tax"), Some(&[n])) => {
            tax(n);
            Ok(())
        }
        (Some("run"), Some(&[n, m])) => storm(n).map(|()| {
            if m > 0 {
                tax(m);
            }
        }),
        _ => {
            eprintln!(
                "usage: lsn-bench storm CYCLES | lsn-bench tax CALLS | lsn-bench run CYCLES CALLS"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lsn-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}
