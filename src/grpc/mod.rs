//! gRPC edge: a thin layer that decodes requests, calls the broker, and maps
//! domain errors to statuses in exactly one place.

pub mod gather;
pub mod limit;
pub mod proto;
pub mod server;
pub mod service;
pub mod status;
pub mod tls;

pub use server::{serve, Listeners, ServeError};
