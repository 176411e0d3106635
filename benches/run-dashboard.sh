#!/usr/bin/env bash
# Progress and dashboard responses as the store grows (issue 5, requirements
# 2.12, 2.21, 2.27, 2.32), end to end over HTTP on 127.0.0.1: builds release,
# starts `lrs serve` on a fresh temporary data directory with a generated
# master key, the KB tenant and one library tenant (the generator's largest
# library), a role with figures.read and progress.read, and a credential for
# each; then, for every size in SIZES:
#
#   1. `lrs-load fill-activity` grows the store to that size with realistic
#      course activity over the last MONTHS months (cmi5-style courses as
#      grouping or parent activities with the course type, modules, verbs,
#      scores, durations; ISIL and appid in the context extensions), in steps
#      of STEP statements, stopping early if the disk has less than
#      MIN_FREE_GB free; then waits (up to 10 minutes) for the Parquet
#      follower to reach the log's head, so that the reads below meet a
#      settled server;
#   2. `lrs-load dashboard`: /api/figures/monthly (total, ?library=, ?app=),
#      /trend and /breakdown as the KB, /monthly and /trend as the library;
#   3. `lrs-load progress`: /api/progress/learner for learners with activity
#      (as the KB and as the library), /api/progress/learners pages and a
#      course filter (as the library);
#   4. `lrs-load activity-query`: filtered GET /xapi/statements about what
#      the fill sent (agent, agent and course, verb and since, course with
#      related activities, registration), QUERY_CLIENTS clients, as the KB;
#   5. records the data directory size and the server's RSS.
#
# Results: one JSON line per lrs-load run in $OUT/results.jsonl, tables on the
# terminal, a summary in $OUT/summary.txt, and at each size the keys and bytes
# the server wrote to each sled tree (from /metrics) in $OUT/tree-writes-<size>.txt.
#
# Environment (all optional):
#   SIZES="1000000 10000000"  store sizes to measure at (statements)
#   STEP=1000000       largest fill step (the free disk is checked before each)
#   MIN_FREE_GB=6      keep this much disk free: stop filling (and measure where it got) before
#   DURATION=30        seconds measured per read scenario (after a 2 s warm-up)
#   CLIENTS=4          concurrent readers, back to back
#   QUERY_CLIENTS=8    concurrent readers of the statement queries
#   LEARNERS=100000    learner pool of the generator
#   MONTHS=12          months of activity, ending last month
#   OUT=DIR            where results go (default: a new directory under /tmp)
#   KEEP_DATA=1        keep the data directory
#   SKIP_BUILD=1       use the binaries already built (target/release, or $CARGO_TARGET_DIR/release if set; or LRS_BIN / LOAD_BIN)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
SIZES=${SIZES:-"1000000 10000000"}
STEP=${STEP:-1000000}
MIN_FREE_GB=${MIN_FREE_GB:-6}
DURATION=${DURATION:-30}
CLIENTS=${CLIENTS:-4}
QUERY_CLIENTS=${QUERY_CLIENTS:-8}
LEARNERS=${LEARNERS:-100000}
MONTHS=${MONTHS:-12}
bench_out lrs-dashboard-results

bench_build
bench_data_dir lrs-dashboard
bench_master_key

# Tenants, role and credentials, with the server not yet running.
ISIL=$("$LOAD" --learners "$LEARNERS" world --months "$MONTHS" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["libraries"][0])')
"$LRS" tenants define --id kb --name KB --kind kb --data-dir "$DATA" >/dev/null
"$LRS" tenants define --id bieb --name "Bibliotheek $ISIL" --kind library --isil "$ISIL" --data-dir "$DATA" >/dev/null
"$LRS" roles define --name inzicht --permission figures.read --permission progress.read --data-dir "$DATA" >/dev/null
read -r KEY SECRET < <(bench_credential bench-kb --tenant kb --scope all --role inzicht)
read -r LIB_KEY LIB_SECRET < <(bench_credential bench-bieb --tenant bieb --role inzicht)
export LRS_LIBRARY_KEY=$LIB_KEY LRS_LIBRARY_SECRET=$LIB_SECRET

bench_start_server

{
    bench_header
    echo "# SIZES=\"$SIZES\" STEP=$STEP DURATION=$DURATION CLIENTS=$CLIENTS LEARNERS=$LEARNERS MONTHS=$MONTHS library $ISIL"
} | tee "$OUT/run.txt" >&2

load() {
    # load LABEL SCENARIO ARGS...: runs lrs-load, appends its JSON to results.jsonl
    local label=$1
    shift
    bench_load --learners "$LEARNERS" --label "$label" "$@"
}
last() {
    tail -n1 "$RESULTS" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"
}

stored=0
unit=0
fill_to() {
    # fill_to TARGET: in steps, each only as large as the disk has room for
    # (judged from the bytes per statement so far), keeping MIN_FREE_GB free;
    # fails when it cannot go on
    local target=$1
    while [ "$stored" -lt "$target" ]; do
        local free_bytes used_bytes per_statement room step
        free_bytes=$(df -B1 --output=avail "$DATA" | tail -n1 | tr -d ' ')
        used_bytes=$(du -sb "$DATA" | cut -f1)
        per_statement=12000
        if [ "$stored" -gt 100000 ]; then per_statement=$((used_bytes / stored + 1000)); fi
        room=$(((free_bytes - MIN_FREE_GB * 1073741824) / per_statement))
        step=$((target - stored))
        if [ "$step" -gt "$STEP" ]; then step=$STEP; fi
        if [ "$step" -gt "$room" ]; then step=$room; fi
        if [ "$room" -lt 50000 ]; then
            echo "## stopping the fill at $stored statements: $((free_bytes / 1073741824)) GiB free, about $per_statement bytes per statement, MIN_FREE_GB=$MIN_FREE_GB" | tee -a "$OUT/run.txt" >&2
            return 1
        fi
        if ! load "to-$target" fill-activity --months "$MONTHS" --statements "$step" --start-unit "$unit" \
            --batch 500 --clients 4 --progress-every 15; then
            echo "## fill step failed; stopping" | tee -a "$OUT/run.txt" >&2
            return 1
        fi
        stored=$((stored + $(last statements)))
        unit=$(last next_unit)
        if [ "$(last complete)" != True ]; then
            echo "## fill step did not complete; stopping" | tee -a "$OUT/run.txt" >&2
            return 1
        fi
    done
}

snapshot() {
    local label=$1 du_bytes rss hwm
    du_bytes=$(du -sb "$DATA" | cut -f1)
    read -r rss hwm < <(bench_rss)
    echo "{\"scenario\":\"snapshot\",\"label\":\"$label\",\"statements\":$stored,\"units\":$unit,\"data_dir_bytes\":$du_bytes,\"server_rss_kib\":$rss,\"server_hwm_kib\":$hwm}" >>"$RESULTS"
    echo "snapshot [$label]: $stored statements ($unit learner-months), data dir $(du -sh "$DATA" | cut -f1), server RSS $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB)" >&2
    # What the fill wrote to each sled tree (keys and bytes since the server
    # started; sled's files grow per written key, docs/adr/0004).
    curl -s "$URL/metrics" | grep '^lrs_store_tree_writ' >"$OUT/tree-writes-$label.txt" || true
}

measure() {
    local label=$1
    bench_wait_follower 600 || true
    snapshot "$label"
    load "$label" dashboard --months "$MONTHS" --clients "$CLIENTS" --duration "$DURATION"
    load "$label" progress --months "$MONTHS" --clients "$CLIENTS" --duration "$DURATION" --units "$unit"
    load "$label" activity-query --months "$MONTHS" --clients "$QUERY_CLIENTS" --duration "$DURATION" --units "$unit"
}

START=$(date +%s)
for size in $SIZES; do
    echo "## growing to $size" >&2
    if fill_to "$size"; then
        measure "$size"
    else
        measure "$stored (stopped)"
        break
    fi
done

echo "## done in $(($(date +%s) - START)) s; results in $RESULTS" >&2
{
    cat "$OUT/run.txt"
    python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    s, label = r["scenario"], r.get("label", "")
    if s == "fill-activity":
        print(f"fill-activity {label:12} {r['statements']} statements at {r['statements_per_s']:.0f} st/s, "
              f"p99 {r['latency']['p99_ms']} ms per batch, errors {r['errors']}, "
              f"server CPU {r['resources'].get('server_cpu_pct')}%, loadgen CPU {r['resources']['loadgen_cpu_pct']}%")
    elif s == "snapshot":
        print(f"snapshot [{label}] {r['statements']} statements, data dir {r['data_dir_bytes']/2**30:.1f} GiB "
              f"({r['data_dir_bytes']/max(r['statements'],1):.0f} B/statement), RSS {r['server_rss_kib']//1024} MiB")
    elif s in ("dashboard", "progress", "activity-query"):
        print(f"{s} [{label}] {r['clients']} clients: {r['requests_per_s']} req/s, errors {r['errors']}, goals {r['goals']}")
        for k in r["kinds"]:
            l = k["latency"]
            print(f"    {k['kind']:22} n={k['requests']:<7} {k['requests_per_s']:>7}/s {k['bytes_per_response']:>7} B "
                  f"p50={l['p50_ms']}ms p95={l['p95_ms']}ms p99={l['p99_ms']}ms max={l['max_ms']}ms errors={k['errors']}")
        if r.get("first_error"):
            print(f"    first error: {r['first_error']}")
EOF
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"
