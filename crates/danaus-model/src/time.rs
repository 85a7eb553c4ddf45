//! Times as users type and read them: `now`, `now-1h`, RFC 3339
//! (`2026-11-24T03:00:00Z`, any offset, fractional seconds allowed) or
//! integer nanoseconds since the epoch; durations in Prometheus' syntax.
//! The project's one RFC 3339 parser and one duration parser: every other
//! front end (PromQL API, CLI, configuration) reads through these.

/// Parses a duration into ns: one or more `<count><unit>` in Prometheus'
/// syntax (`90s`, `5m`, `1h30m`, `250ms`, `2w`, `1y`; units y = 365d, w,
/// d, h, m, s, ms, us, ns). The project's one duration parser: the PromQL
/// API, the CLI and configuration files all read durations through it.
/// Any text gives a value or `None`, never a panic or a wrapped-around
/// value (arithmetic is checked).
pub fn parse_duration_ns(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0i64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let mult: i64 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 604_800_000_000_000,
            "y" => 365 * 86_400_000_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
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

/// RFC 3339 (any offset, fractions to the nanosecond) as ns since the
/// epoch, through `chrono`: the project's one RFC 3339 parser.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok()?.timestamp_nanos_opt()
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

/// Formats ns since the epoch as Go's `time.RFC3339Nano` in UTC does
/// (Prometheus' JSON times): trailing zeros of the fraction dropped, no
/// fraction when it is zero.
pub fn format_rfc3339_nano(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let sub = ns.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut out = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if sub > 0 {
        let frac = format!("{sub:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
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
    fn rfc3339_nano_as_go_writes_it() {
        assert_eq!(format_rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_nano(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(format_rfc3339_nano(951_868_800_000_000_123), "2000-03-01T00:00:00.000000123Z");
    }

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
        // Any offset, fractions to the nanosecond.
        assert_eq!(parse_time("1970-01-01T02:00:01.000000007+02:00", 0).unwrap(), 1_000_000_007);
        assert!(parse_time("2024-01-01T00:00:00+0\u{e9}00", 0).is_err());
    }

    #[test]
    fn durations() {
        let s = 1_000_000_000;
        assert_eq!(parse_duration_ns("90s"), Some(90 * s));
        assert_eq!(parse_duration_ns("1h30m"), Some(5400 * s));
        assert_eq!(parse_duration_ns("250ms"), Some(s / 4));
        assert_eq!(parse_duration_ns("1y2w"), Some((365 + 14) * 86_400 * s));
        for bad in ["", "5", "5q", "m5", "1h-5m", "9999999999999999y", "99999999999999999999s", "1é"] {
            assert_eq!(parse_duration_ns(bad), None, "{bad:?}");
        }
        for ns in [1, 1_000, 250_000_000, 90 * s, 7 * 86_400 * s] {
            assert_eq!(parse_duration_ns(&format_duration_ns(ns)), Some(ns));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_time_a_duration_or_refused(t in "\\PC{0,40}", d in "[0-9smhdwyuµné]{0,24}") {
            let _ = parse_time(&t, 0);
            let _ = parse_duration_ns(&t);
            let _ = parse_duration_ns(&d);
        }
    }
}
