//! `/learners`: a library's learners with their progress per course and
//! module (filter by course and status, sort, pages), and the form that
//! sets modules ready for the selected learners (req. 2.21). Library staff
//! see their own ISIL; the KB picks a library. Reads and assignments go
//! through `lrs_app::insight`, as the JSON API's do.

use crate::error::ApiError;
use crate::web::html::{esc, page_response, query, see_other, Current};
use crate::web::state::WebState;
use crate::web::visitor::{Form, Staff};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use lrs_app::insight::{
    self, AssignmentRequest, CourseProgress, FigureAccess, LearnerSort, LearnersFilter, Status,
};
use lrs_app::lang::Lang;
use lrs_core::events::TenantKindV1;
use std::collections::BTreeMap;
use std::fmt::Write;

const PER_PAGE: usize = 25;
const STATUSES: [Status; 6] = [
    Status::NotStarted,
    Status::Enrolled,
    Status::InProgress,
    Status::Failed,
    Status::Completed,
    Status::Passed,
];

/// The list's parameters, as given (for links and the assign form's way back).
#[derive(Default, Clone)]
struct Params {
    library: String,
    course: String,
    status: String,
    sort: String,
    dir: String,
    page: usize,
}

impl Params {
    fn of(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            library: get("library").unwrap_or_default(),
            course: get("course").unwrap_or_default(),
            status: get("status").unwrap_or_default(),
            sort: get("sort").unwrap_or_default(),
            dir: get("dir").unwrap_or_default(),
            page: get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1),
        }
    }

    fn href(&self, lang: Lang, extra: &[(&str, &str)]) -> String {
        let page = self.page.to_string();
        let mut pairs: Vec<(&str, &str)> = vec![
            ("library", &self.library),
            ("course", &self.course),
            ("status", &self.status),
            ("sort", &self.sort),
            ("dir", &self.dir),
        ];
        if self.page > 1 {
            pairs.push(("page", &page));
        }
        for (key, value) in extra {
            pairs.retain(|(k, _)| k != key);
            pairs.push((key, value));
        }
        pairs.push(("lang", lang.code()));
        format!("/learners{}", query(&pairs))
    }
}

/// The library whose learners are shown: one's own, or for the KB the one
/// asked for (`None`: the KB has not picked one yet).
fn library_of(access: &FigureAccess, asked: &str) -> Result<Option<String>, ApiError> {
    match access {
        FigureAccess::Library(isil) => {
            if asked.is_empty() || asked == isil {
                Ok(Some(isil.clone()))
            } else {
                Err(ApiError::Forbidden(format!(
                    "progress.read for library {asked} (your library's own learners only)"
                )))
            }
        }
        FigureAccess::Kb => Ok((!asked.is_empty()).then(|| asked.to_owned())),
        FigureAccess::App(_) => Err(ApiError::Forbidden(
            "progress.read of a library (an app's staff see no library's learners)".into(),
        )),
    }
}

fn filter_of(params: &Params) -> Result<LearnersFilter, ApiError> {
    let status = match params.status.as_str() {
        "" => None,
        text => Some(
            text.parse::<Status>()
                .map_err(|m| ApiError::bad_request("status", "learners.status", m))?,
        ),
    };
    let sort = match params.sort.as_str() {
        "" => LearnerSort::default(),
        text => text
            .parse::<LearnerSort>()
            .map_err(|m| ApiError::bad_request("sort", "learners.sort", m))?,
    };
    let descending = match params.dir.as_str() {
        "asc" => false,
        "desc" => true,
        // Most recent activity first; names A to Z.
        _ => !matches!(sort, LearnerSort::Name),
    };
    Ok(LearnersFilter {
        course: (!params.course.is_empty()).then(|| params.course.clone()),
        status,
        sort,
        descending,
        page: params.page,
        per_page: PER_PAGE,
    })
}

/// GET /learners
pub async fn show(State(state): State<WebState>, staff: Staff) -> Response {
    match render(&state, &staff) {
        Ok(response) => response,
        Err(error) => staff.api_error(error),
    }
}

fn library_name(state: &WebState, isil: &str) -> Result<Option<String>, ApiError> {
    Ok(state
        .store
        .tenants()?
        .into_iter()
        .find_map(|t| match t.kind {
            TenantKindV1::Library { isil: i } if i == isil => Some(t.name),
            _ => None,
        }))
}

pub(crate) fn duration(lang: Lang, seconds: u64) -> String {
    let minutes = seconds.div_ceil(60);
    if minutes >= 60 {
        format!(
            "{} {} {} min",
            minutes / 60,
            lang.pick("u", "h"),
            minutes % 60
        )
    } else {
        format!("{minutes} min")
    }
}

pub(crate) fn day(timestamp: Option<&str>) -> String {
    timestamp
        .map(|t| t.chars().take(10).collect())
        .unwrap_or_else(|| "–".to_owned())
}

fn render(state: &WebState, staff: &Staff) -> Result<Response, ApiError> {
    let lang = staff.lang();
    let access = insight::access(&state.store, &staff.principal, "progress.read")?;
    let params = Params::of(|k| staff.visitor.param(k).map(str::to_owned));
    let title_base = lang.pick("Cursisten", "Learners");
    let Some(isil) = library_of(&access, &params.library)? else {
        return Ok(kb_library_picker(state, staff));
    };
    let filter = filter_of(&params)?;
    let page = insight::library_learners(&state.store, &isil, &filter)?;
    let name = library_name(state, &isil)?.unwrap_or_else(|| isil.clone());
    let title = format!("{title_base} · {name}");
    let may_assign = staff.principal.may("progress.assign");
    let mut main = format!(
        "<h1>{}</h1>\n<p class=\"lead\">{} {} ({})</p>\n",
        esc(title_base),
        lang.pick(
            "Voortgang van de cursisten van",
            "Progress of the learners of"
        ),
        esc(&name),
        esc(&isil)
    );
    if let Some(count) = staff.visitor.param("assigned") {
        let ready = staff.visitor.param("ready") != Some("false");
        let _ = writeln!(
            main,
            "<p class=\"notice ok\" role=\"status\">{} {} {}</p>",
            lang.pick("Opgeslagen voor", "Saved for"),
            esc(count),
            if ready {
                lang.pick(
                    "cursist(en): de modules staan klaar.",
                    "learner(s): the modules are ready.",
                )
            } else {
                lang.pick(
                    "cursist(en): de modules staan niet meer klaar.",
                    "learner(s): the modules are no longer ready.",
                )
            }
        );
    }
    main.push_str(&filter_form(lang, &params, &page.courses));
    let _ = writeln!(
        main,
        "<p role=\"status\">{} {}</p>",
        lang.number(page.total as u64),
        lang.pick("cursisten gevonden.", "learners found.")
    );

    // Modules of the chosen course seen in this page, for the assign form.
    let mut modules: BTreeMap<String, String> = BTreeMap::new();
    if !params.course.is_empty() {
        for row in &page.rows {
            for course in row.courses.iter().filter(|c| c.course == params.course) {
                for module in &course.modules {
                    modules.entry(module.module.clone()).or_insert_with(|| {
                        module
                            .name
                            .clone()
                            .unwrap_or_else(|| crate::web::dashboard::iri_tail(&module.module))
                    });
                }
            }
        }
    }
    let assign_form = may_assign && !page.rows.is_empty();
    if assign_form {
        let _ = write!(
            main,
            "<form method=\"post\" action=\"/learners/assign\">\n\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n",
            csrf = esc(&staff.csrf)
        );
        for (key, value) in [
            ("library", &params.library),
            ("status", &params.status),
            ("sort", &params.sort),
            ("dir", &params.dir),
        ] {
            if !value.is_empty() {
                let _ = writeln!(
                    main,
                    "<input type=\"hidden\" name=\"{key}\" value=\"{}\">",
                    esc(value)
                );
            }
        }
    }
    main.push_str(&table(lang, &params, &page, assign_form));
    if assign_form {
        main.push_str(&assign_fieldset(lang, &params, &modules));
        main.push_str("</form>\n");
    }
    main.push_str(&pages(lang, &params, page.total));
    Ok(page_response(
        StatusCode::OK,
        staff.frame(&title, Current::Learners).render(&main),
    ))
}

fn kb_library_picker(state: &WebState, staff: &Staff) -> Response {
    let lang = staff.lang();
    let mut options = String::new();
    for tenant in state.store.tenants().unwrap_or_default() {
        if let TenantKindV1::Library { isil } = tenant.kind {
            let _ = writeln!(
                options,
                "<option value=\"{}\">{} ({})</option>",
                esc(&isil),
                esc(&tenant.name),
                esc(&isil)
            );
        }
    }
    let main = format!(
        "<h1>{title}</h1>\n<p class=\"lead\">{lead}</p>\n\
         <form class=\"picker\" method=\"get\" action=\"/learners\">\n\
         <input type=\"hidden\" name=\"lang\" value=\"{code}\">\n\
         <div class=\"field\"><label for=\"library\">{label}</label>\
         <select id=\"library\" name=\"library\">{options}</select></div>\n\
         <button type=\"submit\">{show}</button>\n</form>\n",
        title = lang.pick("Cursisten", "Learners"),
        lead = lang.pick(
            "Kies de bibliotheek waarvan u de cursisten wilt zien.",
            "Choose the library whose learners you want to see."
        ),
        code = lang.code(),
        label = lang.pick("Bibliotheek", "Library"),
        show = lang.pick("Toon cursisten", "Show learners"),
    );
    page_response(
        StatusCode::OK,
        staff
            .frame(lang.pick("Cursisten", "Learners"), Current::Learners)
            .render(&main),
    )
}

fn filter_form(lang: Lang, params: &Params, courses: &[(String, Option<String>)]) -> String {
    let mut out = format!(
        "<form class=\"picker\" method=\"get\" action=\"/learners\">\n\
         <input type=\"hidden\" name=\"lang\" value=\"{}\">\n",
        lang.code()
    );
    if !params.library.is_empty() {
        let _ = writeln!(
            out,
            "<input type=\"hidden\" name=\"library\" value=\"{}\">",
            esc(&params.library)
        );
    }
    let _ = write!(
        out,
        "<div class=\"field\"><label for=\"course\">{label}</label><select id=\"course\" name=\"course\">\n\
         <option value=\"\">{all}</option>\n",
        label = lang.pick("Cursus", "Course"),
        all = lang.pick("Alle cursussen", "All courses"),
    );
    for (id, name) in courses {
        let _ = writeln!(
            out,
            "<option value=\"{value}\"{selected}>{name}</option>",
            value = esc(id),
            selected = if *id == params.course {
                " selected"
            } else {
                ""
            },
            name = esc(&name
                .clone()
                .unwrap_or_else(|| crate::web::dashboard::iri_tail(id)))
        );
    }
    let _ = write!(
        out,
        "</select></div>\n<div class=\"field\"><label for=\"status\">{label}</label><select id=\"status\" name=\"status\">\n\
         <option value=\"\">{all}</option>\n",
        label = lang.pick("Status", "Status"),
        all = lang.pick("Elke status", "Any status"),
    );
    for status in STATUSES {
        let _ = writeln!(
            out,
            "<option value=\"{value}\"{selected}>{name}</option>",
            value = status.as_str(),
            selected = if status.as_str() == params.status {
                " selected"
            } else {
                ""
            },
            name = lang.status(status)
        );
    }
    let _ = write!(
        out,
        "</select></div>\n<button type=\"submit\">{}</button>\n</form>\n",
        lang.pick("Filter toepassen", "Apply filter")
    );
    out
}

fn sort_header(lang: Lang, params: &Params, key: &str, label: &str) -> String {
    let current = if params.sort.is_empty() {
        "last_activity"
    } else {
        params.sort.as_str()
    };
    let active = current == key;
    let descending = match params.dir.as_str() {
        "asc" => false,
        "desc" => true,
        _ => key != "name",
    };
    let next = if active && descending { "asc" } else { "desc" };
    let (aria, mark) = match (active, descending) {
        (true, true) => (" aria-sort=\"descending\"", " ▼"),
        (true, false) => (" aria-sort=\"ascending\"", " ▲"),
        _ => ("", ""),
    };
    format!(
        "<th scope=\"col\"{aria}><a href=\"{href}\">{label}<span class=\"sort-mark\" aria-hidden=\"true\">{mark}</span></a></th>",
        href = esc(&params.href(lang, &[("sort", key), ("dir", next), ("page", "1")])),
        label = esc(label)
    )
}

fn course_cells(lang: Lang, course: &CourseProgress) -> String {
    let mut modules = String::new();
    if !course.modules.is_empty() {
        let _ = write!(
            modules,
            "<details><summary>{} {} {}</summary><ul>",
            course.modules_done,
            lang.pick("van", "of"),
            course.modules_total
        );
        for module in &course.modules {
            let _ = write!(
                modules,
                "<li>{}: {}{}</li>",
                esc(&module
                    .name
                    .clone()
                    .unwrap_or_else(|| crate::web::dashboard::iri_tail(&module.module))),
                lang.status(module.status),
                if module.ready {
                    lang.pick(" (klaargezet)", " (set ready)")
                } else {
                    ""
                }
            );
        }
        modules.push_str("</ul></details>");
    } else {
        let _ = write!(
            modules,
            "{} {} {}",
            course.modules_done,
            lang.pick("van", "of"),
            course.modules_total
        );
    }
    format!(
        "<td>{course}</td><td class=\"status\">{status}</td><td class=\"progress-text\">{modules}</td>\
         <td class=\"num\">{score}</td><td class=\"num\">{time}</td><td>{last}</td>",
        course = esc(
            &course
                .name
                .clone()
                .unwrap_or_else(|| crate::web::dashboard::iri_tail(&course.course))
        ),
        status = lang.status(course.status),
        score = course
            .score
            .map(|s| format!("{:.0}%", s * 100.0))
            .unwrap_or_else(|| "–".into()),
        time = duration(lang, course.time_spent_seconds),
        last = day(course.last_activity.as_deref()),
    )
}

fn table(lang: Lang, params: &Params, page: &insight::LearnersPage, selectable: bool) -> String {
    if page.rows.is_empty() {
        return format!(
            "<p>{}</p>\n",
            lang.pick(
                "Geen cursisten die bij dit filter passen.",
                "No learners match this filter."
            )
        );
    }
    let mut out = format!(
        "<p class=\"table-caption\" id=\"learners-caption\">{}</p>\n<div class=\"table-wrap\"><table class=\"learners\" aria-labelledby=\"learners-caption\">\n<thead><tr>",
        esc(&format!(
            "{}. {}",
            lang.pick("Cursisten en hun voortgang", "Learners and their progress"),
            lang.pick(
                "Kies een kolomkop om te sorteren.",
                "Choose a column heading to sort."
            )
        ))
    );
    if selectable {
        let _ = write!(
            out,
            "<th scope=\"col\">{}</th>",
            lang.pick("Kies", "Select")
        );
    }
    out.push_str(&sort_header(
        lang,
        params,
        "name",
        lang.pick("Cursist", "Learner"),
    ));
    let _ = write!(
        out,
        "<th scope=\"col\">{}</th>",
        lang.pick("Cursus", "Course")
    );
    out.push_str(&sort_header(
        lang,
        params,
        "status",
        lang.pick("Status", "Status"),
    ));
    out.push_str(&sort_header(
        lang,
        params,
        "progress",
        lang.pick("Modules klaar", "Modules done"),
    ));
    let _ = write!(
        out,
        "<th scope=\"col\" class=\"num\">{}</th><th scope=\"col\" class=\"num\">{}</th>",
        lang.pick("Score", "Score"),
        lang.pick("Tijd", "Time")
    );
    out.push_str(&sort_header(
        lang,
        params,
        "last_activity",
        lang.pick("Laatste activiteit", "Last activity"),
    ));
    out.push_str("</tr></thead>\n<tbody>\n");
    for (index, row) in page.rows.iter().enumerate() {
        let name = row
            .name
            .clone()
            .unwrap_or_else(|| lang.pick("(gewist)", "(erased)").to_owned());
        let courses: Vec<&CourseProgress> = row
            .courses
            .iter()
            .filter(|c| params.course.is_empty() || c.course == params.course)
            .collect();
        let span = courses.len().max(1);
        let rowspan = if span > 1 {
            format!(" rowspan=\"{span}\"")
        } else {
            String::new()
        };
        out.push_str("<tr>");
        if selectable {
            let _ = write!(
                out,
                "<td{rowspan}><input type=\"checkbox\" name=\"learner\" value=\"{id}\" id=\"learner-{index}\">\
                 <label class=\"visually-hidden\" for=\"learner-{index}\">{select} {name}</label></td>",
                id = esc(&row.learner),
                select = lang.pick("Kies", "Select"),
                name = esc(&name)
            );
        }
        let _ = write!(out, "<th scope=\"row\"{rowspan}>{}</th>", esc(&name));
        match courses.first() {
            Some(first) => out.push_str(&course_cells(lang, first)),
            None => out.push_str("<td colspan=\"6\">–</td>"),
        }
        out.push_str("</tr>\n");
        for course in courses.iter().skip(1) {
            let _ = writeln!(out, "<tr>{}</tr>", course_cells(lang, course));
        }
    }
    out.push_str("</tbody></table></div>\n");
    out
}

fn assign_fieldset(lang: Lang, params: &Params, modules: &BTreeMap<String, String>) -> String {
    let mut out = format!(
        "<fieldset class=\"assign\">\n<legend>{}</legend>\n",
        lang.pick(
            "Modules klaarzetten voor de gekozen cursisten",
            "Set modules ready for the selected learners"
        )
    );
    if params.course.is_empty() || modules.is_empty() {
        let _ = writeln!(
            out,
            "<p>{}</p>\n</fieldset>",
            lang.pick(
                "Kies eerst een cursus in het filter hierboven; daarna kunt u hier modules van die cursus klaarzetten.",
                "First choose a course in the filter above; then you can set modules of that course ready here."
            )
        );
        return out;
    }
    let _ = writeln!(
        out,
        "<input type=\"hidden\" name=\"course\" value=\"{}\">",
        esc(&params.course)
    );
    let _ = writeln!(
        out,
        "<fieldset><legend>{}</legend>",
        lang.pick("Modules", "Modules")
    );
    for (index, (id, name)) in modules.iter().enumerate() {
        let _ = writeln!(
            out,
            "<label class=\"choice\" for=\"module-{index}\"><input type=\"checkbox\" name=\"module\" id=\"module-{index}\" value=\"{id}\"> {name}</label>",
            id = esc(id),
            name = esc(name)
        );
    }
    let _ = write!(
        out,
        "</fieldset>\n<fieldset><legend>{what}</legend>\n\
         <label class=\"choice\" for=\"ready-yes\"><input type=\"radio\" name=\"ready\" id=\"ready-yes\" value=\"true\" checked> {yes}</label>\n\
         <label class=\"choice\" for=\"ready-no\"><input type=\"radio\" name=\"ready\" id=\"ready-no\" value=\"false\"> {no}</label>\n\
         </fieldset>\n<button type=\"submit\">{save}</button>\n</fieldset>\n",
        what = lang.pick("Wat", "What"),
        yes = lang.pick("Klaarzetten", "Set ready"),
        no = lang.pick("Niet meer klaarzetten", "Take back"),
        save = lang.pick("Opslaan", "Save"),
    );
    out
}

fn pages(lang: Lang, params: &Params, total: usize) -> String {
    let count = total.div_ceil(PER_PAGE).max(1);
    if count <= 1 {
        return String::new();
    }
    let mut out = format!(
        "<nav class=\"pages\" aria-label=\"{}\">",
        lang.pick("Pagina's", "Pages")
    );
    if params.page > 1 {
        let _ = write!(
            out,
            "<a rel=\"prev\" href=\"{}\">← {}</a>",
            esc(&params.href(lang, &[("page", &(params.page - 1).to_string())])),
            lang.pick("Vorige", "Previous")
        );
    }
    let _ = write!(
        out,
        "<span>{} {} {} {}</span>",
        lang.pick("Pagina", "Page"),
        params.page,
        lang.pick("van", "of"),
        count
    );
    if params.page < count {
        let _ = write!(
            out,
            "<a rel=\"next\" href=\"{}\">{} →</a>",
            esc(&params.href(lang, &[("page", &(params.page + 1).to_string())])),
            lang.pick("Volgende", "Next")
        );
    }
    out.push_str("</nav>\n");
    out
}

/// POST /learners/assign
pub async fn assign(State(state): State<WebState>, staff: Staff, form: Form) -> Response {
    if let Err(refused) = staff.check_csrf(&form) {
        return refused;
    }
    let lang = staff.lang();
    let learners: Vec<String> = form.all("learner").into_iter().map(str::to_owned).collect();
    let modules: Vec<String> = form.all("module").into_iter().map(str::to_owned).collect();
    let course = form.get("course").unwrap_or("").to_owned();
    let ready = form.get("ready") != Some("false");
    if learners.is_empty() || modules.is_empty() || course.is_empty() {
        return staff.error(
            StatusCode::BAD_REQUEST,
            lang.pick("Niets gekozen", "Nothing chosen"),
            lang.pick(
                "Kies minstens één cursist en één module, en probeer het opnieuw.",
                "Choose at least one learner and one module, then try again.",
            ),
        );
    }
    let count = learners.len();
    let params = Params::of(|k| form.get(k).map(str::to_owned));
    let outcome = insight::assign(
        &state.store,
        &staff.principal,
        AssignmentRequest {
            learners,
            course,
            modules,
            ready,
        },
    )
    .await;
    match outcome {
        Ok(()) => see_other(
            &Params { page: 1, ..params }.href(
                lang,
                &[
                    ("assigned", &count.to_string()),
                    ("ready", if ready { "true" } else { "false" }),
                ],
            ),
            None,
        ),
        Err(error) => staff.api_error(error),
    }
}
