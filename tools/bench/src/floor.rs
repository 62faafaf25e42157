//! The crypto floor: the primitive work of one re-encryption, done directly
//! with aws-lc-rs on one thread, with nothing around it (no parsing, no
//! framing code, no allocation of outputs, no gRPC).
//!
//! Opening an Amazon Connect-shaped message (0x0378, format v1, one frame):
//! RSA-2048 OAEP-SHA512 decryption of the EDK, HKDF-SHA384, AES-256-GCM open
//! of the header tag and of the frame, ECDSA P-384 verification with the key
//! decompressed from the encryption context.
//!
//! Sealing one 0x0478 envelope (format v2, one RSA-2048 OAEP-SHA256 recipient,
//! one frame): random data key and message id, RSA-OAEP encryption, HKDF-SHA512
//! extract and two expands (content key, commitment), AES-256-GCM seal of the
//! header (as long as the real header) and of the frame.
//!
//! Sealing one JWE envelope (compact, one RSA-2048 recipient): a random CEK,
//! RSA-OAEP-256 (OAEP-SHA256, MGF1-SHA256) encryption of it, one AES-256-GCM
//! seal of the payload under a random IV with the base64url protected header
//! (as long as the real one) as AAD. Headers, JSON and base64url of the parts
//! are the JWE layer's own work, not the floor's.
//!
//! HKDF is done as the engine does it: one HMAC for the extract, one per output
//! (every output fits in one hash block), the PRK's HMAC key set up once.
//!
//! Inputs are real messages written by the engine, cut into their parts once.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, RandomizedNonceKey, UnboundKey, AES_256_GCM};
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    OAEP_SHA256_MGF1SHA256, OAEP_SHA512_MGF1SHA512,
};
use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_ASN1};
use base64::Engine as _;

use super::procfs;
use reseal::esdk::{self, AlgorithmSuite, EncryptOptions, EncryptionContext, Message};
use reseal::keys::{pem, raw_rsa, RawRsaKeyring, RsaPadding};

const FINAL_FRAME: &[u8] = b"AWSKMSEncryptionClient Final Frame";
const CONNECT_SUITE: AlgorithmSuite = AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384;
const ENVELOPE_SUITE: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;

/// Why the floor could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error("payload of {0} bytes: the floor models one frame, at most 4096 bytes")]
    PayloadTooLarge(usize),
    #[error("setting up the floor: {0}")]
    Setup(String),
}

fn setup<E: std::fmt::Display>(e: E) -> FloorError {
    FloorError::Setup(e.to_string())
}

/// One Connect-shaped input, cut into the parts the primitives need.
struct ConnectInput {
    edk: Vec<u8>,
    message_id: Vec<u8>,
    header_body: Vec<u8>,
    header_tag: Vec<u8>,
    frame_iv: Vec<u8>,
    frame_aad: Vec<u8>,
    frame_ct: Vec<u8>,
    frame_tag: Vec<u8>,
    signed: Vec<u8>,
    signature: Vec<u8>,
    public_key_b64: String,
}

/// Keys and inputs for the floor, built once.
pub struct FloorWork {
    connect_key: OaepPrivateDecryptingKey,
    inputs: Vec<ConnectInput>,
    consumers: Vec<OaepPublicEncryptingKey>,
    envelope_header_len: usize,
    /// Length of a JWE envelope's base64url protected header (the AAD).
    jwe_header_len: usize,
}

impl FloorWork {
    /// `consumers` distinct RSA-2048 consumer keys and 16 distinct inputs of
    /// `payload_len` bytes.
    pub fn new(consumers: usize, payload_len: usize) -> Result<Self, FloorError> {
        let (private_pem, public_pem) = raw_rsa::generate_pem(2048).map_err(setup)?;
        let mut publics = Vec::with_capacity(consumers);
        for _ in 0..consumers.max(1) {
            publics.push(raw_rsa::generate_pem(2048).map_err(setup)?.1);
        }
        Self::with_keys(
            private_pem.as_bytes(),
            public_pem.as_bytes(),
            &publics[..consumers.max(1)],
            consumers,
            payload_len,
        )
    }

    /// The keys `reseal-bench setup` wrote into `dir`: the same keys the server uses.
    pub fn from_setup_dir(
        dir: &std::path::Path,
        consumers: usize,
        payload_len: usize,
    ) -> Result<Self, FloorError> {
        let read = |p: std::path::PathBuf| {
            std::fs::read_to_string(&p).map_err(|e| setup(format!("{}: {e}", p.display())))
        };
        let private_pem = zeroize::Zeroizing::new(read(dir.join("connect.pem"))?);
        let public_pem = read(dir.join("connect.pub.pem"))?;
        let publics = (0..consumers.max(1))
            .map(|i| {
                read(
                    dir.join("consumers")
                        .join(format!("{}.pub.pem", super::setup::consumer(i))),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::with_keys(
            private_pem.as_bytes(),
            public_pem.as_bytes(),
            &publics,
            consumers,
            payload_len,
        )
    }

    fn with_keys(
        private_pem: &[u8],
        public_pem: &[u8],
        consumer_publics: &[String],
        consumers: usize,
        payload_len: usize,
    ) -> Result<Self, FloorError> {
        if payload_len > 4096 {
            return Err(FloorError::PayloadTooLarge(payload_len));
        }
        let der = pem::parse_all(private_pem).map_err(setup)?;
        let der = der.first().ok_or_else(|| setup("no key"))?;
        let connect_key = OaepPrivateDecryptingKey::new(
            PrivateDecryptingKey::from_pkcs8(&der.der).map_err(setup)?,
        )
        .map_err(setup)?;
        let sender = RawRsaKeyring::from_public_pem(
            "AmazonConnect",
            super::CONNECT_KEY_ID,
            RsaPadding::OaepSha512,
            public_pem,
        )
        .map_err(setup)?;
        let inputs = (0..16)
            .map(|i| {
                let plaintext = vec![b'0' + (i % 10) as u8; payload_len];
                let ct = super::connect_message(&sender, &plaintext).map_err(setup)?;
                cut_connect(&ct, payload_len)
            })
            .collect::<Result<Vec<_>, _>>()?;

        let mut keys = Vec::with_capacity(consumers);
        let mut envelope_header_len = 0;
        let mut jwe_header_len = 0;
        for public in consumer_publics {
            let parsed = raw_rsa::parse_public_key_pem(public.as_bytes()).map_err(setup)?;
            if envelope_header_len == 0 {
                // The real header of such an envelope, for the header tag's AAD length.
                let r = RawRsaKeyring::from_public_pem(
                    "reseal",
                    "c000-k1",
                    RsaPadding::OaepSha256,
                    public.as_bytes(),
                )
                .map_err(setup)?;
                let ct = esdk::encrypt(
                    &vec![0u8; payload_len],
                    &[&r],
                    &EncryptionContext::new(),
                    &EncryptOptions {
                        suite: ENVELOPE_SUITE,
                        frame_length: 4096,
                        ..Default::default()
                    },
                )
                .map_err(setup)?;
                let m = Message::parse(&ct[..], &Default::default()).map_err(setup)?;
                envelope_header_len = m.header_len() - 16;
                // A real JWE envelope of the set-up's consumers (no context
                // pairs configured: `reseal_context` is `{}`).
                let spki =
                    reseal::keys::jwe_keys::spki_from_pem(public.as_bytes()).map_err(setup)?;
                let r = reseal::jwe::Recipient::rsa_oaep_256("c000-k1", &spki).map_err(setup)?;
                let context = Default::default();
                let jwe = reseal::jwe::seal(
                    &vec![0u8; payload_len],
                    &[r],
                    &reseal::jwe::SealOptions {
                        context: Some(&context),
                        ..Default::default()
                    },
                )
                .map_err(setup)?;
                jwe_header_len = jwe.iter().position(|b| *b == b'.').unwrap_or(0);
            }
            keys.push(OaepPublicEncryptingKey::new(parsed).map_err(setup)?);
        }
        keys.truncate(consumers);
        Ok(FloorWork {
            connect_key,
            inputs,
            consumers: keys,
            envelope_header_len,
            jwe_header_len,
        })
    }

    /// Opens input `i % 16`: the decrypt half of the floor. Returns the plaintext.
    pub fn open_connect(&self, i: usize) -> Vec<u8> {
        let input = &self.inputs[i % self.inputs.len()];
        let mut buf = [0u8; 256];
        let dk = self
            .connect_key
            .decrypt(&OAEP_SHA512_MGF1SHA512, &input.edk, &mut buf, None)
            .expect("floor: RSA decrypt");
        let prk = extract(hmac::HMAC_SHA384, &[0u8; 48], dk);
        let mut key = [0u8; 32];
        expand(
            &prk,
            &[&CONNECT_SUITE.id_bytes(), &input.message_id],
            &mut key,
        );
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("floor: key"));
        aead.open_separate_gather(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::from(&input.header_body),
            &[],
            &input.header_tag,
            &mut [],
        )
        .expect("floor: header tag");
        let mut plaintext = vec![0u8; input.frame_ct.len()];
        aead.open_separate_gather(
            Nonce::try_assume_unique_for_key(&input.frame_iv).expect("floor: iv"),
            Aad::from(&input.frame_aad),
            &input.frame_ct,
            &input.frame_tag,
            &mut plaintext,
        )
        .expect("floor: frame");
        let point = base64::engine::general_purpose::STANDARD
            .decode(&input.public_key_b64)
            .expect("floor: public key");
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &point)
            .verify(&input.signed, &input.signature)
            .expect("floor: signature");
        plaintext
    }

    /// Seals `plaintext` for consumer `c`: the per-consumer half of the floor.
    pub fn seal_envelope(&self, c: usize, plaintext: &[u8]) {
        let mut data_key = [0u8; 32];
        let mut message_id = [0u8; 32];
        aws_lc_rs::rand::fill(&mut data_key).expect("floor: rand");
        aws_lc_rs::rand::fill(&mut message_id).expect("floor: rand");
        let mut edk = [0u8; 256];
        self.consumers[c]
            .encrypt(&OAEP_SHA256_MGF1SHA256, &data_key, &mut edk, None)
            .expect("floor: RSA encrypt");
        let prk = extract(hmac::HMAC_SHA512, &message_id, &data_key);
        let mut key = [0u8; 32];
        let mut commit = [0u8; 32];
        expand(&prk, &[&ENVELOPE_SUITE.id_bytes(), b"DERIVEKEY"], &mut key);
        expand(&prk, &[b"COMMITKEY"], &mut commit);
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("floor: key"));
        // The header body: stand-in bytes of the real length.
        let header = [0x5au8; 512];
        let header = &header[..self.envelope_header_len.min(512)];
        let t1 = aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0u8; 12]),
                Aad::from(header),
                &mut [],
            )
            .expect("floor: seal");
        let mut aad = [0u8; 32 + FINAL_FRAME.len() + 12];
        aad[..32].copy_from_slice(&message_id);
        aad[32..32 + FINAL_FRAME.len()].copy_from_slice(FINAL_FRAME);
        let mut body = [0u8; 4096];
        let body = &mut body[..plaintext.len()];
        body.copy_from_slice(plaintext);
        let t2 = aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0u8; 12]),
                Aad::from(&aad[..]),
                body,
            )
            .expect("floor: seal");
        let _ = black_box((edk, t1, t2, commit));
    }

    /// Seals `plaintext` as a JWE for consumer `c`: the per-consumer half of
    /// the floor for JWE consumers.
    pub fn seal_jwe(&self, c: usize, plaintext: &[u8]) {
        let mut cek = [0u8; 32];
        aws_lc_rs::rand::fill(&mut cek).expect("floor: rand");
        let mut encrypted_key = [0u8; 256];
        self.consumers[c]
            .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut encrypted_key, None)
            .expect("floor: RSA encrypt");
        let aead = RandomizedNonceKey::new(&AES_256_GCM, &cek).expect("floor: key");
        let header = [0x5au8; 512];
        let header = &header[..self.jwe_header_len.min(512)];
        let mut body = [0u8; 4096];
        let body = &mut body[..plaintext.len()];
        body.copy_from_slice(plaintext);
        let (nonce, tag) = aead
            .seal_in_place_separate_tag(Aad::from(header), body)
            .expect("floor: seal");
        let _ = black_box((encrypted_key, nonce, tag));
    }

    /// One whole re-encryption for JWE consumers: open input `i`, seal a JWE
    /// for the first `fan_out` consumers.
    pub fn reencrypt_jwe(&self, i: usize, fan_out: usize) {
        let plaintext = self.open_connect(i);
        for c in 0..fan_out {
            self.seal_jwe(c, &plaintext);
        }
        black_box(plaintext);
    }

    /// One whole re-encryption: open input `i`, seal for the first `fan_out` consumers.
    pub fn reencrypt(&self, i: usize, fan_out: usize) {
        let plaintext = self.open_connect(i);
        for c in 0..fan_out {
            self.seal_envelope(c, &plaintext);
        }
        black_box(plaintext);
    }

    pub fn consumers(&self) -> usize {
        self.consumers.len()
    }
}

/// A floor measurement: CPU time per operation on one thread.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FloorResult {
    pub what: String,
    pub fan_out: usize,
    pub iterations: u64,
    pub cpu_seconds: f64,
    pub us_per_op: f64,
    /// Operations per second of CPU: the most one core can do.
    pub ops_per_core_second: f64,
}

/// Runs `op` on this thread for `duration` (after a short warm-up), at most
/// `max_iterations` times, and divides the thread's CPU time by the count.
pub fn measure(
    what: &str,
    fan_out: usize,
    duration: Duration,
    max_iterations: u64,
    mut op: impl FnMut(u64),
) -> FloorResult {
    let warm = Instant::now();
    let mut i = 0u64;
    while warm.elapsed() < duration / 10 && i < max_iterations {
        op(i);
        i += 1;
    }
    let start = Instant::now();
    let cpu0 = procfs::thread_cpu();
    let mut n = 0u64;
    while n < max_iterations && (n % 8 != 0 || start.elapsed() < duration) {
        op(n);
        n += 1;
    }
    let cpu = (procfs::thread_cpu().saturating_sub(cpu0)).as_secs_f64();
    let cpu = if cpu > 0.0 {
        cpu
    } else {
        start.elapsed().as_secs_f64()
    };
    FloorResult {
        what: what.to_owned(),
        fan_out,
        iterations: n,
        cpu_seconds: cpu,
        us_per_op: cpu * 1e6 / n.max(1) as f64,
        ops_per_core_second: n as f64 / cpu,
    }
}

/// HKDF extract: the PRK as an HMAC key, ready for every expansion.
fn extract(alg: hmac::Algorithm, salt: &[u8], ikm: &[u8]) -> hmac::Key {
    hmac::Key::new(alg, hmac::sign(&hmac::Key::new(alg, salt), ikm).as_ref())
}

/// HKDF expand for at most one hash length: HMAC(PRK, info ‖ 0x01), cut to length.
fn expand(prk: &hmac::Key, info: &[&[u8]], out: &mut [u8]) {
    let mut ctx = hmac::Context::with_key(prk);
    for part in info {
        ctx.update(part);
    }
    ctx.update(&[1]);
    out.copy_from_slice(&ctx.sign().as_ref()[..out.len()]);
}

/// Cuts a one-frame 0x0378 message into the primitives' inputs.
fn cut_connect(ct: &[u8], payload_len: usize) -> Result<ConnectInput, FloorError> {
    let msg = Message::parse(ct, &Default::default()).map_err(setup)?;
    let header = &msg.header;
    let header_len = msg.header_len();
    // v1 header: body, IV (12), tag (16).
    let header_body = ct[..header_len - 12 - 16].to_vec();
    let header_tag = ct[header_len - 16..header_len].to_vec();
    // Final frame: marker (4), sequence (4), IV (12), length (4), content, tag (16).
    let frame = &ct[header_len..];
    let frame_iv = frame[8..20].to_vec();
    let frame_ct = frame[24..24 + payload_len].to_vec();
    let frame_tag = frame[24 + payload_len..40 + payload_len].to_vec();
    let signed_len = header_len + 40 + payload_len;
    let mut frame_aad = header.message_id.clone();
    frame_aad.extend_from_slice(FINAL_FRAME);
    frame_aad.extend_from_slice(&1u32.to_be_bytes());
    frame_aad.extend_from_slice(&(payload_len as u64).to_be_bytes());
    Ok(ConnectInput {
        edk: header.encrypted_data_keys[0].ciphertext.clone(),
        message_id: header.message_id.clone(),
        header_body,
        header_tag,
        frame_iv,
        frame_aad,
        frame_ct,
        frame_tag,
        signed: ct[..signed_len].to_vec(),
        signature: ct[signed_len + 2..].to_vec(),
        public_key_b64: header
            .encryption_context
            .get("aws-crypto-public-key")
            .ok_or_else(|| setup("no public key in the context"))?
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_work_is_the_real_work() {
        // The cut-out parts verify (the expects would panic otherwise) and the
        // plaintext comes back; an envelope seals for every consumer.
        let w = FloorWork::new(2, 16).unwrap();
        for i in 0..3 {
            let p = w.open_connect(i);
            assert_eq!(p.len(), 16);
        }
        w.reencrypt(0, 2);
        w.reencrypt_jwe(0, 2);
        assert!(w.jwe_header_len > 64, "{}", w.jwe_header_len);
        let r = measure("t", 2, Duration::from_millis(20), 5, |i| {
            w.reencrypt(i as usize, 2)
        });
        assert_eq!(r.iterations, 5);
        assert!(r.us_per_op > 0.0);
    }
}
