//! OpenID Connect Back-Channel Logout 1.0 (final): the identity provider
//! POSTs `logout_token=<JWT>` to `BACKCHANNEL_LOGOUT_PATH` when a user signs
//! out there, and Tokengate revokes what the logout token names.
//!
//! - Validation is the specification's section 2.6, with the keys, issuers
//!   and algorithms of access tokens ([`verify_signature_as`]); the audience
//!   is `BACKCHANNEL_LOGOUT_AUDIENCE` (the client ID at the provider), not
//!   `JWT_AUDIENCE`.
//! - `sid` present: that session is revoked (`v1:sid:<sid>`). Only `sub`:
//!   a user cut-off at the logout token's `iat`, never later, so a replayed
//!   logout token cannot revoke tokens issued after the original logout; a
//!   newer cut-off already stored is never lowered.
//! - Replays: the logout token's `jti` is recorded as spent (`v1:jti:<jti>`,
//!   `{"at":..,"by":"backchannel"}`, until its `exp` + leeway), after what
//!   it revoked. A logout token whose `jti` is spent is answered 200 and
//!   writes nothing: a provider retrying a delivery it thinks was lost gets
//!   the same success, and a replay changes nothing. Once the `jti` entry is
//!   gone the token has expired and is answered 400 like any expired one.
//! - Answers (2.8): 200 with `Cache-Control: no-store` and `{}`; 400
//!   `invalid_request` with a description for anything invalid; 503
//!   `revocation_unavailable` when the store cannot be read or written (the
//!   provider should retry; a storage failure is never 200); 503
//!   `keys_unavailable` when the issuer's keys cannot be fetched.

use serde::Serialize;

use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::{GateError, Reply};
use crate::form::{form_decode, is_form, MAX_BODY_BYTES};
use crate::keyring::JwksFetcher;
use crate::keys::SignatureVerifier;
use crate::revocation::{self, RevocationStore, RevokedBy, To};
use crate::verify::{verify_signature_as, TokenKind, Verification};

/// A logout token that passed every check of 2.6.
#[derive(Debug, Clone, PartialEq)]
pub struct LogoutToken {
    pub jti: String,
    pub iat: NumericDate,
    pub exp: NumericDate,
    pub sub: Option<String>,
    pub sid: Option<String>,
}

/// What a valid logout token did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// What is revoked now (or already was): the session (`sid`), and the
    /// user's tokens issued before `cut_off` (at least the end of the
    /// logout token's `iat` second).
    Revoked {
        session: bool,
        cut_off: Option<NumericDate>,
    },
    /// The logout token's `jti` was already spent: nothing was written.
    Replayed,
}

fn invalid(why: &'static str) -> GateError {
    GateError::LogoutTokenInvalid(why)
}

/// The `logout_token` parameter of a form body: `+` is a space and `%XX`
/// an octet (application/x-www-form-urlencoded). Exactly one is required;
/// other parameters are ignored.
pub fn logout_token_param(body: &[u8]) -> Result<String, GateError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(invalid("the request body is larger than 64 KiB"));
    }
    let mut found: Option<String> = None;
    for pair in body.split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        if form_decode(name).as_deref() != Some("logout_token") {
            continue;
        }
        if found.is_some() {
            return Err(invalid("the request carries more than one logout_token"));
        }
        let value =
            form_decode(value).ok_or(invalid("the logout_token parameter is not encoded right"))?;
        found = Some(value);
    }
    match found {
        Some(token) if !token.is_empty() => Ok(token),
        _ => Err(invalid("the request has no logout_token parameter")),
    }
}

/// Why a token that failed [`verify_signature_as`] is not a logout token.
fn describe(error: GateError) -> GateError {
    invalid(match error {
        // Our problem, not the token's: the provider should retry.
        GateError::KeysUnavailable => return error,
        GateError::TokenTooLarge => "the logout token is larger than this gateway accepts",
        GateError::AlgorithmNotAllowed => "the logout token's signing algorithm is not accepted",
        GateError::UnknownKey => "no key of the logout token's issuer matches it",
        GateError::SignatureInvalid => "the logout token's signature does not verify",
        GateError::IssuerInvalid => "the logout token's iss is not a configured issuer",
        GateError::TypeInvalid => {
            "the logout token's typ is not accepted (logout+jwt, JWT, or none; \
             never an access token's type)"
        }
        _ => "the logout token is not a well-formed JWT with well-typed claims",
    })
}

/// Validates a logout token as OpenID Connect Back-Channel Logout 1.0,
/// section 2.6, says:
/// 1. signature, algorithm and keys as for an access token of its issuer;
/// 2. `iss` a configured issuer, `aud` containing
///    `BACKCHANNEL_LOGOUT_AUDIENCE`, `iat` present (and not in the future
///    beyond leeway), `exp` present and not passed (leeway), `nbf` if present;
/// 3. `sub`, `sid` or both;
/// 4. `events` an object with the back-channel logout member, an object;
/// 5. no `nonce`;
/// 6. `jti` present (replays: [`apply`]).
pub async fn validate(
    raw: &str,
    config: &Config,
    verification: &Verification<'_, impl JwksFetcher, impl SignatureVerifier>,
    now: NumericDate,
) -> Result<LogoutToken, GateError> {
    let signed = verify_signature_as(raw, TokenKind::Logout, config, verification, now)
        .await
        .map_err(describe)?;
    let claims = &signed.claims;
    let leeway = config.leeway_seconds as f64;

    // An exact, configured issuer (2.6, step 2). Without one configured
    // (`JWT_ISSUER` unset) no logout token can pass: the configuration
    // logged a warning about it.
    let iss_ok = claims
        .iss
        .as_ref()
        .is_some_and(|iss| signed.provider.issuers.contains(iss));
    if !iss_ok {
        return Err(invalid("the logout token's iss is not a configured issuer"));
    }
    let aud_ok = claims
        .aud
        .as_ref()
        .is_some_and(|aud| aud.contains_any(&config.backchannel_logout_audiences));
    if !aud_ok {
        return Err(invalid(
            "the logout token's aud does not name this client (BACKCHANNEL_LOGOUT_AUDIENCE)",
        ));
    }
    let iat = claims.iat.ok_or(invalid("the logout token has no iat"))?;
    if now + leeway < iat {
        return Err(invalid("the logout token's iat is in the future"));
    }
    let exp = claims.exp.ok_or(invalid("the logout token has no exp"))?;
    if now >= exp + leeway {
        return Err(invalid("the logout token has expired"));
    }
    if claims.nbf.is_some_and(|nbf| now + leeway < nbf) {
        return Err(invalid("the logout token is not valid yet (nbf)"));
    }
    let jti = claims
        .jti
        .clone()
        .filter(|jti| !jti.is_empty())
        .ok_or(invalid("the logout token has no jti"))?;

    // The event's value must be a JSON object; its members are not defined.
    let has_event = claims
        .logout_event()
        .is_some_and(|value| value.get().starts_with('{'));
    if !has_event {
        return Err(invalid(
            "the logout token's events claim has no back-channel logout event \
             (http://schemas.openid.net/event/backchannel-logout, an object)",
        ));
    }
    // A `nonce` present at all (even null) is refused.
    if claims.has_nonce {
        return Err(invalid(
            "the logout token carries a nonce, which it must not",
        ));
    }

    let sub = claims.sub.clone().filter(|sub| !sub.is_empty());
    let sid = claims.session().map(str::to_owned);
    if sub.is_none() && sid.is_none() {
        return Err(invalid("the logout token has neither sub nor sid"));
    }
    Ok(LogoutToken {
        jti,
        iat,
        exp,
        sub,
        sid,
    })
}

/// Records what a valid logout token revokes, then its `jti` as spent.
/// One read (the `jti`, the session and the user key, in one bulk get),
/// then at most three writes. Any store failure is `revocation_unavailable`.
///
/// With `sid`, the session is revoked. With `sub`, the user is cut off at
/// the logout token's `iat` as well, unless `REQUIRE_SID` guarantees that
/// every accepted token names its session: many providers put `sid` in ID
/// and logout tokens but not in access tokens, and revoking only the session
/// would then leave the signed-out user's access tokens working.
pub async fn apply(
    store: &impl RevocationStore,
    token: &LogoutToken,
    config: &Config,
    now: NumericDate,
) -> Result<Outcome, GateError> {
    let sid = token.sid.as_deref();
    let sub = token.sub.as_deref();
    let cut_off_sub = sub.filter(|_| sid.is_none() || !config.require_sid);
    let mut keys = vec![revocation::token_key(&token.jti)];
    keys.extend(sid.map(revocation::session_key));
    keys.extend(cut_off_sub.map(revocation::user_key));
    let values = revocation::read(store, &keys).await?;
    let mut values = values.into_iter();
    if values.next().flatten().is_some() {
        return Ok(Outcome::Replayed);
    }
    let mut outcome = Outcome::Revoked {
        session: false,
        cut_off: None,
    };
    if let Some(sid) = sid {
        let stored = values.next().flatten().is_some();
        // With objects, KV's entry may be missing from the object (a
        // write that failed half-way): it goes there again.
        let to = match (stored, sub) {
            (false, _) => Some(To::Everywhere(sub)),
            (true, Some(sub)) if store.has_user_objects() => Some(To::ObjectOf(sub)),
            (true, _) => None,
        };
        if let Some(to) = to {
            revocation::revoke_session(
                store,
                to,
                sid,
                RevokedBy::Backchannel,
                now,
                config.lifetimes(),
            )
            .await?;
        }
        if sub.is_none() && store.has_user_objects() {
            // KV has it, but no object can be found without `sub`; the
            // provider is told it failed, and may send it again.
            return Err(GateError::UserRequired(
                "the logout token has no sub: its session is revoked in KV but not in \
                 the user's Durable Object (strict paths, refresh tokens)",
            ));
        }
        outcome = Outcome::Revoked {
            session: true,
            cut_off: None,
        };
    }
    if let Some(sub) = cut_off_sub {
        let stored = match values.next().flatten() {
            Some(value) => Some(
                revocation::parse_cut_off(&value).map_err(|_| GateError::RevocationUnavailable)?,
            ),
            None => None,
        };
        // Never lower a cut-off: a later logout-all stays in force.
        let cut_off = match stored {
            // KV has it; the user's object may not (a write that failed
            // half-way): it goes there again, never lowered.
            Some(stored) if stored >= revocation::cut_off_after(token.iat) => {
                revocation::mirror_cut_off(store, sub, stored, now, config.lifetimes()).await?
            }
            _ => {
                revocation::cut_off_user_at(store, sub, token.iat, now, config.lifetimes()).await?
            }
        };
        outcome = Outcome::Revoked {
            session: sid.is_some(),
            cut_off: Some(cut_off),
        };
    }
    // The spent logout token concerns no user's object.
    revocation::revoke_token(
        store,
        To::Everywhere(None),
        &token.jti,
        Some(token.exp),
        RevokedBy::Backchannel,
        now,
        config.lifetimes(),
    )
    .await?;
    Ok(outcome)
}

#[derive(Serialize)]
struct Empty {}

/// The route: `content_type` and `body` of a POST (the method was checked
/// by the gateway). Every answer carries `Cache-Control: no-store`.
pub async fn handle(
    content_type: Option<&str>,
    body: &[u8],
    config: &Config,
    verification: &Verification<'_, impl JwksFetcher, impl SignatureVerifier>,
    store: &impl RevocationStore,
    now: NumericDate,
) -> Result<(Reply, Outcome), GateError> {
    if !is_form(content_type) {
        return Err(invalid(
            "the request must be application/x-www-form-urlencoded with a logout_token",
        ));
    }
    let raw = logout_token_param(body)?;
    let token = validate(&raw, config, verification, now).await?;
    let outcome = apply(store, &token, config, now).await?;
    Ok((Reply::json(200, &Empty {}), outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{config_with, TEST_SECRET};
    use crate::keyring::Keyring;
    use crate::revocation::{check, MemoryStore, Status};
    use crate::token::{Claims, BACKCHANNEL_LOGOUT_EVENT};
    use crate::verify::tests::mint;
    use pollster::block_on;
    use serde_json::{json, Value};

    const NOW: f64 = 1_700_000_000.0;
    const ISS: &str = "https://idp.example";

    fn config() -> Config {
        config_and(&[])
    }

    /// Every token names its session: a logout ends that session only.
    fn config_requiring_sid() -> Config {
        config_and(&[("REQUIRE_SID", "true")])
    }

    fn config_and(extra: &[(&str, &str)]) -> Config {
        let mut pairs = vec![
            ("JWT_SECRET", TEST_SECRET),
            ("JWT_ISSUER", ISS),
            ("JWT_AUDIENCE", "api"),
            ("JWT_TYP", "at+jwt"),
            ("JWT_LEEWAY_SECONDS", "30"),
            ("BACKCHANNEL_LOGOUT_PATH", "/auth/backchannel-logout"),
            ("BACKCHANNEL_LOGOUT_AUDIENCE", "client-1"),
        ];
        pairs.extend_from_slice(extra);
        config_with(&pairs).unwrap()
    }

    fn good() -> Value {
        json!({
            "iss": ISS, "aud": "client-1", "iat": NOW - 5.0, "exp": NOW + 120.0, "jti": "lt-1",
            "sub": "alice", "sid": "s-1",
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}}
        })
    }

    fn logout_token(header: Value, claims: Value) -> String {
        mint("HS256", header, claims, TEST_SECRET.as_bytes())
    }

    fn run(raw: &str, store: &MemoryStore) -> Result<(Reply, Outcome), GateError> {
        run_at(raw, store, NOW)
    }

    fn run_at(raw: &str, store: &MemoryStore, now: f64) -> Result<(Reply, Outcome), GateError> {
        run_with(&config(), raw, store, now)
    }

    fn run_with(
        config: &Config,
        raw: &str,
        store: &MemoryStore,
        now: f64,
    ) -> Result<(Reply, Outcome), GateError> {
        let keyring = Keyring::default();
        let verification = Verification::offline(&keyring);
        let body = format!("logout_token={raw}");
        block_on(handle(
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            body.as_bytes(),
            config,
            &verification,
            store,
            now,
        ))
    }

    fn with(changes: Value) -> Value {
        let mut claims = good();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    #[test]
    fn form_bodies_are_decoded() {
        assert_eq!(logout_token_param(b"logout_token=a.b.c").unwrap(), "a.b.c");
        assert_eq!(
            logout_token_param(b"x=1&logout%5Ftoken=a%2Eb+c&y").unwrap(),
            "a.b c"
        );
        for bad in [
            &b""[..],
            b"token=a.b.c",
            b"logout_token=",
            b"logout_token",
            b"logout_token=a&logout_token=a",
            b"logout_token=%zz",
            b"logout_token=%e",
            b"logout_token=%ff",
        ] {
            assert!(
                matches!(
                    logout_token_param(bad),
                    Err(GateError::LogoutTokenInvalid(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(logout_token_param(&vec![b'a'; MAX_BODY_BYTES + 1]).is_err());
        assert!(is_form(Some("application/x-www-form-urlencoded")));
        assert!(is_form(Some(
            " Application/X-WWW-Form-Urlencoded ; charset=utf-8"
        )));
        for other in [None, Some("application/json"), Some("text/plain"), Some("")] {
            assert!(!is_form(other), "{other:?}");
        }
    }

    #[test]
    fn with_require_sid_a_logout_token_revokes_its_session_only_and_is_spent() {
        let store = MemoryStore::default();
        let config = config_requiring_sid();
        let raw = logout_token(json!({"typ": "logout+jwt"}), good());
        let (reply, outcome) = run_with(&config, &raw, &store, NOW).unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "{}\n"));
        assert_eq!(reply.header("Cache-Control"), Some("no-store"));
        assert_eq!(
            outcome,
            Outcome::Revoked {
                session: true,
                cut_off: None
            }
        );
        let entries = store.entries.borrow().clone();
        assert_eq!(
            entries["v1:sid:s-1"].0,
            r#"{"at":1700000000,"by":"backchannel"}"#
        );
        assert_eq!(
            entries["v1:sid:s-1"].1,
            Some(1_700_000_000 + 2_592_000 + 30)
        );
        assert_eq!(entries["v1:jti:lt-1"].1, Some(1_700_000_000 + 120 + 30));
        assert!(
            !entries.contains_key("v1:sub:alice"),
            "sid: the session only"
        );
        // A token of that session is revoked; one of another session is not.
        let of = |sid: &str| Claims {
            sub: Some("alice".into()),
            sid: Some(sid.into()),
            iat: Some(NOW - 1.0),
            ..Claims::default()
        };
        assert_eq!(
            block_on(check(&store, "a", &of("s-1"))),
            Ok(Status::Revoked(RevokedBy::Session))
        );
        assert_eq!(block_on(check(&store, "b", &of("s-2"))), Ok(Status::Active));
        // The same logout token again: 200, nothing written.
        let (writes, reads) = (store.writes.get(), store.reads.get());
        let (reply, outcome) = run_with(&config, &raw, &store, NOW).unwrap();
        assert_eq!((reply.status, outcome), (200, Outcome::Replayed));
        assert_eq!(store.writes.get(), writes);
        assert_eq!(
            store.reads.get(),
            reads + 1,
            "one bulk get per logout token"
        );
    }

    #[test]
    fn by_default_a_logout_token_with_sid_and_sub_also_cuts_off_the_user() {
        // The provider's access tokens may carry no sid (oidc-provider's,
        // for one): revoking the session alone would leave them working.
        let store = MemoryStore::default();
        let raw = logout_token(json!({}), good());
        let (reply, outcome) = run(&raw, &store).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(
            outcome,
            Outcome::Revoked {
                session: true,
                cut_off: Some(NOW - 4.0)
            },
            "the end of the logout token's iat second"
        );
        let token = |sid: Option<&str>, iat: f64| Claims {
            sub: Some("alice".into()),
            sid: sid.map(Into::into),
            iat: Some(iat),
            ..Claims::default()
        };
        let status = |claims: &Claims| block_on(check(&store, "t", claims));
        let cut_off = Ok(Status::Revoked(RevokedBy::UserCutOff));
        assert_eq!(status(&token(None, NOW - 60.0)), cut_off, "no sid");
        assert_eq!(status(&token(None, NOW - 5.0)), cut_off, "the same second");
        assert_eq!(status(&token(Some("s-2"), NOW - 5.0)), cut_off);
        assert_eq!(
            status(&token(None, NOW - 4.0)),
            Ok(Status::Active),
            "issued in the next second: after the logout"
        );
    }

    #[test]
    fn sub_only_cuts_off_at_the_end_of_the_logout_tokens_iat_second_and_never_lowers_a_cut_off() {
        let store = MemoryStore::default();
        let raw = logout_token(json!({}), with(json!({"sid": null, "iat": NOW - 20.0})));
        let cut_off = |at: f64| Outcome::Revoked {
            session: false,
            cut_off: Some(at),
        };
        let (_, outcome) = run(&raw, &store).unwrap();
        assert_eq!(outcome, cut_off(NOW - 19.0));
        assert_eq!(store.entries.borrow()["v1:sub:alice"].0, "1699999981.000");
        let token = |iat: f64| Claims {
            sub: Some("alice".into()),
            iat: Some(iat),
            ..Claims::default()
        };
        assert_eq!(
            block_on(check(&store, "old", &token(NOW - 21.0))),
            Ok(Status::Revoked(RevokedBy::UserCutOff))
        );
        assert_eq!(
            block_on(check(&store, "same", &token(NOW - 20.0))),
            Ok(Status::Revoked(RevokedBy::UserCutOff)),
            "the logout token's own second: it may be from before the logout"
        );
        assert_eq!(
            block_on(check(&store, "same", &token(NOW - 19.5))),
            Ok(Status::Revoked(RevokedBy::UserCutOff)),
            "a fractional iat inside that second, too"
        );
        assert_eq!(
            block_on(check(&store, "new", &token(NOW - 19.0))),
            Ok(Status::Active),
            "issued in the next second: not revoked"
        );
        // Another (older) logout token does not move the cut-off back.
        let older = logout_token(
            json!({}),
            with(json!({"sid": null, "iat": NOW - 60.0, "jti": "lt-2"})),
        );
        let (_, outcome) = run(&older, &store).unwrap();
        assert_eq!(outcome, cut_off(NOW - 19.0));
        assert_eq!(store.entries.borrow()["v1:sub:alice"].0, "1699999981.000");
        // A newer one moves it forward.
        let newer = logout_token(
            json!({}),
            with(json!({"sid": null, "iat": NOW - 1.0, "jti": "lt-3"})),
        );
        run(&newer, &store).unwrap();
        assert_eq!(store.entries.borrow()["v1:sub:alice"].0, "1700000000.000");
        // A replay of the first one, later, changes nothing.
        let writes = store.writes.get();
        let (_, outcome) = run_at(&raw, &store, NOW + 60.0).unwrap();
        assert_eq!(outcome, Outcome::Replayed);
        assert_eq!(store.writes.get(), writes);
    }

    fn refused(raw: &str) -> String {
        let store = MemoryStore::default();
        match run(raw, &store) {
            Err(e @ GateError::LogoutTokenInvalid(why)) => {
                let reply = e.to_reply();
                assert_eq!(reply.status, 400);
                assert_eq!(reply.header("Cache-Control"), Some("no-store"));
                assert_eq!(reply.header("WWW-Authenticate"), None);
                assert!(reply.body.contains(r#""error":"invalid_request""#));
                assert_eq!(store.writes.get(), 0, "{why}: nothing written");
                assert_eq!(store.reads.get(), 0, "{why}: nothing read");
                why.to_owned()
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn every_rule_of_section_2_6_is_enforced() {
        let plain = |changes: Value| logout_token(json!({}), with(changes));
        for (raw, expected) in [
            (plain(json!({"aud": "api"})), "aud"),
            (plain(json!({"aud": ["api", "other"]})), "aud"),
            (plain(json!({"aud": null})), "aud"),
            (plain(json!({"iss": "https://evil.example"})), "iss"),
            (plain(json!({"iss": null})), "iss"),
            (plain(json!({"iat": null})), "no iat"),
            (plain(json!({"iat": NOW + 31.0})), "future"),
            (plain(json!({"exp": null})), "no exp"),
            (plain(json!({"exp": NOW - 30.0})), "expired"),
            (plain(json!({"nbf": NOW + 31.0})), "nbf"),
            (plain(json!({"jti": null})), "jti"),
            (plain(json!({"jti": ""})), "jti"),
            (plain(json!({"events": null})), "events"),
            (plain(json!({"events": {}})), "events"),
            (
                plain(json!({"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}})),
                "events",
            ),
            (
                plain(json!({"events": {BACKCHANNEL_LOGOUT_EVENT: []}})),
                "events",
            ),
            (
                plain(json!({"events": [BACKCHANNEL_LOGOUT_EVENT]})),
                "events",
            ),
            (
                plain(json!({"events": {"http://schemas.openid.net/event/other": {}}})),
                "events",
            ),
            (plain(json!({"nonce": "n-1"})), "nonce"),
            (
                plain(json!({"sub": null, "sid": null})),
                "neither sub nor sid",
            ),
            (plain(json!({"sub": "", "sid": ""})), "neither sub nor sid"),
            (logout_token(json!({"typ": "at+jwt"}), good()), "typ"),
            (
                logout_token(json!({"typ": "application/at+jwt"}), good()),
                "typ",
            ),
            (
                mint(
                    "HS256",
                    json!({}),
                    good(),
                    b"another-secret-that-is-long-enough-too",
                ),
                "signature",
            ),
            ("not.a.jwt".to_owned(), "well-formed"),
            (plain(json!({"sid": 5})), "well-formed"),
        ] {
            let why = refused(&raw);
            assert!(why.contains(expected), "{expected}: {why}");
        }
        // A null nonce is a nonce too.
        let mut claims = good();
        claims["nonce"] = Value::Null;
        assert!(refused(&logout_token(json!({}), claims)).contains("nonce"));
        // Inside the leeway: fine.
        let store = MemoryStore::default();
        for (i, changes) in [
            json!({"iat": NOW + 30.0}),
            json!({"exp": NOW - 29.0}),
            json!({"aud": ["other", "client-1"]}),
            json!({"sub": null}),
            json!({"events": {BACKCHANNEL_LOGOUT_EVENT: {}, "https://x/other": 1}}),
        ]
        .into_iter()
        .enumerate()
        {
            let mut claims = with(changes.clone());
            claims["jti"] = json!(format!("ok-{i}"));
            for typ in [
                json!({}),
                json!({"typ": "logout+jwt"}),
                json!({"typ": "JWT"}),
            ] {
                let raw = logout_token(typ, claims.clone());
                assert!(run(&raw, &store).is_ok(), "{changes} {raw}");
            }
        }
    }

    #[test]
    fn without_a_configured_issuer_every_logout_token_is_refused() {
        let config = config_with(&[
            ("JWT_SECRET", TEST_SECRET),
            ("BACKCHANNEL_LOGOUT_PATH", "/bc"),
            ("BACKCHANNEL_LOGOUT_AUDIENCE", "client-1"),
        ])
        .unwrap();
        let keyring = Keyring::default();
        let verification = Verification::offline(&keyring);
        let raw = logout_token(json!({}), good());
        assert_eq!(
            block_on(validate(&raw, &config, &verification, NOW)),
            Err(invalid("the logout token's iss is not a configured issuer"))
        );
    }

    #[test]
    fn a_wrong_content_type_or_body_is_refused() {
        let keyring = Keyring::default();
        let verification = Verification::offline(&keyring);
        let store = MemoryStore::default();
        let raw = logout_token(json!({}), good());
        let body = format!("logout_token={raw}");
        for content_type in [None, Some("application/json"), Some("multipart/form-data")] {
            let answer = block_on(handle(
                content_type,
                body.as_bytes(),
                &config(),
                &verification,
                &store,
                NOW,
            ));
            assert!(matches!(answer, Err(GateError::LogoutTokenInvalid(_))));
        }
        assert_eq!(store.writes.get(), 0);
    }

    #[test]
    fn a_storage_failure_is_never_a_success() {
        let raw = logout_token(json!({}), good());
        let down = MemoryStore::default();
        down.fail_reads.set(true);
        assert_eq!(
            run(&raw, &down).err(),
            Some(GateError::RevocationUnavailable)
        );
        let flaky = MemoryStore::default();
        flaky.failing_writes.set(3);
        assert_eq!(
            run(&raw, &flaky).err(),
            Some(GateError::RevocationUnavailable)
        );
        assert!(flaky.entries.borrow().is_empty());
        // The session written, the jti not: a retry finishes the job.
        let half = MemoryStore::default();
        half.failing_writes.set(0);
        block_on(half.put("v1:sid:s-1", r#"{"at":1,"by":"backchannel"}"#, None)).unwrap();
        half.failing_writes.set(3);
        assert_eq!(
            run(&raw, &half).err(),
            Some(GateError::RevocationUnavailable)
        );
        assert!(!half.entries.borrow().contains_key("v1:jti:lt-1"));
        assert_eq!(
            run(&raw, &half).map(|r| r.1),
            Ok(Outcome::Revoked {
                session: true,
                cut_off: Some(NOW - 4.0)
            })
        );
        assert!(half.entries.borrow().contains_key("v1:jti:lt-1"));
        // An unreadable cut-off is not overwritten blindly.
        let garbage = MemoryStore::default();
        block_on(garbage.put("v1:sub:alice", "soon", None)).unwrap();
        let sub_only = logout_token(json!({}), with(json!({"sid": null})));
        assert_eq!(
            run(&sub_only, &garbage).err(),
            Some(GateError::RevocationUnavailable)
        );
    }
}
