//! Fetching remote JWKS: from the colo's Cache API when a fresh copy is
//! there (so a new isolate does not go to the provider), else from the
//! provider with a timeout; the answer is stored back in the Cache API for
//! the time the provider allows, within our bounds.

use js_sys::Promise;
use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::web_sys::{AbortSignal, Request, RequestInit, Response};
use worker::{Cache, Headers};

use crate::keyring::{
    Fetched, JwksFetcher, DEFAULT_CACHE_SECONDS, MAX_CACHE_SECONDS, MIN_CACHE_SECONDS,
};

pub const FETCH_TIMEOUT_MS: u32 = 5_000;
/// Our own header on Cache API copies: when the copy stops being fresh.
const EXPIRES_HEADER: &str = "x-tokengate-expires";
/// Key sets larger than this are refused (a JWKS is a few KB).
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch, catch)]
    fn global_fetch(request: &Request) -> Result<Promise, JsValue>;
}

/// `max-age` from a `Cache-Control` header; `no-store`/`no-cache` count as
/// the minimum, since we must cache for a while anyway to stay usable.
pub fn max_age(cache_control: Option<&str>) -> Option<u64> {
    let header = cache_control?.to_ascii_lowercase();
    if header.contains("no-store") || header.contains("no-cache") {
        return Some(MIN_CACHE_SECONDS);
    }
    header
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse::<u64>().ok())
}

pub struct EdgeFetcher;

fn now_seconds() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

impl EdgeFetcher {
    async fn cached(&self, url: &str) -> Option<Fetched> {
        let mut cached = Cache::default().get(url, false).await.ok()??;
        let expires: u64 = cached.headers().get(EXPIRES_HEADER).ok()??.parse().ok()?;
        let remaining = expires.checked_sub(now_seconds()).filter(|r| *r > 0)?;
        let body = cached.text().await.ok()?;
        Some(Fetched {
            body,
            max_age: Some(remaining),
        })
    }

    async fn fetch_from_provider(&self, url: &str) -> Result<Fetched, String> {
        let init = RequestInit::new();
        init.set_signal(Some(&AbortSignal::timeout_with_u32(FETCH_TIMEOUT_MS)));
        let request =
            Request::new_with_str_and_init(url, &init).map_err(|_| "bad JWKS URL".to_owned())?;
        request
            .headers()
            .set("accept", "application/jwk-set+json, application/json")
            .map_err(|_| "bad header".to_owned())?;
        let promise = global_fetch(&request).map_err(|e| format!("fetch failed: {e:?}"))?;
        let response: Response = JsFuture::from(promise)
            .await
            .map_err(|e| format!("fetch failed or timed out: {e:?}"))?
            .unchecked_into();
        if response.status() != 200 {
            return Err(format!("HTTP {}", response.status()));
        }
        let cache_control = response.headers().get("cache-control").ok().flatten();
        let text = response.text().map_err(|_| "unreadable body".to_owned())?;
        let body = JsFuture::from(text)
            .await
            .ok()
            .and_then(|t| t.as_string())
            .ok_or_else(|| "unreadable body".to_owned())?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("key set too large".into());
        }
        Ok(Fetched {
            body,
            max_age: max_age(cache_control.as_deref()),
        })
    }

    async fn store(&self, url: &str, fetched: &Fetched) {
        let ttl = fetched
            .max_age
            .unwrap_or(DEFAULT_CACHE_SECONDS)
            .clamp(MIN_CACHE_SECONDS, MAX_CACHE_SECONDS);
        let headers = Headers::new();
        let stored = headers
            .set("cache-control", &format!("max-age={ttl}"))
            .and_then(|()| headers.set(EXPIRES_HEADER, &(now_seconds() + ttl).to_string()))
            .and_then(|()| worker::Response::ok(fetched.body.clone()));
        if let Ok(response) = stored {
            // Best effort: a failed cache write only costs a later fetch.
            let _ = Cache::default()
                .put(url, response.with_headers(headers))
                .await;
        }
    }
}

impl JwksFetcher for EdgeFetcher {
    async fn fetch(&self, url: &str, bypass_shared_cache: bool) -> Result<Fetched, String> {
        if !bypass_shared_cache {
            if let Some(cached) = self.cached(url).await {
                return Ok(cached);
            }
        }
        let fetched = self.fetch_from_provider(url).await?;
        // Only a usable set is shared with the other isolates of this colo.
        if crate::keys::parse_jwks(&fetched.body, crate::keys::KeySetSource::Remote).is_ok() {
            self.store(url, &fetched).await;
        }
        Ok(fetched)
    }
}
