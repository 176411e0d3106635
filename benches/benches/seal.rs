//! CPU cost per statement of the request path before the log writer:
//! validation (`xapi::validate::validate_statement`), sealing
//! (`lrs_core::envelope::seal`: per-person keys, XChaCha20-Poly1305) and the
//! fact extraction the index is built from. Single-threaded; `cargo bench -p
//! lrs-benches --bench seal`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lrs_core::envelope::{seal, EnvelopeError, KeyRing};
use lrs_core::{DataKey, Token};
use serde_json::{json, Value};
use std::collections::HashMap;
use xapi::agent::Ifi;
use xapi::XapiVersion;

/// An in-memory key ring: one random key per person, created on first sight.
#[derive(Default)]
struct MemoryKeys(HashMap<Vec<u8>, (Token, DataKey)>);

impl KeyRing for MemoryKeys {
    fn person(&mut self, ifi: &Ifi) -> Result<(Token, DataKey), EnvelopeError> {
        let entry = self.0.entry(ifi.canonical_bytes()).or_insert_with(|| {
            use rand::RngCore;
            let mut token = [0u8; 16];
            let mut key = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut token);
            rand::thread_rng().fill_bytes(&mut key);
            (Token(token), DataKey(key))
        });
        Ok((entry.0, entry.1.clone()))
    }
}

/// A cmi5-like "passed" statement as lrs-load sends it, with the authority
/// and version the server adds before sealing (no attachments).
fn statement() -> Value {
    json!({
        "id": "9c1f0f9e-2b7a-4f5e-9a43-0d6a1f0d2c11",
        "actor": {"objectType": "Agent", "name": "Deelnemer 4711",
                  "account": {"homePage": "https://leren.bibliotheek.example.nl", "name": "learner-004711"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/passed", "display": {"en-US": "passed"}},
        "object": {"objectType": "Activity", "id": "https://leren.bibliotheek.example.nl/courses/c007/modules/m03",
                   "definition": {"type": "https://w3id.org/xapi/cmi5/activitytype/block",
                                  "name": {"nl-NL": "Veilig online, module 4"}}},
        "result": {"success": true, "score": {"scaled": 0.85, "raw": 85, "min": 0, "max": 100}, "duration": "PT23M12S"},
        "context": {
            "registration": "5d7f3a0e-8f3c-4d8e-b1a2-6c0e9d4b7a21",
            "contextActivities": {
                "parent": [{"id": "https://leren.bibliotheek.example.nl/courses/c007", "objectType": "Activity",
                            "definition": {"name": {"nl-NL": "Veilig online"}}}],
                "grouping": [{"id": "https://leren.bibliotheek.example.nl/courses/c007"}],
                "category": [{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"},
                             {"id": "https://w3id.org/xapi/cmi5/context/categories/moveon"}]
            },
            "platform": "Leerplatform Bibliotheek",
            "language": "nl-NL",
            "extensions": {
                "https://w3id.org/xapi/cmi5/context/extensions/sessionid": "0b6f3f55-3d0e-4c55-9f2a-6e3b1c2d4e5f",
                "https://w3id.org/xapi/kb-nl/extensions/isil": "NL-0100030000"
            }
        },
        "timestamp": "2026-03-01T10:15:00.000Z",
        "authority": {"objectType": "Agent", "name": "bench",
                      "account": {"homePage": "http://127.0.0.1:8080", "name": "lrs_0123456789abcdef01234567"}},
        "version": "1.0.0"
    })
}

fn per_statement(c: &mut Criterion) {
    let statement = statement();
    // What the server seals: the statement without `id` (kept in clear beside it).
    let mut sealable = statement.clone();
    sealable.as_object_mut().expect("object").remove("id");
    let mut group = c.benchmark_group("per_statement");
    group.throughput(Throughput::Elements(1));
    group.bench_function("validate", |b| {
        b.iter(|| {
            xapi::validate::validate_statement(black_box(&statement), XapiVersion::V1_0_3)
                .expect("valid")
        })
    });
    let mut keys = MemoryKeys::default();
    group.bench_function("seal", |b| {
        b.iter(|| seal(black_box(&sealable), &[], &mut keys).expect("seals"))
    });
    group.bench_function("validate+seal+facts", |b| {
        b.iter(|| {
            xapi::validate::validate_statement(black_box(&statement), XapiVersion::V1_0_3)
                .expect("valid");
            let sealed = seal(&sealable, &[], &mut keys).expect("seals");
            lrs_core::facts::extract(&sealed.skeleton, &sealed.tokens, None)
        })
    });
    group.bench_function("parse+serialize json", |b| {
        let bytes = serde_json::to_vec(&statement).expect("json");
        b.iter(|| {
            serde_json::to_vec(&serde_json::from_slice::<Value>(black_box(&bytes)).expect("json"))
                .expect("json")
        })
    });
    group.finish();
}

criterion_group!(benches, per_statement);
criterion_main!(benches);
