//! The single writer: group commit. Requests queue on a channel; the writer
//! takes everything queued, checks conflicts, appends the whole group to the
//! log, folds it into the projections, makes it durable with one flush
//! (after syncing any new vault entries), and only then answers each request.

use crate::error::StoreError;
use crate::log::{Head, Log};
use crate::projector::{apply_projections, rebuild_all, Pending, Shared};
use lrs_core::events::{
    ActivityNameV1, ContextFactsV1, OriginV1, SealedStatementV1, StatementFactsV1,
    StatementStoredV1, StatementStoredV4,
};
use lrs_core::{Event, Position};
use lrs_projections::documents::{self, document_key};
use lrs_projections::statement_index::{by_id_key, decode_by_id, tenant_hash, BY_ID};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// A statement ready for the log: validated, sealed, facts extracted.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    pub statement_id: Uuid,
    pub comparison_digest: [u8; 32],
    pub facts: StatementFactsV1,
    pub sealed: SealedStatementV1,
    /// The app and the learner's library.
    pub origin: OriginV1,
    /// The context activities by kind (for the course model).
    pub context: ContextFactsV1,
    /// The names its activity definitions give (`lrs_core::facts::extract_names`).
    pub names: Vec<ActivityNameV1>,
}

/// Makes an event from the read models exactly as they are at the log's
/// head (`Store::append_derived`); `None`: nothing to append.
pub type Derive = Box<dyn FnOnce() -> Option<Event> + Send>;

/// What a document write expects of the document's current state
/// (HTTP If-Match / If-None-Match, and read-merge-write for POST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentExpectation {
    /// No condition.
    Any,
    /// The document must not exist.
    Absent,
    /// The document must exist with this ETag.
    Etag(String),
    /// The document must be exactly as read: this ETag, or absent.
    Unchanged(Option<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// A document's current state is not what the request expected.
    #[error("the document changed or does not match the precondition")]
    Precondition { exists: bool },
    /// A statement with this id exists (for this tenant) and differs.
    #[error("statement {0} already exists with different content")]
    Conflict(Uuid),
    /// The same id twice in one request, with different content.
    #[error("statement id {0} appears twice in one request with different content")]
    DuplicateInRequest(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) enum Request {
    Statements {
        tenant: String,
        credential_key: String,
        statements: Vec<PreparedStatement>,
        reply: oneshot::Sender<Result<Vec<Position>, AppendError>>,
    },
    Event {
        event: Box<Event>,
        reply: oneshot::Sender<Result<Position, AppendError>>,
    },
    /// A document write or delete, appended only if `expect` holds.
    Document {
        event: Box<Event>,
        expect: DocumentExpectation,
        reply: oneshot::Sender<Result<Position, AppendError>>,
    },
    /// An event made on the writer thread from the read models at the head,
    /// with no group in flight: what it read is exactly the state at the
    /// position before its own.
    Derived {
        derive: Derive,
        reply: oneshot::Sender<Result<Option<Position>, AppendError>>,
    },
    /// Answer everything before this, then stop.
    Shutdown(oneshot::Sender<()>),
    /// Drop every projection and fold the whole log again (no appends meanwhile).
    Rebuild(oneshot::Sender<Result<(), StoreError>>),
}

const MAX_GROUP_EVENTS: usize = 20_000;

pub(crate) fn run(
    shared: Arc<Shared>,
    log: Arc<Log>,
    mut head: Head,
    mut requests: mpsc::Receiver<Request>,
) {
    let mut last_stored = shared.last_stored_micros.load(Ordering::SeqCst);
    let mut shutdown = None;
    let mut derived = None;
    while let Some(first) = requests.blocking_recv() {
        let mut group = Vec::new();
        let mut queued = 0;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            if let Request::Shutdown(reply) = request {
                shutdown = Some(reply);
                break;
            }
            if let Request::Derived { derive, reply } = request {
                derived = Some((derive, reply));
                break;
            }
            if let Request::Rebuild(reply) = request {
                let _ = reply.send(rebuild_all(&shared, &log, head));
                break;
            }
            queued += group_size(&request);
            group.push(request);
            if queued >= MAX_GROUP_EVENTS {
                break;
            }
            next = requests.try_recv().ok();
        }
        commit_and_answer(&shared, &log, &mut head, &mut last_stored, group);
        // After the group before it is committed: the derivation reads the
        // read models at the head, and its event goes right after.
        if let Some((derive, reply)) = derived.take() {
            match derive() {
                Some(event) => {
                    let (event_reply, answer) = oneshot::channel();
                    let group = vec![Request::Event {
                        event: Box::new(event),
                        reply: event_reply,
                    }];
                    commit_and_answer(&shared, &log, &mut head, &mut last_stored, group);
                    let _ = reply.send(
                        answer
                            .blocking_recv()
                            .unwrap_or(Err(AppendError::Store(StoreError::Closed)))
                            .map(Some),
                    );
                }
                None => {
                    let _ = reply.send(Ok(None));
                }
            }
        }
        if let Some(reply) = shutdown.take() {
            let _ = reply.send(());
            break;
        }
    }
    tracing::info!(position = head.position, "log writer stopped");
}

/// Commits one group and answers each of its requests.
fn commit_and_answer(
    shared: &Shared,
    log: &Log,
    head: &mut Head,
    last_stored: &mut i64,
    group: Vec<Request>,
) {
    if group.is_empty() {
        return;
    }
    shared.writing.store(true, Ordering::SeqCst);
    match commit_group(shared, log, head, last_stored, group) {
        Ok(replies) => {
            shared
                .last_stored_micros
                .store(*last_stored, Ordering::SeqCst);
            shared.head.send_replace(head.position);
            for reply in replies {
                reply.send();
            }
        }
        Err((error, replies)) => {
            tracing::error!(%error, "group commit failed; requests answered with an error");
            for reply in replies {
                reply.fail(&error);
            }
        }
    }
    shared.writing.store(false, Ordering::SeqCst);
}

fn group_size(request: &Request) -> usize {
    match request {
        Request::Statements { statements, .. } => statements.len().max(1),
        Request::Event { .. }
        | Request::Document { .. }
        | Request::Derived { .. }
        | Request::Shutdown(_)
        | Request::Rebuild(_) => 1,
    }
}

enum Reply {
    Statements(
        oneshot::Sender<Result<Vec<Position>, AppendError>>,
        Result<Vec<Position>, AppendError>,
    ),
    Event(oneshot::Sender<Result<Position, AppendError>>, Position),
    Refused(oneshot::Sender<Result<Position, AppendError>>, AppendError),
}

impl Reply {
    fn send(self) {
        match self {
            Reply::Statements(tx, result) => {
                let _ = tx.send(result);
            }
            Reply::Event(tx, position) => {
                let _ = tx.send(Ok(position));
            }
            Reply::Refused(tx, error) => {
                let _ = tx.send(Err(error));
            }
        }
    }

    fn fail(self, error: &StoreError) {
        let error = || {
            AppendError::Store(if error.is_storage_full() {
                StoreError::StorageFull(error.to_string())
            } else {
                StoreError::Corrupt(format!("write failed: {error}"))
            })
        };
        match self {
            Reply::Statements(tx, _) => {
                let _ = tx.send(Err(error()));
            }
            Reply::Event(tx, _) | Reply::Refused(tx, _) => {
                let _ = tx.send(Err(error()));
            }
        }
    }
}

use lrs_core::clock::now_micros;

#[allow(clippy::type_complexity)]
fn commit_group(
    shared: &Shared,
    log: &Log,
    head: &mut Head,
    last_stored: &mut i64,
    group: Vec<Request>,
) -> Result<Vec<Reply>, (StoreError, Vec<Reply>)> {
    let started = std::time::Instant::now();
    let mut events = Vec::new();
    let mut replies = Vec::with_capacity(group.len());
    // Ids appended earlier in this group: (tenant, id) -> (position, digest).
    let mut in_group: HashMap<([u8; 8], Uuid), (Position, [u8; 32])> = HashMap::new();
    // Documents written or deleted earlier in this group: key -> ETag (None: gone).
    let mut documents_in_group: HashMap<Vec<u8>, Option<String>> = HashMap::new();

    for request in group {
        match request {
            Request::Shutdown(_) | Request::Rebuild(_) | Request::Derived { .. } => {
                unreachable!("control requests never join a group")
            }
            Request::Event { event, reply } => {
                events.push(*event);
                replies.push(Reply::Event(reply, head.position + events.len() as u64));
            }
            Request::Document {
                event,
                expect,
                reply,
            } => {
                let key = match event.as_ref() {
                    Event::DocumentWrittenV1(written) => {
                        Some(document_key(&written.context, &written.document_id))
                    }
                    Event::DocumentsDeletedV1(deleted) if deleted.document_ids.len() == 1 => {
                        Some(document_key(&deleted.context, &deleted.document_ids[0]))
                    }
                    _ => None,
                };
                let current = match &key {
                    Some(key) => match documents_in_group.get(key) {
                        Some(etag) => etag.clone(),
                        None => match current_etag(shared, key) {
                            Ok(etag) => etag,
                            Err(error) => {
                                replies.push(Reply::Refused(reply, AppendError::Store(error)));
                                continue;
                            }
                        },
                    },
                    None => None,
                };
                let holds = match &expect {
                    DocumentExpectation::Any => true,
                    DocumentExpectation::Absent => current.is_none(),
                    DocumentExpectation::Etag(etag) => current.as_deref() == Some(etag.as_str()),
                    DocumentExpectation::Unchanged(etag) => current == *etag,
                };
                if !holds {
                    replies.push(Reply::Refused(
                        reply,
                        AppendError::Precondition {
                            exists: current.is_some(),
                        },
                    ));
                    continue;
                }
                match event.as_ref() {
                    Event::DocumentWrittenV1(written) => {
                        documents_in_group.insert(
                            document_key(&written.context, &written.document_id),
                            Some(written.etag.clone()),
                        );
                    }
                    Event::DocumentsDeletedV1(deleted) => {
                        for id in &deleted.document_ids {
                            documents_in_group.insert(document_key(&deleted.context, id), None);
                        }
                    }
                    _ => {}
                }
                events.push(*event);
                replies.push(Reply::Event(reply, head.position + events.len() as u64));
            }
            Request::Statements {
                tenant,
                credential_key,
                statements,
                reply,
            } => {
                let tenant_key = tenant_hash(&tenant);
                let mut outcome: Vec<Position> = Vec::with_capacity(statements.len());
                let mut fresh: Vec<PreparedStatement> = Vec::new();
                let mut in_request: HashMap<Uuid, [u8; 32]> = HashMap::new();
                let mut failure = None;
                for statement in statements {
                    if let Some(digest) = in_request.get(&statement.statement_id) {
                        if *digest != statement.comparison_digest {
                            failure = Some(AppendError::DuplicateInRequest(statement.statement_id));
                            break;
                        }
                        continue;
                    }
                    in_request.insert(statement.statement_id, statement.comparison_digest);
                    let existing = match in_group.get(&(tenant_key, statement.statement_id)) {
                        Some(found) => Some(*found),
                        None => match existing_statement(
                            shared.trees(),
                            log,
                            &tenant_key,
                            &statement.statement_id,
                        ) {
                            Ok(found) => found,
                            Err(error) => {
                                failure = Some(AppendError::Store(error));
                                break;
                            }
                        },
                    };
                    match existing {
                        Some((_, digest)) if digest != statement.comparison_digest => {
                            failure = Some(AppendError::Conflict(statement.statement_id));
                            break;
                        }
                        Some((position, _)) => outcome.push(position),
                        None => {
                            outcome.push(0);
                            fresh.push(statement);
                        }
                    }
                }
                if let Some(error) = failure {
                    replies.push(Reply::Statements(reply, Err(error)));
                    continue;
                }
                let mut fresh_positions = Vec::with_capacity(fresh.len());
                for statement in fresh {
                    let position = head.position + events.len() as u64 + 1;
                    *last_stored = (*last_stored + 1).max(now_micros());
                    in_group.insert(
                        (tenant_key, statement.statement_id),
                        (position, statement.comparison_digest),
                    );
                    fresh_positions.push(position);
                    events.push(Event::StatementStoredV4(StatementStoredV4 {
                        statement: StatementStoredV1 {
                            statement_id: statement.statement_id,
                            stored_micros: *last_stored,
                            tenant: tenant.clone(),
                            credential_key: credential_key.clone(),
                            comparison_digest: statement.comparison_digest,
                            facts: statement.facts,
                            sealed: statement.sealed,
                        },
                        origin: statement.origin,
                        context: statement.context,
                        names: statement.names,
                    }));
                }
                let mut fresh_positions = fresh_positions.into_iter();
                for slot in outcome.iter_mut().filter(|p| **p == 0) {
                    *slot = fresh_positions
                        .next()
                        .expect("one position per fresh statement");
                }
                replies.push(Reply::Statements(reply, Ok(outcome)));
            }
        }
    }
    let first_position = head.position + 1;
    if events.is_empty() {
        return Ok(replies);
    }
    let mut sync = std::time::Duration::ZERO;
    let result = (|| {
        // New people must be durable before any entry that names them.
        let syncing = std::time::Instant::now();
        shared.vault.sync()?;
        sync += syncing.elapsed();
        let mut batch = sled::Batch::default();
        let new_head = log.prepare(*head, &events, &mut batch);
        log.apply(batch)?;
        let mut pending = Pending::new(shared.trees());
        for (offset, event) in events.iter().enumerate() {
            apply_projections(
                shared,
                log,
                first_position + offset as u64,
                event,
                &mut pending,
            )?;
        }
        shared.commit(&mut pending, new_head.position, None)?;
        let syncing = std::time::Instant::now();
        shared.make_durable()?;
        sync += syncing.elapsed();
        Ok(new_head)
    })();
    match result {
        Ok(new_head) => {
            shared
                .commits
                .add(events.len() as u64, started.elapsed(), sync);
            let statements = events
                .iter()
                .filter(|e| e.stored_statement().is_some())
                .count();
            shared
                .statements_appended
                .fetch_add(statements as u64, std::sync::atomic::Ordering::SeqCst);
            *head = new_head;
            Ok(replies)
        }
        Err(error) => Err((error, replies)),
    }
}

fn current_etag(shared: &Shared, key: &[u8]) -> Result<Option<String>, StoreError> {
    Ok(match shared.tree(documents::BY_KEY).get(key)? {
        Some(bytes) => Some(
            postcard::from_bytes::<documents::DocumentRef>(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("document record: {e}")))?
                .etag,
        ),
        None => None,
    })
}

fn existing_statement(
    trees: &crate::projector::Trees,
    log: &Log,
    tenant: &[u8; 8],
    statement_id: &Uuid,
) -> Result<Option<(Position, [u8; 32])>, StoreError> {
    use lrs_projections::ReadModel;
    let Some(value) = trees.get(BY_ID, &by_id_key(statement_id, tenant)) else {
        return Ok(None);
    };
    let (position, _) =
        decode_by_id(&value).ok_or_else(|| StoreError::Corrupt("by_id value".into()))?;
    match log.get(position)? {
        Some(entry) => match entry.event.stored_statement() {
            Some(stored) => Ok(Some((position, stored.comparison_digest))),
            None => Err(StoreError::Corrupt(format!(
                "by_id points at {position}, which is not a statement"
            ))),
        },
        None => Err(StoreError::Corrupt(format!(
            "by_id points at missing entry {position}"
        ))),
    }
}
