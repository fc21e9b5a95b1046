//! Reading Worker requests and building Worker responses and subrequests.

use js_sys::{Array, Promise, Uint8Array};
use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::console_error;
use worker::web_sys::{Headers, Request, RequestInit, RequestRedirect, Response, ResponseInit};

use crate::config::Config;
use crate::error::{GateError, Reply};
use crate::headers::{identity_headers, is_identity_header, origin_target, split_url};
use crate::verify::Identity;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch, catch)]
    fn global_fetch(request: &Request) -> Result<Promise, JsValue>;
}

/// The parts of a request the core needs, copied out once.
pub struct RequestHead {
    pub method: String,
    pub url: String,
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
    pub cors_preflight: bool,
}

impl RequestHead {
    pub fn read(req: &Request) -> Result<RequestHead, GateError> {
        let url = req.url();
        let (path, query) = split_url(&url).ok_or(GateError::InvalidRequest)?;
        let (path, query) = (path.to_owned(), query.map(str::to_owned));
        let headers = req.headers();
        let get = |name: &str| headers.get(name).ok().flatten();
        let method = req.method();
        Ok(RequestHead {
            cors_preflight: method == "OPTIONS" && get("access-control-request-method").is_some(),
            method,
            path,
            query,
            url,
            authorization: get("authorization"),
            cookie: get("cookie"),
        })
    }
}

/// Sends the request on to the origin: same method, headers and streamed
/// body, client `X-Auth-*` removed, identity added, redirects passed back
/// to the client rather than followed.
pub async fn forward(
    req: &Request,
    head: &RequestHead,
    config: &Config,
    identity: Option<&Identity>,
) -> Result<Response, GateError> {
    let target = match &config.origin_url {
        Some(base) => origin_target(base, &head.path, head.query.as_deref()),
        None => head.url.clone(),
    };
    let headers = forwarded_headers(&req.headers(), identity)
        .map_err(|e| js_failure("copying headers", e))?;

    let init = RequestInit::new();
    init.set_method(&head.method);
    init.set_headers(&headers);
    init.set_redirect(RequestRedirect::Manual);
    // A preflight goes to the origin unverified, so it goes without a body.
    if let Some(body) = req.body().filter(|_| !head.cors_preflight) {
        init.set_body(&body);
    }
    let outbound = Request::new_with_str_and_init(&target, &init)
        .map_err(|e| js_failure("building the origin request", e))?;
    let promise = global_fetch(&outbound).map_err(|e| unreachable_origin(&target, e))?;
    let response = JsFuture::from(promise)
        .await
        .map_err(|e| unreachable_origin(&target, e))?;
    response
        .dyn_into::<Response>()
        .map_err(|e| unreachable_origin(&target, e))
}

fn forwarded_headers(incoming: &Headers, identity: Option<&Identity>) -> Result<Headers, JsValue> {
    let headers = Headers::new_with_headers(incoming)?;
    let mut spoofed = Vec::new();
    if let Some(entries) = js_sys::try_iter(incoming)? {
        for entry in entries {
            let name = Array::from(&entry?).get(0).as_string().unwrap_or_default();
            if is_identity_header(&name) {
                spoofed.push(name);
            }
        }
    }
    for name in spoofed {
        headers.delete(&name)?;
    }
    if let Some(identity) = identity {
        for (name, value) in identity_headers(identity) {
            headers.set(name, &value)?;
        }
    }
    Ok(headers)
}

fn unreachable_origin(target: &str, error: JsValue) -> GateError {
    // The target may carry a query string; log only scheme, host and path.
    let shown = target.split('?').next().unwrap_or_default();
    console_error!("origin unreachable at {shown}: {error:?}");
    GateError::OriginUnreachable
}

fn js_failure(what: &str, error: JsValue) -> GateError {
    console_error!("failed {what}: {error:?}");
    GateError::InvalidRequest
}

/// Reads a small request body (admin API, reached only with the admin
/// token). A declared `Content-Length` over the limit is refused unread; a
/// body without one is read, then refused if too large.
pub async fn read_body(req: &Request, limit: usize) -> Result<Vec<u8>, GateError> {
    let declared = req.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(GateError::InvalidRequest);
    }
    let promise = req.array_buffer().map_err(|_| GateError::InvalidRequest)?;
    let buffer = JsFuture::from(promise)
        .await
        .map_err(|_| GateError::InvalidRequest)?;
    let bytes = Uint8Array::new(&buffer);
    if bytes.length() as usize > limit {
        return Err(GateError::InvalidRequest);
    }
    Ok(bytes.to_vec())
}

pub fn reply(reply: &Reply) -> Result<Response, JsValue> {
    let headers = Headers::new()?;
    for (name, value) in &reply.headers {
        headers.append(name, value)?;
    }
    let init = ResponseInit::new();
    init.set_status(reply.status);
    init.set_headers(&headers);
    Response::new_with_opt_str_and_init(Some(&reply.body), &init)
}
