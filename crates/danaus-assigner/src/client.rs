//! Proposing changes of the zone table from outside the Raft group.

use std::time::Duration;

use danaus_proto::channels::Channels;
use danaus_proto::v1 as pb;
use pb::assigner_service_client::AssignerServiceClient;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::table::ZoneCommand;

/// Proposes [`ZoneCommand`]s through any reachable assigner member (a
/// follower forwards to the leader).
#[derive(Debug, Default)]
pub struct ZoneClient {
    assigners: Vec<String>,
    channels: Channels,
}

impl ZoneClient {
    /// A client of the members at `assigners` (host:port).
    pub fn new(assigners: Vec<String>) -> Self {
        Self { assigners, channels: Channels::default() }
    }

    fn channel(&self, addr: &str) -> Result<Channel, Status> {
        self.channels.get(addr).map_err(Status::invalid_argument)
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

    /// The table version committed now, from the group's leader (a
    /// linearizable read); UNAVAILABLE when no member confirms one.
    pub async fn latest_version(&self) -> Result<u64, Status> {
        self.latest_version_within(Duration::from_secs(5)).await
    }

    /// [`latest_version`](Self::latest_version), giving each member at
    /// most `per_member` to answer.
    pub async fn latest_version_within(&self, per_member: Duration) -> Result<u64, Status> {
        let mut last = Status::unavailable("no range assigner addresses configured");
        for addr in &self.assigners {
            let mut client = AssignerServiceClient::new(self.channel(addr)?);
            let mut req = Request::new(pb::LatestVersionRequest {});
            req.set_timeout(per_member);
            match client.latest_version(req).await {
                Ok(r) => return Ok(r.into_inner().version),
                Err(s) => last = s,
            }
        }
        Err(Status::unavailable(format!("no range assigner member leads: {}", last.message())))
    }
}
