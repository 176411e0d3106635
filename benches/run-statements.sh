#!/usr/bin/env bash
# Statement throughput and query latency of the LRS, end to end over HTTP on
# 127.0.0.1: builds release, starts `lrs serve` on a fresh temporary data
# directory with a generated master key and credential, and runs lrs-load:
#
#   1. post-single, 1 client and 64 clients        (store ~empty)
#   2. post-batch, batches of 100                   (store ~empty)
#   3. query                                        (small store)
#   4. fill to 100,000; post-single 64; query       (at 100k)
#   5. fill to 1,000,000; post-single 64; post-batch; query (at 1M)
#   6. data directory size and server RSS at 1M; `lrs verify` is not run (slow)
#
# Results: one JSON line per scenario in $OUT/results.jsonl, human tables on
# the terminal, a summary in $OUT/summary.txt.
#
# Environment (all optional):
#   DURATION=20        seconds measured per timed scenario (after a 2 s warm-up)
#   FILL_TO=1000000    final store size
#   MID=100000         intermediate store size
#   OUT=DIR            where results go (default: a new directory under /tmp)
#   KEEP_DATA=1        keep the data directory
#   PERF=1             count fsync/fdatasync of the server with `perf stat` during post-single 64
#   SKIP_BUILD=1       use the binaries already built (target/release, or $CARGO_TARGET_DIR/release if set; or LRS_BIN / LOAD_BIN)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-20}
FILL_TO=${FILL_TO:-1000000}
MID=${MID:-100000}
bench_out lrs-bench-results

bench_build
bench_data_dir lrs-bench
bench_master_key
read -r KEY SECRET < <(bench_credential bench)
bench_start_server
bench_header

load() {
    # load LABEL SCENARIO ARGS...: runs lrs-load, appends its JSON to results.jsonl
    local label=$1
    shift
    bench_load --label "$label" "$@"
}

stored=0
count_last() {
    # statements the last lrs-load run stored
    tail -n1 "$RESULTS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["statements"])'
}
fill_to() {
    local target=$1 label=$2
    local need=$((target - stored))
    if [ "$need" -gt 0 ]; then
        load "$label" fill --statements "$need" --batch 500 --clients 4 --progress-every 5 --max-duration 1200
        stored=$((stored + $(count_last)))
        if [ "$(tail -n1 "$RESULTS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["complete"])')" != True ]; then
            echo "fill to $target did not complete; stopping" >&2
            exit 1
        fi
    fi
}

snapshot() {
    # snapshot LABEL: data directory size and server memory
    local label=$1
    local du_bytes rss hwm
    du_bytes=$(du -sb "$DATA" | cut -f1)
    read -r rss hwm < <(bench_rss)
    echo "{\"scenario\":\"snapshot\",\"label\":\"$label\",\"statements\":$stored,\"data_dir_bytes\":$du_bytes,\"server_rss_kib\":$rss,\"server_hwm_kib\":$hwm}" >>"$RESULTS"
    echo "snapshot [$label]: $stored statements stored by the load generator, data dir $(du -sh "$DATA" | cut -f1) ($du_bytes bytes), server RSS $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB)" >&2
    du -sb "$DATA"/* >&2 || true
}

post_single_64() {
    local label=$1
    if [ -n "${PERF:-}" ] && command -v perf >/dev/null; then
        perf stat -e 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_sync_file_range,syscalls:sys_enter_pwrite64' \
            -p "$SERVER_PID" -o "$OUT/perf-fsync-$label.txt" -- sleep $((DURATION + 2)) &
        local perf_pid=$!
        load "$label" post-single --clients 64 --duration "$DURATION"
        wait "$perf_pid" || true
        grep -E 'syscalls|elapsed' "$OUT/perf-fsync-$label.txt" >&2 || true
    else
        load "$label" post-single --clients 64 --duration "$DURATION"
    fi
    stored=$((stored + $(count_last)))
}

START=$(date +%s)
echo "## store ~empty" >&2
load "empty" post-single --clients 1 --duration "$DURATION"
stored=$((stored + $(count_last)))
post_single_64 empty
load "empty" post-batch --clients 4 --batch 100 --duration "$DURATION"
stored=$((stored + $(count_last)))
load "small" query --clients 8 --duration "$DURATION"
snapshot small

echo "## growing to $MID" >&2
fill_to "$MID" "to-$MID"
snapshot "$MID"
post_single_64 "$MID"
load "$MID" post-batch --clients 4 --batch 100 --duration "$DURATION"
stored=$((stored + $(count_last)))
load "$MID" query --clients 8 --duration "$DURATION"

echo "## growing to $FILL_TO" >&2
fill_to "$FILL_TO" "to-$FILL_TO"
snapshot "$FILL_TO"
post_single_64 "$FILL_TO"
load "$FILL_TO" post-batch --clients 4 --batch 100 --duration "$DURATION"
stored=$((stored + $(count_last)))
load "$FILL_TO" query --clients 8 --duration "$DURATION"
load "$FILL_TO-1client" query --clients 1 --duration "$DURATION"
snapshot "$FILL_TO-end"

echo "## done in $(( $(date +%s) - START )) s; results in $RESULTS" >&2
python3 - "$RESULTS" >"$OUT/summary.txt" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    s, label = r["scenario"], r.get("label", "")
    if s in ("post-single", "post-batch"):
        l = r["latency"]
        print(f"{s:12} {label:14} clients={r['clients']:<3} batch={r['batch']:<4} {r['statements_per_s']:>9.0f} st/s  "
              f"p50={l['p50_ms']}ms p95={l['p95_ms']}ms p99={l['p99_ms']}ms max={l['max_ms']}ms errors={r['errors']}  "
              f"server_cpu={r['resources'].get('server_cpu_pct')}% loadgen_cpu={r['resources']['loadgen_cpu_pct']}%")
    elif s == "fill":
        print(f"{s:12} {label:14} {r['statements']} statements at {r['statements_per_s']:.0f} st/s  "
              f"server_cpu={r['resources'].get('server_cpu_pct')}% loadgen_cpu={r['resources']['loadgen_cpu_pct']}%")
    elif s == "query":
        print(f"{s:12} {label:14} clients={r['clients']} {r['requests_per_s']} req/s")
        for k in r["kinds"]:
            l = k["latency"]
            print(f"    {k['kind']:18} n={k['requests']:<6} stmts/resp={k['statements_per_response']:<6} "
                  f"p50={l['p50_ms']}ms p95={l['p95_ms']}ms p99={l['p99_ms']}ms max={l['max_ms']}ms errors={k['errors']}")
    elif s == "snapshot":
        print(f"{s:12} {label:14} stored~{r['statements']} data_dir={r['data_dir_bytes']/2**20:.0f} MiB "
              f"({r['data_dir_bytes']/max(r['statements'],1):.0f} B/statement) rss={r['server_rss_kib']//1024} MiB hwm={r['server_hwm_kib']//1024} MiB")
EOF
cat "$OUT/summary.txt"
