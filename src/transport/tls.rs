//! TLS and mutual TLS for every listener (rustls on aws-lc-rs).
//!
//! The server certificate, key and client CA are read from files and the whole
//! rustls configuration is rebuilt when any of them changes, so a rotated
//! certificate (cert-manager, a Kubernetes Secret update) is picked up without
//! a restart. Each accepted connection uses the configuration current at that
//! moment. The caller's identity is taken from the verified client certificate:
//! the first URI SAN (e.g. a SPIFFE id), else the first DNS SAN, else the
//! subject CN.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::sync::watch;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::registry::model::TlsSpec;

/// Whether a listener with a client CA demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// gRPC with mTLS: no certificate, no connection.
    Required,
    /// The HTTP door: a certificate is verified and identifies the caller when
    /// presented; without one the caller may still present a token.
    Optional,
}

/// What a listener asks of TLS beyond the shared certificate files.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    pub client_auth: ClientAuth,
    /// ALPN protocols offered, in preference order.
    pub alpn: Vec<Vec<u8>>,
}

impl TlsPolicy {
    /// gRPC: HTTP/2 only, client certificates required when a client CA is set.
    pub fn grpc() -> Self {
        TlsPolicy {
            client_auth: ClientAuth::Required,
            alpn: vec![b"h2".to_vec()],
        }
    }

    /// HTTP/JSON: HTTP/1.1 and HTTP/2, client certificates optional.
    pub fn http() -> Self {
        TlsPolicy {
            client_auth: ClientAuth::Optional,
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?
        .collect();
    let certs = certs.map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// Builds the rustls configuration from the files named in `spec`.
pub fn server_config(spec: &TlsSpec, policy: &TlsPolicy) -> Result<ServerConfig, TlsError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let certs = read_certs(&spec.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&spec.key_file)
        .map_err(|e| TlsError(format!("{}: {e}", spec.key_file.display())))?;
    let builder = ServerConfig::builder();
    let builder = match &spec.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError(format!("{}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
            let verifier = match policy.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            }
            .build()
            .map_err(|e| TlsError(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(format!("certificate and key do not match: {e}")))?;
    config.alpn_protocols = policy.alpn.clone();
    Ok(config)
}

/// Caller identity from a client certificate: URI SAN, else DNS SAN, else CN.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert.as_ref()).ok()?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        let names = &san.value.general_names;
        if let Some(uri) = names.iter().find_map(|n| match n {
            GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        }) {
            return Some(uri);
        }
        if let Some(dns) = names.iter().find_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        }) {
            return Some(dns);
        }
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    cn
}

fn digest_files(spec: &TlsSpec) -> Vec<u8> {
    let mut all = Vec::new();
    for p in [
        Some(&spec.cert_file),
        Some(&spec.key_file),
        spec.client_ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if let Ok(bytes) = std::fs::read(p) {
            all.extend_from_slice(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes).as_ref(),
            );
        }
    }
    all
}

/// A server configuration kept current with its files.
#[derive(Clone)]
pub struct ReloadingConfig(Arc<ArcSwap<ServerConfig>>);

impl ReloadingConfig {
    /// Loads the configuration and re-reads the files every `reload_interval`
    /// (5 s when polling is off), swapping in a new configuration on change.
    pub fn start(
        spec: TlsSpec,
        policy: TlsPolicy,
        reload_interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Self, TlsError> {
        let config = ReloadingConfig(Arc::new(ArcSwap::from_pointee(server_config(
            &spec, &policy,
        )?)));
        let swap = config.0.clone();
        tokio::spawn(async move {
            let mut last = digest_files(&spec);
            let every = if reload_interval.is_zero() {
                Duration::from_secs(5)
            } else {
                reload_interval
            };
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tick.tick() => {}
                }
                let now = digest_files(&spec);
                if now != last {
                    match server_config(&spec, &policy) {
                        Ok(c) => {
                            swap.store(Arc::new(c));
                            tracing::info!(cert = %spec.cert_file.display(), "TLS material reloaded");
                            last = now;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "TLS material changed but is not usable; keeping the previous one")
                        }
                    }
                }
            }
        });
        Ok(config)
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.0.load_full()
    }
}
