//! The control socket: `<data dir>/control.sock`, a Unix socket that only
//! the data directory's owner can open (mode 0600; keep the data directory
//! itself 0700). Through it the command line asks a running server to do
//! what needs the open store, today an online backup: the server holds
//! sled's lock on the data directory, so no second process can open it.
//!
//! Whoever may use the socket may already read every file of the data
//! directory, so it adds no access the operator lacks, and no network
//! listener, credential or secret is involved.
//!
//! Protocol: the client sends one JSON line, `{"command":"backup","to":"/abs/dir"}`
//! or `{"command":"privacy","who":"cli:<user>","op":{...}}` (an erasure, a
//! retention policy, a retention run, reports: `lrs_app::privacy::ops`), or
//! `{"command":"anonymised-copy","who":...,"to":"/abs/dir","coarsen":null,
//! "keep":[...]}` (the anonymised copy, `crate::export::copy`);
//! the server answers with JSON lines, `{"progress":{"phase","done","total"}}`
//! any number of times, then `{"done":<report>}` or `{"error":"<what went
//! wrong>"}` (for bad input with `"path"` and `"rule"` beside it). A privacy
//! operation is recorded in the server's own audit trail.

use anyhow::Context;
use lrs_app::privacy::ops::{self, PrivacyOp};
use lrs_app::AppError;
use lrs_server::security::audit::Audit;
use lrs_store::audit::{AuditEntry, AuditResources};
use lrs_store::backup::{self, Progress};
use lrs_store::Store;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Listens on the control socket until the returned guard is dropped (which
/// also removes the socket file). A socket file left by a crashed server is
/// replaced: this process holds the data directory's lock, so no other
/// server can be using it.
pub fn listen(store: Arc<Store>, audit: Arc<Audit>) -> anyhow::Result<ControlSocket> {
    let path = socket_path(store.data_dir());
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(handle(store.clone(), audit.clone(), stream));
                }
                Err(error) => {
                    tracing::warn!(%error, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(ControlSocket { path, task })
}

pub struct ControlSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle(store: Arc<Store>, audit: Arc<Audit>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let request: Value = match lines.next_line().await {
        Ok(Some(line)) => match serde_json::from_str(&line) {
            Ok(value) => value,
            Err(e) => {
                let _ = send(&mut write, &json!({"error": format!("not JSON: {e}")})).await;
                return;
            }
        },
        _ => return,
    };
    match request["command"].as_str() {
        Some("backup") => {
            let Some(to) = request["to"].as_str().map(PathBuf::from) else {
                let _ = send(&mut write, &json!({"error": "backup needs \"to\""})).await;
                return;
            };
            if !to.is_absolute() {
                let _ = send(
                    &mut write,
                    &json!({"error": "\"to\" must be an absolute path"}),
                )
                .await;
                return;
            }
            run_backup(store, to, write).await;
        }
        Some("privacy") => {
            let who = request["who"].as_str().unwrap_or("cli:unknown").to_owned();
            let op = match serde_json::from_value::<PrivacyOp>(request["op"].clone()) {
                Ok(op) => op,
                Err(e) => {
                    let error = json!({"error": format!("not a privacy operation: {e}")});
                    let _ = send(&mut write, &error).await;
                    return;
                }
            };
            let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
            let job =
                tokio::spawn(
                    async move { run_privacy(&store, &audit, op, &who, progress_tx).await },
                );
            while let Some(p) = progress_rx.recv().await {
                let line =
                    json!({"progress": {"phase": p.phase, "done": p.done, "total": p.total}});
                if send(&mut write, &line).await.is_err() {
                    break;
                }
            }
            let answer = job
                .await
                .unwrap_or_else(|e| json!({"error": format!("privacy task failed: {e}")}));
            let _ = send(&mut write, &answer).await;
        }
        Some("anonymised-copy") => {
            let parsed = (|| -> Result<AnonymisedCopyRequest, String> {
                let request: AnonymisedCopyRequest =
                    serde_json::from_value(request.clone()).map_err(|e| e.to_string())?;
                if !request.to.is_absolute() {
                    return Err("\"to\" must be an absolute path".into());
                }
                Ok(request)
            })();
            match parsed {
                Ok(request) => run_anonymised_copy(store, audit, request, write).await,
                Err(e) => {
                    let error = json!({"error": format!("not an anonymised copy request: {e}")});
                    let _ = send(&mut write, &error).await;
                }
            }
        }
        other => {
            let _ = send(
                &mut write,
                &json!({"error": format!("unknown command {other:?}; known: backup, privacy, anonymised-copy")}),
            )
            .await;
        }
    }
}

/// A privacy operation on the running server's store, recorded in its audit trail.
async fn run_privacy(
    store: &Store,
    audit: &Audit,
    op: PrivacyOp,
    who: &str,
    progress: tokio::sync::mpsc::UnboundedSender<Progress>,
) -> Value {
    match ops::run(store, op, who, Some(progress)).await {
        Ok(done) => {
            if let Some((action, target)) = &done.audit {
                audit.submit(AuditEntry {
                    time_micros: lrs_core::clock::now_micros(),
                    principal: Some(who.to_owned()),
                    auth_method: Some("control_socket".to_owned()),
                    action: action.clone(),
                    resources: AuditResources {
                        target: Some(lrs_server::security::audit::bounded(target)),
                        ..Default::default()
                    },
                    ..Default::default()
                });
            }
            json!({"done": done.answer})
        }
        Err(error) => error_json(&error),
    }
}

/// An application error as the control socket answers it.
pub fn error_json(error: &AppError) -> Value {
    match error {
        AppError::Invalid(e) => json!({"error": e.message, "path": e.path, "rule": e.rule}),
        other => json!({"error": other.to_string()}),
    }
}

async fn run_backup(store: Arc<Store>, to: PathBuf, mut write: tokio::net::unix::OwnedWriteHalf) {
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    tracing::info!(to = %to.display(), "online backup started");
    let job = tokio::task::spawn_blocking(move || {
        let report = backup::backup(store.as_ref(), &to, |p| {
            let _ = progress_tx.send(p);
        })?;
        backup::record_last_backup(store.data_dir(), &report)?;
        Ok::<_, backup::BackupError>(report)
    });
    while let Some(p) = progress_rx.recv().await {
        let line = json!({"progress": {"phase": p.phase, "done": p.done, "total": p.total}});
        if send(&mut write, &line).await.is_err() {
            // The client went away; the backup still finishes.
            break;
        }
    }
    let outcome = match job.await {
        Ok(Ok(report)) => {
            tracing::info!(
                from = report.from,
                to = report.to,
                seconds = report.seconds,
                "online backup finished and verified"
            );
            json!({"done": report})
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "online backup failed");
            json!({"error": error.to_string()})
        }
        Err(join) => json!({"error": format!("backup task failed: {join}")}),
    };
    let _ = send(&mut write, &outcome).await;
}

/// What `{"command":"anonymised-copy"}` takes.
#[derive(serde::Deserialize)]
struct AnonymisedCopyRequest {
    #[serde(default)]
    who: Option<String>,
    to: PathBuf,
    #[serde(default)]
    coarsen: Option<crate::export::anonymised::Coarsen>,
    #[serde(default)]
    keep: Vec<String>,
}

/// The anonymised copy of the running server's store into a new data
/// directory, recorded in its audit trail.
async fn run_anonymised_copy(
    store: Arc<Store>,
    audit: Arc<Audit>,
    request: AnonymisedCopyRequest,
    mut write: tokio::net::unix::OwnedWriteHalf,
) {
    if let Err(error) = crate::export::ensure_empty_dir(&request.to) {
        let _ = send(&mut write, &json!({"error": error.to_string()})).await;
        return;
    }
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    tracing::info!(to = %request.to.display(), "anonymised copy started");
    let to = request.to.clone();
    let job = tokio::spawn(async move {
        crate::export::copy::export_anonymised(
            &store,
            None,
            Some(&to),
            request.coarsen,
            &request.keep,
            Arc::new(move |phase, done, total| {
                let _ = progress_tx.send(Progress { phase, done, total });
            }),
        )
        .await
    });
    while let Some(p) = progress_rx.recv().await {
        let line = json!({"progress": {"phase": p.phase, "done": p.done, "total": p.total}});
        if send(&mut write, &line).await.is_err() {
            // The client went away; the copy still finishes.
            break;
        }
    }
    let outcome = match job.await {
        Ok(Ok(summary)) => {
            audit.submit(AuditEntry {
                time_micros: lrs_core::clock::now_micros(),
                principal: Some(request.who.unwrap_or_else(|| "cli:unknown".to_owned())),
                auth_method: Some("control_socket".to_owned()),
                action: "privacy.anonymised-copy".to_owned(),
                resources: AuditResources {
                    target: Some(lrs_server::security::audit::bounded(
                        &request.to.display().to_string(),
                    )),
                    ..Default::default()
                },
                ..Default::default()
            });
            tracing::info!(statements = summary.statements, "anonymised copy finished");
            json!({"done": summary})
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "anonymised copy failed");
            json!({"error": format!("{error:#}")})
        }
        Err(join) => json!({"error": format!("anonymised copy task failed: {join}")}),
    };
    let _ = send(&mut write, &outcome).await;
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, value: &Value) -> std::io::Result<()> {
    let mut line = value.to_string();
    line.push('\n');
    write.write_all(line.as_bytes()).await
}

/// Connects to a running server's control socket, if one answers there.
pub async fn connect(data_dir: &Path) -> Option<UnixStream> {
    UnixStream::connect(socket_path(data_dir)).await.ok()
}

/// Sends `request` and hands every answer line to `on_line` until the final
/// `done` (returned) or `error` (an error).
pub async fn call(
    stream: UnixStream,
    request: &Value,
    mut on_progress: impl FnMut(&Value),
) -> anyhow::Result<Value> {
    let (read, mut write) = stream.into_split();
    let mut line = request.to_string();
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let answer: Value = serde_json::from_str(&line).context("control socket answer")?;
        if let Some(progress) = answer.get("progress") {
            on_progress(progress);
        } else if let Some(done) = answer.get("done") {
            return Ok(done.clone());
        } else if let Some(error) = answer.get("error") {
            let message = error.as_str().unwrap_or("the server reported an error");
            match (answer["path"].as_str(), answer["rule"].as_str()) {
                (Some(path), Some(rule)) => anyhow::bail!("{path}: {message} ({rule})"),
                _ => anyhow::bail!("{message}"),
            }
        }
    }
    anyhow::bail!("the server closed the control socket without an answer")
}
