//! Decrypted plaintext: the one buffer that must never leak.

use std::fmt;

use zeroize::Zeroizing;

/// Decrypted plaintext. Zeroized on drop; `Debug` never shows it.
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Plaintext(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext([REDACTED; {}])", self.0.len())
    }
}

impl From<Vec<u8>> for Plaintext {
    fn from(bytes: Vec<u8>) -> Self {
        Plaintext(Zeroizing::new(bytes))
    }
}
