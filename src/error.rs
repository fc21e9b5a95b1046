//! The one error type. Its `code()`, `status()` and `description()` drive
//! every failure response the gateway sends; codes are a stable contract
//! (README, "Errors") that clients switch on.

use std::cell::Cell;

use serde::Serialize;

/// Every way a request can fail. The description never contains a secret,
/// a token, or an internal detail: those go to the log, not to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateError {
    /// No token was sent (RFC 6750: the challenge then carries no `error`).
    TokenMissing,
    /// The token is not a well-formed compact JWS with a JSON payload.
    TokenMalformed,
    /// The token is longer than `JWT_MAX_TOKEN_BYTES`; it was not parsed.
    TokenTooLarge,
    /// Two different tokens arrived on one request (header and cookie).
    TokenAmbiguous,
    /// The `alg` header is not on the allow-list, or is `none`.
    AlgorithmNotAllowed,
    /// No configured key matches the token (`kid` or algorithm).
    UnknownKey,
    /// The signature does not verify with the key.
    SignatureInvalid,
    /// `exp` is in the past (beyond leeway), or missing.
    TokenExpired,
    /// `nbf` or `iat` is in the future (beyond leeway).
    TokenNotYetValid,
    /// `exp` is further away than a revoked-ID entry can live
    /// ([`crate::revocation::MAX_ENTRY_SECONDS`]), so a logout could not
    /// cover the token's whole life.
    TokenLifetimeTooLong,
    /// `iss` is not one of `JWT_ISSUER`.
    IssuerInvalid,
    /// `aud` contains none of `JWT_AUDIENCE`.
    AudienceInvalid,
    /// The `typ` header does not match `JWT_TYP`.
    TypeInvalid,
    /// The token was revoked (logout, logout-all, password change, admin,
    /// its session, the origin).
    TokenRevoked,
    /// The token carries `sid` but its `iat` is missing or older than
    /// `SESSION_LIFETIME_SECONDS` (+ leeway): a revoked session's entry
    /// lives that long, so an older token of a session could outlive the
    /// entry that revokes it. Code `token_expired`, its own description.
    SessionTooOld,
    /// `REQUIRE_SID` is set and the token has no `sid`: a logout ends only
    /// its session, so a token naming none could not be signed out.
    SidRequired,
    /// The revocation store could not be read or written; fail closed.
    RevocationUnavailable,
    /// The password was changed at the origin but the user cut-off could not
    /// be recorded: old tokens still work, so the client must not see success.
    SessionsNotRevoked,
    /// The origin asked for a revocation (`Tokengate-Revoke`) that could not
    /// be recorded; its response was withheld. Code `sessions_not_revoked`.
    OriginRevocationFailed,
    /// The issuer's signing keys could not be fetched and none are cached.
    KeysUnavailable,
    /// The origin could not be reached.
    OriginUnreachable,
    /// The gateway's configuration is missing or invalid (details are logged).
    Misconfigured,
    /// Admin API: no `ADMIN_TOKEN` is configured, so the API does not exist.
    AdminDisabled,
    /// Admin API: missing or wrong admin token.
    AdminUnauthorized,
    /// A gateway route got a request it cannot act on (bad JSON, wrong fields).
    InvalidRequest,
    /// A route that revokes a user's sessions (password change, logout-all)
    /// got a valid token without `sub`: there is no user to cut off. Same
    /// code as [`GateError::InvalidRequest`], its own description.
    SubjectMissing,
    /// A gateway route was called with a method other than POST.
    MethodNotAllowed,
    /// The back-channel logout route got no valid logout token (OpenID
    /// Connect Back-Channel Logout 1.0, 2.6 and 2.8): 400 `invalid_request`
    /// with this description of what is wrong.
    LogoutTokenInvalid(&'static str),
    /// A refresh token was presented again after it was spent (outside the
    /// grace window for the latest one): it was stolen or replayed, so its
    /// family (session, or the whole user) has been revoked.
    RefreshTokenReused,
    /// A token that verified lacks a claim this route needs (`jti` and
    /// `sub` on the refresh route, `sub` on a strict path). Code
    /// `type_invalid`: it is not the kind of token the route accepts.
    ClaimsMissing(&'static str),
    /// A revocation request names no user while per-user Durable Objects
    /// are bound: the revocation could not reach strict paths at once.
    /// Code `invalid_request`, with the reason.
    UserRequired(&'static str),
    /// A request body the gateway must read (to find a token) but cannot
    /// read as an origin might. Code `invalid_request`, with the reason.
    BodyUnreadable(&'static str),
}

impl GateError {
    pub fn code(self) -> &'static str {
        use GateError::*;
        match self {
            TokenMissing => "token_missing",
            TokenMalformed => "token_malformed",
            TokenTooLarge => "token_too_large",
            TokenAmbiguous => "token_ambiguous",
            AlgorithmNotAllowed => "algorithm_not_allowed",
            UnknownKey => "unknown_key",
            SignatureInvalid => "signature_invalid",
            TokenExpired | SessionTooOld => "token_expired",
            TokenNotYetValid => "token_not_yet_valid",
            TokenLifetimeTooLong => "token_lifetime_too_long",
            IssuerInvalid => "issuer_invalid",
            AudienceInvalid => "audience_invalid",
            TypeInvalid | ClaimsMissing(_) => "type_invalid",
            RefreshTokenReused => "refresh_token_reused",
            TokenRevoked => "token_revoked",
            SidRequired => "sid_required",
            RevocationUnavailable => "revocation_unavailable",
            SessionsNotRevoked | OriginRevocationFailed => "sessions_not_revoked",
            KeysUnavailable => "keys_unavailable",
            OriginUnreachable => "origin_unreachable",
            Misconfigured => "misconfigured",
            AdminDisabled => "not_found",
            AdminUnauthorized => "unauthorized",
            InvalidRequest
            | SubjectMissing
            | LogoutTokenInvalid(_)
            | UserRequired(_)
            | BodyUnreadable(_) => "invalid_request",
            MethodNotAllowed => "method_not_allowed",
        }
    }

    pub fn status(self) -> u16 {
        use GateError::*;
        match self {
            TokenMissing | TokenMalformed | TokenTooLarge | TokenAmbiguous
            | AlgorithmNotAllowed | UnknownKey | SignatureInvalid | TokenExpired
            | SessionTooOld | TokenNotYetValid | TokenLifetimeTooLong | IssuerInvalid
            | AudienceInvalid | TypeInvalid | TokenRevoked | AdminUnauthorized
            | RefreshTokenReused | ClaimsMissing(_) | SidRequired => 401,
            InvalidRequest
            | SubjectMissing
            | LogoutTokenInvalid(_)
            | UserRequired(_)
            | BodyUnreadable(_) => 400,
            AdminDisabled => 404,
            MethodNotAllowed => 405,
            Misconfigured => 500,
            OriginUnreachable => 502,
            RevocationUnavailable
            | SessionsNotRevoked
            | OriginRevocationFailed
            | KeysUnavailable => 503,
        }
    }

    pub fn description(self) -> &'static str {
        use GateError::*;
        match self {
            TokenMissing => "no bearer token was sent",
            TokenMalformed => "the token is not a well-formed JWT",
            TokenTooLarge => "the token is larger than this gateway accepts",
            TokenAmbiguous => "the request carries two different tokens",
            AlgorithmNotAllowed => "the token's signing algorithm is not accepted",
            UnknownKey => "no key is configured for this token",
            SignatureInvalid => "the token's signature does not verify",
            TokenExpired => "the token has expired or has no expiry",
            SessionTooOld => {
                "the token's session (sid) is older than SESSION_LIFETIME_SECONDS, \
                 or the token has no iat"
            }
            TokenNotYetValid => "the token is not valid yet, or was issued in the future",
            TokenLifetimeTooLong => {
                "the token expires further in the future than a revocation can be kept"
            }
            IssuerInvalid => "the token's issuer is not accepted",
            AudienceInvalid => "the token is not meant for this audience",
            TypeInvalid => "the token's type is not accepted",
            TokenRevoked => "the token has been revoked",
            SidRequired => "the token names no session (sid), which this gateway requires",
            RevocationUnavailable => "revocation status cannot be checked or recorded; try again",
            SessionsNotRevoked => {
                "the password was changed, but existing sessions could not be signed out; \
                 call POST /auth/logout-all to finish"
            }
            OriginRevocationFailed => {
                "the origin asked for this token's sessions to be revoked, but the revocation \
                 could not be recorded, so its response was withheld; try again or sign out"
            }
            KeysUnavailable => "the issuer's signing keys cannot be fetched right now; try again",
            OriginUnreachable => "the origin could not be reached",
            Misconfigured => "the gateway is misconfigured",
            AdminDisabled => "not found",
            AdminUnauthorized => "a valid admin token is required",
            InvalidRequest => "the request body is not what this route accepts",
            SubjectMissing => {
                "the token has no sub (subject), so its sessions could not be revoked"
            }
            MethodNotAllowed => "this route only accepts POST",
            LogoutTokenInvalid(why) | ClaimsMissing(why) | UserRequired(why)
            | BodyUnreadable(why) => why,
            RefreshTokenReused => {
                "the refresh token was already used, so it was stolen or replayed: its session has been revoked, sign in again"
            }
        }
    }

    /// Token failures carry an RFC 6750 challenge. When no token was sent at
    /// all the challenge has no `error` attribute (RFC 6750 section 3.1).
    pub fn www_authenticate(self) -> Option<String> {
        match self {
            GateError::TokenMissing => Some(r#"Bearer realm="tokengate""#.to_owned()),
            GateError::AdminUnauthorized => Some(r#"Bearer realm="tokengate-admin""#.to_owned()),
            e if e.status() == 401 => {
                const START: &str =
                    r#"Bearer realm="tokengate", error="invalid_token", error_description=""#;
                let description = e.description();
                let mut challenge = String::with_capacity(START.len() + description.len() + 1);
                challenge.push_str(START);
                challenge.push_str(description);
                challenge.push('"');
                Some(challenge)
            }
            _ => None,
        }
    }

    pub fn to_reply(self) -> Reply {
        let mut reply =
            Reply::with_json_body(self.status(), error_body(self.code(), self.description()));
        if let Some(challenge) = self.www_authenticate() {
            reply.headers.push(("WWW-Authenticate".into(), challenge));
        }
        if self == GateError::MethodNotAllowed {
            reply.headers.push(("Allow".into(), "POST".into()));
        }
        reply.code = Some(self.code());
        reply
    }
}

/// Who a refused request spoke for, once its token's signature verified:
/// what the refusal's log line may name (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub token_id: String,
    pub sub: Option<String>,
}

/// A refusal: the error, and who the token spoke for when that is known
/// (the signature verified before the request was refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: GateError,
    pub who: Option<Who>,
}

impl Refusal {
    pub fn to_reply(&self) -> Reply {
        let mut reply = self.error.to_reply();
        reply.who = self.who.clone();
        reply
    }
}

impl From<GateError> for Refusal {
    fn from(error: GateError) -> Refusal {
        Refusal { error, who: None }
    }
}

/// The one structured log line of a refused request (a reply of the
/// gateway's own with status 400 or above), e.g.
/// `{"tokengate":"refused","status":401,"code":"token_revoked","method":"GET","path":"/x","token_id":"...","sub":"..."}`.
/// `path` must come without its query string; the token is never in it,
/// and `token_id`/`sub` only when the token's signature verified
/// ([`Reply::who`]). `None` for a reply below 400.
pub fn refusal_log_line(reply: &Reply, method: &str, path: &str) -> Option<String> {
    if !reply.is_refusal() {
        return None;
    }
    // Only ever the path: a query string never reaches a log line.
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let code = reply.code.unwrap_or("unknown");
    // Written out, as the refusal's body is (`error_body`).
    let mut line = String::with_capacity(96 + code.len() + method.len() + path.len());
    line.push_str(r#"{"tokengate":"refused","status":"#);
    line.push_str(&reply.status.to_string());
    line.push_str(r#","code":"#);
    push_json_string(&mut line, code);
    line.push_str(r#","method":"#);
    push_json_string(&mut line, method);
    line.push_str(r#","path":"#);
    push_json_string(&mut line, path);
    if let Some(who) = &reply.who {
        line.push_str(r#","token_id":"#);
        push_json_string(&mut line, &who.token_id);
        if let Some(sub) = &who.sub {
            line.push_str(r#","sub":"#);
            push_json_string(&mut line, sub);
        }
    }
    line.push('}');
    Some(line)
}

/// `REFUSAL_LOG_PER_SECOND`'s default.
pub const DEFAULT_REFUSAL_LOG_PER_SECOND: u32 = 100;

/// An isolate's refusal log: at most `per_second` refusal lines in each
/// whole second; the refusals over that are counted, and the count is
/// written as one line, `{"tokengate":"refusals_not_logged","count":N,...}`,
/// with the next line after that second. A flood of bad tokens thus costs
/// neither a log line each (a `console.warn` was about half of what a
/// refusal cost, docs/performance.md) nor a log bill per request, and
/// ordinary refusals are all logged.
pub struct RefusalLog {
    per_second: u32,
    second: Cell<f64>,
    written: Cell<u32>,
    unlogged: Cell<u64>,
}

impl RefusalLog {
    /// `per_second` is the configuration's `REFUSAL_LOG_PER_SECOND`;
    /// `None` (a configuration that failed) takes the default.
    pub fn new(per_second: Option<u32>) -> RefusalLog {
        RefusalLog {
            per_second: per_second.unwrap_or(DEFAULT_REFUSAL_LOG_PER_SECOND),
            second: Cell::new(f64::NAN),
            written: Cell::new(0),
            unlogged: Cell::new(0),
        }
    }

    /// What to log for `reply` at `now` (seconds): the count of the
    /// refusals left out in an earlier second, if any, then the refusal's
    /// own line ([`refusal_log_line`]) unless this second's lines are used up.
    pub fn lines(&self, reply: &Reply, method: &str, path: &str, now: f64) -> Vec<String> {
        let mut lines: Vec<String> = self.summary(now).into_iter().collect();
        if reply.is_refusal() {
            if self.written.get() < self.per_second {
                self.written.set(self.written.get() + 1);
                lines.extend(refusal_log_line(reply, method, path));
            } else {
                self.unlogged.set(self.unlogged.get() + 1);
            }
        }
        lines
    }

    /// [`RefusalLog::summary`] after a request that was not refused: the
    /// clock is read only when refusals were left out, since otherwise there
    /// is nothing to report (the next refusal starts its second itself).
    pub fn summary_if_any(&self, now: impl FnOnce() -> f64) -> Option<String> {
        if self.unlogged.get() == 0 {
            return None;
        }
        self.summary(now())
    }

    /// Starts a new second when `now` is in one, and returns the line
    /// counting the refusals the last one left out. Called for forwarded
    /// requests too, so the count appears even when refusals stop.
    pub fn summary(&self, now: f64) -> Option<String> {
        let second = now.floor();
        if second == self.second.get() {
            return None;
        }
        self.second.set(second);
        self.written.set(0);
        let unlogged = self.unlogged.replace(0);
        (unlogged > 0).then(|| {
            format!(
                "{{\"tokengate\":\"refusals_not_logged\",\"count\":{unlogged},\"limit_per_second\":{}}}",
                self.per_second
            )
        })
    }
}

impl std::fmt::Display for GateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for GateError {}

/// A refusal's body, `{"error":CODE,"error_description":DESCRIPTION}` and a
/// newline, written out: through serde_json it was a tenth of what a
/// refusal cost beyond jose's (bench/TRIED.md).
fn error_body(code: &str, description: &str) -> String {
    let mut body = String::with_capacity(40 + code.len() + description.len());
    body.push_str(r#"{"error":"#);
    push_json_string(&mut body, code);
    body.push_str(r#","error_description":"#);
    push_json_string(&mut body, description);
    body.push_str("}\n");
    body
}

/// Appends `text` as a JSON string. Codes and descriptions are our own
/// text and never need an escape; should one ever do, serde_json writes it.
fn push_json_string(out: &mut String, text: &str) {
    let plain = |byte: &u8| *byte >= b' ' && *byte != b'"' && *byte != b'\\';
    if text.as_bytes().iter().all(plain) {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
    }
}

/// A response the gateway answers itself (errors and its own routes).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The error code of a refusal ([`GateError::to_reply`]), for its log
    /// line; `None` for a success.
    pub code: Option<&'static str>,
    /// Who the refused token spoke for, when its signature verified.
    pub who: Option<Who>,
}

impl Reply {
    /// A refusal is one of the gateway's own replies with status 400 or
    /// above: what is logged, one line each (within [`RefusalLog`]'s limit).
    pub fn is_refusal(&self) -> bool {
        self.status >= 400
    }

    pub fn json(status: u16, body: &impl Serialize) -> Reply {
        // Serializing our own plain structs cannot fail. The newline keeps
        // `curl` output off the shell prompt.
        let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".into()) + "\n";
        Reply::with_json_body(status, body)
    }

    /// `body`: JSON text, ending in a newline.
    fn with_json_body(status: u16, body: String) -> Reply {
        Reply {
            status,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Cache-Control".into(), "no-store".into()),
            ],
            body,
            code: None,
            who: None,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_log_writes_at_most_its_limit_per_second_and_counts_the_rest() {
        let log = RefusalLog::new(Some(2));
        let refused = GateError::TokenRevoked.to_reply();
        let at = |now: f64| log.lines(&refused, "GET", "/x", now);
        assert_eq!(at(100.0).len(), 1);
        assert_eq!(at(100.5).len(), 1);
        assert!(
            at(100.9).is_empty(),
            "the third line of a second is left out"
        );
        assert!(at(100.99).is_empty());
        // The next second: the count of the two left out, then the line.
        let next = at(101.2);
        assert_eq!(next.len(), 2);
        let summary: serde_json::Value = serde_json::from_str(&next[0]).unwrap();
        assert_eq!(
            summary,
            serde_json::json!({"tokengate": "refusals_not_logged", "count": 2, "limit_per_second": 2})
        );
        assert!(next[1].contains("token_revoked"));
        // The count is reported once only.
        assert_eq!(at(102.0).len(), 1);
    }

    #[test]
    fn refusal_log_reports_the_count_on_a_forwarded_request_and_ignores_successes() {
        let log = RefusalLog::new(Some(1));
        let refused = GateError::SignatureInvalid.to_reply();
        assert_eq!(log.lines(&refused, "GET", "/", 7.0).len(), 1);
        assert!(log.lines(&refused, "GET", "/", 7.0).is_empty());
        assert!(log
            .lines(&Reply::json(200, &()), "GET", "/", 7.5)
            .is_empty());
        assert_eq!(log.summary_if_any(|| 7.9), None, "still the same second");
        let summary = log
            .summary_if_any(|| 8.0)
            .expect("the count, once the second is over");
        assert!(summary.contains(r#""count":1"#), "{summary}");
        assert_eq!(
            log.summary_if_any(|| panic!("nothing left out: no clock read")),
            None
        );
        // The quota of the new second is still there for the next refusal.
        assert_eq!(log.lines(&refused, "GET", "/", 9.0).len(), 1);
    }

    #[test]
    fn missing_token_challenge_has_no_error_attribute() {
        let reply = GateError::TokenMissing.to_reply();
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer realm="tokengate""#)
        );
        assert_eq!(
            reply.body,
            "{\"error\":\"token_missing\",\"error_description\":\"no bearer token was sent\"}\n"
        );
    }

    #[test]
    fn refusal_bodies_are_the_json_serde_would_write() {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
            error_description: &'a str,
        }
        let serde_body = |code, description| {
            serde_json::to_string(&ErrorBody {
                error: code,
                error_description: description,
            })
            .unwrap()
                + "\n"
        };
        for error in [
            GateError::TokenRevoked,
            GateError::SessionTooOld,
            GateError::LogoutTokenInvalid("the token's \"events\" claim is missing"),
        ] {
            let reply = error.to_reply();
            assert_eq!(reply.body, serde_body(error.code(), error.description()));
        }
        for awkward in [
            "a\"b",
            "back\\slash",
            "line\nbreak",
            "tab\t",
            "\u{1}",
            "ünï",
        ] {
            assert_eq!(
                error_body("x", awkward),
                serde_body("x", awkward),
                "{awkward:?}"
            );
        }
    }

    #[test]
    fn invalid_token_challenge_names_the_error() {
        let reply = GateError::TokenExpired.to_reply();
        assert_eq!(reply.status, 401);
        let challenge = reply.header("WWW-Authenticate").unwrap();
        assert!(challenge.starts_with(r#"Bearer realm="tokengate", error="invalid_token""#));
        assert!(challenge.contains("error_description=\"the token has expired"));
    }

    #[test]
    fn non_token_failures_carry_no_challenge() {
        for (e, status) in [
            (GateError::RevocationUnavailable, 503),
            (GateError::OriginUnreachable, 502),
            (GateError::Misconfigured, 500),
            (GateError::AdminDisabled, 404),
            (GateError::InvalidRequest, 400),
        ] {
            let reply = e.to_reply();
            assert_eq!(reply.status, status, "{e}");
            assert_eq!(reply.header("WWW-Authenticate"), None, "{e}");
            let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(body["error"], e.code());
        }
    }

    #[test]
    fn a_refusal_logs_one_json_line_without_token_or_query() {
        let reply = GateError::TokenRevoked.to_reply();
        assert_eq!(reply.code, Some("token_revoked"));
        // Before the signature verified, nobody is named.
        let line = refusal_log_line(&reply, "GET", "/x?access_token=eyJ.a.b").unwrap();
        assert_eq!(
            line,
            r#"{"tokengate":"refused","status":401,"code":"token_revoked","method":"GET","path":"/x"}"#
        );
        let refusal = Refusal {
            error: GateError::TokenRevoked,
            who: Some(Who {
                token_id: "t-1".into(),
                sub: Some("al\"ice".into()),
            }),
        };
        let line = refusal_log_line(&refusal.to_reply(), "POST", "/a\"b").unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"tokengate": "refused", "status": 401, "code": "token_revoked",
                "method": "POST", "path": "/a\"b", "token_id": "t-1", "sub": "al\"ice"})
        );
        // No sub: no sub member.
        let anonymous = Refusal {
            error: GateError::SubjectMissing,
            who: Some(Who {
                token_id: "t-2".into(),
                sub: None,
            }),
        };
        let line = refusal_log_line(&anonymous.to_reply(), "POST", "/p").unwrap();
        assert!(
            line.ends_with(
                r#""code":"invalid_request","method":"POST","path":"/p","token_id":"t-2"}"#
            ),
            "{line}"
        );
        // Successes are not refusals.
        assert_eq!(refusal_log_line(&Reply::json(200, &()), "GET", "/"), None);
        for e in [
            GateError::OriginUnreachable,
            GateError::Misconfigured,
            GateError::LogoutTokenInvalid("x"),
        ] {
            let line = refusal_log_line(&e.to_reply(), "GET", "/").unwrap();
            assert!(
                line.contains(&format!(r#""code":"{}""#, e.code())),
                "{line}"
            );
        }
    }

    #[test]
    fn new_codes_keep_the_contract() {
        assert_eq!(
            (
                GateError::SessionTooOld.code(),
                GateError::SessionTooOld.status()
            ),
            ("token_expired", 401)
        );
        assert_eq!(
            (
                GateError::OriginRevocationFailed.code(),
                GateError::OriginRevocationFailed.status()
            ),
            ("sessions_not_revoked", 503)
        );
        assert_eq!(
            (
                GateError::SidRequired.code(),
                GateError::SidRequired.status()
            ),
            ("sid_required", 401)
        );
        let invalid = GateError::LogoutTokenInvalid("the logout token has no jti");
        let reply = invalid.to_reply();
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.body,
            "{\"error\":\"invalid_request\",\"error_description\":\"the logout token has no jti\"}\n"
        );
        assert_eq!(reply.header("Cache-Control"), Some("no-store"));
        assert_eq!(reply.header("WWW-Authenticate"), None);
    }
}
