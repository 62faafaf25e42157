//! The front desk: what every door does the same way for each call.
//!
//! A door asks for admission ([`Broker::admit`]) as soon as it has a
//! request's headers, before it reads the body, and holds the [`Slot`] it
//! gets while it reads the body and the broker works ([`Broker::call_admitted`]).
//! Admission, in order:
//!
//! 1. a place among the requests being admitted (`server.max_pending_requests`);
//! 2. the caller's failure budget (`server.failure_budget`): a caller that
//!    failed authentication too often recently is refused here, before any
//!    parsing or key use, with TOO_MANY_FAILURES and when to retry;
//! 3. authentication of the caller's credentials (a failure costs budget);
//! 4. a slot under `server.max_concurrent_requests`, shared fairly: while
//!    other callers hold slots, a caller may hold at most
//!    `max / (callers holding slots + 1)` of them (half while it is alone),
//!    so there is always room for one more caller. Over it: OVERLOADED at
//!    once (shed, never queued).
//!
//! A caller is its registry name when callers are configured, else the
//! identity of its client certificate, else its connection. The slot also
//! carries the caller's standing (recent successes and failures), which the
//! CPU pool ranks work by. Every call is counted in the request metrics,
//! labelled with the door it came through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::cpu::{JobOwner, Standing};
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

/// Which method a call is (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Reencrypt,
    ReencryptBatch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Reencrypt => "Reencrypt",
            Method::ReencryptBatch => "ReencryptBatch",
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
    /// Requests being admitted at once (authentication may wait on AWS).
    pub max_pending_requests: usize,
    /// Authentication failures a caller may have at once...
    pub failure_burst: u32,
    /// ...refilled evenly over this time.
    pub failure_window: Duration,
    /// Security events: one log line per kind and caller per interval.
    pub security_log_interval: Duration,
    /// Bytes of request bodies received (or being received) at once, over
    /// every request; shared between callers like the request slots.
    pub max_request_body_memory: usize,
}

impl Default for DeskOptions {
    fn default() -> Self {
        DeskOptions {
            max_concurrent_requests: 256,
            allow_plaintext_credentials: false,
            max_pending_requests: 1024,
            failure_burst: 10,
            failure_window: Duration::from_secs(10),
            security_log_interval: Duration::from_secs(10),
            max_request_body_memory: 32 * 1024 * 1024,
        }
    }
}

pub(super) struct Desk {
    slots: Arc<Slots>,
    /// KiB of request bodies being received or held, over every request.
    body_kib: Arc<Slots>,
    pending: Arc<Semaphore>,
    pub failures: Failures,
    pub allow_plaintext_credentials: bool,
}

impl Desk {
    pub fn new(options: &DeskOptions) -> Self {
        Desk {
            slots: Slots::new(options.max_concurrent_requests),
            body_kib: Slots::new(options.max_request_body_memory.div_ceil(1024)),
            pending: Arc::new(Semaphore::new(options.max_pending_requests.max(1))),
            failures: Failures::new(options.failure_burst, options.failure_window),
            allow_plaintext_credentials: options.allow_plaintext_credentials,
        }
    }
}

/// A resource shared fairly between callers: request slots (one each), or
/// the bytes of request bodies being received.
struct Slots {
    max: usize,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    total: usize,
    held: HashMap<Arc<str>, usize>,
}

impl Slots {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Slots {
            max: max.max(1),
            state: Mutex::new(SlotState::default()),
        })
    }

    /// `amount` for `key`, if it is free and within the key's share: while
    /// others hold some, `max / (holders + 1)`; half while it is alone.
    /// The last eighth is kept for keys that hold nothing yet: shares shrink
    /// only as holders release, so without it the first few keys could fill
    /// the rest and leave a newcomer no room.
    fn try_acquire(self: &Arc<Self>, key: &Arc<str>, amount: usize) -> Result<Held, Shed> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.total + amount > self.max {
            return Err(Shed::Full);
        }
        let mine = s.held.get(key).copied().unwrap_or(0);
        let others = s.held.len() - usize::from(mine > 0);
        let share = (self.max / (others + 2)).max(1);
        let over = if mine > 0 {
            mine + amount > share || s.total + amount > self.max - self.max / 8
        } else {
            amount > share && others > 0
        };
        if over {
            return Err(Shed::OverShare);
        }
        s.total += amount;
        *s.held.entry(key.clone()).or_insert(0) += amount;
        Ok(Held {
            slots: self.clone(),
            key: key.clone(),
            amount,
        })
    }

    fn release(&self, key: &Arc<str>, amount: usize) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.total = s.total.saturating_sub(amount);
        if let Some(n) = s.held.get_mut(key) {
            *n = n.saturating_sub(amount);
            if *n == 0 {
                s.held.remove(key);
            }
        }
    }
}

enum Shed {
    Full,
    OverShare,
}

struct Held {
    slots: Arc<Slots>,
    key: Arc<str>,
    amount: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.slots.release(&self.key, self.amount);
    }
}

/// Entries kept per caller for budgets and standing, at most.
const MAX_RECORDS: usize = 65_536;

/// Each caller's recent authentication failures (a token bucket: `burst`
/// failures at once, refilled over `window`) and whether it has succeeded.
pub(super) struct Failures {
    burst: f64,
    per_second: f64,
    records: Mutex<HashMap<Arc<str>, Record>>,
}

#[derive(Clone, Copy)]
struct Record {
    tokens: f64,
    at: Instant,
    succeeded: bool,
}

impl Failures {
    fn new(burst: u32, window: Duration) -> Self {
        let burst = f64::from(burst.max(1));
        Failures {
            burst,
            per_second: burst / window.as_secs_f64().max(0.001),
            records: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, r: &Record, now: Instant) -> f64 {
        (r.tokens + now.duration_since(r.at).as_secs_f64() * self.per_second).min(self.burst)
    }

    /// How long until `key` may try again, if it is out of budget now.
    fn refused_for(&self, key: &str) -> Option<Duration> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let r = records.get(key)?;
        let tokens = self.refilled(r, Instant::now());
        (tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - tokens) / self.per_second))
    }

    /// The standing the CPU pool ranks `key`'s work by.
    fn standing(&self, key: &str) -> Standing {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        match records.get(key) {
            None => Standing::New,
            Some(r) if self.refilled(r, Instant::now()) < self.burst / 2.0 => Standing::Suspect,
            Some(r) if r.succeeded => Standing::Trusted,
            Some(_) => Standing::New,
        }
    }

    /// Notes an outcome of `key`: a failure costs budget, a success earns standing.
    pub fn note(&self, key: &Arc<str>, failed: bool) {
        let now = Instant::now();
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= MAX_RECORDS && !records.contains_key(key) {
            // Keep the callers in debt; forget those with a full budget.
            let burst = self.burst;
            records.retain(|_, r| {
                (r.tokens + now.duration_since(r.at).as_secs_f64() * self.per_second) < burst
            });
            if records.len() >= MAX_RECORDS {
                records.clear();
            }
        }
        let record = records.entry(key.clone()).or_insert(Record {
            tokens: self.burst,
            at: now,
            succeeded: false,
        });
        let tokens = self.refilled(record, now);
        *record = Record {
            tokens: if failed {
                (tokens - 1.0).max(0.0)
            } else {
                tokens
            },
            at: now,
            succeeded: record.succeeded || !failed,
        };
    }
}

/// Whether an outcome counts against the caller's failure budget: failed
/// authentication of its credentials or of its messages (each of those may
/// have cost a private-key operation).
pub(super) fn is_failure(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::AuthenticationFailed | Reason::Unauthenticated
    )
}

/// A request admitted by the front desk. The door holds it from before the
/// body is read until the answer is ready; the request slot is free again
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Slot(Arc<SlotInner>);

struct SlotInner {
    door: Door,
    method: Method,
    started: Instant,
    owner: JobOwner,
    /// The caller's address, whose record ranks callers without one of their own.
    address: Option<Arc<str>>,
    metrics: Arc<Metrics>,
    /// The call was handed to the broker (and so counted).
    handled: std::sync::atomic::AtomicBool,
    /// Its body's share of `server.max_request_body_memory`.
    body: Mutex<Option<Held>>,
    _held: Held,
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

impl Slot {
    pub fn door(&self) -> Door {
        self.0.door
    }

    /// The caller's fairness key and standing.
    pub(super) fn owner(&self) -> &JobOwner {
        &self.0.owner
    }

    /// Whether the call reached the broker (and so was counted).
    pub fn handled(&self) -> bool {
        self.0.handled.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn mark_handled(&self) -> bool {
        !self
            .0
            .handled
            .swap(true, std::sync::atomic::Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("door", &self.0.door)
            .field("method", &self.0.method)
            .finish_non_exhaustive()
    }
}

/// The caller's key before authentication: its connection (or, for a door
/// without connections, the caller it acts as).
fn connection_key(caller: &Caller) -> Arc<str> {
    match (&caller.connection, &caller.acting_as, &caller.peer) {
        (Some(id), _, _) => format!("conn:{id}").into(),
        (None, Some(name), _) => format!("caller:{name}").into(),
        (None, None, Some(peer)) => format!("peer:{peer}").into(),
        (None, None, None) => "-".into(),
    }
}

/// The caller's address (without the port), whose record ranks callers
/// that have none of their own.
fn address_key(caller: &Caller) -> Option<Arc<str>> {
    let peer = caller.peer.as_deref()?;
    let ip = peer
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| peer.to_owned());
    Some(format!("addr:{ip}").into())
}

impl Broker {
    /// Admits a call before its body is read: a pending place, the failure
    /// budget, authentication, a fair share of the request slots. A refusal
    /// is counted (and, for failures, audited) here.
    pub async fn admit(
        &self,
        door: Door,
        method: Method,
        caller: &Caller,
    ) -> Result<Slot, BrokerError> {
        let started = Instant::now();
        let result = self.try_admit(door, method, caller).await;
        if let Err(e) = &result {
            self.record(
                door,
                method,
                super::audit::NO_ROUTE,
                e.reason.as_str(),
                started,
            );
        }
        result
    }

    async fn try_admit(
        &self,
        door: Door,
        method: Method,
        caller: &Caller,
    ) -> Result<Slot, BrokerError> {
        let _pending: OwnedSemaphorePermit =
            self.desk.pending.clone().try_acquire_owned().map_err(|_| {
                self.metrics.shed.inc();
                overloaded("too many requests are waiting to be admitted; retry shortly")
            })?;
        let registry = self.snapshot()?;
        let conn_key = connection_key(caller);
        if let Err(e) = self.check_budget(&conn_key, caller) {
            drop(_pending);
            return Err(tarpit(e).await);
        }
        let who = match super::access::authenticate(
            &registry,
            caller,
            self.desk.allow_plaintext_credentials,
        )
        .await
        {
            Ok(who) => who,
            Err(e) => {
                if is_failure(e.reason) {
                    self.desk.failures.note(&conn_key, true);
                }
                self.security
                    .note(&self.metrics, &who_for_log(caller, "-"), &e);
                return Err(e);
            }
        };
        let key: Arc<str> = if registry.callers.is_enforced() {
            format!("caller:{}", who.name).into()
        } else if let Some(identity) = &caller.identity {
            format!("id:{identity}").into()
        } else {
            conn_key.clone()
        };
        if key != conn_key {
            if let Err(e) = self.check_budget(&key, caller) {
                drop(_pending);
                return Err(tarpit(e).await);
            }
        }
        let held = self.desk.slots.try_acquire(&key, 1).map_err(|shed| {
            self.metrics.shed.inc();
            match shed {
                Shed::Full => overloaded("the broker is at its concurrency limit; retry shortly"),
                Shed::OverShare => overloaded(
                    "this caller holds its share of the broker's concurrency limit; retry shortly",
                ),
            }
        })?;
        self.metrics.in_flight.inc();
        let address = address_key(caller);
        let mut standing = self.desk.failures.standing(&key);
        // A caller with no record of its own (a new connection) is ranked by
        // its address's: reconnecting does not clear a flood's record.
        if standing == Standing::New {
            if let Some(a) = &address {
                if self.desk.failures.standing(a) == Standing::Suspect {
                    standing = Standing::Suspect;
                }
            }
        }
        Ok(Slot(Arc::new(SlotInner {
            door,
            method,
            started: Instant::now(),
            owner: JobOwner::new(key, standing),
            address,
            metrics: self.metrics.clone(),
            handled: std::sync::atomic::AtomicBool::new(false),
            body: Mutex::new(None),
            _held: held,
        })))
    }

    /// Refuses a caller out of failure budget, before any work.
    fn check_budget(&self, key: &Arc<str>, caller: &Caller) -> Result<(), BrokerError> {
        match self.desk.failures.refused_for(key) {
            None => Ok(()),
            Some(after) => {
                let e = BrokerError::new(
                    Reason::TooManyFailures,
                    "this caller failed authentication too often recently; retry later",
                )
                .with_retry_after(after.max(Duration::from_millis(100)));
                self.security
                    .note(&self.metrics, &who_for_log(caller, "-"), &e);
                Err(e)
            }
        }
    }

    /// Reserves room for an admitted call's body before the door reads it
    /// (`bytes`: the declared length, or the most the door accepts when none
    /// is declared), within `server.max_request_body_memory` and the caller's
    /// share of it. Held until the slot is dropped. Over it: OVERLOADED, and
    /// the body is not read.
    pub fn reserve_body(&self, slot: &Slot, bytes: usize) -> Result<(), BrokerError> {
        let kib = bytes.div_ceil(1024).max(1);
        let held = self
            .desk
            .body_kib
            .try_acquire(&slot.owner().key, kib)
            .map_err(|shed| {
                self.metrics.shed.inc();
                match shed {
                    Shed::Full => overloaded(
                        "the broker holds as many request bytes as it may (server.max_request_body_memory); retry shortly",
                    ),
                    Shed::OverShare => overloaded(
                        "this caller holds its share of the request body memory; retry shortly",
                    ),
                }
            });
        match held {
            Ok(h) => {
                *slot.0.body.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
                Ok(())
            }
            Err(e) => {
                self.record_unhandled(slot, e.reason);
                Err(e)
            }
        }
    }

    /// Counts an admitted call the door refused before handing it over (a
    /// body over the size limit, one that is not a valid message).
    pub fn record_unhandled(&self, slot: &Slot, reason: Reason) {
        if slot.mark_handled() {
            self.record(
                slot.door(),
                slot.0.method,
                super::audit::NO_ROUTE,
                reason.as_str(),
                slot.0.started,
            );
        }
    }

    /// Notes how an admitted call went for its caller's budget and standing.
    pub(super) fn note_outcome(&self, slot: &Slot, reason: Option<Reason>) {
        let failed = reason.is_some_and(is_failure);
        self.desk.failures.note(&slot.owner().key, failed);
        if let Some(a) = &slot.0.address {
            self.desk.failures.note(a, failed);
        }
    }

    fn record(&self, door: Door, method: Method, route: &str, outcome: &str, started: Instant) {
        let labels = RequestLabels {
            door: door.as_str().to_owned(),
            method: method.as_str().to_owned(),
            route: route.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.metrics.requests.get_or_create(&labels).inc();
        self.metrics
            .request_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    /// One call through a door: admission, then [`Broker::call_admitted`].
    pub async fn call(
        &self,
        door: Door,
        caller: &Caller,
        route: Option<&str>,
        request: Result<ReencryptRequest, BrokerError>,
    ) -> Result<ReencryptResponse, BrokerError> {
        let slot = self.admit(door, Method::Reencrypt, caller).await?;
        self.call_admitted(&slot, caller, route, request).await
    }

    /// An admitted call: the re-encryption (authenticated, authorized,
    /// audited) and its metrics. `route` labels the metrics when the request
    /// could not be decoded.
    pub async fn call_admitted(
        &self,
        slot: &Slot,
        caller: &Caller,
        route: Option<&str>,
        request: Result<ReencryptRequest, BrokerError>,
    ) -> Result<ReencryptResponse, BrokerError> {
        slot.mark_handled();
        let route_label = self.route_label(
            request
                .as_ref()
                .ok()
                .and_then(|r| r.route.as_deref())
                .or(route),
        );
        let result = match request {
            Ok(request) => {
                let span = tracing::info_span!("reencrypt", request_id = %request.request_id, door = slot.door().as_str());
                self.reencrypt_for(slot.owner(), caller, request)
                    .instrument(span)
                    .await
            }
            Err(e) => Err(e),
        };
        // A call that answers counts as OK even when some consumers failed:
        // those are counted per consumer, with their reasons.
        self.note_outcome(slot, result.as_ref().err().map(|e| e.reason));
        let outcome = match &result {
            Ok(_) => OK,
            Err(e) => e.reason.as_str(),
        };
        self.record(
            slot.door(),
            Method::Reencrypt,
            &route_label,
            outcome,
            slot.0.started,
        );
        result
    }

    /// A batch through a door: admission, then [`Broker::call_batch_admitted`].
    pub async fn call_batch(
        &self,
        door: Door,
        caller: &Caller,
        request_id: &str,
        items: Vec<Result<ReencryptRequest, BrokerError>>,
    ) -> Result<Vec<Result<ReencryptResponse, BrokerError>>, BrokerError> {
        let slot = self.admit(door, Method::ReencryptBatch, caller).await?;
        self.call_batch_admitted(&slot, caller, request_id, items)
            .await
    }

    /// An admitted batch: one slot for the whole batch, each item
    /// re-encrypted on its own.
    pub async fn call_batch_admitted(
        &self,
        slot: &Slot,
        caller: &Caller,
        request_id: &str,
        items: Vec<Result<ReencryptRequest, BrokerError>>,
    ) -> Result<Vec<Result<ReencryptResponse, BrokerError>>, BrokerError> {
        slot.mark_handled();
        let routes: Vec<String> = items
            .iter()
            .map(|i| self.route_label(i.as_ref().ok().and_then(|r| r.route.as_deref())))
            .collect();
        let span = tracing::info_span!("reencrypt_batch", request_id = %request_id, items = items.len(), door = slot.door().as_str());
        let result = self
            .reencrypt_batch_for(slot.owner(), caller, items)
            .instrument(span)
            .await;
        match &result {
            Ok(items) => {
                for item in items {
                    self.note_outcome(slot, item.as_ref().err().map(|e| e.reason));
                }
            }
            Err(e) => self.note_outcome(slot, Some(e.reason)),
        }
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
        self.record(
            slot.door(),
            Method::ReencryptBatch,
            super::audit::NO_ROUTE,
            outcome,
            slot.0.started,
        );
        result
    }
}

/// Answers a caller out of failure budget only after a moment (up to its
/// retry time, at most 1 s): the refusal costs the broker nothing while it
/// waits (no slot, no pending place), and a caller that floods regardless of
/// RetryInfo gets its refusals slowly, not as fast as it can ask.
async fn tarpit(e: BrokerError) -> BrokerError {
    let wait = e
        .retry_after
        .unwrap_or(Duration::from_secs(1))
        .min(Duration::from_secs(1));
    tokio::time::sleep(wait).await;
    e
}

fn overloaded(message: &str) -> BrokerError {
    BrokerError::new(Reason::Overloaded, message).with_retry_after(Duration::from_millis(200))
}

/// Who a security event is about, for the log: the caller's name or
/// certificate identity, else its address (without the port, so one client's
/// connections count together).
pub(super) fn who_for_log(caller: &Caller, name: &str) -> String {
    if name != "-" && !name.is_empty() {
        return name.to_owned();
    }
    if let Some(id) = &caller.identity {
        return crate::esdk::keyring::printable(id.as_bytes());
    }
    if let Some(name) = &caller.acting_as {
        return crate::esdk::keyring::printable(name.as_bytes());
    }
    match &caller.peer {
        Some(peer) => match peer.parse::<std::net::SocketAddr>() {
            Ok(addr) => format!("address {}", addr.ip()),
            Err(_) => format!(
                "address {}",
                crate::esdk::keyring::printable(peer.as_bytes())
            ),
        },
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `server.max_pending_requests`: with every pending place taken, a call
    /// is shed at once (OVERLOADED, counted) before anything else is looked
    /// at; with one free it gets past (here to NOT_READY: no registry).
    #[tokio::test]
    async fn calls_over_the_pending_limit_are_shed_at_once() {
        let metrics = Arc::new(Metrics::new());
        let registry = Arc::new(crate::registry::RegistryHandle::new(
            crate::registry::ConfigSource::File("/nonexistent/reseal.yaml".into()),
            Default::default(),
            Arc::new(crate::clock::SystemClock),
            metrics.clone(),
        ));
        let broker = Broker::new(
            registry,
            Arc::new(crate::clock::SystemClock),
            metrics.clone(),
            crate::broker::CpuPool::new(1),
        )
        .with_desk(&DeskOptions {
            max_pending_requests: 2,
            ..DeskOptions::default()
        });
        let caller = Caller::default();
        let admit = || broker.admit(Door::Grpc, Method::Reencrypt, &caller);
        let e = admit().await.err().map(|e| e.reason);
        assert_eq!(e, Some(Reason::NotReady));
        let held: Vec<_> = (0..2)
            .map(|_| broker.desk.pending.clone().try_acquire_owned().unwrap())
            .collect();
        let e = admit().await.err().map(|e| e.reason);
        assert_eq!(e, Some(Reason::Overloaded));
        assert_eq!(metrics.shed.get(), 1);
        drop(held);
        let e = admit().await.err().map(|e| e.reason);
        assert_eq!(e, Some(Reason::NotReady), "the places come back");
    }

    fn slots(max: usize) -> Arc<Slots> {
        Slots::new(max)
    }

    /// A caller alone may take half the slots; with others holding slots,
    /// each may hold `max / (holders + 1)`, and growing stops short of the
    /// last eighth, so a newcomer finds room even after 32 callers took theirs.
    #[test]
    fn slots_are_shared_so_a_newcomer_finds_room() {
        let s = slots(256);
        let a: Arc<str> = "a".into();
        let held: Vec<_> = std::iter::from_fn(|| s.try_acquire(&a, 1).ok()).collect();
        assert_eq!(held.len(), 128, "alone: half");
        // 31 more callers each take what they may.
        let mut all = vec![held];
        for i in 0..31 {
            let k: Arc<str> = format!("k{i}").into();
            all.push(std::iter::from_fn(|| s.try_acquire(&k, 1).ok()).collect());
        }
        let newcomer: Arc<str> = "legit".into();
        assert!(
            s.try_acquire(&newcomer, 1).is_ok(),
            "no room for a newcomer"
        );
        drop(all);
        assert_eq!(s.state.lock().unwrap().total, 0);
        // Two slots, many callers: one each, two at most.
        let s = slots(2);
        let keys: Vec<Arc<str>> = (0..5).map(|i| format!("c{i}").into()).collect();
        let got: Vec<_> = keys
            .iter()
            .filter_map(|k| s.try_acquire(k, 1).ok())
            .collect();
        assert_eq!(got.len(), 2);
    }

    /// Body bytes: a caller alone may hold half; big bodies from one caller
    /// leave room for another's small ones.
    #[test]
    fn body_memory_is_shared_too() {
        let kib = Slots::new(32 * 1024);
        let attacker: Arc<str> = "conn:1".into();
        let big: Vec<_> = std::iter::from_fn(|| kib.try_acquire(&attacker, 4096).ok()).collect();
        assert_eq!(big.len(), 4, "alone: half of 32 MiB in 4 MiB bodies");
        let legit: Arc<str> = "conn:2".into();
        assert!(kib.try_acquire(&legit, 10).is_ok());
    }

    #[test]
    fn failures_exhaust_the_budget_and_standing_follows() {
        let f = Failures::new(4, Duration::from_secs(40));
        let k: Arc<str> = "conn:1".into();
        assert_eq!(f.standing(&k), Standing::New);
        f.note(&k, false);
        assert_eq!(f.standing(&k), Standing::Trusted);
        for _ in 0..3 {
            f.note(&k, true);
        }
        assert_eq!(f.standing(&k), Standing::Suspect);
        assert!(f.refused_for(&k).is_none(), "one failure left");
        f.note(&k, true);
        let after = f.refused_for(&k).expect("out of budget");
        assert!(after <= Duration::from_secs(10) && after > Duration::from_secs(9));
        assert!(f.refused_for("conn:2").is_none());
    }
}
