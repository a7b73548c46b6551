//! Avro `decimal` (unscaled big-endian two's-complement integer + the writer's scale)
//! to and from `rust_decimal::Decimal`, exactly: never rounded, never truncated.

use rust_decimal::Decimal;

use super::error::{DecodeErrorKind, EncodeError};
use super::wire::write_bytes;

/// Most significant digits a `rust_decimal::Decimal` is allowed to carry here.
pub(crate) const MAX_DIGITS: u32 = 28;

/// A writer schema's decimal: how the amount's bytes are to be read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecimalSpec {
    /// Declared precision (digits).
    pub(crate) precision: usize,
    /// Declared scale; every value of this writer has exactly this many decimal places.
    pub(crate) scale: u32,
    /// `Some(n)` for a `fixed` of n bytes, `None` for length-prefixed `bytes`.
    pub(crate) fixed_size: Option<usize>,
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

/// Strips sign-extension bytes that do not change the value (a `fixed` decimal is padded).
fn significant(bytes: &[u8]) -> &[u8] {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let pad = if negative { 0xff } else { 0x00 };
    let mut start = 0;
    while start + 1 < bytes.len()
        && bytes[start] == pad
        && (bytes[start + 1] & 0x80 != 0) == negative
    {
        start += 1;
    }
    &bytes[start..]
}

impl DecimalSpec {
    /// Checks what this consumer can hold exactly: scale at most 28 and not above precision.
    pub(crate) fn new(
        precision: usize,
        scale: usize,
        fixed_size: Option<usize>,
    ) -> Result<Self, String> {
        if precision == 0 || scale > precision {
            return Err(format!(
                "decimal({precision},{scale}) is not a valid decimal"
            ));
        }
        let scale = u32::try_from(scale)
            .ok()
            .filter(|s| *s <= MAX_DIGITS)
            .ok_or_else(|| format!("decimal scale {scale} (at most {MAX_DIGITS})"))?;
        Ok(DecimalSpec {
            precision,
            scale,
            fixed_size,
        })
    }

    /// Digits an unscaled value may have: the writer's precision, capped at 28.
    fn max_digits(&self) -> u32 {
        u32::try_from(self.precision).map_or(MAX_DIGITS, |p| p.min(MAX_DIGITS))
    }

    /// Reads the unscaled two's-complement integer and applies the writer's scale.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Decimal, DecodeErrorKind> {
        if bytes.is_empty() {
            return Err(DecodeErrorKind::InvalidDatum(
                "decimal with zero bytes".into(),
            ));
        }
        let sig = significant(bytes);
        if sig.len() > 16 {
            return Err(DecodeErrorKind::DecimalOutOfRange(format!(
                "unscaled value of {} significant bytes exceeds 128 bits",
                sig.len()
            )));
        }
        let pad = if sig[0] & 0x80 != 0 { 0xff } else { 0x00 };
        let mut buf = [pad; 16];
        buf[16 - sig.len()..].copy_from_slice(sig);
        let unscaled = i128::from_be_bytes(buf);
        let digits = self.max_digits();
        let in_range = pow10(digits).is_some_and(|limit| unscaled.unsigned_abs() < limit as u128);
        if !in_range {
            let why = if digits < MAX_DIGITS {
                format!("the writer's precision {}", self.precision)
            } else {
                format!("the {MAX_DIGITS} digits the ledger holds exactly")
            };
            return Err(DecodeErrorKind::DecimalOutOfRange(format!(
                "unscaled value {unscaled} (scale {}) has more digits than {why}",
                self.scale
            )));
        }
        Decimal::try_from_i128_with_scale(unscaled, self.scale)
            .map_err(|e| DecodeErrorKind::DecimalOutOfRange(e.to_string()))
    }

    /// Rescales `value` to the writer's scale (refusing lost digits) and appends it as
    /// `bytes` (length-prefixed, minimal) or `fixed` (sign-padded).
    pub(crate) fn encode(&self, value: &Decimal, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let does_not_fit = || EncodeError::AmountDoesNotFit {
            amount: value.to_string(),
            precision: self.precision,
            scale: self.scale,
        };
        let mantissa = value.mantissa();
        let scale = value.scale();
        let unscaled = if scale > self.scale {
            let divisor = pow10(scale - self.scale).ok_or_else(does_not_fit)?;
            if mantissa % divisor != 0 {
                return Err(does_not_fit());
            }
            mantissa / divisor
        } else {
            pow10(self.scale - scale)
                .and_then(|m| mantissa.checked_mul(m))
                .ok_or_else(does_not_fit)?
        };
        let limit = pow10(self.max_digits()).ok_or_else(does_not_fit)?;
        if unscaled.unsigned_abs() >= limit as u128 {
            return Err(does_not_fit());
        }
        let full = unscaled.to_be_bytes();
        let sig = significant(&full);
        match self.fixed_size {
            None => write_bytes(out, sig),
            Some(size) => {
                if sig.len() > size {
                    return Err(does_not_fit());
                }
                let pad = if unscaled < 0 { 0xff } else { 0x00 };
                out.extend(std::iter::repeat_n(pad, size - sig.len()));
                out.extend_from_slice(sig);
            }
        }
        Ok(())
    }
}
