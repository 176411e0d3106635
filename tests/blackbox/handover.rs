//! The handover (6.12): export everything from one real `lrs` server,
//! import it into a second fresh one through its xAPI API
//! (`lrs import handover`), and compare every statement (ids, content,
//! attachments) and every document as the two APIs answer them.

use crate::common::{self, new_id, post_one, wait_until_serving};
use lrs_blackbox_tests::{statement, StatusCode, Xapi};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// (sha2 header, content) of each attachment part of a multipart answer;
/// the JSON part first as (`"json"`, bytes).
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .unwrap_or_else(|| panic!("no boundary in {content_type}"))
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, delimiter.as_bytes()) {
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let end = find(rest, delimiter.as_bytes()).unwrap_or(rest.len());
        let part = &rest[..end];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let split = find(part, b"\r\n\r\n").expect("part headers end");
        let headers = String::from_utf8_lossy(&part[..split]).to_ascii_lowercase();
        let mut content = &part[split + 4..];
        content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let name = headers
            .lines()
            .find_map(|l| l.strip_prefix("x-experience-api-hash:"))
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|| "json".to_owned());
        parts.push((name, content.to_vec()));
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// POSTs one statement with attachment contents as multipart/mixed.
async fn post_with_attachments(client: &Xapi, statement: &Value, contents: &[(&str, &[u8])]) {
    let boundary = format!("test-{}", uuid::Uuid::new_v4().simple());
    let mut body =
        format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n{statement}").into_bytes();
    for (content_type, bytes) in contents {
        body.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {}\r\n\r\n",
                sha256_hex(bytes)
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let reply = Xapi::send(
        client
            .request(reqwest::Method::POST, "/statements")
            .header(
                "Content-Type",
                format!("multipart/mixed; boundary={boundary}"),
            )
            .body(body),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// A statement as both APIs answer it: the JSON without what each LRS
/// assigns itself (`stored`, `authority`), and the attachment contents.
async fn fetch(client: &Xapi, id: &str, voided: bool) -> (Value, Vec<(String, Vec<u8>)>) {
    let key = if voided {
        "voidedStatementId"
    } else {
        "statementId"
    };
    let response = client
        .request(reqwest::Method::GET, "/statements")
        .query(&[(key, id), ("attachments", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {key}={id}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.bytes().await.unwrap();
    let (json, mut attachments) = if content_type.starts_with("multipart/mixed") {
        let mut parts = multipart_parts(&content_type, &body);
        let (_, json) = parts.remove(0);
        (serde_json::from_slice::<Value>(&json).unwrap(), parts)
    } else {
        (serde_json::from_slice::<Value>(&body).unwrap(), Vec::new())
    };
    attachments.sort();
    let mut json = json;
    let object = json.as_object_mut().expect("a statement");
    object.remove("stored");
    object.remove("authority");
    (json, attachments)
}

struct Document {
    path: &'static str,
    query: Vec<(&'static str, String)>,
    content_type: &'static str,
    content: Vec<u8>,
    profile: bool,
}

#[tokio::test]
async fn a_handover_imported_into_a_fresh_lrs_answers_the_same_statements_and_documents() {
    let mut source = common::start();
    wait_until_serving(&source).await;
    let client = source.client();
    let marker = &new_id()[..8];

    // Statements: plain ones, one with context and a registration, two with
    // attachments (one content shared), a voided one and its voiding statement.
    let mut posted: Vec<(String, bool)> = Vec::new();
    for (i, learner) in ["anna", "bram", "cor"].iter().enumerate() {
        let id = post_one(
            &client,
            &statement(learner, "experienced", &format!("les-{i}")),
        )
        .await;
        posted.push((id, false));
    }
    let registration = new_id();
    let mut with_context = statement("anna", "completed", "les-0");
    with_context["context"] = json!({
        "registration": registration,
        "contextActivities": {"parent": [{"id": "https://courses.example.nl/cursus"}]},
        "instructor": {"name": "Docent", "mbox": "mailto:docent@example.nl"}
    });
    with_context["result"] = json!({"success": true, "score": {"scaled": 0.8}, "response": format!("antwoord {marker}")});
    posted.push((post_one(&client, &with_context).await, false));
    let report = format!("verslag van bram {marker}").into_bytes();
    let picture: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    for (learner, contents) in [
        (
            "bram",
            vec![
                ("text/plain", report.as_slice()),
                ("image/png", picture.as_slice()),
            ],
        ),
        ("cor", vec![("text/plain", report.as_slice())]),
    ] {
        let id = new_id();
        let mut with_attachments =
            common::with_id(statement(learner, "attempted", "opdracht"), &id);
        with_attachments["attachments"] = Value::Array(
            contents
                .iter()
                .map(|(content_type, bytes)| {
                    json!({
                        "usageType": "http://id.tincanapi.com/attachment/supporting_media",
                        "display": {"nl-NL": "bijlage"},
                        "contentType": content_type,
                        "length": bytes.len(),
                        "sha2": sha256_hex(bytes),
                    })
                })
                .collect(),
        );
        post_with_attachments(&client, &with_attachments, &contents).await;
        posted.push((id, false));
    }
    let voided = posted[1].0.clone();
    posted[1].1 = true;
    let voiding = json!({
        "actor": {"mbox": "mailto:bram@example.nl"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": voided}
    });
    posted.push((post_one(&client, &voiding).await, false));

    // Documents of every resource, with and without registration.
    let anna = json!({"mbox": "mailto:anna@example.nl"}).to_string();
    let bram = json!({"mbox": "mailto:bram@example.nl"}).to_string();
    let activity = "https://courses.example.nl/les-0".to_owned();
    let documents = vec![
        Document {
            path: "/activities/state",
            query: vec![
                ("activityId", activity.clone()),
                ("agent", anna.clone()),
                ("stateId", "voortgang".into()),
                ("registration", registration.clone()),
            ],
            content_type: "application/json",
            content: json!({"pagina": 7, "notitie": format!("eigen notitie {marker}")})
                .to_string()
                .into_bytes(),
            profile: false,
        },
        Document {
            path: "/activities/state",
            query: vec![
                ("activityId", activity.clone()),
                ("agent", bram.clone()),
                ("stateId", "bladwijzer".into()),
            ],
            content_type: "text/plain",
            content: b"hoofdstuk 3".to_vec(),
            profile: false,
        },
        Document {
            path: "/activities/profile",
            query: vec![
                ("activityId", activity.clone()),
                ("profileId", "instellingen".into()),
            ],
            content_type: "application/json",
            content: br#"{"niveau":"B1"}"#.to_vec(),
            profile: true,
        },
        Document {
            path: "/agents/profile",
            query: vec![("agent", anna.clone()), ("profileId", "voorkeuren".into())],
            content_type: "application/octet-stream",
            content: vec![0, 1, 2, 254, 255],
            profile: true,
        },
    ];
    for document in &documents {
        let mut request = client
            .request(reqwest::Method::PUT, document.path)
            .query(&document.query)
            .header("Content-Type", document.content_type)
            .body(document.content.clone());
        if document.profile {
            request = request.header("If-None-Match", "*");
        }
        let reply = Xapi::send(request).await.unwrap();
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    }

    // Export from the stopped source.
    source.stop().unwrap();
    let export = tempfile::tempdir().unwrap();
    let out = export.path().join("handover");
    let printed = source
        .lrs(&["export", "handover", "--out", out.to_str().unwrap()])
        .unwrap();
    assert!(
        printed.contains(&format!("{} statements", posted.len())),
        "{printed}"
    );
    let exported: Vec<Value> = std::fs::read_to_string(out.join("statements.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let exported_ids: Vec<String> = exported
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let posted_ids: Vec<String> = posted.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(exported_ids, posted_ids, "every statement, in stored order");
    assert!(exported
        .iter()
        .all(|s| s["stored"].is_string() && s["authority"].is_object()));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["summary"]["documents"], json!(documents.len()));

    // Import into a fresh LRS through its xAPI API.
    let target = common::start();
    wait_until_serving(&target).await;
    let imported = source
        .lrs_outcome(&[
            "import",
            "handover",
            "--from",
            out.to_str().unwrap(),
            "--to",
            &format!("{}/xapi", target.base_url),
            "--key",
            &target.key,
            // `=`: a secret may begin with `-` (base64url).
            &format!("--secret={}", target.secret),
            "--batch",
            "3",
        ])
        .unwrap();
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert!(
        imported.status.success(),
        "import failed: {stderr}{}",
        String::from_utf8_lossy(&imported.stdout)
    );
    assert!(
        stderr.contains("statements:"),
        "progress on stderr: {stderr}"
    );

    // Every statement and document, compared as the two APIs answer them.
    source.launch().unwrap();
    wait_until_serving(&source).await;
    let (from, to) = (source.client(), target.client());
    let mut with_attachments = 0;
    for (id, is_voided) in &posted {
        let (a, a_attachments) = fetch(&from, id, *is_voided).await;
        let (b, b_attachments) = fetch(&to, id, *is_voided).await;
        assert_eq!(a, b, "statement {id}");
        assert_eq!(a_attachments, b_attachments, "attachments of {id}");
        if !a_attachments.is_empty() {
            with_attachments += 1;
        }
    }
    assert_eq!(
        with_attachments, 2,
        "both statements with attachments compared"
    );
    let voided_in_target = to
        .get_statements(&[("statementId", &voided)])
        .await
        .unwrap();
    assert_eq!(
        voided_in_target.status,
        StatusCode::NOT_FOUND,
        "voided there too"
    );
    for document in &documents {
        for client in [&from, &to] {
            let response = client
                .request(reqwest::Method::GET, document.path)
                .query(&document.query)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{:?}", document.query);
            assert_eq!(
                response.headers()["content-type"].to_str().unwrap(),
                document.content_type
            );
            assert_eq!(response.bytes().await.unwrap().to_vec(), document.content);
        }
    }
    // The document lists of a context agree too.
    let list = |client: &Xapi| {
        let request = client
            .request(reqwest::Method::GET, "/activities/state")
            .query(&[("activityId", activity.as_str()), ("agent", bram.as_str())]);
        async move {
            let reply = Xapi::send(request).await.unwrap();
            serde_json::from_value::<BTreeSet<String>>(reply.body).unwrap()
        }
    };
    assert_eq!(list(&from).await, list(&to).await);
}
