//! The encrypted data key's shape: what a message header carries for each
//! reader, how a key name sits inside its provider info, and how to show
//! either safely (header text is attacker-controlled).

use std::fmt;

/// An encrypted data key as it appears in a message header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EncryptedDataKey {
    pub provider_id: String,
    pub provider_info: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl EncryptedDataKey {
    pub fn summary(&self) -> EdkSummary {
        EdkSummary {
            provider_id: printable(self.provider_id.as_bytes()),
            key_name: printable(display_key_name(&self.provider_info)),
        }
    }
}

/// How a keyring family lays its key name out inside the EDK's provider info.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyNameLayout {
    /// Provider info is the key name (raw RSA; AWS KMS, where it is the key ARN).
    Whole,
    /// Raw AES: key name ‖ tag bits (u32 = 128) ‖ IV length (u32 = 12) ‖ IV.
    RawAes,
}

/// Size of the raw AES suffix after the key name in provider info.
pub const RAW_AES_INFO_SUFFIX: usize = 4 + 4 + 12;

impl KeyNameLayout {
    /// The key name the EDK addresses, if the provider info fits this layout.
    pub fn key_name<'a>(&self, provider_info: &'a [u8]) -> Option<&'a [u8]> {
        match self {
            KeyNameLayout::Whole => Some(provider_info),
            KeyNameLayout::RawAes => {
                let n = provider_info.len().checked_sub(RAW_AES_INFO_SUFFIX)?;
                let suffix = &provider_info[n..];
                (suffix[..4] == 128u32.to_be_bytes() && suffix[4..8] == 12u32.to_be_bytes())
                    .then_some(&provider_info[..n])
            }
        }
    }
}

/// Best-effort human name for an EDK's key: the raw-AES layout stripped when it fits.
fn display_key_name(info: &[u8]) -> &[u8] {
    KeyNameLayout::RawAes
        .key_name(info)
        .filter(|name| std::str::from_utf8(name).is_ok())
        .unwrap_or(info)
}

/// Attacker-controlled header text made safe for logs and error messages:
/// control characters escaped, length capped.
pub fn printable(bytes: &[u8]) -> String {
    const MAX: usize = 160;
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.chars().flat_map(char::escape_debug).collect::<String>(),
        Err(_) => format!("0x{}", hex::encode(bytes)),
    };
    if text.len() > MAX {
        let mut cut = MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &text[..cut])
    } else {
        text
    }
}

/// Provider id and key name of an EDK, safe to log and to put in error text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct EdkSummary {
    pub provider_id: String,
    pub key_name: String,
}

impl EdkSummary {
    pub fn list(edks: &[EdkSummary]) -> String {
        const SHOWN: usize = 8;
        let mut parts: Vec<String> = edks.iter().take(SHOWN).map(|e| e.to_string()).collect();
        if edks.len() > SHOWN {
            parts.push(format!("and {} more", edks.len() - SHOWN));
        }
        parts.join(", ")
    }
}

impl fmt::Display for EdkSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider `{}` key `{}`", self.provider_id, self.key_name)
    }
}
