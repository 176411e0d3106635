//! Tenant isolation, as a matrix: the KB, two libraries, two apps and a
//! `statements/read/mine` credential on one server. Every reader asks about
//! every statement in every query form; each answer must be exactly what the
//! reader's tenant may see (the KB everything, a library its learners', an
//! app what it wrote, a read/mine credential what it wrote itself), computed
//! here independently from what the test wrote. A probe for an id that is
//! someone else's must look exactly like a probe for an id that does not
//! exist. Documents are private to the tenant that wrote them.

use crate::common::{ids_of, new_id};
use lrs_blackbox_tests::{StatusCode, TestServer, Xapi};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

const ISIL_EXTENSION: &str = "https://w3id.org/xapi/kb-nl/extensions/isil";
const APPID_EXTENSION: &str = "https://w3id.org/xapi/kb-nl/extensions/appid";
const LIB_A: &str = "NL-0000000001";
const LIB_B: &str = "NL-0000000002";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sees {
    Everything,
    Library(&'static str),
    WrittenBy(&'static str),
    Mine,
}

struct Reader {
    name: &'static str,
    tenant: &'static str,
    sees: Sees,
    client: Xapi,
}

#[derive(Debug, Clone)]
struct Written {
    id: String,
    /// Reader name of the credential that wrote it.
    writer: &'static str,
    tenant: &'static str,
    library: Option<&'static str>,
    learner: String,
    activity: String,
    verb: String,
    registration: String,
    voided: bool,
    /// The statement this one refers to (StatementRef): it matches that
    /// statement's filters too (Communication 2.1.3).
    refers_to: Option<String>,
}

impl Reader {
    fn may_see(&self, s: &Written) -> bool {
        match self.sees {
            Sees::Everything => true,
            Sees::Library(isil) => s.library == Some(isil),
            Sees::WrittenBy(tenant) => s.tenant == tenant,
            Sees::Mine => s.writer == self.name,
        }
    }
}

fn statement(
    n: usize,
    writer: &str,
    library: Option<&str>,
    appid: Option<&str>,
) -> (Value, Written) {
    let learner = format!("learner{n}-{}", &new_id()[..8]);
    let activity = format!("https://courses.example.nl/{writer}/module{n}");
    let verb = format!("https://verbs.example.nl/v{n}");
    let registration = new_id();
    let mut extensions = serde_json::Map::new();
    if let Some(isil) = library {
        extensions.insert(ISIL_EXTENSION.into(), json!(isil));
    }
    if let Some(appid) = appid {
        extensions.insert(APPID_EXTENSION.into(), json!(appid));
    }
    let id = new_id();
    let body = json!({
        "id": id,
        "actor": {"objectType": "Agent", "name": format!("Naam {learner}"), "mbox": format!("mailto:{learner}@example.nl")},
        "verb": {"id": verb},
        "object": {"id": activity, "definition": {"name": {"nl-NL": format!("Module {writer} {n}")}}},
        "context": {"registration": registration, "extensions": extensions}
    });
    let written = Written {
        id,
        writer: "",
        tenant: "",
        library: None,
        learner,
        activity,
        verb,
        registration,
        voided: false,
        refers_to: None,
    };
    (body, written)
}

async fn post(client: &Xapi, body: &Value) {
    let reply = client.post_statements(body).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "POST: {}", reply.text);
}

fn agent_param(learner: &str) -> String {
    json!({"mbox": format!("mailto:{learner}@example.nl")}).to_string()
}

async fn ids(client: &Xapi, query: &[(&str, &str)]) -> BTreeSet<String> {
    let reply = client.get_statements(query).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{query:?}: {}", reply.text);
    ids_of(&reply).into_iter().collect()
}

/// Every id over all pages of `limit=1`, following `more`.
async fn all_pages(client: &Xapi) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut reply = client
        .get_statements(&[("limit", "1"), ("format", "ids")])
        .await
        .unwrap();
    loop {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        seen.extend(ids_of(&reply));
        let more = reply.body["more"].as_str().unwrap_or_default().to_owned();
        if more.is_empty() {
            return seen;
        }
        reply = client.get_more(&more).await.unwrap();
    }
}

#[tokio::test]
async fn no_tenant_sees_another_tenants_data() {
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    for args in [
        vec!["--id", "kb", "--name", "KB", "--kind", "kb"],
        vec![
            "--id",
            "lib-a",
            "--name",
            "Bibliotheek A",
            "--kind",
            "library",
            "--isil",
            LIB_A,
        ],
        vec![
            "--id",
            "lib-b",
            "--name",
            "Bibliotheek B",
            "--kind",
            "library",
            "--isil",
            LIB_B,
        ],
        vec![
            "--id", "app-x", "--name", "App X", "--kind", "app", "--appid", "app-x",
        ],
        vec![
            "--id", "app-y", "--name", "App Y", "--kind", "app", "--appid", "app-y",
        ],
    ] {
        let mut full = vec!["tenants", "define"];
        full.extend(args);
        server.lrs(&full).unwrap();
    }
    let mut credentials = Vec::new();
    for (name, tenant, scopes, sees) in [
        ("kb", "kb", vec!["all"], Sees::Everything),
        ("lib-a", "lib-a", vec!["all"], Sees::Library(LIB_A)),
        ("lib-b", "lib-b", vec!["all"], Sees::Library(LIB_B)),
        ("app-x", "app-x", vec!["all"], Sees::WrittenBy("app-x")),
        ("app-y", "app-y", vec!["all"], Sees::WrittenBy("app-y")),
        (
            "app-x-mine",
            "app-x",
            vec!["statements/write", "statements/read/mine"],
            Sees::Mine,
        ),
    ] {
        let (key, secret) = server.add_credential(name, tenant, &scopes).unwrap();
        credentials.push((name, tenant, key, secret, sees));
    }
    server.launch().unwrap();
    let base = server.client();
    let readers: Vec<Reader> = credentials
        .into_iter()
        .map(|(name, tenant, key, secret, sees)| Reader {
            name,
            tenant,
            sees,
            client: base.with_credential(&key, &secret),
        })
        .collect();
    let reader = |name: &str| readers.iter().find(|r| r.name == name).unwrap();

    // What each writer sends: (writer, ISIL extension, appid extension, the library it lands in).
    type Plan = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );
    let plan: Vec<Plan> = vec![
        ("app-x", Some(LIB_A), None, Some(LIB_A)),
        ("app-x", Some(LIB_B), Some("app-x"), Some(LIB_B)),
        ("app-x", Some(LIB_B), None, Some(LIB_B)),
        ("app-y", Some(LIB_A), None, Some(LIB_A)),
        ("app-y", Some(LIB_B), None, Some(LIB_B)),
        ("app-y", None, None, None),
        ("lib-a", None, None, Some(LIB_A)),
        ("lib-b", Some(LIB_B), None, Some(LIB_B)),
        ("kb", Some(LIB_A), Some("app-z"), Some(LIB_A)),
        ("app-x-mine", Some(LIB_A), None, Some(LIB_A)),
    ];
    let mut written = Vec::new();
    for (n, (writer, isil, appid, lands_in)) in plan.into_iter().enumerate() {
        let (body, mut record) = statement(n, writer, isil, appid);
        let who = reader(writer);
        post(&who.client, &body).await;
        record.writer = who.name;
        record.tenant = who.tenant;
        record.library = lands_in;
        written.push(record);
    }
    // app-x voids its statement about a learner of library B.
    let voiding_id = new_id();
    let manager = format!("beheer-{}", &voiding_id[..8]);
    post(
        &reader("app-x").client,
        &json!({"id": voiding_id, "actor": {"mbox": format!("mailto:{manager}@example.nl")},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                "object": {"objectType": "StatementRef", "id": written[2].id}}),
    )
    .await;
    written[2].voided = true;
    written.push(Written {
        id: voiding_id,
        writer: "app-x",
        tenant: "app-x",
        library: None,
        learner: manager,
        activity: String::new(),
        verb: "http://adlnet.gov/expapi/verbs/voided".into(),
        registration: String::new(),
        voided: false,
        refers_to: Some(written[2].id.clone()),
    });

    // A probe for an id nobody has: the shape every refusal must have.
    let nobody = reader("kb")
        .client
        .get_statements(&[("statementId", &new_id())])
        .await
        .unwrap();
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);

    let mut checked = 0;
    for r in &readers {
        let visible: BTreeSet<String> = written
            .iter()
            .filter(|s| r.may_see(s) && !s.voided)
            .map(|s| s.id.clone())
            .collect();
        assert!(!visible.is_empty(), "{} sees something", r.name);
        // The unfiltered query, one page and paged with `more`.
        assert_eq!(ids(&r.client, &[]).await, visible, "{}: all", r.name);
        assert_eq!(all_pages(&r.client).await, visible, "{}: paged", r.name);
        assert_eq!(
            ids(
                &r.client,
                &[
                    ("since", "2000-01-01T00:00:00Z"),
                    ("until", "2100-01-01T00:00:00Z")
                ]
            )
            .await,
            visible,
            "{}: since/until",
            r.name
        );
        for s in &written {
            let expect: BTreeSet<String> = written
                .iter()
                .filter(|w| w.id == s.id || w.refers_to.as_deref() == Some(s.id.as_str()))
                .filter(|w| r.may_see(w) && !w.voided)
                .map(|w| w.id.clone())
                .collect();
            let agent = agent_param(&s.learner);
            let forms: Vec<Vec<(&str, &str)>> = vec![
                vec![("agent", &agent)],
                vec![("agent", &agent), ("related_agents", "true")],
                vec![("verb", &s.verb)],
            ];
            let mut forms = forms;
            if !s.activity.is_empty() {
                forms.push(vec![("activity", &s.activity)]);
                forms.push(vec![
                    ("activity", &s.activity),
                    ("related_activities", "true"),
                ]);
                forms.push(vec![("registration", &s.registration)]);
            }
            for form in &forms {
                assert_eq!(
                    ids(&r.client, form).await,
                    expect,
                    "{} asks {form:?}",
                    r.name
                );
                checked += 1;
            }
            // By id: the statement, or exactly the answer for no statement.
            let param = if s.voided {
                "voidedStatementId"
            } else {
                "statementId"
            };
            let by_id = r.client.get_statements(&[(param, &s.id)]).await.unwrap();
            if r.may_see(s) {
                assert_eq!(
                    by_id.status,
                    StatusCode::OK,
                    "{} gets {}: {}",
                    r.name,
                    s.id,
                    by_id.text
                );
                assert_eq!(by_id.body["id"], json!(s.id));
            } else {
                assert_eq!(
                    by_id.status,
                    StatusCode::NOT_FOUND,
                    "{} gets {}",
                    r.name,
                    s.id
                );
                assert_eq!(by_id.text, nobody.text, "a foreign id looks like no id");
            }
            // Looking in the other slot answers 404 for everyone.
            let other = if s.voided {
                "statementId"
            } else {
                "voidedStatementId"
            };
            let wrong_slot = r.client.get_statements(&[(other, &s.id)]).await.unwrap();
            assert_eq!(wrong_slot.status, StatusCode::NOT_FOUND);
            assert_eq!(wrong_slot.text, nobody.text);
            if s.activity.is_empty() {
                continue;
            }
            // The Activity and Person resources show only what the reader may see.
            let activity = Xapi::send(
                r.client
                    .request(reqwest::Method::GET, "/activities")
                    .query(&[("activityId", &s.activity)]),
            )
            .await
            .unwrap();
            assert_eq!(activity.status, StatusCode::OK, "{}", activity.text);
            // A voided statement defines nothing any more.
            assert_eq!(
                activity.body.get("definition").is_some(),
                r.may_see(s) && !s.voided,
                "{} reads activity {}: {}",
                r.name,
                s.activity,
                activity.text
            );
            let person = Xapi::send(
                r.client
                    .request(reqwest::Method::GET, "/agents")
                    .query(&[("agent", &agent)]),
            )
            .await
            .unwrap();
            assert_eq!(person.status, StatusCode::OK, "{}", person.text);
            assert_eq!(
                person.text.contains(&format!("Naam {}", s.learner)),
                r.may_see(s) && !s.voided,
                "{} reads person {}: {}",
                r.name,
                s.learner,
                person.text
            );
            checked += 3;
        }
    }
    assert!(checked > 300, "the matrix ran ({checked} checks)");

    // A more link handed from one tenant to another pages the new reader's view.
    let x_page = reader("app-x")
        .client
        .get_statements(&[("limit", "1")])
        .await
        .unwrap();
    let more = x_page.body["more"].as_str().unwrap().to_owned();
    let by_y = reader("app-y").client.get_more(&more).await.unwrap();
    assert_eq!(by_y.status, StatusCode::OK);
    for id in ids_of(&by_y) {
        let s = written.iter().find(|s| s.id == id).unwrap();
        assert!(
            reader("app-y").may_see(s),
            "app-y got {id} through app-x's cursor"
        );
    }

    // Statement ids are per writing tenant: app-y reusing app-x's id stores
    // its own statement, learns nothing, and changes nothing of app-x's.
    let taken = &written[0];
    let (mut copy, _) = statement(90, "app-y", Some(LIB_A), None);
    copy["id"] = json!(taken.id);
    let put = reader("app-y")
        .client
        .put_statement(&taken.id, &copy)
        .await
        .unwrap();
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.text);
    let original = reader("app-x")
        .client
        .get_statements(&[("statementId", &taken.id)])
        .await
        .unwrap();
    assert!(original.text.contains(&format!("Naam {}", taken.learner)));

    // Documents belong to the tenant that wrote them.
    let learner = agent_param(&written[0].learner);
    let activity = written[0].activity.clone();
    let resources: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/activities/state",
            vec![
                ("activityId", &activity),
                ("agent", &learner),
                ("stateId", "voortgang"),
            ],
        ),
        (
            "/activities/profile",
            vec![("activityId", &activity), ("profileId", "profiel")],
        ),
        (
            "/agents/profile",
            vec![("agent", &learner), ("profileId", "profiel")],
        ),
    ];
    for (path, params) in &resources {
        let put = Xapi::send(
            reader("app-x")
                .client
                .request(reqwest::Method::PUT, path)
                .query(params)
                .header("If-None-Match", "*")
                .json(&json!({"geheim": "van app-x"})),
        )
        .await
        .unwrap();
        assert_eq!(put.status, StatusCode::NO_CONTENT, "{path}: {}", put.text);
    }
    for r in &readers {
        for (path, params) in &resources {
            let single = Xapi::send(r.client.request(reqwest::Method::GET, path).query(params))
                .await
                .unwrap();
            // The list form: without the document id.
            let list_params: Vec<(&str, &str)> = params
                .iter()
                .filter(|(k, _)| *k != "stateId" && *k != "profileId")
                .copied()
                .collect();
            let list = Xapi::send(
                r.client
                    .request(reqwest::Method::GET, path)
                    .query(&list_params),
            )
            .await
            .unwrap();
            if r.tenant == "app-x" {
                if r.name == "app-x" {
                    assert_eq!(single.status, StatusCode::OK, "{path}: {}", single.text);
                    assert!(single.text.contains("van app-x"));
                    assert_eq!(list.status, StatusCode::OK);
                    assert!(list.text.contains("voortgang") || list.text.contains("profiel"));
                }
                continue;
            }
            assert_eq!(
                single.status,
                StatusCode::NOT_FOUND,
                "{} reads {path}",
                r.name
            );
            assert!(!single.text.contains("van app-x"));
            assert_eq!(list.status, StatusCode::OK, "{}: {}", r.name, list.text);
            assert_eq!(list.body, json!([]), "{} lists {path}", r.name);
            // Deleting another tenant's document changes nothing of it.
            let _ = Xapi::send(
                r.client
                    .request(reqwest::Method::DELETE, path)
                    .query(params),
            )
            .await;
        }
    }
    for (path, params) in &resources {
        let still = Xapi::send(
            reader("app-x")
                .client
                .request(reqwest::Method::GET, path)
                .query(params),
        )
        .await
        .unwrap();
        assert_eq!(
            still.status,
            StatusCode::OK,
            "{path} survived the others' deletes"
        );
    }
}

/// A write that claims another app's id, or another library's learner, is
/// refused with a 400 naming the extension; a malformed ISIL too.
#[tokio::test]
async fn writers_cannot_claim_another_origin() {
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    server
        .lrs(&[
            "tenants", "define", "--id", "app-x", "--name", "X", "--kind", "app", "--appid",
            "app-x",
        ])
        .unwrap();
    server
        .lrs(&[
            "tenants", "define", "--id", "lib-a", "--name", "A", "--kind", "library", "--isil",
            LIB_A,
        ])
        .unwrap();
    let (app_key, app_secret) = server.add_credential("x", "app-x", &["all"]).unwrap();
    let (lib_key, lib_secret) = server.add_credential("a", "lib-a", &["all"]).unwrap();
    server.launch().unwrap();
    let app = server.client().with_credential(&app_key, &app_secret);
    let library = server.client().with_credential(&lib_key, &lib_secret);

    let (claims_other_app, _) = statement(1, "app-x", Some(LIB_A), Some("app-y"));
    let reply = app
        .post_statements(&json!([claims_other_app]))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.body["error"]["rule"], "origin.appid");
    assert!(reply.body["error"]["path"]
        .as_str()
        .unwrap()
        .starts_with("$[0].context.extensions"));

    let (other_library, _) = statement(2, "lib-a", Some(LIB_B), None);
    let reply = library.post_statements(&other_library).await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.body["error"]["rule"], "origin.isil");

    let (malformed, _) = statement(3, "app-x", Some("bibliotheek utrecht"), None);
    let reply = app.post_statements(&malformed).await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.body["error"]["rule"], "origin.isil");
    // Nothing of the refused requests was stored.
    assert_eq!(ids(&app, &[]).await, BTreeSet::new());
}
