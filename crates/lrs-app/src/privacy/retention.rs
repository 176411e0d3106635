//! Retention runs (requirement 6.7): as of a time, under the periods set per
//! tenant and kind of data (tenant `*`: the default), what is due is removed:
//!
//! - people whose every piece of data (statements naming them, their
//!   documents) is older than its tenant's period: their vault entry is
//!   destroyed (`PersonErasedV1`, reason retention);
//! - state and agent profile documents older than their tenant's period:
//!   deleted (`DocumentsDeletedV1`);
//! - audit segment files wholly older than the shorter of the audit-trail
//!   and credential-use periods (tenant `*`; the trail is one for all
//!   tenants): deleted, with the anchor recorded (`AuditTrailTrimmedV1`);
//! - backup keys older than the backup window: destroyed.
//!
//! A dry run lists the same and changes nothing. A real run appends one
//! report (`PrivacyReportV1`).

use super::erase::{erase_token, Erased};
use super::kinds::{is_global, kind_name, parse_kind};
use crate::error::{AppError, AppResult};
use lrs_core::events::{
    AuditTrailTrimmedV1, DocumentResourceV1, DocumentsDeletedV1, ErasureReasonV1,
    PrivacyReportTriggerV1, PrivacyReportV1, RecordCountV1, RetentionKindV1, RetentionPolicyV1,
};
use lrs_core::{Event, Token};
use lrs_projections::privacy::{KIND_DOCUMENTS, KIND_STATEMENTS};
use lrs_store::Store;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

const DAY_MICROS: i64 = 86_400_000_000;
/// Records of a segment are in time order to within a minute.
const AUDIT_SLACK_MICROS: i64 = 60_000_000;

/// The periods in force: (tenant, kind) → days; tenant `*` is the default.
#[derive(Debug, Clone, Default)]
pub struct Policies(HashMap<(String, RetentionKindV1), u32>);

impl Policies {
    pub fn load(store: &Store) -> AppResult<Self> {
        Ok(Self(
            store
                .retention_policies()?
                .into_iter()
                .map(|(tenant, kind, days)| ((tenant, kind), days))
                .collect(),
        ))
    }

    /// The period of a tenant's data of a kind: the shorter of its own and
    /// the default (a tenant may be stricter than the KB, never looser).
    pub fn days(&self, tenant: &str, kind: RetentionKindV1) -> Option<u32> {
        let own = self.0.get(&(tenant.to_owned(), kind)).copied();
        let default = self.0.get(&("*".to_owned(), kind)).copied();
        match (own, default) {
            (Some(own), Some(default)) => Some(own.min(default)),
            (own, default) => own.or(default),
        }
    }

    pub fn applied(&self) -> Vec<RetentionPolicyV1> {
        let mut all: Vec<RetentionPolicyV1> = self
            .0
            .iter()
            .map(|((tenant, kind), days)| RetentionPolicyV1 {
                tenant: tenant.clone(),
                kind: *kind,
                days: *days,
            })
            .collect();
        all.sort_by(|a, b| (&a.tenant, a.kind).cmp(&(&b.tenant, b.kind)));
        all
    }
}

/// A person due for erasure, and the period whose end made them due (the
/// last of their data to expire).
#[derive(Debug, Clone, Serialize)]
pub struct DuePerson {
    pub token: String,
    pub tenant: String,
    pub kind: &'static str,
    pub policy_days: u32,
    /// When their last data expired.
    pub expired: String,
    pub statements: u64,
    pub documents: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DueDocument {
    pub tenant: String,
    pub resource: &'static str,
    pub document_id: String,
    pub updated: String,
    pub policy_days: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DueSegment {
    pub file: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_record: String,
}

/// What a run found due, and (unless dry) did.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub as_of: String,
    pub dry_run: bool,
    pub policies: Vec<serde_json::Value>,
    pub people: Vec<DuePerson>,
    pub documents: Vec<DueDocument>,
    pub audit_segments: Vec<DueSegment>,
    /// The operations journal's month files past their period.
    pub operations_journal_files: Vec<String>,
    /// How long a backup's vault copy stays readable, days (the `backups` period).
    pub backup_window_days: u32,
    /// Backup keys older than the backup window (epochs).
    pub backup_keys: Vec<u64>,
    /// The report appended (real runs).
    pub report: Option<serde_json::Value>,
}

impl RunOutcome {
    pub fn summary(&self) -> String {
        format!(
            "{} as of {}: {} people, {} documents, {} audit segments, {} journal files, {} backup keys",
            if self.dry_run { "dry run" } else { "run" },
            self.as_of,
            self.people.len(),
            self.documents.len(),
            self.audit_segments.len(),
            self.operations_journal_files.len(),
            self.backup_keys.len()
        )
    }
}

fn time(micros: i64) -> String {
    lrs_core::statement::format_micros(micros)
}

/// The people due: every holding has a period, and the last to expire did
/// so at or before `as_of`.
fn due_people(
    store: &Store,
    policies: &Policies,
    as_of: i64,
) -> AppResult<Vec<(Token, DuePerson)>> {
    let mut by_person: BTreeMap<Token, Vec<lrs_store::retention::PersonHolding>> = BTreeMap::new();
    for holding in store.person_holdings()? {
        by_person.entry(holding.token).or_default().push(holding);
    }
    let mut due = Vec::new();
    'people: for (token, holdings) in by_person {
        let mut last: Option<(
            i64,
            &lrs_store::retention::PersonHolding,
            RetentionKindV1,
            u32,
        )> = None;
        for holding in &holdings {
            let kind = match holding.kind {
                KIND_STATEMENTS => RetentionKindV1::Statements,
                KIND_DOCUMENTS => RetentionKindV1::Documents,
                _ => continue 'people,
            };
            let Some(days) = policies.days(&holding.tenant, kind) else {
                continue 'people;
            };
            let expires = holding
                .data
                .latest_micros
                .saturating_add(i64::from(days) * DAY_MICROS);
            if expires > as_of {
                continue 'people;
            }
            if last.is_none_or(|(at, ..)| expires > at) {
                last = Some((expires, holding, kind, days));
            }
        }
        let Some((expires, holding, kind, days)) = last else {
            continue;
        };
        if is_credential_authority(store, &token)? {
            continue;
        }
        let count = |k: u8| -> u64 {
            holdings
                .iter()
                .filter(|h| h.kind == k)
                .map(|h| h.data.count)
                .sum()
        };
        due.push((
            token,
            DuePerson {
                token: token.to_hex(),
                tenant: holding.tenant.clone(),
                kind: kind_name(kind),
                policy_days: days,
                expired: time(expires),
                statements: count(KIND_STATEMENTS),
                documents: count(KIND_DOCUMENTS),
            },
        ));
    }
    Ok(due)
}

/// Whether `token` is not a person but the authority account the LRS writes
/// into the statements of one of its credentials (`{"account": {"homePage":
/// <the LRS>, "name": <credential key>}}`, lrs_app::ingest): the vault holds
/// it like any agent, and it is "inactive" once the credential stops
/// writing, but it names an API credential, not a learner, so retention
/// never erases it. Told by opening a statement that names the token.
fn is_credential_authority(store: &Store, token: &Token) -> AppResult<bool> {
    // The newest statements first: older ones may have had their subjects
    // erased already and no longer open. If none of these opens, every
    // statement naming the token is unreadable, and erasing it changes nothing.
    for position in super::erase::newest_statement_positions(store, token, 20)? {
        let Some(stored) = store.statement_at(position)? else {
            continue;
        };
        let Ok(Some(statement)) =
            lrs_core::statement::reassemble(&stored.statement, store.vault().as_ref())
        else {
            continue;
        };
        let authority = &statement["authority"];
        let Some(key) = authority["account"]["name"].as_str() else {
            return Ok(false);
        };
        return Ok(store.credential(key)?.is_some()
            && xapi::agent::ifi_of(authority).and_then(|ifi| store.vault().token_of(&ifi))
                == Some(*token));
    }
    Ok(false)
}

/// State and agent profile documents past their tenant's period, with the
/// event that deletes each.
fn due_documents(
    store: &Store,
    policies: &Policies,
    as_of: i64,
) -> AppResult<Vec<(DocumentsDeletedV1, DueDocument)>> {
    let mut due = Vec::new();
    for (_, record) in store.all_documents()? {
        let Some(entry) = store.entry(record.position)? else {
            continue;
        };
        let Event::DocumentWrittenV1(written) = entry.event else {
            continue;
        };
        if written.context.resource == DocumentResourceV1::ActivityProfile {
            continue;
        }
        let Some(days) = policies.days(&written.context.tenant, RetentionKindV1::Documents) else {
            continue;
        };
        if record
            .updated_micros
            .saturating_add(i64::from(days) * DAY_MICROS)
            > as_of
        {
            continue;
        }
        let resource = match written.context.resource {
            DocumentResourceV1::State => "state",
            DocumentResourceV1::AgentProfile => "agent_profile",
            DocumentResourceV1::ActivityProfile => "activity_profile",
        };
        due.push((
            DocumentsDeletedV1 {
                context: written.context.clone(),
                document_ids: vec![written.document_id.clone()],
                deleted_micros: lrs_core::clock::now_micros(),
            },
            DueDocument {
                tenant: written.context.tenant.clone(),
                resource,
                document_id: written.document_id.clone(),
                updated: time(record.updated_micros),
                policy_days: days,
            },
        ));
    }
    Ok(due)
}

/// The oldest audit segments wholly older than the audit period (never the
/// newest, which the writer appends to).
fn due_segments(
    store: &Store,
    policies: &Policies,
    as_of: i64,
) -> AppResult<(Vec<lrs_store::retention::AuditSegment>, Option<i64>)> {
    let days = [RetentionKindV1::AuditTrail, RetentionKindV1::CredentialUse]
        .into_iter()
        .filter_map(|kind| policies.days("*", kind))
        .min();
    let Some(days) = days else {
        return Ok((Vec::new(), None));
    };
    let cutoff = as_of - i64::from(days) * DAY_MICROS;
    let dir = store.data_dir().join(lrs_store::audit::AUDIT_DIR);
    let mut due = Vec::new();
    for segment in lrs_store::retention::audit_segments(&dir)? {
        match segment.last {
            Some((_, last_time, _)) if last_time + AUDIT_SLACK_MICROS <= cutoff => {
                due.push(segment)
            }
            _ => break,
        }
    }
    Ok((due, Some(cutoff)))
}

/// The operations journal's month files (`ops/journal-YYYY-MM.jsonl`, UTC
/// months) whose whole month ended more than the `operations_journal`
/// period before `as_of`, oldest first.
fn due_journal_files(
    store: &Store,
    policies: &Policies,
    as_of: i64,
) -> AppResult<Vec<std::path::PathBuf>> {
    let Some(days) = policies.days("*", RetentionKindV1::OperationsJournal) else {
        return Ok(Vec::new());
    };
    let cutoff = as_of - i64::from(days) * DAY_MICROS;
    let dir = store.data_dir().join("ops");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut due = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(month) = name
            .strip_prefix("journal-")
            .and_then(|n| n.strip_suffix(".jsonl"))
        else {
            continue;
        };
        let Some((year, month)) = month
            .split_once('-')
            .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
        else {
            continue;
        };
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let Some(month_end) = chrono::NaiveDate::from_ymd_opt(next_year, next_month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_micros())
        else {
            continue;
        };
        if month_end <= cutoff {
            due.push(path);
        }
    }
    due.sort();
    Ok(due)
}

/// The backup window in force: the `backups` period, else the default.
pub fn backup_window_days(policies: &Policies) -> u32 {
    policies
        .days("*", RetentionKindV1::Backups)
        .unwrap_or(lrs_store::backup::DEFAULT_WINDOW_DAYS)
}

/// Where a long run is: the phase, how many of how many. Sent to whoever
/// watches (`lrs privacy retention run` prints it); nobody may watch.
pub type ProgressSender = tokio::sync::mpsc::UnboundedSender<lrs_store::backup::Progress>;

/// One retention run as of `as_of` (µs).
pub async fn run(store: &Store, as_of: i64, dry_run: bool, who: &str) -> AppResult<RunOutcome> {
    run_watched(store, as_of, dry_run, who, None).await
}

/// [`run`], telling `progress` how far the erasures are.
pub async fn run_watched(
    store: &Store,
    as_of: i64,
    dry_run: bool,
    who: &str,
    progress: Option<ProgressSender>,
) -> AppResult<RunOutcome> {
    let policies = Policies::load(store)?;
    let people = due_people(store, &policies, as_of)?;
    let documents = due_documents(store, &policies, as_of)?;
    let (segments, audit_cutoff) = due_segments(store, &policies, as_of)?;
    let journal_files = due_journal_files(store, &policies, as_of)?;
    let privacy_dir = super::privacy_dir(store);
    let as_of_unix = as_of.div_euclid(1_000_000);
    let window_days = backup_window_days(&policies);
    let backup_keys: Vec<u64> = match lrs_store::backup::BackupKeys::open_existing(&privacy_dir)? {
        Some(keys) => {
            let cutoff = as_of_unix - i64::from(window_days) * 86_400;
            keys.epochs()
                .into_iter()
                .filter(|e| e.created_unix <= cutoff)
                .map(|e| e.epoch)
                .collect()
        }
        None => Vec::new(),
    };
    let mut outcome = RunOutcome {
        as_of: time(as_of),
        dry_run,
        policies: policies
            .applied()
            .iter()
            .map(|p| serde_json::json!({"tenant": p.tenant, "kind": kind_name(p.kind), "days": p.days}))
            .collect(),
        people: people.iter().map(|(_, p)| p.clone()).collect(),
        documents: documents.iter().map(|(_, d)| d.clone()).collect(),
        audit_segments: segments
            .iter()
            .map(|s| {
                let (last_seq, last_time, _) = s.last.expect("due segments have a last record");
                DueSegment {
                    file: s
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    first_seq: s.first_seq,
                    last_seq,
                    last_record: time(last_time),
                }
            })
            .collect(),
        operations_journal_files: journal_files
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
        backup_window_days: window_days,
        backup_keys,
        report: None,
    };
    if dry_run {
        return Ok(outcome);
    }

    // Documents first: a person's documents past retention go before the
    // person does (their content goes with the key either way).
    for (event, _) in &documents {
        store
            .append_event(Event::DocumentsDeletedV1(event.clone()))
            .await
            .map_err(|e| AppError::internal(format!("appending a document deletion: {e}")))?;
    }
    let mut total = Erased::default();
    let mut erased_people = 0u64;
    let tell = |done: usize| {
        if let Some(progress) = &progress {
            let _ = progress.send(lrs_store::backup::Progress {
                phase: "erasing people past retention",
                done: done as u64,
                total: people.len() as u64,
            });
        }
    };
    for (done, (token, due)) in people.iter().enumerate() {
        if done % 100 == 0 {
            tell(done);
        }
        let reason = ErasureReasonV1::Retention {
            tenant: due.tenant.clone(),
            kind: parse_kind(due.kind).expect("our own names"),
            policy_days: due.policy_days,
        };
        if let Some(erased) = erase_token(store, *token, reason, who).await? {
            erased_people += 1;
            total.add(&erased);
        }
    }
    tell(people.len());
    let mut audit_records = 0u64;
    if let (Some(first), Some(last), Some(cutoff)) =
        (segments.first(), segments.last(), audit_cutoff)
    {
        let (last_seq, _, anchor_hash) = last.last.expect("due segments have a last record");
        store
            .append_event(Event::AuditTrailTrimmedV1(AuditTrailTrimmedV1 {
                first_removed_seq: first.first_seq,
                last_removed_seq: last_seq,
                segments_removed: segments.len() as u32,
                anchor_hash,
                older_than_micros: cutoff,
                time_micros: lrs_core::clock::now_micros(),
                who: who.to_owned(),
            }))
            .await
            .map_err(|e| AppError::internal(format!("appending the audit trim: {e}")))?;
        let audit_dir = store.data_dir().join(lrs_store::audit::AUDIT_DIR);
        lrs_store::audit::write_anchor(&audit_dir, last_seq + 1, anchor_hash)?;
        for segment in &segments {
            std::fs::remove_file(&segment.path)?;
        }
        audit_records = last_seq + 1 - first.first_seq;
    }
    for file in &journal_files {
        std::fs::remove_file(file)?;
    }
    let mut keys_destroyed = 0u64;
    if let Some(mut keys) = lrs_store::backup::BackupKeys::open_existing(&privacy_dir)? {
        if keys.window_days() != window_days {
            keys.set_window_days(window_days)?;
        }
        keys_destroyed = keys.expire(as_of_unix)?.len() as u64;
    }
    let mut records = total.records();
    records.extend(
        [
            ("documents_past_retention", documents.len() as u64),
            ("audit_segments", segments.len() as u64),
            ("audit_records", audit_records),
            ("operations_journal_files", journal_files.len() as u64),
            ("backup_keys", keys_destroyed),
        ]
        .into_iter()
        .map(|(kind, count)| RecordCountV1 {
            kind: kind.to_owned(),
            count,
        }),
    );
    let report = PrivacyReportV1 {
        report_id: uuid::Uuid::new_v4(),
        time_micros: lrs_core::clock::now_micros(),
        trigger: PrivacyReportTriggerV1::Retention {
            as_of_micros: as_of,
            policies: policies.applied(),
        },
        people: erased_people,
        records,
        check: total.check,
        who: who.to_owned(),
    };
    store
        .append_event(Event::PrivacyReportV1(report.clone()))
        .await
        .map_err(|e| AppError::internal(format!("appending the report: {e}")))?;
    outcome.report = Some(super::report::report_json(&report));
    Ok(outcome)
}

/// Sets (or with `None` removes) a period, after checking it.
pub async fn set_policy(
    store: &Store,
    tenant: &str,
    kind: RetentionKindV1,
    days: Option<u32>,
    who: &str,
) -> Result<(), crate::error::AppError> {
    if tenant != "*" && store.tenant(tenant)?.is_none() {
        return Err(AppError::bad_request(
            "$.tenant",
            "retention.tenant",
            format!("no tenant {tenant:?} (use \"*\" for the default of every tenant)"),
        ));
    }
    if tenant != "*" && is_global(kind) {
        return Err(AppError::bad_request(
            "$.tenant",
            "retention.tenant",
            format!(
                "{} is kept once for all tenants: set its period for tenant \"*\" (the KB's default)",
                kind_name(kind)
            ),
        ));
    }
    let least = if kind == RetentionKindV1::Backups {
        2
    } else {
        1
    };
    if days.is_some_and(|d| d < least || d > 36_500) {
        return Err(AppError::bad_request(
            "$.days",
            "retention.days",
            format!(
                "a {} period is {least} to 36500 days (or null to remove it)",
                kind_name(kind)
            ),
        ));
    }
    if tenant != "*" {
        let default = Policies::load(store)?
            .0
            .get(&("*".to_owned(), kind))
            .copied();
        if let (Some(days), Some(default)) = (days, default) {
            if days > default {
                return Err(AppError::bad_request(
                    "$.days",
                    "retention.looser",
                    format!(
                        "{days} days is looser than the KB's default of {default} days for {}: a tenant may only be stricter",
                        kind_name(kind)
                    ),
                ));
            }
        }
    }
    crate::admin::append(
        store,
        Event::RetentionPolicySetV1(lrs_core::events::RetentionPolicySetV1 {
            tenant: tenant.to_owned(),
            kind,
            days,
            time_micros: lrs_core::clock::now_micros(),
            who: who.to_owned(),
        }),
    )
    .await?;
    if kind == RetentionKindV1::Backups {
        // Backups made from now on seal their vault copy for this window.
        let policies = Policies::load(store)?;
        let mut keys = lrs_store::backup::BackupKeys::open(&super::privacy_dir(store))?;
        keys.set_window_days(backup_window_days(&policies))?;
    }
    Ok(())
}

/// The periods as JSON.
pub fn policies_json(store: &Store) -> AppResult<serde_json::Value> {
    let policies: Vec<serde_json::Value> = Policies::load(store)?
        .applied()
        .iter()
        .map(|p| serde_json::json!({"tenant": p.tenant, "kind": kind_name(p.kind), "days": p.days}))
        .collect();
    Ok(serde_json::json!({ "policies": policies }))
}

/// An `--as-of` / `as_of`: RFC 3339, or a date (its start, UTC).
pub fn parse_as_of(text: &str) -> Option<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}
