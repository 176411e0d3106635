//! The privacy officer's page (`privacy.reports`): the anonymisation
//! reports of a month (every erasure and every retention run, requirement
//! 6.6), Dutch first, with the log position and entry hash each rests on,
//! and the month as CSV, JSON or an OpenDocument spreadsheet (ODS, the
//! CSV's cells). Reads `lrs_app::privacy::report`, like `lrs privacy
//! report` and `GET /admin/privacy/reports`. No personal data is on it:
//! the reports hold none.

use crate::error::ApiError;
use crate::web::html::{esc, page_response, query, Current};
use crate::web::state::WebState;
use crate::web::visitor::Staff;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use lrs_app::insight::Month;
use lrs_app::lang::Lang;
use lrs_app::privacy::report;
use serde_json::Value;
use std::fmt::Write;

/// The permission the page needs.
const PERMISSION: &str = "privacy.reports";

fn month_of(staff: &Staff) -> Result<Month, ApiError> {
    match staff.visitor.param("month") {
        Some(text) => text
            .parse::<Month>()
            .map_err(|e| ApiError::bad_request("month", "privacy.month", format!("{text:?}: {e}"))),
        None => Ok(Month::current()),
    }
}

/// The reports of `month` as their JSON views, oldest first.
fn reports_of(state: &WebState, month: Month) -> Result<Vec<Value>, ApiError> {
    let mut reports = Vec::new();
    for id in report::ids_of_month(&state.store, Some(&month.to_string()))? {
        if let Some((_, value)) = report::load(&state.store, &id)? {
            reports.push(value);
        }
    }
    Ok(reports)
}

/// GET /privacy
pub async fn show(State(state): State<WebState>, staff: Staff) -> Response {
    if !staff.principal.may(PERMISSION) {
        return staff.api_error(ApiError::Forbidden(format!("permission {PERMISSION}")));
    }
    let rendered = (|| -> Result<Response, ApiError> {
        let month = month_of(&staff)?;
        let reports = reports_of(&state, month)?;
        Ok(render(&staff, month, &reports))
    })();
    rendered.unwrap_or_else(|error| staff.api_error(error))
}

/// GET /privacy/download?month=&format=csv|json|ods
pub async fn download(State(state): State<WebState>, staff: Staff) -> Response {
    if !staff.principal.may(PERMISSION) {
        return staff.api_error(ApiError::Forbidden(format!("permission {PERMISSION}")));
    }
    let answer = (|| -> Result<Response, ApiError> {
        let month = month_of(&staff)?;
        let reports = reports_of(&state, month)?;
        let stem = format!("anonimiseringsrapporten-{month}");
        match staff.visitor.param("format").unwrap_or("csv") {
            "csv" => Ok(crate::request::body::download(
                report::csv(&reports).into_bytes(),
                "text/csv; charset=utf-8",
                &format!("{stem}.csv"),
            )),
            "ods" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as i64)
                    .unwrap_or_default();
                let format = lrs_app::sheets::SheetFormat::Ods;
                Ok(crate::request::body::download(
                    lrs_app::sheets::write(&report::book(&reports, now), format)?,
                    format.content_type(),
                    &format!("{stem}.ods"),
                ))
            }
            "json" => Ok(crate::request::body::download(
                serde_json::to_vec_pretty(&serde_json::json!({ "reports": reports }))
                    .map_err(ApiError::internal)?,
                "application/json",
                &format!("{stem}.json"),
            )),
            other => Err(ApiError::bad_request(
                "format",
                "download.format",
                format!("'{other}' is not a download format: csv, json or ods"),
            )),
        }
    })();
    answer.unwrap_or_else(|error| staff.api_error(error))
}

fn link(lang: Lang, month: Month) -> String {
    format!(
        "/privacy{}",
        query(&[("month", &month.to_string()), ("lang", lang.code())])
    )
}

/// What caused a report, in words.
fn cause(lang: Lang, report: &Value) -> String {
    let trigger = &report["trigger"];
    match trigger["kind"].as_str() {
        Some("erasure") => format!(
            "{} {}",
            lang.pick("Verwijdering op verzoek, zaak", "Erasure on request, case"),
            trigger["request_id"].as_str().unwrap_or("?")
        ),
        _ => {
            let periods: Vec<String> = trigger["policies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{} / {}: {} {}",
                        p["tenant"].as_str().unwrap_or("?"),
                        p["kind"].as_str().unwrap_or("?"),
                        p["days"],
                        lang.pick("dagen", "days")
                    )
                })
                .collect();
            format!(
                "{} {} ({})",
                lang.pick(
                    "Bewaartermijnen toegepast per",
                    "Retention periods applied as of"
                ),
                trigger["as_of"].as_str().unwrap_or("?"),
                periods.join("; ")
            )
        }
    }
}

fn render(staff: &Staff, month: Month, reports: &[Value]) -> Response {
    let lang = staff.lang();
    let title = format!(
        "{} {}",
        lang.pick("Anonimiseringsrapporten", "Anonymisation reports"),
        lang.month(month)
    );
    let mut main = String::new();
    let _ = write!(
        main,
        "<h1>{title}</h1>\n<p class=\"lead\">{lead}</p>\n",
        title = esc(&title),
        lead = esc(lang.pick(
            "Elke verwijdering op verzoek en elke toepassing van de bewaartermijnen staat als rapport in het logboek: wat onleesbaar is gemaakt, en de controle dat het onleesbaar is. Geen persoonsgegevens.",
            "Every erasure on request and every application of the retention periods is a report in the log: what was made unreadable, and the check that it is. No personal data."
        ))
    );
    let _ = writeln!(
        main,
        "<nav aria-label=\"{label}\"><p><a href=\"{prev}\">← {prev_text}</a> · <a href=\"{next}\">{next_text} →</a></p></nav>",
        label = esc(lang.pick("Maanden", "Months")),
        prev = esc(&link(lang, month.previous())),
        prev_text = esc(&lang.month(month.previous())),
        next = esc(&link(lang, month.next())),
        next_text = esc(&lang.month(month.next())),
    );
    if reports.is_empty() {
        let _ = writeln!(
            main,
            "<p>{}</p>",
            esc(lang.pick("Geen rapporten in deze maand.", "No reports in this month."))
        );
    } else {
        let head = [
            lang.pick("Tijd (UTC)", "Time (UTC)"),
            lang.pick("Aanleiding", "Cause"),
            lang.pick("Personen", "People"),
            lang.pick("Gegevens", "Records"),
            lang.pick("Controle: onleesbaar", "Check: unreadable"),
            lang.pick("Logboek: positie en hash", "Log: position and hash"),
        ];
        let _ = write!(
            main,
            "<div class=\"table-wrap\"><table>\n<caption>{caption}</caption>\n<thead><tr>",
            caption = esc(&title)
        );
        for cell in head {
            let _ = write!(main, "<th scope=\"col\">{}</th>", esc(cell));
        }
        main.push_str("</tr></thead>\n<tbody>\n");
        for report in reports {
            let records: Vec<String> = report["records"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, count)| count.as_u64() != Some(0))
                .map(|(kind, count)| format!("{kind}: {count}"))
                .collect();
            let tried = report["check"]["sealed_entries_tried"]
                .as_u64()
                .unwrap_or(0);
            let unreadable = report["check"]["unreadable"].as_u64().unwrap_or(0);
            let check = if tried == unreadable {
                format!(
                    "{} ({unreadable} / {tried})",
                    lang.pick("alles onleesbaar", "all unreadable")
                )
            } else {
                format!(
                    "{} ({unreadable} / {tried})",
                    lang.pick("NIET alles onleesbaar", "NOT all unreadable")
                )
            };
            let _ = writeln!(
                main,
                "<tr><th scope=\"row\">{time}</th><td>{cause}</td><td class=\"num\">{people}</td><td>{records}</td><td>{check}</td><td><code>{position}</code> <code class=\"hash\">{hash}</code></td></tr>",
                time = esc(report["time"].as_str().unwrap_or("")),
                cause = esc(&cause(lang, report)),
                people = esc(&report["people"].to_string()),
                records = esc(&records.join(", ")),
                check = esc(&check),
                position = esc(&report["log"]["position"].to_string()),
                hash = esc(report["log"]["hash"].as_str().unwrap_or("")),
            );
        }
        main.push_str("</tbody></table></div>\n");
    }
    let download = |format: &str| {
        format!(
            "/privacy/download{}",
            query(&[
                ("month", &month.to_string()),
                ("format", format),
                ("lang", lang.code())
            ])
        )
    };
    let _ = writeln!(
        main,
        "<h2>{h}</h2>\n<ul><li><a href=\"{csv}\">CSV</a></li><li><a href=\"{json}\">JSON</a></li><li><a href=\"{ods}\">ODS (OpenDocument)</a></li></ul>",
        h = esc(lang.pick("Downloaden", "Download")),
        csv = esc(&download("csv")),
        json = esc(&download("json")),
        ods = esc(&download("ods")),
    );
    page_response(
        StatusCode::OK,
        staff.frame(&title, Current::Privacy).render(&main),
    )
}
