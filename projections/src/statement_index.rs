//! The statement query index, in two parts:
//!
//! - [`StatementIndex`], a projection into read-model trees: statement ids
//!   (kept in memory by the store: [`Projection::resident`]), voiding and who
//!   references whom. Needed by the writer for conflicts.
//! - [`Postings`], an in-memory fold: one sorted list of log positions per
//!   filter term (and per scope), plus `stored` per position. Rebuilt from the
//!   log when the store opens. Keeping the lists in memory replaced about 14
//!   sled inserts per statement (see docs/performance.md).
//!
//! Layout of the trees (all integers big-endian):
//! - `by_id`: `uuid(16) tenant(8)` -> `position(8) flags(1)`; flag 1 = voiding statement
//! - `voided`: `tenant(8) uuid(16)` -> position of the voiding statement
//! - `referrers`: `tenant(8) uuid(16) position(8)` -> empty: who references a statement id
//!
//! A statement matches its own filter terms and those of the statement its
//! StatementRef targets, recursively (spec: filter conditions for
//! StatementRefs); those are computed from the log's facts when needed.
//! `tenant(8)` is the first 8 bytes of SHA-256 of the tenant name.

use crate::{Op, Projection, ReadModel, TreeName};
use lrs_core::events::{ObjectFactV1, OriginV1, StatementStoredV1, StatementStoredV2};
use lrs_core::Event;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use uuid::Uuid;

pub const BY_ID: TreeName = "statements.by_id";
pub const VOIDED: TreeName = "statements.voided";
pub const REFERRERS: TreeName = "statements.referrers";

pub const VOIDED_VERB: &str = "http://adlnet.gov/expapi/verbs/voided";
const FLAG_VOIDING: u8 = 1;
/// How deep a chain of StatementRefs passes filter terms on.
const MAX_REFERENCE_DEPTH: usize = 8;

/// What a posting list is a list of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TermKind {
    /// Every statement (the unscoped list, term = 16 zero bytes).
    All = b'g',
    /// Every statement of one tenant.
    Tenant = b't',
    /// Actor or object agent (the `agent` filter).
    Agent = b'a',
    /// Any agent anywhere (`agent` with `related_agents=true`).
    RelatedAgent = b'A',
    Verb = b'v',
    /// Object activity (the `activity` filter).
    Activity = b'o',
    /// Any activity (`activity` with `related_activities=true`).
    RelatedActivity = b'O',
    Registration = b'r',
    /// Every statement of one library (ISIL): what a library tenant reads.
    Library = b'l',
    /// Every statement written by one credential: `statements/read/mine`.
    Credential = b'c',
}

pub type Term = [u8; 16];

pub fn tenant_hash(tenant: &str) -> [u8; 8] {
    Sha256::digest(tenant.as_bytes())[..8]
        .try_into()
        .expect("8 bytes")
}

/// The 16-byte term of a string value (verb id, activity id).
pub fn string_term(value: &str) -> Term {
    Sha256::digest(value.as_bytes())[..16]
        .try_into()
        .expect("16 bytes")
}

pub fn by_id_key(statement_id: &Uuid, tenant: &[u8; 8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(24);
    key.extend_from_slice(statement_id.as_bytes());
    key.extend_from_slice(tenant);
    key
}

pub fn voided_key(tenant: &[u8; 8], statement_id: &Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(24);
    key.extend_from_slice(tenant);
    key.extend_from_slice(statement_id.as_bytes());
    key
}

/// Decodes a `by_id` value: the position and whether it is a voiding statement.
pub fn decode_by_id(value: &[u8]) -> Option<(u64, bool)> {
    let position = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    Some((
        position,
        value.get(8).copied().unwrap_or(0) & FLAG_VOIDING != 0,
    ))
}

pub struct StatementIndex;

impl Projection for StatementIndex {
    fn name(&self) -> &'static str {
        "statement_index"
    }

    /// 3: `by_id` resident (in memory, docs/adr/0008): an older store
    /// folds the index again on open, and its sled tree is dropped.
    fn version(&self) -> u32 {
        3
    }

    fn trees(&self) -> &'static [TreeName] {
        &[BY_ID, VOIDED, REFERRERS]
    }

    fn resident(&self) -> &'static [(TreeName, crate::Resident)] {
        &[(
            BY_ID,
            crate::Resident {
                keys: crate::ResidentKeys::Fixed(24),
                value_len: 9,
            },
        )]
    }

    fn apply(&self, position: u64, event: &Event, state: &dyn ReadModel, out: &mut Vec<Op>) {
        if let Some(stored) = event.stored_statement() {
            apply_statement(position, stored, state, out);
        }
    }
}

fn own_terms(stored: &StatementStoredV1) -> Vec<(TermKind, Term)> {
    let facts = &stored.facts;
    let mut terms = Vec::new();
    if let Some(actor) = facts.actor {
        terms.push((TermKind::Agent, actor.0));
    }
    if let ObjectFactV1::Agent { token: Some(token) } = &facts.object {
        terms.push((TermKind::Agent, token.0));
    }
    for member in &facts.group_members {
        terms.push((TermKind::Agent, member.0));
    }
    for token in &facts.related_agents {
        terms.push((TermKind::RelatedAgent, token.0));
    }
    terms.push((TermKind::Verb, string_term(&facts.verb_id)));
    if let ObjectFactV1::Activity { id, .. } = &facts.object {
        terms.push((TermKind::Activity, string_term(id)));
        terms.push((TermKind::RelatedActivity, string_term(id)));
    }
    for id in &facts.related_activities {
        terms.push((TermKind::RelatedActivity, string_term(id)));
    }
    if let Some(registration) = facts.registration {
        terms.push((TermKind::Registration, *registration.as_bytes()));
    }
    terms.sort_by_key(|(kind, term)| (*kind as u8, *term));
    terms.dedup();
    terms
}

fn put(out: &mut Vec<Op>, tree: TreeName, key: Vec<u8>, value: Vec<u8>) {
    out.push(Op::Put { tree, key, value });
}

fn target_of(stored: &StatementStoredV1) -> Option<Uuid> {
    match &stored.facts.object {
        ObjectFactV1::StatementRef { id } => Some(*id),
        _ => None,
    }
}

fn is_voiding(stored: &StatementStoredV1) -> bool {
    stored.facts.verb_id == VOIDED_VERB && target_of(stored).is_some()
}

fn apply_statement(
    position: u64,
    stored: &StatementStoredV1,
    state: &dyn ReadModel,
    out: &mut Vec<Op>,
) {
    let tenant = tenant_hash(&stored.tenant);
    let target = target_of(stored);
    let voiding = is_voiding(stored);
    if let Some(target) = target {
        let mut referrer = voided_key(&tenant, &target);
        referrer.extend_from_slice(&position.to_be_bytes());
        put(out, REFERRERS, referrer, Vec::new());
    }
    // A voiding statement voids its target unless the target is itself a
    // voiding statement (Data 2.3.2) or already voided. The target may not
    // have arrived yet: it is then voided on arrival.
    if voiding {
        let target = target.expect("voiding statements have a target");
        let key = voided_key(&tenant, &target);
        let target_is_voiding = state
            .get(BY_ID, &by_id_key(&target, &tenant))
            .and_then(|v| decode_by_id(&v))
            .is_some_and(|(_, voiding)| voiding);
        if state.get(VOIDED, &key).is_none() && !target_is_voiding {
            put(out, VOIDED, key, position.to_be_bytes().to_vec());
        }
    }
    let mut by_id_value = position.to_be_bytes().to_vec();
    by_id_value.push(if voiding { FLAG_VOIDING } else { 0 });
    put(
        out,
        BY_ID,
        by_id_key(&stored.statement_id, &tenant),
        by_id_value,
    );
}

/// Reads statements back from the log, for the terms a statement inherits.
pub trait StatementSource {
    fn statement(&self, position: u64) -> Option<StatementStoredV2>;
}

/// The posting lists, in memory: for each (kind, term) the sorted log
/// positions of the statements that match it, and `stored` per position.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Postings {
    lists: HashMap<(u8, Term), Vec<u64>>,
    /// `stored` (microseconds) of position `i + 1`; a non-statement entry
    /// repeats the one before, so the vector stays sorted.
    stored: Vec<i64>,
}

impl Postings {
    /// Folds one log entry in. Call after [`StatementIndex`] has folded the
    /// same entry into `ids` (its sled trees).
    pub fn apply(
        &mut self,
        position: u64,
        event: &Event,
        ids: &dyn ReadModel,
        log: &dyn StatementSource,
    ) {
        let stored_micros = match event.stored_statement() {
            Some(stored) => stored.stored_micros,
            None => self.stored.last().copied().unwrap_or(0),
        };
        let last = self.stored.last().copied().unwrap_or(0);
        while (self.stored.len() as u64) + 1 < position {
            self.stored.push(last);
        }
        if (self.stored.len() as u64) < position {
            self.stored.push(stored_micros.max(last));
        }
        if let (Some(stored), Some(origin)) = (event.stored_statement(), event.statement_origin()) {
            self.apply_statement(position, stored, origin, ids, log)
        }
        // An erased person's lists go: their token no longer leads anywhere.
        if let Event::PersonErasedV1(erased) = event {
            for kind in [TermKind::Agent, TermKind::RelatedAgent] {
                self.lists.remove(&(kind as u8, erased.token.0));
            }
        }
    }

    fn apply_statement(
        &mut self,
        position: u64,
        stored: &StatementStoredV1,
        origin: &OriginV1,
        ids: &dyn ReadModel,
        log: &dyn StatementSource,
    ) {
        let tenant = tenant_hash(&stored.tenant);
        let voiding = is_voiding(stored);
        // This statement voided its target just now: the target leaves every list.
        if let (true, Some(target)) = (voiding, target_of(stored)) {
            let voided_here = ids
                .get(VOIDED, &voided_key(&tenant, &target))
                .is_some_and(|v| v.as_slice() == position.to_be_bytes());
            let target_position = ids
                .get(BY_ID, &by_id_key(&target, &tenant))
                .and_then(|v| decode_by_id(&v));
            if let (true, Some((target_position, false))) = (voided_here, target_position) {
                if let Some(target) = log.statement(target_position) {
                    let terms = terms_of(&target.statement, ids, log, 0);
                    for (kind, term) in scoped(&terms, &target.statement, &target.origin) {
                        self.remove(kind, &term, target_position);
                    }
                }
            }
        }
        let terms = terms_of(stored, ids, log, 0);
        if !is_voided(stored, ids) {
            for (kind, term) in scoped(&terms, stored, origin) {
                self.add(kind, &term, position);
            }
        }
        // Statements that arrived earlier and reference this one match its terms too.
        self.pass_terms_to_referrers(&stored.statement_id, &tenant, position, &terms, ids, log, 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn pass_terms_to_referrers(
        &mut self,
        statement_id: &Uuid,
        tenant: &[u8; 8],
        position: u64,
        terms: &[(TermKind, Term)],
        ids: &dyn ReadModel,
        log: &dyn StatementSource,
        depth: usize,
    ) {
        if depth >= MAX_REFERENCE_DEPTH {
            return;
        }
        for (key, _) in ids.scan_prefix(REFERRERS, &voided_key(tenant, statement_id)) {
            let referrer_position = u64::from_be_bytes(key[24..32].try_into().expect("8 bytes"));
            if referrer_position == position {
                continue;
            }
            let Some(StatementStoredV2 {
                statement: referrer,
                ..
            }) = log.statement(referrer_position)
            else {
                continue;
            };
            if !is_voided(&referrer, ids) {
                for (kind, term) in terms {
                    self.add(*kind, term, referrer_position);
                }
            }
            self.pass_terms_to_referrers(
                &referrer.statement_id,
                tenant,
                referrer_position,
                terms,
                ids,
                log,
                depth + 1,
            );
        }
    }

    fn add(&mut self, kind: TermKind, term: &Term, position: u64) {
        let list = self.lists.entry((kind as u8, *term)).or_default();
        match list.last() {
            None => list.push(position),
            Some(&last) if last < position => list.push(position),
            Some(_) => {
                if let Err(at) = list.binary_search(&position) {
                    list.insert(at, position);
                }
            }
        }
    }

    fn remove(&mut self, kind: TermKind, term: &Term, position: u64) {
        if let Some(list) = self.lists.get_mut(&(kind as u8, *term)) {
            if let Ok(at) = list.binary_search(&position) {
                list.remove(at);
            }
        }
    }

    /// The sorted positions of one list (empty if none).
    pub fn list(&self, kind: TermKind, term: &Term) -> &[u64] {
        self.lists
            .get(&(kind as u8, *term))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The first position stored strictly after `micros` (`None`: none is).
    pub fn first_after(&self, micros: i64) -> Option<u64> {
        let index = self.stored.partition_point(|s| *s <= micros);
        (index < self.stored.len()).then_some(index as u64 + 1)
    }

    /// The last position stored at or before `micros` (0: none is).
    pub fn last_at_or_before(&self, micros: i64) -> u64 {
        self.stored.partition_point(|s| *s <= micros) as u64
    }

    /// SHA-256 over every list and the stored times, in a fixed order.
    pub fn digest(&self) -> [u8; 32] {
        let mut keys: Vec<&(u8, Term)> = self.lists.keys().collect();
        keys.sort();
        let mut hasher = Sha256::new();
        for key in keys {
            let list = &self.lists[key];
            if list.is_empty() {
                continue;
            }
            hasher.update([key.0]);
            hasher.update(key.1);
            hasher.update((list.len() as u64).to_be_bytes());
            for position in list {
                hasher.update(position.to_be_bytes());
            }
        }
        for micros in &self.stored {
            hasher.update(micros.to_be_bytes());
        }
        hasher.finalize().into()
    }

    /// The last log position folded in.
    pub fn positions(&self) -> u64 {
        self.stored.len() as u64
    }

    /// Positions held in all lists together (for metrics and docs).
    pub fn len(&self) -> usize {
        self.lists.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a (non-voiding) statement has been voided.
fn is_voided(stored: &StatementStoredV1, ids: &dyn ReadModel) -> bool {
    !is_voiding(stored)
        && ids
            .get(
                VOIDED,
                &voided_key(&tenant_hash(&stored.tenant), &stored.statement_id),
            )
            .is_some()
}

/// A statement's filter terms: its own, and those of the statement its
/// StatementRef targets (recursively, to a bounded depth).
fn terms_of(
    stored: &StatementStoredV1,
    ids: &dyn ReadModel,
    log: &dyn StatementSource,
    depth: usize,
) -> Vec<(TermKind, Term)> {
    let mut terms = own_terms(stored);
    if depth < MAX_REFERENCE_DEPTH {
        if let Some(target) = target_of(stored) {
            let tenant = tenant_hash(&stored.tenant);
            if let Some(target_statement) = ids
                .get(BY_ID, &by_id_key(&target, &tenant))
                .and_then(|v| decode_by_id(&v))
                .and_then(|(target_position, _)| log.statement(target_position))
            {
                terms.extend(terms_of(&target_statement.statement, ids, log, depth + 1));
                terms.sort_by_key(|(kind, term)| (*kind as u8, *term));
                terms.dedup();
            }
        }
    }
    terms
}

/// The filter terms plus the scope lists: all, the writing tenant's, the
/// library's and the writing credential's.
fn scoped(
    terms: &[(TermKind, Term)],
    stored: &StatementStoredV1,
    origin: &OriginV1,
) -> Vec<(TermKind, Term)> {
    let mut all = Vec::with_capacity(terms.len() + 4);
    all.push((TermKind::All, [0u8; 16]));
    all.push((TermKind::Tenant, tenant_term(&stored.tenant)));
    all.push((TermKind::Credential, string_term(&stored.credential_key)));
    if let Some(library) = &origin.library {
        all.push((TermKind::Library, string_term(library)));
    }
    all.extend_from_slice(terms);
    all
}

/// The term of a tenant's scope list.
pub fn tenant_term(tenant: &str) -> Term {
    let mut term = [0u8; 16];
    term[..8].copy_from_slice(&tenant_hash(tenant));
    term
}
