//! The anonymisation reports (6.6): each is a `PrivacyReportV1` entry in the
//! log (tamper-evident: the hash chain runs through it), fetched as JSON or
//! as a Markdown document for the privacy officer, Dutch first, English
//! second. No personal data: counts, kinds, periods and request ids.

use super::kinds::kind_name;
use crate::error::{AppError, AppResult};
use lrs_core::events::{PrivacyReportTriggerV1, PrivacyReportV1};
use lrs_core::Event;
use lrs_store::Store;
use serde_json::{json, Value};

fn time(micros: i64) -> String {
    lrs_core::statement::format_micros(micros)
}

pub fn report_json(report: &PrivacyReportV1) -> Value {
    let trigger = match &report.trigger {
        PrivacyReportTriggerV1::Erasure { request_id } => {
            json!({"kind": "erasure", "request_id": request_id})
        }
        PrivacyReportTriggerV1::Retention {
            as_of_micros,
            policies,
        } => json!({
            "kind": "retention",
            "as_of": time(*as_of_micros),
            "policies": policies.iter().map(|p| json!({
                "tenant": p.tenant, "kind": kind_name(p.kind), "days": p.days
            })).collect::<Vec<_>>(),
        }),
    };
    let records: serde_json::Map<String, Value> = report
        .records
        .iter()
        .map(|r| (r.kind.clone(), json!(r.count)))
        .collect();
    json!({
        "id": report.report_id.hyphenated().to_string(),
        "time": time(report.time_micros),
        "trigger": trigger,
        "people": report.people,
        "records": records,
        "check": {
            "sealed_entries_tried": report.check.tried,
            "unreadable": report.check.unreadable,
            "all_unreadable": report.check.tried == report.check.unreadable,
        },
        "by": report.who,
    })
}

/// A report from the log, with the position and hash of its entry.
pub fn load(store: &Store, id: &uuid::Uuid) -> AppResult<Option<(PrivacyReportV1, Value)>> {
    let Some(at) = store.privacy_report(id)? else {
        return Ok(None);
    };
    let Some(entry) = store.entry(at.position)? else {
        return Ok(None);
    };
    let Event::PrivacyReportV1(report) = entry.event else {
        return Ok(None);
    };
    let mut value = report_json(&report);
    value["log"] = json!({"position": entry.position, "hash": hex::encode(entry.hash)});
    Ok(Some((report, value)))
}

/// Checks that every report the privacy read model lists is the
/// `PrivacyReportV1` entry at the log position it names (the chain, checked
/// first by `lrs verify`, vouches for the entry and its hash). Returns how
/// many reports were checked and what is wrong.
pub fn verify_all(store: &Store) -> AppResult<(usize, Vec<String>)> {
    let mut broken = Vec::new();
    let reports = store.privacy_reports()?;
    for (id, at) in &reports {
        match store.entry(at.position)? {
            Some(entry) => match entry.event {
                Event::PrivacyReportV1(report) if report.report_id == *id => {}
                _ => broken.push(format!(
                    "report {id}: the entry at position {} is not that report",
                    at.position
                )),
            },
            None => broken.push(format!(
                "report {id}: no log entry at position {}",
                at.position
            )),
        }
    }
    Ok((reports.len(), broken))
}

/// Every report, oldest first, as JSON.
pub fn list(store: &Store) -> AppResult<Vec<Value>> {
    let mut all = Vec::new();
    for (id, _) in store.privacy_reports()? {
        if let Some((_, value)) = load(store, &id)? {
            all.push(value);
        }
    }
    Ok(all)
}

/// The ids of the reports of one month (Dutch time, `YYYY-MM`), or of all
/// without one, oldest first.
pub fn ids_of_month(store: &Store, month: Option<&str>) -> AppResult<Vec<uuid::Uuid>> {
    let month = month
        .map(|text| {
            text.parse::<crate::insight::Month>().map_err(|e| {
                AppError::bad_request("$.month", "privacy.month", format!("{text:?}: {e}"))
            })
        })
        .transpose()?;
    let mut reports: Vec<(i64, uuid::Uuid)> = store
        .privacy_reports()?
        .into_iter()
        .filter(|(_, at)| {
            month.is_none_or(|m| crate::insight::Month::of_micros(at.time_micros) == m)
        })
        .map(|(id, at)| (at.position as i64, id))
        .collect();
    reports.sort();
    Ok(reports.into_iter().map(|(_, id)| id).collect())
}

/// The columns of the reports' table (CSV and ODS).
const COLUMNS: [&str; 11] = [
    "id",
    "time",
    "trigger",
    "request_id",
    "as_of",
    "people",
    "records",
    "sealed_entries_tried",
    "unreadable",
    "log_position",
    "log_entry_hash",
];

/// One report's row: its values in the order of [`COLUMNS`].
fn row_values(r: &Value) -> [Value; 11] {
    let records = r["records"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";")
        })
        .unwrap_or_default();
    [
        r["id"].clone(),
        r["time"].clone(),
        r["trigger"]["kind"].clone(),
        r["trigger"]["request_id"].clone(),
        r["trigger"]["as_of"].clone(),
        r["people"].clone(),
        Value::String(records),
        r["check"]["sealed_entries_tried"].clone(),
        r["check"]["unreadable"].clone(),
        r["log"]["position"].clone(),
        r["log"]["hash"].clone(),
    ]
}

/// Reports as CSV, one row each: what a spreadsheet needs to count
/// erasures and retention runs (no personal data, like the reports).
pub fn csv(reports: &[Value]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    let field = |v: &Value| -> String {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if text.contains([',', '"', '\n']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text
        }
    };
    for r in reports {
        let row: Vec<String> = row_values(r).iter().map(field).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// The same table as one sheet of a spreadsheet (ODS or xlsx): the CSV's
/// rows and cells, numbers as numbers, an absent value an empty cell.
pub fn book(reports: &[Value], created_micros: i64) -> crate::sheets::Book {
    use crate::sheets::{Book, Style};
    let mut book = Book::new(created_micros);
    let sheet = book.add_sheet("Anonimiseringsrapporten");
    for (col, name) in COLUMNS.iter().enumerate() {
        sheet.write_with(0, col as u16, *name, Style::Bold);
    }
    for (i, r) in reports.iter().enumerate() {
        let row = i as u32 + 1;
        for (col, value) in row_values(r).into_iter().enumerate() {
            let col = col as u16;
            match value {
                Value::Null => {}
                Value::String(text) => sheet.write(row, col, text),
                Value::Number(n) => match n.as_f64() {
                    Some(n) => sheet.write(row, col, n),
                    None => sheet.write(row, col, n.to_string()),
                },
                other => sheet.write(row, col, other.to_string()),
            }
        }
    }
    sheet.freeze_rows(1);
    book
}

fn records_table(report: &PrivacyReportV1, dutch: bool) -> String {
    let mut table = if dutch {
        "| soort gegevens | aantal |\n|---|---|\n".to_owned()
    } else {
        "| kind of data | count |\n|---|---|\n".to_owned()
    };
    for record in &report.records {
        let name = if dutch {
            match record.kind.as_str() {
                "statements" => "statements van de personen",
                "documents" => "documenten van de personen",
                "progress_records" => "voortgangsrecords",
                "assignments" => "toewijzingen",
                "documents_past_retention" => "documenten na bewaartermijn verwijderd",
                "audit_segments" => "auditbestanden verwijderd",
                "audit_records" => "auditregels verwijderd",
                "backup_keys" => "back-upsleutels vernietigd",
                other => other,
            }
            .to_owned()
        } else {
            record.kind.replace('_', " ")
        };
        table.push_str(&format!("| {name} | {} |\n", record.count));
    }
    table
}

/// The readable document: Dutch first, then English.
pub fn markdown(report: &PrivacyReportV1, log_position: u64, log_hash: &str) -> String {
    let when = time(report.time_micros);
    let (aanleiding, cause) = match &report.trigger {
        PrivacyReportTriggerV1::Erasure { request_id } => (
            format!("verzoek tot verwijdering (AVG art. 17), kenmerk `{request_id}`"),
            format!("erasure request (GDPR art. 17), reference `{request_id}`"),
        ),
        PrivacyReportTriggerV1::Retention {
            as_of_micros,
            policies,
        } => {
            let list = policies
                .iter()
                .map(|p| format!("{} / {}: {} d", p.tenant, kind_name(p.kind), p.days))
                .collect::<Vec<_>>()
                .join("; ");
            (
                format!(
                    "bewaartermijnen toegepast per {} ({list})",
                    time(*as_of_micros)
                ),
                format!(
                    "retention periods applied as of {} ({list})",
                    time(*as_of_micros)
                ),
            )
        }
    };
    let ok = report.check.tried == report.check.unreadable;
    format!(
        "# Anonimiseringsrapport {id}\n\n\
         - Tijdstip: {when}\n\
         - Aanleiding: {aanleiding}\n\
         - Uitgevoerd door: `{who}`\n\
         - Personen onleesbaar gemaakt (sleutel vernietigd): {people}\n\n\
         {nl_table}\n\
         **Controle:** {tried} versleutelde gegevens van deze personen geprobeerd te openen, \
         {unreadable} onleesbaar. {nl_ok}\n\n\
         Dit rapport staat zelf in het logboek (positie {position}, hash `{hash}`): \
         wijzigen breekt de hashketen, die `lrs verify` controleert. Het bevat geen persoonsgegevens.\n\n\
         ---\n\n\
         # Anonymisation report {id}\n\n\
         - Time: {when}\n\
         - Cause: {cause}\n\
         - Done by: `{who}`\n\
         - People made unreadable (key destroyed): {people}\n\n\
         {en_table}\n\
         **Check:** tried to open {tried} sealed entries of these people, {unreadable} unreadable. {en_ok}\n\n\
         This report is itself an entry in the log (position {position}, hash `{hash}`): \
         changing it breaks the hash chain, which `lrs verify` checks. It holds no personal data.\n",
        id = report.report_id.hyphenated(),
        who = report.who,
        people = report.people,
        nl_table = records_table(report, true),
        en_table = records_table(report, false),
        tried = report.check.tried,
        unreadable = report.check.unreadable,
        nl_ok = if ok { "Alles is onleesbaar." } else { "LET OP: niet alles is onleesbaar." },
        en_ok = if ok { "All unreadable." } else { "WARNING: not everything is unreadable." },
        position = log_position,
        hash = log_hash,
    )
}
