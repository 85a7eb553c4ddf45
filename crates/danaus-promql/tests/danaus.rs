//! The promqltest scripts again, with the data in a Danaus leaf: loaded
//! through the remote_write receiver's mapping (labels onto
//! `prometheus_target` and one metric schema per name) and read back by
//! selectors compiled to fetch plans of the query engine.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::sync::Arc;

use danaus_leaf::{Leaf, LeafConfig, LeafOptions};
use danaus_prom::labels::PromSeries;
use danaus_prom::{Receiver, TARGET_SCHEMA};
use danaus_promql::promqltest::{run, Backend};
use danaus_promql::{eval, DanausStorage, Labels, Options, Result, Value};
use danaus_query::{Engine, LeafPhase, LeafSource, QueryLimits, ZoneSources};
use danaus_storage::{Clock, MemKv, MemLogDevice};
use futures::future::BoxFuture;

const TENANT: &str = "promql";
const LOCATION: &str = "here";

/// A clock a day past the epoch: the scripts' samples start at time 0.
struct Day;

impl Clock for Day {
    fn now(&self) -> i64 {
        86_400 * 1_000_000_000
    }
}

struct DanausBackend {
    leaf: Leaf,
    receiver: Receiver,
}

async fn backend() -> DanausBackend {
    let leaf = Leaf::open(LeafConfig {
        kv: Arc::new(MemKv::new()),
        log: Arc::new(MemLogDevice::new()),
        clock: Arc::new(Day),
        options: LeafOptions { out_of_order_window: std::time::Duration::from_secs(86_400), ..LeafOptions::default() },
    })
    .await
    .unwrap();
    let receiver = Receiver::new(Arc::new(leaf.clone()), LOCATION);
    DanausBackend { leaf, receiver }
}

impl DanausBackend {
    fn storage(&self) -> DanausStorage {
        let source: Arc<dyn LeafPhase> = Arc::new(LeafSource::new("leaf", self.leaf.clone()));
        let engine =
            Engine::new(vec![ZoneSources { name: "zone".into(), leaves: vec![source] }], QueryLimits::default());
        let target = self.leaf.target_schema(TENANT, TARGET_SCHEMA);
        DanausStorage::new(Arc::new(engine), TENANT, target, self.leaf.metric_schemas(TENANT))
            .hide_default("location", LOCATION)
    }
}

impl Backend for DanausBackend {
    fn load(&mut self, series: Vec<(Labels, Vec<(i64, f64)>)>) -> BoxFuture<'_, std::result::Result<(), String>> {
        Box::pin(async move {
            let series: Vec<PromSeries> = series
                .into_iter()
                .map(|(l, samples)| PromSeries {
                    labels: l.pairs().to_vec(),
                    samples,
                    histograms: 0,
                    metric_type: 0,
                    help: String::new(),
                    unit: String::new(),
                    created_ms: None,
                })
                .collect();
            let written = self.receiver.write_series(TENANT, series).await.map_err(|r| format!("{r:?}"))?;
            if !written.refused.is_empty() {
                return Err(format!("refused: {written:?}"));
            }
            Ok(())
        })
    }

    fn clear(&mut self) -> BoxFuture<'_, std::result::Result<(), String>> {
        Box::pin(async move {
            let fresh = backend().await;
            *self = fresh;
            Ok(())
        })
    }

    fn instant<'a>(&'a mut self, query: &'a str, time: i64) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move { eval::instant(&self.storage(), query, time, Options::default()).await })
    }

    fn range<'a>(&'a mut self, query: &'a str, start: i64, end: i64, step: i64) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move { eval::range(&self.storage(), query, start, end, step, Options::default()).await })
    }
}

#[tokio::test]
async fn every_case_file_passes_over_a_danaus_leaf() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for f in &files {
        let script = std::fs::read_to_string(f).unwrap();
        if let Err(e) = run(&script, &mut backend().await).await {
            failures.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
