//! Tokengate inside your own workers-rs Worker (cargo feature `workers-rs`).
//!
//! The standalone gateway (src/edge) forwards to an origin. Here the origin
//! is your own handler: [`Gate::check`] verifies the request, reads its
//! revocations in one KV bulk get and answers Tokengate's own routes
//! (logout, logout-all, admin, back-channel logout) or a refusal; what it
//! lets through goes to your handler with the same `X-Auth-*` identity
//! headers, and [`After::finish`] records what your response asks for
//! (`Tokengate-Revoke`, a password change's cut-off) before it goes back.
//! Every decision, and their order, is the core's: the same
//! [`crate::request::Step`]s the standalone adapter drives; this module only
//! moves bytes through the `worker` crate.
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

use std::cell::{OnceCell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use js_sys::Uint8Array;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::{future_to_promise, JsFuture};
use worker::web_sys;
use worker::{Context, Delay, Env, Headers, KvStore, Request, Response, ResponseBuilder};

use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::{GateError, Refusal, RefusalLog, Reply};
use crate::form;
use crate::gateway::{Gateway, Incoming};
use crate::headers::{identity_headers, split_url};
use crate::js_host;
use crate::js_value::setting;
use crate::keyring::{Fetched, JwksFetcher, Keyring};
use crate::keys::{Algorithm, SignatureVerifier, VerifyKey};
use crate::origin_revoke;
use crate::refresh::{SpendOutcome, SpendRequest, SpendStore};
use crate::request::{self, Body, Forward, ForwardBody, Record, Step};
use crate::revocation::{RevocationStore, StoreError, DEADLINES, KV_CACHE_TTL_SECONDS};
use crate::verify::{Identity, Verification};

/// The KV namespace binding, as in the standalone gateway's wrangler.toml.
pub const KV_BINDING: &str = "REVOCATIONS";

// The standalone host's redacting log, reused so that both adapters log
// alike (WebCrypto and the JWKS fetch come from `crate::js_host`: `worker`
// wraps none of `crypto.subtle.verify`).
#[wasm_bindgen(module = "/js/host.mjs")]
extern "C" {
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
    refusal_log: RefusalLog,
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
            refusal_log: RefusalLog::new(config.as_ref().ok().map(|c| c.refusal_log_per_second)),
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
                self.run(config, &incoming, &mut request, env).await
            }
            Err(e) => Err(Refusal::from(*e)),
        };
        for warning in self.0.keyring.take_warnings() {
            warn(&format!("tokengate: {warning}"));
        }
        match outcome {
            Ok(Passing::Reply(reply)) => {
                respond(&reply, &method, &path, &self.0.refusal_log).map(Checked::Answered)
            }
            Ok(Passing::Forward(forward, store)) => {
                if let Some(line) = self.0.refusal_log.summary_if_any(now) {
                    warn(&line);
                }
                let identity = forward
                    .verified
                    .as_ref()
                    .map(|verified| identity_headers(&verified.identity))
                    .unwrap_or_default();
                let buffered = match &forward.body {
                    ForwardBody::Buffered(bytes) => Some(bytes.as_slice()),
                    ForwardBody::Streamed | ForwardBody::Empty => None,
                };
                let request = with_identity(request, identity, buffered)?;
                Ok(Checked::Forward(Box::new(Forwarded {
                    request,
                    after: After {
                        gate: self.clone(),
                        forward,
                        store,
                        method,
                        path,
                    },
                })))
            }
            Err(refusal) => respond(&refusal.to_reply(), &method, &path, &self.0.refusal_log)
                .map(Checked::Answered),
        }
    }

    /// The core's steps up to an answer or a forward, with the I/O they ask for.
    async fn run(
        &self,
        config: &Config,
        incoming: &Incoming<'_>,
        request: &mut Request,
        env: &Env,
    ) -> Result<Passing, Refusal> {
        let store = WorkersKv::from_env(env)?;
        let verification = self.0.verification();
        let gateway = Gateway {
            config,
            verification: &verification,
            store: &store,
        };
        let mut step = gateway.start(incoming, now()).await;
        loop {
            step = match step {
                Step::Reply(reply) => return Ok(Passing::Reply(reply)),
                Step::ReadBody(wanted) => {
                    let header = |name| request.headers().get(name).ok().flatten();
                    let (content_type, content_encoding) =
                        (header("content-type"), header("content-encoding"));
                    let Ok(bytes) = read_body(request, form::MAX_BODY_BYTES).await else {
                        return Ok(Passing::Reply(wanted.unreadable()));
                    };
                    let body = Body {
                        content_type: content_type.as_deref(),
                        content_encoding: content_encoding.as_deref(),
                        bytes: &bytes,
                    };
                    gateway.with_body(incoming, wanted, body, now()).await
                }
                Step::Forward(forward) => return Ok(Passing::Forward(forward, store.clone())),
            };
        }
    }
}

enum Passing {
    Reply(Reply),
    Forward(Forward, WorkersKv),
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
    forward: Forward,
    store: WorkersKv,
    method: String,
    path: String,
}

impl After {
    pub fn identity(&self) -> Option<&Identity> {
        self.forward.verified.as_ref().map(|v| &v.identity)
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
        let Ok(config) = &self.gate.0.config else {
            return Ok(response);
        };
        let verification = self.gate.0.verification();
        let gateway = Gateway {
            config,
            verification: &verification,
            store: &self.store,
        };
        let after = gateway.after_origin(&self.forward, response.status_code(), revoke.as_deref());
        for warning in &after.warnings {
            warn(&format!("tokengate: {warning} ({})", self.path));
        }
        let Some(record) = after.record else {
            return Ok(response);
        };
        match record_in_background(self.gate.clone(), record, self.store, ctx).await {
            Ok(()) => Ok(response),
            Err(refusal) => respond(
                &refusal.to_reply(),
                &self.method,
                &self.path,
                &self.gate.0.refusal_log,
            ),
        }
    }
}

/// Runs [`Gateway::record`] under `ctx.waitUntil`, so a client hanging up
/// cannot cancel the writes; the caller waits for their outcome.
async fn record_in_background(
    gate: Gate,
    record: Record,
    store: WorkersKv,
    ctx: &Context,
) -> Result<(), Refusal> {
    let failed = request::record_failed(&record);
    let outcome = Rc::new(RefCell::new(Ok(())));
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
        // Read the clock after the handler answered: the change is done now.
        let result = gateway
            .record(&record, now())
            .await
            .map_err(|(refusal, log)| {
                error(&log);
                refusal
            });
        let ok = result.is_ok();
        *reported.borrow_mut() = result;
        Ok(JsValue::from_bool(ok))
    });
    let background = JsFuture::from(write.clone());
    ctx.wait_until(async move {
        let _ = background.await;
    });
    match JsFuture::from(write).await {
        Ok(_) => outcome.replace(Ok(())),
        // The task itself failed (a bug): never pass the response on.
        Err(_) => Err(failed),
    }
}

/// Tokengate's own reply as a `Response`; a refusal is logged as the
/// standalone gateway logs it ([`RefusalLog::lines`]).
fn respond(reply: &Reply, method: &str, path: &str, log: &RefusalLog) -> worker::Result<Response> {
    for line in log.lines(reply, method, path, now()) {
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

/// Whether a client-sent header claims to be one of ours:
/// [`crate::headers::SPOOFED_IDENTITY_PATTERN`], on the lower-case names
/// the Fetch API hands out.
fn is_spoofed_identity(name: &str) -> bool {
    let name = name.as_bytes();
    name.len() > 7
        && name[0] == b'x'
        && matches!(name[1], b'-' | b'_')
        && &name[2..6] == b"auth"
        && matches!(name[6], b'-' | b'_')
}

/// `request` as the handler gets it: client-sent `X-Auth-*` removed (the
/// handler can trust them), `identity` added. The body streams through,
/// unless the core read it already (`buffered`).
fn with_identity(
    request: Request,
    identity: Vec<(&'static str, String)>,
    buffered: Option<&[u8]>,
) -> worker::Result<Request> {
    let spoofed = request
        .headers()
        .keys()
        .any(|name| is_spoofed_identity(&name));
    if identity.is_empty() && !spoofed && buffered.is_none() {
        return Ok(request);
    }
    let headers = Headers::new();
    for (name, value) in request.headers().entries() {
        if !is_spoofed_identity(&name) {
            headers.append(&name, &value)?;
        }
    }
    for (name, value) in identity {
        headers.set(name, &value)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_headers(&headers.0);
    if let Some(bytes) = buffered {
        init.set_body(&Uint8Array::from(bytes));
    }
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
    let declared = declared.and_then(|d| d.trim().parse::<usize>().ok());
    if request.inner().body().is_none() {
        return match declared {
            Some(declared) if declared > limit => Err(GateError::InvalidRequest),
            _ => Ok(Vec::new()),
        };
    }
    let mut chunks = request.stream().map_err(|_| GateError::InvalidRequest)?;
    if declared.is_some_and(|d| d > limit) {
        if declared.is_some_and(|d| d <= form::DRAIN_LIMIT_BYTES) {
            discard_rest(&mut chunks, 0).await;
        }
        return Err(GateError::InvalidRequest);
    }
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| GateError::InvalidRequest)?;
        if body.len() + chunk.len() > limit {
            discard_rest(&mut chunks, body.len() + chunk.len()).await;
            return Err(GateError::InvalidRequest);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads and drops what is left of a body refused for its size, up to
/// `form::DRAIN_LIMIT_BYTES` in all (which says why).
async fn discard_rest(chunks: &mut worker::ByteStream, mut size: usize) {
    while size <= form::DRAIN_LIMIT_BYTES {
        match chunks.next().await {
            Some(Ok(chunk)) => size += chunk.len(),
            _ => return,
        }
    }
}

/// `future`'s output, or `None` once `millis` passed without it.
async fn within<T>(millis: u32, future: impl Future<Output = T>) -> Option<T> {
    let mut future = pin!(future);
    let mut timer = pin!(Delay::from(Duration::from_millis(millis.into())));
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

/// `future`'s output, or a store failure once `millis` passed without it.
async fn within_deadline<T>(
    what: &str,
    millis: u32,
    future: impl Future<Output = T>,
) -> Result<T, StoreError> {
    within(millis, future)
        .await
        .ok_or_else(|| failed(what, format!("no answer within {millis} ms")))
}

impl RevocationStore for WorkersKv {
    /// One `get([...keys])` (`KvStore::get_bulk`). Fails closed: a key
    /// missing from the answer is a store failure, never "not revoked".
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let what = "KV bulk get";
        let read = self
            .0
            .get_bulk(keys)
            .cache_ttl(KV_CACHE_TTL_SECONDS.into())
            .text();
        let mut found = within_deadline(what, DEADLINES.kv_read_ms, read)
            .await?
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
        within_deadline(what, DEADLINES.kv_write_ms, put.execute())
            .await?
            .map_err(|e| failed(what, e))
    }

    async fn pause(&self, millis: u32) {
        Delay::from(Duration::from_millis(millis.into())).await;
    }
}

/// Refresh tokens are spent in the standalone gateway's per-user Durable
/// Objects, which this adapter does not have: [`Gate::from_env`] refuses
/// `REFRESH_PATH`, so the core never asks.
impl SpendStore for WorkersKv {
    async fn user_spend(&self, _: &str, _: &SpendRequest) -> Result<SpendOutcome, StoreError> {
        Err(StoreError("no per-user objects are bound".into()))
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
        let Some(started) = js_host::start_verify(alg, key, signing_input, signature) else {
            return Ok(false);
        };
        let outcome = match started {
            Ok(promise) => JsFuture::from(promise).await,
            Err(e) => Err(e),
        };
        Ok(js_host::signature_verdict(outcome, alg, key, error))
    }
}

/// Remote key sets (`JWT_ISSUERS` with a `jwks_uri`), fetched with the
/// standalone gateway's timeout and size limit.
struct WorkerFetcher;

impl JwksFetcher for WorkerFetcher {
    async fn fetch(&self, url: &str, _bypass_shared_cache: bool) -> Result<Fetched, String> {
        let promise = js_host::start_jwks_fetch(url)?;
        js_host::fetched(JsFuture::from(promise).await)
    }
}
