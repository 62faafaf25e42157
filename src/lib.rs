//! reseal: a re-encryption broker for AWS Encryption SDK messages.
//!
//! Each module is one layer of the architecture:
//! * [`esdk`]: the message format, pure and I/O-free (bytes in, bytes out): the
//!   `reseal-esdk` crate, re-exported.
//! * [`keys`]: keyrings and key material, local and AWS-backed.
//! * [`registry`]: the configuration model, validation, self-test and hot reload.
//! * [`broker`]: the use case: open once, re-seal for every consumer.
//! * [`transport`]: connections for every door: TLS/mTLS, caller certificates.
//! * [`wire`]: the API's shared wire forms (status codes, proto3 JSON).
//! * [`grpc`]: the gRPC door, mapping domain errors to statuses.
//! * [`http`]: the HTTP/JSON door, the same service in proto3 JSON.
//! * [`lambda`]: the Lambda door: Amazon Connect, Genesys Cloud and direct invocations.
//! * [`server`]: the listeners wired together, readiness, admin endpoints.
//! * [`telemetry`]: logs, audit and metrics.
//! * [`vectors`]: the ESDK test-vector runner.
//! * [`cli`]: the `reseal` command line, a thin caller of the rest.

#![deny(unsafe_code)]

pub mod app;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod grpc;
pub mod http;
pub mod input;
pub mod keys;
pub mod lambda;
pub mod registry;
pub mod server;
pub mod telemetry;
pub mod transport;
pub mod vectors;
pub mod wire;

pub use reseal_esdk as esdk;
pub use reseal_jwe as jwe;
