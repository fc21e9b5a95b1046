//! Tokengate inside your own workers-rs Worker (cargo feature `workers-rs`).
//!
//! The standalone gateway (src/edge) forwards to an origin. Here the origin
//! is your own handler: [`Gate::check`] verifies the request, reads its
//! revocations in one KV bulk get and answers Tokengate's own routes
//! (logout, logout-all, admin, back-channel logout) or a refusal; what it
//! lets through goes to your handler with the same `X-Auth-*` identity
//! headers, and [`Forwarded::finish`] records what your response asks for
//! (`Tokengate-Revoke`, a password change's cut-off) before it goes back.
//! Every decision is the core's ([`Gateway::decide`] and the functions the
//! standalone adapter calls); this module only moves bytes through the
//! `worker` crate.
//!
//! ```ignore
//! #[event(fetch)]
//! async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
//!     let gate = Gate::for_isolate(&env);
//!     gate.serve(req, &env, &ctx, |req| my_routes(req)).await
//! }
//! ```
//!
//! Not offered here: the per-user Durable Objects of `REFRESH_PATH` and
//! `STRICT_PATHS` (a configuration with them is refused as misconfigured),
//! and sharing JWKS between isolates through the Cache API
//! (`JWKS_CACHE_KEY` is ignored; each isolate keeps its own copy).

use std::cell::{Cell, OnceCell};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use js_sys::{Array, Promise, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::{future_to_promise, JsFuture};
use worker::web_sys;
use worker::{Context, Delay, Env, Headers, KvStore, Request, Response, ResponseBuilder};

use crate::admin;
use crate::backchannel;
use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::{refusal_log_line, GateError, Refusal, Reply, Who};
use crate::gateway::{Decision, Gateway, Incoming};
use crate::headers::{identity_headers, is_identity_header, split_url};
use crate::keyring::{Fetched, JwksFetcher, Keyring, MIN_CACHE_SECONDS};
use crate::keys::{Algorithm, KeyMaterial, SignatureVerifier, VerifyKey};
use crate::origin_revoke::{self, Directive};
use crate::revocation::{RevocationStore, StoreError};
use crate::verify::{Identity, Verification, Verified};

/// The KV namespace binding, as in the standalone gateway's wrangler.toml.
pub const KV_BINDING: &str = "REVOCATIONS";

/// The same limits as js/host.mjs, so both adapters fail the same way.
const KV_CACHE_TTL_SECONDS: u64 = 30;
const KV_READ_TIMEOUT_MS: u64 = 3000;
const KV_WRITE_TIMEOUT_MS: u64 = 5000;
const JWKS_FETCH_TIMEOUT_MS: u32 = 5000;
const MAX_JWKS_BYTES: u32 = 256 * 1024;

// The standalone host's WebCrypto, JWKS fetch and redacting log, reused so
// that both adapters verify, fetch and log alike. `worker` wraps none of
// `crypto.subtle.verify`.
#[wasm_bindgen(module = "/js/host.mjs")]
extern "C" {
    #[wasm_bindgen(js_name = verifySignature, catch)]
    fn verify_signature(
        alg: &str,
        jwk: &str,
        signature: &[u8],
        data: &[u8],
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = fetchText, catch)]
    fn fetch_text(url: &str, timeout_ms: u32, max_bytes: u32) -> Result<Promise, JsValue>;

    /// Writes a log line with anything token- or query-like redacted.
    fn log(level: &str, message: &str);
}

fn error(message: &str) {
    log("error", message);
}

fn warn(message: &str) {
    log("warn", message);
}

/// `Date.now()` in seconds: in Workers it advances only across I/O.
fn now() -> NumericDate {
    js_sys::Date::now() / 1000.0
}

/// What an isolate works out once: vars and secrets are fixed for its life.
struct Isolate {
    config: Result<Rc<Config>, GateError>,
    keyring: Keyring,
}

impl Isolate {
    fn verification(&self) -> Verification<'_, WorkerFetcher, WebCrypto> {
        Verification {
            keyring: &self.keyring,
            fetcher: &WorkerFetcher,
            signatures: &WebCrypto,
        }
    }
}

/// Tokengate for one isolate: its configuration (the standalone gateway's
/// vars and secrets, README "Configuration") and its key cache. Cheap to
/// clone.
#[derive(Clone)]
pub struct Gate(Rc<Isolate>);

thread_local! {
    static GATE: OnceCell<Gate> = const { OnceCell::new() };
}

/// A var or secret as text; JSON vars (`JWT_ISSUERS = [...]`) as JSON text,
/// as the standalone gateway reads them.
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

impl Gate {
    /// The isolate's gate, built from `env` on first use and kept.
    pub fn for_isolate(env: &Env) -> Gate {
        GATE.with(|cell| cell.get_or_init(|| Gate::from_env(env)).clone())
    }

    /// A gate from `env`'s vars and secrets. A bad configuration is logged
    /// once here and answers every request with 500 `misconfigured`, as the
    /// standalone gateway does.
    pub fn from_env(env: &Env) -> Gate {
        let env: &JsValue = env.as_ref();
        let mut config = Config::from_lookup(|name| setting(env, name)).map_err(|e| e.to_string());
        if let Ok(c) = &config {
            if c.needs_session_objects() {
                config = Err(
                    "REFRESH_PATH and STRICT_PATHS need the standalone gateway's \
                     per-user Durable Objects, which the workers-rs feature does not offer"
                        .to_owned(),
                );
            }
        }
        match &config {
            Ok(c) => c
                .warnings
                .iter()
                .for_each(|w| warn(&format!("tokengate: {w}"))),
            Err(e) => error(&format!("tokengate misconfigured: {e}")),
        }
        if setting(env, "JWKS_CACHE_KEY").is_some() {
            warn("tokengate: JWKS_CACHE_KEY is ignored by the workers-rs feature; each isolate keeps its own key set copy");
        }
        Gate(Rc::new(Isolate {
            config: config.map(Rc::new).map_err(|_| GateError::Misconfigured),
            keyring: Keyring::default(),
        }))
    }

    /// Checks `request` and answers it with `handler` when it may pass:
    /// [`Gate::check`], then `handler`, then [`Forwarded::finish`].
    pub async fn serve<H, F>(
        &self,
        request: Request,
        env: &Env,
        ctx: &Context,
        handler: H,
    ) -> worker::Result<Response>
    where
        H: FnOnce(Request) -> F,
        F: Future<Output = worker::Result<Response>>,
    {
        match self.check(request, env).await? {
            Checked::Answered(response) => Ok(response),
            Checked::Forward(forwarded) => {
                let (request, after) = forwarded.into_parts();
                after.finish(handler(request).await?, ctx).await
            }
        }
    }

    /// Tokengate's answer to `request`: a refusal or one of its own routes,
    /// or the request to hand to your handler (client-sent `X-Auth-*`
    /// removed, the verified identity added).
    pub async fn check(&self, mut request: Request, env: &Env) -> worker::Result<Checked> {
        let inner = request.inner();
        let method = inner.method();
        let url = inner.url();
        let headers = request.headers();
        let authorization = headers.get("authorization")?;
        let cookie = headers.get("cookie")?;
        let origin = headers.get("origin")?;
        let preflight = method == "OPTIONS" && headers.has("access-control-request-method")?;
        // For the log line of a refusal: the path only, never the query.
        let path = split_url(&url).map_or("", |(path, _)| path).to_owned();
        let outcome = match &self.0.config {
            Ok(config) => {
                let incoming = Incoming {
                    method: &method,
                    path: &path,
                    authorization: authorization.as_deref(),
                    cookie: cookie.as_deref(),
                    origin: origin.as_deref(),
                    cors_preflight: preflight,
                };
                self.decide(config, &incoming, &mut request, env).await
            }
            Err(e) => Err(Refusal::from(*e)),
        };
        for warning in self.0.keyring.take_warnings() {
            warn(&format!("tokengate: {warning}"));
        }
        match outcome {
            Ok(Step::Reply(reply)) => respond(&reply, &method, &path).map(Checked::Answered),
            Ok(Step::Forward {
                verified,
                store,
                password_change,
            }) => {
                let identity = verified.as_ref().map(|v| identity_headers(&v.identity));
                Ok(Checked::Forward(Box::new(Forwarded {
                    request: with_identity(request, identity.unwrap_or_default())?,
                    after: After {
                        gate: self.clone(),
                        verified,
                        store,
                        password_change,
                        method,
                        path,
                    },
                })))
            }
            Err(refusal) => respond(&refusal.to_reply(), &method, &path).map(Checked::Answered),
        }
    }

    async fn decide(
        &self,
        config: &Rc<Config>,
        incoming: &Incoming<'_>,
        request: &mut Request,
        env: &Env,
    ) -> Result<Step, Refusal> {
        let store = WorkersKv::from_env(env)?;
        let verification = self.0.verification();
        let gateway = Gateway {
            config,
            verification: &verification,
            store: &store,
        };
        let forward = |verified, password_change| Step::Forward {
            verified,
            store: store.clone(),
            password_change,
        };
        match gateway.decide(incoming, now()).await {
            Decision::Reply(reply) => Ok(Step::Reply(reply)),
            Decision::Forward(verified) => Ok(forward(verified, false)),
            Decision::ForwardPasswordChange(verified) => Ok(forward(Some(verified), true)),
            // Only with REFRESH_PATH, which `from_env` refuses.
            Decision::Refresh => Err(GateError::Misconfigured.into()),
            Decision::ReadAdminBody(action) => {
                let body = read_body(request, admin::MAX_BODY_BYTES).await?;
                let reply =
                    admin::handle(action, &body, config, &verification, &store, now()).await;
                Ok(Step::Reply(reply))
            }
            Decision::ReadBackchannelBody => {
                let content_type = request.headers().get("content-type").ok().flatten();
                let body = read_body(request, backchannel::MAX_BODY_BYTES)
                    .await
                    .map_err(|_| {
                        GateError::LogoutTokenInvalid(
                            "the request body is larger than 64 KiB or cannot be read",
                        )
                    })?;
                let (reply, _) = backchannel::handle(
                    content_type.as_deref(),
                    &body,
                    config,
                    &verification,
                    &store,
                    now(),
                )
                .await?;
                Ok(Step::Reply(reply))
            }
        }
    }
}

enum Step {
    Reply(Reply),
    Forward {
        verified: Option<Verified>,
        store: WorkersKv,
        password_change: bool,
    },
}

/// What [`Gate::check`] decided.
pub enum Checked {
    /// Tokengate's own answer (a refusal, logout, the admin API, ...):
    /// return it as it is.
    Answered(Response),
    /// The request may go to your handler.
    Forward(Box<Forwarded>),
}

/// A request that passed: to your handler with [`Forwarded::into_parts`],
/// and its response through [`After::finish`].
pub struct Forwarded {
    request: Request,
    after: After,
}

impl Forwarded {
    /// The verified identity (`None` on a public path or a CORS preflight).
    pub fn identity(&self) -> Option<&Identity> {
        self.after.identity()
    }

    pub fn into_parts(self) -> (Request, After) {
        (self.request, self.after)
    }
}

/// What is left to do once your handler answered a request that passed.
pub struct After {
    gate: Gate,
    verified: Option<Verified>,
    store: WorkersKv,
    password_change: bool,
    method: String,
    path: String,
}

impl After {
    pub fn identity(&self) -> Option<&Identity> {
        self.verified.as_ref().map(|v| &v.identity)
    }

    /// The response to send: `response` without its `Tokengate-Revoke`
    /// header, once what it asked for (and a successful password change's
    /// cut-off) is recorded; if that cannot be recorded, the refusal the
    /// standalone gateway gives (503) instead. The writes run under
    /// `ctx.waitUntil`, so a client hanging up cannot cancel them.
    pub async fn finish(self, mut response: Response, ctx: &Context) -> worker::Result<Response> {
        let revoke = response.headers().get(origin_revoke::HEADER)?;
        if revoke.is_some() {
            let headers = response.headers().clone();
            headers.delete(origin_revoke::HEADER)?;
            response = response.with_headers(headers);
        }
        let Some(verified) = self.verified else {
            if revoke.is_some() {
                warn(&format!(
                    "tokengate: the handler sent {} on an unverified request to {}; removed, nothing revoked",
                    origin_revoke::HEADER,
                    self.path
                ));
            }
            return Ok(response);
        };
        let directive = revoke.as_deref().map(directive).unwrap_or_default();
        let status = self.password_change.then(|| response.status_code());
        if status.is_none() && directive.is_empty() {
            return Ok(response);
        }
        let who = Some(Who::of(&verified.identity));
        match record(self.gate, verified, self.store, status, directive, ctx).await {
            Ok(()) => Ok(response),
            Err(error) => respond(&Refusal { error, who }.to_reply(), &self.method, &self.path),
        }
    }
}

/// What the handler asked for with `Tokengate-Revoke`; members we do not
/// know are logged and otherwise ignored.
fn directive(value: &str) -> Directive {
    let (directive, unknown) = origin_revoke::parse(value);
    if !unknown.is_empty() {
        warn(&format!(
            "tokengate: ignored unknown {} member(s) from the handler: {}",
            origin_revoke::HEADER,
            unknown.join(", ")
        ));
    }
    directive
}

/// The writes after the handler answered, under `ctx.waitUntil`; the
/// caller waits for their outcome.
async fn record(
    gate: Gate,
    verified: Verified,
    store: WorkersKv,
    password_change: Option<u16>,
    directive: Directive,
    ctx: &Context,
) -> Result<(), GateError> {
    let outcome = Rc::new(Cell::new(Ok(())));
    let reported = Rc::clone(&outcome);
    let write = future_to_promise(async move {
        let Ok(config) = &gate.0.config else {
            return Err(JsValue::NULL);
        };
        let verification = gate.0.verification();
        let gateway = Gateway {
            config,
            verification: &verification,
            store: &store,
        };
        let token_id = &verified.identity.token_id;
        let mut result = Ok(());
        if let Some(status) = password_change {
            // Read the clock after the handler answered: the change is done now.
            result = gateway
                .finish_password_change(&verified, status, now())
                .await;
            if result.is_err() {
                error(&format!(
                    "password change for token {token_id} succeeded in the handler but the \
                     cut-off could not be recorded"
                ));
            }
        }
        if result.is_ok() && !directive.is_empty() {
            result = gateway
                .finish_origin_revocation(&verified, directive, now())
                .await;
            if let Err(e) = result {
                error(&format!(
                    "the handler asked for {directive:?} for token {token_id}, which could not \
                     be recorded ({e}); its response was withheld"
                ));
            }
        }
        reported.set(result);
        Ok(JsValue::from_bool(result.is_ok()))
    });
    let background = JsFuture::from(write.clone());
    ctx.wait_until(async move {
        let _ = background.await;
    });
    match JsFuture::from(write).await {
        Ok(_) => outcome.get(),
        // The task itself failed (a bug): never pass the response on.
        Err(_) => Err(if password_change.is_some() {
            GateError::SessionsNotRevoked
        } else {
            GateError::OriginRevocationFailed
        }),
    }
}

/// Tokengate's own reply as a `Response`; a refusal is logged as the
/// standalone gateway logs it ([`refusal_log_line`]).
fn respond(reply: &Reply, method: &str, path: &str) -> worker::Result<Response> {
    if let Some(line) = refusal_log_line(reply, method, path) {
        warn(&line);
    }
    let headers = Headers::new();
    for (name, value) in &reply.headers {
        headers.append(name, value)?;
    }
    let builder = ResponseBuilder::new()
        .with_status(reply.status)
        .with_headers(headers);
    // 204 and 304 must not have a body, not even an empty one.
    Ok(if matches!(reply.status, 204 | 304) {
        builder.empty()
    } else {
        builder.fixed(reply.body.clone().into_bytes())
    })
}

/// `request` as the handler gets it: client-sent `X-Auth-*` removed (the
/// handler can trust them), `identity` added. The body streams through.
fn with_identity(
    request: Request,
    identity: Vec<(&'static str, String)>,
) -> worker::Result<Request> {
    let spoofed = request
        .headers()
        .keys()
        .any(|name| is_identity_header(&name));
    if identity.is_empty() && !spoofed {
        return Ok(request);
    }
    let headers = Headers::new();
    for (name, value) in request.headers().entries() {
        if !is_identity_header(&name) {
            headers.append(&name, &value)?;
        }
    }
    for (name, value) in identity {
        headers.set(name, &value)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_headers(&headers.0);
    // `new Request(request, init)` keeps method, body, `cf` and the rest.
    let rebuilt = web_sys::Request::new_with_request_and_init(request.inner(), &init)?;
    Ok(Request::from(rebuilt))
}

/// A small request body (admin API, back-channel logout), at most `limit`
/// bytes. A declared length over the limit is refused unread; a body
/// without one is read as it streams in and refused at the limit, never
/// buffered whole.
async fn read_body(request: &mut Request, limit: usize) -> Result<Vec<u8>, GateError> {
    let declared = request.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|d| d.trim().parse::<usize>().ok())
        .is_some_and(|d| d > limit)
    {
        return Err(GateError::InvalidRequest);
    }
    if request.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut chunks = request.stream().map_err(|_| GateError::InvalidRequest)?;
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| GateError::InvalidRequest)?;
        if body.len() + chunk.len() > limit {
            return Err(GateError::InvalidRequest);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `future`'s output, or `None` once `millis` passed without it.
async fn within<T>(millis: u64, future: impl Future<Output = T>) -> Option<T> {
    let mut future = pin!(future);
    let mut timer = pin!(Delay::from(Duration::from_millis(millis)));
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// The `REVOCATIONS` namespace through `worker`'s `KvStore`.
#[derive(Clone)]
struct WorkersKv(KvStore);

impl WorkersKv {
    fn from_env(env: &Env) -> Result<WorkersKv, GateError> {
        env.kv(KV_BINDING).map(WorkersKv).map_err(|_| {
            error(&format!(
                "tokengate misconfigured: KV binding {KV_BINDING} is missing"
            ));
            GateError::Misconfigured
        })
    }
}

fn failed(what: &str, why: impl std::fmt::Display) -> StoreError {
    error(&format!("{what} failed: {why}"));
    StoreError(what.to_owned())
}

impl RevocationStore for WorkersKv {
    /// One `get([...keys])` (`KvStore::get_bulk`). Fails closed: a key
    /// missing from the answer is a store failure, never "not revoked".
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let what = "KV bulk get";
        let read = self.0.get_bulk(keys).cache_ttl(KV_CACHE_TTL_SECONDS).text();
        let mut found = within(KV_READ_TIMEOUT_MS, read)
            .await
            .ok_or_else(|| failed(what, format!("no answer within {KV_READ_TIMEOUT_MS} ms")))?
            .map_err(|e| failed(what, e))?;
        keys.iter()
            .map(|key| {
                found
                    .remove(key)
                    .ok_or_else(|| failed(what, "a requested key was left out"))
            })
            .collect()
    }

    async fn put(&self, key: &str, value: &str, expires_at: Option<u64>) -> Result<(), StoreError> {
        let what = "KV put";
        let mut put = self.0.put(key, value).map_err(|e| failed(what, e))?;
        if let Some(at) = expires_at {
            put = put.expiration(at);
        }
        within(KV_WRITE_TIMEOUT_MS, put.execute())
            .await
            .ok_or_else(|| failed(what, format!("no answer within {KV_WRITE_TIMEOUT_MS} ms")))?
            .map_err(|e| failed(what, e))
    }

    async fn pause(&self, millis: u32) {
        Delay::from(Duration::from_millis(millis.into())).await;
    }
}

/// Public-key signatures through WebCrypto, as the standalone gateway.
struct WebCrypto;

impl SignatureVerifier for WebCrypto {
    async fn verify(
        &self,
        alg: Algorithm,
        key: &VerifyKey,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, GateError> {
        let KeyMaterial::Public { jwk, .. } = &key.material else {
            return Ok(false);
        };
        let outcome = match verify_signature(alg.name(), jwk, signature, signing_input) {
            Ok(promise) => JsFuture::from(promise).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(valid) => Ok(valid.as_bool() == Some(true)),
            Err(e) => {
                error(&format!(
                    "WebCrypto could not import key {:?} for {}: {}",
                    key.kid,
                    alg.name(),
                    describe(&e)
                ));
                Ok(false)
            }
        }
    }
}

fn describe(error: &JsValue) -> String {
    match error.dyn_ref::<js_sys::Error>() {
        Some(e) => String::from(e.to_string()),
        None => error.as_string().unwrap_or_else(|| format!("{error:?}")),
    }
}

/// Remote key sets (`JWT_ISSUERS` with a `jwks_uri`), fetched with the
/// standalone gateway's timeout and size limit.
struct WorkerFetcher;

/// `max-age` from `Cache-Control`, read as src/edge/jwks.rs reads it.
fn max_age(cache_control: Option<&str>) -> Option<u64> {
    let header = cache_control?.to_ascii_lowercase();
    if header.contains("no-store") || header.contains("no-cache") {
        return Some(MIN_CACHE_SECONDS);
    }
    header
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse::<u64>().ok())
}

impl JwksFetcher for WorkerFetcher {
    async fn fetch(&self, url: &str, _bypass_shared_cache: bool) -> Result<Fetched, String> {
        let promise = fetch_text(url, JWKS_FETCH_TIMEOUT_MS, MAX_JWKS_BYTES)
            .map_err(|e| format!("fetch failed: {}", describe(&e)))?;
        let answer = JsFuture::from(promise)
            .await
            .map_err(|e| format!("fetch failed or timed out: {}", describe(&e)))?;
        let answer = Array::from(&answer);
        let status = answer.get(0).as_f64().unwrap_or(0.0) as u16;
        if status != 200 {
            return Err(format!("HTTP {status}"));
        }
        let body = answer.get(2).as_string().ok_or("unreadable body")?;
        Ok(Fetched {
            body,
            max_age: max_age(answer.get(1).as_string().as_deref()),
        })
    }
}
