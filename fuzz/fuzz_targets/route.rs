//! routes::route_with_backchannel (as the gateway calls it), routes::route
//! and routes::loosely on arbitrary methods and paths, with the password
//! change path, back-channel logout path and PUBLIC_PATHS taken through
//! Config::from_lookup like the gateway's.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tokengate::config::Config;
use tokengate::routes::{
    loosely, route, route_with_backchannel, PathPattern, Route, ADMIN_INTROSPECT_PATH,
    ADMIN_REVOKE_PATH, LOGOUT_ALL_PATH, LOGOUT_PATH,
};
use tokengate_fuzz::{hides_separators, loose_matches, SECRET};

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "post"];

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    path: String,
    preflight: bool,
    password_change: Option<String>,
    backchannel: Option<String>,
    public: Vec<String>,
}

fuzz_target!(|input: Input| {
    let method = METHODS[usize::from(input.method) % METHODS.len()];
    let public_setting = input.public.join(",");
    let mut settings: HashMap<&str, String> = HashMap::from([
        ("JWT_SECRET", SECRET.to_owned()),
        ("PUBLIC_PATHS", public_setting),
    ]);
    if let Some(pw) = &input.password_change {
        settings.insert("PASSWORD_CHANGE_PATH", pw.clone());
    }
    if let Some(bc) = &input.backchannel {
        settings.insert("BACKCHANNEL_LOGOUT_PATH", bc.clone());
        settings.insert("BACKCHANNEL_LOGOUT_AUDIENCE", "client".to_owned());
    }
    // The gateway's own inputs when the configuration is valid; otherwise
    // the raw settings, loosened and parsed the same way.
    let (pw, bc, public) = match Config::from_lookup(|name| settings.get(name).cloned()) {
        Ok(c) => (
            c.password_change_path,
            c.backchannel_logout_path,
            c.public_paths,
        ),
        Err(_) => (
            loosely(
                input
                    .password_change
                    .as_deref()
                    .unwrap_or("/auth/password-change"),
            ),
            input.backchannel.as_deref().map(loosely),
            input
                .public
                .iter()
                .filter_map(|p| PathPattern::parse(p))
                .collect(),
        ),
    };
    let path = input.path.as_str();
    let got = route_with_backchannel(method, path, input.preflight, &pw, bc.as_deref(), &public);
    assert_eq!(
        got,
        route_with_backchannel(method, path, input.preflight, &pw, bc.as_deref(), &public),
        "deterministic"
    );
    assert_eq!(
        route(method, path, input.preflight, &pw, &public),
        route_with_backchannel(method, path, input.preflight, &pw, None, &public),
        "route() is route_with_backchannel() without the back-channel path"
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
    assert_eq!(loosely(&loose), loose, "loosely is idempotent on {path:?}");

    let fixed = [
        (LOGOUT_PATH, Route::Logout),
        (LOGOUT_ALL_PATH, Route::LogoutAll),
        (ADMIN_REVOKE_PATH, Route::AdminRevoke),
        (ADMIN_INTROSPECT_PATH, Route::AdminIntrospect),
    ];
    let is_fixed = fixed.iter().find(|(r, _)| loose_matches(&loose, r));
    let is_bc = bc.as_deref().is_some_and(|bc| loose_matches(&loose, bc));
    let is_pw = loose_matches(&loose, &pw);
    if is_fixed.is_some() || is_bc || is_pw {
        assert_ne!(
            got,
            Route::Public,
            "{path:?} (loosely {loose:?}) is a gateway route"
        );
    }
    // Precedence: fixed routes, back-channel logout, preflight, password
    // change. route() also reads the path without merging `//` next to `..`
    // (a second reading this harness cannot see), which may reach an
    // earlier route: so a match here allows that route or an earlier one.
    let fixed_routes: Vec<Route> = fixed.iter().map(|(_, r)| *r).collect();
    let allowed: Option<Vec<Route>> = match (is_fixed, is_bc) {
        (Some(_), _) => Some(fixed_routes),
        (None, true) => Some([&fixed_routes[..], &[Route::BackchannelLogout]].concat()),
        (None, false) if is_pw && !(method == "OPTIONS" && input.preflight) => Some(
            [
                &fixed_routes[..],
                &[Route::BackchannelLogout, Route::PasswordChange],
            ]
            .concat(),
        ),
        _ => None,
    };
    if let Some(allowed) = allowed {
        assert!(
            allowed.contains(&got),
            "{path:?} (loosely {loose:?}): {got:?}"
        );
    }
    if let Some((_, first)) = is_fixed {
        // Among the fixed routes, the one matched here or an earlier one.
        let at = fixed.iter().position(|(_, r)| r == first).unwrap();
        assert!(
            fixed[..=at].iter().any(|(_, r)| *r == got),
            "{path:?}: {got:?}"
        );
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
        Route::BackchannelLogout => assert!(bc.is_some()),
        _ => {}
    }
});
