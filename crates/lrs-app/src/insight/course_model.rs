//! A tenant's course model (docs/progress-and-figures.md): checking one
//! against schemas/course-model.json and its IRI rules, recording it, and
//! the model in effect (defaults filled in). The API and `lrs course-model`
//! both come here.

use crate::error::AppError;
use lrs_core::clock::now_micros;
use lrs_projections::course_model::{CourseModel, CourseModelDoc, MEANINGS};
use lrs_store::Store;
use serde_json::Value;

/// The model in effect for `tenant`: its own (or the defaults) with every
/// default filled in, and whether it set one.
pub fn in_effect(store: &Store, tenant: &str) -> Result<Value, AppError> {
    let json = store.course_model_json(tenant)?;
    let doc: CourseModelDoc = match &json {
        Some(json) => serde_json::from_str(json).map_err(AppError::internal)?,
        None => CourseModelDoc {
            course_types: None,
            module_types: None,
            verbs: Default::default(),
            courses: vec![],
        },
    };
    // Show the model in effect: defaults filled in.
    let model = CourseModel::from_doc(&doc);
    Ok(serde_json::json!({
        "tenant": tenant,
        "set": json.is_some(),
        "courseTypes": model.course_types,
        "moduleTypes": model.module_types,
        "verbs": model.verbs_by_meaning,
        "courses": model.courses,
    }))
}

/// Records a tenant's course model (checked by [`parse_model`]); the API
/// and `lrs course-model set` both come here.
pub async fn set_model(
    store: &Store,
    tenant: &str,
    doc: &CourseModelDoc,
    by: &str,
) -> Result<(), AppError> {
    let event = lrs_core::events::CourseModelDefinedV1 {
        tenant: tenant.to_owned(),
        model: serde_json::to_string(doc).map_err(AppError::internal)?,
        defined_micros: now_micros(),
        by: by.to_owned(),
    };
    crate::admin::append(store, lrs_core::Event::CourseModelDefinedV1(event)).await
}

/// Checks a course model (schemas/course-model.json): its shape, then that
/// every type, verb, course and module id is an IRI and every meaning known.
pub fn parse_model(body: &[u8]) -> Result<CourseModelDoc, AppError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request("$", "json.syntax", format!("not JSON: {e}")))?;
    xapi::validate::validate_course_model(&value)?;
    let doc: CourseModelDoc = serde_json::from_value(value).map_err(|e| {
        AppError::bad_request(
            "$",
            "course-model.shape",
            format!("not a course model (schemas/course-model.json): {e}"),
        )
    })?;
    let iri = |value: &str, path: String| -> Result<(), AppError> {
        if xapi::validate::is_iri(value) {
            Ok(())
        } else {
            Err(AppError::bad_request(
                path,
                "course-model.iri",
                format!("'{value}' is not an IRI"),
            ))
        }
    };
    for (name, list) in [
        ("courseTypes", &doc.course_types),
        ("moduleTypes", &doc.module_types),
    ] {
        for (i, value) in list.iter().flatten().enumerate() {
            iri(value, format!("$.{name}[{i}]"))?;
        }
    }
    for (meaning, verbs) in &doc.verbs {
        if !MEANINGS.iter().any(|(m, _)| m == meaning) {
            return Err(AppError::bad_request(
                format!("$.verbs.{meaning}"),
                "course-model.meaning",
                format!(
                    "'{meaning}' is not a meaning: one of {}",
                    MEANINGS.map(|(m, _)| m).join(", ")
                ),
            ));
        }
        for (i, verb) in verbs.iter().enumerate() {
            iri(verb, format!("$.verbs.{meaning}[{i}]"))?;
        }
    }
    if doc.courses.len() > 10_000 {
        return Err(AppError::bad_request(
            "$.courses",
            "course-model.size",
            "at most 10000 courses",
        ));
    }
    for (i, course) in doc.courses.iter().enumerate() {
        iri(&course.id, format!("$.courses[{i}].id"))?;
        for (j, module) in course.modules.iter().enumerate() {
            iri(&module.id, format!("$.courses[{i}].modules[{j}].id"))?;
        }
    }
    Ok(doc)
}
