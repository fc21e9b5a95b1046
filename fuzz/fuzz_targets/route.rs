//! routes::route and routes::loosely on arbitrary methods, paths, password
//! change paths and PUBLIC_PATHS.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tokengate::routes::{
    loosely, route, PathPattern, Route, ADMIN_INTROSPECT_PATH, ADMIN_REVOKE_PATH, LOGOUT_ALL_PATH,
    LOGOUT_PATH,
};
use tokengate_fuzz::{hides_separators, loose_matches};

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "post"];

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    path: String,
    preflight: bool,
    /// Empty: the default `/auth/password-change`.
    password_change: String,
    public: Vec<String>,
}

fuzz_target!(|input: Input| {
    let method = METHODS[usize::from(input.method) % METHODS.len()];
    let pw_setting = if input.password_change.is_empty() {
        "/auth/password-change"
    } else {
        input.password_change.as_str()
    };
    // As Config does it: loosened once, at configuration time.
    let pw = loosely(pw_setting);
    let public: Vec<PathPattern> = input
        .public
        .iter()
        .filter_map(|p| PathPattern::parse(p))
        .collect();
    let path = input.path.as_str();

    let got = route(method, path, input.preflight, &pw, &public);
    assert_eq!(
        got,
        route(method, path, input.preflight, &pw, &public),
        "deterministic"
    );

    let loose = loosely(path);
    assert!(
        loose.starts_with('/') || !path.starts_with('/'),
        "{path:?} -> {loose:?}"
    );
    assert!(!loose.contains("//"), "{path:?} -> {loose:?}");
    assert!(
        !loose.bytes().any(|b| b.is_ascii_uppercase()),
        "{path:?} -> {loose:?}"
    );
    assert!(
        loose == "/" || !loose.ends_with('/'),
        "{path:?} -> {loose:?}"
    );

    let fixed = [
        (LOGOUT_PATH, Route::Logout),
        (LOGOUT_ALL_PATH, Route::LogoutAll),
        (ADMIN_REVOKE_PATH, Route::AdminRevoke),
        (ADMIN_INTROSPECT_PATH, Route::AdminIntrospect),
    ];
    let gateway = fixed.iter().any(|(r, _)| loose_matches(&loose, r)) || loose_matches(&loose, &pw);
    if gateway {
        assert_ne!(
            got,
            Route::Public,
            "{path:?} (loosely {loose:?}) is a gateway route"
        );
    }
    // The first fixed route whose loose form matches wins, whatever else.
    if let Some((_, r)) = fixed.iter().find(|(r, _)| loose_matches(&loose, r)) {
        assert_eq!(got, *r, "{path:?} (loosely {loose:?})");
    }
    match got {
        Route::Public => {
            assert!(
                !hides_separators(path),
                "{path:?} public despite hidden separators"
            );
            assert!(public.iter().any(|p| p.matches(path)));
        }
        Route::Preflight => assert!(method == "OPTIONS" && input.preflight),
        _ => {}
    }
});
