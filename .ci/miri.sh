#!/usr/bin/env bash
# Miri: the libraries' unit tests and the conformance suite's heap half under the interpreter,
# which reports undefined behaviour: data races (on the heap-backed ring payload's
# `UnsafeCell` cells, see crates/shmproc-raw/src/ring/heap.rs, and mixed-size or non-atomic
# accesses to shared words), out-of-bounds or misaligned access, invalid values, aliasing
# violations, leaks. That is:
# - the raw algorithms' tests (crate shmproc-raw: lock, ring, claims) and the pure helpers of
#   shmproc (segment::header, segment::name), pure code over heap memory;
# - the conformance suite (tests/conformance/, `--test conformance`): the public Queue, Value
#   and Array, end to end, on heap memory laid out exactly like a segment (`heap::*`, through
#   the `testing` feature's `shmproc::testing`; the lib's `segment::heap` tests): same header,
#   participant table and body; liveness beacons are bits, waiting sleeps.
#
# Nothing here opens a segment, maps memory, takes an OFD lock, waits on a futex or spawns a
# process, and Miri's isolation (left on) proves it, since any such call would stop the test.
# The suite's real-/dev/shm instantiation (`shm::*`) is `#[cfg_attr(miri, ignore)]` and left
# out by the `heap` filter, and the other integration tests (tests/*.rs) need shm_open and a
# shared mmap, hence `--lib` and `--test conformance -- heap` only.
# Stress tests scale themselves down with `cfg!(miri)`.
#
# MIRIFLAGS:
#   -Zmiri-strict-provenance        no integer-to-pointer casts anywhere (there are none)
#   -Zmiri-symbolic-alignment-check alignment must follow from the types, not from where the
#                                   allocator happened to put a buffer
# Then the multi-threaded tests run again under 4 more scheduler seeds (-Zmiri-many-seeds):
# each seed is another interleaving and another choice of stale values in Miri's weak
# memory emulation.
#
# Exits 0 with "SKIPPED: ..." when nightly, Miri or its sysroot cannot be installed (no
# network), non-zero when a test fails or Miri reports UB.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
skip() {
    echo "SKIPPED: miri: $*"
    exit 0
}

toolchain="${MIRI_TOOLCHAIN:-nightly}"
command -v rustup >/dev/null 2>&1 || skip "rustup not found"
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$toolchain" --profile minimal --component miri,rust-src ||
        skip "cannot install the $toolchain toolchain (offline?)"
fi
installed=$(rustup component list --toolchain "$toolchain" --installed 2>/dev/null || true)
if ! grep -q '^miri' <<<"$installed" || ! grep -q '^rust-src' <<<"$installed"; then
    rustup component add miri rust-src --toolchain "$toolchain" ||
        skip "cannot add miri and rust-src to $toolchain (offline, or missing from this nightly?)"
fi

export CARGO_TARGET_DIR=target/miri
cargo "+$toolchain" fetch --quiet || skip "cannot fetch the crates (offline?)"
cargo "+$toolchain" miri setup || skip "cannot build Miri's sysroot (offline?)"

flags="-Zmiri-strict-provenance -Zmiri-symbolic-alignment-check"
failed=0
echo "miri: MIRIFLAGS=\"$flags\" cargo +$toolchain miri test --lib"
MIRIFLAGS="$flags ${MIRIFLAGS:-}" cargo "+$toolchain" miri test --lib || failed=1
echo "miri: MIRIFLAGS=\"$flags\" cargo +$toolchain miri test -p shmproc --test conformance -- heap"
MIRIFLAGS="$flags ${MIRIFLAGS:-}" cargo "+$toolchain" miri test -p shmproc --test conformance -- heap || failed=1

threaded_lib=(lock::tests::threads_exclude_each_other
    ring::tests::two_producers_two_consumers_deliver_every_item_once_in_order
    segment::heap::tests::an_opener_racing_its_creator_reads_a_whole_header)
threaded_conformance=(heap::queue_two_producers_two_consumers_deliver_each_item_once_in_order
    heap::value_blocked_locker_sees_owner_died)
echo "miri: seeds 1..4 of the multi-threaded tests"
MIRIFLAGS="$flags -Zmiri-many-seeds=1..5 ${MIRIFLAGS:-}" \
    cargo "+$toolchain" miri test --lib -- --exact "${threaded_lib[@]}" || failed=1
MIRIFLAGS="$flags -Zmiri-many-seeds=1..5 ${MIRIFLAGS:-}" \
    cargo "+$toolchain" miri test -p shmproc --test conformance -- --exact "${threaded_conformance[@]}" || failed=1

if [ "$failed" = 0 ]; then
    echo "miri: passed in $((SECONDS - t0))s"
else
    echo "miri: FAILED after $((SECONDS - t0))s"
    exit 1
fi
