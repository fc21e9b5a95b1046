//! Origin-directed revocation: an origin answering a verified request may
//! add `Tokengate-Revoke: token | session | user` (comma-separated for
//! several, any letter case, spaces allowed) to have Tokengate revoke, for
//! the token presented on that request:
//! - `token`: its ID, until its `exp` + leeway;
//! - `session`: its `sid` session; a token without `sid` is its own session,
//!   so its ID is revoked instead;
//! - `user`: every token of its `sub` issued before the origin's answer
//!   (a cut-off at the instant read after the origin answered).
//!
//! Whatever the response's status: the origin knows why it asks. The
//! gateway removes the header from every response, verified or not,
//! and passes a verified request's response on only once the revocation is
//! recorded; otherwise the client gets 503 `sessions_not_revoked`
//! ([`crate::gateway::Gateway::finish_origin_revocation`]). Unknown members
//! are ignored (and logged by the adapter).

/// The response header, as an origin sends it. The host reads and removes
/// it (`js/host.mjs`, `forward`) under the name given here.
pub const HEADER: &str = "Tokengate-Revoke";

/// What an origin asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directive {
    pub token: bool,
    pub session: bool,
    pub user: bool,
}

impl Directive {
    pub fn is_empty(&self) -> bool {
        !(self.token || self.session || self.user)
    }
}

/// Parses the header's value (several headers arrive joined by `, `).
/// Returns the directive and the members it did not understand (for a log
/// line; they are otherwise ignored). Empty members are skipped silently.
pub fn parse(value: &str) -> (Directive, Vec<String>) {
    let mut directive = Directive::default();
    let mut unknown = Vec::new();
    for member in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        match member.to_ascii_lowercase().as_str() {
            "token" => directive.token = true,
            "session" => directive.session = true,
            "user" => directive.user = true,
            _ => unknown.push(member.chars().take(64).collect()),
        }
    }
    (directive, unknown)
}

/// One write a directive comes to, for a token with this `sid` and `sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// The token's ID (`v1:jti:`).
    Token,
    /// The session (`v1:sid:`).
    Session(String),
    /// A user cut-off (`v1:sub:`).
    User(String),
    /// `user` for a token without `sub`: nothing to cut off.
    NoUser,
}

/// The writes a directive asks for, each once, in this order: session,
/// token, user.
pub fn plan(directive: Directive, sid: Option<&str>, sub: Option<&str>) -> Vec<Write> {
    let mut writes = Vec::new();
    let mut token = directive.token;
    if directive.session {
        match sid {
            Some(sid) => writes.push(Write::Session(sid.to_owned())),
            // A token without a session is its own session.
            None => token = true,
        }
    }
    if token {
        writes.push(Write::Token);
    }
    if directive.user {
        writes.push(match sub {
            Some(sub) => Write::User(sub.to_owned()),
            None => Write::NoUser,
        });
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(token: bool, session: bool, user: bool) -> Directive {
        Directive {
            token,
            session,
            user,
        }
    }

    #[test]
    fn header_values_are_read_loosely() {
        assert_eq!(parse("token"), (d(true, false, false), vec![]));
        assert_eq!(parse(" Session "), (d(false, true, false), vec![]));
        assert_eq!(parse("USER,token"), (d(true, false, true), vec![]));
        assert_eq!(
            parse("token , session,\tuser"),
            (d(true, true, true), vec![])
        );
        assert_eq!(parse("token, token"), (d(true, false, false), vec![]));
        assert_eq!(parse(", ,"), (Directive::default(), vec![]));
        assert_eq!(
            parse("everything, user, tokens"),
            (
                d(false, false, true),
                vec!["everything".to_owned(), "tokens".to_owned()]
            )
        );
        let (_, unknown) = parse(&"x".repeat(500));
        assert_eq!(unknown[0].len(), 64, "logged members are bounded");
        assert!(parse("").0.is_empty());
        assert!(!parse("user").0.is_empty());
    }

    #[test]
    fn writes_follow_the_tokens_claims() {
        assert_eq!(
            plan(d(true, false, false), Some("s"), Some("u")),
            [Write::Token]
        );
        assert_eq!(
            plan(d(false, true, false), Some("s"), Some("u")),
            [Write::Session("s".into())]
        );
        // No sid: the token is its own session.
        assert_eq!(plan(d(false, true, false), None, Some("u")), [Write::Token]);
        assert_eq!(plan(d(true, true, false), None, None), [Write::Token]);
        assert_eq!(
            plan(d(false, false, true), Some("s"), Some("u")),
            [Write::User("u".into())]
        );
        assert_eq!(
            plan(d(false, false, true), Some("s"), None),
            [Write::NoUser]
        );
        assert_eq!(
            plan(d(true, true, true), Some("s"), Some("u")),
            [
                Write::Session("s".into()),
                Write::Token,
                Write::User("u".into())
            ]
        );
        assert!(plan(Directive::default(), Some("s"), Some("u")).is_empty());
    }
}
