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
use crate::telemetry::{AwsCallLabels, AwsLatencyLabels, Metrics};

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
    Final,
}

fn classify<E: ProvideErrorMetadata>(
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
                Class::Transient("server_error")
            } else {
                Class::Final
            };
            (class, code, message)
        }
        SdkError::TimeoutError(_) => (Class::Transient("timeout"), None, "timed out".into()),
        SdkError::DispatchFailure(e) => (
            Class::Transient("connection"),
            None,
            if e.is_timeout() {
                "connection timed out".into()
            } else {
                "connection failed".into()
            },
        ),
        SdkError::ResponseError(_) => (
            Class::Transient("bad_response"),
            None,
            "unreadable response".into(),
        ),
        SdkError::ConstructionFailure(_) => {
            (Class::Final, None, "request could not be built".into())
        }
        _ => (Class::Transient("unknown"), None, err.to_string()),
    }
}

/// Shared retry and concurrency policy for one AWS service.
#[derive(Clone)]
pub struct AwsCaller {
    pub service: &'static str,
    spec: RetryOptions,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl AwsCaller {
    pub fn new(service: &'static str, spec: &RetryOptions, metrics: Arc<Metrics>) -> Self {
        AwsCaller {
            service,
            spec: spec.clone(),
            permits: Arc::new(Semaphore::new(spec.max_concurrent_calls.max(1))),
            metrics,
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

    fn count(&self, op: &'static str, outcome: &str, started: Instant) {
        self.metrics
            .aws_calls
            .get_or_create(&AwsCallLabels {
                service: self.service.into(),
                operation: op.into(),
                outcome: outcome.into(),
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
        E: ProvideErrorMetadata,
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
                        self.count(op, "ok", started);
                        return Ok(v);
                    }
                    Err(err) => {
                        let (class, code, message) = classify(&err);
                        match class {
                            Class::Throttled => self.count(op, "throttled", started),
                            Class::Transient(kind) => self.count(op, kind, started),
                            Class::Final => {
                                self.count(op, code.as_deref().unwrap_or("error"), started)
                            }
                        }
                        let transient = !matches!(class, Class::Final);
                        tracing::debug!(service = self.service, op, attempt, code = ?code, transient, "AWS call failed");
                        last = AwsFailure {
                            code,
                            message,
                            transient,
                        };
                        if !transient {
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
                self.count(op, "deadline", Instant::now());
                Err(AwsFailure {
                    code: None,
                    message: format!("no answer within {:?}", self.spec.operation_timeout),
                    transient: true,
                })
            }
        }
    }
}
