//! Chunk encode/decode throughput and size on a node_exporter-like data set
//! (`danaus-workload`): 2,000 series × 480 points (two hours at 15 s: one
//! chunk at the leaf's default chunk size).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use danaus_codec::{Chunk, ChunkBuilder};
use danaus_model::{ScalarType, ValueType};
use danaus_workload::NodeFleet;

fn fleet() -> NodeFleet {
    NodeFleet::new(42, 20, 100, 1_700_000_000_000_000_000)
}

fn dataset() -> Vec<Vec<(i64, f64)>> {
    let mut fleet = fleet();
    let mut series = vec![Vec::with_capacity(480); fleet.series.len()];
    for _ in 0..480 {
        fleet.scrape(|i, t, v| series[i].push((t, v)));
    }
    series
}

/// Where the bytes go: per series shape, bits per sample of the time
/// column and of the whole chunk.
fn breakdown(data: &[Vec<(i64, f64)>], chunks: &[Chunk]) {
    let specs = fleet().series;
    let mut by_shape: std::collections::BTreeMap<String, (usize, usize, usize, usize)> = Default::default();
    for ((pts, c), spec) in data.iter().zip(chunks).zip(&specs) {
        let mut t = danaus_codec::time::TimeEncoder::default();
        for &(ts, _) in pts {
            t.push(ts);
        }
        let mut tb = Vec::new();
        t.write_packed(&mut tb);
        let name = format!("{:?}", spec.shape).split([' ', '{']).next().unwrap_or("?").to_owned();
        let e = by_shape.entry(name).or_default();
        e.0 += 1;
        e.1 += pts.len();
        e.2 += tb.len();
        e.3 += c.as_bytes().len();
    }
    for (shape, (n, samples, time_bytes, chunk_bytes)) in by_shape {
        eprintln!(
            "codec: {shape:>13}: {n:4} series, time {:5.2} bits/sample, whole chunk {:5.2} bits/sample",
            time_bytes as f64 * 8.0 / samples as f64,
            chunk_bytes as f64 * 8.0 / samples as f64
        );
    }
}

fn encode(series: &[Vec<(i64, f64)>]) -> Vec<Chunk> {
    builders(series).iter().map(ChunkBuilder::finish).collect()
}

fn encode_sealed(series: &[Vec<(i64, f64)>]) -> Vec<Chunk> {
    builders(series).iter().map(ChunkBuilder::finish_packed).collect()
}

fn builders(series: &[Vec<(i64, f64)>]) -> Vec<ChunkBuilder> {
    series
        .iter()
        .map(|pts| {
            let mut b = ChunkBuilder::new(ValueType::Scalar(ScalarType::Double), false);
            for &(t, v) in pts {
                b.push_double(t, v).expect("double chunk");
            }
            b
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let data = dataset();
    let samples: usize = data.iter().map(Vec::len).sum();
    let open: usize = encode(&data).iter().map(|c| c.as_bytes().len()).sum();
    let chunks = encode_sealed(&data);
    let bytes: usize = chunks.iter().map(|c| c.as_bytes().len()).sum();
    eprintln!(
        "codec: {samples} samples in {} chunks: open coding {:.3} bytes/sample, sealed (packed) {:.3} bytes/sample (times + values + headers)",
        chunks.len(),
        open as f64 / samples as f64,
        bytes as f64 / samples as f64
    );
    breakdown(&data, &chunks);
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(samples as u64));
    g.bench_function("encode_node_exporter_2h", |b| b.iter(|| black_box(encode(black_box(&data)))));
    g.bench_function("encode_and_seal_node_exporter_2h", |b| b.iter(|| black_box(encode_sealed(black_box(&data)))));
    g.bench_function("decode_sealed_batch_node_exporter_2h", |b| {
        // Buffers reused across chunks, as a scan would; the output is
        // consumed through black_box, not summed (an FP add chain would
        // measure the adds).
        let (mut ts, mut vs) = (vec![0i64; 480], vec![0f64; 480]);
        b.iter(|| {
            for c in &chunks {
                let n = c.iter().expect("valid chunk").read_doubles_to(&mut ts, &mut vs).expect("valid points");
                black_box((&ts[..n], &vs[..n]));
            }
        })
    });
    // Open chunks, as a leaf reads its newest data: delta-of-delta
    // columns, not packed.
    let open = encode(&data);
    g.bench_function("decode_open_batch_node_exporter_2h", |b| {
        let (mut ts, mut vs) = (vec![0i64; 480], vec![0f64; 480]);
        b.iter(|| {
            for c in &open {
                let n = c.iter().expect("valid chunk").read_doubles_to(&mut ts, &mut vs).expect("valid points");
                black_box((&ts[..n], &vs[..n]));
            }
        })
    });
    g.bench_function("decode_sealed_node_exporter_2h", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            let mut last = 0i64;
            for c in &chunks {
                let mut it = c.iter().expect("valid chunk");
                while let Some(r) = it.next_double() {
                    let (t, v) = r.expect("valid point");
                    acc ^= v.to_bits();
                    last = t;
                }
            }
            black_box((acc, last))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
