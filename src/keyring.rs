//! Which keys may verify a token: the provider's own keys (`JWT_SECRET`,
//! inline `JWT_JWKS`) and its remote JWKS, fetched and cached per isolate.
//!
//! Remote key sets follow what jose and Envoy users asked for:
//! - cached for the provider's `Cache-Control: max-age`, kept within
//!   [`MIN_CACHE_SECONDS`, `MAX_CACHE_SECONDS`] (default [`DEFAULT_CACHE_SECONDS`]);
//! - served stale for up to [`STALE_GRACE_SECONDS`] while the provider is down;
//! - refetched on an unknown `kid` at most once per [`UNKNOWN_KID_COOLDOWN_SECONDS`],
//!   so a flood of made-up `kid`s cannot hammer the provider;
//! - a key removed from the set stops verifying at the next refresh.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::clock::NumericDate;
use crate::error::GateError;
use crate::keys::{candidates, parse_jwks, Algorithm, KeySetSource, VerifyKey};

pub const DEFAULT_CACHE_SECONDS: u64 = 600;
pub const MIN_CACHE_SECONDS: u64 = 60;
pub const MAX_CACHE_SECONDS: u64 = 86_400;
pub const STALE_GRACE_SECONDS: f64 = 86_400.0;
pub const UNKNOWN_KID_COOLDOWN_SECONDS: f64 = 30.0;
/// After a failed fetch, how long before the next try (per isolate).
pub const FAILURE_RETRY_SECONDS: f64 = 10.0;
/// A JWKS fetch that has not answered by then has failed.
pub const FETCH_TIMEOUT_MS: u32 = 5_000;
/// Key sets larger than this are refused, fetched or cached (a JWKS is a few KB).
pub const MAX_JWKS_BYTES: u32 = 256 * 1024;

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

/// One token issuer: who it is, what it may sign with, and its keys.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Accepted `iss` values; empty only for the single-issuer setup without
    /// `JWT_ISSUER`, where `iss` is not checked.
    pub issuers: Vec<String>,
    /// Accepted audiences; empty means `aud` is not checked.
    pub audiences: Vec<String>,
    /// Never empty, never `none`.
    pub algorithms: Vec<Algorithm>,
    /// `JWT_SECRET` and inline JWKS keys.
    pub keys: Vec<Rc<VerifyKey>>,
    pub jwks_url: Option<String>,
    /// How long a fetched JWKS is used when the provider sends no
    /// `Cache-Control: max-age` (`JWT_JWKS_CACHE_SECONDS`, default
    /// [`DEFAULT_CACHE_SECONDS`]): a retired key keeps verifying that long.
    pub jwks_cache_seconds: u64,
}

/// A fetched key set and how long the provider says it may be cached.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: String,
    pub max_age: Option<u64>,
}

impl Fetched {
    /// A provider's answer to a JWKS fetch: only a 200 with a text body is
    /// a key set.
    pub fn from_response(
        status: u16,
        cache_control: Option<&str>,
        body: Option<String>,
    ) -> Result<Fetched, String> {
        if status != 200 {
            return Err(format!("HTTP {status}"));
        }
        Ok(Fetched {
            body: body.ok_or("unreadable body")?,
            max_age: max_age(cache_control),
        })
    }
}

#[allow(async_fn_in_trait)] // Worker futures are !Send; no Send bound wanted.
pub trait JwksFetcher {
    /// Fetches `url`. `bypass_shared_cache`: the caller knows its copy is
    /// out of date (unknown `kid`), so a shared cache must not answer.
    async fn fetch(&self, url: &str, bypass_shared_cache: bool) -> Result<Fetched, String>;
}

#[derive(Default)]
struct RemoteSet {
    keys: Vec<Rc<VerifyKey>>,
    next_refresh: NumericDate,
    usable_until: NumericDate,
    last_forced: Option<NumericDate>,
}

/// Per-isolate key state. Warnings (fetch or parse failures, skipped keys)
/// are collected for the adapter to log.
#[derive(Default)]
pub struct Keyring {
    remote: RefCell<HashMap<String, RemoteSet>>,
    warnings: RefCell<Vec<String>>,
}

fn cache_seconds(max_age: Option<u64>, default: u64) -> f64 {
    max_age
        .unwrap_or(default)
        .clamp(MIN_CACHE_SECONDS, MAX_CACHE_SECONDS) as f64
}

impl Keyring {
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.warnings.borrow_mut())
    }

    /// The keys that may have signed a token with this `alg` and `kid`.
    /// `KeysUnavailable` when the provider's only keys are remote and none
    /// could ever be fetched: that is our problem, not the token's.
    pub async fn candidates(
        &self,
        provider: &Provider,
        alg: Algorithm,
        kid: Option<&str>,
        fetcher: &impl JwksFetcher,
        now: NumericDate,
    ) -> Result<Vec<Rc<VerifyKey>>, GateError> {
        let mut found: Vec<Rc<VerifyKey>> = candidates(&provider.keys, alg, kid).cloned().collect();
        let Some(url) = &provider.jwks_url else {
            return Ok(found);
        };

        let due = self
            .remote
            .borrow()
            .get(url)
            .is_none_or(|set| now >= set.next_refresh);
        if due {
            self.refresh(provider, url, fetcher, now, false).await;
        }
        let mut remote = self.usable(url, alg, kid, now);
        let unknown_kid = kid.is_some() && remote.as_ref().is_some_and(Vec::is_empty);
        if unknown_kid && self.may_force(url, now) {
            self.refresh(provider, url, fetcher, now, true).await;
            remote = self.usable(url, alg, kid, now);
        }
        match remote {
            Some(keys) => found.extend(keys),
            None if found.is_empty() => return Err(GateError::KeysUnavailable),
            None => {}
        }
        Ok(found)
    }

    /// `None`: no usable set (never fetched, or stale beyond the grace).
    fn usable(
        &self,
        url: &str,
        alg: Algorithm,
        kid: Option<&str>,
        now: NumericDate,
    ) -> Option<Vec<Rc<VerifyKey>>> {
        let remote = self.remote.borrow();
        let set = remote.get(url).filter(|set| now < set.usable_until)?;
        Some(candidates(&set.keys, alg, kid).cloned().collect())
    }

    fn may_force(&self, url: &str, now: NumericDate) -> bool {
        let mut remote = self.remote.borrow_mut();
        let set = remote.entry(url.to_owned()).or_default();
        if set
            .last_forced
            .is_some_and(|at| now - at < UNKNOWN_KID_COOLDOWN_SECONDS)
        {
            return false;
        }
        set.last_forced = Some(now);
        true
    }

    async fn refresh(
        &self,
        provider: &Provider,
        url: &str,
        fetcher: &impl JwksFetcher,
        now: NumericDate,
        forced: bool,
    ) {
        // No RefCell borrow is held across this await.
        let outcome = fetcher.fetch(url, forced).await.and_then(|fetched| {
            parse_jwks(&fetched.body, KeySetSource::Remote).map(|parsed| (parsed, fetched.max_age))
        });
        let mut remote = self.remote.borrow_mut();
        let set = remote.entry(url.to_owned()).or_default();
        match outcome {
            Ok(((keys, skipped), max_age)) => {
                let ttl = cache_seconds(max_age, provider.jwks_cache_seconds);
                set.keys = keys;
                set.next_refresh = now + ttl;
                set.usable_until = now + ttl + STALE_GRACE_SECONDS;
                self.warnings.borrow_mut().extend(
                    skipped
                        .into_iter()
                        .map(|why| format!("JWKS {url}: skipped {why}")),
                );
            }
            Err(why) => {
                set.next_refresh = now + FAILURE_RETRY_SECONDS;
                let state = if now < set.usable_until {
                    "serving the cached keys"
                } else {
                    "no keys cached"
                };
                self.warnings
                    .borrow_mut()
                    .push(format!("JWKS {url}: refresh failed ({why}); {state}"));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::KeyMaterial;
    use std::cell::Cell;

    pub const URL: &str = "https://idp.example/jwks.json";

    /// Serves whatever set it holds, counting fetches; can be taken down.
    #[derive(Default)]
    pub struct FakeIdp {
        pub body: RefCell<String>,
        pub max_age: Cell<Option<u64>>,
        pub fetches: Cell<usize>,
        pub down: Cell<bool>,
    }

    impl FakeIdp {
        pub fn serving(kids: &[&str]) -> FakeIdp {
            let idp = FakeIdp::default();
            idp.serve(kids);
            idp
        }

        pub fn serve(&self, kids: &[&str]) {
            let keys: Vec<String> = kids
                .iter()
                .map(|kid| format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"{kid}"}}"#))
                .collect();
            *self.body.borrow_mut() = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
        }
    }

    impl JwksFetcher for FakeIdp {
        async fn fetch(&self, _url: &str, _bypass: bool) -> Result<Fetched, String> {
            self.fetches.set(self.fetches.get() + 1);
            if self.down.get() {
                return Err("connection refused".into());
            }
            Ok(Fetched {
                body: self.body.borrow().clone(),
                max_age: self.max_age.get(),
            })
        }
    }

    fn provider() -> Provider {
        Provider {
            issuers: vec![],
            audiences: vec![],
            algorithms: vec![Algorithm::EdDsa],
            keys: vec![],
            jwks_url: Some(URL.into()),
            jwks_cache_seconds: DEFAULT_CACHE_SECONDS,
        }
    }

    fn kids(
        ring: &Keyring,
        idp: &FakeIdp,
        kid: Option<&str>,
        now: f64,
    ) -> Result<Vec<String>, GateError> {
        let keys =
            pollster::block_on(ring.candidates(&provider(), Algorithm::EdDsa, kid, idp, now))?;
        Ok(keys
            .iter()
            .map(|k| k.kid.clone().unwrap_or_default())
            .collect())
    }

    #[test]
    fn fetched_once_then_cached_for_max_age_within_bounds() {
        let idp = FakeIdp::serving(&["k1"]);
        let ring = Keyring::default();
        assert_eq!(kids(&ring, &idp, Some("k1"), 1000.0).unwrap(), ["k1"]);
        assert_eq!(
            kids(&ring, &idp, Some("k1"), 1000.0 + 599.0).unwrap(),
            ["k1"]
        );
        assert_eq!(idp.fetches.get(), 1);
        kids(&ring, &idp, Some("k1"), 1000.0 + 600.0).unwrap();
        assert_eq!(idp.fetches.get(), 2, "default 10 minutes");

        // max-age=5 is raised to the 60 s floor; max-age=1 week capped at a day.
        idp.max_age.set(Some(5));
        let ring = Keyring::default();
        kids(&ring, &idp, None, 0.0).unwrap();
        kids(&ring, &idp, None, 59.0).unwrap();
        assert_eq!(idp.fetches.get(), 3);
        idp.max_age.set(Some(7 * 86_400));
        let ring = Keyring::default();
        kids(&ring, &idp, None, 0.0).unwrap();
        kids(&ring, &idp, None, 86_399.0).unwrap();
        kids(&ring, &idp, None, 86_400.0).unwrap();
        assert_eq!(idp.fetches.get(), 5);
    }

    #[test]
    fn cache_control_and_status_are_read_as_a_provider_means_them() {
        assert_eq!(max_age(Some("public, max-age=3600")), Some(3600));
        assert_eq!(max_age(Some("Max-Age=60, must-revalidate")), Some(60));
        assert_eq!(max_age(Some("no-store")), Some(MIN_CACHE_SECONDS));
        assert_eq!(max_age(Some("private")), None);
        assert_eq!(max_age(None), None);
        let ok = Fetched::from_response(200, Some("max-age=120"), Some("{}".into())).unwrap();
        assert_eq!((ok.body.as_str(), ok.max_age), ("{}", Some(120)));
        assert_eq!(
            Fetched::from_response(404, None, Some("{}".into()))
                .err()
                .as_deref(),
            Some("HTTP 404")
        );
        assert!(Fetched::from_response(200, None, None).is_err());
    }

    #[test]
    fn without_max_age_the_configured_default_applies() {
        let idp = FakeIdp::serving(&["k1"]);
        let ring = Keyring::default();
        let quick = Provider {
            jwks_cache_seconds: 60,
            ..provider()
        };
        let fetch = |now| {
            pollster::block_on(ring.candidates(&quick, Algorithm::EdDsa, Some("k1"), &idp, now))
                .unwrap()
        };
        fetch(0.0);
        fetch(59.0);
        assert_eq!(idp.fetches.get(), 1);
        fetch(60.0);
        assert_eq!(idp.fetches.get(), 2, "JWT_JWKS_CACHE_SECONDS=60");
        // The provider's own max-age still wins.
        idp.max_age.set(Some(3600));
        fetch(120.0);
        fetch(120.0 + 3599.0);
        assert_eq!(idp.fetches.get(), 3);
    }

    #[test]
    fn unknown_kid_refetches_at_most_once_per_cooldown() {
        let idp = FakeIdp::serving(&["k1"]);
        let ring = Keyring::default();
        kids(&ring, &idp, Some("k1"), 0.0).unwrap();
        for i in 0..100 {
            let found = kids(
                &ring,
                &idp,
                Some(&format!("made-up-{i}")),
                1.0 + i as f64 * 0.1,
            )
            .unwrap();
            assert!(found.is_empty());
        }
        assert_eq!(
            idp.fetches.get(),
            2,
            "one initial fetch, one refetch for the flood"
        );
        kids(&ring, &idp, Some("made-up"), 31.0).unwrap();
        assert_eq!(idp.fetches.get(), 3, "next refetch only after the cooldown");
    }

    #[test]
    fn rotation_new_kid_picked_up_removed_key_gone() {
        let idp = FakeIdp::serving(&["old"]);
        let ring = Keyring::default();
        assert_eq!(kids(&ring, &idp, Some("old"), 0.0).unwrap(), ["old"]);
        idp.serve(&["new"]);
        assert_eq!(
            kids(&ring, &idp, Some("new"), 5.0).unwrap(),
            ["new"],
            "on demand"
        );
        assert!(
            kids(&ring, &idp, Some("old"), 6.0).unwrap().is_empty(),
            "removed after refresh"
        );
    }

    #[test]
    fn provider_down_serves_cached_keys_then_gives_up() {
        let idp = FakeIdp::serving(&["k1"]);
        let ring = Keyring::default();
        kids(&ring, &idp, Some("k1"), 0.0).unwrap();
        idp.down.set(true);
        assert_eq!(
            kids(&ring, &idp, Some("k1"), 700.0).unwrap(),
            ["k1"],
            "stale while down"
        );
        assert_eq!(idp.fetches.get(), 2);
        kids(&ring, &idp, Some("k1"), 705.0).unwrap();
        assert_eq!(idp.fetches.get(), 2, "no retry storm while down");
        assert!(!ring.take_warnings().is_empty());
        assert_eq!(
            kids(&ring, &idp, Some("k1"), 600.0 + STALE_GRACE_SECONDS).err(),
            Some(GateError::KeysUnavailable)
        );
    }

    #[test]
    fn never_fetched_and_down_is_unavailable_not_a_bad_token() {
        let idp = FakeIdp::serving(&["k1"]);
        idp.down.set(true);
        let ring = Keyring::default();
        assert_eq!(
            kids(&ring, &idp, Some("k1"), 0.0).err(),
            Some(GateError::KeysUnavailable)
        );
    }

    #[test]
    fn static_keys_need_no_fetch() {
        let idp = FakeIdp::serving(&["k1"]);
        let mut p = provider();
        p.jwks_url = None;
        p.algorithms = vec![Algorithm::Hs256];
        p.keys = vec![Rc::new(VerifyKey {
            kid: None,
            alg: None,
            material: KeyMaterial::Hmac(Box::new(crate::keys::HmacKeys::new(b"secret"))),
        })];
        let found = pollster::block_on(Keyring::default().candidates(
            &p,
            Algorithm::Hs256,
            None,
            &idp,
            0.0,
        ))
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(idp.fetches.get(), 0);
    }
}
