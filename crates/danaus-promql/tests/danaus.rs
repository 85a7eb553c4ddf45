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

/// Aggregations fold in the leaf: what comes back is a series per group,
/// not per series; over several metrics whose series have the same labels
/// but for the name, a function that drops the name is not folded (the
/// evaluator must see the series to report the duplicate label set as
/// Prometheus does).
#[tokio::test]
async fn aggregations_fold_where_the_data_is() {
    use danaus_promql::Storage;
    use danaus_query::prom::{PromAggOp, PromAggregate, PromFn, PromWindow};
    use promql_parser::label::{MatchOp, Matcher};
    let mut b = backend().await;
    let l = |name: &str, job: &str, inst: &str| {
        Labels::new(vec![
            ("__name__".into(), name.into()),
            ("job".into(), job.into()),
            ("instance".into(), inst.into()),
        ])
    };
    let pts: Vec<(i64, f64)> = (0..10).map(|i| (i * 60_000, i as f64 * 60.0)).collect();
    b.load(vec![
        (l("c", "a", "1"), pts.clone()),
        (l("c", "a", "2"), pts.clone()),
        (l("c", "b", "1"), pts.clone()),
        (l("d", "a", "1"), pts),
    ])
    .await
    .unwrap();
    let storage = b.storage();
    let w = PromWindow {
        func: PromFn::Rate,
        params: Vec::new(),
        range: 300_000,
        offset: 0,
        at: None,
        start: 300_000,
        end: 540_000,
        step: 60_000,
    };
    let agg = PromAggregate {
        op: PromAggOp::Sum,
        by: true,
        labels: vec!["job".into()],
        start: 300_000 * 1_000_000,
        step: 60_000 * 1_000_000,
        steps: w.steps(),
    };
    let one = vec![Matcher::new(MatchOp::Equal, "__name__", "c")];
    let folded = storage.select_aggregate(&one, &w, &agg).await.unwrap().expect("one metric folds");
    let mut groups: Vec<(String, Vec<(i64, f64)>)> =
        folded.iter().map(|s| (s.labels.get("job").to_owned(), s.points.clone())).collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(groups.len(), 2, "{groups:?}");
    // Three series of rate 1/s: job a sums two of them.
    assert_eq!(groups[0].1.len(), 5);
    assert!(groups[0].1.iter().all(|&(_, v)| (v - 2.0).abs() < 1e-9), "{groups:?}");
    assert!(groups[1].1.iter().all(|&(_, v)| (v - 1.0).abs() < 1e-9), "{groups:?}");
    let both = vec![Matcher::new(MatchOp::Equal, "job", "a")];
    assert!(storage.select_aggregate(&both, &w, &agg).await.unwrap().is_none());
    // Both metrics, but no two series alike without their names: folded.
    b.load(vec![(l("d", "a", "3"), (0..10).map(|i| (i * 60_000, i as f64)).collect())]).await.unwrap();
    let storage = b.storage();
    let distinct = vec![Matcher::new(MatchOp::NotEqual, "instance", "1")];
    let folded = storage.select_aggregate(&distinct, &w, &agg).await.unwrap().expect("no collision: folded");
    // One group (job a) per metric.
    assert_eq!(folded.len(), 2, "{folded:?}");
    let lookback = PromWindow { func: PromFn::Lookback, ..w };
    assert!(storage.select_aggregate(&both, &lookback, &agg).await.unwrap().is_some());
}

/// A leaf that does not answer.
struct Down(LeafSource);

impl danaus_query::SeriesSource for Down {
    fn name(&self) -> &str {
        "leaf-down"
    }

    fn schemas(
        &self,
        tenant: &str,
        target: &str,
        metric: &str,
    ) -> danaus_query::Result<(Arc<danaus_model::TargetSchema>, Arc<danaus_model::MetricSchema>)> {
        danaus_query::SeriesSource::schemas(&self.0, tenant, target, metric)
    }

    fn fetch<'a>(
        &'a self,
        _tenant: &'a str,
        _spec: &'a danaus_query::FetchSpec,
        _keep: danaus_query::Keep<'a>,
        _align: Option<danaus_query::PreAlign<'a>>,
        _max_series: usize,
        _batch: usize,
        _sink: danaus_query::Sink<'a>,
    ) -> BoxFuture<'a, danaus_query::Result<()>> {
        Box::pin(async {
            Err(danaus_query::Error::Source {
                source_name: "leaf-down".into(),
                message: "connection refused".into(),
                unavailable: true,
            })
        })
    }
}

/// A partial answer (a leaf did not answer) carries Prometheus'
/// `warnings`; a complete one has none.
#[tokio::test]
async fn partial_answers_carry_warnings() {
    use danaus_promql::api::{query, Params};
    let mut b = backend().await;
    let up = Labels::new(vec![("__name__".into(), "up".into()), ("job".into(), "a".into())]);
    b.load(vec![(up, vec![(0, 1.0)])]).await.unwrap();
    let storage = |down: bool| {
        let good = LeafSource::new("leaf", b.leaf.clone());
        let mut leaves: Vec<Arc<dyn LeafPhase>> = vec![Arc::new(good.clone())];
        if down {
            leaves.push(Arc::new(Down(good)));
        }
        let engine = Engine::new(vec![ZoneSources { name: "zone".into(), leaves }], QueryLimits::default());
        let target = b.leaf.target_schema(TENANT, TARGET_SCHEMA);
        DanausStorage::new(Arc::new(engine), TENANT, target, b.leaf.metric_schemas(TENANT))
            .hide_default("location", LOCATION)
    };
    let params = Params(vec![("query".into(), "sum(up)".into()), ("time".into(), "60".into())]);
    let whole = query(&storage(false), &params, 0, Options::default()).await;
    let whole: serde_json::Value = serde_json::from_str(&whole.body).unwrap();
    assert_eq!(whole["data"]["result"][0]["value"][1], "1");
    assert!(whole.get("warnings").is_none(), "{whole}");
    let partial = query(&storage(true), &params, 0, Options::default()).await;
    assert_eq!(partial.status, 200);
    let partial: serde_json::Value = serde_json::from_str(&partial.body).unwrap();
    assert_eq!(partial["data"]["result"][0]["value"][1], "1");
    let warning = partial["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("leaf-down") && warning.contains("connection refused"), "{partial}");
}
