//! Only in `--features bench` builds (`npm run bench`), never in the
//! release worker: `POST /_bench/verify` verifies the bearer token's
//! signature `x-bench-n` times, through pure-Rust crypto compiled to wasm
//! (`x-bench-path: wasm`) or through WebCrypto (`webcrypto`), and answers
//! how many checks succeeded. The caller times N against N = 0: Workers
//! clocks stand still during computation, so the timing must be outside.

use js_sys::{Array, Object, Reflect, Uint8Array};
use jwt_compact::alg::{Ed25519, Es256, Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm as JwsAlgorithm, AlgorithmSignature};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Request, Response};
use worker::Env;

use super::crypto::WebCrypto;
use crate::config::Config;
use crate::error::GateError;
use crate::keys::{candidates, Algorithm, KeyMaterial, SignatureVerifier, VerifyKey};
use crate::token;

pub const PATH: &str = "/_bench/verify";

type Check = Box<dyn Fn(&[u8], &[u8]) -> bool>;

fn rust_check<A: JwsAlgorithm + 'static>(alg: A, key: A::VerifyingKey) -> Check
where
    A::VerifyingKey: 'static,
{
    Box::new(move |input, signature| {
        A::Signature::try_from_slice(signature)
            .is_ok_and(|sig| alg.verify_signature(&sig, &key, input))
    })
}

fn wasm_checker(alg: Algorithm, key: &VerifyKey) -> Option<Check> {
    let jwk = match &key.material {
        KeyMaterial::Hmac(hmac) => {
            let hmac = hmac.clone();
            return Some(Box::new(move |input, sig| hmac.verify(alg, input, sig)));
        }
        KeyMaterial::Public { jwk, .. } => serde_json::from_str::<JsonWebKey<'_>>(jwk).ok()?,
    };
    Some(match alg {
        Algorithm::Rs256
        | Algorithm::Rs384
        | Algorithm::Rs512
        | Algorithm::Ps256
        | Algorithm::Ps384
        | Algorithm::Ps512 => rust_check(
            Rsa::with_name(alg.name()),
            RsaPublicKey::try_from(&jwk).ok()?,
        ),
        Algorithm::Es256 => rust_check(Es256, p256::ecdsa::VerifyingKey::try_from(&jwk).ok()?),
        Algorithm::EdDsa => rust_check(Ed25519, ed25519_dalek::VerifyingKey::try_from(&jwk).ok()?),
        // jwt-compact has no P-384; HMAC returned above.
        _ => return None,
    })
}

async fn webcrypto_hmac(
    secret: &[u8],
    alg: Algorithm,
    input: &[u8],
    sig: &[u8],
    n: usize,
) -> Option<usize> {
    let subtle = Reflect::get(
        &Reflect::get(&js_sys::global(), &"crypto".into()).ok()?,
        &"subtle".into(),
    )
    .ok()?;
    let call = |name: &str| {
        Reflect::get(&subtle, &name.into())
            .ok()?
            .dyn_into::<js_sys::Function>()
            .ok()
    };
    let params = Object::new();
    Reflect::set(&params, &"name".into(), &"HMAC".into()).ok()?;
    Reflect::set(
        &params,
        &"hash".into(),
        &format!("SHA-{}", alg.hash_bits()).into(),
    )
    .ok()?;
    let args = Array::of5(
        &"raw".into(),
        &Uint8Array::from(secret),
        &params,
        &false.into(),
        &Array::of1(&"verify".into()),
    );
    let promise = call("importKey")?.apply(&subtle, &args).ok()?;
    let key = JsFuture::from(js_sys::Promise::from(promise)).await.ok()?;
    let verify = call("verify")?;
    let mut ok = 0;
    for _ in 0..n {
        let args = Array::of4(
            &"HMAC".into(),
            &key,
            &Uint8Array::from(sig),
            &Uint8Array::from(input),
        );
        let promise = verify.apply(&subtle, &args).ok()?;
        if JsFuture::from(js_sys::Promise::from(promise))
            .await
            .ok()?
            .as_bool()
            == Some(true)
        {
            ok += 1;
        }
    }
    Some(ok)
}

pub async fn run(req: &Request, config: &Config, env: &Env) -> Result<Response, GateError> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let raw = header("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .ok_or(GateError::TokenMissing)?;
    let n: usize = header("x-bench-n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let parsed = token::parse(&raw, config.max_token_bytes)?;
    let alg =
        Algorithm::from_name(parsed.untrusted.algorithm()).ok_or(GateError::AlgorithmNotAllowed)?;
    let key = candidates(
        &config.providers[0].keys,
        alg,
        parsed.untrusted.header().key_id.as_deref(),
    )
    .next()
    .ok_or(GateError::UnknownKey)?
    .clone();
    let (input, sig) = (
        parsed.signing_input.as_bytes(),
        parsed.untrusted.signature_bytes(),
    );

    let ok = match header("x-bench-path").as_deref() {
        Some("wasm") => {
            let check = wasm_checker(alg, &key).ok_or(GateError::InvalidRequest)?;
            (0..n).filter(|_| check(input, sig)).count()
        }
        Some("webcrypto") if matches!(key.material, KeyMaterial::Hmac(_)) => {
            let secret = env
                .secret("JWT_SECRET")
                .map_err(|_| GateError::Misconfigured)?
                .to_string();
            webcrypto_hmac(secret.as_bytes(), alg, input, sig, n)
                .await
                .ok_or(GateError::InvalidRequest)?
        }
        Some("webcrypto") => {
            let mut ok = 0;
            for _ in 0..n {
                ok += usize::from(WebCrypto.verify(alg, &key, input, sig).await?);
            }
            ok
        }
        _ => return Err(GateError::InvalidRequest),
    };
    Response::new_with_opt_str(Some(&ok.to_string())).map_err(|_| GateError::InvalidRequest)
}
