//! The decision for one request: what the adapter should do with it.
//!
//! ```text
//! adapter ── Incoming ──▶ Gateway::decide ──▶ Forward / ForwardPasswordChange / ReadAdminBody / Reply
//! ```
//! The adapter does the I/O the core cannot (forwarding, reading a body) and
//! comes back for the second half where there is one.

use serde::Serialize;

use crate::admin::{self, AdminAction};
use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::{GateError, Refusal, Reply};
use crate::keyring::JwksFetcher;
use crate::keys::SignatureVerifier;
use crate::origin_revoke::{self, Directive, Write};
use crate::refresh::{self, SpendOutcome, SpendRequest, SpendStore};
use crate::revocation::{self, RevokedBy, Status, To};
use crate::routes::{self, Route};
use crate::token;
use crate::verify::{verify_token_as, verify_token_for_log, TokenKind, Verification};
pub use crate::verify::{Identity, Verified};

/// The answer of the logout routes.
#[derive(Serialize)]
struct LoggedOut<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<&'a str>,
    /// The session that was revoked with the token (its `sid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_before: Option<f64>,
}

/// The parts of a request the core decides on.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub cookie: Option<&'a str>,
    /// `OPTIONS` carrying `Access-Control-Request-Method`.
    pub cors_preflight: bool,
    /// The request's `Origin` header, if any (CORS for the logout routes).
    pub origin: Option<&'a str>,
}

#[derive(Debug)]
pub enum Decision {
    /// Forward to the origin, with this verified token (`None`: public
    /// route or preflight). Its identity goes to the origin; a
    /// `Tokengate-Revoke` answer is acted on only when there is one
    /// ([`Gateway::finish_origin_revocation`]).
    Forward(Option<Verified>),
    /// Forward; if the origin accepts the change, call
    /// [`Gateway::finish_password_change`] before answering.
    ForwardPasswordChange(Verified),
    /// The caller is an authorized admin; read the body and call
    /// [`admin::handle`].
    ReadAdminBody(AdminAction),
    /// A POST to `REFRESH_PATH`: read its body (at most
    /// [`crate::form::MAX_BODY_BYTES`]), call [`Gateway::refresh`], and on `Ok`
    /// forward the request with that same body.
    Refresh,
    /// A POST to `BACKCHANNEL_LOGOUT_PATH`: read its `Content-Type` and body
    /// (at most [`crate::form::MAX_BODY_BYTES`]) and call
    /// [`crate::backchannel::handle`].
    ReadBackchannelBody,
    /// Answer directly.
    Reply(Reply),
}

pub struct Gateway<'a, F, V, S> {
    pub config: &'a Config,
    pub verification: &'a Verification<'a, F, V>,
    pub store: &'a S,
}

/// A rarely taken branch's future, boxed so that the compiler cannot inline
/// it into the per-request state machine. Inlined, every route's code sat in
/// one 80 KB wasm function that the first request of an isolate had to
/// compile whole before it could run (wasm is compiled lazily, function by
/// function): the cold start paid for routes it did not take. One allocation
/// on a route that also writes to KV is nothing.
pub(crate) fn out_of_line<'a, T>(
    future: impl std::future::Future<Output = T> + 'a,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>> {
    Box::pin(future)
}

impl<F: JwksFetcher, V: SignatureVerifier, S: SpendStore> Gateway<'_, F, V, S> {
    pub async fn decide(&self, req: &Incoming<'_>, now: NumericDate) -> Decision {
        let config = self.config;
        let loose = routes::LoosePath::new(req.path);
        let route = routes::route_loose(
            req.method,
            &loose,
            req.cors_preflight,
            &config.password_change_path,
            config.backchannel_logout_path.as_deref(),
            &config.public_paths,
        );
        // The refresh route, like the other gateway routes, wins over
        // `PUBLIC_PATHS`.
        let route = match (route, &config.refresh) {
            (Route::Public | Route::Protected, Some(refresh)) if loose.reaches(&refresh.path) => {
                Route::Refresh
            }
            (route, _) => route,
        };
        let strict = loose.is_strict(&config.strict_paths);
        // A path both public and strict is strict: the stronger rule wins.
        let route = match route {
            Route::Public if strict => Route::Protected,
            route => route,
        };
        // CORS, only for the logout routes and only for a listed origin; an
        // unlisted one gets no Access-Control-* header at all.
        let cors_origin = match route {
            Route::Logout | Route::LogoutAll => config.allowed_cors_origin(req.origin),
            _ => None,
        };
        if let Some(origin) = cors_origin {
            if req.method == "OPTIONS" && req.cors_preflight {
                return Decision::Reply(cors_preflight_reply(origin));
            }
        }
        let result: Result<Decision, Refusal> = match route {
            Route::Preflight | Route::Public => Ok(Decision::Forward(None)),
            Route::Protected => self
                .authenticate_for(req, now, strict)
                .await
                .map(|v| Decision::Forward(Some(v))),
            Route::Refresh => self.refresh_route(req),
            // Refused before the origin sees it when the token has no `sub`:
            // the password would change with no cut-off to record.
            Route::PasswordChange if changes_state(req.method) => self
                .authenticate_for(req, now, strict)
                .await
                .and_then(|verified| match verified.identity.subject {
                    Some(_) => Ok(Decision::ForwardPasswordChange(verified)),
                    None => Err(verified.identity.refuse(GateError::SubjectMissing)),
                }),
            // Showing a password form must not sign anybody out.
            Route::PasswordChange => self
                .authenticate_for(req, now, strict)
                .await
                .map(|v| Decision::Forward(Some(v))),
            Route::Logout => out_of_line(self.logout(req, now))
                .await
                .map(Decision::Reply),
            Route::LogoutAll => out_of_line(self.logout_all(req, now))
                .await
                .map(Decision::Reply),
            Route::AdminRevoke | Route::AdminIntrospect => {
                let action = if route == Route::AdminRevoke {
                    AdminAction::Revoke
                } else {
                    AdminAction::Introspect
                };
                admin::authorize(config, req.method, req.authorization)
                    .map(|()| Decision::ReadAdminBody(action))
                    .map_err(Refusal::from)
            }
            Route::BackchannelLogout => require_post(req.method)
                .map(|()| Decision::ReadBackchannelBody)
                .map_err(Refusal::from),
        };
        let mut decision = result.unwrap_or_else(|refusal| Decision::Reply(refusal.to_reply()));
        if let (Some(origin), Decision::Reply(reply)) = (cors_origin, &mut decision) {
            // Success and error replies alike, so a browser can read why.
            reply.headers.extend(cors_headers(origin));
        }
        decision
    }

    /// A valid token that is not revoked, or why not (naming the token once
    /// its signature verified).
    pub async fn authenticate(
        &self,
        req: &Incoming<'_>,
        now: NumericDate,
    ) -> Result<Verified, Refusal> {
        let verified = self.verify_present_token(req, now).await?;
        let refuse = |e| verified.identity.refuse(e);
        match revocation::check(self.store, &verified.identity.token_id, &verified.claims)
            .await
            .map_err(refuse)?
        {
            Status::Active => Ok(verified),
            Status::Revoked(_) => Err(refuse(GateError::TokenRevoked)),
        }
    }

    /// [`Gateway::authenticate`], and on `STRICT_PATHS` (`strict`) also against the
    /// user's Durable Object, which holds every acknowledged revocation at
    /// once (KV may take up to a minute to show one elsewhere).
    async fn authenticate_for(
        &self,
        req: &Incoming<'_>,
        now: NumericDate,
        strict: bool,
    ) -> Result<Verified, Refusal> {
        let verified = self.authenticate(req, now).await?;
        if strict {
            out_of_line(self.check_strictly(&verified)).await?;
        }
        Ok(verified)
    }

    async fn check_strictly(&self, verified: &Verified) -> Result<(), Refusal> {
        let refuse = |e| verified.identity.refuse(e);
        let sub = verified.claims.sub.as_deref().filter(|s| !s.is_empty());
        let sub = sub.ok_or_else(|| {
            refuse(GateError::ClaimsMissing(
                "this path needs a token with sub, checked against its user's sessions",
            ))
        })?;
        let id = &verified.identity.token_id;
        match revocation::check_strict(self.store, sub, id, &verified.claims)
            .await
            .map_err(refuse)?
        {
            Status::Active => Ok(()),
            Status::Revoked(_) => Err(refuse(GateError::TokenRevoked)),
        }
    }

    /// `REFRESH_PATH`, `POST` only. A GET (a prefetch, a typed URL) must
    /// not spend the token: the client would never see the new one, and its
    /// next refresh would look like a replay.
    fn refresh_route(&self, req: &Incoming<'_>) -> Result<Decision, Refusal> {
        require_post(req.method)?;
        Ok(Decision::Refresh)
    }

    /// The second half of [`Decision::Refresh`], with the request's body.
    /// The refresh token may come in `REFRESH_COOKIE`, the body's
    /// `refresh_token` or `Authorization`; every one present must be the
    /// same token, so the origin cannot be handed another one than the one
    /// spent here. On `Ok` the request goes on, its body unchanged.
    pub async fn refresh(
        &self,
        req: &Incoming<'_>,
        body: refresh::Body<'_>,
        now: NumericDate,
    ) -> Result<Verified, Refusal> {
        let cookie = self
            .config
            .refresh
            .as_ref()
            .and_then(|r| r.cookie.as_deref());
        let from_body = refresh::from_body(body)?;
        // `extract` already refuses a cookie and a header that differ.
        let raw = refresh::one_token([
            token::extract(req.authorization, req.cookie, cookie)?,
            from_body.as_deref(),
        ])?;
        self.spend(raw, now).await
    }

    /// Verifies a refresh token, checks it against KV, and spends it in its
    /// user's object. A spent one is a replay: its family is revoked in KV
    /// too (the object already did) before `refresh_token_reused` goes back.
    async fn spend(&self, raw: &str, now: NumericDate) -> Result<Verified, Refusal> {
        let config = self.config;
        let grace = config.refresh.as_ref().map_or(0, |r| r.reuse_grace_seconds);
        let verified =
            verify_token_as(raw, TokenKind::Refresh, config, self.verification, now).await?;
        let refuse = |e| verified.identity.refuse(e);
        let request = SpendRequest::new(&verified, config, grace, now).map_err(refuse)?;
        // KV too: it holds revocations written before the objects were bound.
        if let Status::Revoked(_) =
            revocation::check(self.store, &verified.identity.token_id, &verified.claims)
                .await
                .map_err(refuse)?
        {
            return Err(refuse(GateError::TokenRevoked));
        }
        let outcome = self.store.user_spend(&request.sub, &request).await;
        match outcome.map_err(|_| refuse(GateError::RevocationUnavailable))? {
            SpendOutcome::Spent | SpendOutcome::Retried => Ok(verified),
            SpendOutcome::Revoked => Err(refuse(GateError::TokenRevoked)),
            SpendOutcome::Reused => {
                let family = &request.on_reuse;
                revocation::put_in_kv(self.store, &family.key, &family.value, family.expires_at)
                    .await
                    .map_err(refuse)?;
                Err(refuse(GateError::RefreshTokenReused))
            }
        }
    }

    async fn verify_present_token(
        &self,
        req: &Incoming<'_>,
        now: NumericDate,
    ) -> Result<Verified, Refusal> {
        let raw = token::extract(
            req.authorization,
            req.cookie,
            self.config.token_cookie.as_deref(),
        )?
        .ok_or(GateError::TokenMissing)?;
        verify_token_for_log(raw, self.config, self.verification, now).await
    }

    /// Revokes the presented token, and its session when it has a `sid`.
    /// Idempotent: what is already revoked is not written again, so a second
    /// logout with the same token gets the same 200 without a write (and a
    /// retry after a failed write finishes what is missing).
    async fn logout(&self, req: &Incoming<'_>, now: NumericDate) -> Result<Reply, Refusal> {
        require_post(req.method)?;
        let verified = self.verify_present_token(req, now).await?;
        let refuse = |e| verified.identity.refuse(e);
        let id = &verified.identity.token_id;
        let sid = verified.claims.session();
        let sub = verified.claims.sub.as_deref();
        let found = revocation::lookup(self.store, id, &verified.claims)
            .await
            .map_err(refuse)?;
        // What KV already holds may be missing from the user's object (a
        // write that failed half-way): with objects it goes there again.
        let again = sub
            .filter(|_| self.store.has_user_objects())
            .map(To::ObjectOf);
        let token_to = match found.status() {
            Status::Active => Some(To::Everywhere(sub)),
            Status::Revoked(_) => again,
        };
        if let Some(to) = token_to {
            revocation::revoke_token(
                self.store,
                to,
                id,
                verified.claims.exp,
                RevokedBy::Logout,
                now,
                self.config.lifetimes(),
            )
            .await
            .map_err(refuse)?;
        }
        let session_to = match found.session {
            false => Some(To::Everywhere(sub)),
            true => again,
        };
        if let (Some(sid), Some(to)) = (sid, session_to) {
            self.revoke_session(to, sid, RevokedBy::Logout, now)
                .await
                .map_err(refuse)?;
        }
        // Without `sid` the token cannot be told apart from the other tokens
        // of its sign-in (an identity provider's refreshed access tokens
        // carry none), so its user is cut off: every token issued before
        // now. A retry whose token a cut-off already covers writes no later
        // one, which would end a sign-in made since.
        let cut_off = match (sid, sub) {
            (None, Some(sub)) => {
                let lifetimes = self.config.lifetimes();
                let covered = found
                    .cut_off
                    .filter(|&c| revocation::revoked_by_cut_off(verified.claims.iat, c));
                let written = match covered {
                    Some(c) => revocation::mirror_cut_off(self.store, sub, c, now, lifetimes).await,
                    None => revocation::cut_off_user(self.store, sub, now, lifetimes).await,
                };
                Some(written.map_err(refuse)?)
            }
            _ => None,
        };
        let mut reply = Reply::json(
            200,
            &LoggedOut {
                status: "logged_out",
                token_id: Some(id),
                sid,
                sub: cut_off.and(sub),
                revoked_before: cut_off,
            },
        );
        reply.headers.extend(self.clear_cookie_headers());
        Ok(reply)
    }

    async fn revoke_session(
        &self,
        to: To<'_>,
        sid: &str,
        by: RevokedBy,
        now: NumericDate,
    ) -> Result<u64, GateError> {
        revocation::revoke_session(self.store, to, sid, by, now, self.config.lifetimes()).await
    }

    /// Records a cut-off for the caller's `sub`: every token of that user
    /// issued up to now stops working.
    async fn logout_all(&self, req: &Incoming<'_>, now: NumericDate) -> Result<Reply, Refusal> {
        require_post(req.method)?;
        let verified = self.authenticate(req, now).await?;
        let refuse = |e| verified.identity.refuse(e);
        let sub = verified
            .identity
            .subject
            .as_deref()
            .ok_or_else(|| refuse(GateError::SubjectMissing))?;
        let cut_off = revocation::cut_off_user(self.store, sub, now, self.config.lifetimes())
            .await
            .map_err(refuse)?;
        let mut reply = Reply::json(
            200,
            &LoggedOut {
                status: "logged_out_everywhere",
                token_id: None,
                sid: None,
                sub: Some(sub),
                revoked_before: Some(cut_off),
            },
        );
        reply.headers.extend(self.clear_cookie_headers());
        Ok(reply)
    }

    /// Second half of a password change, after the origin answered with
    /// `origin_status`. On 2xx the user's cut-off is recorded before the
    /// response goes back; if that fails the client gets
    /// `sessions_not_revoked` instead of the origin's success. A token
    /// without `sub` never gets here through [`Gateway::decide`] (refused
    /// before forwarding); given one anyway, a 2xx is not passed on as
    /// success either: `SubjectMissing` (400 `invalid_request`).
    pub async fn finish_password_change(
        &self,
        verified: &Verified,
        origin_status: u16,
        now: NumericDate,
    ) -> Result<(), GateError> {
        if !(200..300).contains(&origin_status) {
            return Ok(());
        }
        let Some(sub) = verified.identity.subject.as_deref() else {
            // No user to cut off: the client must not see plain success.
            return Err(GateError::SubjectMissing);
        };
        revocation::cut_off_user(self.store, sub, now, self.config.lifetimes())
            .await
            .map(|_| ())
            .map_err(|_| GateError::SessionsNotRevoked)
    }

    /// Records what an origin asked for with `Tokengate-Revoke`
    /// ([`origin_revoke`]) for the verified token of the request it
    /// answered; `now` is read after the origin answered (a `user` cut-off
    /// covers every token issued before the answer). Every write is tried
    /// (with retries) before the outcome is reported; the origin's response
    /// may be passed on only on `Ok`. A store failure is
    /// `OriginRevocationFailed` (503 `sessions_not_revoked`); `user` for a
    /// token without `sub` is `SubjectMissing` (400), since nothing can be
    /// cut off.
    pub async fn finish_origin_revocation(
        &self,
        verified: &Verified,
        directive: Directive,
        now: NumericDate,
    ) -> Result<(), GateError> {
        let claims = &verified.claims;
        let (mut store_failed, mut no_user) = (false, false);
        for write in origin_revoke::plan(directive, claims.session(), claims.sub.as_deref()) {
            let written = match write {
                Write::Token => revocation::revoke_token(
                    self.store,
                    To::Everywhere(claims.sub.as_deref()),
                    &verified.identity.token_id,
                    claims.exp,
                    RevokedBy::Origin,
                    now,
                    self.config.lifetimes(),
                )
                .await
                .map(|_| ()),
                Write::Session(sid) => self
                    .revoke_session(
                        To::Everywhere(claims.sub.as_deref()),
                        &sid,
                        RevokedBy::Origin,
                        now,
                    )
                    .await
                    .map(|_| ()),
                Write::User(sub) => {
                    revocation::cut_off_user(self.store, &sub, now, self.config.lifetimes())
                        .await
                        .map(|_| ())
                }
                Write::NoUser => {
                    no_user = true;
                    Ok(())
                }
            };
            store_failed |= written.is_err();
        }
        if store_failed {
            Err(GateError::OriginRevocationFailed)
        } else if no_user {
            Err(GateError::SubjectMissing)
        } else {
            Ok(())
        }
    }

    /// `Set-Cookie` headers clearing the token cookie and the refresh
    /// cookie (a revoked refresh token is useless, but should not linger).
    fn clear_cookie_headers(&self) -> Vec<(String, String)> {
        let config = self.config;
        let domain = config.token_cookie_domain.as_deref();
        let token = config
            .token_cookie
            .as_deref()
            .map(|name| clearing(name, &config.token_cookie_path, domain));
        let refresh = config.refresh.as_ref().and_then(|refresh| {
            let name = refresh.cookie.as_deref()?;
            Some(clearing(name, &refresh.cookie_path, domain))
        });
        token
            .into_iter()
            .chain(refresh)
            .map(|cookie| ("Set-Cookie".to_owned(), cookie))
            .collect()
    }
}

/// A `Set-Cookie` value that removes cookie `name` set with this path and domain.
fn clearing(name: &str, path: &str, domain: Option<&str>) -> String {
    let mut cookie = format!("{name}=; Max-Age=0; Path={path}; Secure; HttpOnly; SameSite=Lax");
    if let Some(domain) = domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    cookie
}

/// What a reply of a logout route carries for a listed origin.
fn cors_headers(origin: &str) -> [(String, String); 3] {
    [
        ("Access-Control-Allow-Origin".into(), origin.into()),
        ("Access-Control-Allow-Credentials".into(), "true".into()),
        ("Vary".into(), "Origin".into()),
    ]
}

/// The gateway's own answer to a preflight for a logout route from a
/// listed origin: POST with the token in `Authorization` (or the cookie,
/// hence credentials), cached by the browser for ten minutes.
fn cors_preflight_reply(origin: &str) -> Reply {
    let mut headers: Vec<(String, String)> = cors_headers(origin).into();
    headers.extend([
        ("Access-Control-Allow-Methods".into(), "POST".into()),
        (
            "Access-Control-Allow-Headers".into(),
            "Authorization, Content-Type".into(),
        ),
        ("Access-Control-Max-Age".into(), "600".into()),
    ]);
    Reply {
        status: 204,
        headers,
        body: String::new(),
        code: None,
        who: None,
    }
}

fn changes_state(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

fn require_post(method: &str) -> Result<(), GateError> {
    if method == "POST" {
        Ok(())
    } else {
        Err(GateError::MethodNotAllowed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::{config_with, TEST_SECRET};
    use crate::keyring::Keyring;
    use crate::keys::NoPublicKeys;
    use crate::revocation::MemoryStore;
    use crate::verify::tests::{mint, NoNetwork};
    use pollster::block_on;
    use serde_json::json;

    const NOW: f64 = 1_700_000_000.0;

    pub(crate) fn config(extra: &[(&str, &str)]) -> Config {
        let mut pairs = vec![("JWT_SECRET", TEST_SECRET)];
        pairs.extend_from_slice(extra);
        config_with(&pairs).unwrap()
    }

    fn token(claims: serde_json::Value) -> String {
        mint("HS256", json!({}), claims, TEST_SECRET.as_bytes())
    }

    fn alice() -> String {
        token(json!({"sub": "alice", "jti": "t-1", "iat": NOW - 10.0, "exp": NOW + 600.0}))
    }

    pub(crate) fn request<'a>(
        method: &'a str,
        path: &'a str,
        authorization: Option<&'a str>,
    ) -> Incoming<'a> {
        Incoming {
            method,
            path,
            authorization,
            cookie: None,
            cors_preflight: false,
            origin: None,
        }
    }

    /// Runs `f` with an offline gateway (no network, no public keys) over
    /// `config` and `store`.
    pub(crate) fn with_gateway<S: SpendStore, T>(
        config: &Config,
        store: &S,
        f: impl FnOnce(&Gateway<'_, NoNetwork, NoPublicKeys, S>) -> T,
    ) -> T {
        let keyring = Keyring::default();
        let verification = Verification::offline(&keyring);
        f(&Gateway {
            config,
            verification: &verification,
            store,
        })
    }

    fn decide(config: &Config, store: &impl SpendStore, req: &Incoming<'_>) -> Decision {
        with_gateway(config, store, |gateway| block_on(gateway.decide(req, NOW)))
    }

    fn reply(decision: Decision) -> Reply {
        match decision {
            Decision::Reply(reply) => reply,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn error_code(reply: &Reply) -> String {
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        body["error"].as_str().unwrap_or_default().to_owned()
    }

    fn finish(
        verified: &Verified,
        store: &MemoryStore,
        origin_status: u16,
    ) -> Result<(), GateError> {
        let config = config(&[]);
        let keyring = Keyring::default();
        let verification = Verification::offline(&keyring);
        let gateway = Gateway {
            config: &config,
            verification: &verification,
            store,
        };
        block_on(gateway.finish_password_change(verified, origin_status, NOW + 1.0))
    }

    #[test]
    fn password_change_without_sub_is_refused_before_the_origin() {
        let config = config(&[]);
        let store = MemoryStore::default();
        let anonymous = format!(
            "Bearer {}",
            token(json!({"jti": "anon", "iat": NOW - 10.0, "exp": NOW + 600.0}))
        );
        for method in ["POST", "PUT", "PATCH"] {
            let req = request(method, "/auth/password-change", Some(&anonymous));
            let reply = reply(decide(&config, &store, &req));
            assert_eq!(reply.status, 400, "{method}");
            assert_eq!(error_code(&reply), "invalid_request");
            let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            let description = body["error_description"].as_str().unwrap();
            assert!(description.contains("no sub"), "{description}");
            assert!(
                description.contains("could not be revoked"),
                "{description}"
            );
        }
        // Showing the form revokes nothing, so it needs no sub.
        let form = request("GET", "/auth/password-change", Some(&anonymous));
        assert!(matches!(
            decide(&config, &store, &form),
            Decision::Forward(Some(_))
        ));
        // Logout-all says the same.
        let all = request("POST", "/auth/logout-all", Some(&anonymous));
        let answer = reply(decide(&config, &store, &all));
        let expected = GateError::SubjectMissing.to_reply();
        assert_eq!(
            (answer.status, &answer.body, answer.code),
            (expected.status, &expected.body, expected.code)
        );
        // The refusal names the verified token for its log line.
        assert_eq!(answer.who.unwrap().token_id, "anon");
        assert_eq!(store.writes.get(), 0);
    }

    #[test]
    fn password_change_with_sub_records_the_cut_off_after_a_2xx() {
        let config = config(&[]);
        let store = MemoryStore::default();
        let bearer = format!("Bearer {}", alice());
        let req = request("POST", "/x/..;/auth/password-change", Some(&bearer));
        let Decision::ForwardPasswordChange(verified) = decide(&config, &store, &req) else {
            panic!("a password change is forwarded for its second half");
        };
        assert_eq!(finish(&verified, &store, 400), Ok(()));
        assert!(store.entries.borrow().is_empty());
        assert_eq!(finish(&verified, &store, 204), Ok(()));
        assert_eq!(store.entries.borrow()["v1:sub:alice"].0, "1700000002.000");
        // A flaky store: the retries wait for KV's one write per second.
        let flaky = MemoryStore::default();
        flaky.failing_writes.set(2);
        assert_eq!(finish(&verified, &flaky, 200), Ok(()));
        assert!(crate::jitter::within_schedule(
            &flaky.pauses.borrow(),
            &crate::revocation::RETRY_PAUSES_MS
        ));
        let down = MemoryStore::default();
        down.failing_writes.set(3);
        assert_eq!(
            finish(&verified, &down, 200),
            Err(GateError::SessionsNotRevoked)
        );
        assert!(crate::jitter::within_schedule(
            &down.pauses.borrow(),
            &crate::revocation::RETRY_PAUSES_MS
        ));
        // A sub-less Verified handed over anyway is never plain success.
        let mut anonymous = verified.clone();
        anonymous.identity.subject = None;
        anonymous.claims.sub = None;
        assert_eq!(
            finish(&anonymous, &store, 200),
            Err(GateError::SubjectMissing)
        );
        assert_eq!(finish(&anonymous, &store, 500), Ok(()));
    }

    const APP: &str = "https://app.example";

    fn cors_config() -> Config {
        config(&[
            (
                "CORS_ALLOWED_ORIGINS",
                "https://app.example, http://localhost:5173",
            ),
            ("ADMIN_TOKEN", "an-admin-token-long-enough"),
        ])
    }

    fn preflight<'a>(path: &'a str, origin: Option<&'a str>) -> Incoming<'a> {
        Incoming {
            cors_preflight: true,
            origin,
            ..request("OPTIONS", path, None)
        }
    }

    fn access_control(reply: &Reply) -> Vec<(String, String)> {
        reply
            .headers
            .iter()
            .filter(|(name, _)| name.to_ascii_lowercase().starts_with("access-control-"))
            .cloned()
            .collect()
    }

    #[test]
    fn listed_origins_get_the_logout_routes_preflight_answered() {
        let config = cors_config();
        let store = MemoryStore::default();
        for path in ["/auth/logout", "/auth/logout-all", "/Auth/Logout/"] {
            for origin in [APP, "HTTPS://APP.EXAMPLE", "http://localhost:5173"] {
                let reply = reply(decide(&config, &store, &preflight(path, Some(origin))));
                assert_eq!(reply.status, 204, "{path} {origin}");
                assert_eq!(reply.body, "");
                for (name, value) in [
                    ("Access-Control-Allow-Origin", origin),
                    ("Access-Control-Allow-Methods", "POST"),
                    (
                        "Access-Control-Allow-Headers",
                        "Authorization, Content-Type",
                    ),
                    ("Access-Control-Allow-Credentials", "true"),
                    ("Access-Control-Max-Age", "600"),
                    ("Vary", "Origin"),
                ] {
                    assert_eq!(reply.header(name), Some(value), "{path} {origin} {name}");
                }
            }
        }
        assert_eq!(store.reads.get() + store.writes.get(), 0);
    }

    #[test]
    fn unlisted_origins_get_no_cors_headers() {
        let store = MemoryStore::default();
        for config in [cors_config(), config(&[])] {
            for origin in [
                None,
                Some("https://evil.example"),
                Some("https://app.example.evil"),
                Some("null"),
                Some("*"),
            ] {
                let req = preflight("/auth/logout", origin);
                let answer = reply(decide(&config, &store, &req));
                // As before CORS: the route takes POST only.
                assert_eq!(answer, GateError::MethodNotAllowed.to_reply(), "{origin:?}");
                let post = Incoming {
                    origin,
                    ..request("POST", "/auth/logout-all", None)
                };
                let answer = reply(decide(&config, &store, &post));
                assert_eq!(answer.status, 401);
                assert!(access_control(&answer).is_empty(), "{origin:?}");
                assert_eq!(answer.header("Vary"), None);
            }
        }
        // Without the setting a listed-looking origin is just unlisted.
        let answer = reply(decide(
            &config(&[]),
            &store,
            &preflight("/auth/logout", Some(APP)),
        ));
        assert_eq!(answer, GateError::MethodNotAllowed.to_reply());
    }

    #[test]
    fn logout_replies_to_a_listed_origin_carry_cors_headers() {
        let config = cors_config();
        let store = MemoryStore::default();
        let bearer = format!("Bearer {}", alice());
        let expect_cors = |reply: &Reply| {
            assert_eq!(reply.header("Access-Control-Allow-Origin"), Some(APP));
            assert_eq!(
                reply.header("Access-Control-Allow-Credentials"),
                Some("true")
            );
            assert_eq!(reply.header("Vary"), Some("Origin"));
            assert_eq!(access_control(reply).len(), 2, "{:?}", reply.headers);
        };
        let post = |path, authorization| Incoming {
            origin: Some(APP),
            ..request("POST", path, authorization)
        };
        let ok = reply(decide(
            &config,
            &store,
            &post("/auth/logout", Some(&bearer)),
        ));
        assert_eq!(ok.status, 200);
        expect_cors(&ok);
        // Errors too: revoked, no token, wrong method.
        let revoked = reply(decide(
            &config,
            &store,
            &post("/auth/logout-all", Some(&bearer)),
        ));
        assert_eq!(error_code(&revoked), "token_revoked");
        expect_cors(&revoked);
        let missing = reply(decide(&config, &store, &post("/auth/logout-all", None)));
        assert_eq!(error_code(&missing), "token_missing");
        expect_cors(&missing);
        let get = Incoming {
            origin: Some(APP),
            ..request("GET", "/auth/logout", None)
        };
        let wrong_method = reply(decide(&config, &store, &get));
        assert_eq!(wrong_method.status, 405);
        expect_cors(&wrong_method);
    }

    #[test]
    fn admin_and_other_routes_never_get_cors_from_the_gateway() {
        let config = cors_config();
        let store = MemoryStore::default();
        for path in ["/_admin/revoke", "/_admin/introspect"] {
            let answer = reply(decide(&config, &store, &preflight(path, Some(APP))));
            assert_eq!(answer.status, 405, "{path}");
            assert!(access_control(&answer).is_empty(), "{path}");
            assert_eq!(answer.header("Vary"), None);
            let post = Incoming {
                origin: Some(APP),
                ..request("POST", path, Some("Bearer wrong"))
            };
            let answer = reply(decide(&config, &store, &post));
            assert_eq!(answer.status, 401, "{path}");
            assert!(access_control(&answer).is_empty(), "{path}");
        }
        // Preflights elsewhere still go to the origin, which answers them.
        for path in ["/api", "/auth/password-change"] {
            assert!(
                matches!(
                    decide(&config, &store, &preflight(path, Some(APP))),
                    Decision::Forward(None)
                ),
                "{path}"
            );
        }
    }

    impl SpendStore for crate::revocation::tests::MiscountingStore {
        async fn user_spend(
            &self,
            _user: &str,
            _request: &SpendRequest,
        ) -> Result<SpendOutcome, crate::revocation::StoreError> {
            Err(crate::revocation::StoreError("no objects".into()))
        }
    }

    #[test]
    fn a_miscounted_store_answer_refuses_the_request() {
        use crate::revocation::tests::MiscountingStore;
        let config = config(&[]);
        let bearer = format!("Bearer {}", alice());
        for store in [
            MiscountingStore(|n| n - 1),
            MiscountingStore(|n| n + 1),
            MiscountingStore(|_| 0),
        ] {
            for (method, path) in [("GET", "/api"), ("POST", "/auth/logout")] {
                let reply = reply(decide(
                    &config,
                    &store,
                    &request(method, path, Some(&bearer)),
                ));
                assert_eq!(reply.status, 503, "{method} {path}");
                assert_eq!(error_code(&reply), "revocation_unavailable");
            }
        }
        let healthy = MemoryStore::default();
        assert!(matches!(
            decide(&config, &healthy, &request("GET", "/api", Some(&bearer))),
            Decision::Forward(Some(_))
        ));
    }

    fn with_sid(sid: &str, jti: &str) -> String {
        token(
            json!({"sub": "alice", "sid": sid, "jti": jti, "iat": NOW - 10.0, "exp": NOW + 600.0}),
        )
    }

    fn body(reply: &Reply) -> serde_json::Value {
        serde_json::from_str(&reply.body).unwrap()
    }

    #[test]
    fn logout_with_sid_revokes_the_session_and_the_token() {
        let config = config(&[("SESSION_LIFETIME_SECONDS", "3600")]);
        let store = MemoryStore::default();
        let phone = format!("Bearer {}", with_sid("s-1", "phone"));
        let laptop = format!("Bearer {}", with_sid("s-1", "laptop"));
        let elsewhere = format!("Bearer {}", with_sid("s-2", "elsewhere"));
        let get = |bearer| decide(&config, &store, &request("GET", "/api", Some(bearer)));
        assert!(matches!(get(&laptop), Decision::Forward(Some(_))));

        let before = store.reads.get();
        let answer = reply(decide(
            &config,
            &store,
            &request("POST", "/auth/logout", Some(&phone)),
        ));
        assert_eq!(answer.status, 200);
        assert_eq!(
            body(&answer),
            json!({"status": "logged_out", "token_id": "phone", "sid": "s-1"})
        );
        assert_eq!(store.reads.get(), before + 1, "one bulk get");
        let entries = store.entries.borrow().clone();
        assert_eq!(
            entries["v1:sid:s-1"].0,
            r#"{"at":1700000000,"by":"logout"}"#
        );
        assert_eq!(entries["v1:sid:s-1"].1, Some(1_700_000_000 + 3600));
        assert!(entries.contains_key("v1:jti:phone"));

        for (bearer, revoked) in [(&phone, true), (&laptop, true), (&elsewhere, false)] {
            match get(bearer) {
                Decision::Reply(r) => {
                    assert!(revoked, "{bearer}");
                    assert_eq!(error_code(&r), "token_revoked");
                    assert!(r.who.is_some(), "a verified refusal names the token");
                }
                Decision::Forward(Some(_)) => assert!(!revoked, "{bearer}"),
                other => panic!("{other:?}"),
            }
        }
        // Idempotent: a second logout writes nothing.
        let writes = store.writes.get();
        let again = reply(decide(
            &config,
            &store,
            &request("POST", "/auth/logout", Some(&phone)),
        ));
        assert_eq!(again.status, 200);
        assert_eq!(store.writes.get(), writes);
        // Logging out another token of the revoked session writes only its ID.
        let laptop_out = reply(decide(
            &config,
            &store,
            &request("POST", "/auth/logout", Some(&laptop)),
        ));
        assert_eq!(body(&laptop_out)["sid"], "s-1");
        assert_eq!(store.writes.get(), writes, "revoked by its session already");
    }

    #[test]
    fn logout_without_sid_cuts_off_the_user_once() {
        // A provider's access tokens without sid: the token refreshed from
        // the same sign-in cannot be told apart, so all of the user's go.
        // (Leeway: the next-second token's iat is a second ahead.)
        let config = config(&[("JWT_LEEWAY_SECONDS", "30")]);
        let store = MemoryStore::default();
        let at = |jti: &str, iat: f64| {
            format!(
                "Bearer {}",
                token(json!({"sub": "alice", "jti": jti, "iat": iat, "exp": NOW + 600.0}))
            )
        };
        let (presented, refreshed) = (at("first", NOW - 10.0), at("refreshed", NOW - 5.0));
        let logout = |bearer| {
            reply(decide(
                &config,
                &store,
                &request("POST", "/auth/logout", Some(bearer)),
            ))
        };
        let answer = logout(&presented);
        assert_eq!(answer.status, 200);
        assert_eq!(
            body(&answer),
            json!({"status": "logged_out", "token_id": "first", "sub": "alice",
                   "revoked_before": NOW + 1.0})
        );
        let get = |bearer| decide(&config, &store, &request("GET", "/api", Some(bearer)));
        let same_second = at("same-second", NOW);
        for bearer in [&presented, &refreshed, &same_second] {
            let Decision::Reply(refused) = get(bearer) else {
                panic!("{bearer} still works after the logout");
            };
            assert_eq!(error_code(&refused), "token_revoked");
        }
        assert!(matches!(
            get(&at("next-second", NOW + 1.0)),
            Decision::Forward(Some(_))
        ));
        // A retry of the same logout writes no later cut-off.
        let writes = store.writes.get();
        assert_eq!(logout(&presented).status, 200);
        assert_eq!(store.writes.get(), writes);
        assert_eq!(store.entries.borrow()["v1:sub:alice"].0, "1700000001.000");
    }

    #[test]
    fn with_require_sid_a_token_without_sid_is_refused_and_logout_ends_the_session_only() {
        let config = config(&[("REQUIRE_SID", "true")]);
        let store = MemoryStore::default();
        let get = |bearer: &str| decide(&config, &store, &request("GET", "/api", Some(bearer)));
        let Decision::Reply(refused) = get(&format!("Bearer {}", alice())) else {
            panic!("a token without sid was forwarded");
        };
        assert_eq!(
            (refused.status, error_code(&refused)),
            (401, "sid_required".into())
        );
        let phone = format!("Bearer {}", with_sid("s-1", "phone"));
        let laptop = format!("Bearer {}", with_sid("s-2", "laptop"));
        let out = reply(decide(
            &config,
            &store,
            &request("POST", "/auth/logout", Some(&phone)),
        ));
        assert_eq!(
            body(&out),
            json!({"status": "logged_out", "token_id": "phone", "sid": "s-1"})
        );
        assert!(!store.entries.borrow().contains_key("v1:sub:alice"));
        assert!(matches!(get(&laptop), Decision::Forward(Some(_))));
    }

    #[test]
    fn a_logout_whose_session_write_failed_is_finished_by_a_retry() {
        let config = config(&[]);
        let store = MemoryStore::default();
        let phone = format!("Bearer {}", with_sid("s-1", "phone"));
        let logout = || {
            reply(decide(
                &config,
                &store,
                &request("POST", "/auth/logout", Some(&phone)),
            ))
        };
        // A first logout wrote the token's ID; its session's write failed.
        let writes_before = store.writes.get();
        block_on(revocation::revoke_token(
            &store,
            To::Everywhere(None),
            "phone",
            Some(NOW + 600.0),
            RevokedBy::Logout,
            NOW,
            crate::revocation::Lifetimes {
                leeway_seconds: 0,
                max_token_age_seconds: None,
                session_lifetime_seconds: crate::config::DEFAULT_SESSION_LIFETIME_SECONDS,
            },
        ))
        .unwrap();
        store.failing_writes.set(3);
        let failed = logout();
        assert_eq!(
            (failed.status, error_code(&failed)),
            (503, "revocation_unavailable".into())
        );
        assert!(!store.entries.borrow().contains_key("v1:sid:s-1"));
        assert_eq!(store.writes.get(), writes_before + 1 + 3);
        // The retry sees the token revoked and the session not: writes the session.
        let done = logout();
        assert_eq!(done.status, 200);
        assert!(store.entries.borrow().contains_key("v1:sid:s-1"));
    }

    #[test]
    fn tokens_of_old_sessions_and_logout_tokens_are_refused() {
        let config = config(&[("SESSION_LIFETIME_SECONDS", "600")]);
        let store = MemoryStore::default();
        let old = format!(
            "Bearer {}",
            token(json!({"sub": "alice", "sid": "s", "iat": NOW - 601.0, "exp": NOW + 600.0}))
        );
        let answer = reply(decide(&config, &store, &request("GET", "/api", Some(&old))));
        assert_eq!(
            (answer.status, error_code(&answer)),
            (401, "token_expired".into())
        );
        assert!(body(&answer)["error_description"]
            .as_str()
            .unwrap()
            .contains("SESSION_LIFETIME_SECONDS"));
        let logout_token = format!(
            "Bearer {}",
            token(
                json!({"sub": "alice", "iat": NOW, "exp": NOW + 60.0, "jti": "lt",
                "events": {"http://schemas.openid.net/event/backchannel-logout": {}}})
            )
        );
        for (method, path) in [
            ("GET", "/api"),
            ("POST", "/auth/logout"),
            ("POST", "/auth/logout-all"),
            ("POST", "/auth/password-change"),
        ] {
            let answer = reply(decide(
                &config,
                &store,
                &request(method, path, Some(&logout_token)),
            ));
            assert_eq!(
                (answer.status, error_code(&answer)),
                (401, "type_invalid".into()),
                "{path}"
            );
        }
        assert_eq!(store.writes.get() + store.reads.get(), 0);
    }

    #[test]
    fn the_back_channel_route_takes_posts_only_and_only_when_configured() {
        let on = config(&[
            ("JWT_ISSUER", "https://idp.example"),
            ("PUBLIC_PATHS", "/*"),
            ("BACKCHANNEL_LOGOUT_PATH", "/auth/backchannel-logout"),
            ("BACKCHANNEL_LOGOUT_AUDIENCE", "client-1"),
        ]);
        let store = MemoryStore::default();
        for path in ["/auth/backchannel-logout", "/Auth/Backchannel-Logout/"] {
            assert!(matches!(
                decide(&on, &store, &request("POST", path, None)),
                Decision::ReadBackchannelBody
            ));
            let get = reply(decide(&on, &store, &request("GET", path, None)));
            assert_eq!((get.status, get.header("Allow")), (405, Some("POST")));
            assert_eq!(error_code(&get), "method_not_allowed");
        }
        let off = config(&[]);
        let answer = reply(decide(
            &off,
            &store,
            &request("POST", "/auth/backchannel-logout", None),
        ));
        assert_eq!(
            error_code(&answer),
            "token_missing",
            "an ordinary protected path"
        );
    }

    fn finish_origin(
        verified: &Verified,
        store: &MemoryStore,
        header: &str,
    ) -> Result<(), GateError> {
        let config = config(&[("SESSION_LIFETIME_SECONDS", "3600")]);
        let keyring = Keyring::default();
        let verification = Verification::offline(&keyring);
        let gateway = Gateway {
            config: &config,
            verification: &verification,
            store,
        };
        let (directive, _) = crate::origin_revoke::parse(header);
        block_on(gateway.finish_origin_revocation(verified, directive, NOW + 1.0))
    }

    fn verified(raw: &str) -> Verified {
        let config = config(&[]);
        let store = MemoryStore::default();
        let bearer = format!("Bearer {raw}");
        match decide(&config, &store, &request("GET", "/api", Some(&bearer))) {
            Decision::Forward(Some(verified)) => verified,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn origin_directed_revocations_are_recorded() {
        let session_token = verified(&with_sid("s-1", "t-s"));
        let plain = verified(&alice());

        let store = MemoryStore::default();
        assert_eq!(finish_origin(&session_token, &store, "token"), Ok(()));
        let entries = store.entries.borrow().clone();
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["v1:jti:t-s"]);
        assert_eq!(
            entries["v1:jti:t-s"].0,
            r#"{"at":1700000001,"by":"origin"}"#
        );

        let store = MemoryStore::default();
        assert_eq!(finish_origin(&session_token, &store, " Session "), Ok(()));
        let entries = store.entries.borrow().clone();
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["v1:sid:s-1"]);
        assert_eq!(entries["v1:sid:s-1"].1, Some(1_700_000_001 + 3600));

        // Without sid, `session` revokes the token itself.
        let store = MemoryStore::default();
        assert_eq!(finish_origin(&plain, &store, "session"), Ok(()));
        assert!(store.entries.borrow().contains_key("v1:jti:t-1"));

        let store = MemoryStore::default();
        assert_eq!(finish_origin(&plain, &store, "USER, bogus"), Ok(()));
        assert_eq!(store.entries.borrow()["v1:sub:alice"].0, "1700000002.000");

        let store = MemoryStore::default();
        assert_eq!(
            finish_origin(&session_token, &store, "token,session,user"),
            Ok(())
        );
        assert_eq!(store.entries.borrow().len(), 3);

        // Nothing understood: nothing written.
        let store = MemoryStore::default();
        assert_eq!(finish_origin(&plain, &store, "everything"), Ok(()));
        assert_eq!(store.writes.get(), 0);

        // A store that cannot take the writes: never passed on as success.
        let down = MemoryStore::default();
        down.failing_writes.set(3);
        assert_eq!(
            finish_origin(&plain, &down, "token"),
            Err(GateError::OriginRevocationFailed)
        );
        assert!(crate::jitter::within_schedule(
            &down.pauses.borrow(),
            &crate::revocation::RETRY_PAUSES_MS
        ));
        let reply = GateError::OriginRevocationFailed.to_reply();
        assert_eq!(
            (reply.status, error_code(&reply)),
            (503, "sessions_not_revoked".into())
        );

        // `user` for a token without sub: nothing to cut off.
        let anonymous = verified(&token(
            json!({"jti": "anon", "iat": NOW - 1.0, "exp": NOW + 60.0}),
        ));
        let store = MemoryStore::default();
        assert_eq!(
            finish_origin(&anonymous, &store, "user, token"),
            Err(GateError::SubjectMissing)
        );
        assert!(
            store.entries.borrow().contains_key("v1:jti:anon"),
            "what can be done is done"
        );
    }

    fn forwarded(decision: Decision) -> Verified {
        match decision {
            Decision::Forward(Some(verified)) => verified,
            other => panic!("expected a forward, got {other:?}"),
        }
    }

    fn refusal(decision: Decision) -> (u16, String) {
        let reply = reply(decision);
        let code = error_code(&reply);
        (reply.status, code)
    }

    const STRICT: [(&str, &str); 1] = [("STRICT_PATHS", "/account/*")];

    /// Status and code of the gateway's own answer to `method path` with `auth`.
    fn ask(
        config: &Config,
        store: &MemoryStore,
        method: &str,
        path: &str,
        auth: &str,
    ) -> (u16, String) {
        refusal(decide(config, store, &request(method, path, Some(auth))))
    }

    #[test]
    fn strict_paths_see_a_revocation_in_the_object_that_kv_does_not_show_yet() {
        let config = config(&STRICT);
        let store = MemoryStore::with_user_objects();
        let auth = format!("Bearer {}", alice());
        // Only the object knows (KV has not caught up at this location).
        store
            .objects
            .borrow_mut()
            .as_mut()
            .unwrap()
            .entry("alice".into())
            .or_default()
            .insert("v1:sub:alice".into(), "1700000000.000".into());
        forwarded(decide(
            &config,
            &store,
            &request("GET", "/home", Some(&auth)),
        ));
        for path in [
            "/account/keys",
            "/Account/Keys",
            "/x/../account/keys",
            "/account%2fkeys",
        ] {
            assert_eq!(
                ask(&config, &store, "GET", path, &auth),
                (401, "token_revoked".into()),
                "{path}"
            );
        }
    }

    #[test]
    fn a_strict_path_fails_closed_without_its_object_or_without_sub() {
        let config = config(&STRICT);
        let store = MemoryStore::with_user_objects();
        store.objects_down.set(true);
        let auth = format!("Bearer {}", alice());
        assert_eq!(
            ask(&config, &store, "GET", "/account/keys", &auth),
            (503, "revocation_unavailable".into())
        );
        store.objects_down.set(false);
        let anonymous = format!(
            "Bearer {}",
            token(json!({"jti": "t-9", "iat": NOW, "exp": NOW + 60.0}))
        );
        assert_eq!(
            ask(&config, &store, "GET", "/account/keys", &anonymous),
            (401, "type_invalid".into())
        );
    }

    #[test]
    fn every_revocation_is_written_to_the_users_object_before_it_is_acknowledged() {
        let config = config(&STRICT);
        let store = MemoryStore::with_user_objects();
        let auth = format!("Bearer {}", alice());
        let (status, _) = ask(&config, &store, "POST", "/auth/logout", &auth);
        assert_eq!(status, 200);
        assert!(store.object_entry("alice", "v1:jti:t-1").is_some());

        // The object cannot take it: the logout is not acknowledged.
        let store = MemoryStore::with_user_objects();
        store.objects_down.set(true);
        assert_eq!(
            ask(&config, &store, "POST", "/auth/logout", &auth),
            (503, "revocation_unavailable".into())
        );
        // KV took it, the object did not: a retry writes both.
        store.objects_down.set(false);
        let (status, _) = ask(&config, &store, "POST", "/auth/logout", &auth);
        assert_eq!(status, 200);
        assert!(store.object_entry("alice", "v1:jti:t-1").is_some());
    }

    fn refresh_config() -> Config {
        config(&[
            ("REFRESH_PATH", "/auth/refresh"),
            ("REFRESH_COOKIE", "rt"),
            ("REFRESH_TYP", "refresh+jwt"),
        ])
    }

    fn refresh_token(jti: &str, sid: &str) -> String {
        mint(
            "HS256",
            json!({"typ": "refresh+jwt"}),
            json!({"sub": "alice", "jti": jti, "sid": sid, "iat": NOW - 5.0, "exp": NOW + 3600.0}),
            TEST_SECRET.as_bytes(),
        )
    }

    fn with_cookie<'a>(cookie: &'a str) -> Incoming<'a> {
        Incoming {
            cookie: Some(cookie),
            ..request("POST", "/auth/refresh", None)
        }
    }

    /// A request to the refresh route, both halves, as the adapter runs
    /// them: `body` is sent as a form. The token's ID, or the code of a refusal.
    fn present(
        config: &Config,
        store: &MemoryStore,
        req: &Incoming<'_>,
        body: Option<&str>,
    ) -> Result<String, String> {
        let Decision::Refresh = decide(config, store, req) else {
            panic!("not the refresh route");
        };
        let keyring = Keyring::default();
        let verification = Verification::offline(&keyring);
        let gateway = Gateway {
            config,
            verification: &verification,
            store,
        };
        let body = refresh::Body {
            content_type: Some("application/x-www-form-urlencoded"),
            content_encoding: None,
            bytes: body.unwrap_or_default().as_bytes(),
        };
        block_on(gateway.refresh(req, body, NOW))
            .map(|verified| verified.identity.token_id)
            .map_err(|refusal| refusal.error.code().to_owned())
    }

    #[test]
    fn a_refresh_token_is_spent_once_and_a_replay_revokes_its_session_in_kv_too() {
        let config = refresh_config();
        let store = MemoryStore::with_user_objects();
        store.object_now.set(NOW);
        let cookie = |jti: &str, sid: &str| format!("rt={}", refresh_token(jti, sid));
        let first = cookie("r1", "s1");
        assert_eq!(
            present(&config, &store, &with_cookie(&first), None),
            Ok("r1".into())
        );
        assert_eq!(
            present(&config, &store, &with_cookie(&cookie("r2", "s1")), None),
            Ok("r2".into())
        );
        assert_eq!(
            present(&config, &store, &with_cookie(&first), None),
            Err("refresh_token_reused".into())
        );
        assert!(
            store.entries.borrow().contains_key("v1:sid:s1"),
            "KV has the family too"
        );
        assert!(store.object_entry("alice", "v1:sid:s1").is_some());
        // Another session of the same user is untouched.
        assert_eq!(
            present(&config, &store, &with_cookie(&cookie("q1", "s2")), None),
            Ok("q1".into())
        );
    }

    #[test]
    fn refresh_and_access_tokens_do_not_cross() {
        let config = refresh_config();
        let store = MemoryStore::with_user_objects();
        let refresh = format!("Bearer {}", refresh_token("r1", "s1"));
        assert_eq!(
            ask(&config, &store, "GET", "/home", &refresh),
            (401, "type_invalid".into())
        );
        let access = format!("Bearer {}", alice());
        for path in ["/auth/refresh", "/Auth//Refresh/"] {
            assert_eq!(
                present(&config, &store, &request("POST", path, Some(&access)), None),
                Err("type_invalid".into()),
                "{path}"
            );
        }
    }

    #[test]
    fn only_a_post_spends_a_refresh_token() {
        let config = refresh_config();
        let store = MemoryStore::with_user_objects();
        let cookie = format!("rt={}", refresh_token("r1", "s1"));
        for method in ["GET", "HEAD", "PUT"] {
            let req = Incoming {
                method,
                ..with_cookie(&cookie)
            };
            assert_eq!(
                refusal(decide(&config, &store, &req)),
                (405, "method_not_allowed".into())
            );
        }
        assert_eq!(
            present(&config, &store, &with_cookie(&cookie), None),
            Ok("r1".into())
        );
    }

    #[test]
    fn logout_clears_the_refresh_cookie_too() {
        let config = refresh_config();
        let store = MemoryStore::with_user_objects();
        let auth = format!("Bearer {}", alice());
        let reply = reply(decide(
            &config,
            &store,
            &request("POST", "/auth/logout", Some(&auth)),
        ));
        let cleared: Vec<&str> = reply
            .headers
            .iter()
            .filter(|(name, _)| name == "Set-Cookie")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(
            cleared,
            ["rt=; Max-Age=0; Path=/auth/refresh; Secure; HttpOnly; SameSite=Lax"]
        );
    }

    #[test]
    fn the_refresh_token_may_come_from_the_cookie_the_body_or_authorization_but_only_one_token() {
        let config = refresh_config();
        let store = MemoryStore::with_user_objects();
        let post = request("POST", "/auth/refresh", None);
        let body = format!(
            "grant_type=refresh_token&refresh_token={}",
            refresh_token("r1", "s1")
        );
        assert_eq!(
            present(&config, &store, &post, Some(&body)),
            Ok("r1".into())
        );
        assert_eq!(
            present(&config, &store, &post, Some("grant_type=x")),
            Err("token_missing".into())
        );
        let auth = format!("Bearer {}", refresh_token("r2", "s1"));
        let post = request("POST", "/auth/refresh", Some(&auth));
        assert_eq!(
            present(&config, &store, &post, Some("grant_type=x")),
            Ok("r2".into())
        );
        // Wherever it comes from, it must be one token: the origin reads
        // one source, and it must be the token spent here.
        let r3 = refresh_token("r3", "s1");
        let cookie = format!("rt={r3}");
        let with_cookie = Incoming {
            cookie: Some(&cookie),
            ..request("POST", "/auth/refresh", None)
        };
        let other = format!("refresh_token={}", refresh_token("r9", "s1"));
        assert_eq!(
            present(&config, &store, &with_cookie, Some(&other)),
            Err("token_ambiguous".into())
        );
        let same = format!("refresh_token={r3}");
        assert_eq!(
            present(&config, &store, &with_cookie, Some(&same)),
            Ok("r3".into())
        );
        let both = Incoming {
            cookie: Some(&cookie),
            ..post
        };
        assert_eq!(
            present(&config, &store, &both, None),
            Err("token_ambiguous".into())
        );
        // The objects are down: fail closed, nothing forwarded.
        store.objects_down.set(true);
        let body = format!("refresh_token={}", refresh_token("r4", "s1"));
        assert_eq!(
            present(
                &config,
                &store,
                &request("POST", "/auth/refresh", None),
                Some(&body)
            ),
            Err("revocation_unavailable".into())
        );
    }

    #[test]
    fn a_revoked_session_ends_its_refresh_tokens() {
        let config = refresh_config();
        let store = MemoryStore::with_user_objects();
        let logout = format!(
            "Bearer {}",
            token(
                json!({"sub": "alice", "jti": "a1", "sid": "s1", "iat": NOW - 5.0, "exp": NOW + 60.0})
            )
        );
        let (status, _) = ask(&config, &store, "POST", "/auth/logout", &logout);
        assert_eq!(status, 200);
        // KV would say so too; the object alone is enough.
        store.entries.borrow_mut().clear();
        let cookie = format!("rt={}", refresh_token("r1", "s1"));
        assert_eq!(
            present(&config, &store, &with_cookie(&cookie), None),
            Err("token_revoked".into())
        );
    }
}
