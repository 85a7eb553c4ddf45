//! Completeness reports: a source that cannot be reached is reported
//! missing and the query answers from the others; a source that fails
//! otherwise fails the query.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{leaf_with, DataSet, SEC, T0, TENANT};
use danaus_model::{MetricSchema, TargetSchema};
use danaus_query::{
    Engine, Error, FetchSpec, Keep, LeafSource, QueryLimits, QueryRange, RunOptions, SeriesSource, Sink, ZoneSources,
};
use futures::future::BoxFuture;

/// A leaf that knows the schemas but fails every read.
struct Broken {
    schemas: LeafSource,
    unavailable: bool,
}

impl SeriesSource for Broken {
    fn name(&self) -> &str {
        if self.unavailable {
            "leaf-down"
        } else {
            "leaf-broken"
        }
    }

    fn schemas(
        &self,
        tenant: &str,
        target: &str,
        metric: &str,
    ) -> danaus_query::Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        self.schemas.schemas(tenant, target, metric)
    }

    fn fetch<'a>(
        &'a self,
        _tenant: &'a str,
        _spec: &'a FetchSpec,
        _keep: Keep<'a>,
        _align: Option<danaus_query::PreAlign<'a>>,
        _max_series: usize,
        _batch: usize,
        _sink: Sink<'a>,
    ) -> BoxFuture<'a, danaus_query::Result<()>> {
        let unavailable = self.unavailable;
        Box::pin(async move {
            Err(Error::Source {
                source_name: self.name().into(),
                message: if unavailable { "connection refused".into() } else { "chunk 7 is corrupt".into() },
                unavailable,
            })
        })
    }
}

#[tokio::test]
async fn unreachable_sources_are_reported_missing() {
    let data = DataSet::parse(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/basic.data")).unwrap(),
    );
    let good = LeafSource::new("leaf-up", leaf_with(&data, &data.series.iter().collect::<Vec<_>>()).await);
    let down = Broken { schemas: good.clone(), unavailable: true };
    let engine = Engine::new(
        vec![ZoneSources { name: "zone-a".into(), leaves: vec![Arc::new(good.clone()), Arc::new(down)] }],
        QueryLimits::default(),
    );
    let range = QueryRange { start: T0, end: T0 + 60 * SEC, step: 10 * SEC };
    for q in ["fetch Host::/mem/used", "fetch Host::/mem/used | group_by [zone], sum"] {
        let (t, report) = engine.collect(TENANT, q, range, RunOptions::default()).await.unwrap();
        assert_eq!(t.series.len(), if q.contains("group_by") { 2 } else { 3 }, "{q}");
        assert!(!report.completeness.is_complete(), "{q}");
        let down = report.completeness.sources.iter().find(|s| s.source == "leaf-down").unwrap();
        assert!(down.missing.as_deref().unwrap().contains("connection refused"), "{down:?}");
        let up = report.completeness.sources.iter().find(|s| s.source == "leaf-up").unwrap();
        assert!(up.missing.is_none());
    }

    let broken = Broken { schemas: good.clone(), unavailable: false };
    let engine = Engine::new(
        vec![ZoneSources { name: "zone-a".into(), leaves: vec![Arc::new(good), Arc::new(broken)] }],
        QueryLimits::default(),
    );
    let e = engine.collect(TENANT, "fetch Host::/mem/used", range, RunOptions::default()).await.unwrap_err();
    assert!(e.to_string().contains("chunk 7 is corrupt"), "{e}");
}
