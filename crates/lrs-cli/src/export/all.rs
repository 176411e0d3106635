//! The KB's exit (requirements 2.37, 2.38; the municipal norm on hand-over
//! in agreed formats): `lrs export all --to DIR`, everything the LRS holds
//! in open formats, with a manifest of counts and the SHA-256 of every file.
//!
//! ```text
//! DIR/statements/<tenant>/<YYYY-MM>.jsonl  every statement as GET /xapi/statements answers it
//!                                          (voided ones too), in stored order, by the month
//!                                          (Dutch time) of `stored`
//! DIR/attachments/<sha256>                 attachment contents, named as in the statements
//! DIR/documents.jsonl, documents/<sha256>  State, Activity Profile and Agent Profile documents
//!                                          (the handover's format, docs/exports.md)
//! DIR/tenants.json, roles.json, credentials.json   as GET /admin/tenants|roles|credentials
//!                                          answer them: no secret, no hash
//! DIR/course-models/<tenant>.json          each tenant's course model as set
//! DIR/figures/monthly.csv, top10.csv       the monthly figures of every month with statements:
//!                                          the total, every library, every app
//! DIR/parquet/                             the analytics Parquet files (docs/analytics.md)
//! DIR/manifest.json                        counts, the source's log head, every file's
//!                                          bytes and SHA-256; written last
//! ```
//!
//! Long work reports progress. An interrupted export is resumed by running
//! the same command again: `DIR/export-state.json` records how far the
//! statement files are complete (the log position and each file's length
//! then, synced before it is written) and which phases are done. A resumed
//! run cuts every statement file back to its recorded length and goes on
//! after that position, so no statement is written twice; the other phases
//! write whole files (or, for Parquet, resume from their own checkpoint).
//! The statement files end at the log head of the first run; an export of
//! a running server's store shows later documents and figures as they are
//! when their phase runs.

use super::files::{check_empty_dir, files_under, sha256_file, write_atomic};
use super::handover::{self, remember_agents, write_once, DocumentCounts};
use crate::export::copy::ProgressFn;
use anyhow::{bail, Context};
use lrs_app::closing;
use lrs_app::insight::{self, FigureScope, FiguresVersion, Month, MonthlyFigures};
use lrs_core::envelope::open_attachments;
use lrs_core::statement::{format_micros, reassemble};
use lrs_core::{Position, Token};
use lrs_store::{Scope, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

pub const FORMAT: &str = "lrs-export-all";
pub const VERSION: u32 = 1;
/// The resumable state of an unfinished export; gone once the manifest is written.
pub const STATE_FILE: &str = "export-state.json";
pub const MANIFEST: &str = "manifest.json";

/// Statements between two checkpoints of the statement files.
const CHECKPOINT_EVERY: u64 = 1_000;

const PHASES: [&str; 5] = [
    "statements",
    "documents",
    "administration",
    "figures",
    "parquet",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FileMark {
    bytes: u64,
    lines: u64,
}

/// How many statements, per tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TenantCounts {
    pub statements: u64,
    /// Of those, voided (the Statement API shows them only by voidedStatementId).
    pub voided: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    format: String,
    version: u32,
    started: String,
    /// The log head the statement files end at, and its hash.
    head_position: Position,
    head_hash: String,
    /// The last log position whose statement is in the files (as marked).
    position: Position,
    files: BTreeMap<String, FileMark>,
    per_tenant: BTreeMap<String, TenantCounts>,
    attachments: u64,
    statements_of_erased_people: u64,
    /// Months (`YYYY-MM`, Dutch time) of the statements' timestamps: the
    /// months the figures count them in.
    months: BTreeSet<String>,
    /// Phases finished, with what each counted.
    done: BTreeMap<String, Value>,
}

impl State {
    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        write_atomic(&dir.join(STATE_FILE), &serde_json::to_vec_pretty(self)?)
    }
}

/// A tenant id as a directory name: letters, digits, `-`, `_` and `.` as
/// they are, every other byte as `%XX`.
pub fn safe_name(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_')
            || (byte == b'.' && !out.is_empty())
        {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// Runs (or resumes) `lrs export all` into `dir`.
pub async fn export_all(
    store: &Arc<Store>,
    dir: &Path,
    progress: ProgressFn,
) -> anyhow::Result<Value> {
    if dir.join(MANIFEST).exists() && !dir.join(STATE_FILE).exists() {
        let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join(MANIFEST))?)
            .with_context(|| format!("{} is not a manifest", dir.join(MANIFEST).display()))?;
        if manifest["format"] != FORMAT {
            bail!("{} is not empty (it holds another export): give a new or empty directory (nothing was changed)", dir.display());
        }
        return Ok(
            json!({"already_complete": true, "to": dir.display().to_string(), "manifest": manifest}),
        );
    }
    let mut state = if dir.join(STATE_FILE).exists() {
        resume(store, dir)?
    } else {
        check_empty_dir(dir)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let head_position = store.head();
        let state = State {
            format: FORMAT.into(),
            version: VERSION,
            started: format_micros(lrs_core::clock::now_micros()),
            head_position,
            head_hash: hex::encode(store.entry_hash(head_position)?.unwrap_or([0; 32])),
            ..State::default()
        };
        state.save(dir)?;
        state
    };
    let resumed = state.position > 0 || !state.done.is_empty();

    if !state.done.contains_key("statements") {
        let worker = store.clone();
        let out = dir.to_path_buf();
        let p = progress.clone();
        state = tokio::task::spawn_blocking(move || statements(&worker, &out, state, &*p))
            .await
            .context("the statements phase stopped")??;
    }
    if !state.done.contains_key("documents") {
        let worker = store.clone();
        let out = dir.to_path_buf();
        let p = progress.clone();
        let head = state.head_position;
        let counts = tokio::task::spawn_blocking(move || documents(&worker, &out, head, &*p))
            .await
            .context("the documents phase stopped")??;
        state
            .done
            .insert("documents".into(), serde_json::to_value(counts)?);
        state.save(dir)?;
    }
    if !state.done.contains_key("administration") {
        let counts = administration(store, dir)?;
        state.done.insert("administration".into(), counts);
        state.save(dir)?;
    }
    if !state.done.contains_key("figures") {
        let worker = store.clone();
        let out = dir.to_path_buf();
        let months = state.months.clone();
        let p = progress.clone();
        let counts = tokio::task::spawn_blocking(move || figures(&worker, &out, &months, &*p))
            .await
            .context("the figures phase stopped")??;
        state.done.insert("figures".into(), counts);
        state.save(dir)?;
    }
    if !state.done.contains_key("parquet") {
        let counts = parquet(store, dir, progress.clone()).await?;
        state.done.insert("parquet".into(), counts);
        state.save(dir)?;
    }
    let manifest = manifest(dir, &state, &*progress)?;
    std::fs::remove_file(dir.join(STATE_FILE))?;
    Ok(json!({
        "to": dir.display().to_string(),
        "resumed": resumed,
        "manifest": manifest,
    }))
}

/// Picks up an unfinished export: checks it is of this store, removes
/// half-written files and cuts the statement files back to their marks.
fn resume(store: &Store, dir: &Path) -> anyhow::Result<State> {
    let state: State = serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE))?)
        .with_context(|| format!("{} is damaged", dir.join(STATE_FILE).display()))?;
    if state.format != FORMAT || state.version != VERSION {
        bail!(
            "{} holds an export of another format: give a new or empty directory",
            dir.display()
        );
    }
    let hash = store.entry_hash(state.head_position)?.map(hex::encode);
    if hash.as_deref() != Some(state.head_hash.as_str()) {
        bail!(
            "{} holds an unfinished export of another store (its log position {} does not match): give a new or empty directory",
            dir.display(),
            state.head_position
        );
    }
    for relative in files_under(dir)? {
        let path = dir.join(&relative);
        if relative.ends_with(".partial") {
            std::fs::remove_file(&path)?;
            continue;
        }
        if !state.done.contains_key("statements") && relative.starts_with("statements/") {
            match state.files.get(&relative) {
                None => std::fs::remove_file(&path)?,
                Some(mark) => {
                    let length = std::fs::metadata(&path)?.len();
                    if length < mark.bytes {
                        bail!(
                            "{} is shorter than the export recorded ({length} < {} bytes): it was changed; start again in a new directory",
                            path.display(),
                            mark.bytes
                        );
                    }
                    if length > mark.bytes {
                        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
                        file.set_len(mark.bytes)?;
                        file.sync_all()?;
                    }
                }
            }
        }
    }
    eprintln!(
        "resuming the export in {} after log position {} (phases done: {})",
        dir.display(),
        state.position,
        if state.done.is_empty() {
            "none".to_owned()
        } else {
            state.done.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    );
    Ok(state)
}

/// An open statement file and its mark.
struct OpenFile {
    relative: String,
    writer: std::io::BufWriter<std::fs::File>,
}

fn checkpoint(
    dir: &Path,
    state: &State,
    open: &mut HashMap<String, OpenFile>,
) -> anyhow::Result<()> {
    for file in open.values_mut() {
        file.writer.flush()?;
        file.writer.get_ref().sync_all()?;
    }
    state.save(dir)
}

/// For the test of resuming: with `LRS_EXPORT_ALL_STOP_AFTER=N` the process
/// ends abruptly once N statements were written in this run, after the
/// lines reached the files but before the state marked them, as a crash
/// would leave it.
const STOP_AFTER_ENV: &str = "LRS_EXPORT_ALL_STOP_AFTER";

fn stop_after() -> Option<u64> {
    std::env::var(STOP_AFTER_ENV).ok()?.parse().ok()
}

/// The statement files: one pass over the log from the state's position.
fn statements(
    store: &Store,
    dir: &Path,
    mut state: State,
    progress: &dyn Fn(&'static str, u64, u64),
) -> anyhow::Result<State> {
    let vault = store.vault().as_ref();
    let head = state.head_position;
    // Per tenant: the file of the month being written.
    let mut open: HashMap<String, OpenFile> = HashMap::new();
    let mut since_checkpoint = 0u64;
    let stop_after = stop_after();
    let mut written_now = 0u64;
    progress("statements", state.position, head);
    for entry in store.read_from(state.position + 1) {
        let entry = entry?;
        if entry.position > head {
            break;
        }
        if let Some(stored) = entry.event.stored_statement() {
            match reassemble(stored, vault)? {
                None => state.statements_of_erased_people += 1,
                Some(statement) => {
                    for content in open_attachments(&stored.sealed, vault)?.unwrap_or_default() {
                        write_once(&dir.join("attachments").join(&content.sha2), &content.bytes)?;
                        state.attachments += 1;
                    }
                    let month = Month::of_micros(stored.stored_micros);
                    let relative =
                        format!("statements/{}/{month}.jsonl", safe_name(&stored.tenant));
                    let file = match open.get_mut(&stored.tenant) {
                        Some(file) if file.relative == relative => file,
                        _ => {
                            if let Some(mut old) = open.remove(&stored.tenant) {
                                old.writer.flush()?;
                                old.writer.get_ref().sync_all()?;
                            }
                            let path = dir.join(&relative);
                            std::fs::create_dir_all(path.parent().expect("a parent"))?;
                            let handle = std::fs::OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(&path)
                                .with_context(|| format!("opening {}", path.display()))?;
                            open.entry(stored.tenant.clone()).or_insert(OpenFile {
                                relative: relative.clone(),
                                writer: std::io::BufWriter::new(handle),
                            })
                        }
                    };
                    let mut line = serde_json::to_vec(&statement)?;
                    line.push(b'\n');
                    file.writer.write_all(&line)?;
                    let mark = state.files.entry(relative).or_default();
                    mark.bytes += line.len() as u64;
                    mark.lines += 1;
                    let voided = store
                        .find_statement(
                            &Scope::Tenant(stored.tenant.clone()),
                            &stored.statement_id,
                        )?
                        .is_some_and(|found| found.voided);
                    let counts = state.per_tenant.entry(stored.tenant.clone()).or_default();
                    counts.statements += 1;
                    counts.voided += u64::from(voided);
                    let counted = stored
                        .facts
                        .timestamp_micros
                        .unwrap_or(stored.stored_micros);
                    state.months.insert(Month::of_micros(counted).to_string());
                    since_checkpoint += 1;
                    written_now += 1;
                    if stop_after == Some(written_now) {
                        // A crash after lines were written but before they were marked.
                        for file in open.values_mut() {
                            file.writer.flush()?;
                        }
                        eprintln!("stopping after {written_now} statements ({STOP_AFTER_ENV})");
                        std::process::exit(75);
                    }
                }
            }
        }
        state.position = entry.position;
        if since_checkpoint >= CHECKPOINT_EVERY {
            checkpoint(dir, &state, &mut open)?;
            since_checkpoint = 0;
            progress("statements", state.position, head);
        }
    }
    state.position = state.position.max(head);
    let total: u64 = state.per_tenant.values().map(|c| c.statements).sum();
    state.done.insert(
        "statements".into(),
        json!({"statements": total, "files": state.files.len()}),
    );
    checkpoint(dir, &state, &mut open)?;
    progress("statements", head, head);
    Ok(state)
}

/// The documents, with each person's agent from the statements naming them.
fn documents(
    store: &Store,
    dir: &Path,
    head: Position,
    progress: &dyn Fn(&'static str, u64, u64),
) -> anyhow::Result<DocumentCounts> {
    let wanted: HashSet<Token> = store
        .documents_in(&[])?
        .iter()
        .filter_map(|(_, record)| store.entry(record.position).ok().flatten())
        .filter_map(|entry| match entry.event {
            lrs_core::Event::DocumentWrittenV1(written) => written.context.agent,
            _ => None,
        })
        .collect();
    let mut agents: HashMap<Token, Value> = HashMap::new();
    if !wanted.is_empty() {
        for entry in store.read_from(1) {
            let entry = entry?;
            if entry.position > head || wanted.iter().all(|t| agents.contains_key(t)) {
                break;
            }
            if entry.position % 10_000 == 0 {
                progress("documents: finding their agents", entry.position, head);
            }
            if let Some(stored) = entry.event.stored_statement() {
                remember_agents(stored, store.vault().as_ref(), &mut agents)?;
            }
        }
        agents.retain(|token, _| wanted.contains(token));
    }
    // write_documents reports only its one phase, "documents".
    handover::write_documents(store, dir, &agents, &|_, done, total| {
        progress("documents", done, total)
    })
}

/// Tenants, roles and credentials as the admin API answers them (no
/// secret, no hash), and every course model.
fn administration(store: &Store, dir: &Path) -> anyhow::Result<Value> {
    let tenants: Vec<Value> = store
        .tenants()?
        .iter()
        .map(lrs_app::admin::tenant_json)
        .collect();
    let roles: Vec<Value> = store
        .roles()?
        .iter()
        .map(lrs_app::admin::role_json)
        .collect();
    let credentials: Vec<Value> = store
        .credentials()?
        .iter()
        .map(lrs_app::admin::credential_json)
        .collect();
    write_atomic(
        &dir.join("tenants.json"),
        &serde_json::to_vec_pretty(&json!({"tenants": tenants}))?,
    )?;
    write_atomic(
        &dir.join("roles.json"),
        &serde_json::to_vec_pretty(&json!({"roles": roles}))?,
    )?;
    write_atomic(
        &dir.join("credentials.json"),
        &serde_json::to_vec_pretty(&json!({"credentials": credentials}))?,
    )?;
    let models = store.course_models()?;
    for (tenant, model) in &models {
        let value: Value = serde_json::from_str(model).unwrap_or(Value::String(model.clone()));
        write_atomic(
            &dir.join("course-models")
                .join(format!("{}.json", safe_name(tenant))),
            &serde_json::to_vec_pretty(&value)?,
        )?;
    }
    Ok(json!({
        "tenants": tenants.len(),
        "roles": roles.len(),
        "credentials": credentials.len(),
        "course_models": models.len(),
    }))
}

/// One CSV field.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The figures' names and values in their order (every field of
/// `Figures`, so a figure added later gets its column).
fn figure_fields(figures: &insight::Figures) -> Vec<(String, String)> {
    match serde_json::to_value(figures) {
        Ok(Value::Object(map)) => map.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
        _ => Vec::new(),
    }
}

/// `figures/monthly.csv` (one row per month and scope) and
/// `figures/top10.csv` (the top 10 started and completed courses of each).
fn figures(
    store: &Store,
    dir: &Path,
    months: &BTreeSet<String>,
    progress: &dyn Fn(&'static str, u64, u64),
) -> anyhow::Result<Value> {
    let mut monthly = String::new();
    let mut top = String::from("month,scope,id,list,rank,course,name,count\n");
    let mut rows = 0u64;
    let mut header_written = false;
    let names = insight::TenantNames::load(store)?;
    let name_of = |list: &[(String, String)], id: &str| {
        list.iter()
            .find(|(known, _)| known == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    for (done, text) in months.iter().enumerate() {
        progress("figures", done as u64, months.len() as u64);
        let month: Month = text.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        let mut scopes = vec![FigureScope::Total];
        for row in closing::breakdown(store, month, true, FiguresVersion::Delivered)?.rows {
            scopes.push(FigureScope::Library(row.id));
        }
        for row in closing::breakdown(store, month, false, FiguresVersion::Delivered)?.rows {
            scopes.push(FigureScope::App(row.id));
        }
        for scope in scopes {
            let figures: MonthlyFigures =
                closing::monthly(store, &scope, month, FiguresVersion::Delivered)?;
            let version = match &figures.closing {
                Some(c) if c.served == insight::Served::Closed => c.version.to_string(),
                _ => "live".to_owned(),
            };
            let (kind, id, name) = match &scope {
                FigureScope::Total => ("total", String::new(), String::new()),
                FigureScope::Library(isil) => {
                    ("library", isil.clone(), name_of(&names.libraries, isil))
                }
                FigureScope::App(appid) => ("app", appid.clone(), name_of(&names.apps, appid)),
            };
            let fields = figure_fields(&figures.figures);
            if !header_written {
                monthly.push_str("month,version,scope,id,name");
                for (key, _) in &fields {
                    monthly.push(',');
                    monthly.push_str(key);
                }
                monthly.push('\n');
                header_written = true;
            }
            monthly.push_str(&format!(
                "{month},{version},{kind},{},{}",
                csv_field(&id),
                csv_field(&name)
            ));
            for (_, value) in &fields {
                monthly.push(',');
                monthly.push_str(value);
            }
            monthly.push('\n');
            rows += 1;
            for (list, courses) in [
                ("started", &figures.top_started),
                ("completed", &figures.top_completed),
            ] {
                for (rank, course) in courses.iter().enumerate() {
                    top.push_str(&format!(
                        "{month},{kind},{},{list},{},{},{},{}\n",
                        csv_field(&id),
                        rank + 1,
                        csv_field(&course.course),
                        csv_field(course.name.as_deref().unwrap_or_default()),
                        course.count
                    ));
                }
            }
        }
    }
    if !header_written {
        monthly.push_str("month,version,scope,id,name\n");
    }
    write_atomic(&dir.join("figures").join("monthly.csv"), monthly.as_bytes())?;
    write_atomic(&dir.join("figures").join("top10.csv"), top.as_bytes())?;
    progress("figures", months.len() as u64, months.len() as u64);
    Ok(json!({"months": months.len(), "rows": rows}))
}

/// The Parquet files, written fresh into `DIR/parquet` by the analytics
/// projection (which resumes from its own checkpoint there).
async fn parquet(store: &Arc<Store>, dir: &Path, progress: ProgressFn) -> anyhow::Result<Value> {
    let target = lrs_analytics::Target::open(&dir.join("parquet").display().to_string())?;
    let exporter = lrs_analytics::Exporter::new(target, tokio::runtime::Handle::current());
    let worker = store.clone();
    let report = tokio::task::spawn_blocking(move || {
        exporter.run(&worker, &mut |p| progress("parquet", p.position, p.head))?;
        exporter.checkpoint()
    })
    .await
    .context("the parquet phase stopped")??;
    let checkpoint = serde_json::to_value(report)?;
    Ok(json!({
        "statements": checkpoint["statements"],
        "position": checkpoint["position"],
    }))
}

/// `manifest.json`: format, source, counts and every file's bytes and SHA-256.
fn manifest(
    dir: &Path,
    state: &State,
    progress: &dyn Fn(&'static str, u64, u64),
) -> anyhow::Result<Value> {
    let names: Vec<String> = files_under(dir)?
        .into_iter()
        .filter(|name| name != STATE_FILE && name != MANIFEST && !name.ends_with(".partial"))
        .collect();
    let mut files = Vec::with_capacity(names.len());
    for (done, name) in names.iter().enumerate() {
        if done % 100 == 0 {
            progress("manifest: hashing files", done as u64, names.len() as u64);
        }
        let (sha256, bytes) = sha256_file(&dir.join(name))?;
        let mut file = json!({"path": name, "bytes": bytes, "sha256": sha256});
        if let Some(mark) = state.files.get(name) {
            file["statements"] = json!(mark.lines);
        }
        files.push(file);
    }
    progress(
        "manifest: hashing files",
        names.len() as u64,
        names.len() as u64,
    );
    let statements: u64 = state.per_tenant.values().map(|c| c.statements).sum();
    let voided: u64 = state.per_tenant.values().map(|c| c.voided).sum();
    let manifest = json!({
        "format": FORMAT,
        "version": VERSION,
        "started": state.started,
        "finished": format_micros(lrs_core::clock::now_micros()),
        "xapi_version": "1.0.3 and 2.0.0 (each statement's \"version\")",
        "source": {"head_position": state.head_position, "head_hash": state.head_hash},
        "counts": {
            "statements": statements,
            "voided": voided,
            "per_tenant": state.per_tenant,
            "attachments": state.attachments,
            "statements_of_erased_people": state.statements_of_erased_people,
            "documents": state.done.get("documents"),
            "administration": state.done.get("administration"),
            "figures": state.done.get("figures"),
            "parquet": state.done.get("parquet"),
            "files": files.len(),
        },
        "phases": PHASES,
        "files": files,
    });
    write_atomic(&dir.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?)?;
    Ok(manifest)
}
