//! SQL over the Parquet files with DataFusion: a session per query whose
//! tables hold only what the caller may see, the named views of
//! docs/analytics.md, limits of time and memory, and the answer as JSON,
//! CSV, Arrow IPC or Parquet.

use crate::error::AnalyticsError;
use crate::schema;
use crate::storage::Target;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
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

fn sql_error(error: DataFusionError) -> AnalyticsError {
    match error.find_root() {
        DataFusionError::ResourcesExhausted(message) => AnalyticsError::Memory(message.clone()),
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => AnalyticsError::Sql(error.strip_backtrace()),
        DataFusionError::Execution(message) if message.contains("Resources exhausted") => {
            AnalyticsError::Memory(message.clone())
        }
        _ => AnalyticsError::Query(error.strip_backtrace()),
    }
}

fn listing(
    ctx: &SessionContext,
    url: url::Url,
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
    let _ = ctx;
    let table_url = ListingTableUrl::parse(url.as_str()).map_err(sql_error)?;
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(file_schema);
    Ok(Arc::new(ListingTable::try_new(config).map_err(sql_error)?))
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A session over the files of `target` that sees only `reach`: the
/// unrestricted files are never registered under a name; the `statements`
/// view is built from the allowed partitions (or rows), and the internal
/// tables it reads are dropped from the catalog before the caller's SQL runs.
pub async fn session(
    target: &Target,
    reach: &Reach,
    limits: QueryLimits,
) -> Result<SessionContext, AnalyticsError> {
    // No spilling: a query over its memory limit fails instead of writing
    // temporary files on the server.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(sql_error)?;
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
    let (facts, voids, tenant_column, filter) = match reach {
        Reach::All | Reach::Library(_) => (
            listing(
                &ctx,
                target.dir_url("statements")?,
                schema::statements(),
                &schema::PARTITIONS,
            )?,
            listing(&ctx, target.dir_url("voids")?, schema::voids(), &["tenant"])?,
            "f.tenant".to_owned(),
            match reach {
                Reach::Library(isil) => format!("WHERE f.library = {}", quote(isil)),
                _ => String::new(),
            },
        ),
        Reach::Tenant(tenant) => {
            let value = crate::export::partition_value(tenant);
            (
                listing(
                    &ctx,
                    target.dir_url(&format!("statements/tenant={value}"))?,
                    schema::statements(),
                    &["month"],
                )?,
                listing(
                    &ctx,
                    target.dir_url(&format!("voids/tenant={value}"))?,
                    schema::voids(),
                    &[],
                )?,
                quote(tenant),
                String::new(),
            )
        }
    };
    ctx.register_table("__facts", facts).map_err(sql_error)?;
    ctx.register_table("__voids", voids).map_err(sql_error)?;
    let voids_tenant = match reach {
        Reach::Tenant(tenant) => quote(tenant),
        _ => "tenant".to_owned(),
    };
    let statements = format!(
        "CREATE VIEW statements AS \
         SELECT {columns}, {tenant_column} AS tenant, f.month AS month, \
                (v.voided_statement_id IS NOT NULL AND NOT f.is_voiding) AS voided \
         FROM __facts f \
         LEFT JOIN (SELECT DISTINCT {voids_tenant} AS voids_tenant, voided_statement_id FROM __voids) v \
           ON {tenant_column} = v.voids_tenant AND f.statement_id = v.voided_statement_id \
         {filter}"
    );
    ctx.sql(&statements).await.map_err(sql_error)?;
    for view in VIEWS.split(';').map(str::trim).filter(|v| !v.is_empty()) {
        ctx.sql(view).await.map_err(sql_error)?;
    }
    ctx.deregister_table("__facts").map_err(sql_error)?;
    ctx.deregister_table("__voids").map_err(sql_error)?;
    Ok(ctx)
}

/// Runs one read-only query (no DDL, no DML, no `SET`) within the limits.
pub async fn query(
    ctx: &SessionContext,
    sql: &str,
    limits: QueryLimits,
) -> Result<(SchemaRef, Vec<RecordBatch>), AnalyticsError> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let run = async {
        let frame = ctx
            .sql_with_options(sql, options)
            .await
            .map_err(sql_error)?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await.map_err(sql_error)?;
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

/// Encodes a result. JSON: `{"columns": [{"name", "type"}], "rows": [{..}],
/// "row_count": n}`.
pub fn encode(
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
