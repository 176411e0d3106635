#!/usr/bin/env bash
# Every target of issue 19 at one store size, in one run, on one store:
#
#   1. benches/run-dashboard.sh: a fresh store filled to SIZE statements by
#      `lrs-load fill-activity` (batches of 500, 4 clients; the rate per
#      million), its bytes per statement, then the figures and progress
#      reads (4 clients) and the filtered statement GETs (8 clients);
#   2. benches/run-activity-ingest.sh on that store: the HTTP floor (GET
#      /xapi/about, 64 clients), single POSTs (64 clients), batches of 100
#      (4 clients), then `lrs verify`'s bytes by part and per tree;
#   3. benches/run-learners.sh on it: the 5,000 simulated learners with 20
#      staff clients, the server's own rate limits;
#   4. benches/run-analytics.sh on it: `lrs analytics rebuild` (export
#      throughput), each view of views.sql in DataFusion and in DuckDB.
#
# Each step writes its results under $OUT/<step>/ (results.jsonl,
# summary.txt); $OUT/summary.txt holds the four summaries. The steps after
# the first add statements of their own (SINGLE + BATCHED, then the
# learners'), so they run on a store a little larger than SIZE. The store
# is removed at the end unless KEEP_DATA.
#
# Environment (all optional):
#   SIZE=1000000          statements of the fill
#   DURATION=20           seconds of each read scenario (step 1)
#   LEARNERS_DURATION=120 seconds of the learners' steady phase (step 3)
#   SINGLE=40000 BATCHED=300000   as in run-activity-ingest.sh
#   FROM_STEP=1           2 to 4: go on with an earlier run's store in the
#                         same OUT (kept with KEEP_DATA), from that step
#   OUT=DIR, SKIP_BUILD=1, LRS_BIN, LOAD_BIN, KEEP_DATA=1   as in lib.sh
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
SIZE=${SIZE:-1000000}
DURATION=${DURATION:-20}
LEARNERS_DURATION=${LEARNERS_DURATION:-120}
WORLD_LEARNERS=100000
bench_out lrs-targets-results
bench_build
export SKIP_BUILD=1 LRS_BIN=$LRS LOAD_BIN=$LOAD
START=$(date +%s)
step() {
    echo "## $(($(date +%s) - START)) s: $*" >&2
}

FROM_STEP=${FROM_STEP:-1}
if [ "$FROM_STEP" -le 1 ]; then
    step "1. fill to $SIZE, then reads"
    OUT=$OUT/dashboard KEEP_DATA=1 SIZES=$SIZE DURATION=$DURATION LEARNERS=$WORLD_LEARNERS \
        benches/run-dashboard.sh
fi
STORE_DIR=$(cat "$OUT/dashboard/data-dir")
BENCH_REMOVE=$STORE_DIR
DATA=$STORE_DIR
LRS_MASTER_KEY=$(cat "$OUT/dashboard/master-key")
export LRS_MASTER_KEY
NEXT_UNIT=$(python3 - "$OUT/dashboard/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print([r for r in rows if r["scenario"] == "fill-activity"][-1]["next_unit"])
PY
)

if [ "$FROM_STEP" -le 2 ]; then
    step "2. ingest rates on the store of $SIZE"
    OUT=$OUT/ingest DATA_DIR=$STORE_DIR START_UNIT=$NEXT_UNIT LEARNERS=$WORLD_LEARNERS \
        benches/run-activity-ingest.sh
fi
if [ "$FROM_STEP" -le 3 ]; then
    step "3. 5,000 simulated learners"
    OUT=$OUT/learners DATA_DIR=$STORE_DIR DURATION=$LEARNERS_DURATION benches/run-learners.sh
fi
step "4. analytics"
OUT=$OUT/analytics DATA_DIR=$STORE_DIR LEARNERS=$WORLD_LEARNERS benches/run-analytics.sh

step "done"
{
    bench_header
    echo "# SIZE=$SIZE DURATION=$DURATION LEARNERS_DURATION=$LEARNERS_DURATION; $(($(date +%s) - START)) s"
    for part in dashboard ingest learners analytics; do
        echo
        echo "### $part"
        cat "$OUT/$part/summary.txt" 2>/dev/null || echo "(no summary)"
    done
} >"$OUT/summary.txt"
echo "results in $OUT/summary.txt" >&2
