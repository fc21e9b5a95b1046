//! Fetching remote JWKS: from the colo's Cache API when a fresh, authentic
//! copy is there (so a new isolate does not go to the provider), else from
//! the provider with a timeout; the answer is stored back in the Cache API
//! for the time the provider allows, within our bounds.
//!
//! Other Workers on the same zone can read and write the same Cache API, so
//! a copy is shared only when `JWKS_CACHE_KEY` is set, and it carries an
//! HMAC-SHA256 over URL, expiry and body under that key: a planted or edited
//! copy fails the check and is ignored. Without the key every isolate keeps
//! its own copy (still cached for the provider's `max-age`).

use super::{host, task::wait};
use crate::js_host;
use crate::keyring::{
    Fetched, JwksFetcher, DEFAULT_CACHE_SECONDS, MAX_CACHE_SECONDS, MAX_JWKS_BYTES,
    MIN_CACHE_SECONDS,
};
use crate::keys::{Algorithm, HmacKeys};
use base64ct::{Base64UrlUnpadded, Encoding};
use js_sys::Array;

/// Our own header on Cache API copies: `<expiry>.<hmac>`.
const SEAL_HEADER: &str = "x-tokengate-seal";

pub struct EdgeFetcher {
    /// `JWKS_CACHE_KEY`: sharing through the Cache API is on only with it.
    pub seal_key: Option<Vec<u8>>,
}

fn now_seconds() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

fn sealed_message(url: &str, expires: u64, body: &str) -> String {
    format!("{url}\n{expires}\n{body}")
}

impl EdgeFetcher {
    async fn cached(&self, url: &str, key: &[u8]) -> Option<Fetched> {
        let promise = host::cache_read(url, SEAL_HEADER, MAX_JWKS_BYTES).ok()?;
        let found = wait(promise).await.ok()?;
        if found.is_null() {
            return None;
        }
        let found = Array::from(&found);
        let (seal, body) = (found.get(0).as_string()?, found.get(1).as_string()?);
        let (expires, mac) = seal.split_once('.')?;
        let expires: u64 = expires.parse().ok()?;
        let mac = Base64UrlUnpadded::decode_vec(mac).ok()?;
        let message = sealed_message(url, expires, &body);
        if !HmacKeys::new(key).verify(Algorithm::Hs256, message.as_bytes(), &mac) {
            host::warn(&format!(
                "ignored a Cache API copy of {url} with a bad seal"
            ));
            return None;
        }
        let remaining = expires.checked_sub(now_seconds()).filter(|r| *r > 0)?;
        Some(Fetched {
            body,
            max_age: Some(remaining),
        })
    }

    async fn fetch_from_provider(&self, url: &str) -> Result<Fetched, String> {
        let promise = js_host::start_jwks_fetch(url)?;
        js_host::fetched(wait(promise).await)
    }

    async fn store(&self, url: &str, fetched: &Fetched, key: &[u8]) {
        let ttl = fetched
            .max_age
            .unwrap_or(DEFAULT_CACHE_SECONDS)
            .clamp(MIN_CACHE_SECONDS, MAX_CACHE_SECONDS);
        let expires = now_seconds() + ttl;
        let message = sealed_message(url, expires, &fetched.body);
        let mac = HmacKeys::new(key).sign_hs256(message.as_bytes());
        let seal = format!("{expires}.{}", Base64UrlUnpadded::encode_string(&mac));
        // Best effort: a failed cache write only costs a later fetch.
        if let Ok(promise) = host::cache_write(url, &fetched.body, ttl as u32, SEAL_HEADER, &seal) {
            let _ = wait(promise).await;
        }
    }
}

impl JwksFetcher for EdgeFetcher {
    async fn fetch(&self, url: &str, bypass_shared_cache: bool) -> Result<Fetched, String> {
        let key = self.seal_key.as_deref();
        if let (Some(key), false) = (key, bypass_shared_cache) {
            if let Some(cached) = self.cached(url, key).await {
                return Ok(cached);
            }
        }
        let fetched = self.fetch_from_provider(url).await?;
        // Only a usable set is shared with the other isolates of this colo.
        if let Some(key) = key {
            if crate::keys::parse_jwks(&fetched.body, crate::keys::KeySetSource::Remote).is_ok() {
                self.store(url, &fetched, key).await;
            }
        }
        Ok(fetched)
    }
}
