//! Which part of the gateway a request belongs to.

/// One `PUBLIC_PATHS` entry: an exact path, or a prefix when it ends in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Exact(String),
    Prefix(String),
}

impl PathPattern {
    pub fn parse(pattern: &str) -> Option<PathPattern> {
        if !pattern.starts_with('/') {
            return None;
        }
        Some(match pattern.strip_suffix('*') {
            Some(prefix) => PathPattern::Prefix(prefix.to_owned()),
            None => PathPattern::Exact(pattern.to_owned()),
        })
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => p == path,
            PathPattern::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// CORS preflight: forwarded without a token (browsers never send one).
    Preflight,
    /// Matches `PUBLIC_PATHS`: forwarded without verification.
    Public,
    Logout,
    LogoutAll,
    PasswordChange,
    AdminRevoke,
    AdminIntrospect,
    /// Everything else: verified, checked for revocation, forwarded.
    Protected,
}

pub const LOGOUT_PATH: &str = "/auth/logout";
pub const LOGOUT_ALL_PATH: &str = "/auth/logout-all";
pub const ADMIN_REVOKE_PATH: &str = "/_admin/revoke";
pub const ADMIN_INTROSPECT_PATH: &str = "/_admin/introspect";

/// Gateway-owned routes win over `PUBLIC_PATHS`, so a broad public prefix
/// can never switch off logout or the admin API's authentication. They are
/// matched loosely ([`loosely`]), as an origin might route them:
/// `POST /Auth//Password-Change/` must not change a password without the
/// cut-off. `password_change_path` must already be in loose form.
pub fn route(
    method: &str,
    path: &str,
    is_cors_preflight: bool,
    password_change_path: &str,
    public_paths: &[PathPattern],
) -> Route {
    let loose = loosely(path);
    // The constants are already in loose form; the configured path is
    // loosened once, at configuration time.
    let is = |route: &str| same_route(&loose, route);
    match () {
        _ if is(LOGOUT_PATH) => Route::Logout,
        _ if is(LOGOUT_ALL_PATH) => Route::LogoutAll,
        _ if is(ADMIN_REVOKE_PATH) => Route::AdminRevoke,
        _ if is(ADMIN_INTROSPECT_PATH) => Route::AdminIntrospect,
        _ if method == "OPTIONS" && is_cors_preflight => Route::Preflight,
        _ if is(password_change_path) => Route::PasswordChange,
        // Public paths are matched exactly as sent: loosening would widen them.
        _ if !hides_separators(path)
            && public_paths.iter().any(|pattern| pattern.matches(path)) =>
        {
            Route::Public
        }
        _ => Route::Protected,
    }
}

/// An encoded `/`, `\` or `.` may be decoded by the origin into a path
/// outside the public prefix (`/public/..%2Fadmin`), and Java servers
/// resolve `/public/..;/admin` to `/admin`; such paths are never public, so
/// they get verified like any other.
fn hides_separators(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains(';')
        || ["%2f", "%5c", "%2e"]
            .iter()
            .any(|encoded| lower.contains(encoded))
}

/// A route also answers with a format suffix on its last segment
/// (`/auth/password-change.json`), as Rails and others route it.
fn same_route(loose_path: &str, loose_route: &str) -> bool {
    match loose_path.strip_prefix(loose_route) {
        Some("") => true,
        Some(rest) => rest.starts_with('.') && !rest.contains('/'),
        None => false,
    }
}

/// The form in which gateway routes are compared: lower case,
/// percent-decoded, runs of `/` merged (nginx, Tomcat), `;params` dropped
/// (Tomcat, Jetty), no trailing `/`.
pub fn loosely(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| path.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte.to_ascii_lowercase());
                i += 3;
            }
            None => {
                out.push(bytes[i].to_ascii_lowercase());
                i += 1;
            }
        }
    }
    let mut merged: Vec<u8> = Vec::with_capacity(out.len());
    let mut in_params = false;
    for byte in out {
        match byte {
            b'/' if merged.last() == Some(&b'/') => in_params = false,
            b'/' => {
                in_params = false;
                merged.push(b'/');
            }
            b';' => in_params = true,
            _ if in_params => {}
            _ => merged.push(byte),
        }
    }
    while merged.len() > 1 && merged.last() == Some(&b'/') {
        merged.pop();
    }
    String::from_utf8_lossy(&merged).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public() -> Vec<PathPattern> {
        ["/health", "/static/*"]
            .iter()
            .map(|p| PathPattern::parse(p).unwrap())
            .collect()
    }

    #[test]
    fn public_paths_exact_and_prefix() {
        let r = |path| route("GET", path, false, "/auth/password-change", &public());
        assert_eq!(r("/health"), Route::Public);
        assert_eq!(r("/health/deep"), Route::Protected);
        assert_eq!(r("/static/app.js"), Route::Public);
        assert_eq!(r("/static"), Route::Protected);
        assert_eq!(r("/api"), Route::Protected);
        assert_eq!(r("/static/..%2Fapi"), Route::Protected);
        assert_eq!(r("/static/%2e%2e/api"), Route::Protected);
        assert_eq!(r("/static/..;/api"), Route::Protected);
    }

    #[test]
    fn gateway_routes_win_over_public_paths() {
        let everything = vec![PathPattern::parse("/*").unwrap()];
        let r = |path| route("POST", path, false, "/auth/password-change", &everything);
        assert_eq!(r("/auth/logout"), Route::Logout);
        assert_eq!(r("/auth/logout-all"), Route::LogoutAll);
        assert_eq!(r("/_admin/revoke"), Route::AdminRevoke);
        assert_eq!(r("/_admin/introspect"), Route::AdminIntrospect);
        assert_eq!(r("/auth/password-change"), Route::PasswordChange);
        assert_eq!(r("/other"), Route::Public);
    }

    #[test]
    fn gateway_routes_match_as_an_origin_might() {
        let r = |path| route("POST", path, false, "/auth/password-change", &[]);
        for path in [
            "/auth/password-change/",
            "/Auth/Password-Change",
            "/auth/password%2Dchange",
            "/auth/password-change//",
        ] {
            assert_eq!(r(path), Route::PasswordChange, "{path}");
        }
        assert_eq!(r("/AUTH/LOGOUT/"), Route::Logout);
        assert_eq!(r("/auth/password-changes"), Route::Protected);
        assert_eq!(r("/auth/password-change.json/x"), Route::Protected);
        assert_eq!(r("/auth/password-change/x"), Route::Protected);
    }

    #[test]
    fn only_real_preflights_skip_verification() {
        assert_eq!(route("OPTIONS", "/api", true, "/pw", &[]), Route::Preflight);
        assert_eq!(
            route("OPTIONS", "/api", false, "/pw", &[]),
            Route::Protected
        );
        assert_eq!(route("GET", "/api", true, "/pw", &[]), Route::Protected);
    }
}
