//! Connections, shared by every door: TCP accept, TLS and mutual TLS (reloaded
//! when the files change), the identity of a client certificate, and write
//! gathering on plaintext connections. Below the doors: a door uses it, it
//! never names a door.

mod conn;
pub mod gather;
pub mod tls;

pub use conn::{incoming, Conn, ConnInfo};
pub use tls::{ClientAuth, TlsError, TlsPolicy};
