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
//! Every role — standalone's zone in one process too — is defined once in
//! `danaus-roles`, which the simulation starts with in-memory storage; this
//! crate is the only one that chooses RocksDB and the file system, and the
//! only one with an HTTP port (remote_write, the PromQL API, `/metrics`,
//! `/healthz`). Shutdown stops the listeners, lets in-flight requests end,
//! then checkpoints the leaves so the next start replays nothing.

pub mod alertmanager;
pub mod dev_cluster;
pub mod http;
pub mod prom_store;
pub mod promql_http;
pub mod rules;
pub mod rules_http;
pub mod standalone;
pub mod zone;
