//! Reading progress and monthly figures (docs/progress-and-figures.md): the
//! one place that turns the `progress` read model into the shapes of
//! [`model`], checks who may see what, and records assignments. The JSON API
//! (`routes/insight.rs`) and the web pages (`web/`) both call these
//! functions, so they answer the same.

pub mod course_model;
mod learner_list;
pub mod model;
pub mod vocabulary;

use crate::error::AppError;
use crate::principal::Credential;
pub use learner_list::{library_learners, MAX_PER_PAGE};
use lrs_core::clock::now_micros;
use lrs_core::events::TenantKindV1;
use lrs_store::Store;
pub use model::*;

/// What a principal may see of the figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FigureAccess {
    /// The KB: everything, every library and app.
    Kb,
    /// A library organisation: its own ISIL.
    Library(String),
    /// An app: its own appid.
    App(String),
}

impl FigureAccess {
    /// What the principal sees when it names no scope.
    pub fn default_scope(&self) -> FigureScope {
        match self {
            FigureAccess::Kb => FigureScope::Total,
            FigureAccess::Library(isil) => FigureScope::Library(isil.clone()),
            FigureAccess::App(appid) => FigureScope::App(appid.clone()),
        }
    }

    pub fn allows(&self, scope: &FigureScope) -> bool {
        match self {
            FigureAccess::Kb => true,
            FigureAccess::Library(isil) => scope == &FigureScope::Library(isil.clone()),
            FigureAccess::App(appid) => scope == &FigureScope::App(appid.clone()),
        }
    }
}

/// Who may read figures, from the principal's tenant: needs `permission`
/// (`figures.read`, `progress.read`, `progress.assign`), then the tenant's
/// kind decides the reach. A tenant without a kind sees nothing (403).
pub fn access(
    store: &Store,
    caller: &Credential,
    permission: &str,
) -> Result<FigureAccess, AppError> {
    caller.require_permission(permission)?;
    match reach_of(store, caller)? {
        Reach::All => Ok(FigureAccess::Kb),
        Reach::Library(isil) => Ok(FigureAccess::Library(isil)),
        Reach::App(appid) => Ok(FigureAccess::App(appid)),
        Reach::Tenant(tenant) => Err(AppError::Forbidden(format!(
            "{permission} (the tenant '{tenant}' is not defined as the KB, a library or an app)"
        ))),
    }
}

/// How far the principal's tenant reaches, by its kind.
fn reach_of(store: &Store, caller: &Credential) -> Result<Reach, AppError> {
    Ok(match crate::tenancy::tenant_kind(store, &caller.tenant)? {
        Some(TenantKindV1::Kb) => Reach::All,
        Some(TenantKindV1::Library { isil }) => Reach::Library(isil),
        Some(TenantKindV1::App { appid }) => Reach::App(appid),
        None => Reach::Tenant(caller.tenant.clone()),
    })
}

use lrs_core::token::Token;
use lrs_projections::course_model::CourseModel;
use lrs_projections::progress::{self as fold, figure, StatementRecord};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Whose records a progress reader sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Everything (the KB; a learner reading their own progress).
    All,
    Library(String),
    App(String),
    /// A tenant that is neither KB, library nor app: what it wrote itself.
    Tenant(String),
}

impl Reach {
    fn sees(&self, record: &StatementRecord) -> bool {
        match self {
            Reach::All => true,
            Reach::Library(isil) => record.library.as_deref() == Some(isil),
            Reach::App(appid) => record.app.as_deref() == Some(appid),
            Reach::Tenant(tenant) => &record.tenant == tenant,
        }
    }

    /// The figure scope whose seen modules count as a course's modules.
    fn module_scope(&self) -> Option<Vec<u8>> {
        match self {
            Reach::All => Some(fold::scope_total()),
            Reach::Library(isil) => Some(fold::scope_library(isil)),
            Reach::App(appid) => Some(fold::scope_app(appid)),
            Reach::Tenant(_) => None,
        }
    }
}

impl From<FigureAccess> for Reach {
    fn from(access: FigureAccess) -> Self {
        match access {
            FigureAccess::Kb => Reach::All,
            FigureAccess::Library(isil) => Reach::Library(isil),
            FigureAccess::App(appid) => Reach::App(appid),
        }
    }
}

/// Whose progress a principal with `progress.read` sees.
pub fn progress_reach(store: &Store, caller: &Credential) -> Result<Reach, AppError> {
    caller.require_permission("progress.read")?;
    reach_of(store, caller)
}

fn scope_bytes(scope: &FigureScope) -> Vec<u8> {
    match scope {
        FigureScope::Total => fold::scope_total(),
        FigureScope::Library(isil) => fold::scope_library(isil),
        FigureScope::App(appid) => fold::scope_app(appid),
    }
}

fn month_bytes(month: Month) -> [u8; 6] {
    fold::month_key_of(month.year, month.month)
}

/// Names of courses and modules: the course model's (any tenant's model
/// that declares them), else the latest activity definition's from the
/// statements; Dutch first, then English, then any other language.
pub struct Names<'s> {
    declared: HashMap<String, String>,
    store: &'s Store,
    found: std::cell::RefCell<HashMap<String, Option<String>>>,
}

impl<'s> Names<'s> {
    pub fn load(store: &'s Store) -> Result<Self, AppError> {
        let mut declared = HashMap::new();
        for (_, json) in store.course_models()? {
            let model = CourseModel::parse(&json);
            for course in &model.courses {
                if let Some(name) = pick_name(course.name.iter()) {
                    declared.entry(course.id.clone()).or_insert(name);
                }
                for module in &course.modules {
                    if let Some(name) = pick_name(module.name.iter()) {
                        declared.entry(module.id.clone()).or_insert(name);
                    }
                }
            }
        }
        Ok(Self {
            declared,
            store,
            found: Default::default(),
        })
    }

    pub fn of(&self, id: &str) -> Option<String> {
        if let Some(name) = self.declared.get(id) {
            return Some(name.clone());
        }
        if let Some(found) = self.found.borrow().get(id) {
            return found.clone();
        }
        let name = match self.store.activity_name(id) {
            Ok(Some(defined)) => pick_name(defined.names.iter().map(|(tag, name)| (tag, name))),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "reading an activity name");
                None
            }
        };
        self.found.borrow_mut().insert(id.to_owned(), name.clone());
        name
    }
}

/// The name to show from a language map: `nl` (or any `nl-…` tag), then
/// `en` (or `en-…`), then the first tag.
pub fn pick_name<'a>(names: impl Iterator<Item = (&'a String, &'a String)>) -> Option<String> {
    let names: Vec<(&String, &String)> = names.collect();
    let primary = |tag: &str, language: &str| {
        tag.split('-')
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case(language))
    };
    let exact = |language: &str| {
        names
            .iter()
            .find(|(tag, _)| tag.eq_ignore_ascii_case(language))
            .or_else(|| names.iter().find(|(tag, _)| primary(tag, language)))
    };
    exact("nl")
        .or_else(|| exact("en"))
        .or_else(|| names.iter().min_by_key(|(tag, _)| tag.to_owned()))
        .map(|(_, name)| (*name).clone())
}

fn figures_from(counts: impl IntoIterator<Item = (u8, u64)>) -> Figures {
    let mut figures = Figures::default();
    for (which, count) in counts {
        match which {
            figure::HITS => figures.hits = count,
            figure::LAUNCHES => figures.launches = count,
            figure::ACTIVE_USERS => figures.active_users = count,
            figure::ENROLLED => figures.enrolled_participants = count,
            figure::PARTICIPANTS_STARTED => figures.participants_started = count,
            figure::COURSES_STARTED => figures.courses_started = count,
            figure::COURSES_COMPLETED => figures.courses_completed = count,
            _ => {}
        }
    }
    figures
}

fn top10(mut counts: Vec<(String, u64)>, names: &Names) -> Vec<CourseCount> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
        .into_iter()
        .take(10)
        .map(|(course, count)| CourseCount {
            name: names.of(&course),
            course,
            count,
        })
        .collect()
}

/// One month's live figures for one scope (`crate::closing` serves the
/// closed version of a closed month).
pub fn live_monthly(
    store: &Store,
    scope: &FigureScope,
    month: Month,
) -> Result<MonthlyFigures, AppError> {
    let names = Names::load(store)?;
    live_monthly_with(store, scope, month, &names)
}

pub fn live_monthly_with(
    store: &Store,
    scope: &FigureScope,
    month: Month,
    names: &Names,
) -> Result<MonthlyFigures, AppError> {
    let scope_key = scope_bytes(scope);
    // The scope's counters are one contiguous range: month ‖ scope ‖ 0 ‖ ...
    let prefix = [scope_key.as_slice(), &[0]].concat();
    let found = store
        .figures_in(month_bytes(month), &prefix[..prefix.len() - 1])?
        .into_iter()
        .filter(|(found_scope, ..)| *found_scope == scope_key);
    Ok(month_of_counters(month, scope.clone(), found, names))
}

/// Every scope's live figures of a month (the total, each library, each
/// app), from one scan of the month's counters: what a closing records.
pub fn live_month_all(
    store: &Store,
    month: Month,
    names: &Names,
) -> Result<BTreeMap<FigureScope, MonthlyFigures>, AppError> {
    let mut by_scope: BTreeMap<Vec<u8>, Vec<Counter>> = BTreeMap::new();
    for counter in store.figures_in(month_bytes(month), b"")? {
        by_scope.entry(counter.0.clone()).or_default().push(counter);
    }
    let mut all = BTreeMap::new();
    for (key, counters) in by_scope {
        let Some(scope) = scope_of_bytes(&key) else {
            continue;
        };
        all.insert(
            scope.clone(),
            month_of_counters(month, scope, counters, names),
        );
    }
    Ok(all)
}

/// One counter of a month: (scope, figure, course, count).
type Counter = (Vec<u8>, u8, String, u64);

/// A figure scope from its key bytes (`*`, `l:ISIL`, `a:APPID`).
pub fn scope_of_bytes(key: &[u8]) -> Option<FigureScope> {
    let text = std::str::from_utf8(key).ok()?;
    match text {
        "*" => Some(FigureScope::Total),
        _ => match text.split_at_checked(2)? {
            ("l:", isil) => Some(FigureScope::Library(isil.to_owned())),
            ("a:", appid) => Some(FigureScope::App(appid.to_owned())),
            _ => None,
        },
    }
}

/// The key bytes of a figure scope.
pub fn scope_key(scope: &FigureScope) -> Vec<u8> {
    scope_bytes(scope)
}

/// The `YYYYMM` key of a month.
pub fn month_key(month: Month) -> [u8; 6] {
    month_bytes(month)
}

fn month_of_counters(
    month: Month,
    scope: FigureScope,
    counters: impl IntoIterator<Item = Counter>,
    names: &Names,
) -> MonthlyFigures {
    let mut counts = Vec::new();
    let mut started = Vec::new();
    let mut completed = Vec::new();
    for (_, which, course, count) in counters {
        match which {
            figure::STARTED_BY_COURSE => started.push((course, count)),
            figure::COMPLETED_BY_COURSE => completed.push((course, count)),
            _ => counts.push((which, count)),
        }
    }
    MonthlyFigures {
        month,
        scope,
        figures: figures_from(counts),
        top_started: top10(started, names),
        top_completed: top10(completed, names),
        closing: None,
    }
}

/// The most months a trend covers.
pub const MAX_TREND_MONTHS: usize = 36;

/// The defined libraries (ISIL, name) and apps (appid, name), each sorted
/// by name.
pub struct TenantNames {
    pub libraries: Vec<(String, String)>,
    pub apps: Vec<(String, String)>,
}

impl TenantNames {
    pub fn load(store: &Store) -> Result<Self, AppError> {
        let mut libraries = Vec::new();
        let mut apps = Vec::new();
        for tenant in store.tenants()? {
            match tenant.kind {
                TenantKindV1::Library { isil } => libraries.push((isil, tenant.name)),
                TenantKindV1::App { appid } => apps.push((appid, tenant.name)),
                TenantKindV1::Kb => {}
            }
        }
        libraries.sort_by_key(|a| a.1.to_lowercase());
        apps.sort_by_key(|a| a.1.to_lowercase());
        Ok(Self { libraries, apps })
    }
}

/// Every library's (or app's) live figures of a month, in id order.
pub fn live_breakdown(
    store: &Store,
    month: Month,
    by_library: bool,
) -> Result<Breakdown, AppError> {
    let prefix: &[u8] = if by_library { b"l:" } else { b"a:" };
    let mut by_id: BTreeMap<String, Vec<(u8, u64)>> = BTreeMap::new();
    for (scope, which, course, count) in store.figures_in(month_bytes(month), prefix)? {
        if !course.is_empty() {
            continue;
        }
        let id = String::from_utf8_lossy(&scope[2..]).into_owned();
        by_id.entry(id).or_default().push((which, count));
    }
    let names = TenantNames::load(store)?;
    let tenant_names: HashMap<&str, &str> = if by_library {
        &names.libraries
    } else {
        &names.apps
    }
    .iter()
    .map(|(id, name)| (id.as_str(), name.as_str()))
    .collect();
    Ok(Breakdown {
        month,
        by: if by_library { "library" } else { "app" }.into(),
        rows: by_id
            .into_iter()
            .map(|(id, counts)| BreakdownRow {
                name: tenant_names.get(id.as_str()).map(|n| n.to_string()),
                figures: figures_from(counts),
                id,
            })
            .collect(),
        closing: None,
    })
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The name a learner's latest statement gives them: `name`, else the
/// account name, else the mailbox; `None` once they are erased.
pub fn learner_name(store: &Store, learner: &Token, position: u64) -> Option<String> {
    let statement = store.statement_at(position).ok()??;
    let person = statement
        .statement
        .sealed
        .persons
        .iter()
        .find(|p| p.token == *learner)?;
    let keys: &lrs_store::Vault = store.vault();
    let agent = lrs_core::envelope::open_person(person, keys).ok()??;
    agent
        .get("name")
        .and_then(|v| v.as_str())
        .or_else(|| agent.pointer("/account/name").and_then(|v| v.as_str()))
        .or_else(|| {
            agent
                .get("mbox")
                .and_then(|v| v.as_str())
                .map(|m| m.trim_start_matches("mailto:"))
        })
        .map(str::to_owned)
}

/// One learner's progress, as far as `reach` sees it.
pub fn learner_progress(
    store: &Store,
    reach: &Reach,
    learner: &Token,
    course: Option<&str>,
) -> Result<LearnerProgress, AppError> {
    let names = Names::load(store)?;
    let models = TenantModels::default();
    learner_progress_with(store, reach, learner, course, &names, &models, true)
}

/// A learner as the course apps name them in their statements: the xAPI
/// account `{"homePage": home_page, "name": name}` (docs/learner-page.md:
/// a learner signed in through the KB's OpenID provider is the account
/// `{homePage: <issuer>, name: <subject>}` unless the provider's file says
/// otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnerAccount {
    pub home_page: String,
    pub name: String,
}

impl LearnerAccount {
    /// The inverse functional identifier the store knows the learner by.
    pub fn ifi(&self) -> xapi::agent::Ifi {
        xapi::agent::Ifi {
            kind: xapi::agent::IfiKind::Account,
            value: format!("{}\0{}", self.home_page, self.name),
        }
    }
}

/// A learner's own progress (req. 2.12): every course and module of theirs
/// with status, score and time, as `learner_progress` gives it to the KB
/// (the same numbers as `GET /api/progress/me`). Someone the store has never
/// seen has no courses. Nothing of another learner is in it: the records
/// read are this learner's alone; a course's module list is the course's
/// (its declared modules, else the modules seen in it).
pub fn own_progress(store: &Store, account: &LearnerAccount) -> Result<LearnerProgress, AppError> {
    match store.vault().token_of(&account.ifi()) {
        Some(token) => learner_progress(store, &Reach::All, &token, None),
        None => Ok(LearnerProgress {
            learner: String::new(),
            name: None,
            last_activity: None,
            courses: Vec::new(),
        }),
    }
}

/// What one request reads again and again: course models per tenant, and
/// the modules seen per scope and course.
#[derive(Default)]
struct TenantModels(
    std::sync::Mutex<HashMap<String, std::sync::Arc<CourseModel>>>,
    std::sync::Mutex<HashMap<ScopeCourse, std::sync::Arc<Vec<String>>>>,
);

/// A figure scope and a course.
type ScopeCourse = (Vec<u8>, String);

impl TenantModels {
    fn modules_seen(
        &self,
        store: &Store,
        scope: Vec<u8>,
        course: &str,
    ) -> Result<std::sync::Arc<Vec<String>>, AppError> {
        let key = (scope, course.to_owned());
        if let Some(found) = self.1.lock().expect("modules lock").get(&key) {
            return Ok(found.clone());
        }
        let found = std::sync::Arc::new(store.modules_seen(&key.0, course)?);
        self.1
            .lock()
            .expect("modules lock")
            .insert(key, found.clone());
        Ok(found)
    }

    fn get(&self, store: &Store, tenant: &str) -> Result<std::sync::Arc<CourseModel>, AppError> {
        let mut models = self.0.lock().expect("models lock");
        if let Some(model) = models.get(tenant) {
            return Ok(model.clone());
        }
        let model = std::sync::Arc::new(match store.course_model_json(tenant)? {
            Some(json) => CourseModel::parse(&json),
            None => CourseModel::default(),
        });
        models.insert(tenant.to_owned(), model.clone());
        Ok(model)
    }
}

fn learner_progress_with(
    store: &Store,
    reach: &Reach,
    learner: &Token,
    course: Option<&str>,
    names: &Names,
    models: &TenantModels,
    with_name: bool,
) -> Result<LearnerProgress, AppError> {
    let records: Vec<StatementRecord> = store
        .progress_records(learner, course)?
        .into_iter()
        .filter(|r| reach.sees(r))
        .collect();
    let mut assigned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (assigned_course, module, _) in store.assignments(learner)? {
        if course.is_none_or(|c| c == assigned_course) {
            assigned.entry(assigned_course).or_default().insert(module);
        }
    }
    let tallies = fold::course_tallies(&records);
    let mut courses = Vec::new();
    let mut seen_courses = BTreeSet::new();
    for tally in &tallies {
        seen_courses.insert(tally.course.clone());
        let tenant = records
            .iter()
            .find(|r| r.course.as_deref() == Some(tally.course.as_str()))
            .map(|r| r.tenant.as_str())
            .unwrap_or_default();
        let model = models.get(store, tenant)?;
        courses.push(course_progress(
            store,
            reach,
            &tally.course,
            Some(tally),
            assigned.get(&tally.course),
            &model,
            names,
            models,
        )?);
    }
    // Courses with modules set ready but no activity yet.
    for (assigned_course, modules) in &assigned {
        if !seen_courses.contains(assigned_course) {
            let model = CourseModel::default();
            courses.push(course_progress(
                store,
                reach,
                assigned_course,
                None,
                Some(modules),
                &model,
                names,
                models,
            )?);
        }
    }
    let last = records.iter().max_by_key(|r| (r.time_micros, r.position));
    let latest_position = records.iter().map(|r| r.position).max();
    Ok(LearnerProgress {
        learner: learner.to_hex(),
        name: latest_position
            .filter(|_| with_name)
            .and_then(|p| learner_name(store, learner, p)),
        last_activity: last.map(|r| rfc3339(r.time_micros)),
        courses,
    })
}

#[allow(clippy::too_many_arguments)]
fn course_progress(
    store: &Store,
    reach: &Reach,
    course: &str,
    tally: Option<&fold::CourseTally>,
    assigned: Option<&BTreeSet<String>>,
    model: &CourseModel,
    names: &Names,
    cache: &TenantModels,
) -> Result<CourseProgress, AppError> {
    let declared: Vec<String> = model
        .declared_course(course)
        .map(|c| c.modules.iter().map(|m| m.id.clone()).collect())
        .unwrap_or_default();
    let mut module_ids: BTreeSet<String> = declared.iter().cloned().collect();
    if declared.is_empty() {
        if let Some(scope) = reach.module_scope() {
            module_ids.extend(cache.modules_seen(store, scope, course)?.iter().cloned());
        }
    }
    if let Some(tally) = tally {
        module_ids.extend(tally.modules.keys().cloned());
    }
    if let Some(assigned) = assigned {
        module_ids.extend(assigned.iter().cloned());
    }
    // Declared order first, then the rest by id.
    let mut ordered: Vec<String> = declared.clone();
    ordered.extend(module_ids.iter().filter(|m| !declared.contains(m)).cloned());
    let modules: Vec<ModuleProgress> = ordered
        .into_iter()
        .map(|module| {
            let module_tally = tally.and_then(|t| t.modules.get(&module));
            ModuleProgress {
                name: names.of(&module),
                status: module_tally.map_or(Status::NotStarted, |t| t.status),
                score: module_tally.and_then(|t| t.score_scaled),
                time_spent_seconds: module_tally.map_or(0, |t| t.time_ms / 1000),
                last_activity: module_tally.and_then(|t| t.last_micros).map(rfc3339),
                ready: assigned.is_some_and(|a| a.contains(&module)),
                module,
            }
        })
        .collect();
    Ok(CourseProgress {
        course: course.to_owned(),
        name: names.of(course),
        status: tally.map_or(Status::NotStarted, |t| t.status),
        modules_done: modules.iter().filter(|m| m.status.is_done()).count() as u32,
        modules_total: modules.len() as u32,
        score: tally.and_then(|t| t.own.score_scaled),
        time_spent_seconds: tally.map_or(0, |t| t.time_ms / 1000),
        last_activity: tally.and_then(|t| t.last_micros).map(rfc3339),
        modules,
    })
}

/// Parses a learner id (32 hex digits, as [`LearnerProgress::learner`]).
pub fn parse_learner(id: &str, path: &str) -> Result<Token, AppError> {
    let bytes = hex::decode(id)
        .ok()
        .filter(|b| b.len() == 16)
        .ok_or_else(|| {
            AppError::bad_request(
                path,
                "learner.id",
                format!("'{id}' is not a learner id (32 hex digits)"),
            )
        })?;
    Ok(Token(bytes.try_into().expect("16 bytes")))
}

/// Sets modules ready for learners (or takes that back): checks the caller
/// may (`progress.assign`, and a library only for its own learners), then
/// appends `ModulesAssignedV1`.
pub async fn assign(
    store: &Store,
    caller: &Credential,
    request: AssignmentRequest,
) -> Result<(), AppError> {
    // Like the figures: a tenant of no kind may not assign.
    let reach = Reach::from(access(store, caller, "progress.assign")?);
    if request.learners.is_empty() || request.learners.len() > 1000 {
        return Err(AppError::bad_request(
            "$.learners",
            "assignment.learners",
            "name 1 to 1000 learners",
        ));
    }
    if request.modules.is_empty() || request.modules.len() > 200 {
        return Err(AppError::bad_request(
            "$.modules",
            "assignment.modules",
            "name 1 to 200 modules",
        ));
    }
    if !xapi::validate::is_iri(&request.course) {
        return Err(AppError::bad_request(
            "$.course",
            "assignment.course",
            format!("'{}' is not an IRI", request.course),
        ));
    }
    for (i, module) in request.modules.iter().enumerate() {
        if !xapi::validate::is_iri(module) {
            return Err(AppError::bad_request(
                format!("$.modules[{i}]"),
                "assignment.module",
                format!("'{module}' is not an IRI"),
            ));
        }
    }
    let mut learners = Vec::new();
    for (i, id) in request.learners.iter().enumerate() {
        let path = format!("$.learners[{i}]");
        let token = parse_learner(id, &path)?;
        let known = match &reach {
            Reach::All => store.vault().key(&token).is_some(),
            Reach::Library(isil) => store.is_library_learner(isil, &token)?,
            _ => store
                .progress_records(&token, None)?
                .iter()
                .any(|r| reach.sees(r)),
        };
        if !known {
            return Err(AppError::bad_request(
                path,
                "assignment.unknown-learner",
                format!("no learner '{id}' among yours"),
            ));
        }
        learners.push(token);
    }
    let library = match &reach {
        Reach::Library(isil) => Some(isil.clone()),
        _ => None,
    };
    let event = lrs_core::events::ModulesAssignedV1 {
        tenant: caller.tenant.clone(),
        library,
        learners,
        course: request.course,
        modules: request.modules,
        ready: request.ready,
        assigned_micros: now_micros(),
        by: caller.key.clone(),
    };
    crate::admin::append(store, lrs_core::Event::ModulesAssignedV1(event)).await
}
