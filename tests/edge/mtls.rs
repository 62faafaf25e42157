//! mTLS: no certificate, an unknown CA, and an allowed-but-wrong identity are
//! refused; an allowed identity works; certificates reload without a restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient;
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptRequest};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Channel, Endpoint};

use crate::harness::*;

pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate: (cert PEM, key PEM).
    pub fn leaf(&self, cn: &str, sans: Vec<SanType>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

impl Ca {
    /// A trusted leaf with no identity: no SAN and no CN (only an organization).
    pub fn leaf_without_identity(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "no identity here");
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

pub fn uri(u: &str) -> SanType {
    SanType::URI(u.try_into().unwrap())
}

pub fn dns(d: &str) -> SanType {
    SanType::DnsName(d.try_into().unwrap())
}

/// A gRPC channel over TLS, optionally presenting a client certificate.
pub async fn tls_channel(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&(String, String)>,
) -> Result<Channel, String> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(3))
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let tls = connector
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| e.to_string())
}

pub struct Pki {
    pub ca: Ca,
    pub server: (String, String),
}

/// Writes server TLS material and returns the config section for it.
pub fn tls_config(fx: &Fixture, pki: &Pki) -> String {
    fx.write("ca.crt", &pki.ca.pem);
    fx.write("tls.crt", &pki.server.0);
    fx.write("tls.key", &pki.server.1);
    format!(
        "  tls:\n    cert_file: {}\n    key_file: {}\n    client_ca_file: {}\n",
        fx.path("tls.crt").display(),
        fx.path("tls.key").display(),
        fx.path("ca.crt").display()
    )
}

pub fn pki() -> Pki {
    let ca = Ca::new("reseal test CA");
    let server = ca.leaf("reseal", vec![dns("localhost")]);
    Pki { ca, server }
}

const API: &str = "spiffe://reseal.test/ns/payments/sa/api";
const REPORTS: &str = "spiffe://reseal.test/ns/reports/sa/batch";

fn request() -> ReencryptRequest {
    ReencryptRequest {
        input: Some(Input::Ciphertext(connect_message(
            "connect-a",
            CONNECT_A,
            b"4111111111111111",
        ))),
        route: "card-capture".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_strangers_and_authorizes_callers() {
    let fx = Fixture::new();
    let pki = pki();
    let config = standard_config(&format!(
        "callers:\n  payments-api:\n    identities: [\"{API}\"]\n    routes: [card-capture]\n  reports:\n    identities: [\"{REPORTS}\"]\n    consumers: [fraud]\n"
    ))
    .replace("server:\n", &format!("server:\n{}", tls_config(&fx, &pki)));
    let cfg = fx.write("reseal.yaml", &config);
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let addr = running.grpc_addr;

    // 1. No client certificate: the handshake (or the first request) fails.
    let outcome = match tls_channel(addr, &pki.ca.pem, None).await {
        Err(_) => Ok(()),
        Ok(ch) => match ReencryptServiceClient::new(ch).reencrypt(request()).await {
            Ok(_) => Err("a caller without a certificate got an answer"),
            Err(_) => Ok(()),
        },
    };
    outcome.unwrap();

    // 2. A certificate from a CA the server does not trust.
    let rogue = Ca::new("rogue CA").leaf("api", vec![uri(API)]);
    let outcome = match tls_channel(addr, &pki.ca.pem, Some(&rogue)).await {
        Err(_) => Ok(()),
        Ok(ch) => match ReencryptServiceClient::new(ch).reencrypt(request()).await {
            Ok(_) => Err("a certificate from an unknown CA was accepted"),
            Err(_) => Ok(()),
        },
    };
    outcome.unwrap();

    // 3. A trusted certificate whose identity may not use this route.
    let reports = pki.ca.leaf("reports", vec![uri(REPORTS)]);
    let mut c = ReencryptServiceClient::new(
        tls_channel(addr, &pki.ca.pem, Some(&reports))
            .await
            .unwrap(),
    );
    let status = c.reencrypt(request()).await.unwrap_err();
    assert_eq!(reason(&status), "PERMISSION_DENIED");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    // ... but it may target the one consumer it is granted.
    let mut direct = request();
    direct.route = String::new();
    direct.consumers = vec!["fraud".into()];
    assert!(c
        .reencrypt(direct.clone())
        .await
        .unwrap()
        .into_inner()
        .results[0]
        .error
        .is_none());
    direct.consumers = vec!["payments".into()];
    assert_eq!(
        reason(&c.reencrypt(direct).await.unwrap_err()),
        "PERMISSION_DENIED"
    );

    // A trusted certificate for an identity nobody registered.
    let unknown = pki
        .ca
        .leaf("who", vec![uri("spiffe://reseal.test/ns/x/sa/unknown")]);
    let mut c = ReencryptServiceClient::new(
        tls_channel(addr, &pki.ca.pem, Some(&unknown))
            .await
            .unwrap(),
    );
    assert_eq!(
        reason(&c.reencrypt(request()).await.unwrap_err()),
        "PERMISSION_DENIED"
    );

    // 4. The allowed identity works, and its envelopes open.
    let api = pki.ca.leaf("api", vec![uri(API), dns("api.payments.svc")]);
    let mut c =
        ReencryptServiceClient::new(tls_channel(addr, &pki.ca.pem, Some(&api)).await.unwrap());
    let resp = c.reencrypt(request()).await.unwrap().into_inner();
    assert_eq!(resp.results.len(), 3);
    assert_eq!(
        open_as("payments", "payments-2026", &resp.results[0].ciphertext)
            .unwrap()
            .plaintext
            .as_bytes(),
        b"4111111111111111"
    );
    let metrics = running.broker.metrics().encode();
    assert!(
        metrics.contains("reseal_security_events_total{kind=\"denied_caller\"}"),
        "{metrics}"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_reloads_without_restart() {
    let fx = Fixture::new();
    let pki = pki();
    let config = standard_config("")
        .replace("reload_interval: 0s", "reload_interval: 100ms")
        .replace("server:\n", &format!("server:\n{}", tls_config(&fx, &pki)));
    let cfg = fx.write("reseal.yaml", &config);
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let client_cert = pki.ca.leaf("api", vec![uri(API)]);

    let served_cn = |addr| {
        let ca = pki.ca.pem.clone();
        let client = client_cert.clone();
        async move {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
                .unwrap();
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(client.0.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(client.1.as_bytes()).unwrap(),
                )
                .unwrap();
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
            use x509_parser::prelude::FromDer;
            let (_, parsed) =
                x509_parser::certificate::X509Certificate::from_der(cert.as_ref()).unwrap();
            let cn = parsed
                .subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            cn
        }
    };
    assert_eq!(served_cn(running.grpc_addr).await, "reseal");
    let renewed = pki.ca.leaf("reseal-renewed", vec![dns("localhost")]);
    fx.replace("tls.key", &renewed.1);
    fx.replace("tls.crt", &renewed.0);
    let mut cn = String::new();
    for _ in 0..50 {
        cn = served_cn(running.grpc_addr).await;
        if cn == "reseal-renewed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cn, "reseal-renewed");
    running.stop().await.unwrap();
}

#[test]
fn identity_prefers_uri_then_dns_then_cn() {
    let ca = Ca::new("ca");
    let id = |sans| {
        let (pem, _) = ca.leaf("common-name", sans);
        reseal::transport::tls::identity_of(
            &CertificateDer::from_pem_slice(pem.as_bytes()).unwrap(),
        )
    };
    assert_eq!(
        id(vec![dns("a.example"), uri("spiffe://x/y")]).as_deref(),
        Some("spiffe://x/y")
    );
    assert_eq!(id(vec![dns("a.example")]).as_deref(), Some("a.example"));
    assert_eq!(id(vec![]).as_deref(), Some("common-name"));
}

/// Callers are configured and the client's certificate is trusted but names
/// nobody (no SAN, no CN): UNAUTHENTICATED (the reason moved here from
/// tests/broker/errors.rs, where callers without mTLS are now refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_certificate_without_identity_is_unauthenticated() {
    let fx = Fixture::new();
    let pki = pki();
    let config = standard_config(&format!(
        "callers:\n  payments-api:\n    identities: [\"{API}\"]\n    routes: [card-capture]\n"
    ))
    .replace("server:\n", &format!("server:\n{}", tls_config(&fx, &pki)));
    let cfg = fx.write("reseal.yaml", &config);
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let nobody = pki.ca.leaf_without_identity();
    let mut c = ReencryptServiceClient::new(
        tls_channel(running.grpc_addr, &pki.ca.pem, Some(&nobody))
            .await
            .unwrap(),
    );
    let status = c.reencrypt(request()).await.unwrap_err();
    assert_eq!(reason(&status), "UNAUTHENTICATED", "{status:?}");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    running.stop().await.unwrap();
}
