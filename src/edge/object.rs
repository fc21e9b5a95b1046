//! The per-user Durable Object's calls into the core. `js/sessions.mjs`
//! holds the object's storage and expiry; what a spend decides is
//! [`refresh::plan`], run here on the values the object read, with no
//! other request to the object in between (its input gate is closed while
//! it waits on its own storage).

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use crate::refresh::{self, SpendRequest};

fn request(json: &str) -> Result<SpendRequest, JsValue> {
    serde_json::from_str(json).map_err(|e| JsValue::from_str(&format!("bad spend request: {e}")))
}

/// The keys a spend reads, in the order [`spend_plan`] takes their values.
#[wasm_bindgen]
pub fn spend_keys(request_json: &str) -> Result<Vec<String>, JsValue> {
    Ok(request(request_json)?.keys())
}

/// The plan for a spend: `{"outcome":{...},"writes":[{key,value,expires_at}]}`.
/// `values` are strings or null, one per [`spend_keys`] key; `now` is the
/// object's clock in Unix seconds.
#[wasm_bindgen]
pub fn spend_plan(request_json: &str, values: Vec<JsValue>, now: f64) -> Result<String, JsValue> {
    let request = request(request_json)?;
    let values = values.iter().map(JsValue::as_string).collect();
    let plan = refresh::plan(&request, values, now).map_err(|e| JsValue::from_str(e.code()))?;
    serde_json::to_string(&plan).map_err(|e| JsValue::from_str(&e.to_string()))
}
