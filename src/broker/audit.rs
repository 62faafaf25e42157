//! The audit trail: one event per re-encryption (who, what, with which keys,
//! how it went) and the security events a failure may be.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Security events: tampered input, unknown key ids, denied callers, callers
/// refused for too many failures. Each is counted exactly
/// (`reseal_security_events_total{kind}`) and logged in full at debug level;
/// at warn level the first of a kind from a caller in an interval is logged
/// at once and the rest as one line when the interval ends ("N tampered
/// inputs from caller X in the last 10 s"), so a flood cannot flood the log.
pub(super) struct SecurityEvents {
    interval: Duration,
    window: Mutex<Window>,
}

struct Window {
    started: Instant,
    counts: HashMap<(&'static str, String), u64>,
}

/// Distinct (kind, caller) pairs one interval tracks; the rest are summed
/// under one entry.
const MAX_TRACKED: usize = 1000;

impl SecurityEvents {
    pub fn new(interval: Duration) -> Self {
        SecurityEvents {
            interval: interval.max(Duration::from_millis(100)),
            window: Mutex::new(Window {
                started: Instant::now(),
                counts: HashMap::new(),
            }),
        }
    }

    /// Counts a failed call that is a security event, and logs it (see above).
    pub fn note(&self, metrics: &Metrics, caller: &str, e: &BrokerError) {
        let kind = match e.reason {
            Reason::AuthenticationFailed => "tampered_input",
            Reason::SourceKeyNotConfigured => "unknown_key_id",
            Reason::PermissionDenied | Reason::Unauthenticated => "denied_caller",
            Reason::TooManyFailures => "too_many_failures",
            _ => return,
        };
        metrics.security_event(kind);
        let detail = e.detail.as_deref().unwrap_or(&e.message);
        tracing::debug!(target: AUDIT_TARGET, event = "security", kind, caller, reason = %e.reason, detail, "security event");
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_locked(&mut w, Instant::now());
        let tracked =
            w.counts.len() < MAX_TRACKED || w.counts.contains_key(&(kind, caller.to_owned()));
        let who = if tracked {
            caller.to_owned()
        } else {
            "(other callers)".to_owned()
        };
        let n = w.counts.entry((kind, who)).or_insert(0);
        *n += 1;
        if *n == 1 && tracked {
            tracing::warn!(target: AUDIT_TARGET, event = "security", kind, caller, reason = %e.reason, detail, "security event (more of this kind from this caller are summed up for {} s)", self.interval.as_secs_f64());
        }
    }

    /// Writes the summaries of an interval that is over.
    pub fn flush_due(&self) {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_locked(&mut w, Instant::now());
    }

    fn flush_locked(&self, w: &mut Window, now: Instant) {
        let elapsed = now.duration_since(w.started);
        if elapsed < self.interval {
            return;
        }
        for ((kind, caller), count) in w.counts.drain() {
            if count > 1 {
                tracing::warn!(target: AUDIT_TARGET, event = "security", kind, caller = %caller, count, "{count} {} from caller {caller} in the last {:.0} s", noun(kind), elapsed.as_secs_f64());
            }
        }
        w.started = now;
    }
}

fn noun(kind: &str) -> &'static str {
    match kind {
        "tampered_input" => "tampered inputs",
        "unknown_key_id" => "inputs for keys that are not configured",
        "denied_caller" => "denied calls",
        "too_many_failures" => "calls refused for too many failures",
        _ => "security events",
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
