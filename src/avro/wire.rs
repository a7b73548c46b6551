//! Avro binary primitives over a byte slice: zig-zag varints, length-prefixed bytes and
//! strings. Every read is bounds-checked and reports truncation instead of inventing a
//! value (the apache-avro decoder turns end-of-input inside a string into `Null`).

use super::error::DecodeErrorKind;

/// A read position in one datum.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn truncated(what: &str, at: usize) -> DecodeErrorKind {
    DecodeErrorKind::Truncated(format!("input ends inside {what} at byte {at}"))
}

impl<'a> Cursor<'a> {
    /// Starts at the first byte of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Refuses unread bytes: the datum must be exactly what the writer schema describes.
    pub(crate) fn finish(&self) -> Result<(), DecodeErrorKind> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeErrorKind::TrailingBytes(n)),
        }
    }

    /// A zig-zag varint `long` (at most 10 bytes).
    #[inline]
    pub(crate) fn read_long(&mut self) -> Result<i64, DecodeErrorKind> {
        let start = self.pos;
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(truncated("a varint", start));
            };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(DecodeErrorKind::InvalidDatum(format!(
                    "varint at byte {start} overflows 64 bits"
                )));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    /// A zig-zag varint `int`: a long that must fit 32 bits.
    #[inline]
    pub(crate) fn read_int(&mut self) -> Result<i32, DecodeErrorKind> {
        let start = self.pos;
        let value = self.read_long()?;
        i32::try_from(value).map_err(|_| {
            DecodeErrorKind::InvalidDatum(format!("int at byte {start} out of 32-bit range"))
        })
    }

    /// A length (of bytes, string): non-negative and no longer than the input left.
    #[inline]
    pub(crate) fn read_len(&mut self) -> Result<usize, DecodeErrorKind> {
        let start = self.pos;
        let len = self.read_long()?;
        let len = usize::try_from(len).map_err(|_| {
            DecodeErrorKind::InvalidDatum(format!("negative length {len} at byte {start}"))
        })?;
        if len > self.remaining() {
            return Err(DecodeErrorKind::Truncated(format!(
                "length {len} at byte {start} exceeds the {} byte(s) left",
                self.remaining()
            )));
        }
        Ok(len)
    }

    /// Exactly `n` raw bytes.
    #[inline]
    pub(crate) fn read_fixed(&mut self, n: usize) -> Result<&'a [u8], DecodeErrorKind> {
        if n > self.remaining() {
            return Err(truncated("a fixed-size value", self.pos));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Length-prefixed bytes.
    #[inline]
    pub(crate) fn read_bytes(&mut self) -> Result<&'a [u8], DecodeErrorKind> {
        let len = self.read_len()?;
        self.read_fixed(len)
    }

    /// Length-prefixed UTF-8 text.
    #[inline]
    pub(crate) fn read_str(&mut self) -> Result<&'a str, DecodeErrorKind> {
        let start = self.pos;
        let bytes = self.read_bytes()?;
        std::str::from_utf8(bytes).map_err(|_| {
            DecodeErrorKind::InvalidDatum(format!("string at byte {start} is not UTF-8"))
        })
    }

    /// A boolean byte (0 or 1).
    pub(crate) fn read_bool(&mut self) -> Result<bool, DecodeErrorKind> {
        let start = self.pos;
        match self.read_fixed(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeErrorKind::InvalidDatum(format!(
                "boolean byte {b} at byte {start}"
            ))),
        }
    }

    /// A union branch or enum index, checked against the number of branches/symbols.
    #[inline]
    pub(crate) fn read_index(
        &mut self,
        count: usize,
        what: &str,
    ) -> Result<usize, DecodeErrorKind> {
        let start = self.pos;
        let index = self.read_long()?;
        match usize::try_from(index) {
            Ok(i) if i < count => Ok(i),
            _ => Err(DecodeErrorKind::InvalidDatum(format!(
                "{what} index {index} at byte {start} (only {count})"
            ))),
        }
    }
}

/// Appends a zig-zag varint `long`.
#[inline]
pub(crate) fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends length-prefixed bytes (also used for strings).
#[inline]
pub(crate) fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // A slice is never longer than isize::MAX, so the length fits an i64.
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}
