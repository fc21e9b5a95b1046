//! The per-user Durable Object's calls into the core. `js/sessions.mjs`
//! holds the object's storage and expiry; what a spend decides is
//! [`refresh::plan`], run here on the values the object read, with no
//! other request to the object in between (its input gate is closed while
//! it waits on its own storage).

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use crate::refresh::{self, SpendRequest};
use crate::revocation;

fn request(fields: &[String]) -> Result<SpendRequest, JsValue> {
    SpendRequest::from_fields(fields).ok_or_else(|| JsValue::from_str("unreadable spend request"))
}

/// The keys a spend reads, in the order [`spend_plan`] takes their values.
#[wasm_bindgen]
pub fn spend_keys(request_fields: Vec<String>) -> Result<Vec<String>, JsValue> {
    Ok(request(&request_fields)?.keys())
}

/// The plan for a spend ([`refresh::Plan::to_fields`]): the outcome, then
/// key, value and expiry of each write. `values` are strings or null, one
/// per [`spend_keys`] key; `now` is the object's clock in Unix seconds.
#[wasm_bindgen]
pub fn spend_plan(
    request_fields: Vec<String>,
    values: Vec<JsValue>,
    now: f64,
) -> Result<Vec<String>, JsValue> {
    let request = request(&request_fields)?;
    let values = values.iter().map(JsValue::as_string).collect();
    let plan = refresh::plan(&request, values, now).map_err(|e| JsValue::from_str(e.code()))?;
    Ok(plan.to_fields())
}

/// The value a write of `new` over `stored` leaves at `key`
/// ([`revocation::merged`]: a user cut-off is never lowered).
#[wasm_bindgen]
pub fn merge_entry(key: &str, stored: Option<String>, new: String) -> String {
    revocation::merged(key, stored.as_deref(), &new).to_owned()
}
