//! Reads of the `privacy` read model (projections/src/privacy.rs) and of a
//! person's documents, for erasure, access requests and retention runs; and
//! the audit trail's segment files as retention sees them (whole files,
//! removed by time; docs/privacy.md).

use crate::store::Store;
use crate::StoreError;
use lrs_core::events::RetentionKindV1;
use lrs_core::token::Token;
use lrs_projections::documents::{self, DocumentRef};
use lrs_projections::privacy::{
    self, AuditAnchor, ErasedRecord, PersonData, ReportRef, ANCHORS, ERASED, PEOPLE, POLICIES,
    REPORTS,
};
use std::path::{Path, PathBuf};
use uuid::Uuid;

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// One person's data of one kind in one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonHolding {
    pub token: Token,
    /// [`privacy::KIND_STATEMENTS`] or [`privacy::KIND_DOCUMENTS`].
    pub kind: u8,
    pub tenant: String,
    pub data: PersonData,
}

impl Store {
    /// Every person erased, with where the log says so.
    pub fn erased_people(&self) -> Result<Vec<(Token, ErasedRecord)>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(ERASED).iter() {
            let (key, value) = item?;
            let token = Token(
                key.as_ref()
                    .try_into()
                    .map_err(|e| corrupt("erased key", e))?,
            );
            found.push((
                token,
                postcard::from_bytes(&value).map_err(|e| corrupt("erased record", e))?,
            ));
        }
        Ok(found)
    }

    /// Whether the log says this person was erased.
    pub fn is_erased(&self, token: &Token) -> Result<bool, StoreError> {
        Ok(self.shared.tree(ERASED).get(token.0)?.is_some())
    }

    /// What every (not erased) person holds, per kind and tenant, in token order.
    pub fn person_holdings(&self) -> Result<Vec<PersonHolding>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(PEOPLE).iter() {
            let (key, value) = item?;
            let (token, kind, tenant) = privacy::decode_people_key(&key)
                .ok_or_else(|| corrupt("people key", "malformed"))?;
            found.push(PersonHolding {
                token,
                kind,
                tenant,
                data: postcard::from_bytes(&value).map_err(|e| corrupt("person data", e))?,
            });
        }
        Ok(found)
    }

    /// One person's holdings.
    pub fn holdings_of(&self, token: &Token) -> Result<Vec<PersonHolding>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(PEOPLE).scan_prefix(token.0) {
            let (key, value) = item?;
            let (token, kind, tenant) = privacy::decode_people_key(&key)
                .ok_or_else(|| corrupt("people key", "malformed"))?;
            found.push(PersonHolding {
                token,
                kind,
                tenant,
                data: postcard::from_bytes(&value).map_err(|e| corrupt("person data", e))?,
            });
        }
        Ok(found)
    }

    /// Every retention period set: (tenant, kind, days).
    pub fn retention_policies(&self) -> Result<Vec<(String, RetentionKindV1, u32)>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(POLICIES).iter() {
            let (key, value) = item?;
            let (tenant, kind) = privacy::decode_policy_key(&key)
                .ok_or_else(|| corrupt("policy key", "malformed"))?;
            let days = u32::from_be_bytes(
                value
                    .as_ref()
                    .try_into()
                    .map_err(|e| corrupt("policy days", e))?,
            );
            found.push((tenant, kind, days));
        }
        Ok(found)
    }

    /// Every anonymisation report: (id, where), oldest first.
    pub fn privacy_reports(&self) -> Result<Vec<(Uuid, ReportRef)>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(REPORTS).iter() {
            let (key, value) = item?;
            let id = Uuid::from_slice(&key).map_err(|e| corrupt("report id", e))?;
            let at: ReportRef =
                postcard::from_bytes(&value).map_err(|e| corrupt("report ref", e))?;
            found.push((id, at));
        }
        found.sort_by_key(|(id, at)| (at.position, *id));
        Ok(found)
    }

    pub fn privacy_report(&self, id: &Uuid) -> Result<Option<ReportRef>, StoreError> {
        match self.shared.tree(REPORTS).get(id.as_bytes())? {
            Some(value) => Ok(Some(
                postcard::from_bytes(&value).map_err(|e| corrupt("report ref", e))?,
            )),
            None => Ok(None),
        }
    }

    /// The latest audit anchor the log records, if the trail was ever trimmed.
    pub fn audit_anchor(&self) -> Result<Option<AuditAnchor>, StoreError> {
        match self.shared.tree(ANCHORS).iter().next_back() {
            Some(item) => {
                let (_, value) = item?;
                Ok(Some(
                    postcard::from_bytes(&value).map_err(|e| corrupt("audit anchor", e))?,
                ))
            }
            None => Ok(None),
        }
    }

    /// The current documents of one person (state and agent profile):
    /// (document key, record).
    pub fn documents_of(&self, token: &Token) -> Result<Vec<(Vec<u8>, DocumentRef)>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(documents::BY_AGENT).scan_prefix(token.0) {
            let (key, _) = item?;
            let document_key = key[16..].to_vec();
            if let Some(record) = self.document(&document_key)? {
                found.push((document_key, record));
            }
        }
        Ok(found)
    }

    /// Every current document: (document key, record), in key order.
    pub fn all_documents(&self) -> Result<Vec<(Vec<u8>, DocumentRef)>, StoreError> {
        let mut found = Vec::new();
        for item in self.shared.tree(documents::BY_KEY).iter() {
            let (key, value) = item?;
            found.push((
                key.to_vec(),
                postcard::from_bytes(&value).map_err(|e| corrupt("document record", e))?,
            ));
        }
        Ok(found)
    }
}

/// An audit segment file as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSegment {
    pub path: PathBuf,
    pub first_seq: u64,
    /// The last record's sequence number, time and hash; `None` for the
    /// newest segment (the writer's, never removed) or an empty one.
    pub last: Option<(u64, i64, [u8; 32])>,
}

/// The audit trail's segment files, oldest first. Every segment but the
/// newest ends where the next one begins; its last record is read for its
/// time and hash (the anchor if the segment is removed).
pub fn audit_segments(audit_dir: &Path) -> Result<Vec<AuditSegment>, StoreError> {
    let mut firsts = Vec::new();
    let entries = match std::fs::read_dir(audit_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".audit")) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(seq) = stem.parse::<u64>() {
                firsts.push((seq, entry.path()));
            }
        }
    }
    firsts.sort();
    let mut segments = Vec::with_capacity(firsts.len());
    for (index, (first_seq, path)) in firsts.iter().enumerate() {
        let last = match firsts.get(index + 1) {
            Some((next_first, _)) if *next_first > *first_seq => {
                let wanted = next_first - 1;
                let query = crate::audit::AuditQuery {
                    after: wanted - 1,
                    ..Default::default()
                };
                let page = crate::audit::read(audit_dir, &query, 1)?;
                page.records
                    .first()
                    .filter(|r| r.seq == wanted)
                    .map(|r| (r.seq, r.entry.time_micros, r.hash))
            }
            _ => None,
        };
        segments.push(AuditSegment {
            path: path.clone(),
            first_seq: *first_seq,
            last,
        });
    }
    Ok(segments)
}

/// The first record of the trail as it is now: (sequence number, previous
/// hash), to compare with the log's latest anchor.
pub fn audit_first_record(audit_dir: &Path) -> Result<Option<(u64, [u8; 32])>, StoreError> {
    let page = crate::audit::read(audit_dir, &crate::audit::AuditQuery::default(), 1)?;
    Ok(page.records.first().map(|r| (r.seq, r.prev_hash)))
}
