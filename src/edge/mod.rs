//! The wasm adapter: Worker request in, core decision, Worker response out.
//! Everything that decides anything lives in the core; this module only does
//! the I/O the core asks for.

#[cfg(feature = "bench")]
mod bench;
mod crypto;
mod http;
mod jwks;
mod kv;

use std::cell::OnceCell;
use std::rc::Rc;

use worker::web_sys::{Request, Response};
use worker::{console_error, console_warn, event, Context, Env};

use crate::admin;
use crate::clock::NumericDate;
use crate::config::{Config, ConfigError};
use crate::error::{GateError, Reply};
use crate::gateway::{Decision, Gateway, Incoming};
use crate::keyring::Keyring;
use crate::verify::Verification;

/// `Date.now()` in seconds. In Workers it only advances across I/O, which is
/// what we want: one request sees one instant until it waits for something.
fn now() -> NumericDate {
    js_sys::Date::now() / 1000.0
}

thread_local! {
    // Vars and secrets are fixed for the life of an isolate: parse them once.
    static CONFIG: OnceCell<Result<Rc<Config>, ConfigError>> = const { OnceCell::new() };
    // Remote key sets, cached for the life of the isolate.
    static KEYRING: Rc<Keyring> = Rc::new(Keyring::default());
}

/// A var or secret as text. JSON vars (`JWT_ISSUERS = [...]` in
/// wrangler.toml) arrive as objects and are handed over as JSON text.
fn setting(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(env, &name.into()).ok()?;
    if value.is_undefined() || value.is_null() {
        return None;
    }
    value.as_string().or_else(|| {
        js_sys::JSON::stringify(&value)
            .ok()
            .and_then(|s| s.as_string())
    })
}

fn config(env: &Env) -> Result<Rc<Config>, GateError> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            let parsed = Config::from_lookup(|name| setting(env, name));
            match &parsed {
                Ok(config) => config
                    .warnings
                    .iter()
                    .for_each(|w| console_warn!("tokengate: {w}")),
                Err(e) => console_error!("tokengate misconfigured: {e}"),
            }
            parsed.map(Rc::new)
        })
        .clone()
        .map_err(|_| GateError::Misconfigured)
    })
}

/// What a request ends in: the gateway's own answer or the origin's.
enum Outcome {
    Reply(Reply),
    Origin(Response),
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let outcome = handle(req, &env).await;
    for warning in KEYRING.with(|keyring| keyring.take_warnings()) {
        console_warn!("tokengate: {warning}");
    }
    match outcome {
        Ok(Outcome::Origin(response)) => Ok(response),
        Ok(Outcome::Reply(reply)) => Ok(http::reply(&reply)?),
        Err(e) => Ok(http::reply(&e.to_reply())?),
    }
}

async fn handle(req: Request, env: &Env) -> Result<Outcome, GateError> {
    let config = config(env)?;
    let store = kv::KvRevocations::from_env(env)?;
    let keyring = KEYRING.with(Rc::clone);
    let verification = Verification {
        keyring: &keyring,
        fetcher: &jwks::EdgeFetcher,
        signatures: &crypto::WebCrypto,
    };
    let gateway = Gateway {
        config: &config,
        verification: &verification,
        store: &store,
    };

    let head = http::RequestHead::read(&req)?;
    #[cfg(feature = "bench")]
    if head.path == bench::PATH {
        return bench::run(&req, &config, env).await.map(Outcome::Origin);
    }
    let incoming = Incoming {
        method: &head.method,
        path: &head.path,
        authorization: head.authorization.as_deref(),
        cookie: head.cookie.as_deref(),
        cors_preflight: head.cors_preflight,
    };

    match gateway.decide(&incoming, now()).await {
        Decision::Reply(reply) => Ok(Outcome::Reply(reply)),
        Decision::Forward(identity) => http::forward(&req, &head, &config, identity.as_ref())
            .await
            .map(Outcome::Origin),
        Decision::ForwardPasswordChange(verified) => {
            let response = http::forward(&req, &head, &config, Some(&verified.identity)).await?;
            // Read the clock after the origin answered: the change is done now.
            match gateway
                .finish_password_change(&verified, response.status(), now())
                .await
            {
                Ok(()) => Ok(Outcome::Origin(response)),
                Err(e) => {
                    console_error!(
                        "password change for token {} succeeded at the origin but the cut-off \
                         could not be recorded",
                        verified.identity.token_id
                    );
                    Err(e)
                }
            }
        }
        Decision::ReadAdminBody(action) => {
            let body = http::read_body(&req, admin::MAX_BODY_BYTES).await?;
            let reply = admin::handle(action, &body, &config, &verification, &store, now()).await;
            Ok(Outcome::Reply(reply))
        }
    }
}
