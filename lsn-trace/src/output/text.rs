//! Strings that come from others (a process's name, a unix socket path, /proc, sock_diag,
//! the filesystem): held exactly, and escaped only where they reach a terminal.
//!
//! * [`from_bytes`]: bytes as a `String`, losslessly. Valid UTF-8 is kept as it is; a byte
//!   that is not part of valid UTF-8 becomes the character U+10FF00 + byte (the last 256
//!   code points of Supplementary Private Use Area-B), and so do the bytes of such a
//!   character itself, so the mapping is reversible ([`to_bytes`]). JSON carries this string
//!   exactly: for UTF-8 input it is the value itself; otherwise the documented form.
//! * [`terminal`]: the one escaping of text for a terminal (human and strace output, the
//!   `-- CMD` summary, stderr). Unambiguous: a backslash is `\\`, so `\x0a` printed means a
//!   newline and `\\x0a` the four characters; C0 and C1 controls, DEL and the bytes that are
//!   not UTF-8 are `\xNN`; characters that reorder, hide or break lines (bidi controls such
//!   as U+202E and U+2066–2069, U+2028/2029, zero-width and other format characters) are
//!   `\u{NNNN}`.
use std::{borrow::Cow, fmt::Write as _};

/// The first of the 256 characters that stand for single bytes.
const BYTE_BASE: u32 = 0x10_FF00;

fn byte_char(b: u8) -> char {
    char::from_u32(BYTE_BASE + u32::from(b)).expect("U+10FF00..U+10FFFF are scalar values")
}

/// The byte a character of the byte range stands for.
fn char_byte(c: char) -> Option<u8> {
    (c as u32).checked_sub(BYTE_BASE).map(|b| b as u8)
}

/// Bytes as a `String`, losslessly (see the module's doc).
pub fn from_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if char_byte(c).is_some() {
                let mut utf8 = [0; 4];
                s.extend(c.encode_utf8(&mut utf8).bytes().map(byte_char));
            } else {
                s.push(c);
            }
        }
        s.extend(chunk.invalid().iter().copied().map(byte_char));
    }
    s
}

/// The bytes a `from_bytes` string was made of.
#[cfg(test)]
pub fn to_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match char_byte(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

/// Characters a terminal must not receive raw, besides controls: they reorder what follows
/// (bidi), are invisible (zero-width, format), or break the line (U+2028/2029).
fn is_deceptive(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF9..=0xFFFB | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// What must not reach a terminal raw (a backslash aside).
fn unsafe_raw(c: char) -> bool {
    c.is_control() || is_deceptive(c) || char_byte(c).is_some()
}

/// Whether `s` holds anything [`terminal`] escapes. Most text is printable ASCII (a line
/// of the trace, a listener's summary): eight bytes are tested at a time, and only a word
/// with a byte outside 0x20..=0x7e, or a backslash, is looked at character by character.
fn needs_terminal_escape(s: &str) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let w = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
            let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
            // A byte < 0x20, ≥ 0x80 (its high bit), 0x7f or `\` flags the word.
            let hit = (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
                | (w & HIGH)
                | zero(w ^ (ONES * 0x7f))
                | zero(w ^ (ONES * u64::from(b'\\')));
            if hit == 0 {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        if b < 0x80 {
            if b < 0x20 || b == 0x7f || b == b'\\' {
                return true;
            }
            i += 1;
        } else {
            // `i` is on a character boundary: every step above moved by whole characters
            // (ASCII bytes, or the length of the character decoded here).
            let c = s[i..].chars().next().expect("a character starts here");
            if unsafe_raw(c) {
                return true;
            }
            i += c.len_utf8();
        }
    }
    false
}

/// `s` escaped for a terminal (see the module's doc); borrowed when nothing needs it.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !needs_terminal_escape(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match (c, char_byte(c)) {
            ('\\', _) => out.push_str("\\\\"),
            (_, Some(b)) => {
                let _ = write!(out, "\\x{b:02x}");
            }
            (c, _) if (c as u32) < 0x100 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            (c, _) if unsafe_raw(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            (c, _) => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A message of several lines of our own (an error and its hint) for a terminal: the
/// newlines between them kept, and in each line what must not reach a terminal raw
/// escaped — but not a backslash, so that a hint's command line (`shell_quote`d) pastes
/// as printed. What others chose reaches it only through `shell_quote` or a path given
/// on our own command line.
pub fn terminal_lines(s: &str) -> String {
    s.split('\n')
        .map(|line| {
            line.split('\\')
                .map(terminal)
                .collect::<Vec<_>>()
                .join("\\")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An argument as a POSIX shell reads it back exactly: bare when it is all safe characters,
/// in single quotes otherwise, and in `$'…'` (bash, zsh, dash 0.5.12+, POSIX 2024) with
/// `\xNN` escapes when it holds controls or characters a terminal must not get raw.
pub fn shell_quote(arg: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !arg.is_empty() && arg.chars().all(bare) {
        return arg.to_owned();
    }
    if !arg.chars().any(unsafe_raw) {
        return format!("'{}'", arg.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for c in arg.chars() {
        match (c, char_byte(c)) {
            ('\\', _) => out.push_str("\\\\"),
            ('\'', _) => out.push_str("\\'"),
            (_, Some(b)) => {
                let _ = write!(out, "\\x{b:02x}");
            }
            (c, _) if unsafe_raw(c) => {
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            (c, _) => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_utf8_is_kept_exactly() {
        for b in [
            &b"nginx"[..],
            b"a\nb\x1b[2J\r",
            b"\xff\xfe/run/x",
            "caf\u{e9} \u{202e}gpj.exe".as_bytes(),
            "\u{10ff41}".as_bytes(),
            b"\0@\0",
        ] {
            let s = from_bytes(b);
            assert_eq!(to_bytes(&s), b, "{s:?}");
            if let Ok(u) = std::str::from_utf8(b)
                && !u.chars().any(|c| char_byte(c).is_some())
            {
                assert_eq!(s, u, "valid UTF-8 is its own value");
            }
        }
        assert_eq!(from_bytes(b"a\xffb"), "a\u{10ffff}b");
        // A real character of the byte range is told apart from a stray byte.
        assert_ne!(from_bytes("\u{10ff41}".as_bytes()), from_bytes(b"\x41"));
    }

    #[test]
    fn terminal_escaping_is_unambiguous() {
        assert_eq!(terminal("nginx"), "nginx");
        assert!(matches!(terminal("nginx"), Cow::Borrowed(_)));
        assert_eq!(terminal("a\nb"), "a\\x0ab");
        assert_eq!(terminal("a\\x0ab"), "a\\\\x0ab");
        assert_ne!(terminal("a\nb"), terminal("a\\x0ab"));
        assert_eq!(
            terminal("\x1b[2J\x1b[31mEVIL\n\r"),
            "\\x1b[2J\\x1b[31mEVIL\\x0a\\x0d"
        );
        assert_eq!(terminal("\u{7f}\u{85}\u{9b}"), "\\x7f\\x85\\x9b");
        assert_eq!(
            terminal("x\u{202e}y\u{2028}z\u{2066}\u{2069}\u{200b}\u{feff}"),
            "x\\u{202e}y\\u{2028}z\\u{2066}\\u{2069}\\u{200b}\\u{feff}"
        );
        assert_eq!(terminal(&from_bytes(b"a\xffb\0")), "a\\xffb\\x00");
        assert_eq!(terminal("café → ↳"), "café → ↳");
    }

    #[test]
    fn the_word_at_a_time_test_agrees_with_the_character_test() {
        let slow = |s: &str| s.chars().any(|c| c == '\\' || unsafe_raw(c));
        let mut cases: Vec<String> = vec![
            String::new(),
            "nginx[1190] LISTEN tcp [::]:80  dual-stack on every interface".into(),
            "0123456".into(),
            "01234567".into(),
            "012345678".into(),
        ];
        // Each character of interest at every position of a 20-byte ASCII line, and after
        // a harmless non-ASCII one (so that it is met off the 8-byte grid too).
        for c in [
            '\0',
            '\n',
            '\x1b',
            '\x1f',
            ' ',
            '~',
            '\x7f',
            '\\',
            '\u{85}',
            '\u{9b}',
            'é',
            '→',
            '\u{202e}',
            '\u{2028}',
            '\u{2066}',
            '\u{feff}',
            '\u{10ff41}',
            '\u{e0001}',
            '😀',
        ] {
            for at in 0..20 {
                let mut s: String = "abcdefghijklmnopqrst".chars().take(at).collect();
                s.push(c);
                s.push_str("uvwxyz0123456789");
                cases.push(s.clone());
                cases.push(format!("→{s}"));
            }
        }
        for s in &cases {
            assert_eq!(needs_terminal_escape(s), slow(s), "{s:?}");
        }
    }

    #[test]
    fn message_lines_keep_newlines_and_backslashes_and_escape_the_rest() {
        assert_eq!(
            terminal_lines("error: x\n  Run: sudo a 'b\\c'\x1b"),
            "error: x\n  Run: sudo a 'b\\c'\\x1b"
        );
    }

    #[test]
    fn shell_quoting_reads_back() {
        assert_eq!(shell_quote("echo"), "echo");
        assert_eq!(shell_quote("echo a b"), "'echo a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a\nb"), r"$'a\x0ab'");
        assert_eq!(shell_quote("a'\\"), r"'a'\''\'");
    }
}
