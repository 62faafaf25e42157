//! reseal: a re-encryption broker for AWS Encryption SDK messages.
//!
//! Each module is one layer of the architecture:
//! * [`esdk`]: the message format, pure and I/O-free (bytes in, bytes out).
//! * [`keys`]: keyrings and key material.
//! * [`vectors`]: the ESDK test-vector runner.
//! * [`cli`]: the `reseal` command line, a thin caller of the rest.

pub mod cli;
pub mod esdk;
pub mod grpc;
pub mod input;
pub mod keys;
pub mod vectors;
