//! Reading the analytics Parquet files with analysts' own tools: DuckDB and
//! pyarrow from PyPI, in a Python virtual environment named by
//! `LRS_ANALYTICS_PYTHON` (its `python`). Without it the check is skipped
//! with the reason, unless `LRS_REQUIRE_PYTHON=1` (CI) makes it a failure.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The six monthly figures, as `/api/figures/monthly` and the
/// `monthly_figures` view name them.
pub const LRS_FIGURES: [&str; 6] = [
    "hits",
    "active_users",
    "enrolled_participants",
    "participants_started",
    "courses_started",
    "courses_completed",
];

/// The views' SQL, which DuckDB runs as DataFusion does.
fn views_sql() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/lrs-analytics/src/views.sql")
}

const SCRIPT: &str = r#"
import json, sys
import duckdb
import pyarrow.dataset as ds
import pyarrow.compute as pc

root, views = sys.argv[1], sys.argv[2]
statements = ds.dataset(root + "/statements", format="parquet", partitioning="hive").to_table()
voids = ds.dataset(root + "/voids", format="parquet", partitioning="hive").to_table()
voided = set(zip(voids.column("tenant").to_pylist(), voids.column("voided_statement_id").to_pylist()))
rows = zip(statements.column("tenant").to_pylist(), statements.column("statement_id").to_pylist(),
           statements.column("is_voiding").to_pylist())
not_voided = sum(1 for t, s, v in rows if v or (t, s) not in voided)

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
duck_not_voided = con.execute("SELECT count(*) FROM statements WHERE NOT voided").fetchone()[0]
figures = {}
cursor = con.execute("SELECT * FROM monthly_figures WHERE scope = 'total'")
names = [d[0] for d in cursor.description]
for row in cursor.fetchall():
    row = dict(zip(names, row))
    figures[row["month"]] = row
print(json.dumps({
    "pyarrow_rows": statements.num_rows,
    "pyarrow_not_voided": not_voided,
    "duckdb_not_voided": duck_not_voided,
    "duckdb_figures": figures,
}, default=str))
"#;

/// Prints every value of every Parquet file under a directory, decoded by
/// pyarrow (one JSON document per file: its path and its rows), and last a
/// line with the number of files and rows.
const DUMP_SCRIPT: &str = r#"
import json, os, sys
import pyarrow.parquet as pq

root = sys.argv[1]
files = rows = 0
for folder, _, names in sorted(os.walk(root)):
    for name in sorted(names):
        if not name.endswith(".parquet"):
            continue
        path = os.path.join(folder, name)
        table = pq.read_table(path, partitioning=None)
        files += 1
        rows += table.num_rows
        print(json.dumps({"path": os.path.relpath(path, root), "rows": table.to_pylist()},
                         default=str, ensure_ascii=False))
print(json.dumps({"files": files, "rows": rows}))
"#;

/// The Python with DuckDB and pyarrow, if the environment names one.
pub struct PythonReader {
    python: PathBuf,
}

/// `None` (with the reason on stderr) when `LRS_ANALYTICS_PYTHON` is unset
/// or lacks the packages; a panic instead when `LRS_REQUIRE_PYTHON=1`.
pub fn python_reader() -> Option<PythonReader> {
    let required = std::env::var("LRS_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let skip = |reason: String| {
        if required {
            panic!("LRS_REQUIRE_PYTHON=1 but {reason}");
        }
        eprintln!(
            "skipping the DuckDB/pyarrow check: {reason} (python3 -m venv V && V/bin/pip install duckdb pyarrow; LRS_ANALYTICS_PYTHON=V/bin/python)"
        );
        None
    };
    let Some(python) = std::env::var_os("LRS_ANALYTICS_PYTHON") else {
        return skip("LRS_ANALYTICS_PYTHON is not set".into());
    };
    let python = PathBuf::from(python);
    match Command::new(&python)
        .args(["-c", "import duckdb, pyarrow"])
        .output()
    {
        Ok(output) if output.status.success() => Some(PythonReader { python }),
        Ok(output) => skip(format!(
            "{} cannot import duckdb and pyarrow: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        )),
        Err(error) => skip(format!("{} does not run: {error}", python.display())),
    }
}

impl PythonReader {
    /// Every value of every Parquet file under `dir`, decoded by pyarrow,
    /// as text (JSON), with the number of files and rows read.
    pub fn decoded_values(&self, dir: &Path) -> (String, u64, u64) {
        let output = Command::new(&self.python)
            .arg("-c")
            .arg(DUMP_SCRIPT)
            .arg(dir)
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "the pyarrow reader failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).expect("UTF-8 JSON");
        let last: Value = serde_json::from_str(text.lines().last().expect("a summary line"))
            .expect("the summary is JSON");
        let count = |key: &str| last[key].as_u64().expect("a count");
        let (files, rows) = (count("files"), count("rows"));
        (text, files, rows)
    }

    /// Counts read from the files under `analytics_dir` by pyarrow and DuckDB.
    pub fn counts(&self, analytics_dir: &Path) -> Value {
        let output = Command::new(&self.python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(analytics_dir)
            .arg(views_sql())
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "the DuckDB/pyarrow reader failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("the reader prints JSON")
    }
}
