//! Public-key signatures through WebCrypto (`crypto.subtle`), which runs
//! RSA and ECDSA natively: 20-40x faster than pure-Rust crypto in wasm on
//! this runtime (docs/performance.md). `js/host.mjs` imports each key once
//! per isolate and keeps the `CryptoKey`.

use super::{host, task::wait};
use crate::error::GateError;
use crate::js_value::describe;
use crate::keys::{Algorithm, KeyMaterial, SignatureVerifier, VerifyKey};

pub struct WebCrypto;

impl SignatureVerifier for WebCrypto {
    async fn verify(
        &self,
        alg: Algorithm,
        key: &VerifyKey,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, GateError> {
        let KeyMaterial::Public { jwk, .. } = &key.material else {
            return Ok(false);
        };
        let outcome = match host::verify_signature(alg.name(), jwk, signature, signing_input) {
            Ok(promise) => wait(promise).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(valid) => Ok(valid.as_bool() == Some(true)),
            Err(e) => {
                // The key passed our own checks; WebCrypto refusing it is worth a log line.
                host::error(&format!(
                    "WebCrypto could not import key {:?} for {}: {}",
                    key.kid,
                    alg.name(),
                    describe(&e)
                ));
                Ok(false)
            }
        }
    }
}
