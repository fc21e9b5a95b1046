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
mod task;

use std::cell::OnceCell;
use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use crate::admin;
use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::{GateError, Reply};
use crate::gateway::{Decision, Gateway, Incoming, Verified};
use crate::headers::{identity_headers, origin_target, split_url};
use crate::keyring::Keyring;
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
            let config = Config::from_lookup(|name| setting(env, name));
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
            Err(e) => Err(*e),
        };
        for warning in isolate.keyring.take_warnings() {
            host::warn(&format!("tokengate: {warning}"));
        }
        match outcome {
            Ok(response) => response,
            Err(e) => respond(&e.to_reply()),
        }
        .into()
    })
}

fn respond(reply: &Reply) -> Response {
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
    async fn run(&self, incoming: Incoming<'_>, url: &str) -> Result<Response, GateError> {
        let (path, query) = split_url(url).ok_or(GateError::InvalidRequest)?;
        let incoming = Incoming { path, ..incoming };
        let store = KvRevocations::from_env(self.env)?;
        let verification = Verification {
            keyring: &self.isolate.keyring,
            fetcher: &self.isolate.fetcher,
            signatures: &crypto::WebCrypto,
        };
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
            Decision::Reply(reply) => Ok(respond(&reply)),
            Decision::Forward(identity) => {
                let identity = identity.as_ref().map(identity_headers).unwrap_or_default();
                // A preflight goes to the origin unverified, so it goes without a body.
                self.forward(&target(), identity, !incoming.cors_preflight)
                    .await
            }
            Decision::ForwardPasswordChange(verified) => {
                let identity = identity_headers(&verified.identity);
                let response = self.forward(&target(), identity, true).await?;
                self.finish_password_change(verified, store, response.status())
                    .await?;
                Ok(response)
            }
            Decision::ReadAdminBody(action) => {
                let body = self.read_body().await?;
                let reply =
                    admin::handle(action, &body, self.config, &verification, &store, now()).await;
                Ok(respond(&reply))
            }
        }
    }

    async fn forward(
        &self,
        target: &str,
        identity: Vec<(&'static str, String)>,
        with_body: bool,
    ) -> Result<Response, GateError> {
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
        let promise =
            host::forward(self.request, target, identity, with_body).map_err(unreachable)?;
        let response = wait(promise).await.map_err(unreachable)?;
        Ok(response.unchecked_into())
    }

    /// Records the user's cut-off once the origin accepted a password
    /// change. The write runs under `ctx.waitUntil`, so a client hanging up
    /// cannot cancel it; the client still sees the origin's success only
    /// once the cut-off is recorded.
    async fn finish_password_change(
        &self,
        verified: Verified,
        store: KvRevocations,
        origin_status: u16,
    ) -> Result<(), GateError> {
        let config = Rc::clone(self.config);
        let isolate = Rc::clone(self.isolate);
        let write = Task::new(async move {
            let verification = Verification {
                keyring: &isolate.keyring,
                fetcher: &isolate.fetcher,
                signatures: &crypto::WebCrypto,
            };
            let gateway = Gateway {
                config: &config,
                verification: &verification,
                store: &store,
            };
            // Read the clock after the origin answered: the change is done now.
            match gateway
                .finish_password_change(&verified, origin_status, now())
                .await
            {
                Ok(()) => JsValue::TRUE,
                Err(_) => {
                    host::error(&format!(
                        "password change for token {} succeeded at the origin but the cut-off \
                         could not be recorded",
                        verified.identity.token_id
                    ));
                    JsValue::FALSE
                }
            }
        });
        let recorded = wait(host::in_background(self.ctx, write)).await;
        match recorded {
            Ok(done) if done.is_truthy() => Ok(()),
            _ => Err(GateError::SessionsNotRevoked),
        }
    }

    /// A small request body (admin API, reached only with the admin token).
    async fn read_body(&self) -> Result<Vec<u8>, GateError> {
        let promise = host::read_body(self.request, admin::MAX_BODY_BYTES as u32)
            .map_err(|_| GateError::InvalidRequest)?;
        let body = wait(promise).await.map_err(|_| GateError::InvalidRequest)?;
        host::bytes(&body).ok_or(GateError::InvalidRequest)
    }
}
