//! The sockets a network namespace holds, read the way `ss` reads them: a NETLINK_SOCK_DIAG
//! dump (inet_diag_req_v2), and socket inode -> owning process by scanning
//! /proc/*/fd links to `socket:[INODE]` (what `ss -p` does).
//!
//! Hand-written on libc: the protocol is four fixed structs and a TLV list, smaller than
//! the glue any netlink crate would need, and it keeps the dependency tree as it is.
//!
//! A netlink socket answers for the network namespace it was created in, and setns(2)
//! moves only the calling thread: `in_netns` runs a closure on a short-lived thread that
//! entered the target namespace, so the agent's own threads never change namespace.
use std::{
    collections::HashMap,
    fs, io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const INET_DIAG_SKV6ONLY: u16 = 11;
const INET_DIAG_SOCKOPT: u16 = 22;
const NLMSG_HDRLEN: usize = 16;
/// struct inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue,
/// wqueue, uid, inode.
const INET_DIAG_MSG_LEN: usize = 72;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// TCP states as the kernel numbers them (include/net/tcp_states.h).
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_TIME_WAIT: u8 = 6;
pub const TCP_CLOSE: u8 = 7;
pub const TCP_LISTEN: u8 = 10;

/// One socket of a sock_diag dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagSock {
    /// AF_INET or AF_INET6.
    pub family: u16,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub protocol: u8,
    /// Kernel TCP state number (UDP: TCP_CLOSE unconnected, TCP_ESTABLISHED connected).
    pub state: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// SO_BINDTODEVICE interface index, 0 = none.
    pub bound_dev_if: u32,
    /// 0 for TIME_WAIT sockets (they have no owner any more).
    pub uid: u32,
    /// Socket inode (`socket:[N]` in /proc/PID/fd); 0 for TIME_WAIT.
    pub inode: u32,
    /// IPV6_V6ONLY: the kernel reports it for AF_INET6 sockets in LISTEN or CLOSE state.
    pub v6only: Option<bool>,
    /// From INET_DIAG_SOCKOPT (kernel 5.10+).
    pub freebind: Option<bool>,
    pub transparent: Option<bool>,
}

impl DiagSock {
    /// The state as `ss` prints it (`UNCONN` for an unconnected UDP socket).
    pub fn state_name(&self) -> &'static str {
        if self.protocol == IPPROTO_UDP {
            return match self.state {
                TCP_ESTABLISHED => "ESTAB",
                _ => "UNCONN",
            };
        }
        tcp_state_name(self.state)
    }

    /// `0.0.0.0:80`, `[::]:80`: ss notation of the local address.
    pub fn local_text(&self) -> String {
        self.local.to_string()
    }
}

pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTAB",
        2 => "SYN-SENT",
        3 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        7 => "CLOSE",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW-SYN-RECV",
        _ => "UNKNOWN",
    }
}

/// What to dump.
#[derive(Clone, Copy, Debug)]
pub struct Query {
    pub protocol: u8,
    /// AF_INET or AF_INET6.
    pub family: u16,
    /// Bit mask of TCP states (1 << state); `ALL_STATES` for everything.
    pub states: u32,
    /// Only sockets whose local port is this (0 = any). Passed to the kernel, which skips
    /// other ports in its dump loop, and checked again here.
    pub local_port: u16,
}

pub const ALL_STATES: u32 = u32::MAX;

impl Query {
    /// Every TCP and UDP socket of both families with local port `port` (0 = any).
    pub fn all_inet(port: u16) -> [Query; 4] {
        let q = |protocol, family| Query {
            protocol,
            family,
            states: ALL_STATES,
            local_port: port,
        };
        [
            q(IPPROTO_TCP, libc::AF_INET as u16),
            q(IPPROTO_TCP, libc::AF_INET6 as u16),
            q(IPPROTO_UDP, libc::AF_INET as u16),
            q(IPPROTO_UDP, libc::AF_INET6 as u16),
        ]
    }
}

/// Dump the sockets matching `queries` in the calling thread's network namespace.
pub fn dump_all(queries: &[Query]) -> io::Result<Vec<DiagSock>> {
    let mut out = Vec::new();
    for q in queries {
        dump_into(q, &mut out)?;
    }
    Ok(out)
}

struct OwnedFd(i32);
impl Drop for OwnedFd {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn request(q: &Query, seq: u32) -> [u8; NLMSG_HDRLEN + 56] {
    let mut b = [0u8; NLMSG_HDRLEN + 56];
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // inet_diag_req_v2
    let r = &mut b[NLMSG_HDRLEN..];
    r[0] = q.family as u8;
    r[1] = q.protocol;
    r[2] = 0; // idiag_ext: SKV6ONLY and SOCKOPT come without asking
    r[4..8].copy_from_slice(&q.states.to_ne_bytes());
    // inet_diag_sockid.idiag_sport, network order
    r[8..10].copy_from_slice(&q.local_port.to_be_bytes());
    b
}

fn dump_into(q: &Query, out: &mut Vec<DiagSock>) -> io::Result<()> {
    let fd = OwnedFd(cvt(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    })?);
    // A dump that never ends must not hang the caller.
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    cvt(unsafe {
        libc::setsockopt(
            fd.0,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    })?;
    let seq = 0x6c736e00 | u32::from(q.protocol);
    let req = request(q, seq);
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    cvt(unsafe {
        libc::sendto(
            fd.0,
            req.as_ptr().cast(),
            req.len(),
            0,
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        ) as i32
    })?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = unsafe { libc::recv(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "sock_diag: netlink socket closed mid-dump",
            ));
        }
        let mut msgs = &buf[..n as usize];
        while msgs.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes(msgs[0..4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(msgs[4..6].try_into().unwrap());
            if len < NLMSG_HDRLEN || len > msgs.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "sock_diag: malformed netlink message",
                ));
            }
            let body = &msgs[NLMSG_HDRLEN..len];
            match ty {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let errno = body
                        .get(0..4)
                        .map_or(libc::EIO, |b| -i32::from_ne_bytes(b.try_into().unwrap()));
                    if errno == 0 {
                        // an ACK, not an error
                    } else if errno == libc::ENOENT && q.protocol == IPPROTO_UDP {
                        // udp_diag not loaded/built: no UDP view rather than a failure.
                        return Ok(());
                    } else {
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                }
                SOCK_DIAG_BY_FAMILY => {
                    if let Some(s) = parse_msg(body, q.protocol)
                        && (q.local_port == 0 || s.local.port() == q.local_port)
                    {
                        out.push(s);
                    }
                }
                _ => {}
            }
            let adv = (len + 3) & !3;
            msgs = &msgs[adv.min(msgs.len())..];
        }
    }
}

fn parse_msg(b: &[u8], protocol: u8) -> Option<DiagSock> {
    if b.len() < INET_DIAG_MSG_LEN {
        return None;
    }
    let family = u16::from(b[0]);
    let state = b[1];
    let id = &b[4..52];
    let sport = u16::from_be_bytes([id[0], id[1]]);
    let dport = u16::from_be_bytes([id[2], id[3]]);
    let addr = |off: usize| -> IpAddr {
        let a: [u8; 16] = id[off..off + 16].try_into().unwrap();
        if family == libc::AF_INET as u16 {
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(a))
        }
    };
    let bound_dev_if = u32::from_ne_bytes(id[36..40].try_into().unwrap());
    let uid = u32::from_ne_bytes(b[64..68].try_into().unwrap());
    let inode = u32::from_ne_bytes(b[68..72].try_into().unwrap());
    let mut s = DiagSock {
        family,
        protocol,
        state,
        local: SocketAddr::new(addr(4), sport),
        remote: SocketAddr::new(addr(20), dport),
        bound_dev_if,
        uid,
        inode,
        v6only: None,
        freebind: None,
        transparent: None,
    };
    // rtattr list: len u16, type u16, payload, padded to 4.
    let mut attrs = &b[INET_DIAG_MSG_LEN..];
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let ty = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            break;
        }
        let payload = &attrs[4..len];
        match ty {
            INET_DIAG_SKV6ONLY if !payload.is_empty() => s.v6only = Some(payload[0] != 0),
            // struct inet_diag_sockopt: bit 2 freebind, bit 5 transparent (first byte).
            INET_DIAG_SOCKOPT if !payload.is_empty() => {
                s.freebind = Some(payload[0] & (1 << 2) != 0);
                s.transparent = Some(payload[0] & (1 << 5) != 0);
            }
            _ => {}
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    Some(s)
}

/// A network namespace to look in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Netns {
    /// The agent's own.
    Current,
    /// That of a process (/proc/PID/ns/net).
    Pid(u32),
    /// A namespace file (/proc/PID/ns/net, /run/netns/NAME).
    Path(PathBuf),
}

impl Netns {
    fn path(&self) -> Option<PathBuf> {
        match self {
            Netns::Current => None,
            Netns::Pid(p) => Some(PathBuf::from(format!("/proc/{p}/ns/net"))),
            Netns::Path(p) => Some(p.clone()),
        }
    }

    /// The namespace's inode number (what the kernel calls its inum, and what the events
    /// carry as `netns`).
    pub fn inode(&self) -> io::Result<u64> {
        let p = self
            .path()
            .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
        Ok(fs::metadata(p)?.ino())
    }
}

/// For tests: a `sleep` in a network namespace of its own (`unshare -n`), killed on drop.
#[cfg(test)]
pub(crate) struct NetnsChild(std::process::Child);

#[cfg(test)]
impl NetnsChild {
    /// Returns once the child is in its namespace and unshare has exec'd `sleep`.
    pub fn spawn() -> NetnsChild {
        let child = std::process::Command::new("unshare")
            .args(["-n", "sleep", "60"])
            .spawn()
            .expect("unshare(1) from util-linux");
        let c = NetnsChild(child);
        let ours = Netns::Current.inode().unwrap();
        let comm = format!("/proc/{}/comm", c.pid());
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.ns().inode().ok() == Some(ours)
            || fs::read_to_string(&comm).map_or(true, |n| n.trim() != "sleep")
        {
            assert!(Instant::now() < deadline, "unshare -n never ran sleep");
            std::thread::sleep(Duration::from_millis(5));
        }
        c
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn ns(&self) -> Netns {
        Netns::Pid(self.pid())
    }
}

#[cfg(test)]
impl Drop for NetnsChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `f` inside network namespace `ns` (`netns::run_in`: a thread of its own when it is
/// not the caller's).
pub fn in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let Some(path) = ns.path() else {
        return Ok(f());
    };
    let file = fs::File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    lsn_trace::netns::run_in(file, f)
        .map_err(|e| io::Error::new(e.kind(), format!("setns {}: {e}", path.display())))
}

/// Dump `queries` in namespace `ns`.
pub fn dump_in(ns: &Netns, queries: &[Query]) -> io::Result<Vec<DiagSock>> {
    let queries = queries.to_vec();
    in_netns(ns, move || dump_all(&queries))?
}

/// Who holds a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub comm: String,
}

/// Result of an owner scan: what was found, and whether the scan finished.
#[derive(Debug, Default)]
pub struct Owners {
    pub found: HashMap<u32, Vec<Owner>>,
    /// False if the time budget ran out before every process was looked at.
    pub complete: bool,
    pub processes_scanned: usize,
}

/// Map socket inodes to the processes that have them open, by reading /proc/*/fd links
/// (as `ss -p` does). Stops early once every inode has an owner (a shared socket after
/// fork may have more owners than reported then) or when `budget` is spent.
/// `first` lists pids to look at before the rest (e.g. a likely culprit).
pub fn owners(inodes: &[u32], first: &[u32], budget: Duration) -> Owners {
    let start = Instant::now();
    let mut res = Owners::default();
    if inodes.is_empty() {
        res.complete = true;
        return res;
    }
    let mut pids: Vec<u32> = first.to_vec();
    if let Ok(rd) = fs::read_dir("/proc") {
        pids.extend(
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| !first.contains(p)),
        );
    }
    let mut link = Vec::with_capacity(64);
    for pid in pids {
        if start.elapsed() > budget {
            return res;
        }
        res.processes_scanned += 1;
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut hit = false;
        for fd in fds.flatten() {
            link.clear();
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            use std::os::unix::ffi::OsStrExt;
            link.extend_from_slice(target.as_os_str().as_bytes());
            let Some(ino) = link
                .strip_prefix(b"socket:[")
                .and_then(|r| r.strip_suffix(b"]"))
                .and_then(|n| std::str::from_utf8(n).ok()?.parse::<u32>().ok())
            else {
                continue;
            };
            if inodes.contains(&ino) {
                hit = true;
                let owners = res.found.entry(ino).or_default();
                if !owners.iter().any(|o| o.pid == pid) {
                    owners.push(Owner {
                        pid,
                        comm: comm_of(pid),
                    });
                }
            }
        }
        if hit && inodes.iter().all(|i| res.found.contains_key(i)) {
            res.complete = true;
            return res;
        }
    }
    res.complete = true;
    res
}

/// /proc/PID/comm without the newline ("?" if the process is gone).
pub fn comm_of(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/comm"))
        .map(|s| crate::text::from_bytes(s.strip_suffix(b"\n").unwrap_or(&s)))
        .unwrap_or_else(|_| "?".into())
}

/// A process whose network namespace has inode `ino` (to reach a namespace whose
/// original process is gone). Bounded by `budget`.
pub fn pid_in_netns(ino: u64, budget: Duration) -> Option<u32> {
    let start = Instant::now();
    for e in fs::read_dir("/proc").ok()?.flatten() {
        if start.elapsed() > budget {
            return None;
        }
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if fs::metadata(Path::new("/proc").join(pid.to_string()).join("ns/net"))
            .is_ok_and(|m| m.ino() == ino)
        {
            return Some(pid);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::{
        net::{TcpListener, TcpStream, UdpSocket},
        os::fd::AsRawFd,
    };

    use super::*;

    fn inode_of(fd: &impl AsRawFd) -> u32 {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
        st.st_ino as u32
    }

    fn find(socks: &[DiagSock], port: u16, state: u8) -> Vec<DiagSock> {
        socks
            .iter()
            .filter(|s| s.local.port() == port && s.state == state)
            .cloned()
            .collect()
    }

    #[test]
    fn tcp_listener_appears_with_owner() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let socks = dump_all(&[Query {
            protocol: IPPROTO_TCP,
            family: libc::AF_INET as u16,
            states: ALL_STATES,
            local_port: port,
        }])
        .unwrap();
        let found = find(&socks, port, TCP_LISTEN);
        assert_eq!(found.len(), 1, "{socks:#?}");
        let s = &found[0];
        assert_eq!(s.local, l.local_addr().unwrap());
        assert_eq!(s.state_name(), "LISTEN");
        assert_eq!(s.inode, inode_of(&l));
        assert_eq!(s.uid, unsafe { libc::geteuid() });
        assert_eq!(s.v6only, None, "not an inet6 socket");
        // only the asked-for port
        assert!(socks.iter().all(|s| s.local.port() == port));
        let o = owners(&[s.inode], &[], Duration::from_secs(5));
        assert!(o.complete);
        let owner = &o.found[&s.inode];
        assert_eq!(owner[0].pid, std::process::id());
        assert_eq!(owner[0].comm, comm_of(std::process::id()));
    }

    #[test]
    fn v6only_is_reported_for_inet6_listeners() {
        for v6only in [0, 1] {
            let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0) };
            assert!(fd >= 0);
            let _g = OwnedFd(fd);
            let v: i32 = v6only;
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    (&v as *const i32).cast(),
                    4,
                )
            };
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as u16;
            assert_eq!(
                unsafe {
                    libc::bind(
                        fd,
                        (&sa as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of_val(&sa) as u32,
                    )
                },
                0
            );
            assert_eq!(unsafe { libc::listen(fd, 1) }, 0);
            let mut len = std::mem::size_of_val(&sa) as u32;
            unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_in6).cast(), &mut len) };
            let port = u16::from_be(sa.sin6_port);
            let socks = dump_all(&Query::all_inet(port)).unwrap();
            let s = find(&socks, port, TCP_LISTEN);
            assert_eq!(s.len(), 1, "{socks:#?}");
            assert_eq!(s[0].family, libc::AF_INET6 as u16);
            assert_eq!(s[0].local.ip(), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
            assert_eq!(s[0].v6only, Some(v6only == 1));
            assert_eq!(s[0].freebind, Some(false));
        }
    }

    #[test]
    fn udp_and_time_wait() {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        let socks = dump_all(&Query::all_inet(port)).unwrap();
        let s = find(&socks, port, TCP_CLOSE);
        assert_eq!(s.len(), 1, "{socks:#?}");
        assert_eq!(s[0].protocol, IPPROTO_UDP);
        assert_eq!(s[0].state_name(), "UNCONN");
        assert_eq!(s[0].inode, inode_of(&u));

        // The side that closes first keeps the TIME_WAIT: make that the client, whose
        // local port we know.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (srv, _) = l.accept().unwrap();
        let cport = c.local_addr().unwrap().port();
        drop(c);
        // let the FIN/ACK exchange finish
        let mut buf = [0u8; 1];
        use std::io::Read;
        let _ = (&srv).read(&mut buf);
        drop(srv);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let socks = dump_all(&Query::all_inet(cport)).unwrap();
            let tw = find(&socks, cport, TCP_TIME_WAIT);
            if let Some(t) = tw.first() {
                assert_eq!(t.state_name(), "TIME-WAIT");
                assert_eq!(t.inode, 0);
                assert_eq!(t.remote, l.local_addr().unwrap());
                break;
            }
            assert!(Instant::now() < deadline, "no TIME-WAIT: {socks:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn another_namespace_is_another_view() {
        // A process in a fresh network namespace: our listener is not there.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let child = NetnsChild::spawn();
        let ns = child.ns();
        let ours = Netns::Current.inode().unwrap();
        let theirs = dump_in(&ns, &Query::all_inet(port)).unwrap();
        let here = dump_in(&Netns::Current, &Query::all_inet(port)).unwrap();
        assert!(theirs.is_empty(), "{theirs:#?}");
        assert_eq!(find(&here, port, TCP_LISTEN).len(), 1);
        let ino = ns.inode().unwrap();
        assert_eq!(
            pid_in_netns(ino, Duration::from_secs(5)),
            Some(child.pid()),
            "the child is the only process in its namespace"
        );
        // the calling thread did not move
        assert_eq!(Netns::Current.inode().unwrap(), ours);
        drop(child);
        let err = dump_in(&Netns::Pid(u32::MAX), &Query::all_inet(0)).unwrap_err();
        assert!(err.to_string().contains("/proc/4294967295/ns/net"), "{err}");
    }
}
