//! The Parquet projection: every statement's analytic facts, folded from
//! the log into Parquet files partitioned hive-style by tenant and month
//! (`statements/`), and the rows of each library (ISIL) once more in files
//! of their own (`libraries/<key>/`), so that a library's SQL session holds
//! only its own files (docs/analytics.md, "Isolation").
//!
//! Like the other projections it is a fold with a checkpoint, only its
//! state lives next to its files: `checkpoint.json` says up to which log
//! position the files are complete, and is written after them. A run
//! first removes files beyond the checkpoint (an interrupted run's), then
//! folds from there, so a re-run never duplicates rows, and the files of a
//! rebuild hold the same rows as the incremental ones.

use crate::error::AnalyticsError;
use crate::schema::{self, SCHEMA_VERSION};
use crate::storage::Target;
use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListBuilder, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray,
};
use bytes::Bytes;
use futures_util::TryStreamExt;
use lrs_core::events::{ActivityFactV1, ObjectFactV1};
use lrs_core::{Event, Position};
use lrs_projections::course_model::{meaning, CourseModel, ModelCache};
use lrs_projections::progress::{duration_ms, month_of_micros, record_of};
use lrs_store::Store;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Rows of a Parquet row group: large enough for good compression and
/// statistics, small enough that a reader skips what a filter excludes.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Statements held in memory before they are written out (one file per
/// tenant and month each time).
pub const FLUSH_ROWS: usize = 500_000;
const VOIDED_VERB: &str = "http://adlnet.gov/expapi/verbs/voided";
const CHECKPOINT: &str = "checkpoint.json";

/// How far the files are: written after the files it covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub schema_version: i32,
    /// The last log position folded into the files.
    pub position: Position,
    /// Each tenant's course model (JSON) as of `position`: the fold places
    /// a statement with the model in force when it was stored.
    pub models: BTreeMap<String, String>,
    /// Tokens (hex) of people erased up to `position`: no row holds them.
    pub erased: BTreeSet<String>,
    /// Statement rows written so far.
    pub statements: u64,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub from: Position,
    pub to: Position,
    pub statements: u64,
    pub files: u64,
    pub rewritten: u64,
}

/// Progress of a long run, for the command line.
#[derive(Debug, Clone, Copy)]
pub struct RunProgress {
    pub position: Position,
    pub head: Position,
    pub statements: u64,
}

/// The facts of one statement: one row of `statements/`.
#[derive(Debug, Clone)]
struct Row {
    position: Position,
    statement_id: String,
    stored: i64,
    time: i64,
    tenant: String,
    month: String,
    app: Option<String>,
    library: Option<String>,
    verb: String,
    object_kind: &'static str,
    activity_id: Option<String>,
    activity_type: Option<String>,
    object_statement_id: Option<String>,
    is_voiding: bool,
    course: Option<String>,
    module: Option<String>,
    about_course: bool,
    meaning: u8,
    registration: Option<String>,
    actor: Option<String>,
    success: Option<bool>,
    completion: Option<bool>,
    score: [Option<f64>; 4],
    duration: Option<String>,
    duration_seconds: Option<f64>,
    platform: Option<String>,
    language: Option<String>,
    parents: Option<Vec<String>>,
    groupings: Option<Vec<String>>,
}

/// The `YYYY-MM` of a time in Dutch time, as the monthly figures count.
pub fn month_of(micros: i64) -> String {
    let (year, month) = month_of_micros(micros);
    format!("{year:04}-{month:02}")
}

fn row_of(
    position: Position,
    event: Event,
    models: &ModelCache,
    json: Option<&str>,
) -> Option<Row> {
    let context = event.statement_context().cloned();
    let statement = event.into_statement()?;
    let stored = &statement.statement;
    let model: Arc<CourseModel> = models.get(json);
    let record = record_of(
        position,
        stored,
        &statement.origin,
        context.as_ref(),
        &model,
    );
    let facts = &stored.facts;
    let (object_kind, activity_id, activity_type, object_statement_id) = match &facts.object {
        ObjectFactV1::Activity { id, activity_type } => {
            ("activity", Some(id.clone()), activity_type.clone(), None)
        }
        ObjectFactV1::Agent { .. } => ("agent", None, None, None),
        ObjectFactV1::StatementRef { id } => ("statement_ref", None, None, Some(id.to_string())),
        ObjectFactV1::SubStatement { activity_id, .. } => {
            ("sub_statement", activity_id.clone(), None, None)
        }
    };
    let result = facts.result.as_ref();
    let ids = |list: &[ActivityFactV1]| list.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    Some(Row {
        position,
        statement_id: stored.statement_id.to_string(),
        stored: stored.stored_micros,
        time: record.time_micros,
        tenant: stored.tenant.clone(),
        month: month_of(record.time_micros),
        app: record.app,
        library: record.library,
        is_voiding: facts.verb_id == VOIDED_VERB && object_statement_id.is_some(),
        verb: facts.verb_id.clone(),
        object_kind,
        activity_id,
        activity_type,
        object_statement_id,
        course: record.course,
        module: record.module,
        about_course: record.about_course,
        meaning: record.meaning,
        registration: facts.registration.map(|r| r.to_string()),
        actor: facts.actor.map(|t| t.to_hex()),
        success: result.and_then(|r| r.success),
        completion: result.and_then(|r| r.completion),
        score: [
            result.and_then(|r| r.score_scaled),
            result.and_then(|r| r.score_raw),
            result.and_then(|r| r.score_min),
            result.and_then(|r| r.score_max),
        ],
        duration: result.and_then(|r| r.duration.clone()),
        duration_seconds: result
            .and_then(|r| r.duration.as_deref())
            .and_then(duration_ms)
            .map(|ms| ms as f64 / 1000.0),
        platform: facts.platform.clone(),
        language: facts.language.clone(),
        parents: context.as_ref().map(|c| ids(&c.parent)),
        groupings: context.as_ref().map(|c| ids(&c.grouping)),
    })
}

fn utc(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn strings<'a>(rows: &[&'a Row], f: impl Fn(&'a Row) -> Option<&'a str>) -> ArrayRef {
    Arc::new(rows.iter().map(|r| f(r)).collect::<StringArray>())
}

fn bools(rows: &[&Row], f: impl Fn(&Row) -> Option<bool>) -> ArrayRef {
    Arc::new(rows.iter().map(|r| f(r)).collect::<BooleanArray>())
}

fn floats(rows: &[&Row], f: impl Fn(&Row) -> Option<f64>) -> ArrayRef {
    Arc::new(rows.iter().map(|r| f(r)).collect::<Float64Array>())
}

fn lists(rows: &[&Row], f: impl Fn(&Row) -> Option<&Vec<String>>) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for row in rows {
        match f(row) {
            Some(ids) => {
                for id in ids {
                    builder.values().append_value(id);
                }
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}

fn statements_batch(rows: &[&Row]) -> Result<RecordBatch, AnalyticsError> {
    let m = |bit: u8| move |r: &Row| Some(r.meaning & bit != 0);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.position as i64),
        )),
        strings(rows, |r| Some(&r.statement_id)),
        utc(rows.iter().map(|r| r.stored).collect()),
        utc(rows.iter().map(|r| r.time).collect()),
        strings(rows, |r| r.app.as_deref()),
        strings(rows, |r| r.library.as_deref()),
        strings(rows, |r| Some(&r.verb)),
        strings(rows, |r| Some(r.object_kind)),
        strings(rows, |r| r.activity_id.as_deref()),
        strings(rows, |r| r.activity_type.as_deref()),
        strings(rows, |r| r.object_statement_id.as_deref()),
        bools(rows, |r| Some(r.is_voiding)),
        strings(rows, |r| r.course.as_deref()),
        strings(rows, |r| r.module.as_deref()),
        bools(rows, |r| Some(r.about_course)),
        bools(rows, m(meaning::ENROLLED)),
        bools(rows, m(meaning::STARTED)),
        bools(rows, m(meaning::PROGRESSED)),
        bools(rows, m(meaning::ENDED)),
        bools(rows, m(meaning::COMPLETED)),
        bools(rows, m(meaning::PASSED)),
        bools(rows, m(meaning::FAILED)),
        strings(rows, |r| r.registration.as_deref()),
        strings(rows, |r| r.actor.as_deref()),
        bools(rows, |r| r.success),
        bools(rows, |r| r.completion),
        floats(rows, |r| r.score[0]),
        floats(rows, |r| r.score[1]),
        floats(rows, |r| r.score[2]),
        floats(rows, |r| r.score[3]),
        strings(rows, |r| r.duration.as_deref()),
        floats(rows, |r| r.duration_seconds),
        strings(rows, |r| r.platform.as_deref()),
        strings(rows, |r| r.language.as_deref()),
        lists(rows, |r| r.parents.as_ref()),
        lists(rows, |r| r.groupings.as_ref()),
        Arc::new(Int32Array::from_value(SCHEMA_VERSION, rows.len())),
    ];
    Ok(RecordBatch::try_new(schema::statements(), columns)?)
}

fn voids_batch(rows: &[&Row]) -> Result<RecordBatch, AnalyticsError> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.position as i64),
        )),
        strings(rows, |r| Some(&r.statement_id)),
        strings(rows, |r| r.object_statement_id.as_deref()),
        utc(rows.iter().map(|r| r.stored).collect()),
        Arc::new(Int32Array::from_value(SCHEMA_VERSION, rows.len())),
    ];
    Ok(RecordBatch::try_new(schema::voids(), columns)?)
}

/// Writer settings: zstd, page statistics, rows sorted by position, the
/// schema version in the metadata. Fixed, so that the same rows give the
/// same bytes.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level 3")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "lrs.schema_version".to_owned(),
            SCHEMA_VERSION.to_string(),
        )]))
        .build()
}

/// A record batch as the bytes of one Parquet file.
pub fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>, AnalyticsError> {
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(writer_properties()))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(bytes)
}

/// A hive partition value: letters, digits and `._-` as they are, anything
/// else percent-encoded (tenant ids are plain in practice).
pub fn partition_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"._-".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A library (ISIL) as it appears in paths (`libraries/<key>/`): ASCII
/// letters, digits and `-` as they are, every other byte as `_` and two hex
/// digits (so `_` itself is `_5F`). Injective, and free of `.`, `=`, `%`,
/// `/` and glob characters: one directory per library, never shared.
pub fn library_key(isil: &str) -> String {
    let mut out = String::with_capacity(isil.len());
    for byte in isil.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
    out
}

/// The directory of a library's copy of its rows, below the location.
pub fn library_dir(isil: &str) -> String {
    format!("libraries/{}", library_key(isil))
}

/// The datasets of the projection (directories below the location).
const DATASETS: [&str; 3] = ["statements", "voids", "libraries"];

/// `part-<first>-<last>.parquet`: the log positions a run's flush covered,
/// zero-padded so that names sort by position.
fn part_name(first: Position, last: Position) -> String {
    format!("part-{first:012}-{last:012}.parquet")
}

/// The first position of a part file's name.
fn part_first(path: &Path) -> Option<Position> {
    let name = path.filename()?;
    let rest = name.strip_prefix("part-")?;
    rest.split('-').next()?.parse().ok()
}

/// The Parquet projection of one analytics location.
pub struct Exporter {
    target: Target,
    runtime: tokio::runtime::Handle,
    models: ModelCache,
    stop: std::sync::OnceLock<Arc<std::sync::atomic::AtomicBool>>,
}

impl Exporter {
    /// `runtime` runs the object-store calls; the exporter's own methods
    /// block (call them from a blocking thread).
    pub fn new(target: Target, runtime: tokio::runtime::Handle) -> Self {
        Self {
            target,
            runtime,
            models: ModelCache::default(),
            stop: std::sync::OnceLock::new(),
        }
    }

    /// A flag that ends a run early (at a consistent point: what was folded
    /// is written and checkpointed), for a server shutting down.
    pub fn set_stop(&self, stop: Arc<std::sync::atomic::AtomicBool>) {
        let _ = self.stop.set(stop);
    }

    fn stopping(&self) -> bool {
        self.stop
            .get()
            .is_some_and(|stop| stop.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn block<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.target.store
    }

    /// The checkpoint, or a fresh one if there is none (or it is of another
    /// schema version: then the files are rebuilt).
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AnalyticsError> {
        let path = self.target.path(CHECKPOINT);
        match self.block(self.store().get(&path)) {
            Ok(result) => {
                let bytes = self.block(result.bytes())?;
                Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
                    AnalyticsError::Corrupt(format!("{CHECKPOINT}: {e}"))
                })?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<(), AnalyticsError> {
        self.block(self.store().put(path, PutPayload::from(Bytes::from(bytes))))?;
        Ok(())
    }

    fn list(&self, dir: &str) -> Result<Vec<Path>, AnalyticsError> {
        let prefix = self.target.path(dir);
        let mut paths: Vec<Path> = self.block(
            self.store()
                .list(Some(&prefix))
                .map_ok(|meta| meta.location)
                .try_collect(),
        )?;
        paths.sort();
        Ok(paths)
    }

    /// Removes every file of the projection (the start of a rebuild).
    pub fn clear(&self) -> Result<u64, AnalyticsError> {
        let mut removed = 0;
        for dir in DATASETS {
            for path in self.list(dir)? {
                self.block(self.store().delete(&path))?;
                removed += 1;
            }
        }
        match self.block(self.store().delete(&self.target.path(CHECKPOINT))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        Ok(removed)
    }

    /// Folds the log from the checkpoint to the store's head into new files.
    pub fn run(
        &self,
        store: &Store,
        progress: &mut dyn FnMut(RunProgress),
    ) -> Result<RunReport, AnalyticsError> {
        let mut checkpoint = match self.checkpoint()? {
            Some(checkpoint) if checkpoint.schema_version == SCHEMA_VERSION => checkpoint,
            found => {
                if found.is_some() {
                    tracing::info!("analytics schema changed: rebuilding the Parquet files");
                }
                self.clear()?;
                Checkpoint {
                    schema_version: SCHEMA_VERSION,
                    ..Checkpoint::default()
                }
            }
        };
        // Files beyond the checkpoint are an interrupted run's: their rows
        // are folded again below.
        for dir in DATASETS {
            for path in self.list(dir)? {
                if part_first(&path).is_some_and(|first| first > checkpoint.position) {
                    self.block(self.store().delete(&path))?;
                }
            }
        }
        let head = store.head();
        let mut report = RunReport {
            from: checkpoint.position + 1,
            to: checkpoint.position,
            ..RunReport::default()
        };
        if head <= checkpoint.position {
            return Ok(report);
        }
        let mut rows: Vec<Row> = Vec::new();
        let mut first = checkpoint.position + 1;
        let mut newly_erased: BTreeSet<String> = BTreeSet::new();
        let mut last = checkpoint.position;
        for entry in store.read_from(checkpoint.position + 1) {
            let entry = entry?;
            if entry.position > head || self.stopping() {
                break;
            }
            last = entry.position;
            match entry.event {
                Event::CourseModelDefinedV1(defined) => {
                    checkpoint.models.insert(defined.tenant, defined.model);
                }
                event => {
                    if let Some(token) = crate::erasure::erased_token(&event) {
                        if checkpoint.erased.insert(token.clone()) {
                            newly_erased.insert(token);
                        }
                    } else if event.stored_statement().is_some() {
                        let tenant = event.stored_statement().map(|s| s.tenant.clone());
                        let json = tenant.and_then(|t| checkpoint.models.get(&t).cloned());
                        if let Some(mut row) =
                            row_of(entry.position, event, &self.models, json.as_deref())
                        {
                            if row
                                .actor
                                .as_ref()
                                .is_some_and(|a| checkpoint.erased.contains(a))
                            {
                                row.actor = None;
                            }
                            rows.push(row);
                        }
                    }
                }
            }
            if rows.len() >= FLUSH_ROWS {
                report.statements += rows.len() as u64;
                report.files += self.flush(&mut rows, first, last)?;
                first = last + 1;
            }
            if last % 10_000 == 0 {
                progress(RunProgress {
                    position: last,
                    head,
                    statements: checkpoint.statements + report.statements + rows.len() as u64,
                });
            }
        }
        report.statements += rows.len() as u64;
        report.files += self.flush(&mut rows, first, last)?;
        // People erased in this run: rows already written (by earlier runs,
        // or earlier in this one) lose their token.
        if !newly_erased.is_empty() {
            report.rewritten = self.erase_in_files(&newly_erased)?;
        }
        checkpoint.statements += report.statements;
        checkpoint.position = last;
        report.to = last;
        self.put(
            &self.target.path(CHECKPOINT),
            serde_json::to_vec_pretty(&checkpoint).expect("checkpoint encodes"),
        )?;
        progress(RunProgress {
            position: last,
            head,
            statements: checkpoint.statements,
        });
        Ok(report)
    }

    /// Writes the rows held (positions `first..=last`): one file per tenant
    /// and month, one voids file per tenant, and each library's rows again
    /// in one file per library, tenant and month.
    fn flush(
        &self,
        rows: &mut Vec<Row>,
        first: Position,
        last: Position,
    ) -> Result<u64, AnalyticsError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let name = part_name(first, last);
        let mut partitions: BTreeMap<(&str, &str), Vec<&Row>> = BTreeMap::new();
        let mut libraries: BTreeMap<(&str, &str, &str), Vec<&Row>> = BTreeMap::new();
        let mut voids: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
        for row in rows.iter() {
            partitions
                .entry((&row.tenant, &row.month))
                .or_default()
                .push(row);
            if let Some(library) = &row.library {
                libraries
                    .entry((library, &row.tenant, &row.month))
                    .or_default()
                    .push(row);
            }
            if row.is_voiding {
                voids.entry(&row.tenant).or_default().push(row);
            }
        }
        let mut files = 0;
        for ((tenant, month), part) in &partitions {
            let path = self.target.path(&format!(
                "statements/tenant={}/month={month}/{name}",
                partition_value(tenant)
            ));
            self.put(&path, parquet_bytes(&statements_batch(part)?)?)?;
            files += 1;
        }
        for ((library, tenant, month), part) in &libraries {
            let path = self.target.path(&format!(
                "{}/tenant={}/month={month}/{name}",
                library_dir(library),
                partition_value(tenant)
            ));
            self.put(&path, parquet_bytes(&statements_batch(part)?)?)?;
            files += 1;
        }
        for (tenant, part) in &voids {
            let path = self
                .target
                .path(&format!("voids/tenant={}/{name}", partition_value(tenant)));
            self.put(&path, parquet_bytes(&voids_batch(part)?)?)?;
            files += 1;
        }
        rows.clear();
        Ok(files)
    }

    /// Rewrites every statements file (and library copy) holding one of
    /// `tokens` with the actor set to NULL (the row stays: statement counts
    /// stay right).
    fn erase_in_files(&self, tokens: &BTreeSet<String>) -> Result<u64, AnalyticsError> {
        let mut rewritten = 0;
        let mut paths = self.list("statements")?;
        paths.extend(self.list("libraries")?);
        for path in paths {
            let bytes = self.block(async { self.store().get(&path).await?.bytes().await })?;
            if let Some(batch) = crate::erasure::without_tokens(bytes, tokens)? {
                self.put(&path, parquet_bytes(&batch)?)?;
                rewritten += 1;
            }
        }
        Ok(rewritten)
    }
}
