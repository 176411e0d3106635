//! Access control read models: the current record of each credential, each
//! tenant and each role, folded from their events.

use crate::{Op, Projection, ReadModel, TreeName};
use lrs_core::events::{RoleGrantV1, TenantKindV1};
use lrs_core::Event;
use serde::{Deserialize, Serialize};

pub const CREDENTIALS: TreeName = "credentials.by_key";
pub const TENANTS: TreeName = "tenants.by_id";
pub const ROLES: TreeName = "roles.by_name";

/// A credential as it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    pub key: String,
    pub name: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub roles: Vec<RoleGrantV1>,
    pub allowed_networks: Vec<String>,
    pub issued_micros: i64,
    /// `None` only for credentials issued before expiry became mandatory.
    pub expires_micros: Option<i64>,
    /// The secrets that open it: the current one (`None`: no end of its
    /// own) and, during a rotation's grace period, the previous one.
    pub secrets: Vec<SecretRecord>,
    pub revoked: Option<Revocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// argon2id PHC string.
    pub hash: String,
    pub valid_until_micros: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub revoked_micros: i64,
    pub reason: String,
}

/// A tenant as it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: String,
    pub name: String,
    pub kind: TenantKindV1,
    pub defined_micros: i64,
}

/// A role as it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRecord {
    pub name: String,
    pub permissions: Vec<String>,
    pub defined_micros: i64,
}

pub struct Credentials;

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("records encode")
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    postcard::from_bytes(bytes).ok()
}

impl Projection for Credentials {
    fn name(&self) -> &'static str {
        "credentials"
    }

    fn version(&self) -> u32 {
        2
    }

    fn trees(&self) -> &'static [TreeName] {
        &[CREDENTIALS, TENANTS, ROLES]
    }

    fn apply(&self, _position: u64, event: &Event, state: &dyn ReadModel, out: &mut Vec<Op>) {
        let current = |key: &str| {
            state
                .get(CREDENTIALS, key.as_bytes())
                .and_then(|bytes| decode::<CredentialRecord>(&bytes))
        };
        let record = match event {
            Event::CredentialIssuedV1(issued) => Some(CredentialRecord {
                key: issued.key.clone(),
                name: issued.name.clone(),
                tenant: issued.tenant.clone(),
                scopes: issued.scopes.clone(),
                roles: Vec::new(),
                allowed_networks: Vec::new(),
                issued_micros: issued.issued_micros,
                expires_micros: issued.expires_micros,
                secrets: vec![SecretRecord {
                    hash: issued.secret_hash.clone(),
                    valid_until_micros: None,
                }],
                revoked: None,
            }),
            Event::CredentialIssuedV2(issued) => Some(CredentialRecord {
                key: issued.key.clone(),
                name: issued.name.clone(),
                tenant: issued.tenant.clone(),
                scopes: issued.scopes.clone(),
                roles: issued.roles.clone(),
                allowed_networks: issued.allowed_networks.clone(),
                issued_micros: issued.issued_micros,
                expires_micros: Some(issued.expires_micros),
                secrets: vec![SecretRecord {
                    hash: issued.secret_hash.clone(),
                    valid_until_micros: None,
                }],
                revoked: None,
            }),
            Event::CredentialRotatedV1(rotated) => current(&rotated.key).map(|mut record| {
                // Only the latest previous secret keeps a grace period.
                record.secrets.truncate(1);
                if let Some(previous) = record.secrets.first_mut() {
                    previous.valid_until_micros = Some(
                        previous
                            .valid_until_micros
                            .map_or(rotated.previous_valid_until_micros, |until| {
                                until.min(rotated.previous_valid_until_micros)
                            }),
                    );
                }
                record.secrets.insert(
                    0,
                    SecretRecord {
                        hash: rotated.secret_hash.clone(),
                        valid_until_micros: None,
                    },
                );
                record.expires_micros = Some(rotated.expires_micros);
                record
            }),
            Event::CredentialRevokedV1(revoked) => current(&revoked.key).map(|mut record| {
                record.revoked.get_or_insert(Revocation {
                    revoked_micros: revoked.revoked_micros,
                    reason: revoked.reason.clone(),
                });
                record
            }),
            Event::TenantDefinedV1(defined) => {
                out.push(Op::Put {
                    tree: TENANTS,
                    key: defined.id.as_bytes().to_vec(),
                    value: encode(&TenantRecord {
                        id: defined.id.clone(),
                        name: defined.name.clone(),
                        kind: defined.kind.clone(),
                        defined_micros: defined.defined_micros,
                    }),
                });
                None
            }
            Event::RoleDefinedV1(defined) => {
                out.push(if defined.permissions.is_empty() {
                    Op::Delete {
                        tree: ROLES,
                        key: defined.name.as_bytes().to_vec(),
                    }
                } else {
                    Op::Put {
                        tree: ROLES,
                        key: defined.name.as_bytes().to_vec(),
                        value: encode(&RoleRecord {
                            name: defined.name.clone(),
                            permissions: defined.permissions.clone(),
                            defined_micros: defined.defined_micros,
                        }),
                    }
                });
                None
            }
            _ => None,
        };
        if let Some(record) = record {
            out.push(Op::Put {
                tree: CREDENTIALS,
                key: record.key.as_bytes().to_vec(),
                value: encode(&record),
            });
        }
    }
}
