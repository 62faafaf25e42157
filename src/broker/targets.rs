//! Target resolution: a route and consumer ids → the consumers to seal for.
//! Authorization comes first, so a caller cannot probe which names exist.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::access::Grants;
use super::{BrokerError, Reason};
use crate::esdk;
use crate::registry::{Consumer, Registry};

/// Route and consumer ids → consumers, with authorization first (so a caller
/// cannot probe which names exist), then existence, then the per-call limit.
pub(super) fn resolve_targets(
    registry: &Registry,
    grants: &Grants<'_>,
    who: &str,
    consumers: &[String],
    route: Option<&str>,
) -> Result<Vec<Arc<Consumer>>, BrokerError> {
    if consumers.is_empty() && route.is_none() {
        return Err(BrokerError::new(
            Reason::NoTargets,
            "name at least one consumer or a route",
        ));
    }
    if let Some(r) = route {
        if !grants.may_use_route(r) {
            return Err(BrokerError::new(
                Reason::PermissionDenied,
                format!(
                    "caller `{who}` may not use route `{}`",
                    esdk::keyring::printable(r.as_bytes())
                ),
            ));
        }
    }
    for c in consumers {
        if !grants.may_target_consumer(c) {
            return Err(BrokerError::new(
                Reason::PermissionDenied,
                format!(
                    "caller `{who}` may not target consumer `{}`",
                    esdk::keyring::printable(c.as_bytes())
                ),
            ));
        }
    }
    let mut ids: Vec<&str> = Vec::new();
    if let Some(r) = route {
        let members = registry.routes.get(r).ok_or_else(|| {
            BrokerError::new(
                Reason::UnknownRoute,
                format!(
                    "route `{}` is not configured",
                    esdk::keyring::printable(r.as_bytes())
                ),
            )
        })?;
        ids.extend(members.iter().map(String::as_str));
    }
    let unknown: Vec<String> = consumers
        .iter()
        .filter(|c| !registry.consumers.contains_key(c.as_str()))
        .map(|c| esdk::keyring::printable(c.as_bytes()))
        .collect();
    if !unknown.is_empty() {
        return Err(BrokerError::new(
            Reason::UnknownConsumer,
            format!("unknown consumer(s): `{}`", unknown.join("`, `")),
        ));
    }
    ids.extend(consumers.iter().map(String::as_str));
    let mut seen = BTreeSet::new();
    ids.retain(|id| seen.insert(*id));
    let max = registry.limits.max_consumers_per_call;
    if ids.len() > max {
        return Err(BrokerError::new(
            Reason::TooManyConsumers,
            format!("{} consumers requested; at most {max} per call", ids.len()),
        ));
    }
    Ok(ids
        .into_iter()
        .filter_map(|id| registry.consumers.get(id).cloned())
        .collect())
}
