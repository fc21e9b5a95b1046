//! Base64url without padding (RFC 7515 section 2), as a token's three
//! segments are written, decoded strictly with a lookup table.
//!
//! base64ct (what jwt-compact decodes with) works in constant time, which
//! is right for secrets and slow in wasm: a token's segments took about
//! 100,000 of the 215,000 wasm instructions of a request (ES256, callgrind;
//! docs/performance.md). A token is no secret to whoever sent it, so its
//! segments are decoded here; key material (a JWK's `k`, `n`, `x`, ...)
//! still goes through base64ct. What is accepted is exactly what base64ct's
//! `Base64UrlUnpadded` accepts (tests/properties.rs compares the two on
//! random input): the URL-safe alphabet only, no padding, no length of
//! 4n+1, and no bits set after the last byte (one encoding per value).

/// Not in the alphabet. Every valid entry is below 64, so one `|` over a
/// block's entries tells whether any of them is invalid.
const INVALID: u32 = 0x80;

const TABLE: [u8; 256] = {
    let mut table = [INVALID as u8; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn sextet(byte: u8) -> u32 {
    u32::from(TABLE[usize::from(byte)])
}

/// The bytes `text` encodes, or `None` when it is not unpadded base64url.
///
/// Indexes into a buffer sized up front rather than pushing: the crate is
/// built for size (opt-level "s"), where a push can stay a call.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let input = text.as_bytes();
    let full = input.len() / 4;
    let tail = match input.len() % 4 {
        0 => 0,
        2 => 1,
        3 => 2,
        // A lone character carries 6 bits: not even one byte.
        _ => return None,
    };
    let mut out = vec![0u8; full * 3 + tail];
    let mut invalid = 0;
    for (block, bytes) in input.chunks_exact(4).zip(out.chunks_exact_mut(3)) {
        let (a, b, c, d) = (
            sextet(block[0]),
            sextet(block[1]),
            sextet(block[2]),
            sextet(block[3]),
        );
        invalid |= a | b | c | d;
        let bits = a << 18 | b << 12 | c << 6 | d;
        bytes[0] = (bits >> 16) as u8;
        bytes[1] = (bits >> 8) as u8;
        bytes[2] = bits as u8;
    }
    let rest = &input[full * 4..];
    let at = full * 3;
    match *rest {
        [] => {}
        [a, b] => {
            let (a, b) = (sextet(a), sextet(b));
            // 12 bits for one byte: the last four must be zero.
            if b & 0x0F != 0 {
                return None;
            }
            invalid |= a | b;
            out[at] = (a << 2 | b >> 4) as u8;
        }
        [a, b, c] => {
            let (a, b, c) = (sextet(a), sextet(b), sextet(c));
            // 18 bits for two bytes: the last two must be zero.
            if c & 0x03 != 0 {
                return None;
            }
            invalid |= a | b | c;
            let bits = a << 12 | b << 6 | c;
            out[at] = (bits >> 10) as u8;
            out[at + 1] = (bits >> 2) as u8;
        }
        // Not reached: the length was checked above.
        _ => return None,
    }
    (invalid & INVALID == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::decode;
    use base64ct::{Base64UrlUnpadded, Encoding};

    #[test]
    fn decodes_what_base64ct_encodes() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = Base64UrlUnpadded::encode_string(&bytes);
            assert_eq!(decode(&text), Some(bytes), "{text}");
        }
        assert_eq!(decode("-_-_"), Some(vec![0xfb, 0xff, 0xbf]));
    }

    #[test]
    fn refuses_padding_other_alphabets_and_stray_bits() {
        // "QR" and "QUJ" have bits set after the last byte ("QQ" is "A",
        // "QUI" is "AB"); 'A' alone is a length of 4n+1.
        for bad in [
            "QQ==", "QQ=", "A", "AAAAA", "a+b/", "ab c", "QR", "QUJ", "é", "\0\0\0\0", "QUI=",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
            assert!(Base64UrlUnpadded::decode_vec(bad).is_err(), "{bad:?}");
        }
        assert_eq!(decode("QQ"), Some(b"A".to_vec()));
        assert_eq!(decode("QUI"), Some(b"AB".to_vec()));
        assert_eq!(decode(""), Some(vec![]));
    }
}
