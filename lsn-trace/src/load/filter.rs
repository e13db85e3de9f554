//! `--port`, `--pid`, `--comm`, `--uid`, `--family`, `--proto`, `--failed`, `--netns`:
//! parsed here into the settings and sets the eBPF programs filter with (see
//! lsn-trace-ebpf/src/filter.rs). Values of one kind are ORed, kinds are ANDed.
use std::os::unix::fs::MetadataExt;

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{HashMap, MapData},
};
use lsn_trace_common::{self as wire, TASK_COMM_LEN, proto};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct FilterArgs {
    /// Only events about this port: the port asked for, or the one the socket holds
    /// (repeat or comma-separate for several).
    #[arg(long, value_name = "PORT", value_delimiter = ',', value_parser = parse_port)]
    pub port: Vec<u16>,
    /// Only events of this process id (tgid; repeatable).
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pub pid: Vec<u32>,
    /// Only events of processes with this name (as in `ps -o comm`, at most 15 bytes;
    /// repeatable).
    #[arg(long, value_name = "NAME")]
    pub comm: Vec<String>,
    /// Only events of this user: a name or a uid (repeatable).
    #[arg(long, value_name = "USER", value_delimiter = ',')]
    pub uid: Vec<String>,
    /// Only this address family: inet (4, ipv4), inet6 (6, ipv6), unix, or a number
    /// (repeatable). Without it the human output leaves out the families that can never
    /// listen (netlink 16, packet 17 …); --json shows them.
    #[arg(long, value_name = "FAMILY", value_delimiter = ',', value_parser = parse_family)]
    pub family: Vec<u16>,
    /// Only this protocol, as ss names it: tcp, udp, sctp, mptcp, udplite, raw, icmp, unix
    /// (all of u_str, u_dgr, u_seq), u_str, u_dgr, u_seq (repeatable).
    #[arg(long, value_name = "PROTO", value_delimiter = ',', value_parser = parse_proto)]
    pub proto: Vec<u32>,
    /// Only calls that failed.
    #[arg(long)]
    pub failed: bool,
    /// Only this network namespace: its inode number (as in the `netns` field), a path
    /// (/proc/PID/ns/net, /run/netns/NAME) or a name from `ip netns` (repeatable).
    #[arg(long, value_name = "NETNS")]
    pub netns: Vec<String>,
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("`{s}` is not a port (1 to 65535)")),
    }
}

fn parse_family(s: &str) -> Result<u16, String> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "inet" | "4" | "ipv4" | "ip" | "af_inet" => 2,
        "inet6" | "6" | "ipv6" | "ip6" | "af_inet6" => 10,
        "unix" | "local" | "af_unix" => 1,
        n => match n.parse::<u16>() {
            Ok(v) if v < 64 => v,
            _ => {
                return Err(format!(
                    "`{s}` is not an address family: use inet, inet6, unix or a number below 64"
                ));
            }
        },
    })
}

fn parse_proto(s: &str) -> Result<u32, String> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "tcp" => proto::TCP,
        "udp" => proto::UDP,
        "sctp" => proto::SCTP,
        "mptcp" => proto::MPTCP,
        "udplite" => proto::UDPLITE,
        "raw" => proto::RAW,
        "icmp" | "icmp6" | "ping" => proto::ICMP,
        "unix" => proto::U_STR | proto::U_DGR | proto::U_SEQ | proto::UNIX_OTHER,
        "u_str" => proto::U_STR,
        "u_dgr" => proto::U_DGR,
        "u_seq" => proto::U_SEQ,
        _ => {
            return Err(format!(
                "`{s}` is not a protocol: use tcp, udp, sctp, mptcp, udplite, raw, icmp, unix, \
                 u_str, u_dgr or u_seq"
            ));
        }
    })
}

/// `--pid N` names a process that exists now: a filter on one that does not, or on a
/// thread (events carry the process id), would trace nothing, silently. Only where the
/// agent sees the host's pids (the initial pid namespace, whose numbers the events carry);
/// elsewhere said, not refused.
fn check_pid(pid: u32) -> Result<()> {
    /// The initial pid namespace's inode (include/linux/proc_ns.h, PROC_PID_INIT_INO).
    const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;
    if pid == 0 {
        bail!("--pid 0: not a process (0 is the kernel's idle task); give a process id");
    }
    let host_pids =
        std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() == PROC_PID_INIT_INO);
    let tgid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse::<u32>().ok())
        });
    let problem = match tgid {
        None => format!(
            "--pid {pid}: no such process (the filter takes running processes; to start a \
             command and trace it from its first instruction, use `lsn-trace -- CMD`)"
        ),
        Some(t) if t != pid => format!(
            "--pid {pid}: that is a thread of process {t}, and events carry the process id: \
             give --pid {t}"
        ),
        Some(_) => return Ok(()),
    };
    if host_pids {
        bail!(problem);
    }
    log::warn!("{problem} — as this pid namespace sees it, which is not the host's");
    Ok(())
}

/// `--netns`: an inode number, `net:[N]`, a path to a namespace file, or an `ip netns` name.
fn parse_netns(s: &str) -> Result<u32> {
    let t = s.trim();
    let inner = t
        .strip_prefix("net:[")
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(t);
    if let Ok(n) = inner.parse::<u32>() {
        return existing_netns(s, n);
    }
    let path = if t.contains('/') {
        t.to_owned()
    } else {
        format!("/run/netns/{t}")
    };
    let md = std::fs::metadata(&path).with_context(|| {
        format!(
            "--netns {s}: not an inode number, and {path} cannot be read (give the `netns` \
             number of an event, /proc/PID/ns/net, or a name from `ip netns`)"
        )
    })?;
    u32::try_from(md.ino()).map_err(|_| anyhow!("--netns {s}: inode {} is out of range", md.ino()))
}

/// `n` if a network namespace with that inode exists now (some process is in it, or
/// /run/netns names it): a filter on one that does not would trace nothing, silently.
fn existing_netns(arg: &str, n: u32) -> Result<u32> {
    let known = crate::audit::snapshot::namespaces();
    if known.iter().any(|ns| ns.inode == u64::from(n)) {
        return Ok(n);
    }
    let mut list: Vec<String> = known
        .iter()
        .take(8)
        .map(|ns| ns.inode.to_string())
        .collect();
    if known.len() > list.len() {
        list.push(format!("… ({} in all)", known.len()));
    }
    Err(anyhow!(
        "--netns {arg}: no network namespace with inode {n} exists (none of the processes is \
         in one, and /run/netns names none); those that exist now: {}. Give the `netns` \
         number of an event, /proc/PID/ns/net, or a name from `ip netns`",
        list.join(", ")
    ))
}

/// The filters as the kernel side takes them.
#[derive(Debug, Default, Clone)]
pub struct KernelFilter {
    pub flags: u32,
    pub protos: u32,
    pub families: u64,
    pub pids: Vec<u32>,
    pub uids: Vec<u32>,
    pub comms: Vec<[u8; TASK_COMM_LEN]>,
    pub netns: Vec<u32>,
    pub ports: Vec<u16>,
}

impl FilterArgs {
    pub fn to_kernel(&self) -> Result<KernelFilter> {
        let mut k = KernelFilter::default();
        if !self.pid.is_empty() {
            k.flags |= wire::CFG_F_PID;
            for &pid in &self.pid {
                check_pid(pid)?;
            }
            k.pids = self.pid.clone();
        }
        if !self.uid.is_empty() {
            k.flags |= wire::CFG_F_UID;
            for u in &self.uid {
                k.uids.push(
                    crate::user::resolve(u)
                        .with_context(|| format!("--uid {u}"))?
                        .uid,
                );
            }
        }
        if !self.comm.is_empty() {
            k.flags |= wire::CFG_F_COMM;
            for c in &self.comm {
                k.comms.push(comm_key(c)?);
            }
        }
        if !self.netns.is_empty() {
            k.flags |= wire::CFG_F_NETNS;
            for n in &self.netns {
                k.netns.push(parse_netns(n)?);
            }
        }
        if !self.port.is_empty() {
            k.flags |= wire::CFG_F_PORT;
            k.ports = self.port.clone();
        }
        if !self.family.is_empty() {
            k.flags |= wire::CFG_F_FAMILY;
            k.families = self.family.iter().fold(0, |m, &f| m | 1u64 << f);
        }
        if !self.proto.is_empty() {
            k.flags |= wire::CFG_F_PROTO;
            k.protos = self.proto.iter().fold(0, |m, &p| m | p);
        }
        if self.failed {
            k.flags |= wire::CFG_F_FAILED;
        }
        Ok(k)
    }
}

/// The kernel keeps 15 bytes of a process name: match on what it keeps.
fn comm_key(name: &str) -> Result<[u8; TASK_COMM_LEN]> {
    let b = name.as_bytes();
    if b.is_empty() || b.contains(&0) {
        return Err(anyhow!("--comm `{name}`: give a non-empty process name"));
    }
    let n = b.len().min(TASK_COMM_LEN - 1);
    if b.len() > n {
        log::warn!(
            "--comm {name}: the kernel keeps only the first {n} bytes of a process name; \
             matching `{}`",
            String::from_utf8_lossy(&b[..n])
        );
    }
    let mut key = [0u8; TASK_COMM_LEN];
    key[..n].copy_from_slice(&b[..n]);
    Ok(key)
}

fn fill<K: aya::Pod>(ebpf: &mut Ebpf, map: &str, keys: &[K]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut m: HashMap<&mut MapData, K, u8> = ebpf
        .map_mut(map)
        .ok_or_else(|| anyhow!("map {map} missing from the eBPF object"))?
        .try_into()?;
    for k in keys {
        m.insert(k, 1, 0)
            .with_context(|| format!("filling filter map {map}"))?;
    }
    Ok(())
}

impl KernelFilter {
    /// Fill the filter maps (after load, before the programs are attached).
    pub fn apply(&self, ebpf: &mut Ebpf) -> Result<()> {
        fill(ebpf, "FILTER_PIDS", &self.pids)?;
        fill(ebpf, "FILTER_UIDS", &self.uids)?;
        fill(ebpf, "FILTER_COMMS", &self.comms)?;
        fill(ebpf, "FILTER_NETNS", &self.netns)?;
        fill(ebpf, "FILTER_PORTS", &self.ports)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_netns() -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/net").unwrap().ino() as u32
    }

    #[test]
    fn parses_and_combines() {
        let a = FilterArgs {
            port: vec![80, 443],
            family: vec![parse_family("ipv6").unwrap(), parse_family("inet").unwrap()],
            proto: vec![parse_proto("tcp").unwrap(), parse_proto("unix").unwrap()],
            comm: vec!["systemd-resolved".into()],
            netns: vec![format!("net:[{}]", own_netns())],
            failed: true,
            ..Default::default()
        };
        let k = a.to_kernel().unwrap();
        assert_eq!(k.ports, [80, 443]);
        assert_eq!(k.families, 1 << 2 | 1 << 10);
        assert_eq!(k.protos & proto::TCP, proto::TCP);
        assert_eq!(k.protos & proto::UDP, 0);
        assert_eq!(k.protos & proto::U_DGR, proto::U_DGR);
        assert_eq!(&k.comms[0][..16], b"systemd-resolve\0");
        assert_eq!(k.netns, [own_netns()]);
        let want = wire::CFG_F_PORT
            | wire::CFG_F_FAMILY
            | wire::CFG_F_PROTO
            | wire::CFG_F_COMM
            | wire::CFG_F_NETNS
            | wire::CFG_F_FAILED;
        assert_eq!(k.flags, want);
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        assert!(parse_port("0").unwrap_err().contains("1 to 65535"));
        assert!(parse_port("http").is_err());
        assert!(parse_family("appletalk").unwrap_err().contains("inet6"));
        assert!(parse_proto("quic").unwrap_err().contains("tcp"));
        let e = parse_netns("no-such-ns-here").unwrap_err();
        assert!(format!("{e:#}").contains("ip netns"), "{e:#}");
        assert!(parse_netns("/proc/self/ns/net").unwrap() > 0);
        // An inode no namespace has (inode 1 is a filesystem root's, never a namespace's).
        let e = parse_netns("1").unwrap_err().to_string();
        assert!(
            e.contains("no network namespace with inode 1 exists"),
            "{e}"
        );
        assert!(
            e.contains(&own_netns().to_string()),
            "lists those that exist: {e}"
        );
    }

    /// The kernel's protocol bits and the names the output prints agree.
    #[test]
    fn proto_bits_match_output_names() {
        for (fam, ty, p, name) in [
            (2, 1, 6, "tcp"),
            (10, 2, 17, "udp"),
            (2, 1, 262, "mptcp"),
            (10, 3, 255, "raw"),
            (1, 1, 0, "u_str"),
            (1, 2, 0, "u_dgr"),
            (1, 5, 0, "u_seq"),
        ] {
            assert_eq!(proto::bit(fam, ty, p), parse_proto(name).unwrap(), "{name}");
        }
    }
}
