#!/usr/bin/env bash
# Soak to a large store, then backup and restore it (requirements 2.31, 2.32):
#
#   1. start `lrs serve` on a fresh data directory (generated master key);
#   2. in steps of STEP statements up to FILL_TO: grow the store with
#      batches (`lrs-load fill`), then measure the same probes at every size
#      (single POSTs with 64 clients, filtered queries with 8 clients), so
#      degradation over time shows as a trend across the steps;
#   3. an online backup (`lrs backup`) while 64 clients keep POSTing, timed;
#   4. stop the server; an offline incremental backup catches the rest;
#   5. with DROP_ORIGINAL=1 the original data directory is deleted (disk);
#   6. `lrs restore` into a new directory, timed (log, then projections),
#      and `lrs verify` of the restored store, timed.
#
# Results: JSON lines in $OUT/results.jsonl, timings in $OUT/timings.txt.
#
# Environment (all optional):
#   FILL_TO=10000000  STEP=2000000  DURATION=20 (seconds per probe)
#   OUT=DIR           where results go (default: a new directory under /tmp)
#   BACKUP_LOAD_SECONDS=180  seconds the 64 writers POST during the online backup
#   DROP_ORIGINAL=1   delete the original before restoring (needs less disk)
#   KEEP_DATA=1       keep the data directory, the backup and the restored copy
#   SKIP_BUILD=1      use the binaries already built (or LRS_BIN / LOAD_BIN)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
FILL_TO=${FILL_TO:-10000000}
STEP=${STEP:-2000000}
DURATION=${DURATION:-20}
bench_out lrs-soak
TIMINGS=$OUT/timings.txt
: >"$TIMINGS"

bench_build
# One temporary directory, removed at the end unless KEEP_DATA, holds the data
# directory, the backup and the restored copy.
bench_data_dir lrs-soak-data
WORK=$DATA
DATA=$WORK/data
BACKUP=$WORK/backup
RESTORED=$WORK/restored
bench_master_key

timed() {
    # timed LABEL COMMAND...: runs it, appends "LABEL seconds" to timings.txt
    local label=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    echo "$label $(python3 -c "print(round($t1 - $t0, 1))")" | tee -a "$TIMINGS" >&2
}

load() {
    local label=$1
    shift
    bench_load --label "$label" "$@"
}
last() { tail -n1 "$RESULTS" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

read -r KEY SECRET < <(bench_credential soak)
bench_start_server
bench_header >&2

stored=0
START=$(date +%s)
while [ "$stored" -lt "$FILL_TO" ]; do
    target=$((stored + STEP))
    [ "$target" -gt "$FILL_TO" ] && target=$FILL_TO
    load "to-$target" fill --statements $((target - stored)) --batch 500 --clients 4 --progress-every 30 --max-duration 3600
    stored=$((stored + $(last statements)))
    load "$stored" post-single --clients 64 --duration "$DURATION"
    stored=$((stored + $(last statements)))
    load "$stored" query --clients 8 --duration "$DURATION"
    du_bytes=$(du -sb "$DATA" | cut -f1)
    read -r rss _ < <(bench_rss)
    echo "{\"scenario\":\"snapshot\",\"label\":\"$stored\",\"statements\":$stored,\"data_dir_bytes\":$du_bytes,\"server_rss_kib\":$rss,\"elapsed_s\":$(( $(date +%s) - START ))}" >>"$RESULTS"
    echo "## $stored statements after $(( $(date +%s) - START )) s; data dir $(du -sh "$DATA" | cut -f1), RSS $((rss / 1024)) MiB" >&2
done

echo "## online backup under 64 writers" >&2
load "during-backup" post-single --clients 64 --duration "${BACKUP_LOAD_SECONDS:-180}" --warmup 0 &
WRITERS=$!
sleep 3
timed online-backup "$LRS" backup --to "$BACKUP" --data-dir "$DATA"
wait "$WRITERS"
bench_stop_server
timed offline-incremental-backup "$LRS" backup --to "$BACKUP" --data-dir "$DATA"
timed verify-backup "$LRS" verify --backup "$BACKUP"
du -sb "$BACKUP" | awk '{print "backup_bytes "$1}' | tee -a "$TIMINGS" >&2
du -sb "$DATA" | awk '{print "data_dir_bytes "$1}' | tee -a "$TIMINGS" >&2
if [ -n "${DROP_ORIGINAL:-}" ]; then rm -rf "$DATA"; fi
LRS_LOG=info timed restore "$LRS" restore --from "$BACKUP" --data-dir "$RESTORED"
timed verify-restored "$LRS" verify --data-dir "$RESTORED"
echo "## done in $(( $(date +%s) - START )) s; results in $OUT" >&2
