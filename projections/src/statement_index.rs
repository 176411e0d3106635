//! The statement query index: posting lists per filter term, statement ids,
//! voiding, and stored-time order, folded from `StatementStoredV1` events.
//!
//! Layout (all integers big-endian):
//! - `by_id`: `uuid(16) tenant(8)` -> `position(8) flags(1)`; flag 1 = voiding statement
//! - `postings`: `kind(1) term(16) position(8)` -> empty; one list per filter term
//! - `stored`: `stored_micros(8)` -> `position(8)`, for `since`/`until`
//! - `voided`: `tenant(8) uuid(16)` -> position of the voiding statement
//! - `terms`: `position(8)` -> `uuid(16) tenant(8) flags(1) (kind(1) term(16))*`:
//!   the filter terms a statement matches, its own and those it inherits from
//!   the statement it references (spec: filter conditions for StatementRefs)
//! - `referrers`: `tenant(8) uuid(16) position(8)` -> empty: who references a statement id
//!
//! `tenant(8)` is the first 8 bytes of SHA-256 of the tenant name.

use crate::{Op, Projection, ReadModel, TreeName};
use lrs_core::events::{ObjectFactV1, StatementStoredV1};
use lrs_core::Event;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const BY_ID: TreeName = "statements.by_id";
pub const POSTINGS: TreeName = "statements.postings";
pub const STORED: TreeName = "statements.stored";
pub const VOIDED: TreeName = "statements.voided";
pub const TERMS: TreeName = "statements.terms";
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

pub fn posting_key(kind: TermKind, term: &Term, position: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(25);
    key.push(kind as u8);
    key.extend_from_slice(term);
    key.extend_from_slice(&position.to_be_bytes());
    key
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

    fn version(&self) -> u32 {
        1
    }

    fn trees(&self) -> &'static [TreeName] {
        &[BY_ID, POSTINGS, STORED, VOIDED, TERMS, REFERRERS]
    }

    fn apply(&self, position: u64, event: &Event, state: &dyn ReadModel, out: &mut Vec<Op>) {
        if let Event::StatementStoredV1(stored) = event {
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

fn kind_of(byte: u8) -> Option<TermKind> {
    Some(match byte {
        b'a' => TermKind::Agent,
        b'A' => TermKind::RelatedAgent,
        b'v' => TermKind::Verb,
        b'o' => TermKind::Activity,
        b'O' => TermKind::RelatedActivity,
        b'r' => TermKind::Registration,
        _ => return None,
    })
}

struct TermsRecord {
    statement_id: Uuid,
    tenant: [u8; 8],
    flags: u8,
    terms: Vec<(TermKind, Term)>,
}

impl TermsRecord {
    fn encode(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(25 + 17 * self.terms.len());
        value.extend_from_slice(self.statement_id.as_bytes());
        value.extend_from_slice(&self.tenant);
        value.push(self.flags);
        for (kind, term) in &self.terms {
            value.push(*kind as u8);
            value.extend_from_slice(term);
        }
        value
    }

    fn decode(value: &[u8]) -> Option<Self> {
        let statement_id = Uuid::from_slice(value.get(..16)?).ok()?;
        let tenant = value.get(16..24)?.try_into().ok()?;
        let flags = *value.get(24)?;
        let terms = value[25..]
            .chunks_exact(17)
            .filter_map(|chunk| Some((kind_of(chunk[0])?, chunk[1..].try_into().ok()?)))
            .collect();
        Some(TermsRecord {
            statement_id,
            tenant,
            flags,
            terms,
        })
    }
}

fn put(out: &mut Vec<Op>, tree: TreeName, key: Vec<u8>, value: Vec<u8>) {
    out.push(Op::Put { tree, key, value });
}

fn apply_statement(
    position: u64,
    stored: &StatementStoredV1,
    state: &dyn ReadModel,
    out: &mut Vec<Op>,
) {
    let tenant = tenant_hash(&stored.tenant);
    let target = match &stored.facts.object {
        ObjectFactV1::StatementRef { id } => Some(*id),
        _ => None,
    };
    let is_voiding = stored.facts.verb_id == VOIDED_VERB && target.is_some();
    let flags = if is_voiding { FLAG_VOIDING } else { 0 };

    let mut terms = own_terms(stored);
    if let Some(target) = target {
        let mut referrer = voided_key(&tenant, &target);
        referrer.extend_from_slice(&position.to_be_bytes());
        put(out, REFERRERS, referrer, Vec::new());
        if let Some(record) = state
            .get(BY_ID, &by_id_key(&target, &tenant))
            .and_then(|v| decode_by_id(&v))
            .and_then(|(target_position, _)| state.get(TERMS, &target_position.to_be_bytes()))
            .and_then(|v| TermsRecord::decode(&v))
        {
            merge_terms(&mut terms, &record.terms);
        }
    }

    // Voiding: the target leaves every posting list (it stays fetchable by
    // voidedStatementId). A voiding statement cannot itself be voided.
    if is_voiding {
        let target = target.expect("voiding statements have a target");
        let key = voided_key(&tenant, &target);
        if state.get(VOIDED, &key).is_none() {
            let existing = state
                .get(BY_ID, &by_id_key(&target, &tenant))
                .and_then(|v| decode_by_id(&v));
            match existing {
                Some((_, true)) => {}
                Some((target_position, false)) => {
                    put(out, VOIDED, key, position.to_be_bytes().to_vec());
                    if let Some(record) = state
                        .get(TERMS, &target_position.to_be_bytes())
                        .and_then(|v| TermsRecord::decode(&v))
                    {
                        for (kind, term) in scoped(&record.terms, &record.tenant) {
                            out.push(Op::Delete {
                                tree: POSTINGS,
                                key: posting_key(kind, &term, target_position),
                            });
                        }
                    }
                }
                None => put(out, VOIDED, key, position.to_be_bytes().to_vec()),
            }
        }
    }

    let voided_already = !is_voiding
        && state
            .get(VOIDED, &voided_key(&tenant, &stored.statement_id))
            .is_some();
    if !voided_already {
        for (kind, term) in scoped(&terms, &tenant) {
            put(
                out,
                POSTINGS,
                posting_key(kind, &term, position),
                Vec::new(),
            );
        }
    }
    let mut by_id_value = position.to_be_bytes().to_vec();
    by_id_value.push(flags);
    put(
        out,
        BY_ID,
        by_id_key(&stored.statement_id, &tenant),
        by_id_value,
    );
    put(
        out,
        STORED,
        (stored.stored_micros as u64).to_be_bytes().to_vec(),
        position.to_be_bytes().to_vec(),
    );
    let record = TermsRecord {
        statement_id: stored.statement_id,
        tenant,
        flags,
        terms,
    };
    put(out, TERMS, position.to_be_bytes().to_vec(), record.encode());

    // Statements that arrived earlier and reference this one inherit its terms.
    pass_terms_to_referrers(&record, &record.terms, state, out, 0);
}

fn pass_terms_to_referrers(
    target: &TermsRecord,
    inherited: &[(TermKind, Term)],
    state: &dyn ReadModel,
    out: &mut Vec<Op>,
    depth: usize,
) {
    if depth >= MAX_REFERENCE_DEPTH {
        return;
    }
    for (key, _) in state.scan_prefix(REFERRERS, &voided_key(&target.tenant, &target.statement_id))
    {
        let referrer_position = u64::from_be_bytes(key[24..32].try_into().expect("8 bytes"));
        let Some(mut referrer) = state
            .get(TERMS, &referrer_position.to_be_bytes())
            .and_then(|v| TermsRecord::decode(&v))
        else {
            continue;
        };
        let before = referrer.terms.clone();
        merge_terms(&mut referrer.terms, inherited);
        let added: Vec<_> = referrer
            .terms
            .iter()
            .filter(|t| !before.contains(t))
            .copied()
            .collect();
        if added.is_empty() {
            continue;
        }
        let referrer_voided = referrer.flags & FLAG_VOIDING == 0
            && state
                .get(
                    VOIDED,
                    &voided_key(&referrer.tenant, &referrer.statement_id),
                )
                .is_some();
        if !referrer_voided {
            for (kind, term) in &added {
                put(
                    out,
                    POSTINGS,
                    posting_key(*kind, term, referrer_position),
                    Vec::new(),
                );
            }
        }
        put(
            out,
            TERMS,
            referrer_position.to_be_bytes().to_vec(),
            referrer.encode(),
        );
        pass_terms_to_referrers(&referrer, &added, state, out, depth + 1);
    }
}

fn merge_terms(terms: &mut Vec<(TermKind, Term)>, more: &[(TermKind, Term)]) {
    terms.extend_from_slice(more);
    terms.sort_by_key(|(kind, term)| (*kind as u8, *term));
    terms.dedup();
}

/// The filter terms plus the two scope lists (all, and the tenant's own).
fn scoped(terms: &[(TermKind, Term)], tenant: &[u8; 8]) -> Vec<(TermKind, Term)> {
    let mut tenant_term = [0u8; 16];
    tenant_term[..8].copy_from_slice(tenant);
    let mut all = Vec::with_capacity(terms.len() + 2);
    all.push((TermKind::All, [0u8; 16]));
    all.push((TermKind::Tenant, tenant_term));
    all.extend_from_slice(terms);
    all
}

/// The term of a tenant's scope list.
pub fn tenant_term(tenant: &str) -> Term {
    let mut term = [0u8; 16];
    term[..8].copy_from_slice(&tenant_hash(tenant));
    term
}
