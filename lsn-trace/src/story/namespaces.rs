//! What the story needs to know of each network namespace it meets — its sysctls
//! (bindv6only, ip_unprivileged_port_start), addresses and interface names, read from inside it and reused for a while — and how to reach a
//! namespace whose process is gone. All host I/O.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

// Looked up on every bind and listen: foldhash (seeded per run, a few instructions for an
// integer key) instead of SipHash's rounds.
use foldhash::HashMap;
use lsn_trace::{nsaddrs, procfs};

use crate::{
    netif::IfNames,
    sockdiag::{self, Netns},
};

/// How long per-namespace facts (sysctls, addresses) are reused.
const NS_TTL: Duration = Duration::from_secs(5);

/// Facts about one network namespace, read from inside it.
#[derive(Clone, Debug)]
pub(super) struct NsFacts {
    at: Instant,
    pub(super) bindv6only: Option<bool>,
    pub(super) unprivileged_port_start: Option<u32>,
    /// Its interfaces (empty when it could not be entered: indexes stay numbers).
    pub(super) ifnames: Arc<IfNames>,
}

pub(super) struct Namespaces {
    /// The agent's own namespace's inode.
    own: Option<u64>,
    facts: HashMap<u32, NsFacts>,
    addrs: HashMap<u32, (Instant, nsaddrs::NsAddrs)>,
    /// netns inode -> a process found in it (for namespaces whose process exited).
    pub(super) pids: HashMap<u32, (Instant, Option<u32>)>,
}

impl Namespaces {
    pub(super) fn new() -> Namespaces {
        Namespaces {
            own: Netns::Current.inode().ok(),
            facts: HashMap::default(),
            addrs: HashMap::default(),
            pids: HashMap::default(),
        }
    }

    /// Whether `netns` is the agent's own (unknown: not).
    pub(super) fn is_own(&self, netns: Option<u32>) -> bool {
        netns.is_some() && self.own == netns.map(u64::from)
    }

    /// The next `facts` of namespace `netns` are read afresh.
    pub(super) fn forget_facts(&mut self, netns: Option<u32>) {
        self.facts.remove(&netns.unwrap_or(0));
    }

    /// Where to look for the namespace `ino` of process `pid`: the agent's own, the
    /// process's, or (the process is gone) any other process's in it.
    pub(super) fn resolve(&mut self, ino: Option<u32>, pid: u32) -> Result<Netns, String> {
        let Some(ino) = ino else {
            // Unknown inode: the process's own, if it still exists.
            return if procfs::process_exists(pid) {
                Ok(Netns::Pid(pid))
            } else {
                Err(format!(
                    "process {pid} exited and its network namespace is unknown"
                ))
            };
        };
        if self.own == Some(u64::from(ino)) {
            return Ok(Netns::Current);
        }
        let ns = Netns::Pid(pid);
        if ns.inode().ok() == Some(u64::from(ino)) {
            return Ok(ns);
        }
        // The process is gone: another one in that namespace (remembered, and a miss is
        // not rescanned for a while: the /proc walk is the expensive part).
        if let Some((at, found)) = self.pids.get(&ino) {
            match found {
                Some(p) if Netns::Pid(*p).inode().ok() == Some(u64::from(ino)) => {
                    return Ok(Netns::Pid(*p));
                }
                None if at.elapsed() < NS_TTL => {
                    return Err(format!(
                        "process {pid} exited and no process is left in its network \
                         namespace (net:[{ino}])"
                    ));
                }
                _ => {}
            }
        }
        let found = sockdiag::pid_in_netns(u64::from(ino), Duration::from_millis(20));
        if self.pids.len() > 256 {
            self.pids.clear();
        }
        self.pids.insert(ino, (Instant::now(), found));
        match found {
            Some(p) => Ok(Netns::Pid(p)),
            None => Err(format!(
                "process {pid} exited and no process is left in its network namespace \
                 (net:[{ino}])"
            )),
        }
    }

    /// The facts of namespace `netns` (of process `pid`), read afresh once `NS_TTL` old.
    /// Borrowed: a bind and a listen ask for them, and a copy would cost an `Arc` count up
    /// and down each time.
    pub(super) fn facts(&mut self, netns: Option<u32>, pid: u32) -> &NsFacts {
        let key = netns.unwrap_or(0);
        // Looked up twice where fresh (once to test, once to return): the borrow checker
        // does not let a returned borrow end on the path that goes on to insert.
        if self
            .facts
            .get(&key)
            .is_some_and(|f| f.at.elapsed() < NS_TTL)
        {
            return &self.facts[&key];
        }
        let read = || NsFacts {
            at: Instant::now(),
            bindv6only: procfs::sysctl("net/ipv6/bindv6only").map(|v| v != 0),
            unprivileged_port_start: procfs::sysctl("net/ipv4/ip_unprivileged_port_start")
                .map(|v| v as u32),
            ifnames: Arc::new(IfNames::here()),
        };
        let unknown = || NsFacts {
            at: Instant::now(),
            bindv6only: None,
            unprivileged_port_start: None,
            ifnames: Arc::default(),
        };
        let f = match self.resolve(netns, pid) {
            Ok(Netns::Current) => read(),
            Ok(ns) => sockdiag::in_netns(&ns, read).unwrap_or_else(|_| unknown()),
            Err(_) => unknown(),
        };
        if self.facts.len() > 256 {
            self.facts.clear();
        }
        self.facts.insert(key, f);
        &self.facts[&key]
    }

    pub(super) fn addrs(&mut self, netns: Option<u32>, pid: u32) -> Option<nsaddrs::NsAddrs> {
        let key = netns.unwrap_or(0);
        if let Some((at, a)) = self.addrs.get(&key)
            && at.elapsed() < NS_TTL
        {
            return Some(a.clone());
        }
        let a = match self.resolve(netns, pid).ok()? {
            Netns::Current => nsaddrs::own(),
            Netns::Pid(p) => nsaddrs::of_pid(p),
            Netns::Path(_) => return None,
        };
        // of_pid falls back to our own namespace (with a note) when it cannot enter theirs:
        // those are not the addresses asked for.
        if a.note.is_some() && netns.is_some() && self.own != netns.map(u64::from) {
            return None;
        }
        if self.addrs.len() > 256 {
            self.addrs.clear();
        }
        self.addrs.insert(key, (Instant::now(), a.clone()));
        Some(a)
    }
}
