//! Signed statements (Data 2.6) against a real server: the fixtures of
//! issue 22, each a multipart request built when the test runs with an RSA
//! key and a self-signed X.509 certificate generated then (no key is kept
//! in the repository). A good signature with `x5c` is stored with its JWS;
//! a tampered signature, a wrong algorithm, a malformed certificate and a
//! payload that differs from the statement are each refused with 400
//! naming the rule (docs/security.md, "Signed statements").

use crate::common::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use lrs_blackbox_tests::{Reply, StatusCode, Xapi};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{json, Value};
use sha2::Digest;

const SIGNATURE: &str = "http://adlnet.gov/expapi/attachments/signature";

/// An RSA key and its self-signed certificate (base64 DER, as `x5c` has it).
struct Signer_ {
    key: rsa::RsaPrivateKey,
    certificate: String,
}

fn signer() -> Signer_ {
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("rsa key");
    let pem = key.to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
    let pair = rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
        .expect("rcgen takes the key");
    let certificate = rcgen::CertificateParams::new(vec!["course.example.nl".into()])
        .expect("params")
        .self_signed(&pair)
        .expect("certificate");
    Signer_ {
        key,
        certificate: STANDARD.encode(certificate.der()),
    }
}

/// A compact JWS of `payload` with `header`, signed RS256/384/512 as
/// `algorithm` says (whatever the header claims).
fn jws(signer: &Signer_, header: &Value, payload: &Value, algorithm: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let key = signer.key.clone();
    let signature = match algorithm {
        "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(key)
            .sign(input.as_bytes())
            .to_vec(),
        "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(key)
            .sign(input.as_bytes())
            .to_vec(),
        _ => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
            .sign(input.as_bytes())
            .to_vec(),
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// POSTs `statement` with the JWS as its signature attachment
/// (multipart/mixed, Communication 1.5.2).
async fn post_signed(client: &Xapi, statement: &Value, jws: &str) -> Reply {
    let sha2 = hex(&sha2::Sha256::digest(jws.as_bytes()));
    let mut statement = statement.clone();
    statement["attachments"] = json!([{
        "usageType": SIGNATURE,
        "display": {"en-US": "signature"},
        "contentType": "application/octet-stream",
        "length": jws.len(),
        "sha2": sha2
    }]);
    let boundary = "signed-statement-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Type: application/json\r\n\r\n{statement}\r\n\
         --{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\
         X-Experience-API-Hash: {sha2}\r\n\r\n{jws}\r\n--{boundary}--\r\n"
    );
    Xapi::send(
        client
            .request(reqwest::Method::POST, "/statements")
            .header(
                "Content-Type",
                format!("multipart/mixed; boundary={boundary}"),
            )
            .body(body),
    )
    .await
    .expect("POST signed statement")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_refused(reply: &Reply, rule: &str, case: &str) {
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{case}: {}",
        reply.text
    );
    assert_eq!(reply.body["error"]["rule"], rule, "{case}: {}", reply.text);
    assert_eq!(
        reply.body["error"]["path"], "$.attachments[0]",
        "{case}: {}",
        reply.text
    );
}

#[tokio::test]
async fn signatures_are_checked_against_their_certificate() {
    let server = start();
    let client = server.client();
    let signer = signer();
    let statement = |name: &str| {
        with_id(
            lrs_blackbox_tests::statement(name, "passed", "signatures/exam"),
            &new_id(),
        )
    };
    let x5c = json!([signer.certificate]);

    // A good signature with x5c, in each algorithm: stored, with its JWS.
    for algorithm in ["RS256", "RS384", "RS512"] {
        let good = statement("good");
        let token = jws(
            &signer,
            &json!({"alg": algorithm, "x5c": x5c}),
            &good,
            algorithm,
        );
        let reply = post_signed(&client, &good, &token).await;
        assert_eq!(reply.status, StatusCode::OK, "{algorithm}: {}", reply.text);
        let id = good["id"].as_str().unwrap();
        let read = Xapi::send(
            client
                .request(reqwest::Method::GET, "/statements")
                .query(&[("statementId", id), ("attachments", "true")]),
        )
        .await
        .unwrap();
        assert_eq!(read.status, StatusCode::OK);
        assert!(read.text.contains(&token), "the JWS comes back");
    }

    // A tampered signature: one bit flipped.
    let tampered = statement("tampered");
    let token = jws(
        &signer,
        &json!({"alg": "RS256", "x5c": x5c}),
        &tampered,
        "RS256",
    );
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[20] ^= 0x10;
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes));
    let reply = post_signed(&client, &tampered, &token).await;
    assert_refused(&reply, "signature.verification", "tampered signature");

    // Random signature bytes with a valid certificate (the fuzz run's find).
    let random = statement("random");
    let token = jws(
        &signer,
        &json!({"alg": "RS256", "x5c": x5c}),
        &random,
        "RS256",
    );
    let (input, _) = token.rsplit_once('.').unwrap();
    let noise: Vec<u8> = (0..256).map(|_| rand::random()).collect();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(noise));
    let reply = post_signed(&client, &random, &token).await;
    assert_refused(&reply, "signature.verification", "random signature bytes");

    // A wrong algorithm: HS256, and a header that claims RS384 over RS256 bytes.
    let wrong = statement("wrong-algorithm");
    let token = jws(
        &signer,
        &json!({"alg": "HS256", "x5c": x5c}),
        &wrong,
        "RS256",
    );
    let reply = post_signed(&client, &wrong, &token).await;
    assert_refused(&reply, "signature.algorithm", "HS256");
    let token = jws(
        &signer,
        &json!({"alg": "RS384", "x5c": x5c}),
        &wrong,
        "RS256",
    );
    let reply = post_signed(&client, &wrong, &token).await;
    assert_refused(
        &reply,
        "signature.verification",
        "RS384 header, RS256 bytes",
    );

    // Malformed certificates.
    for (case, x5c) in [
        ("x5c a string", json!("x")),
        ("x5c [1]", json!([1])),
        ("not base64", json!(["%%%"])),
        (
            "base64 of other bytes",
            json!([STANDARD.encode(b"this is not a certificate")]),
        ),
    ] {
        let malformed = statement("malformed");
        let token = jws(
            &signer,
            &json!({"alg": "RS256", "x5c": x5c}),
            &malformed,
            "RS256",
        );
        let reply = post_signed(&client, &malformed, &token).await;
        assert_refused(&reply, "signature.certificate", case);
    }

    // A payload that differs from the statement.
    let sent = statement("sent");
    let mut signed = sent.clone();
    signed["verb"]["id"] = json!("http://adlnet.gov/expapi/verbs/failed");
    let token = jws(
        &signer,
        &json!({"alg": "RS256", "x5c": x5c}),
        &signed,
        "RS256",
    );
    let reply = post_signed(&client, &sent, &token).await;
    assert_refused(&reply, "signature.payload", "payload differs");

    // None of the refused statements was stored.
    for name in ["tampered", "random", "wrong-algorithm", "malformed", "sent"] {
        let agent = mbox_agent(name);
        let ids = query_ids(&client, &[("agent", agent.as_str())]).await;
        assert!(ids.is_empty(), "{name}: {ids:?}");
    }
}
