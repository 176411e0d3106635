//! The handover (requirement 6.12): everything the LRS holds, in a form
//! another LRS takes in through the standard xAPI API.
//!
//! ```text
//! DIR/manifest.json       format, source head (position, hash), counts, what was left out
//! DIR/statements.jsonl    one statement per line, exactly as GET /statements answers it,
//!                         in stored order (`stored` and `authority` as this LRS wrote them)
//! DIR/attachments/<sha2>  each attachment's content, named by its SHA-256 (as in the statement)
//! DIR/documents.jsonl     one document per line: resource, tenant, activityId, agent,
//!                         registration, id, contentType, updated, etag, content (a file name)
//! DIR/documents/<sha256>  each document's content
//! ```
//!
//! A document names its agent only by vault token; the agent object comes
//! from the statements (the person's own sealed agent object). A document
//! whose agent no statement names cannot be handed over with its agent:
//! it is counted in the manifest and left out (docs/exports.md).

use crate::data::progress_line;
use anyhow::{bail, Context};
use lrs_core::envelope::{open_attachments, open_sealed_bytes};
use lrs_core::events::{DocumentContentV1, DocumentResourceV1};
use lrs_core::statement::{format_micros, reassemble};
use lrs_core::{Event, Token};
use lrs_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

pub const FORMAT: &str = "lrs-handover";
pub const VERSION: u32 = 1;

/// What an export held and what it left out.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct HandoverSummary {
    pub statements: u64,
    pub attachments: u64,
    pub documents: u64,
    /// Statements whose subject was erased (unreadable by design).
    pub statements_of_erased_people: u64,
    /// Documents sealed under an erased person's key.
    pub documents_of_erased_people: u64,
    /// Documents whose agent no statement names (the vault keeps only a
    /// keyed hash of an identifier, so the agent cannot be written out).
    pub documents_without_agent: u64,
}

/// One line of `documents.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DocumentLine {
    /// `state`, `activity_profile` or `agent_profile`.
    pub resource: String,
    pub tenant: String,
    #[serde(rename = "activityId")]
    pub activity_id: Option<String>,
    pub agent: Option<Value>,
    pub registration: Option<String>,
    pub id: String,
    #[serde(rename = "contentType")]
    pub content_type: String,
    pub updated: String,
    /// SHA-1 of the content, the ETag the xAPI API shows.
    pub etag: String,
    /// The content's file, relative to the export directory.
    pub content: String,
}

fn resource_name(resource: DocumentResourceV1) -> &'static str {
    match resource {
        DocumentResourceV1::State => "state",
        DocumentResourceV1::ActivityProfile => "activity_profile",
        DocumentResourceV1::AgentProfile => "agent_profile",
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes a file by content name once (the same content may appear
/// twice), whole: a file that exists is complete.
pub fn write_once(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if !path.exists() {
        super::files::write_atomic(path, bytes)?;
    }
    Ok(())
}

/// Exports every statement and document of `store` into `out` (an empty directory).
pub fn export(
    store: &Store,
    out: &Path,
    progress: impl Fn(&str, u64, u64),
) -> anyhow::Result<HandoverSummary> {
    let head = store.head();
    let head_hash = store.entry_hash(head)?.unwrap_or([0; 32]);
    let vault = store.vault().as_ref();
    std::fs::create_dir_all(out.join("attachments"))?;
    let mut summary = HandoverSummary::default();
    // Token -> the agent with only its identifier, for the documents.
    let mut agents: HashMap<Token, Value> = HashMap::new();
    let mut statements =
        std::io::BufWriter::new(std::fs::File::create(out.join("statements.jsonl"))?);
    for entry in store.read_from(1) {
        let entry = entry?;
        if entry.position > head {
            break;
        }
        if entry.position % 1_000 == 0 {
            progress("statements", entry.position, head);
        }
        let Some(stored) = entry.event.stored_statement() else {
            continue;
        };
        remember_agents(stored, vault, &mut agents)?;
        let Some(statement) = reassemble(stored, vault)? else {
            summary.statements_of_erased_people += 1;
            continue;
        };
        for content in open_attachments(&stored.sealed, vault)?.unwrap_or_default() {
            write_once(&out.join("attachments").join(&content.sha2), &content.bytes)?;
            summary.attachments += 1;
        }
        serde_json::to_writer(&mut statements, &statement)?;
        statements.write_all(b"\n")?;
        summary.statements += 1;
    }
    statements.flush()?;
    statements.get_ref().sync_all()?;
    progress("statements", head, head);

    let documents = write_documents(store, out, &agents, &progress)?;
    summary.documents = documents.documents;
    summary.documents_of_erased_people = documents.documents_of_erased_people;
    summary.documents_without_agent = documents.documents_without_agent;

    let manifest = json!({
        "format": FORMAT,
        "version": VERSION,
        "created": format_micros(lrs_core::clock::now_micros()),
        "xapi_version": "1.0.3",
        "source": {"head_position": head, "head_hash": hex::encode(head_hash)},
        "summary": &summary,
    });
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(summary)
}

/// Adds each person of a stored statement whose agent object opens to
/// `agents`: token -> the agent with only its identifier.
pub fn remember_agents(
    stored: &lrs_core::events::StatementStoredV1,
    vault: &lrs_store::Vault,
    agents: &mut HashMap<Token, Value>,
) -> anyhow::Result<()> {
    for person in &stored.sealed.persons {
        if agents.contains_key(&person.token) {
            continue;
        }
        if let Some(agent) = lrs_core::envelope::open_person(person, vault)? {
            if let Some(ifi) = xapi::agent::ifi_of(&agent) {
                let mut only = ifi.to_agent_properties();
                only.insert("objectType".into(), json!("Agent"));
                agents.insert(person.token, Value::Object(only));
            }
        }
    }
    Ok(())
}

/// What [`write_documents`] wrote and left out.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DocumentCounts {
    pub documents: u64,
    pub documents_of_erased_people: u64,
    pub documents_without_agent: u64,
}

/// Writes every document (the read model's latest write of each) as
/// `out/documents.jsonl` and `out/documents/<sha256>`, each agent from
/// `agents`. Content files are written whole (a temporary file renamed),
/// so writing again after an interruption is safe.
pub fn write_documents(
    store: &Store,
    out: &Path,
    agents: &HashMap<Token, Value>,
    progress: &dyn Fn(&str, u64, u64),
) -> anyhow::Result<DocumentCounts> {
    let vault = store.vault().as_ref();
    std::fs::create_dir_all(out.join("documents"))?;
    let mut summary = DocumentCounts::default();
    let all = store.documents_in(&[])?;
    let total = all.len() as u64;
    let lines_path = out.join(".documents.jsonl.partial");
    let mut documents = std::io::BufWriter::new(std::fs::File::create(&lines_path)?);
    for (done, (id, record)) in all.into_iter().enumerate() {
        if done % 1_000 == 0 {
            progress("documents", done as u64, total);
        }
        let Some(Event::DocumentWrittenV1(written)) =
            store.entry(record.position)?.map(|entry| entry.event)
        else {
            bail!(
                "document record at {} points at another event",
                record.position
            );
        };
        let content = match &written.content {
            DocumentContentV1::Clear(bytes) => Some(bytes.clone()),
            DocumentContentV1::Sealed(sealed) => open_sealed_bytes(sealed, vault)?,
        };
        let Some(content) = content else {
            summary.documents_of_erased_people += 1;
            continue;
        };
        let agent = match written.context.agent {
            Some(token) => match agents.get(&token) {
                Some(agent) => Some(agent.clone()),
                None => {
                    summary.documents_without_agent += 1;
                    continue;
                }
            },
            None => None,
        };
        let name = sha256_hex(&content);
        write_once(&out.join("documents").join(&name), &content)?;
        let line = DocumentLine {
            resource: resource_name(written.context.resource).into(),
            tenant: written.context.tenant.clone(),
            activity_id: written.context.activity_id.clone(),
            agent,
            registration: written
                .context
                .registration
                .map(|r| r.hyphenated().to_string()),
            id,
            content_type: record.content_type.clone(),
            updated: format_micros(record.updated_micros),
            etag: hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&content)),
            content: format!("documents/{name}"),
        };
        serde_json::to_writer(&mut documents, &line)?;
        documents.write_all(b"\n")?;
        summary.documents += 1;
    }
    documents.flush()?;
    documents.get_ref().sync_all()?;
    drop(documents);
    std::fs::rename(&lines_path, out.join("documents.jsonl"))?;
    progress("documents", total, total);
    Ok(summary)
}

/// What an import sent.
#[derive(Debug, Default)]
pub struct ImportSummary {
    pub statements: u64,
    pub attachments: u64,
    pub documents: u64,
}

struct Target {
    http: reqwest::Client,
    base: String,
    key: String,
    secret: String,
}

impl Target {
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        version: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.key, Some(&self.secret))
            .header("X-Experience-API-Version", version)
    }

    /// Sends a request, again after a pause when the LRS is busy (429, 503)
    /// or the connection failed; at most five tries.
    async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let mut pause = std::time::Duration::from_millis(500);
        for attempt in 1..=5 {
            match build().send().await {
                Ok(response)
                    if attempt < 5
                        && matches!(response.status().as_u16(), 429 | 502 | 503 | 504) =>
                {
                    let wait = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .map(std::time::Duration::from_secs)
                        .unwrap_or(pause);
                    tokio::time::sleep(wait).await;
                }
                Ok(response) => return Ok(response),
                Err(error) if attempt < 5 => {
                    eprintln!("  retrying after: {error}");
                    tokio::time::sleep(pause).await;
                }
                Err(error) => return Err(error.into()),
            }
            pause *= 2;
        }
        unreachable!("the fifth attempt returns")
    }
}

/// Imports a handover export into the LRS at `to` (its xAPI endpoint).
pub async fn import(
    from: &Path,
    to: &str,
    key: &str,
    secret: &str,
    batch_size: usize,
) -> anyhow::Result<ImportSummary> {
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(from.join("manifest.json"))
            .with_context(|| format!("{} holds no manifest.json", from.display()))?,
    )?;
    if manifest["format"] != FORMAT || manifest["version"] != VERSION {
        bail!(
            "{} is not a handover export of version {VERSION} (format {}, version {})",
            from.display(),
            manifest["format"],
            manifest["version"]
        );
    }
    let expected_statements = manifest["summary"]["statements"].as_u64().unwrap_or(0);
    let expected_documents = manifest["summary"]["documents"].as_u64().unwrap_or(0);
    let target = Target {
        http: reqwest::Client::new(),
        base: to.trim_end_matches('/').to_owned(),
        key: key.to_owned(),
        secret: secret.to_owned(),
    };
    let mut summary = ImportSummary::default();

    let lines = std::io::BufReader::new(std::fs::File::open(from.join("statements.jsonl"))?);
    let mut batch: Vec<Value> = Vec::new();
    let mut batch_version = String::new();
    for (number, line) in lines.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let statement: Value = serde_json::from_str(&line)
            .with_context(|| format!("statements.jsonl line {}", number + 1))?;
        let version = api_version(&statement);
        if (version != batch_version || batch.len() >= batch_size) && !batch.is_empty() {
            summary.attachments +=
                post_batch(&target, from, &batch_version, std::mem::take(&mut batch)).await?;
            summary.statements = number as u64;
            progress_line("statements", summary.statements, expected_statements, "");
        }
        batch_version = version.to_owned();
        batch.push(statement);
    }
    if !batch.is_empty() {
        summary.attachments += post_batch(&target, from, &batch_version, batch).await?;
    }
    summary.statements = count_lines(&from.join("statements.jsonl"))?;
    progress_line("statements", summary.statements, expected_statements, "");

    let lines = std::io::BufReader::new(std::fs::File::open(from.join("documents.jsonl"))?);
    for (number, line) in lines.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let document: DocumentLine = serde_json::from_str(&line)
            .with_context(|| format!("documents.jsonl line {}", number + 1))?;
        put_document(&target, from, &document).await?;
        summary.documents += 1;
        if summary.documents % 100 == 0 {
            progress_line("documents", summary.documents, expected_documents, "");
        }
    }
    progress_line("documents", summary.documents, expected_documents, "");
    Ok(summary)
}

fn count_lines(path: &Path) -> anyhow::Result<u64> {
    let lines = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut count = 0;
    for line in lines.lines() {
        if !line?.trim().is_empty() {
            count += 1;
        }
    }
    Ok(count)
}

/// The xAPI version header a statement needs: 2.0.0 statements may use
/// what 1.0.3 refuses (context agents and groups).
fn api_version(statement: &Value) -> &'static str {
    match statement.get("version").and_then(Value::as_str) {
        Some(version) if version.starts_with("2.") => "2.0.0",
        _ => "1.0.3",
    }
}

/// POSTs a batch: JSON, or multipart/mixed with every attachment content
/// the export holds for it. Returns the attachment parts sent.
async fn post_batch(
    target: &Target,
    from: &Path,
    version: &str,
    batch: Vec<Value>,
) -> anyhow::Result<u64> {
    let mut parts: Vec<(String, String, Vec<u8>)> = Vec::new();
    for statement in &batch {
        for attachment in statement["attachments"].as_array().into_iter().flatten() {
            let (Some(sha2), Some(content_type)) = (
                attachment["sha2"].as_str(),
                attachment["contentType"].as_str(),
            ) else {
                continue;
            };
            if parts.iter().any(|(s, _, _)| s == sha2) {
                continue;
            }
            let file = from.join("attachments").join(sha2);
            // A fileUrl attachment was sent without content: nothing to send.
            if let Ok(bytes) = std::fs::read(&file) {
                parts.push((sha2.to_owned(), content_type.to_owned(), bytes));
            }
        }
    }
    let json = serde_json::to_vec(&batch)?;
    let response = if parts.is_empty() {
        target
            .send(|| {
                target
                    .request(reqwest::Method::POST, "/statements", version)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(json.clone())
            })
            .await?
    } else {
        let boundary = format!("lrs-handover-{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::new();
        write!(
            body,
            "--{boundary}\r\nContent-Type: application/json\r\n\r\n"
        )?;
        body.extend_from_slice(&json);
        for (sha2, content_type, bytes) in &parts {
            write!(
                body,
                "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {sha2}\r\n\r\n"
            )?;
            body.extend_from_slice(bytes);
        }
        write!(body, "\r\n--{boundary}--\r\n")?;
        target
            .send(|| {
                target
                    .request(reqwest::Method::POST, "/statements", version)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/mixed; boundary={boundary}"),
                    )
                    .body(body.clone())
            })
            .await?
    };
    let status = response.status();
    if !status.is_success() {
        let first = batch
            .first()
            .and_then(|s| s["id"].as_str())
            .unwrap_or("?")
            .to_owned();
        bail!(
            "the LRS refused the batch starting with statement {first}: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }
    Ok(parts.len() as u64)
}

/// PUTs one document. A profile needs a precondition in 1.0.3: `If-None-Match: *`;
/// when it exists already (an import run again) and is the same, that is fine.
async fn put_document(target: &Target, from: &Path, document: &DocumentLine) -> anyhow::Result<()> {
    let content = std::fs::read(from.join(&document.content))
        .with_context(|| format!("reading {}", document.content))?;
    let (path, id_param, profile) = match document.resource.as_str() {
        "state" => ("/activities/state", "stateId", false),
        "activity_profile" => ("/activities/profile", "profileId", true),
        "agent_profile" => ("/agents/profile", "profileId", true),
        other => bail!("unknown document resource {other:?}"),
    };
    let mut query: Vec<(&str, String)> = vec![(id_param, document.id.clone())];
    if let Some(activity) = &document.activity_id {
        query.push(("activityId", activity.clone()));
    }
    if let Some(agent) = &document.agent {
        query.push(("agent", agent.to_string()));
    }
    if let Some(registration) = &document.registration {
        query.push(("registration", registration.clone()));
    }
    let response = target
        .send(|| {
            let mut request = target
                .request(reqwest::Method::PUT, path, "1.0.3")
                .query(&query)
                .header(reqwest::header::CONTENT_TYPE, &document.content_type)
                .body(content.clone());
            if profile {
                request = request.header(reqwest::header::IF_NONE_MATCH, "*");
            }
            request
        })
        .await?;
    if response.status().is_success() {
        return Ok(());
    }
    if response.status() == reqwest::StatusCode::PRECONDITION_FAILED && profile {
        let existing = target
            .send(|| {
                target
                    .request(reqwest::Method::GET, path, "1.0.3")
                    .query(&query)
            })
            .await?;
        if existing.status().is_success() && existing.bytes().await? == content.as_slice() {
            return Ok(());
        }
    }
    bail!(
        "the LRS refused {} document {:?}: {} {}",
        document.resource,
        document.id,
        response.status(),
        response.text().await.unwrap_or_default()
    )
}
