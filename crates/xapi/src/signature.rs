//! Signed statements (Data 2.6): the signature attachment holds a JWS in
//! compact serialization whose payload is the statement as it was before the
//! signature was added. This checks the form, the algorithm and the payload;
//! it knows nothing about transport.

use crate::format::comparison_form;
use crate::ValidationError;
use base64::Engine;
use serde_json::Value;

pub const SIGNATURE_USAGE_TYPE: &str = "http://adlnet.gov/expapi/attachments/signature";
const ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512"];

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
        .ok_or_else(|| bad("signature.jws", "JWS header is not base64url json".into()))?;
    let algorithm = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ALGORITHMS.contains(&algorithm) {
        return Err(bad(
            "signature.algorithm",
            format!("JWS algorithm must be RS256, RS384 or RS512, not {algorithm:?}"),
        ));
    }
    let payload: Value = decode(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            bad(
                "signature.payload",
                "JWS payload is not a json statement".into(),
            )
        })?;
    decode(parts[2]).map_err(|_| bad("signature.jws", "JWS signature is not base64url".into()))?;
    let without_attachments = |value: &Value| {
        let mut value = value.clone();
        if let Some(object) = value.as_object_mut() {
            object.remove("attachments");
        }
        if version == crate::XapiVersion::V2_0_0 {
            truncate_durations(&mut value);
        }
        comparison_form(&value)
    };
    if without_attachments(&payload) != without_attachments(statement) {
        return Err(bad(
            "signature.payload",
            "JWS payload does not match the statement".into(),
        ));
    }
    Ok(())
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
    use serde_json::json;

    const V: crate::XapiVersion = crate::XapiVersion::V1_0_3;

    fn jws(header: &Value, payload: &Value) -> Vec<u8> {
        let encode =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.c2lnbmF0dXJl", encode(header), encode(payload)).into_bytes()
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
        let statement = json!({"actor": {"mbox": "mailto:a@x.nl"}, "verb": {"id": "x:v"}, "object": {"id": "x:o"}});
        let mut signed = statement.clone();
        signed["attachments"] = json!([{"usageType": SIGNATURE_USAGE_TYPE}]);
        let good = jws(&json!({"alg": "RS256"}), &statement);
        assert!(check(&signed, "application/octet-stream", &good, "$", V).is_ok());
        assert_eq!(
            check(&signed, "text/plain", &good, "$", V)
                .unwrap_err()
                .rule,
            "signature.content-type"
        );
        let hs = jws(&json!({"alg": "HS256"}), &statement);
        assert_eq!(
            check(&signed, "application/octet-stream", &hs, "$", V)
                .unwrap_err()
                .rule,
            "signature.algorithm"
        );
        let other = jws(
            &json!({"alg": "RS512"}),
            &json!({"actor": {"mbox": "mailto:b@x.nl"}}),
        );
        assert_eq!(
            check(&signed, "application/octet-stream", &other, "$", V)
                .unwrap_err()
                .rule,
            "signature.payload"
        );
        assert!(check(&signed, "application/octet-stream", b"not a jws", "$", V).is_err());
    }
}
