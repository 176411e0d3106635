//! Query parameters, the one way every resource reads them: each known
//! parameter at most once, an unknown one is a 400 naming it, and typed
//! getters that answer 400 with the parameter's name and the rule.

use crate::error::ApiError;
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;
use xapi::validate::{is_iri, parse_timestamp};
use xapi::Ifi;

/// Query parameters, each at most once.
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut map = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !allowed.contains(&key.as_ref()) {
                return Err(ApiError::bad_request(
                    format!("?{key}"),
                    "parameter.unknown",
                    format!(
                        "unknown query parameter {key:?}; allowed: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if map.insert(key.to_string(), value.to_string()).is_some() {
                return Err(ApiError::bad_request(
                    format!("?{key}"),
                    "parameter.repeated",
                    "parameter given twice",
                ));
            }
        }
        Ok(Params(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn bool(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad_request(
                format!("?{key}"),
                "parameter.boolean",
                format!("expected true or false, got {other:?}"),
            )),
        }
    }

    pub fn uuid(&self, key: &str) -> Result<Option<Uuid>, ApiError> {
        self.get(key)
            .map(|v| {
                if xapi::validate::is_uuid(v) {
                    Uuid::parse_str(v).map_err(|_| {
                        ApiError::bad_request(format!("?{key}"), "uuid.format", "not a uuid")
                    })
                } else {
                    Err(ApiError::bad_request(
                        format!("?{key}"),
                        "uuid.format",
                        format!("{v:?} is not a uuid"),
                    ))
                }
            })
            .transpose()
    }

    pub fn timestamp(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| {
                parse_timestamp(v)
                    .map(|t| t.timestamp_micros())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            format!("?{key}"),
                            "timestamp.format",
                            format!("{v:?} is not an ISO 8601 timestamp"),
                        )
                    })
            })
            .transpose()
    }

    pub fn iri(&self, key: &str) -> Result<Option<&str>, ApiError> {
        self.get(key)
            .map(|v| {
                if is_iri(v) {
                    Ok(v)
                } else {
                    Err(ApiError::bad_request(
                        format!("?{key}"),
                        "iri.format",
                        format!("{v:?} is not an IRI"),
                    ))
                }
            })
            .transpose()
    }

    /// A parameter that must be there.
    pub fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key).ok_or_else(|| {
            ApiError::bad_request(
                format!("?{key}"),
                "parameter.required",
                format!("{key} is required"),
            )
        })
    }

    /// An agent parameter (JSON): parsed, validated for the request's xAPI
    /// version, and its one inverse functional identifier.
    pub fn agent(
        &self,
        key: &str,
        version: xapi::XapiVersion,
    ) -> Result<Option<(Value, Ifi)>, ApiError> {
        let Some(text) = self.get(key) else {
            return Ok(None);
        };
        let path = format!("?{key}");
        let agent: Value = serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(&path, "agent.json", format!("agent is not valid json: {e}"))
        })?;
        xapi::validate::validate_agent_param(&agent, version).map_err(|e| e.under(&path))?;
        let ifi = xapi::agent::ifi_of(&agent).ok_or_else(|| {
            ApiError::bad_request(
                &path,
                "agent.exactly-one-ifi",
                "agent needs exactly one identifier",
            )
        })?;
        Ok(Some((agent, ifi)))
    }

    /// Whether a parameter was given.
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The parameters given, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agent_of(raw: Option<&str>) -> Result<Value, ApiError> {
        let params = Params::parse(raw, &["agent"])?;
        params.required("agent")?;
        Ok(params
            .agent("agent", xapi::XapiVersion::V1_0_3)?
            .expect("required")
            .0)
    }

    #[test]
    fn the_agent_parameter_is_required_once_json_and_one_identifier() {
        assert!(agent_of(None).is_err());
        assert!(agent_of(Some("agent=%7Bnot")).is_err());
        assert!(agent_of(Some("agent=%7B%7D&agent=%7B%7D")).is_err());
        assert!(agent_of(Some("agent=%7B%7D&activityId=x")).is_err());
        assert!(agent_of(Some("agent=%7B%7D")).is_err(), "no identifier");
        let mbox = "agent=%7B%22mbox%22%3A%22mailto%3Aa%40example.org%22%7D";
        assert_eq!(
            agent_of(Some(mbox)).unwrap(),
            json!({"mbox": "mailto:a@example.org"})
        );
    }
}
