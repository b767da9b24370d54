//! Byte layout helpers for handshake messages: fixed fields and
//! length-prefixed fields, read with a bounds check on every step.

use crate::Reject;

/// Appends fields to a message.
#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// An empty message with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends bytes of a length both sides know.
    pub fn fixed(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// Appends a `u16` length and the bytes (at most 65,535).
    pub fn var(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(&bytes[..usize::from(len)]);
        self
    }

    /// The message so far.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The finished message.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads fields from a received message; every read fails with
/// [`Reject::Malformed`] instead of running past the end.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, a `what` message (named in errors).
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, at: 0, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Reject> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(Reject::Malformed(self.what));
        };
        let field = &self.bytes[self.at..end];
        self.at = end;
        Ok(field)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Reject> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Reject> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(buf))
    }

    /// Exactly `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Reject> {
        let mut buf = [0u8; N];
        buf.copy_from_slice(self.take(N)?);
        Ok(buf)
    }

    /// Exactly `n` bytes.
    pub fn fixed(&mut self, n: usize) -> Result<&'a [u8], Reject> {
        self.take(n)
    }

    /// A `u16`-length-prefixed field.
    pub fn var(&mut self) -> Result<&'a [u8], Reject> {
        let len = u16::from_be_bytes(self.array::<2>()?);
        self.take(usize::from(len))
    }

    /// Bytes read so far (for transcripts that stop before a signature).
    pub fn consumed(&self) -> &'a [u8] {
        &self.bytes[..self.at]
    }

    /// Fails unless every byte was read.
    pub fn end(&self) -> Result<(), Reject> {
        match self.at == self.bytes.len() {
            true => Ok(()),
            false => Err(Reject::Malformed(self.what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut w = Writer::default();
        w.u8(7).u64(42).fixed(&[1, 2, 3]).var(b"hello");
        let bytes = w.finish();
        let mut r = Reader::new(&bytes, "test");
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u64(), Ok(42));
        assert_eq!(r.array::<3>(), Ok([1, 2, 3]));
        assert_eq!(r.var(), Ok(&b"hello"[..]));
        assert_eq!(r.end(), Ok(()));
        for cut in 0..bytes.len() {
            let mut r = Reader::new(&bytes[..cut], "test");
            let all = (|| {
                r.u8()?;
                r.u64()?;
                r.array::<3>()?;
                r.var()?;
                r.end()
            })();
            assert_eq!(all, Err(Reject::Malformed("test")), "cut at {cut}");
        }
    }
}
