//! Revocation rules and the KV schema (docs/storage.md, "KV schema").
//!
//! Keys (version prefix `v1:` so the schema can change later):
//! - `v1:jti:<token id>` = `{"at":<when>,"by":"<reason>"}`: one revoked
//!   token, expiring with the token (`exp` + leeway, at least 60 s from now).
//! - `v1:sub:<sub>` = `<cut-off NumericDate>`: every token of that user with
//!   `iat` before the cut-off is revoked. One key per user, overwritten.
//! - `v1:sid:<sid>` = `{"at":<when>,"by":"<reason>"}`: a revoked session
//!   ([`revoke_session`]). Its presence revokes every token carrying that
//!   `sid`, whatever its `iat`; it expires `SESSION_LIFETIME_SECONDS` +
//!   leeway after it is written, and tokens with a `sid` older than that are
//!   refused by their age ([`crate::verify::check_claims`]).
//!
//! The per-request check ([`check`]) reads the token's ID, its user and its
//! session in one bulk get: 1 to 3 keys, one round trip.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::NumericDate;
use crate::error::GateError;
use crate::token::Claims;

pub const KEY_PREFIX_TOKEN: &str = "v1:jti:";
pub const KEY_PREFIX_USER: &str = "v1:sub:";
pub const KEY_PREFIX_SESSION: &str = "v1:sid:";
/// How long a location may serve a KV read from its edge cache (`cacheTtl`,
/// KV's minimum). It is the revocation delay on ordinary paths (docs/storage.md,
/// "Revocation delay in production"): the minimum, because a revoked token
/// that keeps working is the failure this product exists to prevent.
pub const KV_CACHE_TTL_SECONDS: u32 = 30;

/// How long the host waits for the store before the call counts as failed:
/// a read then fails closed (503, never forwarded), a write is retried and
/// then reported (503, never success). KV reads take a few ms from the edge
/// cache and tens of ms from the central store, and a Durable Object round
/// trip depends on how far away it lives: these are far beyond healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub kv_read_ms: u32,
    pub kv_write_ms: u32,
    pub object_read_ms: u32,
    pub object_write_ms: u32,
}

pub const DEADLINES: Deadlines = Deadlines {
    kv_read_ms: 3000,
    kv_write_ms: 5000,
    object_read_ms: 3000,
    object_write_ms: 5000,
};

/// The settings that decide how long revocation entries live, as one value
/// ([`crate::config::Config::lifetimes`]): every write takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// `JWT_LEEWAY_SECONDS`: a token is accepted until `exp` + leeway.
    pub leeway_seconds: u64,
    /// `JWT_MAX_TOKEN_AGE_SECONDS`: no token older lives, so a user cut-off
    /// can expire after it; `None`: cut-offs never expire.
    pub max_token_age_seconds: Option<u64>,
    /// `SESSION_LIFETIME_SECONDS`: how long a revoked session's entry lives.
    pub session_lifetime_seconds: u64,
}

/// Workers KV refuses an expiration closer than 60 s.
pub const KV_MIN_TTL_SECONDS: u64 = 60;
/// KV keys are at most 512 bytes; longer IDs are stored by their hash.
const MAX_RAW_ID_BYTES: usize = 256;

/// The store could not be reached or answered nonsense. Never "not revoked".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// A key-value store with a batched read, as Workers KV's `get([...])`.
#[allow(async_fn_in_trait)] // Worker futures are !Send; no Send bound wanted.
pub trait RevocationStore {
    /// Reads all `keys` in one round trip; the answer is in the same order,
    /// one entry per key. An answer of any other length is treated as a
    /// store failure ([`check`]: `revocation_unavailable`), never as "not
    /// revoked"; so is an `Err`. Values that are not text should be an `Err`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError>;
    /// Writes one key; `expires_at` is an absolute Unix time in seconds.
    async fn put(&self, key: &str, value: &str, expires_at: Option<u64>) -> Result<(), StoreError>;
    /// Waits `millis` milliseconds (a timer, not a busy loop) before a write
    /// is tried again: KV takes one write per second per key, so an
    /// immediate retry of the same key is likely to fail the same way.
    async fn pause(&self, millis: u32);

    /// Whether per-user Durable Objects (`SESSIONS`) are bound. When they
    /// are, every revocation naming a user is written to that user's
    /// object too, before it is acknowledged.
    fn has_user_objects(&self) -> bool {
        false
    }
    /// Reads `keys` from `user`'s object, strongly consistent; as
    /// [`RevocationStore::get_many`] otherwise.
    async fn user_get_many(
        &self,
        _user: &str,
        _keys: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        Err(StoreError("no per-user objects are bound".into()))
    }
    /// Writes one entry into `user`'s object.
    async fn user_put(
        &self,
        _user: &str,
        _key: &str,
        _value: &str,
        _expires_at: Option<u64>,
    ) -> Result<(), StoreError> {
        Err(StoreError("no per-user objects are bound".into()))
    }
}

pub(crate) fn bounded(prefix: &str, id: &str) -> String {
    // Concatenated, not format!ted: one allocation of the right size, on
    // every request.
    if id.len() <= MAX_RAW_ID_BYTES {
        [prefix, id].concat()
    } else {
        let digest = Base64UrlUnpadded::encode_string(&Sha256::digest(id.as_bytes()));
        [prefix, "sha256:", &digest].concat()
    }
}

pub fn token_key(token_id: &str) -> String {
    bounded(KEY_PREFIX_TOKEN, token_id)
}

pub fn user_key(sub: &str) -> String {
    bounded(KEY_PREFIX_USER, sub)
}

pub fn session_key(sid: &str) -> String {
    bounded(KEY_PREFIX_SESSION, sid)
}

/// Why a token is no longer accepted (introspection's `revoked_by`), and
/// who wrote an entry (its `by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedBy {
    /// `POST /auth/logout`.
    Logout,
    /// The admin API.
    Admin,
    /// A user cut-off (logout-all, password change, admin `sub`,
    /// back-channel logout by `sub`, `Tokengate-Revoke: user`). Status only.
    UserCutOff,
    /// The token's session (`v1:sid:`) is revoked. Status only: the session
    /// entry itself says who revoked it.
    Session,
    /// An OpenID Connect back-channel logout.
    Backchannel,
    /// The origin, with `Tokengate-Revoke`.
    Origin,
    /// A spent refresh token was presented again ([`crate::refresh`]).
    RefreshReuse,
}

/// The value of a revoked-ID entry and of a revoked-session entry:
/// `{"at":<unix seconds>,"by":"logout"|"admin"|"backchannel"|"origin"}`.
/// Informational: an entry's presence is what revokes, so an unreadable
/// value still revokes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub at: u64,
    pub by: RevokedBy,
}

/// Revoked-ID entries live at most this long (ten years): KV refuses
/// absurd expirations, and a logout must not fail for a token whose `exp`
/// is in the year 3000. Because an entry cannot outlive this cap, tokens
/// whose `exp` (+ leeway) lies further ahead are refused outright
/// (`token_lifetime_too_long`, [`crate::verify::check_claims`]): a logout
/// could not cover their whole life.
pub const MAX_ENTRY_SECONDS: u64 = 10 * 365 * 86_400;

/// How long a revoked-ID entry must live: until the token would have expired
/// anyway (`exp` + leeway), never less than KV's minimum, never more than
/// [`MAX_ENTRY_SECONDS`].
pub fn token_entry_expiry(exp: Option<NumericDate>, leeway_seconds: u64, now: NumericDate) -> u64 {
    let now = now.ceil().max(0.0) as u64;
    let until = exp.map_or(0, |exp| {
        (exp.ceil().max(0.0) as u64).saturating_add(leeway_seconds)
    });
    until.clamp(now + KV_MIN_TTL_SECONDS, now + MAX_ENTRY_SECONDS)
}

/// Is a token with this `iat` revoked by a user cut-off?
///
/// A fractional `iat` is ordered exactly: revoked when `iat < cut_off`.
/// A whole-second `iat` says only that the token was issued somewhere in
/// `[iat, iat + 1)`, so inside the cut-off's own second we cannot tell
/// before from after. We fail safe: it counts as issued before the cut-off
/// and is revoked. The price is a window of under one second after a
/// logout-all or password change in which a fresh whole-second token is
/// refused too (docs/storage.md, "Revocation rules"). A token without `iat` is
/// revoked by any cut-off.
pub fn revoked_by_cut_off(iat: Option<NumericDate>, cut_off: NumericDate) -> bool {
    // For a whole-second `iat` inside the cut-off's second, `iat < cut_off`
    // holds, which is exactly the fail-safe answer; comparing against the
    // cut-off's whole second instead would let those tokens through.
    iat.is_none_or(|iat| iat < cut_off)
}

/// The cut-off that revokes every token that may have been issued before
/// `event`, the instant of a logout, logout-all or other revocation.
///
/// An instant with a fraction is exact. One without may stand for any moment
/// of its second: a logout token's `iat` is a whole second, so the logout
/// happened somewhere in `[iat, iat + 1)`, and a token with the same
/// whole-second `iat` may be from just before it. So the cut-off is the end
/// of that second: same-second tokens are revoked, tokens issued in the next
/// second or later are not (a replayed logout token cannot reach them). The
/// gateway's own clock (`now`) almost always has a fraction; when it lands on
/// a whole second it is treated the same way, which errs on the safe side by
/// under a second. Every cut-off source goes through here
/// ([`cut_off_user_at`], refresh-token reuse).
pub fn cut_off_after(event: NumericDate) -> NumericDate {
    if event.fract() == 0.0 {
        event + 1.0
    } else {
        event
    }
}

/// Parses a cut-off as stored; an unreadable value fails closed.
pub fn parse_cut_off(value: &str) -> Result<NumericDate, StoreError> {
    // serde_json's number parser, already in the build, rather than a second one.
    serde_json::from_str::<f64>(value.trim())
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| StoreError("unreadable user cut-off".into()))
}

/// What an entry written over `stored` must hold: a user cut-off is never
/// lowered (a later logout-all stays in force whatever order writes land
/// in); anything else is replaced. The user's object applies this to every
/// write; KV cannot (it has no read-modify-write).
pub fn merged<'a>(key: &str, stored: Option<&'a str>, new: &'a str) -> &'a str {
    let cut_off = |value: &str| parse_cut_off(value).ok();
    match stored {
        Some(stored)
            if key.starts_with(KEY_PREFIX_USER)
                && cut_off(stored).is_some_and(|s| cut_off(new).is_none_or(|n| s > n)) =>
        {
            stored
        }
        _ => new,
    }
}

/// Cut-offs are written with millisecond precision, in integer arithmetic
/// (float formatting would cost ~15 KB of wasm), rounded up: a cut-off may
/// revoke a token a fraction of a millisecond younger, never spare an older one.
pub fn format_cut_off(cut_off: NumericDate) -> String {
    let millis = (cut_off.max(0.0) * 1000.0).ceil() as u64;
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

/// Why a token is inactive, when it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Revoked(RevokedBy),
}

/// What the store holds about one token: its own entry, its session's and
/// its user's cut-off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lookup {
    /// The revoked-ID entry's `by`, when there is one (`Admin` when its
    /// value is unreadable: its presence alone revokes).
    pub token: Option<RevokedBy>,
    /// The token has a `sid` and that session is revoked.
    pub session: bool,
    /// The user's stored cut-off, when the token has a `sub` and there is one.
    pub cut_off: Option<NumericDate>,
    iat: Option<NumericDate>,
}

impl Lookup {
    /// The token's own entry first, then its session, then its user.
    pub fn status(&self) -> Status {
        if let Some(by) = self.token {
            return Status::Revoked(by);
        }
        if self.session {
            return Status::Revoked(RevokedBy::Session);
        }
        match self.cut_off {
            Some(cut_off) if revoked_by_cut_off(self.iat, cut_off) => {
                Status::Revoked(RevokedBy::UserCutOff)
            }
            _ => Status::Active,
        }
    }
}

/// One bulk get of `keys`; an answer of the wrong length, like a failed
/// read, is `revocation_unavailable`, never "no entry" (fail closed).
async fn read_all(
    store: &impl RevocationStore,
    keys: &[String],
) -> Result<Vec<Option<String>>, GateError> {
    let values = store
        .get_many(keys)
        .await
        .map_err(|_| GateError::RevocationUnavailable)?;
    if values.len() != keys.len() {
        return Err(GateError::RevocationUnavailable);
    }
    Ok(values)
}

/// The keys that hold what is known about one token: its ID, its user
/// (with `sub`) and its session (with `sid`), 1 to 3 keys.
#[derive(Debug, Clone)]
pub struct LookupKeys {
    pub keys: Vec<String>,
    user_at: Option<usize>,
    session_at: Option<usize>,
}

impl LookupKeys {
    pub fn new(token_id: &str, sub: Option<&str>, sid: Option<&str>) -> LookupKeys {
        let mut keys = Vec::with_capacity(3);
        keys.push(token_key(token_id));
        let user_at = sub.map(|sub| {
            keys.push(user_key(sub));
            keys.len() - 1
        });
        let session_at = sid.map(|sid| {
            keys.push(session_key(sid));
            keys.len() - 1
        });
        LookupKeys {
            keys,
            user_at,
            session_at,
        }
    }

    fn of(token_id: &str, claims: &Claims) -> LookupKeys {
        LookupKeys::new(token_id, claims.sub.as_deref(), claims.session())
    }

    /// What `values` (read for [`LookupKeys::keys`], in order) say about a
    /// token issued at `iat`. An unreadable cut-off fails closed.
    pub fn interpret(
        &self,
        mut values: Vec<Option<String>>,
        iat: Option<NumericDate>,
    ) -> Result<Lookup, GateError> {
        if values.len() != self.keys.len() {
            return Err(GateError::RevocationUnavailable);
        }
        let mut take = |at: Option<usize>| at.and_then(|i| values[i].take());
        // Whatever the entry says, its presence revokes the token.
        let token = take(Some(0)).map(|entry| {
            serde_json::from_str::<TokenEntry>(&entry).map_or(RevokedBy::Admin, |e| e.by)
        });
        let session = take(self.session_at).is_some();
        let cut_off = match take(self.user_at) {
            Some(value) => {
                Some(parse_cut_off(&value).map_err(|_| GateError::RevocationUnavailable)?)
            }
            None => None,
        };
        Ok(Lookup {
            token,
            session,
            cut_off,
            iat,
        })
    }
}

/// Everything the store holds about a token, in one round trip: its ID,
/// its user (with `sub`) and its session (with `sid`), 1 to 3 keys.
pub async fn lookup(
    store: &impl RevocationStore,
    token_id: &str,
    claims: &Claims,
) -> Result<Lookup, GateError> {
    let keys = LookupKeys::of(token_id, claims);
    let values = read_all(store, &keys.keys).await?;
    keys.interpret(values, claims.iat)
}

/// [`check`] against `user`'s Durable Object rather than KV: what a strict
/// path asks. The object sees every acknowledged revocation at once.
pub async fn check_strict(
    store: &impl RevocationStore,
    user: &str,
    token_id: &str,
    claims: &Claims,
) -> Result<Status, GateError> {
    let keys = LookupKeys::of(token_id, claims);
    let values = store
        .user_get_many(user, &keys.keys)
        .await
        .map_err(|_| GateError::RevocationUnavailable)?;
    Ok(keys.interpret(values, claims.iat)?.status())
}

/// The per-request check: one round trip for the token ID, the user and
/// the session.
pub async fn check(
    store: &impl RevocationStore,
    token_id: &str,
    claims: &Claims,
) -> Result<Status, GateError> {
    Ok(lookup(store, token_id, claims).await?.status())
}

/// The pauses between the attempts of a write, in milliseconds: try, wait
/// 1.1 s, try, wait 2.2 s, try. KV allows one write per second per key, so
/// each retry waits more than a second (with a margin, then backing off).
/// Each pause is spread by up to half again ([`crate::jitter`]), so that
/// isolates failing on one key together do not retry together. Bounded: a
/// failing write holds its request for at most 4.95 s of waiting, which
/// costs no CPU time in a Worker.
pub const RETRY_PAUSES_MS: [u32; 2] = [1100, 2200];

/// How many times a write is tried before the failure is reported.
pub const WRITE_ATTEMPTS: usize = RETRY_PAUSES_MS.len() + 1;

/// Where a revocation is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To<'a> {
    /// KV, and the user's object when objects are bound and there is a user.
    Everywhere(Option<&'a str>),
    /// Only the user's object: KV has the entry already (an earlier write
    /// reached KV but not the object), and KV takes one write per second
    /// per key, so it is not written again.
    ObjectOf(&'a str),
}

/// Writes one entry to KV and, when per-user objects are bound and the
/// entry concerns a user, to that user's object; retried (KV only until it
/// took the entry). Only
/// when both took it is the write done: a revocation in KV but not in the
/// object would not be seen at once on strict paths, so it is a failure.
async fn put_with_retry(
    store: &impl RevocationStore,
    to: To<'_>,
    key: &str,
    value: &str,
    expires_at: Option<u64>,
) -> Result<(), GateError> {
    let (kv, user) = match to {
        To::Everywhere(user) => (true, user),
        To::ObjectOf(user) => (false, Some(user)),
    };
    let object = user.filter(|_| store.has_user_objects());
    // The store logs each failure itself; the caller only needs the outcome.
    // Once KV took it, only the object is tried again.
    let mut kv_pending = kv;
    for attempt in 0..WRITE_ATTEMPTS {
        if let Some(millis) = attempt.checked_sub(1).map(|i| RETRY_PAUSES_MS[i]) {
            store.pause(crate::jitter::jittered(millis)).await;
        }
        if kv_pending {
            if store.put(key, value, expires_at).await.is_err() {
                continue;
            }
            kv_pending = false;
        }
        match object {
            None => return Ok(()),
            Some(user) => {
                if store.user_put(user, key, value, expires_at).await.is_ok() {
                    return Ok(());
                }
            }
        }
    }
    Err(GateError::RevocationUnavailable)
}

/// Writes to KV only (an entry the user's object already holds).
pub async fn put_in_kv(
    store: &impl RevocationStore,
    key: &str,
    value: &str,
    expires_at: Option<u64>,
) -> Result<(), GateError> {
    put_with_retry(store, To::Everywhere(None), key, value, expires_at).await
}

/// Revokes one token until it would have expired anyway. Idempotent.
/// `to`: KV and the token's user's object, as a rule ([`To`]).
pub async fn revoke_token(
    store: &impl RevocationStore,
    to: To<'_>,
    token_id: &str,
    exp: Option<NumericDate>,
    by: RevokedBy,
    now: NumericDate,
    lifetimes: Lifetimes,
) -> Result<u64, GateError> {
    let expires_at = token_entry_expiry(exp, lifetimes.leeway_seconds, now);
    let entry = serde_json::to_string(&TokenEntry {
        at: now.floor() as u64,
        by,
    })
    .map_err(|_| GateError::RevocationUnavailable)?;
    put_with_retry(store, to, &token_key(token_id), &entry, Some(expires_at)).await?;
    Ok(expires_at)
}

/// Revokes every token of `sub` issued before `now` ([`cut_off_after`]).
///
/// Without `max_token_age` the key never expires: we cannot know how long
/// the user's older tokens live (it is one key per user, overwritten, so it
/// stays bounded). With it, every token the cut-off could revoke is refused
/// by its age anyway after `max_token_age` + leeway, so the key goes then.
pub async fn cut_off_user(
    store: &impl RevocationStore,
    sub: &str,
    now: NumericDate,
    lifetimes: Lifetimes,
) -> Result<NumericDate, GateError> {
    cut_off_user_at(store, sub, now, now, lifetimes).await
}

/// Revokes every token of `sub` that may have been issued before `event`
/// ([`cut_off_after`]), which may lie in the past (a back-channel logout
/// cuts off at its logout token's `iat`). The entry's expiry counts from
/// `now`, as in [`cut_off_user`]. Returns the cut-off as stored.
pub async fn cut_off_user_at(
    store: &impl RevocationStore,
    sub: &str,
    event: NumericDate,
    now: NumericDate,
    lifetimes: Lifetimes,
) -> Result<NumericDate, GateError> {
    let to = To::Everywhere(Some(sub));
    write_cut_off(store, to, sub, cut_off_after(event), now, lifetimes).await
}

/// [`cut_off_user_at`] into the user's object only, when per-user objects
/// are bound: KV holds this cut-off already (an earlier write reached KV
/// but not the object). Without objects, nothing to do.
pub async fn mirror_cut_off(
    store: &impl RevocationStore,
    sub: &str,
    cut_off: NumericDate,
    now: NumericDate,
    lifetimes: Lifetimes,
) -> Result<NumericDate, GateError> {
    if !store.has_user_objects() {
        return Ok(cut_off);
    }
    write_cut_off(store, To::ObjectOf(sub), sub, cut_off, now, lifetimes).await
}

async fn write_cut_off(
    store: &impl RevocationStore,
    to: To<'_>,
    sub: &str,
    cut_off: NumericDate,
    now: NumericDate,
    lifetimes: Lifetimes,
) -> Result<NumericDate, GateError> {
    let value = format_cut_off(cut_off);
    let expires_at = cut_off_expiry(
        now,
        lifetimes.max_token_age_seconds,
        lifetimes.leeway_seconds,
    );
    put_with_retry(store, to, &user_key(sub), &value, expires_at).await?;
    Ok(parse_cut_off(&value).unwrap_or(cut_off))
}

/// When a revoked-session entry written at `now` expires: the session
/// lifetime plus leeway later (at least KV's minimum). Every token of the
/// session is refused by its age by then ([`crate::verify::check_claims`]
/// requires a `sid` token's `iat` to be at most that old), so no revoked
/// session comes back when its entry goes.
pub fn session_entry_expiry(now: NumericDate, lifetime_seconds: u64, leeway_seconds: u64) -> u64 {
    let ttl = lifetime_seconds
        .saturating_add(leeway_seconds)
        .max(KV_MIN_TTL_SECONDS);
    (now.max(0.0).ceil() as u64).saturating_add(ttl)
}

/// The value of a revoked-session entry written at `now`.
pub fn session_entry(by: RevokedBy, now: NumericDate) -> String {
    let entry = TokenEntry {
        at: now.max(0.0).floor() as u64,
        by,
    };
    serde_json::to_string(&entry).unwrap_or_else(|_| "{}".to_owned())
}

/// When a user cut-off written at `now` expires (`None`: never): after the
/// maximum token age plus leeway, when every token it could revoke is
/// refused by its age anyway.
pub fn cut_off_expiry(now: NumericDate, max_token_age: Option<u64>, leeway: u64) -> Option<u64> {
    max_token_age.map(|age| {
        let ttl = age.saturating_add(leeway).max(KV_MIN_TTL_SECONDS);
        (now.max(0.0).ceil() as u64).saturating_add(ttl)
    })
}

/// Revokes the session `sid`: every token carrying it, whatever its `iat`.
/// Writes `v1:sid:<sid>` = `{"at":<unix seconds>,"by":"<by>"}` (the same
/// shape as a revoked-ID entry; informational, its presence is what
/// revokes), expiring [`session_entry_expiry`]. Idempotent; returns the
/// expiry.
pub async fn revoke_session(
    store: &impl RevocationStore,
    to: To<'_>,
    sid: &str,
    by: RevokedBy,
    now: NumericDate,
    lifetimes: Lifetimes,
) -> Result<u64, GateError> {
    let expires_at = session_entry_expiry(
        now,
        lifetimes.session_lifetime_seconds,
        lifetimes.leeway_seconds,
    );
    let entry = session_entry(by, now);
    put_with_retry(store, to, &session_key(sid), &entry, Some(expires_at)).await?;
    Ok(expires_at)
}

/// Reads the given keys in one round trip (the back-channel logout's
/// look-ups). Fails closed like [`check`].
pub async fn read(
    store: &impl RevocationStore,
    keys: &[String],
) -> Result<Vec<Option<String>>, GateError> {
    read_all(store, keys).await
}

/// An in-memory store for tests and for the native benchmarks. It counts
/// round trips, can be told to fail, and records pauses instead of sleeping.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub entries: std::cell::RefCell<std::collections::HashMap<String, (String, Option<u64>)>>,
    pub reads: std::cell::Cell<usize>,
    pub writes: std::cell::Cell<usize>,
    pub fail_reads: std::cell::Cell<bool>,
    /// Number of upcoming writes that fail.
    pub failing_writes: std::cell::Cell<usize>,
    /// Every [`RevocationStore::pause`] asked for, in milliseconds, in order.
    pub pauses: std::cell::RefCell<Vec<u32>>,
    /// Per-user objects, by user, when "bound" ([`MemoryStore::with_user_objects`]).
    pub objects: std::cell::RefCell<Option<std::collections::HashMap<String, MemoryObject>>>,
    /// The objects cannot be reached.
    pub objects_down: std::cell::Cell<bool>,
    /// The objects' clock (Unix seconds).
    pub object_now: std::cell::Cell<f64>,
}

/// One user's object in a [`MemoryStore`]: its entries (without expiry).
pub type MemoryObject = std::collections::HashMap<String, String>;

impl MemoryStore {
    /// A store with per-user objects bound, as with `SESSIONS`.
    pub fn with_user_objects() -> MemoryStore {
        let store = MemoryStore::default();
        store.objects.replace(Some(Default::default()));
        store
    }

    /// `user`'s object entry at `key`.
    pub fn object_entry(&self, user: &str, key: &str) -> Option<String> {
        let objects = self.objects.borrow();
        objects.as_ref()?.get(user)?.get(key).cloned()
    }

    fn object_down(&self) -> Result<(), StoreError> {
        match self.objects_down.get() || self.objects.borrow().is_none() {
            true => Err(StoreError("injected object failure".into())),
            false => Ok(()),
        }
    }
}

impl RevocationStore for MemoryStore {
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        self.reads.set(self.reads.get() + 1);
        if self.fail_reads.get() {
            return Err(StoreError("injected read failure".into()));
        }
        let entries = self.entries.borrow();
        Ok(keys
            .iter()
            .map(|k| entries.get(k).map(|(v, _)| v.clone()))
            .collect())
    }

    async fn put(&self, key: &str, value: &str, expires_at: Option<u64>) -> Result<(), StoreError> {
        self.writes.set(self.writes.get() + 1);
        if self.failing_writes.get() > 0 {
            self.failing_writes.set(self.failing_writes.get() - 1);
            return Err(StoreError("injected write failure".into()));
        }
        self.entries
            .borrow_mut()
            .insert(key.to_owned(), (value.to_owned(), expires_at));
        Ok(())
    }

    async fn pause(&self, millis: u32) {
        self.pauses.borrow_mut().push(millis);
    }

    fn has_user_objects(&self) -> bool {
        self.objects.borrow().is_some()
    }

    async fn user_get_many(
        &self,
        user: &str,
        keys: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        self.object_down()?;
        Ok(keys.iter().map(|k| self.object_entry(user, k)).collect())
    }

    async fn user_put(
        &self,
        user: &str,
        key: &str,
        value: &str,
        _expires_at: Option<u64>,
    ) -> Result<(), StoreError> {
        self.object_down()?;
        let mut objects = self.objects.borrow_mut();
        if let Some(object) = objects
            .as_mut()
            .map(|o| o.entry(user.to_owned()).or_default())
        {
            let value = merged(key, object.get(key).map(String::as_str), value).to_owned();
            object.insert(key.to_owned(), value);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pollster::block_on;

    const NOW: f64 = 1_700_000_000.5;

    fn lifetimes(leeway_seconds: u64, max_token_age_seconds: Option<u64>) -> Lifetimes {
        Lifetimes {
            leeway_seconds,
            max_token_age_seconds,
            session_lifetime_seconds: 30 * 86_400,
        }
    }

    fn claims(sub: &str, iat: Option<f64>) -> Claims {
        Claims {
            sub: Some(sub.into()),
            iat,
            exp: Some(NOW + 3600.0),
            ..Claims::default()
        }
    }

    #[test]
    fn revoked_entry_lives_until_exp_plus_leeway_but_at_least_a_minute() {
        assert_eq!(
            token_entry_expiry(Some(NOW + 3600.0), 30, NOW),
            1_700_003_631
        );
        assert_eq!(token_entry_expiry(Some(NOW + 5.0), 0, NOW), 1_700_000_061);
        assert_eq!(token_entry_expiry(Some(NOW - 100.0), 0, NOW), 1_700_000_061);
        assert_eq!(token_entry_expiry(None, 0, NOW), 1_700_000_061);
        assert_eq!(
            token_entry_expiry(Some(1e20), 0, NOW),
            1_700_000_001 + MAX_ENTRY_SECONDS
        );
    }

    #[test]
    fn cut_off_orders_fractional_iat_exactly() {
        let cut = 1_700_000_000.500;
        assert!(revoked_by_cut_off(Some(1_700_000_000.499), cut));
        assert!(!revoked_by_cut_off(Some(1_700_000_000.500), cut));
        assert!(!revoked_by_cut_off(Some(1_700_000_000.501), cut));
        assert!(revoked_by_cut_off(None, cut));
    }

    #[test]
    fn whole_second_iat_in_the_cut_offs_own_second_is_revoked() {
        let cut = 1_700_000_000.500;
        assert!(
            revoked_by_cut_off(Some(1_699_999_999.0), cut),
            "earlier second"
        );
        assert!(
            revoked_by_cut_off(Some(1_700_000_000.0), cut),
            "own second: fail safe"
        );
        assert!(
            !revoked_by_cut_off(Some(1_700_000_001.0), cut),
            "next second"
        );
        // A cut-off exactly on a second boundary has no ambiguous second.
        assert!(!revoked_by_cut_off(Some(1_700_000_000.0), 1_700_000_000.0));
        assert!(revoked_by_cut_off(Some(1_699_999_999.0), 1_700_000_000.0));
    }

    #[test]
    fn an_object_never_lowers_a_cut_off() {
        let key = user_key("alice");
        assert_eq!(merged(&key, Some("200.000"), "100.000"), "200.000");
        assert_eq!(merged(&key, Some("100.000"), "200.000"), "200.000");
        assert_eq!(merged(&key, Some("garbage"), "100.000"), "100.000");
        assert_eq!(merged(&key, None, "100.000"), "100.000");
        let session = session_key("s");
        assert_eq!(
            merged(&session, Some("{}"), "{\"by\":\"admin\"}"),
            "{\"by\":\"admin\"}"
        );
    }

    #[test]
    fn every_cut_off_fails_safe_at_the_second_boundary() {
        // Logout-all, password change, admin, origin-directed and
        // back-channel cut-offs all go through `cut_off_user_at`; refresh
        // reuse through `cut_off_after`. A whole-second instant may be any
        // moment of its second, so tokens of that second are revoked; a
        // fractional one is exact. Tokens of the next second never are.
        const SECOND: f64 = 1_700_000_000.0;
        for (event, cut_off) in [
            (SECOND, SECOND + 1.0),
            (SECOND + 0.25, SECOND + 0.25),
            (SECOND + 0.999, SECOND + 0.999),
        ] {
            let store = MemoryStore::default();
            let stored = block_on(cut_off_user_at(
                &store,
                "alice",
                event,
                event,
                lifetimes(0, None),
            ));
            assert_eq!(stored, Ok(cut_off), "{event}");
            let status = |iat: f64| block_on(check(&store, "t", &claims("alice", Some(iat))));
            let revoked = Ok(Status::Revoked(RevokedBy::UserCutOff));
            assert_eq!(status(SECOND - 1.0), revoked, "{event}");
            assert_eq!(status(SECOND), revoked, "{event}: the same whole second");
            assert_eq!(status(SECOND + 1.0), Ok(Status::Active), "{event}");
        }
        // Fractional tokens inside the second are ordered exactly against
        // a fractional event, and count as before a whole-second one.
        assert!(revoked_by_cut_off(
            Some(SECOND + 0.2),
            cut_off_after(SECOND + 0.25)
        ));
        assert!(!revoked_by_cut_off(
            Some(SECOND + 0.3),
            cut_off_after(SECOND + 0.25)
        ));
        assert!(revoked_by_cut_off(
            Some(SECOND + 0.9),
            cut_off_after(SECOND)
        ));
        // A stored cut-off is mirrored as it is, never moved again.
        let store = MemoryStore::default();
        assert_eq!(
            block_on(mirror_cut_off(
                &store,
                "alice",
                SECOND,
                SECOND,
                lifetimes(0, None)
            )),
            Ok(SECOND)
        );
    }

    #[test]
    fn cut_offs_round_trip_with_millisecond_precision() {
        assert_eq!(format_cut_off(1_700_000_000.5), "1700000000.500");
        assert_eq!(format_cut_off(1_700_000_000.000_4), "1700000000.001");
        assert_eq!(format_cut_off(1_700_000_000.099_6), "1700000000.100");
        assert_eq!(format_cut_off(1_700_000_000.0), "1700000000.000");
        assert_eq!(parse_cut_off("1700000000.123"), Ok(1_700_000_000.123));
        assert!(parse_cut_off("soon").is_err());
    }

    #[test]
    fn one_round_trip_covers_token_and_user() {
        let store = MemoryStore::default();
        assert_eq!(
            block_on(check(&store, "t1", &claims("alice", Some(NOW)))),
            Ok(Status::Active)
        );
        assert_eq!(store.reads.get(), 1);

        block_on(revoke_token(
            &store,
            To::Everywhere(None),
            "t1",
            Some(NOW + 3600.0),
            RevokedBy::Logout,
            NOW,
            lifetimes(0, None),
        ))
        .unwrap();
        assert_eq!(
            block_on(check(&store, "t1", &claims("alice", Some(NOW)))),
            Ok(Status::Revoked(RevokedBy::Logout))
        );
        assert_eq!(store.reads.get(), 2);
        assert_eq!(
            block_on(check(&store, "t2", &claims("alice", Some(NOW)))),
            Ok(Status::Active)
        );
    }

    #[test]
    fn user_cut_off_revokes_older_tokens_only_for_that_user() {
        let store = MemoryStore::default();
        block_on(cut_off_user(&store, "alice", NOW, lifetimes(0, None))).unwrap();
        let older = claims("alice", Some(NOW - 10.0));
        let newer = claims("alice", Some(NOW + 1.0));
        let bob = claims("bob", Some(NOW - 10.0));
        assert_eq!(
            block_on(check(&store, "a", &older)),
            Ok(Status::Revoked(RevokedBy::UserCutOff))
        );
        assert_eq!(block_on(check(&store, "b", &newer)), Ok(Status::Active));
        assert_eq!(block_on(check(&store, "c", &bob)), Ok(Status::Active));
        assert_eq!(store.entries.borrow()["v1:sub:alice"].0, "1700000000.500");
        assert_eq!(store.entries.borrow()["v1:sub:alice"].1, None);
    }

    #[test]
    fn cut_off_expires_with_the_maximum_token_age() {
        let store = MemoryStore::default();
        block_on(cut_off_user(
            &store,
            "alice",
            NOW,
            lifetimes(30, Some(3600)),
        ))
        .unwrap();
        assert_eq!(
            store.entries.borrow()["v1:sub:alice"].1,
            Some(1_700_000_001 + 3630)
        );
        block_on(cut_off_user(&store, "bob", NOW, lifetimes(0, Some(5)))).unwrap();
        assert_eq!(
            store.entries.borrow()["v1:sub:bob"].1,
            Some(1_700_000_001 + 60)
        );
    }

    #[test]
    fn unreadable_store_or_value_fails_closed() {
        let store = MemoryStore::default();
        store.fail_reads.set(true);
        assert_eq!(
            block_on(check(&store, "t", &claims("alice", Some(NOW)))),
            Err(GateError::RevocationUnavailable)
        );
        let store = MemoryStore::default();
        block_on(store.put("v1:sub:alice", "garbage", None)).unwrap();
        assert_eq!(
            block_on(check(&store, "t", &claims("alice", Some(NOW)))),
            Err(GateError::RevocationUnavailable)
        );
    }

    /// Answers every read with `answers(keys.len())` empty values.
    pub(crate) struct MiscountingStore(pub fn(usize) -> usize);

    impl RevocationStore for MiscountingStore {
        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
            Ok(vec![None; (self.0)(keys.len())])
        }
        async fn put(&self, _: &str, _: &str, _: Option<u64>) -> Result<(), StoreError> {
            Ok(())
        }
        async fn pause(&self, _: u32) {}
    }

    #[test]
    fn an_answer_of_the_wrong_length_is_a_store_failure() {
        let with_sub = claims("alice", Some(NOW));
        let without_sub = Claims {
            sub: None,
            ..with_sub.clone()
        };
        let miscounts: [fn(usize) -> usize; 4] = [|_| 0, |n| n - 1, |n| n + 1, |n| 2 * n + 3];
        for (i, miscount) in miscounts.into_iter().enumerate() {
            for claims in [&with_sub, &without_sub] {
                assert_eq!(
                    block_on(check(&MiscountingStore(miscount), "t", claims)),
                    Err(GateError::RevocationUnavailable),
                    "miscount {i}, sub {:?}",
                    claims.sub
                );
            }
        }
        // The right length with nothing in it is the only "not revoked".
        assert_eq!(
            block_on(check(&MiscountingStore(|n| n), "t", &with_sub)),
            Ok(Status::Active)
        );
    }

    #[test]
    fn writes_are_retried_a_bounded_number_of_times() {
        let store = MemoryStore::default();
        store.failing_writes.set(WRITE_ATTEMPTS - 1);
        assert!(block_on(cut_off_user(&store, "alice", NOW, lifetimes(0, None))).is_ok());
        assert_eq!(store.writes.get(), WRITE_ATTEMPTS);

        let store = MemoryStore::default();
        store.failing_writes.set(WRITE_ATTEMPTS);
        assert_eq!(
            block_on(revoke_token(
                &store,
                To::Everywhere(None),
                "t",
                Some(NOW),
                RevokedBy::Logout,
                NOW,
                lifetimes(0, None)
            )),
            Err(GateError::RevocationUnavailable)
        );
        assert_eq!(store.writes.get(), WRITE_ATTEMPTS);
        assert!(store.entries.borrow().is_empty());
    }

    #[test]
    fn write_retries_are_spaced_by_more_than_a_second() {
        assert!(RETRY_PAUSES_MS.iter().all(|&ms| ms >= 1000));
        let revoke = |store: &MemoryStore| {
            block_on(revoke_token(
                store,
                To::Everywhere(None),
                "t",
                Some(NOW + 60.0),
                RevokedBy::Logout,
                NOW,
                lifetimes(0, None),
            ))
        };
        let cut_off =
            |store: &MemoryStore| block_on(cut_off_user(store, "alice", NOW, lifetimes(0, None)));
        for failures in 0..=WRITE_ATTEMPTS {
            for which in ["revoke_token", "cut_off_user"] {
                let store = MemoryStore::default();
                store.failing_writes.set(failures);
                let ok = match which {
                    "revoke_token" => revoke(&store).is_ok(),
                    _ => cut_off(&store).is_ok(),
                };
                assert_eq!(
                    ok,
                    failures < WRITE_ATTEMPTS,
                    "{which}, {failures} failures"
                );
                // One pause before each retry, none after the last failure.
                let retries = failures.min(WRITE_ATTEMPTS - 1);
                assert!(
                    crate::jitter::within_schedule(
                        &store.pauses.borrow(),
                        &RETRY_PAUSES_MS[..retries]
                    ),
                    "{which}, {failures} failures: {:?}",
                    store.pauses.borrow()
                );
                assert_eq!(store.writes.get(), (failures + 1).min(WRITE_ATTEMPTS));
            }
        }
        let store = MemoryStore::default();
        store.failing_writes.set(2);
        assert!(cut_off(&store).is_ok());
        assert!(crate::jitter::within_schedule(
            &store.pauses.borrow(),
            &RETRY_PAUSES_MS
        ));
    }

    fn with_sid(sub: &str, sid: &str) -> Claims {
        Claims {
            sid: Some(sid.into()),
            ..claims(sub, Some(NOW - 10.0))
        }
    }

    #[test]
    fn one_round_trip_reads_token_user_and_session() {
        let store = MemoryStore::default();
        let reads = |store: &MemoryStore, claims: &Claims| {
            let keys = std::cell::RefCell::new(Vec::new());
            let recording = Recording(store, &keys);
            let status = block_on(check(&recording, "t1", claims));
            (status, keys.into_inner())
        };
        let (status, keys) = reads(&store, &with_sid("alice", "s-1"));
        assert_eq!(status, Ok(Status::Active));
        assert_eq!(keys, [["v1:jti:t1", "v1:sub:alice", "v1:sid:s-1"]]);
        let (_, keys) = reads(&store, &claims("alice", Some(NOW)));
        assert_eq!(keys, [["v1:jti:t1", "v1:sub:alice"]]);
        let no_sub = Claims {
            sub: None,
            ..with_sid("alice", "s-1")
        };
        let (_, keys) = reads(&store, &no_sub);
        assert_eq!(keys, [["v1:jti:t1", "v1:sid:s-1"]]);
        let empty_sid = with_sid("alice", "");
        let (_, keys) = reads(&store, &empty_sid);
        assert_eq!(
            keys,
            [["v1:jti:t1", "v1:sub:alice"]],
            "an empty sid is none"
        );
    }

    /// Records the keys of every bulk get.
    struct Recording<'a>(&'a MemoryStore, &'a std::cell::RefCell<Vec<Vec<String>>>);

    impl RevocationStore for Recording<'_> {
        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
            self.1.borrow_mut().push(keys.to_vec());
            self.0.get_many(keys).await
        }
        async fn put(&self, k: &str, v: &str, e: Option<u64>) -> Result<(), StoreError> {
            self.0.put(k, v, e).await
        }
        async fn pause(&self, millis: u32) {
            self.0.pause(millis).await
        }
    }

    #[test]
    fn a_revoked_session_revokes_every_token_carrying_it() {
        let store = MemoryStore::default();
        let expires = block_on(revoke_session(
            &store,
            To::Everywhere(None),
            "s-1",
            RevokedBy::Logout,
            NOW,
            Lifetimes {
                leeway_seconds: 30,
                max_token_age_seconds: None,
                session_lifetime_seconds: 3600,
            },
        ))
        .unwrap();
        assert_eq!(expires, 1_700_000_001 + 3630);
        let (value, expiry) = store.entries.borrow()["v1:sid:s-1"].clone();
        assert_eq!(value, r#"{"at":1700000000,"by":"logout"}"#);
        assert_eq!(expiry, Some(expires));
        assert_eq!(
            block_on(check(&store, "a", &with_sid("alice", "s-1"))),
            Ok(Status::Revoked(RevokedBy::Session))
        );
        // Issued after the revocation too: the session is over.
        let later = Claims {
            iat: Some(NOW + 100.0),
            ..with_sid("alice", "s-1")
        };
        assert_eq!(
            block_on(check(&store, "b", &later)),
            Ok(Status::Revoked(RevokedBy::Session))
        );
        // Another session of the same user, and a token without sid, live on.
        assert_eq!(
            block_on(check(&store, "c", &with_sid("alice", "s-2"))),
            Ok(Status::Active)
        );
        assert_eq!(
            block_on(check(&store, "d", &claims("alice", Some(NOW)))),
            Ok(Status::Active)
        );
        // The token's own entry names its own reason first.
        block_on(revoke_token(
            &store,
            To::Everywhere(None),
            "a",
            Some(NOW + 60.0),
            RevokedBy::Admin,
            NOW,
            lifetimes(0, None),
        ))
        .unwrap();
        assert_eq!(
            block_on(check(&store, "a", &with_sid("alice", "s-1"))),
            Ok(Status::Revoked(RevokedBy::Admin))
        );
        // Garbage in a session entry still revokes.
        block_on(store.put("v1:sid:s-3", "garbage", None)).unwrap();
        assert_eq!(
            block_on(check(&store, "e", &with_sid("alice", "s-3"))),
            Ok(Status::Revoked(RevokedBy::Session))
        );
        // A short lifetime still gets KV's minimum.
        assert_eq!(session_entry_expiry(NOW, 10, 0), 1_700_000_001 + 60);
        assert_eq!(
            session_key(&"s".repeat(300)).len(),
            "v1:sid:sha256:".len() + 43
        );
    }

    #[test]
    fn a_session_read_of_the_wrong_length_fails_closed() {
        for miscount in [|n: usize| n - 1, |n: usize| n + 1] {
            assert_eq!(
                block_on(check(
                    &MiscountingStore(miscount),
                    "t",
                    &with_sid("alice", "s-1")
                )),
                Err(GateError::RevocationUnavailable)
            );
        }
    }

    #[test]
    fn a_cut_off_may_be_set_in_the_past() {
        let store = MemoryStore::default();
        let cut = block_on(cut_off_user_at(
            &store,
            "alice",
            NOW - 100.0,
            NOW,
            lifetimes(0, Some(600)),
        ))
        .unwrap();
        assert_eq!(cut, 1_699_999_900.5);
        let (value, expiry) = store.entries.borrow()["v1:sub:alice"].clone();
        assert_eq!(value, "1699999900.500");
        assert_eq!(expiry, Some(1_700_000_001 + 600), "counted from now");
        assert_eq!(
            block_on(check(&store, "a", &claims("alice", Some(NOW - 101.0)))),
            Ok(Status::Revoked(RevokedBy::UserCutOff))
        );
        assert_eq!(
            block_on(check(&store, "b", &claims("alice", Some(NOW - 99.0)))),
            Ok(Status::Active)
        );
    }

    #[test]
    fn long_ids_are_hashed_to_fit_kv_keys() {
        let long = "x".repeat(5000);
        let key = token_key(&long);
        assert!(key.len() < 512 && key.starts_with("v1:jti:sha256:"));
        assert_eq!(token_key("abc"), "v1:jti:abc");
        assert_eq!(user_key("alice"), "v1:sub:alice");
    }
}
