//! The public validation API beyond statement fixtures: the `agent`
//! parameter, the data-type predicates the HTTP layer uses on query
//! parameters, batch paths, and repeated use of the compiled schemas.
//! Pure function calls; no I/O, no HTTP.

use serde_json::json;
use xapi::validate::{
    is_duration, is_iri, is_language_tag, is_uuid, parse_timestamp, validate_agent_param,
    validate_statement, validate_statement_batch,
};
use xapi::XapiVersion::{V1_0_3, V2_0_0};

#[test]
fn agent_parameter_is_an_agent_or_an_identified_group() {
    for ok in [
        json!({"mbox": "mailto:ada@example.com"}),
        json!({"objectType": "Agent", "account": {"homePage": "https://example.com", "name": "ada"}}),
        json!({"objectType": "Group", "openid": "https://openid.example.org/team"}),
        json!({"objectType": "Group", "mbox_sha1sum": "cd9b00a5611f94eaa7b1661edab976068e364975", "member": [{"mbox": "mailto:a@example.com"}]}),
    ] {
        for v in [V1_0_3, V2_0_0] {
            assert_eq!(validate_agent_param(&ok, v), Ok(()), "{ok}");
        }
    }
    let cases = [
        (json!({"name": "nobody"}), "agent.exactly-one-ifi", "$"),
        (
            json!({"objectType": "Group", "member": [{"mbox": "mailto:a@example.com"}]}),
            "agent.exactly-one-ifi",
            "$",
        ),
        (
            json!({"mbox": "mailto:a@example.com", "openid": "https://openid.example.org/a"}),
            "agent.exactly-one-ifi",
            "$",
        ),
        (
            json!({"mbox": "a@example.com"}),
            "agent.mbox-format",
            "$.mbox",
        ),
        (
            json!({"account": {"homePage": "https://example.com"}}),
            "statement.missing-property",
            "$.account.name",
        ),
        (
            json!({"mbox": "mailto:a@example.com", "extra": 1}),
            "statement.unknown-property",
            "$.extra",
        ),
        (json!("not JSON object"), "statement.wrong-type", "$"),
        (json!(true), "statement.wrong-type", "$"),
    ];
    for (agent, rule, path) in cases {
        let e = validate_agent_param(&agent, V1_0_3).expect_err(&agent.to_string());
        assert_eq!(
            (e.rule.as_str(), e.path.as_str()),
            (rule, path),
            "{agent}: {e}"
        );
        assert_eq!(e.under("?agent").path, path.replacen('$', "?agent", 1));
    }
}

#[test]
fn data_type_predicates_for_query_parameters() {
    assert!(is_uuid("e05aa883-acaf-40ad-bf54-02c8ce485fb0"));
    assert!(!is_uuid("e05aa883acaf40adbf5402c8ce485fb0"));
    assert!(is_iri("http://adlnet.gov/expapi/verbs/voided"));
    assert!(!is_iri("voided"));
    assert!(is_language_tag("en-US") && !is_language_tag("en US"));
    assert!(is_duration("PT1H0M0.1S") && !is_duration("PT"));
    let since = parse_timestamp("2013-05-18T05:32:34.804+01:00").expect("timestamp");
    assert_eq!(since.to_utc().to_rfc3339(), "2013-05-18T04:32:34.804+00:00");
    assert!(parse_timestamp("2013-05-18").is_none());
}

#[test]
fn batch_errors_name_the_item() {
    let ok = json!({"actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "http://example.com/v"}, "object": {"id": "http://example.com/a"}});
    let mut bad = ok.clone();
    bad["result"] = json!({"score": {"scaled": 2}});
    let e =
        validate_statement_batch(&json!([ok, ok, bad]), V2_0_0).expect_err("invalid third item");
    assert_eq!(
        (e.rule.as_str(), e.path.as_str()),
        ("score.scaled-range", "$[2].result.score.scaled")
    );
    assert_eq!(validate_statement_batch(&json!([]), V2_0_0), Ok(()));
    assert_eq!(validate_statement_batch(&ok, V1_0_3), Ok(()));
}

/// Not timed: validates a few thousand statements through the same
/// compiled schemas, valid and invalid alike, to exercise the shared state
/// (and from several threads, as the server will).
#[test]
fn many_statements_share_the_compiled_validators() {
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    let statement = json!({
                        "id": format!("fd41c918-b88b-4b20-a0a5-{:012x}", u64::from(t) << 32 | u64::from(i)),
                        "actor": {"objectType": "Agent", "mbox": format!("mailto:learner{i}@example.com")},
                        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
                        "object": {"id": format!("http://example.com/activities/{i}"), "definition": {"name": {"en-US": "A"}}},
                        "result": {"score": {"scaled": f64::from(i % 3) / 2.0 - if i % 7 == 0 { 5.0 } else { 0.0 }}},
                        "timestamp": "2024-03-11T14:02:33.123Z"
                    });
                    let expected_ok = i % 7 != 0;
                    for v in [V1_0_3, V2_0_0] {
                        assert_eq!(validate_statement(&statement, v).is_ok(), expected_ok, "{statement}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("validation thread");
    }
}
