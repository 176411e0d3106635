#!/usr/bin/env bash
# Learner simulation soak of the LRS (issue 8, requirement 2.29), end to end
# over HTTP on 127.0.0.1: builds release, starts `lrs serve` on a fresh
# temporary data directory with a generated master key and credential,
# optionally pre-fills the store, and runs `lrs-load learners`: LEARNERS
# simulated cmi5 learners (sessions with statements and State API reads and
# writes, think time 2–6 s) plus STAFF library staff clients querying progress,
# ramped up over RAMP_UP seconds, then DURATION seconds at full load. See
# docs/load-learners.md.
#
# Results: $OUT/results.jsonl (one JSON line per lrs-load run: the fill, if
# any, then the learners run with its interim intervals), $OUT/learners.log
# (the interim report lines and the final table), $OUT/server.log, and a
# summary in $OUT/summary.txt.
#
# Environment (all optional):
#   LEARNERS=5000      concurrent simulated learners
#   DURATION=600       seconds at full load (after the ramp-up)
#   STAFF=20           concurrent staff clients
#   RAMP_UP=30         seconds over which the learners start
#   THINK_MIN=2 THINK_MAX=6   learner think time between requests, seconds
#   REPORT_EVERY=60    seconds between interim report lines
#   POOL=50000         size of the learner pool (at least LEARNERS)
#   FILL_TO=0          pre-fill the store with this many statements first (`fill` scenario)
#   DATA_DIR=DIR       run on this existing, stopped data directory instead of a
#                      fresh one (its master key in LRS_MASTER_KEY; a credential
#                      for the KB tenant is added to it); the server starts cold
#                      on it, as after a restart
#   OUT=DIR            where results go (default: a new directory under /tmp)
#   KEEP_DATA=1        keep the data directory
#   VERIFY=1           run `lrs verify` on the data directory after the server stopped
#   SKIP_BUILD=1       use the binaries already built (target/release, or $CARGO_TARGET_DIR/release if set; or LRS_BIN / LOAD_BIN)
#   LOAD_ARGS="..."    extra arguments for `lrs-load learners`
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# The learners are people, not a throughput test: the server keeps its own
# request-rate limits.
BENCH_RATE_LIMITS=server
LEARNERS=${LEARNERS:-5000}
DURATION=${DURATION:-600}
STAFF=${STAFF:-20}
RAMP_UP=${RAMP_UP:-30}
THINK_MIN=${THINK_MIN:-2}
THINK_MAX=${THINK_MAX:-6}
REPORT_EVERY=${REPORT_EVERY:-60}
POOL=${POOL:-50000}
if [ "$POOL" -lt "$LEARNERS" ]; then POOL=$LEARNERS; fi
FILL_TO=${FILL_TO:-0}
bench_out lrs-learners-results
bench_build

# Thousands of connections: server and load generator each need a socket per
# connection. Raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((LEARNERS + STAFF + 256)) ]; then
    echo "warning: open files limit $(ulimit -n) is below LEARNERS + STAFF; connections may fail" >&2
fi

if [ -n "${DATA_DIR:-}" ]; then
    DATA=$DATA_DIR
    : "${LRS_MASTER_KEY:?must hold the master key of DATA_DIR}"
    export LRS_MASTER_KEY
    # The credential is issued with the server stopped (the data directory is locked while it runs).
    read -r KEY SECRET < <(bench_credential learners-soak --tenant kb --scope all)
else
    bench_data_dir lrs-learners
    bench_master_key
    read -r KEY SECRET < <(bench_credential learners-soak)
fi
bench_start_server

{
    bench_header
    echo "# LEARNERS=$LEARNERS DURATION=$DURATION STAFF=$STAFF RAMP_UP=$RAMP_UP THINK=$THINK_MIN-$THINK_MAX POOL=$POOL FILL_TO=$FILL_TO open-files=$(ulimit -n)"
} | tee "$OUT/run.txt" >&2

load() {
    # load SCENARIO ARGS...: runs lrs-load, appends its JSON to results.jsonl
    bench_load --learners "$POOL" "$@"
}

START=$(date +%s)
if [ "$FILL_TO" -gt 0 ]; then
    echo "## pre-filling the store with $FILL_TO statements" >&2
    load --label "fill" fill --statements "$FILL_TO" --batch 500 --clients 4 --progress-every 10 --max-duration 3600
fi

echo "## learners: $LEARNERS learners, $STAFF staff, ramp-up $RAMP_UP s, then $DURATION s" >&2
# shellcheck disable=SC2086
load --label "learners" learners --learners-active "$LEARNERS" --staff "$STAFF" \
    --duration "$DURATION" --ramp-up "$RAMP_UP" --think-min "$THINK_MIN" --think-max "$THINK_MAX" \
    --report-every "$REPORT_EVERY" ${LOAD_ARGS:-} 2> >(tee "$OUT/learners.log" >&2)

DU=$(du -sb "$DATA" | cut -f1)
read -r RSS HWM < <(bench_rss)
echo "{\"scenario\":\"snapshot\",\"label\":\"end\",\"data_dir_bytes\":$DU,\"server_rss_kib\":$RSS,\"server_hwm_kib\":$HWM}" >>"$RESULTS"
bench_stop_server 2>>"$OUT/run.txt"
tail -n 1 "$OUT/run.txt" >&2

if [ -n "${VERIFY:-}" ]; then
    "$LRS" verify --data-dir "$DATA" 2>&1 | tail -n 3 | tee -a "$OUT/run.txt" >&2
fi

echo "## done in $(($(date +%s) - START)) s; results in $OUT" >&2
{
    cat "$OUT/run.txt"
    python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    s = r["scenario"]
    if s == "fill":
        print(f"fill: {r['statements']} statements at {r['statements_per_s']:.0f} st/s, errors={r['errors']}")
    elif s == "learners":
        res = r["resources"]
        print(f"learners: {r['learners_active']} learners + {r['staff']} staff, {r['measured_s']} s at full load "
              f"(after {r['ramp_up_s']} s ramp-up): {r['requests_per_s']} req/s, {r['statements']} statements, "
              f"errors {r['errors']} (whole run {r['errors_whole_run']}), expected 404s {r['expected_404_whole_run']}")
        print(f"    server CPU {res.get('server_cpu_pct')}% of one core, RSS {res.get('server_rss_mib')} MiB "
              f"(peak {res.get('server_hwm_mib')} MiB); load generator CPU {res['loadgen_cpu_pct']}%; "
              f"think-time lag p99 {r['think_lag']['p99_ms']} ms")
        for k in r["kinds"]:
            l = k["latency"]
            print(f"    {k['kind']:15} n={k['requests']:<8} {k['requests_per_s']:>7}/s errors={k['errors']:<4} 404={k['expected_404']:<6} "
                  f"p50={l['p50_ms']}ms p95={l['p95_ms']}ms p99={l['p99_ms']}ms max={l['max_ms']}ms")
        g = r["goals"]
        print(f"    goals: no errors {g['no_errors']}, p95<=500ms {g['p95_le_500ms']}, p99<=1s {g['p99_le_1s']}, aim p99<100ms {g['p99_lt_100ms_aim']}")
        worst = max((i for i in r["intervals"] if i["kinds"]),
                    key=lambda i: max(k["latency"]["p99_ms"] for k in i["kinds"]), default=None)
        if worst:
            print(f"    worst interval: t={worst['t_s']}s [{worst['phase']}] p99 " +
                  ", ".join(f"{k['kind']} {k['latency']['p99_ms']}ms" for k in worst["kinds"]))
        for e in r["error_messages"][:10]:
            print(f"    error x{e['count']}: {e['error']}")
    elif s == "snapshot":
        print(f"end: data dir {r['data_dir_bytes']/2**20:.0f} MiB, server RSS {r['server_rss_kib']//1024} MiB (peak {r['server_hwm_kib']//1024} MiB)")
EOF
    n_err=$(grep -ciE '"level":"(error|warn)"|\b(ERROR|WARN)\b|panick' "$OUT/server.log" || true)
    echo "server log: $(wc -l <"$OUT/server.log") lines, $n_err warning/error/panic lines"
    grep -iE '"level":"(error|warn)"|\b(ERROR|WARN)\b|panick' "$OUT/server.log" | head -n 5 || true
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"
