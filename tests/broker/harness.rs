//! An in-process broker on loopback with generated keys, and a real gRPC client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use reseal::app::{self, Running, StartOptions};
use reseal::clock::{Clock, ManualClock};
use reseal::esdk::{self, DecryptPolicy, IdentitySet};
use reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient;
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptRequest};
use reseal::keys::{raw_rsa, RawRsaKeyring, RsaPadding};
use reseal::registry::ConfigSource;
use time::OffsetDateTime;
use tonic::transport::Channel;

pub const CONNECT_A: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
pub const CONNECT_B: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

/// Key pairs generated once per test binary: name → (private PEM, public PEM).
pub fn keys() -> &'static BTreeMap<&'static str, (String, String)> {
    static KEYS: OnceLock<BTreeMap<&'static str, (String, String)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            "connect-a",
            "connect-b",
            "payments",
            "fraud",
            "ledger-old",
            "ledger-new",
            "stranger",
        ]
        .into_iter()
        .map(|n| {
            let (p, q) = raw_rsa::generate_pem(2048).unwrap();
            (n, (p.to_string(), q))
        })
        .collect()
    })
}

/// A folder holding key files and a config file.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, (private, public)) in keys() {
            std::fs::write(dir.path().join(format!("{name}.pem")), private).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pub.pem")), public).unwrap();
        }
        Fixture { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Atomically replaces a file (as a ConfigMap update would).
    pub fn replace(&self, name: &str, text: &str) {
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.path(name)).unwrap();
    }
}

/// The standard registry used by most tests.
pub fn standard_config(extra: &str) -> String {
    format!(
        r#"
server:
  reload_interval: 0s
  log_format: text
sources:
  connect-a:
    type: raw-rsa
    key_name: {CONNECT_A}
    private_key: file:connect-a.pem
  connect-b:
    type: raw-rsa
    key_name: {CONNECT_B}
    private_key: file:connect-b.pem
consumers:
  payments:
    keys:
      payments-2026: {{type: rsa-public, public_key: file:payments.pub.pem}}
    encryption_context:
      static: {{purpose: card}}
      add: [consumer_id, source_key_id, request_id]
  fraud:
    keys:
      fraud-2026: {{type: rsa-public, public_key: file:fraud.pub.pem}}
  ledger:
    keys:
      ledger-old:
        type: rsa-public
        public_key: file:ledger-old.pub.pem
        not_after: 2030-06-30T00:00:00Z
      ledger-new:
        type: rsa-public
        public_key: file:ledger-new.pub.pem
        not_before: 2030-06-01T00:00:00Z
routes:
  card-capture: [payments, fraud, ledger]
{extra}
"#
    )
}

pub fn manual_clock(at: &str) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap(),
    ))
}

pub async fn start(config: &Path, clock: Arc<dyn Clock>) -> Running {
    app::start(
        ConfigSource::File(config.to_owned()),
        StartOptions {
            clock,
            ..StartOptions::loopback()
        },
    )
    .await
    .expect("broker starts")
}

pub async fn client(running: &Running) -> ReencryptServiceClient<Channel> {
    ReencryptServiceClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .expect("connect")
}

/// A call on `standard_config`'s `card-capture` route: a Connect message under
/// `connect-a` around `plaintext`.
pub fn card_capture_request(plaintext: &[u8]) -> ReencryptRequest {
    ReencryptRequest {
        input: Some(Input::Ciphertext(connect_message(
            "connect-a",
            CONNECT_A,
            plaintext,
        ))),
        route: "card-capture".into(),
        ..Default::default()
    }
}

/// What Amazon Connect emits: 0x0378, OAEP-SHA512, provider `AmazonConnect`, frame 4096.
pub fn connect_message(key: &str, key_id: &str, plaintext: &[u8]) -> Vec<u8> {
    let k = RawRsaKeyring::from_public_pem(
        "AmazonConnect",
        key_id,
        RsaPadding::OaepSha512,
        keys()[key].1.as_bytes(),
    )
    .unwrap();
    reseal::keys::connect::encrypt(&k, plaintext).unwrap()
}

/// Opens an envelope as the consumer would, with its private key.
pub fn open_as(key: &str, key_name: &str, envelope: &[u8]) -> Result<esdk::Decrypted, esdk::Error> {
    let mut ids = IdentitySet::new();
    ids.insert(Arc::new(
        RawRsaKeyring::from_private_pem(
            "reseal",
            key_name,
            RsaPadding::OaepSha256,
            keys()[key].0.as_bytes(),
        )
        .unwrap(),
    ));
    esdk::decrypt(envelope, &ids, &DecryptPolicy::default(), None)
}

/// The ErrorInfo reason of a failed call.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// A free loopback port (for child processes that bind their own).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Python with the reference ESDK and grpcio (`RESEAL_PYTHON`); required in CI.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("RESEAL_PYTHON") {
        Some(p) => Some(p.into()),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "RESEAL_PYTHON must be set in CI"
            );
            eprintln!("SKIPPING: RESEAL_PYTHON not set");
            None
        }
    }
}

/// Runs HTTP/JSON call cases through tests/python/http_e2e.py (Python
/// `requests`, answers checked against docs/openapi.yaml, envelopes opened by
/// the reference ESDK with the keys in `keys`).
pub fn run_python_cases(cases: serde_json::Value, keys: &Path) {
    let Some(py) = python() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = keys.join(format!("http-cases-{}.json", free_port()));
    let doc = serde_json::json!({
        "openapi": root.join("docs/openapi.yaml"),
        "keys": keys,
        "cases": cases,
    });
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = std::process::Command::new(py)
        .arg(root.join("tests/python/http_e2e.py"))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

/// Keys of JWE consumers, made once per test binary: name → material. RSA and
/// EC private keys are PKCS#8 PEM; certificates are valid 2026–2040 (the
/// tests' clocks stand in 2030), `jwe-expired-cert`'s 2020–2021.
pub struct JweKeyMaterial {
    /// PKCS#8 PEM (RSA, EC), or the raw 32 AES key bytes.
    pub private: Vec<u8>,
    /// What the configuration names: a public key PEM, a certificate PEM, or
    /// the AES key as base64 text.
    pub public: String,
    /// `pem` (public key), `cert`, or `aes`.
    pub form: &'static str,
    /// `RSA`, `EC` or `oct` (the Python interop script's key kinds).
    pub kind: &'static str,
}

pub fn jwe_keys() -> &'static BTreeMap<&'static str, JweKeyMaterial> {
    use base64::Engine as _;
    use reseal::jwe::Curve;
    use reseal::keys::{cert, jwe_keys};
    static KEYS: OnceLock<BTreeMap<&'static str, JweKeyMaterial>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let valid = (
            time::macros::datetime!(2026-01-01 0:00 UTC),
            time::macros::datetime!(2040-01-01 0:00 UTC),
        );
        let expired = (
            time::macros::datetime!(2020-01-01 0:00 UTC),
            time::macros::datetime!(2021-01-01 0:00 UTC),
        );
        let rsa = || {
            let (p, q) = raw_rsa::generate_pem(2048).unwrap();
            (p.to_string(), q)
        };
        let rsa_cert = |(nb, na), cn: &str| {
            let (p, _) = rsa();
            let c = cert::self_signed_rsa(&p, cn, nb, na).unwrap();
            JweKeyMaterial {
                private: p.into_bytes(),
                public: c,
                form: "cert",
                kind: "RSA",
            }
        };
        let ec_cert = |alg: &'static rcgen::SignatureAlgorithm, cn: &str| {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let mut params = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            (params.not_before, params.not_after) = valid;
            let c = params.self_signed(&key).unwrap();
            JweKeyMaterial {
                private: key.serialize_pem().into_bytes(),
                public: c.pem(),
                form: "cert",
                kind: "EC",
            }
        };
        let aes = || {
            let mut k = vec![0u8; 32];
            aws_lc_rs::rand::fill(&mut k).unwrap();
            let b64 = base64::engine::general_purpose::STANDARD.encode(&k);
            JweKeyMaterial {
                private: k,
                public: b64,
                form: "aes",
                kind: "oct",
            }
        };
        let (p, q) = rsa();
        let rsa_key = JweKeyMaterial {
            private: p.into_bytes(),
            public: q,
            form: "pem",
            kind: "RSA",
        };
        let ec_key = |curve| {
            let (p, q) = jwe_keys::generate_ec_pem(curve).unwrap();
            JweKeyMaterial {
                private: p.as_bytes().to_vec(),
                public: q,
                form: "pem",
                kind: "EC",
            }
        };
        BTreeMap::from([
            ("jwe-rsa", rsa_key),
            ("jwe-rsa-cert", rsa_cert(valid, "jwe-rsa-cert")),
            ("jwe-p256", ec_key(Curve::P256)),
            ("jwe-p384", ec_key(Curve::P384)),
            (
                "jwe-p256-cert",
                ec_cert(&rcgen::PKCS_ECDSA_P256_SHA256, "jwe-p256-cert"),
            ),
            (
                "jwe-p384-cert",
                ec_cert(&rcgen::PKCS_ECDSA_P384_SHA384, "jwe-p384-cert"),
            ),
            ("jwe-aes", aes()),
            ("jwe-aes-2", aes()),
            ("jwe-expired-cert", rsa_cert(expired, "jwe-expired-cert")),
        ])
    })
}

/// The file a JWE key's configured material is in (`file:` + this), and the
/// file of its private half.
pub fn jwe_file(name: &str) -> (String, String) {
    let k = &jwe_keys()[name];
    let public = match k.form {
        "cert" => format!("{name}.crt.pem"),
        "aes" => format!("{name}.b64"),
        _ => format!("{name}.pub.pem"),
    };
    let private = match k.form {
        "aes" => format!("{name}.bin"),
        _ => format!("{name}.pem"),
    };
    (public, private)
}

impl Fixture {
    /// Writes every JWE key's files (see [`jwe_file`]).
    pub fn with_jwe_keys(self) -> Self {
        for (name, k) in jwe_keys() {
            let (public, private) = jwe_file(name);
            self.write(&public, &k.public);
            std::fs::write(self.path(&private), &k.private).unwrap();
        }
        self
    }
}

/// The key that opens a JWE key's envelopes, expecting the consumer key id
/// `kid` (and the certificate's thumbprint for certificate keys).
pub fn jwe_opener(name: &str, kid: &str) -> reseal::jwe::DecryptionKey {
    let k = &jwe_keys()[name];
    let key = if k.form == "aes" {
        reseal::jwe::DecryptionKey::aes256(&k.private).unwrap()
    } else {
        let der = reseal::keys::pem::parse_all(&k.private).unwrap();
        reseal::jwe::DecryptionKey::from_pkcs8(&der[0].der).unwrap()
    };
    let key = key.with_kid(kid);
    if k.form == "cert" {
        let der = reseal::keys::pem::parse_all(k.public.as_bytes()).unwrap();
        key.with_x5t_s256(&der[0].der)
    } else {
        key
    }
}

/// A Connect-shaped message (0x0378, OAEP-SHA512, `AmazonConnect`) whose
/// encryption context holds `context` (Connect writes none; Genesys does).
pub fn connect_message_with_context(plaintext: &[u8], context: &[(&str, &str)]) -> Vec<u8> {
    let k = RawRsaKeyring::from_public_pem(
        "AmazonConnect",
        CONNECT_A,
        RsaPadding::OaepSha512,
        keys()["connect-a"].1.as_bytes(),
    )
    .unwrap();
    esdk::encrypt(
        plaintext,
        &[&k],
        &context.iter().copied().collect(),
        &esdk::EncryptOptions {
            suite: reseal::keys::connect::SUITE,
            frame_length: 4096,
            commitment: esdk::EncryptCommitment::Forbid,
            ..Default::default()
        },
    )
    .unwrap()
}
