//! Tenants: who may read what, and where a statement comes from.
//!
//! Three kinds of tenant (`TenantKindV1`): the KB reads every statement, a
//! library reads the statements of its learners (those whose library, an
//! ISIL, is its own) and an app reads what it wrote. A tenant that was never
//! defined reads like an app: only what it wrote. A caller with only
//! `statements/read/mine` reads only what its own credential wrote, whatever
//! its tenant.
//!
//! Every statement records its origin: the app (appid) and the learner's
//! library (ISIL), taken from context extensions whose IRIs are configured
//! (`--isil-extension`, `--appid-extension`), checked against the writing
//! tenant: an app cannot write under another app's id, a library cannot
//! write for another library's learners.

use crate::error::AppError;
use crate::principal::Credential;
use lrs_core::events::{OriginV1, TenantKindV1};
use lrs_store::{Scope, Store};
use serde_json::Value;

/// The default context extension naming the learner's library (ISIL).
pub const DEFAULT_ISIL_EXTENSION: &str = "https://w3id.org/xapi/kb-nl/extensions/isil";
/// The default context extension naming the content provider app.
pub const DEFAULT_APPID_EXTENSION: &str = "https://w3id.org/xapi/kb-nl/extensions/appid";

/// Which context extensions carry the origin.
#[derive(Debug, Clone)]
pub struct OriginExtensions {
    pub isil: String,
    pub appid: String,
}

impl Default for OriginExtensions {
    fn default() -> Self {
        Self {
            isil: DEFAULT_ISIL_EXTENSION.into(),
            appid: DEFAULT_APPID_EXTENSION.into(),
        }
    }
}

/// The kind of the caller's tenant (`None`: never defined, reads like an app).
pub fn tenant_kind(store: &Store, tenant: &str) -> Result<Option<TenantKindV1>, AppError> {
    Ok(store.tenant(tenant)?.map(|record| record.kind))
}

/// Whose statements the caller reads (statements, activities, agents).
/// Assumes the caller holds some read scope; routes check that first.
pub fn read_scope(store: &Store, caller: &Credential) -> Result<Scope, AppError> {
    let broad = caller.has_scope("statements/read");
    if !broad {
        return Ok(Scope::Mine {
            tenant: caller.tenant.clone(),
            credential: caller.key.clone(),
        });
    }
    Ok(match tenant_kind(store, &caller.tenant)? {
        Some(TenantKindV1::Kb) => Scope::All,
        Some(TenantKindV1::Library { isil }) => Scope::Library(isil),
        Some(TenantKindV1::App { .. }) | None => Scope::Tenant(caller.tenant.clone()),
    })
}

/// Checks an ISIL (ISO 15511): a prefix of 1 to 4 letters (a country code or
/// a non-country prefix), a hyphen, then up to 11 letters, digits, `-`, `/`
/// or `:`; at most 16 characters.
pub fn is_isil(value: &str) -> bool {
    let Some((prefix, rest)) = value.split_once('-') else {
        return false;
    };
    value.len() <= 16
        && (1..=4).contains(&prefix.len())
        && prefix.chars().all(|c| c.is_ascii_alphabetic())
        && (1..=11).contains(&rest.len())
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | ':'))
}

/// An appid: 1 to 128 printable ASCII characters without spaces.
pub fn is_appid(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.chars().all(|c| c.is_ascii_graphic())
}

/// Where a statement comes from, checked against the writing tenant.
/// `path` locates the statement in the request, for errors.
pub fn origin_of(
    kind: Option<&TenantKindV1>,
    statement: &Value,
    extensions: &OriginExtensions,
    path: &str,
) -> Result<OriginV1, AppError> {
    let claimed = |iri: &str, what: &str, valid: fn(&str) -> bool| {
        let at = || format!("{path}.context.extensions[{iri:?}]");
        match statement
            .pointer("/context/extensions")
            .and_then(|e| e.get(iri))
        {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) if valid(value) => Ok(Some(value.clone())),
            Some(other) => Err(AppError::bad_request(
                at(),
                format!("origin.{what}"),
                format!("the {what} extension must be a valid {what} string, not {other}"),
            )),
        }
    };
    let library = claimed(&extensions.isil, "isil", is_isil)?;
    let app = claimed(&extensions.appid, "appid", is_appid)?;
    let mismatch = |iri: &str, what: &str, own: &str, other: &str| {
        Err(AppError::bad_request(
            format!("{path}.context.extensions[{iri:?}]"),
            format!("origin.{what}"),
            format!("this credential writes for {what} {own:?} only, not {other:?}"),
        ))
    };
    Ok(match kind {
        Some(TenantKindV1::App { appid }) => {
            if let Some(other) = app.as_deref().filter(|a| a != appid) {
                return mismatch(&extensions.appid, "appid", appid, other);
            }
            OriginV1 {
                app: Some(appid.clone()),
                library,
            }
        }
        Some(TenantKindV1::Library { isil }) => {
            if let Some(other) = library.as_deref().filter(|l| l != isil) {
                return mismatch(&extensions.isil, "isil", isil, other);
            }
            OriginV1 {
                app,
                library: Some(isil.clone()),
            }
        }
        Some(TenantKindV1::Kb) | None => OriginV1 { app, library },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_extensions(extensions: Value) -> Value {
        json!({"actor": {"mbox": "mailto:a@example.nl"}, "context": {"extensions": extensions}})
    }

    #[test]
    fn isil_codes() {
        for good in [
            "NL-0100030000",
            "NL-AsdU",
            "DE-101",
            "O-A1234",
            "NL-1:2/3-4",
        ] {
            assert!(is_isil(good), "{good}");
        }
        for bad in [
            "",
            "NL",
            "NL-",
            "NL0100030000",
            "NLNLN-1",
            "NL-0100 30000",
            "NL-123456789012",
        ] {
            assert!(!is_isil(bad), "{bad}");
        }
    }

    #[test]
    fn an_app_writes_under_its_own_appid_only() {
        let ext = OriginExtensions::default();
        let app = TenantKindV1::App {
            appid: "app-1".into(),
        };
        let own =
            with_extensions(json!({ext.appid.clone(): "app-1", ext.isil.clone(): "NL-0100030000"}));
        assert_eq!(
            origin_of(Some(&app), &own, &ext, "$").unwrap(),
            OriginV1 {
                app: Some("app-1".into()),
                library: Some("NL-0100030000".into())
            }
        );
        let other = with_extensions(json!({ext.appid.clone(): "app-2"}));
        let error = origin_of(Some(&app), &other, &ext, "$[3]").unwrap_err();
        assert!(error.to_string().contains("app-2"), "{error}");
        // No extension: the app's own id.
        assert_eq!(
            origin_of(Some(&app), &json!({}), &ext, "$")
                .unwrap()
                .app
                .as_deref(),
            Some("app-1")
        );
    }

    #[test]
    fn a_library_writes_for_its_own_learners_only() {
        let ext = OriginExtensions::default();
        let library = TenantKindV1::Library {
            isil: "NL-0100030000".into(),
        };
        let other = with_extensions(json!({ext.isil.clone(): "NL-0200000000"}));
        assert!(origin_of(Some(&library), &other, &ext, "$").is_err());
        assert_eq!(
            origin_of(Some(&library), &json!({}), &ext, "$")
                .unwrap()
                .library
                .as_deref(),
            Some("NL-0100030000")
        );
    }

    #[test]
    fn a_malformed_isil_is_a_400_naming_the_extension() {
        let ext = OriginExtensions::default();
        let bad = with_extensions(json!({ext.isil.clone(): "not an isil"}));
        let AppError::Invalid(error) = origin_of(None, &bad, &ext, "$[0]").unwrap_err() else {
            panic!("not a validation error");
        };
        assert!(
            error.path.starts_with("$[0].context.extensions"),
            "{}",
            error.path
        );
        assert_eq!(error.rule, "origin.isil");
    }
}
