//! # danaus-node
//!
//! The gRPC services one Danaus node serves over its leaf: SchemaService,
//! IngestService and ReadService ([`grpc`]) and QueryService ([`query`],
//! over the `danaus-query` engine). Requests flow one way: handler →
//! tenant check ([`tenant`]) → wire conversion (`danaus-proto`) → leaf or
//! engine; errors become statuses in one place ([`status`]).
//!
//! In a zone, [`zone_leaf`] adds the leaf's zone-internal face
//! (`LeafService`: fenced router writes, leaf phases for mixers, range
//! copies) and its agent (heartbeats, schema mirror, range drops).
//!
//! The crate holds no RocksDB, file system or HTTP: the leaf arrives with
//! its storage already chosen. `danaus-server` gives it RocksDB and the
//! file system and adds HTTP and reflection; `simulation/` gives it the
//! in-memory store and a disk that forgets unsynced writes, and runs it
//! under madsim.

pub mod grpc;
pub mod query;
pub mod status;
pub use danaus_proto::tenant;
pub mod zone_leaf;

use std::sync::Arc;

use danaus_leaf::Leaf;
use danaus_proto::v1 as pb;
use danaus_query::{Engine, LeafSource, QueryLimits, ZoneSources};

use crate::grpc::{Api, GrpcStats};
use crate::query::{QueryApi, QueryStats};

/// Largest gRPC message accepted or sent (a write batch, a result batch).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The services of a node over one leaf, and their counters.
#[derive(Clone)]
pub struct Services {
    /// Schema, ingest and read.
    pub api: Api,
    /// Queries.
    pub query: QueryApi,
    /// Request counters of `api`.
    pub stats: Arc<GrpcStats>,
    /// Query counters.
    pub query_stats: Arc<QueryStats>,
}

impl Services {
    /// The services over `leaf`, running at most `max_concurrent_queries`
    /// queries at once.
    pub fn new(leaf: Leaf, max_concurrent_queries: usize) -> Self {
        let stats = Arc::new(GrpcStats::default());
        let query_stats = Arc::new(QueryStats::default());
        let engine = Engine::new(
            vec![ZoneSources { name: "local".into(), leaves: vec![Arc::new(LeafSource::new("leaf-0", leaf.clone()))] }],
            QueryLimits::default(),
        );
        Self {
            api: Api::new(leaf, stats.clone()),
            query: QueryApi::new(Arc::new(engine), max_concurrent_queries, query_stats.clone()),
            stats,
            query_stats,
        }
    }

    /// A gRPC server with every service, at most `max_concurrent_requests`
    /// in flight per connection. Callers may add more services.
    pub fn server(&self, max_concurrent_requests: usize) -> tonic::transport::server::Router {
        tonic::transport::Server::builder()
            .concurrency_limit_per_connection(max_concurrent_requests)
            .add_service(
                pb::schema_service_server::SchemaServiceServer::new(self.api.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                pb::ingest_service_server::IngestServiceServer::new(self.api.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                pb::read_service_server::ReadServiceServer::new(self.api.clone())
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                pb::query_service_server::QueryServiceServer::new(self.query.clone())
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
    }
}
