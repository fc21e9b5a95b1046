#!/usr/bin/env bash
# Hermetic release build: build/index.js (js/worker.mjs, the wasm-bindgen
# glue and js/host.mjs, bundled) and build/index_bg.wasm. Every tool comes
# from crates.io or npm at a pinned version and nothing is downloaded from
# anywhere else. worker-build is not used: what it did (wasm-bindgen, a JS
# entry, esbuild, wasm-opt) is the four steps below, and not compiling it
# saves about six minutes on every fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
. scripts/cargo-target.sh

say() { printf 'build: %s\n' "$*" >&2; }

# wasm-bindgen-cli must match the wasm-bindgen library in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
# It lives in cargo's install root (~/.cargo unless CARGO_INSTALL_ROOT says
# otherwise) and is installed only when that exact version is not there.
TOOLS_ROOT="${CARGO_INSTALL_ROOT:-$HOME/.cargo}"
WASM_BINDGEN="$TOOLS_ROOT/bin/wasm-bindgen"
if [ "$("$WASM_BINDGEN" --version 2>/dev/null | awk '{ print $NF }')" != "$WASM_BINDGEN_VERSION" ]; then
  say "compiling wasm-bindgen-cli $WASM_BINDGEN_VERSION from crates.io into $TOOLS_ROOT/bin"
  say "(once per machine; about 3 minutes on 2 cores, with no output until it is done)"
  log=$(mktemp)
  # --locked pins the tool's own dependencies. When the registry no longer
  # has one of them (it happens: yanked crates), cargo refuses; the second
  # attempt takes the newest compatible ones. The first refusal is expected
  # and is not shown; a failure of the second is.
  # Only the `wasm-bindgen` binary, without the TLS stack its test runner
  # downloads browsers with (ring, rustls): 2 min 48 s instead of 3 min 16 s
  # on this machine kind.
  only=(--no-default-features --bin wasm-bindgen)
  if ! cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" "${only[@]}" --root "$TOOLS_ROOT" --locked --quiet >"$log" 2>&1; then
    say "its locked dependency set is not all on the registry; using current compatible versions"
    cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" "${only[@]}" --root "$TOOLS_ROOT" --quiet
  fi
  rm -f "$log"
  say "wasm-bindgen-cli $WASM_BINDGEN_VERSION installed"
fi
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
[ -x node_modules/.bin/esbuild ] && [ -x node_modules/.bin/wasm-opt ] || npm ci --no-audit --no-fund

stage=build/.stage
mkdir -p "$stage"

# 1. The core and the adapter, compiled to wasm.
cargo build --lib --release --target wasm32-unknown-unknown --quiet
raw="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/tokengate.wasm"

# 2. JS glue for the wasm exports and imports (js/host.mjs is copied in as a
#    snippet). --experimental-reset-state-function lets js/worker.mjs start
#    a fresh instance if the wasm ever traps.
rm -rf "$stage/snippets"
"$WASM_BINDGEN" "$raw" --out-dir "$stage" --out-name index --target web --no-typescript \
  --experimental-reset-state-function
#    Long strings (the Authorization header, the URL) copied into wasm with
#    one TextEncoder.encodeInto instead of a JS loop (the script says why).
node scripts/glue-strings.mjs "$stage/index.js"

# 3. wasm-opt -O3 (speed, as Cargo's opt-level), then drop names and
#    producers (stack-trace sugar). Binaryen inlines a function with one
#    caller whatever its size; capped at 100 bytes, the request's state
#    machine stays 13 KB instead of 39 KB, and a route's code is compiled
#    only when a request takes it (V8 compiles wasm lazily, function by
#    function): the first request of an isolate compiles 5 % fewer
#    instructions' worth (bench/TRIED.md), warm requests count the same.
#    It takes ~10 s, so it runs only when its input or flags changed.
opt_flags="-O3 --one-caller-inline-max-function-size=100 --strip-debug --strip-producers
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int
  --enable-bulk-memory --enable-multivalue --enable-reference-types"
digest="$(sha256sum "$stage/index_bg.wasm" | cut -d' ' -f1) $(echo $opt_flags)"
if [ "$(cat "$stage/optimized-from" 2>/dev/null)" != "$digest" ] || [ ! -f build/index_bg.wasm ]; then
  # shellcheck disable=SC2086 # the flags are words
  node_modules/.bin/wasm-opt "$stage/index_bg.wasm" -o build/index_bg.wasm $opt_flags
  echo "$digest" > "$stage/optimized-from"
fi

# 4. One ES module: the entry, the glue and js/host.mjs. The wasm stays a
#    separate module that the runtime compiles ("CompiledWasm").
#    The entry imports js/host.mjs at the place wasm-bindgen copied it to,
#    so that the bundle holds one copy of it.
host=$(cd "$stage" && find snippets -name host.mjs)
sed "s#\"./snippets/host.mjs\"#\"./$host\"#" js/worker.mjs > "$stage/entry.mjs"
cp js/sessions.mjs "$stage/sessions.mjs"
node_modules/.bin/esbuild "$stage/entry.mjs" --bundle --format=esm --minify \
  --external:./index_bg.wasm --external:cloudflare:workers --outfile=build/index.js --log-level=warning

wasm=build/index_bg.wasm
say "$wasm $(wc -c < "$wasm") bytes, $(gzip -9 -c "$wasm" | wc -c) gzip; build/index.js $(wc -c < build/index.js) bytes"
