#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, starting from the committed corpus.
# Installs the nightly toolchain and cargo-fuzz if missing; prints SKIPPED and exits 0 when
# they cannot be installed; exits non-zero when a target finds a crash or leaves segments.
# Usage: .ci/fuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"

skip() { echo "SKIPPED: $*"; exit 0; }

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal >/dev/null 2>&1 || skip "no nightly toolchain (cargo-fuzz needs it)"
fi
rustup component add rust-src --toolchain nightly >/dev/null 2>&1 || true
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || skip "cargo-fuzz could not be installed"
fi

cd fuzz
t0=$SECONDS
cargo +nightly fuzz build
echo "fuzz build: $((SECONDS - t0)) s"
for t in $(cargo +nightly fuzz list); do
    t1=$SECONDS
    # Replay the committed corpus and regressions first, then fuzz for a bounded time.
    dirs=("corpus/$t")
    [ -d "regressions/$t" ] && dirs+=("regressions/$t")
    cargo +nightly fuzz run "$t" "${dirs[@]}" -- -runs=0
    cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 -timeout=10
    echo "fuzz $t: clean for ${secs} s ($((SECONDS - t1)) s with replay)"
done
if ls /dev/shm 2>/dev/null | grep -q '^shmproc\.fz'; then
    echo "fuzz targets left segments in /dev/shm:"; ls /dev/shm | grep '^shmproc\.fz'; exit 1
fi
