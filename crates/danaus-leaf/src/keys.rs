//! Key layout in the long-term store.
//!
//! * `Meta`: `schema/target/<tenant>\0<name>` and `schema/metric/<tenant>\0<name>`
//!   → schema JSON; `state/next_series_id` and `state/next_chunk_seq` → u64 BE;
//!   `agg_open/<series id u64 BE>` → a recovery-log record of the deltas in
//!   that output series' open collection-aggregation buckets (checkpointed).
//! * `Series`: series id (u64 BE) → `uvarint len | series key | value type |
//!   kind | zigzag max time`.
//! * `Chunks`: series id (u64 BE) | chunk min time (i64, sign-flipped BE) |
//!   chunk sequence (u64 BE) → chunk bytes. Sorting by min time lets a read
//!   seek to `start − MAX_CHUNK_SPAN` instead of scanning the series.

pub(crate) const NEXT_SERIES_ID: &[u8] = b"state/next_series_id";
pub(crate) const NEXT_CHUNK_SEQ: &[u8] = b"state/next_chunk_seq";

pub(crate) const AGG_OPEN_PREFIX: &[u8] = b"agg_open/";

pub(crate) fn agg_open_key(id: u64) -> Vec<u8> {
    let mut k = AGG_OPEN_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn schema_key(kind: &str, tenant: &str, name: &str) -> Vec<u8> {
    format!("schema/{kind}/{tenant}\0{name}").into_bytes()
}

pub(crate) fn schema_prefix(kind: &str) -> Vec<u8> {
    format!("schema/{kind}/").into_bytes()
}

/// The smallest key strictly greater than every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

pub(crate) fn series_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn flip(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn chunk_key(series: u64, min_time: i64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(&series.to_be_bytes());
    k.extend_from_slice(&flip(min_time));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn u64_value(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_sort_by_series_then_time() {
        assert!(chunk_key(1, i64::MAX, 0) < chunk_key(2, i64::MIN, 0));
        assert!(chunk_key(1, -5, 9) < chunk_key(1, 3, 0));
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(&[1, 0xFF]), vec![2]);
    }
}
