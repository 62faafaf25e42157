//! One way to call AWS: bounded concurrency, a deadline for the whole
//! operation, and retries with exponential backoff and full jitter on
//! throttling, 5xx, timeouts and broken connections. Every attempt is counted
//! and timed in the metrics. The SDK's own retries are switched off so that
//! this policy is the only one.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::error::SdkError;
use tokio::sync::Semaphore;

use super::options::RetryOptions;
use crate::keys::remote::KeyAccessError;
use crate::telemetry::{AwsCallLabels, AwsLatencyLabels, Metrics, OK};

/// A failed AWS operation, after retries.
#[derive(Debug, Clone)]
pub struct AwsFailure {
    /// The AWS error code (`ThrottlingException`, `NotFoundException`...), if AWS answered.
    pub code: Option<String>,
    pub message: String,
    /// True when every attempt failed for a transient reason (throttling,
    /// 5xx, timeout, connection): the service is unavailable, not refusing.
    pub transient: bool,
}

impl AwsFailure {
    pub fn code_is(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }
}

const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ThrottledException",
    "LimitExceededException",
    "ProvisionedThroughputExceededException",
];

const TRANSIENT: &[&str] = &[
    "KMSInternalException",
    "DependencyTimeoutException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalServerErrorException",
];

enum Class {
    Throttled,
    Transient(&'static str),
    /// No credentials anywhere in the chain: retrying cannot help.
    NoCredentials,
    Final,
}

/// What operators are told when the credential chain found nothing.
pub const NO_CREDENTIALS: &str =
    "no AWS credentials found (checked: env, web identity, profile, IMDS)";
const CREDENTIALS_HINT: &str = "on EKS use IRSA or EKS Pod Identity (the chart's \
     serviceAccount.irsaRoleArn), elsewhere AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE";

/// When an error's cause is the credential chain (no provider had
/// credentials, or one failed to get them), what to tell operators.
fn credentials_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use aws_credential_types::provider::error::CredentialsError;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(match c {
                CredentialsError::CredentialsNotLoaded(_) => {
                    format!("{NO_CREDENTIALS}; {CREDENTIALS_HINT}")
                }
                other => {
                    // The innermost cause says what failed (e.g. IMDS refused, STS denied).
                    let mut last: &(dyn std::error::Error + 'static) = other;
                    while let Some(next) = last.source() {
                        last = next;
                    }
                    let mut why = last.to_string();
                    if why.len() > 200 {
                        why.truncate(why.char_indices().nth(200).map_or(why.len(), |(i, _)| i));
                    }
                    format!("{NO_CREDENTIALS}; a provider failed: {why}; {CREDENTIALS_HINT}")
                }
            });
        }
        cause = e.source();
    }
    None
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &SdkError<E, HttpResponse>,
) -> (Class, Option<String>, String) {
    match err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().map(str::to_owned);
            let message = se.err().message().unwrap_or("").to_owned();
            let status = se.raw().status().as_u16();
            let class = if code.as_deref().is_some_and(|c| THROTTLING.contains(&c)) || status == 429
            {
                Class::Throttled
            } else if status >= 500 || code.as_deref().is_some_and(|c| TRANSIENT.contains(&c)) {
                Class::Transient("SERVER_ERROR")
            } else {
                Class::Final
            };
            (class, code, message)
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
            match credentials_problem(err) {
                Some(message) => (Class::NoCredentials, None, message),
                None => classify_transport(err),
            }
        }
        _ => classify_transport(err),
    }
}

fn classify_transport<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &SdkError<E, HttpResponse>,
) -> (Class, Option<String>, String) {
    match err {
        SdkError::ServiceError(_) => (Class::Final, None, err.to_string()),
        SdkError::TimeoutError(_) => (Class::Transient("TIMEOUT"), None, "timed out".into()),
        SdkError::DispatchFailure(e) => (
            Class::Transient("CONNECTION"),
            None,
            if e.is_timeout() {
                "no response (connection timed out)".into()
            } else {
                "no response (connection failed)".into()
            },
        ),
        SdkError::ResponseError(_) => (
            Class::Transient("BAD_RESPONSE"),
            None,
            "unreadable response".into(),
        ),
        SdkError::ConstructionFailure(_) => {
            (Class::Final, None, "request could not be built".into())
        }
        _ => (Class::Transient("UNKNOWN"), None, err.to_string()),
    }
}

/// How a service's failures read as key-access errors (`kms_error`,
/// `ssm_error`): also what the metrics' outcome label is derived from.
pub type ErrorMapping = fn(&str, AwsFailure) -> KeyAccessError;

/// Shared retry and concurrency policy for one AWS service.
#[derive(Clone)]
pub struct AwsCaller {
    pub service: &'static str,
    spec: RetryOptions,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    mapping: ErrorMapping,
}

impl AwsCaller {
    pub fn new(
        service: &'static str,
        spec: &RetryOptions,
        metrics: Arc<Metrics>,
        mapping: ErrorMapping,
    ) -> Self {
        AwsCaller {
            service,
            spec: spec.clone(),
            permits: Arc::new(Semaphore::new(spec.max_concurrent_calls.max(1))),
            metrics,
            mapping,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.spec.max_backoff.as_secs_f64();
        let base = self.spec.initial_backoff.as_secs_f64() * 2f64.powi(attempt as i32);
        let mut r = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut r);
        let unit = (u64::from_le_bytes(r) >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(base.min(cap) * unit)
    }

    /// Counts one attempt: `failure` is `None` on success, with `cause` from
    /// the fixed set of `AwsCallLabels::cause`.
    fn count(&self, op: &'static str, failure: Option<&AwsFailure>, cause: &str, started: Instant) {
        let outcome = match failure {
            None => OK,
            Some(f) => (self.mapping)("", f.clone()).reason(),
        };
        self.metrics
            .aws_calls
            .get_or_create(&AwsCallLabels {
                service: self.service.into(),
                operation: op.into(),
                outcome: outcome.into(),
                cause: cause.into(),
            })
            .inc();
        self.metrics
            .aws_call_seconds
            .get_or_create(&AwsLatencyLabels {
                service: self.service.into(),
                operation: op.into(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Runs `f` until it succeeds, fails finally, runs out of attempts, or the
    /// operation deadline passes.
    pub async fn call<T, E, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, AwsFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let attempts = self.spec.max_attempts.max(1);
        let work = async {
            let mut last = AwsFailure {
                code: None,
                message: "no attempt made".into(),
                transient: true,
            };
            for attempt in 0..attempts {
                if attempt > 0 {
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                let _permit = self.permits.acquire().await.map_err(|_| AwsFailure {
                    code: None,
                    message: "client closed".into(),
                    transient: true,
                })?;
                let started = Instant::now();
                match f().await {
                    Ok(v) => {
                        self.count(op, None, "NONE", started);
                        return Ok(v);
                    }
                    Err(err) => {
                        let (class, code, message) = classify(&err);
                        let transient = !matches!(class, Class::Final);
                        last = AwsFailure {
                            code,
                            message,
                            transient,
                        };
                        let cause = match class {
                            Class::Throttled => "THROTTLED",
                            Class::Transient(kind) => kind,
                            Class::NoCredentials => "NO_CREDENTIALS",
                            Class::Final => "REFUSED",
                        };
                        self.count(op, Some(&last), cause, started);
                        // The SDK's own error (long, nested) only at debug level.
                        tracing::debug!(service = self.service, op, attempt, cause, error = ?err, "AWS call failed");
                        if matches!(class, Class::Final | Class::NoCredentials) {
                            return Err(last);
                        }
                    }
                }
            }
            Err(last)
        };
        match tokio::time::timeout(self.spec.operation_timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                let failure = AwsFailure {
                    code: None,
                    message: format!("no answer within {:?}", self.spec.operation_timeout),
                    transient: true,
                };
                self.count(op, Some(&failure), "DEADLINE", Instant::now());
                Err(failure)
            }
        }
    }
}
