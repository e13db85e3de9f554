//! Renderers: one event in, text out. Each writes into a caller-owned buffer so the hot
//! path allocates nothing per event beyond what formatting needs.
pub mod emit;
pub mod human;
pub mod json;
pub mod json_fast;
pub mod strace;
pub mod text;

use crate::event::Event;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One readable line per event.
    Human,
    /// JSON Lines, one object per event (docs/json-schema.md).
    Json,
    /// Each call as `strace -f` prints it.
    Strace,
}

pub trait Render {
    fn event(&mut self, out: &mut Vec<u8>, ev: &Event);
    /// The event with what the story made of it (verdict, summary, explanation).
    /// Renderers that have no place for it show the event alone.
    fn event_noted(&mut self, out: &mut Vec<u8>, ev: &Event, note: &crate::story::Note) {
        let _ = note;
        self.event(out, ev);
    }
    /// Events the kernel side could not deliver since the last report.
    fn lost(&mut self, out: &mut Vec<u8>, count: u64, reason: &str);
}

/// How events are shown, beyond the format.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// `-t`: also (human: instead) show seconds since this wall-clock time (ns).
    pub relative_to_ns: Option<u64>,
    /// `--all` while following: mark the followed processes' events.
    pub mark_followed: bool,
}

impl Options {
    /// Seconds from the start of the trace, when asked for.
    pub fn rel(&self, ev: &Event) -> Option<f64> {
        self.relative_to_ns
            .map(|t0| (ev.time_ns as i128 - t0 as i128) as f64 / 1e9)
    }
}

pub fn renderer(format: Format, opts: Options) -> Box<dyn Render + Send> {
    match format {
        Format::Human => Box::new(human::Human::new(opts)),
        Format::Json => Box::new(json::Json::new(opts)),
        Format::Strace => Box::new(strace::Strace::new(opts)),
    }
}

/// The wall clock now, in nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `2026-11-22T05:01:02.123456Z` from nanoseconds since the epoch.
pub fn rfc3339(ns: u64) -> String {
    let (date, hms, micros) = split_time(ns);
    format!(
        "{}-{:02}-{:02}T{}.{micros:06}Z",
        date.0, date.1, date.2, hms
    )
}

/// [`rfc3339`] appended to `out` without allocating (the JSON hot path).
pub fn write_rfc3339(out: &mut Vec<u8>, ns: u64) {
    /// `YYYY-MM-DDTHH:MM:SS` of the last second written: the events of a storm share it.
    type Second = Option<(u64, [u8; 19])>;
    thread_local! {
        static LAST: std::cell::Cell<Second> = const { std::cell::Cell::new(None) };
    }
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1000;
    let head = match LAST.get() {
        Some((s, head)) if s == secs => head,
        _ => {
            let mut head = Vec::with_capacity(19);
            let (days, rem) = ((secs / 86_400) as i64, (secs % 86_400) as u32);
            let (y, m, d) = civil_from_days(days);
            if !(1000..=9999).contains(&y) {
                out.extend_from_slice(rfc3339(ns).as_bytes());
                return;
            }
            let y = y as u32;
            emit::two_digits(&mut head, y / 100);
            emit::two_digits(&mut head, y % 100);
            head.push(b'-');
            emit::two_digits(&mut head, m);
            head.push(b'-');
            emit::two_digits(&mut head, d);
            head.push(b'T');
            write_hms(&mut head, rem);
            let head: [u8; 19] = head.try_into().expect("19 bytes");
            LAST.set(Some((secs, head)));
            head
        }
    };
    out.extend_from_slice(&head);
    out.push(b'.');
    write_micros(out, micros as u32);
    out.push(b'Z');
}

/// `05:01:02` from seconds into the day.
fn write_hms(out: &mut Vec<u8>, secs: u32) {
    emit::two_digits(out, secs / 3600);
    out.push(b':');
    emit::two_digits(out, secs / 60 % 60);
    out.push(b':');
    emit::two_digits(out, secs % 60);
}

/// Six digits.
fn write_micros(out: &mut Vec<u8>, micros: u32) {
    emit::two_digits(out, micros / 10_000);
    emit::two_digits(out, micros / 100 % 100);
    emit::two_digits(out, micros % 100);
}

/// [`clock`] appended to `out` without allocating (the human hot path).
pub fn write_clock(out: &mut Vec<u8>, ns: u64) {
    let secs = ns / 1_000_000_000;
    write_hms(out, (secs % 86_400) as u32);
    out.push(b'.');
    write_micros(out, ((ns % 1_000_000_000) / 1000) as u32);
}

/// `05:01:02.123456`, UTC.
#[cfg(test)]
pub fn clock(ns: u64) -> String {
    let (_, hms, micros) = split_time(ns);
    format!("{hms}.{micros:06}")
}

fn split_time(ns: u64) -> ((i64, u32, u32), String, u64) {
    let secs = (ns / 1_000_000_000) as i64;
    let micros = (ns % 1_000_000_000) / 1000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let hms = format!("{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60);
    (civil_from_days(days), hms, micros)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_formats() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000000Z");
        // 2026-11-22T04:55:07.5Z
        let ns = 1_795_323_307_500_000_000;
        assert_eq!(super::rfc3339(ns), "2026-11-22T04:55:07.500000Z");
        assert_eq!(super::clock(ns), "04:55:07.500000");
        for ns in [
            0,
            ns,
            951_782_400_000_000_000,
            253_402_300_799_999_999,
            1_795_323_307_512_345_678,
        ] {
            let mut out = Vec::new();
            super::write_rfc3339(&mut out, ns);
            assert_eq!(String::from_utf8(out).unwrap(), super::rfc3339(ns));
            let mut out = Vec::new();
            super::write_clock(&mut out, ns);
            assert_eq!(String::from_utf8(out).unwrap(), super::clock(ns));
        }
        assert_eq!(
            super::rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
