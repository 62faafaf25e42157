//! The broker end to end: real gRPC over loopback, real keys, injected time.

#[allow(dead_code)]
mod harness;

mod errors;
mod flow;
mod http;
mod jwe;
mod metrics;
mod python;
mod registry;
mod reload;
mod rotation;
mod signals;
