//! Verifying a token: algorithm, header, signature, then claims. Revocation
//! is checked afterwards by the gateway, only for tokens that pass here.

use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::GateError;
use crate::keys::{Algorithm, SignatureVerifier};
use crate::token::{self, Claims, Parsed};

/// Who a verified token speaks for; what the origin is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub token_id: String,
    /// The payload segment as the issuer signed it.
    pub claims_b64: String,
}

#[derive(Debug, Clone)]
pub struct Verified {
    pub identity: Identity,
    pub claims: Claims,
}

/// Checks everything but revocation. `now` is one instant for the request.
pub async fn verify_token(
    raw: &str,
    config: &Config,
    verifier: &impl SignatureVerifier,
    now: NumericDate,
) -> Result<Verified, GateError> {
    let parsed = verify_signature(raw, config, verifier).await?;
    check_claims(&parsed.claims, config, now)?;
    Ok(Verified {
        identity: Identity {
            subject: parsed.claims.sub.clone(),
            issuer: parsed.claims.iss.clone(),
            token_id: token::token_id(parsed.raw, &parsed.claims),
            claims_b64: parsed.payload_b64.to_owned(),
        },
        claims: parsed.claims,
    })
}

/// Size, structure, algorithm, header rules and signature; not the claims.
pub async fn verify_signature<'t>(
    raw: &'t str,
    config: &Config,
    verifier: &impl SignatureVerifier,
) -> Result<Parsed<'t>, GateError> {
    let parsed = token::parse(raw, config.max_token_bytes)?;
    let untrusted = &parsed.untrusted;

    // The header names the algorithm; we only accept it if the operator did.
    let alg = Algorithm::from_name(untrusted.algorithm())
        .filter(|alg| config.algorithms.contains(alg))
        .ok_or(GateError::AlgorithmNotAllowed)?;

    let header = untrusted.header();
    if header.other_fields.crit.is_some() || header.other_fields.b64.is_some() {
        // No extension is understood, so none may be critical (RFC 7515 4.1.11).
        return Err(GateError::TokenMalformed);
    }
    if let Some(required) = &config.required_typ {
        let matches = header
            .token_type
            .as_deref()
            .is_some_and(|typ| same_media_type(typ, required));
        if !matches {
            return Err(GateError::TypeInvalid);
        }
    }

    verifier
        .verify(
            alg,
            header.key_id.as_deref(),
            parsed.signing_input.as_bytes(),
            untrusted.signature_bytes(),
        )
        .await?;
    Ok(parsed)
}

/// Time and audience rules on a token whose signature is already good.
pub fn check_claims(claims: &Claims, config: &Config, now: NumericDate) -> Result<(), GateError> {
    let leeway = config.leeway_seconds as f64;
    // RFC 7519 4.1.4: valid only *before* exp. We require exp: a token that
    // never expires could not be kept off a bounded revocation list.
    match claims.exp {
        Some(exp) if now < exp + leeway => {}
        _ => return Err(GateError::TokenExpired),
    }
    if let Some(nbf) = claims.nbf {
        if now + leeway < nbf {
            return Err(GateError::TokenNotYetValid);
        }
    }
    if !config.issuers.is_empty() {
        let ok = claims
            .iss
            .as_ref()
            .is_some_and(|iss| config.issuers.contains(iss));
        if !ok {
            return Err(GateError::IssuerInvalid);
        }
    }
    if !config.audiences.is_empty() {
        let ok = claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.contains_any(&config.audiences));
        if !ok {
            return Err(GateError::AudienceInvalid);
        }
    }
    Ok(())
}

/// RFC 7515 4.1.9: `typ` is a media type, compared case-insensitively, and
/// the `application/` prefix may be left out.
fn same_media_type(a: &str, b: &str) -> bool {
    fn short(t: &str) -> String {
        let t = t.trim().to_ascii_lowercase();
        t.strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(t)
    }
    short(a) == short(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{config_with, TEST_SECRET};
    use crate::keys::HmacKeys;
    use base64ct::{Base64UrlUnpadded, Encoding};
    use jwt_compact::alg::{Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key};
    use jwt_compact::Algorithm as _;
    use serde_json::json;

    const NOW: f64 = 1_700_000_000.0;

    /// Signs with jwt-compact's HMAC, independent of the code under test.
    pub fn mint(
        alg: &str,
        header_extra: serde_json::Value,
        claims: serde_json::Value,
        secret: &[u8],
    ) -> String {
        let mut header = json!({"alg": alg});
        header
            .as_object_mut()
            .unwrap()
            .extend(header_extra.as_object().unwrap().clone());
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let sig: Vec<u8> = match alg {
            "HS384" => jwt_compact::AlgorithmSignature::as_bytes(
                &Hs384.sign(&Hs384Key::new(secret), input.as_bytes()),
            )
            .into_owned(),
            "HS512" => jwt_compact::AlgorithmSignature::as_bytes(
                &Hs512.sign(&Hs512Key::new(secret), input.as_bytes()),
            )
            .into_owned(),
            _ => jwt_compact::AlgorithmSignature::as_bytes(
                &Hs256.sign(&Hs256Key::new(secret), input.as_bytes()),
            )
            .into_owned(),
        };
        format!("{input}.{}", Base64UrlUnpadded::encode_string(&sig))
    }

    fn good_claims() -> serde_json::Value {
        json!({"sub": "alice", "iss": "https://issuer.example", "aud": ["api", "other"],
               "exp": NOW + 60.0, "iat": NOW - 1.0, "jti": "t-1"})
    }

    fn run(token: &str, pairs: &[(&str, &str)]) -> Result<Verified, GateError> {
        let mut all = vec![("JWT_SECRET", TEST_SECRET)];
        all.extend_from_slice(pairs);
        let config = config_with(&all).unwrap();
        pollster::block_on(verify_token(token, &config, &config.hmac, NOW))
    }

    #[test]
    fn rfc7515_a1_hs256_known_answer() {
        // RFC 7515 appendix A.1: the key is the JWK "k" value.
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                     eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt\
                     cGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
                     dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let key = Base64UrlUnpadded::decode_vec(
            "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
        )
        .unwrap();
        let config = config_with(&[("JWT_SECRET", TEST_SECRET)]).unwrap();
        let keys = Some(HmacKeys::new(&key));
        let before_exp = 1_300_819_379.0;
        let verified = pollster::block_on(verify_token(token, &config, &keys, before_exp)).unwrap();
        assert_eq!(verified.identity.issuer.as_deref(), Some("joe"));
        assert_eq!(verified.claims.exp, Some(1_300_819_380.0));
        // One bit off in the key and the vector must fail.
        let mut wrong = key.clone();
        wrong[0] ^= 1;
        let result = pollster::block_on(verify_token(
            token,
            &config,
            &Some(HmacKeys::new(&wrong)),
            before_exp,
        ));
        assert_eq!(result.err(), Some(GateError::SignatureInvalid));
        // And the vector's own exp applies.
        let result = pollster::block_on(verify_token(token, &config, &keys, 1_300_819_380.0));
        assert_eq!(result.err(), Some(GateError::TokenExpired));
    }

    #[test]
    fn every_hmac_algorithm_verifies_and_reports_identity() {
        for alg in ["HS256", "HS384", "HS512"] {
            let token = mint(alg, json!({}), good_claims(), TEST_SECRET.as_bytes());
            let verified = run(
                &token,
                &[
                    ("JWT_ISSUER", "https://issuer.example"),
                    ("JWT_AUDIENCE", "api"),
                ],
            )
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(verified.identity.subject.as_deref(), Some("alice"));
            assert_eq!(verified.identity.token_id, "t-1");
            assert_eq!(
                verified.identity.claims_b64,
                token.split('.').nth(1).unwrap()
            );
        }
    }

    #[test]
    fn algorithm_is_checked_against_the_allow_list() {
        let hs512 = mint("HS512", json!({}), good_claims(), TEST_SECRET.as_bytes());
        assert_eq!(
            run(&hs512, &[("JWT_ALGORITHMS", "HS256")]).err(),
            Some(GateError::AlgorithmNotAllowed)
        );
        let none = format!(
            "{}.{}.",
            Base64UrlUnpadded::encode_string(br#"{"alg":"none"}"#),
            Base64UrlUnpadded::encode_string(good_claims().to_string().as_bytes())
        );
        assert_eq!(run(&none, &[]).err(), Some(GateError::AlgorithmNotAllowed));
        let lower = mint("hs256", json!({}), good_claims(), TEST_SECRET.as_bytes());
        assert_eq!(run(&lower, &[]).err(), Some(GateError::AlgorithmNotAllowed));
    }

    #[test]
    fn wrong_key_or_tampered_payload_fails_signature() {
        let token = mint(
            "HS256",
            json!({}),
            good_claims(),
            b"another-secret-that-is-long-enough-too",
        );
        assert_eq!(run(&token, &[]).err(), Some(GateError::SignatureInvalid));
        let good = mint("HS256", json!({}), good_claims(), TEST_SECRET.as_bytes());
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = Base64UrlUnpadded::encode_string(
            json!({"sub": "root", "exp": NOW + 60.0})
                .to_string()
                .as_bytes(),
        );
        parts[1] = &forged;
        assert_eq!(
            run(&parts.join("."), &[]).err(),
            Some(GateError::SignatureInvalid)
        );
        // A truncated signature must not panic.
        let (input, sig) = good.rsplit_once('.').unwrap();
        let sig = Base64UrlUnpadded::decode_vec(sig).unwrap();
        let short = format!("{input}.{}", Base64UrlUnpadded::encode_string(&sig[..20]));
        assert_eq!(run(&short, &[]).err(), Some(GateError::SignatureInvalid));
    }

    #[test]
    fn time_claims_with_and_without_leeway() {
        let at = |claims: serde_json::Value, pairs: &[(&str, &str)]| {
            run(
                &mint("HS256", json!({}), claims, TEST_SECRET.as_bytes()),
                pairs,
            )
            .err()
        };
        assert_eq!(at(json!({"exp": NOW}), &[]), Some(GateError::TokenExpired));
        assert_eq!(
            at(json!({"exp": NOW - 5.0}), &[("JWT_LEEWAY_SECONDS", "10")]),
            None
        );
        assert_eq!(
            at(json!({"exp": NOW - 10.0}), &[("JWT_LEEWAY_SECONDS", "10")]),
            Some(GateError::TokenExpired)
        );
        assert_eq!(
            at(json!({"sub": "no-exp"}), &[]),
            Some(GateError::TokenExpired)
        );
        assert_eq!(
            at(json!({"exp": NOW + 60.0, "nbf": NOW + 1.0}), &[]),
            Some(GateError::TokenNotYetValid)
        );
        assert_eq!(
            at(
                json!({"exp": NOW + 60.0, "nbf": NOW + 5.0}),
                &[("JWT_LEEWAY_SECONDS", "5")]
            ),
            None
        );
        assert_eq!(at(json!({"exp": NOW + 0.25}), &[]), None, "fractional exp");
    }

    #[test]
    fn issuer_and_audience_rules() {
        let at = |claims: serde_json::Value| {
            run(
                &mint("HS256", json!({}), claims, TEST_SECRET.as_bytes()),
                &[
                    ("JWT_ISSUER", "https://a.example,https://b.example"),
                    ("JWT_AUDIENCE", "api"),
                ],
            )
            .err()
        };
        let exp = NOW + 60.0;
        assert_eq!(
            at(json!({"exp": exp, "iss": "https://b.example", "aud": "api"})),
            None
        );
        assert_eq!(
            at(json!({"exp": exp, "iss": "https://c.example", "aud": "api"})),
            Some(GateError::IssuerInvalid)
        );
        assert_eq!(
            at(json!({"exp": exp, "aud": "api"})),
            Some(GateError::IssuerInvalid)
        );
        assert_eq!(
            at(json!({"exp": exp, "iss": "https://a.example", "aud": ["x", "api"]})),
            None
        );
        assert_eq!(
            at(json!({"exp": exp, "iss": "https://a.example", "aud": ["x"]})),
            Some(GateError::AudienceInvalid)
        );
        assert_eq!(
            at(json!({"exp": exp, "iss": "https://a.example"})),
            Some(GateError::AudienceInvalid)
        );
    }

    #[test]
    fn typ_and_crit_headers() {
        let claims = good_claims();
        let typed = |typ: &str| {
            mint(
                "HS256",
                json!({"typ": typ}),
                claims.clone(),
                TEST_SECRET.as_bytes(),
            )
        };
        assert!(run(&typed("at+jwt"), &[("JWT_TYP", "at+jwt")]).is_ok());
        assert!(run(&typed("application/AT+JWT"), &[("JWT_TYP", "at+jwt")]).is_ok());
        assert_eq!(
            run(&typed("JWT"), &[("JWT_TYP", "at+jwt")]).err(),
            Some(GateError::TypeInvalid)
        );
        let untyped = mint("HS256", json!({}), claims.clone(), TEST_SECRET.as_bytes());
        assert_eq!(
            run(&untyped, &[("JWT_TYP", "at+jwt")]).err(),
            Some(GateError::TypeInvalid)
        );
        let crit = mint(
            "HS256",
            json!({"crit": ["exp"], "exp": 1}),
            claims,
            TEST_SECRET.as_bytes(),
        );
        assert_eq!(run(&crit, &[]).err(), Some(GateError::TokenMalformed));
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        for junk in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b",
            "a.b.c.d",
            "eyJhbGciOiJIUzI1NiJ9..",
            "!!!.???.***",
        ] {
            assert_eq!(
                run(junk, &[]).err(),
                Some(GateError::TokenMalformed),
                "{junk:?}"
            );
        }
    }
}
