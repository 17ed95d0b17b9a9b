//! Dates as package managers write them. Their logs carry local wall-clock times without
//! a zone; we read them as UTC, which can be off by the machine's UTC offset (at most
//! 14 hours): immaterial for thresholds counted in days, and said in the finding.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn from_parts(year: i64, month: u32, day: u32, h: u32, m: u32, s: u32) -> Option<SystemTime> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(h) * 3600
        + i64::from(m) * 60
        + i64::from(s);
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// `HH:MM:SS` (or `HH:MM`).
fn parse_hms(text: &str) -> Option<(u32, u32, u32)> {
    let mut it = text.split(':').map(|p| p.parse::<u32>().ok());
    let h = it.next()??;
    let m = it.next()??;
    let s = it.next().unwrap_or(Some(0))?;
    Some((h, m, s))
}

/// `YYYY-MM-DD`.
fn parse_ymd(text: &str) -> Option<(i64, u32, u32)> {
    let mut it = text.split('-');
    let y = it.next()?.parse().ok()?;
    let m = it.next()?.parse().ok()?;
    let d = it.next()?.parse().ok()?;
    Some((y, m, d))
}

/// `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD HH:MM` (any run of spaces),
/// optionally followed by a numeric offset (`+0200`, `-05:00`) or `Z`, which is applied.
/// Without an offset the time is read as UTC.
pub fn parse_local_datetime(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', ' '])?;
    let rest = rest.trim_start();
    let (y, mo, d) = parse_ymd(date)?;
    // Split off an offset: the time part ends at the first '+', '-' or 'Z'.
    let end = rest.find(['+', '-', 'Z']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(end);
    let (h, mi, s) = parse_hms(time.trim())?;
    let utc = from_parts(y, mo, d, h, mi, s)?;
    let offset = parse_offset(zone.trim())?;
    Some(if offset >= 0 {
        utc.checked_sub(Duration::from_secs(offset.unsigned_abs()))?
    } else {
        utc.checked_add(Duration::from_secs(offset.unsigned_abs()))?
    })
}

/// `""`, `Z`, `UTC`, `GMT`, `+0200`, `-05:00` -> seconds east of UTC.
fn parse_offset(zone: &str) -> Option<i64> {
    match zone {
        "" | "Z" | "UTC" | "GMT" => return Some(0),
        _ => {}
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..].parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

/// RFC 2822 as in apt Release files: `Sat, 21 Nov 2026 00:53:02 UTC` (`+0000` also).
pub fn parse_rfc2822(text: &str) -> Option<SystemTime> {
    let text = text.split_once(',').map_or(text, |(_, rest)| rest).trim();
    let mut parts = text.split_whitespace();
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()?.get(..3)? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let (h, m, s) = parse_hms(parts.next()?)?;
    let offset = parse_offset(parts.next().unwrap_or("UTC"))?;
    let utc = from_parts(year, month, day, h, m, s)?;
    if offset >= 0 {
        utc.checked_sub(Duration::from_secs(offset.unsigned_abs()))
    } else {
        utc.checked_add(Duration::from_secs(offset.unsigned_abs()))
    }
}

/// Whole days from `then` to `now` (0 when `then` is in the future).
pub fn whole_days(then: SystemTime, now: SystemTime) -> u64 {
    now.duration_since(then).map_or(0, |d| d.as_secs() / 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_core::Timestamp;

    fn rfc3339(t: SystemTime) -> String {
        Timestamp::from_system_time(t).to_string()
    }

    #[test]
    fn apt_history_times() {
        let t = parse_local_datetime("2026-11-23  16:37:45").unwrap();
        assert_eq!(rfc3339(t), "2026-11-23T16:37:45Z");
    }

    #[test]
    fn offsets_are_applied() {
        let t = parse_local_datetime("2024-10-20T10:15:32+0200").unwrap();
        assert_eq!(rfc3339(t), "2024-10-20T08:15:32Z");
        let t = parse_local_datetime("2024-10-20T10:15:32-05:00").unwrap();
        assert_eq!(rfc3339(t), "2024-10-20T15:15:32Z");
        let t = parse_local_datetime("2019-01-01 10:00").unwrap();
        assert_eq!(rfc3339(t), "2019-01-01T10:00:00Z");
        assert_eq!(parse_local_datetime("2024-13-01 10:00:00"), None);
        assert_eq!(parse_local_datetime("garbage"), None);
    }

    #[test]
    fn release_dates() {
        let t = parse_rfc2822("Sat, 21 Nov 2026 00:53:02 UTC").unwrap();
        assert_eq!(rfc3339(t), "2026-11-21T00:53:02Z");
        let t = parse_rfc2822("Thu, 29 Feb 2024 23:00:00 +0100").unwrap();
        assert_eq!(rfc3339(t), "2024-02-29T22:00:00Z");
        assert_eq!(parse_rfc2822("Sat, 21 Foo 2026 00:53:02 UTC"), None);
    }

    #[test]
    fn whole_days_floor_and_clamp() {
        let a = parse_local_datetime("2026-01-01 00:00:00").unwrap();
        let b = parse_local_datetime("2026-01-15 23:59:59").unwrap();
        assert_eq!(whole_days(a, b), 14);
        assert_eq!(whole_days(b, a), 0);
    }
}
