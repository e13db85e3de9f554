//! Whole lines of `ss`, `netstat` (net-tools) and `lsof` output, as people paste them into
//! `lsn-trace explain`: which tool printed the line, its local address column, protocol,
//! state and process, and what the tool's notation says beyond the address (ss's `*` and
//! `[::]` tell V6ONLY, lsof's `*` is the unspecified address of the TYPE's family).
//!
//! Pure: the caller gives the services database; nothing here reads the system.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::explain_parse::{self, Addr, Host, ParseError, Parsed, Pasted};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Ss,
    Netstat,
    Lsof,
}

impl Tool {
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Ss => "ss",
            Tool::Netstat => "netstat",
            Tool::Lsof => "lsof",
        }
    }
}

/// A process the line names (ss `users:((…))`, netstat `PID/Program`, lsof COMMAND PID FD).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub name: String,
    pub pid: Option<u32>,
    /// As the tool writes it: ss `7`, lsof `7u`.
    pub fd: Option<String>,
}

/// V6ONLY as the line shows it, and how it shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V6only {
    pub value: bool,
    pub why: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub tool: Tool,
    /// ss Netid notation whatever the tool: `tcp`, `udp`, `sctp`, `mptcp`, `u_str`,
    /// `u_dgr`, `u_seq`.
    pub protocol: String,
    /// The state column as written (`LISTEN`, `UNCONN`, `LISTENING`), if the line has one.
    pub state: Option<String>,
    /// The local address column as printed.
    pub local_text: String,
    /// The local address as the tool means it (lsof's `*` made 0.0.0.0 or ::).
    pub local: Pasted,
    /// The family the line states (netstat `tcp6`, lsof TYPE `IPv6`), for host names.
    pub ipv6: Option<bool>,
    pub v6only: Option<V6only>,
    pub processes: Vec<Process>,
    /// The socket's inode (ss unix "port" column, `ino:` of ss -e, lsof NODE).
    pub inode: Option<u64>,
    /// What the tool's notation means here, in words.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// A column header or a title line (`Netid State …`, `Proto Recv-Q …`, `COMMAND PID …`).
    Header,
    Line(Box<Line>),
    /// A line of the tool's that is not a listener (a connection, an unnamed socket): why.
    NotListener {
        tool: Tool,
        why: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// Not the shape of any of the three tools' lines.
    Unknown,
    /// A kind of socket explain has no address to read for (netlink, raw, packet).
    Unsupported { tool: Tool, what: String },
    /// The local address column does not parse.
    Address {
        tool: Tool,
        text: String,
        error: ParseError,
    },
    /// netstat without -W cuts addresses to fit its 23-character column.
    MaybeCut { text: String },
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Unknown => f.write_str(
                "this is not one address, nor a line of ss, netstat or lsof output (expected \
                 e.g. `tcp LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:((\"nginx\",pid=1,fd=6))`, \
                 `tcp6 0 0 :::80 :::* LISTEN 1567/nginx` or `nginx 1567 root 6u IPv6 0x1 0t0 \
                 TCP *:80 (LISTEN)`)",
            ),
            LineError::Unsupported { tool, what } => {
                write!(
                    f,
                    "{} line of {what}: explain reads TCP, UDP and unix listeners",
                    tool.as_str()
                )
            }
            LineError::Address { tool, text, error } => write!(
                f,
                "{} line whose local address `{text}` does not parse: {error}",
                tool.as_str()
            ),
            LineError::MaybeCut { text } => write!(
                f,
                "netstat line whose local address `{text}` fills netstat's 23-character column: \
                 netstat cuts longer addresses to fit it unless run with -W (--wide), so this \
                 one may be cut; paste the line of `netstat -W` or of `ss`"
            ),
        }
    }
}

/// `services(name, protocol)`: the services database's port for the name.
pub type Services<'a> = &'a dyn Fn(&str, &str) -> Option<u16>;

/// Read one line (whitespace around it ignored). An empty line is a header.
pub fn read(text: &str, services: Services) -> Result<Read, LineError> {
    let tok: Vec<&str> = text.split_whitespace().collect();
    if is_header(text, &tok) {
        return Ok(Read::Header);
    }
    if tok.len() < 5 {
        return Err(LineError::Unknown);
    }
    ss(text, &tok, services)
        .or_else(|| netstat(&tok, services))
        .or_else(|| lsof(&tok, services))
        .unwrap_or(Err(LineError::Unknown))
}

/// Column headers, and netstat's title lines (`Active Internet connections (only servers)`).
fn is_header(text: &str, tok: &[&str]) -> bool {
    matches!(
        tok,
        [] | ["Netid", "State", ..]
            | ["State", "Recv-Q", ..]
            | ["Proto", "Recv-Q" | "RefCnt", ..]
            | ["COMMAND", "PID", ..]
    ) || text.trim_start().starts_with("Active Internet connections")
        || text.trim_start().starts_with("Active UNIX domain sockets")
}

const SS_NETIDS: &[&str] = &["tcp", "udp", "sctp", "mptcp", "u_str", "u_dgr", "u_seq"];
/// Families with no IP or unix address (`ss -l` lists them too): skipped, not refused.
const SS_OTHER_FAMILIES: &[(&str, &str)] = &[
    ("nl", "netlink"),
    ("p_raw", "packet"),
    ("p_dgr", "packet"),
    ("v_str", "vsock"),
    ("v_dgr", "vsock"),
    ("tipc", "TIPC"),
    ("xdp", "XDP"),
];
const SS_STATES: &[&str] = &[
    "LISTEN",
    "UNCONN",
    "ESTAB",
    "SYN-SENT",
    "SYN-RECV",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "TIME-WAIT",
    "CLOSE-WAIT",
    "LAST-ACK",
    "CLOSING",
    "CLOSED",
    "UNKNOWN",
];

/// None: not this tool's line.
type Got = Option<Result<Read, LineError>>;

fn not_listener(tool: Tool, why: String) -> Got {
    Some(Ok(Read::NotListener { tool, why }))
}

fn line(l: Line) -> Got {
    Some(Ok(Read::Line(Box::new(l))))
}

fn is_num(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[Netid] State Recv-Q Send-Q Local Peer [Process] [-e extras]`; a unix socket's address
/// and "port" (its inode) are two columns.
fn ss(text: &str, tok: &[&str], services: Services) -> Got {
    let (netid, at) = if SS_STATES.contains(&tok[1]) {
        (Some(tok[0]), 1)
    } else if SS_STATES.contains(&tok[0]) {
        (None, 0)
    } else {
        return None;
    };
    if !(is_num(tok[at + 1]) && is_num(tok[at + 2])) {
        return None;
    }
    let state = tok[at];
    if let Some(n) = netid
        && !SS_NETIDS.contains(&n)
    {
        if n == "raw" {
            return Some(Err(LineError::Unsupported {
                tool: Tool::Ss,
                what: "a raw socket (its \"port\" is an IP protocol number)".into(),
            }));
        }
        let (_, family) = SS_OTHER_FAMILIES.iter().find(|(id, _)| *id == n)?;
        return not_listener(
            Tool::Ss,
            format!("a {family} socket (Netid {n}): it has no IP or unix address"),
        );
    }
    let local_text = tok[at + 3];
    let mut notes = Vec::new();
    let unix = netid.is_some_and(|n| n.starts_with("u_"))
        || netid.is_none() && (local_text.starts_with('/') || local_text.starts_with('@'));
    let processes = ss_users(text);
    if unix {
        let protocol = netid.unwrap_or(if state == "LISTEN" { "u_str" } else { "u_dgr" });
        // The inode and the peer follow the name: a name with spaces shifts them.
        let Some(inode) = tok.get(at + 4).and_then(|t| t.parse().ok()) else {
            return Some(Err(LineError::Address {
                tool: Tool::Ss,
                text: tok[at + 3..].join(" "),
                error: ParseError::Junk(tok[at + 3..].join(" ")),
            }));
        };
        match (local_text, state) {
            ("*", _) => return not_listener(Tool::Ss, UNNAMED.into()),
            (_, "LISTEN") => {}
            (_, "UNCONN") if protocol == "u_dgr" => {}
            (_, s) => return not_listener(Tool::Ss, format!("a unix socket in state {s}")),
        }
        return unix_line(
            Tool::Ss,
            protocol,
            Some(state),
            local_text,
            Some(inode),
            processes,
        );
    }
    let protocol = match netid {
        Some(n) => n,
        None => {
            let p = if state == "UNCONN" { "udp" } else { "tcp" };
            notes.push(format!(
                "ss printed no Netid column (it does when listing more than one kind of \
                 socket): read as {} from the state {state}",
                p.to_uppercase()
            ));
            p
        }
    };
    let mut local = match address(Tool::Ss, local_text, protocol, services) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let extras = tok.get(at + 5..).unwrap_or_default();
    let inode = extras
        .iter()
        .find_map(|t| t.strip_prefix("ino:").and_then(|n| n.parse().ok()));
    let dash_e = extras.iter().find_map(|t| match *t {
        "v6only:1" => Some(true),
        "v6only:0" => Some(false),
        _ => None,
    });
    let v6only = match (&local.parsed, dash_e) {
        (_, Some(value)) => Some(V6only {
            value,
            why: "as ss -e printed it (v6only:N)",
        }),
        (Parsed::One(Addr::Inet { host, .. }), None) => match host {
            Host::Ip {
                ip: IpAddr::V6(ip), ..
            } if ip.is_unspecified() => Some(V6only {
                value: true,
                why: SS_WILDCARDS,
            }),
            Host::Any => Some(V6only {
                value: false,
                why: SS_WILDCARDS,
            }),
            _ => None,
        },
        _ => None,
    };
    if let Parsed::One(Addr::Inet { host, ports }) = &local.parsed
        && *host == Host::Any
    {
        // ss's `*` is one socket on `::`.
        local.parsed = Parsed::One(Addr::Inet {
            host: Host::Ip {
                ip: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                scope: None,
            },
            ports: *ports,
        });
    }
    match (state, protocol) {
        ("LISTEN", _) | ("UNCONN", "udp") => {}
        ("UNCONN", _) => {
            return not_listener(
                Tool::Ss,
                format!("a {protocol} socket in state UNCONN: bound, not listening"),
            );
        }
        (s, _) => return not_listener(Tool::Ss, format!("a {protocol} socket in state {s}")),
    }
    line(Line {
        tool: Tool::Ss,
        protocol: protocol.into(),
        state: Some(state.into()),
        local_text: local_text.into(),
        local,
        ipv6: None,
        v6only,
        processes,
        inode,
        notes,
    })
}

const SS_WILDCARDS: &str = "ss writes `*` for a dual-stack [::] socket, `[::]` for one with \
     V6ONLY=1 and 0.0.0.0 for IPv4 (iproute2 4.14 and later, on Linux 4.2 and later, which \
     reports V6ONLY; older ss wrote `*` for 0.0.0.0 too)";

/// `users:(("nginx",pid=2,fd=6),("nginx",pid=1,fd=6))`.
fn ss_users(text: &str) -> Vec<Process> {
    let Some(start) = text.find("users:((") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = &text[start + "users:(".len()..];
    while let Some(r) = rest.strip_prefix("(\"") {
        let Some((name, after)) = r.split_once("\",") else {
            break;
        };
        let (fields, after) = after.split_once(')').unwrap_or((after, ""));
        let field = |k: &str| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(k))
                .map(str::to_owned)
        };
        out.push(Process {
            name: name.into(),
            pid: field("pid=").and_then(|p| p.parse().ok()),
            fd: field("fd="),
        });
        rest = after.strip_prefix(',').unwrap_or(after);
    }
    out
}

const NETSTAT_INET: &[&str] = &[
    "tcp", "tcp6", "udp", "udp6", "udpl", "udpl6", "sctp", "sctp6",
];

/// `Proto Recv-Q Send-Q Local Foreign [State] [User Inode] [PID/Program] [Timer]`, and
/// `unix RefCnt [ Flags ] Type [State] I-Node [PID/Program] [Path]`.
fn netstat(tok: &[&str], services: Services) -> Got {
    let proto = tok[0];
    if proto == "unix" && is_num(tok[1]) && tok[2] == "[" {
        let close = tok.iter().position(|t| *t == "]")?;
        let rest = &tok[close + 1..];
        let protocol = match *rest.first()? {
            "STREAM" => "u_str",
            "DGRAM" => "u_dgr",
            "SEQPACKET" => "u_seq",
            _ => "u_str",
        };
        let (state, rest) = match rest.get(1) {
            Some(s) if !is_num(s) => (Some(*s), &rest[2..]),
            _ => (None, &rest[1..]),
        };
        let inode = rest.first().and_then(|t| t.parse().ok());
        let rest = rest.get(1..).unwrap_or_default();
        let (processes, rest) = match rest.first() {
            Some(p) if is_pid_program(p) => (netstat_process(p), &rest[1..]),
            _ => (Vec::new(), rest),
        };
        let path = rest.first().copied().unwrap_or("*");
        if rest.len() > 1 {
            return Some(Err(LineError::Address {
                tool: Tool::Netstat,
                text: rest.join(" "),
                error: ParseError::Junk(rest.join(" ")),
            }));
        }
        match (path, state) {
            ("*", _) => return not_listener(Tool::Netstat, UNNAMED.into()),
            (_, Some("LISTENING")) => {}
            (_, None) if protocol == "u_dgr" => {}
            (_, s) => return not_listener(Tool::Netstat, in_state("a unix socket", s)),
        }
        return unix_line(Tool::Netstat, protocol, state, path, inode, processes);
    }
    if matches!(proto, "raw" | "raw6") && is_num(tok[1]) && is_num(tok[2]) {
        return Some(Err(LineError::Unsupported {
            tool: Tool::Netstat,
            what: "a raw socket (its \"port\" is an IP protocol number)".into(),
        }));
    }
    if !NETSTAT_INET.contains(&proto) || !is_num(tok[1]) || !is_num(tok[2]) {
        return None;
    }
    let local_text = tok[3];
    if local_text.len() == 23 {
        return Some(Err(LineError::MaybeCut {
            text: local_text.into(),
        }));
    }
    let protocol = proto.trim_end_matches('6');
    let protocol = if protocol == "udpl" { "udp" } else { protocol };
    let local = match address(Tool::Netstat, local_text, protocol, services) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let rest = &tok[5..];
    let state = rest
        .first()
        .filter(|s| {
            s.bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
        })
        .filter(|s| !is_num(s))
        .copied();
    let processes = rest
        .iter()
        .rev()
        .find(|t| is_pid_program(t))
        .map(|p| netstat_process(p))
        .unwrap_or_default();
    let mut notes = vec![
        "netstat shows neither SO_BINDTODEVICE nor IPV6_V6ONLY (`ss -tulnpe` shows both)".into(),
    ];
    if rest.contains(&"-") && processes.is_empty() {
        notes.push(
            "netstat -p printed `-`: the socket belongs to another user's process (run it as \
             root to see which) or to none"
                .into(),
        );
    }
    match (protocol, state) {
        ("tcp" | "sctp", Some("LISTEN")) | ("udp", None) => {}
        (_, s) => {
            return not_listener(Tool::Netstat, in_state(&format!("a {protocol} socket"), s));
        }
    }
    line(Line {
        tool: Tool::Netstat,
        protocol: protocol.into(),
        state: state.map(str::to_owned),
        local_text: local_text.into(),
        local,
        ipv6: Some(proto.ends_with('6')),
        v6only: None,
        processes,
        inode: None,
        notes,
    })
}

const UNNAMED: &str = "an unnamed unix socket: it has no address to connect to";

fn in_state(what: &str, state: Option<&str>) -> String {
    match state {
        Some(s) => format!("{what} in state {s}"),
        None => format!("{what} without a state"),
    }
}

fn is_pid_program(t: &str) -> bool {
    t.split_once('/')
        .is_some_and(|(pid, name)| is_num(pid) && !name.is_empty())
}

fn netstat_process(t: &str) -> Vec<Process> {
    let (pid, name) = t.split_once('/').expect("is_pid_program");
    vec![Process {
        name: name.into(),
        pid: pid.parse().ok(),
        fd: None,
    }]
}

/// `COMMAND PID [TID TASKCMD] USER FD TYPE DEVICE SIZE/OFF NODE NAME [(STATE)]`.
fn lsof(tok: &[&str], services: Services) -> Got {
    if !is_num(tok[1]) {
        return None;
    }
    let i = (4..tok.len().saturating_sub(4))
        .find(|&i| matches!(tok[i], "IPv4" | "IPv6" | "unix") && tok[i + 2].starts_with("0t"))?;
    let process = vec![Process {
        name: tok[0].into(),
        pid: tok[1].parse().ok(),
        fd: Some(tok[i - 1].into()),
    }];
    let name = tok[i + 4];
    let state = tok
        .get(i + 5..)
        .unwrap_or_default()
        .iter()
        .find_map(|t| t.strip_prefix('(').and_then(|t| t.strip_suffix(')')));
    if tok[i] == "unix" {
        let dgram = tok.contains(&"type=DGRAM");
        let protocol = if dgram {
            "u_dgr"
        } else if tok.contains(&"type=SEQPACKET") {
            "u_seq"
        } else {
            "u_str"
        };
        if !(name.starts_with('/') || name.starts_with('@')) {
            return not_listener(Tool::Lsof, UNNAMED.into());
        }
        match state {
            Some("LISTEN") => {}
            None | Some("UNCONNECTED") if dgram => {}
            s => return not_listener(Tool::Lsof, in_state("a unix socket", s)),
        }
        return unix_line(
            Tool::Lsof,
            protocol,
            state,
            name,
            tok[i + 3].parse().ok(),
            process,
        );
    }
    let protocol = match tok[i + 3] {
        "TCP" => "tcp",
        "UDP" | "UDPLITE" => "udp",
        "SCTP" => "sctp",
        other => {
            return Some(Err(LineError::Unsupported {
                tool: Tool::Lsof,
                what: format!("a {other} socket"),
            }));
        }
    };
    let ipv6 = tok[i] == "IPv6";
    let (local_text, remote) = match name.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (name, None),
    };
    let mut local = match address(Tool::Lsof, local_text, protocol, services) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let mut notes =
        vec!["lsof shows neither SO_BINDTODEVICE nor IPV6_V6ONLY (`ss -tulnpe` shows both)".into()];
    if let Parsed::One(Addr::Inet { host, ports }) = &local.parsed
        && *host == Host::Any
    {
        let ip = if ipv6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        notes.push(format!(
            "lsof writes * for the unspecified address; TYPE {} makes it {ip}",
            tok[i]
        ));
        local.parsed = Parsed::One(Addr::Inet {
            host: Host::Ip { ip, scope: None },
            ports: *ports,
        });
    }
    match (remote, state, protocol) {
        (Some(r), _, _) => {
            return not_listener(
                Tool::Lsof,
                in_state(&format!("a {protocol} connection to {r}"), state),
            );
        }
        (None, Some("LISTEN"), _) | (None, None, "udp") => {}
        (None, s, _) => {
            return not_listener(Tool::Lsof, in_state(&format!("a {protocol} socket"), s));
        }
    }
    line(Line {
        tool: Tool::Lsof,
        protocol: protocol.into(),
        state: state.map(str::to_owned),
        local_text: local_text.into(),
        local,
        ipv6: Some(ipv6),
        v6only: None,
        processes: process,
        inode: None,
        notes,
    })
}

fn address(
    tool: Tool,
    text: &str,
    protocol: &str,
    services: Services,
) -> Result<Pasted, LineError> {
    explain_parse::parse_pasted(text, true, &|name| services(name, protocol)).map_err(|error| {
        LineError::Address {
            tool,
            text: text.into(),
            error,
        }
    })
}

fn unix_line(
    tool: Tool,
    protocol: &str,
    state: Option<&str>,
    name: &str,
    inode: Option<u64>,
    processes: Vec<Process>,
) -> Got {
    let local = match explain_parse::parse_pasted(name, false, &|_| None) {
        Ok(
            p @ Pasted {
                parsed: Parsed::One(Addr::UnixPath(_) | Addr::UnixAbstract(_)),
                ..
            },
        ) => p,
        other => {
            let error = other
                .err()
                .unwrap_or(ParseError::BadHost { text: name.into() });
            return Some(Err(LineError::Address {
                tool,
                text: name.into(),
                error,
            }));
        }
    };
    line(Line {
        tool,
        protocol: protocol.into(),
        state: state.map(str::to_owned),
        local_text: name.into(),
        local,
        ipv6: None,
        v6only: None,
        processes,
        inode,
        notes: Vec::new(),
    })
}

/// The line parser's properties on any input: it never panics, and the local address it
/// reads, shown, parses back the same (the fuzz target and the test suite assert them).
pub fn check_properties(s: &str, services: Services) {
    if let Ok(Read::Line(l)) = read(s, services) {
        let shown = l.local.to_string();
        let svc = |n: &str| services(n, &l.protocol);
        assert_eq!(
            explain_parse::parse_pasted(&shown, false, &svc).as_ref(),
            Ok(&l.local),
            "`{s}`: local address shown as `{shown}`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(name: &str, protocol: &str) -> Option<u16> {
        match (name, protocol) {
            ("ssh", "tcp") => Some(22),
            ("domain", "tcp" | "udp") => Some(53),
            ("ipp", "tcp") => Some(631),
            _ => None,
        }
    }

    fn line(s: &str) -> Line {
        match read(s, &services) {
            Ok(Read::Line(l)) => *l,
            other => panic!("`{s}`: {other:?}"),
        }
    }

    type State = Option<&'static str>;
    /// (local as read, protocol, state, V6ONLY, device)
    type SsWant = (&'static str, &'static str, State, Option<bool>, State);

    /// (local as read, protocol, state, v6only, device)
    fn facts(l: &Line) -> (String, &str, Option<&str>, Option<bool>, Option<&str>) {
        (
            l.local.to_string(),
            l.protocol.as_str(),
            l.state.as_deref(),
            l.v6only.as_ref().map(|v| v.value),
            l.local.device.as_deref(),
        )
    }

    // Real output (iproute2 6.1, net-tools 2.10, lsof 4.95) of listeners opened on this
    // project's machine, unless marked composed (or quoted from issue 20).
    #[test]
    fn ss_lines() {
        let table: &[(&str, SsWant)] = &[
            (
                "tcp   LISTEN 0      5            0.0.0.0:41001      0.0.0.0:*    users:((\"python3\",pid=11526,fd=3)) ",
                ("0.0.0.0:41001", "tcp", Some("LISTEN"), None, None),
            ),
            (
                "tcp   LISTEN 0      5                  *:41002            *:*    users:((\"python3\",pid=11526,fd=4)) ",
                ("[::]:41002", "tcp", Some("LISTEN"), Some(false), None),
            ),
            (
                "tcp   LISTEN 0      5               [::]:41003         [::]:*    users:((\"python3\",pid=11526,fd=5)) ",
                ("[::]:41003", "tcp", Some("LISTEN"), Some(true), None),
            ),
            (
                "udp   UNCONN 0      0            0.0.0.0:41004      0.0.0.0:*    users:((\"python3\",pid=11526,fd=6)) ",
                ("0.0.0.0:41004", "udp", Some("UNCONN"), None, None),
            ),
            (
                "tcp   LISTEN 0      5         0.0.0.0%lo:41005      0.0.0.0:*    users:((\"python3\",pid=11526,fd=7)) ",
                ("0.0.0.0%lo:41005", "tcp", Some("LISTEN"), None, Some("lo")),
            ),
            (
                "tcp   LISTEN 0      5            [::]%lo:41009         [::]:*    users:((\"python3\",pid=11526,fd=12))",
                (
                    "[::]%lo:41009",
                    "tcp",
                    Some("LISTEN"),
                    Some(true),
                    Some("lo"),
                ),
            ),
            (
                "tcp   LISTEN 0      5          127.0.0.1:ssh        0.0.0.0:*    users:((\"python3\",pid=11526,fd=13))",
                ("127.0.0.1:ssh", "tcp", Some("LISTEN"), None, None),
            ),
            // systemd-resolved's stub (composed: this machine has none)
            (
                "udp   UNCONN 0      0      127.0.0.53%lo:53        0.0.0.0:*    users:((\"systemd-resolve\",pid=612,fd=13))",
                ("127.0.0.53%lo:53", "udp", Some("UNCONN"), None, Some("lo")),
            ),
            // -e: v6only as a field
            (
                "udp   UNCONN 0      0                  *:41008            *:*    users:((\"python3\",pid=17950,fd=11)) ino:420327 sk:149 cgroup:/ v6only:0 <->",
                ("[::]:41008", "udp", Some("UNCONN"), Some(false), None),
            ),
            // no Netid column (one kind of socket listed): the example
            (
                "LISTEN 0 511 *:8080 *:* users:((\"node\",pid=35378,fd=18))",
                ("[::]:8080", "tcp", Some("LISTEN"), Some(false), None),
            ),
            (
                "u_str LISTEN 0      1      /tmp/ex/u.sock 66600            * 0    users:((\"python3\",pid=11526,fd=14))",
                ("/tmp/ex/u.sock", "u_str", Some("LISTEN"), None, None),
            ),
            (
                "u_dgr UNCONN 0      0      /tmp/ex/d.sock 66602            * 0          ",
                ("/tmp/ex/d.sock", "u_dgr", Some("UNCONN"), None, None),
            ),
            (
                "u_str LISTEN 0      1             @lsnabs 66601            * 0          ",
                ("@lsnabs", "u_str", Some("LISTEN"), None, None),
            ),
        ];
        for (text, want) in table {
            let l = line(text);
            assert_eq!(l.tool, Tool::Ss, "{text}");
            let got = facts(&l);
            assert_eq!(
                (got.0.as_str(), got.1, got.2, got.3, got.4),
                *want,
                "{text}"
            );
        }
        let l = line(table[0].0);
        assert_eq!(
            l.processes,
            [Process {
                name: "python3".into(),
                pid: Some(11526),
                fd: Some("3".into())
            }]
        );
        assert_eq!(line(table[6].0).local.parsed.to_string(), "127.0.0.1:22");
        assert_eq!(line(table[10].0).inode, Some(66600));
        assert_eq!(line(table[8].0).inode, Some(420327));
        assert!(line(table[9].0).notes[0].contains("no Netid column"));
        // composed: two processes share a listener (nginx's master and worker)
        let two = line(
            "tcp LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:((\"nginx\",pid=1191,fd=6),(\"nginx\",pid=1190,fd=6))",
        );
        let pids: Vec<_> = two.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [Some(1191), Some(1190)]);
    }

    #[test]
    fn netstat_lines() {
        let table: &[(&str, (&str, &str, State))] = &[
            (
                "tcp        0      0 0.0.0.0:41001           0.0.0.0:*               LISTEN      11526/python3       ",
                ("0.0.0.0:41001", "tcp", Some("LISTEN")),
            ),
            (
                "tcp6       0      0 :::41002                :::*                    LISTEN      11526/python3       ",
                ("[::]:41002", "tcp", Some("LISTEN")),
            ),
            (
                "tcp6       0      0 ::1:41007               :::*                    LISTEN      11526/python3       ",
                ("[::1]:41007", "tcp", Some("LISTEN")),
            ),
            (
                "udp        0      0 0.0.0.0:41004           0.0.0.0:*                           11526/python3       ",
                ("0.0.0.0:41004", "udp", None),
            ),
            (
                "udp6       0      0 :::41008                :::*                                11526/python3       ",
                ("[::]:41008", "udp", None),
            ),
            // without -n
            (
                "tcp        0      0 localhost:ssh           0.0.0.0:*               LISTEN      11526/python3       ",
                ("localhost:ssh", "tcp", Some("LISTEN")),
            ),
            (
                "tcp6       0      0 [::]:41009              [::]:*                  LISTEN      11526/python3       ",
                ("[::]:41009", "tcp", Some("LISTEN")),
            ),
            // the example; -e adds User and Inode
            (
                "tcp6 0 0 :::80 :::* LISTEN 1567/nginx",
                ("[::]:80", "tcp", Some("LISTEN")),
            ),
            (
                "tcp        0      0 0.0.0.0:41001           0.0.0.0:*               LISTEN      0          420320     17950/python3",
                ("0.0.0.0:41001", "tcp", Some("LISTEN")),
            ),
            (
                "unix  2      [ ACC ]     STREAM     LISTENING     66600    11526/python3        /tmp/ex/u.sock",
                ("/tmp/ex/u.sock", "u_str", Some("LISTENING")),
            ),
            (
                "unix  2      [ ACC ]     STREAM     LISTENING     66601    11526/python3        @lsnabs",
                ("@lsnabs", "u_str", Some("LISTENING")),
            ),
        ];
        for (text, want) in table {
            let l = line(text);
            assert_eq!(l.tool, Tool::Netstat, "{text}");
            let got = facts(&l);
            assert_eq!((got.0.as_str(), got.1, got.2), *want, "{text}");
            assert_eq!(l.v6only, None, "netstat does not show V6ONLY: {text}");
        }
        let l = line(table[0].0);
        assert_eq!(l.processes[0].pid, Some(11526));
        assert_eq!(l.ipv6, Some(false));
        assert_eq!(line(table[1].0).ipv6, Some(true));
        assert_eq!(line(table[9].0).inode, Some(66600));
        assert!(line("tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN -").notes[1].contains("`-`"));
    }

    #[test]
    fn lsof_lines() {
        // (local as read, protocol, state, IPv6 by the TYPE column)
        type LsofWant = (&'static str, &'static str, State, Option<bool>);
        let table: &[(&str, LsofWant)] = &[
            (
                "python3 11526 root    3u  IPv4  66590      0t0  TCP *:41001 (LISTEN)",
                ("0.0.0.0:41001", "tcp", Some("LISTEN"), Some(false)),
            ),
            (
                "python3 11526 root    4u  IPv6  66591      0t0  TCP *:41002 (LISTEN)",
                ("[::]:41002", "tcp", Some("LISTEN"), Some(true)),
            ),
            (
                "python3 11526 root    6u  IPv4  66593      0t0  UDP *:41004 ",
                ("0.0.0.0:41004", "udp", None, Some(false)),
            ),
            (
                "python3 11526 root    9u  IPv6  66596      0t0  TCP [::1]:41007 (LISTEN)",
                ("[::1]:41007", "tcp", Some("LISTEN"), Some(true)),
            ),
            (
                "python3 11526 root   13u  IPv4  66599      0t0  TCP localhost:ssh (LISTEN)",
                ("localhost:ssh", "tcp", Some("LISTEN"), Some(false)),
            ),
            // the example
            (
                "nc 37725 mark 3u IPv4 0x114b 0t0 TCP *:4444 (LISTEN)",
                ("0.0.0.0:4444", "tcp", Some("LISTEN"), Some(false)),
            ),
            (
                "python3 11526 root   14u  unix 0x000000005d3defd0      0t0 66600 /tmp/ex/u.sock type=STREAM (LISTEN)",
                ("/tmp/ex/u.sock", "u_str", Some("LISTEN"), None),
            ),
            (
                "python3 11526 root   16u  unix 0x000000001e1853db      0t0 66602 /tmp/ex/d.sock type=DGRAM (UNCONNECTED)",
                ("/tmp/ex/d.sock", "u_dgr", Some("UNCONNECTED"), None),
            ),
        ];
        for (text, want) in table {
            let l = line(text);
            assert_eq!(l.tool, Tool::Lsof, "{text}");
            let got = facts(&l);
            assert_eq!((got.0.as_str(), got.1, got.2, l.ipv6), *want, "{text}");
        }
        let l = line(table[0].0);
        assert_eq!(
            l.processes,
            [Process {
                name: "python3".into(),
                pid: Some(11526),
                fd: Some("3u".into())
            }]
        );
        assert!(
            l.notes
                .iter()
                .any(|n| n.contains("TYPE IPv4 makes it 0.0.0.0"))
        );
        assert_eq!(line(table[6].0).inode, Some(66600));
    }

    #[test]
    fn headers_connections_and_the_rest() {
        for h in [
            "Netid State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess",
            "State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess",
            "Active Internet connections (only servers)",
            "Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name",
            "Active UNIX domain sockets (only servers)",
            "Proto RefCnt Flags       Type       State         I-Node   PID/Program name     Path",
            "COMMAND   PID USER   FD   TYPE DEVICE SIZE/OFF NODE NAME",
            "   ",
        ] {
            assert_eq!(read(h, &services), Ok(Read::Header), "{h}");
        }
        // connections and unnamed sockets are lines of the tool, not listeners
        for (text, tool, why) in [
            (
                "ESTAB 0      0          127.0.0.1:42298    127.0.0.1:41001 users:((\"python3\",pid=8964,fd=3))",
                Tool::Ss,
                "state ESTAB",
            ),
            (
                "u_str ESTAB  0      0                   * 783746            * 783745 users:((\"cargo\",pid=7527,fd=5))",
                Tool::Ss,
                "unnamed",
            ),
            (
                "tcp        0      0 127.0.0.1:42298         127.0.0.1:41001         ESTABLISHED 8964/python3",
                Tool::Netstat,
                "state ESTABLISHED",
            ),
            (
                "unix  3      [ ]         STREAM     CONNECTED     783746   7527/cargo           ",
                Tool::Netstat,
                "unnamed",
            ),
            (
                "python3 8964 root    3u  IPv4 788841      0t0  TCP 127.0.0.1:42298->127.0.0.1:41001 (ESTABLISHED)",
                Tool::Lsof,
                "connection to 127.0.0.1:41001",
            ),
            (
                "cargo    3499 root    3u  unix 0x000000006e21d693      0t0 775234 type=STREAM (CONNECTED)",
                Tool::Lsof,
                "unnamed",
            ),
        ] {
            match read(text, &services) {
                Ok(Read::NotListener { tool: t, why: w }) => {
                    assert_eq!(t, tool, "{text}");
                    assert!(w.contains(why), "{text}: {w}");
                }
                other => panic!("`{text}`: {other:?}"),
            }
        }
        // refused, with why
        let refused = |s: &str| read(s, &services).unwrap_err();
        assert!(matches!(
            read(
                "nl    UNCONN 0      0                   0:0                  *",
                &services
            ),
            Ok(Read::NotListener { tool: Tool::Ss, .. })
        ));
        assert!(matches!(
            refused("raw   UNCONN 0      0                   *:ipv6-icmp           *:*"),
            LineError::Unsupported { tool: Tool::Ss, .. }
        ));
        assert!(matches!(
            refused(
                "raw6       0      0 :::58                   :::*                    7           -"
            ),
            LineError::Unsupported {
                tool: Tool::Netstat,
                ..
            }
        ));
        assert_eq!(refused("hello there how are you"), LineError::Unknown);
        // found by the fuzz target: a Netid line with no peer column
        assert!(matches!(
            read("udp\x0bCLOSED\x0b51\x0b4\x0b9y", &services),
            Ok(Read::NotListener { .. })
        ));
        assert!(matches!(
            read("udp UNCONN 51 4 0.0.0.0:9", &services),
            Ok(Read::Line(_))
        ));
        assert!(matches!(
            refused("tcp LISTEN 0 5 127.0.0.1:nosuch 0.0.0.0:*"),
            LineError::Address {
                error: ParseError::UnknownService { .. },
                ..
            }
        ));
        // netstat without -W cuts what does not fit its 23 characters
        let fits =
            "tcp6       0      0 2001:db8:123:567::1:80  :::*                    LISTEN      1/x";
        assert!(
            matches!(line_or_err(fits), Ok(Read::Line(_))),
            "22 characters: not cut"
        );
        let wide =
            "tcp6       0      0 2001:db8:1234:5678::1:80 :::*                    LISTEN      1/x";
        assert!(
            matches!(line_or_err(wide), Ok(Read::Line(_))),
            "24 characters: -W"
        );
        let cut =
            "tcp6       0      0 2001:db8:1234:567::1:80 :::*                    LISTEN      1/x";
        assert!(
            matches!(line_or_err(cut), Err(LineError::MaybeCut { .. })),
            "{cut}"
        );
        let msg = LineError::MaybeCut { text: "x".into() }.to_string();
        assert!(msg.contains("-W"), "{msg}");
    }

    fn line_or_err(s: &str) -> Result<Read, LineError> {
        read(s, &services)
    }

    /// Real lines with tokens replaced, dropped or repeated: never a panic, and the property.
    #[test]
    fn property_on_generated_lines() {
        const LINES: &[&str] = &[
            "tcp LISTEN 0 5 0.0.0.0%lo:41005 0.0.0.0:* users:((\"python3\",pid=1,fd=7)) ino:9 v6only:1",
            "LISTEN 0 511 *:8080 *:* users:((\"node\",pid=35378,fd=18))",
            "u_str LISTEN 0 1 /tmp/ex/u.sock 66600 * 0 users:((\"python3\",pid=11526,fd=14))",
            "tcp6 0 0 :::80 :::* LISTEN 1567/nginx",
            "udp 0 0 0.0.0.0:41004 0.0.0.0:* 0 420323 11526/python3",
            "unix 2 [ ACC ] STREAM LISTENING 66600 11526/python3 /tmp/ex/u.sock",
            "nc 37725 mark 3u IPv4 0x114b 0t0 TCP *:4444 (LISTEN)",
            "python3 1 root 14u unix 0x5d 0t0 66600 /tmp/ex/u.sock type=STREAM (LISTEN)",
        ];
        const PIECES: &[&str] = &[
            "tcp",
            "tcp6",
            "udp",
            "u_dgr",
            "unix",
            "LISTEN",
            "UNCONN",
            "ESTAB",
            "0",
            "*",
            "]",
            "0.0.0.0:80",
            "*:22",
            "[::]:*",
            ":::80",
            "[::]%lo:1",
            "*:ssh",
            "::1:631",
            "localhost:ipp",
            "@a",
            "IPv6",
            "UDP",
            "(LISTEN)",
            "type=DGRAM",
            "-",
            "a->b",
            "é",
            "users:((\"a",
            "v6only:0",
            "1.2.3.4%:1",
            "2001:db8:1234:567::1:80",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut lines_read = 0;
        for _ in 0..100_000 {
            let mut tok: Vec<&str> = LINES[(next() % LINES.len() as u64) as usize]
                .split(' ')
                .collect();
            for _ in 0..1 + next() % 3 {
                let i = (next() % tok.len() as u64) as usize;
                let piece = PIECES[(next() % PIECES.len() as u64) as usize];
                match next() % 4 {
                    0 if tok.len() > 1 => {
                        tok.remove(i);
                    }
                    1 => tok.insert(i, piece),
                    _ => tok[i] = piece,
                }
            }
            let s = tok.join(" ");
            if matches!(read(&s, &services), Ok(Read::Line(_))) {
                lines_read += 1;
            }
            check_properties(&s, &services);
        }
        assert!(
            lines_read > 20_000,
            "only {lines_read} generated lines read"
        );
    }
}
