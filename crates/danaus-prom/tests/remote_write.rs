//! The remote_write receiver over a real leaf (memory store): what a
//! Prometheus sender sees for good, bad and retried requests, and what is
//! stored.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;

use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_model::{FieldValue, MetricKind, Value};
use danaus_model::{MatchOp, Matcher, ReadRequest};
use danaus_prom::prompb::{v1, v2, COUNTER};
use danaus_prom::{Receiver, TARGET_SCHEMA};
use danaus_storage::{MemKv, MemLogDevice, SystemClock};
use prost::Message;

const TENANT: &str = "prom";
const V1: Option<&str> = Some("application/x-protobuf");
const V2: Option<&str> = Some("application/x-protobuf;proto=io.prometheus.write.v2.Request");
const SNAPPY: Option<&str> = Some("snappy");
/// Prometheus' stale marker.
const STALE: u64 = 0x7ff0_0000_0000_0002;
const T: i64 = 1_700_000_000_000;

async fn leaf() -> Leaf {
    Leaf::open(LeafConfig {
        kv: Arc::new(MemKv::new()),
        log: Arc::new(MemLogDevice::new()),
        clock: Arc::new(SystemClock),
        options: LeafOptions {
            out_of_order_window: std::time::Duration::from_secs(3600 * 24 * 3650),
            ..LeafOptions::default()
        },
    })
    .await
    .unwrap()
}

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: labels.iter().map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() }).collect(),
        samples: samples.iter().map(|&(timestamp, value)| v1::Sample { value, timestamp }).collect(),
        histograms: vec![],
    }
}

fn snappy(msg: &impl Message) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(&msg.encode_to_vec()).unwrap()
}

async fn read(leaf: &Leaf, metric: &str, instance: &str) -> Vec<(i64, u64)> {
    let req = ReadRequest {
        target_schema: TARGET_SCHEMA.into(),
        metric: metric.into(),
        matchers: vec![Matcher { field: "instance".into(), op: MatchOp::Eq, value: instance.into() }],
        start: i64::MIN,
        end: i64::MAX,
    };
    let mut out = Vec::new();
    for (_, points) in leaf.read(TENANT, &req).await.unwrap() {
        for p in points {
            let Value::Double(v) = p.value else { panic!("not a double") };
            out.push((p.end_time, v.to_bits()));
        }
    }
    out
}

#[tokio::test]
async fn version_1_stores_series_and_registers_schemas() {
    let leaf = leaf().await;
    let rx = Receiver::new(Arc::new(leaf.clone()), "zone-a");
    let req = v1::WriteRequest {
        timeseries: vec![
            series(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "h1:9100"),
                    ("method", "GET"),
                    ("code", "200"),
                ],
                &[(T, 10.0), (T + 15_000, 12.0)],
            ),
            series(
                &[("__name__", "node_load1"), ("job", "node"), ("instance", "h1:9100")],
                &[(T, 0.5), (T + 15_000, f64::from_bits(STALE))],
            ),
        ],
        metadata: vec![v1::MetricMetadata {
            r#type: COUNTER,
            metric_family_name: "http_requests".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    let r = rx.handle(TENANT, V1, SNAPPY, &snappy(&req)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        read(&leaf, "http_requests_total", "h1:9100").await,
        vec![(T * 1_000_000, 10f64.to_bits()), ((T + 15_000) * 1_000_000, 12f64.to_bits())]
    );
    // The stale marker is kept bit for bit.
    assert_eq!(read(&leaf, "node_load1", "h1:9100").await[1].1, STALE);

    let m = leaf.metric_schema(TENANT, "http_requests_total").unwrap();
    assert_eq!(m.kind, MetricKind::Cumulative);
    assert_eq!(m.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["code", "method"]);
    assert_eq!(m.description, "Requests.");
    assert_eq!(leaf.metric_schema(TENANT, "node_load1").unwrap().kind, MetricKind::Gauge);
    let t = leaf.target_schema(TENANT, TARGET_SCHEMA).unwrap();
    assert_eq!(t.location_field, "location");
    // Series without a location label get the receiver's.
    let (s, _) = leaf
        .read(
            TENANT,
            &ReadRequest {
                target_schema: TARGET_SCHEMA.into(),
                metric: "node_load1".into(),
                matchers: vec![],
                start: i64::MIN,
                end: i64::MAX,
            },
        )
        .await
        .unwrap()
        .remove(0);
    assert!(s.target_fields.contains(&("location".into(), FieldValue::String("zone-a".into()))));

    // The same request again (a retry) is accepted; a different value at a
    // stored time is refused and named.
    assert_eq!(rx.handle(TENANT, V1, SNAPPY, &snappy(&req)).await.status, 204);
    let conflict = v1::WriteRequest {
        timeseries: vec![series(&[("__name__", "node_load1"), ("job", "node"), ("instance", "h1:9100")], &[(T, 0.75)])],
        metadata: vec![],
    };
    let r = rx.handle(TENANT, V1, SNAPPY, &snappy(&conflict)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("node_load1{"), "{}", r.body);
}

#[tokio::test]
async fn malformed_series_are_refused_by_name_and_the_rest_stored() {
    let leaf = leaf().await;
    let rx = Receiver::new(Arc::new(leaf.clone()), "zone-a");
    let req = v1::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "up"), ("job", "node"), ("instance", "b")], &[(T, 1.0)]),
            // No name at all.
            series(&[("job", "node")], &[(T, 0.0)]),
            // A label twice: which value is meant cannot be known.
            series(&[("__name__", "up"), ("job", "node"), ("instance", "d"), ("job", "other")], &[(T, 0.0)]),
        ],
        metadata: vec![],
    };
    let r = rx.handle(TENANT, V1, SNAPPY, &snappy(&req)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.starts_with("2 of 3 series refused (2 of 3 samples); the rest were stored"), "{}", r.body);
    assert!(r.body.contains("the label \"job\" more than once"), "{}", r.body);
    assert!(read(&leaf, "up", "d").await.is_empty());
    assert!(r.body.contains("no __name__ label"), "{}", r.body);
    assert_eq!(read(&leaf, "up", "b").await.len(), 1);
    assert_eq!(rx.stats().series_refused.load(std::sync::atomic::Ordering::Relaxed), 2);
}

/// Label sets vary within a metric (node_exporter's `node_network_info`
/// has `duplex` for some interfaces only; target groups add static
/// labels): a label a metric lacks becomes a field of it, series stored
/// before keep their keys and read it as "", and matching `label=""`
/// finds them, as in Prometheus.
#[tokio::test]
async fn metrics_gain_the_labels_their_series_bring() {
    let leaf = leaf().await;
    let rx = Receiver::new(Arc::new(leaf.clone()), "zone-a");
    let info = |device: &str, extra: &[(&'static str, &'static str)], t: i64| {
        let mut l = vec![("__name__", "node_network_info"), ("job", "node"), ("instance", "h"), ("device", device)];
        l.extend_from_slice(extra);
        series(&l, &[(t, 1.0)])
    };
    let send = |ts: Vec<v1::TimeSeries>| {
        let rx = &rx;
        async move { rx.handle(TENANT, V1, SNAPPY, &snappy(&v1::WriteRequest { timeseries: ts, metadata: vec![] })).await }
    };
    let r = send(vec![info("lo", &[], T)]).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let fields = |leaf: &Leaf| -> Vec<(String, bool)> {
        leaf.metric_schema(TENANT, "node_network_info")
            .unwrap()
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.added))
            .collect()
    };
    assert_eq!(fields(&leaf), [("device".to_owned(), false)]);
    // One request brings `duplex` on one interface and not on another,
    // and a known series again: all stored, nothing refused.
    let r = send(vec![info("lo", &[], T + 1000), info("eth0", &[("duplex", "full")], T + 1000), info("eth1", &[], T)])
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(fields(&leaf), [("device".to_owned(), false), ("duplex".to_owned(), true)]);
    // Then another label on yet another series.
    let r = send(vec![info("eth2", &[("duplex", "half"), ("speed", "1000")], T)]).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(fields(&leaf).len(), 3);

    let select = |field: &str, op: MatchOp, value: &str| {
        let req = ReadRequest {
            target_schema: TARGET_SCHEMA.into(),
            metric: "node_network_info".into(),
            matchers: vec![Matcher { field: field.into(), op, value: value.into() }],
            start: i64::MIN,
            end: i64::MAX,
        };
        let leaf = leaf.clone();
        async move {
            let mut out: Vec<(String, usize)> = Vec::new();
            for (s, points) in leaf.read(TENANT, &req).await.unwrap() {
                let device = s.metric_fields.iter().find(|(k, _)| k == "device").unwrap().1.to_text();
                out.push((device, points.len()));
            }
            out.sort();
            out
        }
    };
    // `lo` was stored before `duplex` existed and again after: one series,
    // both points.
    assert_eq!(select("duplex", MatchOp::Eq, "").await, [("eth1".into(), 1), ("lo".into(), 2)]);
    assert_eq!(select("duplex", MatchOp::Ne, "").await, [("eth0".into(), 1), ("eth2".into(), 1)]);
    assert_eq!(select("speed", MatchOp::Re, "|1.*").await.len(), 4);
    assert_eq!(select("speed", MatchOp::Eq, "1000").await, [("eth2".into(), 1)]);
    assert_eq!(leaf.stats().series_created.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(rx.stats().series_refused.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn content_negotiation_and_malformed_bodies() {
    let leaf = leaf().await;
    let rx = Receiver::new(Arc::new(leaf.clone()), "z");
    let body =
        snappy(&v1::WriteRequest { timeseries: vec![series(&[("__name__", "x")], &[(T, 1.0)])], metadata: vec![] });
    let r = rx.handle(TENANT, Some("application/json"), SNAPPY, &body).await;
    assert_eq!(r.status, 415, "{}", r.body);
    let r = rx.handle(TENANT, Some("application/x-protobuf;proto=io.prometheus.write.v3.Request"), SNAPPY, &body).await;
    assert_eq!(r.status, 415, "{}", r.body);
    let r = rx.handle(TENANT, V1, Some("gzip"), &body).await;
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(r.body.contains("snappy"), "{}", r.body);
    let r = rx.handle(TENANT, V1, SNAPPY, b"definitely not snappy").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let garbage = snap::raw::Encoder::new().compress_vec(&[0xff, 0xff, 0xff, 0x01]).unwrap();
    let r = rx.handle(TENANT, V1, SNAPPY, &garbage).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("not a prometheus.WriteRequest"), "{}", r.body);
    // `proto=prometheus.WriteRequest` is 1.0 spelled out.
    let r = rx.handle(TENANT, Some("application/x-protobuf; proto=prometheus.WriteRequest"), SNAPPY, &body).await;
    assert_eq!(r.status, 204, "{}", r.body);
}

#[tokio::test]
async fn version_2_resolves_symbols_reports_written_and_keeps_created_timestamps() {
    let leaf = leaf().await;
    let rx = Receiver::new(Arc::new(leaf.clone()), "z");
    let symbols: Vec<String> =
        ["", "__name__", "jobs_total", "job", "batch", "instance", "w1", "Jobs done.", "node_temp", "celsius"]
            .iter()
            .map(|s| (*s).into())
            .collect();
    let req = v2::Request {
        symbols,
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2, 5, 6, 3, 4],
                samples: vec![v1::Sample { value: 3.0, timestamp: T }, v1::Sample { value: 5.0, timestamp: T + 1000 }],
                metadata: Some(v2::Metadata { r#type: COUNTER, help_ref: 7, unit_ref: 0 }),
                created_timestamp: T - 60_000,
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 8, 3, 4, 5, 6],
                samples: vec![v1::Sample { value: 41.5, timestamp: T }],
                metadata: Some(v2::Metadata { r#type: 2, help_ref: 0, unit_ref: 9 }),
                ..Default::default()
            },
        ],
    };
    let r = rx.handle(TENANT, V2, SNAPPY, &snappy(&req)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.contains(&("X-Prometheus-Remote-Write-Samples-Written", "3".into())), "{:?}", r.headers);
    assert!(r.headers.contains(&("X-Prometheus-Remote-Write-Histograms-Written", "0".into())));
    let m = leaf.metric_schema(TENANT, "jobs_total").unwrap();
    assert_eq!((m.kind, m.description.as_str()), (MetricKind::Cumulative, "Jobs done."));
    assert_eq!(leaf.metric_schema(TENANT, "node_temp").unwrap().unit, "celsius");
    let req = ReadRequest {
        target_schema: TARGET_SCHEMA.into(),
        metric: "jobs_total".into(),
        matchers: vec![],
        start: i64::MIN,
        end: i64::MAX,
    };
    let (_, points) = leaf.read(TENANT, &req).await.unwrap().remove(0);
    assert_eq!(points[0].start_time, Some((T - 60_000) * 1_000_000), "the created timestamp is the start time");

    // A reference past the symbol table is a malformed request.
    let bad = v2::Request {
        symbols: vec!["".into()],
        timeseries: vec![v2::TimeSeries { labels_refs: vec![0, 7], ..Default::default() }],
    };
    let r = rx.handle(TENANT, V2, SNAPPY, &snappy(&bad)).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("symbol reference 7 is out of range"), "{}", r.body);
    // Native histograms are refused, by series.
    let hist = v2::Request {
        symbols: vec!["".into(), "__name__".into(), "h".into()],
        timeseries: vec![v2::TimeSeries { labels_refs: vec![1, 2], histograms: vec![vec![]], ..Default::default() }],
    };
    let r = rx.handle(TENANT, V2, SNAPPY, &snappy(&hist)).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("native histograms are not supported"), "{}", r.body);
}

#[tokio::test]
async fn a_leaf_that_cannot_take_writes_is_a_retryable_503() {
    let leaf = leaf().await;
    let rx = Receiver::new(Arc::new(leaf.clone()), "z");
    leaf.shutdown().await.unwrap();
    let req = v1::WriteRequest { timeseries: vec![series(&[("__name__", "x")], &[(T, 1.0)])], metadata: vec![] };
    let r = rx.handle(TENANT, V1, SNAPPY, &snappy(&req)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("retry"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_decoded_off_the_async_workers_with_the_same_result() {
    let leaf = leaf().await;
    let rx = Receiver::new(Arc::new(leaf.clone()), "z");
    // Noisy values so the body stays large after compression.
    let req = v1::WriteRequest {
        timeseries: (0..2000)
            .map(|i| {
                let inst = format!("host-{i}");
                let samples: Vec<(i64, f64)> =
                    (0..20).map(|k| (T + k * 1000, (i * 7919 + k as usize) as f64 * 1.000_001)).collect();
                series(&[("__name__", "big"), ("job", "j"), ("instance", &inst)], &samples)
            })
            .collect(),
        metadata: vec![],
    };
    let body = snappy(&req);
    assert!(body.len() >= 256 << 10, "the body is only {} bytes", body.len());
    let r = rx.handle(TENANT, V1, SNAPPY, &body).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(read(&leaf, "big", "host-1999").await.len(), 20);
}

/// A store whose schema registrations fail as a zone's do without an
/// assigner leader, until told otherwise; writes go to a leaf.
struct Flaky {
    leaf: Leaf,
    down: std::sync::atomic::AtomicBool,
    /// Schema changes asked for.
    applies: std::sync::atomic::AtomicUsize,
}

impl danaus_prom::Store for Flaky {
    fn target_schema(&self, tenant: &str, name: &str) -> Option<Arc<danaus_model::TargetSchema>> {
        self.leaf.target_schema(tenant, name)
    }
    fn metric_schema(&self, tenant: &str, name: &str) -> Option<Arc<danaus_model::MetricSchema>> {
        self.leaf.metric_schema(tenant, name)
    }
    fn apply_schemas<'a>(
        &'a self,
        tenant: &'a str,
        targets: Vec<danaus_model::TargetSchema>,
        metrics: Vec<danaus_model::MetricSchema>,
    ) -> futures::future::BoxFuture<'a, Result<(), danaus_prom::StoreError>> {
        self.applies.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.down.load(std::sync::atomic::Ordering::SeqCst) && !metrics.is_empty() {
            return Box::pin(async { Err(danaus_prom::StoreError::Unavailable("no assigner leader".into())) });
        }
        danaus_prom::Store::apply_schemas(&self.leaf, tenant, targets, metrics)
    }
    fn write<'a>(
        &'a self,
        tenant: &'a str,
        batch: Vec<danaus_model::SeriesWrite>,
    ) -> futures::future::BoxFuture<'a, Result<danaus_prom::Stored, danaus_prom::StoreError>> {
        danaus_prom::Store::write(&self.leaf, tenant, batch)
    }
}

#[tokio::test]
async fn a_schema_that_cannot_be_registered_now_is_a_retryable_503_and_nothing_is_written() {
    let leaf = leaf().await;
    let store = Arc::new(Flaky { leaf: leaf.clone(), down: true.into(), applies: 0.into() });
    let rx = Receiver::new(store.clone(), "z");
    let known = series(&[("__name__", "known"), ("instance", "i")], &[(T, 1.0)]);
    let req = v1::WriteRequest { timeseries: vec![known.clone()], metadata: vec![] };
    // Schemas for a known metric are in place already (registered while up).
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(rx.handle(TENANT, V1, SNAPPY, &snappy(&req)).await.status, 204);
    store.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let later = series(&[("__name__", "known"), ("instance", "i")], &[(T + 1000, 2.0)]);
    let new = series(&[("__name__", "brand_new"), ("instance", "i")], &[(T, 3.0)]);
    let req = v1::WriteRequest { timeseries: vec![later, new], metadata: vec![] };
    let r = rx.handle(TENANT, V1, SNAPPY, &snappy(&req)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("no assigner leader") && r.body.contains("retry"), "{}", r.body);
    assert_eq!(read(&leaf, "known", "i").await.len(), 1, "nothing of the refused request is written");
    // The sender retries once the zone can register schemas: all of it lands.
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let r = rx.handle(TENANT, V1, SNAPPY, &snappy(&req)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(read(&leaf, "known", "i").await.len(), 2);
    assert_eq!(read(&leaf, "brand_new", "i").await.len(), 1);
}

/// What one request needs registered (the target schema, new metric
/// names, labels known metrics lack) is one change of the store: in a
/// zone, one Raft proposal, however many names and labels it brings.
#[tokio::test]
async fn one_request_is_one_schema_change() {
    let leaf = leaf().await;
    let store = Arc::new(Flaky { leaf: leaf.clone(), down: false.into(), applies: 0.into() });
    let rx = Receiver::new(store.clone(), "z");
    let applies = || store.applies.load(std::sync::atomic::Ordering::SeqCst);
    let send = |ts: Vec<v1::TimeSeries>| {
        let rx = &rx;
        async move { rx.handle(TENANT, V1, SNAPPY, &snappy(&v1::WriteRequest { timeseries: ts, metadata: vec![] })).await }
    };
    let r = send((0..50).map(|i| series(&[("__name__", &format!("m{i}")), ("instance", "i")], &[(T, 1.0)])).collect())
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(applies(), 1, "the target schema and 50 metrics in one change");
    // Known metrics with new labels, and new names, together.
    let mut ts: Vec<v1::TimeSeries> = (0..20)
        .map(|i| series(&[("__name__", &format!("m{i}")), ("instance", "i"), ("rack", "r1")], &[(T + 1, 1.0)]))
        .collect();
    ts.extend((50..60).map(|i| series(&[("__name__", &format!("m{i}")), ("instance", "i")], &[(T, 1.0)])));
    let r = send(ts.clone()).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(applies(), 2);
    // Nothing new: no change at all.
    let r = send(ts).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(applies(), 2);
    assert_eq!(leaf.metric_schema(TENANT, "m3").unwrap().fields.len(), 1);
}

#[tokio::test]
async fn a_conflicting_prometheus_target_schema_is_a_400_not_a_retry() {
    let leaf = leaf().await;
    leaf.apply_target_schema(
        TENANT,
        danaus_model::TargetSchema {
            name: TARGET_SCHEMA.into(),
            fields: vec![danaus_model::FieldDef::new("location", danaus_model::FieldType::String)],
            location_field: "location".into(),
        },
    )
    .await
    .unwrap();
    let rx = Receiver::new(Arc::new(leaf.clone()), "z");
    let req = v1::WriteRequest { timeseries: vec![series(&[("__name__", "x")], &[(T, 1.0)])], metadata: vec![] };
    let r = rx.handle(TENANT, V1, SNAPPY, &snappy(&req)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("exists with fields other than"), "{}", r.body);
}

/// A series whose label bytes an earlier request brought is written from
/// what they said then, with the same result as reading them; a change of
/// its metric's schema has it converted again; labels split by samples
/// (no sender does that) are read every time.
#[tokio::test]
async fn known_series_are_written_from_their_label_bytes_as_if_read() {
    let leaf = leaf().await;
    let rx = Receiver::new(Arc::new(leaf.clone()), "zone-a");
    let labels = |i: usize| {
        vec![
            ("__name__".to_owned(), "node_load1".to_owned()),
            ("instance".to_owned(), format!("h{i}:9100")),
            ("job".to_owned(), "node".to_owned()),
        ]
    };
    let req = |round: i64| v1::WriteRequest {
        timeseries: (0..3)
            .map(|i| {
                let l: Vec<(String, String)> = labels(i);
                let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                series(&l, &[(T + round * 15_000, round as f64 + i as f64 / 10.0)])
            })
            .collect(),
        metadata: vec![],
    };
    let known = |rx: &Receiver| rx.stats().series_known.load(std::sync::atomic::Ordering::Relaxed);
    let send = |r: v1::WriteRequest| {
        let rx = &rx;
        async move { rx.handle(TENANT, V1, SNAPPY, &snappy(&r)).await }
    };
    assert_eq!(send(req(0)).await.status, 204);
    assert_eq!(known(&rx), 0, "the first sight of a series reads its labels");
    assert_eq!(send(req(1)).await.status, 204);
    assert_eq!(known(&rx), 3);

    // A new description is a new schema version: converted again, then
    // known again.
    let mut ms = (*leaf.metric_schema(TENANT, "node_load1").unwrap()).clone();
    ms.description = "1m load average".into();
    leaf.apply_metric_schema(TENANT, ms).await.unwrap();
    assert_eq!(send(req(2)).await.status, 204);
    assert_eq!(known(&rx), 3);
    assert_eq!(send(req(3)).await.status, 204);
    assert_eq!(known(&rx), 6);

    // Labels, a sample, then a label: read every time.
    let mut split = series(&[("__name__", "node_load1"), ("instance", "h9:9100")], &[(T, 9.0)]).encode_to_vec();
    split.extend(
        v1::TimeSeries { labels: vec![v1::Label { name: "job".into(), value: "node".into() }], ..Default::default() }
            .encode_to_vec(),
    );
    let mut body = Vec::new();
    prost::encoding::bytes::encode(1, &split, &mut body);
    for _ in 0..2 {
        let r = rx.handle(TENANT, V1, SNAPPY, &snap::raw::Encoder::new().compress_vec(&body).unwrap()).await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    assert_eq!(known(&rx), 6);
    assert_eq!(read(&leaf, "node_load1", "h9:9100").await, vec![(T * 1_000_000, 9f64.to_bits())]);

    // Every sample of every round, in the series reading labels made.
    for i in 0..3 {
        let want: Vec<(i64, u64)> =
            (0..4).map(|r| ((T + r * 15_000) * 1_000_000, (r as f64 + i as f64 / 10.0).to_bits())).collect();
        assert_eq!(read(&leaf, "node_load1", &format!("h{i}:9100")).await, want);
    }
    let series = leaf.select_range(b"", None);
    assert_eq!(series.len(), 4, "no series beside those of the labels: {series:?}");
}

/// A series known by its label bytes that brings native histograms is
/// refused as any such series is, not written without them.
#[tokio::test]
async fn native_histograms_of_a_known_series_are_refused() {
    let leaf = leaf().await;
    let rx = Receiver::new(Arc::new(leaf.clone()), "zone-a");
    let labels = [("__name__", "rpc_seconds"), ("instance", "h1:9100"), ("job", "api")];
    let floats = v1::WriteRequest { timeseries: vec![series(&labels, &[(T, 1.0)])], metadata: vec![] };
    assert_eq!(rx.handle(TENANT, V1, SNAPPY, &snappy(&floats)).await.status, 204);
    let mut hist = series(&labels, &[(T + 15_000, 2.0)]);
    hist.histograms = vec![vec![0x08, 0x01]];
    let r =
        rx.handle(TENANT, V1, SNAPPY, &snappy(&v1::WriteRequest { timeseries: vec![hist], metadata: vec![] })).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("native histograms"), "{}", r.body);
    assert_eq!(read(&leaf, "rpc_seconds", "h1:9100").await, vec![(T * 1_000_000, 1f64.to_bits())]);
}

/// The identities kept are bounded: past the limit, series are read from
/// their labels (and stored the same).
#[tokio::test]
async fn kept_identities_are_bounded() {
    for limit in [0, 2] {
        let leaf = leaf().await;
        let rx = Receiver::new(Arc::new(leaf.clone()), "zone-a").with_identity_limit(limit);
        let req = |round: i64| v1::WriteRequest {
            timeseries: (0..3)
                .map(|i| {
                    let instance = format!("h{i}:9100");
                    series(
                        &[("__name__", "up"), ("instance", &instance), ("job", "node")],
                        &[(T + round * 15_000, round as f64)],
                    )
                })
                .collect(),
            metadata: vec![],
        };
        for round in 0..3 {
            assert_eq!(rx.handle(TENANT, V1, SNAPPY, &snappy(&req(round))).await.status, 204);
        }
        let known = rx.stats().series_known.load(std::sync::atomic::Ordering::Relaxed);
        assert!(known <= 2 * limit as u64, "limit {limit}: {known} series written as known");
        if limit == 2 {
            assert!(known > 0, "some series are kept under the limit");
        }
        for i in 0..3 {
            let want: Vec<(i64, u64)> = (0..3).map(|r| ((T + r * 15_000) * 1_000_000, (r as f64).to_bits())).collect();
            assert_eq!(read(&leaf, "up", &format!("h{i}:9100")).await, want, "limit {limit}");
        }
    }
}
