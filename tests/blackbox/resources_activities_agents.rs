//! The Activities and Agents resources: activity definitions merged from the
//! statements that mention them, Person objects combining the names a person
//! used, both scoped to the caller's tenant and blind to erased people.

use crate::common::{activity_iri, post_one, start, start_with_credential};
use lrs_blackbox_tests::{statement, Reply, StatusCode, Xapi};
use serde_json::{json, Value};

async fn get(client: &Xapi, path: &str, query: &[(&str, &str)]) -> Reply {
    Xapi::send(client.request(reqwest::Method::GET, path).query(query))
        .await
        .expect("GET")
}

/// GET /activities?activityId=... that must answer 200; the body.
async fn activity(client: &Xapi, id: &str) -> Value {
    let reply = get(client, "/activities", &[("activityId", id)]).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "activity {id}: {}",
        reply.text
    );
    reply.body
}

/// GET /agents?agent=... that must answer 200; the body.
async fn person(client: &Xapi, agent: &Value) -> Value {
    let agent = agent.to_string();
    let reply = get(client, "/agents", &[("agent", &agent)]).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "agent {agent}: {}",
        reply.text
    );
    reply.body
}

fn with_object(mut statement: Value, object: Value) -> Value {
    statement["object"] = object;
    statement
}

#[tokio::test]
async fn activity_definitions_merge_newest_first_per_property_and_language() {
    let server = start();
    let client = server.client();
    let id = activity_iri("resources/merged");
    post_one(
        &client,
        &with_object(
            statement("anna", "experienced", "unused"),
            json!({"objectType": "Activity", "id": id, "definition": {
                "type": "http://adlnet.gov/expapi/activities/course",
                "name": {"en-US": "Old name", "nl-NL": "Cursus"},
                "description": {"en-US": "A course"},
                "moreInfo": "https://courses.example.nl/info",
                "extensions": {"https://x.example/a": 1, "https://x.example/b": {"deep": true}}
            }}),
        ),
    )
    .await;
    post_one(
        &client,
        &with_object(
            statement("bert", "completed", "unused"),
            json!({"id": id, "definition": {
                "type": "http://adlnet.gov/expapi/activities/module",
                "name": {"en-US": "New name", "fr-FR": "Cours"},
                "extensions": {"https://x.example/a": 2}
            }}),
        ),
    )
    .await;
    // A statement without a definition takes nothing away.
    post_one(
        &client,
        &statement("carla", "attempted", "resources/merged"),
    )
    .await;

    assert_eq!(
        activity(&client, &id).await,
        json!({"objectType": "Activity", "id": id, "definition": {
            "type": "http://adlnet.gov/expapi/activities/module",
            "name": {"en-US": "New name", "nl-NL": "Cursus", "fr-FR": "Cours"},
            "description": {"en-US": "A course"},
            "moreInfo": "https://courses.example.nl/info",
            "extensions": {"https://x.example/a": 2, "https://x.example/b": {"deep": true}}
        }})
    );
    // The 2.0.0 answer is the same.
    assert_eq!(
        activity(&client.with_version("2.0.0"), &id).await["definition"]["name"]["fr-FR"],
        json!("Cours")
    );
    // HEAD answers like GET, without a body.
    let reply = Xapi::send(
        client
            .request(reqwest::Method::HEAD, "/activities")
            .query(&[("activityId", id.as_str())]),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text.is_empty());
}

#[tokio::test]
async fn activities_are_found_in_context_activities_and_sub_statements() {
    let server = start();
    let client = server.client();
    let parent = activity_iri("resources/parent");
    let category = activity_iri("resources/category");
    let inner = activity_iri("resources/inner");
    let mut s = statement("anna", "experienced", "resources/lesson");
    s["context"] = json!({"contextActivities": {
        "parent": [{"id": parent, "definition": {"name": {"en-US": "Parent course"}}}],
        "category": [{"id": category, "objectType": "Activity",
                      "definition": {"type": "http://adlnet.gov/expapi/activities/profile"}}]
    }});
    post_one(&client, &s).await;
    post_one(
        &client,
        &with_object(
            statement("bert", "planned", "unused"),
            json!({"objectType": "SubStatement",
            "actor": {"mbox": "mailto:bert@example.nl"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
            "object": {"id": inner, "definition": {"name": {"en-US": "Inner"}}},
            "context": {"contextActivities": {"grouping": [
                {"id": parent, "definition": {"description": {"en-US": "From a sub-statement"}}}
            ]}}}),
        ),
    )
    .await;

    assert_eq!(
        activity(&client, &parent).await,
        json!({"objectType": "Activity", "id": parent, "definition": {
            "name": {"en-US": "Parent course"},
            "description": {"en-US": "From a sub-statement"}
        }})
    );
    assert_eq!(
        activity(&client, &category).await["definition"],
        json!({"type": "http://adlnet.gov/expapi/activities/profile"})
    );
    assert_eq!(
        activity(&client, &inner).await["definition"],
        json!({"name": {"en-US": "Inner"}})
    );
    // Mentioned without a definition: the bare activity.
    let lesson = activity_iri("resources/lesson");
    assert_eq!(
        activity(&client, &lesson).await,
        json!({"objectType": "Activity", "id": lesson})
    );
}

#[tokio::test]
async fn an_activity_never_seen_is_still_an_activity_object() {
    let server = start();
    let client = server.client();
    let id = activity_iri("resources/never-seen");
    for version in ["1.0.3", "2.0.0"] {
        assert_eq!(
            activity(&client.with_version(version), &id).await,
            json!({"objectType": "Activity", "id": id}),
            "{version}"
        );
    }
}

#[tokio::test]
async fn bad_activities_and_agents_requests_are_400() {
    let server = start();
    let client = server.client();
    let id = activity_iri("resources/bad");
    let agent = json!({"mbox": "mailto:anna@example.nl"}).to_string();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/activities", vec![]),
        ("/activities", vec![("activityId", "not an iri")]),
        ("/activities", vec![("activityId", "")]),
        (
            "/activities",
            vec![("activityId", &id), ("activityId", &id)],
        ),
        ("/activities", vec![("activityId", &id), ("limit", "1")]),
        ("/agents", vec![]),
        ("/agents", vec![("agent", "{not json")]),
        ("/agents", vec![("agent", "{\"name\": \"no identifier\"}")]),
        (
            "/agents",
            vec![(
                "agent",
                "{\"mbox\": \"mailto:a@example.nl\", \"openid\": \"https://openid.example/a\"}",
            )],
        ),
        (
            "/agents",
            vec![("agent", "{\"mbox\": \"anna@example.nl\"}")],
        ),
        (
            "/agents",
            vec![(
                "agent",
                "{\"objectType\": \"Group\", \"mbox\": \"mailto:team@example.nl\"}",
            )],
        ),
        ("/agents", vec![("agent", &agent), ("activityId", &id)]),
    ];
    for (path, query) in cases {
        let reply = get(&client, path, &query).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path} {query:?}: {}",
            reply.text
        );
        assert!(
            reply.body["error"]["path"].is_string(),
            "{path} {query:?}: the error says where: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn a_credential_without_read_scope_is_refused() {
    let (_server, writer) = start_with_credential("writer", "default", &["statements/write"]).await;
    let id = activity_iri("resources/scoped");
    let reply = get(&writer, "/activities", &[("activityId", &id)]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let agent = json!({"mbox": "mailto:anna@example.nl"}).to_string();
    let reply = get(&writer, "/agents", &[("agent", &agent)]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
}

#[tokio::test]
async fn a_person_combines_the_names_used_for_one_identifier() {
    let server = start();
    let client = server.client();
    let anna = json!({"mbox": "mailto:anna@example.nl"});
    // As actor ("Learner anna", from the helper), as instructor, as a group
    // member, and as the object; another person in the same statement.
    post_one(&client, &statement("anna", "experienced", "resources/p1")).await;
    let mut instructed = statement("bert", "experienced", "resources/p2");
    instructed["context"] =
        json!({"instructor": {"mbox": "mailto:anna@example.nl", "name": "Anna de Vries"}});
    post_one(&client, &instructed).await;
    let mut grouped = statement("bert", "experienced", "resources/p3");
    grouped["actor"] = json!({"objectType": "Group", "name": "Team", "member": [
        {"mbox": "mailto:anna@example.nl", "name": "A. de Vries"},
        {"mbox": "mailto:bert@example.nl", "name": "Bert"}
    ]});
    post_one(&client, &grouped).await;
    post_one(
        &client,
        &with_object(
            statement("bert", "mentored", "unused"),
            json!({"objectType": "Agent", "mbox": "mailto:anna@example.nl", "name": "Anna de Vries"}),
        ),
    )
    .await;

    let body = person(&client, &anna).await;
    assert_eq!(body["objectType"], json!("Person"));
    assert_eq!(body["mbox"], json!(["mailto:anna@example.nl"]));
    let mut names: Vec<&str> = body["name"]
        .as_array()
        .unwrap_or_else(|| panic!("name is an array: {body}"))
        .iter()
        .map(|n| n.as_str().expect("names are strings"))
        .collect();
    names.sort();
    assert_eq!(names, vec!["A. de Vries", "Anna de Vries", "Learner anna"]);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "only non-empty arrays: {body}");

    // The name in the request belongs to the Person too.
    let body = person(
        &client,
        &json!({"mbox": "mailto:anna@example.nl", "name": "Anneke"}),
    )
    .await;
    assert!(
        body["name"].as_array().unwrap().contains(&json!("Anneke")),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_person_is_the_person_of_the_request() {
    let server = start();
    let client = server.client().with_version("2.0.0");
    assert_eq!(
        person(
            &client,
            &json!({"objectType": "Agent", "account": {"homePage": "https://sso.example.nl", "name": "u1"}})
        )
        .await,
        json!({"objectType": "Person", "account": [{"homePage": "https://sso.example.nl", "name": "u1"}]})
    );
    assert_eq!(
        person(
            &client,
            &json!({"openid": "https://openid.example.nl/u2", "name": "U2"})
        )
        .await,
        json!({"objectType": "Person", "name": ["U2"], "openid": ["https://openid.example.nl/u2"]})
    );
    let sha = "ABCDEF0123456789ABCDEF0123456789ABCDEF01";
    assert_eq!(
        person(&client, &json!({"mbox_sha1sum": sha})).await,
        json!({"objectType": "Person", "mbox_sha1sum": [sha.to_ascii_lowercase()]})
    );
}

#[tokio::test]
async fn other_tenants_statements_do_not_contribute() {
    let (server, b) = start_with_credential("b", "tenant-b", &[]).await;
    let a = server.client();

    let id = activity_iri("resources/shared");
    post_one(
        &a,
        &with_object(
            statement("anna", "experienced", "unused"),
            json!({"id": id, "definition": {"name": {"en-US": "A's secret name"}}}),
        ),
    )
    .await;
    post_one(
        &b,
        &with_object(
            statement("bob", "experienced", "unused"),
            json!({"id": id, "definition": {"description": {"en-US": "B's description"}}}),
        ),
    )
    .await;

    assert_eq!(
        activity(&b, &id).await,
        json!({"objectType": "Activity", "id": id,
               "definition": {"description": {"en-US": "B's description"}}})
    );
    assert_eq!(
        activity(&a, &id).await,
        json!({"objectType": "Activity", "id": id,
               "definition": {"name": {"en-US": "A's secret name"}}})
    );
    let only_a = activity_iri("resources/a-only");
    post_one(
        &a,
        &with_object(
            statement("anna", "experienced", "unused"),
            json!({"id": only_a, "definition": {"name": {"en-US": "Only A"}}}),
        ),
    )
    .await;
    assert_eq!(
        activity(&b, &only_a).await,
        json!({"objectType": "Activity", "id": only_a}),
        "an activity only another tenant knows answers like an unknown one"
    );

    // Anna is known to A only: B gets the Person of its request alone.
    let anna = json!({"mbox": "mailto:anna@example.nl"});
    assert_eq!(
        person(&b, &anna).await,
        json!({"objectType": "Person", "mbox": ["mailto:anna@example.nl"]})
    );
    assert_eq!(person(&a, &anna).await["name"], json!(["Learner anna"]));
}

#[tokio::test]
async fn erased_people_contribute_nothing() {
    let mut server = start();
    let client = server.client();
    let id = activity_iri("resources/erased");
    post_one(
        &client,
        &with_object(
            statement("bert", "experienced", "unused"),
            json!({"id": id, "definition": {"name": {"en-US": "Kept"}}}),
        ),
    )
    .await;
    post_one(
        &client,
        &with_object(
            statement("anna", "experienced", "unused"),
            json!({"id": id, "definition": {"name": {"en-US": "Erased", "nl-NL": "Gewist"}}}),
        ),
    )
    .await;
    assert_eq!(
        activity(&client, &id).await["definition"]["name"],
        json!({"en-US": "Erased", "nl-NL": "Gewist"})
    );
    let anna = json!({"mbox": "mailto:anna@example.nl"});
    assert_eq!(
        person(&client, &anna).await["name"],
        json!(["Learner anna"])
    );

    server.stop().unwrap();
    server
        .lrs(&["erase", "--agent", &anna.to_string()])
        .expect("lrs erase");
    server.launch().unwrap();
    let client = server.client();
    assert_eq!(
        activity(&client, &id).await["definition"]["name"],
        json!({"en-US": "Kept"})
    );
    assert_eq!(
        person(&client, &anna).await,
        json!({"objectType": "Person", "mbox": ["mailto:anna@example.nl"]})
    );
}
