//! Per-leaf write lanes: concurrent writes to the same leaf share RPCs.
//!
//! Each (tenant, leaf) has a lane. A write joins its lane's queue; if
//! fewer than [`IN_FLIGHT`] RPCs are in flight on the lane, a task takes
//! everything queued, sends it as one `LeafService.Write` and hands each
//! caller its part of the answer, then takes whatever queued up meanwhile.
//! An idle lane adds no delay; a busy one turns many small batches into
//! few large ones (with N leaves a client request splits N ways, so
//! without lanes each leaf would see batches 1/N as large). A few RPCs per
//! lane overlap, so a leaf works on one write while another waits for its
//! recovery log's sync (and, in process, uses more than one core). The
//! merged request carries the oldest table version of its parts, so
//! fencing stays as strict as for each part.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use danaus_model::SeriesWrite;
use danaus_node::grpc::series_to_wire;
use danaus_node::zone_leaf::{with_tenant, ZoneLeaf};
use danaus_proto::channels::Channels;
use danaus_proto::v1 as pb;
use parking_lot::Mutex;
use pb::leaf_service_client::LeafServiceClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::Request;

/// Series per merged RPC, at most.
const MAX_SERIES: usize = 20_000;

/// RPCs in flight per lane, at most.
pub(crate) const IN_FLIGHT: usize = 4;

type Reply = Result<pb::WriteResponse, String>;

struct Part {
    /// The caller's series; this part is those at `idx`.
    series: Arc<Vec<SeriesWrite>>,
    idx: Vec<usize>,
    version: u64,
    tx: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Lane {
    queue: Vec<Part>,
    /// Tasks draining the queue (each with at most one RPC in flight).
    running: usize,
}

/// The lanes of a router.
#[derive(Default)]
pub(crate) struct Lanes {
    lanes: Mutex<HashMap<(String, String), Lane>>,
    channels: Channels,
    /// Leaves in this process by address: written by a call, not an RPC.
    local: parking_lot::RwLock<HashMap<String, Arc<ZoneLeaf>>>,
}

impl Lanes {
    fn client(&self, addr: &str) -> Result<LeafServiceClient<Channel>, String> {
        Ok(LeafServiceClient::new(self.channels.get(addr)?)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20))
    }

    /// Writes the series of `series` at `idx`, routed by table `version`,
    /// to the leaf at `addr`. Errors index into `idx`.
    pub(crate) async fn send(
        self: &Arc<Self>,
        tenant: &str,
        addr: &str,
        version: u64,
        (series, idx): (Arc<Vec<SeriesWrite>>, Vec<usize>),
        timeout: Duration,
    ) -> Reply {
        let (tx, rx) = oneshot::channel();
        let key = (tenant.to_owned(), addr.to_owned());
        let start = {
            let mut lanes = self.lanes.lock();
            let lane = match lanes.get_mut(&key) {
                Some(l) => l,
                None => lanes.entry(key.clone()).or_default(),
            };
            lane.queue.push(Part { series, idx, version, tx });
            let start = lane.running < IN_FLIGHT;
            if start {
                lane.running += 1;
            }
            start
        };
        if start {
            // A task, not this caller: a caller that goes away must not
            // strand the others queued behind it.
            let me = self.clone();
            tokio::spawn(async move { me.drain(key, timeout).await });
        }
        rx.await.unwrap_or_else(|_| Err("the write lane stopped".into()))
    }

    async fn drain(self: Arc<Self>, key: (String, String), timeout: Duration) {
        loop {
            let parts: Vec<Part> = {
                let mut lanes = self.lanes.lock();
                let Some(lane) = lanes.get_mut(&key) else { return };
                if lane.queue.is_empty() {
                    lane.running -= 1;
                    return;
                }
                let mut n = 0;
                let take = lane.queue.iter().take_while(|p| {
                    n += p.idx.len();
                    n <= MAX_SERIES || n == p.idx.len()
                });
                let k = take.count().max(1);
                lane.queue.drain(..k).collect()
            };
            let version = parts.iter().map(|p| p.version).min().unwrap_or(0);
            let mut bounds = Vec::with_capacity(parts.len());
            let mut series: Vec<&SeriesWrite> = Vec::with_capacity(parts.iter().map(|p| p.idx.len()).sum());
            let mut txs = Vec::with_capacity(parts.len());
            for p in &parts {
                let from = series.len();
                series.extend(p.idx.iter().map(|&i| &p.series[i]));
                bounds.push(from..series.len());
            }
            let result = self.rpc(&key.0, &key.1, version, &series, timeout).await;
            drop(series);
            for p in parts {
                txs.push(p.tx);
            }
            match result {
                Err(e) => {
                    for tx in txs {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
                Ok(resp) => {
                    let mut per: Vec<Vec<pb::SeriesError>> = vec![Vec::new(); txs.len()];
                    for mut e in resp.errors {
                        let i = e.index as usize;
                        if let Some(k) = bounds.iter().position(|b| b.contains(&i)) {
                            e.index = (i - bounds[k].start) as u32;
                            per[k].push(e);
                        }
                    }
                    for (tx, errors) in txs.into_iter().zip(per) {
                        // The router counts acknowledged points itself.
                        let _ = tx.send(Ok(pb::WriteResponse { accepted_points: 0, errors }));
                    }
                }
            }
        }
    }

    /// Writes to the leaf at `addr` in-process from now on.
    pub(crate) fn add_local(&self, addr: String, leaf: Arc<ZoneLeaf>) {
        self.local.write().insert(addr, leaf);
    }

    async fn rpc(
        &self,
        tenant: &str,
        addr: &str,
        table_version: u64,
        series: &[&SeriesWrite],
        timeout: Duration,
    ) -> Reply {
        let local = self.local.read().get(addr).cloned();
        if let Some(leaf) = local {
            // The same handler the RPC runs, minus conversion, encoding and
            // the socket.
            return match tokio::time::timeout(timeout, leaf.write_series(tenant, table_version, series)).await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(s)) => Err(format!("{:?}: {}", s.code(), s.message())),
                Err(_) => Err(format!("DeadlineExceeded: leaf at {addr} did not answer within {timeout:?}")),
            };
        }
        let mut client = self.client(addr)?;
        let req = pb::LeafWriteRequest { table_version, series: series.iter().map(|s| series_to_wire(s)).collect() };
        let mut req = Request::new(req);
        with_tenant(&mut req, tenant).map_err(|s| s.message().to_owned())?;
        req.set_timeout(timeout);
        match client.write(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
        }
    }
}
