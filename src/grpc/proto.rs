//! Generated code for `proto/reseal/v1/reseal.proto`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("reseal.v1");

/// Encoded file descriptor set, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/reseal_descriptor.bin"));
