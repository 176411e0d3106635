#!/usr/bin/env bash
# Analytics (issue 6): Parquet export throughput from a large log, and the
# named views' latency in DataFusion (`lrs sql`) side by side with DuckDB on
# the same files, in one run.
#
#   1. A data directory: DATA_DIR (an existing one, stopped, with its master
#      key in LRS_MASTER_KEY), or a fresh one filled to SIZE statements by
#      `lrs serve --no-analytics` + `lrs-load fill-activity` (realistic course
#      activity over MONTHS months, as benches/run-dashboard.sh);
#   2. `lrs analytics rebuild` into $OUT/analytics: the whole log folded into
#      Parquet files, timed (statements/s; the command prints it too);
#   3. each query of benches/analytics/queries.tsv REPEAT times, by
#      `lrs sql --repeat` (DataFusion, one session) and by
#      benches/analytics/duckdb_views.py (DuckDB, one connection, the same
#      views.sql): min and median milliseconds.
#
# Results: $OUT/results.jsonl, a table on the terminal and in $OUT/summary.txt.
#
# Environment (all optional):
#   SIZE=1000000     statements to fill (ignored with DATA_DIR)
#   DATA_DIR=DIR     measure this stopped data directory instead of filling one
#   MONTHS=12 LEARNERS=100000   the generator's world
#   REPEAT=5         runs per query and engine
#   PYTHON=python3   a Python with duckdb (a venv is made in $OUT if it lacks it)
#   OUT=DIR          where results go (default: a new directory under /tmp)
#   SKIP_BUILD=1     use target/release (or LRS_BIN / LOAD_BIN) as built
#   KEEP_DATA=1      keep a filled data directory
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
SIZE=${SIZE:-1000000}
MONTHS=${MONTHS:-12}
LEARNERS=${LEARNERS:-100000}
REPEAT=${REPEAT:-5}
bench_out lrs-analytics-results
bench_build

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import duckdb' 2>/dev/null; then
    "$PYTHON" -m venv "$OUT/venv"
    "$OUT/venv/bin/pip" install -q duckdb
    PYTHON=$OUT/venv/bin/python
fi

if [ -n "${DATA_DIR:-}" ]; then
    DATA=$DATA_DIR
    : "${LRS_MASTER_KEY:?must hold the master key of DATA_DIR}"
else
    bench_data_dir lrs-analytics
    bench_master_key
    "$LRS" tenants define --id kb --name KB --kind kb --data-dir "$DATA" >/dev/null
    read -r KEY SECRET < <(bench_credential bench-kb --tenant kb --scope all)
    bench_start_server --no-analytics
    echo "## filling $SIZE statements" >&2
    bench_load --learners "$LEARNERS" --label fill fill-activity --months "$MONTHS" --statements "$SIZE" \
        --batch 500 --clients 4 --progress-every 30
    bench_stop_server
fi
{
    bench_header
    echo "# data dir $(du -sh "$DATA" | cut -f1); REPEAT=$REPEAT; duckdb $("$PYTHON" -c 'import duckdb; print(duckdb.__version__)')"
} | tee "$OUT/run.txt" >&2

ANALYTICS=$OUT/analytics
echo "## export: lrs analytics rebuild" >&2
start=$(date +%s.%N)
"$LRS" analytics rebuild --data-dir "$DATA" --analytics-dir "$ANALYTICS" >"$OUT/export.txt"
end=$(date +%s.%N)
cat "$OUT/export.txt" >&2
python3 - "$OUT/export.txt" "$start" "$end" "$ANALYTICS" >>"$RESULTS" <<'PY'
import json, os, sys
text = open(sys.argv[1]).read()
statements = int(text.split()[0])
seconds = float(sys.argv[3]) - float(sys.argv[2])
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(sys.argv[4]) for f in fs)
files = sum(1 for d, _, fs in os.walk(sys.argv[4]) for f in fs if f.endswith(".parquet"))
print(json.dumps({"scenario": "export", "statements": statements, "seconds": round(seconds, 1),
                  "statements_per_s": round(statements / seconds), "parquet_bytes": size, "files": files}))
PY

MONTH=$("$LRS" sql "SELECT max(month) AS m FROM statements WHERE NOT is_voiding" --format csv \
    --data-dir "$DATA" --analytics-dir "$ANALYTICS" | tail -n1)
QUERIES=$OUT/queries.tsv
sed "s/@MONTH@/$MONTH/g" benches/analytics/queries.tsv >"$QUERIES"
echo "## views over month $MONTH, $REPEAT runs each" >&2
while IFS=$'\t' read -r name sql; do
    case "$name" in ''|'#'*) continue ;; esac
    "$LRS" sql "$sql" --repeat "$REPEAT" --data-dir "$DATA" --analytics-dir "$ANALYTICS" |
        python3 -c "import json,sys; r=json.load(sys.stdin); r.update(engine='datafusion', query='$name'); print(json.dumps(r))" >>"$RESULTS"
done <"$QUERIES"
"$PYTHON" benches/analytics/duckdb_views.py "$ANALYTICS" crates/lrs-analytics/src/views.sql "$QUERIES" "$REPEAT" >>"$RESULTS"

{
    cat "$OUT/run.txt"
    python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r.get("scenario") == "fill-activity":
        print(f"fill: {r['statements']} statements at {r['statements_per_s']:.0f} st/s")
    if r.get("scenario") == "export":
        print(f"export: {r['statements']} statements in {r['seconds']} s = {r['statements_per_s']} statements/s; "
              f"{r['files']} files, {r['parquet_bytes']/2**20:.0f} MiB ({r['parquet_bytes']/max(r['statements'],1):.0f} B/statement)")
engines = {}
for r in rows:
    if "engine" in r:
        engines.setdefault(r["query"], {})[r["engine"]] = r
print(f"{'query':28} {'DataFusion median (min)':>24} {'DuckDB median (min)':>22} {'ratio':>6} rows")
for q, e in engines.items():
    d, k = e.get("datafusion"), e.get("duckdb")
    ratio = d["median_ms"] / k["median_ms"] if d and k and k["median_ms"] else float("nan")
    print(f"{q:28} {d['median_ms']:>14} ms ({d['min_ms']:>6}) {k['median_ms']:>12} ms ({k['min_ms']:>6}) {ratio:>6.2f} {d['rows']}/{k['rows']}")
PY
} | tee "$OUT/summary.txt"
