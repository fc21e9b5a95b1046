//! The `REVOCATIONS` KV namespace, and the per-user Durable Objects of the
//! `SESSIONS` namespace when it is bound. The binding's `get([...keys])`
//! (one round trip per request) and the objects' RPC methods are called
//! from `js/host.mjs`, which also refuses malformed answers.

use js_sys::{Array, Reflect};
use wasm_bindgen::JsValue;

use crate::js_value::describe;

use super::host;
use super::task::wait;
use crate::error::GateError;
use crate::refresh::{SpendOutcome, SpendRequest, SpendStore};
use crate::revocation::{RevocationStore, StoreError};

pub const BINDING: &str = "REVOCATIONS";
pub const OBJECTS_BINDING: &str = "SESSIONS";

/// Cloned only for the writes that outlive the request's own future
/// (`ctx.waitUntil`).
#[derive(Clone)]
pub struct KvRevocations {
    namespace: JsValue,
    /// The `SESSIONS` Durable Object namespace, when bound.
    objects: Option<JsValue>,
}

/// A binding of `env`, if it is there.
pub fn binding(env: &JsValue, name: &str) -> Option<JsValue> {
    Reflect::get(env, &JsValue::from_str(name))
        .ok()
        .filter(JsValue::is_object)
}

impl KvRevocations {
    /// `with_objects`: whether the configuration uses the per-user objects
    /// (`REFRESH_PATH` or `STRICT_PATHS`); only then are they written to.
    pub fn from_env(env: &JsValue, with_objects: bool) -> Result<KvRevocations, GateError> {
        // Looked up only when used: each lookup crosses into JS.
        let objects = with_objects
            .then(|| binding(env, OBJECTS_BINDING))
            .flatten();
        match binding(env, BINDING) {
            Some(namespace) => Ok(KvRevocations { namespace, objects }),
            None => {
                host::error(&format!(
                    "tokengate misconfigured: KV binding {BINDING} is missing"
                ));
                Err(GateError::Misconfigured)
            }
        }
    }
}

fn failed(what: &str, error: JsValue) -> StoreError {
    host::error(&format!("{what} failed: {}", describe(&error)));
    StoreError(what.to_owned())
}

impl RevocationStore for KvRevocations {
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let promise = host::kv_get_many(&self.namespace, keys.to_vec())
            .map_err(|e| failed("KV bulk get", e))?;
        let answer = wait(promise).await.map_err(|e| failed("KV bulk get", e))?;
        // The host already checked every value is a string or null.
        Ok(Array::from(&answer).iter().map(|v| v.as_string()).collect())
    }

    async fn put(&self, key: &str, value: &str, expires_at: Option<u64>) -> Result<(), StoreError> {
        let promise = host::kv_put(&self.namespace, key, value, expires_at.map(|at| at as f64))
            .map_err(|e| failed("KV put", e))?;
        wait(promise).await.map_err(|e| failed("KV put", e))?;
        Ok(())
    }

    async fn pause(&self, millis: u32) {
        let _ = wait(host::pause(millis)).await;
    }

    fn has_user_objects(&self) -> bool {
        self.objects.is_some()
    }

    async fn user_get_many(
        &self,
        user: &str,
        keys: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let what = "Durable Object read";
        let objects = self.objects.as_ref().ok_or_else(|| unbound(what))?;
        let promise =
            host::object_read(objects, user, keys.to_vec()).map_err(|e| failed(what, e))?;
        let answer = wait(promise).await.map_err(|e| failed(what, e))?;
        Ok(Array::from(&answer).iter().map(|v| v.as_string()).collect())
    }

    async fn user_put(
        &self,
        user: &str,
        key: &str,
        value: &str,
        expires_at: Option<u64>,
    ) -> Result<(), StoreError> {
        let what = "Durable Object write";
        let objects = self.objects.as_ref().ok_or_else(|| unbound(what))?;
        let expires_at = expires_at.map(|at| at as f64);
        let promise = host::object_write(objects, user, key, value, expires_at)
            .map_err(|e| failed(what, e))?;
        wait(promise).await.map_err(|e| failed(what, e))?;
        Ok(())
    }
}

impl SpendStore for KvRevocations {
    async fn user_spend(
        &self,
        user: &str,
        request: &SpendRequest,
    ) -> Result<SpendOutcome, StoreError> {
        let what = "Durable Object spend";
        let objects = self.objects.as_ref().ok_or_else(|| unbound(what))?;
        let promise =
            host::object_spend(objects, user, request.to_fields()).map_err(|e| failed(what, e))?;
        let answer = wait(promise).await.map_err(|e| failed(what, e))?;
        SpendOutcome::parse(&answer.as_string().unwrap_or_default())
            .ok_or_else(|| failed(what, "unreadable answer".into()))
    }
}

fn unbound(what: &str) -> StoreError {
    host::error(&format!(
        "tokengate misconfigured: {what} without the {OBJECTS_BINDING} binding"
    ));
    StoreError(what.to_owned())
}
