//! Moments, as a person types them and as the log writes them. Microseconds since the
//! epoch (`Micros`), the log's own precision.
//!
//! Accepted (journalctl's conventions, where it has them): RFC 3339 (`2026-12-02T03:12:00Z`,
//! `…+01:00`, a space for the `T`, no zone = local time), a date (`2026-12-02`, local
//! midnight), a clock time today (`03:12`, `03:12:30`), `yesterday 03:12`, `today 03:12`,
//! `yesterday`, `today`, `now`, and a time relative to now (`-2h`, `-1h30m`, `-90s`,
//! `-3d`). Local time and "now" come from a `Zone` and a clock the caller passes, so all of
//! this is pure and tested without the host's time zone.
use crate::output::civil_from_days;

pub type Micros = i64;

const SEC: Micros = 1_000_000;
const DAY_SECS: i64 = 86_400;

/// The local time zone: UTC offsets, in seconds.
pub trait Zone {
    /// The offset in force at UTC second `utc`.
    fn offset_at(&self, utc: i64) -> i64;
    /// The offset of a local wall-clock second (`local` = UTC + offset); in a DST overlap,
    /// the earlier one, as mktime(3) picks with tm_isdst = -1.
    fn offset_of_local(&self, local: i64) -> i64;
}

/// A zone with one offset (UTC: `Fixed(0)`).
pub struct Fixed(pub i64);

impl Zone for Fixed {
    fn offset_at(&self, _: i64) -> i64 {
        self.0
    }
    fn offset_of_local(&self, _: i64) -> i64 {
        self.0
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant), the inverse of
/// `civil_from_days`.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// A record's `time` (`2026-12-02T07:16:45.125903Z`, as audit writes it), fast; any other
/// RFC 3339 form through [`parse_rfc3339`].
pub fn parse_record_time(s: &str) -> Option<Micros> {
    let b = s.as_bytes();
    if b.len() == 27 && b[26] == b'Z' && b[10] == b'T' && b[19] == b'.' {
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let mut n = 0i64;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return None;
                }
                n = n * 10 + i64::from(c - b'0');
            }
            Some(n)
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec, us) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
        if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        if !(1..=12).contains(&mo) || d < 1 || d > i64::from(days_in_month(y, mo as u32)) {
            return None;
        }
        if h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let days = days_from_civil(y, mo as u32, d as u32);
        return Some((days * DAY_SECS + h * 3600 + mi * 60 + sec) * SEC + us);
    }
    parse_rfc3339(s, &Fixed(0))
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.frac]]][Z|±HH:MM]`; without a zone, local time.
pub fn parse_rfc3339(s: &str, zone: &dyn Zone) -> Option<Micros> {
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut it = date.split('-');
    let y: i64 = digits(it.next()?, 4)?;
    let m: u32 = digits(it.next()?, 2)?.try_into().ok()?;
    let d: u32 = digits(it.next()?, 2)?.try_into().ok()?;
    if it.next().is_some() || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let day = days_from_civil(y, m, d) * DAY_SECS;
    let Some(rest) = rest else {
        return Some(local_to_utc(day, zone) * SEC);
    };
    let (clock, offset) = split_zone(rest)?;
    let (secs, frac) = parse_clock(clock)?;
    let local = day + secs;
    let utc = match offset {
        Some(off) => local - off,
        None => local_to_utc(local, zone),
    };
    Some(utc * SEC + frac)
}

/// `n` decimal digits exactly.
fn digits(s: &str, n: usize) -> Option<i64> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// The clock part and its zone: `Z` (0), `±HH:MM`/`±HHMM` (seconds east), or none.
fn split_zone(s: &str) -> Option<(&str, Option<i64>)> {
    if let Some(c) = s.strip_suffix(['Z', 'z']) {
        return Some((c, Some(0)));
    }
    if let Some(i) = s.rfind(['+', '-']) {
        let (clock, z) = (&s[..i], &s[i + 1..]);
        let sign = if s.as_bytes()[i] == b'-' { -1 } else { 1 };
        let (h, m) = match z.split_once(':') {
            Some((h, m)) => (digits(h, 2)?, digits(m, 2)?),
            None if z.len() == 4 => (digits(&z[..2], 2)?, digits(&z[2..], 2)?),
            None => return None,
        };
        if h > 23 || m > 59 {
            return None;
        }
        return Some((clock, Some(sign * (h * 3600 + m * 60))));
    }
    Some((s, None))
}

/// `HH:MM[:SS[.frac]]` → (seconds into the day, microseconds).
fn parse_clock(s: &str) -> Option<(i64, Micros)> {
    let (hms, frac) = match s.split_once('.') {
        Some((hms, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut us = 0i64;
            for (i, b) in f.bytes().take(6).enumerate() {
                us += i64::from(b - b'0') * 10i64.pow(5 - i as u32);
            }
            (hms, us)
        }
        Some(_) => return None,
        None => (s, 0),
    };
    let mut it = hms.split(':');
    let h = digits(it.next()?, 2)?;
    let m = digits(it.next()?, 2)?;
    let sec = match it.next() {
        Some(x) => digits(x, 2)?,
        None if frac == 0 => 0,
        None => return None,
    };
    if it.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((h * 3600 + m * 60 + sec, frac))
}

fn local_to_utc(local: i64, zone: &dyn Zone) -> i64 {
    local - zone.offset_of_local(local)
}

/// `-2h`, `-1h30m`, `-90s`, `-3d`, `-1w` (also `+…`, and `2h ago`) → microseconds.
fn parse_relative(s: &str) -> Option<Micros> {
    let (sign, body) = if let Some(b) = s.strip_suffix(" ago") {
        (-1, b.trim())
    } else if let Some(b) = s.strip_prefix('-') {
        (-1, b)
    } else if let Some(b) = s.strip_prefix('+') {
        (1, b)
    } else {
        return None;
    };
    let mut total = 0i64;
    let mut num = String::new();
    let mut any = false;
    for c in body.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            'w' => 7 * DAY_SECS,
            'd' => DAY_SECS,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let n: i64 = std::mem::take(&mut num).parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(sign * total * SEC)
}

/// What `--at`, `--since`, `--until` and `--diff` take, at wall-clock `now`.
pub fn parse(s: &str, now: Micros, zone: &dyn Zone) -> Result<Micros, String> {
    let t = s.trim();
    let today = || {
        let now_s = now.div_euclid(SEC);
        let local = now_s + zone.offset_at(now_s);
        local - local.rem_euclid(DAY_SECS)
    };
    let at_day = |day_local: i64, clock: &str| -> Option<Micros> {
        let (secs, frac) = parse_clock(clock)?;
        Some(local_to_utc(day_local + secs, zone) * SEC + frac)
    };
    let parsed = match t {
        "now" => Some(now),
        "today" => Some(local_to_utc(today(), zone) * SEC),
        "yesterday" => Some(local_to_utc(today() - DAY_SECS, zone) * SEC),
        _ => {
            if let Some(c) = t.strip_prefix("yesterday ") {
                at_day(today() - DAY_SECS, c.trim())
            } else if let Some(c) = t.strip_prefix("today ") {
                at_day(today(), c.trim())
            } else if t.starts_with(['-', '+']) || t.ends_with(" ago") {
                parse_relative(t).map(|d| now + d)
            } else if t.len() <= 12 && t.contains(':') && !t.contains('-') {
                at_day(today(), t)
            } else {
                parse_rfc3339(t, zone)
            }
        }
    };
    parsed.ok_or_else(|| {
        format!(
            "`{}` is not a time: write RFC 3339 (2026-12-02T03:12:00Z, or without the zone \
             for local time), a date (2026-12-02), a clock time today (03:12), \
             `yesterday 03:12`, `now`, or a time relative to now (-2h, -1h30m, -3d)",
            crate::text::terminal(s).into_owned()
        )
    })
}

/// `2026-12-02 03:12:05` in `zone`'s local time.
pub fn local(t: Micros, zone: &dyn Zone) -> String {
    let s = t.div_euclid(SEC);
    let local = s + zone.offset_at(s);
    let (y, m, d) = civil_from_days(local.div_euclid(DAY_SECS));
    let r = local.rem_euclid(DAY_SECS);
    format!(
        "{y}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

/// `UTC`, `UTC+01:00`: the offset in force at `t`, for a header line.
pub fn zone_name(t: Micros, zone: &dyn Zone) -> String {
    let off = zone.offset_at(t.div_euclid(SEC));
    if off == 0 {
        return "UTC".into();
    }
    let sign = if off < 0 { '-' } else { '+' };
    format!(
        "UTC{sign}{:02}:{:02}",
        off.abs() / 3600,
        off.abs() / 60 % 60
    )
}

/// The host's zone, from the C library (TZ, /etc/localtime).
pub struct Local;

impl Zone for Local {
    fn offset_at(&self, utc: i64) -> i64 {
        let t = utc as libc::time_t;
        // SAFETY: localtime_r writes only into `tm`.
        unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            if libc::localtime_r(&t, &mut tm).is_null() {
                return 0;
            }
            tm.tm_gmtoff
        }
    }

    fn offset_of_local(&self, local: i64) -> i64 {
        let (y, m, d) = civil_from_days(local.div_euclid(DAY_SECS));
        let r = local.rem_euclid(DAY_SECS);
        // SAFETY: mktime reads and normalizes `tm` only.
        unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            tm.tm_year = (y - 1900) as i32;
            tm.tm_mon = m as i32 - 1;
            tm.tm_mday = d as i32;
            tm.tm_hour = (r / 3600) as i32;
            tm.tm_min = (r / 60 % 60) as i32;
            tm.tm_sec = (r % 60) as i32;
            tm.tm_isdst = -1;
            let utc = libc::mktime(&mut tm);
            if utc == -1 {
                return 0;
            }
            local - utc
        }
    }
}

/// The wall clock now.
pub fn now() -> Micros {
    (crate::output::now_ns() / 1000) as Micros
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02T10:00:00Z.
    const NOW: Micros = 1_796_205_600 * SEC;

    #[test]
    fn record_times_round_trip_with_the_writer() {
        for ns in [0u64, 1_796_205_645_125_903_000, 951_782_400_000_001_000] {
            let s = crate::output::rfc3339(ns);
            assert_eq!(parse_record_time(&s), Some((ns / 1000) as Micros), "{s}");
        }
        assert_eq!(
            parse_record_time("2026-12-02T10:00:00Z"),
            Some(NOW),
            "other RFC 3339 forms too"
        );
        assert_eq!(parse_record_time("2026-02-30T10:00:00.000000Z"), None);
        assert_eq!(parse_record_time("yesterday"), None);
    }

    #[test]
    fn every_accepted_form() {
        let utc = Fixed(0);
        let p = |s: &str| parse(s, NOW, &utc);
        assert_eq!(p("2026-12-02T10:00:00Z"), Ok(NOW));
        assert_eq!(p("2026-12-02T11:00:00+01:00"), Ok(NOW));
        assert_eq!(p("2026-12-02 09:30:00-0030"), Ok(NOW));
        assert_eq!(p("2026-12-02T10:00:00.5Z"), Ok(NOW + SEC / 2));
        assert_eq!(p("2026-12-02T10:00"), Ok(NOW));
        assert_eq!(p("2026-12-02"), Ok(NOW - 10 * 3600 * SEC));
        assert_eq!(p("03:12"), Ok(NOW - (6 * 3600 + 48 * 60) * SEC));
        assert_eq!(p("03:12:30"), Ok(NOW - (6 * 3600 + 47 * 60 + 30) * SEC));
        assert_eq!(p("yesterday 03:12"), Ok(NOW - (30 * 3600 + 48 * 60) * SEC));
        assert_eq!(p("today 10:00"), Ok(NOW));
        assert_eq!(p("yesterday"), Ok(NOW - 34 * 3600 * SEC));
        assert_eq!(p("now"), Ok(NOW));
        assert_eq!(p("-2h"), Ok(NOW - 7200 * SEC));
        assert_eq!(p("-1h30m"), Ok(NOW - 5400 * SEC));
        assert_eq!(p("2h ago"), Ok(NOW - 7200 * SEC));
        assert_eq!(p("-3d"), Ok(NOW - 3 * DAY_SECS * SEC));
        assert_eq!(p("+90s"), Ok(NOW + 90 * SEC));
        for bad in [
            "",
            "3:12",
            "25:00",
            "2026-13-01",
            "2026-02-29",
            "-2",
            "-2x",
            "tomorrow",
            "-h",
            "2026-12-02T10:00:00+25:00",
            "2026-12-02T10:00:00.Z",
        ] {
            let e = p(bad).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }

    #[test]
    fn local_time_in_a_zone_east_of_utc() {
        let cet = Fixed(3600);
        // 03:12 local on 2026-12-02 is 02:12Z.
        assert_eq!(
            parse("03:12", NOW, &cet),
            parse("2026-12-02T02:12:00Z", NOW, &cet)
        );
        // 23:30Z on 12-01 is already 00:30 on 12-02 local: "today" is the local day.
        let early = NOW - (10 * 3600 + 30 * 60) * SEC;
        assert_eq!(
            parse("yesterday 23:00", early, &cet),
            parse("2026-12-01T22:00:00Z", NOW, &cet)
        );
        assert_eq!(local(NOW, &cet), "2026-12-02 11:00:00");
        assert_eq!(zone_name(NOW, &cet), "UTC+01:00");
        assert_eq!(zone_name(NOW, &Fixed(-5400)), "UTC-01:30");
        assert_eq!(local(NOW, &Fixed(0)), "2026-12-02 10:00:00");
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
