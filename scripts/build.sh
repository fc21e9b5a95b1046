#!/usr/bin/env bash
# Hermetic release build: every tool comes from crates.io or npm at a pinned
# version; worker-build is told where each one is, so it downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
# wasm-bindgen-cli must match the wasm-bindgen library in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)

# Tools live in cargo's install root (~/.cargo unless CARGO_INSTALL_ROOT says
# otherwise) and are installed only when the exact version is not there.
TOOLS_ROOT="${CARGO_INSTALL_ROOT:-$HOME/.cargo}"
ensure_cargo_tool() {
  local crate=$1 version=$2 binary=$3
  if [ "$("$TOOLS_ROOT/bin/$binary" --version 2>/dev/null | awk '{ print $NF }')" = "$version" ]; then
    return
  fi
  echo "build: installing $crate $version (once per machine, several minutes)" >&2
  # --locked pins the tool's own dependencies; if the registry no longer has
  # one of them (a yanked crate), fall back to the newest compatible ones.
  cargo install "$crate" --version "=$version" --root "$TOOLS_ROOT" --locked --quiet \
    || cargo install "$crate" --version "=$version" --root "$TOOLS_ROOT" --quiet
}

export PATH="$HOME/.cargo/bin:$PATH"
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
ensure_cargo_tool worker-build "$WORKER_BUILD_VERSION" worker-build
ensure_cargo_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
[ -x node_modules/.bin/esbuild ] && [ -x node_modules/.bin/wasm-opt ] || npm ci --no-audit --no-fund

export WASM_BINDGEN_BIN="$TOOLS_ROOT/bin/wasm-bindgen"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
# BUILD_FEATURES=bench builds the benchmark worker (scripts/bench.mjs) instead.
"$TOOLS_ROOT/bin/worker-build" --release ${BUILD_FEATURES:+--features "$BUILD_FEATURES"}

# worker-build keeps the wasm "names" section (wasm-opt --debuginfo), ~70 KB
# that only make stack traces readable; drop it. `strip = true` in Cargo.toml
# would instead drop the target_features section wasm-bindgen reads.
wasm="build/index_bg.wasm"
node_modules/.bin/wasm-opt "$wasm" -o "$wasm" --strip-debug --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling
echo "build: $wasm $(wc -c < "$wasm") bytes, $(gzip -9 -c "$wasm" | wc -c) gzip"
