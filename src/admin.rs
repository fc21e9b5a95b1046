//! The admin API: `POST /_admin/revoke` (RFC 7009 spirit: 200 even for a
//! token we do not know) and `POST /_admin/introspect` (RFC 7662 answer,
//! with the reason when inactive). It exists only when `ADMIN_TOKEN` is set.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::{GateError, Reply};
use crate::form::MAX_BODY_BYTES;
use crate::keyring::JwksFetcher;
use crate::keys::SignatureVerifier;
use crate::revocation::{self, Lifetimes, RevocationStore, RevokedBy, Status, To};
use crate::token;
use crate::verify::{verify_signature, verify_token, Verification};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    Revoke,
    Introspect,
}

/// 404 when the API is not configured (it does not exist), 405 for a method
/// other than POST, 401 for a missing or wrong admin token.
pub fn authorize(
    config: &Config,
    method: &str,
    authorization: Option<&str>,
) -> Result<(), GateError> {
    let expected = config
        .admin_token
        .as_deref()
        .ok_or(GateError::AdminDisabled)?;
    if method != "POST" {
        return Err(GateError::MethodNotAllowed);
    }
    let presented = authorization
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(GateError::AdminUnauthorized)?;
    if constant_time_eq(presented, expected) {
        Ok(())
    } else {
        Err(GateError::AdminUnauthorized)
    }
}

/// Compares digests so that neither the length nor the first differing byte
/// of the secret shows in the timing.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The answer of `/_admin/revoke`.
#[derive(Serialize, Default)]
struct Revoked<'a> {
    revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_before: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// The answer of `/_admin/introspect` (RFC 7662, plus why when inactive).
#[derive(Serialize, Default)]
struct Introspection<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a token::Audience>,
    /// RFC 7662 times are integers; a fractional claim is rounded to the
    /// safe side (expires no later, valid no earlier than the token says).
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_by: Option<RevokedBy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminRequest {
    token: Option<String>,
    jti: Option<String>,
    exp: Option<f64>,
    sub: Option<String>,
    sid: Option<String>,
}

pub async fn handle(
    action: AdminAction,
    body: &[u8],
    config: &Config,
    verification: &Verification<'_, impl JwksFetcher, impl SignatureVerifier>,
    store: &impl RevocationStore,
    now: NumericDate,
) -> Reply {
    let result = match parse_request(body) {
        Ok(request) => match action {
            AdminAction::Revoke => revoke(request, config, verification, store, now).await,
            AdminAction::Introspect => introspect(request, config, verification, store, now).await,
        },
        Err(e) => Err(e),
    };
    result.unwrap_or_else(GateError::to_reply)
}

fn parse_request(body: &[u8]) -> Result<AdminRequest, GateError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(GateError::InvalidRequest);
    }
    serde_json::from_slice(body).map_err(|_| GateError::InvalidRequest)
}

async fn revoke(
    request: AdminRequest,
    config: &Config,
    verification: &Verification<'_, impl JwksFetcher, impl SignatureVerifier>,
    store: &impl RevocationStore,
    now: NumericDate,
) -> Result<Reply, GateError> {
    let lifetimes = config.lifetimes();
    match request {
        AdminRequest {
            token: Some(raw),
            jti: None,
            exp: None,
            sub: None,
            sid: None,
        } => {
            // Only a token we would have accepted is revoked by its ID, so a
            // forged token cannot knock out somebody else's `jti`. Its
            // expiry does not matter: revoking a dead token is harmless.
            match verify_signature(&raw, config, verification, now).await {
                Ok(signed) => {
                    let id = token::token_id(signed.parsed.signing_input, &signed.claims);
                    let user = signed.claims.sub.as_deref();
                    revoke_id(store, user, &id, signed.claims.exp, lifetimes, now).await
                }
                Err(reason) => Ok(Reply::json(
                    200,
                    &Revoked {
                        reason: Some(reason.code()),
                        ..Revoked::default()
                    },
                )),
            }
        }
        AdminRequest {
            token: None,
            jti: Some(jti),
            exp: Some(exp),
            sub,
            sid: None,
        } if !jti.is_empty() && exp.is_finite() => {
            let user = user_for_objects(store, sub.as_deref())?;
            revoke_id(store, user, &jti, Some(exp), lifetimes, now).await
        }
        AdminRequest {
            token: None,
            jti: None,
            exp: None,
            sub,
            sid: Some(sid),
        } if !sid.is_empty() => {
            let user = user_for_objects(store, sub.as_deref())?;
            let until = revocation::revoke_session(
                store,
                To::Everywhere(user),
                &sid,
                RevokedBy::Admin,
                now,
                config.lifetimes(),
            )
            .await?;
            Ok(Reply::json(
                200,
                &Revoked {
                    revoked: true,
                    sid: Some(&sid),
                    expires_at: Some(until),
                    ..Revoked::default()
                },
            ))
        }
        AdminRequest {
            token: None,
            jti: None,
            exp: None,
            sub: Some(sub),
            sid: None,
        } if !sub.is_empty() => {
            let cut_off = revocation::cut_off_user(store, &sub, now, config.lifetimes()).await?;
            Ok(Reply::json(
                200,
                &Revoked {
                    revoked: true,
                    sub: Some(&sub),
                    revoked_before: Some(cut_off),
                    ..Revoked::default()
                },
            ))
        }
        _ => Err(GateError::InvalidRequest),
    }
}

/// The user whose object must see a revocation by `jti` or `sid`. With
/// per-user objects bound the request must name it (`sub`): otherwise the
/// revocation could not reach strict paths and refresh tokens at once.
fn user_for_objects<'a>(
    store: &impl RevocationStore,
    sub: Option<&'a str>,
) -> Result<Option<&'a str>, GateError> {
    let sub = sub.filter(|s| !s.is_empty());
    if sub.is_none() && store.has_user_objects() {
        return Err(GateError::UserRequired(
            "name the token's user too (\"sub\"): with SESSIONS bound, a revocation must \
             reach the user's Durable Object",
        ));
    }
    Ok(sub)
}

async fn revoke_id(
    store: &impl RevocationStore,
    user: Option<&str>,
    id: &str,
    exp: Option<NumericDate>,
    lifetimes: Lifetimes,
    now: NumericDate,
) -> Result<Reply, GateError> {
    let until = revocation::revoke_token(
        store,
        To::Everywhere(user),
        id,
        exp,
        RevokedBy::Admin,
        now,
        lifetimes,
    )
    .await?;
    Ok(Reply::json(
        200,
        &Revoked {
            revoked: true,
            token_id: Some(id),
            expires_at: Some(until),
            ..Revoked::default()
        },
    ))
}

async fn introspect(
    request: AdminRequest,
    config: &Config,
    verification: &Verification<'_, impl JwksFetcher, impl SignatureVerifier>,
    store: &impl RevocationStore,
    now: NumericDate,
) -> Result<Reply, GateError> {
    let AdminRequest {
        token: Some(raw),
        jti: None,
        exp: None,
        sub: None,
        sid: None,
    } = request
    else {
        return Err(GateError::InvalidRequest);
    };
    let inactive = |reason: GateError, revoked_by: Option<RevokedBy>| {
        Reply::json(
            200,
            &Introspection {
                error: Some(reason.code()),
                error_description: Some(reason.description()),
                revoked_by,
                ..Introspection::default()
            },
        )
    };
    let verified = match verify_token(&raw, config, verification, now).await {
        Ok(v) => v,
        Err(reason) => return Ok(inactive(reason, None)),
    };
    // A store failure is the gateway's problem, not an answer about the token.
    match revocation::check(store, &verified.identity.token_id, &verified.claims).await? {
        Status::Revoked(by) => Ok(inactive(GateError::TokenRevoked, Some(by))),
        Status::Active => {
            let c = &verified.claims;
            Ok(Reply::json(
                200,
                &Introspection {
                    active: true,
                    sub: c.sub.as_deref(),
                    iss: c.iss.as_deref(),
                    aud: c.aud.as_ref(),
                    exp: c.exp.map(|t| t.floor() as i64),
                    iat: c.iat.map(|t| t.floor() as i64),
                    nbf: c.nbf.map(|t| t.ceil() as i64),
                    jti: Some(&verified.identity.token_id),
                    sid: c.session(),
                    token_type: Some("Bearer"),
                    ..Introspection::default()
                },
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{config_with, TEST_SECRET};
    use crate::keyring::Keyring;
    use crate::revocation::MemoryStore;
    use crate::verify::tests::mint;
    use pollster::block_on;
    use serde_json::{json, Value};

    const NOW: f64 = 1_700_000_000.0;

    fn call(action: AdminAction, body: Value, store: &MemoryStore) -> (u16, Value) {
        let config = config_with(&[
            ("JWT_SECRET", TEST_SECRET),
            ("SESSION_LIFETIME_SECONDS", "3600"),
        ])
        .unwrap();
        let keyring = Keyring::default();
        let verification = Verification::offline(&keyring);
        let reply = block_on(handle(
            action,
            body.to_string().as_bytes(),
            &config,
            &verification,
            store,
            NOW,
        ));
        (reply.status, serde_json::from_str(&reply.body).unwrap())
    }

    #[test]
    fn a_session_is_revoked_by_its_sid_and_introspection_says_so() {
        let store = MemoryStore::default();
        let token = |sid: &str| {
            mint(
                "HS256",
                json!({}),
                json!({"sub": "alice", "sid": sid, "iat": NOW - 5.0, "exp": NOW + 600.0}),
                TEST_SECRET.as_bytes(),
            )
        };
        let (status, body) = call(AdminAction::Revoke, json!({"sid": "s-1"}), &store);
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"revoked": true, "sid": "s-1", "expires_at": 1_700_000_000 + 3600})
        );
        assert_eq!(
            store.entries.borrow()["v1:sid:s-1"].0,
            r#"{"at":1700000000,"by":"admin"}"#
        );
        let (_, body) = call(
            AdminAction::Introspect,
            json!({"token": token("s-1")}),
            &store,
        );
        assert_eq!(body["active"], false);
        assert_eq!(body["error"], "token_revoked");
        assert_eq!(body["revoked_by"], "session");
        let (_, body) = call(
            AdminAction::Introspect,
            json!({"token": token("s-2")}),
            &store,
        );
        assert_eq!(
            (body["active"].clone(), body["sid"].clone()),
            (json!(true), json!("s-2"))
        );
        for bad in [
            json!({"sid": ""}),
            json!({"sid": "s-1", "jti": "x"}),
            json!({"sid": "s-1", "token": "x"}),
            json!({"sid": 5}),
        ] {
            assert_eq!(
                call(AdminAction::Revoke, bad.clone(), &store).0,
                400,
                "{bad}"
            );
        }
        assert_eq!(
            call(AdminAction::Introspect, json!({"sid": "s-1"}), &store).0,
            400
        );
    }

    #[test]
    fn with_user_objects_a_revocation_by_id_must_name_its_user() {
        let store = MemoryStore::with_user_objects();
        for request in [json!({"jti": "j", "exp": 1.8e9}), json!({"sid": "s-1"})] {
            let (status, body) = call(AdminAction::Revoke, request.clone(), &store);
            assert_eq!(
                (status, &body["error"]),
                (400, &json!("invalid_request")),
                "{request}"
            );
        }
        let (status, _) = call(
            AdminAction::Revoke,
            json!({"jti": "j", "exp": 1.8e9, "sub": "alice"}),
            &store,
        );
        assert_eq!(status, 200);
        assert!(store.object_entry("alice", "v1:jti:j").is_some());
        assert!(store.entries.borrow().contains_key("v1:jti:j"));
    }
}
