//! One request's life, from arrival to answer, as a sequence of [`Step`]s:
//! the core says what I/O comes next, the adapter does it and hands the
//! result back, until there is an answer. So the sequencing (which body is
//! read for which route, what a body too large is answered with, what is
//! recorded after the origin answered, and in which order) runs under
//! `cargo test`; the adapter (`src/edge/mod.rs`) only does the I/O.
//!
//! ```text
//! start ──► Reply                                   (answer the client)
//!       ├─► ReadBody ──(body)──► with_body ──► Reply | Forward
//!       └─► Forward ──(origin's status, Tokengate-Revoke)──► after_origin
//!                       ──► Some(Record) ──► record, then the origin's response
//! ```

use crate::admin::{self, AdminAction};
use crate::backchannel;
use crate::clock::NumericDate;
use crate::error::{GateError, Refusal, Reply};
use crate::gateway::{out_of_line, Decision, Gateway, Incoming};
use crate::keyring::JwksFetcher;
use crate::keys::SignatureVerifier;
use crate::origin_revoke::{self, Directive};
use crate::refresh::{self, SpendStore};
use crate::verify::Verified;

/// What the adapter does next.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per request, moved a few times: cheaper than a Box
pub enum Step {
    /// Answer the client with this.
    Reply(Reply),
    /// Read the request body, at most [`crate::form::MAX_BODY_BYTES`], with
    /// its `Content-Type` and `Content-Encoding`, and call
    /// [`Gateway::with_body`]. A body that is larger or cannot be read is
    /// answered with [`BodyWanted::unreadable`].
    ReadBody(BodyWanted),
    /// Send the request to the origin, then call [`Gateway::after_origin`]
    /// with its status and `Tokengate-Revoke` value before answering.
    Forward(Forward),
}

#[derive(Debug)]
pub struct BodyWanted {
    then: Pending,
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    Refresh,
    Admin(AdminAction),
    Backchannel,
}

impl BodyWanted {
    /// The answer when the body is over the limit or cannot be read: each
    /// route says it in its own protocol's terms.
    pub fn unreadable(&self) -> Reply {
        let error = match self.then {
            Pending::Refresh => {
                GateError::BodyUnreadable("the refresh request body is over 64 KiB")
            }
            Pending::Admin(_) => GateError::InvalidRequest,
            Pending::Backchannel => GateError::LogoutTokenInvalid(
                "the request body is larger than 64 KiB or cannot be read",
            ),
        };
        error.to_reply()
    }
}

/// A body the core asked for ([`Step::ReadBody`]).
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub bytes: &'a [u8],
}

/// A request to send on.
#[derive(Debug)]
pub struct Forward {
    /// The verified token, whose identity headers go with it; `None` for a
    /// public path or a preflight (and then a `Tokengate-Revoke` answer
    /// revokes nothing).
    pub verified: Option<Verified>,
    pub body: ForwardBody,
    password_change: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ForwardBody {
    /// The client's body, streamed.
    Streamed,
    /// No body: a preflight goes to the origin unverified, so without one.
    Empty,
    /// The body the core read already (the refresh route), byte for byte.
    Buffered(Vec<u8>),
}

/// What must be recorded once the origin answered, before its response
/// may go back ([`Gateway::record`]).
#[derive(Debug, Clone)]
pub struct Record {
    pub verified: Verified,
    /// A password change's origin status (the cut-off is taken on 2xx).
    pub password_change: Option<u16>,
    pub directive: Directive,
}

/// What [`Gateway::after_origin`] found.
#[derive(Debug, Clone, Default)]
pub struct AfterOrigin {
    /// `None`: nothing to record; pass the response on.
    pub record: Option<Record>,
    /// Worth a log line (unknown `Tokengate-Revoke` members, a directive
    /// on an unverified request); never sent to the client.
    pub warnings: Vec<String>,
}

impl<F: JwksFetcher, V: SignatureVerifier, S: SpendStore> Gateway<'_, F, V, S> {
    /// The first step of a request.
    pub async fn start(&self, req: &Incoming<'_>, now: NumericDate) -> Step {
        let forward = |verified, password_change| Forward {
            verified,
            body: match req.cors_preflight {
                true => ForwardBody::Empty,
                false => ForwardBody::Streamed,
            },
            password_change,
        };
        let wanted = |then| Step::ReadBody(BodyWanted { then });
        match self.decide(req, now).await {
            Decision::Reply(reply) => Step::Reply(reply),
            Decision::Forward(verified) => Step::Forward(forward(verified, false)),
            Decision::ForwardPasswordChange(verified) => {
                Step::Forward(forward(Some(verified), true))
            }
            Decision::Refresh => wanted(Pending::Refresh),
            Decision::ReadAdminBody(action) => wanted(Pending::Admin(action)),
            Decision::ReadBackchannelBody => wanted(Pending::Backchannel),
        }
    }

    /// The step after the body was read.
    pub async fn with_body(
        &self,
        req: &Incoming<'_>,
        wanted: BodyWanted,
        body: Body<'_>,
        now: NumericDate,
    ) -> Step {
        let (config, verification, store) = (self.config, self.verification, self.store);
        match wanted.then {
            Pending::Refresh => {
                let refresh_body = refresh::Body {
                    content_type: body.content_type,
                    content_encoding: body.content_encoding,
                    bytes: body.bytes,
                };
                match out_of_line(self.refresh(req, refresh_body, now)).await {
                    // Forwarded with the very bytes the token was read from.
                    Ok(verified) => Step::Forward(Forward {
                        verified: Some(verified),
                        body: ForwardBody::Buffered(body.bytes.to_vec()),
                        password_change: false,
                    }),
                    Err(refusal) => Step::Reply(refusal.to_reply()),
                }
            }
            Pending::Admin(action) => Step::Reply(
                out_of_line(admin::handle(
                    action,
                    body.bytes,
                    config,
                    verification,
                    store,
                    now,
                ))
                .await,
            ),
            Pending::Backchannel => {
                let handled = out_of_line(backchannel::handle(
                    body.content_type,
                    body.bytes,
                    config,
                    verification,
                    store,
                    now,
                ))
                .await;
                Step::Reply(match handled {
                    Ok((reply, _)) => reply,
                    Err(error) => error.to_reply(),
                })
            }
        }
    }

    /// Reads the origin's answer to `forward`: what must be recorded before
    /// its response goes back. `revoke` is its `Tokengate-Revoke` value.
    pub fn after_origin(
        &self,
        forward: &Forward,
        status: u16,
        revoke: Option<&str>,
    ) -> AfterOrigin {
        let mut warnings = Vec::new();
        let (directive, unknown) = revoke.map(origin_revoke::parse).unwrap_or_default();
        if !unknown.is_empty() {
            warnings.push(format!(
                "ignored unknown {} member(s) from the origin: {}",
                origin_revoke::HEADER,
                unknown.join(", ")
            ));
        }
        let Some(verified) = &forward.verified else {
            if revoke.is_some() {
                warnings.push(format!(
                    "the origin sent {} on an unverified request; removed, nothing revoked",
                    origin_revoke::HEADER
                ));
            }
            return AfterOrigin {
                record: None,
                warnings,
            };
        };
        let password_change = forward.password_change.then_some(status);
        let record = (password_change.is_some() || !directive.is_empty()).then(|| Record {
            verified: verified.clone(),
            password_change,
            directive,
        });
        AfterOrigin { record, warnings }
    }

    /// Records what the origin's answer asked for: a password change's
    /// cut-off first, then the `Tokengate-Revoke` directive (not tried when
    /// the cut-off failed: the client is told the first failure). `now` is
    /// read after the origin answered. On failure, the refusal to answer
    /// instead of the origin's response, and what to log.
    pub async fn record(&self, record: &Record, now: NumericDate) -> Result<(), (Refusal, String)> {
        let verified = &record.verified;
        let token_id = &verified.identity.token_id;
        if let Some(status) = record.password_change {
            self.finish_password_change(verified, status, now)
                .await
                .map_err(|e| {
                    let log = format!(
                        "password change for token {token_id} succeeded at the origin but the \
                         cut-off could not be recorded"
                    );
                    (verified.identity.refuse(e), log)
                })?;
        }
        if !record.directive.is_empty() {
            self.finish_origin_revocation(verified, record.directive, now)
                .await
                .map_err(|e| {
                    let log = format!(
                        "the origin asked for {:?} for token {token_id}, which could not be \
                         recorded ({e}); its response was withheld",
                        record.directive
                    );
                    (verified.identity.refuse(e), log)
                })?;
        }
        Ok(())
    }
}

/// The refusal when the background task recording `record` failed itself
/// (a bug): the origin's response is never passed on.
pub fn record_failed(record: &Record) -> Refusal {
    let error = match record.password_change {
        Some(_) => GateError::SessionsNotRevoked,
        None => GateError::OriginRevocationFailed,
    };
    record.verified.identity.refuse(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::TEST_SECRET;
    use crate::gateway::tests::{config, request as incoming, with_gateway};
    use crate::revocation::MemoryStore;
    use crate::verify::tests::mint;
    use pollster::block_on;
    use serde_json::json;

    const NOW: f64 = 1_700_000_000.5;

    fn bearer() -> String {
        let claims = json!({"sub": "alice", "jti": "t-1", "iat": NOW - 10.0, "exp": NOW + 600.0});
        format!(
            "Bearer {}",
            mint("HS256", json!({}), claims, TEST_SECRET.as_bytes())
        )
    }

    #[test]
    fn a_verified_request_is_forwarded_with_its_body_and_a_preflight_without() {
        let config = config(&[]);
        let store = MemoryStore::default();
        let auth = bearer();
        with_gateway(&config, &store, |gateway| {
            let Step::Forward(forward) =
                block_on(gateway.start(&incoming("GET", "/api", Some(&auth)), NOW))
            else {
                panic!("not forwarded");
            };
            assert_eq!(forward.body, ForwardBody::Streamed);
            assert_eq!(forward.verified.unwrap().identity.token_id, "t-1");
            let preflight = Incoming {
                cors_preflight: true,
                ..incoming("OPTIONS", "/api", None)
            };
            let Step::Forward(forward) = block_on(gateway.start(&preflight, NOW)) else {
                panic!("a preflight is forwarded");
            };
            assert_eq!(
                (forward.body, forward.verified.is_none()),
                (ForwardBody::Empty, true)
            );
        });
    }

    #[test]
    fn each_body_route_answers_an_unreadable_body_in_its_own_terms() {
        let config = config(&[
            ("ADMIN_TOKEN", "an-admin-token-of-length"),
            ("BACKCHANNEL_LOGOUT_PATH", "/bc"),
            ("BACKCHANNEL_LOGOUT_AUDIENCE", "client"),
        ]);
        let store = MemoryStore::default();
        let admin = "Bearer an-admin-token-of-length".to_owned();
        with_gateway(&config, &store, |gateway| {
            let wanted = |req: Incoming<'_>| match block_on(gateway.start(&req, NOW)) {
                Step::ReadBody(wanted) => wanted,
                other => panic!("{other:?}"),
            };
            let bc = wanted(incoming("POST", "/bc", None)).unreadable();
            assert_eq!((bc.status, bc.code), (400, Some("invalid_request")));
            assert!(bc.body.contains("larger than 64 KiB"), "{}", bc.body);
            let admin = wanted(incoming("POST", "/_admin/revoke", Some(&admin))).unreadable();
            assert_eq!(admin.status, 400);
        });
    }

    #[test]
    fn a_refresh_is_forwarded_with_the_bytes_its_token_was_read_from() {
        let config = config(&[("REFRESH_PATH", "/auth/refresh")]);
        let store = MemoryStore::with_user_objects();
        let claims =
            json!({"sub": "alice", "jti": "r-1", "sid": "s", "iat": NOW - 1.0, "exp": NOW + 600.0});
        let token = mint("HS256", json!({}), claims, TEST_SECRET.as_bytes());
        let body = format!("refresh_token={token}");
        with_gateway(&config, &store, |gateway| {
            let req = incoming("POST", "/auth/refresh", None);
            let Step::ReadBody(wanted) = block_on(gateway.start(&req, NOW)) else {
                panic!("the refresh route reads its body first");
            };
            let read = Body {
                content_type: Some("application/x-www-form-urlencoded"),
                content_encoding: None,
                bytes: body.as_bytes(),
            };
            store.object_now.set(NOW);
            let Step::Forward(forward) = block_on(gateway.with_body(&req, wanted, read, NOW))
            else {
                panic!("a fresh refresh token is forwarded");
            };
            assert_eq!(
                forward.body,
                ForwardBody::Buffered(body.clone().into_bytes())
            );
        });
    }

    #[test]
    fn after_a_password_change_the_cut_off_comes_first_and_a_failure_withholds_the_directive() {
        let config = config(&[]);
        let store = MemoryStore::default();
        let auth = bearer();
        with_gateway(&config, &store, |gateway| {
            let req = incoming("POST", "/auth/password-change", Some(&auth));
            let Step::Forward(forward) = block_on(gateway.start(&req, NOW)) else {
                panic!("forwarded for its second half");
            };
            let after = gateway.after_origin(&forward, 204, Some("token, bogus"));
            assert!(after.warnings[0].contains("bogus"), "{:?}", after.warnings);
            let record = after.record.expect("a cut-off to record");
            assert_eq!(record.password_change, Some(204));
            // Every write fails: the cut-off's failure is what the client hears,
            // and the directive is not tried.
            store.failing_writes.set(usize::MAX);
            let (refusal, log) = block_on(gateway.record(&record, NOW + 1.0)).unwrap_err();
            assert_eq!(refusal.error, GateError::SessionsNotRevoked);
            assert!(log.contains("cut-off could not be recorded"));
            assert_eq!(
                store.writes.get(),
                3,
                "three attempts at the cut-off, none at the token"
            );
            store.failing_writes.set(0);
            assert_eq!(block_on(gateway.record(&record, NOW + 1.0)), Ok(()));
            assert!(store.entries.borrow().contains_key("v1:sub:alice"));
            assert!(store.entries.borrow().contains_key("v1:jti:t-1"));
        });
    }

    #[test]
    fn an_unverified_answer_records_nothing_and_says_so() {
        let config = config(&[("PUBLIC_PATHS", "/open")]);
        let store = MemoryStore::default();
        with_gateway(&config, &store, |gateway| {
            let Step::Forward(forward) =
                block_on(gateway.start(&incoming("GET", "/open", None), NOW))
            else {
                panic!("a public path is forwarded");
            };
            let after = gateway.after_origin(&forward, 200, Some("user"));
            assert!(after.record.is_none());
            assert!(after.warnings[0].contains("nothing revoked"));
            assert!(gateway
                .after_origin(&forward, 200, None)
                .warnings
                .is_empty());
        });
    }
}
