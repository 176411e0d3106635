#!/usr/bin/env bash
# Ingest cost of realistic course activity (issue 5: what the progress
# projection adds per statement): a fresh store, the KB tenant, then
# `lrs-load fill-activity` twice: single POSTs from 64 clients, then batches
# of 100 from 4 clients; before them, the server's HTTP floor (GET
# /xapi/about with the same credential, 64 clients, FLOOR_SECONDS). Run it
# with the server binary before and after a change (LRS_BIN), one after the
# other, on a quiet machine. Ends with `lrs verify` (the data directory by
# part and each sled tree's raw bytes) when the server is new enough to print them;
# $OUT/tree-writes.txt: the keys and bytes the server wrote to each sled tree.
#
# Environment (all optional):
#   DATA_DIR=DIR       run on this existing, stopped data directory (with a
#                      tenant `kb`; its master key in LRS_MASTER_KEY) instead
#                      of a fresh one: the rates at that store's size
#   START_UNIT=0       the generator's first learner-month (on a DATA_DIR
#                      filled by fill-activity: its last `next_unit`, so that
#                      the statements are new)
#   LEARNERS=50000 MONTHS=12   the generator's world (as the fill's)
#   SINGLE=40000       statements sent as single POSTs (64 clients)
#   BATCHED=300000     statements sent in batches of 100 (4 clients)
#   FLOOR_SECONDS=10   seconds of GET /xapi/about
#   OUT=DIR, KEEP_DATA=1, SKIP_BUILD=1, LRS_BIN, LOAD_BIN   as in run-statements.sh
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
SINGLE=${SINGLE:-40000}
BATCHED=${BATCHED:-300000}
FLOOR_SECONDS=${FLOOR_SECONDS:-10}
START_UNIT=${START_UNIT:-0}
LEARNERS=${LEARNERS:-50000}
MONTHS=${MONTHS:-12}
bench_out lrs-ingest-results
bench_build
if [ -n "${DATA_DIR:-}" ]; then
    DATA=$DATA_DIR
    : "${LRS_MASTER_KEY:?must hold the master key of DATA_DIR}"
    export LRS_MASTER_KEY
else
    bench_data_dir lrs-ingest
    bench_master_key
    "$LRS" tenants define --id kb --name KB --kind kb --data-dir "$DATA" >/dev/null
fi
DU_BEFORE=$(du -sb "$DATA" | cut -f1)
read -r KEY SECRET < <(bench_credential ingest --tenant kb --scope all)
bench_start_server
bench_header | tee "$OUT/run.txt" >&2
load() {
    local label=$1
    shift
    bench_load --learners "$LEARNERS" --label "$label" "$@"
}
load floor about --clients 64 --duration "$FLOOR_SECONDS"
load single fill-activity --months "$MONTHS" --statements "$SINGLE" --batch 1 --clients 64 --start-unit "$START_UNIT"
NEXT=$(bench_next_unit)
load batched fill-activity --months "$MONTHS" --statements "$BATCHED" --batch 100 --clients 4 --start-unit "$NEXT"
DU=$(($(du -sb "$DATA" | cut -f1) - DU_BEFORE))
# Keys and bytes written to each sled tree since the server started.
curl -s "$URL/metrics" | grep '^lrs_store_tree_writ' >"$OUT/tree-writes.txt" || true
bench_stop_server
"$LRS" verify --data-dir "$DATA" --chain-only >"$OUT/verify.txt" 2>/dev/null || true
{
    cat "$OUT/run.txt"
    echo "data dir grew by $((DU / 1048576)) MiB with $((SINGLE + BATCHED)) statements: $((DU / (SINGLE + BATCHED))) bytes per statement"
    python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
floor = next((r["requests_per_s"] for r in rows if r["scenario"] == "about"), None)
for r in rows:
    if r["scenario"] == "about":
        lat = r["latency"]
        print(f"floor    GET /xapi/about, 64 clients: {r['requests_per_s']:>8.0f} req/s, p50 {lat['p50_ms']} p99 {lat['p99_ms']} ms, errors {r['errors']}")
        continue
    lat, res = r["latency"], r["resources"]
    print(f"{r['label']:8} batch {r['batch']:<4} clients {r['clients']:<3} {r['statements']:>7} statements: "
          f"{r['statements_per_s']:>8.0f} st/s, {r['requests_per_s']:>7.0f} req/s, p50 {lat['p50_ms']} p95 {lat['p95_ms']} "
          f"p99 {lat['p99_ms']} ms, errors {r['errors']}, server CPU {res.get('server_cpu_pct')}%, "
          f"disk {res.get('server_disk_written_bytes_per_statement')} B/statement"
          + (f", {r['requests_per_s'] / floor:.2f}x the floor's requests/s" if floor else ""))
PY
    grep -A100 '^sizes:' "$OUT/verify.txt" || true
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"
