#!/usr/bin/env bash
# The filtered statement GETs of run-dashboard.sh (`lrs-load activity-query`:
# agent, agent and course, verb and since, course with related activities,
# registration; QUERY_CLIENTS clients as the KB) on an existing store, with
# the server in a memory cgroup of MEMORY_LIMIT: its own memory and the page
# cache it reads the store through are charged there together, so a store
# larger than the limit is read from the disk as on a machine with less RAM
# than the data directory (issue 19: "data directory larger than the page
# cache"). Needs root and the cgroup memory controller (v2, or v1 mounted
# at /sys/fs/cgroup/memory; only v1 has been run so far). The page cache is dropped before the server
# starts; after the queries the cgroup's peak usage and page cache are
# printed beside the data directory's size.
#
# Environment:
#   DATA_DIR=DIR          the store (required; stopped; a tenant `kb`), e.g.
#                         the one run-targets.sh keeps with KEEP_DATA=1
#   LRS_MASTER_KEY        its master key (required)
#   UNITS=N               the learner-months its fill generated (the fill's
#                         next_unit; required): the queries ask about them
#   MEMORY_LIMIT=6G       the cgroup's limit (bytes, or with K, M or G)
#   MONTHS=12 LEARNERS=100000 QUERY_CLIENTS=8 DURATION=20   as the fill's
#                         world and run-dashboard.sh's query step
#   OUT=DIR, SKIP_BUILD=1, LRS_BIN, LOAD_BIN   as in lib.sh
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
: "${DATA_DIR:?the store to read}" "${LRS_MASTER_KEY:?the master key of DATA_DIR}" "${UNITS:?the next_unit of the fill}"
export LRS_MASTER_KEY
MEMORY_LIMIT=${MEMORY_LIMIT:-6G}
MONTHS=${MONTHS:-12}
LEARNERS=${LEARNERS:-100000}
QUERY_CLIENTS=${QUERY_CLIENTS:-8}
DURATION=${DURATION:-20}
bench_out lrs-small-memory-results
bench_build
DATA=$DATA_DIR

limit_bytes=$(numfmt --from=iec "$MEMORY_LIMIT")
if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    HOME_CGROUP=/sys/fs/cgroup$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
    CGROUP=/sys/fs/cgroup/lrs-bench-$$
    mkdir "$CGROUP"
    [ -e "$CGROUP/memory.max" ] || {
        rmdir "$CGROUP"
        bench_die "cgroup v2 without the memory controller for child groups (add +memory to /sys/fs/cgroup/cgroup.subtree_control)"
    }
    echo "$limit_bytes" >"$CGROUP/memory.max"
    peak() { cat "$CGROUP/memory.peak" 2>/dev/null || echo 0; }
    cache() { awk '$1 == "file" {print $2}' "$CGROUP/memory.stat"; }
elif [ -d /sys/fs/cgroup/memory ]; then
    HOME_CGROUP=/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
    CGROUP=/sys/fs/cgroup/memory/lrs-bench-$$
    mkdir "$CGROUP"
    echo "$limit_bytes" >"$CGROUP/memory.limit_in_bytes"
    peak() { cat "$CGROUP/memory.max_usage_in_bytes"; }
    cache() { awk '$1 == "cache" {print $2}' "$CGROUP/memory.stat"; }
else
    bench_die "no cgroup memory controller (needs root and cgroup v2 or v1's memory hierarchy)"
fi
small_memory_cleanup() {
    bench_cleanup
    # If the script stopped while this shell was inside the cgroup, leave it
    # first: a cgroup with a process in it cannot be removed.
    echo $$ >"$HOME_CGROUP/cgroup.procs" 2>/dev/null || true
    rmdir "$CGROUP" 2>/dev/null || true
}
trap small_memory_cleanup EXIT

read -r KEY SECRET < <(bench_credential bench-small-memory --tenant kb --scope all)
sync
echo 3 >/proc/sys/vm/drop_caches
# The server starts inside the cgroup (it inherits this shell's), the load
# generator outside it, in the cgroup this shell came from.
echo $$ >"$CGROUP/cgroup.procs"
bench_start_server
echo $$ >"$HOME_CGROUP/cgroup.procs"
bench_header | tee "$OUT/run.txt" >&2
DU=$(du -sb "$DATA" | cut -f1)
bench_load --learners "$LEARNERS" --label "limit $MEMORY_LIMIT" \
    activity-query --months "$MONTHS" --clients "$QUERY_CLIENTS" --duration "$DURATION" --units "$UNITS"
PEAK=$(peak)
CACHE=$(cache)
read -r RSS _ < <(bench_rss)
bench_stop_server
{
    cat "$OUT/run.txt"
    echo "data directory $((DU / 1048576)) MiB; cgroup limit $((limit_bytes / 1048576)) MiB, peak $((PEAK / 1048576)) MiB, page cache at the end $((CACHE / 1048576)) MiB, server RSS $((RSS / 1024)) MiB"
    python3 - "$RESULTS" <<'PY'
import json, sys
for r in (json.loads(l) for l in open(sys.argv[1]) if l.strip()):
    print(f"activity-query [{r['label']}] {r['clients']} clients: {r['requests_per_s']} req/s, errors {r['errors']}")
    for k in r["kinds"]:
        l = k["latency"]
        print(f"    {k['kind']:22} n={k['requests']:<7} {k['bytes_per_response']:>7} B "
              f"p50={l['p50_ms']}ms p95={l['p95_ms']}ms p99={l['p99_ms']}ms max={l['max_ms']}ms errors={k['errors']}")
PY
} | tee "$OUT/summary.txt"
