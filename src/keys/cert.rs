//! X.509 certificates as consumer keys: the public key inside (RSA for ESDK
//! envelopes; RSA or EC for JWE ones), and the validity period that bounds its use.

use aws_lc_rs::rsa::PublicEncryptingKey;
use time::OffsetDateTime;
use x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

use super::{pem, raw_rsa, KeyError};

/// What an operator needs to know of a certificate a consumer key came from.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    pub subject: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// A certificate as a key: its DER (for `x5t#S256`), the DER
/// `SubjectPublicKeyInfo` inside, and what an operator needs to know of it.
pub struct Certificate {
    pub der: Vec<u8>,
    pub spki: Vec<u8>,
    pub info: CertificateInfo,
}

/// Parses the first `CERTIFICATE` in `pem_text`, whatever key it carries.
pub fn certificate(pem_text: &[u8]) -> Result<Certificate, KeyError> {
    let blocks = pem::parse_all(pem_text)?;
    let block = blocks
        .iter()
        .find(|b| b.label == "CERTIFICATE")
        .ok_or(KeyError::Pem("no `CERTIFICATE` block"))?;
    let (_, cert) = X509Certificate::from_der(&block.der)
        .map_err(|e| KeyError::Invalid(format!("not a valid X.509 certificate: {e}")))?;
    Ok(Certificate {
        der: block.der.to_vec(),
        spki: cert.public_key().raw.to_vec(),
        info: CertificateInfo {
            subject: cert.subject().to_string(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
        },
    })
}

/// Parses the first `CERTIFICATE` in `pem_text`; it must carry an RSA key.
pub fn rsa_certificate(
    pem_text: &[u8],
) -> Result<(PublicEncryptingKey, CertificateInfo), KeyError> {
    let cert = certificate(pem_text)?;
    let (_, spki) = SubjectPublicKeyInfo::from_der(&cert.spki)
        .map_err(|e| KeyError::Invalid(format!("not a valid X.509 certificate: {e}")))?;
    if spki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
        return Err(KeyError::Invalid(format!(
            "certificate key is not RSA (algorithm {})",
            spki.algorithm.algorithm
        )));
    }
    let key = raw_rsa::parse_public_key_der(&cert.spki)?;
    Ok((key, cert.info))
}

/// A self-signed certificate for an RSA key (development keys, demos, tests).
pub fn self_signed_rsa(
    private_pem: &str,
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<String, KeyError> {
    let key = rcgen::KeyPair::from_pem_and_sign_algo(private_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| KeyError::Invalid(format!("RSA key unusable for a certificate: {e}")))?;
    let mut params = rcgen::CertificateParams::new(vec![common_name.to_owned()])
        .map_err(|e| KeyError::Invalid(format!("certificate parameters: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params
        .self_signed(&key)
        .map_err(|e| KeyError::Invalid(format!("certificate signing: {e}")))?;
    Ok(cert.pem())
}
