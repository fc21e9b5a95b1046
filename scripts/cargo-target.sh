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
