//! Every key of a registry as operators look at it: what it is, where it
//! comes from, when it may be used, its certificate's dates and the days
//! left. Names and dates only: no material, nothing fetched from AWS.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{ConsumerWrap, Registry, SourceMaterial, Window, WindowStatus};

/// One source or consumer key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyListing {
    /// `source` or `consumer`.
    pub kind: &'static str,
    /// The source id, or the consumer id.
    pub id: String,
    /// The source id again, or the consumer's key id.
    pub key: String,
    /// `sources.<id>` or `consumers.<id>.keys.<key>` (as in `reseal validate`).
    pub entry: String,
    /// The configured type (`raw-rsa`, `x509`, `aws-kms`, ...).
    #[serde(rename = "type")]
    pub key_type: &'static str,
    /// EDK provider id (KMS keys: `aws-kms`).
    pub provider_id: Option<String>,
    /// EDK key name(s) the key answers for; a discovery rule has none.
    pub key_names: Vec<String>,
    /// Where the material comes from (`file:...`, `ssm:...`, KMS key ids).
    pub reference: String,
    /// Whether it is local (no AWS call to use it).
    pub local: bool,
    pub not_before: Option<String>,
    /// End of the window: a consumer key's `not_after` (bounded by its
    /// certificate), a source's `decrypt_until`.
    pub not_after: Option<String>,
    pub certificate: Option<CertificateDates>,
    /// `active`, `not yet valid` or `expired`, now.
    pub status: &'static str,
    /// Whole days until `not_after` (negative: ended); none when open-ended.
    pub days_left: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateDates {
    pub subject: String,
    pub not_before: String,
    pub not_after: String,
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn status(window: &Window, now: OffsetDateTime) -> &'static str {
    match window.status(now) {
        WindowStatus::Active => "active",
        WindowStatus::NotYetValid => "not yet valid",
        WindowStatus::Expired => "expired",
    }
}

pub(super) fn list(registry: &Registry, now: OffsetDateTime) -> Vec<KeyListing> {
    let mut out = Vec::new();
    for s in registry.sources.iter() {
        let key_names = match (&s.key_name, &s.material) {
            (Some(n), _) => vec![n.clone()],
            (None, SourceMaterial::Remote(r)) => r.key_names().unwrap_or_default(),
            (None, SourceMaterial::Local(_)) => Vec::new(),
        };
        out.push(KeyListing {
            kind: "source",
            id: s.id.clone(),
            key: s.id.clone(),
            entry: format!("sources.{}", s.id),
            key_type: s.kind.as_str(),
            provider_id: Some(s.provider_id.clone()),
            key_names,
            reference: s.reference.clone(),
            local: matches!(s.material, SourceMaterial::Local(_)),
            not_before: s.window.not_before.map(rfc3339),
            not_after: s.window.not_after.map(rfc3339),
            certificate: None,
            status: status(&s.window, now),
            days_left: s.window.not_after.map(|t| (t - now).whole_days()),
        });
    }
    for c in registry.consumers.values() {
        for k in &c.keys {
            out.push(KeyListing {
                kind: "consumer",
                id: c.id.clone(),
                key: k.id.clone(),
                entry: format!("consumers.{}.keys.{}", c.id, k.id),
                key_type: k.kind.as_str(),
                provider_id: k.provider_id.clone(),
                key_names: k.key_name.iter().cloned().collect(),
                reference: k.reference.clone(),
                local: matches!(k.wrap, ConsumerWrap::Local(_)),
                not_before: k.window.not_before.map(rfc3339),
                not_after: k.window.not_after.map(rfc3339),
                certificate: k.certificate.as_ref().map(|cert| CertificateDates {
                    subject: cert.subject.clone(),
                    not_before: rfc3339(cert.not_before),
                    not_after: rfc3339(cert.not_after),
                }),
                status: status(&k.window, now),
                days_left: k.window.not_after.map(|t| (t - now).whole_days()),
            });
        }
    }
    out
}

impl KeyListing {
    /// The dates in one phrase, for text output.
    pub fn dates(&self) -> String {
        let window = match (&self.not_before, &self.not_after) {
            (None, None) => "no end date".to_owned(),
            (Some(a), None) => format!("from {a}, no end date"),
            (None, Some(b)) => format!("until {b}"),
            (Some(a), Some(b)) => format!("from {a} until {b}"),
        };
        let days = match self.days_left {
            Some(d) if d >= 0 => format!(" ({d} days left)"),
            Some(d) => format!(" (ended {} days ago)", -d),
            None => String::new(),
        };
        let cert = match &self.certificate {
            Some(c) => format!(
                "; certificate {} valid {} until {}",
                c.subject, c.not_before, c.not_after
            ),
            None => String::new(),
        };
        format!("{window}{days}{cert}")
    }
}
