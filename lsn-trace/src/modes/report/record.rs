//! One line of the audit log, read for what the replay needs (every other key is skipped
//! without being kept): its kind, time, which socket, and who.
use std::borrow::Cow;

use serde::Deserialize;

use super::time::{self, Micros};

#[derive(Deserialize, Default, Debug)]
pub struct Rec<'a> {
    #[serde(borrow)]
    pub record: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub time: Option<Cow<'a, str>>,
    pub inode: Option<u64>,
    #[serde(borrow)]
    pub sock_id: Option<Cow<'a, str>>,
    pub netns: Option<u64>,
    #[serde(borrow)]
    pub protocol: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub addr: Option<Cow<'a, str>>,
    pub port: Option<u64>,
    pub bound_port: Option<u64>,
    pub pid: Option<u64>,
    #[serde(borrow)]
    pub comm: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub systemd_unit: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub container_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub container_name: Option<Cow<'a, str>>,
    pub reuseaddr: Option<bool>,
    pub reuseport: Option<bool>,
    /// `lost`: how many.
    pub count: Option<u64>,
    #[serde(borrow)]
    pub reason: Option<Cow<'a, str>>,
    /// `snapshot_end`.
    pub owners_complete: Option<bool>,
    pub errors: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Start,
    Snapshot,
    SnapshotEnd,
    Open,
    Close,
    Failed,
    Lost,
    Stop,
    Alert,
    /// A record kind this version does not know (a newer agent's), or no `record` key.
    Other,
}

impl Rec<'_> {
    pub fn kind(&self) -> Kind {
        match self.record.as_deref() {
            Some("start") => Kind::Start,
            Some("snapshot") => Kind::Snapshot,
            Some("snapshot_end") => Kind::SnapshotEnd,
            Some("open") => Kind::Open,
            Some("close") => Kind::Close,
            Some("failed") => Kind::Failed,
            Some("lost") => Kind::Lost,
            Some("stop") => Kind::Stop,
            Some("alert") => Kind::Alert,
            _ => Kind::Other,
        }
    }

    pub fn time(&self) -> Option<Micros> {
        self.time.as_deref().and_then(time::parse_record_time)
    }

    /// The port a listener is on: the kernel's where it differs from the request (0).
    pub fn listener_port(&self) -> Option<u64> {
        match self.bound_port {
            Some(p) if p != 0 => Some(p),
            _ => self.port,
        }
    }

    /// Which socket: its inode in its namespace (the same in the snapshot, in every run and
    /// on every backend), else the run's sock_id, else its address.
    pub fn key(&self, run: u32) -> Key {
        let netns = self.netns.unwrap_or(0);
        if let Some(inode) = self.inode.filter(|&i| i != 0) {
            return Key::Inode { netns, inode };
        }
        if let Some(id) = &self.sock_id {
            return Key::Sock {
                run,
                id: id.to_string(),
            };
        }
        Key::Addr(self.place())
    }

    /// Where it listens.
    pub fn place(&self) -> Place {
        Place {
            netns: self.netns.unwrap_or(0),
            protocol: self.protocol.as_deref().unwrap_or("").to_owned(),
            addr: self.addr.as_deref().unwrap_or("").to_owned(),
            port: self.listener_port().unwrap_or(0),
        }
    }

    /// A socket whose close the agent sees (TCP leaving LISTEN); UDP and unix closes are
    /// not traced.
    pub fn close_traced(&self) -> bool {
        matches!(self.protocol.as_deref(), Some("tcp" | "mptcp"))
    }

    pub fn who(&self) -> Who<'_> {
        Who {
            port: if self.kind() == Kind::Failed {
                self.port
            } else {
                self.listener_port()
            },
            addr: self.addr.as_deref(),
            comm: self.comm.as_deref(),
            unit: self.systemd_unit.as_deref(),
            container_id: self.container_id.as_deref(),
            container_name: self.container_name.as_deref(),
        }
    }
}

/// The identity of a socket across the log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Inode { netns: u64, inode: u64 },
    Sock { run: u32, id: String },
    Addr(Place),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    pub netns: u64,
    pub protocol: String,
    pub addr: String,
    pub port: u64,
}

/// What the filters look at, from a record however it was read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Who<'a> {
    pub port: Option<u64>,
    pub addr: Option<&'a str>,
    pub comm: Option<&'a str>,
    pub unit: Option<&'a str>,
    pub container_id: Option<&'a str>,
    pub container_name: Option<&'a str>,
}

/// A line already known to be UTF-8 (checked once, fast): serde_json's str reader does not
/// check each string again.
pub fn parse(line: &str) -> Result<Rec<'_>, serde_json::Error> {
    serde_json::from_str(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_needs_and_skips_the_rest() {
        let line = br#"{"record":"open","time":"2026-12-02T07:16:45.125903Z","inode":70166,"netns":4026531833,"protocol":"udp","addr":"::","port":0,"bound_port":57604,"pid":14053,"comm":"py\"thon","cmdline":["a","b"],"summary":"x","holders":null}"#;
        let r = parse(std::str::from_utf8(line).unwrap()).unwrap();
        assert_eq!(r.kind(), Kind::Open);
        assert_eq!(r.listener_port(), Some(57604));
        assert_eq!(r.comm.as_deref(), Some("py\"thon"));
        assert_eq!(
            r.key(3),
            Key::Inode {
                netns: 4026531833,
                inode: 70166
            }
        );
        assert!(!r.close_traced());
        assert_eq!(
            r.time(),
            time::parse_record_time("2026-12-02T07:16:45.125903Z")
        );
        let no_inode = parse(r#"{"record":"close","sock_id":"ab","inode":null}"#).unwrap();
        assert_eq!(
            no_inode.key(3),
            Key::Sock {
                run: 3,
                id: "ab".into()
            }
        );
        assert_eq!(parse(r#"{"record":"x"}"#).unwrap().kind(), Kind::Other);
        assert!(parse(r#"{"record":"open","time":"#).is_err());
    }
}
