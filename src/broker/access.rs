//! Who is calling: the credential a door saw (a verified client certificate,
//! a bearer token, Basic credentials, or the caller a trusted door acts as),
//! checked against the registry's callers. Every door hands its caller here,
//! so authentication is the same whichever way a call comes in.

use super::{BrokerError, Caller, Credential, Reason};
use crate::esdk::keyring::printable;
use crate::keys::secret::SecretDigest;
use crate::registry::{CallerRule, Registry};

/// What an authenticated call may target.
pub(super) enum Grants<'r> {
    /// No callers are configured: every caller may target everything.
    Everyone,
    /// The registry callers this call is recognised as.
    Callers(Vec<&'r CallerRule>),
}

impl Grants<'_> {
    pub fn may_use_route(&self, route: &str) -> bool {
        match self {
            Grants::Everyone => true,
            Grants::Callers(rules) => rules.iter().any(|r| r.may_use_route(route)),
        }
    }

    pub fn may_target_consumer(&self, consumer: &str) -> bool {
        match self {
            Grants::Everyone => true,
            Grants::Callers(rules) => rules.iter().any(|r| r.may_target_consumer(consumer)),
        }
    }
}

/// An authenticated caller: its grants, and its name for the audit log.
pub(super) struct Authenticated<'r> {
    pub grants: Grants<'r>,
    pub name: String,
}

/// Checks the caller's credential against the registry.
pub(super) async fn authenticate<'r>(
    registry: &'r Registry,
    caller: &Caller,
    allow_plaintext_credentials: bool,
) -> Result<Authenticated<'r>, BrokerError> {
    if caller.credential.is_some() && !caller.secure && !allow_plaintext_credentials {
        return Err(BrokerError::new(
            Reason::Unauthenticated,
            "credentials are refused over a plaintext connection: use TLS (or, for development only, set server.allow_plaintext_credentials)",
        ));
    }
    let callers = &registry.callers;
    let fallback_name = || {
        caller
            .identity
            .as_deref()
            .map(|i| printable(i.as_bytes()))
            .unwrap_or_else(|| "-".into())
    };
    if !callers.is_enforced() {
        return Ok(Authenticated {
            grants: Grants::Everyone,
            name: fallback_name(),
        });
    }
    let secret_unavailable = |e| {
        super::error::key_access_error("caller credentials", e)
            .with_detail("a caller secret could not be fetched")
    };
    let rule = if let Some(name) = &caller.acting_as {
        Some(callers.by_name(name).ok_or_else(|| {
            BrokerError::new(
                Reason::PermissionDenied,
                format!("caller `{}` is not registered", printable(name.as_bytes())),
            )
        })?)
    } else {
        match &caller.credential {
            Some(Credential::Bearer(token)) => {
                let digest = SecretDigest::of(token.as_bytes());
                Some(
                    callers
                        .by_token(&digest)
                        .await
                        .map_err(secret_unavailable)?
                        .ok_or_else(|| {
                            BrokerError::new(
                                Reason::Unauthenticated,
                                "the bearer token is not valid",
                            )
                        })?,
                )
            }
            Some(Credential::Basic { username, password }) => {
                let digest = SecretDigest::of(password.as_bytes());
                Some(
                    callers
                        .by_basic(username, &digest)
                        .await
                        .map_err(secret_unavailable)?
                        .ok_or_else(|| {
                            BrokerError::new(
                                Reason::Unauthenticated,
                                "the username or password is not valid",
                            )
                        })?,
                )
            }
            None => None,
        }
    };
    if let Some(rule) = rule {
        return Ok(Authenticated {
            name: rule.name.clone(),
            grants: Grants::Callers(vec![rule]),
        });
    }
    let identity = caller.identity.as_deref().ok_or_else(|| {
        BrokerError::new(
            Reason::Unauthenticated,
            "a client certificate (or, where configured, a bearer token or Basic credentials) is required to call this broker",
        )
    })?;
    let rules = callers.by_identity(identity);
    if rules.is_empty() {
        return Err(BrokerError::new(
            Reason::PermissionDenied,
            format!(
                "caller `{}` is not registered",
                printable(identity.as_bytes())
            ),
        ));
    }
    Ok(Authenticated {
        grants: Grants::Callers(rules),
        name: printable(identity.as_bytes()),
    })
}
