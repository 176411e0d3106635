//! Voiding (Data 2.3.2, Communication 2.1.4): voided statements leave GET by
//! statementId and every query, stay reachable by voidedStatementId, and
//! voiding statements themselves are ordinary, unvoidable statements.

use crate::common::*;
use lrs_blackbox_tests::{statement, StatusCode, Xapi};
use serde_json::{json, Value};

fn voiding(target: &str) -> Value {
    json!({
        "actor": {"objectType": "Agent", "name": "Admin", "mbox": "mailto:admin@example.nl"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": target}
    })
}

async fn status_by(client: &Xapi, key: &str, id: &str) -> StatusCode {
    client.get_statements(&[(key, id)]).await.unwrap().status
}

#[tokio::test]
async fn voiding_hides_the_target_but_not_the_voiding_statement() {
    let server = start();
    let client = server.client();
    let target = post_one(&client, &statement("anna", "experienced", "void/1")).await;
    let bystander = post_one(&client, &statement("anna", "experienced", "void/2")).await;
    assert_eq!(
        status_by(&client, "voidedStatementId", &target).await,
        StatusCode::NOT_FOUND,
        "not voided yet"
    );

    let voider = post_one(&client, &voiding(&target)).await;

    assert_eq!(
        status_by(&client, "statementId", &target).await,
        StatusCode::NOT_FOUND,
        "voided: gone by statementId"
    );
    let reply = client
        .get_statements(&[("voidedStatementId", &target)])
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "voidedStatementId returns it: {}",
        reply.text
    );
    assert_eq!(reply.body["id"], json!(target));
    assert_eq!(reply.body["object"]["id"], json!(activity_iri("void/1")));
    assert_eq!(
        status_by(&client, "statementId", &voider).await,
        StatusCode::OK,
        "the voiding statement is there"
    );
    assert_eq!(
        status_by(&client, "voidedStatementId", &voider).await,
        StatusCode::NOT_FOUND,
        "it is not voided"
    );
    assert_eq!(
        status_by(&client, "voidedStatementId", &bystander).await,
        StatusCode::NOT_FOUND,
        "not voided"
    );

    // Queries: the target is gone; the voiding statement is returned, also
    // for the target's filters (it targets the target by StatementRef).
    for (what, query) in [
        ("no filter", vec![]),
        (
            "target's activity",
            vec![("activity", activity_iri("void/1"))],
        ),
        ("target's agent", vec![("agent", mbox_agent("anna"))]),
        ("target's verb", vec![("verb", verb_iri("experienced"))]),
    ] {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let ids = query_ids(&client, &query).await;
        assert!(
            !ids.contains(&target),
            "{what}: the voided statement is not returned: {ids:?}"
        );
        assert!(
            ids.contains(&voider),
            "{what}: the voiding statement is returned: {ids:?}"
        );
    }
    assert_eq!(
        query_ids(&client, &[("agent", &mbox_agent("anna"))]).await,
        vec![voider.clone(), bystander.clone()],
        "anna's statements: the voiding statement and the one not voided"
    );

    // Voiding the voiding statement does not void it (a voiding statement
    // cannot be voided); the second voiding statement is stored normally.
    let second = post_one(&client, &voiding(&voider)).await;
    assert_eq!(
        status_by(&client, "statementId", &voider).await,
        StatusCode::OK,
        "a voiding statement stays"
    );
    assert_eq!(
        status_by(&client, "voidedStatementId", &voider).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_by(&client, "statementId", &second).await,
        StatusCode::OK
    );
    let ids = query_ids(&client, &[]).await;
    assert_eq!(
        ids,
        vec![second.clone(), voider.clone(), bystander.clone()],
        "everything but the voided target"
    );

    // Voiding the same target twice is harmless.
    let again = post_one(&client, &voiding(&target)).await;
    assert_eq!(
        status_by(&client, "statementId", &again).await,
        StatusCode::OK
    );
    assert_eq!(
        status_by(&client, "voidedStatementId", &target).await,
        StatusCode::OK
    );
    assert_eq!(
        status_by(&client, "statementId", &target).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_voiding_statement_needs_a_statement_ref() {
    let server = start();
    let client = server.client();
    for (what, object) in [
        (
            "an activity",
            json!({"objectType": "Activity", "id": activity_iri("void/not-a-ref")}),
        ),
        (
            "an agent",
            json!({"objectType": "Agent", "mbox": "mailto:anna@example.nl"}),
        ),
    ] {
        let mut body = voiding(&new_id());
        body["object"] = object;
        let id = new_id();
        let reply = client
            .post_statements(&with_id(body.clone(), &id))
            .await
            .unwrap();
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "voided verb with {what} as object: {}",
            reply.text
        );
        let reply = client.put_statement(&id, &body).await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "PUT: voided verb with {what} as object: {}",
            reply.text
        );
        assert_eq!(
            status_by(&client, "statementId", &id).await,
            StatusCode::NOT_FOUND,
            "{what}: not stored"
        );
    }
    assert!(query_ids(&client, &[]).await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn voiding_a_statement_that_arrives_later_hides_it_too() {
    let server = start();
    let client = server.client();
    let target = new_id();
    let voider = post_one(&client, &voiding(&target)).await;
    assert_eq!(
        status_by(&client, "voidedStatementId", &target).await,
        StatusCode::NOT_FOUND,
        "nothing to return yet"
    );

    // The target arrives after its voiding statement, by POST; another by PUT.
    post_ok(
        &client,
        &with_id(statement("anna", "experienced", "void/late"), &target),
    )
    .await;
    let put_target = new_id();
    post_one(&client, &voiding(&put_target)).await;
    let reply = client
        .put_statement(
            &put_target,
            &statement("bob", "experienced", "void/late-put"),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);

    for late in [&target, &put_target] {
        assert_eq!(
            status_by(&client, "statementId", late).await,
            StatusCode::NOT_FOUND,
            "{late} arrived voided"
        );
        assert_eq!(
            status_by(&client, "voidedStatementId", late).await,
            StatusCode::OK,
            "{late} by voidedStatementId"
        );
    }
    for activity in ["void/late", "void/late-put"] {
        let ids = query_ids(&client, &[("activity", &activity_iri(activity))]).await;
        assert!(
            !ids.contains(&target) && !ids.contains(&put_target),
            "{activity}: voided ones not returned: {ids:?}"
        );
    }
    let ids = query_ids(&client, &[("activity", &activity_iri("void/late"))]).await;
    assert_eq!(
        ids,
        vec![voider.clone()],
        "the voiding statement matches its late target's activity"
    );
    let all = query_ids(&client, &[]).await;
    assert_eq!(all.len(), 2, "only the two voiding statements: {all:?}");

    // Re-sending the voided statement changes nothing.
    post_ok(
        &client,
        &with_id(statement("anna", "experienced", "void/late"), &target),
    )
    .await;
    assert_eq!(
        status_by(&client, "statementId", &target).await,
        StatusCode::NOT_FOUND,
        "still voided after re-send"
    );
}
