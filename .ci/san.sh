#!/usr/bin/env bash
# Sanitizers: ThreadSanitizer, then AddressSanitizer (with LeakSanitizer), over the library's
# unit tests and the integration tests, with the standard library rebuilt instrumented
# (-Zbuild-std). Cross-process tests re-run the test binary as their children
# (tests/common/mod.rs), so the children are instrumented too; their reports go to the
# inherited stderr, which is why the log is searched for reports as well as the exit code
# checked (a child killed by its test, or whose status the test ignores, fails nothing).
#
# What TSan can and cannot see here:
# - It sees the threads of one process: the unit tests' threaded lock and ring tests (heap
#   memory, payload in `UnsafeCell`s ordered by the slot protocol), and threads of a test
#   process sharing one mapping.
# - Races between processes through a shared mapping are invisible to it (each process has
#   its own shadow memory); loom and the ring/lock models cover those algorithms.
# - Payload copies into a mapping go through `atomic-memcpy`, which is made of relaxed atomic
#   loads and stores: TSan instruments them as atomics, so racing copies are not reported
#   (nothing to suppress). Were a suppression ever needed, it goes in .ci/tsan.supp, one
#   commented entry each; this script passes that file when it exists.
#
# Doctests are excluded (`--lib --tests`): rustdoc would build them without the sanitizer
# flags, against an instrumented library.
#
# The packages are the library and its algorithms (`-p shmproc -p shmproc-raw`): the tool and
# the bridge use only the public API, and the bridge's TLS stack (ring: C and assembly that
# the sanitizers do not instrument) would only add reports about code that is not ours.
#
# Exits 0 with "SKIPPED: ..." when nightly, rust-src or the crates cannot be had (no network)
# or the platform has no sanitizers, non-zero when a test fails or a sanitizer reports.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
skip() {
    echo "SKIPPED: sanitizers: $*"
    exit 0
}

[[ "$(uname -s)" == Linux ]] || skip "sanitizers are run on Linux only"
toolchain="${SAN_TOOLCHAIN:-nightly}"
command -v rustup >/dev/null 2>&1 || skip "rustup not found"
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$toolchain" --profile minimal --component rust-src ||
        skip "cannot install the $toolchain toolchain (offline?)"
fi
if ! rustup component list --toolchain "$toolchain" --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain "$toolchain" || skip "cannot add rust-src to $toolchain (offline?)"
fi
host=$(rustup run "$toolchain" rustc -vV | sed -n 's/^host: //p')
case "$host" in
x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) ;;
*) skip "no TSan/ASan support wired up for $host" ;;
esac
# -Zbuild-std needs the standard library's own dependencies from crates.io.
cargo "+$toolchain" fetch --quiet -Zbuild-std --target "$host" || skip "cannot fetch the crates (offline?)"

failed=()

# run NAME SANITIZER: one sanitizer over the lib and integration tests, in target/NAME.
run() {
    local name=$1 sanitizer=$2 t=$SECONDS
    local log="target/$name/test.log"
    mkdir -p "target/$name"
    echo "=== $name: RUSTFLAGS=\"-Zsanitizer=$sanitizer\" cargo +$toolchain test -Zbuild-std --target $host -p shmproc -p shmproc-raw --lib --tests"
    local rc=0
    CARGO_TARGET_DIR="target/$name" RUSTFLAGS="${RUSTFLAGS:-} -Zsanitizer=$sanitizer" \
        cargo "+$toolchain" test -Zbuild-std --target "$host" -p shmproc -p shmproc-raw --lib --tests 2>&1 | tee "$log" || rc=$?
    local reports
    reports=$(grep -cE 'WARNING: ThreadSanitizer|ERROR: (Address|Leak)Sanitizer' "$log" || true)
    if [ "$rc" != 0 ] || [ "$reports" != 0 ]; then
        echo "$name: FAILED (exit $rc, $reports sanitizer reports, log: $log) after $((SECONDS - t))s"
        failed+=("$name")
    else
        echo "$name: passed in $((SECONDS - t))s"
    fi
}

tsan_options="halt_on_error=0 second_deadlock_stack=1"
if [ -f .ci/tsan.supp ]; then
    tsan_options+=" suppressions=$PWD/.ci/tsan.supp"
fi
TSAN_OPTIONS="$tsan_options ${TSAN_OPTIONS:-}" run tsan thread
ASAN_OPTIONS="detect_leaks=1 detect_stack_use_after_return=1 ${ASAN_OPTIONS:-}" run asan address

if [ ${#failed[@]} = 0 ]; then
    echo "sanitizers: passed in $((SECONDS - t0))s"
else
    echo "sanitizers: FAILED (${failed[*]}) after $((SECONDS - t0))s"
    exit 1
fi
