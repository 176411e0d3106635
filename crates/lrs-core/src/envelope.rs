//! The privacy envelope: cuts every person out of a statement, seals each
//! person's agent object under their own data key and the rest of the
//! statement under the keys of its subjects, and puts it back together.
//!
//! Knows nothing about where keys live: they come through [`KeyRing`] (when
//! sealing, creating people as needed) and [`KeyLookup`] (when opening).

use crate::events::{SealedAttachmentV1, SealedForPersonV1, SealedStatementV1};
use crate::token::{DataKey, Token};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde_json::{json, Map, Value};
use xapi::agent::{ifi_of, Ifi};

/// Marker that replaces a person in the sealed skeleton: `{"$p": index}`.
const PERSON_MARKER: &str = "$p";

/// Where a sealing gets each person's token and key (creating them if new).
pub trait KeyRing {
    fn person(&mut self, ifi: &Ifi) -> Result<(Token, DataKey), EnvelopeError>;
}

/// Where opening gets a person's key; `None` once the person is erased.
pub trait KeyLookup {
    fn key(&self, token: &Token) -> Option<DataKey>;
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the identity vault refused a person: {0}")]
    Vault(String),
    #[error("sealed data is corrupt: {0}")]
    Corrupt(&'static str),
}

/// A statement sealed for the log, with the skeleton kept in clear in
/// memory only, so the caller can extract facts without decrypting again.
pub struct Sealed {
    pub sealed: SealedStatementV1,
    /// The statement with every person replaced by `{"$p": i}`.
    pub skeleton: Value,
    /// `tokens[i]` is the token of person `i` in the skeleton.
    pub tokens: Vec<Token>,
}

/// An attachment's content as sent with its statement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttachmentContent {
    pub sha2: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Seals a validated statement and the contents of its attachments.
/// `statement` must not contain `id` or `stored` (kept in clear beside it).
pub fn seal(
    statement: &Value,
    attachments: &[AttachmentContent],
    keys: &mut impl KeyRing,
) -> Result<Sealed, EnvelopeError> {
    seal_body_as(statement, attachments, keys, body_plaintext)
}

fn seal_body_as(
    statement: &Value,
    attachments: &[AttachmentContent],
    keys: &mut impl KeyRing,
    body_plaintext: fn(&Value) -> Vec<u8>,
) -> Result<Sealed, EnvelopeError> {
    let mut skeleton = statement.clone();
    let mut cutter = Cutter {
        keys,
        persons: Vec::new(),
        tokens: Vec::new(),
        subjects: Vec::new(),
    };
    cutter.cut_statement(&mut skeleton, true)?;
    let Cutter {
        persons,
        tokens,
        subjects,
        ..
    } = cutter;

    let mut content_key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut content_key);
    let body_nonce = random_nonce();
    let content_cipher = XChaCha20Poly1305::new(&content_key.into());
    let body = content_cipher
        .encrypt(
            XNonce::from_slice(&body_nonce),
            body_plaintext(&skeleton).as_slice(),
        )
        .expect("encryption of a vec never fails");
    let attachments = attachments
        .iter()
        .map(|attachment| {
            let nonce = random_nonce();
            let plaintext = postcard::to_stdvec(attachment).expect("attachments encode");
            let ciphertext = content_cipher
                .encrypt(XNonce::from_slice(&nonce), plaintext.as_slice())
                .expect("encryption of a vec never fails");
            SealedAttachmentV1 { nonce, ciphertext }
        })
        .collect();

    // XOR shares of the content key: every subject's share is needed.
    let mut subject_shares = Vec::with_capacity(subjects.len().max(1));
    let mut remainder = content_key;
    for (i, (token, key)) in subjects.iter().enumerate() {
        let share = if i + 1 == subjects.len() {
            remainder
        } else {
            let mut share = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut share);
            for (r, s) in remainder.iter_mut().zip(share) {
                *r ^= s;
            }
            share
        };
        subject_shares.push(seal_for(*token, key, &share));
    }
    Ok(Sealed {
        sealed: SealedStatementV1 {
            persons,
            subject_shares,
            body_nonce,
            body,
            attachments,
        },
        skeleton,
        tokens,
    })
}

/// Opens a sealed statement. `None` when a subject's key is gone (the
/// statement belonged to an erased person). A non-subject person whose key is
/// gone is replaced by [`erased_agent`].
pub fn open(
    sealed: &SealedStatementV1,
    keys: &impl KeyLookup,
) -> Result<Option<Value>, EnvelopeError> {
    open_with(sealed, keys, open_for)
}

/// The people already opened for one answer (a page of statements): a
/// person's unchanged agent is sealed to the same bytes (synthetic nonces,
/// docs/adr/0009), so a page of one learner's statements decrypts,
/// decompresses and parses their agent (and the app's authority) once.
/// A hit needs the same token, nonce and ciphertext, and the person's key
/// is looked up every time, so an erased person is never served from here.
#[derive(Default)]
pub struct OpenedPeople(std::collections::HashMap<(Token, [u8; 24]), (Vec<u8>, Value)>);

impl OpenedPeople {
    /// The person's agent: from memory if opened before, else opened now.
    fn open(&mut self, person: &SealedForPersonV1, key: &DataKey) -> Result<Value, EnvelopeError> {
        let slot = (person.token, person.nonce);
        if let Some((ciphertext, agent)) = self.0.get(&slot) {
            if *ciphertext == person.ciphertext {
                return Ok(agent.clone());
            }
        }
        let agent = open_for(person, key)?;
        self.0
            .insert(slot, (person.ciphertext.clone(), agent.clone()));
        Ok(agent)
    }
}

/// [`open`], with the people already opened for the same answer.
pub fn open_remembering(
    sealed: &SealedStatementV1,
    keys: &impl KeyLookup,
    opened: &mut OpenedPeople,
) -> Result<Option<Value>, EnvelopeError> {
    open_with(sealed, keys, |person, key| opened.open(person, key))
}

/// [`open`], opening each person whose key is there with `open_person`.
fn open_with(
    sealed: &SealedStatementV1,
    keys: &impl KeyLookup,
    mut open_person: impl FnMut(&SealedForPersonV1, &DataKey) -> Result<Value, EnvelopeError>,
) -> Result<Option<Value>, EnvelopeError> {
    let Some(skeleton) = open_skeleton(sealed, keys)? else {
        return Ok(None);
    };
    let mut people = Vec::with_capacity(sealed.persons.len());
    for person in &sealed.persons {
        people.push(match keys.key(&person.token) {
            Some(key) => Some(open_person(person, &key)?),
            None => None,
        });
    }
    let mut statement = skeleton;
    put_people_back(&mut statement, sealed, &people)?;
    Ok(Some(statement))
}

/// Decrypts just the skeleton (people still cut out); `None` when a subject
/// has been erased.
pub fn open_skeleton(
    sealed: &SealedStatementV1,
    keys: &impl KeyLookup,
) -> Result<Option<Value>, EnvelopeError> {
    let Some(content_key) = content_key(sealed, keys)? else {
        return Ok(None);
    };
    let body = XChaCha20Poly1305::new(&content_key.into())
        .decrypt(
            XNonce::from_slice(&sealed.body_nonce),
            sealed.body.as_slice(),
        )
        .map_err(|_| EnvelopeError::Corrupt("statement body does not decrypt"))?;
    let json = json_of(body, "statement body does not decompress")?;
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|_| EnvelopeError::Corrupt("statement body is not json"))
}

/// The largest JSON a compressed frame in a sealed part may claim.
const MAX_JSON_BYTES: usize = 1 << 30;

/// What is encrypted as a statement's body: the skeleton's JSON.
fn body_plaintext(skeleton: &Value) -> Vec<u8> {
    compressed_json(serde_json::to_vec(skeleton).expect("json encodes"))
}

/// The plaintext of a sealed JSON part (a statement's body, a person):
/// the JSON itself, which always starts with `{`, or, when smaller,
/// `[dictionary id][zstd frame of the JSON]` (`crate::compress`).
/// Compressed before it is encrypted: ciphertext does not compress.
fn compressed_json(json: Vec<u8>) -> Vec<u8> {
    let tagged = crate::compress::compress_tagged(&json);
    if tagged.len() < json.len() {
        tagged
    } else {
        json
    }
}

/// The JSON of a decrypted part made by [`compressed_json`], or sealed
/// before compression (plain JSON).
fn json_of(plaintext: Vec<u8>, what: &'static str) -> Result<Vec<u8>, EnvelopeError> {
    match plaintext.first() {
        Some(b'{') => Ok(plaintext),
        _ => crate::compress::decompress_tagged(&plaintext, MAX_JSON_BYTES)
            .map_err(|_| EnvelopeError::Corrupt(what)),
    }
}

/// The contents of the statement's attachments; `None` when a subject has been erased.
pub fn open_attachments(
    sealed: &SealedStatementV1,
    keys: &impl KeyLookup,
) -> Result<Option<Vec<AttachmentContent>>, EnvelopeError> {
    if sealed.attachments.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let Some(content_key) = content_key(sealed, keys)? else {
        return Ok(None);
    };
    let cipher = XChaCha20Poly1305::new(&content_key.into());
    let mut contents = Vec::with_capacity(sealed.attachments.len());
    for attachment in &sealed.attachments {
        let plaintext = cipher
            .decrypt(
                XNonce::from_slice(&attachment.nonce),
                attachment.ciphertext.as_slice(),
            )
            .map_err(|_| EnvelopeError::Corrupt("attachment does not decrypt"))?;
        contents.push(
            postcard::from_bytes(&plaintext)
                .map_err(|_| EnvelopeError::Corrupt("attachment encoding"))?,
        );
    }
    Ok(Some(contents))
}

/// Recombines the content key from the subjects' shares.
fn content_key(
    sealed: &SealedStatementV1,
    keys: &impl KeyLookup,
) -> Result<Option<[u8; 32]>, EnvelopeError> {
    let mut content_key = [0u8; 32];
    for share in &sealed.subject_shares {
        let Some(key) = keys.key(&share.token) else {
            return Ok(None);
        };
        let bytes = open_bytes(share, &key)?;
        if bytes.len() != 32 {
            return Err(EnvelopeError::Corrupt(
                "content key share has the wrong length",
            ));
        }
        for (c, s) in content_key.iter_mut().zip(bytes) {
            *c ^= s;
        }
    }
    Ok(Some(content_key))
}

/// One person's agent object from a sealed statement's `persons`; `None`
/// once the person is erased.
pub fn open_person(
    sealed: &SealedForPersonV1,
    keys: &impl KeyLookup,
) -> Result<Option<Value>, EnvelopeError> {
    match keys.key(&sealed.token) {
        Some(key) => open_for(sealed, &key).map(Some),
        None => Ok(None),
    }
}

/// Seals any bytes (a document, say) under one person's key.
pub fn seal_bytes(token: Token, key: &DataKey, plaintext: &[u8]) -> SealedForPersonV1 {
    seal_for(token, key, plaintext)
}

/// Opens bytes sealed with [`seal_bytes`]; `None` once the person is erased.
pub fn open_sealed_bytes(
    sealed: &SealedForPersonV1,
    keys: &impl KeyLookup,
) -> Result<Option<Vec<u8>>, EnvelopeError> {
    match keys.key(&sealed.token) {
        Some(key) => open_bytes(sealed, &key).map(Some),
        None => Ok(None),
    }
}

/// What stands in for a person who has been erased.
pub fn erased_agent(token: &Token) -> Value {
    json!({
        "objectType": "Agent",
        "account": { "homePage": "urn:lrs:erased", "name": token.to_hex() }
    })
}

struct Cutter<'a, K: KeyRing> {
    keys: &'a mut K,
    persons: Vec<SealedForPersonV1>,
    tokens: Vec<Token>,
    subjects: Vec<(Token, DataKey)>,
}

impl<K: KeyRing> Cutter<'_, K> {
    fn cut_statement(
        &mut self,
        statement: &mut Value,
        top_level: bool,
    ) -> Result<(), EnvelopeError> {
        let Some(object) = statement.as_object_mut() else {
            return Ok(());
        };
        if let Some(actor) = object.get_mut("actor") {
            let subjects = self.cut_agent(actor)?;
            if top_level {
                self.subjects = subjects;
            }
        }
        if let Some(target) = object.get_mut("object") {
            match target.get("objectType").and_then(Value::as_str) {
                Some("Agent") | Some("Group") => {
                    self.cut_agent(target)?;
                }
                Some("SubStatement") => self.cut_statement(target, false)?,
                _ => {}
            }
        }
        if let Some(authority) = object.get_mut("authority") {
            self.cut_agent(authority)?;
        }
        if let Some(context) = object.get_mut("context").and_then(Value::as_object_mut) {
            for role in ["instructor", "team"] {
                if let Some(agent) = context.get_mut(role) {
                    self.cut_agent(agent)?;
                }
            }
            for (list, field) in [("contextAgents", "agent"), ("contextGroups", "group")] {
                if let Some(Value::Array(entries)) = context.get_mut(list) {
                    for entry in entries {
                        if let Some(agent) = entry.get_mut(field) {
                            self.cut_agent(agent)?;
                        }
                    }
                }
            }
        }
        if top_level && self.subjects.is_empty() {
            return Err(EnvelopeError::Vault(
                "statement has no identifiable subject".into(),
            ));
        }
        Ok(())
    }

    /// Replaces an agent or group (and its members) by person markers.
    /// Returns the subjects it stands for: itself if identified, else its members.
    fn cut_agent(&mut self, agent: &mut Value) -> Result<Vec<(Token, DataKey)>, EnvelopeError> {
        let Some(object) = agent.as_object_mut() else {
            return Ok(Vec::new());
        };
        let members = object.remove("member");
        let mut subjects = Vec::new();
        let mut replacement = match ifi_of(agent) {
            Some(ifi) => {
                let (token, key) = self.keys.person(&ifi)?;
                let index = self.persons.len();
                let person_json = serde_json::to_vec(agent).expect("json encodes");
                self.persons
                    .push(seal_person(token, &key, &compressed_json(person_json)));
                self.tokens.push(token);
                subjects.push((token, key));
                let mut marker = Map::new();
                marker.insert(PERSON_MARKER.into(), json!(index));
                // Kept so facts know an object is an agent, and an erased one keeps its kind.
                if let Some(object_type) = agent.get("objectType") {
                    marker.insert("objectType".into(), object_type.clone());
                }
                Value::Object(marker)
            }
            None => agent.clone(),
        };
        if let Some(Value::Array(mut members)) = members {
            let mut member_subjects = Vec::new();
            for member in &mut members {
                member_subjects.extend(self.cut_agent(member)?);
            }
            if subjects.is_empty() {
                subjects = member_subjects;
            }
            replacement
                .as_object_mut()
                .expect("agents are objects")
                .insert("member".into(), Value::Array(members));
        }
        *agent = replacement;
        Ok(subjects)
    }
}

fn put_people_back(
    value: &mut Value,
    sealed: &SealedStatementV1,
    people: &[Option<Value>],
) -> Result<(), EnvelopeError> {
    match value {
        Value::Object(object) => {
            if let Some(index) = object.get(PERSON_MARKER).and_then(Value::as_u64) {
                let index = index as usize;
                let person = sealed
                    .persons
                    .get(index)
                    .ok_or(EnvelopeError::Corrupt("person marker out of range"))?;
                let mut restored = match &people[index] {
                    Some(agent) => agent.clone(),
                    None => {
                        let mut erased = erased_agent(&person.token);
                        if let Some(object_type) = object.get("objectType") {
                            erased["objectType"] = object_type.clone();
                        }
                        erased
                    }
                };
                if let Some(mut members) = object.remove("member") {
                    put_people_back(&mut members, sealed, people)?;
                    restored
                        .as_object_mut()
                        .expect("agents are objects")
                        .insert("member".into(), members);
                }
                *value = restored;
                return Ok(());
            }
            for child in object.values_mut() {
                put_people_back(child, sealed, people)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                put_people_back(item, sealed, people)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn random_nonce() -> [u8; 24] {
    let mut nonce = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut nonce);
    nonce
}

fn seal_for(token: Token, key: &DataKey, plaintext: &[u8]) -> SealedForPersonV1 {
    seal_with_nonce(token, key, plaintext, random_nonce())
}

/// Seals a person's agent object with a synthetic nonce (docs/adr/0009):
/// the nonce is a MAC of the plaintext under a key derived from the
/// person's own, so the same agent object of the same person seals to the
/// same bytes. The authority of an app's statements, and a learner's own
/// agent in a run of their statements, then repeat within a log chunk and
/// its one zstd frame stores them once. What that shows a reader of the log
/// without the keys, that two sealed agents of one token are equal, the
/// token in clear beside them already says; a different plaintext still
/// gets a different nonce, and erasing the key erases the MAC key with it.
fn seal_person(token: Token, key: &DataKey, plaintext: &[u8]) -> SealedForPersonV1 {
    seal_with_nonce(token, key, plaintext, synthetic_nonce(key, plaintext))
}

fn synthetic_nonce(key: &DataKey, plaintext: &[u8]) -> [u8; 24] {
    fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac =
            <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
    let nonce_key = hmac_sha256(&key.0, b"lrs envelope: person nonce key v1");
    hmac_sha256(&nonce_key, plaintext)[..24]
        .try_into()
        .expect("24 of 32 bytes")
}

fn seal_with_nonce(
    token: Token,
    key: &DataKey,
    plaintext: &[u8],
    nonce: [u8; 24],
) -> SealedForPersonV1 {
    let ciphertext = XChaCha20Poly1305::new(&key.0.into())
        .encrypt(XNonce::from_slice(&nonce), plaintext)
        .expect("encryption of a vec never fails");
    SealedForPersonV1 {
        token,
        nonce,
        ciphertext,
    }
}

fn open_bytes(sealed: &SealedForPersonV1, key: &DataKey) -> Result<Vec<u8>, EnvelopeError> {
    XChaCha20Poly1305::new(&key.0.into())
        .decrypt(
            XNonce::from_slice(&sealed.nonce),
            sealed.ciphertext.as_slice(),
        )
        .map_err(|_| EnvelopeError::Corrupt("personal data does not decrypt under its key"))
}

fn open_for(sealed: &SealedForPersonV1, key: &DataKey) -> Result<Value, EnvelopeError> {
    serde_json::from_slice(&json_of(
        open_bytes(sealed, key)?,
        "person does not decompress",
    )?)
    .map_err(|_| EnvelopeError::Corrupt("person is not json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct MemoryKeys {
        by_ifi: HashMap<Ifi, (Token, DataKey)>,
        by_token: HashMap<Token, DataKey>,
    }

    impl KeyRing for MemoryKeys {
        fn person(&mut self, ifi: &Ifi) -> Result<(Token, DataKey), EnvelopeError> {
            let next = self.by_ifi.len() as u8 + 1;
            let entry = self
                .by_ifi
                .entry(ifi.clone())
                .or_insert_with(|| (Token([next; 16]), DataKey([next; 32])));
            self.by_token.insert(entry.0, entry.1.clone());
            Ok(entry.clone())
        }
    }

    impl KeyLookup for MemoryKeys {
        fn key(&self, token: &Token) -> Option<DataKey> {
            self.by_token.get(token).cloned()
        }
    }

    fn statement() -> Value {
        json!({
            "actor": {"objectType": "Agent", "name": "Anna de Vries", "mbox": "mailto:anna@example.nl"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
            "object": {"id": "https://courses.example/vdb/module-1"},
            "result": {"response": "mijn antwoord"},
            "context": {
                "instructor": {"name": "Bram", "account": {"homePage": "https://bieb.example", "name": "bram"}},
                "team": {"objectType": "Group", "member": [{"mbox": "mailto:c@example.nl"}]}
            },
            "authority": {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "app"}}
        })
    }

    #[test]
    fn sealed_bytes_hold_no_personal_data_and_open_to_the_original() {
        let mut keys = MemoryKeys::default();
        let sealed = seal(&statement(), &[], &mut keys).unwrap();
        let bytes = postcard::to_stdvec(&sealed.sealed).unwrap();
        for secret in [
            "anna@example.nl",
            "Anna de Vries",
            "mijn antwoord",
            "bram",
            "c@example.nl",
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} leaked"
            );
        }
        assert_eq!(open(&sealed.sealed, &keys).unwrap().unwrap(), statement());
        assert_eq!(sealed.tokens.len(), 4);
    }

    #[test]
    fn attachments_open_with_the_statement_and_die_with_its_subject() {
        let mut keys = MemoryKeys::default();
        let certificate = AttachmentContent {
            sha2: "ab".repeat(32),
            content_type: "application/pdf".into(),
            bytes: b"certificaat voor Anna de Vries".to_vec(),
        };
        let sealed = seal(&statement(), std::slice::from_ref(&certificate), &mut keys).unwrap();
        let bytes = postcard::to_stdvec(&sealed.sealed).unwrap();
        assert!(!bytes.windows(4).any(|w| w == b"Anna"));
        assert_eq!(
            open_attachments(&sealed.sealed, &keys).unwrap().unwrap(),
            vec![certificate]
        );
        keys.by_token.remove(&sealed.tokens[0]);
        assert!(open_attachments(&sealed.sealed, &keys).unwrap().is_none());
    }

    #[test]
    fn bodies_are_compressed_and_bodies_sealed_before_compression_still_open() {
        let mut keys = MemoryKeys::default();
        let compressed = seal(&statement(), &[], &mut keys).unwrap();
        let json = serde_json::to_vec(&compressed.skeleton).unwrap();
        // ciphertext = plaintext + the 16-byte tag
        assert!(compressed.sealed.body.len() < json.len() + 16);
        // a body as sealed before compression: the skeleton's JSON itself
        let plain = seal_body_as(&statement(), &[], &mut keys, |skeleton| {
            serde_json::to_vec(skeleton).unwrap()
        })
        .unwrap();
        assert_eq!(plain.sealed.body.len(), json.len() + 16);
        assert_eq!(open(&plain.sealed, &keys).unwrap().unwrap(), statement());
        assert_eq!(
            open(&compressed.sealed, &keys).unwrap().unwrap(),
            statement()
        );
    }

    #[test]
    fn a_person_seals_to_the_same_bytes_and_content_keys_never_repeat() {
        let mut keys = MemoryKeys::default();
        let first = seal(&statement(), &[], &mut keys).unwrap();
        let second = seal(&statement(), &[], &mut keys).unwrap();
        assert_eq!(first.sealed.persons, second.sealed.persons);
        assert_ne!(first.sealed.subject_shares, second.sealed.subject_shares);
        assert_ne!(first.sealed.body_nonce, second.sealed.body_nonce);
        // another name for the same person: another nonce, other bytes
        let mut renamed = statement();
        renamed["actor"]["name"] = json!("Anna de Vries-Jansen");
        let third = seal(&renamed, &[], &mut keys).unwrap();
        assert_eq!(third.sealed.persons[0].token, first.sealed.persons[0].token);
        assert_ne!(third.sealed.persons[0].nonce, first.sealed.persons[0].nonce);
        assert_eq!(first.sealed.persons[1], third.sealed.persons[1]);
        assert_eq!(open(&third.sealed, &keys).unwrap().unwrap(), renamed);
        // the same agent object under another person's key: other bytes
        let agent = serde_json::to_vec(&statement()["actor"]).unwrap();
        let (anna, bram) = (DataKey([1; 32]), DataKey([2; 32]));
        assert_ne!(
            seal_person(Token([1; 16]), &anna, &agent).ciphertext,
            seal_person(Token([1; 16]), &bram, &agent).ciphertext
        );
    }

    #[test]
    fn erasing_the_subject_makes_the_statement_unreadable() {
        let mut keys = MemoryKeys::default();
        let sealed = seal(&statement(), &[], &mut keys).unwrap();
        let anna = sealed.tokens[0];
        keys.by_token.remove(&anna);
        assert!(open(&sealed.sealed, &keys).unwrap().is_none());
    }

    #[test]
    fn people_opened_once_per_answer_give_what_opening_each_gives() {
        let mut keys = MemoryKeys::default();
        let first = seal(&statement(), &[], &mut keys).unwrap();
        let mut renamed = statement();
        renamed["actor"]["name"] = json!("Anna de Vries-Jansen");
        let second = seal(&renamed, &[], &mut keys).unwrap();
        let third = seal(&statement(), &[], &mut keys).unwrap();
        let mut opened = OpenedPeople::default();
        for sealed in [&first, &second, &third] {
            assert_eq!(
                open_remembering(&sealed.sealed, &keys, &mut opened).unwrap(),
                open(&sealed.sealed, &keys).unwrap()
            );
        }
        // Anna's two agents, Bram, the authority and the team member: each once.
        assert_eq!(opened.0.len(), first.sealed.persons.len() + 1);
        // Same token and nonce but other bytes: opened, not taken from memory.
        let mut forged = third.sealed.clone();
        forged.persons[0].ciphertext = second.sealed.persons[0].ciphertext.clone();
        assert!(open_remembering(&forged, &keys, &mut opened).is_err());
        // An erased bystander is replaced even though they were opened before.
        let bram = first.tokens[2];
        keys.by_token.remove(&bram);
        let again = open_remembering(&first.sealed, &keys, &mut opened)
            .unwrap()
            .unwrap();
        assert_eq!(again["context"]["instructor"], erased_agent(&bram));
    }

    #[test]
    fn erasing_a_bystander_replaces_only_them() {
        let mut keys = MemoryKeys::default();
        let sealed = seal(&statement(), &[], &mut keys).unwrap();
        let bram = sealed.tokens[2]; // cut in order: actor, authority, instructor, team member
        keys.by_token.remove(&bram);
        let opened = open(&sealed.sealed, &keys).unwrap().unwrap();
        assert_eq!(opened["context"]["instructor"], erased_agent(&bram));
        assert_eq!(opened["actor"], statement()["actor"]);
    }

    #[test]
    fn an_anonymous_group_actor_needs_every_member() {
        let mut keys = MemoryKeys::default();
        let group = json!({
            "actor": {"objectType": "Group", "member": [{"mbox": "mailto:a@x.nl"}, {"mbox": "mailto:b@x.nl"}]},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
            "object": {"id": "https://x.example/meeting"}
        });
        let sealed = seal(&group, &[], &mut keys).unwrap();
        assert_eq!(sealed.sealed.subject_shares.len(), 2);
        assert_eq!(open(&sealed.sealed, &keys).unwrap().unwrap(), group);
        keys.by_token.remove(&sealed.tokens[1]);
        assert!(open(&sealed.sealed, &keys).unwrap().is_none());
    }
}
