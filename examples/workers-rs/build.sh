#!/usr/bin/env bash
# Hermetic build of the example Worker: build/index.js and build/index_bg.wasm.
# The steps worker-build would run (cargo, wasm-bindgen, a JS entry,
# esbuild), with the tools the project already pins: wasm-bindgen-cli from
# crates.io at exactly this package's Cargo.lock version (the one
# scripts/build.sh installs, while both locks agree), esbuild from the
# project's node_modules. No wasm-opt pass: this is an example, and the
# test runs it as cargo built it.
# worker-build itself is not used: it would download wasm-bindgen, esbuild
# and wasm-opt from outside the registries, and compiling it takes minutes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
cd "$here"
export PATH="$HOME/.cargo/bin:$PATH"
. "$root/scripts/cargo-target.sh"
# A directory of its own inside it: built as this Worker's dependency,
# tokengate (a cdylib too) leaves a tokengate.wasm of its own, which would
# replace the standalone gateway's in a shared directory.
export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/workers-rs-example"

say() { printf 'example build: %s\n' "$*" >&2; }

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
[ -x "$root/node_modules/.bin/esbuild" ] || (cd "$root" && npm ci --no-audit --no-fund)

stage=build/.stage
mkdir -p "$stage"

# 1. The Worker (worker 0.8 and tokengate with the workers-rs feature).
#    Not --locked: when the tokengate crate gains a dependency, cargo adds
#    it to this Cargo.lock and keeps every version already pinned here.
cargo build --release --target wasm32-unknown-unknown --quiet
raw="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/tokengate_workers_rs_example.wasm"

# wasm-bindgen-cli must match the wasm-bindgen library in this Cargo.lock
# exactly. The one scripts/build.sh keeps in cargo's install root is used
# when it is that version; otherwise this version gets an install root of
# its own, so the two builds never replace each other's tool.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
TOOLS_ROOT="${CARGO_INSTALL_ROOT:-$HOME/.cargo}"
WASM_BINDGEN="$TOOLS_ROOT/bin/wasm-bindgen"
version_of() { "$1" --version 2>/dev/null | awk '{ print $NF }'; }
if [ "$(version_of "$WASM_BINDGEN")" != "$WASM_BINDGEN_VERSION" ]; then
  own_root="$TOOLS_ROOT/tools/wasm-bindgen-$WASM_BINDGEN_VERSION"
  WASM_BINDGEN="$own_root/bin/wasm-bindgen"
  if [ "$(version_of "$WASM_BINDGEN")" != "$WASM_BINDGEN_VERSION" ]; then
    say "compiling wasm-bindgen-cli $WASM_BINDGEN_VERSION from crates.io into $own_root (once per machine)"
    only=(--no-default-features --bin wasm-bindgen)
    cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" "${only[@]}" --root "$own_root" --locked --quiet \
      || cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" "${only[@]}" --root "$own_root" --quiet
  fi
fi

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
