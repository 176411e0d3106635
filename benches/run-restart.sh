#!/usr/bin/env bash
# How long a start takes after a clean stop, after a `kill -9`, and after a
# simulated power loss (docs/adr/0008): a fresh store filled with SIZE
# statements of `lrs-load fill-activity` (batches of 500, 4 clients), then
#
#   1. a clean stop and a start (the resident trees from their snapshot);
#   2. STEP statements, `kill -9`, a start (snapshot + journal);
#   3. STEP statements, `kill -9`, the journal cut to its header (what a
#      power loss can leave, since the journal is not synced), a start (the
#      statement index and progress folded again from the log);
#
# each timed from the start to the port accepting connections, then
# `lrs verify` (chain, and every projection against its rebuild). Prints
# the three times and the verdict to $OUT/summary.txt; exits non-zero if
# verify finds a difference.
#
#   SIZE=1000000 benches/run-restart.sh
#
# Environment (all optional):
#   SIZE=1000000   statements of the fill
#   STEP=20000     statements before each kill -9
#   OUT=DIR, SKIP_BUILD=1, LRS_BIN, LOAD_BIN, KEEP_DATA=1   as in lib.sh
set -euo pipefail
export LRS_LOG=${LRS_LOG:-info,lrs_server::access=warn}

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
SIZE=${SIZE:-1000000}
STEP=${STEP:-20000}
bench_out lrs-restart-results
bench_build
bench_data_dir lrs-restart
bench_master_key
"$LRS" tenants define --id kb --name KB --kind kb --data-dir "$DATA" >/dev/null
read -r KEY SECRET < <(bench_credential restart --tenant kb --scope all)
NEXT=0
fill() {
    # fill LABEL COUNT BATCH CLIENTS: from NEXT on, which it moves past the fill
    bench_load --learners 100000 --label "$1" fill-activity --statements "$2" --batch "$3" \
        --clients "$4" --start-unit "$NEXT" --progress-every 30
    NEXT=$(bench_next_unit)
}
timed_start() {
    bench_start_server_timed
    echo "$1: listens after $STARTED_IN s" | tee -a "$OUT/summary.txt"
}
crash() {
    kill -9 "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
refolds() {
    echo "  projections folded again so far: $(grep -c 'folding it again' "$OUT/server.log" || true)" |
        tee -a "$OUT/summary.txt"
}

bench_start_server
fill fill "$SIZE" 500 4
bench_stop_server
timed_start "after a clean stop (snapshot)"
fill before-kill-1 "$STEP" 100 2
crash
timed_start "after kill -9 (snapshot + journal)"
refolds
fill before-kill-2 "$STEP" 100 2
crash
truncate -s 48 "$DATA/log/resident.journal"
timed_start "after kill -9 with the journal cut to its header (a power loss)"
refolds
bench_stop_server
"$LRS" verify --data-dir "$DATA" 2>/dev/null | grep -E '^(ok|PROJECTION|BROKEN)' | tee -a "$OUT/summary.txt"
grep -q '^ok: every projection rebuilt' "$OUT/summary.txt"
