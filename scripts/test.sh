#!/usr/bin/env bash
# The whole suite: lint, native core tests, release build, end-to-end tests
# of that build in Miniflare. `npm test` runs this; so does .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
# Node 22 from npm (`node` package) for wrangler and Miniflare, also when this
# script is run directly rather than through `npm test`.
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "rustfmt"
cargo fmt --all -- --check
step "clippy (native core and wasm adapter)"
cargo clippy --all-targets -- -D warnings
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
cargo clippy --target wasm32-unknown-unknown -- -D warnings
step "core unit tests (cargo test)"
cargo test --quiet
step "release build (worker-build, hermetic)"
bash scripts/build.sh
step "end-to-end tests (Miniflare, jose-minted tokens)"
node --version
node --test --test-concurrency=1 'tests/e2e/*.test.mjs'
