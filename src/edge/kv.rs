//! The `REVOCATIONS` KV namespace. `worker::KvStore` has no bulk get, and
//! one round trip per request is the point, so the binding's `get([...keys])`
//! is called from `js/host.mjs`, which also refuses malformed answers.

use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use super::host;
use super::task::wait;
use crate::error::GateError;
use crate::revocation::{RevocationStore, StoreError};

pub const BINDING: &str = "REVOCATIONS";

pub struct KvRevocations {
    namespace: JsValue,
}

impl KvRevocations {
    pub fn from_env(env: &JsValue) -> Result<KvRevocations, GateError> {
        match Reflect::get(env, &JsValue::from_str(BINDING)) {
            Ok(namespace) if namespace.is_object() => Ok(KvRevocations { namespace }),
            _ => {
                host::error(&format!(
                    "tokengate misconfigured: KV binding {BINDING} is missing"
                ));
                Err(GateError::Misconfigured)
            }
        }
    }
}

fn failed(what: &str, error: JsValue) -> StoreError {
    host::error(&format!("KV {what} failed: {}", describe(&error)));
    StoreError(what.to_owned())
}

/// An exception's text for a log line (redacted by the host).
pub fn describe(error: &JsValue) -> String {
    match error.dyn_ref::<js_sys::Error>() {
        Some(e) => String::from(e.to_string()),
        None => error.as_string().unwrap_or_else(|| format!("{error:?}")),
    }
}

impl RevocationStore for KvRevocations {
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let promise =
            host::kv_get_many(&self.namespace, keys.to_vec()).map_err(|e| failed("bulk get", e))?;
        let answer = wait(promise).await.map_err(|e| failed("bulk get", e))?;
        // The host already checked every value is a string or null.
        Ok(Array::from(&answer).iter().map(|v| v.as_string()).collect())
    }

    async fn put(&self, key: &str, value: &str, expires_at: Option<u64>) -> Result<(), StoreError> {
        let promise = host::kv_put(&self.namespace, key, value, expires_at.map(|at| at as f64))
            .map_err(|e| failed("put", e))?;
        wait(promise).await.map_err(|e| failed("put", e))?;
        Ok(())
    }

    async fn pause(&self, millis: u32) {
        let _ = wait(host::pause(millis)).await;
    }
}
