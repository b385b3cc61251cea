//! Timestamps as microseconds since the Unix epoch (UTC), parsed from and printed as
//! RFC 3339. Hand-written (civil-calendar arithmetic) because the API needs only these
//! two conversions, not a date-time library.

/// Microseconds per second.
pub const MICROS: u64 = 1_000_000;

/// Parses an API time parameter: epoch seconds (`1763780000`, `1763780000.25`) or RFC 3339
/// (`2025-11-22T02:53:20Z`, `2025-11-22T03:53:20.5+01:00`, a space instead of `T`).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_epoch(s);
    }
    parse_rfc3339(s)
        .ok_or_else(|| format!("`{s}` is neither epoch seconds nor an RFC 3339 time like 2025-11-22T02:53:20Z"))
}

fn parse_epoch(s: &str) -> Result<u64, String> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: u64 = int.parse().map_err(|_| format!("`{s}` is not epoch seconds"))?;
    let micros = parse_fraction(frac).ok_or_else(|| format!("`{s}` has a bad fraction"))?;
    secs.checked_mul(MICROS).and_then(|v| v.checked_add(micros)).ok_or_else(|| format!("`{s}` is out of range"))
}

/// Digits after the decimal point, as microseconds (extra digits are truncated).
fn parse_fraction(frac: &str) -> Option<u64> {
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micros = 0u64;
    for i in 0..6 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
        micros = micros * 10 + digit;
    }
    Some(micros)
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let rest = &s[19..];
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (&r[..end], &r[end..])
        }
        None => ("", rest),
    };
    let offset_secs = parse_zone(zone)?;
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(secs * MICROS + parse_fraction(frac)?)
}

fn parse_zone(zone: &str) -> Option<i64> {
    if zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let b = zone.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h: i64 = zone[1..3].parse().ok()?;
    let m: i64 = zone[4..6].parse().ok()?;
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2025-11-22T02:53:20.000005Z`.
pub fn format_rfc3339(micros: u64) -> String {
    let secs = (micros / MICROS) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z", sod / 3600, sod / 60 % 60, sod % 60, micros % MICROS)
}

/// The calendar day (`YYYY-MM-DD`) of a time, as ClickHouse's `toDate` gives it in UTC.
pub fn date_string(micros: u64) -> String {
    format_rfc3339(micros)[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_epoch_and_rfc3339() {
        assert_eq!(parse_time("1763780000"), Ok(1_763_780_000_000_000));
        assert_eq!(parse_time("1763780000.25"), Ok(1_763_780_000_250_000));
        assert_eq!(parse_time("2025-11-22T02:53:20Z"), Ok(1_763_780_000_000_000));
        assert_eq!(parse_time("2025-11-22 03:53:20.5+01:00"), Ok(1_763_780_000_500_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000_000));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-11-22T02:53:20",
            "1.2.3",
            "2025-11-22T02:53:20+1",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for t in [0, 1_763_780_000_000_005, 1_709_164_800_123_456, 4_102_444_799_999_999] {
            assert_eq!(parse_time(&format_rfc3339(t)), Ok(t));
        }
        assert_eq!(format_rfc3339(1_763_780_000_000_005), "2025-11-22T02:53:20.000005Z");
        assert_eq!(date_string(1_763_780_000_000_005), "2025-11-22");
    }
}
