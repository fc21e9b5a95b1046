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
use crate::error::{GateError, Reply};
use crate::keyring::JwksFetcher;
use crate::keys::SignatureVerifier;
use crate::revocation::{self, RevocationStore, RevokedBy, Status};
use crate::routes::{self, Route};
use crate::token;
use crate::verify::{verify_token, Verification};
pub use crate::verify::{Identity, Verified};

/// The answer of the logout routes.
#[derive(Serialize)]
struct LoggedOut<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<&'a str>,
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
    /// Forward to the origin, with this identity (`None`: public route).
    Forward(Option<Identity>),
    /// Forward; if the origin accepts the change, call
    /// [`Gateway::finish_password_change`] before answering.
    ForwardPasswordChange(Verified),
    /// The caller is an authorized admin; read the body and call
    /// [`admin::handle`].
    ReadAdminBody(AdminAction),
    /// Answer directly.
    Reply(Reply),
}

pub struct Gateway<'a, F, V, S> {
    pub config: &'a Config,
    pub verification: &'a Verification<'a, F, V>,
    pub store: &'a S,
}

impl<F: JwksFetcher, V: SignatureVerifier, S: RevocationStore> Gateway<'_, F, V, S> {
    pub async fn decide(&self, req: &Incoming<'_>, now: NumericDate) -> Decision {
        let config = self.config;
        let route = routes::route(
            req.method,
            req.path,
            req.cors_preflight,
            &config.password_change_path,
            &config.public_paths,
        );
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
        let result = match route {
            Route::Preflight | Route::Public => Ok(Decision::Forward(None)),
            Route::Protected => self
                .authenticate(req, now)
                .await
                .map(|v| Decision::Forward(Some(v.identity))),
            // Refused before the origin sees it when the token has no `sub`:
            // the password would change with no cut-off to record.
            Route::PasswordChange if changes_state(req.method) => self
                .authenticate(req, now)
                .await
                .and_then(|verified| match verified.identity.subject {
                    Some(_) => Ok(Decision::ForwardPasswordChange(verified)),
                    None => Err(GateError::SubjectMissing),
                }),
            // Showing a password form must not sign anybody out.
            Route::PasswordChange => self
                .authenticate(req, now)
                .await
                .map(|v| Decision::Forward(Some(v.identity))),
            Route::Logout => self.logout(req, now).await.map(Decision::Reply),
            Route::LogoutAll => self.logout_all(req, now).await.map(Decision::Reply),
            Route::AdminRevoke | Route::AdminIntrospect => {
                let action = if route == Route::AdminRevoke {
                    AdminAction::Revoke
                } else {
                    AdminAction::Introspect
                };
                admin::authorize(config, req.method, req.authorization)
                    .map(|()| Decision::ReadAdminBody(action))
            }
        };
        let mut decision = result.unwrap_or_else(|e| Decision::Reply(e.to_reply()));
        if let (Some(origin), Decision::Reply(reply)) = (cors_origin, &mut decision) {
            // Success and error replies alike, so a browser can read why.
            reply.headers.extend(cors_headers(origin));
        }
        decision
    }

    /// A valid token that is not revoked, or why not.
    pub async fn authenticate(
        &self,
        req: &Incoming<'_>,
        now: NumericDate,
    ) -> Result<Verified, GateError> {
        let verified = self.verify_present_token(req, now).await?;
        match revocation::check(self.store, &verified.identity.token_id, &verified.claims).await? {
            Status::Active => Ok(verified),
            Status::Revoked(_) => Err(GateError::TokenRevoked),
        }
    }

    async fn verify_present_token(
        &self,
        req: &Incoming<'_>,
        now: NumericDate,
    ) -> Result<Verified, GateError> {
        let raw = token::extract(
            req.authorization,
            req.cookie,
            self.config.token_cookie.as_deref(),
        )?
        .ok_or(GateError::TokenMissing)?;
        verify_token(raw, self.config, self.verification, now).await
    }

    /// Revokes the presented token. Idempotent: a token that is already
    /// revoked gets the same 200 without another write.
    async fn logout(&self, req: &Incoming<'_>, now: NumericDate) -> Result<Reply, GateError> {
        require_post(req.method)?;
        let verified = self.verify_present_token(req, now).await?;
        let id = &verified.identity.token_id;
        let status = revocation::check(self.store, id, &verified.claims).await?;
        if status == Status::Active {
            revocation::revoke_token(
                self.store,
                id,
                verified.claims.exp,
                self.config.leeway_seconds,
                RevokedBy::Logout,
                now,
            )
            .await?;
        }
        let mut reply = Reply::json(
            200,
            &LoggedOut {
                status: "logged_out",
                token_id: Some(id),
                sub: None,
                revoked_before: None,
            },
        );
        if let Some(cookie) = self.clear_cookie_header() {
            reply.headers.push(("Set-Cookie".into(), cookie));
        }
        Ok(reply)
    }

    /// Records a cut-off for the caller's `sub`: every token of that user
    /// issued up to now stops working.
    async fn logout_all(&self, req: &Incoming<'_>, now: NumericDate) -> Result<Reply, GateError> {
        require_post(req.method)?;
        let verified = self.authenticate(req, now).await?;
        let sub = verified
            .identity
            .subject
            .as_deref()
            .ok_or(GateError::SubjectMissing)?;
        let cut_off = revocation::cut_off_user(
            self.store,
            sub,
            now,
            self.config.max_token_age_seconds,
            self.config.leeway_seconds,
        )
        .await?;
        let mut reply = Reply::json(
            200,
            &LoggedOut {
                status: "logged_out_everywhere",
                token_id: None,
                sub: Some(sub),
                revoked_before: Some(cut_off),
            },
        );
        if let Some(cookie) = self.clear_cookie_header() {
            reply.headers.push(("Set-Cookie".into(), cookie));
        }
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
        revocation::cut_off_user(
            self.store,
            sub,
            now,
            self.config.max_token_age_seconds,
            self.config.leeway_seconds,
        )
        .await
        .map(|_| ())
        .map_err(|_| GateError::SessionsNotRevoked)
    }

    fn clear_cookie_header(&self) -> Option<String> {
        let name = self.config.token_cookie.as_deref()?;
        let mut cookie = format!(
            "{name}=; Max-Age=0; Path={}; Secure; HttpOnly; SameSite=Lax",
            self.config.token_cookie_path
        );
        if let Some(domain) = &self.config.token_cookie_domain {
            cookie.push_str("; Domain=");
            cookie.push_str(domain);
        }
        Some(cookie)
    }
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
mod tests {
    use super::*;
    use crate::config::tests::{config_with, TEST_SECRET};
    use crate::keyring::Keyring;
    use crate::keys::NoPublicKeys;
    use crate::revocation::MemoryStore;
    use crate::verify::tests::{mint, NoNetwork};
    use pollster::block_on;
    use serde_json::json;

    const NOW: f64 = 1_700_000_000.0;

    fn config(extra: &[(&str, &str)]) -> Config {
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

    fn request<'a>(method: &'a str, path: &'a str, authorization: Option<&'a str>) -> Incoming<'a> {
        Incoming {
            method,
            path,
            authorization,
            cookie: None,
            cors_preflight: false,
            origin: None,
        }
    }

    fn decide(config: &Config, store: &impl RevocationStore, req: &Incoming<'_>) -> Decision {
        let keyring = Keyring::default();
        let verification = Verification {
            keyring: &keyring,
            fetcher: &NoNetwork,
            signatures: &NoPublicKeys,
        };
        let gateway = Gateway {
            config,
            verification: &verification,
            store,
        };
        block_on(gateway.decide(req, NOW))
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
        let verification = Verification {
            keyring: &keyring,
            fetcher: &NoNetwork,
            signatures: &NoPublicKeys,
        };
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
        assert_eq!(
            reply(decide(&config, &store, &all)),
            GateError::SubjectMissing.to_reply()
        );
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
        assert_eq!(store.entries.borrow()["v1:sub:alice"].0, "1700000001.000");
        // A flaky store: the retries wait for KV's one write per second.
        let flaky = MemoryStore::default();
        flaky.failing_writes.set(2);
        assert_eq!(finish(&verified, &flaky, 200), Ok(()));
        assert_eq!(*flaky.pauses.borrow(), [1100, 2200]);
        let down = MemoryStore::default();
        down.failing_writes.set(3);
        assert_eq!(
            finish(&verified, &down, 200),
            Err(GateError::SessionsNotRevoked)
        );
        assert_eq!(*down.pauses.borrow(), [1100, 2200]);
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
}
