//! Any string: the parser never panics, and whatever it accepts, written back with
//! `Display`, parses to the same result.
#![no_main]

// The parser is std-only: include its source rather than depend on the lsn-trace crate,
// whose build script compiles the eBPF programs.
#[path = "../../lsn-trace/src/modes/explain_parse.rs"]
mod explain_parse;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = explain_parse::parse(s) {
        let shown = p.to_string();
        assert_eq!(explain_parse::parse(&shown), Ok(p), "`{s}` shown as `{shown}`");
    }
});
