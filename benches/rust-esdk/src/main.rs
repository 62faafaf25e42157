//! Baseline: the official AWS Encryption SDK for Rust (`aws-esdk`) doing an
//! Amazon Connect Lambda's job.
//!
//! # What is measured
//!
//! Amazon Connect encrypts sensitive input (e.g. a card number captured by an
//! IVR "Store customer input" block) with the AWS Encryption SDK: algorithm
//! suite 0x0378 (AES-256-GCM, HKDF-SHA384, ECDSA P-384 signature), frame
//! length 4096, a raw RSA-2048 key wrapped with OAEP-SHA512/MGF1-SHA512,
//! provider id (key namespace) "AmazonConnect". The Lambda that receives it
//!
//! 1. decrypts the message with the Connect private key (raw RSA keyring), and
//! 2. re-encrypts the plaintext once per downstream consumer, each with that
//!    consumer's own RSA-2048 public key (raw RSA keyring, key namespace
//!    "reseal", key name = consumer name, OAEP-SHA256/MGF1-SHA256), suite
//!    0x0478 (AES-256-GCM, HKDF-SHA512, key commitment, unsigned), frame
//!    length 4096, empty encryption context.
//!
//! One *operation* is exactly that: one decrypt plus F single-recipient
//! encrypts (F = fan-out; F = 0 means decrypt only). Per fan-out the program
//! reports throughput (ops/s in total and per thread), the CPU time the
//! worker threads themselves spent per operation (from
//! `/proc/thread-self/schedstat`), and the mean wall time per operation.
//!
//! # Why the comparison is fair
//!
//! * Warm path: like a warm Lambda container, every worker thread builds its
//!   material-providers client, its keyrings (the Connect decrypt keyring and
//!   one keyring per consumer) and its ESDK client once, before the timed
//!   loop. Only the per-message work is timed.
//! * No caching: keyrings are passed directly to `encrypt`/`decrypt`, so the
//!   SDK wraps each in a default CMM per call; no caching CMM is involved.
//!   Every decrypt really does an RSA private-key operation (and an ECDSA
//!   P-384 verify, as 0x0378 is signed) and every encrypt a fresh data key
//!   and an RSA public-key wrap.
//! * Same work as the system under comparison: the same suites (0x0378 in,
//!   0x0478 out), frame length, RSA-2048 keys and OAEP paddings, payload size
//!   and an empty encryption context. The 64 input messages are produced by
//!   this same SDK before timing and cycled, so nothing can be memoised.
//! * All cores: one OS thread per core (default), each with its own
//!   current-thread tokio runtime (the SDK's API is `async`, though it never
//!   actually suspends), all released together by a barrier, then a warm-up
//!   (not counted) and a measured window. Loops are bounded by a deadline and
//!   an operation cap.
//! * What stays in the warm path is the SDK's own doing: its RSA keyring
//!   keeps the PEM bytes and re-parses PEM + PKCS#8/SPKI on every RSA
//!   operation (aws-esdk `rsa.rs`); no public API caches the parsed key.
//! * Correctness is checked once before timing: the decrypted plaintext
//!   matches, the input and envelope headers carry the expected suites, frame
//!   length and recipients, and every envelope decrypts with its consumer's
//!   private key (and not with another consumer's).
//!
//! # Inputs (`--dir DIR`)
//!
//! * `DIR/bench.json`: `{"connect_key_id": "...", "connect_provider_id":
//!   "AmazonConnect", "consumers": ["c000", ...]}`
//! * `DIR/connect.pem` (PKCS#8 private key), `DIR/connect.pub.pem` (SPKI)
//! * `DIR/consumers/<name>.pub.pem` (SPKI) and `DIR/consumers/<name>.pem`
//!   (PKCS#8, used only by the correctness check)
//!
//! Usage:
//!
//! ```text
//! rust-esdk-bench --dir DIR --fan-out 0,1,10,100 [--threads N] [--seconds 10]
//!     [--warmup 2] [--payload-bytes 16] [--max-ops 10000000] --json OUT
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use aws_esdk::client::Client as EsdkClient;
use aws_esdk::material_providers::client::Client as MplClient;
use aws_esdk::material_providers::types::keyring::KeyringRef;
use aws_esdk::material_providers::types::material_providers_config::MaterialProvidersConfig;
use aws_esdk::material_providers::types::{
    EsdkAlgorithmSuiteId, EsdkCommitmentPolicy, PaddingScheme,
};
use aws_esdk::types::aws_encryption_sdk_config::AwsEncryptionSdkConfig;
use serde_json::{json, Value};

/// Suite of the Amazon Connect input messages (0x0378).
const CONNECT_SUITE: EsdkAlgorithmSuiteId =
    EsdkAlgorithmSuiteId::AlgAes256GcmIv12Tag16HkdfSha384EcdsaP384;
const CONNECT_SUITE_WIRE: u16 = 0x0378;
const CONNECT_PADDING: PaddingScheme = PaddingScheme::OaepSha512Mgf1;
/// Suite of the per-consumer envelopes (0x0478).
const ENVELOPE_SUITE: EsdkAlgorithmSuiteId = EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKey;
const ENVELOPE_SUITE_WIRE: u16 = 0x0478;
const ENVELOPE_PADDING: PaddingScheme = PaddingScheme::OaepSha256Mgf1;
const ENVELOPE_NAMESPACE: &str = "reseal";
const FRAME_LENGTH: i64 = 4096;
const NUM_INPUTS: usize = 64;

type Result<T, E = String> = std::result::Result<T, E>;

// --------------------------------------------------------------------------
// Command line
// --------------------------------------------------------------------------

struct Args {
    dir: PathBuf,
    fan_outs: Vec<usize>,
    threads: usize,
    seconds: f64,
    warmup: f64,
    payload_bytes: usize,
    max_ops: u64,
    json: PathBuf,
}

const USAGE: &str = "usage: rust-esdk-bench --dir DIR --json OUT [--fan-out 0,1,10,100] \
[--threads N] [--seconds 10] [--warmup 2] [--payload-bytes 16] [--max-ops 10000000]";

fn parse_args() -> Result<Args> {
    let mut dir = None;
    let mut json = None;
    let mut fan_out = "0,1,10,100".to_string();
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut seconds: f64 = 10.0;
    let mut warmup: f64 = 2.0;
    let mut payload_bytes = 16;
    let mut max_ops = 10_000_000;

    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag}: missing value\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag}: not {what}: {value:?}");
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(&value)),
            "--json" => json = Some(PathBuf::from(&value)),
            "--fan-out" => fan_out = value.clone(),
            "--threads" => threads = value.parse().map_err(|_| bad("an integer"))?,
            "--seconds" => seconds = value.parse().map_err(|_| bad("a number"))?,
            "--warmup" => warmup = value.parse().map_err(|_| bad("a number"))?,
            "--payload-bytes" => payload_bytes = value.parse().map_err(|_| bad("an integer"))?,
            "--max-ops" => max_ops = value.parse().map_err(|_| bad("an integer"))?,
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
        }
    }

    let fan_outs = fan_out
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("--fan-out: not a comma-separated list of integers: {fan_out:?}"))?;
    if fan_outs.is_empty() {
        return Err("--fan-out: need one or more non-negative integers".into());
    }
    if threads < 1 || payload_bytes < 1 || max_ops < 1 {
        return Err("--threads, --payload-bytes and --max-ops must be positive".into());
    }
    if !(seconds > 0.0 && warmup >= 0.0 && seconds.is_finite() && warmup.is_finite()) {
        return Err("--seconds must be positive and --warmup non-negative".into());
    }
    Ok(Args {
        dir: dir.ok_or_else(|| format!("--dir is required\n{USAGE}"))?,
        json: json.ok_or_else(|| format!("--json is required\n{USAGE}"))?,
        fan_outs,
        threads,
        seconds,
        warmup,
        payload_bytes,
        max_ops,
    })
}

// --------------------------------------------------------------------------
// Inputs: bench.json and key material
// --------------------------------------------------------------------------

/// Everything read from `--dir`, PEM files as the bytes the keyrings take.
struct Bench {
    connect_key_id: String,
    connect_provider_id: String,
    connect_private_pem: Vec<u8>,
    connect_public_pem: Vec<u8>,
    /// `(name, public PEM)` for the consumers that the largest fan-out uses.
    consumers: Vec<(String, Vec<u8>)>,
    /// Private PEMs of the same consumers (correctness check only).
    consumer_private_pems: Vec<Vec<u8>>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl Bench {
    fn load(dir: &Path, max_fan_out: usize) -> Result<Self> {
        let spec: Value = serde_json::from_slice(&read(&dir.join("bench.json"))?)
            .map_err(|e| format!("bench.json: {e}"))?;
        let field = |key: &str| {
            spec.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("bench.json: '{key}' must be a string"))
        };
        let names: Vec<String> = spec
            .get("consumers")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect())
            .ok_or("bench.json: 'consumers' must be a list of strings")?;
        if max_fan_out > names.len() {
            return Err(format!(
                "fan-out {max_fan_out} exceeds the {} consumers in bench.json",
                names.len()
            ));
        }
        let mut consumers = Vec::with_capacity(max_fan_out);
        let mut consumer_private_pems = Vec::with_capacity(max_fan_out);
        for name in names.into_iter().take(max_fan_out) {
            let base = dir.join("consumers");
            consumers.push((name.clone(), read(&base.join(format!("{name}.pub.pem")))?));
            consumer_private_pems.push(read(&base.join(format!("{name}.pem")))?);
        }
        Ok(Self {
            connect_key_id: field("connect_key_id")?,
            connect_provider_id: field("connect_provider_id")?,
            connect_private_pem: read(&dir.join("connect.pem"))?,
            connect_public_pem: read(&dir.join("connect.pub.pem"))?,
            consumers,
            consumer_private_pems,
        })
    }
}

/// One pre-generated Amazon Connect-shaped message and its plaintext.
struct ConnectInput {
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
}

// --------------------------------------------------------------------------
// SDK plumbing
// --------------------------------------------------------------------------

fn mpl_client() -> Result<MplClient> {
    let config = MaterialProvidersConfig::builder()
        .build()
        .map_err(|e| format!("material providers config: {e:?}"))?;
    MplClient::from_conf(config).map_err(|e| format!("material providers client: {e}"))
}

fn esdk_client(policy: EsdkCommitmentPolicy) -> Result<EsdkClient> {
    let config = AwsEncryptionSdkConfig::builder()
        .commitment_policy(policy)
        .build()
        .map_err(|e| format!("ESDK config: {e:?}"))?;
    EsdkClient::from_conf(config).map_err(|e| format!("ESDK client: {e}"))
}

/// A raw RSA keyring; give the public key to encrypt, the private key to decrypt.
async fn raw_rsa_keyring(
    mpl: &MplClient,
    namespace: &str,
    name: &str,
    padding: PaddingScheme,
    public_pem: Option<&[u8]>,
    private_pem: Option<&[u8]>,
) -> Result<KeyringRef> {
    let mut builder = mpl
        .create_raw_rsa_keyring()
        .key_namespace(namespace)
        .key_name(name)
        .padding_scheme(padding);
    if let Some(pem) = public_pem {
        builder = builder.public_key(pem.to_vec());
    }
    if let Some(pem) = private_pem {
        builder = builder.private_key(pem.to_vec());
    }
    builder
        .send()
        .await
        .map_err(|e| format!("raw RSA keyring {namespace}/{name}: {e}"))
}

fn current_thread_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// Small non-cryptographic PRNG (splitmix64) for the payload digits.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Encrypt NUM_INPUTS random digit strings the way Amazon Connect does.
///
/// 0x0378 is a non-committing suite, so this *encrypting* client needs
/// FORBID_ENCRYPT_ALLOW_DECRYPT (the default policy refuses to encrypt with it).
async fn make_inputs(bench: &Bench, payload_bytes: usize) -> Result<Vec<ConnectInput>> {
    let client = esdk_client(EsdkCommitmentPolicy::ForbidEncryptAllowDecrypt)?;
    let keyring = raw_rsa_keyring(
        &mpl_client()?,
        &bench.connect_provider_id,
        &bench.connect_key_id,
        CONNECT_PADDING,
        Some(&bench.connect_public_pem),
        None,
    )
    .await?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let mut rng = SplitMix64(seed);
    let mut inputs = Vec::with_capacity(NUM_INPUTS);
    for _ in 0..NUM_INPUTS {
        let plaintext: Vec<u8> = (0..payload_bytes)
            .map(|_| b'0' + (rng.next() % 10) as u8)
            .collect();
        let (ciphertext, suite) = encrypt_one(&client, &keyring, CONNECT_SUITE, &plaintext)
            .await
            .map_err(|e| format!("encrypting a Connect input: {e}"))?;
        if suite != Some(CONNECT_SUITE) {
            return Err(format!("Connect input has suite {suite:?}"));
        }
        inputs.push(ConnectInput {
            plaintext,
            ciphertext,
        });
    }
    Ok(inputs)
}

/// Encrypts `plaintext` for one keyring alone: frame length 4096, empty
/// encryption context. Returns the ciphertext and the suite the SDK reports.
async fn encrypt_one(
    client: &EsdkClient,
    keyring: &KeyringRef,
    suite: EsdkAlgorithmSuiteId,
    plaintext: &[u8],
) -> Result<(Vec<u8>, Option<EsdkAlgorithmSuiteId>)> {
    let out = client
        .encrypt()
        .plaintext(plaintext.to_vec())
        .keyring(keyring.clone())
        .algorithm_suite_id(suite)
        .frame_length(FRAME_LENGTH)
        .encryption_context(std::collections::HashMap::new())
        .send()
        .await
        .map_err(|e| format!("encrypt: {e}"))?;
    let ciphertext = out
        .ciphertext
        .ok_or("encrypt returned no ciphertext")?
        .into_inner();
    Ok((ciphertext, out.algorithm_suite_id))
}

// --------------------------------------------------------------------------
// Warm state and the measured operation
// --------------------------------------------------------------------------

/// What a warm Lambda keeps between invocations.
struct WarmState {
    client: EsdkClient,
    decrypt_keyring: KeyringRef,
    consumer_keyrings: Vec<KeyringRef>,
}

/// Build the client and keyrings once, outside the timed loop.
///
/// REQUIRE_ENCRYPT_ALLOW_DECRYPT: the envelopes use a committing suite
/// (0x0478) while the Connect input uses a non-committing one (0x0378) that
/// the default REQUIRE_ENCRYPT_REQUIRE_DECRYPT policy would refuse to decrypt.
async fn build_warm_state(bench: &Bench, fan_out: usize) -> Result<WarmState> {
    let mpl = mpl_client()?;
    let client = esdk_client(EsdkCommitmentPolicy::RequireEncryptAllowDecrypt)?;
    let decrypt_keyring = raw_rsa_keyring(
        &mpl,
        &bench.connect_provider_id,
        &bench.connect_key_id,
        CONNECT_PADDING,
        None,
        Some(&bench.connect_private_pem),
    )
    .await?;
    let mut consumer_keyrings = Vec::with_capacity(fan_out);
    for (name, public_pem) in &bench.consumers[..fan_out] {
        consumer_keyrings.push(
            raw_rsa_keyring(
                &mpl,
                ENVELOPE_NAMESPACE,
                name,
                ENVELOPE_PADDING,
                Some(public_pem),
                None,
            )
            .await?,
        );
    }
    Ok(WarmState {
        client,
        decrypt_keyring,
        consumer_keyrings,
    })
}

/// One warm operation: decrypt the Connect message, then encrypt the
/// plaintext once per consumer with that consumer's keyring alone.
/// Returns the plaintext and the envelopes (in consumer order).
async fn warm_operation(state: &WarmState, ciphertext: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let decrypted = state
        .client
        .decrypt()
        .ciphertext(ciphertext.to_vec())
        .keyring(state.decrypt_keyring.clone())
        .send()
        .await
        .map_err(|e| format!("decrypt: {e}"))?;
    let plaintext = decrypted
        .plaintext
        .ok_or("decrypt returned no plaintext")?
        .into_inner();
    let mut envelopes = Vec::with_capacity(state.consumer_keyrings.len());
    for keyring in &state.consumer_keyrings {
        let (envelope, _) = encrypt_one(&state.client, keyring, ENVELOPE_SUITE, &plaintext).await?;
        envelopes.push(envelope);
    }
    Ok((plaintext, envelopes))
}

// --------------------------------------------------------------------------
// Correctness check (once, before any timing)
// --------------------------------------------------------------------------

/// The parts of an ESDK message header (v1 or v2) that the check looks at.
#[derive(Debug)]
struct Header {
    suite: u16,
    /// `(provider id, provider info)` of each encrypted data key.
    edks: Vec<(String, Vec<u8>)>,
    frame_length: u32,
}

/// Parse the header of a framed ESDK message (message format v1 or v2).
fn parse_header(msg: &[u8]) -> Result<Header> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = msg.get(pos..pos + n).ok_or("truncated message header")?;
        pos += n;
        Ok(s)
    };
    fn u16_of(b: &[u8]) -> u16 {
        u16::from_be_bytes([b[0], b[1]])
    }
    let version = take(1)?[0];
    let (suite, message_id_len) = match version {
        0x01 => {
            if take(1)?[0] != 0x80 {
                return Err("v1 header: unexpected message type".into());
            }
            (u16_of(take(2)?), 16)
        }
        0x02 => (u16_of(take(2)?), 32),
        v => return Err(format!("unknown message format version {v:#04x}")),
    };
    take(message_id_len)?;
    let aad_len = u16_of(take(2)?) as usize;
    take(aad_len)?;
    let edk_count = u16_of(take(2)?);
    let mut edks = Vec::with_capacity(edk_count as usize);
    for _ in 0..edk_count {
        let n = u16_of(take(2)?) as usize;
        let provider_id = String::from_utf8_lossy(take(n)?).into_owned();
        let n = u16_of(take(2)?) as usize;
        let provider_info = take(n)?.to_vec();
        let n = u16_of(take(2)?) as usize;
        take(n)?;
        edks.push((provider_id, provider_info));
    }
    if take(1)?[0] != 0x02 {
        return Err("content type is not framed".into());
    }
    if version == 0x01 {
        take(4)?; // reserved
        take(1)?; // IV length
    }
    let b = take(4)?;
    let frame_length = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Ok(Header {
        suite,
        edks,
        frame_length,
    })
}

/// Outside the timed loop: the decrypt is right, the input and envelope
/// headers look right, and every envelope opens with its consumer's private
/// key (and not with a neighbour's).
async fn check_once(bench: &Bench, inputs: &[ConnectInput]) -> Result<()> {
    let fan_out = bench.consumers.len();
    let state = build_warm_state(bench, fan_out).await?;

    for item in inputs {
        let h = parse_header(&item.ciphertext)?;
        let want_edk = (
            bench.connect_provider_id.clone(),
            bench.connect_key_id.as_bytes().to_vec(),
        );
        if h.suite != CONNECT_SUITE_WIRE
            || h.frame_length != FRAME_LENGTH as u32
            || h.edks != [want_edk]
        {
            return Err(format!("unexpected Connect input header: {h:?}"));
        }
    }

    let item = &inputs[0];
    let (plaintext, envelopes) = warm_operation(&state, &item.ciphertext).await?;
    if plaintext != item.plaintext {
        return Err("decrypted plaintext does not match the generated input".into());
    }
    if envelopes.len() != fan_out {
        return Err(format!(
            "{} envelopes for fan-out {fan_out}",
            envelopes.len()
        ));
    }

    let mpl = mpl_client()?;
    for (i, ((name, _), envelope)) in bench.consumers.iter().zip(&envelopes).enumerate() {
        let h = parse_header(envelope)?;
        let want_edk = (ENVELOPE_NAMESPACE.to_string(), name.as_bytes().to_vec());
        if h.suite != ENVELOPE_SUITE_WIRE
            || h.frame_length != FRAME_LENGTH as u32
            || h.edks != [want_edk]
        {
            return Err(format!(
                "unexpected envelope header for consumer {name}: {h:?}"
            ));
        }
        let own = raw_rsa_keyring(
            &mpl,
            ENVELOPE_NAMESPACE,
            name,
            ENVELOPE_PADDING,
            None,
            Some(&bench.consumer_private_pems[i]),
        )
        .await?;
        let opened = state
            .client
            .decrypt()
            .ciphertext(envelope.clone())
            .keyring(own)
            .send()
            .await
            .map_err(|e| {
                format!("envelope for {name} does not decrypt with its private key: {e}")
            })?;
        if opened.plaintext.map(|b| b.into_inner()) != Some(item.plaintext.clone()) {
            return Err(format!(
                "envelope for {name} decrypts to the wrong plaintext"
            ));
        }
        if opened.algorithm_suite_id != Some(ENVELOPE_SUITE) {
            return Err(format!(
                "envelope for {name} has suite {:?}",
                opened.algorithm_suite_id
            ));
        }
        // A different consumer's private key (under the same name) must not open it.
        if fan_out >= 2 {
            let other = raw_rsa_keyring(
                &mpl,
                ENVELOPE_NAMESPACE,
                name,
                ENVELOPE_PADDING,
                None,
                Some(&bench.consumer_private_pems[(i + 1) % fan_out]),
            )
            .await?;
            let wrong = state
                .client
                .decrypt()
                .ciphertext(envelope.clone())
                .keyring(other)
                .send()
                .await;
            if wrong.is_ok() {
                return Err(format!(
                    "envelope for {name} decrypted with another consumer's key"
                ));
            }
        }
    }
    Ok(())
}

// --------------------------------------------------------------------------
// Worker threads
// --------------------------------------------------------------------------

/// CPU time this thread has spent on a CPU, in ns (first field of schedstat).
fn thread_cpu_ns() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .map_err(|e| format!("/proc/thread-self/schedstat: {e}"))?;
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("cannot parse /proc/thread-self/schedstat: {text:?}"))
}

struct WorkerStats {
    ops: u64,
    wall: f64,
    cpu: f64,
}

struct RunConfig {
    fan_out: usize,
    warmup: Duration,
    seconds: Duration,
    max_ops: u64,
}

/// Body of one worker thread: warm set-up, barrier, warm-up, measured window.
fn worker(
    id: usize,
    cfg: &RunConfig,
    bench: &Bench,
    inputs: &[ConnectInput],
    barrier: &Barrier,
    failed: &AtomicBool,
) -> Result<WorkerStats> {
    // ---- set-up (not timed): a warm Lambda has done this already ----
    let setup = catch_unwind(AssertUnwindSafe(|| -> Result<_> {
        let rt = current_thread_runtime()?;
        let state = rt.block_on(build_warm_state(bench, cfg.fan_out))?;
        // This thread's own state must produce the right plaintext.
        let item = &inputs[id % inputs.len()];
        let (plaintext, envelopes) = rt.block_on(warm_operation(&state, &item.ciphertext))?;
        if plaintext != item.plaintext || envelopes.len() != cfg.fan_out {
            return Err("warm operation returned unexpected results".into());
        }
        Ok((rt, state))
    }))
    .unwrap_or_else(|_| Err("panicked during set-up".into()));
    if setup.is_err() {
        failed.store(true, Ordering::SeqCst);
    }
    barrier.wait();
    let (rt, state) = setup?;
    if failed.load(Ordering::SeqCst) {
        return Err("not run: another worker failed during set-up".into());
    }

    let n = inputs.len();
    // Different threads start at different inputs (harmless, avoids lock-step).
    let mut i = (id * 7) % n;
    rt.block_on(async {
        // ---- warm-up (not counted) ----
        let deadline = Instant::now() + cfg.warmup;
        let mut done = 0u64;
        while done < cfg.max_ops && Instant::now() < deadline {
            std::hint::black_box(warm_operation(&state, &inputs[i].ciphertext).await?);
            i = (i + 1) % n;
            done += 1;
        }

        // ---- measured window ----
        let mut ops = 0u64;
        let cpu0 = thread_cpu_ns()?;
        let t0 = Instant::now();
        let deadline = t0 + cfg.seconds;
        while ops < cfg.max_ops {
            std::hint::black_box(warm_operation(&state, &inputs[i].ciphertext).await?);
            i = (i + 1) % n;
            ops += 1;
            if Instant::now() >= deadline {
                break;
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (thread_cpu_ns()? - cpu0) as f64 / 1e9;
        Ok::<_, String>(WorkerStats { ops, wall, cpu })
    })
    .map_err(|e| format!("worker {id}: {e}"))
}

/// Run one fan-out on `threads` threads and aggregate their numbers.
fn run_config(
    args: &Args,
    bench: &Bench,
    inputs: &[ConnectInput],
    fan_out: usize,
) -> Result<Value> {
    let cfg = RunConfig {
        fan_out,
        warmup: Duration::from_secs_f64(args.warmup),
        seconds: Duration::from_secs_f64(args.seconds),
        max_ops: args.max_ops,
    };
    let barrier = Barrier::new(args.threads);
    let failed = AtomicBool::new(false);
    let outcomes: Vec<Result<WorkerStats>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.threads)
            .map(|id| {
                let (cfg, barrier, failed) = (&cfg, &barrier, &failed);
                std::thread::Builder::new()
                    .name(format!("esdk-f{fan_out}-w{id}"))
                    .stack_size(8 << 20)
                    .spawn_scoped(scope, move || {
                        worker(id, cfg, bench, inputs, barrier, failed)
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let mut stats = Vec::with_capacity(outcomes.len());
    let mut errors = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(s) => stats.push(s),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        // Real failures first, then the workers that stood down because of them.
        errors.sort_by_key(|e| e.starts_with("not run"));
        return Err(format!(
            "fan-out {fan_out}: worker failure:\n{}",
            errors.join("\n")
        ));
    }

    let ops: u64 = stats.iter().map(|s| s.ops).sum();
    let wall_sum: f64 = stats.iter().map(|s| s.wall).sum();
    let cpu: f64 = stats.iter().map(|s| s.cpu).sum();
    // Throughput: each thread's own rate, summed (windows differ by ~1 op).
    let ops_per_s: f64 = stats
        .iter()
        .filter(|s| s.wall > 0.0)
        .map(|s| s.ops as f64 / s.wall)
        .sum();
    let per_op = |total: f64| {
        if ops > 0 {
            json!(1000.0 * total / ops as f64)
        } else {
            Value::Null
        }
    };
    Ok(json!({
        "mode": "warm",
        "fan_out": fan_out,
        "ops": ops,
        // Mean of the threads' measured windows (all are ~--seconds long).
        "seconds": wall_sum / stats.len() as f64,
        "ops_per_s": ops_per_s,
        "ops_per_s_per_process": ops_per_s / args.threads as f64,
        "cpu_seconds": cpu,
        "cpu_ms_per_op": per_op(cpu),
        // Wall time per operation as a single thread sees it.
        "mean_ms_per_op": per_op(wall_sum),
    }))
}

// --------------------------------------------------------------------------
// Output
// --------------------------------------------------------------------------

fn print_table(rows: &[Value], threads: usize, payload_bytes: usize, versions: &Value) {
    println!(
        "rust-esdk: {threads} threads, {payload_bytes}-byte payload, aws-esdk {}, {}",
        versions["aws-esdk"].as_str().unwrap_or("?"),
        versions["rustc"].as_str().unwrap_or("rustc ?"),
    );
    let num = |v: &Value, prec: usize| {
        v.as_f64()
            .map_or("-".to_string(), |x| format!("{x:.prec$}"))
    };
    println!(
        "{:<5} {:>7} {:>9} {:>8} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "mode",
        "fan_out",
        "ops",
        "seconds",
        "ops/s",
        "ops/s/thr",
        "cpu s",
        "cpu ms/op",
        "mean ms/op"
    );
    println!("{}", "-".repeat(85));
    for r in rows {
        println!(
            "{:<5} {:>7} {:>9} {:>8} {:>10} {:>10} {:>8} {:>10} {:>10}",
            r["mode"].as_str().unwrap_or("?"),
            r["fan_out"].as_u64().unwrap_or(0),
            r["ops"].as_u64().unwrap_or(0),
            num(&r["seconds"], 2),
            num(&r["ops_per_s"], 1),
            num(&r["ops_per_s_per_process"], 1),
            num(&r["cpu_seconds"], 2),
            num(&r["cpu_ms_per_op"], 3),
            num(&r["mean_ms_per_op"], 3),
        );
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let max_fan_out = *args.fan_outs.iter().max().expect("non-empty");
    let bench = Bench::load(&args.dir, max_fan_out)?;

    let mut versions = json!({ "aws-esdk": env!("BENCH_AWS_ESDK_VERSION") });
    if !env!("BENCH_RUSTC_VERSION").is_empty() {
        versions["rustc"] = json!(env!("BENCH_RUSTC_VERSION"));
    }

    let rt = current_thread_runtime()?;
    eprintln!("generating {NUM_INPUTS} Connect-shaped inputs and checking correctness ...");
    let inputs = rt.block_on(make_inputs(&bench, args.payload_bytes))?;
    rt.block_on(check_once(&bench, &inputs))?;
    drop(rt);

    let mut rows = Vec::with_capacity(args.fan_outs.len());
    for &fan_out in &args.fan_outs {
        eprintln!(
            "running warm fan-out {fan_out} on {} threads ({} s warm-up + {} s) ...",
            args.threads, args.warmup, args.seconds
        );
        rows.push(run_config(&args, &bench, &inputs, fan_out)?);
    }

    print_table(&rows, args.threads, args.payload_bytes, &versions);
    let out = json!({
        "tool": "rust-esdk",
        "processes": args.threads,
        "payload_bytes": args.payload_bytes,
        "versions": versions,
        "results": rows,
    });
    let text = serde_json::to_string_pretty(&out).expect("serialising JSON") + "\n";
    std::fs::write(&args.json, text).map_err(|e| format!("{}: {e}", args.json.display()))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
