//! token::parse, Parsed::claims and token::token_id on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::error::GateError;
use tokengate::token;

fuzz_target!(|data: &[u8]| {
    // The first two bytes pick the size limit, the rest is the token.
    let (limit, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return,
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    match token::parse(raw, limit) {
        Ok(parsed) => {
            assert!(raw.len() <= limit);
            let sig = &parsed.signature[..];
            assert!(raw.starts_with(parsed.signing_input));
            assert!(parsed.signing_input.ends_with(parsed.payload_b64));
            assert!(sig.len() <= raw.len());
            match parsed.claims() {
                Ok(claims) => {
                    for t in [claims.exp, claims.nbf, claims.iat].into_iter().flatten() {
                        assert!(t.is_finite());
                    }
                    let id = token::token_id(parsed.signing_input, &claims);
                    assert!(!id.is_empty());
                }
                Err(e) => assert_eq!(e, GateError::TokenMalformed),
            }
        }
        Err(e) => {
            assert!(
                matches!(e, GateError::TokenTooLarge | GateError::TokenMalformed),
                "{e}"
            );
            assert_eq!(e == GateError::TokenTooLarge, raw.len() > limit);
        }
    }
});
