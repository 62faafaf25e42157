//! `reseal-bench load`: drives a running server over loopback.
//!
//! Closed loop by default (`concurrency` callers, each sending its next call
//! when the last one returns: peak throughput). With `rate`, an open loop:
//! calls are scheduled at fixed intervals (or Poisson arrivals) and latency is
//! measured from the scheduled time, so a stalled server is not hidden by
//! callers that wait (no coordinated omission); a call that goes out on time is
//! timed from when the timer released it, a high-resolution one (see
//! [`super::pacer`]). The open loop's warm-up is the first part of the same
//! schedule, so the measured window starts at the offered rate, not from a
//! drained server. Every loop is bounded in time and in count.
//!
//! Server CPU seconds per request and RSS come from `/proc/PID` of the server
//! (`server_pid`), read around the measured window only (not the warm-up);
//! the load generator's own CPU and everything else's come from `/proc/self`
//! and `/proc/stat` over the same window.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tonic::transport::Channel;

use super::pacer::{monotonic_ns, DueTimes, Sleeper};
pub use super::pacer::{Arrivals, Timer};
use super::procfs::{self, MachineSample, ProcSample};
use reseal::esdk::{self, AlgorithmSuite, EncryptionContext, EncryptionMaterials};
use reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient;
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptBatchRequest, ReencryptRequest};
use reseal::keys::{RawRsaKeyring, RsaPadding};

/// Where the inputs come from.
#[derive(Debug, Clone)]
pub enum InputKind {
    /// Amazon Connect-shaped: 0x0378, RSA-2048 OAEP-SHA512, provider `AmazonConnect`, frame 4096.
    Connect { public_key: PathBuf },
    /// Wrapped by AWS KMS (GenerateDataKey against `AWS_ENDPOINT_URL`), suite 0x0578.
    Kms { key_arn: String },
}

impl InputKind {
    pub fn label(&self) -> &'static str {
        match self {
            InputKind::Connect { .. } => "connect-rsa",
            InputKind::Kms { .. } => "kms",
        }
    }
}

/// Builds `count` distinct inputs of `payload_bytes` each.
pub async fn make_inputs(
    kind: &InputKind,
    payload_bytes: usize,
    count: usize,
) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let payload = |i: usize| -> Vec<u8> {
        (0..payload_bytes)
            .map(|j| b'0' + ((i * 7 + j) % 10) as u8)
            .collect()
    };
    let mut out = Vec::with_capacity(count);
    match kind {
        InputKind::Connect { public_key } => {
            let pem = std::fs::read(public_key)?;
            let sender = RawRsaKeyring::from_public_pem(
                "AmazonConnect",
                super::CONNECT_KEY_ID,
                RsaPadding::OaepSha512,
                &pem,
            )?;
            for i in 0..count {
                out.push(super::connect_message(&sender, &payload(i))?);
            }
        }
        InputKind::Kms { key_arn } => {
            let aws = reseal::keys::aws::AwsKeys::new(
                reseal::keys::aws::AwsOptions::default(),
                Arc::new(reseal::telemetry::Metrics::new()),
            );
            let recipient = aws.kms_recipient(key_arn);
            let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;
            for i in 0..count {
                let mut ec = EncryptionContext::new();
                ec.insert("genesys-cloud-organization-id", "bench-org");
                let draft = EncryptionMaterials::begin(suite, ec)?;
                let (data_key, edk) = recipient
                    .generate(suite, draft.encryption_context())
                    .await
                    .map_err(|e| format!("KMS GenerateDataKey: {e}"))?;
                let mut m = draft.finish(data_key)?;
                m.push_encrypted_data_key(edk);
                out.push(esdk::seal(&payload(i), &m, 4096)?);
            }
        }
    }
    Ok(out)
}

/// What one load run does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `host:port` of the gRPC listener.
    pub target: String,
    pub route: String,
    /// Callers in flight at once.
    pub concurrency: usize,
    /// HTTP/2 connections the callers share.
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Upper bound on calls in the measured window.
    pub max_calls: u64,
    /// Open loop at this many calls per second; None: closed loop.
    pub rate: Option<f64>,
    /// How the open loop's calls are spaced.
    pub arrivals: Arrivals,
    /// What releases each open-loop call.
    pub timer: Timer,
    /// Items per `ReencryptBatch` call; 0 or 1: unary `Reencrypt`.
    pub batch: usize,
    pub server_pid: Option<u32>,
    /// Where to write each measured call's due time and latency.
    pub latency_trace: Option<PathBuf>,
}

/// Results of one run; latencies are per call, in microseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub route: String,
    pub input: String,
    pub payload_bytes: usize,
    pub fan_out: usize,
    pub concurrency: usize,
    pub connections: usize,
    pub batch: usize,
    pub target_rate: Option<f64>,
    /// The open loop's arrival process and timer (None: closed loop).
    pub arrivals: Option<Arrivals>,
    pub timer: Option<Timer>,
    pub seconds: f64,
    pub calls: u64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_second: f64,
    pub latency_us: Latency,
    pub server: Option<ServerUsage>,
    /// The whole machine over the measured window, to tell the server's share
    /// from the load generator's and from everything else's.
    pub machine: Option<MachineUsage>,
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MachineUsage {
    /// All CPUs' busy time over wall time.
    pub cores_busy: f64,
    /// This load generator's CPU time over wall time, and per call.
    pub load_generator_cores_busy: f64,
    pub load_generator_cpu_us_per_call: f64,
    /// What neither the server nor the load generator used: other processes,
    /// kernel threads, interrupts.
    pub other_cores_busy: f64,
    /// Time the hypervisor kept CPUs from running, over wall time (0 where the
    /// kernel does not report it).
    pub steal_cores: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerUsage {
    pub pid: u32,
    pub cpu_seconds: f64,
    /// Server CPU time per successful request.
    pub cpu_us_per_request: f64,
    /// Server CPU time over wall time.
    pub cores_busy: f64,
    pub before: ProcSample,
    pub after: ProcSample,
}

struct Shared {
    clients: Vec<ReencryptServiceClient<Channel>>,
    inputs: Arc<Vec<Vec<u8>>>,
    route: String,
    batch: usize,
}

#[derive(Default)]
struct PhaseResult {
    histogram: Option<Histogram<u64>>,
    calls: u64,
    requests: u64,
    errors: u64,
    fan_out: usize,
    first_error: Option<String>,
    /// (due, latency) in µs per call, when asked for.
    trace: Vec<(u64, u64)>,
}

/// Runs a warm-up and a measured window against a running server.
pub async fn run(
    options: &RunOptions,
    inputs: Vec<Vec<u8>>,
    input: &InputKind,
    payload_bytes: usize,
) -> Result<LoadReport, Box<dyn std::error::Error>> {
    if inputs.is_empty() {
        return Err("no inputs".into());
    }
    let mut clients = Vec::new();
    for _ in 0..options.connections.max(1) {
        let channel = Channel::from_shared(format!("http://{}", options.target))?
            .connect()
            .await?;
        clients.push(
            ReencryptServiceClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        );
    }
    let shared = Arc::new(Shared {
        clients,
        inputs: Arc::new(inputs),
        route: options.route.clone(),
        batch: options.batch,
    });
    let trace = options.latency_trace.is_some();
    let (mut result, before, t0, window_start_ns) = match options.rate {
        // Open loop: one schedule from the first call to the last, the warm-up being
        // its first calls, so the measured window starts with the server already at
        // the offered rate (no drained pause, no start-up burst to skew the tail).
        Some(rate) => {
            let (start, start_ns) = (tokio::time::Instant::now(), monotonic_ns());
            // Due times cover the warm-up, the window and a second more (past the
            // deadline nothing is issued).
            let due = DueTimes::new(
                options.arrivals,
                rate,
                options.warmup + options.duration + Duration::from_secs(1),
            );
            // Calls due in the warm-up are issued, not recorded; the measured window
            // starts when the first recorded call is due.
            let first_recorded = due.count_before(options.warmup);
            let offset = due.get(first_recorded).unwrap_or(options.warmup);
            let window_start = start + offset;
            let window_start_ns = start_ns + offset.as_nanos() as u64;
            let schedule = Schedule {
                start,
                window_start,
                deadline: window_start + options.duration,
                first_recorded,
                end: first_recorded.saturating_add(options.max_calls),
                due: Some(Arc::new(due)),
            };
            let pid = options.server_pid;
            let (result, (before, t0)) =
                tokio::join!(phase(&shared, options, schedule, trace), async move {
                    tokio::time::sleep_until(window_start).await;
                    (Around::sample(pid), Instant::now())
                });
            (result, before?, t0, window_start_ns)
        }
        None => {
            if !options.warmup.is_zero() {
                let warm = phase(
                    &shared,
                    options,
                    Schedule::closed(options.warmup, u64::MAX),
                    false,
                )
                .await;
                if warm.requests == 0 && warm.errors > 0 {
                    return Err(format!(
                        "every warm-up call failed: {}",
                        warm.first_error.unwrap_or_default()
                    )
                    .into());
                }
            }
            let before = Around::sample(options.server_pid)?;
            let (t0, window_start_ns) = (Instant::now(), monotonic_ns());
            let schedule = Schedule::closed(options.duration, options.max_calls);
            (
                phase(&shared, options, schedule, trace).await,
                before,
                t0,
                window_start_ns,
            )
        }
    };
    let seconds = t0.elapsed().as_secs_f64();
    let after = Around::sample(options.server_pid)?;
    if let Some(path) = &options.latency_trace {
        write_trace(path, window_start_ns, &mut result.trace)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let h = result
        .histogram
        .unwrap_or_else(|| Histogram::new(3).expect("histogram"));
    let server = match (options.server_pid, before.server, after.server) {
        (Some(pid), Some(before), Some(after)) => {
            let cpu = after.cpu_seconds - before.cpu_seconds;
            Some(ServerUsage {
                pid,
                cpu_seconds: cpu,
                cpu_us_per_request: cpu * 1e6 / result.requests.max(1) as f64,
                cores_busy: cpu / seconds,
                before,
                after,
            })
        }
        _ => None,
    };
    let machine = match (before.machine, after.machine, before.client, after.client) {
        (Some(m0), Some(m1), Some(c0), Some(c1)) => {
            let client = c1.cpu_seconds - c0.cpu_seconds;
            let busy = m1.busy_seconds - m0.busy_seconds;
            let server_cpu = server.as_ref().map_or(0.0, |s| s.cpu_seconds);
            Some(MachineUsage {
                cores_busy: busy / seconds,
                load_generator_cores_busy: client / seconds,
                load_generator_cpu_us_per_call: client * 1e6 / result.calls.max(1) as f64,
                other_cores_busy: (busy - client - server_cpu).max(0.0) / seconds,
                steal_cores: (m1.steal_seconds - m0.steal_seconds) / seconds,
            })
        }
        _ => None,
    };
    Ok(LoadReport {
        route: options.route.clone(),
        input: input.label().into(),
        payload_bytes,
        fan_out: result.fan_out,
        concurrency: options.concurrency,
        connections: options.connections,
        batch: options.batch.max(1),
        target_rate: options.rate,
        arrivals: options.rate.map(|_| options.arrivals),
        timer: options.rate.map(|_| options.timer),
        seconds,
        calls: result.calls,
        requests: result.requests,
        errors: result.errors,
        requests_per_second: result.requests as f64 / seconds,
        latency_us: Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        },
        server,
        machine,
        first_error: result.first_error,
    })
}

/// Counters read at each end of the measured window: the server's, this
/// process's and the machine's (the last two only on Linux; None elsewhere).
struct Around {
    server: Option<ProcSample>,
    client: Option<ProcSample>,
    machine: Option<MachineSample>,
}

impl Around {
    fn sample(server_pid: Option<u32>) -> std::io::Result<Self> {
        Ok(Around {
            server: server_pid.map(procfs::sample).transpose()?,
            client: procfs::sample(std::process::id()).ok(),
            machine: procfs::machine_sample().ok(),
        })
    }
}

/// Which calls a phase issues, when, and which of them it records.
#[derive(Clone)]
struct Schedule {
    start: tokio::time::Instant,
    /// When the first recorded call is due; trace due times count from here.
    window_start: tokio::time::Instant,
    /// No call is issued at or after this instant.
    deadline: tokio::time::Instant,
    /// Calls numbered below this are warm-up: issued, not recorded.
    first_recorded: u64,
    /// Calls numbered from this on are not issued.
    end: u64,
    /// When each call is due, from `start`; None: closed loop, each caller
    /// sends its next call when the last returns.
    due: Option<Arc<DueTimes>>,
}

impl Schedule {
    fn closed(duration: Duration, max_calls: u64) -> Self {
        let start = tokio::time::Instant::now();
        Schedule {
            start,
            window_start: start,
            deadline: start + duration,
            first_recorded: 0,
            end: max_calls,
            due: None,
        }
    }
}

/// `concurrency` callers until the schedule's deadline or its last call.
async fn phase(
    shared: &Arc<Shared>,
    options: &RunOptions,
    schedule: Schedule,
    trace: bool,
) -> PhaseResult {
    let issued = Arc::new(AtomicU64::new(0));
    let Schedule {
        start,
        window_start,
        deadline,
        first_recorded,
        end,
        due,
    } = schedule;
    let mut tasks = Vec::new();
    for worker in 0..options.concurrency.max(1) {
        let shared = shared.clone();
        let issued = issued.clone();
        let due = due.clone();
        let timer = options.timer;
        tasks.push(tokio::spawn(async move {
            // Open loop: the due times and this caller's timer; closed loop: neither.
            let pacing = due.map(|due| (due, Sleeper::new(timer)));
            let mut client = shared.clients[worker % shared.clients.len()].clone();
            let mut r = PhaseResult {
                histogram: Some(Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram")),
                ..Default::default()
            };
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= end {
                    break;
                }
                let intended = match &pacing {
                    Some((due, sleeper)) => {
                        let Some(at) = due.get(n).map(|d| start + d) else {
                            break;
                        };
                        if at >= deadline {
                            break;
                        }
                        if tokio::time::Instant::now() < at {
                            // On time: the clock starts when the timer lets the
                            // call go, so its lateness is not charged to the server.
                            sleeper.sleep_until(at).await;
                            tokio::time::Instant::now()
                        } else {
                            // Behind schedule (every caller was busy): the clock
                            // started when the call should have gone.
                            at
                        }
                    }
                    None => {
                        let now = tokio::time::Instant::now();
                        if now >= deadline {
                            break;
                        }
                        now
                    }
                };
                let outcome = call(&mut client, &shared, n as usize).await;
                if n < first_recorded {
                    continue;
                }
                let micros = intended.elapsed().as_micros() as u64;
                if trace {
                    let due = intended.saturating_duration_since(window_start);
                    r.trace.push((due.as_micros() as u64, micros));
                }
                r.calls += 1;
                match outcome {
                    Ok(fan_out) => {
                        r.requests += shared.batch.max(1) as u64;
                        r.fan_out = fan_out;
                        if let Some(h) = r.histogram.as_mut() {
                            let _ = h.record(micros.max(1));
                        }
                    }
                    Err(e) => {
                        r.errors += 1;
                        r.first_error.get_or_insert(e);
                    }
                }
            }
            r
        }));
    }
    let mut total = PhaseResult {
        histogram: Some(Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram")),
        ..Default::default()
    };
    for t in tasks {
        if let Ok(r) = t.await {
            total.calls += r.calls;
            total.requests += r.requests;
            total.errors += r.errors;
            total.fan_out = total.fan_out.max(r.fan_out);
            total.trace.extend(r.trace);
            if total.first_error.is_none() {
                total.first_error = r.first_error;
            }
            if let (Some(a), Some(b)) = (total.histogram.as_mut(), r.histogram.as_ref()) {
                let _ = a.add(b);
            }
        }
    }
    total
}

/// One call; Ok(consumers per request) when every envelope came back.
async fn call(
    client: &mut ReencryptServiceClient<Channel>,
    shared: &Shared,
    n: usize,
) -> Result<usize, String> {
    let request = |i: usize| ReencryptRequest {
        input: Some(Input::Ciphertext(
            shared.inputs[i % shared.inputs.len()].clone(),
        )),
        route: shared.route.clone(),
        ..Default::default()
    };
    if shared.batch <= 1 {
        let response = client
            .reencrypt(request(n))
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        check(&response)
    } else {
        let items = (0..shared.batch)
            .map(|k| request(n * shared.batch + k))
            .collect();
        let response = client
            .reencrypt_batch(ReencryptBatchRequest { items })
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        let mut fan_out = 0;
        for item in &response.results {
            if let Some(e) = &item.error {
                return Err(format!(
                    "batch item {}: {}: {}",
                    item.index, e.reason, e.message
                ));
            }
            fan_out = check(
                item.response
                    .as_ref()
                    .ok_or("batch item without response")?,
            )?;
        }
        Ok(fan_out)
    }
}

/// One line per call, in order of due time: `due_us latency_us`.
/// The header gives the window's start on `CLOCK_MONOTONIC`, the clock of
/// `perf record -k CLOCK_MONOTONIC`, to line calls up with a system trace.
fn write_trace(
    path: &std::path::Path,
    window_start_ns: u64,
    trace: &mut [(u64, u64)],
) -> std::io::Result<()> {
    use std::io::Write as _;
    trace.sort_unstable();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "# due_us latency_us (µs from the start of the measured window)"
    )?;
    writeln!(out, "# window_start_monotonic_ns {window_start_ns}")?;
    for (due, latency) in trace.iter() {
        writeln!(out, "{due} {latency}")?;
    }
    out.flush()
}

fn check(r: &reseal::grpc::proto::ReencryptResponse) -> Result<usize, String> {
    for c in &r.results {
        if let Some(e) = &c.error {
            return Err(format!(
                "consumer {}: {}: {}",
                c.consumer, e.reason, e.message
            ));
        }
        if c.ciphertext.is_empty() {
            return Err(format!("consumer {}: empty envelope", c.consumer));
        }
    }
    Ok(r.results.len())
}

/// Prints one report as a table row (the header comes from [`print_header`]).
pub fn print_row(r: &LoadReport) {
    let ms = |us: u64| us as f64 / 1000.0;
    let (cpu, cores, rss) = match &r.server {
        Some(s) => (
            format!("{:.0}", s.cpu_us_per_request),
            format!("{:.2}", s.cores_busy),
            format!("{:.1}", s.after.peak_rss_bytes as f64 / 1048576.0),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    let (client, other) = match &r.machine {
        Some(m) => (
            format!("{:.2}", m.load_generator_cores_busy),
            format!("{:.2}", m.other_cores_busy),
        ),
        None => ("-".into(), "-".into()),
    };
    println!(
        "{:>8} {:>6} {:>5} {:>8} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>6} {:>9} {:>6} {:>6} {:>6}",
        r.fan_out,
        r.concurrency,
        r.batch,
        r.target_rate
            .map(|x| format!("{x:.0}"))
            .unwrap_or_else(|| "max".into()),
        r.requests_per_second,
        ms(r.latency_us.p50),
        ms(r.latency_us.p90),
        ms(r.latency_us.p99),
        ms(r.latency_us.max),
        cpu,
        cores,
        rss,
        client,
        other,
        r.errors
    );
}

pub fn print_header() {
    println!(
        "{:>8} {:>6} {:>5} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>9} {:>6} {:>6} {:>6}",
        "fan-out",
        "conc",
        "batch",
        "rate",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "cpu µs/rq",
        "cores",
        "peak MiB",
        "client",
        "other",
        "errors"
    );
}
