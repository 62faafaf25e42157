//! The self-test behind `reseal validate`, start-up and every reload: one row
//! per key, OK / WARN / FAIL with the reason.
//!
//! A *blocking* failure (material that cannot work at all) refuses the
//! registry; a non-blocking one (an expired certificate, AWS unreachable right
//! now) is reported but does not stop the others from being served.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use super::listing::{rfc3339, CertificateDates};
use super::{
    CertificateInfo, ConsumerFormat, ConsumerWrap, JweKey, JweOutput, Registry, SourceMaterial,
    WindowStatus,
};
use crate::esdk::{
    self, AlgorithmSuite, DecryptPolicy, EncryptionContext, EncryptionMaterials, IdentitySet,
    Keyring, Recipient,
};
use crate::jwe;
use crate::keys::remote::KeyAccessError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum CheckStatus {
    Ok,
    /// Not exercised: the key needs AWS and the self-test ran offline.
    Skip,
    Warn,
    Fail,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckStatus::Ok => "OK",
            CheckStatus::Skip => "SKIP",
            CheckStatus::Warn => "WARN",
            CheckStatus::Fail => "FAIL",
        })
    }
}

/// How the self-test runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SelfTestOptions {
    /// Make no AWS call: AWS-backed keys are compiled (their configuration is
    /// checked) but not exercised, and reported as SKIP.
    pub offline: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// `sources.<id>` or `consumers.<id>.keys.<key>`.
    pub entry: String,
    pub status: CheckStatus,
    pub detail: String,
    /// A blocking failure refuses the whole registry.
    pub blocking: bool,
    /// The key's window (a consumer key's bounded by its certificate; a
    /// source's `not_before` / `decrypt_until`), RFC 3339; rows of keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateDates>,
}

impl Check {
    fn new(entry: String, status: CheckStatus, detail: impl Into<String>) -> Self {
        Check {
            entry,
            status,
            detail: detail.into(),
            blocking: false,
            not_before: None,
            not_after: None,
            certificate: None,
        }
    }

    fn blocking(mut self) -> Self {
        self.blocking = true;
        self
    }
}

const TEST_DATA: &[u8] = b"reseal self-test";

fn test_context() -> EncryptionContext {
    [("reseal-self-test", "1")].into_iter().collect()
}

fn days(d: time::Duration) -> i64 {
    d.whole_days()
}

fn remote_failure(entry: String, e: KeyAccessError) -> Check {
    let blocking = matches!(e, KeyAccessError::Invalid(_));
    let c = Check::new(entry, CheckStatus::Fail, e.to_string());
    if blocking {
        c.blocking()
    } else {
        c
    }
}

/// Runs crypto on the runtime's blocking pool: a reload's self-test never
/// holds up the reactor that serves requests.
async fn off_reactor<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, esdk::Error> + Send + 'static,
) -> Result<T, esdk::Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(esdk::Error::Crypto("self-test task failed")))
}

/// Seals test data for a source key and opens it again.
fn round_trip(keyring: Arc<dyn Keyring>) -> Result<(), esdk::Error> {
    let mut m = EncryptionMaterials::generate(
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        test_context(),
    )?;
    m.wrap_for(keyring.as_ref())?;
    let ct = esdk::seal(TEST_DATA, &m, 4096)?;
    let mut ids = IdentitySet::new();
    ids.insert(keyring);
    let out = esdk::decrypt(&ct, &ids, &DecryptPolicy::default(), None)?;
    if out.plaintext.as_bytes() != TEST_DATA {
        return Err(esdk::Error::Crypto("round trip mismatch"));
    }
    Ok(())
}

/// Seals test data for a consumer key.
fn wraps(
    recipient: Arc<dyn Recipient>,
    suite: AlgorithmSuite,
    frame_length: u32,
) -> Result<(), esdk::Error> {
    let mut m = EncryptionMaterials::generate(suite, test_context())?;
    m.wrap_for(recipient.as_ref())?;
    esdk::seal(TEST_DATA, &m, frame_length).map(drop)
}

/// Seals test data for a JWE consumer key as the consumer's envelopes are
/// sealed and, where reseal holds the key that opens it (a shared AES key),
/// opens it again. Returns what was done ("seals", "seals and opens").
fn jwe_round_trip(key: &JweKey, output: &JweOutput) -> Result<&'static str, String> {
    let context: BTreeMap<String, String> = test_context()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let sealed = jwe::seal(
        TEST_DATA,
        std::slice::from_ref(&key.recipient),
        &jwe::SealOptions {
            serialization: output.serialization,
            content_type: output.content_type.as_deref(),
            context: Some(&context),
        },
    )
    .map_err(|e| e.to_string())?;
    let Some(opener) = &key.opener else {
        return Ok("seals");
    };
    let opened = jwe::open_bytes(&sealed, opener).map_err(|e| format!("cannot open: {e}"))?;
    if opened.plaintext.as_slice() != TEST_DATA || opened.context() != Some(context) {
        return Err("round trip mismatch".into());
    }
    Ok("seals and opens")
}

async fn remote_self_test(wrap: &ConsumerWrap) -> Result<String, KeyAccessError> {
    match wrap {
        ConsumerWrap::Fetched(f) => f.self_test().await,
        ConsumerWrap::Kms(k) => k.self_test().await,
        ConsumerWrap::JweFetched(f) => f.self_test().await,
        ConsumerWrap::Local(_) | ConsumerWrap::Jwe(_) => Ok(String::new()),
    }
}

/// Runs every check. AWS-backed keys are exercised through AWS.
pub async fn self_test(registry: &Registry, now: OffsetDateTime) -> Vec<Check> {
    self_test_with(registry, now, SelfTestOptions::default()).await
}

/// Runs every check, offline when asked (no AWS call).
pub async fn self_test_with(
    registry: &Registry,
    now: OffsetDateTime,
    options: SelfTestOptions,
) -> Vec<Check> {
    let mut rows = Vec::new();
    for source in registry.sources.iter() {
        let entry = format!("sources.{}", source.id);
        let window_note = match (source.window.status(now), source.window.not_after) {
            (WindowStatus::NotYetValid, _) => Some((
                CheckStatus::Ok,
                format!(
                    "not yet valid (starts {})",
                    source.window.not_before.map(rfc3339).unwrap_or_default()
                ),
            )),
            (WindowStatus::Expired, end) => Some((
                CheckStatus::Warn,
                format!(
                    "past `decrypt_until` ({}): no longer used",
                    end.map(rfc3339).unwrap_or_default()
                ),
            )),
            (WindowStatus::Active, Some(end)) if end - now < source.expiry_warning => Some((
                CheckStatus::Warn,
                format!(
                    "`decrypt_until` is {} ({} days from now): inputs under this key stop opening then",
                    rfc3339(end),
                    days(end - now)
                ),
            )),
            (WindowStatus::Active, _) => None,
        };
        let row = match &source.material {
            SourceMaterial::Local(keyring) => {
                let result = {
                    let keyring = keyring.clone();
                    off_reactor(move || round_trip(keyring)).await
                };
                match result {
                    Ok(()) => Check::new(
                        entry,
                        CheckStatus::Ok,
                        format!("{}: round trip ok", keyring.describe()),
                    ),
                    Err(e) => {
                        Check::new(entry, CheckStatus::Fail, format!("round trip failed: {e}"))
                            .blocking()
                    }
                }
            }
            SourceMaterial::Remote(_) if options.offline => Check::new(
                entry,
                CheckStatus::Skip,
                format!("{}: not exercised (offline: no AWS call)", source.reference),
            ),
            SourceMaterial::Remote(remote) => match remote.self_test().await {
                Ok(detail) => Check::new(entry, CheckStatus::Ok, detail),
                Err(e) => remote_failure(entry, e),
            },
        };
        let row = match window_note {
            Some((status, note)) if row.status <= CheckStatus::Skip => Check {
                status: status.max(row.status),
                detail: format!("{}; {note}", row.detail),
                ..row
            },
            _ => row,
        };
        rows.push(with_dates(
            row,
            source.window.not_before,
            source.window.not_after,
            None,
        ));
    }

    for consumer in registry.consumers.values() {
        let mut active = 0;
        for key in &consumer.keys {
            let entry = format!("consumers.{}.keys.{}", consumer.id, key.id);
            let what = if key.certificate.is_some() {
                "certificate"
            } else {
                "key window"
            };
            let (mut status, mut notes) = match key.window.status(now) {
                WindowStatus::Expired => (
                    CheckStatus::Fail,
                    vec![format!(
                        "{what} ended {}; the key is not used",
                        key.window.not_after.map(rfc3339).unwrap_or_default()
                    )],
                ),
                WindowStatus::NotYetValid => (
                    CheckStatus::Ok,
                    vec![format!(
                        "starts {}",
                        key.window.not_before.map(rfc3339).unwrap_or_default()
                    )],
                ),
                WindowStatus::Active => {
                    active += 1;
                    match key.window.not_after {
                        Some(end) if end - now < consumer.expiry_warning => (
                            CheckStatus::Warn,
                            vec![format!(
                                "{what} expires in {} days ({})",
                                days(end - now),
                                rfc3339(end)
                            )],
                        ),
                        _ => (CheckStatus::Ok, vec![]),
                    }
                }
            };
            let mut blocking = false;
            match &key.wrap {
                ConsumerWrap::Local(recipient) => {
                    let sealed = {
                        let (recipient, suite, frame) =
                            (recipient.clone(), consumer.suite, consumer.frame_length);
                        off_reactor(move || wraps(recipient, suite, frame)).await
                    };
                    match sealed {
                        Ok(_) => notes.insert(0, format!("{}: wraps ok", recipient.describe())),
                        Err(e) => {
                            status = CheckStatus::Fail;
                            blocking = true;
                            notes.insert(0, format!("cannot wrap: {e}"));
                        }
                    }
                }
                ConsumerWrap::Fetched(_) | ConsumerWrap::Kms(_) | ConsumerWrap::JweFetched(_)
                    if options.offline =>
                {
                    if status == CheckStatus::Ok {
                        status = CheckStatus::Skip;
                    }
                    notes.insert(
                        0,
                        format!("{}: not exercised (offline: no AWS call)", key.reference),
                    );
                }
                ConsumerWrap::Jwe(key) => {
                    let output = match &consumer.format {
                        ConsumerFormat::Jwe(output) => output.clone(),
                        ConsumerFormat::Esdk => JweOutput::default(),
                    };
                    let done = {
                        let key = key.clone();
                        tokio::task::spawn_blocking(move || jwe_round_trip(&key, &output))
                            .await
                            .unwrap_or_else(|_| Err("self-test task failed".into()))
                    };
                    let r = &key.recipient;
                    match done {
                        Ok(done) => notes
                            .insert(0, format!("JWE {} ({}): {done} ok", r.alg(), r.key_info())),
                        Err(e) => {
                            status = CheckStatus::Fail;
                            blocking = true;
                            notes.insert(0, format!("JWE {}: cannot seal: {e}", r.alg()));
                        }
                    }
                }
                ConsumerWrap::Fetched(_) | ConsumerWrap::Kms(_) | ConsumerWrap::JweFetched(_) => {
                    match remote_self_test(&key.wrap).await {
                        Ok(detail) => notes.insert(0, detail),
                        Err(e) => {
                            let row = remote_failure(entry.clone(), e);
                            status = CheckStatus::Fail;
                            blocking |= row.blocking;
                            notes.insert(0, row.detail);
                        }
                    }
                }
            }
            if let Some(cert) = &key.certificate {
                notes.push(format!("subject {}", cert.subject));
            }
            let row = Check {
                entry,
                status,
                detail: notes.join("; "),
                blocking,
                not_before: None,
                not_after: None,
                certificate: None,
            };
            rows.push(with_dates(
                row,
                key.window.not_before,
                key.window.not_after,
                key.certificate.as_ref(),
            ));
        }
        if active == 0 {
            rows.push(Check::new(
                format!("consumers.{}", consumer.id),
                CheckStatus::Fail,
                "no key is active now: requests for this consumer fail with KEY_EXPIRED",
            ));
        }
    }

    for (name, members) in &registry.routes {
        let live = members.iter().any(|c| {
            registry
                .consumers
                .get(c)
                .is_some_and(|c| c.active_keys(now).next().is_some())
        });
        if !live {
            rows.push(Check::new(
                format!("routes.{name}"),
                CheckStatus::Warn,
                format!(
                    "no consumer of this route has an active key now ({}): calls on it fail with KEY_EXPIRED",
                    members.join(", ")
                ),
            ));
        }
    }
    rows
}

/// Adds a key's window (and certificate) to its row, in the detail and as data.
fn with_dates(
    mut row: Check,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
    certificate: Option<&CertificateInfo>,
) -> Check {
    let window = match (not_before, not_after) {
        (None, None) => "window: no end date".to_owned(),
        (Some(a), None) => format!("window: from {}, no end date", rfc3339(a)),
        (None, Some(b)) => format!("window: until {}", rfc3339(b)),
        (Some(a), Some(b)) => format!("window: from {} until {}", rfc3339(a), rfc3339(b)),
    };
    row.detail = format!("{}; {window}", row.detail);
    if let Some(c) = certificate {
        row.detail = format!(
            "{}; certificate valid from {} until {}",
            row.detail,
            rfc3339(c.not_before),
            rfc3339(c.not_after)
        );
    }
    row.not_before = not_before.map(rfc3339);
    row.not_after = not_after.map(rfc3339);
    row.certificate = certificate.map(|c| CertificateDates {
        subject: c.subject.clone(),
        not_before: rfc3339(c.not_before),
        not_after: rfc3339(c.not_after),
    });
    row
}
