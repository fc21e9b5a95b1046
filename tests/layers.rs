//! The core's modules are layered: each may import only modules of a lower
//! layer, and no feature module imports another. This test reads the
//! non-test code of every `src/*.rs` and fails on an import that breaks the
//! order, so a cycle cannot creep back in unnoticed. `src/edge/` (the wasm
//! adapter) sits above everything and is not checked: it drives
//! `request::Step`s and does the I/O they name.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Lowest first. A module may import modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    // Vocabulary and parsers that need nothing else.
    &[
        "clock",
        "error",
        "form",
        "routes",
        "jitter",
        "js_value",
        "base64url",
    ],
    &["token", "keys"],
    &["keyring", "revocation"],
    // What both wasm adapters ask js/host.mjs for (WebCrypto, JWKS fetch).
    &["js_host"],
    &["config"],
    &["verify"],
    // Features: one route family each; none imports another.
    &[
        "admin",
        "backchannel",
        "refresh",
        "origin_revoke",
        "headers",
    ],
    // Deciding one request, and its life as a sequence of steps.
    &["gateway"],
    &["request"],
    // The adapter for workers-rs Workers (cargo feature `workers-rs`): above
    // everything, as src/edge/ is, and checked since it is one file.
    &["workers_rs"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// What `source` imports from the crate (`crate::x`), outside its test
/// module and comments.
fn imports(source: &str) -> BTreeSet<String> {
    let code = match source.find("#[cfg(test)]\npub(crate) mod tests") {
        Some(at) => &source[..at],
        None => source
            .find("#[cfg(test)]\nmod tests")
            .map_or(source, |at| &source[..at]),
    };
    let mut found = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(
                !rest.starts_with('{'),
                "grouped `crate::{{...}}` imports are not read by this test: {line}"
            );
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_core_module_imports_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    let mut checked = 0;
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if module == "lib" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            problems.push(format!("src/{module}.rs is in no layer: add it to LAYERS"));
            continue;
        };
        checked += 1;
        for imported in imports(&fs::read_to_string(&path).unwrap()) {
            if imported == module {
                continue;
            }
            match layer_of(&imported) {
                Some(theirs) if theirs < own => {}
                Some(theirs) if theirs == own => problems.push(format!(
                    "{module} imports {imported}, a module of its own layer ({:?})",
                    LAYERS[own]
                )),
                Some(_) => problems.push(format!("{module} imports {imported}, a higher layer")),
                None => problems.push(format!("{module} imports {imported}, which is in no layer")),
            }
        }
    }
    assert!(checked >= 15, "only {checked} modules found in {src:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_sees_imports_and_skips_tests_and_comments() {
    let source = "use crate::clock::NumericDate;\n\
                  // crate::gateway is mentioned in a comment only\n\
                  fn f() { crate::verify::check(); }\n\
                  #[cfg(test)]\nmod tests { use crate::gateway; }\n";
    let found: Vec<String> = imports(source).into_iter().collect();
    assert_eq!(found, ["clock", "verify"]);
}
