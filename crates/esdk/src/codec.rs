//! A bounded big-endian reader and a few writer helpers.
//!
//! Every read names the field it is reading, so a truncated or malformed message
//! produces an error that says *where* it broke, never a panic.

use super::error::FormatError;

/// Cursor over a byte slice. Reads never go past the end; they fail with
/// [`FormatError::Truncated`] naming the field.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(FormatError::Truncated {
                field,
                offset: self.pos,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FormatError> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, FormatError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, FormatError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, FormatError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, FormatError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A u16 length followed by that many bytes.
    pub fn u16_prefixed(&mut self, field: &'static str) -> Result<&'a [u8], FormatError> {
        let len = self.u16(field)? as usize;
        self.take(len, field)
    }
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes a u16 length prefix and the bytes; fails when they do not fit.
pub fn put_u16_prefixed(
    out: &mut Vec<u8>,
    bytes: &[u8],
    field: &'static str,
) -> Result<(), FormatError> {
    let len = u16::try_from(bytes.len()).map_err(|_| FormatError::TooLong {
        field,
        len: bytes.len(),
    })?;
    put_u16(out, len);
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_names_the_field() {
        let mut r = Reader::new(&[0x00, 0x05, 1, 2]);
        let err = r.u16_prefixed("thing").unwrap_err();
        assert_eq!(
            err,
            FormatError::Truncated {
                field: "thing",
                offset: 2
            }
        );
    }

    #[test]
    fn reads_big_endian() {
        let mut r = Reader::new(&[0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(r.u16("a").unwrap(), 1);
        assert_eq!(r.u32("b").unwrap(), 2);
        assert_eq!(r.u64("c").unwrap(), 3);
        assert!(r.is_empty());
    }
}
