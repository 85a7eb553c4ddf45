//! # danaus-server
//!
//! The `danaus` binary's roles. `danaus standalone` ([`standalone`]) runs a
//! whole zone in one process: today one leaf (`danaus-leaf`, with RocksDB
//! from `danaus-rocksdb` and the recovery log on the file system) behind
//! the gRPC API ([`grpc`]: SchemaService, IngestService, ReadService;
//! [`query`]: QueryService over the `danaus-query` engine; plus server
//! reflection) and the HTTP port ([`http`]: `/metrics`, `/healthz`).
//!
//! Requests flow one way: gRPC handler → tenant check ([`tenant`]) → wire
//! conversion (`danaus-proto`) → leaf. Errors become statuses in one place
//! ([`status`]). Shutdown stops the listeners, lets in-flight requests end,
//! then checkpoints the leaf so the next start replays nothing.

pub mod grpc;
pub mod http;
pub mod query;
pub mod standalone;
pub mod status;
pub mod tenant;
