//! Configuration, parsed once per isolate from Worker vars and secrets into a
//! typed value. A bad setting is reported by name (never by value: it may be
//! a secret) and the gateway answers `misconfigured` until it is fixed.

use std::rc::Rc;

use serde::Deserialize;

use crate::keyring::Provider;
use crate::keys::{
    parse_jwks, Algorithm, HmacKeys, KeyMaterial, KeySetSource, KeyType, VerifyKey,
    MIN_HMAC_KEY_BYTES,
};
use crate::routes::{PathPattern, StrictPath};

pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
pub const DEFAULT_PASSWORD_CHANGE_PATH: &str = "/auth/password-change";
/// `SESSION_LIFETIME_SECONDS` when unset: 30 days.
pub const DEFAULT_SESSION_LIFETIME_SECONDS: u64 = 30 * 86_400;

#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL that requests are forwarded to; `None` forwards to the
    /// request's own URL (a Worker on a route in front of a zone's origin).
    pub origin_url: Option<String>,
    /// Token issuers and their keys; never empty. One unless `JWT_ISSUERS`.
    pub providers: Vec<Provider>,
    /// Settings that work but deserve a log line (skipped JWKS keys).
    pub warnings: Vec<String>,
    pub leeway_seconds: u64,
    /// `JWT_MAX_TOKEN_AGE_SECONDS`: tokens need an `iat` no older than this.
    pub max_token_age_seconds: Option<u64>,
    pub required_typ: Option<String>,
    pub max_token_bytes: usize,
    /// `REFUSAL_LOG_PER_SECOND`: refusal lines an isolate writes per second
    /// at most ([`crate::error::RefusalLog`]).
    pub refusal_log_per_second: u32,
    pub token_cookie: Option<String>,
    /// `Path` and `Domain` the token cookie was set with, so that logout can
    /// clear exactly that cookie.
    pub token_cookie_path: String,
    pub token_cookie_domain: Option<String>,
    pub public_paths: Vec<PathPattern>,
    /// In the loose form gateway routes are compared in (`routes::loosely`).
    pub password_change_path: String,
    pub admin_token: Option<String>,
    /// `CORS_ALLOWED_ORIGINS`: exact origins (`scheme://host[:port]`, lower
    /// case) whose browsers may call `POST /auth/logout` and
    /// `/auth/logout-all` cross-origin, with credentials. Empty: no CORS.
    pub cors_allowed_origins: Vec<String>,
    /// `SESSION_LIFETIME_SECONDS`: how long a revoked-session entry lives
    /// (plus leeway), and so the oldest `iat` a token with a `sid` may have.
    pub session_lifetime_seconds: u64,
    /// `REQUIRE_SID`: every token must carry `sid`, so a logout (back-channel
    /// or `POST /auth/logout`) ends exactly its session. Without it, a logout
    /// that names a user also cuts that user off: tokens without `sid` could
    /// not be told apart from the signed-out session's.
    pub require_sid: bool,
    /// `BACKCHANNEL_LOGOUT_PATH` in loose form (`routes::loosely`); `None`:
    /// back-channel logout is off and that path is an ordinary one.
    pub backchannel_logout_path: Option<String>,
    /// `BACKCHANNEL_LOGOUT_AUDIENCE`: the client IDs a logout token's `aud`
    /// must contain one of (comma-separated); never empty when the path is set.
    pub backchannel_logout_audiences: Vec<String>,
    /// Refresh-token rotation (`REFRESH_*`); `None`: off, and the refresh
    /// route is an ordinary protected path.
    pub refresh: Option<RefreshConfig>,
    /// `STRICT_PATHS`: requests there are also checked against the user's
    /// Durable Object (`SESSIONS`), which sees every revocation at once.
    pub strict_paths: Vec<StrictPath>,
}

/// `REFRESH_PATH` and its companions.
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    /// In loose form (`routes::loosely`), like the other gateway routes.
    pub path: String,
    /// `REFRESH_PATH` as written: the `Path` the refresh cookie is cleared
    /// with on logout (an issuer scopes it to the refresh route).
    pub cookie_path: String,
    /// `REFRESH_COOKIE`: the cookie the refresh token is read from first.
    pub cookie: Option<String>,
    /// `REFRESH_TYP`: tokens of this `typ` are refresh tokens, accepted on
    /// `path` only; and only they are accepted there.
    pub typ: Option<String>,
    /// `REFRESH_REUSE_GRACE_SECONDS`: how long the latest spent token of a
    /// family may be presented again (a retry after a lost response).
    pub reuse_grace_seconds: u64,
}

/// Which setting is wrong and why, without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "setting {}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn invalid(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

/// Comma-separated list, trimmed, empty items dropped.
fn list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A cookie name setting (RFC 6265 token characters).
fn cookie_name(
    get: &impl Fn(&str) -> Option<String>,
    setting: &'static str,
) -> Result<Option<String>, ConfigError> {
    let Some(name) = get(setting).map(|c| c.trim().to_owned()) else {
        return Ok(None);
    };
    let token_char = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
    if name.chars().all(token_char) {
        Ok(Some(name))
    } else {
        Err(invalid(setting, "is not a valid cookie name"))
    }
}

/// A `PUBLIC_PATHS`-style list: exact paths and `prefix/*` patterns.
fn path_patterns(
    get: &impl Fn(&str) -> Option<String>,
    setting: &'static str,
) -> Result<Vec<PathPattern>, ConfigError> {
    list(get(setting).as_deref())
        .into_iter()
        .map(|p| {
            PathPattern::parse(&p).ok_or_else(|| invalid(setting, "each path must start with '/'"))
        })
        .collect()
}

/// `REFRESH_PATH` with `REFRESH_COOKIE`, `REFRESH_TYP` and
/// `REFRESH_REUSE_GRACE_SECONDS`; `None` when `REFRESH_PATH` is unset.
fn refresh_config(
    get: &impl Fn(&str) -> Option<String>,
    password_change_path: &str,
    backchannel_logout_path: &Option<String>,
) -> Result<Option<RefreshConfig>, ConfigError> {
    let Some(path) = get("REFRESH_PATH") else {
        for companion in [
            "REFRESH_COOKIE",
            "REFRESH_TYP",
            "REFRESH_REUSE_GRACE_SECONDS",
        ] {
            if get(companion).is_some() {
                return Err(invalid(companion, "is set but REFRESH_PATH is not"));
            }
        }
        return Ok(None);
    };
    let path = path.trim();
    if !path.starts_with('/') {
        return Err(invalid("REFRESH_PATH", "must start with '/'"));
    }
    let loose = crate::routes::loosely(path);
    let taken = crate::routes::FIXED_PATHS
        .iter()
        .copied()
        .chain([password_change_path])
        .chain(backchannel_logout_path.as_deref())
        .any(|route| crate::routes::same_route(&loose, route));
    if taken || loose == "/" {
        return Err(invalid(
            "REFRESH_PATH",
            "must be a path of its own, not / nor another gateway route",
        ));
    }
    // A grace window is a replay window: capped at five minutes.
    let reuse_grace_seconds = match get("REFRESH_REUSE_GRACE_SECONDS") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= 300)
            .ok_or_else(|| {
                invalid(
                    "REFRESH_REUSE_GRACE_SECONDS",
                    "must be a whole number of seconds, 0 to 300",
                )
            })?,
    };
    Ok(Some(RefreshConfig {
        path: loose,
        cookie_path: path.to_owned(),
        cookie: cookie_name(get, "REFRESH_COOKIE")?,
        typ: get("REFRESH_TYP").map(|t| t.trim().to_owned()),
        reuse_grace_seconds,
    }))
}

/// `http://` to this machine only: `localhost`, `127.0.0.1` or `[::1]`,
/// with an optional port, and no userinfo (`http://localhost@evil/`).
fn is_local_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.rfind(':') {
        // A colon after the (bracketed IPv6) host starts the port.
        Some(at) if at > authority.rfind(']').unwrap_or(0) || !authority.starts_with('[') => {
            let port = &authority[at + 1..];
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            &authority[..at]
        }
        _ => authority,
    };
    ["localhost", "127.0.0.1", "[::1]"].contains(&host)
}

/// `scheme://host[:port]`, nothing else: the form of an `Origin` header
/// (RFC 6454 7). No userinfo, path (not even `/`), query or fragment; the
/// host a name, an IPv4 address or a bracketed IPv6 address; the port 1 to
/// 65535. Case is not checked here (origins are compared in lower case).
fn is_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let (host, port) = match authority.rsplit_once(':') {
        // A colon inside brackets belongs to an IPv6 host, not a port.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').is_some_and(|v6| {
            v6.contains(':')
                && v6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || ":.".contains(c))
        }),
        None => {
            !host.is_empty()
                && !host.starts_with(['.', '-'])
                && !host.ends_with('.')
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
        }
    };
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p))
    });
    scheme_ok && host_ok && port_ok
}

/// One entry of `JWT_ISSUERS`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderSetting {
    issuer: String,
    #[serde(default)]
    audience: Option<StringOrList>,
    #[serde(default)]
    algorithms: Option<StringOrList>,
    #[serde(default)]
    jwks: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    jwks_url: Option<String>,
    /// Also accept HMAC tokens signed with `JWT_SECRET`.
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn into_list(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => list(Some(&s)),
            StringOrList::Many(v) => v
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

/// The single-issuer settings (`JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_ALGORITHMS`,
/// `JWT_JWKS`, `JWT_JWKS_URL`) make one provider; `JWT_ISSUERS` (a JSON
/// array) makes several, each matched by the token's `iss`.
fn providers(
    get: &impl Fn(&str) -> Option<String>,
    secret: Option<Rc<VerifyKey>>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Provider>, ConfigError> {
    let Some(json) = get("JWT_ISSUERS") else {
        let setting = ProviderSetting {
            issuer: String::new(),
            audience: get("JWT_AUDIENCE").map(StringOrList::One),
            algorithms: get("JWT_ALGORITHMS").map(StringOrList::One),
            jwks: None,
            jwks_url: get("JWT_JWKS_URL"),
            secret: secret.is_some(),
        };
        // Parsed once, as a key set: not first checked as JSON on its own.
        let jwks = get("JWT_JWKS");
        let mut provider = provider(
            setting,
            jwks.as_deref(),
            secret,
            "JWT_JWKS",
            "JWT_ALGORITHMS",
            warnings,
        )?;
        provider.issuers = list(get("JWT_ISSUER").as_deref());
        return Ok(vec![provider]);
    };
    for single in [
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_ALGORITHMS",
        "JWT_JWKS",
        "JWT_JWKS_URL",
    ] {
        if get(single).is_some() {
            return Err(invalid(
                "JWT_ISSUERS",
                format!("cannot be combined with {single}; move it into an entry"),
            ));
        }
    }
    let settings: Vec<ProviderSetting> = serde_json::from_str(&json).map_err(|e| {
        invalid(
            "JWT_ISSUERS",
            // Position only: serde's message can quote the value, and an
            // entry's inline JWKS may hold an HMAC key.
            format!(
                "must be a JSON array of issuer objects (problem at line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    if settings.is_empty() {
        return Err(invalid("JWT_ISSUERS", "lists no issuer"));
    }
    let mut providers: Vec<Provider> = Vec::new();
    for mut setting in settings {
        let issuer = setting.issuer.trim().to_owned();
        if issuer.is_empty() || providers.iter().any(|p| p.issuers.contains(&issuer)) {
            return Err(invalid(
                "JWT_ISSUERS",
                "every entry needs its own, non-empty issuer",
            ));
        }
        if setting.secret && secret.is_none() {
            return Err(invalid(
                "JWT_ISSUERS",
                format!("{issuer} uses JWT_SECRET, which is not set"),
            ));
        }
        let secret = if setting.secret { secret.clone() } else { None };
        let jwks = setting.jwks.take();
        let mut provider = provider(
            setting,
            jwks.as_deref().map(serde_json::value::RawValue::get),
            secret,
            "JWT_ISSUERS",
            "JWT_ISSUERS",
            warnings,
        )?;
        provider.issuers = vec![issuer];
        providers.push(provider);
    }
    Ok(providers)
}

/// `jwks`: the provider's inline key set as text (`setting.jwks` is not read).
fn provider(
    setting: ProviderSetting,
    jwks: Option<&str>,
    secret: Option<Rc<VerifyKey>>,
    jwks_setting: &'static str,
    algorithms_setting: &'static str,
    warnings: &mut Vec<String>,
) -> Result<Provider, ConfigError> {
    let mut keys: Vec<Rc<VerifyKey>> = secret.into_iter().collect();
    if let Some(jwks) = jwks {
        let (inline, skipped) =
            parse_jwks(jwks, KeySetSource::Configured).map_err(|why| invalid(jwks_setting, why))?;
        keys.extend(inline);
        warnings.extend(
            skipped
                .into_iter()
                .map(|why| format!("{jwks_setting}: skipped {why}")),
        );
    }
    let jwks_url = setting.jwks_url.map(|u| u.trim().to_owned());
    if let Some(url) = &jwks_url {
        // Keys fetched in clear text could be swapped by anyone on the path.
        if !url.starts_with("https://") && !is_local_http(url) {
            return Err(invalid(
                "JWT_JWKS_URL",
                "must be an https:// URL (http only for localhost)",
            ));
        }
    }
    // What the keys can verify; a remote set may hold any public key type.
    let supported = |alg: &Algorithm| {
        keys.iter().any(|k| k.accepts(*alg))
            || (jwks_url.is_some() && alg.key_type() != KeyType::Hmac)
    };
    let algorithms: Vec<Algorithm> = match setting.algorithms {
        None => Algorithm::ALL.iter().copied().filter(supported).collect(),
        Some(names) => {
            let mut algorithms = Vec::new();
            for name in names.into_list() {
                let alg = Algorithm::from_name(&name).ok_or_else(|| {
                    invalid(
                        algorithms_setting,
                        format!("unknown or forbidden algorithm {name:?}"),
                    )
                })?;
                if !supported(&alg) {
                    return Err(invalid(
                        algorithms_setting,
                        format!("no configured key can verify {name}"),
                    ));
                }
                if !algorithms.contains(&alg) {
                    algorithms.push(alg);
                }
            }
            algorithms
        }
    };
    if algorithms.is_empty() {
        return Err(invalid(
            "JWT_SECRET",
            "no verification key is configured (set JWT_SECRET, JWT_JWKS or JWT_JWKS_URL)",
        ));
    }
    Ok(Provider {
        issuers: Vec::new(),
        audiences: setting
            .audience
            .map(StringOrList::into_list)
            .unwrap_or_default(),
        algorithms,
        keys,
        jwks_url,
        jwks_cache_seconds: crate::keyring::DEFAULT_CACHE_SECONDS,
    })
}

impl Config {
    /// Reads every setting through `lookup` (Worker vars and secrets, or a
    /// map in tests). Empty strings count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let origin_url = get("ORIGIN_URL").map(|u| u.trim().to_owned());
        if let Some(url) = &origin_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains('?') {
                return Err(invalid(
                    "ORIGIN_URL",
                    "must be an http(s) URL without a query",
                ));
            }
        }

        let secret = match lookup("JWT_SECRET").filter(|s| !s.is_empty()) {
            Some(secret) if secret.len() < MIN_HMAC_KEY_BYTES => {
                return Err(invalid(
                    "JWT_SECRET",
                    format!("must be at least {MIN_HMAC_KEY_BYTES} bytes (RFC 7518 3.2)"),
                ))
            }
            Some(secret) => Some(Rc::new(VerifyKey {
                kid: None,
                alg: None,
                material: KeyMaterial::Hmac(Box::new(HmacKeys::new(secret.as_bytes()))),
            })),
            None => None,
        };
        let mut warnings = Vec::new();
        let mut providers = providers(&get, secret, &mut warnings)?;
        if let Some(v) = get("JWT_JWKS_CACHE_SECONDS") {
            let range = crate::keyring::MIN_CACHE_SECONDS..=crate::keyring::MAX_CACHE_SECONDS;
            let seconds = v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| range.contains(s))
                .ok_or_else(|| {
                    invalid(
                        "JWT_JWKS_CACHE_SECONDS",
                        "must be a whole number of seconds, 60 to 86400",
                    )
                })?;
            for provider in &mut providers {
                provider.jwks_cache_seconds = seconds;
            }
        }

        let leeway_seconds = match get("JWT_LEEWAY_SECONDS") {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= 3600)
                .ok_or_else(|| {
                    invalid(
                        "JWT_LEEWAY_SECONDS",
                        "must be a whole number of seconds, 0 to 3600",
                    )
                })?,
        };

        let refusal_log_per_second = match get("REFUSAL_LOG_PER_SECOND") {
            None => crate::error::DEFAULT_REFUSAL_LOG_PER_SECOND,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    invalid("REFUSAL_LOG_PER_SECOND", "must be a number, 1 to 1000000")
                })?,
        };

        let max_token_bytes = match get("JWT_MAX_TOKEN_BYTES") {
            None => DEFAULT_MAX_TOKEN_BYTES,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (64..=65536).contains(n))
                .ok_or_else(|| invalid("JWT_MAX_TOKEN_BYTES", "must be a number, 64 to 65536"))?,
        };

        let max_token_age_seconds =
            match get("JWT_MAX_TOKEN_AGE_SECONDS") {
                None => None,
                Some(v) => Some(v.trim().parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(
                    || {
                        invalid(
                            "JWT_MAX_TOKEN_AGE_SECONDS",
                            "must be a positive whole number of seconds",
                        )
                    },
                )?),
            };

        let token_cookie = cookie_name(&get, "TOKEN_COOKIE")?;
        let public_paths = path_patterns(&get, "PUBLIC_PATHS")?;
        let strict_paths = list(get("STRICT_PATHS").as_deref())
            .into_iter()
            .map(|p| {
                StrictPath::parse(&p)
                    .ok_or_else(|| invalid("STRICT_PATHS", "each path must start with '/'"))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let password_change_path = get("PASSWORD_CHANGE_PATH")
            .map(|p| p.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_PASSWORD_CHANGE_PATH.to_owned());
        if !password_change_path.starts_with('/') {
            return Err(invalid("PASSWORD_CHANGE_PATH", "must start with '/'"));
        }

        let mut cors_allowed_origins: Vec<String> = Vec::new();
        for origin in list(get("CORS_ALLOWED_ORIGINS").as_deref()) {
            if origin == "*" {
                return Err(invalid(
                    "CORS_ALLOWED_ORIGINS",
                    "cannot be *: the logout routes allow credentials, so list each origin",
                ));
            }
            // `null` is what sandboxed iframes and file: pages send: anyone
            // can produce it, so it cannot be trusted with credentials.
            if origin.eq_ignore_ascii_case("null") || !is_origin(&origin) {
                return Err(invalid(
                    "CORS_ALLOWED_ORIGINS",
                    "each entry must be an origin, scheme://host[:port], without a path",
                ));
            }
            let origin = origin.to_ascii_lowercase();
            if !cors_allowed_origins.contains(&origin) {
                cors_allowed_origins.push(origin);
            }
        }

        let admin_token = lookup("ADMIN_TOKEN").filter(|t| !t.is_empty());
        if matches!(&admin_token, Some(t) if t.len() < 16) {
            return Err(invalid("ADMIN_TOKEN", "must be at least 16 characters"));
        }

        let session_lifetime_seconds = match get("SESSION_LIFETIME_SECONDS") {
            None => DEFAULT_SESSION_LIFETIME_SECONDS,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=crate::revocation::MAX_ENTRY_SECONDS).contains(s))
                .ok_or_else(|| {
                    invalid(
                        "SESSION_LIFETIME_SECONDS",
                        "must be a whole number of seconds, 1 to 315360000 (ten years)",
                    )
                })?,
        };

        let require_sid = match get("REQUIRE_SID").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(_) => return Err(invalid("REQUIRE_SID", "must be true or false")),
        };

        let password_change_path = crate::routes::loosely(&password_change_path);
        let backchannel_logout_audiences = list(get("BACKCHANNEL_LOGOUT_AUDIENCE").as_deref());
        let backchannel_logout_path = match get("BACKCHANNEL_LOGOUT_PATH") {
            None => {
                if !backchannel_logout_audiences.is_empty() {
                    warnings.push(
                        "BACKCHANNEL_LOGOUT_AUDIENCE is set but BACKCHANNEL_LOGOUT_PATH is not: \
                         back-channel logout is off"
                            .to_owned(),
                    );
                }
                None
            }
            Some(path) => {
                let path = path.trim();
                if !path.starts_with('/') {
                    return Err(invalid("BACKCHANNEL_LOGOUT_PATH", "must start with '/'"));
                }
                let loose = crate::routes::loosely(path);
                // Compared as requests are routed (format suffixes too), so
                // that `/auth/logout.json` is refused rather than unreachable.
                let taken = crate::routes::FIXED_PATHS
                    .iter()
                    .chain([&password_change_path.as_str()])
                    .any(|fixed| crate::routes::same_route(&loose, fixed));
                if taken || loose == "/" {
                    return Err(invalid(
                        "BACKCHANNEL_LOGOUT_PATH",
                        "must be a path of its own, not / nor another gateway route",
                    ));
                }
                if backchannel_logout_audiences.is_empty() {
                    return Err(invalid(
                        "BACKCHANNEL_LOGOUT_AUDIENCE",
                        "is required when BACKCHANNEL_LOGOUT_PATH is set \
                         (the client ID registered at the identity provider)",
                    ));
                }
                // A logout token's `iss` must be one we know (2.6, step 2):
                // without a configured issuer every logout token is refused
                // (`backchannel::validate`), and that deserves a log line.
                if providers.iter().any(|p| p.issuers.is_empty()) {
                    warnings.push(
                        "BACKCHANNEL_LOGOUT_PATH is set without JWT_ISSUER (or JWT_ISSUERS): \
                         a logout token's iss cannot be checked, so every one is refused"
                            .to_owned(),
                    );
                }
                Some(loose)
            }
        };

        let refresh = refresh_config(&get, &password_change_path, &backchannel_logout_path)?;
        if let Some(refresh) = &refresh {
            match (&refresh.typ, get("JWT_TYP")) {
                (Some(refresh_typ), Some(access_typ))
                    if crate::token::same_media_type(refresh_typ, &access_typ) =>
                {
                    return Err(invalid(
                        "REFRESH_TYP",
                        "must differ from JWT_TYP: refresh and access tokens must not cross",
                    ));
                }
                (None, _) => warnings.push(
                    "REFRESH_PATH is set without REFRESH_TYP: refresh tokens are accepted as \
                     access tokens on every path, and access tokens with jti and sub are spent as \
                     refresh tokens; type your refresh tokens and set REFRESH_TYP"
                        .to_owned(),
                ),
                _ => {}
            }
        }

        Ok(Config {
            origin_url,
            providers,
            warnings,
            max_token_age_seconds,
            leeway_seconds,
            required_typ: get("JWT_TYP").map(|t| t.trim().to_owned()),
            max_token_bytes,
            refusal_log_per_second,
            token_cookie,
            token_cookie_path: get("TOKEN_COOKIE_PATH")
                .map_or_else(|| "/".to_owned(), |p| p.trim().to_owned()),
            token_cookie_domain: get("TOKEN_COOKIE_DOMAIN").map(|d| d.trim().to_owned()),
            public_paths,
            password_change_path,
            admin_token,
            cors_allowed_origins,
            session_lifetime_seconds,
            require_sid,
            backchannel_logout_path,
            backchannel_logout_audiences,
            refresh,
            strict_paths,
        })
    }

    /// How long revocation entries live, for every write.
    pub fn lifetimes(&self) -> crate::revocation::Lifetimes {
        crate::revocation::Lifetimes {
            leeway_seconds: self.leeway_seconds,
            max_token_age_seconds: self.max_token_age_seconds,
            session_lifetime_seconds: self.session_lifetime_seconds,
        }
    }

    /// Whether the per-user Durable Objects (`SESSIONS`) are needed.
    pub fn needs_session_objects(&self) -> bool {
        self.refresh.is_some() || !self.strict_paths.is_empty()
    }

    /// The request's `Origin` when it is one of `CORS_ALLOWED_ORIGINS`
    /// (compared in lower case), as sent, for `Access-Control-Allow-Origin`.
    pub fn allowed_cors_origin<'o>(&self, origin: Option<&'o str>) -> Option<&'o str> {
        let origin = origin?.trim();
        self.cors_allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
            .then_some(origin)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub const TEST_SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

    pub fn config_with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn refusal_log_limit_defaults_to_100_per_second_and_refuses_nonsense() {
        let secret = ("JWT_SECRET", TEST_SECRET);
        let limit = |value: Option<&str>| {
            let mut pairs = vec![secret];
            pairs.extend(value.map(|v| ("REFUSAL_LOG_PER_SECOND", v)));
            config_with(&pairs).map(|c| c.refusal_log_per_second)
        };
        assert_eq!(limit(None), Ok(100));
        assert_eq!(limit(Some(" 5000 ")), Ok(5000));
        for bad in ["0", "-1", "1000001", "many"] {
            let err = limit(Some(bad)).unwrap_err();
            assert_eq!(err.setting, "REFUSAL_LOG_PER_SECOND", "{bad:?}");
        }
    }

    #[test]
    fn refresh_settings_are_checked_by_name() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![("JWT_SECRET", TEST_SECRET)];
            pairs.extend_from_slice(extra);
            config_with(&pairs)
        };
        let ok = with(&[
            ("REFRESH_PATH", "/oauth/token"),
            ("REFRESH_REUSE_GRACE_SECONDS", "10"),
            ("STRICT_PATHS", "/billing/*"),
        ])
        .unwrap();
        assert_eq!(ok.refresh.as_ref().map(|r| r.reuse_grace_seconds), Some(10));
        assert!(ok.needs_session_objects());
        assert!(!with(&[]).unwrap().needs_session_objects());
        for (extra, setting) in [
            (vec![("REFRESH_PATH", "/auth/logout")], "REFRESH_PATH"),
            (vec![("REFRESH_PATH", "oauth")], "REFRESH_PATH"),
            (vec![("REFRESH_TYP", "rt+jwt")], "REFRESH_TYP"),
            (
                vec![
                    ("REFRESH_PATH", "/t"),
                    ("REFRESH_REUSE_GRACE_SECONDS", "301"),
                ],
                "REFRESH_REUSE_GRACE_SECONDS",
            ),
            (
                vec![
                    ("REFRESH_PATH", "/t"),
                    ("REFRESH_TYP", "at+jwt"),
                    ("JWT_TYP", "AT+JWT"),
                ],
                "REFRESH_TYP",
            ),
            (vec![("STRICT_PATHS", "billing")], "STRICT_PATHS"),
        ] {
            assert_eq!(with(&extra).unwrap_err().setting, setting, "{extra:?}");
        }
    }

    #[test]
    fn backchannel_path_may_not_shadow_a_gateway_route_even_with_a_suffix() {
        for path in [
            "/auth/logout",
            "/auth/logout.json",
            "/Auth//Logout-All/",
            "/_admin/revoke.x",
        ] {
            let err = config_with(&[
                ("JWT_SECRET", TEST_SECRET),
                ("BACKCHANNEL_LOGOUT_PATH", path),
                ("BACKCHANNEL_LOGOUT_AUDIENCE", "client"),
            ])
            .unwrap_err();
            assert_eq!(err.setting, "BACKCHANNEL_LOGOUT_PATH", "{path}");
        }
    }

    #[test]
    fn minimal_config_accepts_every_hmac_algorithm() {
        let config = config_with(&[("JWT_SECRET", TEST_SECRET)]).unwrap();
        let [provider] = &config.providers[..] else {
            panic!("one provider")
        };
        assert_eq!(
            provider.algorithms,
            vec![Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512]
        );
        assert_eq!(config.max_token_bytes, 8192);
        assert_eq!(config.password_change_path, "/auth/password-change");
        assert!(provider.issuers.is_empty() && provider.audiences.is_empty());
    }

    #[test]
    fn lists_are_trimmed_and_split() {
        let config = config_with(&[
            ("JWT_SECRET", TEST_SECRET),
            ("JWT_ISSUER", " https://a.example , https://b.example,"),
            ("JWT_AUDIENCE", "api"),
            ("JWT_ALGORITHMS", "HS512, HS256"),
        ])
        .unwrap();
        let provider = &config.providers[0];
        assert_eq!(provider.issuers, ["https://a.example", "https://b.example"]);
        assert_eq!(provider.audiences, ["api"]);
        assert_eq!(provider.algorithms, [Algorithm::Hs512, Algorithm::Hs256]);
    }

    const EC_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"e1",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    #[test]
    fn default_algorithms_follow_the_keys() {
        let config = config_with(&[("JWT_JWKS", EC_JWKS)]).unwrap();
        assert_eq!(config.providers[0].algorithms, [Algorithm::Es256]);
        let remote = config_with(&[("JWT_JWKS_URL", "https://idp.example/jwks")]).unwrap();
        assert!(remote.providers[0].algorithms.contains(&Algorithm::Rs256));
        assert!(
            !remote.providers[0].algorithms.contains(&Algorithm::Hs256),
            "remote sets never do HMAC by default"
        );
        let hs_without_secret =
            config_with(&[("JWT_JWKS", EC_JWKS), ("JWT_ALGORITHMS", "ES256,HS256")]);
        assert_eq!(hs_without_secret.unwrap_err().setting, "JWT_ALGORITHMS");
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "http://localhost/j",
            "http://127.0.0.1:8080/j",
            "http://[::1]:9/j",
            "http://[::1]/j",
            "http://localhost",
        ] {
            assert!(is_local_http(ok), "{ok}");
        }
        for bad in [
            "http://localhost:x@idp/j",
            "http://localhost@idp/j",
            "http://127.0.0.1.evil/j",
            "http://idp/j",
            "https://localhost/j",
            "http://localhost:/j",
            "http://[::1]evil/j",
        ] {
            assert!(!is_local_http(bad), "{bad}");
        }
    }

    #[test]
    fn skipped_inline_keys_are_reported_without_failing() {
        let jwks = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"short"}]}"#;
        let config = config_with(&[("JWT_JWKS", jwks)]).unwrap();
        assert_eq!(config.warnings.len(), 1);
        assert!(
            config.warnings[0].starts_with("JWT_JWKS: skipped key 1"),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn several_issuers_each_with_their_own_keys_and_audiences() {
        let issuers = format!(
            r#"[{{"issuer":"https://a.example/","audience":["api","web"],"jwks":{EC_JWKS}}},
                {{"issuer":"https://b.example/","audience":"api","jwks_url":"https://b.example/jwks","algorithms":["RS256"]}},
                {{"issuer":"https://c.example/","secret":true}}]"#
        );
        let config =
            config_with(&[("JWT_ISSUERS", &issuers), ("JWT_SECRET", TEST_SECRET)]).unwrap();
        let p = &config.providers;
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[0].issuers.as_slice(), p[0].audiences.len()),
            (&["https://a.example/".to_owned()][..], 2)
        );
        assert_eq!(p[1].algorithms, [Algorithm::Rs256]);
        assert_eq!(
            p[2].algorithms,
            [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512]
        );

        let mixed = config_with(&[
            ("JWT_ISSUERS", &issuers),
            ("JWT_SECRET", TEST_SECRET),
            ("JWT_ISSUER", "x"),
        ]);
        assert_eq!(mixed.unwrap_err().setting, "JWT_ISSUERS");
        let no_secret = config_with(&[("JWT_ISSUERS", &issuers)]);
        assert_eq!(no_secret.unwrap_err().setting, "JWT_ISSUERS");
        let duplicate = config_with(&[(
            "JWT_ISSUERS",
            r#"[{"issuer":"x","jwks_url":"https://x"},{"issuer":"x","jwks_url":"https://y"}]"#,
        )]);
        assert_eq!(duplicate.unwrap_err().setting, "JWT_ISSUERS");
    }

    #[test]
    fn cors_origins_are_exact_origins() {
        let config = config_with(&[
            ("JWT_SECRET", TEST_SECRET),
            (
                "CORS_ALLOWED_ORIGINS",
                " https://App.Example , http://localhost:5173,https://app.example,https://[::1]:8443",
            ),
        ])
        .unwrap();
        assert_eq!(
            config.cors_allowed_origins,
            [
                "https://app.example",
                "http://localhost:5173",
                "https://[::1]:8443"
            ]
        );
        assert_eq!(
            config.allowed_cors_origin(Some("HTTPS://APP.EXAMPLE")),
            Some("HTTPS://APP.EXAMPLE")
        );
        assert_eq!(
            config.allowed_cors_origin(Some("https://app.example:443")),
            None
        );
        assert_eq!(
            config.allowed_cors_origin(Some("https://app.example.evil")),
            None
        );
        assert_eq!(config.allowed_cors_origin(Some("null")), None);
        assert_eq!(config.allowed_cors_origin(None), None);
        let unset = config_with(&[("JWT_SECRET", TEST_SECRET)]).unwrap();
        assert!(unset.cors_allowed_origins.is_empty());
        assert_eq!(unset.allowed_cors_origin(Some("https://app.example")), None);

        for bad in [
            "*",
            "null",
            "https://app.example/",
            "https://app.example/path",
            "https://app.example?x",
            "https://app.example#x",
            "https://user@app.example",
            "app.example",
            "//app.example",
            "https://",
            "https://:443",
            "https://app.example:",
            "https://app.example:0",
            "https://app.example:65536",
            "https://app.example:x",
            "https://*.example",
            "https://app.example, *",
            "1https://app.example",
            "https://[::1",
            "https://[evil]",
        ] {
            let err = config_with(&[("JWT_SECRET", TEST_SECRET), ("CORS_ALLOWED_ORIGINS", bad)])
                .unwrap_err();
            assert_eq!(err.setting, "CORS_ALLOWED_ORIGINS", "{bad}");
        }
    }

    #[test]
    fn sessions_and_back_channel_logout_settings() {
        let config = config_with(&[("JWT_SECRET", TEST_SECRET)]).unwrap();
        assert_eq!(config.session_lifetime_seconds, 2_592_000);
        assert!(
            !config.require_sid,
            "a logout that names a user cuts it off"
        );
        assert_eq!(config.providers[0].jwks_cache_seconds, 600);
        assert_eq!(config.backchannel_logout_path, None);
        assert!(config.backchannel_logout_audiences.is_empty());

        let config = config_with(&[
            ("JWT_SECRET", TEST_SECRET),
            ("JWT_ISSUER", "https://idp.example"),
            ("SESSION_LIFETIME_SECONDS", " 3600 "),
            ("REQUIRE_SID", " True "),
            ("JWT_JWKS_CACHE_SECONDS", "60"),
            ("BACKCHANNEL_LOGOUT_PATH", "/Auth//Backchannel-Logout/"),
            ("BACKCHANNEL_LOGOUT_AUDIENCE", "client-1, client-2"),
        ])
        .unwrap();
        assert_eq!(config.session_lifetime_seconds, 3600);
        assert!(config.require_sid);
        assert_eq!(config.providers[0].jwks_cache_seconds, 60);
        assert_eq!(
            config.backchannel_logout_path.as_deref(),
            Some("/auth/backchannel-logout")
        );
        assert_eq!(
            config.backchannel_logout_audiences,
            ["client-1", "client-2"]
        );

        // With several issuers, each entry names its issuer.
        let issuers = r#"[{"issuer":"https://a.example","secret":true}]"#;
        assert!(config_with(&[
            ("JWT_SECRET", TEST_SECRET),
            ("JWT_ISSUERS", issuers),
            ("BACKCHANNEL_LOGOUT_PATH", "/bc"),
            ("BACKCHANNEL_LOGOUT_AUDIENCE", "client-1"),
        ])
        .is_ok());

        // The audience alone does nothing, and says so.
        let config = config_with(&[
            ("JWT_SECRET", TEST_SECRET),
            ("BACKCHANNEL_LOGOUT_AUDIENCE", "client-1"),
        ])
        .unwrap();
        assert_eq!(config.backchannel_logout_path, None);
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);

        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut all = vec![
                ("JWT_SECRET", TEST_SECRET),
                ("JWT_ISSUER", "https://idp.example"),
            ];
            all.extend_from_slice(pairs);
            config_with(&all).map(|_| ()).map_err(|e| e.setting)
        };
        for (pairs, setting) in [
            (
                &[("BACKCHANNEL_LOGOUT_PATH", "/bc")][..],
                "BACKCHANNEL_LOGOUT_AUDIENCE",
            ),
            (
                &[
                    ("BACKCHANNEL_LOGOUT_PATH", "bc"),
                    ("BACKCHANNEL_LOGOUT_AUDIENCE", "c"),
                ],
                "BACKCHANNEL_LOGOUT_PATH",
            ),
            (
                &[
                    ("BACKCHANNEL_LOGOUT_PATH", "/auth/logout/"),
                    ("BACKCHANNEL_LOGOUT_AUDIENCE", "c"),
                ],
                "BACKCHANNEL_LOGOUT_PATH",
            ),
            (
                &[
                    ("BACKCHANNEL_LOGOUT_PATH", "/Auth/Password-Change"),
                    ("BACKCHANNEL_LOGOUT_AUDIENCE", "c"),
                ],
                "BACKCHANNEL_LOGOUT_PATH",
            ),
            (
                &[
                    ("BACKCHANNEL_LOGOUT_PATH", "/"),
                    ("BACKCHANNEL_LOGOUT_AUDIENCE", "c"),
                ],
                "BACKCHANNEL_LOGOUT_PATH",
            ),
            (
                &[("SESSION_LIFETIME_SECONDS", "0")],
                "SESSION_LIFETIME_SECONDS",
            ),
            (
                &[("SESSION_LIFETIME_SECONDS", "-1")],
                "SESSION_LIFETIME_SECONDS",
            ),
            (
                &[("SESSION_LIFETIME_SECONDS", "30d")],
                "SESSION_LIFETIME_SECONDS",
            ),
            (
                &[("SESSION_LIFETIME_SECONDS", "315360001")],
                "SESSION_LIFETIME_SECONDS",
            ),
        ] {
            assert_eq!(with(pairs), Err(setting), "{pairs:?}");
        }
        // Without any configured issuer a logout token's iss cannot be
        // checked: the route is on, refuses every logout token, and says so.
        let no_issuer = config_with(&[
            ("JWT_SECRET", TEST_SECRET),
            ("BACKCHANNEL_LOGOUT_PATH", "/bc"),
            ("BACKCHANNEL_LOGOUT_AUDIENCE", "c"),
        ])
        .unwrap();
        assert_eq!(no_issuer.backchannel_logout_path.as_deref(), Some("/bc"));
        assert!(
            no_issuer.warnings[0].contains("JWT_ISSUER"),
            "{:?}",
            no_issuer.warnings
        );
    }

    #[test]
    fn bad_settings_are_named_and_values_never_echoed() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "JWT_SECRET"),
            (&[("JWT_SECRET", "short-secret")], "JWT_SECRET"),
            (
                &[("JWT_SECRET", TEST_SECRET), ("JWT_ALGORITHMS", "none")],
                "JWT_ALGORITHMS",
            ),
            (
                &[("JWT_SECRET", TEST_SECRET), ("JWT_ALGORITHMS", "HS257")],
                "JWT_ALGORITHMS",
            ),
            (
                &[("JWT_SECRET", TEST_SECRET), ("JWT_LEEWAY_SECONDS", "-5")],
                "JWT_LEEWAY_SECONDS",
            ),
            (
                &[("JWT_SECRET", TEST_SECRET), ("JWT_MAX_TOKEN_BYTES", "lots")],
                "JWT_MAX_TOKEN_BYTES",
            ),
            (
                &[("JWT_SECRET", TEST_SECRET), ("ORIGIN_URL", "ftp://x")],
                "ORIGIN_URL",
            ),
            (
                &[("JWT_SECRET", TEST_SECRET), ("TOKEN_COOKIE", "a b")],
                "TOKEN_COOKIE",
            ),
            (
                &[("JWT_SECRET", TEST_SECRET), ("PUBLIC_PATHS", "health")],
                "PUBLIC_PATHS",
            ),
            (
                &[("JWT_SECRET", TEST_SECRET), ("PASSWORD_CHANGE_PATH", "pw")],
                "PASSWORD_CHANGE_PATH",
            ),
            (&[("JWT_JWKS", "{not json")], "JWT_JWKS"),
            (
                &[("JWT_SECRET", TEST_SECRET), ("REQUIRE_SID", "yes")],
                "REQUIRE_SID",
            ),
            (
                &[
                    ("JWT_SECRET", TEST_SECRET),
                    ("JWT_JWKS_CACHE_SECONDS", "59"),
                ],
                "JWT_JWKS_CACHE_SECONDS",
            ),
            (
                &[
                    ("JWT_SECRET", TEST_SECRET),
                    ("JWT_JWKS_CACHE_SECONDS", "86401"),
                ],
                "JWT_JWKS_CACHE_SECONDS",
            ),
            (
                &[(
                    "JWT_JWKS",
                    r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#,
                )],
                "JWT_JWKS",
            ),
            (&[("JWT_JWKS_URL", "ftp://idp")], "JWT_JWKS_URL"),
            (
                &[("JWT_JWKS_URL", "http://idp.example/jwks")],
                "JWT_JWKS_URL",
            ),
            (
                &[("JWT_JWKS_URL", "http://localhost.evil.example/jwks")],
                "JWT_JWKS_URL",
            ),
            (&[("JWT_ISSUERS", "{}")], "JWT_ISSUERS"),
            (
                &[
                    ("JWT_SECRET", TEST_SECRET),
                    ("JWT_MAX_TOKEN_AGE_SECONDS", "0"),
                ],
                "JWT_MAX_TOKEN_AGE_SECONDS",
            ),
            (
                &[("JWT_SECRET", TEST_SECRET), ("ADMIN_TOKEN", "tiny")],
                "ADMIN_TOKEN",
            ),
        ];
        for (pairs, setting) in cases {
            let err = config_with(pairs).unwrap_err();
            assert_eq!(err.setting, *setting, "{pairs:?}");
            for (name, value) in pairs.iter() {
                if ["JWT_SECRET", "ADMIN_TOKEN"].contains(name) {
                    assert!(!err.to_string().contains(value), "{err} echoes a secret");
                }
            }
        }
    }
}
