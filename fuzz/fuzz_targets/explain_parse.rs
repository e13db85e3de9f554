//! Any string: the parsers never panic; whatever the strict parser accepts, written back
//! with `Display`, parses to the same result, and the pasted-notation parser reads it the
//! same; whatever the pasted-notation parser and the ss/netstat/lsof line reader accept,
//! written back, reads back the same (`check_properties` of each module).
#![no_main]

use lsn_trace::{explain_line, explain_parse};

/// A small services database, so service names are exercised too.
fn services(name: &str, protocol: &str) -> Option<u16> {
    match (name, protocol) {
        ("ssh", _) => Some(22),
        ("http" | "www", "tcp") => Some(80),
        ("domain", "tcp" | "udp") => Some(53),
        _ => None,
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    explain_parse::check_properties(s, &|n| services(n, "tcp"));
    explain_line::check_properties(s, &services);
});
