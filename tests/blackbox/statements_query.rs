//! Querying statements (Communication 2.1.3 GET): every filter parameter, the
//! StatementRef filter rule, formats, ordering, `more` pagination and headers.

use crate::common::*;
use lrs_blackbox_tests::{statement, StatusCode, TestServer, Xapi};
use serde_json::{json, Value};
use std::collections::HashMap;

const REGISTRATION: &str = "6f1a8f0e-1111-4000-8000-000000000001";

fn agent(learner: &str) -> Value {
    json!({"objectType": "Agent", "name": format!("Learner {learner}"), "mbox": format!("mailto:{learner}@example.nl")})
}

fn team() -> Value {
    json!({"objectType": "Group", "name": "Team", "mbox": "mailto:team@example.nl", "member": [agent("anna"), agent("bob")]})
}

fn activity(name: &str) -> Value {
    json!({"objectType": "Activity", "id": activity_iri(name)})
}

fn verb(name: &str) -> Value {
    json!({"id": verb_iri(name), "display": {"en-US": name}})
}

/// The query fixture: named statements, posted one by one in this order
/// (so `stored` order is this order), each with a known id.
struct Fixture {
    server: TestServer,
    client: Xapi,
    /// name -> id
    ids: HashMap<&'static str, String>,
    /// names in storing order
    order: Vec<&'static str>,
}

impl Fixture {
    async fn new() -> Self {
        let server = start();
        let client = server.client();
        let mut ids = HashMap::new();
        for name in ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10"] {
            ids.insert(name, new_id());
        }
        let statements: Vec<(&'static str, Value)> = vec![
            // anna is the actor; with a registration.
            (
                "s1",
                json!({"actor": agent("anna"), "verb": verb("experienced"), "object": activity("q/x"),
                          "context": {"registration": REGISTRATION}}),
            ),
            // anna is the object agent.
            (
                "s2",
                json!({"actor": agent("bob"), "verb": verb("mentored"), "object": agent("anna")}),
            ),
            // anna is the instructor.
            (
                "s3",
                json!({"actor": agent("carl"), "verb": verb("attended"), "object": activity("q/y"),
                          "context": {"instructor": agent("anna")}}),
            ),
            // anna (and bob) are members of the team.
            (
                "s4",
                json!({"actor": agent("dave"), "verb": verb("attended"), "object": activity("q/y"),
                          "context": {"team": team()}}),
            ),
            // the actor is an identified group with members anna and bob.
            (
                "s5",
                json!({"actor": team(), "verb": verb("attended"), "object": activity("q/x")}),
            ),
            // the actor is an anonymous group with members anna and eve.
            (
                "s6",
                json!({"actor": {"objectType": "Group", "member": [agent("anna"), agent("eve")]},
                          "verb": verb("attended"), "object": activity("q/y")}),
            ),
            // context activities of every kind; with the registration.
            (
                "s7",
                json!({"actor": agent("eve"), "verb": verb("experienced"), "object": activity("q/y"),
                          "context": {"registration": REGISTRATION, "contextActivities": {
                              "parent": [activity("q/parent")], "grouping": [activity("q/grouping")],
                              "category": [activity("q/category")], "other": [activity("q/other")]}}}),
            ),
            // a sub-statement about anna and activity q/sub.
            (
                "s8",
                json!({"actor": agent("eve"), "verb": verb("experienced"), "object": {
                              "objectType": "SubStatement", "actor": agent("anna"), "verb": verb("attended"),
                              "object": activity("q/sub")}}),
            ),
            // carl comments on s1 (a StatementRef): matches whatever s1 matches.
            (
                "s9",
                json!({"actor": agent("carl"), "verb": verb("commented"),
                          "object": {"objectType": "StatementRef", "id": ids["s1"]}}),
            ),
            // frank likes s9, which targets s1: the rule applies recursively.
            (
                "s10",
                json!({"actor": agent("frank"), "verb": verb("liked"),
                           "object": {"objectType": "StatementRef", "id": ids["s9"]}}),
            ),
        ];
        let mut order = Vec::new();
        for (name, body) in statements {
            let id = post_one(&client, &with_id(body, &ids[name])).await;
            assert_eq!(id, ids[name]);
            order.push(name);
        }
        Fixture {
            server,
            client,
            ids,
            order,
        }
    }

    fn name_of(&self, id: &str) -> String {
        self.ids
            .iter()
            .find(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.to_string())
            .unwrap_or_else(|| id.to_owned())
    }

    /// Names, newest first (the default order).
    fn newest_first(&self, names: &[&str]) -> Vec<String> {
        self.order
            .iter()
            .rev()
            .filter(|n| names.contains(n))
            .map(|n| n.to_string())
            .collect()
    }

    fn all(&self) -> Vec<&'static str> {
        self.order.clone()
    }

    fn authority(&self) -> String {
        json!({"objectType": "Agent", "account": {"homePage": self.server.base_url, "name": self.server.key}}).to_string()
    }
}

/// One query and the statements it must return (newest first).
struct Case {
    what: &'static str,
    query: Vec<(&'static str, String)>,
    expect: Vec<&'static str>,
}

fn case(what: &'static str, query: &[(&'static str, &str)], expect: &[&'static str]) -> Case {
    Case {
        what,
        query: query.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        expect: expect.to_vec(),
    }
}

#[tokio::test]
async fn every_filter_returns_exactly_the_matching_statements() {
    let f = Fixture::new().await;
    let (anna, bob, eve, carl) = (
        mbox_agent("anna"),
        mbox_agent("bob"),
        mbox_agent("eve"),
        mbox_agent("carl"),
    );
    let group = json!({"objectType": "Group", "mbox": "mailto:team@example.nl"}).to_string();
    let nobody = mbox_agent("nobody-at-all");
    let authority = f.authority();
    let all = f.all();
    let (x, y) = (activity_iri("q/x"), activity_iri("q/y"));
    let cases = vec![
        case("no filter", &[], &all),
        // agent: actor or object; s9/s10 target s1 (StatementRef rule); anna is
        // a member of the actor groups of s5 and s6 ("Groups that have members
        // which match the specified Agent ... are considered a match").
        case(
            "agent: actor or object agent",
            &[("agent", &anna)],
            &["s1", "s2", "s5", "s6", "s9", "s10"],
        ),
        case(
            "agent: bob as actor or group member",
            &[("agent", &bob)],
            &["s2", "s5"],
        ),
        case(
            "agent: identified group as actor",
            &[("agent", &group)],
            &["s5"],
        ),
        case(
            "agent: carl (actor of s3 and s9)",
            &[("agent", &carl)],
            &["s3", "s9", "s10"],
        ),
        case("agent: unknown agent", &[("agent", &nobody)], &[]),
        case(
            "agent: unknown agent, related",
            &[("agent", &nobody), ("related_agents", "true")],
            &[],
        ),
        case(
            "agent: the authority is not actor or object",
            &[("agent", &authority)],
            &[],
        ),
        // related_agents: actor, object, authority, instructor, team, group members, sub-statement.
        case(
            "related_agents: anna anywhere",
            &[("agent", &anna), ("related_agents", "true")],
            &["s1", "s2", "s3", "s4", "s5", "s6", "s8", "s9", "s10"],
        ),
        case(
            "related_agents: the team as team and actor",
            &[("agent", &group), ("related_agents", "true")],
            &["s4", "s5"],
        ),
        case(
            "related_agents: eve as anonymous group member and actor",
            &[("agent", &eve), ("related_agents", "true")],
            &["s6", "s7", "s8"],
        ),
        case(
            "related_agents: the authority of everything",
            &[("agent", &authority), ("related_agents", "true")],
            &all,
        ),
        case(
            "related_agents=false is the default",
            &[("agent", &bob), ("related_agents", "false")],
            &["s2", "s5"],
        ),
        // verb
        case(
            "verb",
            &[("verb", &verb_iri("experienced"))],
            &["s1", "s7", "s8", "s9", "s10"],
        ),
        case(
            "verb: sub-statement verbs do not count",
            &[("verb", &verb_iri("attended"))],
            &["s3", "s4", "s5", "s6"],
        ),
        case(
            "verb: unknown",
            &[("verb", "http://example.nl/verbs/never")],
            &[],
        ),
        // activity
        case(
            "activity: object",
            &[("activity", &x)],
            &["s1", "s5", "s9", "s10"],
        ),
        case(
            "activity: object y",
            &[("activity", &y)],
            &["s3", "s4", "s6", "s7"],
        ),
        case(
            "activity: context activities need related_activities",
            &[("activity", &activity_iri("q/parent"))],
            &[],
        ),
        case(
            "activity: sub-statement object needs related_activities",
            &[("activity", &activity_iri("q/sub"))],
            &[],
        ),
        case(
            "related_activities: parent",
            &[
                ("activity", &activity_iri("q/parent")),
                ("related_activities", "true"),
            ],
            &["s7"],
        ),
        case(
            "related_activities: grouping",
            &[
                ("activity", &activity_iri("q/grouping")),
                ("related_activities", "true"),
            ],
            &["s7"],
        ),
        case(
            "related_activities: category",
            &[
                ("activity", &activity_iri("q/category")),
                ("related_activities", "true"),
            ],
            &["s7"],
        ),
        case(
            "related_activities: other",
            &[
                ("activity", &activity_iri("q/other")),
                ("related_activities", "true"),
            ],
            &["s7"],
        ),
        case(
            "related_activities: sub-statement object",
            &[
                ("activity", &activity_iri("q/sub")),
                ("related_activities", "true"),
            ],
            &["s8"],
        ),
        case(
            "related_activities: object too",
            &[("activity", &x), ("related_activities", "true")],
            &["s1", "s5", "s9", "s10"],
        ),
        // registration
        case(
            "registration",
            &[("registration", REGISTRATION)],
            &["s1", "s7", "s9", "s10"],
        ),
        case(
            "registration: unknown",
            &[("registration", "6f1a8f0e-2222-4000-8000-000000000002")],
            &[],
        ),
        // combinations are AND
        case(
            "agent AND verb",
            &[("agent", &anna), ("verb", &verb_iri("experienced"))],
            &["s1", "s9", "s10"],
        ),
        case(
            "verb AND activity",
            &[("verb", &verb_iri("attended")), ("activity", &y)],
            &["s3", "s4", "s6"],
        ),
        case(
            "registration AND activity",
            &[("registration", REGISTRATION), ("activity", &y)],
            &["s7"],
        ),
        case(
            "agent AND verb, disjoint",
            &[("agent", &bob), ("verb", &verb_iri("experienced"))],
            &[],
        ),
        case(
            "related agent AND related activity AND verb",
            &[
                ("agent", &anna),
                ("related_agents", "true"),
                ("activity", &activity_iri("q/sub")),
                ("related_activities", "true"),
                ("verb", &verb_iri("experienced")),
            ],
            &["s8"],
        ),
        // spec: "Groups that have members which match the specified Agent ... are considered a match"
        case(
            "agent: member of the identified group actor (spec 2.1.3 agent)",
            &[("agent", &bob), ("verb", &verb_iri("attended"))],
            &["s5"],
        ),
        case(
            "agent: member of the anonymous group actor (spec 2.1.3 agent)",
            &[("agent", &eve), ("verb", &verb_iri("attended"))],
            &["s6"],
        ),
    ];

    let mut failures = Vec::new();
    for case in &cases {
        let query: Vec<(&str, &str)> = case.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = f.client.get_statements(&query).await.unwrap();
        if reply.status != StatusCode::OK {
            failures.push(format!(
                "{}: {:?} -> {} {}",
                case.what, case.query, reply.status, reply.text
            ));
            continue;
        }
        let got: Vec<String> = ids_of(&reply).iter().map(|id| f.name_of(id)).collect();
        let want = f.newest_first(&case.expect);
        if got != want {
            failures.push(format!(
                "{}: {:?}\n      expected {want:?}\n      got      {got:?}",
                case.what, case.query
            ));
        }
        assert_eq!(
            reply.body["more"],
            json!(""),
            "{}: everything fits one page",
            case.what
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} query cases failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

#[tokio::test]
async fn time_order_and_limit() {
    let f = Fixture::new().await;
    let stored: HashMap<&str, String> = {
        let mut map = HashMap::new();
        for name in &f.order {
            map.insert(*name, stored_of(&f.client, &f.ids[name]).await);
        }
        map
    };
    let names = |reply_ids: Vec<String>| -> Vec<String> {
        reply_ids.iter().map(|id| f.name_of(id)).collect()
    };
    let all_newest_first = f.newest_first(&f.all());

    // since is exclusive, until inclusive.
    let got = names(query_ids(&f.client, &[("since", &stored["s3"])]).await);
    assert_eq!(
        got,
        f.newest_first(&["s4", "s5", "s6", "s7", "s8", "s9", "s10"]),
        "since {} (exclusive)",
        stored["s3"]
    );
    let got = names(query_ids(&f.client, &[("until", &stored["s3"])]).await);
    assert_eq!(
        got,
        f.newest_first(&["s1", "s2", "s3"]),
        "until {} (inclusive)",
        stored["s3"]
    );
    let got = names(
        query_ids(
            &f.client,
            &[("since", &stored["s2"]), ("until", &stored["s5"])],
        )
        .await,
    );
    assert_eq!(got, f.newest_first(&["s3", "s4", "s5"]), "since AND until");
    let got = names(query_ids(&f.client, &[("since", &stored["s10"])]).await);
    assert!(got.is_empty(), "nothing after the newest: {got:?}");
    let got = names(query_ids(&f.client, &[("until", "2000-01-01T00:00:00Z")]).await);
    assert!(got.is_empty(), "nothing before 2000: {got:?}");
    // since/until apply to the referring statement itself (StatementRef rule).
    let got = names(
        query_ids(
            &f.client,
            &[("since", &stored["s8"]), ("activity", &activity_iri("q/x"))],
        )
        .await,
    );
    assert_eq!(
        got,
        f.newest_first(&["s9", "s10"]),
        "time filters apply to the referring statements"
    );
    // A timestamp with an offset means the same instant.
    let s3 = chrono::DateTime::parse_from_rfc3339(&stored["s3"]).unwrap();
    let shifted = s3
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339();
    let got = names(query_ids(&f.client, &[("until", &shifted)]).await);
    assert_eq!(
        got,
        f.newest_first(&["s1", "s2", "s3"]),
        "until {shifted} (same instant, +02:00)"
    );

    // Order: stored descending by default, ascending on request.
    assert_eq!(
        names(query_ids(&f.client, &[]).await),
        all_newest_first,
        "default: newest first"
    );
    assert_eq!(
        names(query_ids(&f.client, &[("ascending", "false")]).await),
        all_newest_first
    );
    let mut oldest_first = all_newest_first.clone();
    oldest_first.reverse();
    assert_eq!(
        names(query_ids(&f.client, &[("ascending", "true")]).await),
        oldest_first,
        "ascending=true: oldest first"
    );

    // limit
    let reply = f.client.get_statements(&[("limit", "3")]).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        names(ids_of(&reply)),
        all_newest_first[..3].to_vec(),
        "limit=3: the 3 newest"
    );
    assert_ne!(
        reply.body["more"],
        json!(""),
        "limit=3 of 10 has a next page"
    );
    let reply = f
        .client
        .get_statements(&[("limit", "3"), ("ascending", "true")])
        .await
        .unwrap();
    assert_eq!(
        names(ids_of(&reply)),
        oldest_first[..3].to_vec(),
        "limit=3 ascending: the 3 oldest"
    );
    assert_eq!(
        names(query_ids(&f.client, &[("limit", "0")]).await),
        all_newest_first,
        "limit=0: the server's maximum"
    );
    assert_eq!(
        names(query_ids(&f.client, &[("limit", "10")]).await),
        all_newest_first
    );
    for bad in [
        ("limit", "-1"),
        ("limit", "ten"),
        ("since", "yesterday"),
        ("ascending", "yes"),
        ("registration", "not-a-uuid"),
    ] {
        let reply = f.client.get_statements(&[bad]).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad:?}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn more_pagination_walks_every_statement_exactly_once() {
    let server = start();
    let client = server.client();
    let mut posted = Vec::new();
    // A batch, then singles: storing order is the batch order, then the singles.
    let batch: Vec<Value> = (0..10)
        .map(|i| statement("anna", "attended", &format!("page/{i}")))
        .collect();
    posted.extend(post_ok(&client, &json!(batch)).await);
    for i in 10..23 {
        let verb = if i % 2 == 0 {
            "attended"
        } else {
            "experienced"
        };
        posted.push(post_one(&client, &statement("bob", verb, &format!("page/{i}"))).await);
    }
    let newest_first: Vec<String> = posted.iter().rev().cloned().collect();

    async fn walk(client: &Xapi, query: &[(&str, &str)]) -> (Vec<String>, usize) {
        let mut reply = client.get_statements(query).await.unwrap();
        let mut ids = Vec::new();
        let mut pages = 0;
        loop {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            pages += 1;
            assert!(pages < 100, "pagination does not end");
            ids.extend(ids_of(&reply));
            let more = reply.body["more"]
                .as_str()
                .expect("more is a string")
                .to_owned();
            if more.is_empty() {
                return (ids, pages);
            }
            reply = client.get_more(&more).await.unwrap();
        }
    }

    let (ids, pages) = walk(&client, &[("limit", "4")]).await;
    assert_eq!(ids, newest_first, "limit=4 pages, newest first");
    assert_eq!(pages, 6, "23 statements in pages of 4");
    let (ids, _) = walk(&client, &[("limit", "4"), ("ascending", "true")]).await;
    assert_eq!(ids, posted, "limit=4 pages, ascending");
    let (ids, _) = walk(&client, &[("limit", "1")]).await;
    assert_eq!(ids, newest_first, "limit=1 pages");
    let (ids, pages) = walk(&client, &[("limit", "23")]).await;
    assert_eq!(
        (ids.len(), pages),
        (23, 1),
        "exactly one full page needs no next page"
    );

    // With a filter, pages hold only matches.
    let experienced: Vec<String> = (10..23)
        .filter(|i| i % 2 == 1)
        .map(|i| posted[i].clone())
        .rev()
        .collect();
    let (ids, _) = walk(
        &client,
        &[("limit", "2"), ("verb", &verb_iri("experienced"))],
    )
    .await;
    assert_eq!(ids, experienced, "filtered pages");

    // Statements stored while walking don't disturb the walk.
    let first = client.get_statements(&[("limit", "5")]).await.unwrap();
    let mut ids = ids_of(&first);
    post_one(&client, &statement("carl", "attended", "page/late")).await;
    let mut more = first.body["more"].as_str().unwrap().to_owned();
    while !more.is_empty() {
        let reply = client.get_more(&more).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        ids.extend(ids_of(&reply));
        more = reply.body["more"].as_str().unwrap().to_owned();
    }
    assert_eq!(
        ids, newest_first,
        "a walk begun before a write sees neither duplicates nor gaps"
    );
}

#[tokio::test]
async fn formats_ids_exact_and_canonical() {
    let server = start();
    let client = server.client();
    let sent = json!({
        "actor": {"objectType": "Agent", "name": "Anna de Vries", "mbox": "mailto:anna@example.nl"},
        "verb": {"id": verb_iri("experienced"), "display": {"nl-NL": "ervaren", "en-US": "experienced"}},
        "object": {"objectType": "Activity", "id": activity_iri("format/1"), "definition": {
            "name": {"nl-NL": "Cursus", "en-US": "Course"},
            "description": {"nl-NL": "Een cursus", "en-US": "A course"},
            "type": "http://adlnet.gov/expapi/activities/course"}}
    });
    let id = post_one(&client, &sent).await;

    for (how, query) in [
        ("single", vec![("statementId", id.as_str())]),
        ("query", vec![]),
    ] {
        let get = |format: &'static str, language: Option<&'static str>| {
            let mut query = query.clone();
            query.push(("format", format));
            let mut request = client
                .request(reqwest::Method::GET, "/statements")
                .query(&query);
            if let Some(language) = language {
                request = request.header("Accept-Language", language);
            }
            Xapi::send(request)
        };
        let first = |reply: &lrs_blackbox_tests::Reply| -> Value {
            assert_eq!(reply.status, StatusCode::OK, "{how}: {}", reply.text);
            if reply.body.get("statements").is_some() {
                reply.body["statements"][0].clone()
            } else {
                reply.body.clone()
            }
        };

        let exact = first(&get("exact", None).await.unwrap());
        assert_eq!(exact["actor"], sent["actor"], "{how} exact actor");
        assert_eq!(exact["verb"], sent["verb"], "{how} exact verb");
        assert_eq!(exact["object"], sent["object"], "{how} exact object");

        let ids = first(&get("ids", None).await.unwrap());
        assert_eq!(
            ids["actor"]["mbox"],
            json!("mailto:anna@example.nl"),
            "{how} ids keeps the identifier"
        );
        assert!(
            ids["actor"].get("name").is_none(),
            "{how} ids drops the agent's name: {}",
            ids["actor"]
        );
        assert!(
            ids["verb"].get("display").is_none(),
            "{how} ids drops verb display: {}",
            ids["verb"]
        );
        assert_eq!(ids["verb"]["id"], json!(verb_iri("experienced")));
        assert!(
            ids["object"].get("definition").is_none(),
            "{how} ids drops the definition: {}",
            ids["object"]
        );
        assert_eq!(ids["object"]["id"], json!(activity_iri("format/1")));

        for (language, verb, name, description) in [
            ("nl-NL", "ervaren", "Cursus", "Een cursus"),
            ("en-US", "experienced", "Course", "A course"),
            (
                "fr-FR;q=0.9, en-US;q=0.5",
                "experienced",
                "Course",
                "A course",
            ),
            ("nl", "ervaren", "Cursus", "Een cursus"),
        ] {
            let canonical = first(&get("canonical", Some(language)).await.unwrap());
            assert_eq!(
                canonical["verb"]["display"],
                json!({ language_key(verb): verb }),
                "{how} canonical {language}"
            );
            assert_eq!(
                canonical["object"]["definition"]["name"],
                json!({ language_key(verb): name }),
                "{how} {language}"
            );
            assert_eq!(
                canonical["object"]["definition"]["description"],
                json!({ language_key(verb): description }),
                "{how} {language}"
            );
            assert_eq!(
                canonical["actor"], sent["actor"],
                "{how} canonical keeps agents as sent"
            );
        }
        let reply = get("full", None).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{how}: format=full is not a format: {}",
            reply.text
        );
    }
}

fn language_key(verb: &str) -> &'static str {
    if verb == "ervaren" {
        "nl-NL"
    } else {
        "en-US"
    }
}

#[tokio::test]
async fn statement_id_rules_and_headers() {
    let server = start();
    let client = server.client();
    let id = post_one(&client, &statement("anna", "experienced", "headers/1")).await;
    let stored = micros(&stored_of(&client, &id).await);

    // statementId goes only with format and attachments.
    let verb = verb_iri("experienced");
    for (what, query) in [
        (
            "statementId + verb",
            vec![("statementId", id.as_str()), ("verb", verb.as_str())],
        ),
        (
            "statementId + limit",
            vec![("statementId", id.as_str()), ("limit", "1")],
        ),
        (
            "statementId + voidedStatementId",
            vec![
                ("statementId", id.as_str()),
                ("voidedStatementId", id.as_str()),
            ],
        ),
        (
            "voidedStatementId + since",
            vec![
                ("voidedStatementId", id.as_str()),
                ("since", "2020-01-01T00:00:00Z"),
            ],
        ),
        ("statementId not a uuid", vec![("statementId", "42")]),
    ] {
        let reply = client.get_statements(&query).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.text
        );
    }
    for query in [
        vec![("statementId", id.as_str()), ("format", "ids")],
        vec![("statementId", id.as_str()), ("attachments", "false")],
    ] {
        let reply = client.get_statements(&query).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{query:?}: {}", reply.text);
        assert_eq!(reply.body["id"], json!(id));
    }
    let reply = get_by_id(&client, &new_id()).await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "unknown statementId: {}",
        reply.text
    );

    // X-Experience-API-Consistent-Through: on queries and single GETs, an ISO
    // timestamp no earlier than what was stored before.
    for query in [
        vec![],
        vec![("statementId", id.as_str())],
        vec![("verb", "http://example.nl/none")],
    ] {
        let reply = client.get_statements(&query).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{query:?}: {}", reply.text);
        let header = reply
            .headers
            .get("X-Experience-API-Consistent-Through")
            .unwrap_or_else(|| panic!("{query:?}: no X-Experience-API-Consistent-Through header"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            micros(&header) >= stored,
            "{query:?}: consistent through {header} is not before the stored statement"
        );
        assert!(
            reply
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json")),
            "{query:?}: json"
        );
    }

    // HEAD: the same headers, no body.
    for query in [vec![], vec![("statementId", id.as_str())]] {
        let reply = Xapi::send(
            client
                .request(reqwest::Method::HEAD, "/statements")
                .query(&query),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "HEAD {query:?}");
        assert!(
            reply.text.is_empty(),
            "HEAD {query:?} has no body: {:?}",
            reply.text
        );
        assert!(
            reply
                .headers
                .contains_key("X-Experience-API-Consistent-Through"),
            "HEAD {query:?} headers"
        );
        assert!(
            reply.headers.contains_key("X-Experience-API-Version"),
            "HEAD {query:?} headers"
        );
    }
    let reply = Xapi::send(
        client
            .request(reqwest::Method::HEAD, "/statements")
            .query(&[("statementId", new_id())]),
    )
    .await
    .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "HEAD of an unknown statement"
    );
}

#[tokio::test]
async fn statement_refs_match_the_filters_of_their_targets_even_when_they_arrive_first() {
    let server = start();
    let client = server.client();
    let target = new_id();
    // The referring statement comes first; its target later.
    let early_ref = post_one(
        &client,
        &json!({"actor": agent("carl"), "verb": verb("commented"), "object": {"objectType": "StatementRef", "id": target}}),
    )
    .await;
    let chained = post_one(
        &client,
        &json!({"actor": agent("dave"), "verb": verb("liked"), "object": {"objectType": "StatementRef", "id": early_ref}}),
    )
    .await;
    let late_activity = activity_iri("ref/late");
    assert!(
        query_ids(&client, &[("activity", &late_activity)])
            .await
            .is_empty(),
        "no target yet, no match"
    );
    post_one(
        &client,
        &with_id(statement("anna", "passed", "ref/late"), &target),
    )
    .await;

    let want = vec![target.clone(), chained.clone(), early_ref.clone()];
    assert_eq!(
        query_ids(&client, &[("activity", &late_activity)]).await,
        want,
        "activity of the late target"
    );
    assert_eq!(
        query_ids(&client, &[("agent", &mbox_agent("anna"))]).await,
        want,
        "agent of the late target"
    );
    assert_eq!(
        query_ids(&client, &[("verb", &verb_iri("passed"))]).await,
        want,
        "verb of the late target"
    );
    // The referring statements still match their own terms.
    // (and what they match, their referrers match in turn: `chained` targets `early_ref`)
    assert_eq!(
        query_ids(&client, &[("verb", &verb_iri("commented"))]).await,
        vec![chained.clone(), early_ref.clone()]
    );
    assert_eq!(
        query_ids(&client, &[("agent", &mbox_agent("dave"))]).await,
        vec![chained.clone()]
    );
    // A StatementRef in context does not count.
    let in_context = post_one(
        &client,
        &json!({"actor": agent("eve"), "verb": verb("experienced"), "object": activity("ref/other"),
                "context": {"statement": {"objectType": "StatementRef", "id": target}}}),
    )
    .await;
    let got = query_ids(&client, &[("activity", &late_activity)]).await;
    assert!(
        !got.contains(&in_context),
        "context StatementRefs do not pass filters on: {got:?}"
    );
}
