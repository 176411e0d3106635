//! What the privacy functions need to know without reading the whole log:
//! who was erased, each person's latest data per tenant and kind (for
//! retention), the retention policies, the anonymisation reports and the
//! audit trail's anchors (docs/privacy.md).
//!
//! Layout (integers big-endian):
//! - `privacy.erased`: `token(16)` -> postcard [`ErasedRecord`]
//! - `privacy.people`: `token(16) kind(1) tenant` -> postcard [`PersonData`];
//!   kind `s`: statements naming the person, `d`: their documents
//! - `privacy.policies`: `tenant 0 kind(1)` -> days (u32)
//! - `privacy.reports`: `report id(16)` -> postcard [`ReportRef`]
//! - `privacy.anchors`: `position(8)` -> postcard [`AuditAnchor`]
//!
//! No personal data: tokens, tenants, times and counts only.

use crate::{Op, Projection, ReadModel, TreeName};
use lrs_core::events::{ObjectFactV1, RetentionKindV1, StatementStoredV1};
use lrs_core::token::Token;
use lrs_core::Event;
use serde::{Deserialize, Serialize};

pub const ERASED: TreeName = "privacy.erased";
pub const PEOPLE: TreeName = "privacy.people";
pub const POLICIES: TreeName = "privacy.policies";
pub const REPORTS: TreeName = "privacy.reports";
pub const ANCHORS: TreeName = "privacy.anchors";

/// The kind byte of statements in [`PEOPLE`] keys.
pub const KIND_STATEMENTS: u8 = b's';
/// The kind byte of documents in [`PEOPLE`] keys.
pub const KIND_DOCUMENTS: u8 = b'd';

/// A person erased, and where the log says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedRecord {
    pub position: u64,
    pub time_micros: i64,
    /// Erased by a retention run (else on request).
    pub by_retention: bool,
}

/// A person's data of one kind in one tenant: how much, and the newest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonData {
    /// The newest item's age reference, µs: for a statement the earlier of
    /// its `timestamp` and `stored`, for a document its write time.
    pub latest_micros: i64,
    pub count: u64,
}

/// Where a report is in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRef {
    pub position: u64,
    pub time_micros: i64,
}

/// After an audit trim: the first record kept and the hash it must carry
/// as its previous hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnchor {
    pub first_kept_seq: u64,
    pub anchor_hash: [u8; 32],
    pub time_micros: i64,
}

pub fn kind_byte(kind: RetentionKindV1) -> u8 {
    match kind {
        RetentionKindV1::Statements => b's',
        RetentionKindV1::Documents => b'd',
        RetentionKindV1::AuditTrail => b'a',
        RetentionKindV1::CredentialUse => b'c',
        RetentionKindV1::OperationsJournal => b'j',
        RetentionKindV1::Backups => b'b',
    }
}

pub fn kind_of_byte(byte: u8) -> Option<RetentionKindV1> {
    Some(match byte {
        b's' => RetentionKindV1::Statements,
        b'd' => RetentionKindV1::Documents,
        b'a' => RetentionKindV1::AuditTrail,
        b'c' => RetentionKindV1::CredentialUse,
        b'j' => RetentionKindV1::OperationsJournal,
        b'b' => RetentionKindV1::Backups,
        _ => return None,
    })
}

pub fn policy_key(tenant: &str, kind: RetentionKindV1) -> Vec<u8> {
    [tenant.as_bytes(), &[0, kind_byte(kind)]].concat()
}

/// The tenant and kind of a [`POLICIES`] key.
pub fn decode_policy_key(key: &[u8]) -> Option<(String, RetentionKindV1)> {
    let (kind, rest) = key.split_last()?;
    let (zero, tenant) = rest.split_last()?;
    (*zero == 0).then_some(())?;
    Some((
        String::from_utf8(tenant.to_vec()).ok()?,
        kind_of_byte(*kind)?,
    ))
}

pub fn people_key(token: &Token, kind: u8, tenant: &str) -> Vec<u8> {
    [&token.0[..], &[kind], tenant.as_bytes()].concat()
}

/// Token, kind byte and tenant of a [`PEOPLE`] key.
pub fn decode_people_key(key: &[u8]) -> Option<(Token, u8, String)> {
    let token = Token(key.get(..16)?.try_into().ok()?);
    let kind = *key.get(16)?;
    let tenant = String::from_utf8(key.get(17..)?.to_vec()).ok()?;
    Some((token, kind, tenant))
}

/// Everyone a statement names: actor, object agent, group members, every
/// related agent. Sorted, without repeats.
pub fn people_of(stored: &StatementStoredV1) -> Vec<Token> {
    let facts = &stored.facts;
    let mut people: Vec<Token> = facts
        .actor
        .iter()
        .chain(facts.group_members.iter())
        .chain(facts.related_agents.iter())
        .copied()
        .collect();
    if let ObjectFactV1::Agent { token: Some(token) } = &facts.object {
        people.push(*token);
    }
    people.sort_by_key(|t| t.0);
    people.dedup();
    people
}

/// The age reference of a statement: the earlier of its `timestamp` and
/// `stored` (a client can neither prolong retention with a future timestamp
/// nor with a late upload of old activity).
pub fn statement_age_micros(stored: &StatementStoredV1) -> i64 {
    stored
        .facts
        .timestamp_micros
        .map_or(stored.stored_micros, |t| t.min(stored.stored_micros))
}

pub struct Privacy;

impl Privacy {
    fn note(
        &self,
        state: &dyn ReadModel,
        out: &mut Vec<Op>,
        token: &Token,
        kind: u8,
        tenant: &str,
        micros: i64,
    ) {
        // A statement sealed before its person was erased and appended just
        // after keeps nobody alive: the person is gone.
        if state.get(ERASED, &token.0).is_some() {
            return;
        }
        let key = people_key(token, kind, tenant);
        let next = match state
            .get(PEOPLE, &key)
            .and_then(|bytes| postcard::from_bytes::<PersonData>(&bytes).ok())
        {
            Some(current) => PersonData {
                latest_micros: current.latest_micros.max(micros),
                count: current.count + 1,
            },
            None => PersonData {
                latest_micros: micros,
                count: 1,
            },
        };
        out.push(Op::Put {
            tree: PEOPLE,
            key,
            value: postcard::to_stdvec(&next).expect("encodes"),
        });
    }
}

impl Projection for Privacy {
    fn name(&self) -> &'static str {
        "privacy"
    }

    fn version(&self) -> u32 {
        1
    }

    fn trees(&self) -> &'static [TreeName] {
        &[ERASED, PEOPLE, POLICIES, REPORTS, ANCHORS]
    }

    fn apply(&self, position: u64, event: &Event, state: &dyn ReadModel, out: &mut Vec<Op>) {
        match event {
            Event::DocumentWrittenV1(written) => {
                if let Some(agent) = &written.context.agent {
                    self.note(
                        state,
                        out,
                        agent,
                        KIND_DOCUMENTS,
                        &written.context.tenant,
                        written.written_micros,
                    );
                }
            }
            Event::PersonErasedV1(erased) => {
                for (key, _) in state.scan_prefix(PEOPLE, &erased.token.0) {
                    out.push(Op::Delete { tree: PEOPLE, key });
                }
                if state.get(ERASED, &erased.token.0).is_none() {
                    let record = ErasedRecord {
                        position,
                        time_micros: erased.time_micros,
                        by_retention: matches!(
                            erased.reason,
                            lrs_core::events::ErasureReasonV1::Retention { .. }
                        ),
                    };
                    out.push(Op::Put {
                        tree: ERASED,
                        key: erased.token.0.to_vec(),
                        value: postcard::to_stdvec(&record).expect("encodes"),
                    });
                }
            }
            Event::RetentionPolicySetV1(set) => {
                let key = policy_key(&set.tenant, set.kind);
                out.push(match set.days {
                    Some(days) => Op::Put {
                        tree: POLICIES,
                        key,
                        value: days.to_be_bytes().to_vec(),
                    },
                    None => Op::Delete {
                        tree: POLICIES,
                        key,
                    },
                });
            }
            Event::PrivacyReportV1(report) => out.push(Op::Put {
                tree: REPORTS,
                key: report.report_id.as_bytes().to_vec(),
                value: postcard::to_stdvec(&ReportRef {
                    position,
                    time_micros: report.time_micros,
                })
                .expect("encodes"),
            }),
            Event::AuditTrailTrimmedV1(trimmed) => out.push(Op::Put {
                tree: ANCHORS,
                key: position.to_be_bytes().to_vec(),
                value: postcard::to_stdvec(&AuditAnchor {
                    first_kept_seq: trimmed.last_removed_seq + 1,
                    anchor_hash: trimmed.anchor_hash,
                    time_micros: trimmed.time_micros,
                })
                .expect("encodes"),
            }),
            _ => {
                if let Some(stored) = event.stored_statement() {
                    let micros = statement_age_micros(stored);
                    for token in people_of(stored) {
                        self.note(state, out, &token, KIND_STATEMENTS, &stored.tenant, micros);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrs_core::events::{ErasureReasonV1, PersonErasedV1, RetentionPolicySetV1};

    use crate::testing::Memory;

    impl Memory {
        fn fold(&mut self, position: u64, event: &Event) {
            let mut out = Vec::new();
            Privacy.apply(position, event, self, &mut out);
            for op in out {
                match op {
                    Op::Put { tree, key, value } => {
                        self.0.insert((tree, key), value);
                    }
                    Op::Delete { tree, key } => {
                        self.0.remove(&(tree, key));
                    }
                }
            }
        }
    }

    #[test]
    fn policies_round_trip_and_erasure_forgets_the_person() {
        let mut state = Memory::default();
        state.fold(
            1,
            &Event::RetentionPolicySetV1(RetentionPolicySetV1 {
                tenant: "kb".into(),
                kind: RetentionKindV1::Documents,
                days: Some(30),
                time_micros: 1,
                who: "t".into(),
            }),
        );
        let key = policy_key("kb", RetentionKindV1::Documents);
        assert_eq!(
            decode_policy_key(&key),
            Some(("kb".into(), RetentionKindV1::Documents))
        );
        assert_eq!(
            state.get(POLICIES, &key),
            Some(30u32.to_be_bytes().to_vec())
        );

        let token = Token([9; 16]);
        state.0.insert(
            (PEOPLE, people_key(&token, KIND_STATEMENTS, "kb")),
            postcard::to_stdvec(&PersonData {
                latest_micros: 5,
                count: 2,
            })
            .unwrap(),
        );
        state.fold(
            2,
            &Event::PersonErasedV1(PersonErasedV1 {
                token,
                time_micros: 10,
                reason: ErasureReasonV1::Request {
                    request_id: "r".into(),
                },
                who: "t".into(),
            }),
        );
        assert!(state.scan_prefix(PEOPLE, &token.0).is_empty());
        let erased: ErasedRecord =
            postcard::from_bytes(&state.get(ERASED, &token.0).unwrap()).unwrap();
        assert_eq!(erased.position, 2);
        assert!(!erased.by_retention);
    }
}
