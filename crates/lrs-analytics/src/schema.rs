//! The Arrow schema of the `statements` and `voids` datasets, version
//! [`SCHEMA_VERSION`] (docs/analytics.md describes every column). A change
//! of columns is a new version: the projection then rebuilds its files.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, OnceLock};

/// Version of the file schemas below and of the files' layout; also in
/// every file's key-value metadata (`lrs.schema_version`) and the
/// `schema_version` column. 2: each library's rows once more in files of
/// their own (`libraries/<key>/tenant=<id>/month=<YYYY-MM>/`), so that a
/// library's SQL session holds only its files (docs/analytics.md,
/// "Isolation"); the columns are those of 1.
pub const SCHEMA_VERSION: i32 = 2;

/// The hive partition columns of `statements/` (from the path, not the file).
pub const PARTITIONS: [&str; 2] = ["tenant", "month"];

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// The columns of a `statements/.../part-*.parquet` file, in order.
pub fn statements() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let s = |name: &str| Field::new(name, DataType::Utf8, true);
            let b = |name: &str| Field::new(name, DataType::Boolean, true);
            let f = |name: &str| Field::new(name, DataType::Float64, true);
            Arc::new(Schema::new(vec![
                Field::new("position", DataType::Int64, false),
                Field::new("statement_id", DataType::Utf8, false),
                Field::new("stored", utc(), false),
                Field::new("timestamp", utc(), false),
                s("app"),
                s("library"),
                Field::new("verb", DataType::Utf8, false),
                Field::new("object_kind", DataType::Utf8, false),
                s("activity_id"),
                s("activity_type"),
                s("object_statement_id"),
                Field::new("is_voiding", DataType::Boolean, false),
                s("course"),
                s("module"),
                Field::new("about_course", DataType::Boolean, false),
                Field::new("means_enrolled", DataType::Boolean, false),
                Field::new("means_started", DataType::Boolean, false),
                Field::new("means_progressed", DataType::Boolean, false),
                Field::new("means_ended", DataType::Boolean, false),
                Field::new("means_completed", DataType::Boolean, false),
                Field::new("means_passed", DataType::Boolean, false),
                Field::new("means_failed", DataType::Boolean, false),
                s("registration"),
                s("actor_token"),
                b("result_success"),
                b("result_completion"),
                f("score_scaled"),
                f("score_raw"),
                f("score_min"),
                f("score_max"),
                s("duration"),
                f("duration_seconds"),
                s("platform"),
                s("language"),
                Field::new("context_parent_ids", list(), true),
                Field::new("context_grouping_ids", list(), true),
                Field::new("schema_version", DataType::Int32, false),
            ]))
        })
        .clone()
}

/// The columns of a `voids/tenant=<id>/part-*.parquet` file: one row per
/// voiding statement, naming the statement of the same tenant it voids.
pub fn voids() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("position", DataType::Int64, false),
                Field::new("statement_id", DataType::Utf8, false),
                Field::new("voided_statement_id", DataType::Utf8, false),
                Field::new("stored", utc(), false),
                Field::new("schema_version", DataType::Int32, false),
            ]))
        })
        .clone()
}
