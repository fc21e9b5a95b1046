//! Config::from_lookup with arbitrary values for each setting name.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tokengate::config::Config;
use tokengate_fuzz::{SECRET, SETTINGS};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Each value goes to the setting its index picks; later ones win.
    values: Vec<(u8, String)>,
    with_secret: bool,
}

fuzz_target!(|input: Input| {
    let mut map: HashMap<&str, String> = HashMap::new();
    if input.with_secret {
        map.insert("JWT_SECRET", SECRET.to_owned());
    }
    for (index, value) in input.values {
        map.insert(SETTINGS[usize::from(index) % SETTINGS.len()], value);
    }
    let result = Config::from_lookup(|name| map.get(name).cloned());
    // A secret's value may decide only by its length whether it is accepted:
    // the same setting with other bytes of that length must give the same
    // answer, so no message can depend on (echo) the value.
    for secret in ["JWT_SECRET", "ADMIN_TOKEN"] {
        if let Some(value) = map.get(secret) {
            let mut other = map.clone();
            other.insert(secret, "q".repeat(value.len()));
            let again = Config::from_lookup(|name| other.get(name).cloned());
            assert_eq!(
                result.as_ref().err().map(ToString::to_string),
                again.as_ref().err().map(ToString::to_string),
                "the answer depends on the value of {secret}"
            );
        }
    }
    match result {
        Ok(config) => {
            assert!(!config.providers.is_empty());
            for p in &config.providers {
                assert!(!p.algorithms.is_empty());
            }
            assert!(config.leeway_seconds <= 3600);
            assert!((64..=65536).contains(&config.max_token_bytes));
            assert!(config.password_change_path.starts_with('/'));
            assert_ne!(config.max_token_age_seconds, Some(0));
            if let Some(url) = &config.origin_url {
                assert!(url.starts_with("http://") || url.starts_with("https://"));
            }
        }
        Err(e) => assert!(SETTINGS.contains(&e.setting), "{e}"),
    }
});
