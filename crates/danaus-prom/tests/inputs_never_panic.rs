//! Every parser of request input in this crate, fed arbitrary and mutated
//! input: a scrape body, a remote_write body (1.0 and 2.0, compressed or
//! not), each series' labels. None panics; the receiver answers a
//! malformed request with a 4xx naming what was wrong, never a 5xx.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_prom::prompb::v1;
use danaus_prom::text::{parse, Format};
use danaus_prom::v1_decode::{decode_v1, decode_v1_raw};
use danaus_prom::Receiver;
use danaus_storage::{MemKv, MemLogDevice, SystemClock};
use proptest::prelude::*;
use prost::Message;

const V1: Option<&str> = Some("application/x-protobuf");
const V2: Option<&str> = Some("application/x-protobuf;proto=io.prometheus.write.v2.Request");

/// A valid exposition to mutate.
const EXPOSITION: &str = "# HELP node_cpu_seconds_total Seconds.\n# TYPE node_cpu_seconds_total counter\n\
    node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1234.5 1700000000000\n\
    # TYPE latency histogram\nlatency_bucket{le=\"0.1\"} 3\nlatency_bucket{le=\"+Inf\"} 5\n\
    latency_sum 1.5e-3\nlatency_count 5\nweird{path=\"a\\\\b\\\"c\\nd\"} +Inf\n# EOF\n";

/// A valid remote_write 1.0 body (uncompressed) to mutate.
fn request() -> Vec<u8> {
    let ts = |name: &str, inst: &str| v1::TimeSeries {
        labels: [("__name__", name), ("instance", inst), ("job", "j"), ("mode", "idle")]
            .iter()
            .map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() })
            .collect(),
        samples: vec![v1::Sample { value: 1.5, timestamp: 1_700_000_000_000 }],
        histograms: vec![],
    };
    v1::WriteRequest { timeseries: vec![ts("a", "h1"), ts("b", "h2")], metadata: vec![] }.encode_to_vec()
}

/// `base` with `edits` applied: (position, byte) overwrites, then a cut.
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

fn runtime_and_receiver() -> (tokio::runtime::Runtime, Receiver) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let leaf = rt
        .block_on(Leaf::open(LeafConfig {
            kv: Arc::new(MemKv::new()),
            log: Arc::new(MemLogDevice::new()),
            clock: Arc::new(SystemClock),
            options: LeafOptions {
                out_of_order_window: std::time::Duration::from_secs(3600 * 24 * 3650),
                ..LeafOptions::default()
            },
        }))
        .unwrap();
    (rt, Receiver::new(Arc::new(leaf), "z"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn scrape_bodies_parse_or_are_refused(body in "\\PC{0,200}", om in any::<bool>()) {
        let _ = parse(&body, if om { Format::OpenMetrics } else { Format::Prometheus });
    }

    #[test]
    fn mutated_expositions_parse_or_are_refused(
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), prop_oneof![prop::sample::select(b"{}\",=# \n\\+-.eE0aZ_".to_vec()), any::<u8>()]),
            0..6,
        ),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        om in any::<bool>(),
    ) {
        let bytes = mutate(EXPOSITION.as_bytes(), &edits, cut);
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text, if om { Format::OpenMetrics } else { Format::Prometheus });
    }

    #[test]
    fn remote_write_bodies_decode_or_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        for body in [bytes, mutate(&request(), &edits, cut)] {
            let _ = decode_v1(&body);
            if let Ok(mut raw) = decode_v1_raw(&body) {
                for s in std::mem::take(&mut raw.series) {
                    let _ = raw.labels(s);
                }
            }
        }
    }
}

/// The receiver, end to end: any body, compressed or not, either version,
/// is stored or answered with a 4xx (never a 5xx, never a panic).
#[test]
fn the_receiver_answers_any_body_with_a_client_error_at_worst() {
    let (rt, rx) = runtime_and_receiver();
    let valid = request();
    proptest!(ProptestConfig { cases: 512, ..ProptestConfig::default() }, |(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        v2 in any::<bool>(),
        snappy in any::<bool>(),
    )| {
        for raw in [bytes.clone(), mutate(&valid, &edits, cut)] {
            let body = if snappy { snap::raw::Encoder::new().compress_vec(&raw).unwrap() } else { raw };
            let r = rt.block_on(rx.handle("t", if v2 { V2 } else { V1 }, Some("snappy"), &body));
            prop_assert!(r.status < 500, "{}: {}", r.status, r.body);
        }
    });
}
