//! Lowercase hex, the one encoder of the workspace (ids, `traceparent`, digests, keys):
//! written digit by digit from a table instead of through `core::fmt`, which costs several
//! times as much on the request path.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` to `out` as lowercase hex, two digits per byte.
pub fn push_bytes(out: &mut String, bytes: &[u8]) {
    out.reserve(2 * bytes.len());
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// `value` as 32 lowercase hex digits (zero-padded), as `format!("{value:032x}")` writes it.
pub fn u128_string(value: u128) -> String {
    let mut digits = [0u8; 32];
    write_lower(value, &mut digits);
    // ASCII digits: one allocation and a copy (collecting chars pushes them one by one).
    String::from_utf8_lossy(&digits).into_owned()
}

/// Writes the low `out.len() * 4` bits of `value` into `out` as lowercase hex, most
/// significant digit first, padded with zeros (`out.len()` at most 32).
pub fn write_lower(value: u128, out: &mut [u8]) {
    // In 64-bit halves: shifting a u128 takes two registers per step, on every request's ids.
    let split = out.len().saturating_sub(16);
    let (high, low) = out.split_at_mut(split);
    write_u64(value as u64, low);
    write_u64((value >> 64) as u64, high);
}

/// [`write_lower`] for the low 16 digits at most.
fn write_u64(value: u64, out: &mut [u8]) {
    let mut rest = value;
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
    }
}

/// The value of exactly 32 hex digits (either case); `None` for any other text.
pub fn parse_u128(text: &str) -> Option<u128> {
    if text.len() != 32 {
        return None;
    }
    // In 64-bit halves, as `write_lower` writes them.
    let (high, low) = text.as_bytes().split_at(16);
    Some(u128::from(parse_u64(high)?) << 64 | u128::from(parse_u64(low)?))
}

/// The value of at most 16 hex digits (either case).
fn parse_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &byte| {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => return None,
        };
        Some(value << 4 | u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back_what_format_would() {
        for value in [
            0u128,
            1,
            0xabc,
            u128::MAX,
            0x0af7651916cd43dd8448eb211c80319c,
        ] {
            let mut out = [0u8; 32];
            write_lower(value, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), format!("{value:032x}"));
            assert_eq!(parse_u128(&format!("{value:032x}")), Some(value));
            assert_eq!(parse_u128(&format!("{value:032X}")), Some(value));
        }
        let mut text = String::from("x");
        push_bytes(&mut text, &[0x00, 0x0f, 0xa5, 0xff]);
        assert_eq!(text, "x000fa5ff");
        assert_eq!(u128_string(0xabc), format!("{:032x}", 0xabc));
        let mut short = [0u8; 2];
        write_lower(0x1ff, &mut short);
        assert_eq!(&short, b"ff", "only the low digits");
        assert_eq!(
            parse_u128("0af7651916cd43dd8448eb211c80319"),
            None,
            "31 digits"
        );
        assert_eq!(parse_u128("0af7651916cd43dd8448eb211c80319g"), None);
        assert_eq!(parse_u128("+af7651916cd43dd8448eb211c80319c"), None);
    }
}
