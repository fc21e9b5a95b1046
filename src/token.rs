//! Finding the token on a request and taking it apart, before any trust.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::base64url;
use crate::clock::NumericDate;
use crate::error::GateError;

/// Picks the token from `Authorization: Bearer` and from the configured
/// cookie. `Ok(None)`: no token at all. The same token in both places is
/// fine; two different ones are refused, as Kong does against smuggling.
pub fn extract<'a>(
    authorization: Option<&'a str>,
    cookie_header: Option<&'a str>,
    cookie_name: Option<&'a str>,
) -> Result<Option<&'a str>, GateError> {
    let from_header = authorization.and_then(bearer).transpose()?;
    let mut from_cookie: Option<&str> = None;
    if let (Some(header), Some(name)) = (cookie_header, cookie_name) {
        for value in cookie_values(header, name) {
            match from_cookie {
                Some(seen) if seen != value => return Err(GateError::TokenAmbiguous),
                _ => from_cookie = Some(value),
            }
        }
    }
    match (from_header, from_cookie) {
        (Some(h), Some(c)) if h != c => Err(GateError::TokenAmbiguous),
        (Some(token), _) | (None, Some(token)) => Ok(Some(token)),
        (None, None) => Ok(None),
    }
}

/// `Some(Ok(token))` for a Bearer credential, `None` for another scheme
/// (Basic, ...), which is the origin's business, not ours.
fn bearer(header: &str) -> Option<Result<&str, GateError>> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    // Bytes, not chars: a char search decodes UTF-8 all along the token.
    if token.is_empty() || token.bytes().any(|b| b == b' ' || b == b',') {
        // Several Authorization headers are joined with ", " by the runtime.
        return Some(Err(GateError::TokenMalformed));
    }
    Some(Ok(token))
}

fn cookie_values<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header.split(';').filter_map(move |pair| {
        let (n, v) = pair.split_once('=')?;
        (n.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// The header members we act on. `jku`, `x5u`, `x5c` and an embedded
/// `jwk` are never looked at, since keys come from configuration only
/// (RFC 8725 3.10); what is refused in a header is in [`Header`]'s
/// `Deserialize`.
#[derive(Debug, Default)]
pub struct Header {
    pub alg: String,
    /// `kid`
    pub key_id: Option<String>,
    /// `typ`
    pub token_type: Option<String>,
    /// RFC 7515 4.1.11: we understand no extension, so any `crit` is refused.
    pub crit: Present,
    /// RFC 7797 unencoded payloads would change what was signed.
    pub b64: Present,
}

/// A header is a JSON object with a string `alg`. As jwt-compact reads
/// one: each member at most once; `kid`, `typ`, `jku` and `x5u` strings
/// (or null); `cty` absent, null or `json` (only JSON claims are
/// understood); `x5t` and `x5t#S256` thumbprints of the right size
/// (its `Thumbprint`); any other member any JSON value within serde_json's
/// nesting limit (128 levels), so a header nested thousands deep is refused.
impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Header, D::Error> {
        deserializer.deserialize_map(HeaderMembers)
    }
}

struct HeaderMembers;

impl<'de> serde::de::Visitor<'de> for HeaderMembers {
    type Value = Header;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        use serde::de::Error;
        let mut header = Header::default();
        let mut alg = None;
        let mut seen: Vec<String> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if seen.contains(&name) {
                return Err(A::Error::custom(format_args!("duplicate member {name}")));
            }
            match name.as_str() {
                "alg" => alg = Some(map.next_value::<String>()?),
                "kid" => header.key_id = map.next_value()?,
                "typ" => header.token_type = map.next_value()?,
                "cty" => {
                    let cty: Option<String> = map.next_value()?;
                    if cty.is_some_and(|cty| !cty.eq_ignore_ascii_case("json")) {
                        return Err(A::Error::custom("claims that are not JSON"));
                    }
                }
                "crit" => header.crit = map.next_value()?,
                "b64" => header.b64 = map.next_value()?,
                // Read for their type only.
                "jku" | "x5u" => {
                    map.next_value::<Option<String>>()?;
                }
                "x5t" => {
                    map.next_value::<Option<jwt_compact::Thumbprint<20>>>()?;
                }
                "x5t#S256" => {
                    map.next_value::<Option<jwt_compact::Thumbprint<32>>>()?;
                }
                _ => {
                    map.next_value::<Skipped>()?;
                }
            }
            seen.push(name);
        }
        header.alg = alg.ok_or_else(|| A::Error::missing_field("alg"))?;
        Ok(header)
    }
}

/// Any JSON value, read and dropped through `deserialize_any`, so that
/// serde_json's nesting limit applies: its own way of skipping a value
/// (`IgnoredAny`) has none, and `Value` would build what is dropped.
struct Skipped;

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Skipped, D::Error> {
        deserializer.deserialize_any(Skipped)
    }
}

impl<'de> serde::de::Visitor<'de> for Skipped {
    type Value = Skipped;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_unit<E>(self) -> Result<Skipped, E> {
        Ok(Skipped)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skipped, A::Error> {
        while seq.next_element::<Skipped>()?.is_some() {}
        Ok(Skipped)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Skipped, A::Error> {
        while map.next_entry::<Skipped, Skipped>()?.is_some() {}
        Ok(Skipped)
    }
}

/// Whether a header member was there at all, whatever its value: `Option`
/// would read `"crit": null` as absent, and a member that must not appear
/// must not appear as null either.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Present(pub bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Present, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

/// The `events` member that makes a JWT an OpenID Connect logout token
/// (Back-Channel Logout 1.0, 2.4).
/// RFC 7515 4.1.9: `typ` is a media type, compared case-insensitively, and
/// the `application/` prefix may be left out.
pub fn same_media_type(a: &str, b: &str) -> bool {
    // Compared in place: this runs on every request (the `typ` rule).
    fn short(t: &str) -> &str {
        let t = t.trim();
        match t.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        }
    }
    short(a).eq_ignore_ascii_case(short(b))
}

pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Registered claims, read by us rather than jwt-compact because its
/// timestamps drop fractions, and `iat` must be ordered exactly.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Claims {
    pub exp: Option<NumericDate>,
    pub nbf: Option<NumericDate>,
    pub iat: Option<NumericDate>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub jti: Option<String>,
    pub aud: Option<Audience>,
    /// OIDC session ID: tokens of one sign-in share it (see [`Claims::session`]).
    pub sid: Option<String>,
    /// Security event claims (RFC 8417), kept unparsed: only a logout
    /// token has them, and they are looked at only when present.
    pub events: Option<Box<serde_json::value::RawValue>>,
    /// Whether a `nonce` claim is present at all, whatever its value (null
    /// too): a logout token must not have one.
    #[serde(default, rename = "nonce", deserialize_with = "present")]
    pub has_nonce: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(value).map(|_| true)
}

impl Claims {
    /// The token's session, if it has one. An empty `sid` names no session
    /// (as an empty `jti` names no ID, [`token_id`]).
    pub fn session(&self) -> Option<&str> {
        self.sid.as_deref().filter(|sid| !sid.is_empty())
    }

    /// Does `events` carry the back-channel logout event, whatever its
    /// value? Such a token is a logout token and is never accepted as an
    /// access token (cross-JWT confusion, RFC 8725 3.11).
    pub fn has_logout_event(&self) -> bool {
        self.logout_event().is_some()
    }

    /// The value of the back-channel logout member of `events`, unparsed,
    /// when `events` is a JSON object that has it.
    pub fn logout_event(&self) -> Option<Box<serde_json::value::RawValue>> {
        let events = self.events.as_deref()?;
        serde_json::from_str::<LogoutEvent>(events.get()).ok()?.0
    }
}

/// Reads an `events` object for one member, skipping the others (a map
/// type would cost its code in the wasm build for one look-up).
struct LogoutEvent(Option<Box<serde_json::value::RawValue>>);

impl<'de> Deserialize<'de> for LogoutEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = LogoutEvent;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<LogoutEvent, A::Error> {
                let mut found = None;
                while let Some(name) = map.next_key::<String>()? {
                    if name == BACKCHANNEL_LOGOUT_EVENT {
                        found = Some(map.next_value()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(LogoutEvent(found))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains_any(&self, accepted: &[String]) -> bool {
        match self {
            Audience::One(a) => accepted.iter().any(|x| x == a),
            Audience::Many(list) => list.iter().any(|a| accepted.iter().any(|x| x == a)),
        }
    }
}

/// A token taken apart but not yet trusted.
pub struct Parsed<'a> {
    pub header: Header,
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The payload segment exactly as sent (base64url of the claims JSON).
    pub payload_b64: &'a str,
    /// The payload decoded: the claims' JSON text, not yet read.
    payload: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Parsed<'_> {
    /// The registered claims. Anything but a JSON object with well-typed
    /// registered claims is malformed.
    pub fn claims(&self) -> Result<Claims, GateError> {
        let claims: Claims = json_object(&self.payload)?;
        if [claims.exp, claims.nbf, claims.iat]
            .iter()
            .flatten()
            .any(|t| !t.is_finite())
        {
            return Err(GateError::TokenMalformed);
        }
        Ok(claims)
    }
}

/// A header or claims set: a JSON object (serde would also take an array
/// for a struct), and UTF-8 throughout (RFC 7519 7.2; serde only checks the
/// strings it reads, not the unknown members it skips).
fn json_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, GateError> {
    let text = std::str::from_utf8(bytes).map_err(|_| GateError::TokenMalformed)?;
    if !text.trim_start().starts_with('{') {
        return Err(GateError::TokenMalformed);
    }
    serde_json::from_str(text).map_err(|_| GateError::TokenMalformed)
}

/// Size first, then structure: a compact JWS (three base64url segments)
/// with a JSON object as header. The claims are read later
/// ([`Parsed::claims`]), normally only once the signature verified.
pub fn parse(raw: &str, max_bytes: usize) -> Result<Parsed<'_>, GateError> {
    if raw.len() > max_bytes {
        return Err(GateError::TokenTooLarge);
    }
    let (signing_input, signature) = raw.rsplit_once('.').ok_or(GateError::TokenMalformed)?;
    let (header, payload_b64) = signing_input
        .split_once('.')
        .ok_or(GateError::TokenMalformed)?;
    if payload_b64.contains('.') {
        return Err(GateError::TokenMalformed);
    }
    let header: Header = json_object(&base64url::decode(header).ok_or(GateError::TokenMalformed)?)?;
    Ok(Parsed {
        header,
        signing_input,
        payload_b64,
        payload: base64url::decode(payload_b64).ok_or(GateError::TokenMalformed)?,
        signature: base64url::decode(signature).ok_or(GateError::TokenMalformed)?,
    })
}

/// The token's ID: its `jti`, or, when it has none, the base64url SHA-256
/// of its signed part (`header.payload`), so a raw token is never stored or
/// logged. Not of the whole token: an ECDSA signature can be rewritten into
/// a second valid one (s -> n - s), which would give a logged-out token a
/// fresh ID.
pub fn token_id(signing_input: &str, claims: &Claims) -> String {
    match &claims.jti {
        Some(jti) if !jti.is_empty() => jti.clone(),
        _ => Base64UrlUnpadded::encode_string(&Sha256::digest(signing_input.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_cookie_sources() {
        assert_eq!(extract(Some("Bearer abc"), None, None), Ok(Some("abc")));
        assert_eq!(extract(Some("bearer   abc "), None, None), Ok(Some("abc")));
        assert_eq!(extract(Some("Basic dXNlcjpwdw=="), None, None), Ok(None));
        assert_eq!(
            extract(None, Some("a=1; tg=tok; b=2"), Some("tg")),
            Ok(Some("tok"))
        );
        assert_eq!(extract(None, Some("tg=tok"), None), Ok(None));
        assert_eq!(extract(None, Some("xtg=tok"), Some("tg")), Ok(None));
        assert_eq!(extract(None, None, Some("tg")), Ok(None));
    }

    #[test]
    fn same_token_twice_is_fine_different_tokens_are_ambiguous() {
        assert_eq!(
            extract(Some("Bearer t1"), Some("tg=t1"), Some("tg")),
            Ok(Some("t1"))
        );
        assert_eq!(
            extract(Some("Bearer t1"), Some("tg=t2"), Some("tg")),
            Err(GateError::TokenAmbiguous)
        );
        assert_eq!(
            extract(None, Some("tg=t1; tg=t2"), Some("tg")),
            Err(GateError::TokenAmbiguous)
        );
    }

    #[test]
    fn empty_or_joined_bearer_credentials_are_malformed() {
        assert_eq!(
            extract(Some("Bearer"), None, None),
            Err(GateError::TokenMalformed)
        );
        assert_eq!(
            extract(Some("Bearer "), None, None),
            Err(GateError::TokenMalformed)
        );
        assert_eq!(
            extract(Some("Bearer a, Bearer b"), None, None),
            Err(GateError::TokenMalformed)
        );
    }

    #[test]
    fn size_is_checked_before_parsing() {
        let huge = "x".repeat(9000);
        assert_eq!(parse(&huge, 8192).err(), Some(GateError::TokenTooLarge));
        assert_eq!(
            parse(&huge[..100], 8192).err(),
            Some(GateError::TokenMalformed)
        );
    }

    fn header(json: &str) -> Result<Header, GateError> {
        let token = format!(
            "{}.e30.c2ln",
            Base64UrlUnpadded::encode_string(json.as_bytes())
        );
        parse(&token, 65536).map(|parsed| parsed.header)
    }

    #[test]
    fn header_members_are_read_as_jwt_compact_reads_them() {
        let read =
            header(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt","x":[1,{"y":null}]}"#).unwrap();
        assert_eq!(read.alg, "ES256");
        assert_eq!(read.key_id.as_deref(), Some("k1"));
        assert_eq!(read.token_type.as_deref(), Some("at+jwt"));
        assert!(!read.crit.0 && !read.b64.0);
        let nulls = header(r#"{"alg":"HS256","kid":null,"crit":null,"jku":null}"#).unwrap();
        assert_eq!(nulls.key_id, None);
        assert!(nulls.crit.0, "a crit that is there at all counts");
        let escaped = header(r#"{"\u0061lg":"HS256"}"#).unwrap();
        assert_eq!(escaped.alg, "HS256");
        let deep = format!(
            r#"{{"alg":"HS256","x":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let shallow = format!(
            r#"{{"alg":"HS256","x":{}1{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(header(&shallow).is_ok());
        for refused in [
            r#"["HS256"]"#,
            r#"{"kid":"k1"}"#,
            r#"{"alg":"HS256","alg":"none"}"#,
            r#"{"alg":"HS256","\u0061lg":"none"}"#,
            r#"{"alg":"HS256","kid":7}"#,
            r#"{"alg":"HS256","jku":{"keys":[]}}"#,
            r#"{"alg":"HS256","x5t":"AQID"}"#,
            r#"{"alg":"HS256","cty":"cbor"}"#,
            deep.as_str(),
        ] {
            assert_eq!(
                header(refused).err(),
                Some(GateError::TokenMalformed),
                "{refused}"
            );
        }
        assert!(header(r#"{"alg":"HS256","cty":"JSON"}"#).is_ok());
    }

    #[test]
    fn media_types_compare_without_case_or_the_application_prefix() {
        assert!(same_media_type("application/AT+JWT", "at+jwt"));
        assert!(same_media_type(" JWT ", "Application/jwt"));
        assert!(same_media_type("logout+jwt", "logout+jwt"));
        assert!(!same_media_type("application/jwt", "at+jwt"));
        assert!(!same_media_type("application/", "jwt"));
        assert!(!same_media_type("applicationé/jwt", "jwt"));
    }

    #[test]
    fn a_token_has_exactly_three_segments() {
        let head = Base64UrlUnpadded::encode_string(br#"{"alg":"HS256"}"#);
        for raw in [
            format!("{head}.e30"),
            format!("{head}.e30.c2ln.c2ln"),
            format!("{head}..c2ln."),
        ] {
            assert_eq!(
                parse(&raw, 8192).err(),
                Some(GateError::TokenMalformed),
                "{raw}"
            );
        }
        let raw = format!("{head}.e30.c2ln");
        let parsed = parse(&raw, 8192).unwrap();
        assert_eq!(parsed.signature, b"sig".to_vec());
        assert_eq!(parsed.payload_b64, "e30");
        assert_eq!(parsed.signing_input, format!("{head}.e30"));
    }

    #[test]
    fn wrongly_typed_claims_are_malformed() {
        // {"alg":"HS256"} . {"exp":"tomorrow"} . sig
        let token = format!(
            "{}.{}.c2ln",
            Base64UrlUnpadded::encode_string(br#"{"alg":"HS256"}"#),
            Base64UrlUnpadded::encode_string(br#"{"exp":"tomorrow"}"#)
        );
        assert_eq!(
            parse(&token, 8192).and_then(|p| p.claims()).err(),
            Some(GateError::TokenMalformed)
        );
        let not_object = format!(
            "{}.{}.c2ln",
            Base64UrlUnpadded::encode_string(br#"{"alg":"HS256"}"#),
            Base64UrlUnpadded::encode_string(b"[1,2]")
        );
        assert_eq!(
            parse(&not_object, 8192).and_then(|p| p.claims()).err(),
            Some(GateError::TokenMalformed)
        );
    }

    #[test]
    fn invalid_utf8_anywhere_in_the_claims_is_malformed() {
        // A valid `sub`, and an unknown claim holding the byte 0xFF.
        let token = format!(
            "{}.{}.c2ln",
            Base64UrlUnpadded::encode_string(br#"{"alg":"HS256"}"#),
            Base64UrlUnpadded::encode_string(b"{\"sub\":\"a\",\"x\":\"\xff\"}")
        );
        assert_eq!(
            parse(&token, 8192).and_then(|p| p.claims()).err(),
            Some(GateError::TokenMalformed)
        );
    }

    #[test]
    fn sid_and_logout_events_are_read() {
        let read = |payload: &str| {
            let token = format!(
                "{}.{}.c2ln",
                Base64UrlUnpadded::encode_string(br#"{"alg":"HS256"}"#),
                Base64UrlUnpadded::encode_string(payload.as_bytes())
            );
            parse(&token, 8192).and_then(|p| p.claims())
        };
        let claims = read(r#"{"sid":"s-1","exp":1}"#).unwrap();
        assert_eq!(claims.session(), Some("s-1"));
        assert!(!claims.has_logout_event());
        assert!(!claims.has_nonce);
        assert!(read(r#"{"nonce":null}"#).unwrap().has_nonce);
        assert!(read(r#"{"nonce":{"a":[1]}}"#).unwrap().has_nonce);
        let event = read(r#"{"events":{"a":1,"http://schemas.openid.net/event/backchannel-logout":{"x":[]},"b":{}}}"#)
            .unwrap()
            .logout_event()
            .unwrap();
        assert_eq!(event.get(), r#"{"x":[]}"#);
        assert_eq!(read(r#"{"sid":""}"#).unwrap().session(), None);
        assert_eq!(read(r#"{"sid":7}"#).err(), Some(GateError::TokenMalformed));
        let logout =
            read(r#"{"events":{"http://schemas.openid.net/event/backchannel-logout":{}}}"#)
                .unwrap();
        assert!(logout.has_logout_event());
        // Whatever the member's value: its name is what makes it a logout token.
        assert!(
            read(r#"{"events":{"http://schemas.openid.net/event/backchannel-logout":1}}"#)
                .unwrap()
                .has_logout_event()
        );
        // Other events, or events that are no object, are not.
        for other in [
            r#"{"events":{"https://example.com/event":{}}}"#,
            r#"{"events":"http://schemas.openid.net/event/backchannel-logout"}"#,
            r#"{"events":null}"#,
            r#"{"events":[1]}"#,
        ] {
            assert!(!read(other).unwrap().has_logout_event(), "{other}");
        }
    }

    #[test]
    fn token_id_prefers_jti_and_never_returns_the_raw_token() {
        let with_jti = Claims {
            jti: Some("abc-123".into()),
            ..Claims::default()
        };
        assert_eq!(token_id("a.b", &with_jti), "abc-123");
        let derived = token_id("a.b", &Claims::default());
        assert_eq!(
            derived,
            Base64UrlUnpadded::encode_string(&Sha256::digest(b"a.b"))
        );
    }
}
