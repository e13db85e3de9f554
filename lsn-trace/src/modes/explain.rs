//! `lsn-trace explain ADDRESS...`: what a listening address written in any of the usual
//! notations means, with the same verdicts the tracer prints, plus the special-purpose
//! range it falls in. Needs no privileges and loads nothing into the kernel.
//!
//! Exit status: 0 when every address parsed, 2 when any was rejected (the others are still
//! explained), like a usage error.
use std::{
    io::{BufRead, Write},
    net::{IpAddr, Ipv6Addr, ToSocketAddrs},
    os::unix::fs::{FileTypeExt, MetadataExt},
    process::ExitCode,
};

use lsn_trace::{
    explain_line::{self, Line, Read},
    explain_parse::{self, Addr, Host, Parsed, Pasted, Ports},
    nsaddrs::{self, NsAddrs},
    services::Services,
    verdict::{self, Bound, FilePerms, Flag, Ownership, Verdict},
};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Addresses: 127.0.0.1:8080, [::]:22, :::22, *:22, :22, localhost:8080, ::1:8080,
    /// [fe80::1%eth0]:80, 127.0.0.1:3000-4000, /run/x.sock, unix:/run/x.sock, @abstract, or
    /// an address without a port; as ss, netstat and lsof print them (127.0.0.53%lo:53,
    /// *:ssh, 0.0.0.0:*); a whole line of their output; or `-`: read lines from standard
    /// input (`ss -tulnp | lsn-trace explain -`).
    #[arg(required = true, value_name = "ADDRESS|LINE|-")]
    pub addresses: Vec<String>,
    /// One JSON object per address or line (JSON Lines).
    #[arg(long)]
    pub json: bool,
    /// Explain as a UDP socket (bound, no listen); a line's protocol column wins.
    #[arg(long)]
    pub udp: bool,
    /// Look addresses up in this process's network namespace (default: lsn-trace's own).
    #[arg(long, value_name = "PID")]
    pub netns_of: Option<u32>,
    /// One address per input, strict like inet_pton: no %device on IPv4, no service names,
    /// no `*` port, no tool lines.
    #[arg(long)]
    pub strict: bool,
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
    /// SO_BINDTODEVICE, as ss writes it after the address (`127.0.0.53%lo`).
    pub device: Option<String>,
    /// The port was written as a service name.
    pub service: Option<Service>,
    pub verdict: Verdict,
    /// Facts about this machine that bear on it (whether the address is assigned here, the
    /// socket file, net.ipv6.bindv6only), and what the notation said.
    pub notes: Vec<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Service {
    pub name: String,
    pub port: u16,
    pub protocol: String,
    /// `/etc/services`, or the built-in table where it is absent.
    pub source: &'static str,
}

/// What a line of ss, netstat or lsof output said besides its local address.
#[derive(Serialize, Debug)]
pub struct LineFacts {
    /// ss Netid notation: tcp, udp, u_str, u_dgr, …
    pub protocol: String,
    pub state: Option<String>,
    /// The local address column as printed.
    pub local: String,
    pub processes: Vec<Process>,
    pub inode: Option<u64>,
}

#[derive(Serialize, Debug)]
pub struct Process {
    pub name: String,
    pub pid: Option<u32>,
    pub fd: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub input: String,
    /// What was read: `address`, or the tool whose output line it is: `ss`, `netstat`, `lsof`.
    pub format: &'static str,
    pub line: Option<LineFacts>,
    pub ambiguous: bool,
    pub readings: Vec<Reading>,
    pub error: Option<String>,
    /// A line that is not a listener (a connection, a header): why it was not explained.
    pub skipped: Option<String>,
}

impl Report {
    fn new(input: &str) -> Report {
        Report {
            input: input.into(),
            format: "address",
            line: None,
            ambiguous: false,
            readings: Vec::new(),
            error: None,
            skipped: None,
        }
    }
}

/// What every input is explained with.
struct Context {
    ns: NsAddrs,
    services: Services,
    udp: bool,
    strict: bool,
}

/// How many inputs of standard input went which way (said at the end: nothing is dropped
/// silently).
#[derive(Default)]
struct Tally {
    lines: usize,
    headers: usize,
    explained: usize,
    skipped: usize,
    refused: usize,
}

pub fn run(args: Args) -> ExitCode {
    let ctx = Context {
        ns: match args.netns_of {
            Some(pid) => nsaddrs::of_pid(pid),
            None => nsaddrs::own(),
        },
        services: Services::system(),
        udp: args.udp,
        strict: args.strict,
    };
    let mut status = ExitCode::SUCCESS;
    let mut out = std::io::stdout().lock();
    let mut emit = |report: &Report| -> bool {
        if report.error.is_some() {
            status = ExitCode::from(2);
        }
        let text = if args.json {
            serde_json::to_string(report).expect("serializable") + "\n"
        } else {
            human(report)
        };
        out.write_all(text.as_bytes()).is_ok()
    };
    for input in &args.addresses {
        if input != "-" {
            if !emit(&explain_input(input, &ctx)) {
                return ExitCode::FAILURE;
            }
            continue;
        }
        let mut tally = Tally::default();
        for line in std::io::stdin().lock().split(b'\n') {
            let Ok(line) = line else {
                say!("lsn-trace: explain: cannot read standard input");
                return ExitCode::FAILURE;
            };
            let line = String::from_utf8_lossy(&line);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            tally.lines += 1;
            // Column headers and blank lines are part of the table's shape, not data.
            if line.trim().is_empty() {
                tally.headers += 1;
                continue;
            }
            let report = explain_input(line, &ctx);
            if report.skipped.as_deref() == Some(HEADER) {
                tally.headers += 1;
                continue;
            }
            match (&report.error, &report.skipped) {
                (Some(_), _) => tally.refused += 1,
                (None, Some(_)) => tally.skipped += 1,
                (None, None) => tally.explained += 1,
            }
            // Human output lists listeners; JSON has a record for each skipped line too.
            if (args.json || report.skipped.is_none()) && !emit(&report) {
                return ExitCode::FAILURE;
            }
        }
        if !args.json {
            // After what it counts, on a terminal that shows both streams.
            let _ = std::io::stdout().flush();
            say!(
                "lsn-trace: explain: {} lines read from standard input: {} explained, {} \
                 headers or blank, {} not listeners (skipped; --json lists them), {} refused",
                tally.lines,
                tally.explained,
                tally.headers,
                tally.skipped,
                tally.refused
            );
        }
    }
    status
}

const HEADER: &str = "a column header or title line";

/// One argument or line of standard input.
fn explain_input(input: &str, ctx: &Context) -> Report {
    if ctx.strict {
        return explain(input, &ctx.ns, ctx.udp);
    }
    let mut report = Report::new(input);
    let text = input.trim();
    if !text.contains(char::is_whitespace) {
        let proto = if ctx.udp { "udp" } else { "tcp" };
        match explain_parse::parse_pasted(text, false, &|n| service_port(ctx, n, proto)) {
            Ok(p) => fill(&mut report, &p, &Given::new(ctx, proto), &ctx.ns),
            Err(e) => report.error = Some(with_services_source(e, ctx)),
        }
        return report;
    }
    if text.chars().any(|c| c.is_control() && c != '\t') {
        report.error = Some(explain_parse::ParseError::Junk(text.into()).to_string());
        return report;
    }
    match explain_line::read(text, &|n, p| service_port(ctx, n, p)) {
        Ok(Read::Header) => report.skipped = Some(HEADER.into()),
        Ok(Read::NotListener { tool, why }) => {
            report.format = tool.as_str();
            report.skipped = Some(format!("{why}: not a listener"));
        }
        Ok(Read::Line(line)) => {
            report.format = line.tool.as_str();
            let mut given = Given::new(ctx, &line.protocol);
            given.how = "local address of the line";
            given.line = Some(&line);
            fill(&mut report, &line.local, &given, &ctx.ns);
            report.line = Some(LineFacts {
                protocol: line.protocol.clone(),
                state: line.state.clone(),
                local: line.local_text.clone(),
                processes: line
                    .processes
                    .iter()
                    .map(|p| Process {
                        name: p.name.clone(),
                        pid: p.pid,
                        fd: p.fd.clone(),
                    })
                    .collect(),
                inode: line.inode,
            });
        }
        Err(e) => {
            let source = match &e {
                explain_line::LineError::Address {
                    error: explain_parse::ParseError::UnknownService { .. },
                    ..
                } => format!(" ({})", ctx.services.source),
                _ => String::new(),
            };
            report.error = Some(format!("`{text}`: {e}{source}"));
        }
    }
    report
}

fn service_port(ctx: &Context, name: &str, protocol: &str) -> Option<u16> {
    ctx.services.port(name, protocol).map(|f| f.port)
}

fn with_services_source(e: explain_parse::ParseError, ctx: &Context) -> String {
    match e {
        explain_parse::ParseError::UnknownService { .. } => {
            format!("{e} ({})", ctx.services.source)
        }
        e => e.to_string(),
    }
}

/// What the input says besides the address: how it was read, the protocol, the tool line.
#[derive(Clone, Copy)]
struct Given<'a> {
    how: &'static str,
    protocol: &'a str,
    line: Option<&'a Line>,
    services: &'a Services,
}

impl<'a> Given<'a> {
    fn new(ctx: &'a Context, protocol: &'a str) -> Given<'a> {
        Given {
            how: "written",
            protocol,
            line: None,
            services: &ctx.services,
        }
    }
}

/// The readings of a pasted address (two for an ambiguous one).
fn fill(report: &mut Report, p: &Pasted, given: &Given, ns: &NsAddrs) {
    match &p.parsed {
        Parsed::One(a) => match readings(a, p, given, ns) {
            Ok(r) => report.readings = r,
            Err(e) => report.error = Some(e),
        },
        Parsed::Ambiguous {
            as_address,
            as_host_port,
            ..
        } => {
            report.ambiguous = true;
            for (a, how) in [
                (as_address, "IPv6 address without a port"),
                (
                    as_host_port,
                    "ADDRESS:PORT without brackets (netstat style)",
                ),
            ] {
                let given = Given { how, ..*given };
                report
                    .readings
                    .extend(readings(a, p, &given, ns).unwrap_or_default());
            }
        }
    }
}

/// The strict reading of one address (`--strict`): inet_pton's rules, no service names.
pub fn explain(input: &str, ns: &NsAddrs, udp: bool) -> Report {
    let mut report = Report::new(input);
    let no_services = Services {
        entries: Vec::new(),
        source: "",
    };
    let given = Given {
        how: "written",
        protocol: if udp { "udp" } else { "tcp" },
        line: None,
        services: &no_services,
    };
    match explain_parse::parse(input) {
        Err(e) => report.error = Some(e.to_string()),
        Ok(parsed) => fill(&mut report, &parsed.into(), &given, ns),
    }
    report
}

fn readings(a: &Addr, p: &Pasted, given: &Given, ns: &NsAddrs) -> Result<Vec<Reading>, String> {
    let protocol = Some(given.protocol.to_string());
    let (lo, hi) = match a {
        Addr::Inet { ports, .. } => match *ports {
            Ports::None => (None, None),
            Ports::One(p) => (Some(p), None),
            Ports::Range(lo, hi) => (Some(lo), Some(hi)),
        },
        _ => (None, None),
    };
    let line = given.line;
    // What the notation said, for every reading of it.
    let mut said = Vec::new();
    let service = p.service.as_ref().and_then(|name| {
        let f = given.services.port(name, given.protocol)?;
        said.push(format!(
            "port `{name}` read as {}/{} from {}",
            f.port, f.protocol, given.services.source
        ));
        Some(Service {
            name: name.clone(),
            port: f.port,
            protocol: f.protocol,
            source: given.services.source,
        })
    });
    if let Some(d) = &p.device {
        said.push(format!(
            "%{d}: the socket is bound to interface {d} (SO_BINDTODEVICE), as ss writes it"
        ));
    }
    if p.any_port {
        said.push(
            "port `*`: any port — what ss and netstat print in the peer column of a listener, \
             which has no peer yet; the local column says where it listens"
                .into(),
        );
    }
    let v6only = line.and_then(|l| l.v6only.as_ref());
    if let Some(v) = v6only {
        said.push(format!("V6ONLY={}: {}", u8::from(v.value), v.why));
    }
    said.extend(line.iter().flat_map(|l| l.notes.iter().cloned()));
    let one = |bound: Bound, family, addr: Option<String>, scope, mut notes: Vec<String>| {
        let mut v = verdict::classify(&bound);
        if let (Some(lo), Some(hi)) = (lo, hi) {
            port_range(&mut v, lo, hi, bound.unprivileged_port_start);
        }
        if let verdict::Addr::Ip { ip, .. } = &bound.addr {
            notes.extend(ip_notes(*ip, ns, &bound));
        }
        notes.extend(said.iter().cloned());
        if ns.note.is_some() {
            notes.extend(ns.note.clone());
        }
        Reading {
            notation: notation(a, p),
            as_: given.how,
            family,
            addr,
            scope,
            port: lo,
            port_end: hi,
            device: p.device.clone(),
            service: service.clone(),
            verdict: v,
            notes,
        }
    };
    let ip_bound = |ip: IpAddr, scope: Option<String>, v6only: Option<bool>| Bound {
        protocol: protocol.clone().map(Into::into),
        v6only: if ip.is_ipv6() { v6only } else { None },
        device: p.device.clone(),
        unprivileged_port_start: ns.unprivileged_port_start,
        owner: owner(ip, ns),
        ..Bound::new(verdict::Addr::Ip { ip, scope }, lo)
    };
    let unix_protocol: Option<std::borrow::Cow<'static, str>> = protocol
        .clone()
        .filter(|p| p.starts_with("u_"))
        .map(Into::into);
    Ok(match a {
        Addr::UnixPath(path) => {
            let (perms, notes) = socket_file(path);
            let b = Bound {
                perms,
                protocol: unix_protocol,
                ..Bound::new(verdict::Addr::UnixPath { path: path.clone() }, None)
            };
            vec![one(b, "unix", Some(path.clone()), None, notes)]
        }
        Addr::UnixAbstract(name) => {
            let b = Bound {
                protocol: unix_protocol,
                ..Bound::new(verdict::Addr::UnixAbstract { name: name.clone() }, None)
            };
            vec![one(b, "unix", Some(format!("@{name}")), None, vec![])]
        }
        Addr::Inet {
            host: Host::Ip { ip, scope },
            ..
        } => {
            let family = if ip.is_ipv4() { "inet" } else { "inet6" };
            let b = ip_bound(*ip, scope.clone(), v6only.map(|v| v.value));
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
            // What the program's getaddrinfo() would get here (hosts file, then DNS); a
            // line that says its family keeps that family's addresses.
            let ips = resolve(name)
                .map_err(|e| format!("`{name}` is a host name that does not resolve here: {e}"))?;
            let family_ok = |ip: &IpAddr| {
                line.and_then(|l| l.ipv6)
                    .is_none_or(|v6| ip.is_ipv6() == v6)
            };
            let ips: Vec<IpAddr> = ips.into_iter().filter(family_ok).collect();
            if ips.is_empty() {
                return Err(format!(
                    "`{name}` resolves here to no address of the line's family"
                ));
            }
            ips.into_iter()
                .map(|ip| {
                    let family = if ip.is_ipv4() { "inet" } else { "inet6" };
                    let note = format!(
                        "{name} resolves to {ip} here: a program given this name binds the \
                         address(es) its resolver returns, often only the first"
                    );
                    one(
                        ip_bound(ip, None, v6only.map(|v| v.value)),
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

/// The reading in unambiguous notation, with the device (ss's notation) when there is one.
fn notation(a: &Addr, p: &Pasted) -> String {
    let Some(dev) = &p.device else {
        return a.to_string();
    };
    let shown = Pasted {
        parsed: Parsed::One(a.clone()),
        device: Some(dev.clone()),
        service: None,
        any_port: false,
    };
    shown.to_string()
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
        match lsn_trace::procfs::sysctl("net/ipv6/bindv6only") {
            Some(0) => notes.push(
                "here net.ipv6.bindv6only=0: a [::] socket is dual-stack unless the program \
                 sets IPV6_V6ONLY=1"
                    .into(),
            ),
            Some(1) => notes.push(
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

fn human(r: &Report) -> String {
    let mut s = String::new();
    if let Some(e) = &r.error {
        say!("lsn-trace: explain: {e}");
        return s;
    }
    if let Some(why) = &r.skipped {
        say!("lsn-trace: explain: skipped `{}`: {why}", r.input.trim());
        return s;
    }
    if let Some(l) = &r.line {
        s.push_str(&format!("{} line: {}", r.format, l.protocol));
        if let Some(state) = &l.state {
            s.push_str(&format!(" {state}"));
        }
        s.push_str(&format!(" {}", l.local));
        let procs: Vec<String> = l
            .processes
            .iter()
            .map(|p| {
                let mut ids = Vec::new();
                ids.extend(p.pid.map(|pid| format!("pid {pid}")));
                ids.extend(p.fd.as_ref().map(|fd| format!("fd {fd}")));
                match ids.is_empty() {
                    true => p.name.clone(),
                    false => format!("{} ({})", p.name, ids.join(", ")),
                }
            })
            .collect();
        if !procs.is_empty() {
            s.push_str(&format!(", process {}", procs.join(", ")));
        }
        s.push('\n');
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

    fn ctx() -> Context {
        Context {
            ns: ns(),
            services: Services::built_in(),
            udp: false,
            strict: false,
        }
    }

    /// kind, flags, notes of the one reading of a pasted input.
    fn one(input: &str) -> (Report, String, Vec<&'static str>, String) {
        let r = explain_input(input, &ctx());
        assert_eq!(r.error, None, "{input}");
        assert_eq!(r.readings.len(), 1, "{input}: {:?}", r.readings);
        let x = &r.readings[0];
        let kind = x.verdict.kind.as_str().to_string();
        let flags = x.verdict.flags.iter().map(|f| f.as_str()).collect();
        let notes = x.notes.join(" | ");
        (r, kind, flags, notes)
    }

    #[test]
    fn pasted_addresses() {
        // ss's device suffix: SO_BINDTODEVICE, on a wildcard the kind, else a flag (as the
        // tracer says it for such a socket)
        let (r, kind, flags, notes) = one("0.0.0.0%eth0:68");
        assert_eq!(
            (kind.as_str(), flags),
            ("device-bound", vec!["device-bound", "privileged-port"])
        );
        assert_eq!(r.readings[0].device.as_deref(), Some("eth0"));
        assert_eq!(r.readings[0].notation, "0.0.0.0%eth0:68");
        assert!(notes.contains("SO_BINDTODEVICE"), "{notes}");
        let (_, kind, flags, _) = one("127.0.0.53%lo:53");
        assert_eq!(
            (kind.as_str(), flags),
            ("loopback", vec!["device-bound", "privileged-port"])
        );
        let (_, kind, _, _) = one("*%lo:80");
        assert_eq!(kind, "device-bound");
        // service names: the port read, and from where
        let (r, kind, flags, notes) = one("*:ssh");
        assert_eq!(
            (kind.as_str(), flags),
            ("dual-stack", vec!["privileged-port"])
        );
        let x = &r.readings[0];
        assert_eq!(x.port, Some(22));
        let svc = x.service.as_ref().unwrap();
        assert_eq!(
            (svc.name.as_str(), svc.port, svc.protocol.as_str()),
            ("ssh", 22, "tcp")
        );
        assert_eq!(svc.source, lsn_trace::services::BUILT_IN_NAME);
        assert!(
            notes.contains("port `ssh` read as 22/tcp from lsn-trace's built-in"),
            "{notes}"
        );
        let (r, ..) = one("[::]:http");
        assert_eq!(r.readings[0].port, Some(80));
        // the peer column
        let (r, kind, _, notes) = one("0.0.0.0:*");
        assert_eq!(kind, "all-ipv4");
        assert_eq!(r.readings[0].port, None);
        assert!(notes.contains("port `*`: any port"), "{notes}");
        // refused, with why; --strict keeps inet_pton's rules
        let r = explain_input("127.0.0.1:nosuch", &ctx());
        let e = r.error.unwrap();
        assert!(
            e.contains("`nosuch` is not a port") && e.contains("built-in"),
            "{e}"
        );
        let strict = Context {
            strict: true,
            ..ctx()
        };
        for input in [
            "127.0.0.53%lo:53",
            "*:ssh",
            "0.0.0.0:*",
            "tcp6 0 0 :::80 :::* LISTEN 1/x",
        ] {
            assert!(explain_input(input, &strict).error.is_some(), "{input}");
        }
    }

    #[test]
    fn pasted_lines() {
        let (r, kind, _, notes) = one(
            "udp   UNCONN 0      0      127.0.0.53%lo:53        0.0.0.0:*    users:((\"systemd-resolve\",pid=612,fd=13))",
        );
        assert_eq!((r.format, kind.as_str()), ("ss", "loopback"));
        assert!(
            r.readings[0].verdict.sentence.contains("UDP"),
            "the line's protocol"
        );
        assert!(notes.contains("SO_BINDTODEVICE"), "{notes}");
        let line = r.line.unwrap();
        assert_eq!(
            (line.protocol.as_str(), line.state.as_deref()),
            ("udp", Some("UNCONN"))
        );
        assert_eq!(line.processes[0].name, "systemd-resolve");
        let (r, kind, ..) = one("tcp   LISTEN 0      5               [::]:41003         [::]:*");
        assert_eq!((r.format, kind.as_str()), ("ss", "ipv6-only-any"));
        let (r, kind, _, notes) = one("tcp6 0 0 :::80 :::* LISTEN 1567/nginx");
        assert_eq!((r.format, kind.as_str()), ("netstat", "ipv6-any"));
        assert!(notes.contains("net.ipv6.bindv6only"), "{notes}");
        let (r, kind, ..) = one("nc 37725 mark 3u IPv4 0x114b 0t0 TCP *:4444 (LISTEN)");
        assert_eq!((r.format, kind.as_str()), ("lsof", "all-ipv4"));
        let r = explain_input("ESTAB 0 0 127.0.0.1:42298 127.0.0.1:41001", &ctx());
        assert_eq!((r.format, r.error), ("ss", None));
        assert!(r.skipped.unwrap().contains("not a listener"));
        assert!(r.readings.is_empty());
        let r = explain_input("tcp LISTEN 0 5 \u{1b}[31m:80 *:*", &ctx());
        assert!(
            r.error.unwrap().contains("\\u{1b}"),
            "control characters escaped"
        );
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
