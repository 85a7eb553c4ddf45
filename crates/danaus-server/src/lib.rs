//! # danaus-server
//!
//! The `danaus` binary's roles. `danaus standalone` ([`standalone`]) runs a
//! whole zone in one process: the range assigner (a one-member Raft
//! group), leaves (`danaus-leaf` with RocksDB from `danaus-rocksdb` and the
//! recovery log on the file system), the zone index server, router and
//! mixer, each on a loopback gRPC port, behind one public gRPC port
//! (SchemaService, IngestService, ReadService, QueryService, reflection) and
//! the HTTP port ([`http`]: `/metrics`, `/healthz`, remote_write).
//!
//! A distributed zone runs the roles separately ([`zone`]): `danaus
//! assigner`, `leaf`, `router` and `mixer`; `danaus dev-cluster`
//! ([`dev_cluster`]) starts one on loopback.
//!
//! This crate is the only one that chooses RocksDB and the file system;
//! what a node serves lives in `danaus-node` (which the simulator runs
//! with in-memory storage) and the zone crates. Shutdown stops the
//! listeners, lets in-flight requests end, then checkpoints the leaves so
//! the next start replays nothing.

pub mod dev_cluster;
pub mod http;
pub mod prom_store;
pub mod promql_http;
pub mod standalone;
pub mod zone;

/// Accepted connections with Nagle's algorithm off: small gRPC replies
/// (a stream's last message, an ack) must not wait for a delayed ACK.
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        if let Ok(s) = &s {
            let _ = s.set_nodelay(true);
        }
        s
    })
}
