//! `/dashboard`: the monthly figures of the staff member's scope (the KB:
//! everything, with a picker for one library or app and a table of every
//! library; a library: its own ISIL), a month picker, key figures, the top
//! 10 courses, a 12-month trend, and downloads (CSV for Dutch Excel, JSON,
//! the Datatheek workbook). All figures come from `lrs_app::closing`, as
//! the JSON API's do: a closed month shows its closed version (with what
//! arrived since) unless `version=live`; `hits=` chooses which hits.

use crate::error::ApiError;
use crate::web::charts::{self, Bar};
use crate::web::html::{esc, page_response, query, Current};
use crate::web::state::WebState;
use crate::web::visitor::Staff;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lrs_app::closing;
use lrs_app::insight::vocabulary::{figures_for, FigureLabel, FIGURES, LAUNCHES};
use lrs_app::insight::{
    self, Breakdown, BreakdownRow, Closing, CourseCount, FigureAccess, FigureScope, FiguresVersion,
    HitsChoice, Month, MonthlyFigures, Served,
};
use lrs_app::lang::Lang;
use lrs_app::sheets::{self, Book, SheetFormat};
use std::collections::HashMap;
use std::fmt::Write;

/// Months in the trend.
const TREND_MONTHS: u32 = 12;
/// Months offered in the month picker, back from the current one.
const PICKER_MONTHS: u32 = 24;

/// What the request asks for, checked against what the staff member may see.
struct Request {
    access: FigureAccess,
    month: Month,
    scope: FigureScope,
    version: FiguresVersion,
    hits: HitsChoice,
}

fn parse_request(state: &WebState, staff: &Staff) -> Result<Request, ApiError> {
    let access = insight::access(&state.store, &staff.principal, "figures.read")?;
    let month = match staff.visitor.param("month") {
        Some(text) => text
            .parse::<Month>()
            .map_err(|message| ApiError::bad_request("month", "month.format", message))?,
        None => Month::current(),
    };
    let visitor = &staff.visitor;
    let asked = if let Some(scope) = visitor.param("scope") {
        Some(match scope.split_once(':') {
            _ if scope == "total" => FigureScope::Total,
            Some(("library", isil)) if !isil.is_empty() => FigureScope::Library(isil.to_owned()),
            Some(("app", appid)) if !appid.is_empty() => FigureScope::App(appid.to_owned()),
            _ => {
                return Err(ApiError::bad_request(
                    "scope",
                    "scope.format",
                    "scope is total, library:ISIL or app:APPID",
                ))
            }
        })
    } else if let Some(isil) = visitor.param("library") {
        Some(FigureScope::Library(isil.to_owned()))
    } else {
        visitor
            .param("app")
            .map(|appid| FigureScope::App(appid.to_owned()))
    };
    let scope = asked.unwrap_or_else(|| access.default_scope());
    if !access.allows(&scope) {
        return Err(ApiError::Forbidden(format!(
            "figures.read for {} (your organisation's own figures only)",
            scope_param(&scope).1
        )));
    }
    let version = visitor
        .param("version")
        .map(str::parse::<FiguresVersion>)
        .transpose()
        .map_err(|message| ApiError::bad_request("version", "figures.version", message))?
        .unwrap_or_default();
    let hits = visitor
        .param("hits")
        .map(str::parse::<HitsChoice>)
        .transpose()
        .map_err(|message| ApiError::bad_request("hits", "figures.hits", message))?
        .unwrap_or_default();
    Ok(Request {
        access,
        month,
        scope,
        version,
        hits,
    })
}

/// The query pair that names a scope in links.
fn scope_param(scope: &FigureScope) -> (&'static str, String) {
    match scope {
        FigureScope::Total => ("scope", "total".to_owned()),
        FigureScope::Library(isil) => ("library", isil.clone()),
        FigureScope::App(appid) => ("app", appid.clone()),
    }
}

fn scope_value(scope: &FigureScope) -> String {
    match scope {
        FigureScope::Total => "total".to_owned(),
        FigureScope::Library(isil) => format!("library:{isil}"),
        FigureScope::App(appid) => format!("app:{appid}"),
    }
}

/// Names of libraries (by ISIL) and apps (by appid) from the tenants.
type Names = insight::TenantNames;

/// "Name (ID)" of a scope, or its Dutch/English description for the total.
fn scope_name(names: &Names, lang: Lang, scope: &FigureScope) -> String {
    {
        let find = |list: &[(String, String)], id: &str| {
            list.iter()
                .find(|(i, _)| i == id)
                .map(|(_, name)| format!("{name} ({id})"))
                .unwrap_or_else(|| id.to_owned())
        };
        match scope {
            FigureScope::Total => lang
                .pick("alle bibliotheken en apps", "all libraries and apps")
                .to_owned(),
            FigureScope::Library(isil) => find(&names.libraries, isil),
            FigureScope::App(appid) => find(&names.apps, appid),
        }
    }
}

/// "Name (ID)" as HTML, the id kept on one line.
fn unbroken_id(named: &str) -> String {
    match named.rfind(" (") {
        Some(at) if named.ends_with(')') => format!(
            "{} <span class=\"nowrap\">{}</span>",
            esc(&named[..at]),
            esc(&named[at + 1..])
        ),
        _ => esc(named),
    }
}

fn months_back(month: Month, count: u32) -> Month {
    (0..count).fold(month, |m, _| m.previous())
}

fn course_label(course: &CourseCount) -> String {
    course
        .name
        .clone()
        .unwrap_or_else(|| iri_tail(&course.course))
}

/// A readable end of an IRI for a course without a name: its last path
/// segments, e.g. `…/cursussen/c004` (the full id is in the table).
pub fn iri_tail(iri: &str) -> String {
    let trimmed = iri.trim_end_matches('/');
    let segments: Vec<&str> = trimmed.rsplitn(3, '/').collect();
    match segments.as_slice() {
        [last, before, _] if !before.is_empty() && !before.ends_with(':') => {
            format!("…/{before}/{last}")
        }
        _ => trimmed.to_owned(),
    }
}

/// GET /dashboard
pub async fn show(State(state): State<WebState>, staff: Staff) -> Response {
    match render(&state, &staff) {
        Ok(response) => response,
        Err(error) => staff.api_error(error),
    }
}

fn render(state: &WebState, staff: &Staff) -> Result<Response, ApiError> {
    let lang = staff.lang();
    let request = parse_request(state, staff)?;
    let Request {
        access,
        month,
        scope,
        version,
        hits,
    } = &request;
    let names = Names::load(&state.store)?;
    let figures = closing::monthly(&state.store, scope, *month, *version)?;
    let trend = closing::trend(
        &state.store,
        scope,
        months_back(*month, TREND_MONTHS - 1),
        *month,
        *version == FiguresVersion::Live,
    )?;
    let by_library = staff.visitor.param("by") != Some("app");
    let breakdown = (*access == FigureAccess::Kb && *scope == FigureScope::Total)
        .then(|| closing::breakdown(&state.store, *month, by_library, *version))
        .transpose()?;
    let shown = figures_for(*hits);

    let scope_name = scope_name(&names, lang, scope);
    let title = format!(
        "{} {}",
        lang.pick("Maandcijfers", "Monthly figures"),
        lang.month(*month)
    );
    let mut main = String::new();
    let _ = write!(
        main,
        "<h1>{title}</h1>\n<p class=\"lead\">{of} {scope}</p>\n",
        title = esc(&title),
        of = lang.pick("Cijfers van", "Figures of"),
        scope = unbroken_id(&scope_name)
    );
    if *access == FigureAccess::Kb && *scope != FigureScope::Total {
        let _ = writeln!(
            main,
            "<p><a href=\"{href}\">← {text}</a></p>",
            href = esc(&link(lang, &[("month", &month.to_string())])),
            text = lang.pick(
                "Terug naar het totaal van alle bibliotheken",
                "Back to the total of all libraries"
            )
        );
    }
    main.push_str(&picker(lang, access, *month, scope, &names, *hits));
    if let Some(closing) = &figures.closing {
        main.push_str(&closing_notice(lang, *month, scope, closing, *hits));
    }
    main.push_str(&key_figures(lang, &figures, &shown));
    main.push_str(&top_courses(lang, &figures));
    main.push_str(&trend_section(lang, &trend, &shown));
    if let Some(breakdown) = &breakdown {
        main.push_str(&breakdown_section(
            lang, staff, breakdown, &names, by_library, &shown,
        ));
    }
    main.push_str(&downloads(lang, *month, scope, *version, *hits));
    Ok(page_response(
        StatusCode::OK,
        staff.frame(&title, Current::Dashboard).render(&main),
    ))
}

fn link(lang: Lang, pairs: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, &str)> = pairs.to_vec();
    all.push(("lang", lang.code()));
    format!("/dashboard{}", query(&all))
}

fn picker(
    lang: Lang,
    access: &FigureAccess,
    month: Month,
    scope: &FigureScope,
    names: &Names,
    hits: HitsChoice,
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<form class=\"picker\" method=\"get\" action=\"/dashboard\">\n\
         <input type=\"hidden\" name=\"lang\" value=\"{code}\">\n\
         <div class=\"field\"><label for=\"month\">{label}</label>\n<select id=\"month\" name=\"month\">\n",
        code = lang.code(),
        label = lang.pick("Maand", "Month"),
    );
    let current = Month::current();
    let mut months: Vec<Month> = (0..PICKER_MONTHS)
        .map(|back| months_back(current, back))
        .collect();
    if !months.contains(&month) {
        months.push(month);
        months.sort_by(|a, b| b.cmp(a));
    }
    for option in months {
        let _ = writeln!(
            out,
            "<option value=\"{option}\"{selected}>{name}</option>",
            selected = if option == month { " selected" } else { "" },
            name = esc(&lang.month(option))
        );
    }
    out.push_str("</select></div>\n");
    if *access == FigureAccess::Kb {
        let _ = write!(
            out,
            "<div class=\"field\"><label for=\"scope\">{label}</label>\n<select id=\"scope\" name=\"scope\">\n\
             <option value=\"total\"{total}>{all}</option>\n",
            label = lang.pick("Bibliotheek of app", "Library or app"),
            total = if *scope == FigureScope::Total { " selected" } else { "" },
            all = lang.pick("Totaal: alle bibliotheken en apps", "Total: all libraries and apps"),
        );
        let mut group =
            |label: &str, list: &[(String, String)], make: fn(String) -> FigureScope| {
                let mut entries: Vec<(String, String)> = list.to_vec();
                let current = scope.clone();
                if let Some(id) = match (&current, make(String::new())) {
                    (FigureScope::Library(id), FigureScope::Library(_)) => Some(id),
                    (FigureScope::App(id), FigureScope::App(_)) => Some(id),
                    _ => None,
                } {
                    if !entries.iter().any(|(i, _)| i == id) {
                        entries.push((id.clone(), id.clone()));
                    }
                }
                if entries.is_empty() {
                    return;
                }
                let _ = writeln!(out, "<optgroup label=\"{}\">", esc(label));
                for (id, name) in entries {
                    let option = make(id.clone());
                    let _ = writeln!(
                        out,
                        "<option value=\"{value}\"{selected}>{name}</option>",
                        value = esc(&scope_value(&option)),
                        selected = if option == current { " selected" } else { "" },
                        name = esc(&if name == id {
                            id
                        } else {
                            format!("{name} ({id})")
                        })
                    );
                }
                out.push_str("</optgroup>\n");
            };
        group(
            lang.pick("Bibliotheken", "Libraries"),
            &names.libraries,
            FigureScope::Library,
        );
        group(lang.pick("Apps", "Apps"), &names.apps, FigureScope::App);
        out.push_str("</select></div>\n");
    }
    let _ = writeln!(
        out,
        "<div class=\"field\"><label for=\"hits\">{label}</label>\n<select id=\"hits\" name=\"hits\">",
        label = lang.pick("Hits tellen", "Hits count"),
    );
    for (choice, text) in [
        (
            HitsChoice::Statements,
            lang.pick("alle leerregistraties", "every statement"),
        ),
        (
            HitsChoice::Launches,
            lang.pick("starts (launched)", "launches"),
        ),
        (HitsChoice::Both, lang.pick("beide", "both")),
    ] {
        let _ = writeln!(
            out,
            "<option value=\"{value}\"{selected}>{text}</option>",
            value = choice.as_str(),
            selected = if choice == hits { " selected" } else { "" },
        );
    }
    out.push_str("</select></div>\n");
    let _ = write!(
        out,
        "<button type=\"submit\">{show}</button>\n</form>\n",
        show = lang.pick("Toon cijfers", "Show figures")
    );
    let (key, value) = scope_param(scope);
    let previous = month.previous();
    let next = month.next();
    let _ = write!(
        out,
        "<nav class=\"months\" aria-label=\"{label}\">\n<a rel=\"prev\" href=\"{prev_href}\">← {prev}</a>\n",
        label = lang.pick("Vorige en volgende maand", "Previous and next month"),
        prev_href = esc(&link(lang, &[("month", &previous.to_string()), (key, &value)])),
        prev = esc(&lang.month(previous)),
    );
    if next <= current {
        let _ = writeln!(
            out,
            "<a rel=\"next\" href=\"{href}\">{name} →</a>",
            href = esc(&link(lang, &[("month", &next.to_string()), (key, &value)])),
            name = esc(&lang.month(next)),
        );
    }
    out.push_str("</nav>\n");
    out
}

/// What the page says about a closed month: which version it shows, and
/// what arrived after closing and changed.
fn closing_notice(
    lang: Lang,
    month: Month,
    scope: &FigureScope,
    closing: &Closing,
    hits: HitsChoice,
) -> String {
    let (key, value) = scope_param(scope);
    let month_text = month.to_string();
    let mut out =
        String::from("<section class=\"notice\" aria-labelledby=\"closing\">\n<h2 id=\"closing\">");
    let shown = match closing.served {
        Served::Closed => lang.pick("Afgesloten cijfers", "Closed figures"),
        Served::Live => lang.pick("Actuele cijfers", "Live figures"),
    };
    out.push_str(&esc(shown));
    out.push_str("</h2>\n<p>");
    let _ = write!(
        out,
        "{}",
        esc(&match closing.served {
            Served::Closed => format!(
                "{} {} {} {} ({} {}, {} {}).",
                lang.pick("Deze maand is afgesloten op", "This month was closed on"),
                closing.closed_at,
                lang.pick("als versie", "as version"),
                closing.version,
                lang.pick("door", "by"),
                closing.closed_by,
                lang.pick("laatste versie", "latest version"),
                closing.latest_version,
            ),
            Served::Live => format!(
                "{} {} {} {}.",
                lang.pick(
                    "Dit zijn de actuele cijfers. De maand is afgesloten als versie",
                    "These are the live figures. The month was closed as version"
                ),
                closing.version,
                lang.pick("op", "on"),
                closing.closed_at,
            ),
        })
    );
    out.push_str("</p>\n<p>");
    if closing.late_statements == 0 && closing.changes.is_empty() {
        out.push_str(&esc(lang.pick(
            "Sinds het afsluiten is er niets binnengekomen dat de cijfers verandert.",
            "Nothing that changes the figures has arrived since closing.",
        )));
    } else {
        let label = |key: &str| {
            FIGURES
                .iter()
                .chain(std::iter::once(&LAUNCHES))
                .find(|f| f.key == key)
                .map_or(key.to_owned(), |f| f.label(lang).to_owned())
        };
        let changes: Vec<String> = closing
            .changes
            .iter()
            .map(|(key, delta)| format!("{} {delta:+}", label(key)))
            .collect();
        let _ = write!(
            out,
            "{}",
            esc(&format!(
                "{} {} {} {}",
                lang.pick("Sinds het afsluiten kwamen", "Since closing,"),
                lang.number(closing.late_statements),
                lang.pick(
                    "leerregistraties binnen die deze maand veranderen. Het verschil met de afgesloten cijfers:",
                    "statements arrived that change this month. The difference from the closed figures:"
                ),
                if changes.is_empty() {
                    lang.pick("geen", "none").to_owned()
                } else {
                    changes.join(", ")
                }
            ))
        );
    }
    let other = match closing.served {
        Served::Closed => (
            "live",
            lang.pick("Toon de actuele cijfers", "Show the live figures"),
        ),
        Served::Live => (
            "closed",
            lang.pick("Toon de afgesloten cijfers", "Show the closed figures"),
        ),
    };
    let _ = writeln!(
        out,
        "</p>\n<p><a href=\"{href}\">{text}</a></p>\n</section>",
        href = esc(&link(
            lang,
            &[
                ("month", &month_text),
                (key, &value),
                ("version", other.0),
                ("hits", hits.as_str()),
            ]
        )),
        text = esc(other.1),
    );
    out
}

fn key_figures(lang: Lang, figures: &MonthlyFigures, shown: &[&FigureLabel]) -> String {
    let mut out = format!(
        "<section aria-labelledby=\"key-figures\">\n<h2 id=\"key-figures\">{}</h2>\n<ul class=\"cards\">\n",
        lang.pick("Kerncijfers", "Key figures")
    );
    for figure in shown {
        let _ = writeln!(
            out,
            "<li class=\"card\" data-figure=\"{key}\"><h3>{label}</h3><p class=\"value\">{value}</p><p>{help}</p></li>",
            key = figure.key,
            label = figure.label(lang),
            value = lang.number(figure.value(&figures.figures)),
            help = esc(figure.help(lang)),
        );
    }
    out.push_str("</ul>\n</section>\n");
    out
}

fn top_courses(lang: Lang, figures: &MonthlyFigures) -> String {
    let mut out = format!(
        "<section aria-labelledby=\"top-courses\">\n<h2 id=\"top-courses\">{}</h2>\n<div class=\"charts\">\n",
        lang.pick("Populairste cursussen", "Most popular courses")
    );
    let month = lang.month(figures.month);
    for (id, caption, list) in [
        (
            "top-started",
            lang.pick("Top 10 gestarte cursussen", "Top 10 started courses"),
            &figures.top_started,
        ),
        (
            "top-completed",
            lang.pick("Top 10 afgeronde cursussen", "Top 10 completed courses"),
            &figures.top_completed,
        ),
    ] {
        let bars: Vec<Bar> = list
            .iter()
            .map(|c| Bar {
                label: course_label(c),
                value: c.count,
            })
            .collect();
        out.push_str(&charts::horizontal(
            lang,
            id,
            &format!("{caption}, {month}"),
            &bars,
            (
                lang.pick("Cursus", "Course"),
                lang.pick("Cursisten", "Learners"),
            ),
        ));
    }
    out.push_str("</div>\n</section>\n");
    out
}

fn trend_section(lang: Lang, trend: &[MonthlyFigures], shown: &[&FigureLabel]) -> String {
    let mut out = format!(
        "<section aria-labelledby=\"trend\">\n<h2 id=\"trend\">{}</h2>\n<div class=\"charts trend\">\n",
        lang.pick("Verloop over de laatste 12 maanden", "The last 12 months")
    );
    for key in ["active_users", "courses_started", "courses_completed"] {
        let figure = FIGURES.iter().find(|f| f.key == key).expect("known figure");
        let bars: Vec<Bar> = trend
            .iter()
            .map(|m| Bar {
                label: lang.month_short(m.month),
                value: figure.value(&m.figures),
            })
            .collect();
        out.push_str(&charts::columns(
            lang,
            &format!("trend-{key}"),
            figure.label(lang),
            &bars,
        ));
    }
    out.push_str("</div>\n");
    let mut head = vec![lang.pick("Maand", "Month")];
    head.extend(shown.iter().map(|f| f.label(lang)));
    let rows = trend
        .iter()
        .map(|m| {
            let mut row = vec![lang.month(m.month)];
            row.extend(shown.iter().map(|f| lang.number(f.value(&m.figures))));
            row
        })
        .collect();
    out.push_str(&table_all_numeric(
        lang,
        lang.pick("Alle cijfers per maand", "All figures per month"),
        &head,
        rows,
    ));
    out.push_str("</section>\n");
    out
}

/// A table whose columns after the first are numbers, under a summary.
fn table_all_numeric(lang: Lang, caption: &str, head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = format!(
        "<details><summary>{show}</summary>\n<div class=\"table-wrap\"><table>\n<caption class=\"visually-hidden\">{caption}</caption>\n<thead><tr>",
        show = esc(&format!("{}: {}", lang.pick("Toon als tabel", "Show as table"), caption)),
        caption = esc(caption)
    );
    for (i, cell) in head.iter().enumerate() {
        let class = if i > 0 { " class=\"num\"" } else { "" };
        let _ = write!(out, "<th scope=\"col\"{class}>{}</th>", esc(cell));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "<th scope=\"row\">{}</th>", esc(cell));
            } else {
                let _ = write!(out, "<td class=\"num\">{}</td>", esc(cell));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div></details>\n");
    out
}

/// The KB's table of every library (or app) this month, sortable by links.
fn breakdown_section(
    lang: Lang,
    staff: &Staff,
    breakdown: &Breakdown,
    names: &Names,
    by_library: bool,
    shown: &[&FigureLabel],
) -> String {
    let month = breakdown.month.to_string();
    let sort_key = staff
        .visitor
        .param("sort")
        .filter(|key| *key == "name" || shown.iter().any(|f| f.key == *key))
        .unwrap_or(shown.last().map_or("hits", |f| f.key));
    let ascending = staff.visitor.param("dir") == Some("asc");
    let by = if by_library { "library" } else { "app" };
    let list = if by_library {
        &names.libraries
    } else {
        &names.apps
    };
    let name_of = |row: &BreakdownRow| {
        row.name
            .clone()
            .or_else(|| {
                list.iter()
                    .find(|(id, _)| *id == row.id)
                    .map(|(_, n)| n.clone())
            })
            .unwrap_or_default()
    };
    let mut rows: Vec<&BreakdownRow> = breakdown.rows.iter().collect();
    let names_lower: HashMap<&str, String> = rows
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                format!("{} {}", name_of(r), r.id).to_lowercase(),
            )
        })
        .collect();
    rows.sort_by(|a, b| {
        let order = if sort_key == "name" {
            names_lower[a.id.as_str()].cmp(&names_lower[b.id.as_str()])
        } else {
            let figure = shown.iter().find(|f| f.key == sort_key).expect("checked");
            figure
                .value(&a.figures)
                .cmp(&figure.value(&b.figures))
                .then_with(|| names_lower[b.id.as_str()].cmp(&names_lower[a.id.as_str()]))
        };
        if ascending {
            order
        } else {
            order.reverse()
        }
    });
    let heading = if by_library {
        lang.pick("Per bibliotheek", "Per library")
    } else {
        lang.pick("Per app", "Per app")
    };
    let mut out = format!(
        "<section aria-labelledby=\"breakdown\">\n<h2 id=\"breakdown\">{heading}</h2>\n<p>"
    );
    let other = if by_library {
        ("app", lang.pick("Toon per app", "Show per app"))
    } else {
        (
            "library",
            lang.pick("Toon per bibliotheek", "Show per library"),
        )
    };
    let _ = writeln!(
        out,
        "<a href=\"{href}\">{text}</a></p>",
        href = esc(&link(lang, &[("month", &month), ("by", other.0)])),
        text = other.1
    );
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "<p>{}</p>\n</section>",
            lang.pick("Geen activiteit in deze maand.", "No activity this month.")
        );
        return out;
    }
    let _ = write!(
        out,
        "<p class=\"table-caption\" id=\"breakdown-caption\">{caption}</p>\n<div class=\"table-wrap\"><table class=\"breakdown\" aria-labelledby=\"breakdown-caption\">\n<thead><tr>",
        caption = esc(&format!(
            "{heading}, {}. {}",
            lang.month(breakdown.month),
            lang.pick(
                "Kies een kolomkop om te sorteren.",
                "Choose a column heading to sort."
            )
        )),
    );
    let mut columns: Vec<(&str, &str)> = vec![(
        "name",
        if by_library {
            lang.pick("Bibliotheek", "Library")
        } else {
            lang.pick("App", "App")
        },
    )];
    columns.extend(shown.iter().map(|f| (f.key, f.label(lang))));
    for (key, label) in columns {
        let active = key == sort_key;
        let next_dir = if active && !ascending { "asc" } else { "desc" };
        let href = link(
            lang,
            &[
                ("month", &month),
                ("by", by),
                ("sort", key),
                ("dir", next_dir),
            ],
        );
        let (aria, mark) = match (active, ascending) {
            (true, true) => (" aria-sort=\"ascending\"", " ▲"),
            (true, false) => (" aria-sort=\"descending\"", " ▼"),
            _ => ("", ""),
        };
        let class = if key == "name" { "" } else { " class=\"num\"" };
        let _ = write!(
            out,
            "<th scope=\"col\"{class}{aria}><a href=\"{href}\">{label}<span class=\"sort-mark\" aria-hidden=\"true\">{mark}</span></a></th>",
            href = esc(&href),
            label = esc(label),
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        let name = name_of(row);
        let label = if name.is_empty() {
            format!("<span class=\"nowrap\">{}</span>", esc(&row.id))
        } else {
            format!(
                "{} <span class=\"nowrap\">({})</span>",
                esc(&name),
                esc(&row.id)
            )
        };
        let href = link(lang, &[("month", &month), (by, &row.id)]);
        let _ = write!(
            out,
            "<tr><th scope=\"row\"><a href=\"{href}\">{label}</a></th>",
            href = esc(&href),
        );
        for figure in shown {
            let _ = write!(
                out,
                "<td class=\"num\">{}</td>",
                lang.number(figure.value(&row.figures))
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n</section>\n");
    out
}

fn downloads(
    lang: Lang,
    month: Month,
    scope: &FigureScope,
    version: FiguresVersion,
    hits: HitsChoice,
) -> String {
    let (key, value) = scope_param(scope);
    let month = month.to_string();
    let version = match version {
        FiguresVersion::Delivered => "closed".to_owned(),
        FiguresVersion::Live => "live".to_owned(),
        FiguresVersion::Closed(n) => n.to_string(),
    };
    let href = |format: &str| {
        format!(
            "/dashboard/download{}",
            query(&[
                ("month", &month),
                (key, &value),
                ("format", format),
                ("version", &version),
                ("hits", hits.as_str()),
                ("lang", lang.code())
            ])
        )
    };
    format!(
        "<section aria-labelledby=\"download\">\n<h2 id=\"download\">{title}</h2>\n<p>{text}</p>\n\
         <ul class=\"downloads\">\n<li><a class=\"button secondary\" href=\"{csv}\" download>{csv_label}</a></li>\n\
         <li><a class=\"button secondary\" href=\"{json}\" download>{json_label}</a></li>\n\
         <li><a class=\"button secondary\" href=\"{csv_ods}\" download>{csv_ods_label}</a></li>\n\
         <li><a class=\"button secondary\" href=\"{xlsx}\" download>{xlsx_label}</a></li>\n\
         <li><a class=\"button secondary\" href=\"{ods}\" download>{ods_label}</a></li>\n</ul>\n</section>\n",
        title = lang.pick("Downloaden", "Download"),
        text = lang.pick(
            "De cijfers van deze maand, voor Excel (CSV met puntkomma's), als JSON of als \
             OpenDocument-rekenblad (ODS); de Datatheek-werkmap (Excel of OpenDocument) heeft ze \
             per bibliotheek en per app, met de definities.",
            "This month's figures, for Excel (CSV with semicolons), as JSON or as an \
             OpenDocument spreadsheet (ODS); the Datatheek workbook (Excel or OpenDocument) has \
             them per library and per app, with the definitions."
        ),
        csv = esc(&href("csv")),
        json = esc(&href("json")),
        xlsx = esc(&href("xlsx")),
        ods = esc(&href("ods")),
        csv_ods = esc(&href("csv-ods")),
        ods_label = lang.pick(
            "Datatheek-werkmap (OpenDocument)",
            "Datatheek workbook (OpenDocument)"
        ),
        csv_ods_label = lang.pick("Download ODS (OpenDocument)", "Download ODS (OpenDocument)"),
        xlsx_label = lang.pick("Datatheek-werkmap (Excel)", "Datatheek workbook (Excel)"),
        csv_label = lang.pick("Download CSV (Excel)", "Download CSV (Excel)"),
        json_label = lang.pick("Download JSON", "Download JSON"),
    )
}

/// GET /dashboard/download?month=&(scope|library|app)=&format=csv|json|csv-ods|xlsx|ods:
/// this page's figures as CSV, JSON or an OpenDocument spreadsheet of the
/// CSV's cells (`csv-ods`), or the Datatheek workbook as xlsx or ods.
pub async fn download(State(state): State<WebState>, staff: Staff) -> Response {
    match download_inner(&state, &staff) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn download_inner(state: &WebState, staff: &Staff) -> Result<Response, ApiError> {
    let lang = staff.lang();
    let request = parse_request(state, staff)?;
    let figures = closing::monthly(&state.store, &request.scope, request.month, request.version)?;
    let breakdown = (request.access == FigureAccess::Kb && request.scope == FigureScope::Total)
        .then(|| closing::breakdown(&state.store, request.month, true, request.version))
        .transpose()?;
    let shown = figures_for(request.hits);
    let names = Names::load(&state.store)?;
    let scope_id = match &request.scope {
        FigureScope::Total => "totaal".to_owned(),
        FigureScope::Library(isil) => isil.clone(),
        FigureScope::App(appid) => appid.clone(),
    };
    let safe_id: String = scope_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = format!(
        "{}-{}-{safe_id}",
        lang.pick("maandcijfers", "monthly-figures"),
        request.month
    );
    let (body, content_type, extension) = match staff.visitor.param("format").unwrap_or("csv") {
        "json" => {
            let body = serde_json::json!({
                "figures": figures,
                "breakdown": breakdown,
            });
            (
                serde_json::to_vec_pretty(&body).map_err(ApiError::internal)?,
                "application/json",
                "json",
            )
        }
        "csv" => (
            csv(&table(lang, &figures, breakdown.as_ref(), &names, &shown)).into_bytes(),
            "text/csv; charset=utf-8",
            "csv",
        ),
        "csv-ods" => {
            let rows = table(lang, &figures, breakdown.as_ref(), &names, &shown);
            let book = table_book(lang.pick("Maandcijfers", "Monthly figures"), &rows);
            (
                sheets::write(&book, SheetFormat::Ods)?,
                SheetFormat::Ods.content_type(),
                "ods",
            )
        }
        sheet @ ("xlsx" | "ods") => {
            let format = if sheet == "ods" {
                SheetFormat::Ods
            } else {
                SheetFormat::Xlsx
            };
            // The Datatheek workbook covers what the reader may see, whatever
            // scope the page shows (lrs_app::datatheek).
            let data = lrs_app::datatheek::gather(
                &state.store,
                &request.access,
                request.month,
                request.version,
                request.hits,
            )?;
            let name = lrs_app::datatheek::file_name(&request.access, request.month, format);
            return Ok(crate::request::body::download(
                lrs_app::datatheek::workbook(&data, format)?,
                format.content_type(),
                &name,
            ));
        }
        other => {
            return Err(ApiError::bad_request(
                "format",
                "download.format",
                format!("'{other}' is not a download format: csv, json, csv-ods, xlsx or ods"),
            ))
        }
    };
    Ok(crate::request::body::download(
        body,
        content_type,
        &format!("{stem}.{extension}"),
    ))
}

/// One CSV field: quoted when needed, and a leading `= + - @` (a formula
/// to Excel: course names come from statements) defused with a quote.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// One cell of the figures' table: text, or a whole number (a number in
/// a spreadsheet, digits in the CSV).
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Text(String),
    Number(u64),
}

impl From<&str> for Field {
    fn from(text: &str) -> Self {
        Field::Text(text.to_owned())
    }
}

impl From<String> for Field {
    fn from(text: String) -> Self {
        Field::Text(text)
    }
}

/// The figures as CSV for Dutch Excel: UTF-8 with a byte order mark,
/// semicolons, CRLF; sections separated by an empty line.
fn csv(rows: &[Vec<Field>]) -> String {
    let mut out = String::from("\u{feff}");
    for row in rows {
        let fields: Vec<String> = row
            .iter()
            .map(|f| match f {
                Field::Text(text) => field(text),
                Field::Number(n) => n.to_string(),
            })
            .collect();
        out.push_str(&fields.join(";"));
        out.push_str("\r\n");
    }
    out
}

/// The same rows as one sheet of a spreadsheet: every row and cell where
/// the CSV has it (an empty line is an empty row), numbers as numbers. No
/// formula defusing is needed: a text cell of a spreadsheet file is never
/// a formula.
fn table_book(name: &str, rows: &[Vec<Field>]) -> Book {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default();
    let mut book = Book::new(now);
    let sheet = book.add_sheet(name);
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            match cell {
                Field::Text(text) => sheet.write(r as u32, c as u16, text.as_str()),
                Field::Number(n) => sheet.write(r as u32, c as u16, *n as f64),
            }
        }
    }
    sheet.set_column_width(0, 24.0);
    sheet.set_column_width(1, 32.0);
    book
}

/// The rows of the figures' download (CSV or ODS): the month's figures,
/// the top 10 lists and, for the KB's total, the libraries; an empty row
/// between sections.
fn table(
    lang: Lang,
    figures: &MonthlyFigures,
    breakdown: Option<&Breakdown>,
    names: &Names,
    shown: &[&FigureLabel],
) -> Vec<Vec<Field>> {
    let mut out: Vec<Vec<Field>> = Vec::new();
    let mut head: Vec<Field> = vec![
        lang.pick("Maand", "Month").into(),
        lang.pick("Bereik", "Scope").into(),
    ];
    head.extend(shown.iter().map(|f| f.label(lang).into()));
    out.push(head);
    let mut row: Vec<Field> = vec![
        figures.month.to_string().into(),
        scope_name(names, lang, &figures.scope).into(),
    ];
    row.extend(
        shown
            .iter()
            .map(|f| Field::Number(f.value(&figures.figures))),
    );
    out.push(row);
    for (title, list) in [
        (
            lang.pick("Top 10 gestarte cursussen", "Top 10 started courses"),
            &figures.top_started,
        ),
        (
            lang.pick("Top 10 afgeronde cursussen", "Top 10 completed courses"),
            &figures.top_completed,
        ),
    ] {
        out.push(Vec::new());
        out.push(vec![title.into()]);
        out.push(vec![
            lang.pick("Plaats", "Rank").into(),
            lang.pick("Cursus", "Course").into(),
            lang.pick("Cursus-id", "Course id").into(),
            lang.pick("Cursisten", "Learners").into(),
        ]);
        for (i, course) in list.iter().enumerate() {
            out.push(vec![
                Field::Number(i as u64 + 1),
                course.name.clone().unwrap_or_default().into(),
                course.course.clone().into(),
                Field::Number(course.count),
            ]);
        }
    }
    if let Some(breakdown) = breakdown {
        out.push(Vec::new());
        out.push(vec![lang.pick("Per bibliotheek", "Per library").into()]);
        let mut head: Vec<Field> = vec!["ISIL".into(), lang.pick("Bibliotheek", "Library").into()];
        head.extend(shown.iter().map(|f| f.label(lang).into()));
        out.push(head);
        for row in &breakdown.rows {
            let name = row.name.clone().or_else(|| {
                names
                    .libraries
                    .iter()
                    .find(|(id, _)| *id == row.id)
                    .map(|(_, n)| n.clone())
            });
            let mut fields: Vec<Field> =
                vec![row.id.clone().into(), name.unwrap_or_default().into()];
            fields.extend(shown.iter().map(|f| Field::Number(f.value(&row.figures))));
            out.push(fields);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("gewoon"), "gewoon");
        assert_eq!(field("a;b"), "\"a;b\"");
        assert_eq!(field("zeg \"hoi\""), "\"zeg \"\"hoi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "'-1");
    }
}
