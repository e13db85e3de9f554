//! `lsn-trace explain ADDRESS...`: what a listening address written in any of the usual
//! notations means, with the same verdicts the tracer prints, plus the special-purpose
//! range it falls in. Needs no privileges and loads nothing into the kernel.
//!
//! Exit status: 0 when every address parsed, 2 when any was rejected (the others are still
//! explained), like a usage error.
use std::{
    io::Write,
    net::{IpAddr, Ipv6Addr, ToSocketAddrs},
    os::unix::fs::{FileTypeExt, MetadataExt},
    process::ExitCode,
};

use lsn_trace::{
    explain_parse::{self, Addr, Host, Parsed, Ports},
    nsaddrs::{self, NsAddrs},
    verdict::{self, Bound, FilePerms, Flag, Ownership, Verdict},
};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Addresses: 127.0.0.1:8080, [::]:22, :::22, *:22, :22, localhost:8080, ::1:8080,
    /// [fe80::1%eth0]:80, 127.0.0.1:3000-4000, /run/x.sock, unix:/run/x.sock, @abstract, or
    /// an address without a port.
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    /// One JSON object per address (JSON Lines).
    #[arg(long)]
    pub json: bool,
    /// Explain as a UDP socket (bound, no listen).
    #[arg(long)]
    pub udp: bool,
    /// Look addresses up in this process's network namespace (default: lsn-trace's own).
    #[arg(long, value_name = "PID")]
    pub netns_of: Option<u32>,
}

/// One way to read an input (an ambiguous input has two; a host name one per address).
#[derive(Serialize, Debug)]
pub struct Reading {
    /// The reading in unambiguous notation.
    pub notation: String,
    /// How the input was read, in words.
    #[serde(rename = "as")]
    pub as_: &'static str,
    /// inet, inet6, unix, or any (`*`, `:PORT`).
    pub family: &'static str,
    pub addr: Option<String>,
    pub scope: Option<String>,
    pub port: Option<u16>,
    /// Last port of a range (`port` is the first).
    pub port_end: Option<u16>,
    pub verdict: Verdict,
    /// Facts about this machine that bear on it (whether the address is assigned here, the
    /// socket file, net.ipv6.bindv6only).
    pub notes: Vec<String>,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub input: String,
    pub ambiguous: bool,
    pub readings: Vec<Reading>,
    pub error: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    let ns = match args.netns_of {
        Some(pid) => nsaddrs::of_pid(pid),
        None => nsaddrs::own(),
    };
    let mut status = ExitCode::SUCCESS;
    let mut out = std::io::stdout().lock();
    for input in &args.addresses {
        let report = explain(input, &ns, args.udp);
        if report.error.is_some() {
            status = ExitCode::from(2);
        }
        let text = if args.json {
            serde_json::to_string(&report).expect("serializable") + "\n"
        } else {
            human(&report, &ns)
        };
        if out.write_all(text.as_bytes()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    status
}

pub fn explain(input: &str, ns: &NsAddrs, udp: bool) -> Report {
    let mut report = Report {
        input: input.into(),
        ambiguous: false,
        readings: Vec::new(),
        error: None,
    };
    match explain_parse::parse(input) {
        Err(e) => report.error = Some(e.to_string()),
        Ok(Parsed::One(a)) => match readings(&a, "written", ns, udp) {
            Ok(r) => report.readings = r,
            Err(e) => report.error = Some(e),
        },
        Ok(Parsed::Ambiguous {
            as_address,
            as_host_port,
            ..
        }) => {
            report.ambiguous = true;
            for (a, how) in [
                (as_address, "IPv6 address without a port"),
                (
                    as_host_port,
                    "ADDRESS:PORT without brackets (netstat style)",
                ),
            ] {
                report
                    .readings
                    .extend(readings(&a, how, ns, udp).unwrap_or_default());
            }
        }
    }
    report
}

fn readings(a: &Addr, how: &'static str, ns: &NsAddrs, udp: bool) -> Result<Vec<Reading>, String> {
    let protocol = Some(if udp { "udp" } else { "tcp" }.to_string());
    let (lo, hi) = match a {
        Addr::Inet { ports, .. } => match *ports {
            Ports::None => (None, None),
            Ports::One(p) => (Some(p), None),
            Ports::Range(lo, hi) => (Some(lo), Some(hi)),
        },
        _ => (None, None),
    };
    let one = |bound: Bound, family, addr: Option<String>, scope, mut notes: Vec<String>| {
        let mut v = verdict::classify(&bound);
        if let (Some(lo), Some(hi)) = (lo, hi) {
            port_range(&mut v, lo, hi, bound.unprivileged_port_start);
        }
        if let verdict::Addr::Ip { ip, .. } = &bound.addr {
            notes.extend(ip_notes(*ip, ns, &bound));
        }
        if ns.note.is_some() {
            notes.extend(ns.note.clone());
        }
        Reading {
            notation: a.to_string(),
            as_: how,
            family,
            addr,
            scope,
            port: lo,
            port_end: hi,
            verdict: v,
            notes,
        }
    };
    let ip_bound = |ip: IpAddr, scope: Option<String>, v6only| Bound {
        protocol: protocol.clone(),
        v6only,
        unprivileged_port_start: ns.unprivileged_port_start,
        owner: owner(ip, ns),
        ..Bound::new(verdict::Addr::Ip { ip, scope }, lo)
    };
    Ok(match a {
        Addr::UnixPath(path) => {
            let (perms, notes) = socket_file(path);
            let b = Bound {
                perms,
                ..Bound::new(verdict::Addr::UnixPath { path: path.clone() }, None)
            };
            vec![one(b, "unix", Some(path.clone()), None, notes)]
        }
        Addr::UnixAbstract(name) => {
            let b = Bound::new(verdict::Addr::UnixAbstract { name: name.clone() }, None);
            vec![one(b, "unix", Some(format!("@{name}")), None, vec![])]
        }
        Addr::Inet {
            host: Host::Ip { ip, scope },
            ..
        } => {
            let family = if ip.is_ipv4() { "inet" } else { "inet6" };
            let b = ip_bound(*ip, scope.clone(), None);
            vec![one(b, family, Some(ip.to_string()), scope.clone(), vec![])]
        }
        Addr::Inet {
            host: Host::Any, ..
        } => {
            let b = ip_bound(IpAddr::V6(Ipv6Addr::UNSPECIFIED), None, Some(false));
            let note = "`*` is how ss shows a dual-stack [::] socket (V6ONLY=0); a program \
                        given `:PORT` usually opens one such socket (Go, Node), some open \
                        0.0.0.0 and [::] separately"
                .to_string();
            vec![one(b, "any", None, None, vec![note])]
        }
        Addr::Inet {
            host: Host::Name(name),
            ..
        } => {
            // What the program's getaddrinfo() would get here (hosts file, then DNS).
            let ips = resolve(name)
                .map_err(|e| format!("`{name}` is a host name that does not resolve here: {e}"))?;
            ips.into_iter()
                .map(|ip| {
                    let family = if ip.is_ipv4() { "inet" } else { "inet6" };
                    let note = format!(
                        "{name} resolves to {ip} here: a program given this name binds the \
                         address(es) its resolver returns, often only the first"
                    );
                    one(
                        ip_bound(ip, None, None),
                        family,
                        Some(ip.to_string()),
                        None,
                        vec![note],
                    )
                })
                .collect()
        }
    })
}

fn resolve(name: &str) -> std::io::Result<Vec<IpAddr>> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for sa in (name, 0).to_socket_addrs()? {
        if !ips.contains(&sa.ip()) {
            ips.push(sa.ip());
        }
    }
    Ok(ips)
}

/// Only a found owner is an input to the verdict: whether an address is assigned on the
/// machine running `explain` is a note, not what the notation means.
fn owner(ip: IpAddr, ns: &NsAddrs) -> Option<Ownership> {
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return None;
    }
    match ns.owner(ip) {
        o @ Ownership::Iface(_) => Some(o),
        Ownership::NotAssigned => None,
    }
}

fn ip_notes(ip: IpAddr, ns: &NsAddrs, b: &Bound) -> Vec<String> {
    let mut notes = Vec::new();
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_ipv6() && ip.is_unspecified() && b.v6only.is_none() {
        match std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only") {
            Ok(v) if v.trim() == "0" => notes.push(
                "here net.ipv6.bindv6only=0: a [::] socket is dual-stack unless the program \
                 sets IPV6_V6ONLY=1"
                    .into(),
            ),
            Ok(v) if v.trim() == "1" => notes.push(
                "here net.ipv6.bindv6only=1: a [::] socket is IPv6 only unless the program \
                 sets IPV6_V6ONLY=0"
                    .into(),
            ),
            _ => {}
        }
    }
    if !ip.is_unspecified()
        && !ip.is_multicast()
        && ip != IpAddr::V4(std::net::Ipv4Addr::BROADCAST)
        && ns.owner(ip) == Ownership::NotAssigned
    {
        let list = ns.list();
        notes.push(format!(
            "{ip} is not assigned to any interface here, so binding it fails with \
             EADDRNOTAVAIL (unless IP_FREEBIND, IP_TRANSPARENT or ip_nonlocal_bind); \
             assigned: {}",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        ));
    }
    notes
}

fn port_range(v: &mut Verdict, lo: u16, hi: u16, start: Option<u32>) {
    let start = start.unwrap_or(1024);
    v.flags
        .retain(|f| *f != Flag::PrivilegedPort && *f != Flag::EphemeralPort);
    // classify() saw only the first port: say it for the range instead.
    if let Some(i) = v.sentence.find("; port ") {
        v.sentence.truncate(i);
    }
    v.sentence.push_str(&format!(
        "; ports {lo}-{hi} ({} ports): one socket per port, bind(2) has no ranges",
        u32::from(hi) - u32::from(lo) + 1
    ));
    if u32::from(lo) < start {
        v.flags.push(Flag::PrivilegedPort);
        v.sentence.push_str(&format!(
            "; ports below {start} (ip_unprivileged_port_start) need root or \
             CAP_NET_BIND_SERVICE"
        ));
    }
}

/// The socket file's mode and owner, and what the path holds now.
fn socket_file(path: &str) -> (Option<FilePerms>, Vec<String>) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => (
            Some(FilePerms {
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
            }),
            vec![format!("{path} exists and is a socket")],
        ),
        Ok(_) => (
            None,
            vec![format!(
                "{path} exists and is not a socket: bind(2) there fails with EADDRINUSE"
            )],
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            None,
            vec![format!(
                "{path} does not exist now: bind(2) creates it (with the umask's permissions); \
                 a leftover file makes bind fail with EADDRINUSE"
            )],
        ),
        Err(e) => (None, vec![format!("{path}: {e}")]),
    }
}

fn human(r: &Report, _ns: &NsAddrs) -> String {
    let mut s = String::new();
    if let Some(e) = &r.error {
        say!("lsn-trace: explain: {e}");
        return s;
    }
    if r.ambiguous {
        s.push_str(&format!(
            "{} is ambiguous: write [{}] for an address without a port, or {} for a port\n",
            r.input,
            r.readings
                .first()
                .and_then(|x| x.addr.clone())
                .unwrap_or_default(),
            r.readings
                .last()
                .map(|x| x.notation.clone())
                .unwrap_or_default()
        ));
    }
    for x in &r.readings {
        let head = if r.ambiguous {
            format!("as {}: {}", x.as_, x.notation)
        } else {
            x.notation.clone()
        };
        s.push_str(&format!(
            "{head}\n  {}: {}\n",
            x.verdict.kind.as_str(),
            x.verdict.sentence
        ));
        if !x.verdict.flags.is_empty() {
            let flags: Vec<&str> = x.verdict.flags.iter().map(|f| f.as_str()).collect();
            s.push_str(&format!("  flags: {}\n", flags.join(", ")));
        }
        if let Some(range) = x.verdict.range {
            s.push_str(&format!(
                "  range: {} {} ({})\n",
                range.prefix, range.name, range.rfc
            ));
        }
        for n in &x.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> NsAddrs {
        nsaddrs::own()
    }

    /// The seed's notations through the whole explain path: kind and range per reading.
    #[test]
    fn table() {
        let ns = ns();
        type Want = &'static [(&'static str, Option<&'static str>)];
        let table: &[(&str, Want)] = &[
            ("127.0.0.1:8080", &[("loopback", Some("127.0.0.0/8"))]),
            ("[::]:22", &[("ipv6-any", Some("::/128"))]),
            (":::22", &[("ipv6-any", Some("::/128"))]),
            ("*:22", &[("dual-stack", Some("::/128"))]),
            (":22", &[("dual-stack", Some("::/128"))]),
            ("0.0.0.0:80", &[("all-ipv4", Some("0.0.0.0/32"))]),
            ("[fe80::1%eth0]:80", &[("link-local", Some("fe80::/10"))]),
            ("127.0.0.1:3000-4000", &[("loopback", Some("127.0.0.0/8"))]),
            ("/run/x.sock", &[("unix-path", None)]),
            ("@abstract", &[("unix-abstract", None)]),
            ("192.0.2.1", &[("specific", Some("192.0.2.0/24"))]),
            ("[2001:db8::1]:443", &[("specific", Some("2001:db8::/32"))]),
            (
                "[::ffff:10.0.0.1]:80",
                &[("ipv4-mapped", Some("::ffff:0:0/96"))],
            ),
            (
                "::1:8080",
                &[("specific", Some("::/96")), ("loopback", Some("::1/128"))],
            ),
        ];
        for (input, want) in table {
            let r = explain(input, &ns, false);
            assert_eq!(r.error, None, "{input}");
            let got: Vec<(&str, Option<&str>)> = r
                .readings
                .iter()
                .map(|x| (x.verdict.kind.as_str(), x.verdict.range.map(|r| r.prefix)))
                .collect();
            assert_eq!(&got, want, "{input}");
            assert_eq!(r.ambiguous, *input == "::1:8080");
        }
        // localhost resolves to loopback addresses only (RFC 6761), whatever the hosts file
        let r = explain("localhost:8080", &ns, false);
        assert!(!r.readings.is_empty());
        assert!(
            r.readings
                .iter()
                .all(|x| x.verdict.kind.as_str() == "loopback")
        );
        // a range: flags and words for the range, not for its first port
        let r = explain("0.0.0.0:1000-2000", &ns, false);
        let v = &r.readings[0].verdict;
        assert_eq!(v.flags, [Flag::PrivilegedPort]);
        assert!(
            v.sentence.contains("ports 1000-2000 (1001 ports)"),
            "{}",
            v.sentence
        );
        assert!(!v.sentence.contains("port 1000 is"), "{}", v.sentence);
        // an address this machine does not have: said in a note, with the ones it has
        let r = explain("198.51.100.1:80", &ns, false);
        assert!(
            r.readings[0]
                .notes
                .iter()
                .any(|n| n.contains("EADDRNOTAVAIL") && n.contains("lo: 127.0.0.1/8")),
            "{:?}",
            r.readings[0].notes
        );
        // and garbage is an error, not a reading
        let r = explain("127.1:80", &ns, false);
        assert!(r.readings.is_empty());
        assert!(r.error.unwrap().contains("means 127.0.0.1"));
    }

    #[test]
    fn json_shape() {
        let r = explain("[::]:22", &ns(), true);
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["input"], "[::]:22");
        assert_eq!(j["ambiguous"], false);
        assert_eq!(j["error"], serde_json::Value::Null);
        let x = &j["readings"][0];
        assert_eq!(x["family"], "inet6");
        assert_eq!(x["addr"], "::");
        assert_eq!(x["port"], 22);
        assert_eq!(x["verdict"]["kind"], "ipv6-any");
        assert_eq!(x["verdict"]["flags"][0], "privileged-port");
        assert_eq!(x["verdict"]["range"]["rfc"], "RFC 4291");
        assert!(
            x["verdict"]["sentence"]
                .as_str()
                .unwrap()
                .contains("UDP: receives datagrams")
        );
    }
}
