//! Times as users type and read them: `now`, `now-1h`, RFC 3339 UTC
//! (`2026-11-24T03:00:00Z`, fractional seconds allowed) or integer
//! nanoseconds since the epoch.

/// Parses a duration like `90s`, `5m`, `2h`, `7d`, `250ms` into ns.
pub fn parse_duration_ns(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let mult: i64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        "w" => 604_800_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Formats ns as the largest unit that divides it exactly (`90s`, `5m`,
/// `250ms`); [`parse_duration_ns`] reads it back.
pub fn format_duration_ns(ns: i64) -> String {
    const UNITS: [(&str, i64); 8] = [
        ("w", 604_800_000_000_000),
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    if ns <= 0 {
        return format!("{ns}ns");
    }
    let (unit, mult) = UNITS.iter().copied().find(|(_, m)| ns % m == 0).unwrap_or(("ns", 1));
    format!("{}{unit}", ns / mult)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = s.split_once('T')?;
    let mut dp = date.split('-');
    let (y, mo, d): (i64, i64, i64) = (dp.next()?.parse().ok()?, dp.next()?.parse().ok()?, dp.next()?.parse().ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut tp = hms.split(':');
    let (h, mi, se): (i64, i64, i64) = (tp.next()?.parse().ok()?, tp.next()?.parse().ok()?, tp.next()?.parse().ok()?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 || frac.len() > 9 {
        return None;
    }
    let nanos: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Parses a time given `now` in ns.
pub fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a time: use now, now-1h, 2026-11-24T03:00:00Z or nanoseconds since the epoch");
    if s == "now" {
        return Ok(now);
    }
    if let Some(rest) = s.strip_prefix("now-") {
        return parse_duration_ns(rest).map(|d| now - d).ok_or_else(bad);
    }
    if let Some(rest) = s.strip_prefix("now+") {
        return parse_duration_ns(rest).map(|d| now + d).ok_or_else(bad);
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    parse_rfc3339(s).ok_or_else(bad)
}

/// Formats ns since the epoch as RFC 3339 UTC with milliseconds.
pub fn format_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let sub = ns.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, sub / 1_000_000)
}

/// Now in ns since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z", 0).unwrap(), 1_000_000_000);
        assert_eq!(parse_time("2000-03-01T00:00:00.5Z", 0).unwrap(), 951_868_800_500_000_000);
        assert_eq!(parse_time("now-1h", 7_200_000_000_000).unwrap(), 3_600_000_000_000);
        assert_eq!(parse_time("42", 0).unwrap(), 42);
        assert!(parse_time("yesterday", 0).is_err());
        assert_eq!(format_time(951_868_800_500_000_000), "2000-03-01T00:00:00.500Z");
        assert_eq!(format_time(-1_000_000), "1969-12-31T23:59:59.999Z");
        for t in [0i64, 1_700_000_000_123_000_000, -86_400_000_000_000 * 800] {
            assert_eq!(parse_time(&format_time(t), 0).unwrap(), t);
        }
    }
}
