//! What the fuzz targets share: configurations, a verifier without network
//! or public-key crypto, HMAC signing, and the invariants to assert.

use std::collections::HashMap;

use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::alg::{Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key};
use jwt_compact::{Algorithm as _, AlgorithmSignature};

use tokengate::config::{Config, ConfigError};
use tokengate::error::GateError;
use tokengate::keyring::{Fetched, JwksFetcher, Keyring};
use tokengate::keys::{Algorithm, SignatureVerifier, VerifyKey};
use tokengate::revocation::MAX_ENTRY_SECONDS;
use tokengate::verify::{verify_token, Verification, Verified};

pub const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
pub const NOW: f64 = 1_700_000_000.0;

/// Every setting `Config::from_lookup` reads (README, "Configuration").
pub const SETTINGS: &[&str] = &[
    "ORIGIN_URL",
    "JWT_SECRET",
    "JWT_JWKS",
    "JWT_JWKS_URL",
    "JWT_ALGORITHMS",
    "JWT_ISSUERS",
    "JWT_MAX_TOKEN_AGE_SECONDS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_LEEWAY_SECONDS",
    "JWT_TYP",
    "JWT_MAX_TOKEN_BYTES",
    "TOKEN_COOKIE",
    "TOKEN_COOKIE_PATH",
    "TOKEN_COOKIE_DOMAIN",
    "PUBLIC_PATHS",
    "PASSWORD_CHANGE_PATH",
    "ADMIN_TOKEN",
    "CORS_ALLOWED_ORIGINS",
    // Read once back-channel logout and session lifetimes land; harmless
    // before (an unread setting is never named in an error).
    "SESSION_LIFETIME_SECONDS",
    "BACKCHANNEL_LOGOUT_PATH",
    "BACKCHANNEL_LOGOUT_AUDIENCE",
];

pub fn config_with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|name| map.get(name).cloned())
}

fn hmac_config(extra: &[(&str, &str)]) -> Config {
    let mut pairs = vec![("JWT_SECRET", SECRET)];
    pairs.extend_from_slice(extra);
    config_with(&pairs).expect("fuzz configuration is valid")
}

/// The configurations a fuzzed token meets. All verify HMAC with SECRET
/// (the inline `oct` key of the last one is SECRET too); the multi-issuer
/// one also holds an EC key, which `NoPublicKeys` refuses.
pub fn configs() -> Vec<Config> {
    vec![
        hmac_config(&[]),
        hmac_config(&[
            ("JWT_ISSUER", "https://issuer.example"),
            ("JWT_AUDIENCE", "api"),
        ]),
        hmac_config(&[("JWT_TYP", "at+jwt"), ("JWT_LEEWAY_SECONDS", "30")]),
        hmac_config(&[
            ("JWT_MAX_TOKEN_AGE_SECONDS", "300"),
            ("JWT_ALGORITHMS", "HS256"),
            ("JWT_MAX_TOKEN_BYTES", "256"),
        ]),
        hmac_config(&[(
            "JWT_ISSUERS",
            r#"[{"issuer":"https://issuer.example","secret":true,"audience":["api"]},
                {"issuer":"https://other.example","jwks":{"keys":[{"kty":"EC","crv":"P-256","kid":"e1",
                 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}}]"#,
        )]),
        config_with(&[(
            "JWT_JWKS",
            r#"{"keys":[{"kty":"oct","kid":"k1","k":"YS10ZXN0LXNlY3JldC10aGF0LWlzLWxvbmctZW5vdWdoLWZvci1oczI1Ng"},
                        {"kty":"OKP","crv":"Ed25519","kid":"k2","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
        )])
        .expect("fuzz configuration is valid"),
    ]
}

pub struct NoNetwork;

impl JwksFetcher for NoNetwork {
    async fn fetch(&self, _: &str, _: bool) -> Result<Fetched, String> {
        Err("no network while fuzzing".into())
    }
}

/// Refuses every public-key signature (the crate's own is `cfg(test)`).
pub struct NoPublicKeys;

impl SignatureVerifier for NoPublicKeys {
    async fn verify(
        &self,
        _: Algorithm,
        _: &VerifyKey,
        _: &[u8],
        _: &[u8],
    ) -> Result<bool, GateError> {
        Ok(false)
    }
}

pub fn verify_at(raw: &str, config: &Config, now: f64) -> Result<Verified, GateError> {
    let keyring = Keyring::default();
    let verification = Verification {
        keyring: &keyring,
        fetcher: &NoNetwork,
        signatures: &NoPublicKeys,
    };
    pollster::block_on(verify_token(raw, config, &verification, now))
}

pub fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// A compact JWS over exactly these header and payload bytes, signed with
/// the HMAC the JOSE name asks for (HS256 for any other name).
pub fn sign_raw(alg: &str, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let key = SECRET.as_bytes();
    let sig: Vec<u8> = match alg {
        "HS384" => Hs384
            .sign(&Hs384Key::new(key), input.as_bytes())
            .as_bytes()
            .into_owned(),
        "HS512" => Hs512
            .sign(&Hs512Key::new(key), input.as_bytes())
            .as_bytes()
            .into_owned(),
        _ => Hs256
            .sign(&Hs256Key::new(key), input.as_bytes())
            .as_bytes()
            .into_owned(),
    };
    format!("{input}.{}", b64(&sig))
}

/// Client input is refused with a 4xx, never a 5xx.
pub fn assert_client_error(e: GateError, input: &str) {
    assert!(
        (400..500).contains(&e.status()),
        "{e} ({}) for client input {input:?}",
        e.status()
    );
}

/// What an accepted token must satisfy, restated from the README.
pub fn assert_claim_rules(v: &Verified, config: &Config, now: f64) {
    let leeway = config.leeway_seconds as f64;
    let exp = v.claims.exp.expect("a verified token has an exp");
    assert!(now < exp + leeway, "expired token accepted");
    assert!(
        exp + leeway <= now + MAX_ENTRY_SECONDS as f64,
        "lifetime beyond the revocation horizon accepted"
    );
    if let Some(nbf) = v.claims.nbf {
        assert!(now + leeway >= nbf, "token used before nbf");
    }
    if let Some(iat) = v.claims.iat {
        assert!(iat <= now + leeway, "iat in the future accepted");
    }
    if let Some(max_age) = config.max_token_age_seconds {
        let iat = v.claims.iat.expect("max age needs iat");
        assert!(now - iat <= max_age as f64 + leeway, "token too old");
    }
    let provider = match &config.providers[..] {
        [only] => only,
        many => many
            .iter()
            .find(|p| v.claims.iss.as_ref().is_some_and(|i| p.issuers.contains(i)))
            .expect("several issuers: the token's iss picked one"),
    };
    if !provider.issuers.is_empty() {
        assert!(provider.issuers.contains(v.claims.iss.as_ref().unwrap()));
    }
    if !provider.audiences.is_empty() {
        assert!(v
            .claims
            .aud
            .as_ref()
            .unwrap()
            .contains_any(&provider.audiences));
    }
}

/// The README's rule for gateway routes: the loose path is the route, or
/// the route with a format suffix on its last segment.
pub fn loose_matches(loose_path: &str, loose_route: &str) -> bool {
    match loose_path.strip_prefix(loose_route) {
        Some("") => true,
        Some(rest) => rest.starts_with('.') && !rest.contains('/'),
        None => false,
    }
}

/// The minimum README promise for public paths: no `;` and no encoded
/// `/`, `\` or `.`.
pub fn hides_separators(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains(';') || ["%2f", "%5c", "%2e"].iter().any(|e| lower.contains(e))
}
