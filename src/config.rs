//! Configuration, parsed once per isolate from Worker vars and secrets into a
//! typed value. A bad setting is reported by name (never by value: it may be
//! a secret) and the gateway answers `misconfigured` until it is fixed.

use crate::keys::{Algorithm, HmacKeys};
use crate::routes::PathPattern;

pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
pub const DEFAULT_PASSWORD_CHANGE_PATH: &str = "/auth/password-change";
/// RFC 7518 section 3.2: an HMAC key must be at least as long as the hash.
/// We ask for the HS256 minimum for every HS algorithm.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL that requests are forwarded to; `None` forwards to the
    /// request's own URL (a Worker on a route in front of a zone's origin).
    pub origin_url: Option<String>,
    pub hmac: Option<HmacKeys>,
    /// Algorithms accepted; never empty, never `none`.
    pub algorithms: Vec<Algorithm>,
    /// Accepted `iss` values; empty means `iss` is not checked.
    pub issuers: Vec<String>,
    /// Accepted audiences; empty means `aud` is not checked.
    pub audiences: Vec<String>,
    pub leeway_seconds: u64,
    pub required_typ: Option<String>,
    pub max_token_bytes: usize,
    pub token_cookie: Option<String>,
    /// `Path` and `Domain` the token cookie was set with, so that logout can
    /// clear exactly that cookie.
    pub token_cookie_path: String,
    pub token_cookie_domain: Option<String>,
    pub public_paths: Vec<PathPattern>,
    pub password_change_path: String,
    pub admin_token: Option<String>,
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

        if get("JWT_JWKS").is_some() || get("JWT_JWKS_URL").is_some() {
            return Err(invalid(
                "JWT_JWKS",
                "public-key verification is not supported by this build; use JWT_SECRET",
            ));
        }

        let hmac = match lookup("JWT_SECRET") {
            Some(secret) if secret.len() < MIN_HMAC_SECRET_BYTES => {
                return Err(invalid(
                    "JWT_SECRET",
                    format!("must be at least {MIN_HMAC_SECRET_BYTES} bytes (RFC 7518 3.2)"),
                ))
            }
            Some(secret) => Some(HmacKeys::new(secret.as_bytes())),
            None => None,
        };

        let algorithms = match get("JWT_ALGORITHMS") {
            None => Algorithm::ALL
                .iter()
                .copied()
                .filter(|alg| alg.is_hmac() && hmac.is_some())
                .collect(),
            Some(names) => {
                let mut algorithms = Vec::new();
                for name in list(Some(&names)) {
                    let alg = Algorithm::from_name(&name).ok_or_else(|| {
                        invalid(
                            "JWT_ALGORITHMS",
                            format!("unknown or forbidden algorithm {name:?}"),
                        )
                    })?;
                    if alg.is_hmac() && hmac.is_none() {
                        return Err(invalid(
                            "JWT_ALGORITHMS",
                            format!("{name} needs JWT_SECRET, which is not set"),
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
                "no verification key is configured (set JWT_SECRET)",
            ));
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

        let max_token_bytes = match get("JWT_MAX_TOKEN_BYTES") {
            None => DEFAULT_MAX_TOKEN_BYTES,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (64..=65536).contains(n))
                .ok_or_else(|| invalid("JWT_MAX_TOKEN_BYTES", "must be a number, 64 to 65536"))?,
        };

        let token_cookie = get("TOKEN_COOKIE").map(|c| c.trim().to_owned());
        if let Some(name) = &token_cookie {
            let token_char = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
            if !name.chars().all(token_char) {
                return Err(invalid("TOKEN_COOKIE", "is not a valid cookie name"));
            }
        }

        let public_paths = list(get("PUBLIC_PATHS").as_deref())
            .into_iter()
            .map(|p| {
                PathPattern::parse(&p)
                    .ok_or_else(|| invalid("PUBLIC_PATHS", "each path must start with '/'"))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let password_change_path = get("PASSWORD_CHANGE_PATH")
            .map(|p| p.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_PASSWORD_CHANGE_PATH.to_owned());
        if !password_change_path.starts_with('/') {
            return Err(invalid("PASSWORD_CHANGE_PATH", "must start with '/'"));
        }

        let admin_token = lookup("ADMIN_TOKEN").filter(|t| !t.is_empty());
        if matches!(&admin_token, Some(t) if t.len() < 16) {
            return Err(invalid("ADMIN_TOKEN", "must be at least 16 characters"));
        }

        Ok(Config {
            origin_url,
            hmac,
            algorithms,
            issuers: list(get("JWT_ISSUER").as_deref()),
            audiences: list(get("JWT_AUDIENCE").as_deref()),
            leeway_seconds,
            required_typ: get("JWT_TYP").map(|t| t.trim().to_owned()),
            max_token_bytes,
            token_cookie,
            token_cookie_path: get("TOKEN_COOKIE_PATH")
                .map_or_else(|| "/".to_owned(), |p| p.trim().to_owned()),
            token_cookie_domain: get("TOKEN_COOKIE_DOMAIN").map(|d| d.trim().to_owned()),
            public_paths,
            password_change_path,
            admin_token,
        })
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
    fn minimal_config_accepts_every_hmac_algorithm() {
        let config = config_with(&[("JWT_SECRET", TEST_SECRET)]).unwrap();
        assert_eq!(
            config.algorithms,
            vec![Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512]
        );
        assert_eq!(config.max_token_bytes, 8192);
        assert_eq!(config.password_change_path, "/auth/password-change");
        assert!(config.issuers.is_empty() && config.audiences.is_empty());
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
        assert_eq!(config.issuers, ["https://a.example", "https://b.example"]);
        assert_eq!(config.audiences, ["api"]);
        assert_eq!(config.algorithms, [Algorithm::Hs512, Algorithm::Hs256]);
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
