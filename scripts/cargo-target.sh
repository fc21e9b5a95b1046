# Sourced by the build and test scripts: where cargo keeps what it compiled.
#
# Unless CARGO_TARGET_DIR says otherwise, that is a per-user cache outside
# the clone (~/.cache/tokengate/target), not ./target: compiling the
# dependencies (worker, jwt-compact, proptest, ...) is most of a fresh
# clone's run, and cargo reuses them from there for every later clone of the
# same lock file, as it reuses the crates it downloaded. Cargo's fingerprints
# keep it correct (another clone's path, lock file or profile rebuilds what
# differs); it only grows, and deleting it costs one slow run.
: "${CARGO_TARGET_DIR:=${XDG_CACHE_HOME:-$HOME/.cache}/tokengate/target}"
export CARGO_TARGET_DIR

# Cargo decides that a path package is fresh by comparing its files' mtimes
# with what it built last. A cache shared by clones at different paths can
# thus look fresh to a working tree whose files are older than another
# clone's build, and hand it that clone's artifacts (and the absolute path
# wasm-bindgen embeds for js/host.mjs). So when the cache was last used from
# another directory, this project's own crates are forgotten and compiled
# again; the dependencies, which come from the registry, are kept. (Two
# clones building at the same moment still share one cache: run them one
# after the other.) "Directory" is the clone's root, wherever the sourcing
# script runs from: examples/workers-rs/build.sh, run by a test while the
# lint job compiles, must not count as another clone and delete the
# fingerprints that job is writing.
_tokengate_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
_tokengate_source="$CARGO_TARGET_DIR/.tokengate-source"
if [ "$(cat "$_tokengate_source" 2>/dev/null)" != "$_tokengate_root" ]; then
  mkdir -p "$CARGO_TARGET_DIR"
  find "$CARGO_TARGET_DIR" -path '*/.fingerprint/tokengate*' -prune -exec rm -rf {} + 2>/dev/null || true
  printf '%s\n' "$_tokengate_root" > "$_tokengate_source"
fi
unset _tokengate_root _tokengate_source
