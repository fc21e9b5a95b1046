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
    /// `BACKCHANNEL_LOGOUT_PATH`, when configured: the identity provider's
    /// OpenID Connect back-channel logout requests.
    BackchannelLogout,
    /// `REFRESH_PATH`, when configured: the origin's refresh route, where
    /// a refresh token is spent in the user's Durable Object before the
    /// request is forwarded ([`crate::refresh`]).
    Refresh,
    /// Everything else: verified, checked for revocation, forwarded.
    Protected,
}

pub const LOGOUT_PATH: &str = "/auth/logout";
pub const LOGOUT_ALL_PATH: &str = "/auth/logout-all";
pub const ADMIN_REVOKE_PATH: &str = "/_admin/revoke";
pub const ADMIN_INTROSPECT_PATH: &str = "/_admin/introspect";
/// The gateway's routes with fixed paths, in loose form.
pub const FIXED_PATHS: [&str; 4] = [
    LOGOUT_PATH,
    LOGOUT_ALL_PATH,
    ADMIN_REVOKE_PATH,
    ADMIN_INTROSPECT_PATH,
];

/// Gateway-owned routes win over `PUBLIC_PATHS`, so a broad public prefix
/// can never switch off logout or the admin API's authentication. They are
/// matched loosely ([`loosely`]), as an origin might route them:
/// `POST /Auth//Password-Change/` or `POST /x/..;/auth/password-change`
/// must not change a password without the cut-off. `password_change_path`
/// must already be in loose form.
pub fn route(
    method: &str,
    path: &str,
    is_cors_preflight: bool,
    password_change_path: &str,
    public_paths: &[PathPattern],
) -> Route {
    route_with_backchannel(
        method,
        path,
        is_cors_preflight,
        password_change_path,
        None,
        public_paths,
    )
}

/// [`route`], with the back-channel logout route when
/// `backchannel_logout_path` (loose form) is configured. It is matched as
/// loosely as the other gateway routes, after the fixed ones and before
/// preflights and `PUBLIC_PATHS`, like the logout routes it takes POST only.
pub fn route_with_backchannel(
    method: &str,
    path: &str,
    is_cors_preflight: bool,
    password_change_path: &str,
    backchannel_logout_path: Option<&str>,
    public_paths: &[PathPattern],
) -> Route {
    route_loose(
        method,
        &LoosePath::new(path),
        is_cors_preflight,
        password_change_path,
        backchannel_logout_path,
        public_paths,
    )
}

/// A request path with the two loose readings an origin may give it
/// (origins differ on `//` next to `..`, see `Slashes`), worked out once
/// per request: a gateway route matches if either reading reaches it.
pub struct LoosePath<'a> {
    path: &'a str,
    merged: String,
    /// The reading that keeps empty segments, when it differs from `merged`
    /// (for most paths it does not, and each route is then compared once).
    kept: Option<String>,
}

impl<'a> LoosePath<'a> {
    pub fn new(path: &'a str) -> LoosePath<'a> {
        let (merged, kept) = match plain_loose_form(path) {
            Some(plain) => (plain, None),
            None => {
                let merged = loose_form(path, Slashes::MergeFirst);
                let kept = loose_form(path, Slashes::Keep);
                let kept = (kept != merged).then_some(kept);
                (merged, kept)
            }
        };
        LoosePath { path, merged, kept }
    }

    fn readings(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.merged.as_str()).chain(self.kept.as_deref())
    }

    /// Does the path reach the gateway route `loose_route` (in loose form)?
    pub fn reaches(&self, loose_route: &str) -> bool {
        self.readings().any(|loose| same_route(loose, loose_route))
    }

    /// Is the path under one of `STRICT_PATHS`? Unlike a public path, a
    /// strict one is matched generously, since a miss would skip a check
    /// rather than add one: as sent, and as an origin might decode and
    /// resolve it, the way gateway routes are matched (`/Account%2fKeys`,
    /// `/x/../account/keys`, `/account/keys.json`, `/account/keys%20`);
    /// `/account/*` covers `/account` itself too.
    pub fn is_strict(&self, strict_paths: &[StrictPath]) -> bool {
        strict_paths.iter().any(|strict| {
            strict.pattern.matches(self.path)
                || self.readings().any(|reading| {
                    // Origins trim what ends a path: `/account%20`, `/account%00`.
                    let reading = reading.trim_end_matches(|c: char| c <= ' ' || c == '\x7f');
                    strict.covers(reading)
                })
        })
    }
}

/// One `STRICT_PATHS` entry, with its loose form worked out once (at
/// configuration time), not on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictPath {
    pattern: PathPattern,
    loose: String,
}

impl StrictPath {
    pub fn parse(pattern: &str) -> Option<StrictPath> {
        let pattern = PathPattern::parse(pattern)?;
        let (PathPattern::Exact(text) | PathPattern::Prefix(text)) = &pattern;
        let loose = loosely(text);
        Some(StrictPath { pattern, loose })
    }

    /// Does this entry cover a path in loose form?
    fn covers(&self, loose: &str) -> bool {
        match &self.pattern {
            PathPattern::Exact(_) => same_route(loose, &self.loose),
            // `/account/*`: the directory, anything under it, and the
            // directory with a format suffix.
            PathPattern::Prefix(prefix) if prefix.ends_with('/') => {
                let dir = self.loose.as_str();
                dir == "/"
                    || same_route(loose, dir)
                    || loose
                        .strip_prefix(dir)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            PathPattern::Prefix(_) => loose.starts_with(self.loose.as_str()),
        }
    }
}

/// [`route_with_backchannel`] on a path whose loose readings are known.
pub fn route_loose(
    method: &str,
    loose: &LoosePath<'_>,
    is_cors_preflight: bool,
    password_change_path: &str,
    backchannel_logout_path: Option<&str>,
    public_paths: &[PathPattern],
) -> Route {
    // The constants are already in loose form; the configured path is
    // loosened once, at configuration time.
    let is = |route: &str| loose.reaches(route);
    let path = loose.path;
    match () {
        _ if is(LOGOUT_PATH) => Route::Logout,
        _ if is(LOGOUT_ALL_PATH) => Route::LogoutAll,
        _ if is(ADMIN_REVOKE_PATH) => Route::AdminRevoke,
        _ if is(ADMIN_INTROSPECT_PATH) => Route::AdminIntrospect,
        _ if backchannel_logout_path.is_some_and(is) => Route::BackchannelLogout,
        _ if method == "OPTIONS" && is_cors_preflight => Route::Preflight,
        _ if is(password_change_path) => Route::PasswordChange,
        // Public paths are matched exactly as sent: loosening would widen
        // them. The pattern first: most paths match none, and the check of
        // how an origin could read the path allocates and scans it several
        // times (it was 1 % of a request's instructions, run for nothing).
        _ if public_paths.iter().any(|pattern| pattern.matches(path))
            && !may_resolve_elsewhere(path) =>
        {
            Route::Public
        }
        _ => Route::Protected,
    }
}

/// Could an origin read this path as a different one than its plain text
/// says? Such a path is never public, so it gets verified like any other:
/// an origin may decode or resolve it into a path outside the public prefix.
/// - a dot segment, raw (`/public/../admin`, if the runtime left it) or
///   encoded (`%2e`), and encoded separators (`%2f`, `%5c`): Tomcat, Jetty
///   and nginx resolve `/public/..%2fadmin` to `/admin`;
/// - `\`, which Windows servers and some frameworks take for `/`;
/// - `;` (Java path parameters: `/public/..;/admin` is `/admin` there) and
///   an encoded `;` (`%3b`, in case an origin decodes before stripping);
/// - an encoded `%` (`%25`): a path decoded twice (a proxy, then the app)
///   turns `%252e%252e` into `..`, and `%252f` into `/`. Gateway routes are
///   matched on the fully decoded path ([`loosely`]); a public path is
///   matched as sent, so refusing `%25` is the only sound answer there,
///   however many times an origin decodes;
/// - a `%` that does not start a valid escape (IIS reads `%u002e` as `.`),
///   and escapes that do not decode to UTF-8 (overlong `%c0%ae` is `.` to
///   some old decoders).
fn may_resolve_elsewhere(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains([';', '\\'])
        || ["%2f", "%5c", "%2e", "%3b", "%25"]
            .iter()
            .any(|encoded| lower.contains(encoded))
        // An encoded control character, or a space ending a segment:
        // origins trim or cut paths there (`/admin%20`, `/admin%00.html`).
        || encodes_control_or_space(&lower)
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return true;
    }
    let bytes = path.as_bytes();
    let escapes_valid = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    !escapes_valid || std::str::from_utf8(&percent_decode(bytes)).is_err()
}

fn encodes_control_or_space(lower: &str) -> bool {
    let bytes = lower.as_bytes();
    bytes.windows(3).enumerate().any(|(i, w)| {
        let control = w[0] == b'%' && (matches!(w[1], b'0' | b'1') || w[1..] == *b"7f");
        // A space ending a segment is trimmed by some routers; inside a
        // name (`a%20b.js`) it is an ordinary file name.
        let trailing_space = w == b"%20" && matches!(bytes.get(i + 3), None | Some(b'/'));
        control || trailing_space
    })
}

/// A route also answers with a format suffix on its last segment
/// (`/auth/password-change.json`), as Rails and others route it.
pub(crate) fn same_route(loose_path: &str, loose_route: &str) -> bool {
    match loose_path.strip_prefix(loose_route) {
        Some("") => true,
        Some(rest) => rest.starts_with('.') && !rest.contains('/'),
        None => false,
    }
}

/// Origins disagree about `//` next to `..`: nginx (`merge_slashes`),
/// Tomcat and Go's `path.Clean` merge runs of `/` first, so
/// `/auth/x//../logout` is `/auth/logout`; a strict RFC 3986 resolver keeps
/// the empty segment, so `/auth//../logout` is `/auth/logout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slashes {
    MergeFirst,
    Keep,
}

/// The form in which gateway routes are compared: percent-decoded until no
/// escape is left ([`decode_fully`]: `%2f`, `%5c`, `%2e` become `/`, `\`,
/// `.`, and so does `%252e`), lower case, `\` read as `/`, runs of `/`
/// merged (nginx, Tomcat), `;params` dropped from every segment (Tomcat,
/// Jetty: `..;` is `..`), `.` and `..` segments resolved as RFC 3986
/// `remove_dot_segments` does, never above the root, and no trailing `/`.
/// Idempotent: its output has no escape, dot segment, `;`, `\` or `//`
/// left to normalize.
pub fn loosely(path: &str) -> String {
    loose_form(path, Slashes::MergeFirst)
}

fn loose_form(path: &str, slashes: Slashes) -> String {
    let mut bytes = decode_fully(path.as_bytes());
    for byte in &mut bytes {
        *byte = match byte.to_ascii_lowercase() {
            b'\\' => b'/',
            other => other,
        };
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    // The path starts with `/`, so the first piece is empty; a path that
    // does not is read as if it did.
    for segment in bytes.split(|&b| b == b'/') {
        let segment = segment.split(|&b| b == b';').next().unwrap_or_default();
        match segment {
            b"." => {}
            // Never above the root: a `..` there is dropped.
            b".." => {
                segments.pop();
            }
            b"" if slashes == Slashes::MergeFirst || segments.is_empty() => {}
            _ => segments.push(segment),
        }
    }
    // A trailing `/` (an empty last segment) does not count.
    while segments.last() == Some(&&b""[..]) {
        segments.pop();
    }
    let mut out = Vec::with_capacity(bytes.len() + 1);
    for segment in &segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// [`loose_form`] of a path with nothing to decode or resolve (no `%`,
/// `\\`, `;`, `.`, or `//`), where both readings are the same: lower case,
/// without a trailing `/`. Most paths are such; `None` for the others.
/// Worked out in one pass, since it runs on every request.
fn plain_loose_form(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let needs_work = bytes
        .iter()
        .any(|b| matches!(b, b'%' | b'\\' | b';' | b'.'))
        || bytes.windows(2).any(|pair| pair == b"//");
    if needs_work || !path.starts_with('/') {
        return None;
    }
    let trimmed = path.trim_end_matches('/');
    Some(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_ascii_lowercase()
    })
}

/// Percent-decodes until no escape is left, in one linear pass, however
/// often the path was encoded (`%25252e` is `.`).
///
/// Why decode to the end rather than once, as a normal origin does: an
/// origin behind something that decodes too (a proxy, a framework's second
/// pass) reads `/x/%252e%252e/auth/password-change` as the password change.
/// Matching a gateway route too eagerly only costs that one origin path (the
/// gateway answers it, or records a cut-off after a password change, which
/// fails safe); matching too little lets a password change skip the
/// cut-off. A fixed number of rounds would leave a deeper encoding open,
/// and round after round costs quadratic time on a long path; decoding at
/// the tail of the output costs neither.
fn decode_fully(bytes: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    for &byte in bytes {
        out.push(byte);
        // A decoded byte can complete an escape with the bytes before it
        // (`%25` then `2e`); each replacement shrinks the output by two, so
        // the whole loop stays linear.
        while let [.., b'%', high, low] = out[..] {
            let Some(decoded) = hex_pair(high, low) else {
                break;
            };
            out.truncate(out.len() - 3);
            out.push(decoded);
        }
    }
    out
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}

/// One round of percent-decoding; `%` without two hex digits stays as is.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes.get(i..i + 3) {
            Some(&[b'%', high, low]) => hex_pair(high, low),
            _ => None,
        };
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
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
    fn dot_segments_and_encoded_separators_reach_gateway_routes() {
        let everything = vec![PathPattern::parse("/*").unwrap()];
        let r = |path| route("POST", path, false, "/auth/password-change", &everything);
        for path in [
            "/x/..;/auth/password-change",
            "/x/..%2Fauth/password-change",
            "/x/..%2fauth/password-change",
            "/x/..%5Cauth/password-change",
            "/x/%2e%2e/auth/password-change",
            "/x/%2E%2E/auth/password-change",
            "/x/.%2e/auth/password-change",
            "/x/..\\auth/password-change",
            "\\auth\\password-change",
            "/auth/./password-change",
            "/./auth/password-change",
            "/../../auth/password-change",
            "/x/y/../../auth/password-change",
            "/x;a=b/..;c=d/auth/password-change",
            "/auth/x//../password-change",
            "/auth//../auth/password-change",
            "/auth/password-change/x/..",
            "/auth/password-change/.",
            // Decoded twice (a proxy, then the app) this is the route too.
            "/x/%252e%252e/auth/password-change",
            "/x/..%252fauth/password-change",
        ] {
            assert_eq!(r(path), Route::PasswordChange, "{path}");
        }
        assert_eq!(r("/x/.%2e/auth/logout"), Route::Logout);
        assert_eq!(r("/./auth/logout"), Route::Logout);
        assert_eq!(r("\\auth\\logout"), Route::Logout);
        assert_eq!(r("/auth/logout/..%2flogout-all"), Route::LogoutAll);
        assert_eq!(r("/x/..;/_admin/revoke"), Route::AdminRevoke);
        assert_eq!(r("/_admin/%2e/introspect"), Route::AdminIntrospect);
        // A custom password-change path is resolved the same way.
        let custom = loosely("/Account/Password");
        assert_eq!(
            route("POST", "/x/..%2faccount/password", false, &custom, &[]),
            Route::PasswordChange
        );
        // Resolution that leaves the route is not the route.
        for path in [
            "/auth/password-change/..",
            "/auth/password-change/../password-changes",
            "/auth/x/../../password-change",
        ] {
            assert_ne!(r(path), Route::PasswordChange, "{path}");
            assert_eq!(r(path), Route::Protected, "{path}: never public");
        }
    }

    #[test]
    fn loose_form_resolves_like_remove_dot_segments() {
        assert_eq!(loosely("/a/b/c/./../../g"), "/a/g");
        assert_eq!(loosely("/../.."), "/");
        assert_eq!(loosely("/a/.."), "/");
        assert_eq!(loosely("/A//B/"), "/a/b");
        assert_eq!(loosely("/a;x/b;y=1"), "/a/b");
        assert_eq!(loosely("/a%2fb%5Cc"), "/a/b/c");
        assert_eq!(loosely("/a/%2e%2E/b"), "/b");
        assert_eq!(loosely("/%25252e%25252e/b"), "/b", "decoded to the end");
        assert_eq!(loosely("/x/%2525252e%2525252e/b"), "/b");
        assert_eq!(loosely("/%%2e%2%35"), "/%.%");
        assert_eq!(loosely("/100%/%+1/%zz"), "/100%/%+1/%zz");
        assert_eq!(loose_form("/a//../b", Slashes::Keep), "/a/b");
        assert_eq!(loose_form("/a//../b", Slashes::MergeFirst), "/b");
    }

    #[test]
    fn strict_paths_cover_what_an_origin_would_route_there() {
        let strict = |pattern: &str, path: &str| {
            LoosePath::new(path).is_strict(&[StrictPath::parse(pattern).unwrap()])
        };
        for path in [
            "/billing",
            "/billing/",
            "/Billing/Cards",
            "/billing.json",
            "/x/../billing/cards",
            "/billing%2fcards",
            "/billing%20",
            "/billing%00",
            "/billing;v=1/cards",
        ] {
            assert!(strict("/billing/*", path), "{path}");
        }
        assert!(!strict("/billing/*", "/billingx"));
        assert!(!strict("/billing/*", "/bill"));
        for path in [
            "/app/account",
            "/APP/Account.json",
            "/app/account/",
            "/app/account%20",
        ] {
            assert!(strict("/app/account", path), "{path}");
        }
        assert!(!strict("/app/account", "/app/accounts"));
        assert!(strict("/bill*", "/billing"));
        assert!(strict("/*", "/anything"));
    }

    proptest::proptest! {
        #[test]
        fn the_plain_path_shortcut_reads_a_path_as_both_loose_forms_do(
            path in "(/|[aA]|%|\\.|;|\\\\|[Zé ])*"
        ) {
            if let Some(plain) = plain_loose_form(&path) {
                proptest::prop_assert_eq!(&plain, &loose_form(&path, Slashes::MergeFirst));
                proptest::prop_assert_eq!(&plain, &loose_form(&path, Slashes::Keep));
            }
        }
    }

    #[test]
    fn plain_paths_take_the_shortcut_and_the_others_do_not() {
        assert_eq!(
            plain_loose_form("/API/Items/").as_deref(),
            Some("/api/items")
        );
        assert_eq!(plain_loose_form("/").as_deref(), Some("/"));
        assert_eq!(plain_loose_form("///"), None);
        for tricky in [
            "/a/../b", "/a%2fb", "/a;x", "/a\\b", "/a//b", "a/b", "", "/v1.2",
        ] {
            assert_eq!(plain_loose_form(tricky), None, "{tricky}");
        }
    }

    #[test]
    fn loose_form_is_idempotent() {
        for path in [
            "/auth/password%252Dchange",
            "/x/%252e%252e/auth/logout",
            "/a/%2525%32%35%2e/b",
            "/%%2e%2%35/x",
            "/A//b;c/./../d%5c%2F/",
            "/caf%C3%A9/%c0%ae/x",
            "/..%2f..%2f",
        ] {
            let once = loosely(path);
            assert_eq!(loosely(&once), once, "{path}");
        }
        assert_eq!(
            route(
                "POST",
                "/auth/password%252Dchange",
                false,
                "/auth/password-change",
                &[]
            ),
            Route::PasswordChange
        );
    }

    #[test]
    fn paths_an_origin_could_resolve_elsewhere_are_never_public() {
        let r = |path| route("GET", path, false, "/auth/password-change", &public());
        for path in [
            "/static/../api",
            "/static/./app.js",
            "/static/x/..",
            "/static/%2e%2e/api",
            "/static/.%2E/api",
            "/static/..%2fapi",
            "/static/..%5capi",
            "/static/..\\api",
            "/static\\..\\api",
            "/static/..;/api",
            "/static/app.js;jsessionid=1",
            "/static/..%3b/api",
            "/static/%252e%252e/api",
            "/static/..%252fapi",
            "/static/%u002e%u002e/api",
            "/static/%c0%ae%c0%ae/api",
            "/static/%e0%80%ae%e0%80%ae/api",
            "/static/100%",
            "/static/..%00/api",
            "/static/x%20/../api",
            "/static/app.js%20",
            "/static/app.js%0a",
        ] {
            assert_eq!(r(path), Route::Protected, "{path}");
        }
        for path in [
            "/static/app.js",
            "/static/a%20b.js",
            "/static/.well-known",
            "/static/caf%C3%A9",
        ] {
            assert_eq!(r(path), Route::Public, "{path}");
        }
    }

    #[test]
    fn the_back_channel_route_is_matched_loosely_and_wins_over_public_paths() {
        let everything = vec![PathPattern::parse("/*").unwrap()];
        let bc = loosely("/auth/backchannel-logout");
        let r = |method, path, preflight| {
            route_with_backchannel(
                method,
                path,
                preflight,
                "/auth/password-change",
                Some(&bc),
                &everything,
            )
        };
        for path in [
            "/auth/backchannel-logout",
            "/Auth//Backchannel-Logout/",
            "/x/..;/auth/backchannel-logout",
            "/auth/backchannel%2Dlogout",
            "/auth/backchannel-logout;x=1",
        ] {
            assert_eq!(r("POST", path, false), Route::BackchannelLogout, "{path}");
            assert_eq!(r("GET", path, false), Route::BackchannelLogout, "{path}");
            assert_eq!(r("OPTIONS", path, true), Route::BackchannelLogout, "{path}");
        }
        assert_eq!(r("POST", "/auth/backchannel-logouts", false), Route::Public);
        assert_eq!(r("POST", "/auth/logout", false), Route::Logout);
        // Not configured: an ordinary path.
        assert_eq!(
            route_with_backchannel(
                "POST",
                "/auth/backchannel-logout",
                false,
                "/auth/password-change",
                None,
                &[],
            ),
            Route::Protected
        );
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
