//! # danaus-config
//!
//! The global configuration of a Danaus installation (design: Components —
//! config server and config mirror).
//!
//! * [`object`]: what it holds — per tenant, target and metric schemas
//!   (rule groups, notification routes, silences, SLOs, quotas and
//!   credentials join as their issues land); for the installation, its
//!   zones (the zone map).
//! * [`state`]: [`ConfigState`], the config service's replicated state
//!   machine (a `danaus-raft` group): objects and the history of versions.
//!   Every change is a version with author, time and message; an apply is
//!   all or nothing and checked whole before it is one (schemas follow the
//!   compatibility rules); applying what is already there makes no version;
//!   a rollback applies an old version as a new one.
//! * [`files`]: configuration as code — a directory of YAML documents, one
//!   object per document (`kind: MetricSchema`, …), read with the file,
//!   line and column of every error, and written back by export so that
//!   export → apply changes nothing.
//!
//! Data flows one way: files → objects → a command proposed to the group
//! → versions, which zones' mirrors follow; nothing here reaches back.

pub mod client;
pub mod feed;
pub mod files;
pub mod object;
pub mod service;
pub mod state;
pub mod view;

pub use object::{Kind, Object, ObjectKey, ZoneSpec};
pub use state::{Change, ConfigCommand, ConfigState, Origin, Outcome, Refused, Version};
pub use view::ConfigView;
