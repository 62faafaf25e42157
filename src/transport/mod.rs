//! Connections, shared by every door: TCP accept within connection limits,
//! TLS and mutual TLS (reloaded when the files change), the identity of a
//! client certificate, write gathering on plaintext connections, HTTP/2
//! frame-flood guards, and serving HTTP on them with deadlines (handshake,
//! first request, idle) and the HTTP/2 limits. Below the doors: a door uses it, it
//! never names a door.

mod conn;
pub mod gather;
pub mod guard;
mod serve;
pub mod tls;

pub use conn::{incoming, Conn, ConnInfo, Listener};
pub use serve::{serve, Protocols};
pub use tls::{ClientAuth, TlsError, TlsPolicy};
