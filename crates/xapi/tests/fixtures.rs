//! Data-driven statement validation tests: every file under
//! `tests/fixtures/valid/` must pass and every file under
//! `tests/fixtures/invalid/` must be rejected with the rule and path it
//! names. Reads fixture files only; never touches HTTP or storage.
//!
//! * `valid/<name>.json`: a statement (or a batch array) that passes under
//!   1.0.3 and 2.0.0; `valid/2.0.0--<name>.json` passes under 2.0.0 only.
//! * `invalid/<rule>--<description>.json`:
//!   `{"versions": [...], "rule": "<rule id>", "path": "<json path>", "statement": <body>}`.
//!
//! All failures are collected and reported together.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use xapi::validate::validate_statement_batch;
use xapi::XapiVersion;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn version(name: &str) -> Option<XapiVersion> {
    match name {
        "1.0.3" => Some(XapiVersion::V1_0_3),
        "2.0.0" => Some(XapiVersion::V2_0_0),
        _ => None,
    }
}

/// Checks one fixture file; answers with what went wrong, if anything.
fn check(file: &Path) -> Vec<String> {
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => return vec![format!("{name}: cannot read: {e}")],
    };
    let doc: Value = match serde_json::from_str(&text) {
        Ok(doc) => doc,
        Err(e) => return vec![format!("{name}: not json: {e}")],
    };
    let mut problems = Vec::new();
    let is_invalid = file
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "invalid");
    if !is_invalid {
        let versions: &[XapiVersion] = if name.starts_with("2.0.0--") {
            &[XapiVersion::V2_0_0]
        } else {
            &[XapiVersion::V1_0_3, XapiVersion::V2_0_0]
        };
        for &v in versions {
            if let Err(e) = validate_statement_batch(&doc, v) {
                problems.push(format!("valid/{name} [{}]: rejected: {e}", v.as_header()));
            }
        }
        return problems;
    }

    let expected_rule = doc["rule"].as_str().unwrap_or_default();
    let expected_path = doc["path"].as_str().unwrap_or_default();
    if name.split_once("--").map(|(rule, _)| rule) != Some(expected_rule) {
        problems.push(format!(
            "invalid/{name}: file name does not start with its rule {expected_rule:?}--"
        ));
    }
    let versions: Vec<&str> = doc["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if versions.is_empty() {
        problems.push(format!("invalid/{name}: no versions"));
    }
    for v in versions {
        let Some(version) = version(v) else {
            problems.push(format!("invalid/{name}: unknown version {v:?}"));
            continue;
        };
        match validate_statement_batch(&doc["statement"], version) {
            Ok(()) => problems.push(format!(
                "invalid/{name} [{v}]: accepted, expected {expected_rule} at {expected_path}"
            )),
            Err(e) => {
                if e.rule != expected_rule || e.path != expected_path {
                    problems.push(format!(
                        "invalid/{name} [{v}]: got {} at {} ({}), expected {expected_rule} at {expected_path}",
                        e.rule, e.path, e.message
                    ));
                }
                let starts_lowercase = e.message.chars().next().is_some_and(|c| !c.is_uppercase());
                if !starts_lowercase || e.message.ends_with('.') || e.message.is_empty() {
                    problems.push(format!(
                        "invalid/{name} [{v}]: message style: {:?}",
                        e.message
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn every_fixture_has_the_expected_outcome() {
    let valid = fixtures("valid");
    let invalid = fixtures("invalid");
    assert!(
        valid.len() >= 20,
        "expected valid fixtures, found {}",
        valid.len()
    );
    assert!(
        invalid.len() >= 80,
        "expected invalid fixtures, found {}",
        invalid.len()
    );
    let problems: Vec<String> = valid
        .iter()
        .chain(&invalid)
        .flat_map(|f| check(f))
        .collect();
    assert!(
        problems.is_empty(),
        "{} of {} fixtures failed:\n{}",
        problems.len(),
        valid.len() + invalid.len(),
        problems.join("\n")
    );
}
