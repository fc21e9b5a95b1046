//! The wasm adapter: one call in from `js/worker.mjs` per request, the
//! core's decision, and the I/O it asks for through `js/host.mjs`.
//! Everything that decides anything lives in the core.
//!
//! ```text
//! js/worker.mjs ──handle(request, env, ctx, method, url, authorization, cookie, origin, preflight)──▶ Task
//!   drive(task): poll ─▶ core runs until it waits on a promise (KV, WebCrypto, fetch via js/host.mjs)
//!                await it natively, resume ─▶ ... ─▶ Response (ours, or the origin's)
//! ```

mod crypto;
mod host;
mod jwks;
mod kv;
mod object;
mod task;

use std::cell::{Cell, OnceCell};
use std::rc::Rc;

use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use crate::admin;
use crate::backchannel;
use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::{refusal_log_line, GateError, Refusal, Reply};
use crate::form;
use crate::gateway::{Decision, Gateway, Incoming, Verified};
use crate::headers::{identity_headers, origin_target, split_url};
use crate::keyring::Keyring;
use crate::origin_revoke::{self, Directive};
use crate::refresh;
use crate::verify::Verification;
use host::{Request, Response};
use jwks::EdgeFetcher;
use kv::{describe, KvRevocations};
use task::{wait, Task};

/// `Date.now()` in seconds. In Workers it only advances across I/O, which is
/// what we want: one request sees one instant until it waits for something.
fn now() -> NumericDate {
    js_sys::Date::now() / 1000.0
}

/// What an isolate works out once: vars and secrets are fixed for its life.
struct Isolate {
    config: Result<Rc<Config>, GateError>,
    keyring: Keyring,
    fetcher: EdgeFetcher,
}

impl Isolate {
    /// The isolate's keys, its JWKS fetcher and WebCrypto.
    fn verification(&self) -> Verification<'_, EdgeFetcher, crypto::WebCrypto> {
        Verification {
            keyring: &self.keyring,
            fetcher: &self.fetcher,
            signatures: &crypto::WebCrypto,
        }
    }
}

thread_local! {
    static ISOLATE: OnceCell<Rc<Isolate>> = const { OnceCell::new() };
}

/// A var or secret as text. JSON vars (`JWT_ISSUERS = [...]` in
/// wrangler.toml) arrive as objects and are handed over as JSON text.
fn setting(env: &JsValue, name: &str) -> Option<String> {
    let value = Reflect::get(env, &name.into()).ok()?;
    if value.is_undefined() || value.is_null() {
        return None;
    }
    value.as_string().or_else(|| {
        js_sys::JSON::stringify(&value)
            .ok()
            .and_then(|s| s.as_string())
    })
}

fn isolate(env: &JsValue) -> Rc<Isolate> {
    ISOLATE.with(|cell| {
        cell.get_or_init(|| {
            std::panic::set_hook(Box::new(|info| {
                host::error(&format!("tokengate panic: {info}"))
            }));
            let deadlines = crate::revocation::DEADLINES;
            host::configure(
                crate::revocation::KV_CACHE_TTL_SECONDS,
                deadlines.kv_read_ms,
                deadlines.kv_write_ms,
                deadlines.object_read_ms,
                deadlines.object_write_ms,
                crate::headers::SPOOFED_IDENTITY_PATTERN,
                crate::origin_revoke::HEADER,
            );
            let mut config =
                Config::from_lookup(|name| setting(env, name)).map_err(|e| e.to_string());
            if let Ok(c) = &config {
                if c.needs_session_objects() && kv::binding(env, kv::OBJECTS_BINDING).is_none() {
                    config = Err(format!(
                        "REFRESH_PATH and STRICT_PATHS need the Durable Object binding {} \
                         (wrangler.toml: [[durable_objects.bindings]] and [[migrations]])",
                        kv::OBJECTS_BINDING
                    ));
                }
            }
            match &config {
                Ok(config) => config
                    .warnings
                    .iter()
                    .for_each(|w| host::warn(&format!("tokengate: {w}"))),
                Err(e) => host::error(&format!("tokengate misconfigured: {e}")),
            }
            Rc::new(Isolate {
                config: config.map(Rc::new).map_err(|_| GateError::Misconfigured),
                keyring: Keyring::default(),
                fetcher: EdgeFetcher {
                    seal_key: setting(env, "JWKS_CACHE_KEY").map(String::into_bytes),
                },
            })
        })
        .clone()
    })
}

/// The one entry point: called by `js/worker.mjs` for every request, with
/// the few request fields the core reads passed in, so that nothing has to
/// be fetched back across the boundary. `js/host.mjs`'s `drive` runs the
/// returned task to its `Response`.
#[allow(clippy::too_many_arguments)] // one call in, instead of nine crossings
#[wasm_bindgen]
pub fn handle(
    request: Request,
    env: JsValue,
    ctx: JsValue,
    method: String,
    url: String,
    authorization: Option<String>,
    cookie: Option<String>,
    origin: Option<String>,
    preflight: bool,
) -> Task {
    Task::new(async move {
        let isolate = isolate(&env);
        // For the log line of a refusal: the path only, never the query.
        let path = split_url(&url).map_or("", |(path, _)| path);
        let outcome = match &isolate.config {
            Ok(config) => {
                let call = Call {
                    isolate: &isolate,
                    config,
                    request: &request,
                    env: &env,
                    ctx: &ctx,
                };
                let incoming = Incoming {
                    method: &method,
                    path: "",
                    authorization: authorization.as_deref(),
                    cookie: cookie.as_deref(),
                    origin: origin.as_deref(),
                    cors_preflight: preflight,
                };
                call.run(incoming, &url).await
            }
            Err(e) => Err(Refusal::from(*e)),
        };
        for warning in isolate.keyring.take_warnings() {
            host::warn(&format!("tokengate: {warning}"));
        }
        match outcome {
            Ok(Answer::Origin(response)) => response,
            Ok(Answer::Ours(reply)) => respond(&reply, &method, path),
            Err(refusal) => respond(&refusal.to_reply(), &method, path),
        }
        .into()
    })
}

/// What goes back to the client: the origin's response, or one of ours.
enum Answer {
    Origin(Response),
    Ours(Reply),
}

/// Our own reply as a `Response`. A refusal (status 400 or above) is logged
/// as one structured JSON line ([`refusal_log_line`]): code, method, path
/// without the query, and the token's ID and `sub` only when its signature
/// verified; never the token.
fn respond(reply: &Reply, method: &str, path: &str) -> Response {
    if let Some(line) = refusal_log_line(reply, method, path) {
        host::warn(&line);
    }
    let headers = reply
        .headers
        .iter()
        .flat_map(|(name, value)| [name.clone(), value.clone()])
        .collect();
    host::reply(reply.status, &reply.body, headers)
}

/// One request's view of the isolate.
struct Call<'a> {
    isolate: &'a Rc<Isolate>,
    config: &'a Rc<Config>,
    request: &'a Request,
    env: &'a JsValue,
    ctx: &'a JsValue,
}

impl Call<'_> {
    /// `incoming` comes without its path, which is cut out of `url` here.
    async fn run(&self, incoming: Incoming<'_>, url: &str) -> Result<Answer, Refusal> {
        let (path, query) = split_url(url).ok_or(GateError::InvalidRequest)?;
        let incoming = Incoming { path, ..incoming };
        let store = KvRevocations::from_env(self.env, self.config.needs_session_objects())?;
        let verification = self.isolate.verification();
        let gateway = Gateway {
            config: self.config,
            verification: &verification,
            store: &store,
        };
        let target = || match &self.config.origin_url {
            Some(base) => origin_target(base, path, query),
            None => url.to_owned(),
        };

        match gateway.decide(&incoming, now()).await {
            Decision::Reply(reply) => Ok(Answer::Ours(reply)),
            Decision::Forward(None) => {
                // A preflight goes to the origin unverified, so it goes without a body.
                let (response, directive) = self
                    .forward(&target(), Vec::new(), !incoming.cors_preflight, None)
                    .await?;
                if directive.is_some() {
                    // Removed (by the host), and nothing revoked: no verified token.
                    host::warn(&format!(
                        "tokengate: the origin sent {} on an unverified request to {path}; \
                         removed, nothing revoked",
                        origin_revoke::HEADER
                    ));
                }
                Ok(Answer::Origin(response))
            }
            Decision::Forward(Some(verified)) => {
                self.forward_verified(&target(), verified, store, false, None)
                    .await
            }
            Decision::ForwardPasswordChange(verified) => {
                self.forward_verified(&target(), verified, store, true, None)
                    .await
            }
            Decision::Refresh => {
                let bytes = self.read_body(form::MAX_BODY_BYTES).await.map_err(|_| {
                    GateError::BodyUnreadable("the refresh request body is over 64 KiB")
                })?;
                let content_type = host::header(self.request, "content-type");
                let content_encoding = host::header(self.request, "content-encoding");
                let body = refresh::Body {
                    content_type: content_type.as_deref(),
                    content_encoding: content_encoding.as_deref(),
                    bytes: &bytes,
                };
                let verified = gateway.refresh(&incoming, body, now()).await?;
                self.forward_verified(&target(), verified, store, false, Some(bytes))
                    .await
            }
            Decision::ReadAdminBody(action) => {
                let body = self.read_body(form::MAX_BODY_BYTES).await?;
                let reply =
                    admin::handle(action, &body, self.config, &verification, &store, now()).await;
                Ok(Answer::Ours(reply))
            }
            Decision::ReadBackchannelBody => {
                let content_type = host::header(self.request, "content-type");
                let body = self.read_body(form::MAX_BODY_BYTES).await.map_err(|_| {
                    GateError::LogoutTokenInvalid(
                        "the request body is larger than 64 KiB or cannot be read",
                    )
                })?;
                let (reply, _) = backchannel::handle(
                    content_type.as_deref(),
                    &body,
                    self.config,
                    &verification,
                    &store,
                    now(),
                )
                .await?;
                Ok(Answer::Ours(reply))
            }
        }
    }

    /// What the origin asked for with `Tokengate-Revoke`; members we do not
    /// know are logged and otherwise ignored.
    fn directive(&self, header: Option<&str>) -> Directive {
        let Some(value) = header else {
            return Directive::default();
        };
        let (directive, unknown) = origin_revoke::parse(value);
        if !unknown.is_empty() {
            host::warn(&format!(
                "tokengate: ignored unknown {} member(s) from the origin: {}",
                origin_revoke::HEADER,
                unknown.join(", ")
            ));
        }
        directive
    }

    /// Sends the request on; the origin's response comes back without a
    /// `Tokengate-Revoke` header, whose value (if any) comes alongside.
    /// Forwards a verified request, then records what its answer asks
    /// for (a password change's cut-off, `Tokengate-Revoke`) before the
    /// response goes back.
    async fn forward_verified(
        &self,
        target: &str,
        verified: Verified,
        store: KvRevocations,
        password_change: bool,
        buffered_body: Option<Vec<u8>>,
    ) -> Result<Answer, Refusal> {
        let identity = identity_headers(&verified.identity);
        let (response, directive) = self
            .forward(target, identity, true, buffered_body)
            .await
            .map_err(|e| verified.identity.refuse(e))?;
        let directive = self.directive(directive.as_deref());
        let status = password_change.then(|| response.status());
        if password_change || !directive.is_empty() {
            self.finish_after_origin(verified, store, status, directive)
                .await?;
        }
        Ok(Answer::Origin(response))
    }

    async fn forward(
        &self,
        target: &str,
        identity: Vec<(&'static str, String)>,
        with_body: bool,
        buffered_body: Option<Vec<u8>>,
    ) -> Result<(Response, Option<String>), GateError> {
        let identity = identity
            .into_iter()
            .flat_map(|(name, value)| [name.to_owned(), value])
            .collect();
        let unreachable = |e: JsValue| {
            // The target may carry a query string; log only scheme, host and path.
            let shown = target.split('?').next().unwrap_or_default();
            host::error(&format!("origin unreachable at {shown}: {}", describe(&e)));
            GateError::OriginUnreachable
        };
        let promise = host::forward(self.request, target, identity, with_body, buffered_body)
            .map_err(unreachable)?;
        let answer = Array::from(&wait(promise).await.map_err(unreachable)?);
        Ok((answer.get(0).unchecked_into(), answer.get(1).as_string()))
    }

    /// What has to be recorded once the origin answered, before its
    /// response may go back: a password change's cut-off
    /// (`password_change`: the origin's status) and what the origin asked
    /// for with `Tokengate-Revoke`. The writes run as a task under
    /// `ctx.waitUntil`, so a client hanging up cannot cancel them; the
    /// client sees the origin's response only once they are recorded.
    async fn finish_after_origin(
        &self,
        verified: Verified,
        store: KvRevocations,
        password_change: Option<u16>,
        directive: Directive,
    ) -> Result<(), Refusal> {
        let who = Some(verified.identity.who());
        let config = Rc::clone(self.config);
        let isolate = Rc::clone(self.isolate);
        let outcome = Rc::new(Cell::new(Ok(())));
        let reported = Rc::clone(&outcome);
        let write = Task::new(async move {
            let verification = isolate.verification();
            let gateway = Gateway {
                config: &config,
                verification: &verification,
                store: &store,
            };
            let token_id = &verified.identity.token_id;
            let mut result = Ok(());
            if let Some(status) = password_change {
                // Read the clock after the origin answered: the change is done now.
                result = gateway
                    .finish_password_change(&verified, status, now())
                    .await;
                if result.is_err() {
                    host::error(&format!(
                        "password change for token {token_id} succeeded at the origin but the \
                         cut-off could not be recorded"
                    ));
                }
            }
            if result.is_ok() && !directive.is_empty() {
                result = gateway
                    .finish_origin_revocation(&verified, directive, now())
                    .await;
                if let Err(e) = result {
                    host::error(&format!(
                        "the origin asked for {directive:?} for token {token_id}, which could not \
                         be recorded ({e}); its response was withheld"
                    ));
                }
            }
            reported.set(result);
            JsValue::from_bool(result.is_ok())
        });
        let outcome = match wait(host::in_background(self.ctx, write)).await {
            Ok(_) => outcome.get(),
            // The task itself failed (a bug): never pass the response on.
            Err(_) => Err(if password_change.is_some() {
                GateError::SessionsNotRevoked
            } else {
                GateError::OriginRevocationFailed
            }),
        };
        outcome.map_err(|error| Refusal { error, who })
    }

    /// A small request body (admin API, back-channel logout, refresh), at
    /// most `limit` bytes.
    async fn read_body(&self, limit: usize) -> Result<Vec<u8>, GateError> {
        let promise =
            host::read_body(self.request, limit as u32).map_err(|_| GateError::InvalidRequest)?;
        let body = wait(promise).await.map_err(|_| GateError::InvalidRequest)?;
        host::bytes(&body).ok_or(GateError::InvalidRequest)
    }
}
