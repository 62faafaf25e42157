//! gRPC edge: a thin layer that maps requests to the broker and errors to statuses.

pub mod proto;
