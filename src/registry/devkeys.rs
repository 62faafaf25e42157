//! Development keys: created on first run for the embedded default config, in a
//! git-ignored folder, so `reseal serve` works on a fresh clone with no AWS
//! account and no private key is ever committed.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use time::{Duration, OffsetDateTime};

use super::model::{ConfigFile, ConsumerKeyKind, KeyRef, SourceKind};
use crate::keys::{cert, jwe_keys, raw_rsa};

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    std::fs::write(path, text)
}

fn write_public(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

/// `NAME.pub.pem` / `NAME.crt.pem` → `NAME.pem`, the private half beside it.
fn private_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("key.pem");
    let stem = name
        .strip_suffix(".pub.pem")
        .or_else(|| name.strip_suffix(".crt.pem"))
        .unwrap_or(name.trim_end_matches(".pem"));
    path.with_file_name(format!("{stem}.pem"))
}

/// Ensures an RSA private key exists at `path`; returns its PEM.
fn ensure_rsa_private(path: &Path, created: &mut Vec<PathBuf>) -> Result<String, String> {
    if path.exists() {
        return std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    }
    let (private, public) = raw_rsa::generate_pem(2048).map_err(|e| e.to_string())?;
    write_private(path, &private).map_err(|e| format!("{}: {e}", path.display()))?;
    created.push(path.to_owned());
    let pub_path = path.with_file_name(format!(
        "{}.pub.pem",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("key")
            .trim_end_matches(".pem")
    ));
    if !pub_path.exists() {
        write_public(&pub_path, &public).map_err(|e| format!("{}: {e}", pub_path.display()))?;
        created.push(pub_path);
    }
    Ok(private.to_string())
}

/// Creates every `file:` key the config references inside `dir` (relative to
/// `base_dir`) that does not exist yet. Returns the files created.
pub fn generate_missing_dev_keys(
    file: &ConfigFile,
    base_dir: &Path,
    dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    let root = base_dir.join(dir);
    let mut created = Vec::new();
    let missing = |r: &Option<KeyRef>| -> Option<PathBuf> {
        match r {
            Some(KeyRef::File(p)) => {
                let full = base_dir.join(p);
                (full.starts_with(&root) && !full.exists()).then_some(full)
            }
            _ => None,
        }
    };
    for spec in file.sources.values() {
        match spec.kind {
            SourceKind::RawRsa => {
                if let Some(path) = missing(&spec.private_key) {
                    ensure_rsa_private(&path, &mut created)?;
                }
            }
            SourceKind::RawAes => {
                if let Some(path) = missing(&spec.key) {
                    write_aes(&path, &mut created)?;
                }
            }
            _ => {}
        }
    }
    for consumer in file.consumers.values() {
        for key in consumer.keys.values() {
            match key.kind {
                ConsumerKeyKind::RsaPublic => {
                    if let Some(path) = missing(&key.public_key) {
                        let private = ensure_rsa_private(&private_sibling(&path), &mut created)?;
                        if !path.exists() {
                            let parsed = raw_rsa::parse_private_key_pem(private.as_bytes())
                                .map_err(|e| e.to_string())?;
                            let der = aws_lc_rs::encoding::AsDer::<
                                aws_lc_rs::encoding::PublicKeyX509Der,
                            >::as_der(&parsed.public_key())
                            .map_err(|_| "public key encoding".to_string())?;
                            let pem = crate::keys::pem::encode("PUBLIC KEY", der.as_ref());
                            write_public(&path, &pem)
                                .map_err(|e| format!("{}: {e}", path.display()))?;
                            created.push(path);
                        }
                    }
                }
                ConsumerKeyKind::X509 => {
                    if let Some(path) = missing(&key.certificate) {
                        let private = ensure_rsa_private(&private_sibling(&path), &mut created)?;
                        let now = OffsetDateTime::now_utc();
                        let name = path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .unwrap_or("reseal-dev");
                        let pem = cert::self_signed_rsa(
                            &private,
                            name,
                            now - Duration::days(1),
                            now + Duration::days(365),
                        )
                        .map_err(|e| e.to_string())?;
                        write_public(&path, &pem)
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                        created.push(path);
                    }
                }
                ConsumerKeyKind::RawAes => {
                    if let Some(path) = missing(&key.key) {
                        write_aes(&path, &mut created)?;
                    }
                }
                ConsumerKeyKind::EcPublic => {
                    // A new P-256 pair, unless a private key is already
                    // there (its public half is then the operator's to supply).
                    let private_path = missing(&key.public_key).map(|p| (private_sibling(&p), p));
                    if let Some((private_path, path)) =
                        private_path.filter(|(private, _)| !private.exists())
                    {
                        let (private, public) = jwe_keys::generate_ec_pem(crate::jwe::Curve::P256)
                            .map_err(|e| e.to_string())?;
                        write_private(&private_path, &private)
                            .map_err(|e| format!("{}: {e}", private_path.display()))?;
                        created.push(private_path);
                        write_public(&path, &public)
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                        created.push(path);
                    }
                }
                ConsumerKeyKind::AwsKms => {}
            }
        }
    }
    Ok(created)
}

fn write_aes(path: &Path, created: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| "random source failed".to_string())?;
    let text = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD.encode(key.as_ref()) + "\n",
    );
    write_private(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    created.push(path.to_owned());
    Ok(())
}
