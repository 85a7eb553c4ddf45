//! Proposing changes of the zone table from outside the Raft group.

use std::collections::HashMap;
use std::time::Duration;

use danaus_proto::v1 as pb;
use parking_lot::Mutex;
use pb::assigner_service_client::AssignerServiceClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::table::ZoneCommand;

/// Proposes [`ZoneCommand`]s through any reachable assigner member (a
/// follower forwards to the leader).
#[derive(Debug, Default)]
pub struct ZoneClient {
    assigners: Vec<String>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl ZoneClient {
    /// A client of the members at `assigners` (host:port).
    pub fn new(assigners: Vec<String>) -> Self {
        Self { assigners, channels: Mutex::default() }
    }

    fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let cached = self.channels.lock().get(addr).cloned();
        if let Some(c) = cached {
            return Ok(c);
        }
        let c = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::internal(format!("bad assigner address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        self.channels.lock().insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    /// Proposes `cmd`; the table version that includes it. A refusal by
    /// the table is INVALID_ARGUMENT; no reachable member, UNAVAILABLE.
    pub async fn propose(&self, cmd: &ZoneCommand) -> Result<u64, Status> {
        let json = serde_json::to_vec(cmd).map_err(|e| Status::internal(e.to_string()))?;
        let mut last = Status::unavailable("no range assigner addresses configured");
        for addr in &self.assigners {
            let mut client = AssignerServiceClient::new(self.channel(addr)?);
            let mut req = Request::new(pb::ZoneProposal { command_json: json.clone() });
            req.set_timeout(Duration::from_secs(15));
            match client.propose(req).await {
                Ok(r) => return Ok(r.into_inner().version),
                Err(s) if s.code() == tonic::Code::InvalidArgument => return Err(s),
                Err(s) => last = s,
            }
        }
        Err(Status::unavailable(format!("the range assigner is unreachable: {}", last.message())))
    }
}
