//! The broker end to end: real gRPC over loopback, real keys, injected time.

#[allow(dead_code)]
mod harness;

mod errors;
mod flow;
mod jwe;
mod python;
mod registry;
mod reload;
mod rotation;
mod signals;
