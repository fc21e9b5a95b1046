//! The `REVOCATIONS` KV namespace through its JS binding. `worker::KvStore`
//! has no bulk get, and one round trip per request is the point, so the
//! binding's `get([...keys])` is called directly.

use js_sys::{Array, Map, Object, Promise, Reflect};
use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{console_error, Env};

use crate::error::GateError;
use crate::revocation::{RevocationStore, StoreError};

pub const BINDING: &str = "REVOCATIONS";

/// How long a KV read may be served from the edge cache. 30 s is KV's
/// minimum: revocations must show up as fast as KV allows, and a "not
/// found" answer is cached just as long (README, "Revocation delay").
pub const CACHE_TTL_SECONDS: u32 = 30;

#[wasm_bindgen]
extern "C" {
    pub type KvNamespace;

    #[wasm_bindgen(method, catch, js_name = get)]
    fn get_many(this: &KvNamespace, keys: &Array, options: &Object) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn put(
        this: &KvNamespace,
        key: &str,
        value: &str,
        options: &Object,
    ) -> Result<Promise, JsValue>;
}

pub struct KvRevocations {
    namespace: KvNamespace,
}

impl KvRevocations {
    pub fn from_env(env: &Env) -> Result<KvRevocations, GateError> {
        match Reflect::get(env, &JsValue::from_str(BINDING)) {
            Ok(binding) if binding.is_object() => Ok(KvRevocations {
                namespace: binding.unchecked_into(),
            }),
            _ => {
                console_error!("tokengate misconfigured: KV binding {BINDING} is missing");
                Err(GateError::Misconfigured)
            }
        }
    }
}

fn options(pairs: &[(&str, JsValue)]) -> Object {
    let object = Object::new();
    for (name, value) in pairs {
        // Setting a plain property on a fresh object cannot fail.
        let _ = Reflect::set(&object, &JsValue::from_str(name), value);
    }
    object
}

fn failed(what: &str, error: JsValue) -> StoreError {
    console_error!("KV {what} failed: {error:?}");
    StoreError(what.to_owned())
}

impl RevocationStore for KvRevocations {
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let array: Array = keys.iter().map(|k| JsValue::from_str(k)).collect();
        let options = options(&[
            ("type", JsValue::from_str("text")),
            ("cacheTtl", JsValue::from(CACHE_TTL_SECONDS)),
        ]);
        let promise = self
            .namespace
            .get_many(&array, &options)
            .map_err(|e| failed("bulk get", e))?;
        let answer = JsFuture::from(promise)
            .await
            .map_err(|e| failed("bulk get", e))?;
        let map: Map = answer
            .dyn_into()
            .map_err(|e| failed("bulk get (not a Map)", e))?;
        Ok(keys
            .iter()
            .map(|k| map.get(&JsValue::from_str(k)).as_string())
            .collect())
    }

    async fn put(&self, key: &str, value: &str, expires_at: Option<u64>) -> Result<(), StoreError> {
        let options = match expires_at {
            Some(at) => options(&[("expiration", JsValue::from(at as f64))]),
            None => Object::new(),
        };
        let promise = self
            .namespace
            .put(key, value, &options)
            .map_err(|e| failed("put", e))?;
        JsFuture::from(promise)
            .await
            .map_err(|e| failed("put", e))?;
        Ok(())
    }
}
