//! Public-key signatures through WebCrypto ([`crate::js_host`]), awaited
//! as this adapter's tasks await.

use super::{host, task::wait};
use crate::error::GateError;
use crate::js_host;
use crate::keys::{Algorithm, SignatureVerifier, VerifyKey};

pub struct WebCrypto;

impl SignatureVerifier for WebCrypto {
    async fn verify(
        &self,
        alg: Algorithm,
        key: &VerifyKey,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, GateError> {
        let Some(started) = js_host::start_verify(alg, key, signing_input, signature) else {
            return Ok(false);
        };
        let outcome = match started {
            Ok(promise) => wait(promise).await,
            Err(e) => Err(e),
        };
        Ok(js_host::signature_verdict(outcome, alg, key, host::error))
    }
}
