//! The JavaScript side of the adapter (`js/host.mjs`): the runtime's objects
//! and the few I/O functions the core needs. Everything here is a plain
//! declaration; the behaviour is in that file.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use super::task::Task;

#[wasm_bindgen]
extern "C" {
    /// A Fetch API `Request` (the client's).
    pub type Request;
    /// A Fetch API `Response` (the origin's or ours).
    pub type Response;

    #[wasm_bindgen(method, getter)]
    pub fn status(this: &Response) -> u16;
}

#[wasm_bindgen(module = "/js/host.mjs")]
extern "C" {
    /// The host's rules, given once per isolate so that each has one owner
    /// in the core: KV's `cacheTtl`, the fail-closed deadlines, the
    /// client headers stripped and the origin's revocation header.
    #[allow(clippy::too_many_arguments)]
    pub fn configure(
        kv_cache_ttl_seconds: u32,
        kv_read_ms: u32,
        kv_write_ms: u32,
        object_read_ms: u32,
        object_write_ms: u32,
        spoofed_identity_pattern: &str,
        revoke_header: &str,
    );

    #[wasm_bindgen(js_name = kvGetMany, catch)]
    pub fn kv_get_many(namespace: &JsValue, keys: Vec<String>) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = kvPut, catch)]
    pub fn kv_put(
        namespace: &JsValue,
        key: &str,
        value: &str,
        expiration: Option<f64>,
    ) -> Result<Promise, JsValue>;

    pub fn pause(millis: u32) -> Promise;

    /// Resolves to one value (a string or null) per key, from `user`'s
    /// Durable Object in the `SESSIONS` namespace.
    #[wasm_bindgen(js_name = objectRead, catch)]
    pub fn object_read(
        namespace: &JsValue,
        user: &str,
        keys: Vec<String>,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = objectWrite, catch)]
    pub fn object_write(
        namespace: &JsValue,
        user: &str,
        key: &str,
        value: &str,
        expires_at: Option<f64>,
    ) -> Result<Promise, JsValue>;

    /// Resolves to the object's outcome of a spend request
    /// ([`crate::refresh::SpendRequest::to_fields`]), as text.
    #[wasm_bindgen(js_name = objectSpend, catch)]
    pub fn object_spend(
        namespace: &JsValue,
        user: &str,
        request: Vec<String>,
    ) -> Result<Promise, JsValue>;

    /// Resolves to `[response, revoke]`: the origin's response without a
    /// `Tokengate-Revoke` header, and that header's value or `null`.
    /// `buffered`: a body already read (the refresh route's), sent in place
    /// of the request's own.
    #[wasm_bindgen(catch)]
    pub fn forward(
        request: &Request,
        target: &str,
        identity: &str,
        with_body: bool,
        buffered: Option<Vec<u8>>,
    ) -> Result<Promise, JsValue>;

    /// `headers`: [`crate::headers::header_lines`].
    pub fn reply(status: u16, body: &str, headers: &str) -> Response;

    /// One header of the client's request.
    pub fn header(request: &Request, name: &str) -> Option<String>;

    #[wasm_bindgen(js_name = readBody, catch)]
    pub fn read_body(request: &Request, limit: u32, drain_limit: u32) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = cacheRead, catch)]
    pub fn cache_read(url: &str, header: &str, max_bytes: u32) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = cacheWrite, catch)]
    pub fn cache_write(
        url: &str,
        body: &str,
        ttl_seconds: u32,
        header: &str,
        value: &str,
    ) -> Result<Promise, JsValue>;

    /// Writes a log line with anything token- or query-like redacted.
    pub fn log(level: &str, message: &str);

    /// Drives `task` under `ctx.waitUntil`, so that the client hanging up
    /// cannot cancel it; the promise settles with the task's result.
    #[wasm_bindgen(js_name = inBackground)]
    pub fn in_background(ctx: &JsValue, task: Task) -> Promise;
}

/// Copies a JS byte array out (admin request bodies).
pub fn bytes(value: &JsValue) -> Option<Vec<u8>> {
    (!value.is_null() && !value.is_undefined()).then(|| Uint8Array::new(value).to_vec())
}

pub fn error(message: &str) {
    log("error", message);
}

pub fn warn(message: &str) {
    log("warn", message);
}
