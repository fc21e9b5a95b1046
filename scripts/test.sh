#!/usr/bin/env bash
# The whole suite: lint, native core tests, release build, the deploy dry
# run, end-to-end tests of that build in Miniflare, browser tests. `npm test`
# runs this; so does .ci/run.
#
# On two cores the steps overlap where nothing needs the other's output:
# clippy and cargo test build in their own target directory (target/lint),
# at low priority, beside the release build, so that neither cargo waits for
# the other's lock; the end-to-end and browser test files then all run at
# once (each starts its own Miniflare, origin and ports), while clippy and
# cargo test go on with the CPU those files leave idle. The waits the tests
# provoke on purpose (KV retries, timeouts, grace windows) are thus paid
# once, side by side, not one after another.
set -euo pipefail
cd "$(dirname "$0")/.."
# Node 22 from npm (`node` package) for wrangler and Miniflare, also when this
# script is run directly rather than through `npm test`.
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false
. scripts/cargo-target.sh

# Each step says how long the suite has run, so a slow step is easy to spot.
step() { printf '\n== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

lint_pid=
# A failure anywhere stops the lint job (its own process group) too, rather
# than leaving cargo running.
trap '[ -z "$lint_pid" ] || kill -- "-$lint_pid" 2>/dev/null; true' EXIT

step "rustfmt"
cargo fmt --all -- --check
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

step "clippy (native core, wasm adapter, workers-rs feature) and cargo test: started beside the release build (output below, when done)"
mkdir -p build
lint_target="$CARGO_TARGET_DIR/lint"
CARGO_TARGET_DIR="$lint_target" setsid nice -n 10 bash -c '
  set -e
  cargo clippy --all-targets -- -D warnings
  cargo clippy --target wasm32-unknown-unknown -- -D warnings
  cargo clippy --target wasm32-unknown-unknown --features workers-rs -- -D warnings
  cargo test --quiet
' > build/lint.log 2>&1 &
lint_pid=$!

step "release build (scripts/build.sh, hermetic)"
bash scripts/build.sh
step "deploy dry run (wrangler deploy --dry-run: what would be uploaded)"
rm -rf build/dry-run
wrangler deploy --dry-run --outdir build/dry-run > build/dry-run.log 2>&1 || { cat build/dry-run.log; exit 1; }
grep -E "Total Upload" build/dry-run.log
ls build/dry-run/*.wasm build/dry-run/index.js > /dev/null

step "end-to-end tests (Miniflare, jose-minted tokens) and browser tests (Chromium from npm's @sparticuz/chromium driven by playwright-core, the demo app behind the gateway), every file at once"
echo "(lines such as 'KV put failed' or 'origin unreachable' below are expected: the tests inject those faults)"
node --version
# wrangler.toml read once (build/wrangler-options.json), not by every file.
node --input-type=module -e 'await (await import("./tests/support/harness.mjs")).wranglerOptions()'
node --test --test-concurrency=16 'tests/e2e/*.test.mjs' 'tests/browser/*.test.mjs'

step "clippy and cargo test (started at the release build)"
lint_ok=0
wait "$lint_pid" || lint_ok=$?
lint_pid=
cat build/lint.log
[ "$lint_ok" -eq 0 ] || { echo "clippy or cargo test failed (exit $lint_ok)" >&2; exit 1; }
step "done"
