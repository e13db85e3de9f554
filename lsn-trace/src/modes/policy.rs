//! What is allowed to listen: a TOML policy whose first matching rule decides `allow` or
//! `alert` for a listener record (an audit `open` or `snapshot` record), with a default.
//!
//! ```toml
//! default = "alert"
//! [[rule]]
//! decision = "allow"
//! scope = "loopback"
//! [[rule]]
//! name = "web"
//! decision = "allow"
//! port = "80,443"
//! exe = "/usr/sbin/nginx"
//! ```
//!
//! A rule matches when every condition it has holds; a condition given a list holds when
//! any item does. A condition on a key the record has as `null` (unknown) does not hold:
//! an unknown identity is never taken for an allowed one. Pure: parsing and matching need
//! no host; audit, report and check share it.
use std::{net::IpAddr, path::Path};

use lsn_trace::verdict;
use serde::{Deserialize, Deserializer, de};
use serde_json::{Map, Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Alert,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Alert => "alert",
        }
    }
}

/// The decision for one listener, and what made it: a rule's `name`, `#N` (the Nth
/// `[[rule]]` of the file) or `default`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    pub rule: String,
}

impl Outcome {
    /// The record's `policy` key.
    pub fn to_json(&self) -> Value {
        json!({"decision": self.decision.as_str(), "rule": self.rule})
    }
}

pub struct Policy {
    default: Decision,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default = "alert")]
    default: Decision,
    #[serde(default)]
    rule: Vec<Rule>,
}

fn alert() -> Decision {
    Decision::Alert
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    name: Option<String>,
    decision: Decision,
    protocol: Option<List<Protocol>>,
    scope: Option<List<Scope>>,
    port: Option<List<PortRange>>,
    addr: Option<List<AddrMatch>>,
    exe: Option<List<Pattern>>,
    comm: Option<List<Pattern>>,
    unit: Option<List<Pattern>>,
    user: Option<List<Pattern>>,
    image: Option<List<Pattern>>,
    k8s_namespace: Option<List<Pattern>>,
}

/// A value of a condition: one scalar, or a list of them. Items are parsed as they are
/// read, so a bad one is reported at its place in the file.
struct List<T>(Vec<T>);

trait Item: Sized {
    const WHAT: &'static str;
    fn from_str(s: &str) -> Result<Vec<Self>, String>;
    fn from_int(i: i64) -> Result<Vec<Self>, String> {
        Self::from_str(&i.to_string())
    }
}

impl<'de, T: Item> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Item> de::Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "{}, or a list of them", T::WHAT)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<List<T>, E> {
                T::from_str(s).map(List).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<List<T>, E> {
                T::from_int(i).map(List).map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Scalar>()? {
                    let items = match s {
                        Scalar::Str(s) => T::from_str(&s),
                        Scalar::Int(i) => T::from_int(i),
                    };
                    out.extend(items.map_err(de::Error::custom)?);
                }
                if out.is_empty() {
                    return Err(de::Error::custom(format!(
                        "an empty list matches nothing: give {}",
                        T::WHAT
                    )));
                }
                Ok(List(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Str(String),
    Int(i64),
}

/// `tcp`, `udp`, … as in the records' `protocol` (ss's Netid), or `unix` for all three
/// unix kinds.
struct Protocol(String);

impl Item for Protocol {
    const WHAT: &'static str = "a protocol (tcp, udp, sctp, mptcp, u_str, u_dgr, u_seq, unix)";
    fn from_str(s: &str) -> Result<Vec<Self>, String> {
        const KNOWN: [&str; 9] = [
            "tcp", "udp", "sctp", "mptcp", "raw", "u_str", "u_dgr", "u_seq", "unix",
        ];
        if KNOWN.contains(&s) {
            Ok(vec![Protocol(s.to_owned())])
        } else {
            Err(format!("unknown protocol `{s}`: {}", Self::WHAT))
        }
    }
    fn from_int(i: i64) -> Result<Vec<Self>, String> {
        Err(format!("protocol {i}: give its name, {}", Self::WHAT))
    }
}

/// A verdict kind (`loopback`, `all-ipv4`, `dual-stack`, `specific`, …) or `any` (a
/// wildcard of either family: all-ipv4, dual-stack, ipv6-only-any, ipv6-any).
enum Scope {
    Kind(verdict::Kind),
    Any,
}

const SCOPES: &str = "loopback, any, all-ipv4, dual-stack, ipv6-only-any, ipv6-any, \
                      device-bound, specific, link-local, ipv4-mapped, non-local, multicast, \
                      broadcast, unix-path, unix-abstract, unix-autobind";

impl Item for Scope {
    const WHAT: &'static str = "a scope (a verdict kind)";
    fn from_str(s: &str) -> Result<Vec<Self>, String> {
        if s == "any" {
            return Ok(vec![Scope::Any]);
        }
        let d = de::value::StrDeserializer::<de::value::Error>::new(s);
        verdict::Kind::deserialize(d)
            .map(|k| vec![Scope::Kind(k)])
            .map_err(|_| format!("unknown scope `{s}`: one of {SCOPES}"))
    }
}

impl Scope {
    fn holds(&self, kind: &str) -> bool {
        match self {
            Scope::Kind(k) => k.as_str() == kind,
            Scope::Any => matches!(
                kind,
                "all-ipv4" | "dual-stack" | "ipv6-only-any" | "ipv6-any"
            ),
        }
    }
}

/// `80`, `"80,443"`, `"8000-8100"`.
struct PortRange(u16, u16);

impl Item for PortRange {
    const WHAT: &'static str = "a port, a range (8000-8100), or a comma-separated list";
    fn from_str(s: &str) -> Result<Vec<Self>, String> {
        let port = |p: &str| -> Result<u16, String> {
            p.trim()
                .parse()
                .map_err(|_| format!("`{}` is not a port (0-65535)", p.trim()))
        };
        s.split(',')
            .map(|part| match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (port(a)?, port(b)?);
                    if a > b {
                        return Err(format!("port range `{}` runs backwards", part.trim()));
                    }
                    Ok(PortRange(a, b))
                }
                None => port(part).map(|p| PortRange(p, p)),
            })
            .collect()
    }
}

/// An IP address or prefix (`127.0.0.1`, `10.0.0.0/8`, `fe80::/10`), or a unix socket
/// path / abstract name (`/run/x.sock`, `@name`), a trailing `*` matching any rest.
pub enum AddrMatch {
    Net(IpAddr, u8),
    Unix(Pattern),
}

impl Item for AddrMatch {
    const WHAT: &'static str = "an address or prefix (10.0.0.0/8, ::1), or a unix path";
    fn from_str(s: &str) -> Result<Vec<Self>, String> {
        if s.starts_with(['/', '@']) {
            return Pattern::from_str(s).map(|p| p.into_iter().map(AddrMatch::Unix).collect());
        }
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or prefix, nor a unix path"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(l) if l <= max => l,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(vec![AddrMatch::Net(ip, len)])
    }
}

/// `verdict::in_prefix`, and an IPv4-mapped address on an IPv6 socket is that IPv4 address.
fn in_prefix(addr: IpAddr, net: IpAddr, len: u8) -> bool {
    match (addr, net) {
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|a4| verdict::in_prefix(IpAddr::V4(a4), net, len)),
        _ => verdict::in_prefix(addr, net, len),
    }
}

impl AddrMatch {
    /// An address filter (`--addr`): one address, prefix or unix path.
    pub fn parse(s: &str) -> Result<Vec<AddrMatch>, String> {
        <AddrMatch as Item>::from_str(s)
    }

    pub fn holds(&self, addr: &str) -> bool {
        match self {
            AddrMatch::Unix(p) => p.holds(addr),
            AddrMatch::Net(net, len) => {
                // `fe80::1%eth0`: the scope names the link, the prefix is about the address.
                let ip = addr.split('%').next().unwrap_or(addr);
                ip.parse().is_ok_and(|ip| in_prefix(ip, *net, *len))
            }
        }
    }
}

/// An exact value, or a prefix with a trailing `*` (`/usr/lib/jvm/*`).
pub struct Pattern {
    text: String,
    prefix: bool,
}

impl Item for Pattern {
    const WHAT: &'static str = "a string (a trailing * matches any rest)";
    fn from_str(s: &str) -> Result<Vec<Self>, String> {
        if s.is_empty() {
            return Err("an empty string matches nothing".into());
        }
        let (text, prefix) = match s.strip_suffix('*') {
            Some(t) => (t, true),
            None => (s, false),
        };
        if text.contains('*') {
            return Err(format!("`{s}`: `*` is allowed only at the end"));
        }
        Ok(vec![Pattern {
            text: text.to_owned(),
            prefix,
        }])
    }
}

impl Pattern {
    /// A name filter (`--unit`): exact, or a prefix with a trailing `*`.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let mut v = <Pattern as Item>::from_str(s)?;
        Ok(v.remove(0))
    }

    pub fn holds(&self, v: &str) -> bool {
        if self.prefix {
            v.starts_with(&self.text)
        } else {
            v == self.text
        }
    }
}

fn str_key<'a>(rec: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    rec.get(key).and_then(Value::as_str)
}

/// The port a listener is on: the kernel's (`bound_port`) where it differs from the
/// request (port 0), else the record's `port`.
pub fn listener_port(rec: &Map<String, Value>) -> Option<u64> {
    match rec.get("bound_port").and_then(Value::as_u64) {
        Some(p) if p != 0 => Some(p),
        _ => rec.get("port").and_then(Value::as_u64),
    }
}

fn any<T>(cond: &Option<List<T>>, holds: impl Fn(&T) -> bool) -> bool {
    cond.as_ref().is_none_or(|l| l.0.iter().any(holds))
}

fn any_str(cond: &Option<List<Pattern>>, value: Option<&str>) -> bool {
    cond.as_ref()
        .is_none_or(|l| value.is_some_and(|v| l.0.iter().any(|p| p.holds(v))))
}

impl Rule {
    fn matches(&self, rec: &Map<String, Value>) -> bool {
        let proto = str_key(rec, "protocol");
        let port = listener_port(rec);
        let uid = rec
            .get("uid")
            .and_then(Value::as_u64)
            .map(|u| u.to_string());
        let user_ok = self.user.as_ref().is_none_or(|l| {
            l.0.iter().any(|p| {
                str_key(rec, "user").is_some_and(|u| p.holds(u))
                    || uid.as_deref().is_some_and(|u| p.holds(u))
            })
        });
        any(&self.protocol, |p| {
            proto.is_some_and(|r| r == p.0 || (p.0 == "unix" && r.starts_with("u_")))
        }) && any(&self.scope, |s| {
            str_key(rec, "verdict").is_some_and(|k| s.holds(k))
        }) && any(&self.port, |r| {
            port.is_some_and(|p| (u64::from(r.0)..=u64::from(r.1)).contains(&p))
        }) && any(&self.addr, |a| {
            str_key(rec, "addr").is_some_and(|v| a.holds(v))
        }) && any_str(&self.exe, str_key(rec, "exe"))
            && any_str(&self.comm, str_key(rec, "comm"))
            && any_str(&self.unit, str_key(rec, "systemd_unit"))
            && user_ok
            && any_str(&self.image, str_key(rec, "container_image"))
            && any_str(&self.k8s_namespace, str_key(rec, "k8s_namespace"))
    }
}

/// 1-based line and column (in characters) of byte offset `at` of `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Policy {
    /// Parse a policy; errors are `NAME:LINE:COLUMN: what is wrong`.
    pub fn parse(text: &str, name: &str) -> Result<Policy, String> {
        let spec: FileSpec = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim_end().replace('\n', "; ");
            match e.span() {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    format!("{name}:{line}:{col}: {msg}")
                }
                None => format!("{name}: {msg}"),
            }
        })?;
        Ok(Policy {
            default: spec.default,
            rules: spec.rule,
        })
    }

    pub fn load(path: &Path) -> anyhow::Result<Policy> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the policy {}: {e}", path.display()))?;
        Policy::parse(&text, &path.display().to_string()).map_err(|e| anyhow::anyhow!("policy {e}"))
    }

    /// The first matching rule's decision, else the default.
    pub fn decide(&self, rec: &Map<String, Value>) -> Outcome {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(rec) {
                return Outcome {
                    decision: rule.decision,
                    rule: rule.name.clone().unwrap_or_else(|| format!("#{}", i + 1)),
                };
            }
        }
        Outcome {
            decision: self.default,
            rule: "default".into(),
        }
    }
}

/// Whether an audit record is a listener the policy decides on.
pub fn applies_to(record: &str) -> bool {
    matches!(record, "open" | "snapshot")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn nginx() -> Map<String, Value> {
        rec(json!({
            "record": "open", "protocol": "tcp", "addr": "::", "port": 443, "bound_port": 443,
            "verdict": "dual-stack", "exe": "/usr/sbin/nginx", "comm": "nginx",
            "systemd_unit": "nginx.service", "user": "www-data", "uid": 33,
            "container_image": "docker.io/library/nginx:1.27", "k8s_namespace": "web",
        }))
    }

    fn decide(policy: &str, r: &Map<String, Value>) -> Outcome {
        Policy::parse(policy, "p.toml").unwrap().decide(r)
    }

    fn rule_of(policy: &str, r: &Map<String, Value>) -> String {
        decide(policy, r).rule
    }

    #[test]
    fn each_rule_kind_matches_and_misses() {
        let r = nginx();
        let cases: [(&str, &str); 22] = [
            ("protocol = \"tcp\"", "protocol = \"udp\""),
            ("protocol = [\"udp\", \"tcp\"]", "protocol = \"unix\""),
            ("scope = \"dual-stack\"", "scope = \"loopback\""),
            (
                "scope = \"any\"",
                "scope = [\"specific\", \"ipv6-only-any\"]",
            ),
            ("port = 443", "port = 80"),
            ("port = \"80,443\"", "port = \"80,8443\""),
            ("port = \"400-500\"", "port = [\"1-442\", 444]"),
            ("addr = \"::\"", "addr = \"::1\""),
            ("addr = \"::/0\"", "addr = \"0.0.0.0/0\""),
            ("exe = \"/usr/sbin/nginx\"", "exe = \"/usr/sbin/nginx2\""),
            ("exe = \"/usr/sbin/*\"", "exe = \"/usr/local/*\""),
            ("comm = \"nginx\"", "comm = \"ngin\""),
            ("unit = \"nginx.service\"", "unit = \"sshd.service\""),
            ("unit = \"nginx*\"", "unit = \"ssh*\""),
            ("user = \"www-data\"", "user = \"root\""),
            ("user = 33", "user = 0"),
            ("image = \"docker.io/library/nginx:*\"", "image = \"nginx\""),
            ("k8s_namespace = \"web\"", "k8s_namespace = \"kube-system\""),
            (
                "port = 443\nexe = \"/usr/sbin/nginx\"",
                "port = 443\nexe = \"/bin/sh\"",
            ),
            (
                "comm = [\"sshd\", \"nginx\"]",
                "comm = [\"sshd\", \"httpd\"]",
            ),
            (
                "protocol = \"tcp\"\nscope = \"any\"",
                "protocol = \"tcp\"\nscope = \"loopback\"",
            ),
            ("decision = \"allow\"", "decision = \"allow\"\nport = 1"),
        ];
        for (hit, miss) in cases {
            let body = |cond: &str| {
                let cond = if cond.starts_with("decision") {
                    cond.to_owned()
                } else {
                    format!("decision = \"allow\"\n{cond}")
                };
                format!("default = \"alert\"\n[[rule]]\n{cond}\n")
            };
            let hit_out = decide(&body(hit), &r);
            assert_eq!(hit_out.decision, Decision::Allow, "{hit}");
            assert_eq!(hit_out.rule, "#1", "{hit}");
            let miss_out = decide(&body(miss), &r);
            assert_eq!(miss_out.decision, Decision::Alert, "{miss}");
            assert_eq!(miss_out.rule, "default", "{miss}");
        }
    }

    #[test]
    fn first_match_decides_and_names_its_rule() {
        let p = "default = \"allow\"\n\
                 [[rule]]\nname = \"no-debug\"\ndecision = \"alert\"\nport = 443\n\
                 [[rule]]\ndecision = \"allow\"\nexe = \"/usr/sbin/nginx\"\n";
        let out = decide(p, &nginx());
        assert_eq!(
            out,
            Outcome {
                decision: Decision::Alert,
                rule: "no-debug".into()
            }
        );
        assert_eq!(
            out.to_json(),
            json!({"decision": "alert", "rule": "no-debug"})
        );
        let mut other = nginx();
        other.insert("port".into(), json!(8080));
        other.insert("bound_port".into(), json!(8080));
        assert_eq!(rule_of(p, &other), "#2");
        other.insert("exe".into(), json!("/bin/nc"));
        assert_eq!(decide(p, &other).decision, Decision::Allow);
        assert_eq!(rule_of(p, &other), "default");
        // No default given: alert.
        assert_eq!(decide("", &other).decision, Decision::Alert);
    }

    #[test]
    fn unknown_values_never_match() {
        let mut r = nginx();
        for k in [
            "exe",
            "comm",
            "systemd_unit",
            "user",
            "uid",
            "container_image",
        ] {
            r.insert(k.into(), Value::Null);
        }
        for cond in [
            "exe = \"*\"",
            "comm = \"*\"",
            "unit = \"*\"",
            "user = \"*\"",
            "image = \"*\"",
        ] {
            let p = format!("[[rule]]\ndecision = \"allow\"\n{cond}\n");
            assert_eq!(decide(&p, &r).decision, Decision::Alert, "{cond}");
        }
        r.remove("k8s_namespace");
        let p = "[[rule]]\ndecision = \"allow\"\nk8s_namespace = \"web\"\n";
        assert_eq!(decide(p, &r).decision, Decision::Alert, "absent = unknown");
    }

    #[test]
    fn addresses_prefixes_unix_paths_and_the_udp_port() {
        let p = |cond: &str| format!("[[rule]]\ndecision = \"allow\"\n{cond}\n");
        let at = |addr: &str| {
            rec(json!({"addr": addr, "port": 0, "bound_port": 5353, "protocol": "udp"}))
        };
        let allow =
            |cond: &str, r: &Map<String, Value>| decide(&p(cond), r).decision == Decision::Allow;
        assert!(allow("addr = \"10.0.0.0/8\"", &at("10.1.2.3")));
        assert!(!allow("addr = \"10.0.0.0/8\"", &at("11.1.2.3")));
        assert!(allow("addr = \"10.0.0.0/8\"", &at("::ffff:10.1.2.3")));
        assert!(allow("addr = \"fe80::/10\"", &at("fe80::1%eth0")));
        assert!(allow("addr = \"[::1]\"", &at("::1")));
        assert!(allow("addr = \"0.0.0.0/0\"", &at("0.0.0.0")));
        assert!(!allow("addr = \"0.0.0.0/0\"", &at("::")));
        assert!(
            allow("port = 5353", &at("0.0.0.0")),
            "the port the kernel bound"
        );
        let ux = rec(json!({"addr": "/run/app/x.sock", "port": null, "protocol": "u_str"}));
        assert!(allow("addr = \"/run/app/*\"", &ux));
        assert!(!allow("addr = \"/run/other.sock\"", &ux));
        assert!(
            !allow("port = \"0-65535\"", &ux),
            "a unix socket has no port"
        );
        assert!(allow("protocol = \"unix\"", &ux));
    }

    #[test]
    fn the_shipped_example_parses_and_decides() {
        let text = include_str!("../../../packaging/lsn-trace-policy.toml");
        let p = Policy::parse(text, "lsn-trace-policy.toml").unwrap();
        assert_eq!(p.decide(&nginx()).rule, "web");
        let mut stray = nginx();
        stray.insert("exe".into(), json!("/usr/bin/python3"));
        assert_eq!(p.decide(&stray).rule, "web-ports-taken");
        let mut lo = nginx();
        lo.insert("verdict".into(), json!("loopback"));
        assert_eq!(p.decide(&lo).rule, "loopback");
        let mut other = nginx();
        other.insert("port".into(), json!(5000));
        other.insert("bound_port".into(), json!(5000));
        assert_eq!(
            p.decide(&other),
            Outcome {
                decision: Decision::Alert,
                rule: "default".into()
            }
        );
    }

    #[test]
    fn errors_say_line_and_column() {
        let cases = [
            (
                "default = \"alert\"\n[[rule]]\ndecision = \"allow\"\nport = \"80-x\"\n",
                "p.toml:4:8:",
                "`x` is not a port",
            ),
            (
                "[[rule]]\ndecision = \"allow\"\nscope = \"everywhere\"\n",
                "p.toml:3:9:",
                "unknown scope `everywhere`",
            ),
            ("[[rule]]\ndecision = \"maybe\"\n", "p.toml:2:12:", "maybe"),
            (
                "[[rule]]\ndecision = \"allow\"\nprot = \"tcp\"\n",
                "p.toml:3:1:",
                "unknown field `prot`",
            ),
            ("default = \"alert\"\n[[rule]\n", "p.toml:2:", ""),
            (
                "[[rule]]\ndecision = \"allow\"\naddr = \"10.0.0.0/33\"\n",
                "p.toml:3:8:",
                "prefix length",
            ),
            (
                "[[rule]]\ndecision = \"allow\"\nport = \"90-80\"\n",
                "p.toml:3:8:",
                "runs backwards",
            ),
            (
                "[[rule]]\nport = 80\n",
                "p.toml:1:1:",
                "missing field `decision`",
            ),
            (
                "[[rule]]\ndecision = \"allow\"\nexe = \"/a*b\"\n",
                "p.toml:3:7:",
                "only at the end",
            ),
            (
                "[[rule]]\ndecision = \"allow\"\ncomm = []\n",
                "p.toml:3:8:",
                "empty list",
            ),
        ];
        for (text, at, what) in cases {
            let e = Policy::parse(text, "p.toml").err().expect(text);
            assert!(e.starts_with(at), "{text:?}: {e}");
            assert!(e.contains(what), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
