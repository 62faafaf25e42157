//! The audit trail: one event per re-encryption (who, what, with which keys,
//! how it went) and the security events a failure may be.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{BrokerError, Caller, ConsumerOutcome, Reason, ReencryptRequest, ReencryptResponse};
use crate::esdk::{self, AlgorithmSuite};
use crate::telemetry::{Metrics, AUDIT_TARGET};

/// The route label when a request names none.
pub(super) const NO_ROUTE: &str = "-";

/// The audit record of one re-encryption, filled in as the request goes.
pub(super) struct Audit {
    request_id: String,
    /// The caller as authenticated (registry caller id or certificate identity).
    pub caller: String,
    route: String,
    pub source_key: Option<String>,
    pub message_id: Option<String>,
    pub suite: Option<AlgorithmSuite>,
    consumers: Vec<String>,
}

impl Audit {
    pub fn new(caller: &Caller, request: &ReencryptRequest) -> Self {
        Audit {
            request_id: request.request_id.clone(),
            caller: caller.identity.clone().unwrap_or_else(|| "-".into()),
            route: request.route.clone().unwrap_or_else(|| NO_ROUTE.into()),
            source_key: None,
            message_id: None,
            suite: None,
            consumers: Vec::new(),
        }
    }

    /// Notes which consumer got an envelope under which keys, or why not.
    pub fn consumers(&mut self, outcomes: &[ConsumerOutcome]) {
        self.consumers = outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(env) => audit_entry(&o.consumer, &env.key_ids),
                Err(e) => format!("{}!{}", o.consumer, e.reason),
            })
            .collect();
    }

    pub fn finish(&self, result: &Result<ReencryptResponse, BrokerError>, elapsed: Duration) {
        let (outcome, reason, detail) = match result {
            Ok(r) if r.results.iter().all(|o| o.result.is_ok()) => ("ok", "", None),
            Ok(_) => ("partial", "", None),
            Err(e) => (
                "error",
                e.reason.as_str(),
                e.detail.as_deref().or(Some(e.message.as_str())),
            ),
        };
        tracing::info!(
            target: AUDIT_TARGET,
            event = "reencrypt",
            request_id = %self.request_id,
            caller = %self.caller,
            route = %esdk::keyring::printable(self.route.as_bytes()),
            source_key = self.source_key.as_deref().unwrap_or("-"),
            message_id = self.message_id.as_deref().unwrap_or("-"),
            suite = %self.suite.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            consumers = %self.consumers.join(","),
            outcome,
            reason,
            detail = detail.unwrap_or(""),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "re-encryption"
        );
    }
}

/// `consumer[key+key]` for the audit line, in one allocation (this runs once per
/// envelope).
fn audit_entry(consumer: &str, key_ids: &[String]) -> String {
    let len = consumer.len() + 2 + key_ids.iter().map(|k| k.len() + 1).sum::<usize>();
    let mut entry = String::with_capacity(len);
    entry.push_str(consumer);
    entry.push('[');
    for (i, k) in key_ids.iter().enumerate() {
        if i > 0 {
            entry.push('+');
        }
        entry.push_str(k);
    }
    entry.push(']');
    entry
}

/// Security events: tampered input, unknown key ids, denied callers.
#[derive(Default)]
pub(super) struct SecurityEvents {
    unknown_key_events: AtomicU64,
}

impl SecurityEvents {
    /// Counts a failed call that is a security event, and logs it.
    pub fn note(&self, metrics: &Metrics, caller: &str, e: &BrokerError) {
        let kind = match e.reason {
            Reason::AuthenticationFailed => "tampered_input",
            Reason::SourceKeyNotConfigured => "unknown_key_id",
            Reason::PermissionDenied | Reason::Unauthenticated => "denied_caller",
            _ => return,
        };
        metrics.security_event(kind);
        let identity = caller;
        if kind == "unknown_key_id" {
            // A flood of unknown key ids is one event per 100, not 100 log lines.
            let n = self.unknown_key_events.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n % 100 == 0 {
                tracing::warn!(target: AUDIT_TARGET, event = "security", kind, count = n, caller = identity, detail = %e.message, "input for a key that is not configured");
            }
        } else {
            tracing::warn!(target: AUDIT_TARGET, event = "security", kind, caller = identity, reason = %e.reason, detail = e.detail.as_deref().unwrap_or(&e.message), "security event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::audit_entry;

    #[test]
    fn audit_entry_lists_the_keys_of_an_envelope() {
        assert_eq!(audit_entry("payments", &["k1".into()]), "payments[k1]");
        assert_eq!(
            audit_entry("crm", &["old".into(), "new".into()]),
            "crm[old+new]"
        );
    }
}
