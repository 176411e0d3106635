//! Erasing one person: what they hold is counted, `PersonErasedV1` is
//! appended (durable), the vault slot destroyed and the token registered
//! for restores of older backups; then every sealed entry of theirs is
//! tried with the vault, and each must fail to open (the report's check).

use crate::error::{AppError, AppResult};
use lrs_core::events::{
    DocumentContentV1, ErasureReasonV1, PersonErasedV1, PrivacyReportTriggerV1, PrivacyReportV1,
    RecordCountV1, UnreadableCheckV1,
};
use lrs_core::{Event, Position, Token};
use lrs_projections::statement_index::TermKind;
use lrs_store::{Scope, StatementQuery, Store};

/// What erasing one person touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    pub statements: u64,
    pub documents: u64,
    pub progress_records: u64,
    pub assignments: u64,
    pub check: UnreadableCheckV1,
}

impl Erased {
    pub fn add(&mut self, other: &Erased) {
        self.statements += other.statements;
        self.documents += other.documents;
        self.progress_records += other.progress_records;
        self.assignments += other.assignments;
        self.check.tried += other.check.tried;
        self.check.unreadable += other.check.unreadable;
    }

    pub fn records(&self) -> Vec<RecordCountV1> {
        [
            ("statements", self.statements),
            ("documents", self.documents),
            ("progress_records", self.progress_records),
            ("assignments", self.assignments),
        ]
        .into_iter()
        .map(|(kind, count)| RecordCountV1 {
            kind: kind.to_owned(),
            count,
        })
        .collect()
    }
}

/// The newest log positions (at most `limit`) of statements that name the
/// person (any role), newest first.
pub fn newest_statement_positions(
    store: &Store,
    token: &Token,
    limit: usize,
) -> AppResult<Vec<Position>> {
    let page = store.query_statements(&StatementQuery {
        scope: Scope::All,
        terms: vec![(TermKind::RelatedAgent, token.0)],
        since_micros: None,
        until_micros: None,
        ascending: false,
        limit,
        after: None,
        ceiling: store.head(),
    })?;
    Ok(page.positions)
}

/// Every log position of a statement that names the person (any role),
/// in log order: those the index finds, and the voided ones, which have
/// left the index (`Store::voided_positions`) but still hold the person
/// sealed in the log.
pub fn statement_positions(store: &Store, token: &Token) -> AppResult<Vec<Position>> {
    let mut positions = indexed_statement_positions(store, token)?;
    for position in store.voided_positions()? {
        if store
            .statement_at(position)?
            .is_some_and(|v2| v2.statement.facts.related_agents.contains(token))
        {
            positions.push(position);
        }
    }
    positions.sort_unstable();
    positions.dedup();
    Ok(positions)
}

/// The positions the index finds for the person (no voided statement).
fn indexed_statement_positions(store: &Store, token: &Token) -> AppResult<Vec<Position>> {
    let mut positions = Vec::new();
    let ceiling = store.head();
    let mut after = None;
    loop {
        let page = store.query_statements(&StatementQuery {
            scope: Scope::All,
            terms: vec![(TermKind::RelatedAgent, token.0)],
            since_micros: None,
            until_micros: None,
            ascending: true,
            limit: 10_000,
            after,
            ceiling,
        })?;
        positions.extend(&page.positions);
        match page.more {
            Some(more) => after = Some(more),
            None => return Ok(positions),
        }
    }
}

/// Erases one person (the token of a live vault entry, or one the log
/// knows but not yet as erased). Idempotent: a person already erased is
/// not erased again (`None`).
pub async fn erase_token(
    store: &Store,
    token: Token,
    reason: ErasureReasonV1,
    who: &str,
) -> AppResult<Option<Erased>> {
    if store.is_erased(&token)? {
        // The log says so already; finish the vault side if a stop interrupted it.
        store.vault().destroy(&token)?;
        return Ok(None);
    }
    // The statements that name them: a query's answer also holds the
    // statements that refer to theirs (a voiding by someone else), which
    // hold nothing of them.
    let mut statements = Vec::new();
    for position in statement_positions(store, &token)? {
        if store
            .statement_at(position)?
            .is_some_and(|v2| v2.statement.facts.related_agents.contains(&token))
        {
            statements.push(position);
        }
    }
    let documents: Vec<Position> = store
        .documents_of(&token)?
        .into_iter()
        .map(|(_, record)| record.position)
        .collect();
    let mut erased = Erased {
        statements: statements.len() as u64,
        documents: documents.len() as u64,
        progress_records: store.progress_records(&token, None)?.len() as u64,
        assignments: store.assignments(&token)?.len() as u64,
        ..Default::default()
    };
    // The fact first (durable), then the key: a crash in between leaves a
    // log that says erased, and the next start destroys the slot.
    store
        .append_event(Event::PersonErasedV1(PersonErasedV1 {
            token,
            time_micros: lrs_core::clock::now_micros(),
            reason,
            who: who.to_owned(),
        }))
        .await
        .map_err(|e| AppError::internal(format!("appending the erasure: {e}")))?;
    store.vault().destroy(&token)?;
    lrs_store::backup::register_erased(&super::privacy_dir(store), &[token])?;
    erased.check = check_unreadable(store, &token, statements.iter().chain(&documents))?;
    Ok(Some(erased))
}

/// Tries to open every piece sealed under the person's key at these
/// positions: their agent objects and content-key shares in statements,
/// their documents' contents. Counts the tries and the failures.
pub fn check_unreadable<'a>(
    store: &Store,
    token: &Token,
    positions: impl Iterator<Item = &'a Position>,
) -> AppResult<UnreadableCheckV1> {
    let mut check = UnreadableCheckV1::default();
    let vault = store.vault().as_ref();
    let mut try_open = |sealed: &lrs_core::events::SealedForPersonV1| {
        if sealed.token == *token {
            check.tried += 1;
            match lrs_core::envelope::open_sealed_bytes(sealed, vault) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => check.unreadable += 1,
            }
        }
    };
    for position in positions {
        let Some(entry) = store.entry(*position)? else {
            continue;
        };
        match &entry.event {
            Event::DocumentWrittenV1(written) => {
                if let DocumentContentV1::Sealed(sealed) = &written.content {
                    try_open(sealed);
                }
            }
            event => {
                if let Some(stored) = event.stored_statement() {
                    for sealed in stored
                        .sealed
                        .persons
                        .iter()
                        .chain(&stored.sealed.subject_shares)
                    {
                        try_open(sealed);
                    }
                }
            }
        }
    }
    Ok(check)
}

/// Erasure on request: finds the person by identifier, erases them and
/// appends the report. A person the vault does not know (never seen, or
/// erased before: a destroyed slot no longer answers to the identifier) is
/// refused as bad input naming `$.agent`, and nothing is written.
pub async fn erase_on_request(
    store: &Store,
    ifi: &xapi::Ifi,
    request_id: &str,
    who: &str,
) -> AppResult<PrivacyReportV1> {
    check_request_id(request_id)?;
    let mut total = Erased::default();
    let mut people = 0;
    let Some(token) = store.vault().token_of(ifi) else {
        return Err(AppError::bad_request(
            "$.agent",
            "privacy.unknown-agent",
            "no person with this identifier is known here (never seen, or already erased)",
        ));
    };
    {
        if let Some(erased) = erase_token(
            store,
            token,
            ErasureReasonV1::Request {
                request_id: request_id.to_owned(),
            },
            who,
        )
        .await?
        {
            people += 1;
            total.add(&erased);
        }
    }
    let report = PrivacyReportV1 {
        report_id: uuid::Uuid::new_v4(),
        time_micros: lrs_core::clock::now_micros(),
        trigger: PrivacyReportTriggerV1::Erasure {
            request_id: request_id.to_owned(),
        },
        people,
        records: total.records(),
        check: total.check,
        who: who.to_owned(),
    };
    store
        .append_event(Event::PrivacyReportV1(report.clone()))
        .await
        .map_err(|e| AppError::internal(format!("appending the report: {e}")))?;
    Ok(report)
}

/// A request id when the caller gave none: a fresh one, no personal data.
pub fn generated_request_id() -> String {
    format!("erasure-{}", uuid::Uuid::new_v4())
}

/// A request id as given: 1 to 100 printable characters (a case number,
/// never the person's name or address: it goes into the log in clear).
pub fn check_request_id(id: &str) -> Result<(), crate::error::AppError> {
    if (1..=100).contains(&id.chars().count())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/#".contains(c))
        && !id.contains('@')
    {
        Ok(())
    } else {
        Err(crate::error::AppError::bad_request(
            "$.request_id",
            "privacy.request_id",
            "a request id is 1 to 100 letters, digits, '-', '_', '.', ':', '/' or '#' (a case number; never personal data)",
        ))
    }
}
