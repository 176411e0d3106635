//! The xAPI version a request speaks, from its `X-Experience-API-Version` header.

use crate::ValidationError;

/// The versions this store speaks. 1.0.x requests are served by the 1.0.3
/// rules (the spec says 1.0.x versions are compatible); 2.0.x by 2.0.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XapiVersion {
    V1_0_3,
    V2_0_0,
}

impl XapiVersion {
    /// Parses a header value. Accepts `1.0`, `1.0.0`..`1.0.3` (and any 1.0.x
    /// patch, which the spec says must be accepted) and `2.0`, `2.0.x`.
    pub fn parse_header(value: &str) -> Result<Self, ValidationError> {
        let value = value.trim();
        let mut parts = value.split('.');
        let major = parts.next();
        let minor = parts.next();
        let patch = parts.next();
        let extra = parts.next();
        let patch_ok = patch.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        match (major, minor, extra) {
            (Some("1"), Some("0"), None) if patch_ok => Ok(Self::V1_0_3),
            (Some("2"), Some("0"), None) if patch_ok => Ok(Self::V2_0_0),
            _ => Err(ValidationError::new(
                "header X-Experience-API-Version",
                "version.unsupported",
                format!("unsupported xAPI version {value:?}; this LRS speaks 1.0.3 and 2.0.0"),
            )),
        }
    }

    /// The value this store puts in its responses' version header.
    pub fn as_header(self) -> &'static str {
        match self {
            Self::V1_0_3 => "1.0.3",
            Self::V2_0_0 => "2.0.0",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_versions_the_spec_names() {
        for ok in ["1.0", "1.0.0", "1.0.1", "1.0.3", "1.0.9"] {
            assert_eq!(
                XapiVersion::parse_header(ok).unwrap(),
                XapiVersion::V1_0_3,
                "{ok}"
            );
        }
        for ok in ["2.0", "2.0.0"] {
            assert_eq!(
                XapiVersion::parse_header(ok).unwrap(),
                XapiVersion::V2_0_0,
                "{ok}"
            );
        }
        for bad in ["", "0.9", "1.1.0", "1.0.x", "3.0.0", "1.0.3.1", "1.0."] {
            assert!(XapiVersion::parse_header(bad).is_err(), "{bad}");
        }
    }
}
