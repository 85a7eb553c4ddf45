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
