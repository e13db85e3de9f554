//! Real sockets made with raw syscalls, so a test controls exactly what reaches bind().
use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr},
};

pub fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An owned socket descriptor, closed on drop.
pub struct Fd(pub libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

/// Close-on-exec: tests run as threads, and a process another test spawns meanwhile must
/// not inherit (and keep bound) this socket's port.
pub fn socket(family: i32, ty: i32) -> Fd {
    Fd(check(unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, 0) }).expect("socket"))
}

pub fn setsockopt_int(fd: &Fd, level: i32, opt: i32, v: i32) -> io::Result<()> {
    check(unsafe { libc::setsockopt(fd.0, level, opt, (&v as *const i32).cast(), 4) }).map(drop)
}

pub fn sin(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    }
}

pub fn sin6(ip: Ipv6Addr, port: u16, scope: u32) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as u16,
        sin6_port: port.to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: ip.octets(),
        },
        sin6_scope_id: scope,
    }
}

pub fn bind_raw<T>(fd: &Fd, addr: &T, len: usize) -> io::Result<()> {
    check(unsafe { libc::bind(fd.0, (addr as *const T).cast(), len as u32) }).map(drop)
}

pub fn bind<T>(fd: &Fd, addr: &T) -> io::Result<()> {
    bind_raw(fd, addr, std::mem::size_of::<T>())
}

pub fn listen(fd: &Fd, backlog: i32) -> io::Result<()> {
    check(unsafe { libc::listen(fd.0, backlog) }).map(drop)
}

/// The socket's inode number (`st_ino` of the descriptor: `socket:[N]` in /proc/PID/fd),
/// what the JSON `inode` key carries on every backend.
pub fn inode(fd: &Fd) -> u64 {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd.0, &mut st) }).expect("fstat");
    st.st_ino
}

/// The local port the kernel holds for `fd`.
pub fn local_port(fd: &Fd) -> u16 {
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&ss) as u32;
    check(unsafe {
        libc::getsockname(
            fd.0,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })
    .expect("getsockname");
    // sin_port and sin6_port are at the same offset
    let sin: libc::sockaddr_in =
        unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
    u16::from_be(sin.sin_port)
}

/// A TCP port nothing on 127.0.0.1 / [::] holds right now. Probed from another thread,
/// so the probe's own bind is not among the calling test's events (tests filter by tid).
pub fn free_port() -> u16 {
    std::thread::spawn(|| {
        let fd = socket(libc::AF_INET6, libc::SOCK_STREAM);
        bind(&fd, &sin6(Ipv6Addr::UNSPECIFIED, 0, 0)).expect("bind probe");
        local_port(&fd)
    })
    .join()
    .unwrap()
}

pub fn sun_path(path: &[u8]) -> (libc::sockaddr_un, usize) {
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as u16;
    for (i, b) in path.iter().enumerate() {
        sun.sun_path[i] = *b as libc::c_char;
    }
    (sun, 2 + path.len())
}

/// A listen(2) that fails inside the kernel: two SO_REUSEADDR TCP sockets bound to the
/// same 127.0.0.1 port (allowed while neither listens), the first listening; the second's
/// listen gets EADDRINUSE from get_port, its state going CLOSE→LISTEN→CLOSE inside the
/// call. Returns (holder, loser).
pub fn failed_listen() -> (Fd, Fd) {
    let (holder, loser) = (
        socket(libc::AF_INET, libc::SOCK_STREAM),
        socket(libc::AF_INET, libc::SOCK_STREAM),
    );
    for fd in [&holder, &loser] {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
    }
    bind(&holder, &sin(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = local_port(&holder);
    bind(&loser, &sin(Ipv4Addr::LOCALHOST, port)).unwrap();
    listen(&holder, 5).unwrap();
    let err = listen(&loser, 5).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    (holder, loser)
}
