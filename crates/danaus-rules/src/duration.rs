//! Prometheus' duration notation (`model.Duration`): units from years
//! down to milliseconds, each at most once and largest first (`1h30m`,
//! `90s`, `500ms`, `0`), and its canonical text.

const MS: [(&str, i64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a duration into milliseconds; the error is Prometheus' text.
pub fn parse(s: &str) -> Result<i64, String> {
    let bad = || format!("not a valid duration string: {s:?}");
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total: i64 = 0;
    // Units must come in MS order, each at most once.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let k = MS.iter().skip(next_unit).position(|(u, _)| *u == unit).ok_or_else(bad)? + next_unit;
        next_unit = k + 1;
        total = n.checked_mul(MS[k].1).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Prometheus' text for a duration: years and weeks only when exact
/// (`90d`, not `12w6d`), then days down to milliseconds; `0s` for zero.
pub fn format(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut left = ms;
    for (i, (unit, mult)) in MS.iter().enumerate() {
        let exact_only = i < 2;
        if exact_only && left % mult != 0 {
            continue;
        }
        let v = left / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            left -= v * mult;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_as_prometheus_does() {
        for (text, ms, back) in [
            ("0", 0, "0s"),
            ("1m", 60_000, "1m"),
            ("1h30m", 5_400_000, "1h30m"),
            ("90m", 5_400_000, "1h30m"),
            ("90d", 90 * 86_400_000, "90d"),
            ("14d", 14 * 86_400_000, "2w"),
            ("2w", 14 * 86_400_000, "2w"),
            ("1y", 365 * 86_400_000, "1y"),
            ("1s500ms", 1_500, "1s500ms"),
        ] {
            assert_eq!(parse(text), Ok(ms), "{text}");
            assert_eq!(format(ms), back, "{text}");
        }
        for bad in ["", "1", "5x", "1m1h", "1m1m", "m", "-1m", "1.5h"] {
            assert_eq!(parse(bad), Err(format!("not a valid duration string: {bad:?}")), "{bad}");
        }
    }
}
