//! The identity vault: for each person (inverse functional identifier) a
//! random pseudonymous token and a random data key, wrapped under the master
//! key, in a file of fixed-size slots beside (never inside) the log.
//!
//! Why not sled: destroying a person must leave nothing of their key on disk.
//! sled is log-structured, so a removed value lives on in old segments until
//! they are rewritten. Here a slot is overwritten with zeros in place and the
//! file is synced; see docs/adr/0002-identity-vault.md.
//!
//! The file holds no identifier in clear either: a slot is found by a keyed
//! hash (HMAC-SHA256 under a key derived from the master key) of the IFI.

use crate::error::StoreError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use lrs_core::{DataKey, Token};
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use xapi::Ifi;

const MAGIC: &[u8; 16] = b"LRS-VAULT-v1\0\0\0\0";
const SLOT_SIZE: usize = 128;
const LIVE: u8 = 1;
// slot layout: state(1) lookup(32) token(16) nonce(24) wrapped(48) padding(7)
const LOOKUP_AT: usize = 1;
const TOKEN_AT: usize = 33;
const NONCE_AT: usize = 49;
const WRAPPED_AT: usize = 73;
const WRAPPED_LEN: usize = 48;

/// The operator's master key (32 bytes). Wraps every data key; never stored
/// in the vault file.
#[derive(Clone)]
pub struct MasterKey(pub [u8; 32]);

impl MasterKey {
    fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("hmac takes any key length");
        mac.update(b"lrs master key derivation\0");
        mac.update(purpose);
        mac.finalize().into_bytes().into()
    }

    /// A key for keyed digests (statement comparison), derived from the master key.
    pub fn digest_key(&self) -> [u8; 32] {
        self.derive(b"statement comparison digest")
    }
}

struct Person {
    slot: u64,
    token: Token,
    key: DataKey,
}

struct Inner {
    file: File,
    slots: u64,
    by_lookup: HashMap<[u8; 32], usize>,
    by_token: HashMap<Token, usize>,
    people: Vec<Option<Person>>,
    /// Slots created in memory but not yet written and synced.
    pending: Vec<(u64, [u8; SLOT_SIZE])>,
}

pub struct Vault {
    inner: Mutex<Inner>,
    lookup_key: [u8; 32],
    wrap: XChaCha20Poly1305,
}

/// What destroying a person did, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destroyed {
    pub token: Token,
    pub slot: u64,
}

impl Vault {
    pub fn open(path: &Path, master: &MasterKey) -> Result<Self, StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let length = file.metadata()?.len();
        if length == 0 {
            file.write_all(MAGIC)?;
            file.sync_all()?;
        } else {
            let mut magic = [0u8; 16];
            file.read_exact(&mut magic)?;
            if &magic != MAGIC {
                return Err(StoreError::Corrupt(format!(
                    "{} is not an identity vault",
                    path.display()
                )));
            }
        }
        let wrap = XChaCha20Poly1305::new(&master.derive(b"data key wrapping").into());
        let vault = Vault {
            inner: Mutex::new(Inner {
                file,
                slots: 0,
                by_lookup: HashMap::new(),
                by_token: HashMap::new(),
                people: Vec::new(),
                pending: Vec::new(),
            }),
            lookup_key: master.derive(b"identifier lookup"),
            wrap,
        };
        vault.load(length)?;
        Ok(vault)
    }

    fn load(&self, length: u64) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("vault lock");
        // A torn last slot (crash mid-write, never acknowledged) is ignored.
        let slots = length.saturating_sub(MAGIC.len() as u64) / SLOT_SIZE as u64;
        inner.file.seek(SeekFrom::Start(MAGIC.len() as u64))?;
        let mut all = vec![0u8; (slots as usize) * SLOT_SIZE];
        inner.file.read_exact(&mut all)?;
        for (slot, bytes) in all.chunks_exact(SLOT_SIZE).enumerate() {
            if bytes[0] != LIVE {
                continue;
            }
            let lookup: [u8; 32] = bytes[LOOKUP_AT..TOKEN_AT].try_into().expect("fixed slice");
            let token = Token(bytes[TOKEN_AT..NONCE_AT].try_into().expect("fixed slice"));
            let nonce = &bytes[NONCE_AT..WRAPPED_AT];
            let wrapped = &bytes[WRAPPED_AT..WRAPPED_AT + WRAPPED_LEN];
            let key = self
                .wrap
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: wrapped,
                        aad: &token.0,
                    },
                )
                .map_err(|_| {
                    StoreError::Corrupt(format!(
                        "vault slot {slot} does not open under this master key"
                    ))
                })?;
            let index = inner.people.len();
            inner.people.push(Some(Person {
                slot: slot as u64,
                token,
                key: DataKey(key.try_into().expect("32 bytes")),
            }));
            inner.by_lookup.insert(lookup, index);
            inner.by_token.insert(token, index);
        }
        inner.slots = slots;
        Ok(())
    }

    fn lookup_hash(&self, ifi: &Ifi) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.lookup_key)
            .expect("hmac takes any key length");
        mac.update(&ifi.canonical_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The person's token, if they are in the vault.
    pub fn token_of(&self, ifi: &Ifi) -> Option<Token> {
        let lookup = self.lookup_hash(ifi);
        let inner = self.inner.lock().expect("vault lock");
        inner
            .by_lookup
            .get(&lookup)
            .and_then(|&i| inner.people[i].as_ref())
            .map(|p| p.token)
    }

    /// The person's token and key, creating them if new. A new person is
    /// durable only after the next [`Vault::sync`].
    pub fn person(&self, ifi: &Ifi) -> (Token, DataKey) {
        let lookup = self.lookup_hash(ifi);
        let mut inner = self.inner.lock().expect("vault lock");
        if let Some(person) = inner
            .by_lookup
            .get(&lookup)
            .and_then(|&i| inner.people[i].as_ref())
        {
            return (person.token, person.key.clone());
        }
        let mut rng = rand::thread_rng();
        let mut token = Token([0; 16]);
        loop {
            rng.fill_bytes(&mut token.0);
            if !inner.by_token.contains_key(&token) {
                break;
            }
        }
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let wrapped = self
            .wrap
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &key,
                    aad: &token.0,
                },
            )
            .expect("encryption never fails");
        let mut bytes = [0u8; SLOT_SIZE];
        bytes[0] = LIVE;
        bytes[LOOKUP_AT..TOKEN_AT].copy_from_slice(&lookup);
        bytes[TOKEN_AT..NONCE_AT].copy_from_slice(&token.0);
        bytes[NONCE_AT..WRAPPED_AT].copy_from_slice(&nonce);
        bytes[WRAPPED_AT..WRAPPED_AT + WRAPPED_LEN].copy_from_slice(&wrapped);
        let slot = inner.slots;
        inner.slots += 1;
        inner.pending.push((slot, bytes));
        let index = inner.people.len();
        inner.people.push(Some(Person {
            slot,
            token,
            key: DataKey(key),
        }));
        inner.by_lookup.insert(lookup, index);
        inner.by_token.insert(token, index);
        (token, DataKey(key))
    }

    /// Writes and syncs the people created since the last sync. Called by
    /// the log writer before it makes a group of events durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("vault lock");
        if inner.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut inner.pending);
        for (slot, bytes) in &pending {
            inner
                .file
                .write_all_at(bytes, MAGIC.len() as u64 + slot * SLOT_SIZE as u64)?;
        }
        inner.file.sync_data()?;
        Ok(())
    }

    /// The data key of a token, if the person has not been destroyed.
    pub fn key(&self, token: &Token) -> Option<DataKey> {
        let inner = self.inner.lock().expect("vault lock");
        inner
            .by_token
            .get(token)
            .and_then(|&i| inner.people[i].as_ref())
            .map(|p| p.key.clone())
    }

    /// Destroys a person: their slot is overwritten with zeros and synced, so
    /// every ciphertext under their key, in every copy of the log, is noise.
    pub fn destroy(&self, token: &Token) -> Result<Option<Destroyed>, StoreError> {
        let mut inner = self.inner.lock().expect("vault lock");
        let Some(index) = inner.by_token.remove(token) else {
            return Ok(None);
        };
        let person = inner.people[index].take().expect("indexed people exist");
        inner.by_lookup.retain(|_, i| *i != index);
        let zeros = [0u8; SLOT_SIZE];
        if let Some(pending) = inner
            .pending
            .iter_mut()
            .find(|(slot, _)| *slot == person.slot)
        {
            pending.1 = zeros;
        }
        inner
            .file
            .write_all_at(&zeros, MAGIC.len() as u64 + person.slot * SLOT_SIZE as u64)?;
        inner.file.sync_data()?;
        Ok(Some(Destroyed {
            token: person.token,
            slot: person.slot,
        }))
    }

    /// The vault file's bytes as they are now (under the lock, so no slot
    /// is half-written), for a backup. People created but not yet synced
    /// belong to log entries not yet written, so a backup does not need them.
    pub fn file_bytes(&self) -> Result<Vec<u8>, StoreError> {
        let inner = self.inner.lock().expect("vault lock");
        let length = inner.file.metadata()?.len();
        let mut bytes = vec![0u8; length as usize];
        inner.file.read_exact_at(&mut bytes, 0)?;
        Ok(bytes)
    }

    /// How many people the vault holds.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("vault lock").by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Zeroes, in a copy of a vault file (a backup's, being restored), the slot
/// of every token in `erased`: the same as [`Vault::destroy`], without the
/// master key (the token is in clear in its slot). Returns how many.
pub fn erase_in_copy(bytes: &mut [u8], erased: &std::collections::HashSet<Token>) -> usize {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return 0;
    }
    let mut count = 0;
    for slot in bytes[MAGIC.len()..].chunks_exact_mut(SLOT_SIZE) {
        let token = Token(slot[TOKEN_AT..NONCE_AT].try_into().expect("fixed slice"));
        if slot[0] == LIVE && erased.contains(&token) {
            slot.fill(0);
            count += 1;
        }
    }
    count
}

/// The tokens of the live slots of a vault file's bytes (no master key needed).
pub fn tokens_in_copy(bytes: &[u8]) -> Vec<Token> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Vec::new();
    }
    bytes[MAGIC.len()..]
        .chunks_exact(SLOT_SIZE)
        .filter(|slot| slot[0] == LIVE)
        .map(|slot| Token(slot[TOKEN_AT..NONCE_AT].try_into().expect("fixed slice")))
        .collect()
}

impl lrs_core::envelope::KeyLookup for Vault {
    fn key(&self, token: &Token) -> Option<DataKey> {
        Vault::key(self, token)
    }
}

/// The vault as the envelope's [`lrs_core::envelope::KeyRing`]: creates people as needed.
pub struct VaultKeys<'a>(pub &'a Vault);

impl lrs_core::envelope::KeyRing for VaultKeys<'_> {
    fn person(&mut self, ifi: &Ifi) -> Result<(Token, DataKey), lrs_core::envelope::EnvelopeError> {
        Ok(self.0.person(ifi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xapi::agent::ifi_of;

    fn anna() -> Ifi {
        ifi_of(&serde_json::json!({"mbox": "mailto:anna@example.nl"})).unwrap()
    }

    #[test]
    fn people_survive_reopening_and_destroyed_people_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault");
        let master = MasterKey([7; 32]);
        let (token, key) = {
            let vault = Vault::open(&path, &master).unwrap();
            let created = vault.person(&anna());
            assert_eq!(vault.person(&anna()).0, created.0, "same ifi, same token");
            vault.sync().unwrap();
            created
        };
        let vault = Vault::open(&path, &master).unwrap();
        assert_eq!(vault.token_of(&anna()), Some(token));
        assert_eq!(vault.key(&token), Some(key.clone()));
        vault.destroy(&token).unwrap().unwrap();
        assert_eq!(vault.key(&token), None);
        drop(vault);

        let raw = std::fs::read(&path).unwrap();
        assert!(
            !raw.windows(16).any(|w| w == token.0),
            "token bytes left on disk"
        );
        let vault = Vault::open(&path, &master).unwrap();
        assert_eq!(vault.token_of(&anna()), None);
        assert!(vault.is_empty());
    }

    #[test]
    fn the_wrong_master_key_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault");
        let vault = Vault::open(&path, &MasterKey([1; 32])).unwrap();
        vault.person(&anna());
        vault.sync().unwrap();
        drop(vault);
        assert!(Vault::open(&path, &MasterKey([2; 32])).is_err());
    }
}
