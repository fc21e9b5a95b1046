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

fn sextet(byte: &u8) -> u32 {
    u32::from(TABLE[usize::from(*byte)])
}

/// The bytes `text` encodes, or `None` when it is not unpadded base64url.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let input = text.as_bytes();
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut blocks = input.chunks_exact(4);
    for block in &mut blocks {
        let [a, b, c, d] = [&block[0], &block[1], &block[2], &block[3]].map(sextet);
        if (a | b | c | d) & INVALID != 0 {
            return None;
        }
        let bits = a << 18 | b << 12 | c << 6 | d;
        out.extend_from_slice(&[(bits >> 16) as u8, (bits >> 8) as u8, bits as u8]);
    }
    match blocks.remainder() {
        [] => {}
        [a, b] => {
            let [a, b] = [a, b].map(sextet);
            // 12 bits for one byte: the last four must be zero.
            if (a | b) & INVALID != 0 || b & 0x0F != 0 {
                return None;
            }
            out.push((a << 2 | b >> 4) as u8);
        }
        [a, b, c] => {
            let [a, b, c] = [a, b, c].map(sextet);
            // 18 bits for two bytes: the last two must be zero.
            if (a | b | c) & INVALID != 0 || c & 0x03 != 0 {
                return None;
            }
            let bits = a << 12 | b << 6 | c;
            out.extend_from_slice(&[(bits >> 10) as u8, (bits >> 2) as u8]);
        }
        // A lone character carries 6 bits: not even one byte.
        _ => return None,
    }
    Some(out)
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
