#!/usr/bin/env bash
# Hermetic build of the example Worker: build/index.js and build/index_bg.wasm.
# The steps worker-build would run (cargo, wasm-bindgen, a JS entry,
# esbuild), with the tools the project already pins: wasm-bindgen-cli from
# crates.io at exactly this package's Cargo.lock version (the one
# scripts/build.sh installs), esbuild from the project's node_modules.
# worker-build itself is not used: it would download wasm-bindgen, esbuild
# and wasm-opt from outside the registries, and compiling it takes minutes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
cd "$here"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf 'example build: %s\n' "$*" >&2; }

WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
TOOLS_ROOT="${CARGO_INSTALL_ROOT:-$HOME/.cargo}"
WASM_BINDGEN="$TOOLS_ROOT/bin/wasm-bindgen"
if [ "$("$WASM_BINDGEN" --version 2>/dev/null | awk '{ print $NF }')" != "$WASM_BINDGEN_VERSION" ]; then
  say "compiling wasm-bindgen-cli $WASM_BINDGEN_VERSION from crates.io into $TOOLS_ROOT/bin (once per machine)"
  cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --root "$TOOLS_ROOT" --locked --quiet \
    || cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --root "$TOOLS_ROOT" --quiet
fi
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
[ -x "$root/node_modules/.bin/esbuild" ] || (cd "$root" && npm ci --no-audit --no-fund)

stage=build/.stage
mkdir -p "$stage"

# 1. The Worker (worker 0.8 and tokengate with the workers-rs feature).
#    --locked: the example's Cargo.lock is the one tested.
cargo build --release --target wasm32-unknown-unknown --locked --quiet
raw="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/tokengate_workers_rs_example.wasm"

# 2. JS glue. The `#[event(fetch)]` export is `fetch`; js/host.mjs (the
#    gate's WebCrypto and log) is copied in as a snippet.
rm -rf "$stage/snippets"
"$WASM_BINDGEN" "$raw" --out-dir "$stage" --out-name index --target web --no-typescript \
  --experimental-reset-state-function
cp "$stage/index_bg.wasm" build/index_bg.wasm

# 3. The module entry worker-build would write: instantiate once per
#    isolate from the module the runtime compiled, hand each request over.
cat > "$stage/entry.mjs" <<'JS'
import wasmModule from "./index_bg.wasm";
import { initSync, fetch as handle } from "./index.js";

initSync({ module: wasmModule });

export default {
  fetch(request, env, ctx) {
    return handle(request, env, ctx);
  },
};
JS
"$root/node_modules/.bin/esbuild" "$stage/entry.mjs" --bundle --format=esm --minify \
  --external:./index_bg.wasm '--external:cloudflare:*' --outfile=build/index.js --log-level=warning

say "build/index_bg.wasm $(wc -c < build/index_bg.wasm) bytes; build/index.js $(wc -c < build/index.js) bytes"
