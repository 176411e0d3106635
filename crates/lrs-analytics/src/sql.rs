//! SQL over the Parquet files with DataFusion: a session per query that
//! holds only the caller's share, the named views of docs/analytics.md,
//! limits of time and memory, the answer as JSON, CSV, Arrow IPC or
//! Parquet, and errors reduced to what the caller may see.
//!
//! A share is built from files, never by filtering everyone's rows: the
//! caller's expressions can then be evaluated only on the caller's own
//! rows, so no error, plan or statistic can carry another tenant's value
//! (docs/analytics.md, "Isolation"). The KB's session holds every file of
//! `statements/`; an app's the files of its own tenant; a library's its own
//! copy of its rows (`libraries/<key>/`, written by the exporter), and the
//! voided statements among them, worked out before the caller's query is
//! planned.

use crate::error::{AnalyticsError, QueryError};
use crate::schema;
use crate::storage::Target;
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::tree_node::TreeNode;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;
use std::time::Duration;

/// What a session's tables hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Everything (the KB; `lrs sql` on the server's own machine).
    All,
    /// The rows of a library's learners (its ISIL), from every tenant.
    Library(String),
    /// A tenant's own partitions (an app: what it wrote).
    Tenant(String),
}

/// Limits of one query.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_bytes: 512 * 1024 * 1024,
        }
    }
}

/// The named views, over `statements` (docs/analytics.md, "Views"). Plain
/// SQL that DuckDB runs as well (benches/analytics/duckdb_views.py).
pub const VIEWS: &str = include_str!("views.sql");

/// The views' names, for listing them.
pub fn view_names() -> Vec<&'static str> {
    VIEWS
        .lines()
        .filter_map(|line| line.strip_prefix("CREATE VIEW "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect()
}

/// A failure of the session's own set-up (not of the caller's query): the
/// server's problem, answered as an internal error.
fn setup_error(error: DataFusionError) -> AnalyticsError {
    AnalyticsError::Query(error.strip_backtrace())
}

fn listing(
    table_url: ListingTableUrl,
    file_schema: SchemaRef,
    partitions: &[&str],
) -> Result<Arc<ListingTable>, AnalyticsError> {
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(
            partitions
                .iter()
                .map(|name| (name.to_string(), DataType::Utf8))
                .collect(),
        );
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(file_schema);
    Ok(Arc::new(
        ListingTable::try_new(config).map_err(setup_error)?,
    ))
}

fn directory(url: url::Url) -> Result<ListingTableUrl, AnalyticsError> {
    ListingTableUrl::parse(url.as_str()).map_err(setup_error)
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A caller's SQL session: the context with only the caller's share
/// registered, what that share is, and the names of the storage location
/// (which no answer shows: plans name files relative to it).
pub struct Session {
    ctx: SessionContext,
    reach: Reach,
    locations: Vec<String>,
}

impl Session {
    /// `text` with every spelling of the storage location replaced by
    /// `analytics/`: the server's directory or bucket never reaches an
    /// answer.
    fn relative(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for location in &self.locations {
            text = text.replace(location.as_str(), "analytics/");
        }
        text
    }
}

/// How a location appears in plans and messages: its URL, its absolute
/// path, and its object-store path (no leading `/`); longest first.
fn location_spellings(target: &Target) -> Vec<String> {
    let mut spellings = vec![target.url.as_str().to_owned()];
    let root = target.root.as_ref();
    if !root.is_empty() {
        spellings.push(format!("/{root}/"));
        spellings.push(format!("{root}/"));
    }
    spellings.sort_by_key(|s| std::cmp::Reverse(s.len()));
    spellings.dedup();
    spellings
}

/// A session over the files of `target` that holds only `reach`: the KB
/// every file, an app (`Reach::Tenant`) the files below its tenant's
/// partition, a library its own copy of its rows. The internal tables
/// the `statements` view reads are dropped from the catalog before the
/// caller's SQL runs.
pub async fn session(
    target: &Target,
    reach: &Reach,
    limits: QueryLimits,
) -> Result<Session, AnalyticsError> {
    match tokio::time::timeout(limits.timeout, build_session(target, reach, limits)).await {
        Ok(result) => result,
        Err(_) => Err(AnalyticsError::Timeout(limits.timeout)),
    }
}

async fn build_session(
    target: &Target,
    reach: &Reach,
    limits: QueryLimits,
) -> Result<Session, AnalyticsError> {
    // No spilling: a query over its memory limit fails instead of writing
    // temporary files on the server.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(setup_error)?;
    let config = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .with_information_schema(false);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_object_store(&target.store_url, target.store.clone());
    let columns: Vec<String> = schema::statements()
        .fields()
        .iter()
        .map(|f| format!("f.\"{}\"", f.name()))
        .collect();
    let columns = columns.join(", ");
    let internal: &[&str];
    let statements = match reach {
        Reach::All => {
            let facts = listing(
                directory(target.dir_url("statements")?)?,
                schema::statements(),
                &schema::PARTITIONS,
            )?;
            let voids = listing(
                directory(target.dir_url("voids")?)?,
                schema::voids(),
                &["tenant"],
            )?;
            ctx.register_table("__facts", facts).map_err(setup_error)?;
            ctx.register_table("__voids", voids).map_err(setup_error)?;
            internal = &["__facts", "__voids"];
            format!(
                "CREATE VIEW statements AS \
                 SELECT {columns}, f.tenant AS tenant, f.month AS month, \
                        (v.voided_statement_id IS NOT NULL AND NOT f.is_voiding) AS voided \
                 FROM __facts f \
                 LEFT JOIN (SELECT DISTINCT tenant AS voids_tenant, voided_statement_id FROM __voids) v \
                   ON f.tenant = v.voids_tenant AND f.statement_id = v.voided_statement_id"
            )
        }
        Reach::Tenant(tenant) => {
            let value = crate::export::partition_value(tenant);
            let facts = listing(
                directory(target.dir_url(&format!("statements/tenant={value}"))?)?,
                schema::statements(),
                &["month"],
            )?;
            let voids = listing(
                directory(target.dir_url(&format!("voids/tenant={value}"))?)?,
                schema::voids(),
                &[],
            )?;
            ctx.register_table("__facts", facts).map_err(setup_error)?;
            ctx.register_table("__voids", voids).map_err(setup_error)?;
            internal = &["__facts", "__voids"];
            let tenant = quote(tenant);
            format!(
                "CREATE VIEW statements AS \
                 SELECT {columns}, {tenant} AS tenant, f.month AS month, \
                        (v.voided_statement_id IS NOT NULL AND NOT f.is_voiding) AS voided \
                 FROM __facts f \
                 LEFT JOIN (SELECT DISTINCT voided_statement_id FROM __voids) v \
                   ON f.statement_id = v.voided_statement_id"
            )
        }
        Reach::Library(isil) => {
            // Only the library's own copy of its rows: nothing of another
            // library's files is listed into the session, let alone read.
            let facts = listing(
                directory(target.dir_url(&crate::export::library_dir(isil))?)?,
                schema::statements(),
                &schema::PARTITIONS,
            )?;
            ctx.register_table("__facts", facts).map_err(setup_error)?;
            // The voids name statements of every library; which of the
            // library's own statements they void is worked out here, by
            // this query alone, and only that list (the library's own
            // statement ids) is in the session.
            let voids = listing(
                directory(target.dir_url("voids")?)?,
                schema::voids(),
                &["tenant"],
            )?;
            ctx.register_table("__voids_all", voids)
                .map_err(setup_error)?;
            let frame = ctx
                .sql(
                    "SELECT DISTINCT f.tenant AS tenant, f.statement_id AS statement_id \
                     FROM __facts f JOIN __voids_all v \
                       ON f.tenant = v.tenant AND f.statement_id = v.voided_statement_id",
                )
                .await
                .map_err(setup_error)?;
            let voided_schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let voided = frame.collect().await.map_err(|error| {
                if is_memory(&error) {
                    AnalyticsError::Memory {
                        limit_bytes: limits.memory_bytes,
                    }
                } else {
                    setup_error(error)
                }
            })?;
            ctx.deregister_table("__voids_all").map_err(setup_error)?;
            let voided = MemTable::try_new(voided_schema, vec![voided]).map_err(setup_error)?;
            ctx.register_table("__voided", Arc::new(voided))
                .map_err(setup_error)?;
            internal = &["__facts", "__voided"];
            format!(
                "CREATE VIEW statements AS \
                 SELECT {columns}, f.tenant AS tenant, f.month AS month, \
                        (v.statement_id IS NOT NULL AND NOT f.is_voiding) AS voided \
                 FROM __facts f \
                 LEFT JOIN __voided v ON f.tenant = v.tenant AND f.statement_id = v.statement_id \
                 WHERE f.library = {}",
                quote(isil)
            )
        }
    };
    ctx.sql(&statements).await.map_err(setup_error)?;
    for view in VIEWS.split(';').map(str::trim).filter(|v| !v.is_empty()) {
        ctx.sql(view).await.map_err(setup_error)?;
    }
    for table in internal {
        ctx.deregister_table(*table).map_err(setup_error)?;
    }
    Ok(Session {
        ctx,
        reach: reach.clone(),
        locations: location_spellings(target),
    })
}

fn is_memory(error: &DataFusionError) -> bool {
    matches!(error.find_root(), DataFusionError::ResourcesExhausted(_))
        || error.strip_backtrace().contains("Resources exhausted")
}

/// Where a planning error points in the query, if the engine said.
fn position(error: &DataFusionError) -> Option<String> {
    let span = error.diagnostic()?.span?;
    Some(format!(
        "line {}, column {}",
        span.start.line, span.start.column
    ))
}

/// An error of planning the caller's query (before any file is read): it
/// can only be about the query's own text and the session's names, so the
/// engine's message is kept, with the storage location made relative.
fn planning_error(
    session: &Session,
    error: DataFusionError,
    limits: QueryLimits,
) -> AnalyticsError {
    let rule = match error.find_root() {
        DataFusionError::SQL(..) => "sql.syntax",
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => "sql.invalid",
        _ => return running_error(error, limits),
    };
    let detail = error.strip_backtrace();
    let mut message = session.relative(&detail);
    if let Some(at) = position(&error) {
        message = format!("{message} (at {at})");
    }
    AnalyticsError::Sql(QueryError {
        rule,
        message,
        detail,
    })
}

/// An error while the query ran: the engine's message may hold values of
/// the rows it ran on, so the caller gets only which rule failed; the whole
/// text stays in `detail` (the server logs it).
fn running_error(error: DataFusionError, limits: QueryLimits) -> AnalyticsError {
    if is_memory(&error) {
        return AnalyticsError::Memory {
            limit_bytes: limits.memory_bytes,
        };
    }
    let detail = error.strip_backtrace();
    let lower = detail.to_ascii_lowercase();
    let arrow = match error.find_root() {
        DataFusionError::ArrowError(arrow, _) => Some(arrow.as_ref()),
        _ => None,
    };
    use arrow::error::ArrowError;
    let (rule, message) = match (error.find_root(), arrow) {
        _ if lower.contains("regex") || lower.contains("regular expression") => {
            ("sql.failed", FAILED)
        }
        (_, Some(ArrowError::CastError(_) | ArrowError::ParseError(_))) => ("sql.cast", CAST),
        (_, Some(ArrowError::DivideByZero | ArrowError::ArithmeticOverflow(_))) => {
            ("sql.arithmetic", ARITHMETIC)
        }
        (DataFusionError::Execution(_), _) | (_, Some(_))
            if lower.contains("cast") || lower.contains("parsing") || lower.contains("parse") =>
        {
            ("sql.cast", CAST)
        }
        (DataFusionError::Execution(_), _) | (_, Some(_))
            if lower.contains("divide by zero")
                || lower.contains("division by zero")
                || lower.contains("overflow") =>
        {
            ("sql.arithmetic", ARITHMETIC)
        }
        (DataFusionError::Execution(_) | DataFusionError::ArrowError(..), _) => {
            ("sql.failed", FAILED)
        }
        (
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_),
            _,
        ) => ("sql.unsupported", UNSUPPORTED),
        // Files, storage, the engine itself: not the query's fault.
        _ => return AnalyticsError::Query(detail),
    };
    AnalyticsError::Sql(QueryError {
        rule,
        message: message.to_owned(),
        detail,
    })
}

const CAST: &str = "the query failed while running: a value could not be cast or parsed as the type asked for (a CAST, or a function's argument); the engine's message is in the server log";
const ARITHMETIC: &str = "the query failed while running: a division by zero or an arithmetic overflow; the engine's message is in the server log";
const FAILED: &str = "the query failed while running: a function could not be applied to a value; the engine's message is in the server log";
const UNSUPPORTED: &str = "the query cannot be run as written (the engine does not support it); the engine's message is in the server log";

fn is_explain(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(matches!(
            node,
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)
        ))
    })
    .unwrap_or(true)
}

/// An EXPLAIN's answer with the storage location made relative in every
/// text column.
fn relative_batches(
    session: &Session,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, AnalyticsError> {
    batches
        .into_iter()
        .map(|batch| {
            let columns: Vec<ArrayRef> = batch
                .columns()
                .iter()
                .map(
                    |column| match column.as_any().downcast_ref::<StringArray>() {
                        Some(text) => Arc::new(
                            text.iter()
                                .map(|value| value.map(|v| session.relative(v)))
                                .collect::<StringArray>(),
                        ) as ArrayRef,
                        None => column.clone(),
                    },
                )
                .collect();
            Ok(RecordBatch::try_new(batch.schema(), columns)?)
        })
        .collect()
}

/// Runs one read-only query (no DDL, no DML, no `SET`) within the limits.
/// `EXPLAIN` in any form only for `Reach::All`, with the storage location
/// made relative: a plan names files and their statistics.
pub async fn query(
    session: &Session,
    sql: &str,
    limits: QueryLimits,
) -> Result<(SchemaRef, Vec<RecordBatch>), AnalyticsError> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let run = async {
        let frame = session
            .ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|e| planning_error(session, e, limits))?;
        let explain = is_explain(frame.logical_plan());
        if explain && session.reach != Reach::All {
            return Err(AnalyticsError::Sql(QueryError {
                rule: "sql.explain",
                message: "EXPLAIN is for the KB only: a plan names the storage files and their statistics".into(),
                detail: "EXPLAIN refused outside Reach::All".into(),
            }));
        }
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        // Optimising still reads no file (type coercion, constant folding
        // of the query's own literals): its errors are planning errors.
        // Listing the files, reading their statistics and running may meet
        // rows: their errors are running errors.
        let state = session.ctx.state();
        let optimized = state
            .optimize(frame.logical_plan())
            .map_err(|e| planning_error(session, e, limits))?;
        let plan = state
            .query_planner()
            .create_physical_plan(&optimized, &state)
            .await
            .map_err(|e| running_error(e, limits))?;
        let batches = datafusion::physical_plan::collect(plan, session.ctx.task_ctx())
            .await
            .map_err(|e| running_error(e, limits))?;
        let batches = if explain {
            relative_batches(session, batches)?
        } else {
            batches
        };
        Ok::<_, AnalyticsError>((schema, batches))
    };
    match tokio::time::timeout(limits.timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(AnalyticsError::Timeout(limits.timeout)),
    }
}

/// The answer's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Arrow,
    Parquet,
}

impl Format {
    /// `json`, `csv`, `arrow` (also `ipc`), `parquet`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "csv" => Some(Self::Csv),
            "arrow" | "ipc" | "arrow-ipc" => Some(Self::Arrow),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The first format an `Accept` header names (JSON for `*/*`).
    pub fn from_accept(accept: &str) -> Option<Self> {
        accept
            .split(',')
            .map(|part| part.split(';').next().unwrap_or("").trim())
            .find_map(|media| match media {
                "application/json" | "*/*" | "application/*" => Some(Self::Json),
                "text/csv" => Some(Self::Csv),
                "application/vnd.apache.arrow.stream" => Some(Self::Arrow),
                "application/vnd.apache.parquet" | "application/x-parquet" => Some(Self::Parquet),
                _ => None,
            })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Arrow => "arrow",
            Self::Parquet => "parquet",
        }
    }
}

/// Encodes a result: every format answers every result. JSON:
/// `{"columns": [{"name", "type"}], "rows": [{..}], "row_count": n}`. In
/// CSV a nested column (a list, a struct, a map) is its JSON text. A column
/// of a type the format's writer cannot hold becomes its text; one that
/// has no text either is a 400 (`sql.format`) naming it.
pub fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<Vec<u8>, AnalyticsError> {
    let (schema, batches) = if format == Format::Csv {
        nested_as_json(schema, batches)?
    } else {
        (schema.clone(), batches.to_vec())
    };
    if let Ok(bytes) = write(&schema, &batches, format) {
        return Ok(bytes);
    }
    // Some column's type is one this writer cannot take: each such column
    // as text, then again.
    let mut schema = schema;
    let mut batches = batches;
    for index in 0..schema.fields().len() {
        let alone = Arc::new(Schema::new(vec![schema.field(index).clone()]));
        let columns: Vec<RecordBatch> = batches
            .iter()
            .map(|b| RecordBatch::try_new(alone.clone(), vec![b.column(index).clone()]))
            .collect::<Result<_, _>>()?;
        if write(&alone, &columns, format).is_ok() {
            continue;
        }
        let field = schema.field(index).clone();
        let unwritable = |detail: String| {
            AnalyticsError::Sql(QueryError {
                rule: "sql.format",
                message: format!(
                    "column {:?} of type {} cannot be answered as {}: cast it to another type or ask for another format",
                    field.name(),
                    field.data_type(),
                    format.name()
                ),
                detail,
            })
        };
        let texts = batches
            .iter()
            .map(|b| as_text(b.column(index)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unwritable(e.to_string()))?;
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[index] = Field::new(field.name(), DataType::Utf8, true);
        let next = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        batches = batches
            .iter()
            .zip(texts)
            .map(|(b, text)| {
                let mut columns = b.columns().to_vec();
                columns[index] = text;
                RecordBatch::try_new(next.clone(), columns)
            })
            .collect::<Result<_, _>>()?;
        schema = next;
    }
    write(&schema, &batches, format).map_err(|error| {
        AnalyticsError::Sql(QueryError {
            rule: "sql.format",
            message: format!(
                "the answer cannot be written as {}: ask for another format",
                format.name()
            ),
            detail: error.to_string(),
        })
    })
}

/// A column's values as text (NULL stays NULL).
fn as_text(array: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    let options = FormatOptions::default();
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
    let mut texts = Vec::with_capacity(array.len());
    for index in 0..array.len() {
        texts.push(if array.is_valid(index) {
            Some(formatter.value(index).try_to_string()?)
        } else {
            None
        });
    }
    Ok(Arc::new(StringArray::from(texts)))
}

/// A nested column's values as JSON text (NULL stays NULL), for CSV.
fn json_texts(array: &ArrayRef) -> Result<ArrayRef, AnalyticsError> {
    let alone = Arc::new(Schema::new(vec![Field::new(
        "v",
        array.data_type().clone(),
        true,
    )]));
    let batch = RecordBatch::try_new(alone, vec![array.clone()])?;
    let mut buffer = Vec::new();
    {
        let mut writer = arrow::json::ArrayWriter::new(&mut buffer);
        writer.write(&batch)?;
        writer.finish()?;
    }
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = if buffer.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&buffer)
            .map_err(|e| AnalyticsError::Query(format!("encoding a nested column: {e}")))?
    };
    if rows.len() != array.len() {
        return Err(AnalyticsError::Query(format!(
            "encoding a nested column: {} rows for {} values",
            rows.len(),
            array.len()
        )));
    }
    Ok(Arc::new(
        rows.iter()
            .enumerate()
            .map(|(index, row)| {
                array
                    .is_valid(index)
                    .then(|| row.get("v").map_or("null".to_owned(), |v| v.to_string()))
            })
            .collect::<StringArray>(),
    ))
}

/// The result with every nested column as its JSON text (the CSV writer
/// takes no nested types).
fn nested_as_json(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(SchemaRef, Vec<RecordBatch>), AnalyticsError> {
    let nested: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| schema.field(i).data_type().is_nested())
        .collect();
    if nested.is_empty() {
        return Ok((schema.clone(), batches.to_vec()));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if nested.contains(&i) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let next = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let batches = batches
        .iter()
        .map(|batch| {
            let mut columns = batch.columns().to_vec();
            for &i in &nested {
                columns[i] = match json_texts(&columns[i]) {
                    Ok(texts) => texts,
                    Err(_) => as_text(&columns[i])?,
                };
            }
            Ok(RecordBatch::try_new(next.clone(), columns)?)
        })
        .collect::<Result<Vec<_>, AnalyticsError>>()?;
    Ok((next, batches))
}

/// The bytes of one format, as the writers make them.
fn write(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<Vec<u8>, AnalyticsError> {
    let mut out = Vec::new();
    match format {
        Format::Json => {
            let mut rows = Vec::new();
            {
                let mut writer = arrow::json::ArrayWriter::new(&mut rows);
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
            let rows: serde_json::Value = if rows.is_empty() {
                serde_json::Value::Array(vec![])
            } else {
                serde_json::from_slice(&rows)
                    .map_err(|e| AnalyticsError::Query(format!("encoding rows: {e}")))?
            };
            let columns: Vec<serde_json::Value> = schema
                .fields()
                .iter()
                .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
                .collect();
            let count: usize = batches.iter().map(RecordBatch::num_rows).sum();
            out = serde_json::to_vec(&serde_json::json!({
                "columns": columns, "rows": rows, "row_count": count
            }))
            .expect("json encodes");
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for batch in batches {
                writer.write(batch)?;
            }
        }
        Format::Arrow => {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, schema)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        Format::Parquet => {
            let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema.clone(), None)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.close()?;
        }
    }
    Ok(out)
}

/// A result as a text table (`lrs sql`).
pub fn pretty(batches: &[RecordBatch]) -> Result<String, AnalyticsError> {
    Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session with no files, as a caller of `reach` would get one.
    fn bare(reach: Reach) -> Session {
        Session {
            ctx: SessionContext::new(),
            reach,
            locations: vec![
                "file:///srv/lrs/analytics/".into(),
                "srv/lrs/analytics/".into(),
            ],
        }
    }

    async fn run(
        session: &Session,
        sql: &str,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), AnalyticsError> {
        query(session, sql, QueryLimits::default()).await
    }

    fn rule_of(
        result: Result<(SchemaRef, Vec<RecordBatch>), AnalyticsError>,
    ) -> (&'static str, String) {
        match result {
            Err(AnalyticsError::Sql(error)) => (error.rule, error.message),
            other => panic!("not a query error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn errors_while_running_quote_no_value() {
        let session = bare(Reach::Library("NL-1".into()));
        session
            .ctx
            .sql("CREATE VIEW t AS SELECT * FROM (VALUES ('secret-7f3a', 0), ('x', 1)) AS v(s, n)")
            .await
            .unwrap();
        for (sql, rule) in [
            ("SELECT CAST(s AS INT) FROM t", "sql.cast"),
            ("SELECT arrow_cast(s, 'Int64') FROM t", "sql.cast"),
            ("SELECT 10 / n FROM t", "sql.arithmetic"),
            ("SELECT to_timestamp(s) FROM t", "sql.cast"),
            ("SELECT regexp_like('a', s || '(') FROM t", "sql.failed"),
        ] {
            let (found, message) = rule_of(run(&session, sql).await);
            assert_eq!(found, rule, "{sql}: {message}");
            assert!(!message.contains("secret-7f3a"), "{sql}: {message}");
        }
    }

    #[tokio::test]
    async fn errors_of_planning_name_the_query_and_where() {
        let session = bare(Reach::Tenant("app".into()));
        let (rule, message) = rule_of(run(&session, "SELEKT 1").await);
        assert_eq!(rule, "sql.syntax");
        assert!(message.contains("SELEKT"), "{message}");
        let (rule, message) = rule_of(run(&session, "SELECT nope FROM (SELECT 1 AS one)").await);
        assert_eq!(rule, "sql.invalid");
        assert!(message.contains("nope"), "{message}");
        let (rule, _) = rule_of(run(&session, "CREATE VIEW v AS SELECT 1").await);
        assert_eq!(rule, "sql.invalid");
        // Type coercion happens while optimising, still before any file.
        let (rule, message) =
            rule_of(run(&session, "SELECT 1 AS one WHERE make_array('a') = 1").await);
        assert_eq!(rule, "sql.invalid");
        assert!(message.contains("List(Utf8) = Int64"), "{message}");
    }

    #[tokio::test]
    async fn explain_only_for_all_and_without_the_location() {
        for sql in [
            "EXPLAIN SELECT 1",
            "EXPLAIN VERBOSE SELECT 1",
            "EXPLAIN ANALYZE SELECT 1",
            "explain format indent select 1",
        ] {
            for reach in [Reach::Library("NL-1".into()), Reach::Tenant("app".into())] {
                let (rule, _) = rule_of(run(&bare(reach), sql).await);
                assert_eq!(rule, "sql.explain", "{sql}");
            }
        }
        let session = bare(Reach::All);
        session
            .ctx
            .sql("CREATE VIEW located AS SELECT 'file:///srv/lrs/analytics/statements/x.parquet' AS p")
            .await
            .unwrap();
        let (_, batches) = run(&session, "EXPLAIN VERBOSE SELECT p FROM located")
            .await
            .unwrap();
        let text = pretty(&batches).unwrap();
        assert!(!text.contains("/srv/lrs"), "{text}");
        assert!(text.contains("analytics/statements/x.parquet"), "{text}");
    }

    #[tokio::test]
    async fn every_format_answers_every_type() {
        let session = bare(Reach::All);
        let sql = "SELECT make_array('a', 'b') AS list, named_struct('k', 1, 'v', 'x') AS object, \
                   map(['a'], [1]) AS dict, INTERVAL '1 day' AS span, \
                   arrow_cast(5, 'Duration(Second)') AS seconds, X'00ff' AS bytes, NULL AS nothing, \
                   CAST(NULL AS INT[]) AS no_list, 1.5 AS number, 'tekst' AS text";
        let (schema, batches) = run(&session, sql).await.unwrap();
        for format in [Format::Json, Format::Csv, Format::Arrow, Format::Parquet] {
            let bytes =
                encode(&schema, &batches, format).unwrap_or_else(|e| panic!("{format:?}: {e:?}"));
            assert!(!bytes.is_empty(), "{format:?}");
        }
        let csv = String::from_utf8(encode(&schema, &batches, Format::Csv).unwrap()).unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "list,object,dict,span,seconds,bytes,nothing,no_list,number,text"
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with(r#""[""a"",""b""]","{""k"":1,""v"":""x""}""#),
            "{row}"
        );
        // An empty answer too.
        let (schema, batches) = run(&session, &format!("{sql} WHERE false")).await.unwrap();
        for format in [Format::Json, Format::Csv, Format::Arrow, Format::Parquet] {
            encode(&schema, &batches, format).unwrap_or_else(|e| panic!("{format:?}: {e:?}"));
        }
    }

    #[test]
    fn location_spellings_longest_first() {
        let target = Target::open(
            tempfile::tempdir()
                .unwrap()
                .path()
                .join("analytics")
                .to_str()
                .unwrap(),
        )
        .unwrap();
        let spellings = location_spellings(&target);
        assert!(spellings[0].starts_with("file:///"), "{spellings:?}");
        assert!(
            spellings.iter().any(|s| s.starts_with('/')),
            "{spellings:?}"
        );
        assert!(spellings.windows(2).all(|w| w[0].len() >= w[1].len()));
    }
}
