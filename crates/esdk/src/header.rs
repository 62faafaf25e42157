//! Message header: parse and serialize, formats v1 and v2.

use super::codec::{put_u16, put_u16_prefixed, put_u32, Reader};
use super::context::EncryptionContext;
use super::edk::EncryptedDataKey;
use super::error::{Error, FormatError, LimitError};
use super::limits::Limits;
use super::suite::{AlgorithmSuite, FormatVersion, IV_LEN, TAG_LEN};

/// Type byte of a v1 header: "customer authenticated encrypted data".
const TYPE_CUSTOMER_AED: u8 = 0x80;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    NonFramed,
    Framed,
}

impl ContentType {
    pub fn byte(self) -> u8 {
        match self {
            ContentType::NonFramed => 0x01,
            ContentType::Framed => 0x02,
        }
    }
}

/// A parsed (or to-be-serialized) message header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: FormatVersion,
    pub suite: AlgorithmSuite,
    pub message_id: Vec<u8>,
    pub encryption_context: EncryptionContext,
    pub encrypted_data_keys: Vec<EncryptedDataKey>,
    pub content_type: ContentType,
    pub frame_length: u32,
    /// v2 only: the key commitment.
    pub suite_data: Vec<u8>,
    /// v1 only: the header IV (always zero when written by an ESDK).
    pub header_iv: Vec<u8>,
    pub header_tag: [u8; TAG_LEN],
}

/// A header together with where its pieces sit in the input.
#[derive(Clone, Debug)]
pub struct ParsedHeader {
    pub header: Header,
    /// Length of the header body (the header-auth AAD prefix).
    pub body_len: usize,
    /// Total header length including the header authentication.
    pub total_len: usize,
}

impl Header {
    /// Parses a header from the start of `bytes`. Trailing bytes (the body) are left alone.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<ParsedHeader, Error> {
        // Bound the work: a header never needs to look past `max_header_bytes`.
        let window = &bytes[..bytes.len().min(limits.max_header_bytes)];
        let mut r = Reader::new(window);
        let truncated_by_limit = window.len() < bytes.len();
        let limit_err = |e: FormatError| -> Error {
            if truncated_by_limit && matches!(e, FormatError::Truncated { .. }) {
                LimitError::HeaderTooLarge {
                    max: limits.max_header_bytes,
                }
                .into()
            } else {
                e.into()
            }
        };
        Self::parse_inner(&mut r, limits).map_err(|e| match e {
            Error::Format(f) => limit_err(f),
            other => other,
        })
    }

    fn parse_inner(r: &mut Reader<'_>, limits: &Limits) -> Result<ParsedHeader, Error> {
        let version_byte = r.u8("version")?;
        let version = match version_byte {
            0x01 => FormatVersion::V1,
            0x02 => FormatVersion::V2,
            other => return Err(FormatError::UnsupportedVersion(other).into()),
        };
        if version == FormatVersion::V1 {
            let ty = r.u8("type")?;
            if ty != TYPE_CUSTOMER_AED {
                return Err(FormatError::UnsupportedType(ty).into());
            }
        }
        let suite_id = r.u16("algorithm suite id")?;
        let suite = AlgorithmSuite::from_id(suite_id).ok_or(FormatError::UnknownSuite(suite_id))?;
        if suite.format_version() != version {
            return Err(FormatError::SuiteVersionMismatch {
                suite: suite_id,
                version: version_byte,
            }
            .into());
        }
        let message_id = r.take(version.message_id_len(), "message id")?.to_vec();

        let ec_bytes = r.u16_prefixed("encryption context")?;
        if ec_bytes.len() > limits.max_encryption_context_bytes {
            return Err(LimitError::EncryptionContextTooLarge {
                len: ec_bytes.len(),
                max: limits.max_encryption_context_bytes,
            }
            .into());
        }
        let encryption_context = EncryptionContext::parse(ec_bytes)?;

        let edk_count = r.u16("encrypted data key count")? as usize;
        if edk_count == 0 {
            return Err(FormatError::Invalid {
                field: "encrypted data key count",
                reason: "must be at least 1",
            }
            .into());
        }
        if edk_count > limits.max_encrypted_data_keys {
            return Err(LimitError::TooManyDataKeys {
                count: edk_count,
                max: limits.max_encrypted_data_keys,
            }
            .into());
        }
        let mut encrypted_data_keys = Vec::with_capacity(edk_count);
        for _ in 0..edk_count {
            let provider_id = r.u16_prefixed("key provider id")?;
            let provider_id =
                String::from_utf8(provider_id.to_vec()).map_err(|_| FormatError::Invalid {
                    field: "key provider id",
                    reason: "not valid UTF-8",
                })?;
            let provider_info = r.u16_prefixed("key provider info")?.to_vec();
            let ciphertext = r.u16_prefixed("encrypted data key")?.to_vec();
            encrypted_data_keys.push(EncryptedDataKey {
                provider_id,
                provider_info,
                ciphertext,
            });
        }

        let content_type = match r.u8("content type")? {
            0x01 => ContentType::NonFramed,
            0x02 => ContentType::Framed,
            _ => {
                return Err(FormatError::Invalid {
                    field: "content type",
                    reason: "must be 0x01 (non-framed) or 0x02 (framed)",
                }
                .into())
            }
        };
        if version == FormatVersion::V1 {
            if r.array::<4>("reserved")? != [0u8; 4] {
                return Err(FormatError::Invalid {
                    field: "reserved",
                    reason: "must be zero",
                }
                .into());
            }
            if r.u8("iv length")? as usize != IV_LEN {
                return Err(FormatError::Invalid {
                    field: "iv length",
                    reason: "must be 12 for every ESDK suite",
                }
                .into());
            }
        }
        let frame_length = r.u32("frame length")?;
        match content_type {
            ContentType::NonFramed if frame_length != 0 => {
                return Err(FormatError::Invalid {
                    field: "frame length",
                    reason: "must be 0 for non-framed content",
                }
                .into())
            }
            ContentType::Framed if frame_length == 0 => {
                return Err(FormatError::Invalid {
                    field: "frame length",
                    reason: "must be positive for framed content",
                }
                .into())
            }
            _ => {}
        }
        if frame_length > limits.max_frame_length {
            return Err(LimitError::FrameLengthTooLarge {
                len: frame_length,
                max: limits.max_frame_length,
            }
            .into());
        }
        let suite_data = if version == FormatVersion::V2 {
            r.take(suite.suite_data_len(), "algorithm suite data")?
                .to_vec()
        } else {
            Vec::new()
        };
        let body_len = r.position();
        let header_iv = if version == FormatVersion::V1 {
            r.take(IV_LEN, "header iv")?.to_vec()
        } else {
            Vec::new()
        };
        let header_tag = r.array::<TAG_LEN>("header authentication tag")?;
        Ok(ParsedHeader {
            header: Header {
                version,
                suite,
                message_id,
                encryption_context,
                encrypted_data_keys,
                content_type,
                frame_length,
                suite_data,
                header_iv,
                header_tag,
            },
            body_len,
            total_len: r.position(),
        })
    }

    /// The body's fields, borrowed, for writing.
    pub fn body(&self) -> HeaderBody<'_> {
        HeaderBody {
            version: self.version,
            suite: self.suite,
            message_id: &self.message_id,
            encryption_context: &self.encryption_context,
            encrypted_data_keys: &self.encrypted_data_keys,
            content_type: self.content_type,
            frame_length: self.frame_length,
            suite_data: &self.suite_data,
        }
    }
}

/// A header body to write, every field borrowed: sealing writes it straight
/// into the output message instead of copying the context and the encrypted
/// data keys into a [`Header`] first and serializing that into a buffer of its
/// own (eight allocations and three copies per envelope, more with a context).
#[derive(Clone, Copy, Debug)]
pub struct HeaderBody<'a> {
    pub version: FormatVersion,
    pub suite: AlgorithmSuite,
    pub message_id: &'a [u8],
    pub encryption_context: &'a EncryptionContext,
    pub encrypted_data_keys: &'a [EncryptedDataKey],
    pub content_type: ContentType,
    pub frame_length: u32,
    /// v2 only: the key commitment.
    pub suite_data: &'a [u8],
}

impl HeaderBody<'_> {
    /// Bytes [`HeaderBody::write`] appends, for sizing the output once.
    pub fn serialized_len(&self) -> usize {
        let v1 = self.version == FormatVersion::V1;
        let edks: usize = self
            .encrypted_data_keys
            .iter()
            .map(|e| 6 + e.provider_id.len() + e.provider_info.len() + e.ciphertext.len())
            .sum();
        1 + usize::from(v1)
            + 2
            + self.message_id.len()
            + 2
            + self.encryption_context.serialized_len()
            + 2
            + edks
            + 1
            + if v1 { 5 } else { 0 }
            + 4
            + if v1 { 0 } else { self.suite_data.len() }
    }

    /// Appends the serialized body (everything the header tag authenticates).
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.version.byte());
        if self.version == FormatVersion::V1 {
            out.push(TYPE_CUSTOMER_AED);
        }
        put_u16(out, self.suite.id());
        out.extend_from_slice(self.message_id);
        // The context's length prefix is patched in once the pairs are written.
        let at = out.len();
        put_u16(out, 0);
        self.encryption_context.serialize_into(out)?;
        let len = out.len() - at - 2;
        let len = u16::try_from(len).map_err(|_| FormatError::TooLong {
            field: "encryption context",
            len,
        })?;
        out[at..at + 2].copy_from_slice(&len.to_be_bytes());
        let count =
            u16::try_from(self.encrypted_data_keys.len()).map_err(|_| FormatError::TooLong {
                field: "encrypted data keys",
                len: self.encrypted_data_keys.len(),
            })?;
        put_u16(out, count);
        for edk in self.encrypted_data_keys {
            put_u16_prefixed(out, edk.provider_id.as_bytes(), "key provider id")?;
            put_u16_prefixed(out, &edk.provider_info, "key provider info")?;
            put_u16_prefixed(out, &edk.ciphertext, "encrypted data key")?;
        }
        out.push(self.content_type.byte());
        if self.version == FormatVersion::V1 {
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.push(IV_LEN as u8);
        }
        put_u32(out, self.frame_length);
        if self.version == FormatVersion::V2 {
            out.extend_from_slice(self.suite_data);
        }
        Ok(())
    }
}
