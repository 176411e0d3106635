"""The named views' latency in DuckDB over the LRS's Parquet files, for
benches/run-analytics.sh: the same views.sql text DataFusion runs, the same
queries, each run REPEAT times in one connection; prints one JSON line per
query (min and median milliseconds) and the row count, to compare with
`lrs sql --repeat`.

usage: python duckdb_views.py ANALYTICS_DIR VIEWS_SQL QUERIES_FILE REPEAT
"""
import json
import statistics
import sys
import time

import duckdb

root, views, queries_file, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
con = duckdb.connect()
con.execute(f"CREATE VIEW facts AS SELECT * FROM read_parquet('{root}/statements/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)")
con.execute(f"CREATE VIEW all_voids AS SELECT * FROM read_parquet('{root}/voids/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)")
con.execute("""CREATE VIEW statements AS
  SELECT f.*, (v.voided_statement_id IS NOT NULL AND NOT f.is_voiding) AS voided
  FROM facts f LEFT JOIN (SELECT DISTINCT tenant AS voids_tenant, voided_statement_id FROM all_voids) v
  ON f.tenant = v.voids_tenant AND f.statement_id = v.voided_statement_id""")
for view in open(views).read().split(";"):
    if view.strip():
        con.execute(view)
for line in open(queries_file):
    if not line.strip() or line.startswith("#"):
        continue
    name, sql = line.rstrip("\n").split("\t", 1)
    times = []
    rows = 0
    for _ in range(repeat):
        start = time.perf_counter()
        rows = len(con.execute(sql).fetchall())
        times.append((time.perf_counter() - start) * 1000)
    print(json.dumps({"engine": "duckdb", "query": name, "rows": rows,
                      "min_ms": round(min(times), 1), "median_ms": round(statistics.median(times), 1)}))
