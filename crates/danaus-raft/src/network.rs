//! Raft over gRPC: [`GrpcNetwork`] sends a group's messages to its peers'
//! `RaftService`; [`RaftServer`] is that service, routing each message to
//! the group it names. Messages are openraft's own types as JSON.

use std::collections::HashMap;
use std::sync::Arc;

use danaus_proto::channels::Channels;
use danaus_proto::v1 as pb;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use parking_lot::RwLock;
use pb::raft_service_client::RaftServiceClient;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::{Command, NodeId, Raft, Reply, TypeConfig};

/// Sends one group's Raft messages to its peers.
#[derive(Clone)]
pub struct GrpcNetwork {
    group: String,
    channels: Arc<Channels>,
}

impl GrpcNetwork {
    /// The network of `group`.
    pub fn new(group: impl Into<String>) -> Self {
        Self { group: group.into(), channels: Arc::default() }
    }

    pub(crate) fn client(&self, addr: &str) -> Result<RaftServiceClient<Channel>, String> {
        Ok(RaftServiceClient::new(self.channels.get(addr)?)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20))
    }
}

/// A connection to one peer.
pub struct Peer {
    group: String,
    target: NodeId,
    node: BasicNode,
    client: Result<RaftServiceClient<Channel>, String>,
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer { group: self.group.clone(), target, node: node.clone(), client: self.client(&node.addr) }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Transport(String);

impl Peer {
    async fn call<Req, Resp, E>(
        &mut self,
        which: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let unreachable = |m: String| RPCError::Unreachable(Unreachable::new(&Transport(m)));
        let mut client = self.client.clone().map_err(unreachable)?;
        let payload = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = Request::new(pb::RaftRequest { group: self.group.clone(), payload });
        request.set_timeout(option.hard_ttl());
        let reply = match which {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|s| {
            let m = format!("raft {} to node {} at {}: {}", which.name(), self.target, self.node.addr, s.message());
            match s.code() {
                tonic::Code::Unavailable | tonic::Code::Unknown => unreachable(m),
                _ => RPCError::Network(NetworkError::new(&Transport(m))),
            }
        })?;
        let r: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply.into_inner().payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        r.map_err(|e| {
            RPCError::RemoteError(openraft::error::RemoteError::new_with_node(self.target, self.node.clone(), e))
        })
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Append => "append_entries",
            Rpc::Vote => "vote",
            Rpc::Snapshot => "install_snapshot",
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}

/// What `RaftService.Propose` answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ProposeOutcome {
    /// Committed and applied; the state machine's reply.
    Applied(Reply),
    /// This node is not the leader; the leader's address if known.
    NotLeader(Option<String>),
    /// Raft failed.
    Failed(String),
}

/// Proposes `cmd` on the local `raft`.
pub(crate) async fn propose_local(raft: &Raft, cmd: Command) -> ProposeOutcome {
    use openraft::error::ClientWriteError;
    match raft.client_write(cmd).await {
        Ok(r) => ProposeOutcome::Applied(r.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            ProposeOutcome::NotLeader(f.leader_node.map(|n| n.addr))
        }
        Err(e) => ProposeOutcome::Failed(e.to_string()),
    }
}

/// The `RaftService` of a node: routes messages to the groups it hosts.
#[derive(Clone, Default)]
pub struct RaftServer {
    groups: Arc<RwLock<HashMap<String, Raft>>>,
}

impl RaftServer {
    /// A server hosting no group yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `group`'s messages to `raft`.
    pub fn register(&self, group: &str, raft: Raft) {
        self.groups.write().insert(group.to_owned(), raft);
    }

    /// Stops routing `group`'s messages.
    pub fn unregister(&self, group: &str) {
        self.groups.write().remove(group);
    }

    /// The gRPC service.
    pub fn service(&self) -> danaus_proto::servers::RaftServer<Self> {
        pb::raft_service_server::RaftServiceServer::new(self.clone())
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20)
    }

    fn group(&self, name: &str) -> Result<Raft, Status> {
        self.groups
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("raft group {name:?} is not hosted on this node")))
    }
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(payload).map_err(|e| Status::invalid_argument(format!("malformed raft message: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<pb::RaftReply>, Status> {
    let payload = serde_json::to_vec(v).map_err(|e| Status::internal(format!("encoding a raft reply: {e}")))?;
    Ok(Response::new(pb::RaftReply { payload }))
}

#[tonic::async_trait]
impl pb::raft_service_server::RaftService for RaftServer {
    async fn append_entries(&self, req: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        let req = req.into_inner();
        let raft = self.group(&req.group)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&req.payload)?;
        encode(&raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        let req = req.into_inner();
        let raft = self.group(&req.group)?;
        let rpc: VoteRequest<NodeId> = decode(&req.payload)?;
        encode(&raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        let req = req.into_inner();
        let raft = self.group(&req.group)?;
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(&req.payload)?;
        encode(&raft.install_snapshot(rpc).await)
    }

    async fn propose(&self, req: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        let req = req.into_inner();
        let raft = self.group(&req.group)?;
        let cmd: Command = decode(&req.payload)?;
        encode(&propose_local(&raft, cmd).await)
    }
}
