//! Closing a month's figures (docs/progress-and-figures.md, "Closing a
//! month"), and the figures as delivered: the one place that decides
//! whether an answer holds a closed version or the live figures.
//!
//! A closing freezes every scope's figures of a month in the log
//! (`FiguresClosedV1`), read on the writer thread exactly at the head
//! (`Store::append_derived`), so the progress fold counts precisely the
//! statements that change the month afterwards as late. Reads serve the
//! latest closed version unless asked for the live figures (or another
//! version), and always say what arrived since and what it changed. The
//! JSON API, the pages and the Datatheek workbook read figures here; the
//! live counters themselves are `crate::insight`'s.

use crate::error::AppError;
use crate::insight::{
    self, Breakdown, BreakdownRow, Closing, CourseCount, FigureScope, Figures, FiguresVersion,
    Month, MonthlyFigures, Names, Served, TenantNames,
};
use lrs_core::events::{ClosedCourseV1, ClosedScopeV1, FigureCountsV1, FiguresClosedV1};
use lrs_core::Event;
use lrs_projections::progress::ClosedMonth;
use lrs_store::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Who closes a month by itself.
pub const AUTO: &str = "auto";

/// The longest note a closing keeps.
pub const MAX_NOTE_CHARS: usize = 500;

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn counts_of(figures: &Figures) -> FigureCountsV1 {
    FigureCountsV1 {
        hits: figures.hits,
        launches: figures.launches,
        active_users: figures.active_users,
        enrolled_participants: figures.enrolled_participants,
        participants_started: figures.participants_started,
        courses_started: figures.courses_started,
        courses_completed: figures.courses_completed,
    }
}

fn figures_of(counts: &FigureCountsV1) -> Figures {
    Figures {
        hits: counts.hits,
        launches: counts.launches,
        active_users: counts.active_users,
        enrolled_participants: counts.enrolled_participants,
        participants_started: counts.participants_started,
        courses_started: counts.courses_started,
        courses_completed: counts.courses_completed,
    }
}

/// The live figure minus the closed one, for each that differs.
fn changes(live: &Figures, closed: &Figures) -> BTreeMap<String, i64> {
    let pairs = [
        ("hits", live.hits, closed.hits),
        ("launches", live.launches, closed.launches),
        ("active_users", live.active_users, closed.active_users),
        (
            "enrolled_participants",
            live.enrolled_participants,
            closed.enrolled_participants,
        ),
        (
            "participants_started",
            live.participants_started,
            closed.participants_started,
        ),
        (
            "courses_started",
            live.courses_started,
            closed.courses_started,
        ),
        (
            "courses_completed",
            live.courses_completed,
            closed.courses_completed,
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, live, closed)| live != closed)
        .map(|(name, live, closed)| (name.to_owned(), live as i64 - closed as i64))
        .collect()
}

fn scope_text(scope: &FigureScope) -> String {
    String::from_utf8_lossy(&insight::scope_key(scope)).into_owned()
}

/// The closed figures of one scope (zeros if the closing had none for it:
/// no activity that month).
fn closed_scope(closed: &FiguresClosedV1, scope: &FigureScope) -> Option<ClosedScopeV1> {
    let key = scope_text(scope);
    closed.scopes.iter().find(|s| s.scope == key).cloned()
}

fn courses_of(list: &[ClosedCourseV1]) -> Vec<CourseCount> {
    list.iter()
        .map(|c| CourseCount {
            course: c.course.clone(),
            name: c.name.clone(),
            count: c.count,
        })
        .collect()
}

/// One scope's figures as a closing recorded them.
fn monthly_of_closed(
    month: Month,
    scope: &FigureScope,
    closed: Option<&ClosedScopeV1>,
) -> MonthlyFigures {
    MonthlyFigures {
        month,
        scope: scope.clone(),
        figures: closed.map(|c| figures_of(&c.figures)).unwrap_or_default(),
        top_started: closed
            .map(|c| courses_of(&c.top_started))
            .unwrap_or_default(),
        top_completed: closed
            .map(|c| courses_of(&c.top_completed))
            .unwrap_or_default(),
        closing: None,
    }
}

/// Statements that changed a scope's figures of a month after `version`
/// was closed (under it and every later version).
fn late_since(
    store: &Store,
    month: Month,
    scope: &FigureScope,
    closings: &[ClosedMonth],
    version: u32,
) -> Result<u64, AppError> {
    let key = insight::scope_key(scope);
    let mut late = 0;
    for closing in closings.iter().filter(|c| c.version >= version) {
        late += store.late_statements(insight::month_key(month), &key, closing.version)?;
    }
    Ok(late)
}

/// A month and scope with the month's closings, oldest first.
struct Closings<'a> {
    store: &'a Store,
    month: Month,
    scope: &'a FigureScope,
    all: &'a [ClosedMonth],
}

impl Closings<'_> {
    /// What an answer says about the closing `about` (recorded as
    /// `closed`), serving `served`, with the live and the closed figures.
    fn info(
        &self,
        about: &ClosedMonth,
        closed: &FiguresClosedV1,
        served: Served,
        live: &Figures,
        closed_figures: &Figures,
    ) -> Result<Closing, AppError> {
        Ok(Closing {
            version: about.version,
            latest_version: self.all.last().map_or(about.version, |c| c.version),
            served,
            closed_at: rfc3339(closed.closed_micros),
            closed_by: closed.by.clone(),
            note: closed.note.clone(),
            late_statements: late_since(
                self.store,
                self.month,
                self.scope,
                self.all,
                about.version,
            )?,
            changes: changes(live, closed_figures),
        })
    }
}

/// The closing an answer serves, or is about: `None` when the month was
/// never closed (or `version` asks for one it does not have: an error).
fn chosen(
    closings: &[ClosedMonth],
    version: FiguresVersion,
) -> Result<Option<ClosedMonth>, AppError> {
    match version {
        FiguresVersion::Closed(number) => closings
            .iter()
            .find(|c| c.version == number)
            .copied()
            .map(Some)
            .ok_or(AppError::NotFound("closed version of this month")),
        _ => Ok(closings.last().copied()),
    }
}

/// One month's figures for one scope, as delivered: the closed version if
/// the month is closed (the latest, or `version`), else the live figures.
pub fn monthly(
    store: &Store,
    scope: &FigureScope,
    month: Month,
    version: FiguresVersion,
) -> Result<MonthlyFigures, AppError> {
    let names = Names::load(store)?;
    monthly_with(store, scope, month, version, &names)
}

fn monthly_with(
    store: &Store,
    scope: &FigureScope,
    month: Month,
    version: FiguresVersion,
    names: &Names,
) -> Result<MonthlyFigures, AppError> {
    let mut live = insight::live_monthly_with(store, scope, month, names)?;
    let closings = store.closings_of(insight::month_key(month))?;
    let Some(about) = chosen(&closings, version)? else {
        return Ok(live);
    };
    let closed = store.closed_figures(&about)?;
    let served = closed_scope(&closed, scope);
    let closed_month = monthly_of_closed(month, scope, served.as_ref());
    let context = Closings {
        store,
        month,
        scope,
        all: &closings,
    };
    if version == FiguresVersion::Live {
        live.closing = Some(context.info(
            &about,
            &closed,
            Served::Live,
            &live.figures,
            &closed_month.figures,
        )?);
        return Ok(live);
    }
    let closing = context.info(
        &about,
        &closed,
        Served::Closed,
        &live.figures,
        &closed_month.figures,
    )?;
    Ok(MonthlyFigures {
        closing: Some(closing),
        ..closed_month
    })
}

/// The figures of each month from `from` through `to`, as delivered (or
/// live): at most [`insight::MAX_TREND_MONTHS`].
pub fn trend(
    store: &Store,
    scope: &FigureScope,
    from: Month,
    to: Month,
    live: bool,
) -> Result<Vec<MonthlyFigures>, AppError> {
    if from > to {
        return Err(AppError::bad_request(
            "?from",
            "trend.range",
            format!("from ({from}) is after to ({to})"),
        ));
    }
    let names = Names::load(store)?;
    let version = if live {
        FiguresVersion::Live
    } else {
        FiguresVersion::Delivered
    };
    let mut months = Vec::new();
    let mut month = from;
    while month <= to {
        if months.len() == insight::MAX_TREND_MONTHS {
            return Err(AppError::bad_request(
                "?to",
                "trend.range",
                format!(
                    "a trend covers at most {} months",
                    insight::MAX_TREND_MONTHS
                ),
            ));
        }
        months.push(monthly_with(store, scope, month, version, &names)?);
        month = month.next();
    }
    Ok(months)
}

/// Every library's (or app's) figures of a month, as delivered: the rows
/// of a closed version (those with any figure), else the live breakdown.
pub fn breakdown(
    store: &Store,
    month: Month,
    by_library: bool,
    version: FiguresVersion,
) -> Result<Breakdown, AppError> {
    let mut live = insight::live_breakdown(store, month, by_library)?;
    let closings = store.closings_of(insight::month_key(month))?;
    let Some(about) = chosen(&closings, version)? else {
        return Ok(live);
    };
    let closed = store.closed_figures(&about)?;
    let total_live = insight::live_monthly(store, &FigureScope::Total, month)?;
    let total_closed = closed_scope(&closed, &FigureScope::Total)
        .map(|c| figures_of(&c.figures))
        .unwrap_or_default();
    let served = if version == FiguresVersion::Live {
        Served::Live
    } else {
        Served::Closed
    };
    let closing = Closings {
        store,
        month,
        scope: &FigureScope::Total,
        all: &closings,
    }
    .info(&about, &closed, served, &total_live.figures, &total_closed)?;
    if served == Served::Live {
        live.closing = Some(closing);
        return Ok(live);
    }
    let prefix = if by_library { "l:" } else { "a:" };
    let rows = closed
        .scopes
        .iter()
        .filter_map(|s| Some((s.scope.strip_prefix(prefix)?, s)))
        .filter(|(_, s)| s.figures != FigureCountsV1::default())
        .map(|(id, s)| BreakdownRow {
            id: id.to_owned(),
            name: s.name.clone(),
            figures: figures_of(&s.figures),
        })
        .collect();
    Ok(Breakdown {
        month,
        by: if by_library { "library" } else { "app" }.into(),
        rows,
        closing: Some(closing),
    })
}

/// Every scope's figures of a month as they are now, for a closing: the
/// total, every library and app with figures, and every defined library
/// and app (zeros), with the tenants' names and the top 10s with their
/// courses' names, in scope key order.
pub fn snapshot(store: &Store, month: Month) -> Result<Vec<ClosedScopeV1>, AppError> {
    let names = Names::load(store)?;
    let mut all = insight::live_month_all(store, month, &names)?;
    let tenants = TenantNames::load(store)?;
    let mut tenant_names: BTreeMap<FigureScope, String> = BTreeMap::new();
    for (isil, name) in &tenants.libraries {
        tenant_names.insert(FigureScope::Library(isil.clone()), name.clone());
    }
    for (appid, name) in &tenants.apps {
        tenant_names.insert(FigureScope::App(appid.clone()), name.clone());
    }
    for scope in std::iter::once(FigureScope::Total).chain(tenant_names.keys().cloned()) {
        all.entry(scope.clone())
            .or_insert_with(|| monthly_of_closed(month, &scope, None));
    }
    let closed_courses = |list: &[CourseCount]| {
        list.iter()
            .map(|c| ClosedCourseV1 {
                course: c.course.clone(),
                name: c.name.clone(),
                count: c.count,
            })
            .collect::<Vec<_>>()
    };
    let mut scopes: Vec<ClosedScopeV1> = all
        .into_iter()
        .map(|(scope, figures)| ClosedScopeV1 {
            name: tenant_names.get(&scope).cloned(),
            scope: scope_text(&scope),
            figures: counts_of(&figures.figures),
            top_started: closed_courses(&figures.top_started),
            top_completed: closed_courses(&figures.top_completed),
        })
        .collect();
    scopes.sort_by(|a, b| a.scope.cmp(&b.scope));
    Ok(scopes)
}

/// What a closing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A new version was recorded.
    Closed { month: Month, version: u32 },
    /// The figures equal the latest closed version's: nothing recorded.
    Unchanged { month: Month, version: u32 },
}

/// Closes a month's figures: records every scope's figures as they are at
/// the log's head as the month's next version. A month that has not ended
/// (in Dutch time, at `now_micros`) cannot be closed; a month whose figures
/// equal its latest closed version gets no new one.
pub async fn close(
    store: &Arc<Store>,
    month: Month,
    now_micros: i64,
    by: &str,
    note: &str,
) -> Result<Closed, AppError> {
    if Month::of_micros(now_micros) <= month {
        return Err(AppError::bad_request(
            "$.month",
            "closing.month",
            format!("{month} has not ended yet: a month is closed after its last day"),
        ));
    }
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(AppError::bad_request(
            "$.note",
            "closing.note",
            format!("a note has at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    type Outcome = Result<Closed, AppError>;
    let outcome: Arc<Mutex<Option<Outcome>>> = Arc::default();
    let (reader, written, by, note) = (
        store.clone(),
        outcome.clone(),
        by.to_owned(),
        note.to_owned(),
    );
    let appended = store
        .append_derived(move || {
            // On the writer thread: the read models are exactly at the head.
            let derive = || -> Result<(Option<Event>, Closed), AppError> {
                let closings = reader.closings_of(insight::month_key(month))?;
                let scopes = snapshot(&reader, month)?;
                if let Some(latest) = closings.last() {
                    if reader.closed_figures(latest)?.scopes == scopes {
                        return Ok((
                            None,
                            Closed::Unchanged {
                                month,
                                version: latest.version,
                            },
                        ));
                    }
                }
                let version = closings.last().map_or(1, |c| c.version + 1);
                let event = Event::FiguresClosedV1(FiguresClosedV1 {
                    month: month.to_string(),
                    version,
                    closed_micros: now_micros,
                    by,
                    note,
                    scopes,
                });
                Ok((Some(event), Closed::Closed { month, version }))
            };
            match derive() {
                Ok((event, closed)) => {
                    *written.lock().expect("outcome lock") = Some(Ok(closed));
                    event
                }
                Err(error) => {
                    *written.lock().expect("outcome lock") = Some(Err(error));
                    None
                }
            }
        })
        .await
        .map_err(|e| match e {
            lrs_store::AppendError::Store(e) => AppError::from(e),
            other => AppError::internal(other),
        })?;
    let outcome = outcome
        .lock()
        .expect("outcome lock")
        .take()
        .unwrap_or_else(|| Err(AppError::internal("the closing was not made")));
    if let (Ok(Closed::Closed { .. }), None) = (&outcome, appended) {
        return Err(AppError::internal("the closing was not appended"));
    }
    outcome
}

/// Closes, by itself, every month with figures that ended at least
/// `after_days` days before `now_micros` (Dutch time) and was never closed.
pub async fn close_due(
    store: &Arc<Store>,
    now_micros: i64,
    after_days: u32,
) -> Result<Vec<Closed>, AppError> {
    let cutoff = Month::of_micros(now_micros - i64::from(after_days) * 86_400_000_000);
    let mut done = Vec::new();
    for key in store.figure_months()? {
        let Some(month) = month_of_key(&key) else {
            continue;
        };
        if month >= cutoff || store.latest_closing(key)?.is_some() {
            continue;
        }
        let note = format!("automatically, {after_days} days after the month ended");
        done.push(close(store, month, now_micros, AUTO, &note).await?);
    }
    Ok(done)
}

/// The month of a figures key (`YYYYMM`).
pub(crate) fn month_of_key(key: &[u8; 6]) -> Option<Month> {
    let text = std::str::from_utf8(key).ok()?;
    Month::new(text[..4].parse().ok()?, text[4..].parse().ok()?)
}

/// Every closing of a month, oldest first, as seen from `scope`: each
/// version's late statements (since it) and what the live figures differ
/// from it.
pub fn closings(
    store: &Store,
    month: Month,
    scope: &FigureScope,
) -> Result<Vec<Closing>, AppError> {
    let closings = store.closings_of(insight::month_key(month))?;
    let live = insight::live_monthly(store, scope, month)?;
    let mut found = Vec::new();
    for about in &closings {
        let closed = store.closed_figures(about)?;
        let closed_figures = closed_scope(&closed, scope)
            .map(|c| figures_of(&c.figures))
            .unwrap_or_default();
        found.push(
            Closings {
                store,
                month,
                scope,
                all: &closings,
            }
            .info(
                about,
                &closed,
                Served::Closed,
                &live.figures,
                &closed_figures,
            )?,
        );
    }
    Ok(found)
}

/// The rows of a closed version for the Datatheek workbook: every library
/// (`by_library`) or app the closing recorded, with its name then.
pub fn closed_rows(
    store: &Store,
    month: Month,
    version: FiguresVersion,
    by_library: bool,
) -> Result<Option<(ClosedMonth, Vec<BreakdownRow>)>, AppError> {
    if version == FiguresVersion::Live {
        return Ok(None);
    }
    let closings = store.closings_of(insight::month_key(month))?;
    let Some(about) = chosen(&closings, version)? else {
        return Ok(None);
    };
    let closed = store.closed_figures(&about)?;
    let prefix = if by_library { "l:" } else { "a:" };
    let rows = closed
        .scopes
        .iter()
        .filter_map(|s| {
            Some(BreakdownRow {
                id: s.scope.strip_prefix(prefix)?.to_owned(),
                name: s.name.clone(),
                figures: figures_of(&s.figures),
            })
        })
        .collect();
    Ok(Some((about, rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_only_what_differs() {
        let closed = Figures {
            hits: 10,
            active_users: 3,
            ..Figures::default()
        };
        let live = Figures {
            hits: 12,
            active_users: 3,
            courses_completed: 1,
            ..Figures::default()
        };
        let found = changes(&live, &closed);
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec![("courses_completed".to_owned(), 1), ("hits".to_owned(), 2)]
        );
        assert_eq!(month_of_key(b"202610"), Month::new(2026, 10));
    }

    /// A statement of learner `n` in October 2026 (or `time`), launched in
    /// a course, through the real ingest.
    fn statement(store: &Store, n: u32, time: &str) -> lrs_store::PreparedStatement {
        let statement = serde_json::json!({
            "actor": {"mbox": format!("mailto:leerling{n}@example.nl")},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/launched"},
            "object": {"id": "https://kb.example/cursus/a/m1", "definition": {"name": {"nl": "Module 1"}}},
            "context": {"contextActivities": {"grouping": [{"id": "https://kb.example/cursus/a",
                "definition": {"type": "https://w3id.org/xapi/cmi5/activitytype/course", "name": {"nl-NL": "Cursus A"}}}]}},
            "timestamp": time
        });
        crate::testing::prepare(store, statement, "NL-0001")
    }

    #[tokio::test]
    async fn a_closed_month_stays_put_and_counts_what_arrives_late() {
        let (_dir, store) = crate::testing::temp_store();
        let october = Month::new(2026, 10).unwrap();
        let append = |statements| store.append_statements("kb".into(), "k".into(), statements);
        append(vec![
            statement(&store, 1, "2026-10-02T10:00:00Z"),
            statement(&store, 2, "2026-10-03T10:00:00Z"),
        ])
        .await
        .unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
            .unwrap()
            .timestamp_micros();
        // Not before the month ended.
        let early = close(&store, Month::new(2026, 11).unwrap(), now, "k", "").await;
        assert!(matches!(early, Err(AppError::Invalid(_))), "{early:?}");
        // Closing nine days after the end is not due at 20 days' wait; at ten it is.
        assert_eq!(close_due(&store, now, 20).await.unwrap(), vec![]);
        assert_eq!(
            close_due(&store, now, 10).await.unwrap(),
            vec![Closed::Closed {
                month: october,
                version: 1
            }]
        );
        assert_eq!(close_due(&store, now, 10).await.unwrap(), vec![]);
        let delivered = monthly(
            &store,
            &FigureScope::Total,
            october,
            FiguresVersion::Delivered,
        )
        .unwrap();
        assert_eq!((delivered.figures.hits, delivered.figures.launches), (2, 2));
        assert_eq!(delivered.top_started[0].name.as_deref(), Some("Cursus A"));
        let closing = delivered.closing.clone().unwrap();
        assert_eq!(
            (closing.version, closing.served, closing.late_statements),
            (1, Served::Closed, 0)
        );
        assert_eq!(closing.closed_by, AUTO);
        // Nothing changed: no new version.
        assert_eq!(
            close(&store, october, now, "k", "").await.unwrap(),
            Closed::Unchanged {
                month: october,
                version: 1
            }
        );
        // A late statement: the delivered figures stay, the live ones and
        // the late count move.
        append(vec![statement(&store, 3, "2026-10-30T10:00:00Z")])
            .await
            .unwrap();
        let again = monthly(
            &store,
            &FigureScope::Total,
            october,
            FiguresVersion::Delivered,
        )
        .unwrap();
        assert_eq!(again.figures, delivered.figures);
        let closing = again.closing.unwrap();
        assert_eq!(closing.late_statements, 1);
        assert_eq!(
            closing.changes.into_iter().collect::<Vec<_>>(),
            vec![
                ("active_users".to_owned(), 1),
                ("courses_started".to_owned(), 1),
                ("hits".to_owned(), 1),
                ("launches".to_owned(), 1),
                ("participants_started".to_owned(), 1)
            ]
        );
        let library = FigureScope::Library("NL-0001".into());
        let live = monthly(&store, &library, october, FiguresVersion::Live).unwrap();
        assert_eq!(live.figures.hits, 3);
        assert_eq!(live.closing.unwrap().served, Served::Live);
        // Closed again: version 2 holds the late statement.
        assert_eq!(
            close(&store, october, now, "k", "late statements")
                .await
                .unwrap(),
            Closed::Closed {
                month: october,
                version: 2
            }
        );
        let second = monthly(&store, &library, october, FiguresVersion::Delivered).unwrap();
        assert_eq!(
            (
                second.figures.hits,
                second.closing.as_ref().unwrap().late_statements
            ),
            (3, 0)
        );
        let first = monthly(&store, &library, october, FiguresVersion::Closed(1)).unwrap();
        assert_eq!(first.figures.hits, 2);
        assert!(matches!(
            monthly(&store, &library, october, FiguresVersion::Closed(3)),
            Err(AppError::NotFound(_))
        ));
        assert_eq!(
            closings(&store, october, &FigureScope::Total)
                .unwrap()
                .len(),
            2
        );
        store.close().await.unwrap();
    }
}
