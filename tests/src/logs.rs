//! Audit logs of a test: a temporary directory for them, and their records as they are
//! written (`lsn-trace audit --log`).
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::Value;

/// A fresh directory for one test's files, removed with everything in it on drop.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh directory named after the test binary (two test files may use one name) and
/// `name`.
pub fn dir(name: &str) -> TempDir {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|e| e.file_stem())
        .and_then(|s| s.to_str())
        .and_then(|s| s.split('-').next())
        .unwrap_or("test");
    let d = std::env::temp_dir().join(format!("lsn-trace-{stem}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// Every record of the log file, each line checked to be one whole JSON object. A last
/// line without its newline is being written right now (a reader may see a write in
/// progress): it is left for the next look.
pub fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut out = Vec::new();
    for line in complete.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {line:?}", path.display()));
        out.push(v);
    }
    out
}

/// The records of a log no one writes any more: it must end with a whole line.
pub fn final_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "{} ends mid-line", path.display());
    records(path)
}

/// Wait until at least `n` records of `path` match.
pub fn wait_records(path: &Path, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<Value> = records(path).into_iter().filter(|v| pred(v)).collect();
        if found.len() >= n {
            return found;
        }
        if Instant::now() > deadline {
            panic!(
                "expected {n} matching records in {}, got {}: {found:#?}",
                path.display(),
                found.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An audit instance logging to `path`, of this test process's calls only (the kernel
/// filters apply to audit too), so other processes on a busy host cannot crowd it out.
pub fn start_audit(path: &Path) -> crate::Tracer {
    let me = std::process::id().to_string();
    crate::Tracer::start(&["--pid", &me, "audit", "--log", path.to_str().unwrap()])
}
