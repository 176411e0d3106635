//! A bounded, seeded fuzz run of the validation entry points (CI runs it
//! with every `cargo test`): structure-aware mutations of the statement
//! fixtures (and of agent parameters and signatures) go through
//! `validate_statement_batch`, `validate_agent_param` and
//! `signature::check`. Every answer must come quickly, never panic, and
//! every refusal must name a path and a rule in the house style. A finding
//! becomes a fixture under `tests/fixtures/invalid/` named after its rule
//! (e.g. `limit.list-items--60000-choice-ids.json`: a statement whose
//! component ids were once compared pairwise, 19 s of CPU).
//!
//! `LRS_FUZZ_SEED` and `LRS_FUZZ_CASES` change the seed and the number of
//! cases (defaults: a fixed seed, 800 cases, about 4 s in a debug build).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use xapi::validate::limits::{MAX_DEPTH, MAX_LIST_ITEMS};
use xapi::validate::{validate_agent_param, validate_statement_batch};
use xapi::ValidationError;
use xapi::XapiVersion::{V1_0_3, V2_0_0};

const DEFAULT_SEED: u64 = 0x1a5_2022;
const DEFAULT_CASES: usize = 800;
/// The slowest one case may be (debug build, a loaded 2-core machine): the
/// quadratic component check took 19 s for 60,000 ids in a release build.
const CASE_BUDGET: Duration = Duration::from_millis(1_500);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The statements of the valid and invalid fixtures: the corpus.
fn corpus() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for kind in ["valid", "invalid"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(kind))
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for file in files {
            let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            out.push(if kind == "valid" {
                doc
            } else {
                doc["statement"].clone()
            });
        }
    }
    out
}

/// Strings that reach the interesting branches of the validators.
const STRINGS: &[&str] = &[
    "",
    " ",
    "x",
    "http://example.com/a",
    "https://x.example/über/ü?q=1#f",
    "urn:uuid:6f1a8f0e-0000-4000-8000-000000000001",
    "mailto:a@example.com",
    "mailto:",
    "not an iri",
    "http://[::1",
    "6f1a8f0e-0000-4000-8000-000000000001",
    "6F1A8F0E-0000-4000-8000-00000000000Z",
    "2024-01-01T12:00:00Z",
    "2024-02-30T12:00:00+01:00",
    "2024-01-01T12:00:00-00:00",
    "PT1H30M",
    "P1DT12H36M0.1237S",
    "P1.5Y2M",
    "en-US",
    "nl",
    "zh-Hant-TW",
    "en_US",
    "Agent",
    "Group",
    "Activity",
    "SubStatement",
    "StatementRef",
    "choice",
    "likert",
    "matching",
    "performance",
    "sequencing",
    "fill-in",
    "other",
    "http://adlnet.gov/expapi/verbs/voided",
    "http://adlnet.gov/expapi/attachments/signature",
    "application/octet-stream",
    "1.0.3",
    "2.0.0",
    "3.0",
    "cd9b00a5611f94eaa7b1661edab976068e364975",
    "\u{0}",
    "\u{fffd}\u{202e}",
];

const KEYS: &[&str] = &[
    "id",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "stored",
    "authority",
    "version",
    "attachments",
    "objectType",
    "mbox",
    "mbox_sha1sum",
    "openid",
    "account",
    "member",
    "definition",
    "interactionType",
    "choices",
    "scale",
    "source",
    "target",
    "steps",
    "correctResponsesPattern",
    "extensions",
    "contextActivities",
    "parent",
    "grouping",
    "category",
    "other",
    "contextAgents",
    "contextGroups",
    "registration",
    "language",
    "score",
    "scaled",
    "raw",
    "min",
    "max",
    "duration",
    "display",
    "name",
    "description",
    "usageType",
    "sha2",
    "contentType",
    "fileUrl",
    "length",
    "unknownProperty",
];

fn random_scalar(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..8) {
        0 => Value::Null,
        1 => json!(rng.gen::<bool>()),
        2 => json!(rng.gen_range(-3.0..3.0)),
        3 => json!(rng.gen::<i64>()),
        4 => json!("x".repeat(rng.gen_range(0..4096))),
        _ => json!(STRINGS.choose(rng).unwrap()),
    }
}

/// A list of `n` interaction components with distinct ids (or, at random,
/// one duplicate somewhere).
fn components(rng: &mut StdRng, n: usize) -> Value {
    let mut items: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("c{i}"), "description": {"en-US": "c"}}))
        .collect();
    if n > 1 && rng.gen_bool(0.3) {
        let at = rng.gen_range(1..n);
        items[at]["id"] = json!("c0");
    }
    Value::Array(items)
}

/// A JSON pointer to a random node of `value`: a walk from the root that
/// goes one level deeper three times in four (cheap on big documents).
fn random_pointer(rng: &mut StdRng, value: &Value) -> String {
    let mut pointer = String::new();
    let mut node = value;
    loop {
        let len = match node {
            Value::Object(map) => map.len(),
            Value::Array(items) => items.len(),
            _ => 0,
        };
        if len == 0 || !rng.gen_bool(0.75) {
            return pointer;
        }
        let i = rng.gen_range(0..len);
        node = match node {
            Value::Object(map) => {
                let (key, child) = map.iter().nth(i).unwrap();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                child
            }
            Value::Array(items) => {
                pointer.push_str(&format!("/{i}"));
                &items[i]
            }
            _ => unreachable!(),
        };
    }
}

/// About how big (in nodes, a string counting one per 32 bytes) a
/// mutation may make a document grow: copies of a subtree stop there.
const MAX_NODES: usize = 100_000;

fn nodes(value: &Value) -> usize {
    1 + match value {
        Value::Object(map) => map.values().map(nodes).sum(),
        Value::Array(items) => items.iter().map(nodes).sum(),
        Value::String(text) => text.len() / 32,
        _ => 0,
    }
}

/// One structure-aware mutation somewhere in `doc`.
fn mutate(rng: &mut StdRng, doc: &mut Value, corpus: &[Value]) {
    let operation = rng.gen_range(0..14);
    if operation == 13 {
        // A batch of copies.
        let n = *[2, 50].choose(rng).unwrap();
        let n = n.min((MAX_NODES / nodes(doc)).max(2));
        *doc = Value::Array(vec![doc.clone(); n]);
        return;
    }
    let at = random_pointer(rng, doc);
    let node = doc.pointer_mut(&at).unwrap();
    match operation {
        // Replace with a scalar of another type.
        0 | 1 => *node = random_scalar(rng),
        // Add a known or unknown key.
        2 | 3 => {
            if let Value::Object(map) = node {
                let key = KEYS.choose(rng).unwrap().to_string();
                let value = if rng.gen_bool(0.5) {
                    random_scalar(rng)
                } else {
                    corpus.choose(rng).unwrap().clone()
                };
                map.insert(key, value);
            } else {
                *node = json!({ *KEYS.choose(rng).unwrap(): random_scalar(rng) });
            }
        }
        // Remove a key or an item.
        4 => match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(rng.gen_range(0..map.len())).unwrap().clone();
                map.shift_remove(&key);
            }
            Value::Array(items) if !items.is_empty() => {
                let at = rng.gen_range(0..items.len());
                items.remove(at);
            }
            _ => *node = Value::Null,
        },
        // Repeat an item or grow a list, sometimes past the limit.
        5 => {
            let n = *[
                2,
                10,
                MAX_LIST_ITEMS,
                MAX_LIST_ITEMS + 1,
                5 * MAX_LIST_ITEMS,
            ]
            .choose(rng)
            .unwrap();
            let n = n.min((MAX_NODES / nodes(node)).max(2));
            let item = node.clone();
            *node = Value::Array(vec![item; n]);
        }
        // Nest, sometimes past the depth limit.
        6 => {
            let levels = *[1, 5, MAX_DEPTH - 3, MAX_DEPTH + 2, 100]
                .choose(rng)
                .unwrap();
            for _ in 0..levels {
                *node = if rng.gen_bool(0.5) {
                    json!([node.take()])
                } else {
                    json!({ "k": node.take() })
                };
            }
        }
        // Graft a subtree of another corpus statement.
        7 | 8 => {
            let other = corpus.choose(rng).unwrap();
            let from = random_pointer(rng, other);
            *node = other.pointer(&from).unwrap().clone();
        }
        // An interaction with component lists of every size.
        9 | 10 => {
            let kind = *[
                "choice",
                "likert",
                "matching",
                "performance",
                "sequencing",
                "fill-in",
            ]
            .choose(rng)
            .unwrap();
            let n = *[0, 1, 50, MAX_LIST_ITEMS, MAX_LIST_ITEMS + 1, 3_000]
                .choose(rng)
                .unwrap();
            let mut definition = Map::new();
            definition.insert("interactionType".into(), json!(kind));
            for list in ["choices", "scale", "source", "target", "steps"] {
                if rng.gen_bool(0.4) {
                    definition.insert(list.into(), components(rng, n));
                }
            }
            *node = json!({"id": "http://x.example/q", "definition": definition});
        }
        // A group with many members.
        11 => {
            let n = *[1, 100, 1_001, 3_000].choose(rng).unwrap();
            let members: Vec<Value> = (0..n)
                .map(|i| json!({"mbox": format!("mailto:m{i}@x.example")}))
                .collect();
            *node = json!({"objectType": "Group", "member": members});
        }
        // Big extensions.
        _ => {
            let size = *[10, 100_000, 1_100_000].choose(rng).unwrap();
            *node = json!({"extensions": {"http://x.example/e": "e".repeat(size)}});
        }
    }
}

/// What every refusal must look like.
fn check_refusal(e: &ValidationError) -> Result<(), String> {
    let rule_ok = !e.rule.is_empty()
        && e.rule
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'));
    if !rule_ok {
        return Err(format!("rule {:?} is not a stable id", e.rule));
    }
    if !(e.path.starts_with('$') || e.path.starts_with('?')) {
        return Err(format!("path {:?} does not locate the error", e.path));
    }
    let lowercase = e.message.chars().next().is_some_and(|c| !c.is_uppercase());
    if !lowercase || e.message.ends_with('.') {
        return Err(format!("message style: {:?}", e.message));
    }
    Ok(())
}

#[test]
fn mutated_statements_are_answered_quickly_with_a_path_and_a_rule() {
    let seed = env_or("LRS_FUZZ_SEED", DEFAULT_SEED);
    let cases = env_or("LRS_FUZZ_CASES", DEFAULT_CASES);
    let corpus = corpus();
    assert!(corpus.len() > 100, "the fixtures are the corpus");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rules: BTreeMap<String, usize> = BTreeMap::new();
    let mut accepted = 0;
    let mut slowest = (Duration::ZERO, 0);
    let mut validating = Duration::ZERO;
    let started = Instant::now();
    for case in 0..cases {
        let mut doc = corpus.choose(&mut rng).unwrap().clone();
        for _ in 0..rng.gen_range(1..=3) {
            mutate(&mut rng, &mut doc, &corpus);
        }
        let version = if rng.gen_bool(0.5) { V1_0_3 } else { V2_0_0 };
        let began = Instant::now();
        let outcome = validate_statement_batch(&doc, version);
        let took = began.elapsed();
        validating += took;
        if took > slowest.0 {
            slowest = (took, case);
        }
        assert!(
            took < CASE_BUDGET,
            "seed {seed} case {case}: validation took {took:?} ({} bytes)",
            doc.to_string().len()
        );
        match outcome {
            Ok(()) => accepted += 1,
            Err(e) => {
                if let Err(problem) = check_refusal(&e) {
                    panic!("seed {seed} case {case}: {problem} ({e})");
                }
                *rules.entry(e.rule).or_default() += 1;
            }
        }
    }
    eprintln!(
        "fuzz: seed {seed}, {cases} cases in {:?} ({validating:?} validating), {accepted} accepted, slowest {:?} (case {}), rules hit: {rules:?}",
        started.elapsed(),
        slowest.0,
        slowest.1
    );
    for rule in [
        "limit.list-items",
        "limit.depth",
        "limit.agents",
        "interaction.component-id-unique",
        "statement.unknown-property",
    ] {
        assert!(
            rules.contains_key(rule),
            "seed {seed}: the mutations never reached {rule}; rules hit: {rules:?}"
        );
    }
}

#[test]
fn mutated_bytes_never_panic_the_parser_and_validator() {
    let seed = env_or("LRS_FUZZ_SEED", DEFAULT_SEED) ^ 0xb17e5;
    let cases = env_or("LRS_FUZZ_CASES", DEFAULT_CASES);
    let corpus = corpus();
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..cases {
        let mut bytes = serde_json::to_vec(corpus.choose(&mut rng).unwrap()).unwrap();
        for _ in 0..rng.gen_range(1..=4) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.gen_range(0..bytes.len());
            match rng.gen_range(0..4) {
                0 => bytes[at] = rng.gen(),
                1 => bytes.truncate(at),
                2 => {
                    let piece = bytes[at..].iter().take(64).copied().collect::<Vec<_>>();
                    bytes.splice(at..at, piece);
                }
                _ => {
                    let brackets = if rng.gen_bool(0.5) { b"[" } else { b"{" };
                    bytes.splice(at..at, brackets.iter().copied().cycle().take(200));
                }
            }
        }
        let began = Instant::now();
        if let Ok(doc) = serde_json::from_slice::<Value>(&bytes) {
            if let Err(e) = validate_statement_batch(&doc, V2_0_0) {
                if let Err(problem) = check_refusal(&e) {
                    panic!("seed {seed} case {case}: {problem} ({e})");
                }
            }
        }
        assert!(began.elapsed() < CASE_BUDGET, "seed {seed} case {case}");
    }
}

#[test]
fn mutated_agent_parameters_are_answered_with_a_path_and_a_rule() {
    let seed = env_or("LRS_FUZZ_SEED", DEFAULT_SEED) ^ 0xa9e47;
    let cases = env_or("LRS_FUZZ_CASES", DEFAULT_CASES) / 2;
    let corpus: Vec<Value> = corpus()
        .iter()
        .filter_map(|s| s.get("actor").cloned())
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..cases {
        let mut agent = corpus.choose(&mut rng).unwrap().clone();
        mutate(&mut rng, &mut agent, &corpus);
        let began = Instant::now();
        if let Err(e) = validate_agent_param(&agent, V1_0_3) {
            if let Err(problem) = check_refusal(&e) {
                panic!("seed {seed} case {case}: {problem} ({e})");
            }
        }
        assert!(began.elapsed() < CASE_BUDGET, "seed {seed} case {case}");
    }
}

#[test]
fn mutated_signatures_are_refused_with_a_signature_rule() {
    use base64::Engine;
    let seed = env_or("LRS_FUZZ_SEED", DEFAULT_SEED) ^ 0x5167;
    let cases = env_or("LRS_FUZZ_CASES", DEFAULT_CASES) / 2;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let statement =
        json!({"actor": {"mbox": "mailto:a@x.nl"}, "verb": {"id": "x:v"}, "object": {"id": "x:o"}});
    let headers = [
        json!({"alg": "RS256"}),
        json!({"alg": "RS256", "x5c": "x"}),
        json!({"alg": "RS256", "x5c": [1]}),
        json!({"alg": "RS384", "x5c": ["bm90IGEgY2VydGlmaWNhdGU="]}),
        json!({"alg": "none"}),
        json!({"alg": "HS256"}),
        json!(["alg"]),
        json!({"alg": "RS512", "crit": ["exp"]}),
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..cases {
        let header = headers.choose(&mut rng).unwrap();
        let payload = if rng.gen_bool(0.7) {
            statement.clone()
        } else {
            random_scalar(&mut rng)
        };
        let mut parts = vec![
            encode(header.to_string().as_bytes()),
            encode(payload.to_string().as_bytes()),
            encode(
                &(0..rng.gen_range(0..600))
                    .map(|_| rng.gen())
                    .collect::<Vec<u8>>(),
            ),
        ];
        if rng.gen_bool(0.2) {
            parts.truncate(rng.gen_range(0..3));
        }
        let mut jws = parts.join(".").into_bytes();
        if rng.gen_bool(0.2) && !jws.is_empty() {
            let at = rng.gen_range(0..jws.len());
            jws[at] = rng.gen();
        }
        match xapi::signature::check(
            &statement,
            "application/octet-stream",
            &jws,
            "$.attachments[0]",
            V1_0_3,
        ) {
            // Without x5c a well-formed JWS with the right payload passes.
            Ok(()) => assert!(
                header.get("x5c").is_none() && header["alg"] == "RS256",
                "seed {seed} case {case}: accepted {header}"
            ),
            Err(e) => {
                assert!(e.rule.starts_with("signature."), "{e}");
                assert_eq!(e.path, "$.attachments[0]");
                check_refusal(&e).unwrap();
            }
        }
    }
}

/// The finding of the black-box fuzz run, at the size it was found: a
/// statement with 60,000 distinct choice ids is now refused at once.
#[test]
fn sixty_thousand_choice_ids_are_refused_in_milliseconds() {
    let mut rng = StdRng::seed_from_u64(1);
    for list in ["choices", "scale", "source", "target", "steps"] {
        let statement = json!({
            "actor": {"mbox": "mailto:a@x.example"},
            "verb": {"id": "http://x.example/answered"},
            "object": {"id": "http://x.example/q", "definition": {
                "interactionType": "choice",
                list: components(&mut rng, 60_000)
            }}
        });
        let began = Instant::now();
        let e = validate_statement_batch(&statement, V2_0_0).unwrap_err();
        assert_eq!(e.rule, "limit.list-items");
        assert_eq!(e.path, format!("$.object.definition.{list}"));
        assert!(
            began.elapsed() < Duration::from_millis(500),
            "{:?}",
            began.elapsed()
        );
        // The largest list allowed is checked in linear time as well.
        let mut statement = statement;
        statement["object"]["definition"][list] = components(&mut rng, MAX_LIST_ITEMS);
        let began = Instant::now();
        let _ = validate_statement_batch(&statement, V2_0_0);
        assert!(
            began.elapsed() < Duration::from_millis(500),
            "{:?}",
            began.elapsed()
        );
    }
}
