#!/usr/bin/env bash
# loom: model-checks the raw algorithms (crates/shmproc-raw/src/lock.rs,
# crates/shmproc-raw/src/ring/loom_tests.rs) over every interleaving loom explores, with loom's
# atomics swapped in by crates/shmproc-raw/src/primitive.rs.
#
# The algorithms are their own crate, `shmproc-raw`, which names nothing above it, so this
# runs that crate's unit tests alone (`-p shmproc-raw --lib`). Release mode, as loom
# recommends: the models run the real code millions of steps. Its own target dir, so the main
# build is not invalidated.
#
# Bounds: the lock models are explored exhaustively (no preemption bound; ~100 iterations).
# The ring models set their own bound (`check(3, ..)` in
# crates/shmproc-raw/src/ring/loom_tests.rs), which makes the run a few minutes on 2 cores. LOOM_MAX_PREEMPTIONS, when set by the caller,
# overrides both (a deeper nightly run: LOOM_MAX_PREEMPTIONS=4 .ci/loom.sh; the ring models
# then take much longer).
#
# Exits 0 with "SKIPPED: ..." when the toolchain or the crates cannot be had (no network),
# non-zero when a model fails.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
skip() {
    echo "SKIPPED: loom: $*"
    exit 0
}

command -v cargo >/dev/null 2>&1 || skip "cargo not found (install rustup)"
export CARGO_TARGET_DIR=target/loom
cargo fetch --quiet || skip "cannot fetch the crates (offline?)"

echo "loom: RUSTFLAGS=\"--cfg loom\" LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-<unset>} cargo test --release -p shmproc-raw --lib"
if RUSTFLAGS="${RUSTFLAGS:-} --cfg loom" cargo test --release -p shmproc-raw --lib; then
    echo "loom: passed in $((SECONDS - t0))s"
else
    rc=$?
    echo "loom: FAILED (exit $rc) after $((SECONDS - t0))s"
    exit $rc
fi
