//! Which files, in which order, and their lines: the current log and its rotations
//! (logrotate's `.1`, `.2.gz`, … or `-20261201[.gz]`), oldest first; gzip'd ones
//! decompressed as they stream (recognized by their magic bytes, not their names); `-` is
//! stdin.
use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    path::Path,
};

/// Where `lsn-trace audit` logs as a service (packaging/lsn-trace-audit.service).
pub const DEFAULT_LOG: &str = "/var/log/lsn-trace/audit.jsonl";

/// A file name's place among its rotations: (the current log's name, age rank). Older
/// sorts first: `.12` before `.1`, `-20261124` before `-20261201`, the current log last.
fn rotation(name: &str) -> (String, (u8, u64, String)) {
    let bare = name.strip_suffix(".gz").unwrap_or(name);
    if let Some((stem, n)) = bare.rsplit_once('.')
        && !n.is_empty()
        && n.len() <= 4
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        let n: u64 = n.parse().unwrap_or(0);
        return (stem.to_owned(), (0, u64::MAX - n, String::new()));
    }
    if let Some((stem, d)) = bare.rsplit_once('-')
        && d.len() >= 8
        && d.bytes().all(|b| b.is_ascii_digit())
    {
        return (stem.to_owned(), (1, 0, d.to_owned()));
    }
    (bare.to_owned(), (2, 0, String::new()))
}

/// The given logs in rotation order: each log's rotations oldest first, logs of different
/// names in the order first given (`report audit.jsonl*` reads `.10` before `.9`).
pub fn order(logs: Vec<String>) -> Vec<String> {
    let mut stems: Vec<String> = Vec::new();
    let mut keyed: Vec<(usize, (u8, u64, String), String)> = Vec::new();
    for l in logs {
        let name = Path::new(&l)
            .file_name()
            .map_or(l.clone(), |n| n.to_string_lossy().into_owned());
        let dir = Path::new(&l)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let (stem, rank) = rotation(&name);
        let stem = dir.join(stem).to_string_lossy().into_owned();
        let i = stems.iter().position(|s| *s == stem).unwrap_or_else(|| {
            stems.push(stem);
            stems.len() - 1
        });
        keyed.push((i, rank, l));
    }
    keyed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    keyed.into_iter().map(|(_, _, l)| l).collect()
}

/// The log at `base` and every rotation of it beside it.
pub fn with_rotations(base: &Path) -> io::Result<Vec<String>> {
    let dir = base.parent().unwrap_or(Path::new("."));
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut found = Vec::new();
    let rd = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })?;
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n != name && rotation(&n).0 == name && n.starts_with(&name) {
            found.push(dir.join(&n).to_string_lossy().into_owned());
        }
    }
    if base.exists() {
        found.push(base.to_string_lossy().into_owned());
    }
    Ok(order(found))
}

/// A readable stream of one log: plain or gzip'd.
pub fn open(name: &str) -> io::Result<Box<dyn BufRead>> {
    let mut raw: Box<dyn BufRead> = if name == "-" {
        Box::new(BufReader::with_capacity(1 << 20, io::stdin()))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, File::open(name)?))
    };
    let gz = {
        let head = raw.fill_buf()?;
        head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
    };
    if gz {
        let dec = flate2::bufread::MultiGzDecoder::new(raw);
        return Ok(Box::new(BufReader::with_capacity(1 << 20, dec)));
    }
    Ok(raw)
}

/// The display name of a log (`stdin` for `-`).
pub fn display(name: &str) -> &str {
    if name == "-" { "stdin" } else { name }
}

/// Read lines one at a time into a reused buffer: the line without its newline, and
/// whether it had one (a last line without is cut off, or being written).
pub struct Lines<R> {
    r: R,
    pub buf: Vec<u8>,
    pub number: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(r: R) -> Lines<R> {
        Lines {
            r,
            buf: Vec::with_capacity(8192),
            number: 0,
        }
    }

    /// The next line, or None at the end; the bool says whether it ended with a newline.
    pub fn next_line(&mut self) -> io::Result<Option<bool>> {
        self.buf.clear();
        if self.r.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        let whole = self.buf.last() == Some(&b'\n');
        if whole {
            self.buf.pop();
        }
        Ok(Some(whole))
    }
}

/// `path` gzip'd beside it (for the tests).
#[cfg(test)]
pub fn gzip(path: &Path) -> io::Result<std::path::PathBuf> {
    use std::{io::Read, path::PathBuf};
    let out = PathBuf::from(format!("{}.gz", path.display()));
    let mut input = File::open(path)?;
    let mut enc = flate2::write::GzEncoder::new(File::create(&out)?, flate2::Compression::fast());
    let mut buf = Vec::new();
    input.read_to_end(&mut buf)?;
    io::Write::write_all(&mut enc, &buf)?;
    enc.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_oldest_first() {
        let given = [
            "/l/audit.jsonl",
            "/l/audit.jsonl.1",
            "/l/audit.jsonl.10.gz",
            "/l/audit.jsonl.2.gz",
            "/l/audit.jsonl.9.gz",
        ];
        assert_eq!(
            order(given.iter().map(|s| s.to_string()).collect()),
            [
                "/l/audit.jsonl.10.gz",
                "/l/audit.jsonl.9.gz",
                "/l/audit.jsonl.2.gz",
                "/l/audit.jsonl.1",
                "/l/audit.jsonl"
            ]
        );
        let dated = [
            "a.jsonl",
            "a.jsonl-20261201.gz",
            "a.jsonl-20261124.gz",
            "b.log",
        ];
        assert_eq!(
            order(dated.iter().map(|s| s.to_string()).collect()),
            [
                "a.jsonl-20261124.gz",
                "a.jsonl-20261201.gz",
                "a.jsonl",
                "b.log"
            ]
        );
    }

    #[test]
    fn plain_and_gzip_read_alike_and_a_cut_off_last_line_is_told() {
        let dir = std::env::temp_dir().join(format!("lsn-report-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("audit.jsonl");
        std::fs::write(&p, "{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        let gz = gzip(&p).unwrap();
        std::fs::copy(&gz, dir.join("audit.jsonl.1.gz")).unwrap();
        std::fs::remove_file(&gz).unwrap();
        for name in [p.clone(), dir.join("audit.jsonl.1.gz")] {
            let mut l = Lines::new(open(name.to_str().unwrap()).unwrap());
            assert_eq!(l.next_line().unwrap(), Some(true));
            assert_eq!(l.buf, b"{\"a\":1}");
            assert_eq!(l.next_line().unwrap(), Some(true));
            assert_eq!(l.next_line().unwrap(), Some(false));
            assert_eq!(l.buf, b"{\"a\":");
            assert_eq!(l.number, 3);
            assert_eq!(l.next_line().unwrap(), None);
        }
        assert_eq!(
            with_rotations(&p).unwrap(),
            [
                dir.join("audit.jsonl.1.gz").to_string_lossy(),
                p.to_string_lossy()
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
