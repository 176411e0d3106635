#!/usr/bin/env bash
# Ingest cost of realistic course activity (issue 5: what the progress
# projection adds per statement): a fresh store, the KB tenant, then
# `lrs-load fill-activity` twice: single POSTs from 64 clients, then batches
# of 100 from 4 clients. Run it with the server binary before and after a
# change (LRS_BIN), one after the other, on a quiet machine.
#
# Environment (all optional):
#   SINGLE=40000       statements sent as single POSTs (64 clients)
#   BATCHED=300000     statements sent in batches of 100 (4 clients)
#   OUT=DIR, KEEP_DATA=1, SKIP_BUILD=1, LRS_BIN, LOAD_BIN   as in run-statements.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SINGLE=${SINGLE:-40000}
BATCHED=${BATCHED:-300000}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lrs-ingest-results.XXXXXX")}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release -p lrs-cli -p lrs-benches
fi
LRS=${LRS_BIN:-$ROOT/target/release/lrs}
LOAD=${LOAD_BIN:-$ROOT/target/release/lrs-load}
DATA=$(mktemp -d "${TMPDIR:-/tmp}/lrs-ingest.XXXXXX")
LRS_MASTER_KEY=$(openssl rand -hex 32 2>/dev/null || python3 -c 'import secrets; print(secrets.token_hex(32))')
export LRS_MASTER_KEY
export LRS_LOG=warn
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -z "${KEEP_DATA:-}" ]; then rm -rf "$DATA"; else echo "data kept in $DATA"; fi
}
trap cleanup EXIT
"$LRS" tenants define --id kb --name KB --kind kb --data-dir "$DATA" >/dev/null
read -r KEY SECRET < <("$LRS" credentials add --name ingest --tenant kb --scope all --data-dir "$DATA")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LRS_RATE_PER_ADDRESS=0 LRS_RATE_PER_CREDENTIAL=0 \
    "$LRS" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" 2>"$OUT/server.log" &
SERVER_PID=$!
for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.1
done
kill -0 "$SERVER_PID"
echo "# $LRS ($(date -r "$LRS" -u +%FT%TZ)), load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/run.txt" >&2
load() {
    local label=$1
    shift
    "$LOAD" --url "http://127.0.0.1:$PORT" --key "$KEY" --secret "$SECRET" --server-pid "$SERVER_PID" \
        --label "$label" --json "$@" >>"$RESULTS"
}
load single fill-activity --statements "$SINGLE" --batch 1 --clients 64
NEXT=$(tail -n1 "$RESULTS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_unit"])')
load batched fill-activity --statements "$BATCHED" --batch 100 --clients 4 --start-unit "$NEXT"
DU=$(du -sb "$DATA" | cut -f1)
{
    cat "$OUT/run.txt"
    echo "data dir $((DU / 1048576)) MiB after $((SINGLE + BATCHED)) statements: $((DU / (SINGLE + BATCHED))) bytes per statement"
    python3 - "$RESULTS" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    lat, res = r["latency"], r["resources"]
    print(f"{r['label']:8} batch {r['batch']:<4} clients {r['clients']:<3} {r['statements']:>7} statements: "
          f"{r['statements_per_s']:>8.0f} st/s, {r['requests_per_s']:>7.0f} req/s, p50 {lat['p50_ms']} p95 {lat['p95_ms']} "
          f"p99 {lat['p99_ms']} ms, errors {r['errors']}, server CPU {res.get('server_cpu_pct')}%, "
          f"disk {res.get('server_disk_written_bytes_per_statement')} B/statement")
PY
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"
