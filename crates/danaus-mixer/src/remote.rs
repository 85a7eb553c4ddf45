//! A leaf in another process, as a [`LeafPhase`] of the engine.

use std::sync::Arc;
use std::time::Duration;

use danaus_model::{MetricSchema, TargetSchema};
use danaus_node::zone_leaf::with_tenant;
use danaus_proto::v1 as pb;
use danaus_query::{Error, ExecCtx, FetchPlan, LeafPhase, PhaseOutput, Result, Table};
use futures::future::BoxFuture;
use pb::leaf_service_client::LeafServiceClient;
use tonic::Request;

use crate::zone::{Pruner, Shared};

/// One replica of a range: the leaf's name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// The leaf's name.
    pub leaf: String,
    /// Its address.
    pub addr: String,
}

/// A target range with the replicas that may answer for it, the chosen
/// one first.
#[derive(Debug, Clone)]
pub(crate) struct RangeAsk {
    pub bounds: (Vec<u8>, Option<Vec<u8>>),
    pub replicas: Vec<Replica>,
}

/// The leaf phase of a query on one remote leaf, over the ranges the mixer
/// chose it for.
pub struct RemoteLeaf {
    name: String,
    ranges: Vec<RangeAsk>,
    shared: Arc<Shared>,
    pruner: Option<Arc<Pruner>>,
}

/// What one leaf answered.
#[derive(Default)]
struct Answer {
    tables: Vec<Table>,
    partials: Vec<PhaseOutput>,
    series: u64,
    points: u64,
}

/// A leaf plan, encoded for the wire at most once, and only when a
/// replica is asked over RPC (leaves in this process take it as it is).
#[derive(Clone, Copy)]
struct LeafPlan<'a> {
    fp: &'a FetchPlan,
    encoded: &'a std::sync::OnceLock<Vec<u8>>,
}

impl LeafPlan<'_> {
    fn bytes(&self) -> std::result::Result<&[u8], Failed> {
        if let Some(b) = self.encoded.get() {
            return Ok(b);
        }
        let b = rmp_serde::to_vec(self.fp).map_err(|e| Failed {
            retry: false,
            error: Error::Eval(format!("internal: encoding the leaf plan: {e}")),
        })?;
        Ok(self.encoded.get_or_init(|| b))
    }
}

/// Why an ask failed: `retry` when another replica may do better.
pub(crate) struct Failed {
    pub retry: bool,
    pub error: Error,
}

/// What a failed call to source `name` (`who`: what was asked, for the
/// message) means for the query.
pub(crate) fn failed_from(s: &tonic::Status, name: &str, who: &str, ctx: &ExecCtx) -> Failed {
    use tonic::Code;
    let unavailable = |m: String| Failed {
        retry: true,
        error: Error::Source { source_name: name.to_owned(), message: m, unavailable: true },
    };
    let m = format!("{who}: {}", s.message());
    // A client-side timeout shows up as CANCELLED ("Timeout expired").
    if ctx.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
        return unavailable(format!("cut by the query's deadline ({m})"));
    }
    match s.code() {
        Code::Unavailable | Code::FailedPrecondition | Code::Unknown | Code::Cancelled | Code::Aborted => {
            unavailable(m)
        }
        Code::DeadlineExceeded => unavailable(format!("cut by the query's deadline ({m})")),
        Code::InvalidArgument => Failed { retry: false, error: Error::invalid(s.message().to_owned(), None) },
        Code::NotFound => Failed { retry: false, error: Error::NotFound(s.message().to_owned()) },
        Code::ResourceExhausted => Failed { retry: false, error: limit_error(s.message(), ctx) },
        _ => Failed {
            retry: true,
            error: Error::Source { source_name: name.to_owned(), message: m, unavailable: false },
        },
    }
}

impl RemoteLeaf {
    pub(crate) fn new(name: String, ranges: Vec<RangeAsk>, shared: Arc<Shared>, pruner: Option<Arc<Pruner>>) -> Self {
        Self { name, ranges, shared, pruner }
    }

    /// Asks `replica` for the leaf phase over `ranges`.
    async fn ask(
        &self,
        replica: &Replica,
        ranges: &[&RangeAsk],
        plan: LeafPlan<'_>,
        ctx: &ExecCtx,
    ) -> Result<Answer, Failed> {
        let unavailable = |m: String| Failed {
            retry: true,
            error: Error::Source { source_name: replica.leaf.clone(), message: m, unavailable: true },
        };
        let status = |s: tonic::Status| {
            failed_from(&s, &replica.leaf, &format!("leaf {} at {}", replica.leaf, replica.addr), ctx)
        };
        if let Some(leaf) = self.shared.local_leaf(&replica.addr) {
            let bounds = ranges.iter().map(|r| r.bounds.clone()).collect();
            let limits = danaus_query::QueryLimits {
                max_series: ctx.limits.max_series.saturating_sub(ctx.series_touched()),
                max_points: ctx.limits.max_points.saturating_sub(ctx.points_touched()),
            };
            let run = leaf.run_stage_local(ctx.tenant.clone(), plan.fp, bounds, limits, ctx.deadline);
            let out = match ctx.deadline {
                Some(d) => {
                    match tokio::time::timeout(d.saturating_duration_since(std::time::Instant::now()), run).await {
                        Ok(r) => r,
                        Err(_) => {
                            return Err(unavailable(format!("leaf {}: cut by the query's deadline", replica.leaf)))
                        }
                    }
                }
                None => run.await,
            };
            let o = out.map_err(status)?;
            return Ok(Answer {
                tables: o.tables,
                partials: o.partial.into_iter().collect(),
                series: o.series,
                points: o.points,
            });
        }
        let mut client: LeafServiceClient<_> =
            self.shared.client(&replica.addr).map_err(unavailable)?.max_decoding_message_size(256 << 20);
        let timeout = ctx.deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(unavailable("cut by the query's deadline".into()));
        }
        let mut req = Request::new(pb::LeafStageRequest {
            plan: plan.bytes()?.to_vec(),
            ranges: ranges
                .iter()
                .map(|r| pb::TargetRange { start: r.bounds.0.clone(), end: r.bounds.1.clone().unwrap_or_default() })
                .collect(),
            max_series: ctx.limits.max_series.saturating_sub(ctx.series_touched()),
            max_points: ctx.limits.max_points.saturating_sub(ctx.points_touched()),
            timeout_ms: timeout.map_or(0, |t| t.as_millis().max(1) as u64),
        });
        with_tenant(&mut req, &ctx.tenant).map_err(|s| unavailable(s.message().to_owned()))?;
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        let mut stream = client.run_stage(req).await.map_err(status)?.into_inner();
        let mut answer = Answer::default();
        let decode = |e: rmp_serde::decode::Error| Failed {
            retry: true,
            error: Error::Source {
                source_name: replica.leaf.clone(),
                message: format!("undecodable leaf phase output: {e}"),
                unavailable: false,
            },
        };
        let mut done = false;
        while let Some(msg) = stream.message().await.map_err(status)? {
            match msg.item {
                Some(pb::leaf_stage_reply::Item::Table(b)) => {
                    answer.tables.push(rmp_serde::from_slice(&b).map_err(decode)?)
                }
                Some(pb::leaf_stage_reply::Item::Partial(b)) => {
                    answer.partials.push(rmp_serde::from_slice(&b).map_err(decode)?)
                }
                Some(pb::leaf_stage_reply::Item::Done(d)) => {
                    answer.series = d.series_touched;
                    answer.points = d.points_touched;
                    done = true;
                }
                None => {}
            }
        }
        if !done {
            return Err(unavailable("the leaf's answer ended early".into()));
        }
        Ok(answer)
    }

    /// Asks the other replicas of every range: each range goes to its
    /// first replica other than the ones in `avoid`.
    async fn ask_others(&self, avoid: &[String], plan: LeafPlan<'_>, ctx: &ExecCtx) -> Result<Answer, Failed> {
        let mut groups: Vec<(Replica, Vec<&RangeAsk>)> = Vec::new();
        for r in &self.ranges {
            let Some(rep) = r.replicas.iter().find(|x| !avoid.contains(&x.leaf)) else {
                // Not the real reason: callers report the first replica's
                // failure instead (`retry`).
                return Err(Failed {
                    retry: true,
                    error: Error::Source {
                        source_name: self.name.clone(),
                        message: "no other ready replica holds its ranges".into(),
                        unavailable: true,
                    },
                });
            };
            match groups.iter_mut().find(|(g, _)| g.leaf == rep.leaf) {
                Some((_, rs)) => rs.push(r),
                None => groups.push((rep.clone(), vec![r])),
            }
        }
        let asks = groups.iter().map(|(rep, rs)| self.ask(rep, rs, plan, ctx));
        let mut merged = Answer::default();
        for a in futures::future::join_all(asks).await {
            let a = a?;
            merged.tables.extend(a.tables);
            merged.partials.extend(a.partials);
            merged.series += a.series;
            merged.points += a.points;
        }
        Ok(merged)
    }

    async fn run(&self, fp: &FetchPlan, ctx: &ExecCtx) -> Result<Answer> {
        let encoded = std::sync::OnceLock::new();
        let plan = LeafPlan { fp, encoded: &encoded };
        let primary = self.ranges.first().and_then(|r| r.replicas.first()).cloned().ok_or_else(|| Error::Source {
            source_name: self.name.clone(),
            message: "no ranges".into(),
            unavailable: true,
        })?;
        let all: Vec<&RangeAsk> = self.ranges.iter().collect();
        let first = self.ask(&primary, &all, plan, ctx);
        tokio::pin!(first);
        let hedge_after = self.shared.cfg.hedge_after;
        let outcome = tokio::select! {
            r = &mut first => Some(r),
            _ = tokio::time::sleep(hedge_after) => None,
        };
        let result = match outcome {
            Some(Ok(a)) => Ok(a),
            Some(Err(f)) if !f.retry => Err(f),
            Some(Err(f)) => {
                self.shared.suspect(&primary.leaf);
                tracing::debug!(leaf = %primary.leaf, "leaf phase failed, asking other replicas: {}", f.error);
                self.ask_others(std::slice::from_ref(&primary.leaf), plan, ctx).await.map_err(|g| {
                    // Report the primary's failure: it is why the leaf is missing.
                    if g.retry {
                        f
                    } else {
                        g
                    }
                })
            }
            None => {
                // Slow: hedge on the other replicas; the first full answer wins.
                self.shared.stats.hedges.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let others = self.ask_others(std::slice::from_ref(&primary.leaf), plan, ctx);
                tokio::pin!(others);
                tokio::select! {
                    r = &mut first => match r {
                        Ok(a) => Ok(a),
                        Err(_) => others.await,
                    },
                    r = &mut others => match r {
                        Ok(a) => {
                            self.shared.stats.hedges_won.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            Ok(a)
                        }
                        Err(_) => first.await,
                    },
                }
            }
        };
        result.map_err(|f| f.error)
    }
}

fn limit_error(message: &str, ctx: &ExecCtx) -> Error {
    if message.contains("max_points") {
        Error::Limit {
            name: "max_points",
            what: "points read",
            limit: ctx.limits.max_points,
            hint: "shorten the time range or add filters",
        }
    } else {
        Error::Limit {
            name: "max_series",
            what: "series touched",
            limit: ctx.limits.max_series,
            hint: "add filters to narrow it, or raise the limit",
        }
    }
}

impl LeafPhase for RemoteLeaf {
    fn name(&self) -> &str {
        &self.name
    }

    fn schemas(&self, tenant: &str, target: &str, metric: &str) -> Result<(Arc<TargetSchema>, Arc<MetricSchema>)> {
        self.shared.schemas(tenant, target, metric)
    }

    fn run_phase<'a>(
        &'a self,
        fp: &'a FetchPlan,
        ctx: &'a ExecCtx,
        emit: &'a mut (dyn FnMut(Table) -> Result<()> + Send),
    ) -> BoxFuture<'a, Result<Vec<PhaseOutput>>> {
        Box::pin(async move {
            // The leaf is ready for all its ranges, so its hints cover them:
            // if it holds no matching series, neither do they. A leaf in this
            // process is not pruned: its own index answers that faster than
            // an RPC to the index server.
            let local = self
                .ranges
                .iter()
                .all(|r| r.replicas.first().is_some_and(|x| self.shared.local_leaf(&x.addr).is_some()));
            if let Some(p) = self.pruner.as_ref().filter(|_| !local) {
                if p.skip(&ctx.tenant, &fp.fetch, &self.name).await {
                    self.shared.stats.pruned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(Vec::new());
                }
            }
            let a = self.run(fp, ctx).await?;
            ctx.add_touched(a.series, a.points)?;
            for t in a.tables {
                emit(t)?;
            }
            Ok(a.partials)
        })
    }
}

/// How long to wait before hedging, by default.
pub(crate) const DEFAULT_HEDGE_AFTER: Duration = Duration::from_millis(500);
