//! Refresh-token rotation with reuse detection (RFC 9700 section 4.14,
//! OAuth 2.1): every refresh spends its token, and a spent token presented
//! again was stolen or replayed, so its whole family is revoked.
//!
//! Spending must be atomic worldwide, which KV cannot give (two locations
//! can both read "unspent"). It happens in the user's Durable Object
//! (binding `SESSIONS`, one object per `sub`), which runs [`plan`] on what
//! it holds and stores the writes it returns, with no other request in
//! between. The object also holds every revocation naming its user (the
//! same entries as KV, [`crate::revocation`]), so a spend sees a logout
//! acknowledged a moment ago anywhere in the world.
//!
//! Object entries (besides the revocation entries), plain text:
//! - `v1:spent:<token id>` = `<when, Unix ms> <family>`: a spent refresh
//!   token, until it expires (`exp` + twice the leeway: the gateways'
//!   clocks, and the object's).
//! - `v1:latest:<family>` = `<when, Unix ms> <token id>`: the most recently
//!   spent token of a family (`sid:<sid>`, or `user` for tokens without
//!   `sid`), for the grace window; it expires with that token.
//!
//! Requests, plans and outcomes cross between the gateway, the object and
//! the wasm module as flat lists of strings ([`SpendRequest::to_fields`],
//! [`Plan::to_fields`]) rather than JSON: serde code for them would cost
//! more wasm than everything else this module does.

use serde::Deserialize;

use crate::clock::NumericDate;
use crate::config::Config;
use crate::error::GateError;
use crate::form::{form_decode, media_type, FORM_CONTENT_TYPE, MAX_BODY_BYTES};
use crate::revocation::{
    bounded, cut_off_after, cut_off_expiry, format_cut_off, session_entry, session_entry_expiry,
    session_key, user_key, LookupKeys, MemoryStore, RevocationStore, RevokedBy, Status, StoreError,
    MAX_ENTRY_SECONDS,
};
use crate::verify::Verified;

pub const KEY_PREFIX_SPENT: &str = "v1:spent:";
pub const KEY_PREFIX_LATEST: &str = "v1:latest:";

/// One entry to write, in the object and (for a reuse) in KV.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// Unix seconds; `None`: kept until overwritten.
    pub expires_at: Option<u64>,
}

/// What the gateway asks the user's object to do with a verified refresh
/// token. Carries everything [`plan`] needs, so the object knows no
/// configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRequest {
    pub token_id: String,
    pub sub: String,
    pub sid: Option<String>,
    pub iat: Option<NumericDate>,
    /// When the spent marker may go: the token's `exp` plus leeway.
    pub expires_at: u64,
    pub grace_seconds: u64,
    /// The entry that revokes the token's family, written on reuse.
    pub on_reuse: Entry,
}

/// The object's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendOutcome {
    /// Presented for the first time: now spent. Forward.
    Spent,
    /// The latest spent token of its family again, within the grace
    /// window (a client retrying after a lost response). Forward.
    Retried,
    /// A spent token again: its family is now revoked in the object; the
    /// gateway writes the same entry to KV and refuses.
    Reused,
    /// Revoked already (the token, its session or its user).
    Revoked,
}

impl SpendOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SpendOutcome::Spent => "spent",
            SpendOutcome::Retried => "retried",
            SpendOutcome::Reused => "reused",
            SpendOutcome::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<SpendOutcome> {
        [
            SpendOutcome::Spent,
            SpendOutcome::Retried,
            SpendOutcome::Reused,
            SpendOutcome::Revoked,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == text)
    }
}

/// What the object must store, and answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub outcome: SpendOutcome,
    pub writes: Vec<Entry>,
}

impl Plan {
    /// `[outcome, key, value, expires_at or "", key, ...]`.
    pub fn to_fields(&self) -> Vec<String> {
        let mut fields = vec![self.outcome.as_str().to_owned()];
        for write in &self.writes {
            fields.push(write.key.clone());
            fields.push(write.value.clone());
            fields.push(
                write
                    .expires_at
                    .map_or_else(String::new, |at| at.to_string()),
            );
        }
        fields
    }
}

/// `<when, Unix ms> <text>`: the value of a spent or latest marker.
fn marker(now: NumericDate, text: &str) -> String {
    format!("{} {text}", (now.max(0.0) * 1000.0).round() as u64)
}

/// A marker's time (seconds) and text; `None` when unreadable.
fn read_marker(value: &str) -> Option<(NumericDate, &str)> {
    let (millis, text) = value.split_once(' ')?;
    Some((millis.parse::<u64>().ok()? as f64 / 1000.0, text))
}

impl SpendRequest {
    /// The request for a verified refresh token, which must carry `jti`
    /// and `sub`: without them it cannot be spent, nor its family found.
    pub fn new(
        verified: &Verified,
        config: &Config,
        grace_seconds: u64,
        now: NumericDate,
    ) -> Result<SpendRequest, GateError> {
        let claims = &verified.claims;
        let present = |claim: &Option<String>| claim.as_deref().is_some_and(|v| !v.is_empty());
        let (true, true, Some(sub)) = (present(&claims.sub), present(&claims.jti), &claims.sub)
        else {
            return Err(GateError::ClaimsMissing(
                "a refresh token must carry jti and sub",
            ));
        };
        let leeway = config.leeway_seconds;
        let sid = claims.session().map(str::to_owned);
        let on_reuse = match &sid {
            Some(sid) => Entry {
                key: session_key(sid),
                value: session_entry(RevokedBy::RefreshReuse, now),
                expires_at: Some(session_entry_expiry(
                    now,
                    config.session_lifetime_seconds,
                    leeway,
                )),
            },
            None => Entry {
                key: user_key(sub),
                value: format_cut_off(cut_off_after(now)),
                expires_at: cut_off_expiry(now, config.max_token_age_seconds, leeway),
            },
        };
        // Unlike a KV entry, an object entry may be short-lived: it goes
        // when the token could no longer be presented anyway (`exp` plus the
        // gateways' leeway), plus the leeway once more for the object's own
        // clock, which may run ahead of theirs by as much.
        let now_s = now.max(0.0).ceil() as u64;
        let lasts = leeway.saturating_mul(2);
        let expires_at = claims
            .exp
            .map_or(now_s, |exp| {
                (exp.max(0.0).ceil() as u64).saturating_add(lasts)
            })
            .clamp(now_s, now_s.saturating_add(MAX_ENTRY_SECONDS));
        Ok(SpendRequest {
            token_id: verified.identity.token_id.clone(),
            sub: sub.clone(),
            sid,
            iat: claims.iat,
            expires_at,
            grace_seconds,
            on_reuse,
        })
    }

    /// The request as a flat list of strings, for the object:
    /// `[token_id, sub, sid or "", iat or "", expires_at, grace_seconds,
    /// reuse key, reuse value, reuse expires_at or ""]`.
    pub fn to_fields(&self) -> Vec<String> {
        let optional = |value: Option<String>| value.unwrap_or_default();
        vec![
            self.token_id.clone(),
            self.sub.clone(),
            optional(self.sid.clone()),
            optional(self.iat.and_then(|iat| serde_json::to_string(&iat).ok())),
            self.expires_at.to_string(),
            self.grace_seconds.to_string(),
            self.on_reuse.key.clone(),
            self.on_reuse.value.clone(),
            optional(self.on_reuse.expires_at.map(|at| at.to_string())),
        ]
    }

    /// [`SpendRequest::to_fields`] read back; `None` for anything else.
    pub fn from_fields(fields: &[String]) -> Option<SpendRequest> {
        let [token_id, sub, sid, iat, expires_at, grace, key, value, reuse_expires] = fields else {
            return None;
        };
        let optional = |text: &String| (!text.is_empty()).then(|| text.clone());
        let number = |text: &String| text.parse::<u64>().ok();
        let iat = match iat.as_str() {
            "" => None,
            text => Some(crate::revocation::parse_cut_off(text).ok()?),
        };
        let reuse_expires = match reuse_expires.as_str() {
            "" => None,
            _ => Some(number(reuse_expires)?),
        };
        Some(SpendRequest {
            token_id: token_id.clone(),
            sub: sub.clone(),
            sid: optional(sid),
            iat,
            expires_at: number(expires_at)?,
            grace_seconds: number(grace)?,
            on_reuse: Entry {
                key: key.clone(),
                value: value.clone(),
                expires_at: reuse_expires,
            },
        })
    }

    fn family(&self) -> String {
        match &self.sid {
            Some(sid) => format!("sid:{sid}"),
            None => "user".to_owned(),
        }
    }

    fn lookup_keys(&self) -> LookupKeys {
        LookupKeys::new(&self.token_id, Some(&self.sub), self.sid.as_deref())
    }

    fn spent_key(&self) -> String {
        bounded(KEY_PREFIX_SPENT, &self.token_id)
    }

    fn latest_key(&self) -> String {
        bounded(KEY_PREFIX_LATEST, &self.family())
    }

    /// The keys [`plan`] needs, in the order it expects their values: the
    /// spent marker, the family's latest marker, the revocation entries.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = vec![self.spent_key(), self.latest_key()];
        keys.extend(self.lookup_keys().keys);
        keys
    }
}

/// The decision, run inside the user's object on the values it holds for
/// [`SpendRequest::keys`], at the object's `now`. Revoked first; then
/// unspent (spend it), the latest within the grace window (let it
/// through again), or reused (revoke the family). A grace window of 0
/// lets nothing through twice, not even within the same millisecond.
pub fn plan(
    request: &SpendRequest,
    mut values: Vec<Option<String>>,
    now: NumericDate,
) -> Result<Plan, GateError> {
    let lookup = request.lookup_keys();
    if values.len() != 2 + lookup.keys.len() {
        return Err(GateError::RevocationUnavailable);
    }
    let rest = values.split_off(2);
    let (spent, latest) = (values[0].take(), values[1].take());
    if let Status::Revoked(_) = lookup.interpret(rest, request.iat)?.status() {
        return Ok(Plan {
            outcome: SpendOutcome::Revoked,
            writes: Vec::new(),
        });
    }
    if spent.is_none() {
        let family = request.family();
        let entry = |key: &str, value: String| Entry {
            key: key.to_owned(),
            value,
            expires_at: Some(request.expires_at),
        };
        return Ok(Plan {
            outcome: SpendOutcome::Spent,
            writes: vec![
                entry(&request.spent_key(), marker(now, &family)),
                entry(&request.latest_key(), marker(now, &request.token_id)),
            ],
        });
    }
    // An unreadable latest marker counts as someone else's: fail safe.
    let latest = latest.as_deref().and_then(read_marker);
    let within_grace = latest.is_some_and(|(at, token_id)| {
        token_id == request.token_id
            && request.grace_seconds > 0
            && now - at <= request.grace_seconds as f64
    });
    Ok(if within_grace {
        Plan {
            outcome: SpendOutcome::Retried,
            writes: Vec::new(),
        }
    } else {
        Plan {
            outcome: SpendOutcome::Reused,
            writes: vec![request.on_reuse.clone()],
        }
    })
}

/// A refresh request's body as the adapter read it.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub bytes: &'a [u8],
}

/// The `refresh_token` form field or JSON member of a request body, if
/// there is one. The origin must read the very token we spend, so a body
/// we cannot read the way an origin might is refused (400) rather than
/// passed on unread: an encoded body, a media type other than a form or
/// JSON, a malformed one. Member and field names match in any letter case
/// (ASP.NET binds them so); several must name the same token.
pub fn from_body(body: Body<'_>) -> Result<Option<String>, GateError> {
    let unreadable =
        GateError::BodyUnreadable("the refresh route takes a form or JSON body, at most 64 KiB");
    if body.bytes.len() > MAX_BODY_BYTES {
        return Err(unreadable);
    }
    if body.bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if body
        .content_encoding
        .is_some_and(|encoding| !encoding.trim().eq_ignore_ascii_case("identity"))
    {
        return Err(unreadable);
    }
    let found = match media_type(body.content_type).as_deref() {
        Some(FORM_CONTENT_TYPE) => form_fields(body.bytes),
        Some(json) if json == "application/json" || json.ends_with("+json") => {
            serde_json::from_slice::<JsonMembers>(body.bytes)
                .map(|members| members.0)
                .ok()
        }
        _ => None,
    };
    one_of(found.ok_or(unreadable)?)
}

/// The one token a request names, wherever it names it (`REFRESH_COOKIE`,
/// the body, `Authorization`): two different ones are refused, as a proxy
/// and an origin could each pick another.
pub fn one_token<'a>(
    candidates: impl IntoIterator<Item = Option<&'a str>>,
) -> Result<&'a str, GateError> {
    let mut chosen: Option<&str> = None;
    for candidate in candidates.into_iter().flatten() {
        match chosen {
            Some(seen) if seen != candidate => return Err(GateError::TokenAmbiguous),
            _ => chosen = Some(candidate),
        }
    }
    chosen.ok_or(GateError::TokenMissing)
}

fn one_of(values: Vec<String>) -> Result<Option<String>, GateError> {
    let first = values.first().cloned();
    match values.iter().all(|value| Some(value) == first.as_ref()) {
        true => Ok(first),
        false => Err(GateError::TokenAmbiguous),
    }
}

/// Every `refresh_token` field of a form; `None` when a name or value is
/// not encoded right.
fn form_fields(body: &[u8]) -> Option<Vec<String>> {
    let mut found = Vec::new();
    for pair in body.split(|&b| b == b'&') {
        let at = pair.iter().position(|&b| b == b'=').unwrap_or(pair.len());
        if form_decode(&pair[..at])?.eq_ignore_ascii_case("refresh_token") {
            found.push(form_decode(pair.get(at + 1..).unwrap_or_default())?);
        }
    }
    Some(found)
}

/// Every `refresh_token` member of a JSON object (names decoded, any
/// letter case); a member that is not a string, or a body that is not an
/// object, fails to parse.
struct JsonMembers(Vec<String>);

impl<'de> Deserialize<'de> for JsonMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = JsonMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonMembers, A::Error> {
                let mut found = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name.eq_ignore_ascii_case("refresh_token") {
                        found.push(map.next_value::<String>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(JsonMembers(found))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// The per-user object's spend: a [`RevocationStore`] whose objects also
/// spend refresh tokens. Kept apart from the store so that the revocation
/// layer knows nothing of refresh tokens.
#[allow(async_fn_in_trait)] // Worker futures are !Send; no Send bound wanted.
pub trait SpendStore: RevocationStore {
    /// Spends a refresh token in `user`'s object, atomically: the object
    /// runs [`plan`] on what it holds and answers its outcome.
    async fn user_spend(
        &self,
        user: &str,
        request: &SpendRequest,
    ) -> Result<SpendOutcome, StoreError>;
}

impl SpendStore for MemoryStore {
    async fn user_spend(
        &self,
        user: &str,
        request: &SpendRequest,
    ) -> Result<SpendOutcome, StoreError> {
        // Across the same flat fields as to a real object.
        let request = SpendRequest::from_fields(&request.to_fields())
            .ok_or_else(|| StoreError("unreadable spend request".into()))?;
        let request = &request;
        let values = self.user_get_many(user, &request.keys()).await?;
        // The object's clock: the memory store's objects use the request's
        // own instant, which tests set.
        let now = self.object_now.get();
        let plan = plan(request, values, now).map_err(|e| StoreError(e.to_string()))?;
        for write in plan.writes {
            self.user_put(user, &write.key, &write.value, write.expires_at)
                .await?;
        }
        Ok(plan.outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{config_with, TEST_SECRET};
    use crate::token::Claims;
    use crate::verify::Identity;

    const NOW: f64 = 1_700_000_000.0;

    fn refresh_token(id: &str, sid: Option<&str>) -> Verified {
        Verified {
            identity: Identity {
                subject: Some("alice".into()),
                issuer: None,
                token_id: id.into(),
                claims_b64: String::new(),
            },
            claims: Claims {
                sub: Some("alice".into()),
                jti: Some(id.into()),
                sid: sid.map(str::to_owned),
                iat: Some(NOW - 10.0),
                exp: Some(NOW + 3600.0),
                ..Claims::default()
            },
        }
    }

    fn request(id: &str, sid: Option<&str>, grace: u64) -> SpendRequest {
        let config = config_with(&[("JWT_SECRET", TEST_SECRET)]).unwrap();
        SpendRequest::new(&refresh_token(id, sid), &config, grace, NOW).unwrap()
    }

    /// A user's object: applies each plan's writes, as the Durable Object does.
    #[derive(Default)]
    struct Object(std::collections::HashMap<String, String>);

    impl Object {
        fn spend(&mut self, request: &SpendRequest, now: f64) -> SpendOutcome {
            let values = request
                .keys()
                .iter()
                .map(|k| self.0.get(k).cloned())
                .collect();
            let plan = plan(request, values, now).unwrap();
            for write in plan.writes {
                self.0.insert(write.key, write.value);
            }
            plan.outcome
        }
    }

    #[test]
    fn a_token_is_spent_once_and_its_reuse_revokes_its_session() {
        let mut object = Object::default();
        let first = request("r1", Some("s1"), 0);
        assert_eq!(object.spend(&first, NOW), SpendOutcome::Spent);
        assert_eq!(
            object.spend(&request("r2", Some("s1"), 0), NOW + 1.0),
            SpendOutcome::Spent
        );
        // Same millisecond, no grace: a replay all the same.
        assert_eq!(object.spend(&first, NOW + 1.0), SpendOutcome::Reused);
        assert!(object.0.contains_key("v1:sid:s1"));
        // The whole family is gone, the newest token included.
        assert_eq!(
            object.spend(&request("r3", Some("s1"), 0), NOW + 2.0),
            SpendOutcome::Revoked
        );
        // Another session of the same user lives on.
        assert_eq!(
            object.spend(&request("q1", Some("s2"), 0), NOW + 2.0),
            SpendOutcome::Spent
        );
    }

    #[test]
    fn without_sid_reuse_cuts_off_the_whole_user() {
        let mut object = Object::default();
        let old = request("r1", None, 0);
        object.spend(&old, NOW);
        assert_eq!(object.spend(&old, NOW + 5.0), SpendOutcome::Reused);
        assert_eq!(
            object.0["v1:sub:alice"], "1700000001.000",
            "the end of the second the token was presented in"
        );
        assert_eq!(
            object.spend(&request("r9", Some("s9"), 0), NOW + 6.0),
            SpendOutcome::Revoked
        );
    }

    #[test]
    fn grace_covers_only_the_latest_token_and_only_for_its_window() {
        let mut object = Object::default();
        let (r1, r2) = (request("r1", Some("s"), 10), request("r2", Some("s"), 10));
        object.spend(&r1, NOW);
        assert_eq!(object.spend(&r1, NOW + 3.0), SpendOutcome::Retried);
        object.spend(&r2, NOW + 4.0);
        assert_eq!(object.spend(&r2, NOW + 14.0), SpendOutcome::Retried);
        // r1 is no longer the latest: never again, however soon.
        assert_eq!(object.spend(&r1, NOW + 5.0), SpendOutcome::Reused);

        let mut object = Object::default();
        object.spend(&r1, NOW);
        assert_eq!(object.spend(&r1, NOW + 10.5), SpendOutcome::Reused);
    }

    #[test]
    fn spent_markers_expire_with_the_token_plus_twice_the_leeway() {
        let config =
            config_with(&[("JWT_SECRET", TEST_SECRET), ("JWT_LEEWAY_SECONDS", "5")]).unwrap();
        let request = SpendRequest::new(&refresh_token("r", None), &config, 0, NOW).unwrap();
        assert_eq!(request.expires_at, NOW as u64 + 3600 + 5 + 5);
        let plan = plan(&request, vec![None; request.keys().len()], NOW).unwrap();
        assert!(plan
            .writes
            .iter()
            .all(|w| w.expires_at == Some(request.expires_at)));
    }

    #[test]
    fn a_token_without_jti_or_sub_is_no_refresh_token() {
        let config = config_with(&[("JWT_SECRET", TEST_SECRET)]).unwrap();
        for strip in [|c: &mut Claims| c.jti = None, |c: &mut Claims| c.sub = None] {
            let mut token = refresh_token("r", None);
            strip(&mut token.claims);
            assert!(matches!(
                SpendRequest::new(&token, &config, 0, NOW),
                Err(GateError::ClaimsMissing(_))
            ));
        }
    }

    #[test]
    fn requests_and_plans_cross_as_flat_fields() {
        let mut request = request("r1", Some("s1"), 7);
        request.iat = Some(NOW - 0.25);
        assert_eq!(
            SpendRequest::from_fields(&request.to_fields()),
            Some(request.clone())
        );
        request.sid = None;
        request.iat = None;
        request.on_reuse.expires_at = None;
        assert_eq!(
            SpendRequest::from_fields(&request.to_fields()),
            Some(request.clone())
        );
        let mut short = request.to_fields();
        short.pop();
        assert_eq!(SpendRequest::from_fields(&short), None);
        let plan = plan(&request, vec![None; request.keys().len()], NOW).unwrap();
        let fields = plan.to_fields();
        assert_eq!(fields.len(), 7);
        assert_eq!(SpendOutcome::parse(&fields[0]), Some(SpendOutcome::Spent));
        assert_eq!(SpendOutcome::parse("spent?"), None);
    }

    #[test]
    fn a_short_or_unreadable_answer_fails_closed() {
        let request = request("r", None, 0);
        assert_eq!(
            plan(&request, vec![None], NOW),
            Err(GateError::RevocationUnavailable)
        );
        let mut values = vec![None; request.keys().len()];
        *values.last_mut().unwrap() = Some("not a number".into());
        assert_eq!(
            plan(&request, values, NOW),
            Err(GateError::RevocationUnavailable)
        );
    }

    fn body<'a>(content_type: &'a str, bytes: &'a [u8]) -> Body<'a> {
        Body {
            content_type: Some(content_type),
            content_encoding: None,
            bytes,
        }
    }

    #[test]
    fn the_token_comes_from_a_form_field_or_a_json_member_in_any_case() {
        let form = "application/x-www-form-urlencoded; charset=utf-8";
        let json = "application/json";
        let token = |b| from_body(b);
        assert_eq!(
            token(body(
                form,
                b"grant_type=refresh_token&refresh_token=a%2Eb.c"
            )),
            Ok(Some("a.b.c".into()))
        );
        assert_eq!(
            token(body(form, b"Refresh_Token=x&refresh_token=x")),
            Ok(Some("x".into()))
        );
        assert_eq!(token(body(form, b"grant_type=x")), Ok(None));
        assert_eq!(
            token(body(json, br#"{"refresh_token":"x.y.z","n":[1,{}]}"#)),
            Ok(Some("x.y.z".into()))
        );
        assert_eq!(
            token(body(json, br#"{"REFRESH_TOKEN":"x"}"#)),
            Ok(Some("x".into()))
        );
        assert_eq!(
            token(body(json, br#"{"refresh\u005ftoken":"x"}"#)),
            Ok(Some("x".into()))
        );
        assert_eq!(token(body(json, b" ")), Ok(None));
        for ambiguous in [
            body(form, b"refresh_token=a&REFRESH_TOKEN=b"),
            body(json, br#"{"refresh_token":"a","Refresh_Token":"b"}"#),
        ] {
            assert_eq!(
                token(ambiguous),
                Err(GateError::TokenAmbiguous),
                "{ambiguous:?}"
            );
        }
    }

    #[test]
    fn a_body_an_origin_might_read_otherwise_is_refused() {
        let unreadable = |b: Body<'_>| matches!(from_body(b), Err(GateError::BodyUnreadable(_)));
        let json = "application/json";
        assert!(unreadable(body("text/plain", b"refresh_token=a")));
        assert!(unreadable(body("multipart/form-data; boundary=x", b"--x")));
        assert!(unreadable(body(
            json,
            b"\xef\xbb\xbf{\"refresh_token\":\"a\"}"
        )));
        assert!(unreadable(body(json, br#"{"refresh_token":5}"#)));
        assert!(unreadable(body(json, b"[1]")));
        assert!(unreadable(body(
            "application/x-www-form-urlencoded",
            b"refresh_token=%zz"
        )));
        assert!(unreadable(Body {
            content_encoding: Some("gzip"),
            ..body(json, br#"{"refresh_token":"a"}"#)
        }));
        assert!(unreadable(Body {
            content_type: None,
            ..body(json, b"x")
        }));
        assert!(unreadable(body(json, &vec![b' '; MAX_BODY_BYTES + 1])));
    }

    #[test]
    fn every_source_must_name_the_same_token() {
        assert_eq!(one_token([Some("a"), None, Some("a")]), Ok("a"));
        assert_eq!(one_token([None, Some("b"), None]), Ok("b"));
        assert_eq!(
            one_token([Some("a"), Some("b"), None]),
            Err(GateError::TokenAmbiguous)
        );
        assert_eq!(one_token([None, None, None]), Err(GateError::TokenMissing));
    }
}
