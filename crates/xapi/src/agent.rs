//! Agents and groups: their inverse functional identifiers (IFIs), the one
//! thing that says two agent objects are the same person.

use serde_json::Value;

/// Which of the four inverse functional identifiers an agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IfiKind {
    Mbox,
    MboxSha1sum,
    Openid,
    Account,
}

/// An inverse functional identifier in canonical form. Two agents are the
/// same person exactly when their `Ifi`s are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ifi {
    pub kind: IfiKind,
    /// `mailto:` IRI, sha1 hex (lowercased), openid URI, or for an account
    /// `homePage` and `name` joined by a NUL byte.
    pub value: String,
}

impl Ifi {
    /// A byte string that identifies the person unambiguously, for keyed
    /// hashing: kind tag, NUL, value.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let tag = match self.kind {
            IfiKind::Mbox => "mbox",
            IfiKind::MboxSha1sum => "mbox_sha1sum",
            IfiKind::Openid => "openid",
            IfiKind::Account => "account",
        };
        let mut bytes = Vec::with_capacity(tag.len() + 1 + self.value.len());
        bytes.extend_from_slice(tag.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(self.value.as_bytes());
        bytes
    }

    /// The JSON properties that carry this IFI, as they appear in an agent.
    pub fn to_agent_properties(&self) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        match self.kind {
            IfiKind::Mbox => {
                map.insert("mbox".into(), Value::String(self.value.clone()));
            }
            IfiKind::MboxSha1sum => {
                map.insert("mbox_sha1sum".into(), Value::String(self.value.clone()));
            }
            IfiKind::Openid => {
                map.insert("openid".into(), Value::String(self.value.clone()));
            }
            IfiKind::Account => {
                let (home_page, name) = self.value.split_once('\0').unwrap_or((&self.value, ""));
                map.insert(
                    "account".into(),
                    serde_json::json!({ "homePage": home_page, "name": name }),
                );
            }
        }
        map
    }
}

/// The IFI of an agent or identified group, if it has exactly one
/// well-formed one. Validation rejects agents with zero or several IFIs
/// before this is called on stored data; on query parameters it answers
/// `None` for anything that is not a single IFI.
pub fn ifi_of(agent: &Value) -> Option<Ifi> {
    let object = agent.as_object()?;
    let mut found = None;
    let mut count = 0;
    if let Some(Value::String(mbox)) = object.get("mbox") {
        count += 1;
        found = Some(Ifi {
            kind: IfiKind::Mbox,
            value: mbox.clone(),
        });
    }
    if let Some(Value::String(sha)) = object.get("mbox_sha1sum") {
        count += 1;
        found = Some(Ifi {
            kind: IfiKind::MboxSha1sum,
            value: sha.to_ascii_lowercase(),
        });
    }
    if let Some(Value::String(openid)) = object.get("openid") {
        count += 1;
        found = Some(Ifi {
            kind: IfiKind::Openid,
            value: openid.clone(),
        });
    }
    if let Some(Value::Object(account)) = object.get("account") {
        count += 1;
        let home_page = account.get("homePage").and_then(Value::as_str)?;
        let name = account.get("name").and_then(Value::as_str)?;
        found = Some(Ifi {
            kind: IfiKind::Account,
            value: format!("{home_page}\0{name}"),
        });
    }
    if count == 1 {
        found
    } else {
        None
    }
}

/// Whether a JSON object is a group (by its `objectType`).
pub fn is_group(agent: &Value) -> bool {
    agent.get("objectType").and_then(Value::as_str) == Some("Group")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_ifis_mean_the_same_person_whatever_else_differs() {
        let a = ifi_of(&json!({"mbox": "mailto:a@example.org", "name": "A"})).unwrap();
        let b = ifi_of(&json!({"objectType": "Agent", "mbox": "mailto:a@example.org"})).unwrap();
        assert_eq!(a, b);
        let sha_upper =
            ifi_of(&json!({"mbox_sha1sum": "ABCDEF0123456789ABCDEF0123456789ABCDEF01"}));
        let sha_lower =
            ifi_of(&json!({"mbox_sha1sum": "abcdef0123456789abcdef0123456789abcdef01"}));
        assert_eq!(sha_upper, sha_lower);
    }

    #[test]
    fn accounts_compare_by_home_page_and_name() {
        let a =
            ifi_of(&json!({"account": {"homePage": "https://x.example", "name": "1"}})).unwrap();
        let b =
            ifi_of(&json!({"account": {"homePage": "https://x.example", "name": "2"}})).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            Value::Object(a.to_agent_properties()),
            json!({"account": {"homePage": "https://x.example", "name": "1"}})
        );
    }

    #[test]
    fn zero_or_two_ifis_is_no_ifi() {
        assert!(ifi_of(&json!({"name": "nobody"})).is_none());
        assert!(
            ifi_of(&json!({"mbox": "mailto:a@example.org", "openid": "https://a.example"}))
                .is_none()
        );
    }
}
