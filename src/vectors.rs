//! The ESDK test-vector framework: run `awses-decrypt` manifests and turn
//! `awses-encrypt` manifests into `awses-decrypt` ones that any other ESDK can check.
//!
//! Formats: keys manifest (v1–v3), decrypt manifests v1–v4 (v4 adds `cmm` and
//! the reproduced `encryption-context`), encrypt manifests v1–v2. Only raw
//! master keys can be exercised offline; tests that need AWS KMS (or another
//! key type we do not hold) are counted as skipped, never as passed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::esdk::{
    self, AlgorithmSuite, DecryptCommitment, DecryptPolicy, EncryptCommitment, EncryptOptions,
    EncryptionContext, IdentitySet, Limits, Recipient, SignedPolicy,
};
use crate::keys::{RawAesKeyring, RawRsaKeyring, RsaPadding};

/// A manifest could not be read at all (as opposed to a test failing).
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("manifest: {0}")]
    Manifest(String),
}

/// Outcome of one manifest run.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// `(test name, reason)` for every failure, in manifest order.
    pub failures: Vec<(String, String)>,
    /// `(test name, reason)` for every skip.
    pub skips: Vec<(String, String)>,
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }

    fn fail(&mut self, name: &str, reason: impl Into<String>) {
        self.failed += 1;
        self.failures.push((name.to_owned(), reason.into()));
    }

    fn skip(&mut self, name: &str, reason: impl Into<String>) {
        self.skipped += 1;
        self.skips.push((name.to_owned(), reason.into()));
    }
}

fn read(path: &Path) -> Result<Vec<u8>, VectorError> {
    fs::read(path).map_err(|source| VectorError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_json(path: &Path) -> Result<Value, VectorError> {
    let bytes = read(path)?;
    serde_json::from_slice(&bytes).map_err(|source| VectorError::Json {
        path: path.to_owned(),
        source,
    })
}

/// Resolves a manifest URI (`file://relative/or/absolute`) against the manifest's folder.
fn resolve(base: &Path, uri: &str) -> Result<PathBuf, VectorError> {
    let path = uri.strip_prefix("file://").ok_or_else(|| {
        VectorError::Manifest(format!(
            "unsupported URI `{uri}` (only file:// is supported)"
        ))
    })?;
    Ok(base.join(path))
}

fn manifest_type(manifest: &Value) -> (String, u64) {
    let m = &manifest["manifest"];
    (
        m["type"].as_str().unwrap_or_default().to_owned(),
        m["version"].as_u64().unwrap_or(0),
    )
}

/// One entry of a keys manifest.
#[derive(Clone)]
struct KeySpec {
    kind: String,
    key_id: String,
    algorithm: String,
    material: Option<Zeroizing<String>>,
}

struct Keys {
    keys: BTreeMap<String, KeySpec>,
    raw: Value,
}

impl Keys {
    fn load(path: &Path) -> Result<Self, VectorError> {
        let raw = read_json(path)?;
        let (ty, _) = manifest_type(&raw);
        if ty != "keys" {
            return Err(VectorError::Manifest(format!(
                "{} is not a keys manifest",
                path.display()
            )));
        }
        let mut keys = BTreeMap::new();
        let entries = raw["keys"]
            .as_object()
            .ok_or_else(|| VectorError::Manifest("keys manifest has no `keys` object".into()))?;
        for (name, spec) in entries {
            let material = match &spec["material"] {
                Value::String(s) => Some(Zeroizing::new(s.clone())),
                // Older manifests split PEM material into a list of lines.
                Value::Array(lines) => Some(Zeroizing::new(
                    lines
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(""),
                )),
                _ => None,
            };
            keys.insert(
                name.clone(),
                KeySpec {
                    kind: spec["type"].as_str().unwrap_or_default().to_owned(),
                    key_id: spec["key-id"].as_str().unwrap_or(name).to_owned(),
                    algorithm: spec["algorithm"].as_str().unwrap_or_default().to_owned(),
                    material,
                },
            );
        }
        Ok(Keys { keys, raw })
    }
}

/// A master key description turned into keyrings we can run, or the reason we cannot.
enum Loaded {
    Rsa(RawRsaKeyring),
    Aes(RawAesKeyring),
    /// A key type that needs something we do not have offline (AWS KMS, ECDH...).
    Unsupported(String),
}

fn load_master_key(spec: &Value, keys: &Keys) -> Result<Loaded, String> {
    let ty = spec["type"].as_str().unwrap_or_default();
    if ty != "raw" {
        return Ok(Loaded::Unsupported(format!("master key type `{ty}`")));
    }
    let key_name = spec["key"].as_str().ok_or("raw master key without `key`")?;
    let key = keys
        .keys
        .get(key_name)
        .ok_or_else(|| format!("key `{key_name}` is not in the keys manifest"))?;
    let provider_id = spec["provider-id"]
        .as_str()
        .ok_or("raw master key without `provider-id`")?;
    let material = key
        .material
        .as_ref()
        .ok_or_else(|| format!("key `{key_name}` has no material"))?;
    match spec["encryption-algorithm"]
        .as_str()
        .unwrap_or(&key.algorithm)
    {
        "aes" => {
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(material.as_bytes())
                    .map_err(|_| format!("key `{key_name}`: material is not base64"))?,
            );
            RawAesKeyring::new(provider_id, &key.key_id, &bytes)
                .map(Loaded::Aes)
                .map_err(|e| format!("key `{key_name}`: {e}"))
        }
        "rsa" => {
            let padding = RsaPadding::parse(
                spec["padding-algorithm"].as_str().unwrap_or_default(),
                spec["padding-hash"].as_str(),
            )
            .ok_or_else(|| format!("key `{key_name}`: unsupported RSA padding"))?;
            let keyring = if key.kind == "private" {
                RawRsaKeyring::from_private_pem(
                    provider_id,
                    &key.key_id,
                    padding,
                    material.as_bytes(),
                )
            } else {
                RawRsaKeyring::from_public_pem(
                    provider_id,
                    &key.key_id,
                    padding,
                    material.as_bytes(),
                )
            };
            keyring
                .map(Loaded::Rsa)
                .map_err(|e| format!("key `{key_name}`: {e}"))
        }
        other => Ok(Loaded::Unsupported(format!("raw `{other}` keys"))),
    }
}

fn context_of(value: &Value) -> Option<EncryptionContext> {
    let obj = value.as_object()?;
    Some(
        obj.iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect(),
    )
}

/// Options for a decrypt run.
#[derive(Clone, Debug)]
pub struct DecryptRunOptions {
    /// Limits applied to every message. Defaults to the widest the format allows,
    /// as the reference ESDKs use for conformance.
    pub limits: Limits,
}

impl Default for DecryptRunOptions {
    fn default() -> Self {
        DecryptRunOptions {
            limits: Limits::unbounded(),
        }
    }
}

/// Runs every test of an `awses-decrypt` manifest.
pub fn run_decrypt_manifest(
    manifest_path: &Path,
    options: &DecryptRunOptions,
) -> Result<Report, VectorError> {
    let manifest = read_json(manifest_path)?;
    let base = manifest_path.parent().unwrap_or(Path::new(".")).to_owned();
    let (ty, version) = manifest_type(&manifest);
    if ty != "awses-decrypt" {
        return Err(VectorError::Manifest(format!(
            "expected an `awses-decrypt` manifest, found `{ty}`"
        )));
    }
    if !(1..=4).contains(&version) {
        return Err(VectorError::Manifest(format!(
            "awses-decrypt version {version} is not supported (1 to 4 are)"
        )));
    }
    let keys_uri = manifest["keys"]
        .as_str()
        .ok_or_else(|| VectorError::Manifest("manifest has no `keys`".into()))?;
    let keys = Keys::load(&resolve(&base, keys_uri)?)?;
    let tests = manifest["tests"]
        .as_object()
        .ok_or_else(|| VectorError::Manifest("manifest has no `tests` object".into()))?;

    let mut report = Report::default();
    for (name, test) in tests {
        run_decrypt_test(name, test, &base, &keys, options, &mut report);
    }
    Ok(report)
}

fn run_decrypt_test(
    name: &str,
    test: &Value,
    base: &Path,
    keys: &Keys,
    options: &DecryptRunOptions,
    report: &mut Report,
) {
    let load = |uri: &Value| -> Result<Vec<u8>, String> {
        let uri = uri.as_str().ok_or("missing URI")?;
        let path = resolve(base, uri).map_err(|e| e.to_string())?;
        fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    // Expected outcome: v1 puts `plaintext` on the test; v2+ use `result`.
    let expected: Result<Option<Vec<u8>>, String> = if let Some(result) = test.get("result") {
        if let Some(output) = result.get("output") {
            load(&output["plaintext"]).map(Some)
        } else if result.get("error").is_some() {
            Ok(None)
        } else {
            Err("`result` has neither `output` nor `error`".into())
        }
    } else if let Some(pt) = test.get("plaintext") {
        load(pt).map(Some)
    } else {
        Err("test has no expected result".into())
    };
    let expected = match expected {
        Ok(e) => e,
        Err(e) => return report.fail(name, e),
    };
    let ciphertext = match load(&test["ciphertext"]) {
        Ok(c) => c,
        Err(e) => return report.fail(name, e),
    };

    let mut identities = IdentitySet::new();
    let mut unsupported = Vec::new();
    let mut key_error = None;
    for spec in test["master-keys"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        match load_master_key(spec, keys) {
            Ok(Loaded::Rsa(k)) if k.has_private_key() => identities.insert(Arc::new(k)),
            Ok(Loaded::Rsa(_)) => {} // public half only: cannot decrypt, like the reference runners
            Ok(Loaded::Aes(k)) => identities.insert(Arc::new(k)),
            Ok(Loaded::Unsupported(why)) => unsupported.push(why),
            Err(e) => key_error = Some(e),
        }
    }
    if identities.is_empty() && !unsupported.is_empty() && key_error.is_none() {
        return report.skip(name, format!("needs {}", unsupported.join(", ")));
    }

    let policy = DecryptPolicy {
        commitment: DecryptCommitment::Allow,
        allowed_suites: None,
        signed: if test["decryption-method"].as_str() == Some("streaming-unsigned-only") {
            SignedPolicy::Forbid
        } else {
            SignedPolicy::Allow
        },
        limits: options.limits.clone(),
    };
    // The v4 `encryption-context` is the reproduced context handed to decrypt.
    let reproduced = test.get("encryption-context").and_then(context_of);
    let outcome = match &key_error {
        Some(e) => Err(format!("key could not be loaded: {e}")),
        None => esdk::decrypt(&ciphertext, &identities, &policy, reproduced.as_ref())
            .map_err(|e| e.to_string()),
    };
    match (expected, outcome) {
        (Some(want), Ok(got)) if got.plaintext.as_bytes() == want.as_slice() => report.passed += 1,
        (Some(_), Ok(_)) => report.fail(
            name,
            "decrypted, but the plaintext differs from the expected one",
        ),
        (Some(_), Err(e)) if !unsupported.is_empty() => report.skip(
            name,
            format!(
                "not decryptable with raw keys alone ({e}); needs {}",
                unsupported.join(", ")
            ),
        ),
        (Some(_), Err(e)) => report.fail(name, e),
        (None, Err(_)) => report.passed += 1,
        (None, Ok(_)) => report.fail(
            name,
            format!(
                "decrypted, but the manifest expects an error ({})",
                test["result"]["error"]["error-description"]
                    .as_str()
                    .unwrap_or("no description")
            ),
        ),
    }
}

/// Runs an `awses-encrypt` manifest and writes an `awses-decrypt` manifest,
/// its keys manifest, plaintexts and ciphertexts into `out_dir`.
pub fn run_encrypt_manifest(manifest_path: &Path, out_dir: &Path) -> Result<Report, VectorError> {
    let manifest = read_json(manifest_path)?;
    let base = manifest_path.parent().unwrap_or(Path::new(".")).to_owned();
    let (ty, version) = manifest_type(&manifest);
    if ty != "awses-encrypt" {
        return Err(VectorError::Manifest(format!(
            "expected an `awses-encrypt` manifest, found `{ty}`"
        )));
    }
    if !(1..=2).contains(&version) {
        return Err(VectorError::Manifest(format!(
            "awses-encrypt version {version} is not supported (1 and 2 are)"
        )));
    }
    let keys_uri = manifest["keys"]
        .as_str()
        .ok_or_else(|| VectorError::Manifest("manifest has no `keys`".into()))?;
    let keys = Keys::load(&resolve(&base, keys_uri)?)?;

    let io = |path: &Path, e: std::io::Error| VectorError::Io {
        path: path.to_owned(),
        source: e,
    };
    for sub in ["plaintexts", "ciphertexts"] {
        let dir = out_dir.join(sub);
        fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    let write = |rel: &str, bytes: &[u8]| -> Result<(), VectorError> {
        let path = out_dir.join(rel);
        fs::write(&path, bytes).map_err(|e| io(&path, e))
    };

    let mut plaintexts = BTreeMap::new();
    for (pname, size) in manifest["plaintexts"].as_object().into_iter().flatten() {
        let size = size.as_u64().ok_or_else(|| {
            VectorError::Manifest(format!("plaintext `{pname}` size is not a number"))
        })?;
        let mut bytes = vec![0u8; size as usize];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| VectorError::Manifest("random source failed".into()))?;
        write(&format!("plaintexts/{pname}"), &bytes)?;
        plaintexts.insert(pname.clone(), bytes);
    }
    write(
        "keys.json",
        serde_json::to_string_pretty(&keys.raw)
            .unwrap_or_default()
            .as_bytes(),
    )?;

    let mut report = Report::default();
    let mut out_tests = Map::new();
    let mut needs_v4 = false;
    for (name, test) in manifest["tests"].as_object().into_iter().flatten() {
        match encrypt_one(test, &keys, &plaintexts) {
            Ok(Written::Skipped(why)) => report.skip(name, why),
            Ok(Written::Message {
                ciphertext,
                required,
            }) => {
                write(&format!("ciphertexts/{name}"), &ciphertext)?;
                let mut entry = Map::new();
                entry.insert(
                    "ciphertext".into(),
                    json!(format!("file://ciphertexts/{name}")),
                );
                entry.insert("master-keys".into(), test["master-keys"].clone());
                entry.insert(
                    "result".into(),
                    json!({"output": {"plaintext": format!("file://plaintexts/{}", test["plaintext"].as_str().unwrap_or_default())}}),
                );
                if let Some(desc) = test.get("description") {
                    entry.insert("description".into(), desc.clone());
                }
                if required {
                    needs_v4 = true;
                    entry.insert("cmm".into(), json!("RequiredEncryptionContext"));
                    entry.insert(
                        "encryption-context".into(),
                        test["encryption-context"].clone(),
                    );
                }
                out_tests.insert(name.clone(), Value::Object(entry));
                report.passed += 1;
            }
            Err(e) => report.fail(name, e),
        }
    }
    let out = json!({
        "manifest": {"type": "awses-decrypt", "version": if needs_v4 { 4 } else { 2 }},
        "client": {"name": "reseal", "version": env!("CARGO_PKG_VERSION")},
        "keys": "file://keys.json",
        "tests": out_tests,
    });
    write(
        "manifest.json",
        serde_json::to_string_pretty(&out)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(report)
}

enum Written {
    Message { ciphertext: Vec<u8>, required: bool },
    Skipped(String),
}

fn encrypt_one(
    test: &Value,
    keys: &Keys,
    plaintexts: &BTreeMap<String, Vec<u8>>,
) -> Result<Written, String> {
    let pname = test["plaintext"]
        .as_str()
        .ok_or("test has no `plaintext`")?;
    let plaintext = plaintexts
        .get(pname)
        .ok_or_else(|| format!("plaintext `{pname}` is not defined"))?;
    let suite_text = test["algorithm"]
        .as_str()
        .ok_or("test has no `algorithm`")?;
    let suite = AlgorithmSuite::parse(suite_text)
        .ok_or_else(|| format!("unknown algorithm `{suite_text}`"))?;
    let frame_length = test["frame-size"]
        .as_u64()
        .ok_or("test has no `frame-size`")?;
    let frame_length =
        u32::try_from(frame_length).map_err(|_| "frame-size does not fit in 32 bits")?;
    let context = context_of(&test["encryption-context"]).unwrap_or_default();

    let mut recipients: Vec<Box<dyn Recipient>> = Vec::new();
    for spec in test["master-keys"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        match load_master_key(spec, keys)? {
            Loaded::Rsa(k) => recipients.push(Box::new(k)),
            Loaded::Aes(k) => recipients.push(Box::new(k)),
            Loaded::Unsupported(why) => return Ok(Written::Skipped(format!("needs {why}"))),
        }
    }
    if recipients.is_empty() {
        return Err("test has no master keys".into());
    }
    let required: Vec<String> = match (
        test.get("required-encryption-context-keys"),
        test["cmm"].as_str(),
    ) {
        (Some(list), _) => list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        (None, Some("RequiredEncryptionContext")) => context.keys().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let options = EncryptOptions {
        suite,
        frame_length,
        commitment: EncryptCommitment::for_suite(suite),
        max_encrypted_data_keys: u16::MAX as usize,
    };
    let mut materials =
        esdk::EncryptionMaterials::generate(options.suite, context).map_err(|e| e.to_string())?;
    materials
        .require_keys(required.iter().map(String::as_str))
        .map_err(|e| e.to_string())?;
    for r in &recipients {
        materials.wrap_for(r.as_ref()).map_err(|e| e.to_string())?;
    }
    let ciphertext =
        esdk::seal(plaintext, &materials, options.frame_length).map_err(|e| e.to_string())?;
    Ok(Written::Message {
        ciphertext,
        required: !required.is_empty(),
    })
}
