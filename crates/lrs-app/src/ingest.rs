//! Turns validated statements into what the log stores: the LRS-assigned
//! properties (id, authority, version), the keyed comparison digest, the
//! sealed envelope and the clear facts.

use crate::error::AppError;
use crate::principal::Credential;
use hmac::{Hmac, Mac};
use lrs_core::envelope::{seal, AttachmentContent};
use lrs_core::facts::extract;
use lrs_store::vault::VaultKeys;
use lrs_store::{PreparedStatement, Store};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;
use xapi::XapiVersion;

/// The authority the store writes into statements from this credential.
pub fn authority_of(credential: &Credential, home_page: &str) -> Value {
    json!({
        "objectType": "Agent",
        "name": credential.name,
        "account": { "homePage": home_page, "name": credential.key }
    })
}

/// Prepares one validated statement. `path` locates it in the request (for errors).
pub fn prepare(
    store: &Store,
    mut statement: Value,
    authority: &Value,
    version: XapiVersion,
    path: &str,
    attachments: &[AttachmentContent],
    origin: lrs_core::events::OriginV1,
) -> Result<PreparedStatement, AppError> {
    xapi::format::normalize_context_activities(&mut statement);
    let object = statement.as_object_mut().ok_or_else(|| {
        AppError::bad_request(path, "statement.type", "a statement must be a json object")
    })?;
    let statement_id = match object.remove("id") {
        Some(Value::String(id)) => Uuid::parse_str(&id).map_err(|_| {
            AppError::bad_request(
                format!("{path}.id"),
                "uuid.format",
                "statement id is not a uuid",
            )
        })?,
        _ => Uuid::new_v4(),
    };
    object.remove("stored");
    object.insert("authority".into(), authority.clone());
    if !object.contains_key("version") {
        let default = match version {
            XapiVersion::V1_0_3 => "1.0.0",
            XapiVersion::V2_0_0 => "2.0.0",
        };
        object.insert("version".into(), Value::String(default.into()));
    }
    let timestamp_micros = object
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(xapi::validate::parse_timestamp)
        .map(|t| t.timestamp_micros());

    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(store.digest_key()).expect("any key length");
    mac.update(
        xapi::format::comparison_form(&statement)
            .to_string()
            .as_bytes(),
    );
    let comparison_digest: [u8; 32] = mac.finalize().into_bytes().into();

    let sealed = seal(&statement, attachments, &mut VaultKeys(store.vault()))
        .map_err(|e| AppError::bad_request(path, "statement.actor", e.to_string()))?;
    let facts = extract(&sealed.skeleton, &sealed.tokens, timestamp_micros);
    let context = lrs_core::facts::extract_context(&sealed.skeleton);
    let names = lrs_core::facts::extract_names(&sealed.skeleton);
    Ok(PreparedStatement {
        statement_id,
        comparison_digest,
        facts,
        sealed: sealed.sealed,
        origin,
        context,
        names,
    })
}
