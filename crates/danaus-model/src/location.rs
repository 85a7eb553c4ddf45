//! Which zone owns a location: each zone lists the locations it owns as
//! exact values or prefixes ending in `*`; a zone listing none owns every
//! location no other zone claims. Routers forward writes by it, and the
//! root mixer skips zones a query's location filter rules out.

/// Whether `patterns` (exact values, or prefixes ending in `*`) claim
/// `location`.
pub fn claims(patterns: &[String], location: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => location.starts_with(prefix),
        None => p == location,
    })
}

/// The zone owning `location`: the first whose patterns claim it, else the
/// first listing no patterns.
pub fn owner<'a, Z>(zones: &'a [Z], patterns: impl Fn(&Z) -> &[String], location: &str) -> Option<&'a Z> {
    zones.iter().find(|z| claims(patterns(z), location)).or_else(|| zones.iter().find(|z| patterns(z).is_empty()))
}
