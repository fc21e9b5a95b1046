//! What the origin receives: the target URL and the identity headers.

use crate::verify::Identity;

/// Client-sent headers whose (lower-case) name matches this pattern are
/// removed from every request, public or not, so an origin can trust the
/// identity headers. `_` counts as `-`: CGI-style origins (PHP, WSGI, Rack,
/// nginx with `underscores_in_headers`) read `X_Auth_Subject` as
/// `X-Auth-Subject`. The host applies it (`js/host.mjs`, `forward`), where
/// the headers are, without a crossing per header.
pub const SPOOFED_IDENTITY_PATTERN: &str = "^x[-_]auth[-_]";

/// Path and query of an absolute URL as the runtime hands it over (already
/// parsed and normalized by it, so no URL parser is needed here; the `url`
/// crate's IDNA tables would cost tens of KB of wasm).
pub fn split_url(url: &str) -> Option<(&str, Option<&str>)> {
    // The scheme ends at the first ':' (RFC 3986 3.1); a byte search for
    // it, where `find("://")` set up a substring searcher on every request.
    let after_scheme = url[url.find(':')?..].strip_prefix("://")?;
    let rest = &after_scheme[after_scheme.find('/')?..];
    let rest = rest.split('#').next().unwrap_or(rest);
    Some(match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    })
}

/// `ORIGIN_URL` plus the request's path and query. A path prefix in
/// `ORIGIN_URL` is kept (`https://o.example/api` + `/x` = `/api/x`).
pub fn origin_target(origin_url: &str, path: &str, query: Option<&str>) -> String {
    let base = origin_url.trim_end_matches('/');
    match query {
        Some(q) if !q.is_empty() => format!("{base}{path}?{q}"),
        _ => format!("{base}{path}"),
    }
}

/// The headers a verified request gains. Values are made header-safe:
/// bytes outside visible ASCII (space included), and `%` itself, are
/// percent-encoded, so a claim can never inject a header or be mangled by
/// the runtime. The exact
/// claims are always in `X-Auth-Claims`.
pub fn identity_headers(identity: &Identity) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("X-Auth-Token-Id", header_safe(&identity.token_id)),
        ("X-Auth-Claims", identity.claims_b64.clone()),
    ];
    if let Some(sub) = &identity.subject {
        headers.push(("X-Auth-Subject", header_safe(sub)));
    }
    if let Some(iss) = &identity.issuer {
        headers.push(("X-Auth-Issuer", header_safe(iss)));
    }
    headers
}

/// Header pairs as one string, `name\nvalue\nname\nvalue...`, for the
/// JS host (`js/host.mjs`, `addLines`): one string crosses the wasm
/// boundary instead of two per header, each of which costs a decode
/// (profiled: docs/performance.md). `\n` can appear in no header name or
/// value (the Fetch API refuses it, and the identity values are made
/// header-safe above); a pair that has one anyway is left out rather than
/// allowed to split into more pairs.
pub fn header_lines<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> String {
    let size = pairs
        .clone()
        .into_iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    let mut lines = String::with_capacity(size);
    for (name, value) in pairs {
        if name.contains('\n') || value.contains('\n') {
            continue;
        }
        if !lines.is_empty() {
            lines.push('\n');
        }
        lines.push_str(name);
        lines.push('\n');
        lines.push_str(value);
    }
    lines
}

fn header_safe(value: &str) -> String {
    let plain = |byte: &u8| byte.is_ascii_graphic() && *byte != b'%';
    // Almost every value needs no escape: one copy, not a push per byte.
    if value.as_bytes().iter().all(plain) {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        // Spaces too: the Fetch API trims them, so " admin " would arrive
        // as "admin".
        if plain(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_join_pairs_and_never_let_a_newline_split_one() {
        assert_eq!(header_lines([]), "");
        assert_eq!(
            header_lines([("X-Auth-Subject", "alice"), ("X-Auth-Claims", "e30")]),
            "X-Auth-Subject\nalice\nX-Auth-Claims\ne30"
        );
        assert_eq!(
            header_lines([("a", "x\nX-Auth-Subject\nroot"), ("b", "2"), ("c\n", "3")]),
            "b\n2"
        );
    }

    #[test]
    fn origin_target_keeps_path_prefix_and_query() {
        assert_eq!(
            origin_target("http://o:8080", "/a/b", Some("x=1&y=2")),
            "http://o:8080/a/b?x=1&y=2"
        );
        assert_eq!(
            origin_target("https://o.example/api/", "/x", None),
            "https://o.example/api/x"
        );
        assert_eq!(
            origin_target("https://o.example", "/x", Some("")),
            "https://o.example/x"
        );
    }

    #[test]
    fn split_url_takes_path_and_query() {
        assert_eq!(
            split_url("https://h.example/a/b?x=1&y"),
            Some(("/a/b", Some("x=1&y")))
        );
        assert_eq!(split_url("http://h:8787/"), Some(("/", None)));
        assert_eq!(split_url("https://h/p?q#frag"), Some(("/p", Some("q"))));
        assert_eq!(split_url("https://h"), None);
        assert_eq!(split_url("nonsense"), None);
    }

    #[test]
    fn every_identity_header_is_one_a_client_cannot_send() {
        // The pattern's literal part, `[-_]` read as `-`: what the host
        // strips from every client request.
        let stripped = |name: &str| {
            name.to_ascii_lowercase()
                .replace('_', "-")
                .starts_with("x-auth-")
        };
        let identity = Identity {
            subject: Some("alice".into()),
            issuer: Some("https://idp".into()),
            token_id: "t".into(),
            claims_b64: "e30".into(),
        };
        for (name, _) in identity_headers(&identity) {
            assert!(stripped(name), "{name}");
        }
        assert!(stripped("X_Auth_Subject") && !stripped("x-author"));
    }

    #[test]
    fn claim_values_cannot_break_headers() {
        assert_eq!(header_safe("user-1"), "user-1");
        assert_eq!(header_safe("a\r\nX-Evil: 1"), "a%0D%0AX-Evil:%201");
        assert_eq!(header_safe(" admin "), "%20admin%20");
        assert_eq!(header_safe("José"), "Jos%C3%A9");
        assert_eq!(header_safe("100%"), "100%25");
    }
}
