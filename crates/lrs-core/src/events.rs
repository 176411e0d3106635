//! The events of the log. Every persisted shape here is frozen: a change is a
//! new variant (`...V2`) appended at the end of [`Event`] plus an upgrade
//! path, never an edit. `tests::encoding_is_frozen` fails on drift.
//!
//! Events are past-tense facts. Clear fields hold only what analytics and the
//! indexes need and no personal data: people appear as [`Token`]s, and the
//! statement itself is in [`SealedStatementV1`].

use crate::token::Token;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Place of an entry in the log: 1, 2, 3, ... without gaps.
pub type Position = u64;

/// Everything that can happen, as it is persisted. Variant order is part of
/// the encoding: append only.
// Statements dominate the log; boxing them would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    StatementStoredV1(StatementStoredV1),
    CredentialIssuedV1(CredentialIssuedV1),
    DocumentWrittenV1(DocumentWrittenV1),
    DocumentsDeletedV1(DocumentsDeletedV1),
    TenantDefinedV1(TenantDefinedV1),
    RoleDefinedV1(RoleDefinedV1),
    CredentialIssuedV2(CredentialIssuedV2),
    CredentialRotatedV1(CredentialRotatedV1),
    CredentialRevokedV1(CredentialRevokedV1),
    StatementStoredV2(StatementStoredV2),
    StatementStoredV3(StatementStoredV3),
    CourseModelDefinedV1(CourseModelDefinedV1),
    ModulesAssignedV1(ModulesAssignedV1),
    StaffAccountDefinedV1(StaffAccountDefinedV1),
    StaffAccountClosedV1(StaffAccountClosedV1),
    PersonErasedV1(PersonErasedV1),
    RetentionPolicySetV1(RetentionPolicySetV1),
    AuditTrailTrimmedV1(AuditTrailTrimmedV1),
    PrivacyReportV1(PrivacyReportV1),
    StatementStoredV4(StatementStoredV4),
    FiguresClosedV1(FiguresClosedV1),
}

impl Event {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("events always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Event::StatementStoredV1(_) => "statement_stored.v1",
            Event::CredentialIssuedV1(_) => "credential_issued.v1",
            Event::DocumentWrittenV1(_) => "document_written.v1",
            Event::DocumentsDeletedV1(_) => "documents_deleted.v1",
            Event::TenantDefinedV1(_) => "tenant_defined.v1",
            Event::RoleDefinedV1(_) => "role_defined.v1",
            Event::CredentialIssuedV2(_) => "credential_issued.v2",
            Event::CredentialRotatedV1(_) => "credential_rotated.v1",
            Event::CredentialRevokedV1(_) => "credential_revoked.v1",
            Event::StatementStoredV2(_) => "statement_stored.v2",
            Event::StatementStoredV3(_) => "statement_stored.v3",
            Event::CourseModelDefinedV1(_) => "course_model_defined.v1",
            Event::ModulesAssignedV1(_) => "modules_assigned.v1",
            Event::StaffAccountDefinedV1(_) => "staff_account_defined.v1",
            Event::StaffAccountClosedV1(_) => "staff_account_closed.v1",
            Event::PersonErasedV1(_) => "person_erased.v1",
            Event::RetentionPolicySetV1(_) => "retention_policy_set.v1",
            Event::AuditTrailTrimmedV1(_) => "audit_trail_trimmed.v1",
            Event::PrivacyReportV1(_) => "privacy_report.v1",
            Event::StatementStoredV4(_) => "statement_stored.v4",
            Event::FiguresClosedV1(_) => "figures_closed.v1",
        }
    }

    /// The stored statement of a `StatementStored` event of any version.
    pub fn stored_statement(&self) -> Option<&StatementStoredV1> {
        match self {
            Event::StatementStoredV1(stored) => Some(stored),
            Event::StatementStoredV2(v2) => Some(&v2.statement),
            Event::StatementStoredV3(v3) => Some(&v3.statement),
            Event::StatementStoredV4(v4) => Some(&v4.statement),
            _ => None,
        }
    }

    /// The origin (app, library) of a `StatementStored` event; V1 statements
    /// have none recorded.
    pub fn statement_origin(&self) -> Option<&OriginV1> {
        static NONE: OriginV1 = OriginV1 {
            app: None,
            library: None,
        };
        match self {
            Event::StatementStoredV1(_) => Some(&NONE),
            Event::StatementStoredV2(v2) => Some(&v2.origin),
            Event::StatementStoredV3(v3) => Some(&v3.origin),
            Event::StatementStoredV4(v4) => Some(&v4.origin),
            _ => None,
        }
    }

    /// The context activities of a `StatementStored` event, by kind. Before
    /// V3 the log kept them only merged (`facts.related_activities`): those
    /// statements answer `None`.
    pub fn statement_context(&self) -> Option<&ContextFactsV1> {
        match self {
            Event::StatementStoredV3(v3) => Some(&v3.context),
            Event::StatementStoredV4(v4) => Some(&v4.context),
            _ => None,
        }
    }

    /// The names a `StatementStored` event's activity definitions give
    /// (V4 on; older statements answer an empty list).
    pub fn statement_names(&self) -> &[ActivityNameV1] {
        match self {
            Event::StatementStoredV4(v4) => &v4.names,
            _ => &[],
        }
    }

    /// A `StatementStored` event of any version, upgraded to the newest
    /// shape (a V1 statement has no recorded origin).
    pub fn into_statement(self) -> Option<StatementStoredV2> {
        match self {
            Event::StatementStoredV1(statement) => Some(StatementStoredV2 {
                statement,
                origin: OriginV1::default(),
            }),
            Event::StatementStoredV2(v2) => Some(v2),
            Event::StatementStoredV3(v3) => Some(StatementStoredV2 {
                statement: v3.statement,
                origin: v3.origin,
            }),
            Event::StatementStoredV4(v4) => Some(StatementStoredV2 {
                statement: v4.statement,
                origin: v4.origin,
            }),
            _ => None,
        }
    }
}

/// A statement was accepted and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementStoredV1 {
    pub statement_id: Uuid,
    /// `stored`, microseconds since the Unix epoch, strictly increasing along the log.
    pub stored_micros: i64,
    /// The tenant of the credential that wrote it.
    pub tenant: String,
    /// The key id of the credential that wrote it (not a secret).
    pub credential_key: String,
    /// Keyed digest of the statement's comparison form, to answer "same
    /// statement again?" without decrypting (keyed, so it is no fingerprint).
    pub comparison_digest: [u8; 32],
    pub facts: StatementFactsV1,
    pub sealed: SealedStatementV1,
}

/// A statement was accepted and stored, with where it came from: the app
/// that sent it and the learner's library. Written by every store since the
/// tenants were introduced; V1 entries read as V2 with an empty origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementStoredV2 {
    pub statement: StatementStoredV1,
    pub origin: OriginV1,
}

/// Which app and which library a statement belongs to (no personal data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginV1 {
    /// The content provider app (appid): the writing app tenant's, or the
    /// appid context extension when the KB wrote it.
    pub app: Option<String>,
    /// The learner's library (ISIL), from the configured context extension,
    /// or the writing library tenant's own.
    pub library: Option<String>,
}

/// A statement was accepted and stored (V3): V2 plus its context
/// activities by kind, which the course model needs (a course is a
/// `grouping` or `parent`, a `category` is never one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementStoredV3 {
    pub statement: StatementStoredV1,
    pub origin: OriginV1,
    pub context: ContextFactsV1,
}

/// An activity named in a statement's context, with its type if the
/// statement gave one (`definition.type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityFactV1 {
    pub id: String,
    pub activity_type: Option<String>,
}

/// `context.contextActivities` of a statement, by kind, in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextFactsV1 {
    pub parent: Vec<ActivityFactV1>,
    pub grouping: Vec<ActivityFactV1>,
    pub category: Vec<ActivityFactV1>,
}

/// What the indexes and analytics know of a statement, in clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementFactsV1 {
    pub verb_id: String,
    pub object: ObjectFactV1,
    /// The actor, when it has an identifier (an anonymous group has none).
    pub actor: Option<Token>,
    /// Members of the actor or object group: the `agent` filter matches
    /// a group through its members (Communication 2.1.3).
    pub group_members: Vec<Token>,
    /// Every person in the statement: actor, object, authority, instructor,
    /// team, group members, context agents, the same in a sub-statement.
    pub related_agents: Vec<Token>,
    /// Activities in context (parent, grouping, category, other) and those of
    /// a sub-statement; the object activity is in `object`.
    pub related_activities: Vec<String>,
    pub registration: Option<Uuid>,
    /// The statement's `timestamp` (microseconds since the epoch); `None`
    /// when the client sent none, in which case it equals `stored`.
    pub timestamp_micros: Option<i64>,
    pub result: Option<ResultFactsV1>,
    pub platform: Option<String>,
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ObjectFactV1 {
    Activity {
        id: String,
        activity_type: Option<String>,
    },
    Agent {
        token: Option<Token>,
    },
    StatementRef {
        id: Uuid,
    },
    SubStatement {
        verb_id: String,
        activity_id: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultFactsV1 {
    pub success: Option<bool>,
    pub completion: Option<bool>,
    pub score_scaled: Option<f64>,
    pub score_raw: Option<f64>,
    pub score_min: Option<f64>,
    pub score_max: Option<f64>,
    /// The ISO 8601 duration as sent (the spec treats it as a string).
    pub duration: Option<String>,
}

/// A piece of personal data encrypted (XChaCha20-Poly1305) under the data
/// key of the person `token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedForPersonV1 {
    pub token: Token,
    pub nonce: [u8; 24],
    pub ciphertext: Vec<u8>,
}

/// The statement with its people cut out.
///
/// `body` is the statement skeleton (every agent replaced by a reference into
/// `persons`), encrypted under a content key that is split into XOR shares,
/// one per subject (the actor, or each member of an anonymous actor group),
/// each share sealed under that subject's key: destroying any subject's key
/// makes the body unreadable. Each person's own agent object is sealed under
/// their own key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedStatementV1 {
    pub persons: Vec<SealedForPersonV1>,
    pub subject_shares: Vec<SealedForPersonV1>,
    pub body_nonce: [u8; 24],
    pub body: Vec<u8>,
    /// Attachment contents sent with the statement, under the same content
    /// key as the body. Plaintext: postcard `(sha2, content_type, bytes)`.
    pub attachments: Vec<SealedAttachmentV1>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedAttachmentV1 {
    pub nonce: [u8; 24],
    pub ciphertext: Vec<u8>,
}

/// A Basic credential was issued. Only a hash of the secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialIssuedV1 {
    pub key: String,
    /// argon2id PHC string of the secret.
    pub secret_hash: String,
    pub name: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub issued_micros: i64,
    pub expires_micros: Option<i64>,
}

/// A tenant was defined (or its name changed). Its kind never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDefinedV1 {
    pub id: String,
    pub name: String,
    pub kind: TenantKindV1,
    pub defined_micros: i64,
}

/// What a tenant is, which decides what it may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantKindV1 {
    /// The KB: reads every tenant's statements.
    Kb,
    /// A library organisation: reads the statements of its learners (the
    /// statements whose library is its ISIL).
    Library { isil: String },
    /// A content provider app: reads what it wrote.
    App { appid: String },
}

/// A role (a named set of administrative permissions) was defined or
/// redefined; an empty set retires it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDefinedV1 {
    pub name: String,
    pub permissions: Vec<String>,
    pub defined_micros: i64,
}

/// A role granted to a credential, possibly until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrantV1 {
    pub role: String,
    pub until_micros: Option<i64>,
}

/// A credential (key and secret) was issued. Only a hash of the secret is
/// kept. Every credential has an expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialIssuedV2 {
    pub key: String,
    /// argon2id PHC string of the secret.
    pub secret_hash: String,
    pub name: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub roles: Vec<RoleGrantV1>,
    /// Networks (CIDR) the credential may be used from; empty: anywhere.
    pub allowed_networks: Vec<String>,
    pub issued_micros: i64,
    pub expires_micros: i64,
}

/// A credential got a new secret; the previous one stays valid until
/// `previous_valid_until_micros` (the grace period), then only the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRotatedV1 {
    pub key: String,
    pub secret_hash: String,
    pub rotated_micros: i64,
    pub previous_valid_until_micros: i64,
    /// The expiry after rotation.
    pub expires_micros: i64,
}

/// A credential was revoked: refused from the next request on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRevokedV1 {
    pub key: String,
    pub revoked_micros: i64,
    pub reason: String,
}

/// Which document resource a document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DocumentResourceV1 {
    State,
    ActivityProfile,
    AgentProfile,
}

/// Where a document lives: its resource and the parameters that name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DocumentContextV1 {
    pub tenant: String,
    pub resource: DocumentResourceV1,
    pub activity_id: Option<String>,
    /// The agent of a state or agent profile document, as a token.
    pub agent: Option<Token>,
    pub registration: Option<Uuid>,
}

/// A document's content: sealed under the agent's key when the document is
/// keyed by an agent (state, agent profile), else in clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DocumentContentV1 {
    Clear(Vec<u8>),
    Sealed(SealedForPersonV1),
}

/// A document was written (PUT, or POST after merging): this is its whole new content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentWrittenV1 {
    pub context: DocumentContextV1,
    pub document_id: String,
    pub content_type: String,
    /// Keyed digest of the content (hex), the document's ETag.
    pub etag: String,
    pub written_micros: i64,
    pub content: DocumentContentV1,
}

/// Documents were deleted (one, or every one in a context).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentsDeletedV1 {
    pub context: DocumentContextV1,
    pub document_ids: Vec<String>,
    pub deleted_micros: i64,
}

/// A tenant's course model was set: which activities are courses and
/// modules, and which verbs mean enrolled, started, completed and so on.
/// `model` is the JSON document of `schemas/course-model.json`, already
/// validated; it applies to statements stored after this event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseModelDefinedV1 {
    pub tenant: String,
    pub model: String,
    pub defined_micros: i64,
    /// Who set it: a credential key, `staff:<token hex>` or `cli:<user>`.
    pub by: String,
}

/// Staff set modules of a course ready for learners (`ready: true`), or took
/// that back (`ready: false`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModulesAssignedV1 {
    pub tenant: String,
    /// The library (ISIL) whose staff assigned; `None` for the KB or an app.
    pub library: Option<String>,
    pub learners: Vec<Token>,
    pub course: String,
    pub modules: Vec<String>,
    pub ready: bool,
    pub assigned_micros: i64,
    pub by: String,
}

/// A staff account (for the web pages) was created or changed. The account
/// is a person in the vault (`token`); its user name, display name, password
/// hash and TOTP secret are sealed under that person's key, so erasing the
/// token erases the account's personal data like any learner's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffAccountDefinedV1 {
    pub token: Token,
    pub tenant: String,
    pub roles: Vec<RoleGrantV1>,
    pub sealed: SealedForPersonV1,
    pub defined_micros: i64,
    pub by: String,
}

/// A staff account was closed: it can no longer log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffAccountClosedV1 {
    pub token: Token,
    pub closed_micros: i64,
    pub by: String,
}

/// A person was erased: their vault entry (token mapping and data key) is
/// destroyed, so everything sealed under their key, in the log and in every
/// copy of it, is noise. Projections drop what they held about them; the
/// anonymous facts (counters) stay. Appended before the vault slot is
/// destroyed, so a crash in between is finished on the next start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonErasedV1 {
    pub token: Token,
    pub time_micros: i64,
    pub reason: ErasureReasonV1,
    /// Who erased: a credential key, `staff:<token hex>`, `cli:<user>` or `retention`.
    pub who: String,
}

/// Why a person was erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErasureReasonV1 {
    /// On the person's request (GDPR art. 17); `request_id` is the privacy
    /// officer's case number or a generated id, never personal data.
    Request { request_id: String },
    /// Their last data within a retention period expired.
    Retention {
        tenant: String,
        kind: RetentionKindV1,
        policy_days: u32,
    },
}

/// The kinds of data a retention period applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RetentionKindV1 {
    /// Full statements with personal data (the vault entries of their people).
    Statements,
    /// State and agent profile documents.
    Documents,
    /// The audit trail's segment files.
    AuditTrail,
    /// Records of credential use (the audit records of authenticated requests).
    CredentialUse,
    /// The operations journal's monthly files (per-minute request counts; no
    /// personal data, kept for the service report). Appended after the first
    /// four: older entries decode unchanged.
    OperationsJournal,
    /// How long a backup's copy of the vault stays readable (its backup key
    /// is destroyed after this many days).
    Backups,
}

/// A tenant's retention period for one kind of data was set (`days`), or
/// removed (`None`: kept until erased on request). Tenant `*` is the default
/// for tenants without their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicySetV1 {
    pub tenant: String,
    pub kind: RetentionKindV1,
    pub days: Option<u32>,
    pub time_micros: i64,
    pub who: String,
}

/// Whole audit segment files older than a retention period were deleted.
/// The chain restarts at `first_kept_seq`, whose `prev_hash` must equal
/// `anchor_hash` (the hash of the last removed record): the anchor lets a
/// verifier check that what remains follows on from what was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditTrailTrimmedV1 {
    pub first_removed_seq: u64,
    pub last_removed_seq: u64,
    pub segments_removed: u32,
    pub anchor_hash: [u8; 32],
    /// Records at or before this time were due (µs).
    pub older_than_micros: i64,
    pub time_micros: i64,
    pub who: String,
}

/// An anonymisation report (requirement 6.6): what an erasure or a retention
/// run did and the check that the data is unreadable. No personal data:
/// counts, kinds, policies and request ids only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacyReportV1 {
    pub report_id: Uuid,
    pub time_micros: i64,
    pub trigger: PrivacyReportTriggerV1,
    /// People whose vault entry was destroyed.
    pub people: u64,
    /// Records removed or made unreadable, per kind (`statements`,
    /// `documents`, `progress_records`, `audit_records`, ...).
    pub records: Vec<RecordCountV1>,
    pub check: UnreadableCheckV1,
    pub who: String,
}

/// What caused a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrivacyReportTriggerV1 {
    /// An erasure on request.
    Erasure { request_id: String },
    /// A retention run as of a time, under these policies.
    Retention {
        as_of_micros: i64,
        policies: Vec<RetentionPolicyV1>,
    },
}

/// One retention period as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicyV1 {
    pub tenant: String,
    pub kind: RetentionKindV1,
    pub days: u32,
}

/// How many records of a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCountV1 {
    pub kind: String,
    pub count: u64,
}

/// The proof that erased data is unreadable: every sealed entry of the
/// affected people was tried with the vault after destruction; `unreadable`
/// must equal `tried`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableCheckV1 {
    pub tried: u64,
    pub unreadable: u64,
}

/// A statement was accepted and stored (V4): V3 plus the names its activity
/// definitions give (`definition.name` of the object and of the `parent`
/// and `grouping` activities), so that courses and modules can be shown by
/// name without opening sealed bodies. Only names: no description, no
/// extensions (docs/progress-and-figures.md, "Names").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementStoredV4 {
    pub statement: StatementStoredV1,
    pub origin: OriginV1,
    pub context: ContextFactsV1,
    pub names: Vec<ActivityNameV1>,
}

/// The name one activity definition in a statement gives, per language tag
/// (only Dutch and English tags, or the first other one when neither is
/// there; each name at most [`ActivityNameV1::MAX_CHARS`] characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityNameV1 {
    pub id: String,
    /// (language tag, name), in the order of the tags.
    pub names: Vec<(String, String)>,
}

impl ActivityNameV1 {
    /// The longest name kept, in characters.
    pub const MAX_CHARS: usize = 200;
}

/// A month's figures were closed (docs/progress-and-figures.md, "Closing a
/// month"): the numbers as delivered, of every scope, frozen in the log so
/// that later statements, a rebuild or a change of definitions never change
/// what was handed over. Version 1 is the first closing of the month; the
/// KB may close it again (version 2, ...) after late statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiguresClosedV1 {
    /// `YYYY-MM`, a calendar month in Dutch time.
    pub month: String,
    pub version: u32,
    pub closed_micros: i64,
    /// Who closed it: a credential key, `staff:<token hex>`, `cli:<user>`,
    /// or `auto` (the server, some days after the month ended).
    pub by: String,
    /// Why, in the closer's words (may be empty).
    pub note: String,
    /// The total (`*`), then every library (`l:ISIL`) and app (`a:APPID`)
    /// with figures or defined as a tenant, in key order.
    pub scopes: Vec<ClosedScopeV1>,
}

/// One scope's figures as closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedScopeV1 {
    /// `*`, `l:<ISIL>` or `a:<appid>`.
    pub scope: String,
    /// The tenant's name when the month was closed, if one was defined.
    pub name: Option<String>,
    pub figures: FigureCountsV1,
    pub top_started: Vec<ClosedCourseV1>,
    pub top_completed: Vec<ClosedCourseV1>,
}

/// The monthly figures of one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FigureCountsV1 {
    pub hits: u64,
    pub launches: u64,
    pub active_users: u64,
    pub enrolled_participants: u64,
    pub participants_started: u64,
    pub courses_started: u64,
    pub courses_completed: u64,
}

/// One course of a closed top 10, with its name as shown when closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedCourseV1 {
    pub course: String,
    pub name: Option<String>,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event::StatementStoredV1(StatementStoredV1 {
            statement_id: Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef),
            stored_micros: 1_700_000_000_000_000,
            tenant: "kb".into(),
            credential_key: "k1".into(),
            comparison_digest: [7; 32],
            facts: StatementFactsV1 {
                verb_id: "http://adlnet.gov/expapi/verbs/completed".into(),
                object: ObjectFactV1::Activity {
                    id: "https://x.example/a".into(),
                    activity_type: None,
                },
                actor: Some(Token([1; 16])),
                group_members: vec![],
                related_agents: vec![Token([1; 16])],
                related_activities: vec![],
                registration: None,
                timestamp_micros: Some(1_700_000_000_000_000),
                result: Some(ResultFactsV1 {
                    success: Some(true),
                    completion: None,
                    score_scaled: Some(0.5),
                    score_raw: None,
                    score_min: None,
                    score_max: None,
                    duration: Some("PT1M".into()),
                }),
                platform: None,
                language: Some("nl-NL".into()),
            },
            sealed: SealedStatementV1 {
                persons: vec![SealedForPersonV1 {
                    token: Token([1; 16]),
                    nonce: [2; 24],
                    ciphertext: vec![3, 4],
                }],
                subject_shares: vec![],
                body_nonce: [5; 24],
                body: vec![6],
                attachments: vec![SealedAttachmentV1 {
                    nonce: [8; 24],
                    ciphertext: vec![9],
                }],
            },
        })
    }

    #[test]
    fn encoding_round_trips() {
        let event = sample();
        assert_eq!(Event::decode(&event.encode()).unwrap(), event);
    }

    /// Persisted shapes are frozen: if this fails, you changed a shape that
    /// is already on disk somewhere. Add a new variant instead.
    #[test]
    fn encoding_is_frozen() {
        let digest = sha2_hex(&sample().encode());
        assert_eq!(digest, include_str!("../tests/event_v1.sha256").trim());
    }

    fn privacy_samples() -> Vec<Event> {
        vec![
            Event::PersonErasedV1(PersonErasedV1 {
                token: Token([1; 16]),
                time_micros: 1_700_000_000_000_000,
                reason: ErasureReasonV1::Request {
                    request_id: "req-1".into(),
                },
                who: "cli:root".into(),
            }),
            Event::PersonErasedV1(PersonErasedV1 {
                token: Token([2; 16]),
                time_micros: 1_700_000_000_000_001,
                reason: ErasureReasonV1::Retention {
                    tenant: "kb".into(),
                    kind: RetentionKindV1::Statements,
                    policy_days: 365,
                },
                who: "retention".into(),
            }),
            Event::RetentionPolicySetV1(RetentionPolicySetV1 {
                tenant: "*".into(),
                kind: RetentionKindV1::AuditTrail,
                days: Some(90),
                time_micros: 1_700_000_000_000_002,
                who: "k1".into(),
            }),
            Event::AuditTrailTrimmedV1(AuditTrailTrimmedV1 {
                first_removed_seq: 1,
                last_removed_seq: 40,
                segments_removed: 2,
                anchor_hash: [3; 32],
                older_than_micros: 1_690_000_000_000_000,
                time_micros: 1_700_000_000_000_003,
                who: "retention".into(),
            }),
            Event::PrivacyReportV1(PrivacyReportV1 {
                report_id: Uuid::from_u128(7),
                time_micros: 1_700_000_000_000_004,
                trigger: PrivacyReportTriggerV1::Retention {
                    as_of_micros: 1_700_000_000_000_000,
                    policies: vec![RetentionPolicyV1 {
                        tenant: "kb".into(),
                        kind: RetentionKindV1::Documents,
                        days: 30,
                    }],
                },
                people: 1,
                records: vec![RecordCountV1 {
                    kind: "statements".into(),
                    count: 3,
                }],
                check: UnreadableCheckV1 {
                    tried: 4,
                    unreadable: 4,
                },
                who: "retention".into(),
            }),
        ]
    }

    /// The privacy events' shapes are frozen too (their own digest).
    #[test]
    fn privacy_encoding_is_frozen() {
        let mut bytes = Vec::new();
        for event in privacy_samples() {
            assert_eq!(Event::decode(&event.encode()).unwrap(), event);
            bytes.extend(event.encode());
        }
        assert_eq!(
            sha2_hex(&bytes),
            include_str!("../tests/event_privacy_v1.sha256").trim()
        );
    }

    fn figures_samples() -> Vec<Event> {
        let Event::StatementStoredV1(statement) = sample() else {
            unreachable!("a V1 sample")
        };
        vec![
            Event::StatementStoredV4(StatementStoredV4 {
                statement,
                origin: OriginV1 {
                    app: Some("app-a".into()),
                    library: Some("NL-0001".into()),
                },
                context: ContextFactsV1 {
                    parent: vec![],
                    grouping: vec![ActivityFactV1 {
                        id: "https://x.example/course".into(),
                        activity_type: Some(
                            "https://w3id.org/xapi/cmi5/activitytype/course".into(),
                        ),
                    }],
                    category: vec![],
                },
                names: vec![ActivityNameV1 {
                    id: "https://x.example/course".into(),
                    names: vec![
                        ("en-US".into(), "Digital skills".into()),
                        ("nl-NL".into(), "Digitale vaardigheden".into()),
                    ],
                }],
            }),
            Event::FiguresClosedV1(FiguresClosedV1 {
                month: "2026-10".into(),
                version: 1,
                closed_micros: 1_700_000_000_000_005,
                by: "auto".into(),
                note: String::new(),
                scopes: vec![ClosedScopeV1 {
                    scope: "*".into(),
                    name: None,
                    figures: FigureCountsV1 {
                        hits: 10,
                        launches: 2,
                        active_users: 3,
                        enrolled_participants: 1,
                        participants_started: 2,
                        courses_started: 2,
                        courses_completed: 1,
                    },
                    top_started: vec![ClosedCourseV1 {
                        course: "https://x.example/course".into(),
                        name: Some("Digitale vaardigheden".into()),
                        count: 2,
                    }],
                    top_completed: vec![],
                }],
            }),
        ]
    }

    /// The shapes of issue 20 (names in statements, closed months) are
    /// frozen too (their own digest).
    #[test]
    fn figures_encoding_is_frozen() {
        let mut bytes = Vec::new();
        for event in figures_samples() {
            assert_eq!(Event::decode(&event.encode()).unwrap(), event);
            bytes.extend(event.encode());
        }
        assert_eq!(
            sha2_hex(&bytes),
            include_str!("../tests/event_figures_v1.sha256").trim()
        );
    }

    fn sha2_hex(bytes: &[u8]) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
