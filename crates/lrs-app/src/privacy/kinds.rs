//! The kinds (data classes) a retention period applies to, as the API, the
//! command line and the reports spell them: `people` (a person's statements
//! and documents: when all are older than the period, the person's key is
//! destroyed; `statements` is the same class under its older name),
//! `documents`, `audit_trail`, `credential_use`, `operations_journal` and
//! `backups`. The first two are set per tenant (a tenant's own may only be
//! stricter than the KB's default); the others exist once, for tenant `*`.

use lrs_core::events::RetentionKindV1;

/// Every kind, in the order the API lists them.
pub const ALL: [RetentionKindV1; 6] = [
    RetentionKindV1::Statements,
    RetentionKindV1::Documents,
    RetentionKindV1::AuditTrail,
    RetentionKindV1::CredentialUse,
    RetentionKindV1::OperationsJournal,
    RetentionKindV1::Backups,
];

/// The name of a kind.
pub fn kind_name(kind: RetentionKindV1) -> &'static str {
    match kind {
        RetentionKindV1::Statements => "people",
        RetentionKindV1::Documents => "documents",
        RetentionKindV1::AuditTrail => "audit_trail",
        RetentionKindV1::CredentialUse => "credential_use",
        RetentionKindV1::OperationsJournal => "operations_journal",
        RetentionKindV1::Backups => "backups",
    }
}

/// The kind a name means.
pub fn parse_kind(text: &str) -> Option<RetentionKindV1> {
    Some(match text {
        "people" | "statements" => RetentionKindV1::Statements,
        "documents" => RetentionKindV1::Documents,
        "audit_trail" => RetentionKindV1::AuditTrail,
        "credential_use" => RetentionKindV1::CredentialUse,
        "operations_journal" => RetentionKindV1::OperationsJournal,
        "backups" => RetentionKindV1::Backups,
        _ => return None,
    })
}

/// Whether a kind is kept once for all tenants (set for tenant `*` only).
pub fn is_global(kind: RetentionKindV1) -> bool {
    !matches!(
        kind,
        RetentionKindV1::Statements | RetentionKindV1::Documents
    )
}
