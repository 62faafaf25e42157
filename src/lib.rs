//! reseal: a re-encryption broker for AWS Encryption SDK messages.
//!
//! Each module is one layer of the architecture:
//! * [`esdk`]: the message format, pure and I/O-free (bytes in, bytes out): the
//!   `reseal-esdk` crate, re-exported.
//! * [`keys`]: keyrings and key material, local and AWS-backed.
//! * [`registry`]: the configuration model, validation, self-test and hot reload.
//! * [`broker`]: the use case: open once, re-seal for every consumer.
//! * [`grpc`]: the network edge, mapping domain errors to statuses.
//! * [`telemetry`]: logs, audit and metrics.
//! * [`vectors`]: the ESDK test-vector runner.
//! * [`cli`]: the `reseal` command line, a thin caller of the rest.

#![deny(unsafe_code)]

pub mod app;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod grpc;
pub mod input;
pub mod keys;
pub mod registry;
pub mod telemetry;
pub mod vectors;

pub use reseal_esdk as esdk;
