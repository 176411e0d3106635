//! Reads of the staff accounts read model (`lrs_projections::staff_accounts`):
//! one account by its vault token, or all of them. The sealed part stays
//! sealed here; the server opens it with the vault.

use crate::error::StoreError;
use crate::store::Store;
use lrs_core::token::Token;
use lrs_projections::staff_accounts::{self, StaffAccountRecord, STAFF_ACCOUNTS};

impl Store {
    /// The staff account of this vault token, open or closed.
    pub fn staff_account(&self, token: &Token) -> Result<Option<StaffAccountRecord>, StoreError> {
        match self.shared().tree(STAFF_ACCOUNTS).get(token.0)? {
            Some(bytes) => staff_accounts::decode(&bytes)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("staff account {token}"))),
            None => Ok(None),
        }
    }

    /// Every staff account, open or closed, in token order.
    pub fn staff_accounts(&self) -> Result<Vec<StaffAccountRecord>, StoreError> {
        self.shared()
            .tree(STAFF_ACCOUNTS)
            .iter()
            .map(|item| {
                let (key, bytes) = item?;
                staff_accounts::decode(&bytes).ok_or_else(|| {
                    StoreError::Corrupt(format!("staff account {}", hex::encode(&key)))
                })
            })
            .collect()
    }
}
