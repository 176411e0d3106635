//! Staff accounts of the web pages: the current record of each account,
//! folded from `StaffAccountDefinedV1` and `StaffAccountClosedV1`.
//!
//! The record keeps what the event keeps: the account's vault token, tenant
//! and roles in clear, and its user name, display name, password hash and
//! TOTP secret still sealed under the account's own data key. This
//! projection never opens anything (it has no keys): the server opens the
//! sealed part at login time, and erasing the token erases the account.

use crate::{Op, Projection, ReadModel, TreeName};
use lrs_core::events::{RoleGrantV1, SealedForPersonV1};
use lrs_core::token::Token;
use lrs_core::Event;
use serde::{Deserialize, Serialize};

/// Account token (16 bytes) → [`StaffAccountRecord`] (postcard).
pub const STAFF_ACCOUNTS: TreeName = "staff.by_token";

/// A staff account as it stands now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffAccountRecord {
    pub token: Token,
    pub tenant: String,
    pub roles: Vec<RoleGrantV1>,
    /// User name, display name, password hash, TOTP secret (JSON), sealed.
    pub sealed: SealedForPersonV1,
    /// When the account was first defined.
    pub created_micros: i64,
    /// When it was last defined (created, reset, roles changed).
    pub defined_micros: i64,
    pub defined_by: String,
    pub closed: Option<StaffAccountClosure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffAccountClosure {
    pub closed_micros: i64,
    pub by: String,
}

impl StaffAccountRecord {
    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }
}

pub fn decode(bytes: &[u8]) -> Option<StaffAccountRecord> {
    postcard::from_bytes(bytes).ok()
}

fn encode(record: &StaffAccountRecord) -> Vec<u8> {
    postcard::to_stdvec(record).expect("records encode")
}

pub struct StaffAccounts;

impl Projection for StaffAccounts {
    fn name(&self) -> &'static str {
        "staff_accounts"
    }

    fn version(&self) -> u32 {
        1
    }

    fn trees(&self) -> &'static [TreeName] {
        &[STAFF_ACCOUNTS]
    }

    fn apply(&self, _position: u64, event: &Event, state: &dyn ReadModel, out: &mut Vec<Op>) {
        let current = |token: &Token| {
            state
                .get(STAFF_ACCOUNTS, &token.0)
                .and_then(|bytes| decode(&bytes))
        };
        let record = match event {
            // Defining an account again (a reset, new roles) replaces it and
            // opens it again if it was closed; it keeps its creation time.
            Event::StaffAccountDefinedV1(defined) => Some(StaffAccountRecord {
                token: defined.token,
                tenant: defined.tenant.clone(),
                roles: defined.roles.clone(),
                sealed: defined.sealed.clone(),
                created_micros: current(&defined.token)
                    .map_or(defined.defined_micros, |r| r.created_micros),
                defined_micros: defined.defined_micros,
                defined_by: defined.by.clone(),
                closed: None,
            }),
            Event::StaffAccountClosedV1(closed) => current(&closed.token).map(|mut record| {
                record.closed.get_or_insert(StaffAccountClosure {
                    closed_micros: closed.closed_micros,
                    by: closed.by.clone(),
                });
                record
            }),
            _ => None,
        };
        if let Some(record) = record {
            out.push(Op::Put {
                tree: STAFF_ACCOUNTS,
                key: record.token.0.to_vec(),
                value: encode(&record),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrs_core::events::{StaffAccountClosedV1, StaffAccountDefinedV1};
    use std::collections::BTreeMap;

    /// The trees as a map, ops applied in order: enough to fold a few events.
    #[derive(Default)]
    struct Memory(BTreeMap<Vec<u8>, Vec<u8>>);

    impl ReadModel for Memory {
        fn get(&self, _tree: TreeName, key: &[u8]) -> Option<Vec<u8>> {
            self.0.get(key).cloned()
        }
        fn scan_prefix(&self, _tree: TreeName, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.0
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
    }

    fn fold(events: &[Event]) -> Memory {
        let mut memory = Memory::default();
        for (position, event) in events.iter().enumerate() {
            let mut ops = Vec::new();
            StaffAccounts.apply(position as u64 + 1, event, &memory, &mut ops);
            for op in ops {
                match op {
                    Op::Put { key, value, .. } => {
                        memory.0.insert(key, value);
                    }
                    Op::Delete { key, .. } => {
                        memory.0.remove(&key);
                    }
                }
            }
        }
        memory
    }

    fn defined(token: Token, role: &str, at: i64) -> Event {
        Event::StaffAccountDefinedV1(StaffAccountDefinedV1 {
            token,
            tenant: "bib-a".into(),
            roles: vec![RoleGrantV1 {
                role: role.into(),
                until_micros: None,
            }],
            sealed: SealedForPersonV1 {
                token,
                nonce: [at as u8; 24],
                ciphertext: vec![1, 2, 3],
            },
            defined_micros: at,
            by: "cli:test".into(),
        })
    }

    fn closed(token: Token, at: i64) -> Event {
        Event::StaffAccountClosedV1(StaffAccountClosedV1 {
            token,
            closed_micros: at,
            by: "cli:test".into(),
        })
    }

    fn record(memory: &Memory, token: Token) -> StaffAccountRecord {
        decode(&memory.0[&token.0.to_vec()]).expect("a record")
    }

    #[test]
    fn define_close_and_define_again() {
        let anna = Token([1; 16]);
        let memory = fold(&[defined(anna, "staff", 10), closed(anna, 20)]);
        let closed_record = record(&memory, anna);
        assert_eq!(
            closed_record.closed,
            Some(StaffAccountClosure {
                closed_micros: 20,
                by: "cli:test".into()
            })
        );
        assert!(!closed_record.is_open());

        let memory = fold(&[
            defined(anna, "staff", 10),
            closed(anna, 20),
            closed(anna, 25),
            defined(anna, "kb-staff", 30),
        ]);
        let reopened = record(&memory, anna);
        assert!(reopened.is_open());
        assert_eq!(reopened.created_micros, 10, "creation time is kept");
        assert_eq!(reopened.defined_micros, 30);
        assert_eq!(reopened.roles[0].role, "kb-staff");
    }

    #[test]
    fn closing_an_unknown_account_records_nothing() {
        let memory = fold(&[closed(Token([9; 16]), 5)]);
        assert!(memory.0.is_empty());
    }

    #[test]
    fn a_second_close_keeps_the_first() {
        let bert = Token([2; 16]);
        let memory = fold(&[defined(bert, "staff", 1), closed(bert, 2), closed(bert, 3)]);
        assert_eq!(record(&memory, bert).closed.unwrap().closed_micros, 2);
    }
}
