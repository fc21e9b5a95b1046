#!/usr/bin/env bash
# The whole suite: lint, native core tests, release build, the deploy dry
# run, end-to-end tests of that build in Miniflare. `npm test` runs this;
# so does .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
# Node 22 from npm (`node` package) for wrangler and Miniflare, also when this
# script is run directly rather than through `npm test`.
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false

# Each step says how long the suite has run, so a slow step is easy to spot.
step() { printf '\n== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

step "rustfmt"
cargo fmt --all -- --check
step "clippy (native core and wasm adapter)"
cargo clippy --all-targets -- -D warnings
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
cargo clippy --target wasm32-unknown-unknown -- -D warnings
step "core unit and property tests (cargo test)"
cargo test --quiet
step "release build (scripts/build.sh, hermetic)"
bash scripts/build.sh
step "deploy dry run (wrangler deploy --dry-run: what would be uploaded)"
rm -rf build/dry-run
wrangler deploy --dry-run --outdir build/dry-run > build/dry-run.log 2>&1 || { cat build/dry-run.log; exit 1; }
grep -E "Total Upload" build/dry-run.log
ls build/dry-run/*.wasm build/dry-run/index.js > /dev/null
step "end-to-end tests (Miniflare, jose-minted tokens)"
echo "(lines such as 'KV put failed' or 'origin unreachable' below are expected: the tests inject those faults)"
node --version
node --test --test-concurrency=1 'tests/e2e/*.test.mjs'
step "browser tests (Chromium from npm's @sparticuz/chromium driven by playwright-core, the demo app behind the gateway)"
node --test --test-concurrency=1 'tests/browser/*.test.mjs'
step "done"
