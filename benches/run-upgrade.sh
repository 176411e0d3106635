#!/usr/bin/env bash
# Upgrading a store (docs/operations.md, "Upgrading"): an older binary
# (OLD_BIN) fills a fresh store with SIZE statements of `lrs-load
# fill-activity`, then the newer one (NEW_BIN) opens it (rebuilding every
# projection whose version changed), serves it, takes 2,000 more
# statements, and `lrs verify` checks the chain and that every projection
# equals its rebuild from the log. Prints how long the new server took to
# listen (the upgrade's downtime) and the verify verdict; exits non-zero if
# anything fails.
#
#   OLD_BIN=/tmp/old/lrs NEW_BIN=target/release/lrs benches/run-upgrade.sh
#
# Environment:
#   OLD_BIN, NEW_BIN   the two `lrs` binaries (required)
#   LOAD_BIN           lrs-load (default: beside NEW_BIN)
#   SIZE=1000000       statements written by the old binary
#   OUT=DIR, KEEP_DATA=1   as in lib.sh
set -euo pipefail
export LRS_LOG=${LRS_LOG:-info,lrs_server::access=warn}

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
: "${OLD_BIN:?the older lrs binary}" "${NEW_BIN:?the newer lrs binary}"
SIZE=${SIZE:-1000000}
bench_out lrs-upgrade-results
SKIP_BUILD=1 LRS_BIN=$OLD_BIN LOAD_BIN=${LOAD_BIN:-$(dirname "$NEW_BIN")/lrs-load} bench_build
bench_data_dir lrs-upgrade
bench_master_key
"$LRS" tenants define --id kb --name KB --kind kb --data-dir "$DATA" >/dev/null
read -r KEY SECRET < <(bench_credential upgrade --tenant kb --scope all)
bench_start_server
fill() {
    bench_load --learners 100000 "$@"
}
fill --label old fill-activity --statements "$SIZE" --batch 500 --clients 4 --progress-every 30
bench_stop_server

LRS=$NEW_BIN
bench_start_server_timed
echo "$NEW_BIN listens after $STARTED_IN s on the store of $SIZE statements written by $OLD_BIN" |
    tee "$OUT/upgrade.txt"
NEXT=$(bench_next_unit)
fill --label new fill-activity --statements 2000 --batch 100 --clients 2 --start-unit "$NEXT"
bench_stop_server
"$LRS" verify --data-dir "$DATA" 2>/dev/null | grep -E '^(ok|PROJECTION|BROKEN)' | tee -a "$OUT/upgrade.txt"
grep -q '^ok: every projection rebuilt' "$OUT/upgrade.txt"
