//! Writing statements (Communication 2.1.1 PUT, 2.1.2 POST): ids, idempotent
//! re-sends, conflicts, batch atomicity and the properties the LRS assigns.

use crate::common::*;
use lrs_blackbox_tests::{statement, StatusCode};
use serde_json::json;

#[tokio::test]
async fn post_single_and_batch_answer_ids_in_order() {
    let server = start();
    let client = server.client();

    // A single statement without id: the LRS makes one up and answers it.
    let generated = post_one(&client, &statement("anna", "experienced", "write/single")).await;
    assert!(
        uuid::Uuid::parse_str(&generated).is_ok(),
        "{generated} is a uuid"
    );
    let fetched = get_by_id(&client, &generated).await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.text);
    assert_eq!(fetched.body["id"], json!(generated));

    // A single statement with id: that id comes back.
    let own = new_id();
    assert_eq!(
        post_ok(
            &client,
            &with_id(statement("anna", "experienced", "write/own"), &own)
        )
        .await,
        vec![own.clone()]
    );

    // A batch: one id per statement, in the order sent, given or generated.
    let (first, third, fifth) = (new_id(), new_id(), new_id());
    let batch = json!([
        with_id(statement("anna", "attended", "write/b1"), &first),
        statement("bob", "attended", "write/b2"),
        with_id(statement("carl", "attended", "write/b3"), &third),
        statement("dave", "attended", "write/b4"),
        with_id(statement("eve", "attended", "write/b5"), &fifth),
    ]);
    let ids = post_ok(&client, &batch).await;
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(
        (&ids[0], &ids[2], &ids[4]),
        (&first, &third, &fifth),
        "{ids:?}"
    );
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "generated ids are distinct: {ids:?}");
    for (i, id) in ids.iter().enumerate() {
        let reply = get_by_id(&client, id).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "batch statement {i} ({id}) is retrievable: {}",
            reply.text
        );
        assert_eq!(
            reply.body["object"]["id"],
            json!(activity_iri(&format!("write/b{}", i + 1)))
        );
    }
}

#[tokio::test]
async fn put_statement_rules() {
    let server = start();
    let client = server.client();
    let id = new_id();
    let original = statement("anna", "experienced", "write/put");

    // PUT with statementId: 204 and no body.
    let reply = client.put_statement(&id, &original).await.unwrap();
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(reply.text.is_empty(), "204 has no body: {:?}", reply.text);
    let fetched = get_by_id(&client, &id).await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.text);
    assert_eq!(fetched.body["id"], json!(id));

    // PUT without statementId: 400.
    let reply = lrs_blackbox_tests::Xapi::send(
        client
            .request(reqwest::Method::PUT, "/statements")
            .json(&original),
    )
    .await
    .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "PUT without statementId: {}",
        reply.text
    );

    // PUT whose body id differs from statementId: 400, and neither id is stored.
    let (param_id, body_id) = (new_id(), new_id());
    let reply = client
        .put_statement(
            &param_id,
            &with_id(statement("anna", "experienced", "write/mismatch"), &body_id),
        )
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "body id != statementId: {}",
        reply.text
    );
    for unknown in [&param_id, &body_id] {
        assert_eq!(
            get_by_id(&client, unknown).await.status,
            StatusCode::NOT_FOUND,
            "{unknown} was not stored"
        );
    }

    // PUT whose body id equals statementId: fine.
    let matching = new_id();
    let reply = client
        .put_statement(
            &matching,
            &with_id(statement("anna", "experienced", "write/match"), &matching),
        )
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "body id == statementId: {}",
        reply.text
    );

    // The same statement again, by PUT and by POST: no error and no duplicate.
    let reply = client.put_statement(&id, &original).await.unwrap();
    assert!(
        matches!(reply.status, StatusCode::NO_CONTENT | StatusCode::OK),
        "same id and content again by PUT: {} {}",
        reply.status,
        reply.text
    );
    assert_eq!(
        post_ok(&client, &with_id(original.clone(), &id)).await,
        vec![id.clone()],
        "same again by POST"
    );
    let matches = query_ids(&client, &[("activity", &activity_iri("write/put"))]).await;
    assert_eq!(matches, vec![id.clone()], "one statement, not three");

    // Same id, different content: 409 for PUT and POST, and the original stays.
    let different = statement("anna", "completed", "write/put");
    let reply = client.put_statement(&id, &different).await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::CONFLICT,
        "PUT same id, different content: {}",
        reply.text
    );
    let reply = client
        .post_statements(&with_id(different.clone(), &id))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::CONFLICT,
        "POST same id, different content: {}",
        reply.text
    );
    let fetched = get_by_id(&client, &id).await;
    assert_eq!(
        fetched.body["verb"]["id"],
        json!(verb_iri("experienced")),
        "statements are immutable"
    );

    // A batch holding a conflicting statement stores none of it.
    let fresh = new_id();
    let reply = client
        .post_statements(&json!([
            with_id(statement("bob", "attended", "write/fresh"), &fresh),
            with_id(different, &id)
        ]))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::CONFLICT,
        "batch with a conflict: {}",
        reply.text
    );
    assert_eq!(
        get_by_id(&client, &fresh).await.status,
        StatusCode::NOT_FOUND,
        "the batch is atomic"
    );
}

#[tokio::test]
async fn a_batch_with_one_bad_statement_stores_nothing() {
    let server = start();
    let client = server.client();

    let ids: Vec<String> = (0..5).map(|_| new_id()).collect();
    let mut batch: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| with_id(statement("anna", "attended", &format!("atomic/{i}")), id))
        .collect();
    batch[3]["actor"]["mbox"] = json!("anna-without-mailto@example.nl");
    let reply = client.post_statements(&json!(batch)).await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    for id in &ids {
        assert_eq!(
            get_by_id(&client, id).await.status,
            StatusCode::NOT_FOUND,
            "{id} of the rejected batch is absent"
        );
    }

    // The same id twice with different content in one batch: 400, nothing stored.
    let twice = new_id();
    let other = new_id();
    let batch = json!([
        with_id(statement("bob", "attended", "atomic/other"), &other),
        with_id(statement("bob", "attended", "atomic/twice"), &twice),
        with_id(statement("bob", "completed", "atomic/twice"), &twice),
    ]);
    let reply = client.post_statements(&batch).await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "same id twice in a batch, different content: {}",
        reply.text
    );
    for id in [&twice, &other] {
        assert_eq!(
            get_by_id(&client, id).await.status,
            StatusCode::NOT_FOUND,
            "{id} of the rejected batch is absent"
        );
    }
    assert!(
        query_ids(&client, &[]).await.is_empty(),
        "nothing at all was stored"
    );
}

#[tokio::test]
async fn the_lrs_assigns_stored_authority_version_and_timestamp() {
    let server = start();
    let client = server.client();

    let mut sent = statement("anna", "experienced", "assigned/1");
    sent["stored"] = json!("2001-01-01T00:00:00.000Z");
    sent["authority"] =
        json!({"objectType": "Agent", "name": "Impostor", "mbox": "mailto:impostor@example.nl"});
    let before = now_micros();
    let id = post_one(&client, &sent).await;
    let after = now_micros();
    let got = get_by_id(&client, &id).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    let statement_json = &got.body;

    let stored = micros(statement_json["stored"].as_str().expect("stored is set"));
    assert!(
        before - 1_000_000 <= stored && stored <= after + 1_000_000,
        "stored {} is the LRS's time of storing, not the client's 2001 value",
        statement_json["stored"]
    );
    assert_eq!(
        statement_json["timestamp"], statement_json["stored"],
        "timestamp defaults to stored"
    );

    let authority = &statement_json["authority"];
    assert_eq!(
        authority["account"]["name"],
        json!(server.key),
        "authority is the credential: {authority}"
    );
    assert_eq!(
        authority["name"],
        json!("test"),
        "authority carries the credential's name: {authority}"
    );
    assert!(
        authority.get("mbox").is_none(),
        "the client's authority is replaced: {authority}"
    );

    assert_eq!(
        statement_json["version"],
        json!("1.0.0"),
        "a 1.0.x statement without version gets 1.0.0"
    );

    // A timestamp the client sends is kept (as the same instant); a version too.
    let mut timed = statement("anna", "experienced", "assigned/2");
    timed["timestamp"] = json!("2024-03-01T12:00:00.250+02:00");
    timed["version"] = json!("1.0.3");
    let id = post_one(&client, &timed).await;
    let got = get_by_id(&client, &id).await;
    assert_eq!(
        micros(got.body["timestamp"].as_str().expect("timestamp")),
        micros("2024-03-01T10:00:00.250Z"),
        "the client's timestamp is kept: {}",
        got.body["timestamp"]
    );
    assert_ne!(got.body["timestamp"], got.body["stored"]);
    assert_eq!(
        got.body["version"],
        json!("1.0.3"),
        "the client's version is kept"
    );

    // stored strictly increases in storing order.
    let later = post_one(&client, &statement("anna", "experienced", "assigned/3")).await;
    assert!(
        micros(&stored_of(&client, &later).await) > stored,
        "stored increases"
    );
}
