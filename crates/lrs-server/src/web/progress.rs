//! `/my-progress`: a signed-in learner's own courses and modules with their
//! status, score, time spent and last activity (req. 2.12), Dutch first.
//! The learner is the xAPI account their OpenID login maps to
//! (`oidc_client.rs`, docs/learner-page.md); the numbers come from
//! `lrs_app::insight::own_progress`, the same as `GET /api/progress/me`.
//! Nothing of another learner is read: no name, no course of theirs.

use crate::error::ApiError;
use crate::web::html::{esc, page_response};
use crate::web::learners::{day, duration};
use crate::web::state::WebState;
use crate::web::visitor::Learner;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use lrs_app::insight::{self, CourseProgress, LearnerProgress, ModuleProgress};
use lrs_app::lang::Lang;
use std::fmt::Write;

/// GET /my-progress
pub async fn show(State(state): State<WebState>, who: Learner) -> Response {
    let progress = match &who.account {
        Some(account) => {
            let store = state.store.clone();
            let account = account.clone();
            match tokio::task::spawn_blocking(move || insight::own_progress(&store, &account))
                .await
                .map_err(ApiError::internal)
                .and_then(|read| read.map_err(ApiError::from))
            {
                Ok(progress) => Some(progress),
                Err(error) => {
                    tracing::warn!(%error, "reading a learner's own progress");
                    let lang = who.lang();
                    return who.error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        lang.pick("Er ging iets mis", "Something went wrong"),
                        lang.pick(
                            "Er ging iets mis op de server. Probeer het later opnieuw.",
                            "Something went wrong on the server. Please try again later.",
                        ),
                    );
                }
            }
        }
        None => None,
    };
    page_response(StatusCode::OK, render(&who, progress.as_ref()))
}

fn name_of(id: &str, name: &Option<String>) -> String {
    name.clone()
        .unwrap_or_else(|| crate::web::dashboard::iri_tail(id))
}

fn score(lang: Lang, score: Option<f64>) -> (String, String) {
    match score {
        Some(s) => (format!("{:.0}%", s * 100.0), format!("{s}")),
        None => (
            lang.pick("geen score", "no score").to_owned(),
            String::new(),
        ),
    }
}

fn render(who: &Learner, progress: Option<&LearnerProgress>) -> String {
    let lang = who.lang();
    let title = lang.pick("Mijn voortgang", "My progress");
    let mut main = format!("<h1>{}</h1>\n", esc(title));
    let Some(progress) = progress else {
        let _ = writeln!(
            main,
            "<p class=\"notice\">{}</p>",
            esc(lang.pick(
                "Bij deze inlog horen geen eigen leerregistraties: u bent ingelogd met een account voor medewerkers. Cursisten loggen in met hun KB-account.",
                "This login has no learning records of its own: you are logged in with a staff account. Learners log in with their KB account."
            ))
        );
        return who.frame(title).render(&main);
    };
    let _ = writeln!(
        main,
        "<p class=\"lead\">{}</p>",
        esc(lang.pick(
            "Uw cursussen en modules, zoals de cursussen ze hebben doorgegeven. Alleen u ziet deze pagina.",
            "Your courses and modules, as the courses reported them. Only you see this page."
        ))
    );
    if progress.courses.is_empty() {
        let _ = writeln!(
            main,
            "<p>{}</p>",
            esc(lang.pick(
                "Er zijn nog geen leerregistraties van u. Zodra u een cursus start, ziet u hier uw voortgang.",
                "There are no learning records of yours yet. Once you start a course, your progress shows here."
            ))
        );
        return who.frame(title).render(&main);
    }
    let _ = writeln!(
        main,
        "<p>{} {}{}</p>",
        lang.number(progress.courses.len() as u64),
        if progress.courses.len() == 1 {
            lang.pick("cursus", "course")
        } else {
            lang.pick("cursussen", "courses")
        },
        match &progress.last_activity {
            Some(last) => format!(
                "; {} {}",
                lang.pick("laatste activiteit", "last activity"),
                esc(&day(Some(last)))
            ),
            None => String::new(),
        }
    );
    for (index, course) in progress.courses.iter().enumerate() {
        main.push_str(&course_section(lang, index, course));
    }
    who.frame(title).render(&main)
}

fn course_section(lang: Lang, index: usize, course: &CourseProgress) -> String {
    let name = name_of(&course.course, &course.name);
    let (score_text, score_value) = score(lang, course.score);
    let mut out = format!(
        "<section class=\"course\" aria-labelledby=\"course-{index}\" data-course=\"{id}\">\n\
         <h2 id=\"course-{index}\">{name}</h2>\n<dl class=\"facts\">\n",
        id = esc(&course.course),
        name = esc(&name),
    );
    let mut fact = |label: &str, value: &str, data: &str| {
        let _ = writeln!(
            out,
            "<div><dt>{}</dt><dd{data}>{}</dd></div>",
            esc(label),
            esc(value)
        );
    };
    fact(
        lang.pick("Status", "Status"),
        lang.status(course.status),
        &format!(" data-status=\"{}\"", course.status.as_str()),
    );
    fact(
        lang.pick("Modules klaar", "Modules done"),
        &format!(
            "{} {} {}",
            course.modules_done,
            lang.pick("van", "of"),
            course.modules_total
        ),
        &format!(
            " data-done=\"{}\" data-total=\"{}\"",
            course.modules_done, course.modules_total
        ),
    );
    fact(
        lang.pick("Score", "Score"),
        &score_text,
        &format!(" data-score=\"{score_value}\""),
    );
    fact(
        lang.pick("Bestede tijd", "Time spent"),
        &duration(lang, course.time_spent_seconds),
        &format!(" data-seconds=\"{}\"", course.time_spent_seconds),
    );
    fact(
        lang.pick("Laatste activiteit", "Last activity"),
        &day(course.last_activity.as_deref()),
        "",
    );
    out.push_str("</dl>\n");
    if !course.modules.is_empty() {
        // The table scrolls sideways inside its frame on a narrow screen:
        // the frame takes the focus, so a keyboard can scroll it (2.1.1).
        let _ = write!(
            out,
            "<div class=\"table-wrap\" role=\"region\" tabindex=\"0\" aria-labelledby=\"modules-{index}\">\
             <table class=\"modules\">\n<caption id=\"modules-{index}\">{caption}</caption>\n<thead><tr>\
             <th scope=\"col\">{module}</th><th scope=\"col\">{status}</th><th scope=\"col\" class=\"num\">{score}</th>\
             <th scope=\"col\" class=\"num\">{time}</th><th scope=\"col\">{last}</th></tr></thead>\n<tbody>\n",
            caption = esc(&format!("{} {}", lang.pick("Modules van", "Modules of"), name)),
            module = lang.pick("Module", "Module"),
            status = lang.pick("Status", "Status"),
            score = lang.pick("Score", "Score"),
            time = lang.pick("Tijd", "Time"),
            last = lang.pick("Laatste activiteit", "Last activity"),
        );
        for module in &course.modules {
            out.push_str(&module_row(lang, module));
        }
        out.push_str("</tbody></table></div>\n");
    }
    out.push_str("</section>\n");
    out
}

fn module_row(lang: Lang, module: &ModuleProgress) -> String {
    let (score_text, score_value) = score(lang, module.score);
    format!(
        "<tr data-module=\"{id}\" data-status=\"{status_key}\" data-score=\"{score_value}\" data-seconds=\"{seconds}\">\
         <th scope=\"row\">{name}</th><td>{status}{ready}</td><td class=\"num\">{score_text}</td>\
         <td class=\"num\">{time}</td><td>{last}</td></tr>\n",
        id = esc(&module.module),
        status_key = module.status.as_str(),
        seconds = module.time_spent_seconds,
        name = esc(&name_of(&module.module, &module.name)),
        status = lang.status(module.status),
        ready = if module.ready {
            lang.pick(
                " (klaargezet door uw bibliotheek)",
                " (set ready by your library)",
            )
        } else {
            ""
        },
        score_text = esc(&score_text),
        time = duration(lang, module.time_spent_seconds),
        last = day(module.last_activity.as_deref()),
    )
}
