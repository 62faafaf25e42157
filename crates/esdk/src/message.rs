//! A whole message: header, body (framed or not) and footer, parsed structurally
//! before any key is touched, then opened with a data key.
//!
//! Parsing first means truncation, reordering, trailing bytes and limit
//! violations are refused without a single decryption (or KMS call), and no
//! plaintext is released until every tag and the signature have verified.

use std::ops::Range;

use zeroize::Zeroizing;

use super::codec::Reader;
use super::context::{EncryptionContext, PUBLIC_KEY_FIELD};
use super::crypto::{
    body_aad, derive_keys, verify_commitment, AAD_FINAL_FRAME, AAD_FRAME, AAD_SINGLE_BLOCK,
};
use super::error::{AuthenticationError, ContextError, Error, FormatError, LimitError};
use super::header::{ContentType, Header};
use super::keyring::{DataKey, KeyringContext};
use super::limits::Limits;
use super::plaintext::Plaintext;
use super::signature::VerificationKey;
use super::suite::{FormatVersion, IV_LEN, TAG_LEN};

/// Largest non-framed content the format allows (2^36 - 32 bytes).
const MAX_NON_FRAMED_LEN: u64 = (1 << 36) - 32;
/// Marks the final frame.
const FINAL_FRAME_MARKER: u32 = 0xFFFF_FFFF;

/// Where one encrypted unit of the body (a frame, or the whole non-framed
/// body) sits in the message: offsets of IV, ciphertext and tag.
#[derive(Clone, Debug)]
struct Segment {
    sequence: u32,
    is_final: bool,
    iv: usize,
    ciphertext: Range<usize>,
    tag: usize,
}

/// A structurally valid message. Generic over how the bytes are held, so the
/// broker can move an owned message between tasks and tests can borrow.
#[derive(Debug)]
pub struct Message<B: AsRef<[u8]>> {
    bytes: B,
    pub header: Header,
    header_body_len: usize,
    header_len: usize,
    segments: Vec<Segment>,
    plaintext_len: usize,
    /// Bytes covered by the signature (header and body); the footer follows.
    signed_len: usize,
    signature: Option<Range<usize>>,
}

/// The decryption-side materials derived from the header and the caller's
/// expectations: the full encryption context, the keys that were required but
/// not stored, and the verification key of a signed message.
pub struct DecryptionContext {
    pub encryption_context: EncryptionContext,
    pub required_keys: Vec<String>,
    verification_key: Option<VerificationKey>,
}

impl DecryptionContext {
    pub fn keyring_context<'a>(&'a self, header: &Header) -> KeyringContext<'a> {
        KeyringContext {
            suite: header.suite,
            encryption_context: &self.encryption_context,
        }
    }
}

impl<B: AsRef<[u8]>> Message<B> {
    /// Parses the whole message. Fails on any structural problem or limit.
    pub fn parse(input: B, limits: &Limits) -> Result<Self, Error> {
        let bytes = input.as_ref();
        let parsed = Header::parse(bytes, limits)?;
        let header = parsed.header;
        let rest = &bytes[parsed.total_len..];
        if rest.len() > limits.max_body_bytes {
            return Err(LimitError::BodyTooLarge {
                max: limits.max_body_bytes,
            }
            .into());
        }
        let mut r = Reader::new(bytes);
        r.take(parsed.total_len, "header")?;
        let mut segments = Vec::new();
        let mut plaintext_len = 0usize;
        match header.content_type {
            ContentType::NonFramed => {
                let iv = r.position();
                r.take(IV_LEN, "body iv")?;
                let len = r.u64("body content length")?;
                if len > MAX_NON_FRAMED_LEN {
                    return Err(FormatError::Invalid {
                        field: "body content length",
                        reason: "exceeds 2^36 - 32 bytes",
                    }
                    .into());
                }
                let len = usize::try_from(len).map_err(|_| FormatError::Truncated {
                    field: "body content",
                    offset: r.position(),
                })?;
                let start = r.position();
                r.take(len, "body content")?;
                let ciphertext = start..start + len;
                let tag = r.position();
                r.take(TAG_LEN, "body tag")?;
                plaintext_len = len;
                segments.push(Segment {
                    sequence: 1,
                    is_final: true,
                    iv,
                    ciphertext,
                    tag,
                });
            }
            ContentType::Framed => {
                let frame_len = header.frame_length as usize;
                let mut expected: u32 = 1;
                loop {
                    if segments.len() >= limits.max_frames {
                        return Err(LimitError::TooManyFrames {
                            max: limits.max_frames,
                        }
                        .into());
                    }
                    let marker = r.u32("frame sequence number")?;
                    let is_final = marker == FINAL_FRAME_MARKER;
                    let sequence = if is_final {
                        r.u32("final frame sequence number")?
                    } else {
                        marker
                    };
                    if sequence != expected {
                        return Err(FormatError::Invalid {
                            field: "frame sequence number",
                            reason: "frames are missing, duplicated or out of order",
                        }
                        .into());
                    }
                    let iv = r.position();
                    r.take(IV_LEN, "frame iv")?;
                    let len = if is_final {
                        let len = r.u32("final frame content length")? as usize;
                        if len > frame_len {
                            return Err(FormatError::Invalid {
                                field: "final frame content length",
                                reason: "exceeds the frame length",
                            }
                            .into());
                        }
                        len
                    } else {
                        frame_len
                    };
                    let start = r.position();
                    r.take(len, "frame content")?;
                    let ciphertext = start..start + len;
                    let tag = r.position();
                    r.take(TAG_LEN, "frame tag")?;
                    plaintext_len += len;
                    segments.push(Segment {
                        sequence,
                        is_final,
                        iv,
                        ciphertext,
                        tag,
                    });
                    if is_final {
                        break;
                    }
                    expected = expected
                        .checked_add(1)
                        .filter(|s| *s != FINAL_FRAME_MARKER)
                        .ok_or(FormatError::Invalid {
                            field: "frame sequence number",
                            reason: "too many frames",
                        })?;
                }
            }
        }
        let signed_len = r.position();
        let signature = if header.suite.is_signed() {
            let len = r.u16("footer signature")? as usize;
            let start = r.position();
            r.take(len, "footer signature")?;
            Some(start..start + len)
        } else {
            None
        };
        if !r.is_empty() {
            return Err(FormatError::TrailingBytes(r.remaining()).into());
        }
        Ok(Message {
            bytes: input,
            header,
            header_body_len: parsed.body_len,
            header_len: parsed.total_len,
            segments,
            plaintext_len,
            signed_len,
            signature,
        })
    }

    /// The message bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Length of the serialized header.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Number of frames (1 for non-framed bodies).
    pub fn frame_count(&self) -> usize {
        self.segments.len()
    }

    /// Length of the plaintext this message will yield.
    pub fn plaintext_len(&self) -> usize {
        self.plaintext_len
    }

    /// Applies the CMM rules: reserved public-key field against the suite, the
    /// caller's reproduced context (equal where both have a key; appended and
    /// header-authenticated where only the caller has it).
    pub fn decryption_context(
        &self,
        reproduced: Option<&EncryptionContext>,
    ) -> Result<DecryptionContext, Error> {
        let stored = &self.header.encryption_context;
        let verification_key = match (self.header.suite.signature(), stored.get(PUBLIC_KEY_FIELD)) {
            (Some(curve), Some(value)) => Some(VerificationKey::from_base64(curve, value)?),
            (Some(_), None) => return Err(ContextError::MissingVerificationKey.into()),
            (None, Some(_)) => return Err(ContextError::UnexpectedVerificationKey.into()),
            (None, None) => None,
        };
        let mut encryption_context = stored.clone();
        let mut required_keys = Vec::new();
        if let Some(reproduced) = reproduced {
            for (k, v) in reproduced.iter() {
                match stored.get(k) {
                    Some(existing) if existing == v => {}
                    Some(_) => return Err(ContextError::Mismatch { key: k.to_owned() }.into()),
                    None => {
                        encryption_context.insert(k, v);
                        required_keys.push(k.to_owned());
                    }
                }
            }
        }
        Ok(DecryptionContext {
            encryption_context,
            required_keys,
            verification_key,
        })
    }

    /// Verifies commitment and header, decrypts every segment, verifies the
    /// signature, and only then returns the plaintext.
    pub fn open(&self, data_key: &DataKey, ctx: &DecryptionContext) -> Result<Plaintext, Error> {
        let bytes = self.bytes.as_ref();
        let header = &self.header;
        let suite = header.suite;
        let (key, commitment) = derive_keys(suite, data_key, &header.message_id)?;
        if let Some(derived) = commitment {
            verify_commitment(&header.suite_data, &derived)?;
        }

        // AAD = header body ‖ required-only context (usually empty: no copy then).
        let header_body = &bytes[..self.header_body_len];
        let with_required;
        let aad: &[u8] = if ctx.required_keys.is_empty() {
            header_body
        } else {
            let mut v = header_body.to_vec();
            ctx.encryption_context
                .subset(ctx.required_keys.iter().map(String::as_str))
                .serialize_into(&mut v)?;
            with_required = v;
            &with_required
        };
        let zero_iv = [0u8; IV_LEN];
        let header_iv: &[u8] = match header.version {
            FormatVersion::V1 => &header.header_iv,
            FormatVersion::V2 => &zero_iv,
        };
        key.open_into(
            header_iv,
            aad,
            &[],
            &header.header_tag,
            &mut [],
            AuthenticationError::HeaderTag,
        )?;

        let mut plaintext = Zeroizing::new(vec![0u8; self.plaintext_len]);
        let mut offset = 0;
        for seg in &self.segments {
            let (content, fail) = match header.content_type {
                ContentType::NonFramed => (AAD_SINGLE_BLOCK, AuthenticationError::Body),
                ContentType::Framed if seg.is_final => (
                    AAD_FINAL_FRAME,
                    AuthenticationError::Frame {
                        sequence: seg.sequence,
                    },
                ),
                ContentType::Framed => (
                    AAD_FRAME,
                    AuthenticationError::Frame {
                        sequence: seg.sequence,
                    },
                ),
            };
            let len = seg.ciphertext.len();
            let aad = body_aad(&header.message_id, content, seg.sequence, len as u64);
            key.open_into(
                &bytes[seg.iv..seg.iv + IV_LEN],
                &aad,
                &bytes[seg.ciphertext.clone()],
                &bytes[seg.tag..seg.tag + TAG_LEN],
                &mut plaintext[offset..offset + len],
                fail,
            )?;
            offset += len;
        }

        if let (Some(vk), Some(sig)) = (&ctx.verification_key, &self.signature) {
            vk.verify(&bytes[..self.signed_len], &bytes[sig.clone()])?;
        }
        Ok(Plaintext::new(plaintext))
    }
}
