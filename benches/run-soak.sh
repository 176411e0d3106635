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
#   DROP_ORIGINAL=1   delete the original before restoring (needs less disk)
#   SKIP_BUILD=1      use the binaries already built (or LRS_BIN / LOAD_BIN)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
FILL_TO=${FILL_TO:-10000000}
STEP=${STEP:-2000000}
DURATION=${DURATION:-20}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lrs-soak.XXXXXX")}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
TIMINGS=$OUT/timings.txt
: >"$RESULTS"
: >"$TIMINGS"

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p lrs-cli -p lrs-benches
fi
LRS=${LRS_BIN:-$ROOT/target/release/lrs}
LOAD=${LOAD_BIN:-$ROOT/target/release/lrs-load}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lrs-soak-data.XXXXXX")
DATA=$WORK/data
BACKUP=$WORK/backup
RESTORED=$WORK/restored
LRS_MASTER_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export LRS_MASTER_KEY
export LRS_LOG=warn

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
cleanup() {
    stop_server
    if [ -z "${KEEP_DATA:-}" ]; then rm -rf "$WORK"; else echo "data kept in $WORK"; fi
}
trap cleanup EXIT

start_server() {
    local dir=$1
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    URL=http://127.0.0.1:$PORT
    # These scenarios measure the most the server takes, not the limiter: the
    # request-rate limits are off unless set (docs/security-limits.md).
    LRS_RATE_PER_ADDRESS=${LRS_RATE_PER_ADDRESS:-0} LRS_RATE_PER_CREDENTIAL=${LRS_RATE_PER_CREDENTIAL:-0} \
        "$LRS" serve --data-dir "$dir" --listen "127.0.0.1:$PORT" 2>>"$OUT/server.log" &
    SERVER_PID=$!
    for _ in $(seq 1 3000); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return; fi
        sleep 0.1
    done
    echo "server did not start" >&2
    exit 1
}

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
    "$LOAD" --url "$URL" --key "$KEY" --secret "$SECRET" --server-pid "$SERVER_PID" \
        --label "$label" --json "$@" >>"$RESULTS"
}
last() { tail -n1 "$RESULTS" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

read -r KEY SECRET < <("$LRS" credentials add --name soak --data-dir "$DATA")
start_server "$DATA"
echo "# $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; data in $WORK ($(df -h "$WORK" | awk 'NR==2{print $4}') free)" >&2

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
    rss=$(awk '/VmRSS/{print $2}' "/proc/$SERVER_PID/status")
    echo "{\"scenario\":\"snapshot\",\"label\":\"$stored\",\"statements\":$stored,\"data_dir_bytes\":$du_bytes,\"server_rss_kib\":$rss,\"elapsed_s\":$(( $(date +%s) - START ))}" >>"$RESULTS"
    echo "## $stored statements after $(( $(date +%s) - START )) s; data dir $(du -sh "$DATA" | cut -f1), RSS $((rss / 1024)) MiB" >&2
done

echo "## online backup under 64 writers" >&2
load "during-backup" post-single --clients 64 --duration "${BACKUP_LOAD_SECONDS:-180}" --warmup 0 &
WRITERS=$!
sleep 3
timed online-backup "$LRS" backup --to "$BACKUP" --data-dir "$DATA"
wait "$WRITERS"
stop_server
timed offline-incremental-backup "$LRS" backup --to "$BACKUP" --data-dir "$DATA"
timed verify-backup "$LRS" verify --backup "$BACKUP"
du -sb "$BACKUP" | awk '{print "backup_bytes "$1}' | tee -a "$TIMINGS" >&2
du -sb "$DATA" | awk '{print "data_dir_bytes "$1}' | tee -a "$TIMINGS" >&2
if [ -n "${DROP_ORIGINAL:-}" ]; then rm -rf "$DATA"; fi
LRS_LOG=info timed restore "$LRS" restore --from "$BACKUP" --data-dir "$RESTORED"
timed verify-restored "$LRS" verify --data-dir "$RESTORED"
echo "## done in $(( $(date +%s) - START )) s; results in $OUT" >&2
