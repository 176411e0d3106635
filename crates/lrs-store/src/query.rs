//! Statement queries over the index: a leapfrog join of the posting lists of
//! every filter term (plus the caller's scope list), bounded by positions
//! derived from `since`/`until`, in either direction, one page at a time.

use crate::error::StoreError;
use crate::store::Store;
use lrs_core::Position;
use lrs_projections::statement_index::{
    by_id_key, decode_by_id, string_term, tenant_hash, tenant_term, voided_key, Term, TermKind,
    BY_ID, VOIDED,
};
use lrs_projections::ReadModel;
use uuid::Uuid;

/// Whose statements a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The statements one tenant wrote (an app).
    Tenant(String),
    /// The statements of one library's learners (ISIL), whoever wrote them.
    Library(String),
    /// The statements one credential of a tenant wrote (`statements/read/mine`).
    Mine { tenant: String, credential: String },
    /// Every tenant's (the KB).
    All,
}

#[derive(Debug, Clone)]
pub struct StatementQuery {
    pub scope: Scope,
    /// Every term must match (AND).
    pub terms: Vec<(TermKind, Term)>,
    /// Exclusive lower bound on `stored`, microseconds.
    pub since_micros: Option<i64>,
    /// Inclusive upper bound on `stored`, microseconds.
    pub until_micros: Option<i64>,
    pub ascending: bool,
    pub limit: usize,
    /// Continue after this position (exclusive, in the query's direction).
    pub after: Option<Position>,
    /// Never look past this position (keeps pages stable while writes go on).
    pub ceiling: Position,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub positions: Vec<Position>,
    /// Where the next page starts, if there may be one.
    pub more: Option<Position>,
}

/// Where a statement was found by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub position: Position,
    pub voided: bool,
}

impl Store {
    /// Finds a statement by id within the reader's scope.
    pub fn find_statement(
        &self,
        scope: &Scope,
        statement_id: &Uuid,
    ) -> Result<Option<Found>, StoreError> {
        let shared = self.shared();
        let hit = match scope {
            Scope::Tenant(tenant) | Scope::Mine { tenant, .. } => {
                let tenant = tenant_hash(tenant);
                match shared.trees().get(BY_ID, &by_id_key(statement_id, &tenant)) {
                    Some(value) => {
                        let keep = match scope {
                            Scope::Mine { credential, .. } => {
                                self.written_by(&value, |s, _| &s.credential_key == credential)?
                            }
                            _ => true,
                        };
                        keep.then_some((tenant, value))
                    }
                    None => None,
                }
            }
            // The same id may exist once per writing tenant: the first one
            // (by tenant hash) that the reader may see.
            Scope::All | Scope::Library(_) => {
                let mut hit = None;
                for (key, value) in shared.trees().entries(BY_ID, statement_id.as_bytes())? {
                    let keep = match scope {
                        Scope::Library(isil) => self.written_by(&value, |_, origin| {
                            origin.library.as_deref() == Some(isil.as_str())
                        })?,
                        _ => true,
                    };
                    if keep {
                        hit = Some((key[16..24].try_into().expect("8 bytes"), value));
                        break;
                    }
                }
                hit
            }
        };
        let Some((tenant, value)) = hit else {
            return Ok(None);
        };
        let (position, is_voiding) =
            decode_by_id(&value).ok_or_else(|| StoreError::Corrupt("by_id value".into()))?;
        let voided = !is_voiding
            && shared
                .tree(VOIDED)
                .get(voided_key(&tenant, statement_id))?
                .is_some();
        Ok(Some(Found { position, voided }))
    }

    /// The positions of every voided statement, in log order. A voided
    /// statement leaves every posting list, so no query finds it; the
    /// privacy reads that must find all of a person's statements (their
    /// access request) add these.
    pub fn voided_positions(&self) -> Result<Vec<Position>, StoreError> {
        let shared = self.shared();
        let mut positions = Vec::new();
        for item in shared.tree(VOIDED).iter() {
            let (key, _) = item?;
            let (Some(tenant), Some(id)) = (
                key.get(..8).and_then(|t| <[u8; 8]>::try_from(t).ok()),
                key.get(8..24).and_then(|u| Uuid::from_slice(u).ok()),
            ) else {
                return Err(StoreError::Corrupt("voided key".into()));
            };
            // A voiding that arrived before its target: nothing stored yet.
            if let Some(value) = shared.trees().get(BY_ID, &by_id_key(&id, &tenant)) {
                if let Some((position, false)) = decode_by_id(&value) {
                    positions.push(position);
                }
            }
        }
        positions.sort_unstable();
        Ok(positions)
    }

    /// Whether the statement a `by_id` value points at passes `test`.
    fn written_by(
        &self,
        by_id_value: &[u8],
        test: impl Fn(&lrs_core::events::StatementStoredV1, &lrs_core::events::OriginV1) -> bool,
    ) -> Result<bool, StoreError> {
        let (position, _) =
            decode_by_id(by_id_value).ok_or_else(|| StoreError::Corrupt("by_id value".into()))?;
        Ok(self
            .statement_at(position)?
            .is_some_and(|v2| test(&v2.statement, &v2.origin)))
    }

    /// One page of positions matching the query.
    pub fn query_statements(&self, query: &StatementQuery) -> Result<Page, StoreError> {
        let postings = self.shared().postings.read().expect("postings lock");

        // Position bounds [low, high] from since/until/ceiling/after.
        let mut low: Position = 1;
        let mut high: Position = query.ceiling;
        if let Some(since) = query.since_micros {
            match postings.first_after(since) {
                Some(position) => low = low.max(position),
                None => {
                    return Ok(Page {
                        positions: Vec::new(),
                        more: None,
                    })
                }
            }
        }
        if let Some(until) = query.until_micros {
            high = high.min(postings.last_at_or_before(until));
        }
        if let Some(after) = query.after {
            if query.ascending {
                low = low.max(after + 1);
            } else {
                high = high.min(after.saturating_sub(1));
            }
        }

        let mut lists: Vec<&[u64]> = Vec::with_capacity(query.terms.len() + 1);
        lists.push(match &query.scope {
            Scope::Tenant(tenant) => postings.list(TermKind::Tenant, &tenant_term(tenant)),
            Scope::Library(isil) => postings.list(TermKind::Library, &string_term(isil)),
            Scope::Mine { credential, .. } => {
                postings.list(TermKind::Credential, &string_term(credential))
            }
            Scope::All => postings.list(TermKind::All, &[0u8; 16]),
        });
        if let Scope::Mine { tenant, .. } = &query.scope {
            lists.push(postings.list(TermKind::Tenant, &tenant_term(tenant)));
        }
        for (kind, term) in &query.terms {
            lists.push(postings.list(*kind, term));
        }
        // The shortest list leads the join.
        lists.sort_by_key(|list| list.len());

        // One more than asked: if it exists, there is a next page.
        let limit = query.limit.max(1);
        let mut positions = leapfrog(&lists, low, high, query.ascending, limit + 1);
        let more = if positions.len() > limit {
            positions.truncate(limit);
            positions.last().copied()
        } else {
            None
        };
        Ok(Page { positions, more })
    }
}

/// Positions in [low, high] present in every list, in the given direction, at most `limit`.
fn leapfrog(
    lists: &[&[u64]],
    low: Position,
    high: Position,
    ascending: bool,
    limit: usize,
) -> Vec<Position> {
    let mut positions = Vec::with_capacity(limit.min(1024));
    if low > high || lists.iter().any(|list| list.is_empty()) {
        return positions;
    }
    let mut candidate = if ascending { low } else { high };
    loop {
        let mut agreed = 0;
        let mut index = 0;
        while agreed < lists.len() {
            match seek(lists[index % lists.len()], candidate, ascending, low, high) {
                None => return positions,
                Some(position) if position == candidate => agreed += 1,
                Some(position) => {
                    candidate = position;
                    agreed = 1;
                }
            }
            index += 1;
        }
        positions.push(candidate);
        if positions.len() == limit {
            return positions;
        }
        if ascending {
            if candidate >= high {
                return positions;
            }
            candidate += 1;
        } else {
            if candidate <= low {
                return positions;
            }
            candidate -= 1;
        }
    }
}

/// The first position of a sorted list at or after `from` (ascending) or at
/// or before it (descending), within [low, high].
fn seek(
    list: &[u64],
    from: Position,
    ascending: bool,
    low: Position,
    high: Position,
) -> Option<Position> {
    if ascending {
        let at = list.partition_point(|p| *p < from);
        list.get(at).copied().filter(|p| *p <= high)
    } else {
        let at = list.partition_point(|p| *p <= from);
        at.checked_sub(1).map(|i| list[i]).filter(|p| *p >= low)
    }
}
