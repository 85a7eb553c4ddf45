//! Field hints: what a leaf's series say about their field values, and
//! what a query's filters require of them.
//!
//! A string value `v` is padded as `^v$` (with two bytes that stand for
//! the anchors) and cut into every 3-byte window, plus its first and last
//! two bytes (so one-character prefixes and suffixes can be asked for).
//! An int64 or bool value is one excerpt, its canonical text. Each excerpt
//! is fingerprinted together with the tenant, the schema and the field
//! (FNV-1a, 64 bits, the same in every process). A leaf also has one
//! fingerprint per (tenant, target schema, metric) it holds series of.
//!
//! A query's equality and regex filters become a [`Requirement`]: clauses
//! that must all hold, each a choice of fingerprint sets of which one must
//! be wholly present. A leaf whose fingerprints fail a requirement holds no
//! series the filters accept: the requirement only asks for excerpts every
//! accepted value has (a regex contributes the literal prefixes or
//! suffixes every match must have, or nothing). So there are false
//! positives (a leaf that has the trigrams but no matching value) and no
//! false negatives (`tests` checks this on random values and filters).

use std::collections::HashSet;

use danaus_model::{FieldType, FieldValue, MetricSchema, TargetSchema};
use danaus_model::{MatchOp, Matcher};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

/// Stands for `^` in excerpts.
const START: u8 = 0x02;
/// Stands for `$` in excerpts.
const END: u8 = 0x03;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over parts separated by `0x00`, fed a part at a time, so a
/// field's prefix (tenant, side, schema, field) is hashed once for all its
/// excerpts.
#[derive(Clone, Copy)]
struct Fnv {
    h: u64,
    parts: usize,
}

impl Fnv {
    fn new() -> Fnv {
        Fnv { h: FNV_OFFSET, parts: 0 }
    }

    fn part(mut self, p: &[u8]) -> Fnv {
        if self.parts > 0 {
            self.h = self.h.wrapping_mul(FNV_PRIME); // `^= 0` then multiply
        }
        for b in p {
            self.h ^= u64::from(*b);
            self.h = self.h.wrapping_mul(FNV_PRIME);
        }
        self.parts += 1;
        self
    }
}

/// FNV-1a over the parts, separated by `0x00`.
fn fnv(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(Fnv::new(), |f, p| f.part(p)).h
}

/// Whose field a fingerprint is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A target schema's field.
    Target,
    /// A metric's field.
    Metric,
}

fn side_tag(s: Side) -> &'static [u8] {
    match s {
        Side::Target => b"t",
        Side::Metric => b"m",
    }
}

/// The fingerprint of one excerpt of a field.
pub fn fingerprint(tenant: &str, side: Side, schema: &str, field: &str, excerpt: &[u8]) -> u64 {
    fnv(&[tenant.as_bytes(), side_tag(side), schema.as_bytes(), field.as_bytes(), excerpt])
}

/// The fingerprint of "holds series of this metric of this target schema".
pub fn presence(tenant: &str, target: &str, metric: &str) -> u64 {
    fnv(&[tenant.as_bytes(), b"f", target.as_bytes(), metric.as_bytes()])
}

/// Calls `f` with each excerpt of a string value.
fn each_string_excerpt(v: &str, mut f: impl FnMut(&[u8])) {
    let v = v.as_bytes();
    if v.is_empty() {
        return f(&[START, END]);
    }
    let at = |i: usize| match i {
        0 => START,
        i if i > v.len() => END,
        i => v[i - 1],
    };
    // The padded value is `START v END`, `v.len() + 2` bytes.
    for i in 0..v.len() {
        f(&[at(i), at(i + 1), at(i + 2)]);
    }
    f(&[START, v[0]]);
    f(&[v[v.len() - 1], END]);
}

/// The excerpts of a string value.
fn string_excerpts(v: &str, out: &mut Vec<Vec<u8>>) {
    each_string_excerpt(v, |e| out.push(e.to_vec()));
}

fn scalar_excerpt(v: &FieldValue) -> Vec<u8> {
    match v {
        FieldValue::String(s) => s.as_bytes().to_vec(),
        FieldValue::Int64(i) => format!("={i}").into_bytes(),
        FieldValue::Bool(b) => format!("={b}").into_bytes(),
    }
}

/// Adds the fingerprints of the fields of one side of a series to `out`.
fn field_fingerprints(
    tenant: &str,
    side: Side,
    schema: &str,
    fields: &[(String, FieldValue)],
    out: &mut impl Extend<u64>,
) {
    for (name, v) in fields {
        let prefix =
            Fnv::new().part(tenant.as_bytes()).part(side_tag(side)).part(schema.as_bytes()).part(name.as_bytes());
        match v {
            FieldValue::String(s) => each_string_excerpt(s, |e| out.extend([prefix.part(e).h])),
            other => out.extend([prefix.part(&scalar_excerpt(other)).h]),
        }
    }
}

/// Adds the fingerprints of a series' target fields to `out`: the part of
/// [`series_fingerprints`] its target's other series share.
pub fn target_fingerprints(
    tenant: &str,
    target_schema: &str,
    target_fields: &[(String, FieldValue)],
    out: &mut impl Extend<u64>,
) {
    field_fingerprints(tenant, Side::Target, target_schema, target_fields, out);
}

/// Adds the fingerprints of a series' metric and metric fields to `out`:
/// [`series_fingerprints`] without [`target_fingerprints`].
pub fn metric_fingerprints(
    tenant: &str,
    target_schema: &str,
    metric: &str,
    metric_fields: &[(String, FieldValue)],
    out: &mut impl Extend<u64>,
) {
    out.extend([presence(tenant, target_schema, metric)]);
    field_fingerprints(tenant, Side::Metric, metric, metric_fields, out);
}

/// Adds the fingerprints of one series to `out`.
pub fn series_fingerprints(
    tenant: &str,
    target_schema: &str,
    target_fields: &[(String, FieldValue)],
    metric: &str,
    metric_fields: &[(String, FieldValue)],
    out: &mut impl Extend<u64>,
) {
    metric_fingerprints(tenant, target_schema, metric, metric_fields, out);
    target_fingerprints(tenant, target_schema, target_fields, out);
}

/// One clause: some alternative's fingerprints must all be present.
pub type Clause = Vec<Vec<u64>>;

/// What a leaf must have to hold a series a fetch's filters accept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirement {
    /// All must hold.
    pub clauses: Vec<Clause>,
}

impl Requirement {
    /// Whether `fps` satisfies every clause.
    pub fn satisfied_by(&self, fps: &HashSet<u64>) -> bool {
        self.clauses.iter().all(|c| c.iter().any(|alt| alt.iter().all(|f| fps.contains(f))))
    }
}

/// Windows of 3 of `q`, or `q` itself when shorter (it is then a prefix
/// or suffix 2-gram, or the whole padded empty string, which leaves index).
fn grams(q: &[u8]) -> Vec<Vec<u8>> {
    if q.len() < 3 {
        return vec![q.to_vec()];
    }
    q.windows(3).map(<[u8]>::to_vec).collect()
}

/// Which side and type a matcher's field has, as the leaf resolves it.
fn resolve<'a>(field: &'a str, target: &TargetSchema, metric: &MetricSchema) -> Option<(Side, &'a str, FieldType)> {
    let t = |n: &'a str| target.field(n).map(|(_, f)| (Side::Target, n, f.field_type));
    let m = |n: &'a str| metric.field(n).map(|(_, f)| (Side::Metric, n, f.field_type));
    if let Some(n) = field.strip_prefix("target.") {
        return t(n);
    }
    if let Some(n) = field.strip_prefix("metric.") {
        return m(n);
    }
    t(field).or_else(|| m(field))
}

/// The requirement of a fetch of `metric` of `target` with `matchers`.
pub fn requirement(tenant: &str, target: &TargetSchema, metric: &MetricSchema, matchers: &[Matcher]) -> Requirement {
    let mut clauses = vec![vec![vec![presence(tenant, &target.name, &metric.name)]]];
    for m in matchers {
        let Some((side, field, ty)) = resolve(&m.field, target, metric) else { continue };
        if side == Side::Metric && metric.field(field).is_some_and(|(_, f)| f.added) && accepts_zero(m, ty) {
            // Series written before the field was added hold no value for
            // it, so no excerpt of it: the matcher may accept them anyway.
            continue;
        }
        let schema = match side {
            Side::Target => target.name.as_str(),
            Side::Metric => metric.name.as_str(),
        };
        let fp = |e: &[u8]| fingerprint(tenant, side, schema, field, e);
        let clause: Option<Clause> = match (m.op, ty) {
            (MatchOp::Eq, FieldType::String) => {
                let mut ex = Vec::new();
                string_excerpts(&m.value, &mut ex);
                Some(vec![ex.iter().map(|e| fp(e)).collect()])
            }
            (MatchOp::Eq, FieldType::Int64) => {
                m.value.trim().parse::<i64>().ok().map(|i| vec![vec![fp(&scalar_excerpt(&FieldValue::Int64(i)))]])
            }
            (MatchOp::Eq, FieldType::Bool) => {
                m.value.trim().parse::<bool>().ok().map(|b| vec![vec![fp(&scalar_excerpt(&FieldValue::Bool(b)))]])
            }
            (MatchOp::Re, FieldType::String) => regex_clause(&m.value)
                .map(|alts| alts.iter().map(|q| grams(q).iter().map(|g| fp(g)).collect()).collect()),
            _ => None,
        };
        if let Some(c) = clause {
            clauses.push(c);
        }
    }
    Requirement { clauses }
}

/// Whether `m` accepts the zero of a field of type `ty` (what series
/// without the field read).
fn accepts_zero(m: &Matcher, ty: FieldType) -> bool {
    let zero = ty.zero().to_text();
    match m.op {
        MatchOp::Eq => danaus_model::FieldValue::parse(ty, &m.value).is_none_or(|v| v == *ty.zero()),
        MatchOp::Re => regex::Regex::new(&format!("^(?:{})$", m.value)).map_or(true, |re| re.is_match(&zero)),
        MatchOp::Ne | MatchOp::Nre => true,
    }
}

/// The padded excerpts one of which every full match of `re` has: its
/// literal prefixes (`^p`, or `^p$` when exact), else its literal
/// suffixes (`s$`); `None` when the regex promises neither.
fn regex_clause(re: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::Parser::new().parse(re).ok()?;
    for prefix in [true, false] {
        let mut ex = Extractor::new();
        ex.kind(if prefix { ExtractKind::Prefix } else { ExtractKind::Suffix });
        let seq = ex.extract(&hir);
        let Some(lits) = seq.literals() else { continue };
        if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty() && !l.is_exact()) {
            continue;
        }
        let alts = lits
            .iter()
            .map(|l| {
                let mut q = Vec::with_capacity(l.as_bytes().len() + 2);
                if prefix || l.is_exact() {
                    q.push(START);
                }
                q.extend_from_slice(l.as_bytes());
                if !prefix || l.is_exact() {
                    q.push(END);
                }
                q
            })
            .collect();
        return Some(alts);
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use danaus_model::FieldDef;
    use proptest::prelude::*;

    fn schemas() -> (TargetSchema, MetricSchema) {
        let t = TargetSchema {
            name: "Task".into(),
            fields: vec![FieldDef::new("cluster", FieldType::String), FieldDef::new("num", FieldType::Int64)],
            location_field: "cluster".into(),
        };
        let m = MetricSchema {
            name: "/rpc/latency".into(),
            fields: vec![FieldDef::new("method", FieldType::String), FieldDef::new("ok", FieldType::Bool)],
            value_type: danaus_model::ValueType::Scalar(danaus_model::ScalarType::Double),
            kind: danaus_model::MetricKind::Gauge,
            unit: String::new(),
            description: String::new(),
            collection: None,
        };
        (t, m)
    }

    fn fps(cluster: &str, num: i64, method: &str, ok: bool) -> HashSet<u64> {
        let mut out = HashSet::new();
        series_fingerprints(
            "t",
            "Task",
            &[("cluster".into(), FieldValue::String(cluster.into())), ("num".into(), FieldValue::Int64(num))],
            "/rpc/latency",
            &[("method".into(), FieldValue::String(method.into())), ("ok".into(), FieldValue::Bool(ok))],
            &mut out,
        );
        out
    }

    fn req(ms: &[(&str, MatchOp, &str)]) -> Requirement {
        let (t, m) = schemas();
        let ms: Vec<Matcher> =
            ms.iter().map(|(f, op, v)| Matcher { field: (*f).into(), op: *op, value: (*v).into() }).collect();
        requirement("t", &t, &m, &ms)
    }

    proptest! {
        /// The streaming fingerprints equal the definition: FNV-1a over
        /// the separated parts, of every 3-byte window of the padded value
        /// and its first and last two bytes (the values stored in every
        /// process and pushed to index servers must not change).
        #[test]
        fn streamed_fingerprints_equal_the_definition(tenant in "[a-z]{0,3}", field in "[a-z]{1,4}", v in "\\PC{0,12}") {
            let mut padded = vec![START];
            padded.extend_from_slice(v.as_bytes());
            padded.push(END);
            let mut want: Vec<u64> = if padded.len() < 3 {
                vec![padded.clone()]
            } else {
                let mut w: Vec<Vec<u8>> = padded.windows(3).map(<[u8]>::to_vec).collect();
                w.push(padded[..2].to_vec());
                w.push(padded[padded.len() - 2..].to_vec());
                w
            }
            .iter()
            .map(|e| {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for (i, p) in [tenant.as_bytes(), b"t", b"S", field.as_bytes(), e].iter().enumerate() {
                    if i > 0 {
                        h = h.wrapping_mul(0x0000_0100_0000_01b3);
                    }
                    for b in *p {
                        h ^= u64::from(*b);
                        h = h.wrapping_mul(0x0000_0100_0000_01b3);
                    }
                }
                h
            })
            .collect();
            let mut got = Vec::new();
            target_fingerprints(&tenant, "S", &[(field.clone(), FieldValue::String(v.clone()))], &mut got);
            prop_assert_eq!(&got, &want);
            let mut ex = Vec::new();
            string_excerpts(&v, &mut ex);
            got = ex.iter().map(|e| fingerprint(&tenant, Side::Target, "S", &field, e)).collect();
            want.sort_unstable();
            got.sort_unstable();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn selective_filters_prune_and_matching_ones_do_not() {
        let leaf = fps("us-east1", 7, "Get", true);
        assert!(req(&[]).satisfied_by(&leaf));
        assert!(req(&[("cluster", MatchOp::Eq, "us-east1")]).satisfied_by(&leaf));
        assert!(!req(&[("cluster", MatchOp::Eq, "eu-west1")]).satisfied_by(&leaf));
        assert!(req(&[("cluster", MatchOp::Re, "us-.*")]).satisfied_by(&leaf));
        assert!(!req(&[("cluster", MatchOp::Re, "eu-.*")]).satisfied_by(&leaf));
        assert!(req(&[("cluster", MatchOp::Re, "(us|eu)-east1")]).satisfied_by(&leaf));
        assert!(req(&[("cluster", MatchOp::Re, ".*east1")]).satisfied_by(&leaf));
        assert!(!req(&[("cluster", MatchOp::Re, ".*west1")]).satisfied_by(&leaf));
        assert!(req(&[("num", MatchOp::Eq, "7")]).satisfied_by(&leaf));
        assert!(!req(&[("num", MatchOp::Eq, "8")]).satisfied_by(&leaf));
        assert!(!req(&[("ok", MatchOp::Eq, "false")]).satisfied_by(&leaf));
        assert!(!req(&[("method", MatchOp::Eq, "Put")]).satisfied_by(&leaf));
        // Negations and unknown fields never prune.
        assert!(req(&[("cluster", MatchOp::Ne, "us-east1"), ("nope", MatchOp::Eq, "x")]).satisfied_by(&leaf));
        // Another tenant's data is not this one's.
        let (t, m) = schemas();
        assert!(!requirement("other", &t, &m, &[]).satisfied_by(&leaf));
    }

    fn full_match(re: &str, v: &str) -> bool {
        regex::Regex::new(&format!("^(?:{re})$")).is_ok_and(|r| r.is_match(v))
    }

    /// Regexes built from fragments of the values and a few operators.
    fn arb_regex() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            "[a-c]{0,3}",
            Just(".*".to_owned()),
            Just(".".to_owned()),
            Just("[ab]".to_owned()),
            Just("(?i)a".to_owned()),
            Just("x?".to_owned()),
        ];
        proptest::collection::vec(atom, 1..4).prop_flat_map(|parts| {
            let joined = parts.concat();
            prop_oneof![Just(joined.clone()), Just(format!("{joined}|b.*")), Just(format!("(a|{joined})c"))]
        })
    }

    proptest! {
        /// No false negatives: whenever a value passes the filter, the
        /// series' fingerprints satisfy the requirement.
        #[test]
        fn no_false_negatives(values in proptest::collection::vec("[abcx]{0,5}", 1..8),
                              eq in "[abcx]{0,5}", re in arb_regex(), num in -3i64..3) {
            for v in &values {
                let leaf = fps(v, num, v, num > 0);
                if v == &eq {
                    prop_assert!(req(&[("cluster", MatchOp::Eq, &eq)]).satisfied_by(&leaf));
                }
                if full_match(&re, v) {
                    prop_assert!(req(&[("cluster", MatchOp::Re, &re)]).satisfied_by(&leaf), "{re:?} {v:?}");
                    prop_assert!(req(&[("method", MatchOp::Re, &re), ("num", MatchOp::Eq, &num.to_string())]).satisfied_by(&leaf));
                }
            }
        }

        /// Pruning happens: an equality on a value no series has fails on
        /// a leaf with one series (up to fingerprint collisions, which
        /// only cost pruning).
        #[test]
        fn absent_values_prune(v in "[a-z]{3,8}", w in "[a-z]{3,8}") {
            prop_assume!(v != w);
            let leaf = fps(&v, 0, "m", true);
            prop_assert!(!req(&[("cluster", MatchOp::Eq, &w)]).satisfied_by(&leaf));
        }
    }
}
