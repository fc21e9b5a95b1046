//! What both wasm adapters (`edge`, the standalone gateway, and
//! `workers_rs`, the library surface) ask `js/host.mjs` for beyond their own
//! I/O, and how they read its answers: public-key signatures through
//! WebCrypto and remote key sets, so that both verify and fetch alike. Each
//! adapter awaits the promises its own way.

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use crate::js_value::describe;
use crate::keyring::{Fetched, FETCH_TIMEOUT_MS, MAX_JWKS_BYTES};
use crate::keys::{Algorithm, KeyMaterial, VerifyKey};

#[wasm_bindgen(module = "/js/host.mjs")]
extern "C" {
    #[wasm_bindgen(js_name = verifyImported, catch)]
    fn verify_imported(
        imported: f64,
        signature: &[u8],
        data: &[u8],
    ) -> Result<Option<Promise>, JsValue>;

    #[wasm_bindgen(js_name = importKey, catch)]
    fn import_key(imported: f64, alg: &str, jwk: &str) -> Result<(), JsValue>;

    #[wasm_bindgen(js_name = fetchText, catch)]
    fn fetch_text(url: &str, timeout_ms: u32, max_bytes: u32) -> Result<Promise, JsValue>;
}

/// Starts checking `signature` over `signing_input` with `key` in
/// WebCrypto (which runs RSA, ECDSA and Ed25519 natively, 20-40x faster than
/// pure-Rust crypto in wasm). `js/host.mjs` keeps each imported key under a
/// number (the key's serial and the algorithm), so that a request passes
/// only that number and the two byte views; the JWK text crosses only when
/// the key is not imported yet (or was dropped from that cache). `None` for
/// a key that is not public: it verifies nothing.
pub fn start_verify(
    alg: Algorithm,
    key: &VerifyKey,
    signing_input: &[u8],
    signature: &[u8],
) -> Option<Result<Promise, JsValue>> {
    let KeyMaterial::Public { jwk, serial, .. } = &key.material else {
        return None;
    };
    // Exact in an f64 for 2^48 keys; the serial is a u64 counter from 0.
    let imported = (*serial * Algorithm::ALL.len() as u64 + alg as u64) as f64;
    let verify = || verify_imported(imported, signature, signing_input);
    Some(match verify() {
        Ok(Some(promise)) => Ok(promise),
        Ok(None) => import_key(imported, alg.name(), jwk)
            .and_then(|()| verify()?.ok_or_else(|| JsValue::from_str("imported key missing"))),
        Err(e) => Err(e),
    })
}

/// The verdict of a check [`start_verify`] started, once awaited. The key
/// passed our own checks, so WebCrypto refusing it is worth a line for
/// `log`; it then verifies nothing.
pub fn signature_verdict(
    outcome: Result<JsValue, JsValue>,
    alg: Algorithm,
    key: &VerifyKey,
    log: impl FnOnce(&str),
) -> bool {
    match outcome {
        Ok(valid) => valid.as_bool() == Some(true),
        Err(e) => {
            log(&format!(
                "WebCrypto could not import key {:?} for {}: {}",
                key.kid,
                alg.name(),
                describe(&e)
            ));
            false
        }
    }
}

/// Starts fetching a remote key set, with the shared timeout and size limit.
pub fn start_jwks_fetch(url: &str) -> Result<Promise, String> {
    fetch_text(url, FETCH_TIMEOUT_MS, MAX_JWKS_BYTES)
        .map_err(|e| format!("fetch failed: {}", describe(&e)))
}

/// A fetch [`start_jwks_fetch`] started, once awaited: `[status,
/// Cache-Control, body]` from the host, read by [`Fetched::from_response`].
pub fn fetched(answer: Result<JsValue, JsValue>) -> Result<Fetched, String> {
    let answer = answer.map_err(|e| format!("fetch failed or timed out: {}", describe(&e)))?;
    let answer = Array::from(&answer);
    let status = answer.get(0).as_f64().unwrap_or(0.0) as u16;
    let cache_control = answer.get(1).as_string();
    Fetched::from_response(status, cache_control.as_deref(), answer.get(2).as_string())
}
