//! Who a process is, read from /proc when its event arrives: exe, cmdline, cgroup (and the
//! container and systemd unit it names), network namespace, user name.
//!
//! The process may be gone by then (a listener closed at exit, a short-lived helper):
//! whatever /proc no longer has comes from the last identity read for that pid, and is
//! `null` when there is none. The cache is bounded (`CACHE_CAP` pids, oldest evicted).
use std::{
    collections::VecDeque,
    fs,
    sync::Arc,
    time::{Duration, Instant},
};

// Looked up for every record (pid, uid) and exec: foldhash (seeded per run, a few
// instructions for integer keys) instead of SipHash's rounds.
use foldhash::HashMap;
use serde::Serialize;

use super::container::{ContainerInfo, Containers};
use crate::{
    event::ns_per_tick,
    stream::exec::{Exec, Fork},
    user,
};

/// Enough for every process that binds on a busy host between two of its events.
const CACHE_CAP: usize = 4096;
/// Distinct uids are few; the cap only guards against a hostile flood of them.
const USER_CAP: usize = 1024;
/// Longest cmdline kept (bytes): a log line should stay a line.
const CMDLINE_CAP: usize = 4096;

/// The record keys of [`ContainerInfo`] (a snapshot record without an owner nulls them).
pub const CONTAINER_KEYS: [&str; 5] = [
    "container_name",
    "container_image",
    "k8s_namespace",
    "k8s_pod",
    "k8s_container",
];

/// How an identity was obtained (the `identity` key of an audit record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Read from /proc/PID when the event arrived.
    Live,
    /// From an earlier read for the same process: the process was gone (or exiting), or
    /// was read less than a second before (same pid and comm).
    Cached,
    /// The process was gone and never seen before: only what the event carries.
    Event,
    /// `exe` and `cmdline` from what the process exec()ed (the exec capture: /proc no
    /// longer had them, or had those of a later exec); the rest as for the others.
    Exec,
    /// `exe` and `cmdline` of the process instance it was forked from (it never exec()ed
    /// since: the fork capture), as that one's exec or /proc had them; the rest as for the
    /// others.
    Fork,
}

impl Source {
    /// The name serde gives it (`identity`'s value), without serde: every record has one.
    pub fn name(self) -> &'static str {
        match self {
            Source::Live => "live",
            Source::Cached => "cached",
            Source::Event => "event",
            Source::Exec => "exec",
            Source::Fork => "fork",
        }
    }
}

/// The /proc part of a process's identity. Every field is `None` when unreadable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcInfo {
    pub exe: Option<String>,
    pub cmdline: Option<Vec<String>>,
    /// `cmdline` is the beginning of a longer one (present only then).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cmdline_truncated: bool,
    pub cgroup: Option<String>,
    pub container_id: Option<String>,
    pub container_runtime: Option<&'static str>,
    pub systemd_unit: Option<String>,
    /// Name, image and pod of the container, from the runtime's state (`container`).
    #[serde(flatten)]
    pub container: ContainerInfo,
    /// The process's network namespace inode (/proc/PID/ns/net): the record's `netns`
    /// where the socket's was not read.
    #[serde(skip)]
    pub proc_netns: Option<u64>,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22): tells a reused pid
    /// from the process the cache remembers.
    #[serde(skip)]
    pub start: Option<u64>,
    #[serde(skip)]
    pub ppid: Option<u32>,
}

impl ProcInfo {
    fn is_empty(&self) -> bool {
        self.exe.is_none() && self.cmdline.is_none() && self.cgroup.is_none()
    }

    /// Fill what `self` lacks from `older`.
    fn fill_from(&mut self, older: &ProcInfo) {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = older.$f.clone(); } )* };
        }
        fill!(
            exe,
            cmdline,
            cgroup,
            container_id,
            container_runtime,
            systemd_unit,
            proc_netns,
            start,
            ppid
        );
        if self.container.is_empty() {
            self.container = older.container.clone();
        }
    }
}

/// Read what /proc/PID still has. A zombie or an exiting task keeps stat and cgroup but
/// loses exe (its mm is gone) and cmdline.
pub fn read_proc(pid: u32) -> ProcInfo {
    let base = format!("/proc/{pid}");
    let mut info = ProcInfo {
        exe: fs::read_link(format!("{base}/exe"))
            .ok()
            .map(|p| crate::text::from_bytes(p.as_os_str().as_encoded_bytes())),
        ..ProcInfo::default()
    };
    if let Some(raw) = read_once(&format!("{base}/cmdline"), CMDLINE_CAP + 1)
        && !raw.is_empty()
    {
        info.cmdline_truncated = raw.len() > CMDLINE_CAP;
        info.cmdline = Some(split_cmdline(&raw));
    }
    if let Some(raw) = read_once(&format!("{base}/cgroup"), PROC_FILE_CAP)
        && let text = crate::text::from_bytes(&raw)
        && let Some(path) = unified_cgroup(&text)
    {
        let (runtime, id) = container_of(path).unzip();
        info.container_runtime = runtime;
        info.container_id = id;
        info.systemd_unit = systemd_unit(path).map(str::to_owned);
        info.cgroup = Some(path.to_owned());
    }
    if let Ok(link) = fs::read_link(format!("{base}/ns/net")) {
        info.proc_netns = link
            .to_str()
            .and_then(|s| s.strip_prefix("net:["))
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse().ok());
    }
    if let Some(stat) = read_once(&format!("{base}/stat"), PROC_FILE_CAP)
        && let Ok(stat) = String::from_utf8(stat)
    {
        let (ppid, start) = parse_stat(&stat);
        info.ppid = ppid;
        info.start = start;
    }
    info
}

/// Longest /proc/PID/{cgroup,stat} read (bytes).
const PROC_FILE_CAP: usize = 16384;

/// Up to `cap` bytes of a /proc file in one read(2): a process that exits between two
/// reads of its file ends it early (the second read finds no mm and says end of file), and
/// `fs::read`'s first read is of 32 bytes — a cmdline cut there was taken for the whole
/// (a storm's records had `["/path/to/lsn"]`).
fn read_once(path: &str, cap: usize) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = vec![0; cap];
    let n = fs::File::open(path).ok()?.read(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn split_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = &raw[..raw.len().min(CMDLINE_CAP)];
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    raw.split(|&b| b == 0)
        .map(crate::text::from_bytes)
        .collect()
}

/// ppid (field 4) and starttime (field 22) of /proc/PID/stat; comm (field 2) may hold
/// spaces and parentheses, so count from the last `)`.
fn parse_stat(stat: &str) -> (Option<u32>, Option<u64>) {
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return (None, None);
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state).
    (
        f.get(1).and_then(|s| s.parse().ok()),
        f.get(19).and_then(|s| s.parse().ok()),
    )
}

/// The cgroup v2 path (`0::/…`); on a hybrid or v1-only host, systemd's `name=systemd`
/// hierarchy, which carries the same unit and container names.
pub fn unified_cgroup(text: &str) -> Option<&str> {
    let line = |pred: &dyn Fn(&str) -> bool| {
        text.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            pred(ctrl).then_some(path)
        })
    };
    let v2 = line(&|c| c.is_empty());
    // On a hybrid host processes often sit at the v2 root while v1 has the real path.
    match v2 {
        Some(p) if p != "/" => Some(p),
        _ => line(&|c| c == "name=systemd").or(v2),
    }
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container a cgroup path names, and its runtime:
/// * docker: `…/docker-<id>.scope` (systemd driver), `/docker/<id>` (cgroupfs driver);
/// * podman: `…/libpod-<id>.scope`, `/libpod_parent/libpod-<id>` (not `libpod-conmon-`,
///   the monitor beside the container);
/// * containerd (Kubernetes CRI): `…/cri-containerd-<id>.scope`; the cgroupfs layout
///   `/kubepods/<qos>/pod<uid>/<id>` names no runtime: "kubernetes";
/// * CRI-O: `…/crio-<id>.scope`.
pub fn container_of(path: &str) -> Option<(&'static str, String)> {
    const PREFIXES: [(&str, &str); 4] = [
        ("docker-", "docker"),
        ("libpod-", "podman"),
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
    ];
    // The innermost component that names a container (nested cgroups below it belong to
    // it too: `…/docker-<id>.scope/init`).
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, c) in comps.iter().enumerate().rev() {
        let stem = c.strip_suffix(".scope").unwrap_or(c);
        for (prefix, runtime) in PREFIXES {
            if let Some(id) = stem.strip_prefix(prefix)
                && is_hex_id(id)
            {
                return Some((runtime, id.to_owned()));
            }
        }
        if is_hex_id(c) && i > 0 {
            let parent = comps[i - 1];
            if parent == "docker" {
                return Some(("docker", (*c).to_owned()));
            }
            // The cgroupfs layout does not say which CRI runtime made it.
            if parent.starts_with("pod") || comps[..i].contains(&"kubepods") {
                return Some(("kubernetes", (*c).to_owned()));
            }
        }
    }
    None
}

/// The systemd unit a cgroup path belongs to: its innermost `.service` or `.scope`
/// component (`/system.slice/nginx.service` → `nginx.service`; a user service below
/// `user@1000.service/app.slice/` → that service).
pub fn systemd_unit(path: &str) -> Option<&str> {
    path.split('/')
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
}

/// Within this long of a read, another event of the same pid and comm reuses it: a
/// process binding in a loop costs one /proc read per second, not six per bind.
const FRESH: Duration = Duration::from_secs(1);

struct Entry {
    /// Shared with the records made from it: a cached identity costs no copy.
    info: Arc<ProcInfo>,
    /// The event's comm when it was read: an exec in between changes it.
    comm: String,
    at: Instant,
}

/// Identities of processes, with the cache that outlives them.
pub struct Identities {
    cache: HashMap<u32, Entry>,
    order: VecDeque<u32>,
    /// What processes exec()ed (`exec_capture`).
    execs: Execs,
    /// Whom new processes were forked from, and when an exec capture was last lost.
    forks: Forks,
    users: HashMap<u32, Option<String>>,
    containers: Containers,
}

impl Identities {
    pub fn new() -> Identities {
        Identities {
            cache: HashMap::default(),
            order: VecDeque::new(),
            execs: Execs::default(),
            forks: Forks::default(),
            users: HashMap::default(),
            containers: Containers::new(),
        }
    }

    /// The identity of `pid` (whose event says it is `comm`, and started at `start` in
    /// clock ticks since boot when the kernel side could read it) now: /proc, completed
    /// from the cache where the process no longer shows everything (exiting) or is gone.
    /// With `start`, only what was read of that very process instance is used: a pid
    /// reused by another process since gives the event's fields only (`Source::Event`),
    /// never the other program's exe and cmdline. Shared (`Arc`): a cached identity costs
    /// no copy.
    pub fn of(&mut self, pid: u32, comm: &str, start: Option<u64>) -> (Arc<ProcInfo>, Source) {
        if pid == 0 {
            return (Arc::default(), Source::Event);
        }
        let same = |info: &ProcInfo| start.is_none() || info.start == start;
        if let Some(e) = self.cache.get(&pid)
            && e.comm == comm
            && e.at.elapsed() < FRESH
            && same(&e.info)
        {
            return (e.info.clone(), Source::Cached);
        }
        let mut info = read_proc(pid);
        let cached = self.cache.get(&pid).map(|e| &e.info).filter(|c| same(c));
        if !same(&info) || info.start.is_none() {
            // Another process has the pid now (what /proc says is not the event's), or it
            // is gone entirely: the cache is all there is.
            return match cached {
                Some(c) => (c.clone(), Source::Cached),
                None => (Arc::default(), Source::Event),
            };
        }
        let source = match cached {
            // Same process (same start time), partly torn down: complete it.
            Some(c) if c.start == info.start && info.exe.is_none() => {
                info.fill_from(c);
                Source::Cached
            }
            _ => Source::Live,
        };
        if let (Some(runtime), Some(id), true) = (
            info.container_runtime,
            &info.container_id,
            info.container.is_empty(),
        ) {
            info.container = self.containers.of(runtime, id);
        }
        let info = Arc::new(info);
        if source == Source::Live && !info.is_empty() {
            self.remember(pid, comm, info.clone());
        }
        (info, source)
    }

    fn remember(&mut self, pid: u32, comm: &str, info: Arc<ProcInfo>) {
        let entry = Entry {
            info,
            comm: comm.to_owned(),
            at: Instant::now(),
        };
        if self.cache.insert(pid, entry).is_none() {
            self.order.push_back(pid);
            while self.order.len() > CACHE_CAP {
                if let Some(old) = self.order.pop_front() {
                    self.cache.remove(&old);
                }
            }
        }
    }

    /// The passwd name of `uid` (`None` when it has none).
    /// Borrowed from the cache: every record names its user.
    pub fn user_name(&mut self, uid: u32) -> Option<&str> {
        if !self.users.contains_key(&uid) {
            let name = user::by_uid(uid).map(|u| u.name);
            if self.users.len() >= USER_CAP {
                self.users.clear();
            }
            self.users.insert(uid, name);
        }
        self.users[&uid].as_deref()
    }

    // ---- Exec capture (issue 18) ----------------------------------------------------------

    /// A process exec()ed: kept for the events of that instance that follow.
    pub fn exec(&mut self, x: &Exec) {
        self.execs.add(x);
    }

    /// A new process was forked: kept for its events, should it never exec().
    pub fn fork(&mut self, f: &Fork) {
        self.forks.add(f);
    }

    /// Exec captures were lost (noticed at `now_ns`, wall time): a process forked before
    /// may have exec()ed unseen, so its parent no longer names it.
    pub fn execs_lost(&mut self, now_ns: u64) {
        self.forks.exec_loss_seen_ns = now_ns;
    }

    /// `exe`, `cmdline` and `cmdline_truncated` of instance (`pid`, `start_ns`) at
    /// `time_ns` from whom it was forked: it has no exec of its own before then, so it runs
    /// the image it was forked with — its parent's exec before the fork, or what /proc shows
    /// of that very parent (alive, no exec since), or, that parent itself a forked child, its
    /// own parent's, up a few generations. None where any link is unknown, or an exec capture
    /// lost since the fork leaves open whether it exec()ed.
    fn forked_image(
        &mut self,
        (mut pid, mut start_ns): (u32, u64),
    ) -> Option<(Option<String>, Option<Vec<String>>, bool)> {
        for _ in 0..FORK_GENERATIONS {
            let f = *self.forks.by.get(&(pid, start_ns))?;
            if self.forks.exec_loss_seen_ns >= f.time_ns {
                return None;
            }
            let (ppid, pstart) = (f.parent_pid, f.parent_start_ns?);
            let (at, later) = self.execs.at(ppid, pstart, f.time_ns);
            if let Some(x) = at {
                return Some((x.exe.clone(), x.cmdline.clone(), x.cmdline_truncated));
            }
            if !later
                && !self.execs.twin(ppid, pstart)
                && let Some(info) = self.of_instance(ppid, pstart / ns_per_tick())
                && info.exe.is_some()
            {
                return Some((
                    info.exe.clone(),
                    info.cmdline.clone(),
                    info.cmdline_truncated,
                ));
            }
            (pid, start_ns) = (ppid, pstart);
        }
        None
    }

    /// What /proc (or the cache, within `FRESH`) has of `pid` if it is still the instance
    /// that started at `start` (ticks); whatever its comm.
    fn of_instance(&mut self, pid: u32, start: u64) -> Option<Arc<ProcInfo>> {
        if let Some(e) = self.cache.get(&pid)
            && e.info.start == Some(start)
            && e.at.elapsed() < FRESH
        {
            return Some(e.info.clone());
        }
        let info = read_proc(pid);
        if info.start != Some(start) {
            return None;
        }
        let info = Arc::new(info);
        // No comm to file it under: an event of that process reads it again.
        self.remember(pid, "", info.clone());
        Some(info)
    }

    /// [`of`](Self::of) for an event of `pid` at `time_ns`: where /proc and the cache lack
    /// its exe or cmdline, or what they have is of a later exec than the event, both come
    /// from the last exec of that very instance (pid, start to the ns: `start_ns`, 0
    /// unknown) before the event (`Source::Exec`) — or are null when there is none. Never
    /// another instance's.
    pub fn of_event(
        &mut self,
        pid: u32,
        comm: &str,
        (start, start_ns): (Option<u64>, u64),
        time_ns: u64,
    ) -> (Arc<ProcInfo>, Source) {
        let (info, source) = self.of(pid, comm, start);
        if start_ns == 0 {
            return (info, source);
        }
        let (own_exec, later) = {
            let (at, later) = self.execs.at(pid, start_ns, time_ns);
            (at.is_some(), later)
        };
        // Another instance at this pid started within the same tick: /proc and the cache,
        // which tell instances apart by tick, may be that one's — only the exec is ours.
        let twin = self.execs.twin(pid, start_ns);
        // No exec of its own before the event: it ran the image it was forked with (what
        // /proc shows now is that image only if it has not exec()ed since either).
        if !own_exec
            && (twin || later || info.exe.is_none() || info.cmdline.is_none())
            && let Some((exe, cmdline, cut)) = self.forked_image((pid, start_ns))
        {
            let mut out = if twin {
                ProcInfo::default()
            } else {
                (*info).clone()
            };
            (out.exe, out.cmdline, out.cmdline_truncated) = (exe, cmdline, cut);
            return (Arc::new(out), Source::Fork);
        }
        if !twin && (!own_exec && !later || info.exe.is_some() && info.cmdline.is_some() && !later)
        {
            return (info, source);
        }
        let (at, _) = self.execs.at(pid, start_ns, time_ns);
        let mut out = if twin {
            ProcInfo::default()
        } else {
            (*info).clone()
        };
        out.exe = at.and_then(|x| x.exe.clone());
        out.cmdline = at.and_then(|x| x.cmdline.clone());
        out.cmdline_truncated = at.is_some_and(|x| x.cmdline_truncated);
        let source = match (at.is_some(), twin) {
            (true, _) => Source::Exec,
            (false, true) => Source::Event,
            (false, false) => source,
        };
        (Arc::new(out), source)
    }
    // ---- end of the exec capture ------------------------------------------------------

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.cache.len()
    }
}

// ---- Exec capture (issue 18) --------------------------------------------------------------

/// Process instances whose execs are kept: ~2 s of a fork+exec storm of 4,000 a second, far
/// more than the time from an exec to the agent reading its process's events (a live
/// process is read from /proc anyway). Oldest evicted.
const EXEC_INSTANCES: usize = 8192;
/// Execs kept per instance (a shell's `exec` chain); the oldest go first.
const EXECS_PER_INSTANCE: usize = 4;

/// The exec captures by process instance (pid, start in ns), each instance's in order.
#[derive(Default)]
struct Execs {
    by: HashMap<(u32, u64), Vec<Arc<Exec>>>,
    order: VecDeque<(u32, u64)>,
    /// The instances kept of each pid (their starts, ns).
    starts: HashMap<u32, Vec<u64>>,
}

impl Execs {
    fn add(&mut self, x: &Exec) {
        // Without its start an exec matches no instance: not kept.
        let Some(start) = x.start_ns else { return };
        let key = (x.pid, start);
        let list = self.by.entry(key).or_default();
        if list.is_empty() {
            self.order.push_back(key);
            self.starts.entry(x.pid).or_default().push(start);
        }
        if list.len() == EXECS_PER_INSTANCE {
            list.remove(0);
        }
        list.push(Arc::new(x.clone()));
        while self.order.len() > EXEC_INSTANCES {
            if let Some(old) = self.order.pop_front() {
                self.by.remove(&old);
                if let Some(v) = self.starts.get_mut(&old.0) {
                    v.retain(|&s| s != old.1);
                    if v.is_empty() {
                        self.starts.remove(&old.0);
                    }
                }
            }
        }
    }

    /// Whether another instance of `pid` kept here started within the tick of `start_ns`
    /// (/proc's starttime cannot tell the two apart).
    fn twin(&self, pid: u32, start_ns: u64) -> bool {
        let tick = |ns: u64| ns / ns_per_tick();
        self.starts.get(&pid).is_some_and(|v| {
            v.iter()
                .any(|&s| s != start_ns && tick(s) == tick(start_ns))
        })
    }

    /// The last exec of the instance at or before `time_ns`, and whether one came after.
    fn at(&self, pid: u32, start: u64, time_ns: u64) -> (Option<&Exec>, bool) {
        let Some(list) = self.by.get(&(pid, start)) else {
            return (None, false);
        };
        let before = list.iter().rev().find(|x| x.time_ns <= time_ns);
        let later = list.iter().any(|x| x.time_ns > time_ns);
        (before.map(|x| &**x), later)
    }
}
/// How far up a chain of forks without exec an image is looked for (a daemon's
/// double fork is two).
const FORK_GENERATIONS: usize = 4;

/// The fork captures: each kept instance's parent instance and fork time.
#[derive(Default)]
struct Forks {
    by: HashMap<(u32, u64), Fork>,
    order: VecDeque<(u32, u64)>,
    /// When an exec capture was last reported lost (wall ns; 0: never).
    exec_loss_seen_ns: u64,
}

impl Forks {
    fn add(&mut self, f: &Fork) {
        // Without the child's start the fork matches no instance: not kept.
        let Some(start) = f.start_ns else { return };
        if self.by.insert((f.pid, start), *f).is_none() {
            self.order.push_back((f.pid, start));
        }
        while self.order.len() > EXEC_INSTANCES {
            if let Some(old) = self.order.pop_front() {
                self.by.remove(&old);
            }
        }
    }
}
// ---- end of the exec capture ------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f2a6c0d9b8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";

    #[test]
    fn source_names_are_serdes() {
        for s in [
            Source::Live,
            Source::Cached,
            Source::Event,
            Source::Exec,
            Source::Fork,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
    }

    #[test]
    fn containers_from_cgroup_paths() {
        let cases = [
            (format!("/system.slice/docker-{ID}.scope"), "docker"),
            (format!("/docker/{ID}"), "docker"),
            (
                format!("/machine.slice/libpod-{ID}.scope/container"),
                "podman",
            ),
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
                ),
                "podman",
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c1d.slice/cri-containerd-{ID}.scope"
                ),
                "containerd",
            ),
            (
                format!("/kubepods/besteffort/pod8d2f1e3a-1111-2222-3333-444455556666/{ID}"),
                "kubernetes",
            ),
            (
                format!("/kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope"),
                "cri-o",
            ),
        ];
        for (path, runtime) in cases {
            assert_eq!(
                container_of(&path),
                Some((runtime, ID.to_owned())),
                "{path}"
            );
        }
        for path in [
            "/",
            "/system.slice/nginx.service",
            "/user.slice/user-1000.slice/session-3.scope",
            &format!("/machine.slice/libpod-conmon-{ID}.scope"),
            "/system.slice/docker-abc.scope",
        ] {
            assert_eq!(container_of(path), None, "{path}");
        }
    }

    #[test]
    fn units_from_cgroup_paths() {
        assert_eq!(
            systemd_unit("/system.slice/nginx.service"),
            Some("nginx.service")
        );
        assert_eq!(
            systemd_unit("/system.slice/nginx.service/worker"),
            Some("nginx.service")
        );
        assert_eq!(
            systemd_unit("/user.slice/user-1000.slice/user@1000.service/app.slice/web.service"),
            Some("web.service")
        );
        assert_eq!(
            systemd_unit("/user.slice/user-1000.slice/session-4.scope"),
            Some("session-4.scope")
        );
        assert_eq!(systemd_unit("/init.scope"), Some("init.scope"));
        assert_eq!(systemd_unit("/"), None);
        assert_eq!(systemd_unit("/process_api/e248"), None);
    }

    #[test]
    fn cgroup_v2_line_preferred_v1_systemd_on_hybrid_root() {
        let hybrid = "9:name=systemd:/system.slice/ssh.service\n4:memory:/x\n0::/\n";
        assert_eq!(unified_cgroup(hybrid), Some("/system.slice/ssh.service"));
        let v2 = "0::/system.slice/cron.service\n";
        assert_eq!(unified_cgroup(v2), Some("/system.slice/cron.service"));
        assert_eq!(unified_cgroup("0::/\n"), Some("/"));
        assert_eq!(unified_cgroup(""), None);
    }

    #[test]
    fn stat_with_odd_comm() {
        let stat = "123 (a) b) c) S 45 123 123 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        assert_eq!(parse_stat(stat), (Some(45), Some(98765)));
    }

    #[test]
    fn own_identity_live_then_gone_pid_is_event_only() {
        let mut ids = Identities::new();
        let (me, src) = ids.of(std::process::id(), "t", None);
        assert_eq!(src, Source::Live);
        assert_eq!(
            ids.of(std::process::id(), "t", None).1,
            Source::Cached,
            "read again within 1 s"
        );
        assert_eq!(
            ids.of(std::process::id(), "exec'd", None).1,
            Source::Live,
            "another comm"
        );
        assert_eq!(
            me.exe.as_deref().map(std::path::Path::new),
            Some(std::env::current_exe().unwrap().as_path())
        );
        assert!(me.cmdline.as_ref().is_some_and(|c| !c.is_empty()));
        assert!(me.proc_netns.is_some());
        assert_eq!(me.ppid, Some(std::os::unix::process::parent_id()));
        // A pid that cannot exist (above pid_max's ceiling).
        let (none, src) = ids.of(u32::MAX - 1, "t", None);
        assert_eq!(src, Source::Event);
        assert_eq!(*none, ProcInfo::default());
        assert_eq!(ids.cached(), 1);
        assert_eq!(ids.user_name(0), Some("root"));
    }

    fn exec(pid: u32, start_ns: u64, time_ns: u64, tag: &str) -> Exec {
        Exec {
            pid,
            start_ns: Some(start_ns),
            time_ns,
            exe: Some(format!("/bin/{tag}")),
            cmdline: Some(vec![tag.to_owned()]),
            cmdline_truncated: tag.ends_with('~'),
        }
    }

    /// A pid that cannot exist (above pid_max's ceiling): /proc has nothing.
    const GONE: u32 = u32::MAX - 1;

    #[test]
    fn gone_process_takes_its_own_instances_last_exec_before_the_event() {
        let mut ids = Identities::new();
        ids.exec(&exec(GONE, 7, 100, "sh"));
        ids.exec(&exec(GONE, 7, 200, "nc~"));
        // Another instance at the same pid (started 1 ns later: same /proc tick).
        ids.exec(&exec(GONE, 8, 300, "other"));
        let of = |ids: &mut Identities, start_ns, t| {
            let (info, src) = ids.of_event(GONE, "x", (Some(0), start_ns), t);
            (src, info.exe.clone(), info.cmdline_truncated)
        };
        assert_eq!(
            of(&mut ids, 7, 150),
            (Source::Exec, Some("/bin/sh".into()), false)
        );
        assert_eq!(
            of(&mut ids, 7, 250),
            (Source::Exec, Some("/bin/nc~".into()), true)
        );
        assert_eq!(
            of(&mut ids, 7, 350),
            (Source::Exec, Some("/bin/nc~".into()), true)
        );
        assert_eq!(
            of(&mut ids, 8, 350),
            (Source::Exec, Some("/bin/other".into()), false)
        );
        // Before any exec of the instance, of an unknown one, or with no start: nothing.
        assert_eq!(of(&mut ids, 7, 50), (Source::Event, None, false));
        assert_eq!(of(&mut ids, 9, 350), (Source::Event, None, false));
        assert_eq!(of(&mut ids, 0, 350), (Source::Event, None, false));
    }

    fn fork(pid: u32, start_ns: u64, parent: (u32, u64), time_ns: u64) -> Fork {
        Fork {
            pid,
            start_ns: Some(start_ns),
            parent_pid: parent.0,
            parent_start_ns: Some(parent.1),
            time_ns,
        }
    }

    /// A child that binds and exits without exec()ing runs its parent's image: named by
    /// the parent's last exec before the fork, up a double fork — never by an exec after
    /// it, never when an exec capture was lost since the fork.
    #[test]
    fn a_gone_forked_child_is_named_by_its_parents_image_at_the_fork() {
        const PARENT: u32 = GONE - 1;
        const MIDDLE: u32 = GONE - 2;
        let mut ids = Identities::new();
        ids.exec(&exec(PARENT, 5, 100, "server"));
        ids.exec(&exec(PARENT, 5, 400, "re-exec"));
        ids.fork(&fork(MIDDLE, 20, (PARENT, 5), 200));
        ids.fork(&fork(GONE, 30, (MIDDLE, 20), 300));
        let of = |ids: &mut Identities, pid, start_ns, t| {
            let (info, src) = ids.of_event(pid, "x", (Some(0), start_ns), t);
            (src, info.exe.clone(), info.cmdline.clone())
        };
        let server = (
            Source::Fork,
            Some("/bin/server".to_string()),
            Some(vec!["server".to_string()]),
        );
        assert_eq!(of(&mut ids, GONE, 30, 350), server, "a double fork");
        assert_eq!(of(&mut ids, MIDDLE, 20, 350), server);
        // Its own exec wins from then on.
        ids.exec(&exec(GONE, 30, 500, "own"));
        assert_eq!(of(&mut ids, GONE, 30, 600).1, Some("/bin/own".into()));
        assert_eq!(of(&mut ids, GONE, 30, 600).0, Source::Exec);
        // Before its own exec: the image it was forked with.
        assert_eq!(of(&mut ids, GONE, 30, 450), server);
        // Another instance at the same pid, never seen forking: nothing.
        assert_eq!(of(&mut ids, GONE, 31, 350), (Source::Event, None, None));
        // An exec capture lost after the fork: it may have exec()ed unseen.
        ids.execs_lost(250);
        assert_eq!(of(&mut ids, MIDDLE, 20, 350), (Source::Event, None, None));
    }

    /// The parent alive, no exec of it known: its /proc (the same instance) names the child.
    #[test]
    fn a_gone_forked_child_of_a_live_parent_is_named_by_the_parents_proc() {
        let me = std::process::id();
        let ticks = read_proc(me).start.expect("own start");
        let start_ns = ticks * ns_per_tick() + 1;
        let mut ids = Identities::new();
        ids.fork(&fork(GONE, 30, (me, start_ns), 200));
        let (info, src) = ids.of_event(GONE, "x", (Some(0), 30), 250);
        assert_eq!(src, Source::Fork);
        assert_eq!(
            info.exe.as_deref().map(std::path::Path::new),
            Some(std::env::current_exe().unwrap().as_path())
        );
        assert!(info.cmdline.as_ref().is_some_and(|c| !c.is_empty()));
        assert_eq!(info.cgroup, None, "only the image is inherited");
        // The parent's /proc is another instance's (start a tick later): nothing.
        let mut ids = Identities::new();
        ids.fork(&fork(GONE, 30, (me, start_ns + ns_per_tick()), 200));
        assert_eq!(ids.of_event(GONE, "x", (Some(0), 30), 250).1, Source::Event);
        // The parent exec()ed after the fork: its /proc is a later image.
        let mut ids = Identities::new();
        ids.fork(&fork(GONE, 30, (me, start_ns), 200));
        ids.exec(&exec(me, start_ns, 220, "later"));
        assert_eq!(ids.of_event(GONE, "x", (Some(0), 30), 250).1, Source::Event);
    }

    #[test]
    fn a_live_read_of_a_later_exec_is_not_the_events() {
        let mut ids = Identities::new();
        let me = std::process::id();
        let (live, _) = ids.of(me, "t", None);
        assert!(live.exe.is_some());
        // This process "exec()ed" at 200: an event at 150 was another image's (none known),
        // at 250 /proc is this one.
        ids.exec(&exec(me, 7, 200, "later"));
        let (info, src) = ids.of_event(me, "t", (None, 7), 150);
        assert_eq!((info.exe.as_deref(), info.cmdline.as_deref()), (None, None));
        assert_eq!(src, Source::Cached);
        assert!(info.cgroup.is_some(), "what an exec does not change stays");
        ids.exec(&exec(me, 7, 100, "earlier"));
        let (info, src) = ids.of_event(me, "t", (None, 7), 150);
        assert_eq!(
            (info.exe.as_deref(), src),
            (Some("/bin/earlier"), Source::Exec)
        );
        let (info, src) = ids.of_event(me, "t", (None, 7), 250);
        assert_eq!(
            (info.exe.as_ref(), src),
            (live.exe.as_ref(), Source::Cached)
        );
    }

    #[test]
    fn a_twin_in_the_same_tick_leaves_only_the_exec() {
        let mut ids = Identities::new();
        let me = std::process::id();
        let t = ns_per_tick();
        ids.exec(&exec(me, 5 * t + 1, 100, "mine"));
        // Another instance of this pid, a tick later: /proc's (this process) is still ours.
        ids.exec(&exec(me, 6 * t, 100, "next-tick"));
        let (info, src) = ids.of_event(me, "t", (None, 5 * t + 1), 150);
        assert!(info.cgroup.is_some());
        let exe = std::env::current_exe().unwrap();
        assert_eq!((info.exe.as_deref(), src), (exe.to_str(), Source::Live));
        // One in the same tick: nothing of /proc's is taken.
        ids.exec(&exec(me, 5 * t + 2, 120, "twin"));
        let (info, src) = ids.of_event(me, "t", (None, 5 * t + 1), 150);
        assert_eq!(
            (info.exe.as_deref(), src),
            (Some("/bin/mine"), Source::Exec)
        );
        assert_eq!((info.cgroup.as_deref(), info.ppid), (None, None));
        let (info, src) = ids.of_event(me, "t", (None, 5 * t + 3), 150);
        assert_eq!((info.exe.as_deref(), src), (None, Source::Event));
    }

    #[test]
    fn exec_captures_are_bounded() {
        let mut ids = Identities::new();
        for i in 0..EXEC_INSTANCES as u64 + 10 {
            ids.exec(&exec(GONE, i + 1, 5, "x"));
        }
        for t in 0..2 * EXECS_PER_INSTANCE as u64 {
            ids.exec(&exec(GONE, 1 << 40, t, "y"));
        }
        assert_eq!(ids.execs.by.len(), EXEC_INSTANCES);
        assert_eq!(ids.execs.order.len(), EXEC_INSTANCES);
        assert_eq!(ids.execs.starts[&GONE].len(), EXEC_INSTANCES);
        assert_eq!(ids.execs.by[&(GONE, 1 << 40)].len(), EXECS_PER_INSTANCE);
        assert!(!ids.execs.by.contains_key(&(GONE, 1)), "oldest evicted");
    }

    #[test]
    fn exited_child_comes_from_the_cache() {
        let mut ids = Identities::new();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        // spawn returns mid-execve: wait until the new image shows its arguments.
        while read_proc(pid).cmdline.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let (live, src) = ids.of(pid, "sleep", None);
        assert_eq!(src, Source::Live);
        child.kill().unwrap();
        child.wait().unwrap();
        // Past the fresh window: /proc is read, and has nothing.
        std::thread::sleep(FRESH);
        let (gone, src) = ids.of(pid, "sleep", None);
        assert_eq!(src, Source::Cached);
        assert_eq!(gone.exe, live.exe);
        assert_eq!(
            gone.cmdline,
            Some(vec!["sleep".to_owned(), "30".to_owned()])
        );
    }
}
