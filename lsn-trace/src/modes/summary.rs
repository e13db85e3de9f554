//! The end-of-run report of `-- CMD` and `-p`: what the followed processes listen on,
//! what failed and why, and — where nothing listens — that, in one plain sentence.
use std::collections::HashMap;

use lsn_trace::verdict::{self, Bound};

use crate::{
    errno,
    event::{Event, Request, SOCK_SEQPACKET, SOCK_STREAM, Sock},
    pipeline::Sink,
    story::{ListenerChange, Note},
};

/// The summary is a sink of the followed processes' events.
impl Sink for Summary {
    fn event(&mut self, ev: &Event, note: &Note) -> std::io::Result<()> {
        if ev.followed {
            self.take(ev, note);
        }
        Ok(())
    }

    fn lost(&mut self, _count: u64, _reason: &str) -> std::io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Listener {
    sock_id: Option<u64>,
    /// What the address means (verdict), for IP sockets.
    bound: Option<Bound>,
    proto: String,
    addr: String,
    pid: u32,
    comm: String,
    /// TCP listen (or LISTEN state), versus a bound datagram socket.
    stream: bool,
    closed: bool,
    /// A unix listener's absolute path, as bound.
    path: Option<Vec<u8>>,
    /// Its path was found gone at the end (`check_paths`): renamed or removed since.
    path_gone: bool,
}

struct Failure {
    call: &'static str,
    target: String,
    /// EADDRINUSE on a port: (protocol, port), to name who holds it.
    in_use: Option<(String, u16)>,
    errno: i32,
    count: u32,
    pid: u32,
    comm: String,
}

/// Lines per section: a storm of sockets must not bury the conclusion.
const MAX_LISTED: usize = 20;

/// A successful bind of a connection-oriented socket to a port of its choosing: it should
/// listen, and is named if it never does.
struct ServerBind {
    proto: String,
    /// As shown (port 0 resolved).
    addr: String,
    pid: u32,
    comm: String,
}

#[derive(Default)]
pub struct Summary {
    /// Server binds by socket (the run's history: the story forgets sockets, this report
    /// does not).
    server_binds: HashMap<u64, ServerBind>,
    listeners: Vec<Listener>,
    /// sock_id -> index in `listeners` (a storm of sockets must not cost a scan each).
    by_sock: HashMap<u64, usize>,
    failures: Vec<Failure>,
    /// Failed setsockopt()s of sockets not yet seen listening: sock_id -> (the socket's
    /// inode, index in `failures`). Bounded like the story's table.
    opt_failed: HashMap<u64, (Option<u64>, Vec<usize>)>,
    /// Failed setsockopt()s whose socket became a listener all the same (Python's
    /// IPV6_V6ONLY try on an AF_INET socket): not the daemon's failures.
    ignored: Vec<(Failure, String)>,
    calls: u64,
    /// Each followed process's latest name (comm): one name per process in the report,
    /// also when it exec()ed another program since a line's event.
    comms: HashMap<u32, String>,
    /// `-- CMD`: CMD's name, for when it only asks another process to start the daemon.
    cmd: Option<String>,
}

/// Commands that have another process start the daemon — the init system, a container
/// engine — so none of its binds come from their descendants: what does it for them.
fn started_elsewhere(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "systemctl" | "service" | "rc-service" | "initctl" | "invoke-rc.d" => {
            "the init system (systemd: pid 1)"
        }
        "docker" | "podman" | "nerdctl" => "the container engine's daemon",
        "kubectl" | "helm" => "the cluster",
        "supervisorctl" => "supervisord",
        _ => return None,
    })
}

fn proto_of(ev: &Event) -> String {
    ev.protocol()
        .map(str::to_owned)
        .or_else(|| ev.family().map(crate::names::family))
        .unwrap_or_else(|| "?".into())
}

/// What the socket holds, in ss notation, when the kernel side read it.
fn held(sock: Option<&Sock>) -> Option<String> {
    let s = sock?;
    Some(match (s.local?, s.port?) {
        (std::net::IpAddr::V4(a), p) => format!("{a}:{p}"),
        (std::net::IpAddr::V6(a), p) => format!("[{a}]:{p}"),
    })
}

impl Summary {
    /// The summary of `-- CMD`, which knows CMD's name.
    pub fn of_command(name: &str) -> Summary {
        Summary {
            cmd: Some(name.to_owned()),
            ..Summary::default()
        }
    }

    /// Take one event of a followed process, with what the story made of it.
    fn take(&mut self, ev: &Event, note: &Note) {
        self.calls += 1;
        if self.comms.get(&ev.pid).map(String::as_str) != Some(&*ev.comm)
            && (self.comms.len() < crate::story::CAP || self.comms.contains_key(&ev.pid))
        {
            self.comms.insert(ev.pid, ev.comm.to_string());
        }
        let proto = proto_of(ev);
        // The address as the story knows it (port 0: the port the kernel picked).
        let local = note.local.as_ref().map(ToString::to_string);
        match (&ev.request, note.listener) {
            (Request::Bind(a), Some(ListenerChange::Failed)) => {
                self.fail("bind", format!("{proto} {a}"), ev);
            }
            (Request::Bind(a), opened) => {
                let shown = local.unwrap_or_else(|| a.to_string());
                let ty = ev.sock.as_ref().and_then(|s| s.sock_type);
                // Port 0 on a stream socket that never listens is a client choosing its
                // source address before connect() (IP_BIND_ADDRESS_NO_PORT or not): nothing
                // a server forgot.
                if let Some(id) = ev.sock_id {
                    // A socket id the kernel reused for a socket that is no server's.
                    self.server_binds.remove(&id);
                    if matches!(ty, Some(SOCK_STREAM | SOCK_SEQPACKET)) && a.port() != Some(0) {
                        let b = ServerBind {
                            proto: proto.clone(),
                            addr: shown.clone(),
                            pid: ev.pid,
                            comm: ev.comm.to_string(),
                        };
                        self.server_binds.insert(id, b);
                    }
                }
                if opened == Some(ListenerChange::Open) {
                    self.listen(ev, note, proto, shown, false);
                }
            }
            (_, Some(change @ (ListenerChange::Open | ListenerChange::Failed))) => {
                let addr = local
                    .filter(|a| !a.ends_with(":0"))
                    .or_else(|| held(ev.sock.as_ref()))
                    .unwrap_or_else(|| "?".into());
                if change == ListenerChange::Failed {
                    self.fail("listen", format!("{proto} {addr}"), ev);
                } else {
                    self.listen(ev, note, proto, addr, true);
                }
            }
            (_, Some(ListenerChange::Close)) => {
                if let Some(&i) = ev.sock_id.and_then(|id| self.by_sock.get(&id)) {
                    self.listeners[i].closed = true;
                }
            }
            (Request::Setsockopt { level, optname, .. }, None) if ev.failed() => {
                let name = crate::names::option(*level, *optname).unwrap_or("?");
                let mut target = name.to_owned();
                if *level == lsn_trace_common::sockopt::SOL_IPV6
                    && ev.sock.as_ref().and_then(|s| s.family) == Some(crate::sockaddr::AF_INET)
                {
                    target.push_str(" (an IPv6 option, on an AF_INET socket)");
                }
                let i = self.fail("setsockopt", target, ev);
                if let Some(id) = ev.sock_id
                    && (self.opt_failed.len() < crate::story::CAP
                        || self.opt_failed.contains_key(&id))
                {
                    let inode = ev.sock.as_ref().and_then(|s| s.inode);
                    let e = self.opt_failed.entry(id).or_insert((inode, Vec::new()));
                    if e.0 != inode {
                        // Another socket in the same kernel memory: the old one's failures
                        // stay failures.
                        *e = (inode, Vec::new());
                    }
                    e.1.push(i);
                }
            }
            _ => {}
        }
    }

    /// The name of process `pid` as the report says it: its latest comm, else `then`.
    fn comm<'a>(&'a self, pid: u32, then: &'a str) -> &'a str {
        self.comms.get(&pid).map_or(then, String::as_str)
    }

    /// A failure as its `failed` or `ignored` line says it: `call target: ERRNO[, N times]
    /// comm (pid N)`.
    fn failure_line(&self, f: &Failure) -> String {
        let times = if f.count > 1 {
            format!(", {} times", f.count)
        } else {
            String::new()
        };
        format!(
            "{} {}: {}{times}  {} (pid {})",
            f.call,
            f.target,
            errname(f.errno),
            self.comm(f.pid, &f.comm),
            f.pid
        )
    }

    /// How the head names CMD (`name`, pid `pid`): by its name, and where it exec()ed
    /// another program (`setpriv … python3 …`), the name its events carried last too:
    /// `setpriv → python3`. The kernel's comm is the first 15 bytes of the name.
    pub fn command_name(&self, pid: u32, name: &str) -> String {
        match self.comms.get(&pid) {
            Some(c) if c != name && !(c.len() == 15 && name.starts_with(c.as_str())) => {
                format!("{name} → {c}")
            }
            _ => name.to_owned(),
        }
    }

    /// The socket `ev` became a listener: the setsockopt() failures seen on it before (the
    /// same socket: its inode known and the same) did not stop it.
    fn went_on_past(&mut self, ev: &Event, listened: &str) {
        let Some((inode, idx)) = ev.sock_id.and_then(|id| self.opt_failed.remove(&id)) else {
            return;
        };
        let now = ev.sock.as_ref().and_then(|s| s.inode);
        if inode.is_none() || inode != now {
            return;
        }
        for i in idx {
            let f = &mut self.failures[i];
            f.count -= 1;
            let (call, target, errno) = (f.call, f.target.clone(), f.errno);
            match self
                .ignored
                .iter_mut()
                .find(|(g, l)| g.target == target && g.errno == errno && l == listened)
            {
                Some((g, _)) => {
                    g.count += 1;
                    g.pid = ev.pid;
                    g.comm = ev.comm.to_string();
                }
                None => self.ignored.push((
                    Failure {
                        call,
                        target,
                        in_use: None,
                        errno,
                        count: 1,
                        pid: ev.pid,
                        comm: ev.comm.to_string(),
                    },
                    listened.to_owned(),
                )),
            }
        }
    }

    fn listen(&mut self, ev: &Event, note: &Note, proto: String, addr: String, stream: bool) {
        self.went_on_past(ev, &format!("{proto} {addr}"));
        // The same socket again (bind then listen), unless it was closed and the kernel
        // reused the memory for another socket.
        if let Some(&i) = ev.sock_id.and_then(|id| self.by_sock.get(&id))
            && !self.listeners[i].closed
        {
            self.listeners[i].stream |= stream;
            return;
        }
        if let Some(id) = ev.sock_id {
            self.by_sock.insert(id, self.listeners.len());
        }
        self.listeners.push(Listener {
            sock_id: ev.sock_id,
            bound: note.bound.as_deref().cloned(),
            proto,
            addr,
            pid: ev.pid,
            comm: ev.comm.to_string(),
            stream,
            closed: false,
            path: match &note.local {
                Some(crate::sockaddr::SockAddr::UnixPath(p)) if p.starts_with(b"/") => {
                    Some(p.clone())
                }
                _ => None,
            },
            path_gone: false,
        });
    }

    /// At the end, before `render`: whether each open unix listener's path still exists.
    /// `gone(pid, path)`: true only when it is known not to (looked up as that process sees
    /// its files); haproxy binds `hap.sock.PID.tmp` and renames it into place at once.
    pub fn check_paths(&mut self, gone: impl Fn(u32, &[u8]) -> bool) {
        for l in &mut self.listeners {
            if let Some(p) = &l.path {
                l.path_gone = !l.closed && gone(l.pid, p);
            }
        }
    }

    /// Count a failure; its index in `failures`.
    fn fail(&mut self, call: &'static str, target: String, ev: &Event) -> usize {
        if let Some(i) = self
            .failures
            .iter()
            .position(|f| f.call == call && f.target == target && f.errno == ev.errno)
        {
            let f = &mut self.failures[i];
            f.count += 1;
            f.pid = ev.pid;
            return i;
        }
        let in_use = match &ev.request {
            Request::Bind(a) if ev.errno == libc::EADDRINUSE => {
                a.port().filter(|&p| p != 0).map(|p| (proto_of(ev), p))
            }
            _ => None,
        };
        self.failures.push(Failure {
            call,
            target,
            in_use,
            errno: ev.errno,
            count: 1,
            pid: ev.pid,
            comm: ev.comm.to_string(),
        });
        self.failures.len() - 1
    }

    /// The report, one line each; `head` says what was followed and how it ended.
    /// `alive` tells whether a pid still runs, `held_by(protocol, port)` who holds a port
    /// now (for EADDRINUSE), `holds(protocol, address)` which processes have a socket on
    /// exactly that address open now (a listener whose maker exited).
    pub fn render(
        &self,
        head: &str,
        alive: impl Fn(u32) -> bool,
        held_by: impl Fn(&str, u16) -> Option<String>,
        holds: impl Fn(&str, &str) -> Option<String>,
    ) -> Vec<String> {
        let mut out = vec![format!("lsn-trace: summary: {head}")];
        let mut open = 0;
        for (i, l) in self.listeners.iter().enumerate() {
            let shown = i < MAX_LISTED;
            let state = if l.closed {
                "closed".to_owned()
            } else if alive(l.pid) {
                open += 1;
                "still open".to_owned()
            } else if let Some(h) = holds(&l.proto, &l.addr) {
                // A daemonizing start (nginx `daemon on`, dnsmasq): the process that bound
                // exited, the child it forked keeps the socket.
                open += 1;
                format!("still open, held now by {h}")
            } else {
                "until it exited".to_owned()
            };
            let state = if l.path_gone {
                format!(
                    "{state}; that path no longer exists: renamed or removed since its bind \
                     (the socket keeps its first name)"
                )
            } else {
                state
            };
            if !shown {
                continue;
            }
            let verb = if l.stream { "listening" } else { "bound    " };
            out.push(format!(
                "  {verb}  {} {}  {} (pid {}), {state}",
                l.proto,
                l.addr,
                self.comm(l.pid, &l.comm),
                l.pid
            ));
            if let Some(b) = &l.bound {
                out.push(format!("             → {}", verdict::classify(b).sentence));
            }
        }
        if self.listeners.len() > MAX_LISTED {
            out.push(format!(
                "  … and {} more listeners ({open} still open in all)",
                self.listeners.len() - MAX_LISTED
            ));
        }
        // Bound for a connection-oriented protocol, but listen() never came.
        let mut idle: Vec<_> = self
            .server_binds
            .iter()
            .filter(|(id, _)| !self.listeners.iter().any(|l| l.sock_id == Some(**id)))
            .map(|(_, b)| b)
            .collect();
        idle.sort_by(|a, b| (a.pid, &a.addr).cmp(&(b.pid, &b.addr)));
        for b in idle.into_iter().take(MAX_LISTED) {
            out.push(format!(
                "  bound      {} {}  {} (pid {}), but never listened",
                b.proto,
                b.addr,
                self.comm(b.pid, &b.comm),
                b.pid
            ));
        }
        let holders: Vec<Option<String>> = self
            .failures
            .iter()
            .map(|f| f.in_use.as_ref().and_then(|(p, port)| held_by(p, *port)))
            .collect();
        for (f, holder) in self.failures.iter().zip(&holders) {
            if f.count == 0 {
                continue; // every one of them went on to listen: `ignored` below
            }
            out.push(format!(
                "  failed     {}{}",
                self.failure_line(f),
                holder
                    .as_ref()
                    .map_or_else(String::new, |h| format!("; port held now by {h}"))
            ));
        }
        for (f, listened) in &self.ignored {
            out.push(format!(
                "  ignored    {}; harmless: the socket listened on {listened} after it",
                self.failure_line(f),
            ));
        }
        if open == 0 {
            out.push(format!("  {}", self.nothing_listens(&alive, &holders)));
        }
        out
    }

    /// The plain sentence for when nothing listens (any more). A failure is named as the
    /// reason only when nothing ever listened; where something did (and was closed, or its
    /// process exited) that comes first, and the failures after it — a daemon that listens
    /// and runs for hours beside one harmless duplicate bind did not fail to start.
    fn nothing_listens(&self, alive: &impl Fn(u32) -> bool, holders: &[Option<String>]) -> String {
        let binds = self
            .failures
            .iter()
            .zip(holders)
            .filter(|(f, _)| f.call != "setsockopt");
        let failed = binds
            .clone()
            .max_by_key(|(f, _)| f.count)
            .map(|(worst, holder)| {
                let plural = if worst.count == 1 { "" } else { "s" };
                let addr = worst
                    .target
                    .split_once(' ')
                    .map_or(worst.target.as_str(), |(_, a)| a);
                let mut s = format!(
                    "{} failed {}{plural} on {addr}: {}",
                    worst.count,
                    worst.call,
                    errno::name(worst.errno).unwrap_or("error")
                );
                if let Some(h) = holder {
                    s.push_str(&format!(", held by {h}"));
                }
                let others = binds.clone().count() - 1;
                if others > 0 {
                    s.push_str(&format!(
                        " (and {others} other failure{})",
                        if others == 1 { "" } else { "s" }
                    ));
                }
                (worst, s)
            });
        if let Some(l) = self.listeners.last() {
            let how = if l.closed {
                "until the socket was closed"
            } else {
                "until it exited"
            };
            let did = if l.stream {
                "listened on"
            } else {
                "was bound to"
            };
            let n = self.listeners.len();
            let last = if n > 1 {
                format!(" (the last of the {n} above)")
            } else {
                String::new()
            };
            let mut s = format!(
                "nothing listens any more: {} (pid {}) {did} {} {} {how}{last}",
                self.comm(l.pid, &l.comm),
                l.pid,
                l.proto,
                l.addr
            );
            if let Some((worst, failed)) = failed {
                s.push_str(&format!(
                    "; {} (pid {}) also had {failed}",
                    self.comm(worst.pid, &worst.comm),
                    worst.pid
                ));
            }
            return s;
        }
        if let Some((worst, failed)) = failed {
            let who = if alive(worst.pid) {
                format!(
                    "{} (pid {}) runs but listens nowhere",
                    self.comm(worst.pid, &worst.comm),
                    worst.pid
                )
            } else {
                format!("{} exited", self.comm(worst.pid, &worst.comm))
            };
            return format!("nothing listens: {who} after {failed}");
        }
        if self.calls == 0 {
            let none = "nothing listens: no bind or listen call was made";
            match self
                .cmd
                .as_deref()
                .and_then(|c| Some((c, started_elsewhere(c)?)))
            {
                Some((cmd, by)) => format!(
                    "{none}: {cmd} has {by} start the daemon, and its binds are not {cmd}'s \
                     nor its children's. Run `sudo lsn-trace --comm NAME` (or with no filter) \
                     in another terminal, then `{cmd} …`"
                ),
                None => none.into(),
            }
        } else {
            "nothing listens: no bind or listen call succeeded".into()
        }
    }
}

fn errname(e: i32) -> String {
    match (errno::name(e), errno::message(e)) {
        (Some(n), Some(m)) => format!("{n} ({m})"),
        _ => format!("errno {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{event::Kind, sockaddr::SockAddr, story::Story};

    /// A summary fed as the pipeline feeds it: each event through the story first.
    struct Fed {
        story: Story,
        summary: Summary,
    }

    impl Fed {
        fn new(summary: Summary) -> Fed {
            Fed {
                story: Story::new(),
                summary,
            }
        }

        fn feed(&mut self, ev: &Event) {
            let note = self.story.observe(ev);
            self.summary.take(ev, &note);
        }
    }

    fn bind(pid: u32, port: u16, errno: i32) -> Event {
        Event {
            euid: None,
            state_unknown: None,
            kind: Kind::Bind,
            time_ns: 0,
            pid,
            tid: pid,
            ppid: None,
            start: None,
            uid: 0,
            gid: 0,
            comm: "nginx".into(),
            fd: Some(6),
            errno,
            source: crate::event::Source::Syscall,
            request: Request::Bind(SockAddr::Inet {
                addr: Ipv4Addr::UNSPECIFIED,
                port,
            }),
            sock: Some(Sock {
                family: Some(2),
                sock_type: Some(1),
                protocol: Some(6),
                local: Some(Ipv4Addr::UNSPECIFIED.into()),
                port: Some(if errno == 0 { port } else { 0 }),
                ..Default::default()
            }),
            sock_id: Some(pid as u64 * 1000 + port as u64),
            followed: true,
            raw: Default::default(),
        }
    }

    /// listen(2) on the socket `bind(pid, port, 0)` made.
    fn listen_ev(pid: u32, port: u16, backlog: i32) -> Event {
        Event {
            kind: Kind::Listen,
            request: Request::Listen {
                backlog: Some(backlog),
            },
            ..bind(pid, port, 0)
        }
    }

    #[test]
    fn failed_binds_say_plainly_that_nothing_listens() {
        let mut s = Fed::new(Summary::default());
        for _ in 0..5 {
            s.feed(&bind(7, 80, 98));
        }
        let out = s.summary.render(
            "nginx exited with status 1",
            |_| false,
            |_, _| None,
            |_, _| None,
        );
        assert!(
            out.iter().any(|l| l.contains("failed     bind tcp 0.0.0.0:80: EADDRINUSE (Address already in use), 5 times  nginx (pid 7)")),
            "{out:#?}"
        );
        assert_eq!(
            out.last().unwrap(),
            "  nothing listens: nginx exited after 5 failed binds on 0.0.0.0:80: EADDRINUSE"
        );
        let held = |p: &str, port| Some(format!("apache2 (pid 99) on 0.0.0.0:{port} ({p})"));
        let out = s
            .summary
            .render("nginx exited with status 1", |_| false, held, |_, _| None);
        assert!(
            out[1]
                .ends_with("nginx (pid 7); port held now by apache2 (pid 99) on 0.0.0.0:80 (tcp)"),
            "{out:#?}"
        );
        assert!(
            out.last()
                .unwrap()
                .ends_with("EADDRINUSE, held by apache2 (pid 99) on 0.0.0.0:80 (tcp)"),
            "{out:#?}"
        );
    }

    #[test]
    fn a_command_that_has_another_process_start_the_daemon_is_told_where_to_look() {
        let out =
            Summary::of_command("docker").render("docker", |_| false, |_, _| None, |_, _| None);
        assert_eq!(
            out[1],
            "  nothing listens: no bind or listen call was made: docker has the container \
             engine's daemon start the daemon, and its binds are not docker's nor its \
             children's. Run `sudo lsn-trace --comm NAME` (or with no filter) in another \
             terminal, then `docker …`"
        );
        // Other commands: the plain sentence; and not once a call was seen.
        let out = Summary::of_command("nginx").render("nginx", |_| false, |_, _| None, |_, _| None);
        assert_eq!(out[1], "  nothing listens: no bind or listen call was made");
        let mut s = Fed::new(Summary::of_command("systemctl"));
        s.feed(&bind(7, 80, libc::EACCES));
        let out = s
            .summary
            .render("systemctl", |_| false, |_, _| None, |_, _| None);
        assert!(
            !out.iter().any(|l| l.contains("another terminal")),
            "{out:#?}"
        );
    }

    #[test]
    fn the_verdict_is_the_storys_when_there_is_one() {
        // The story knows more than the event (here: the device, in life also who owns the
        // address in the socket's namespace): the summary says what the live line said.
        let l = listen_ev(7, 8080, 511);
        let note = Note {
            bound: Some(
                Bound {
                    device: Some("eth9".into()),
                    ..Bound::ip(Ipv4Addr::UNSPECIFIED.into(), 8080)
                }
                .into(),
            ),
            listener: Some(ListenerChange::Open),
            ..Default::default()
        };
        let mut s = Summary::default();
        s.take(&l, &note);
        let out = s.render("nginx", |_| true, |_, _| None, |_, _| None);
        assert!(
            out[2].contains("but only on interface eth9 (SO_BINDTODEVICE)"),
            "{out:#?}"
        );
        // Through the story: a listen whose bind was not seen has the kernel's view.
        let mut s = Fed::new(Summary::default());
        s.feed(&l);
        let out = s
            .summary
            .render("nginx", |_| true, |_, _| None, |_, _| None);
        assert!(!out[2].contains("eth9"), "{out:#?}");
        assert!(out[2].contains("every IPv4 address"), "{out:#?}");
    }

    #[test]
    fn nothing_listens_any_more_names_the_last_socket_and_how_it_was_held() {
        let mut s = Fed::new(Summary::default());
        let l = listen_ev(7, 8080, 511);
        s.feed(&bind(7, 8080, 0));
        s.feed(&l);
        let mut udp = bind(7, 5353, 0);
        udp.sock.as_mut().unwrap().sock_type = Some(2);
        udp.sock.as_mut().unwrap().protocol = Some(17);
        s.feed(&udp);
        let out = s
            .summary
            .render("nginx", |_| false, |_, _| None, |_, _| None);
        assert_eq!(
            out.last().unwrap(),
            "  nothing listens any more: nginx (pid 7) was bound to udp 0.0.0.0:5353 \
             until it exited (the last of the 2 above)",
            "{out:#?}"
        );
    }

    #[test]
    fn listeners_are_listed_with_their_state() {
        let mut s = Fed::new(Summary::default());
        s.feed(&bind(7, 8080, 0));
        let l = listen_ev(7, 8080, 511);
        s.feed(&l);
        let out = s
            .summary
            .render("nginx", |_| true, |_, _| None, |_, _| None);
        assert_eq!(out.len(), 3, "{out:#?}");
        assert_eq!(
            out[1],
            "  listening  tcp 0.0.0.0:8080  nginx (pid 7), still open"
        );
        assert!(
            out[2].starts_with("             → every IPv4 address on every interface"),
            "{out:#?}"
        );
        let out = s
            .summary
            .render("nginx", |_| false, |_, _| None, |_, _| None);
        assert!(out[1].ends_with("until it exited"), "{out:#?}");
        assert_eq!(
            out[3],
            "  nothing listens any more: nginx (pid 7) listened on tcp 0.0.0.0:8080 until it exited"
        );
        // It daemonized: the child it forked holds the socket on.
        let holds = |p: &str, a: &str| {
            (p == "tcp" && a == "0.0.0.0:8080").then(|| "nginx (pid 8)".to_owned())
        };
        let out = s.summary.render("nginx", |_| false, |_, _| None, holds);
        assert_eq!(out.len(), 3, "{out:#?}");
        assert_eq!(
            out[1],
            "  listening  tcp 0.0.0.0:8080  nginx (pid 7), still open, held now by nginx (pid 8)"
        );
    }

    /// postgres with `listen_addresses='localhost,127.0.0.1'`: localhost is 127.0.0.1 here,
    /// the second bind fails on its own first listener, postgres warns and serves on. When
    /// it stops, the last line must not blame the failure for nothing listening.
    #[test]
    fn a_failure_beside_a_listener_is_not_named_the_reason() {
        let mut s = Fed::new(Summary::default());
        s.feed(&bind(7, 5432, 0));
        let l = listen_ev(7, 5432, 244);
        s.feed(&l);
        s.feed(&bind(7, 5432, 98));
        let held = |_: &str, port| Some(format!("nginx (pid 7) on 0.0.0.0:{port} (LISTEN)"));
        let out = s.summary.render("postgres", |_| false, held, |_, _| None);
        assert!(
            out.iter()
                .any(|l| l.starts_with("  failed     bind tcp 0.0.0.0:5432: EADDRINUSE")),
            "{out:#?}"
        );
        assert_eq!(
            out.last().unwrap(),
            "  nothing listens any more: nginx (pid 7) listened on tcp 0.0.0.0:5432 until it \
             exited; nginx (pid 7) also had 1 failed bind on 0.0.0.0:5432: EADDRINUSE, held \
             by nginx (pid 7) on 0.0.0.0:5432 (LISTEN)",
            "{out:#?}"
        );
    }

    /// A server that binds its port and never calls listen() is called out; a client
    /// that binds port 0 to pick its source address before connect() is not.
    #[test]
    fn bound_but_never_listened_is_a_server_port_not_a_client_source() {
        let mut s = Fed::new(Summary::default());
        let mut server = bind(7, 8080, 0);
        server.sock_id = Some(1);
        s.feed(&server);
        let mut client = bind(7, 0, 0);
        client.sock_id = Some(2);
        s.feed(&client);
        let out = s.summary.render("web", |_| true, |_, _| None, |_, _| None);
        let idle: Vec<_> = out
            .iter()
            .filter(|l| l.ends_with("but never listened"))
            .collect();
        assert_eq!(
            idle,
            ["  bound      tcp 0.0.0.0:8080  nginx (pid 7), but never listened"],
            "{out:#?}"
        );
    }

    /// http.server tries IPV6_V6ONLY on its socket whatever its family and ignores the
    /// ENOPROTOOPT of an AF_INET one: not a failure of the daemon, since that socket listens.
    /// The same refusal on a socket that never listens stays a failure.
    #[test]
    fn a_setsockopt_failure_the_socket_listened_past_is_harmless() {
        let v6only = |pid, id, inode| {
            let mut e = bind(pid, 8000, libc::ENOPROTOOPT);
            e.kind = Kind::Setsockopt;
            e.comm = "python3".into();
            e.request = Request::Setsockopt {
                level: lsn_trace_common::sockopt::SOL_IPV6,
                optname: lsn_trace_common::sockopt::IPV6_V6ONLY,
                optlen: 4,
                value: crate::event::OptValue::Int(0),
            };
            e.sock_id = Some(id);
            e.sock.as_mut().unwrap().inode = inode;
            e
        };
        let on = |mut e: Event, id, inode| {
            e.comm = "python3".into();
            e.sock_id = Some(id);
            e.sock.as_mut().unwrap().inode = inode;
            e
        };
        let mut s = Fed::new(Summary::default());
        s.feed(&v6only(7, 1, Some(55)));
        s.feed(&on(bind(7, 8000, 0), 1, Some(55)));
        s.feed(&on(listen_ev(7, 8000, 5), 1, Some(55)));
        let out = s
            .summary
            .render("python3", |_| true, |_, _| None, |_, _| None);
        assert!(!out.iter().any(|l| l.contains("failed")), "{out:#?}");
        assert!(
            out.contains(
                &"  ignored    setsockopt IPV6_V6ONLY (an IPv6 option, on an AF_INET socket): \
                  ENOPROTOOPT (Protocol not available)  python3 (pid 7); harmless: the socket \
                  listened on tcp 0.0.0.0:8000 after it"
                    .to_string()
            ),
            "{out:#?}"
        );
        // Another socket refused the same, never listening; and one whose identity is not
        // sure (the kernel's memory reused: another inode) — both still failures.
        s.feed(&v6only(7, 2, Some(56)));
        s.feed(&v6only(7, 3, Some(57)));
        s.feed(&on(bind(7, 8001, 0), 3, Some(58)));
        s.feed(&on(listen_ev(7, 8001, 5), 3, Some(58)));
        let out = s
            .summary
            .render("python3", |_| true, |_, _| None, |_, _| None);
        assert!(
            out.contains(
                &"  failed     setsockopt IPV6_V6ONLY (an IPv6 option, on an AF_INET socket): \
                  ENOPROTOOPT (Protocol not available), 2 times  python3 (pid 7)"
                    .to_string()
            ),
            "{out:#?}"
        );
        assert_eq!(out.iter().filter(|l| l.contains("ignored")).count(), 1);
    }

    /// `-- setpriv … python3 …`: setpriv exec()s python3 in the same process, which binds.
    /// The report names it one way throughout: the head `setpriv → python3`, the lines by
    /// its latest name (also those of events before a later exec).
    #[test]
    fn one_name_per_process_across_an_exec() {
        let mut s = Fed::new(Summary::of_command("setpriv"));
        assert_eq!(s.summary.command_name(7, "setpriv"), "setpriv");
        let mut b = bind(7, 8080, 0);
        b.comm = "python3".into();
        s.feed(&b);
        let mut l = listen_ev(7, 8080, 5);
        l.comm = "python3".into();
        s.feed(&l);
        let mut f = bind(7, 8081, libc::EACCES);
        f.comm = "python3".into();
        s.feed(&f);
        assert_eq!(s.summary.command_name(7, "setpriv"), "setpriv → python3");
        // A long name is its comm's first 15 bytes: the same name.
        let mut long = bind(8, 9000, 0);
        long.comm = "my-long-daemon-".into();
        s.feed(&long);
        assert_eq!(
            s.summary.command_name(8, "my-long-daemon-name"),
            "my-long-daemon-name"
        );
        // python3 exec()s a program of another name later: its lines say that one.
        let mut later = bind(7, 0, 0);
        later.comm = "gunicorn".into();
        later.sock_id = Some(99);
        s.feed(&later);
        let out = s.summary.render("x", |_| true, |_, _| None, |_, _| None);
        assert_eq!(
            out[1], "  listening  tcp 0.0.0.0:8080  gunicorn (pid 7), still open",
            "{out:#?}"
        );
        assert!(
            out.iter()
                .any(|l| l.starts_with("  failed     bind tcp 0.0.0.0:8081")
                    && l.ends_with("gunicorn (pid 7)")),
            "{out:#?}"
        );
        assert!(!out.iter().any(|l| l.contains("python3")), "{out:#?}");
    }

    /// haproxy binds `/run/haproxy/admin.sock.PID.tmp`, listens, and renames it into place:
    /// the summary names the path as bound and says it is gone now, only when known.
    #[test]
    fn a_unix_listener_renamed_after_its_bind_is_said_so() {
        let tmp = b"/run/haproxy/admin.sock.7.tmp".to_vec();
        let unix = |kind| Event {
            kind,
            request: match kind {
                Kind::Bind => Request::Bind(SockAddr::UnixPath(tmp.clone())),
                _ => Request::Listen { backlog: Some(10) },
            },
            comm: "haproxy".into(),
            sock: Some(Sock {
                family: Some(1),
                sock_type: Some(1),
                ..Default::default()
            }),
            ..bind(7, 1, 0)
        };
        let mut s = Fed::new(Summary::default());
        s.feed(&unix(Kind::Bind));
        s.feed(&unix(Kind::Listen));
        let line = "  listening  u_str /run/haproxy/admin.sock.7.tmp  haproxy (pid 7), still open";
        s.summary.check_paths(|_, _| false);
        let out = s
            .summary
            .render("haproxy", |_| true, |_, _| None, |_, _| None);
        assert_eq!(out[1], line, "{out:#?}");
        s.summary
            .check_paths(|pid, p| pid == 7 && p == b"/run/haproxy/admin.sock.7.tmp");
        let out = s
            .summary
            .render("haproxy", |_| true, |_, _| None, |_, _| None);
        assert_eq!(
            out[1],
            format!(
                "{line}; that path no longer exists: renamed or removed since its bind (the \
                 socket keeps its first name)"
            ),
            "{out:#?}"
        );
    }

    #[test]
    fn a_storm_of_sockets_is_listed_briefly() {
        let mut s = Fed::new(Summary::default());
        for _ in 0..30 {
            // The kernel reuses the freed socket's memory: same id, new socket each time.
            let l = listen_ev(7, 8080, 511);
            s.feed(&l);
            let mut c = bind(7, 8080, 0);
            c.kind = Kind::Close;
            c.request = Request::None;
            s.feed(&c);
        }
        let out = s
            .summary
            .render("storm", |_| true, |_, _| None, |_, _| None);
        assert_eq!(
            out.iter().filter(|l| l.starts_with("  listening")).count(),
            MAX_LISTED
        );
        assert!(
            out.contains(&"  … and 10 more listeners (0 still open in all)".to_string()),
            "{out:#?}"
        );
    }
}
