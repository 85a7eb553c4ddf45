//! The gRPC API's requests as the servers read them: arbitrary and
//! mutated bytes decoded as `WriteRequest`, `ApplySchemasRequest`,
//! `ReadRequest` and `QueryRequest`, then converted to the data model and
//! validated as the servers do. Decoding may fail; nothing panics, and
//! what converts is either valid or refused with an error.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashMap;

use danaus_proto::convert;
use danaus_proto::v1 as pb;
use proptest::prelude::*;
use prost::Message;

fn s(v: &str) -> pb::FieldValue {
    pb::FieldValue { value: Some(pb::field_value::Value::StringValue(v.into())) }
}

/// A valid request with every kind of value, to mutate.
fn write_request() -> Vec<u8> {
    let dist = pb::Distribution {
        bucketer: Some(pb::Bucketer {
            kind: Some(pb::bucketer::Kind::Explicit(pb::ExplicitBuckets { bounds: vec![2.0] })),
        }),
        bucket_counts: vec![1, 2, 0],
        count: 3,
        mean: 2.0,
        sum_of_squared_deviation: 2.0,
        exemplars: vec![],
    };
    let values = [
        pb::value::Value::DoubleValue(1.5),
        pb::value::Value::Int64Value(-3),
        pb::value::Value::BoolValue(true),
        pb::value::Value::StringValue("x".into()),
        pb::value::Value::DistributionValue(dist),
        pb::value::Value::TupleValue(pb::Tuple {
            elements: vec![pb::Value { value: Some(pb::value::Value::Int64Value(1)) }],
        }),
    ];
    pb::WriteRequest {
        series: values
            .into_iter()
            .map(|v| pb::Series {
                target_schema: "T".into(),
                target_fields: HashMap::from([
                    ("zone".into(), s("z")),
                    ("n".into(), pb::FieldValue { value: Some(pb::field_value::Value::Int64Value(7)) }),
                ]),
                metric: "/m".into(),
                metric_fields: HashMap::from([("code".into(), s("200"))]),
                points: vec![pb::Point { start_time: Some(1), end_time: 2, value: Some(pb::Value { value: Some(v) }) }],
            })
            .collect(),
    }
    .encode_to_vec()
}

fn schemas_request() -> Vec<u8> {
    pb::ApplySchemasRequest {
        targets: vec![pb::TargetSchema {
            name: "T".into(),
            fields: vec![pb::FieldDef { name: "zone".into(), r#type: pb::FieldType::String as i32, added: false }],
            location_field: "zone".into(),
        }],
        metrics: vec![pb::MetricSchema {
            name: "/m".into(),
            fields: vec![pb::FieldDef { name: "code".into(), r#type: pb::FieldType::Int64 as i32, added: true }],
            value_type: Some(pb::ValueType {
                elements: vec![pb::ScalarType::Double as i32, pb::ScalarType::Distribution as i32],
                tuple: true,
            }),
            kind: pb::MetricKind::Cumulative as i32,
            unit: "s".into(),
            description: String::new(),
            collection: None,
        }],
    }
    .encode_to_vec()
}

fn mutate(base: &[u8], edits: &[(prop::sample::Index, u8)], cut: Option<prop::sample::Index>) -> Vec<u8> {
    let mut b = base.to_vec();
    for (at, byte) in edits {
        let i = at.index(b.len());
        b[i] = *byte;
    }
    if let Some(c) = cut {
        b.truncate(c.index(b.len() + 1));
    }
    b
}

/// What a server does with a decoded write: convert every part, validate
/// the values.
fn convert_write(req: &pb::WriteRequest) {
    for series in &req.series {
        let _ = convert::field_list(&series.target_fields);
        let _ = convert::field_list(&series.metric_fields);
        for (i, p) in series.points.iter().enumerate() {
            if let Ok(p) = convert::point(p, i) {
                if let danaus_model::Value::Distribution(d) = &p.value {
                    let _ = d.validate();
                }
            }
        }
    }
}

fn convert_schemas(req: &pb::ApplySchemasRequest) {
    for t in &req.targets {
        if let Ok(t) = convert::target_schema(t) {
            let _ = t.validate();
        }
    }
    for m in &req.metrics {
        if let Ok(m) = convert::metric_schema(m) {
            if m.validate().is_ok() {
                // Applied over itself, and over a version without fields.
                let mut bare = m.clone();
                bare.fields.clear();
                let _ = m.evolve(&m);
                let _ = bare.evolve(&m);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn requests_decode_and_convert_or_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        for body in [bytes.clone(), mutate(&write_request(), &edits, cut)] {
            if let Ok(req) = pb::WriteRequest::decode(&body[..]) {
                convert_write(&req);
            }
        }
        for body in [bytes.clone(), mutate(&schemas_request(), &edits, cut)] {
            if let Ok(req) = pb::ApplySchemasRequest::decode(&body[..]) {
                convert_schemas(&req);
            }
        }
        let _ = pb::ReadRequest::decode(&bytes[..]);
        let _ = pb::QueryRequest::decode(&bytes[..]);
    }
}
