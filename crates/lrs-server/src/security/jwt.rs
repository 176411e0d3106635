//! JSON Web Token helpers shared by our own tokens and external providers':
//! the issuer read before verification (to pick the verifier) and a 401
//! reason for a token that fails.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// Longer tokens are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a JWT failed validation, for a 401 body (never echoes the token).
pub fn describe_jwt_error(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "token has expired",
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)",
        ErrorKind::InvalidAudience => "token audience (aud) is not accepted",
        ErrorKind::InvalidIssuer => "token issuer (iss) does not match",
        ErrorKind::InvalidSignature => "token signature does not verify",
        ErrorKind::InvalidAlgorithm => "token algorithm is not accepted",
        ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token",
        _ => "token does not verify",
    }
}

/// The `iss` of a token, read before verification to pick the verifier. It
/// decides nothing else: each verifier checks `iss` again with the signature.
pub fn unverified_issuer(token: &str) -> Result<String, &'static str> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("token is too long");
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed token");
    };
    #[derive(Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "malformed token")?;
    let claims: Issuer = serde_json::from_slice(&bytes).map_err(|_| "malformed token")?;
    claims.iss.ok_or("token names no issuer (iss)")
}
