//! Rules for Agents and Groups that a schema cannot express: exactly one
//! inverse functional identifier, its format, anonymous groups and their
//! members, and what an `authority` may be. Runs on documents the schema
//! already accepted. No I/O, no HTTP.

use serde_json::Value;

use super::datatypes::{is_iri, is_mailto_iri, is_sha1_hex};
use super::object::{fields, Object};
use super::path::Path;
use crate::ValidationError;

/// Where an agent object appears, which decides what it may be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// actor, object, instructor, team, contextAgent/contextGroup, member:
    /// an Agent, an identified Group or an anonymous Group.
    Any,
    /// `authority`: an Agent, or (3-legged OAuth) an anonymous Group of
    /// exactly two Agents.
    Authority,
    /// An `agent` parameter: an Agent or an identified Group.
    Identified,
}

pub(crate) fn check_actor(o: &Object, p: &Path<'_>, role: Role) -> Result<(), ValidationError> {
    let [object_type, mbox, sha1, openid, account, member] = fields(
        o,
        [
            "objectType",
            "mbox",
            "mbox_sha1sum",
            "openid",
            "account",
            "member",
        ],
    );
    let ifis = Ifis {
        mbox,
        sha1,
        openid,
        account,
    };
    let is_group = object_type.and_then(Value::as_str) == Some("Group");
    let ifi_count = [mbox, sha1, openid, account]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if is_group {
        if ifi_count > 1 {
            return Err(ValidationError::new(
                p.render(),
                "agent.exactly-one-ifi",
                format!("an identified group needs exactly one of mbox, mbox_sha1sum, openid, account; found {ifi_count}"),
            ));
        }
        if ifi_count == 0 && role == Role::Identified {
            return Err(ValidationError::new(
                p.render(),
                "agent.exactly-one-ifi",
                "an anonymous group cannot be used here; give the group exactly one of mbox, mbox_sha1sum, openid, account",
            ));
        }
        if role == Role::Authority && ifi_count != 0 {
            return Err(ValidationError::new(
                p.render(),
                "authority.group-must-be-anonymous",
                "a group as authority must be an anonymous group (oauth consumer and user)",
            ));
        }
        let members = member.and_then(Value::as_array);
        if ifi_count == 0 && members.is_none_or(Vec::is_empty) {
            return Err(ValidationError::new(
                p.key("member").render(),
                "group.anonymous-requires-member",
                "an anonymous group needs a non-empty member list",
            ));
        }
        if role == Role::Authority && members.map_or(0, Vec::len) != 2 {
            return Err(ValidationError::new(
                p.key("member").render(),
                "authority.group-two-members",
                format!(
                    "a group as authority must have exactly two members, found {}",
                    members.map_or(0, Vec::len)
                ),
            ));
        }
        check_ifi_formats(&ifis, p)?;
        if let Some(members) = members {
            let member_path = p.key("member");
            for (i, member) in members.iter().enumerate() {
                if let Some(m) = member.as_object() {
                    check_actor(m, &member_path.index(i), Role::Any)?;
                }
            }
        }
        Ok(())
    } else {
        if ifi_count != 1 {
            return Err(ValidationError::new(
                p.render(),
                "agent.exactly-one-ifi",
                format!("an agent needs exactly one of mbox, mbox_sha1sum, openid, account; found {ifi_count}"),
            ));
        }
        check_ifi_formats(&ifis, p)
    }
}

struct Ifis<'a> {
    mbox: Option<&'a Value>,
    sha1: Option<&'a Value>,
    openid: Option<&'a Value>,
    account: Option<&'a Value>,
}

fn check_ifi_formats(o: &Ifis<'_>, p: &Path<'_>) -> Result<(), ValidationError> {
    if let Some(mbox) = o.mbox.and_then(Value::as_str) {
        if !is_mailto_iri(mbox) {
            return Err(ValidationError::new(
                p.key("mbox").render(),
                "agent.mbox-format",
                format!("mbox {mbox:?} is not a mailto: iri with an email address"),
            ));
        }
    }
    if let Some(sha) = o.sha1.and_then(Value::as_str) {
        if !is_sha1_hex(sha) {
            return Err(ValidationError::new(
                p.key("mbox_sha1sum").render(),
                "agent.mbox-sha1sum-format",
                format!("mbox_sha1sum {sha:?} is not 40 hexadecimal digits"),
            ));
        }
    }
    if let Some(openid) = o.openid.and_then(Value::as_str) {
        if !is_iri(openid) {
            return Err(ValidationError::new(
                p.key("openid").render(),
                "agent.openid-format",
                format!("openid {openid:?} is not an absolute uri"),
            ));
        }
    }
    if let Some(account) = o.account.and_then(Value::as_object) {
        if let Some(home_page) = account.get("homePage").and_then(Value::as_str) {
            if !is_iri(home_page) {
                let account_path = p.key("account");
                return Err(ValidationError::new(
                    account_path.key("homePage").render(),
                    "agent.account-homepage-format",
                    format!("account homePage {home_page:?} is not an absolute irl"),
                ));
            }
        }
    }
    Ok(())
}
