#!/usr/bin/env bash
# shmproc against iceoryx2 and ipc-channel, in one run and one table:
#   1. the `compare_ext` binary (feature `ext`) measures the iceoryx2 and ipc-channel rows (two
#      processes each) and writes them as CSV in the format of the `compare` bench;
#   2. the `compare` bench measures shmproc and the other transports and merges those rows in
#      (--extra-csv), printing one table with every row's ratio against the shmproc row of its
#      group and payload.
#
# Usage: crates/shmproc-bench/run-ext.sh [compare's options and filters]
#   crates/shmproc-bench/run-ext.sh                                 # everything, a couple of minutes
#   crates/shmproc-bench/run-ext.sh --csv all.csv --svg chart.svg   # also the combined CSV and chart
#   crates/shmproc-bench/run-ext.sh "1P1C"                          # only rows whose label contains 1P1C
#   SHMPROC_BENCH_QUICK=1 crates/shmproc-bench/run-ext.sh           # smoke test: tiny counts, 1 run
# The SHMPROC_BENCH_* settings of crates/shmproc-bench/README.md apply to both parts. The first
# run builds iceoryx2 and ipc-channel (about a minute); builds without `--features ext` never
# compile them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

cargo build --release -p shmproc-bench --features ext --bin compare_ext
cargo bench -p shmproc-bench --bench compare --no-run
rows="${CARGO_TARGET_DIR:-$root/target}/ext-rows.csv"
rm -f "$rows"
# Its own table goes to stderr: stdout gets the one combined table.
cargo run --quiet --release -p shmproc-bench --features ext --bin compare_ext -- --rows "$rows" "$@" >&2
cargo bench -p shmproc-bench --bench compare -- --extra-csv "$rows" "$@"
