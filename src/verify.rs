//! Verifying a token: algorithm, header, signature, then claims. Revocation
//! is checked afterwards by the gateway, only for tokens that pass here.

use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::{GateError, Refusal, Who};
use crate::keyring::{JwksFetcher, Keyring, Provider};
use crate::keys::{Algorithm, KeyMaterial, SignatureVerifier};
use crate::revocation::MAX_ENTRY_SECONDS;
use crate::token::{self, same_media_type, Claims, Parsed};

/// Without a `kid`, at most this many keys are tried, so a token cannot make
/// us run a signature check for every key of a large set.
pub const MAX_KEY_ATTEMPTS: usize = 4;

/// Who a verified token speaks for; what the origin is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub token_id: String,
    /// The payload segment as the issuer signed it.
    pub claims_b64: String,
}

impl Identity {
    /// What a refusal's log line may name: the token's ID and subject.
    pub fn who(&self) -> Who {
        Who {
            token_id: self.token_id.clone(),
            sub: self.subject.clone(),
        }
    }

    /// A refusal of a request whose token verified, naming it for the log.
    pub fn refuse(&self, error: GateError) -> Refusal {
        Refusal {
            error,
            who: Some(self.who()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Verified {
    pub identity: Identity,
    pub claims: Claims,
}

/// What signature checking needs besides the configuration: the
/// per-isolate key state, a way to fetch remote key sets, and a way to
/// check public-key signatures (WebCrypto in the Worker).
pub struct Verification<'a, F, V> {
    pub keyring: &'a Keyring,
    pub fetcher: &'a F,
    pub signatures: &'a V,
}

/// A token whose signature verified, with its claims and its issuer.
pub struct Signed<'t, 'c> {
    pub parsed: Parsed<'t>,
    pub claims: Claims,
    pub provider: &'c Provider,
}

/// Checks everything but revocation. `now` is one instant for the request.
pub async fn verify_token(
    raw: &str,
    config: &Config,
    verification: &Verification<'_, impl JwksFetcher, impl SignatureVerifier>,
    now: NumericDate,
) -> Result<Verified, GateError> {
    verify_token_for_log(raw, config, verification, now)
        .await
        .map_err(|refusal| refusal.error)
}

/// [`verify_token`], whose refusal names the token's ID and `sub` when its
/// signature verified and a claim rule refused it (for the log line).
pub async fn verify_token_for_log(
    raw: &str,
    config: &Config,
    verification: &Verification<'_, impl JwksFetcher, impl SignatureVerifier>,
    now: NumericDate,
) -> Result<Verified, Refusal> {
    verify_token_as(raw, TokenKind::Access, config, verification, now).await
}

/// [`verify_token_for_log`] for a token presented as `kind` (an access
/// token, or a refresh token on `REFRESH_PATH`): only the `typ` rule differs.
pub async fn verify_token_as(
    raw: &str,
    kind: TokenKind,
    config: &Config,
    verification: &Verification<'_, impl JwksFetcher, impl SignatureVerifier>,
    now: NumericDate,
) -> Result<Verified, Refusal> {
    let signed = verify_signature_as(raw, kind, config, verification, now).await?;
    let identity = Identity {
        subject: signed.claims.sub.clone(),
        issuer: signed.claims.iss.clone(),
        token_id: token::token_id(signed.parsed.signing_input, &signed.claims),
        claims_b64: signed.parsed.payload_b64.to_owned(),
    };
    check_claims(&signed.claims, signed.provider, config, now).map_err(|e| identity.refuse(e))?;
    Ok(Verified {
        identity,
        claims: signed.claims,
    })
}

/// What a token is presented as: an access token (every route but the
/// back-channel logout), or a logout token (only there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Logout,
    /// A refresh token, on `REFRESH_PATH` only.
    Refresh,
}

/// The `typ` of an OpenID Connect logout token (Back-Channel Logout 1.0, 2.4).
pub const LOGOUT_TYP: &str = "logout+jwt";

/// Size, structure, issuer, algorithm, header rules and signature; then the
/// claims are read (but their time and audience rules not applied).
pub async fn verify_signature<'t, 'c>(
    raw: &'t str,
    config: &'c Config,
    verification: &Verification<'_, impl JwksFetcher, impl SignatureVerifier>,
    now: NumericDate,
) -> Result<Signed<'t, 'c>, GateError> {
    verify_signature_as(raw, TokenKind::Access, config, verification, now).await
}

/// [`verify_signature`] for a token of `kind`: the same keys, issuers and
/// algorithms, only the `typ` rule differs ([`typ_accepted`]).
pub async fn verify_signature_as<'t, 'c>(
    raw: &'t str,
    kind: TokenKind,
    config: &'c Config,
    verification: &Verification<'_, impl JwksFetcher, impl SignatureVerifier>,
    now: NumericDate,
) -> Result<Signed<'t, 'c>, GateError> {
    let parsed = token::parse(raw, config.max_token_bytes)?;

    // With several issuers the (unverified) `iss` picks whose keys to try;
    // it is trusted only once one of that issuer's keys verified it.
    let (provider, early_claims) = match &config.providers[..] {
        [only] => (only, None),
        providers => {
            let claims = parsed.claims()?;
            let provider = providers
                .iter()
                .find(|p| {
                    claims
                        .iss
                        .as_ref()
                        .is_some_and(|iss| p.issuers.contains(iss))
                })
                .ok_or(GateError::IssuerInvalid)?;
            (provider, Some(claims))
        }
    };

    // The header names the algorithm; we only accept it if the operator did.
    let alg = Algorithm::from_name(&parsed.header.alg)
        .filter(|alg| provider.algorithms.contains(alg))
        .ok_or(GateError::AlgorithmNotAllowed)?;

    let header = &parsed.header;
    if header.crit.0 || header.b64.0 {
        // No extension is understood, so none may be critical (RFC 7515 4.1.11).
        return Err(GateError::TokenMalformed);
    }
    if !typ_accepted(header.token_type.as_deref(), kind, config) {
        return Err(GateError::TypeInvalid);
    }

    // `jku`, `x5u`, `x5c` and an embedded `jwk` are never looked at: keys
    // come from configuration only (RFC 8725 3.10).
    let keys = verification
        .keyring
        .candidates(
            provider,
            alg,
            header.key_id.as_deref(),
            verification.fetcher,
            now,
        )
        .await?;
    if keys.is_empty() {
        return Err(GateError::UnknownKey);
    }
    let input = parsed.signing_input.as_bytes();
    let signature = &parsed.signature[..];
    let mut verified = false;
    for key in keys.iter().take(MAX_KEY_ATTEMPTS) {
        verified = match &key.material {
            KeyMaterial::Hmac(hmac) => hmac.verify(alg, input, signature),
            KeyMaterial::Public { .. } => {
                verification
                    .signatures
                    .verify(alg, key, input, signature)
                    .await?
            }
        };
        if verified {
            break;
        }
    }
    if !verified {
        return Err(GateError::SignatureInvalid);
    }
    let claims = match early_claims {
        Some(claims) => claims,
        None => parsed.claims()?,
    };
    Ok(Signed {
        parsed,
        claims,
        provider,
    })
}

/// The `typ` header rule (RFC 8725 3.11, explicit typing).
/// - An access token needs `JWT_TYP` when it is set, and is never typed
///   `logout+jwt`.
/// - A logout token may be untyped, `logout+jwt` (what the specification
///   recommends), or `JWT` (RFC 7519's generic type, which identity
///   providers put on every token they sign), but never the access tokens'
///   `JWT_TYP` (say `at+jwt`): an access token is no logout token.
/// - With `REFRESH_TYP`, a token of that type is a refresh token: refused
///   as an access token, and the only kind accepted on `REFRESH_PATH`.
///   Without it, the refresh route takes what an access token may be.
///
/// Types are compared as media types: case-insensitively, `application/`
/// optional (RFC 7515 4.1.9).
pub fn typ_accepted(typ: Option<&str>, kind: TokenKind, config: &Config) -> bool {
    let is = |expected: &str| typ.is_some_and(|typ| same_media_type(typ, expected));
    let access_typ = config.required_typ.as_deref();
    let refresh_typ = config.refresh.as_ref().and_then(|r| r.typ.as_deref());
    let access = !is(LOGOUT_TYP) && access_typ.is_none_or(is);
    match kind {
        // Refresh tokens and access tokens do not cross (`REFRESH_TYP`).
        TokenKind::Access => access && !refresh_typ.is_some_and(is),
        TokenKind::Refresh => match refresh_typ {
            Some(refresh_typ) => is(refresh_typ),
            None => access,
        },
        TokenKind::Logout => {
            typ.is_none() || is(LOGOUT_TYP) || (is("JWT") && !access_typ.is_some_and(is))
        }
    }
}

/// Time, issuer and audience rules on a token whose signature is good.
pub fn check_claims(
    claims: &Claims,
    provider: &Provider,
    config: &Config,
    now: NumericDate,
) -> Result<(), GateError> {
    // A logout token is never an access token, whatever its `typ` says
    // (Back-Channel Logout 1.0, 2.4; RFC 8725 3.11): refused first, so the
    // answer does not depend on its other claims.
    if claims.has_logout_event() {
        return Err(GateError::TypeInvalid);
    }
    let leeway = config.leeway_seconds as f64;
    // RFC 7519 4.1.4: valid only *before* exp. We require exp: a token that
    // never expires could not be kept off a bounded revocation list.
    match claims.exp {
        Some(exp) if now < exp + leeway => {}
        _ => return Err(GateError::TokenExpired),
    }
    // A revoked-ID entry lives at most MAX_ENTRY_SECONDS from the logout
    // (`revocation::token_entry_expiry`). The token is accepted until
    // exp + leeway, so beyond now + that cap a revoked token would come back
    // to life once its entry expired: refuse it now instead.
    if let Some(exp) = claims.exp {
        if exp + leeway > now + MAX_ENTRY_SECONDS as f64 {
            return Err(GateError::TokenLifetimeTooLong);
        }
    }
    if let Some(nbf) = claims.nbf {
        if now + leeway < nbf {
            return Err(GateError::TokenNotYetValid);
        }
    }
    // A token issued in the future (beyond leeway) is refused whether or not
    // a maximum age is set: its `iat` would escape every cut-off (a user
    // cut-off revokes only `iat < C`) and every age limit.
    if let Some(iat) = claims.iat {
        if now + leeway < iat {
            return Err(GateError::TokenNotYetValid);
        }
    }
    if let Some(max_age) = config.max_token_age_seconds {
        // Like jose's maxTokenAge: an `iat` is required and may not be
        // older than the cap (a future one was refused above).
        match claims.iat {
            Some(iat) if now - iat <= max_age as f64 + leeway => {}
            _ => return Err(GateError::TokenExpired),
        }
    }
    // A revoked session's entry lives SESSION_LIFETIME_SECONDS + leeway
    // (`revocation::session_entry_expiry`). A token of a session that was
    // issued longer ago than that could outlive the entry revoking it, so
    // it is refused: no revoked session comes back when its entry expires.
    if config.require_sid && claims.session().is_none() {
        return Err(GateError::SidRequired);
    }
    if claims.session().is_some() {
        let lifetime = config.session_lifetime_seconds as f64 + leeway;
        match claims.iat {
            Some(iat) if now - iat <= lifetime => {}
            _ => return Err(GateError::SessionTooOld),
        }
    }
    if !provider.issuers.is_empty() {
        let ok = claims
            .iss
            .as_ref()
            .is_some_and(|iss| provider.issuers.contains(iss));
        if !ok {
            return Err(GateError::IssuerInvalid);
        }
    }
    if !provider.audiences.is_empty() {
        let ok = claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.contains_any(&provider.audiences));
        if !ok {
            return Err(GateError::AudienceInvalid);
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::{config_with, TEST_SECRET};
    use crate::keys::NoPublicKeys;
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

    /// Verifies with a fresh keyring, no network and no public-key crypto.
    pub fn verify_at(token: &str, config: &Config, now: f64) -> Result<Verified, GateError> {
        let keyring = Keyring::default();
        let verification = Verification::offline(&keyring);
        pollster::block_on(verify_token(token, config, &verification, now))
    }

    pub struct NoNetwork;

    impl<'a> Verification<'a, NoNetwork, NoPublicKeys> {
        /// What unit tests verify with: no JWKS fetches, no public-key
        /// signatures (HMAC only).
        pub fn offline(keyring: &'a Keyring) -> Self {
            Verification {
                keyring,
                fetcher: &NoNetwork,
                signatures: &NoPublicKeys,
            }
        }
    }

    impl JwksFetcher for NoNetwork {
        async fn fetch(&self, _: &str, _: bool) -> Result<crate::keyring::Fetched, String> {
            Err("no network in unit tests".into())
        }
    }

    fn run(token: &str, pairs: &[(&str, &str)]) -> Result<Verified, GateError> {
        let mut all = vec![("JWT_SECRET", TEST_SECRET)];
        all.extend_from_slice(pairs);
        verify_at(token, &config_with(&all).unwrap(), NOW)
    }

    #[test]
    fn rfc7515_a1_hs256_known_answer() {
        // RFC 7515 appendix A.1, with its key as an inline JWK.
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                     eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt\
                     cGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
                     dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let k = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
        let jwks = |k: &str| format!(r#"{{"keys":[{{"kty":"oct","k":"{k}"}}]}}"#);
        let config = config_with(&[("JWT_JWKS", &jwks(k))]).unwrap();
        let before_exp = 1_300_819_379.0;
        let verified = verify_at(token, &config, before_exp).unwrap();
        assert_eq!(verified.identity.issuer.as_deref(), Some("joe"));
        assert_eq!(verified.claims.exp, Some(1_300_819_380.0));
        // One bit off in the key and the vector must fail.
        let mut wrong = Base64UrlUnpadded::decode_vec(k).unwrap();
        wrong[0] ^= 1;
        let wrong =
            config_with(&[("JWT_JWKS", &jwks(&Base64UrlUnpadded::encode_string(&wrong)))]).unwrap();
        assert_eq!(
            verify_at(token, &wrong, before_exp).err(),
            Some(GateError::SignatureInvalid)
        );
        // And the vector's own exp applies.
        assert_eq!(
            verify_at(token, &config, 1_300_819_380.0).err(),
            Some(GateError::TokenExpired)
        );
    }

    #[test]
    fn max_token_age_needs_a_recent_iat() {
        let at = |claims: serde_json::Value| {
            run(
                &mint("HS256", json!({}), claims, TEST_SECRET.as_bytes()),
                &[("JWT_MAX_TOKEN_AGE_SECONDS", "300")],
            )
            .err()
        };
        let exp = NOW + 3600.0;
        assert_eq!(at(json!({"exp": exp, "iat": NOW - 299.0})), None);
        assert_eq!(
            at(json!({"exp": exp, "iat": NOW - 301.0})),
            Some(GateError::TokenExpired)
        );
        assert_eq!(
            at(json!({"exp": exp})),
            Some(GateError::TokenExpired),
            "iat required"
        );
        assert_eq!(
            at(json!({"exp": exp, "iat": NOW + 60.0})),
            Some(GateError::TokenNotYetValid)
        );
    }

    /// Why an HS256 token with these claims is refused under these
    /// settings (`None`: accepted).
    fn refusal_of_hs256(claims: serde_json::Value, pairs: &[(&str, &str)]) -> Option<GateError> {
        run(
            &mint("HS256", json!({}), claims, TEST_SECRET.as_bytes()),
            pairs,
        )
        .err()
    }

    #[test]
    fn iat_in_the_future_is_refused_even_without_a_maximum_age() {
        let at = refusal_of_hs256;
        let exp = NOW + 3600.0;
        // No JWT_MAX_TOKEN_AGE_SECONDS: a future iat would outlive every
        // user cut-off (only iat < cut-off is revoked).
        assert_eq!(
            at(json!({"exp": exp, "iat": NOW + 1.0}), &[]),
            Some(GateError::TokenNotYetValid)
        );
        assert_eq!(
            at(json!({"exp": exp, "iat": NOW + 1e9}), &[]),
            Some(GateError::TokenNotYetValid)
        );
        // Inside the leeway, or now, or in the past: fine.
        assert_eq!(at(json!({"exp": exp, "iat": NOW}), &[]), None);
        assert_eq!(at(json!({"exp": exp, "iat": NOW - 5.0}), &[]), None);
        assert_eq!(
            at(
                json!({"exp": exp, "iat": NOW + 10.0}),
                &[("JWT_LEEWAY_SECONDS", "10")]
            ),
            None
        );
        assert_eq!(
            at(
                json!({"exp": exp, "iat": NOW + 10.5}),
                &[("JWT_LEEWAY_SECONDS", "10")]
            ),
            Some(GateError::TokenNotYetValid)
        );
        // Without iat there is nothing to check (no maximum age configured).
        assert_eq!(at(json!({"exp": exp}), &[]), None);
        assert!(GateError::TokenNotYetValid
            .description()
            .contains("issued in the future"));
    }

    #[test]
    fn exp_beyond_what_a_revocation_entry_covers_is_refused() {
        use crate::revocation::token_entry_expiry;
        let at = |exp: f64, pairs: &[(&str, &str)]| {
            run(
                &mint(
                    "HS256",
                    json!({}),
                    json!({"exp": exp}),
                    TEST_SECRET.as_bytes(),
                ),
                pairs,
            )
            .err()
        };
        let cap = MAX_ENTRY_SECONDS as f64;
        assert_eq!(at(NOW + cap, &[]), None, "exactly coverable");
        assert_eq!(
            at(NOW + cap + 1.0, &[]),
            Some(GateError::TokenLifetimeTooLong)
        );
        assert_eq!(at(1e15, &[]), Some(GateError::TokenLifetimeTooLong));
        // The leeway extends the token's life, so it counts against the cap.
        let leeway = [("JWT_LEEWAY_SECONDS", "60")];
        assert_eq!(at(NOW + cap - 60.0, &leeway), None);
        assert_eq!(
            at(NOW + cap - 59.0, &leeway),
            Some(GateError::TokenLifetimeTooLong)
        );
        // Every accepted token is covered by a revoked-ID entry written now:
        // the entry is not cut short by the cap.
        for (exp, leeway) in [(NOW + cap, 0), (NOW + cap - 60.0, 60), (NOW + 0.5, 0)] {
            assert!(token_entry_expiry(Some(exp), leeway, NOW) as f64 >= exp + leeway as f64);
        }
        let reply = GateError::TokenLifetimeTooLong.to_reply();
        assert_eq!(reply.status, 401);
        assert!(reply.body.contains(r#""error":"token_lifetime_too_long""#));
        assert!(reply
            .header("WWW-Authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#));
    }

    #[test]
    fn several_issuers_pick_keys_by_iss() {
        let issuers = r#"[{"issuer":"https://a.example","secret":true,"audience":"api-a"},
                          {"issuer":"https://b.example","jwks":{"keys":[{"kty":"oct","k":"b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC1vdGhlci1zZWNyZXQ"}]}}]"#;
        let config = config_with(&[("JWT_ISSUERS", issuers), ("JWT_SECRET", TEST_SECRET)]).unwrap();
        let claims = |iss: &str, aud: &str| json!({"iss": iss, "aud": aud, "exp": NOW + 60.0});
        let a = mint(
            "HS256",
            json!({}),
            claims("https://a.example", "api-a"),
            TEST_SECRET.as_bytes(),
        );
        assert!(verify_at(&a, &config, NOW).is_ok());
        let wrong_aud = mint(
            "HS256",
            json!({}),
            claims("https://a.example", "api-b"),
            TEST_SECRET.as_bytes(),
        );
        assert_eq!(
            verify_at(&wrong_aud, &config, NOW).err(),
            Some(GateError::AudienceInvalid)
        );
        let b_secret = b"other-secret-other-secret-other-secret";
        let b = mint(
            "HS256",
            json!({}),
            claims("https://b.example", "x"),
            b_secret,
        );
        assert!(verify_at(&b, &config, NOW).is_ok());
        // b's key cannot sign for a, and an unknown issuer finds no keys at all.
        let forged = mint(
            "HS256",
            json!({}),
            claims("https://a.example", "api-a"),
            b_secret,
        );
        assert_eq!(
            verify_at(&forged, &config, NOW).err(),
            Some(GateError::SignatureInvalid)
        );
        let stranger = mint(
            "HS256",
            json!({}),
            claims("https://c.example", "api-a"),
            TEST_SECRET.as_bytes(),
        );
        assert_eq!(
            verify_at(&stranger, &config, NOW).err(),
            Some(GateError::IssuerInvalid)
        );
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
        let at = refusal_of_hs256;
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
    fn a_session_token_needs_an_iat_within_the_session_lifetime() {
        let at = refusal_of_hs256;
        let exp = NOW + 3600.0;
        let short = [("SESSION_LIFETIME_SECONDS", "600")];
        assert_eq!(
            at(json!({"exp": exp, "sid": "s", "iat": NOW - 600.0}), &short),
            None
        );
        assert_eq!(
            at(json!({"exp": exp, "sid": "s", "iat": NOW - 600.5}), &short),
            Some(GateError::SessionTooOld)
        );
        assert_eq!(
            at(json!({"exp": exp, "sid": "s"}), &short),
            Some(GateError::SessionTooOld),
            "iat required with sid"
        );
        // The leeway extends the lifetime like the entry's expiry.
        let leeway = [
            ("SESSION_LIFETIME_SECONDS", "600"),
            ("JWT_LEEWAY_SECONDS", "30"),
        ];
        assert_eq!(
            at(json!({"exp": exp, "sid": "s", "iat": NOW - 630.0}), &leeway),
            None
        );
        assert_eq!(
            at(json!({"exp": exp, "sid": "s", "iat": NOW - 631.0}), &leeway),
            Some(GateError::SessionTooOld)
        );
        // Default 30 days; without sid (or an empty one) there is no such rule.
        assert_eq!(
            at(
                json!({"exp": exp, "sid": "s", "iat": NOW - 2_592_001.0}),
                &[]
            ),
            Some(GateError::SessionTooOld)
        );
        assert_eq!(at(json!({"exp": exp, "iat": NOW - 1e7}), &short), None);
        assert_eq!(at(json!({"exp": exp, "sid": ""}), &short), None);
        let reply = GateError::SessionTooOld.to_reply();
        assert_eq!(reply.status, 401);
        assert!(reply.body.contains(r#""error":"token_expired""#));
        assert!(reply.body.contains("SESSION_LIFETIME_SECONDS"));
        // A token whose signature verified is named in the refusal's log line.
        let keyring = Keyring::default();
        let verification = Verification::offline(&keyring);
        let config = config_with(&[("JWT_SECRET", TEST_SECRET), short[0]]).unwrap();
        let old = mint(
            "HS256",
            json!({}),
            json!({"exp": exp, "sid": "s", "sub": "alice", "jti": "j-1"}),
            TEST_SECRET.as_bytes(),
        );
        let refusal = pollster::block_on(verify_token_for_log(&old, &config, &verification, NOW))
            .unwrap_err();
        assert_eq!(refusal.error, GateError::SessionTooOld);
        let who = refusal.who.unwrap();
        assert_eq!(
            (who.token_id.as_str(), who.sub.as_deref()),
            ("j-1", Some("alice"))
        );
        let forged = mint(
            "HS256",
            json!({}),
            json!({"exp": exp}),
            b"another-secret-long-enough-32-bytes",
        );
        let refusal =
            pollster::block_on(verify_token_for_log(&forged, &config, &verification, NOW))
                .unwrap_err();
        assert_eq!(
            (refusal.error, refusal.who),
            (GateError::SignatureInvalid, None)
        );
    }

    #[test]
    fn a_logout_token_is_never_an_access_token() {
        let logout_claims = json!({"exp": NOW + 60.0, "iat": NOW, "jti": "l-1", "sub": "alice",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}});
        for header in [
            json!({}),
            json!({"typ": "logout+jwt"}),
            json!({"typ": "JWT"}),
        ] {
            let token = mint(
                "HS256",
                header.clone(),
                logout_claims.clone(),
                TEST_SECRET.as_bytes(),
            );
            assert_eq!(
                run(&token, &[]).err(),
                Some(GateError::TypeInvalid),
                "{header}"
            );
        }
        // Typed as a logout token, even without the event: refused too.
        let typed = mint(
            "HS256",
            json!({"typ": "application/Logout+JWT"}),
            good_claims(),
            TEST_SECRET.as_bytes(),
        );
        assert_eq!(run(&typed, &[]).err(), Some(GateError::TypeInvalid));
        // Expired or not: type_invalid is the answer.
        let mut expired = logout_claims.clone();
        expired["exp"] = json!(NOW - 600.0);
        let token = mint("HS256", json!({}), expired, TEST_SECRET.as_bytes());
        assert_eq!(run(&token, &[]).err(), Some(GateError::TypeInvalid));
    }

    #[test]
    fn typ_rules_for_access_and_logout_tokens() {
        let plain = config_with(&[("JWT_SECRET", TEST_SECRET)]).unwrap();
        let at = config_with(&[("JWT_SECRET", TEST_SECRET), ("JWT_TYP", "at+jwt")]).unwrap();
        let jwt = config_with(&[("JWT_SECRET", TEST_SECRET), ("JWT_TYP", "JWT")]).unwrap();
        use TokenKind::{Access, Logout};
        for (typ, kind, config, accepted) in [
            (None, Access, &plain, true),
            (Some("JWT"), Access, &plain, true),
            (Some("logout+jwt"), Access, &plain, false),
            (Some("at+jwt"), Access, &at, true),
            (None, Access, &at, false),
            (None, Logout, &plain, true),
            (None, Logout, &at, true),
            (Some("logout+jwt"), Logout, &at, true),
            (Some("application/logout+jwt"), Logout, &at, true),
            (Some("LOGOUT+JWT"), Logout, &plain, true),
            (Some("JWT"), Logout, &plain, true),
            (Some("JWT"), Logout, &at, true),
            (Some("JWT"), Logout, &jwt, false),
            (Some("at+jwt"), Logout, &at, false),
            (Some("at+jwt"), Logout, &plain, false),
            (Some("application/at+jwt"), Logout, &at, false),
            (Some("secevent+jwt"), Logout, &plain, false),
        ] {
            assert_eq!(
                typ_accepted(typ, kind, config),
                accepted,
                "{typ:?} as {kind:?} with JWT_TYP {:?}",
                config.required_typ
            );
        }
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        // The signature is checked before the claims are read.
        assert_eq!(
            run("eyJhbGciOiJIUzI1NiJ9..", &[]).err(),
            Some(GateError::SignatureInvalid)
        );
        for junk in ["", ".", "..", "a.b.c", "a.b", "a.b.c.d", "!!!.???.***"] {
            assert_eq!(
                run(junk, &[]).err(),
                Some(GateError::TokenMalformed),
                "{junk:?}"
            );
        }
    }
}
