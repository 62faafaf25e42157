//! The front desk: what every door does the same way for each call. A slot
//! under `server.max_concurrent_requests` (or OVERLOADED at once: shed, never
//! queued), the request's trace span, and its metrics, labelled with the door
//! it came through. Doors decode and encode; everything else is here or
//! further in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::{Broker, BrokerError, Caller, Reason, ReencryptRequest, ReencryptResponse};
use crate::telemetry::{BatchItemLabels, Metrics, RequestLabels, OK};

/// The way a call came in (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Grpc,
    Http,
    Lambda,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Grpc => "grpc",
            Door::Http => "http",
            Door::Lambda => "lambda",
        }
    }
}

/// Settings of the front desk (read at start).
#[derive(Debug, Clone)]
pub struct DeskOptions {
    /// Calls processed at once, over every door; beyond it calls are shed.
    pub max_concurrent_requests: usize,
    /// Accept bearer tokens and Basic credentials over plaintext connections
    /// (development only).
    pub allow_plaintext_credentials: bool,
}

impl Default for DeskOptions {
    fn default() -> Self {
        DeskOptions {
            max_concurrent_requests: 256,
            allow_plaintext_credentials: false,
        }
    }
}

pub(super) struct Desk {
    slots: Arc<Semaphore>,
    pub allow_plaintext_credentials: bool,
}

impl Desk {
    pub fn new(options: &DeskOptions) -> Self {
        Desk {
            slots: Arc::new(Semaphore::new(options.max_concurrent_requests.max(1))),
            allow_plaintext_credentials: options.allow_plaintext_credentials,
        }
    }
}

/// A request slot, counted in `reseal_requests_in_flight` while held.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

const METHOD: &str = "Reencrypt";
const BATCH_METHOD: &str = "ReencryptBatch";

impl Broker {
    fn admit(&self) -> Result<Admitted, BrokerError> {
        match self.desk.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.metrics.in_flight.inc();
                Ok(Admitted {
                    _permit: permit,
                    metrics: self.metrics.clone(),
                })
            }
            Err(_) => {
                self.metrics.shed.inc();
                Err(BrokerError::new(
                    Reason::Overloaded,
                    "the broker is at its concurrency limit; retry shortly",
                )
                .with_retry_after(Duration::from_millis(200)))
            }
        }
    }

    fn record(&self, door: Door, method: &str, route: &str, outcome: &str, started: Instant) {
        let labels = RequestLabels {
            door: door.as_str().to_owned(),
            method: method.to_owned(),
            route: route.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.metrics.requests.get_or_create(&labels).inc();
        self.metrics
            .request_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    /// One call through a door: admission, the re-encryption (authenticated,
    /// authorized, audited), its metrics. `route` labels the metrics when the
    /// request could not be decoded.
    pub async fn call(
        &self,
        door: Door,
        caller: &Caller,
        route: Option<&str>,
        request: Result<ReencryptRequest, BrokerError>,
    ) -> Result<ReencryptResponse, BrokerError> {
        let started = Instant::now();
        let route_label = self.route_label(
            request
                .as_ref()
                .ok()
                .and_then(|r| r.route.as_deref())
                .or(route),
        );
        let result = match self.admit() {
            Err(e) => Err(e),
            Ok(_slot) => match request {
                Ok(request) => {
                    let span = tracing::info_span!("reencrypt", request_id = %request.request_id, door = door.as_str());
                    self.reencrypt(caller, request).instrument(span).await
                }
                Err(e) => Err(e),
            },
        };
        // A call that answers counts as OK even when some consumers failed:
        // those are counted per consumer, with their reasons.
        let outcome = match &result {
            Ok(_) => OK,
            Err(e) => e.reason.as_str(),
        };
        self.record(door, METHOD, &route_label, outcome, started);
        result
    }

    /// A batch through a door: one slot for the whole batch, each item
    /// re-encrypted on its own.
    pub async fn call_batch(
        &self,
        door: Door,
        caller: &Caller,
        request_id: &str,
        items: Vec<Result<ReencryptRequest, BrokerError>>,
    ) -> Result<Vec<Result<ReencryptResponse, BrokerError>>, BrokerError> {
        let started = Instant::now();
        let routes: Vec<String> = items
            .iter()
            .map(|i| self.route_label(i.as_ref().ok().and_then(|r| r.route.as_deref())))
            .collect();
        let result = match self.admit() {
            Err(e) => Err(e),
            Ok(_slot) => {
                let span = tracing::info_span!("reencrypt_batch", request_id = %request_id, items = items.len(), door = door.as_str());
                self.reencrypt_batch(caller, items).instrument(span).await
            }
        };
        let outcome = match &result {
            Ok(results) => {
                // Each item's outcome, as a call of its own would count it.
                for (item, route) in results.iter().zip(routes) {
                    self.metrics
                        .batch_items
                        .get_or_create(&BatchItemLabels {
                            route,
                            outcome: match item {
                                Ok(_) => OK.to_owned(),
                                Err(e) => e.reason.as_str().to_owned(),
                            },
                        })
                        .inc();
                }
                OK
            }
            Err(e) => e.reason.as_str(),
        };
        self.record(door, BATCH_METHOD, super::audit::NO_ROUTE, outcome, started);
        result
    }
}
