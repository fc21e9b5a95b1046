//! Reading the runtime's values, shared by both wasm adapters (`edge`, the
//! standalone gateway, and `workers_rs`, the library surface), so that they
//! read settings and report exceptions alike.

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};

/// A var or secret of `env` as text. JSON vars (`JWT_ISSUERS = [...]` in
/// wrangler.toml) arrive as objects and are handed over as JSON text.
pub fn setting(env: &JsValue, name: &str) -> Option<String> {
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

/// An exception's text for a log line (redacted by the host).
pub fn describe(error: &JsValue) -> String {
    match error.dyn_ref::<js_sys::Error>() {
        Some(e) => String::from(e.to_string()),
        None => error.as_string().unwrap_or_else(|| format!("{error:?}")),
    }
}
