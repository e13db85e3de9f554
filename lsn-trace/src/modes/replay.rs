//! Ring-buffer records kept in a file, and fed again through the agent's own pipeline —
//! decode → story → renderer or audit log — with no kernel involved.
//!
//! What it is for: `cargo xtask bench --replay` counts the instructions the agent spends
//! per event with callgrind on a recorded bind storm, a figure that does not move with the
//! host's load as wall-clock figures do; the golden outputs of `tests/replay.rs` pin every
//! format's bytes on that same storm.
//!
//! * `lsn-trace --record-raw FILE …` (hidden) writes every record the ring delivers, as the
//!   kernel side wrote it, after a header that keeps the run's clock offset; the kernel
//!   socket pointer is scrambled first (the file holds no kernel address, only an identity);
//! * `lsn-trace replay FILE --format json|human|strace|audit` (hidden) decodes them and
//!   hands them to the sink of that format, writing to stdout as the live agent does.
//!
//! The file: `MAGIC`, the record size (u32 LE), 4 zero bytes, wall clock minus
//! CLOCK_MONOTONIC at the recording (i64 LE, ns), then records of that size back to back.
//! A recording made with another layout of `wire::Event` is refused, with how to make a
//! new one.
use std::{
    fs::File,
    io::{self, BufWriter, Write as _},
    mem::{offset_of, size_of},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use lsn_trace_common as wire;

use crate::{
    audit,
    event::Decoder,
    output::{self, Format},
    pipeline::{Pipeline, Sink},
};

const MAGIC: &[u8; 8] = b"LSNRAW\0\x01";
const HEADER: usize = 24;
const RECORD: usize = size_of::<wire::Event>();

/// Where `--record-raw` writes.
pub struct Recording {
    out: BufWriter<File>,
    /// Its own random key: scrambles the socket pointer before it reaches the file.
    scrambler: Decoder,
}

impl Recording {
    /// A new recording at `path`, for records that `decoder` decodes.
    pub fn create(path: &Path, decoder: &Decoder) -> Result<Recording> {
        let file = File::create(path)
            .with_context(|| format!("creating the recording {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        out.write_all(MAGIC)?;
        out.write_all(&(RECORD as u32).to_le_bytes())?;
        out.write_all(&[0; 4])?;
        out.write_all(&decoder.boot_to_wall_ns().to_le_bytes())?;
        Ok(Recording {
            out,
            scrambler: Decoder::new(),
        })
    }

    /// One record as the ring delivered it (a record of another size is not an event).
    pub fn record(&mut self, item: &[u8]) -> io::Result<()> {
        let Some(item) = item.get(..RECORD) else {
            return Ok(());
        };
        let mut rec = [0u8; RECORD];
        rec.copy_from_slice(item);
        let at = offset_of!(wire::Event, sock_ptr);
        let ptr = u64::from_ne_bytes(rec[at..at + 8].try_into().expect("8 bytes"));
        if ptr != 0 {
            // 0 means "no socket": a scrambled pointer must not become it.
            let id = self.scrambler.scramble(ptr).max(1);
            rec[at..at + 8].copy_from_slice(&id.to_ne_bytes());
        }
        self.out.write_all(&rec)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A recording read back: its records, whole, back to back.
pub struct Recorded {
    boot_to_wall_ns: i64,
    records: Vec<u8>,
}

impl Recorded {
    pub fn read(path: &Path) -> Result<Recorded> {
        let data = std::fs::read(path)
            .with_context(|| format!("reading the recording {}", path.display()))?;
        Recorded::parse(data).with_context(|| format!("{}", path.display()))
    }

    fn parse(mut data: Vec<u8>) -> Result<Recorded> {
        if data.len() < HEADER || &data[..8] != MAGIC {
            bail!("not a recording of `lsn-trace --record-raw`");
        }
        let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        let size = word(8) as usize;
        if size != RECORD {
            bail!(
                "recorded with {size}-byte records, and this build's wire::Event has {RECORD}: \
                 record the storm again (`cargo xtask bench --record-replay`)"
            );
        }
        let boot_to_wall_ns = i64::from_le_bytes(data[16..24].try_into().expect("8 bytes"));
        data.drain(..HEADER);
        if !data.len().is_multiple_of(RECORD) {
            bail!("truncated: the last record is incomplete");
        }
        Ok(Recorded {
            boot_to_wall_ns,
            records: data,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.len() / RECORD
    }

    fn records(&self) -> impl Iterator<Item = &[u8]> {
        self.records.chunks_exact(RECORD)
    }

    /// Attribute every record to process `pid` (its pid and tid).
    fn attribute_to(&mut self, pid: u32) {
        for rec in self.records.chunks_exact_mut(RECORD) {
            for at in [offset_of!(wire::Event, pid), offset_of!(wire::Event, tid)] {
                rec[at..at + 4].copy_from_slice(&pid.to_ne_bytes());
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayFormat {
    Human,
    Json,
    Strace,
    /// The audit log's records (`lsn-trace audit`), on stdout.
    Audit,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A recording made with `lsn-trace --record-raw FILE`.
    file: PathBuf,
    #[arg(long, value_enum, default_value = "json")]
    format: ReplayFormat,
    /// Replay the records this many times over (each pass is one drained batch).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Attribute the records to this process, or `self` (this one): the audit log reads
    /// who a process is from /proc, so the recorded workload's pid, long gone, would make
    /// every record look up a process that no longer exists — not what the live agent does.
    #[arg(long, value_name = "PID|self", value_parser = as_pid)]
    as_pid: Option<u32>,
}

fn as_pid(s: &str) -> Result<u32, String> {
    match s {
        "self" => Ok(std::process::id()),
        n => n
            .parse()
            .map_err(|_| format!("`{n}` is neither a pid nor `self`")),
    }
}

/// `lsn-trace replay`: the recording through the sink of `--format`, on stdout.
pub fn run(args: Args) -> ExitCode {
    match replay(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.downcast_ref::<io::Error>().map(io::Error::kind)
                == Some(io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!("lsn-trace: replay: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn replay(args: &Args) -> Result<()> {
    let mut recorded = Recorded::read(&args.file)?;
    if let Some(pid) = args.as_pid {
        recorded.attribute_to(pid);
    }
    let mut decoder = Decoder::replaying(recorded.boot_to_wall_ns);
    let mut sink: Box<dyn Sink> = match args.format {
        ReplayFormat::Audit => Box::new(audit::open(&audit::AuditArgs {
            log: None,
            policy: None,
            metrics: None,
        })?),
        f => {
            let format = match f {
                ReplayFormat::Human => Format::Human,
                ReplayFormat::Strace => Format::Strace,
                _ => Format::Json,
            };
            Box::new(crate::StdoutSink {
                render: output::renderer(format, output::Options::default()),
                // As the live trace's default output.
                hide_never_listening: format == Format::Human,
                hidden: 0,
                buf: Vec::new(),
                out: io::stdout(),
            })
        }
    };
    // The tracer's own stages from here: each pass over the records is one drained batch.
    let mut pipeline = Pipeline::new(&mut *sink);
    for _ in 0..args.repeat {
        for item in recorded.records() {
            if let Some(ev) = decoder.decode_record(item) {
                pipeline.event(&ev)?;
            }
        }
        pipeline.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_reads_back_as_written() {
        let path = std::env::temp_dir().join(format!("lsn-replay-{}.raw", std::process::id()));
        let decoder = Decoder::new();
        // SAFETY: plain data, all-zero is valid.
        let mut ev: wire::Event = unsafe { std::mem::zeroed() };
        ev.kind = wire::EventKind::Listen as u8;
        ev.pid = 7;
        ev.sock_ptr = 0xffff_8880_1234_5600;
        // SAFETY: a fully initialised plain-data struct, viewed as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const ev).cast::<u8>(), size_of::<wire::Event>())
        };
        let mut rec = Recording::create(&path, &decoder).unwrap();
        rec.record(bytes).unwrap();
        rec.record(&bytes[..10]).unwrap();
        rec.flush().unwrap();
        drop(rec);
        let file = std::fs::read(&path).unwrap();
        assert!(
            !file.windows(8).any(|w| w == ev.sock_ptr.to_ne_bytes()),
            "the file holds no kernel address"
        );
        let mut back = Recorded::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.len(), 1, "a short record is no event");
        assert_eq!(back.boot_to_wall_ns, decoder.boot_to_wall_ns());
        back.attribute_to(99);
        let got = Decoder::replaying(back.boot_to_wall_ns)
            .decode_record(back.records().next().unwrap())
            .unwrap();
        assert_eq!((got.pid, got.tid), (99, 99));
        assert!(got.sock_id.is_some());

        let mut other = MAGIC.to_vec();
        other.extend_from_slice(&300u32.to_le_bytes());
        other.extend_from_slice(&[0; 12]);
        let err = Recorded::parse(other).err().unwrap().to_string();
        assert!(err.contains("record the storm again"), "{err}");
    }
}
