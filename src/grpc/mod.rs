//! The gRPC door: a thin layer that decodes requests, calls the broker, and
//! maps domain errors to statuses in exactly one place (`status.rs`).

pub mod codec;
pub mod limit;
pub mod proto;
pub mod service;
pub mod status;
