//! The wasm adapter: one call in from `js/worker.mjs` per request, the
//! core's decision, and the I/O it asks for through `js/host.mjs`.
//! Everything that decides anything lives in the core.
//!
//! ```text
//! js/worker.mjs ──handle(request, env, ctx, method, url, authorization, cookie, origin, preflight, now)──▶ Task
//!   drive(task): poll ─▶ core runs until it waits on a promise (KV, WebCrypto, fetch via js/host.mjs)
//!                await it natively, resume ─▶ ... ─▶ Response (ours, or the origin's)
//! ```

mod crypto;
mod host;
mod jwks;
mod kv;
mod object;
mod task;

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use js_sys::Array;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::{GateError, Refusal, RefusalLog, Reply};
use crate::form;
use crate::gateway::{out_of_line, Gateway, Incoming};
use crate::headers::{header_lines, identity_headers, origin_target, split_url};
use crate::js_value::{describe, setting};
use crate::keyring::Keyring;
use crate::request::{self, Body, BodyWanted, Forward, ForwardBody, Record, Step};
use crate::verify::Verification;
use host::{Request, Response};
use jwks::EdgeFetcher;
use kv::KvRevocations;
use task::{wait, Task};

/// `Date.now()` in seconds. In Workers it only advances across I/O, which is
/// what we want: one request sees one instant until it waits for something.
fn now() -> NumericDate {
    js_sys::Date::now() / 1000.0
}

/// What an isolate works out once: vars and secrets are fixed for its life.
struct Isolate {
    config: Result<Rc<Config>, GateError>,
    /// The bindings, looked up once: each lookup is a crossing into JS and
    /// a property read there, on every request otherwise.
    store: Result<KvRevocations, GateError>,
    keyring: Keyring,
    fetcher: EdgeFetcher,
    refusal_log: RefusalLog,
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
            let store = KvRevocations::from_env(
                env,
                config.as_ref().is_ok_and(|c| c.needs_session_objects()),
            );
            Rc::new(Isolate {
                store,
                refusal_log: RefusalLog::new(
                    config.as_ref().ok().map(|c| c.refusal_log_per_second),
                ),
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
/// the few request fields the core reads and the request's instant
/// (`Date.now()`, ms) passed in, so that nothing has to be fetched back
/// across the boundary. `js/host.mjs`'s `drive` runs the
/// returned task to its `Response`.
#[allow(clippy::too_many_arguments)] // one call in, instead of ten crossings
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
    arrived_ms: f64,
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
                call.run(incoming, &url, arrived_ms / 1000.0).await
            }
            Err(e) => Err(Refusal::from(*e)),
        };
        for warning in isolate.keyring.take_warnings() {
            host::warn(&format!("tokengate: {warning}"));
        }
        let log = &isolate.refusal_log;
        match outcome {
            Ok(Answer::Origin(response)) => {
                if let Some(line) = log.summary_if_any(now) {
                    host::warn(&line);
                }
                response
            }
            Ok(Answer::Ours(reply)) => respond(&reply, &method, path, log),
            Err(refusal) => respond(&refusal.to_reply(), &method, path, log),
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
/// as one structured JSON line ([`crate::error::refusal_log_line`]): code,
/// method, path without the query, and the token's ID and `sub` only when
/// its signature verified; never the token. `log` bounds how many.
fn respond(reply: &Reply, method: &str, path: &str, log: &RefusalLog) -> Response {
    for line in log.lines(reply, method, path, now()) {
        host::warn(&line);
    }
    let headers = header_lines(
        reply
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    host::reply(reply.status, &reply.body, &headers)
}

/// One request's view of the isolate.
struct Call<'a> {
    isolate: &'a Rc<Isolate>,
    config: &'a Rc<Config>,
    request: &'a Request,
    ctx: &'a JsValue,
}

impl Call<'_> {
    /// `incoming` comes without its path, which is cut out of `url` here.
    /// `arrived`: the request's instant, before any I/O.
    async fn run(
        &self,
        incoming: Incoming<'_>,
        url: &str,
        arrived: NumericDate,
    ) -> Result<Answer, Refusal> {
        let (path, query) = split_url(url).ok_or(GateError::InvalidRequest)?;
        let incoming = Incoming { path, ..incoming };
        // Borrowed: a clone would copy both bindings through the externref table.
        let store = self.isolate.store.as_ref().map_err(|e| *e)?;
        let verification = self.isolate.verification();
        let gateway = Gateway {
            config: self.config,
            verification: &verification,
            store,
        };
        let target = || match &self.config.origin_url {
            Some(base) => origin_target(base, path, query),
            None => url.to_owned(),
        };

        let mut step = gateway.start(&incoming, arrived).await;
        loop {
            step = match step {
                Step::Reply(reply) => return Ok(Answer::Ours(reply)),
                Step::ReadBody(wanted) => {
                    out_of_line(self.read_body_and_go_on(&gateway, &incoming, wanted)).await
                }
                Step::Forward(forward) => {
                    return self.forward_and_record(&gateway, &target(), forward).await
                }
            };
        }
    }

    /// Reads the body the core asked for and hands it over: the next step.
    async fn read_body_and_go_on(
        &self,
        gateway: &Gateway<'_, EdgeFetcher, crypto::WebCrypto, KvRevocations>,
        incoming: &Incoming<'_>,
        wanted: BodyWanted,
    ) -> Step {
        let Ok(bytes) = self.read_body(form::MAX_BODY_BYTES).await else {
            return Step::Reply(wanted.unreadable());
        };
        let content_type = host::header(self.request, "content-type");
        let content_encoding = host::header(self.request, "content-encoding");
        let body = Body {
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
            bytes: &bytes,
        };
        gateway.with_body(incoming, wanted, body, now()).await
    }

    /// Sends the request on, then records what the origin's answer asks
    /// for (a password change's cut-off, `Tokengate-Revoke`) before the
    /// response goes back.
    async fn forward_and_record(
        &self,
        gateway: &Gateway<'_, EdgeFetcher, crypto::WebCrypto, KvRevocations>,
        target: &str,
        forward: Forward,
    ) -> Result<Answer, Refusal> {
        let identity = forward
            .verified
            .as_ref()
            .map(|verified| identity_headers(&verified.identity))
            .unwrap_or_default();
        let (with_body, buffered) = match &forward.body {
            ForwardBody::Streamed => (true, None),
            ForwardBody::Empty => (false, None),
            ForwardBody::Buffered(bytes) => (true, Some(bytes.clone())),
        };
        let refuse = |e| match &forward.verified {
            Some(verified) => verified.identity.refuse(e),
            None => Refusal::from(e),
        };
        let (response, revoke) = self
            .forward(target, identity, with_body, buffered)
            .await
            .map_err(refuse)?;
        let after = gateway.after_origin(&forward, response.status(), revoke.as_deref());
        for warning in &after.warnings {
            host::warn(&format!("tokengate: {warning}"));
        }
        if let Some(record) = after.record {
            out_of_line(self.record_in_background(record, gateway.store.clone())).await?;
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
        let identity = header_lines(identity.iter().map(|(name, value)| (*name, value.as_str())));
        let unreachable = |e: JsValue| {
            // The target may carry a query string; log only scheme, host and path.
            let shown = target.split('?').next().unwrap_or_default();
            host::error(&format!("origin unreachable at {shown}: {}", describe(&e)));
            GateError::OriginUnreachable
        };
        let promise = host::forward(self.request, target, &identity, with_body, buffered_body)
            .map_err(unreachable)?;
        let answer = Array::from(&wait(promise).await.map_err(unreachable)?);
        Ok((answer.get(0).unchecked_into(), answer.get(1).as_string()))
    }

    /// Runs [`Gateway::record`] as a task under `ctx.waitUntil`, so a
    /// client hanging up cannot cancel the writes; the client sees the
    /// origin's response only once they are recorded.
    async fn record_in_background(
        &self,
        record: Record,
        store: KvRevocations,
    ) -> Result<(), Refusal> {
        let config = Rc::clone(self.config);
        let isolate = Rc::clone(self.isolate);
        let outcome = Rc::new(RefCell::new(Ok(())));
        let reported = Rc::clone(&outcome);
        let failed = request::record_failed(&record);
        let write = Task::new(async move {
            let verification = isolate.verification();
            let gateway = Gateway {
                config: &config,
                verification: &verification,
                store: &store,
            };
            // Read the clock after the origin answered: the change is done now.
            let result = gateway
                .record(&record, now())
                .await
                .map_err(|(refusal, log)| {
                    host::error(&log);
                    refusal
                });
            let ok = result.is_ok();
            *reported.borrow_mut() = result;
            JsValue::from_bool(ok)
        });
        match wait(host::in_background(self.ctx, write)).await {
            Ok(_) => outcome.replace(Ok(())),
            // The task itself failed (a bug): never pass the response on.
            Err(_) => Err(failed),
        }
    }

    /// A small request body (admin API, back-channel logout, refresh), at
    /// most `limit` bytes.
    async fn read_body(&self, limit: usize) -> Result<Vec<u8>, GateError> {
        let promise = host::read_body(self.request, limit as u32, form::DRAIN_LIMIT_BYTES as u32)
            .map_err(|_| GateError::InvalidRequest)?;
        let body = wait(promise).await.map_err(|_| GateError::InvalidRequest)?;
        host::bytes(&body).ok_or(GateError::InvalidRequest)
    }
}
