//! A fixed sequence of listener calls (successes, EADDRINUSE, EFAULT, every sockaddr shape
//! and option-value shape) made by a forked child, so `strace -f` prints them with its
//! `[pid N]` prefix. tests/tests/strace.rs runs it under strace while lsn-trace
//! `--format strace` watches, and compares the two outputs line by line.
//! Prints the child's pid on stdout.
use std::{
    io::Write,
    net::{Ipv4Addr, Ipv6Addr},
};

use lsn_trace_tests::sock::*;

fn raw_setsockopt(fd: &Fd, level: i32, opt: i32, val: *const libc::c_void, len: u32) {
    unsafe { libc::setsockopt(fd.0, level, opt, val, len) };
}

fn child() {
    let me = std::process::id();
    // dual-stack split: [::] IPv6 only, listening
    let s6 = socket(libc::AF_INET6, libc::SOCK_STREAM);
    setsockopt_int(&s6, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
    setsockopt_int(&s6, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1).unwrap();
    bind(&s6, &sin6(Ipv6Addr::UNSPECIFIED, 0, 0)).unwrap();
    listen(&s6, 128).unwrap();
    // IPv4 listener, then a second socket on its port: EADDRINUSE
    let s4 = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&s4, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    listen(&s4, 511).unwrap();
    let busy = socket(libc::AF_INET, libc::SOCK_STREAM);
    bind(&busy, &sin(Ipv4Addr::LOCALHOST, local_port(&s4))).unwrap_err();
    // AF_UNIX: a path with sizeof(sockaddr_un) as length, an abstract name, autobind
    let path = format!("/tmp/lsn-sock-demo-{me}.sock");
    let _ = std::fs::remove_file(&path);
    let u = socket(libc::AF_UNIX, libc::SOCK_STREAM);
    let (sun, _) = sun_path(path.as_bytes());
    bind(&u, &sun).unwrap();
    listen(&u, 5).unwrap();
    std::fs::remove_file(&path).unwrap();
    let a = socket(libc::AF_UNIX, libc::SOCK_DGRAM);
    let name = format!("\0lsn demo \"{me}\"\t\x01");
    let (sun, len) = sun_path(name.as_bytes());
    bind_raw(&a, &sun, len).unwrap();
    let auto = socket(libc::AF_UNIX, libc::SOCK_DGRAM);
    let (sun, _) = sun_path(b"");
    bind_raw(&auto, &sun, 2).unwrap();
    // unreadable pointers: EFAULT
    let f = socket(libc::AF_INET, libc::SOCK_STREAM);
    unsafe { libc::bind(f.0, 0x10 as *const libc::sockaddr, 16) };
    raw_setsockopt(
        &f,
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        0x10 as *const _,
        4,
    );
    // option values strace shows as strings: a device name with its NUL, a 1-byte int
    raw_setsockopt(
        &f,
        libc::SOL_SOCKET,
        libc::SO_BINDTODEVICE,
        c"lo".as_ptr().cast(),
        3,
    );
    let one = 1i32;
    raw_setsockopt(
        &f,
        libc::SOL_IP,
        libc::IP_FREEBIND,
        (&one as *const i32).cast(),
        1,
    );
    // link-local with a scope, not assigned: EADDRNOTAVAIL; UDP on [::1]
    let ll = socket(libc::AF_INET6, libc::SOCK_DGRAM);
    let fe80 = "fe80::1".parse().unwrap();
    bind(&ll, &sin6(fe80, 0, 1)).unwrap_err();
    let udp = socket(libc::AF_INET6, libc::SOCK_DGRAM);
    bind(&udp, &sin6(Ipv6Addr::LOCALHOST, 0, 0)).unwrap();
}

fn main() {
    // SAFETY: single-threaded here; the child only makes syscalls and exits.
    match unsafe { libc::fork() } {
        0 => {
            child();
            unsafe { libc::_exit(0) };
        }
        pid if pid > 0 => {
            println!("{pid}");
            std::io::stdout().flush().unwrap();
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            std::process::exit(if status == 0 { 0 } else { 1 });
        }
        _ => panic!("fork: {}", std::io::Error::last_os_error()),
    }
}
