//! # danaus-proto
//!
//! The gRPC API of Danaus, generated from `proto/danaus/v1` (with
//! `madsim-tonic-build`, so the same services also compile for the
//! deterministic simulator), plus the conversions between the wire types and
//! `danaus-model`. Conversion errors name the field at fault; they never
//! panic on malformed input.

#![allow(missing_docs, clippy::all, clippy::unwrap_used)] // generated code

/// Generated types and services of `danaus.v1`.
pub mod v1 {
    tonic::include_proto!("danaus.v1");
}

/// Encoded `FileDescriptorSet` of every Danaus proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/danaus_descriptor.bin"));

pub mod channels;
pub mod convert;
pub mod tenant;

/// The largest configuration message (a whole configuration's snapshot,
/// a directory applied at once).
pub const MAX_CONFIG_BYTES: usize = 256 << 20;

/// The generated servers under one name in normal and simulated builds
/// (madsim-tonic's servers take an interceptor type as a second parameter).
pub mod servers {
    macro_rules! server {
        ($(#[$doc:meta])* $alias:ident = $module:ident :: $server:ident) => {
            $(#[$doc])*
            #[cfg(not(madsim))]
            pub type $alias<T> = crate::v1::$module::$server<T>;
            $(#[$doc])*
            #[cfg(madsim)]
            pub type $alias<T> = crate::v1::$module::$server<T, tonic::codegen::IdentityInterceptor>;
        };
    }
    server!(/// SchemaService's server.
        SchemaServer = schema_service_server::SchemaServiceServer);
    server!(/// IngestService's server.
        IngestServer = ingest_service_server::IngestServiceServer);
    server!(/// ReadService's server.
        ReadServer = read_service_server::ReadServiceServer);
    server!(/// QueryService's server.
        QueryServer = query_service_server::QueryServiceServer);
    server!(/// RaftService's server.
        RaftServer = raft_service_server::RaftServiceServer);
    server!(/// AssignerService's server.
        AssignerServer = assigner_service_server::AssignerServiceServer);
    server!(/// LeafService's server.
        LeafServer = leaf_service_server::LeafServiceServer);
    server!(/// IndexService's server.
        IndexServer = index_service_server::IndexServiceServer);
    server!(/// ZoneStageService's server.
        ZoneStageServer = zone_stage_service_server::ZoneStageServiceServer);
    server!(/// ConfigService's server.
        ConfigServer = config_service_server::ConfigServiceServer);
    server!(/// RuleService's server.
        RuleServer = rule_service_server::RuleServiceServer);
}
