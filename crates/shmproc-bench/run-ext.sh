#!/usr/bin/env bash
# shmproc against iceoryx2 and ipc-channel, in one run and one table:
#   1. this package's binary measures the iceoryx2 and ipc-channel rows (two processes each)
#      and writes them as CSV in the format of benches/compare.rs;
#   2. the main crate's `compare` bench measures shmproc and the other transports and merges
#      those rows in (--extra-csv), printing one table with every row's ratio against the
#      shmproc row of its group and payload.
#
# Usage: bench-ext/run.sh [compare's options and filters]
#   bench-ext/run.sh                                  # everything, a couple of minutes
#   bench-ext/run.sh --csv all.csv --svg chart.svg    # also the combined CSV and chart
#   bench-ext/run.sh "1P1C"                           # only rows whose label contains 1P1C
#   SHMPROC_BENCH_QUICK=1 bench-ext/run.sh            # smoke test: tiny counts, 1 run
# The SHMPROC_BENCH_* settings of benches/README.md apply to both parts. The first run builds
# iceoryx2 and ipc-channel (about a minute); the main crate's build never compiles them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

cargo build --release --manifest-path "$here/Cargo.toml"
cargo bench --manifest-path "$root/Cargo.toml" --bench compare --no-run
rows="$here/target/ext-rows.csv"
rm -f "$rows"
# Its own table goes to stderr: stdout gets the one combined table.
"$here/target/release/shmproc-bench-ext" --rows "$rows" "$@" >&2
cargo bench --manifest-path "$root/Cargo.toml" --bench compare -- --extra-csv "$rows" "$@"
