//! Decoding a remote_write 1.0 request (after snappy) into series: prost
//! plus `PromSeries::from_v1` (owned labels) against `v1_decode::decode_v1`
//! (labels borrowed from the body). The request is what `bench/loadgen`
//! sends: 10 node_exporter-like hosts × 100 series × 5 samples.

#![allow(clippy::unwrap_used)]
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use danaus_prom::labels::PromSeries;
use danaus_prom::prompb::v1;
use prost::Message;

fn request() -> Vec<u8> {
    let modes = ["idle", "user", "system", "iowait"];
    let mut timeseries = Vec::new();
    for h in 0..10 {
        for m in 0..100 {
            let mut labels = vec![
                v1::Label { name: "__name__".into(), value: format!("node_metric_{m}_total") },
                v1::Label { name: "instance".into(), value: format!("host-{h}:9100") },
                v1::Label { name: "job".into(), value: "node".into() },
            ];
            if m % 3 == 0 {
                labels.push(v1::Label { name: "mode".into(), value: modes[m % 4].into() });
            }
            let samples = (0..5)
                .map(|k| v1::Sample {
                    value: (m * 1000 + k) as f64 * 0.25,
                    timestamp: 1_700_000_000_000 + k as i64 * 15_000,
                })
                .collect();
            timeseries.push(v1::TimeSeries { labels, samples, histograms: vec![] });
        }
    }
    v1::WriteRequest { timeseries, metadata: vec![] }.encode_to_vec()
}

fn decode(c: &mut Criterion) {
    let body = request();
    let mut g = c.benchmark_group("remote_write_v1_decode");
    g.throughput(Throughput::Elements(5000));
    g.bench_function("prost_then_owned_series", |b| {
        b.iter(|| black_box(PromSeries::from_v1(v1::WriteRequest::decode(black_box(body.as_slice())).unwrap())))
    });
    g.bench_function("borrowing_decode_v1", |b| {
        b.iter(|| black_box(danaus_prom::v1_decode::decode_v1(black_box(&body)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
