//! Service names (`ssh`, `http`, `ipp`) as `ss`, `netstat` and `lsof` print them without
//! `-n`/`-P`: the services database, read the way getservbyname(3) reads it (name or alias,
//! per protocol), from /etc/services, or from a built-in table of common IANA names where
//! that file is absent (minimal container images ship without it).
//!
//! Parsing is pure ([`Services::parse`]); [`Services::system`] is the one read of the file.

/// Where the names were read.
pub const SYSTEM_FILE: &str = "/etc/services";
pub const BUILT_IN_NAME: &str = "lsn-trace's built-in table of common IANA service names";

/// Common IANA names, in /etc/services' format and with the ports and aliases Debian's
/// netbase gives them (a test compares them with /etc/services where it exists).
const BUILT_IN: &str = "\
ftp-data 20/tcp
ftp 21/tcp
ssh 22/tcp
telnet 23/tcp
smtp 25/tcp mail
domain 53/tcp
domain 53/udp
bootps 67/udp
bootpc 68/udp
tftp 69/udp
http 80/tcp www
kerberos 88/tcp kerberos5 krb5 kerberos-sec
kerberos 88/udp kerberos5 krb5 kerberos-sec
pop3 110/tcp pop-3
sunrpc 111/tcp portmapper
sunrpc 111/udp portmapper
ntp 123/udp
netbios-ns 137/udp
netbios-ssn 139/tcp
imap2 143/tcp imap
snmp 161/tcp
snmp 161/udp
ldap 389/tcp
ldap 389/udp
https 443/tcp
https 443/udp
microsoft-ds 445/tcp
submissions 465/tcp ssmtp smtps urd
syslog 514/udp
rtsp 554/tcp
rtsp 554/udp
submission 587/tcp
ipp 631/tcp
ldaps 636/tcp
ldaps 636/udp
kerberos-adm 749/tcp
rsync 873/tcp
imaps 993/tcp
pop3s 995/tcp
openvpn 1194/tcp
openvpn 1194/udp
ms-sql-s 1433/tcp
nfs 2049/tcp
nfs 2049/udp
iscsi-target 3260/tcp
mysql 3306/tcp
svn 3690/tcp subversion
sip 5060/tcp
sip 5060/udp
xmpp-client 5222/tcp jabber-client
mdns 5353/udp
postgresql 5432/tcp postgres
amqp 5672/tcp
x11 6000/tcp x11-0
redis 6379/tcp
http-alt 8080/tcp webcache
git 9418/tcp
";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub port: u16,
    /// `tcp`, `udp`, `sctp`, … as the file writes it.
    pub protocol: String,
    pub aliases: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Services {
    pub entries: Vec<Entry>,
    /// [`SYSTEM_FILE`], or [`BUILT_IN_NAME`].
    pub source: &'static str,
}

/// A name found: the port and the protocol entry it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub port: u16,
    pub protocol: String,
}

impl Services {
    /// Lines of `name port/protocol [alias…] [# comment]`; malformed lines are skipped, as
    /// getservent(3) skips them.
    pub fn parse(text: &str) -> Vec<Entry> {
        text.lines()
            .filter_map(|line| {
                let line = line.split('#').next().unwrap_or_default();
                let mut words = line.split_whitespace();
                let name = words.next()?;
                let (port, protocol) = words.next()?.split_once('/')?;
                Some(Entry {
                    name: name.into(),
                    port: port.parse().ok()?,
                    protocol: protocol.into(),
                    aliases: words.map(str::to_owned).collect(),
                })
            })
            .collect()
    }

    pub fn built_in() -> Services {
        Services {
            entries: Services::parse(BUILT_IN),
            source: BUILT_IN_NAME,
        }
    }

    /// /etc/services, or the built-in table when it cannot be read.
    pub fn system() -> Services {
        match std::fs::read_to_string(SYSTEM_FILE) {
            Ok(text) => Services {
                entries: Services::parse(&text),
                source: SYSTEM_FILE,
            },
            Err(_) => Services::built_in(),
        }
    }

    /// The port of `name` (or an alias) for `protocol`, first entry wins (getservbyname).
    /// Protocols the database has no entries for (MPTCP) read TCP's.
    pub fn port(&self, name: &str, protocol: &str) -> Option<Found> {
        let proto = match protocol {
            "tcp" | "tcp6" | "mptcp" => "tcp",
            "udp" | "udp6" | "udpl" | "udpl6" | "udplite" => "udp",
            "sctp" | "sctp6" => "sctp",
            other => other,
        };
        self.entries
            .iter()
            .find(|e| {
                e.protocol == proto && (e.name == name || e.aliases.iter().any(|a| a == name))
            })
            .map(|e| Found {
                port: e.port,
                protocol: e.protocol.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_file_format_and_looks_up_like_getservbyname() {
        let s = Services {
            entries: Services::parse(
                "# comment\n\nhttp\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP\n\
                 domain 53/tcp\ndomain 53/udp\nbad line\nnoport x/tcp\nbig 70000/tcp\n\
                 amqp 5672/sctp\n",
            ),
            source: SYSTEM_FILE,
        };
        assert_eq!(s.entries.len(), 4);
        let found = |n, p| s.port(n, p).map(|f| (f.port, f.protocol));
        assert_eq!(found("http", "tcp"), Some((80, "tcp".into())));
        assert_eq!(found("www", "tcp6"), Some((80, "tcp".into())));
        assert_eq!(found("http", "udp"), None);
        assert_eq!(found("domain", "udp6"), Some((53, "udp".into())));
        assert_eq!(found("amqp", "sctp"), Some((5672, "sctp".into())));
        assert_eq!(found("amqp", "tcp"), None);
        assert_eq!(found("big", "tcp"), None);
    }

    #[test]
    fn built_in_table_agrees_with_the_system_file() {
        let b = Services::built_in();
        assert!(b.entries.len() > 50);
        assert_eq!(b.port("ipp", "tcp").unwrap().port, 631);
        assert_eq!(b.port("imap", "tcp").unwrap().port, 143);
        // Where netbase's file exists (xtask setup installs it), every built-in entry says
        // what it says: same port, protocol and aliases for the name.
        let Ok(text) = std::fs::read_to_string(SYSTEM_FILE) else {
            return;
        };
        let sys = Services::parse(&text);
        for e in &b.entries {
            assert!(
                sys.iter()
                    .any(|s| s.name == e.name && s.protocol == e.protocol && s.port == e.port),
                "{e:?} is not in {SYSTEM_FILE}"
            );
            for a in &e.aliases {
                let s = sys
                    .iter()
                    .find(|s| s.name == e.name && s.protocol == e.protocol)
                    .unwrap();
                assert!(s.aliases.contains(a), "{e:?}: alias {a} not in {s:?}");
            }
        }
    }
}
