//! Signed statements (Data 2.6): the signature attachment holds a JWS in
//! compact serialization whose payload is the statement as it was before the
//! signature was added. This checks the form, the algorithm (RS256, RS384,
//! RS512 only), the payload against the statement, and, when the JWS header
//! carries an `x5c` certificate chain, the signature against the first
//! certificate's RSA key (RFC 7515 5.2, with RustCrypto's `x509-cert` and
//! `rsa`). It knows nothing about transport. Rules: `signature.content-type`,
//! `signature.jws`, `signature.algorithm`, `signature.payload`,
//! `signature.certificate`, `signature.verification`.

use crate::format::comparison_form;
use crate::ValidationError;
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use serde_json::Value;
use x509_cert::der::{Decode, Encode};

pub const SIGNATURE_USAGE_TYPE: &str = "http://adlnet.gov/expapi/attachments/signature";
const ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512"];

/// Smallest RSA key a signature is checked with (RFC 7518 3.3: "a key of
/// size 2048 bits or larger MUST be used with these algorithms").
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA key a signature is checked with (the `rsa` crate's bound on
/// public keys; it also bounds the work of one verification).
pub const MAX_RSA_BITS: usize = RsaPublicKey::MAX_SIZE;
/// Most certificates in an `x5c` chain.
pub const MAX_CHAIN: usize = 10;

/// Checks a signature attachment's content against its statement. `path`
/// locates the attachment in the request.
///
/// In 2.0.0 durations are compared only to hundredths of a second (9274.1.1
/// 4.2.7); in 1.0.3 a duration is compared as a string.
pub fn check(
    statement: &Value,
    content_type: &str,
    jws: &[u8],
    path: &str,
    version: crate::XapiVersion,
) -> Result<(), ValidationError> {
    Checker::new(statement, version).check(content_type, jws, path)
}

/// The signature checks of one statement: its comparison form is made
/// once, so a statement with several signature attachments costs one pass
/// over the statement plus one over each signature.
pub struct Checker {
    statement: Value,
    version: crate::XapiVersion,
}

impl Checker {
    pub fn new(statement: &Value, version: crate::XapiVersion) -> Self {
        Checker {
            statement: comparable(statement, version),
            version,
        }
    }

    /// See [`check`].
    pub fn check(&self, content_type: &str, jws: &[u8], path: &str) -> Result<(), ValidationError> {
        let version = self.version;
        let bad = |rule: &str, message: String| ValidationError::new(path, rule, message);
        if content_type.split(';').next().unwrap_or("").trim() != "application/octet-stream" {
            return Err(bad(
                "signature.content-type",
                format!("a signature attachment has contentType application/octet-stream, not {content_type:?}"),
            ));
        }
        let text = std::str::from_utf8(jws)
            .map_err(|_| bad("signature.jws", "signature is not a compact JWS".into()))?;
        let parts: Vec<&str> = text.trim().split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad(
                "signature.jws",
                "signature is not a compact JWS (three base64url parts)".into(),
            ));
        }
        let decode = |part: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('='))
        };
        let header: Value = decode(parts[0])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                bad(
                    "signature.jws",
                    "the JWS header is not base64url json".into(),
                )
            })?;
        let Some(header) = header.as_object() else {
            return Err(bad(
                "signature.jws",
                "the JWS header is not a json object".into(),
            ));
        };
        let algorithm = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if !ALGORITHMS.contains(&algorithm) {
            return Err(bad(
                "signature.algorithm",
                format!("the JWS algorithm must be RS256, RS384 or RS512, not {algorithm:?}"),
            ));
        }
        if header.contains_key("crit") {
            // RFC 7515 4.1.11: extensions a recipient does not understand are refused.
            return Err(bad(
                "signature.jws",
                "the JWS header lists critical extensions (crit), none of which this store understands"
                    .into(),
            ));
        }
        let payload: Value = decode(parts[1])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                bad(
                    "signature.payload",
                    "the JWS payload is not a json statement".into(),
                )
            })?;
        let signature = decode(parts[2])
            .map_err(|_| bad("signature.jws", "the JWS signature is not base64url".into()))?;
        if comparable(&payload, version) != self.statement {
            return Err(bad(
                "signature.payload",
                "the JWS payload does not match the statement".into(),
            ));
        }
        if let Some(chain) = header.get("x5c") {
            let key = signer_key(chain).map_err(|message| bad("signature.certificate", message))?;
            let signing_input = &text.trim().as_bytes()[..parts[0].len() + 1 + parts[1].len()];
            verify(&key, algorithm, signing_input, &signature)
                .map_err(|message| bad("signature.verification", message))?;
        }
        Ok(())
    }
}

/// The form in which a payload and its statement are compared: without
/// attachments (the statement had none before it was signed), in 2.0.0
/// with durations to hundredths, then the comparison form of Data 2.3.1.
fn comparable(value: &Value, version: crate::XapiVersion) -> Value {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        object.remove("attachments");
    }
    if version == crate::XapiVersion::V2_0_0 {
        truncate_durations(&mut value);
    }
    comparison_form(&value)
}

/// The RSA key of the first certificate of an `x5c` chain (RFC 7515 4.1.6:
/// an array of base64, not base64url, DER certificates, the signer's
/// first). Every certificate of the chain must parse; only the first is
/// used (the spec asks the LRS to catch mistakes in the signature, not to
/// decide whom to trust, so the chain is not walked to a root).
fn signer_key(chain: &Value) -> Result<RsaPublicKey, String> {
    let Some(chain) = chain.as_array().filter(|c| !c.is_empty()) else {
        return Err("x5c must be a non-empty array of base64 DER certificates".into());
    };
    if chain.len() > MAX_CHAIN {
        return Err(format!(
            "x5c holds at most {MAX_CHAIN} certificates, this one {}",
            chain.len()
        ));
    }
    let mut first = None;
    for (i, entry) in chain.iter().enumerate() {
        let Some(text) = entry.as_str() else {
            return Err(format!("x5c[{i}] is not a base64 string"));
        };
        let der = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| {
                format!("x5c[{i}] is not base64 (RFC 7515 4.1.6: standard base64, not base64url)")
            })?;
        let certificate = x509_cert::Certificate::from_der(&der)
            .map_err(|e| format!("x5c[{i}] is not a DER X.509 certificate: {e}"))?;
        if first.is_none() {
            first = Some(certificate);
        }
    }
    let certificate = first.expect("the chain is not empty");
    let spki = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("x5c[0] has an unreadable public key: {e}"))?;
    let key = RsaPublicKey::from_public_key_der(&spki).map_err(|e| {
        format!("x5c[0] does not hold an RSA public key (RS256/384/512 need one): {e}")
    })?;
    let bits = key.n().bits();
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!(
            "x5c[0] holds a {bits}-bit RSA key; keys of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits are checked"
        ));
    }
    Ok(key)
}

/// RSASSA-PKCS1-v1_5 verification of the JWS signing input
/// (`header.payload`, RFC 7515 5.2 step 8).
fn verify(
    key: &RsaPublicKey,
    algorithm: &str,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    let signature = Signature::try_from(signature)
        .map_err(|_| "the JWS signature bytes are not an RSA signature".to_string())?;
    let key = key.clone();
    let verified = match algorithm {
        "RS256" => VerifyingKey::<sha2::Sha256>::new(key).verify(signing_input, &signature),
        "RS384" => VerifyingKey::<sha2::Sha384>::new(key).verify(signing_input, &signature),
        _ => VerifyingKey::<sha2::Sha512>::new(key).verify(signing_input, &signature),
    };
    verified.map_err(|_| {
        format!(
            "the JWS signature does not verify with {algorithm} and the key of the x5c certificate"
        )
    })
}

/// Cuts the seconds of every `result.duration` to hundredths (`0.1237S` -> `0.12S`).
fn truncate_durations(statement: &mut Value) {
    for pointer in ["/result/duration", "/object/result/duration"] {
        if let Some(Value::String(duration)) = statement.pointer_mut(pointer) {
            if let Some(truncated) = truncate_seconds(duration) {
                *duration = truncated;
            }
        }
    }
}

fn truncate_seconds(duration: &str) -> Option<String> {
    let body = duration.strip_suffix('S')?;
    let start = body
        .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(0, |i| i + 1);
    let (prefix, seconds) = body.split_at(start);
    let (whole, fraction) = seconds.split_once('.')?;
    let fraction: String = fraction.chars().take(2).collect();
    let fraction = fraction.trim_end_matches('0');
    Some(if fraction.is_empty() {
        format!("{prefix}{whole}S")
    } else {
        format!("{prefix}{whole}.{fraction}S")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::signature::{SignatureEncoding, Signer};
    use serde_json::json;
    use std::sync::LazyLock;

    const V: crate::XapiVersion = crate::XapiVersion::V1_0_3;
    const OCTETS: &str = "application/octet-stream";

    fn b64url(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn jws(header: &Value, payload: &Value) -> Vec<u8> {
        let encode = |v: &Value| b64url(v.to_string().as_bytes());
        format!("{}.{}.c2lnbmF0dXJl", encode(header), encode(payload)).into_bytes()
    }

    /// An RSA key and a self-signed certificate for it, made when the test
    /// runs (no key is kept in the repository).
    struct TestSigner {
        key: rsa::RsaPrivateKey,
        certificate: String,
    }

    fn signer(bits: usize) -> TestSigner {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).expect("rsa key");
        let pem = key.to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
        let pair = rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
            .expect("rcgen takes the rsa key");
        let certificate = rcgen::CertificateParams::new(vec!["signer.example".into()])
            .expect("params")
            .self_signed(&pair)
            .expect("self-signed certificate");
        TestSigner {
            key,
            certificate: base64::engine::general_purpose::STANDARD.encode(certificate.der()),
        }
    }

    static SIGNER: LazyLock<TestSigner> = LazyLock::new(|| signer(2048));

    fn signed(signer: &TestSigner, algorithm: &str, x5c: Value, payload: &Value) -> Vec<u8> {
        let header = json!({"alg": algorithm, "x5c": x5c});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(payload.to_string().as_bytes())
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
        format!("{input}.{}", b64url(&signature)).into_bytes()
    }

    fn statement() -> (Value, Value) {
        let statement = json!({"actor": {"mbox": "mailto:a@x.nl"}, "verb": {"id": "x:v"}, "object": {"id": "x:o"}});
        let mut with_signature = statement.clone();
        with_signature["attachments"] = json!([{"usageType": SIGNATURE_USAGE_TYPE}]);
        (statement, with_signature)
    }

    fn rule_of(result: Result<(), ValidationError>) -> String {
        result.expect_err("refused").rule
    }

    #[test]
    fn durations_compare_to_hundredths() {
        assert_eq!(
            truncate_seconds("P1DT12H36M0.1237S").as_deref(),
            Some("P1DT12H36M0.12S")
        );
        assert_eq!(truncate_seconds("PT1.5S").as_deref(), Some("PT1.5S"));
        assert_eq!(truncate_seconds("PT1.001S").as_deref(), Some("PT1S"));
        assert_eq!(truncate_seconds("PT1S"), None);
    }

    #[test]
    fn accepts_a_matching_rs256_payload_and_rejects_the_rest() {
        let (statement, signed) = statement();
        let good = jws(&json!({"alg": "RS256"}), &statement);
        assert!(check(&signed, OCTETS, &good, "$", V).is_ok());
        assert_eq!(
            rule_of(check(&signed, "text/plain", &good, "$", V)),
            "signature.content-type"
        );
        let hs = jws(&json!({"alg": "HS256"}), &statement);
        assert_eq!(
            rule_of(check(&signed, OCTETS, &hs, "$", V)),
            "signature.algorithm"
        );
        let other = jws(
            &json!({"alg": "RS512"}),
            &json!({"actor": {"mbox": "mailto:b@x.nl"}}),
        );
        assert_eq!(
            rule_of(check(&signed, OCTETS, &other, "$", V)),
            "signature.payload"
        );
        assert!(check(&signed, OCTETS, b"not a jws", "$", V).is_err());
        let critical = jws(
            &json!({"alg": "RS256", "crit": ["b64"], "b64": false}),
            &statement,
        );
        assert_eq!(
            rule_of(check(&signed, OCTETS, &critical, "$", V)),
            "signature.jws"
        );
    }

    #[test]
    fn a_signature_with_x5c_is_verified_with_that_certificate() {
        let (statement, with_signature) = statement();
        let chain = json!([SIGNER.certificate]);
        for algorithm in ["RS256", "RS384", "RS512"] {
            let good = signed(&SIGNER, algorithm, chain.clone(), &statement);
            assert_eq!(
                check(&with_signature, OCTETS, &good, "$.attachments[0]", V),
                Ok(())
            );
        }
        // One flipped bit in the signature.
        let good = String::from_utf8(signed(&SIGNER, "RS256", chain.clone(), &statement)).unwrap();
        let (input, signature) = good.rsplit_once('.').unwrap();
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        bytes[7] ^= 1;
        let tampered = format!("{input}.{}", b64url(&bytes));
        let e = check(
            &with_signature,
            OCTETS,
            tampered.as_bytes(),
            "$.attachments[0]",
            V,
        )
        .unwrap_err();
        assert_eq!(
            (e.rule.as_str(), e.path.as_str()),
            ("signature.verification", "$.attachments[0]")
        );
        // Random signature bytes of the right length.
        let random = format!("{input}.{}", b64url(&[0x5a; 256]));
        assert_eq!(
            rule_of(check(&with_signature, OCTETS, random.as_bytes(), "$", V)),
            "signature.verification"
        );
        // Signed with another key than the certificate's.
        let other = signer(2048);
        let forged = signed(&other, "RS256", chain.clone(), &statement);
        assert_eq!(
            rule_of(check(&with_signature, OCTETS, &forged, "$", V)),
            "signature.verification"
        );
        // The header says RS384, the bytes are an RS256 signature.
        let header = b64url(json!({"alg": "RS384", "x5c": chain}).to_string().as_bytes());
        let (_, rest) = good.split_once('.').unwrap();
        let swapped = format!("{header}.{rest}");
        assert_eq!(
            rule_of(check(&with_signature, OCTETS, swapped.as_bytes(), "$", V)),
            "signature.verification"
        );
    }

    #[test]
    fn malformed_certificates_are_refused() {
        let (statement, with_signature) = statement();
        let not_a_certificate =
            base64::engine::general_purpose::STANDARD.encode(b"not a certificate at all");
        let too_long: Vec<Value> = (0..=MAX_CHAIN).map(|_| json!(SIGNER.certificate)).collect();
        for x5c in [
            json!("x"),
            json!([1]),
            json!([]),
            json!(["!!not base64!!"]),
            json!([not_a_certificate]),
            json!([SIGNER.certificate, "x"]),
            json!(too_long),
        ] {
            let jws = signed(&SIGNER, "RS256", x5c.clone(), &statement);
            let e = check(&with_signature, OCTETS, &jws, "$.attachments[0]", V).unwrap_err();
            assert_eq!(e.rule, "signature.certificate", "{x5c}: {e}");
        }
        // A certificate for a 1024-bit key (ring signs with no key that
        // small, so the good certificate gets the small key put in; its own
        // signature is not what is checked).
        use rsa::pkcs8::EncodePublicKey;
        let small = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).expect("rsa key");
        let der = base64::engine::general_purpose::STANDARD
            .decode(&SIGNER.certificate)
            .unwrap();
        let mut certificate = x509_cert::Certificate::from_der(&der).unwrap();
        certificate.tbs_certificate.subject_public_key_info =
            x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(
                small
                    .to_public_key()
                    .to_public_key_der()
                    .unwrap()
                    .as_bytes(),
            )
            .unwrap();
        let small = TestSigner {
            key: small,
            certificate: base64::engine::general_purpose::STANDARD
                .encode(certificate.to_der().unwrap()),
        };
        let jws = signed(&small, "RS256", json!([small.certificate]), &statement);
        let e = check(&with_signature, OCTETS, &jws, "$", V).unwrap_err();
        assert_eq!(e.rule, "signature.certificate");
        assert!(e.message.contains("1024-bit"), "{e}");
    }
}
