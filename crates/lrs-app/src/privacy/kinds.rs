//! The kinds of data a retention period applies to, as the API, the command
//! line and the reports spell them.

use lrs_core::events::RetentionKindV1;

/// The name of a kind.
pub fn kind_name(kind: RetentionKindV1) -> &'static str {
    match kind {
        RetentionKindV1::Statements => "statements",
        RetentionKindV1::Documents => "documents",
        RetentionKindV1::AuditTrail => "audit_trail",
        RetentionKindV1::CredentialUse => "credential_use",
    }
}

/// The kind a name means.
pub fn parse_kind(text: &str) -> Option<RetentionKindV1> {
    Some(match text {
        "statements" => RetentionKindV1::Statements,
        "documents" => RetentionKindV1::Documents,
        "audit_trail" => RetentionKindV1::AuditTrail,
        "credential_use" => RetentionKindV1::CredentialUse,
        _ => return None,
    })
}
