//! token::extract on arbitrary Authorization, Cookie and cookie-name input.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tokengate::error::GateError;
use tokengate::token::extract;

#[derive(Arbitrary, Debug)]
struct Input {
    authorization: Option<String>,
    bearer_prefix: bool,
    cookie: Option<String>,
    name: Option<String>,
}

fuzz_target!(|input: Input| {
    let authorization = input.authorization.map(|a| {
        if input.bearer_prefix {
            format!("Bearer {a}")
        } else {
            a
        }
    });
    let (a, c, n) = (
        authorization.as_deref(),
        input.cookie.as_deref(),
        input.name.as_deref(),
    );
    match extract(a, c, n) {
        Ok(Some(token)) => {
            assert!(
                !token.is_empty() || c.is_some(),
                "empty bearer token accepted"
            );
            let from_header = a.is_some_and(|h| h.contains(token));
            let from_cookie = c.is_some_and(|h| h.contains(token));
            assert!(from_header || from_cookie, "token not taken from the input");
            // Another, different value of the cookie makes it ambiguous.
            if let Some(name) =
                n.filter(|n| !n.is_empty() && n.trim() == *n && !n.contains(['=', ';']))
            {
                let more = match c {
                    Some(c) => format!("{c}; {name}={token}x"),
                    None => format!("{name}={token}x"),
                };
                assert_eq!(
                    extract(a, Some(&more), n),
                    Err(GateError::TokenAmbiguous),
                    "{more:?}"
                );
            }
        }
        Ok(None) => {}
        Err(e) => assert!(
            matches!(e, GateError::TokenAmbiguous | GateError::TokenMalformed),
            "{e}"
        ),
    }
});
