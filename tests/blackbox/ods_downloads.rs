//! The staff pages' downloads as OpenDocument spreadsheets (issue 21, ODF):
//! the dashboard's figures (`format=csv-ods`) hold the CSV's rows and cells,
//! the dashboard's Datatheek workbook (`format=ods`) the xlsx's cells, and
//! the privacy officer's reports (`format=ods`) the CSV's; each read back
//! with calamine's Ods reader (a reader that shares no code with ours).

use crate::web::{add_staff, Client};
use calamine::{Data, Reader};
use lrs_blackbox_tests::activity::ISIL_EXTENSION;
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use std::io::Cursor;
use std::path::Path;

const ODS: &str = "application/vnd.oasis.opendocument.spreadsheet";

/// The first sheet of an ods as rows of text (numbers as calamine shows
/// them, whole numbers without a fraction), trailing empty cells dropped.
fn ods_rows(bytes: &[u8]) -> (String, Vec<Vec<String>>) {
    let mut book: calamine::Ods<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("an ods workbook");
    let name = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&name).expect("the first sheet");
    assert_eq!(range.start(), Some((0, 0)), "the sheet starts at A1");
    let rows = range
        .rows()
        .map(|row| {
            let mut cells: Vec<String> = row
                .iter()
                .map(|cell| match cell {
                    Data::Float(f) if f.fract() == 0.0 => format!("{}", *f as i64),
                    Data::Empty => String::new(),
                    other => other.to_string(),
                })
                .collect();
            while cells.last().is_some_and(String::is_empty) {
                cells.pop();
            }
            cells
        })
        .collect();
    (name, rows)
}

/// CSV rows (no field here needs quoting).
fn csv_rows(text: &str, separator: char, line_end: &str) -> Vec<Vec<String>> {
    text.trim_start_matches('\u{feff}')
        .split(line_end)
        .map(|line| {
            if line.is_empty() {
                Vec::new()
            } else {
                line.split(separator).map(str::to_owned).collect()
            }
        })
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .skip_while(Vec::is_empty)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

#[tokio::test]
async fn the_staff_downloads_are_also_opendocument_spreadsheets_with_the_csvs_cells() {
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    for args in [
        vec![
            "tenants", "define", "--id", "kb", "--name", "KB", "--kind", "kb",
        ],
        vec![
            "tenants",
            "define",
            "--id",
            "bieb",
            "--name",
            "Bieb Oost",
            "--kind",
            "library",
            "--isil",
            "NL-0000-ODS",
        ],
        vec![
            "roles",
            "define",
            "--name",
            "kijker",
            "--permission",
            "figures.read",
            "--permission",
            "privacy.reports",
        ],
    ] {
        server.lrs(&args).unwrap();
    }
    let (key, secret) = server.credential_with_role("schrijver", "kb", None);
    let mut staff = add_staff(&server, "kb", "kb.kijker", "Kees Kijker", "kijker");
    server.launch().unwrap();
    let writer = server.client().with_credential(&key, &secret);
    let statements: Vec<Value> = (0..12)
        .map(|n| {
            json!({
                "actor": {"mbox": format!("mailto:ods-{}@example.nl", n % 5)},
                "verb": {"id": if n % 3 == 0 {
                    "http://adlnet.gov/expapi/verbs/launched"
                } else {
                    "http://adlnet.gov/expapi/verbs/experienced"
                }},
                "object": {"id": format!("https://courses.example.nl/ods/{}", n % 4)},
                "context": {"extensions": {ISIL_EXTENSION: "NL-0000-ODS"}},
            })
        })
        .collect();
    let reply = writer
        .post_statements(&Value::Array(statements))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let mut browser = Client::new(&server.base_url);
    browser.login(&mut staff).await;

    // The dashboard's figures: the CSV's rows and cells, one sheet.
    let (status, _, csv) = browser.get_bytes("/dashboard/download?format=csv").await;
    assert_eq!(status, StatusCode::OK);
    let csv = csv_rows(&String::from_utf8(csv).unwrap(), ';', "\r\n");
    let (status, content_type, ods) = browser
        .get_bytes("/dashboard/download?format=csv-ods")
        .await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, ODS));
    let (name, rows) = ods_rows(&ods);
    assert_eq!(name, "Maandcijfers");
    assert!(
        csv.len() > 8
            && csv
                .iter()
                .any(|r| r.first().map(String::as_str) == Some("NL-0000-ODS")),
        "{csv:?}"
    );
    assert_eq!(rows, csv, "the ods holds the CSV's rows and cells");
    let english = browser
        .get_bytes("/dashboard/download?format=csv-ods&lang=en")
        .await;
    assert_eq!(ods_rows(&english.2).0, "Monthly figures");

    // The dashboard's Datatheek workbook: the xlsx's cells.
    let (status, _, xlsx) = browser.get_bytes("/dashboard/download?format=xlsx").await;
    assert_eq!(status, StatusCode::OK);
    let (status, content_type, ods) = browser.get_bytes("/dashboard/download?format=ods").await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, ODS));
    crate::datatheek::assert_same_cells_across_formats(
        &xlsx,
        &ods,
        &[("Totaal", 3, 1)],
        "the dashboard's Datatheek workbook",
    );
    let page = browser.get("/dashboard/download?format=pdf").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);

    // The privacy officer's reports (none this month: the header row).
    let (status, _, csv) = browser.get_bytes("/privacy/download?format=csv").await;
    assert_eq!(status, StatusCode::OK);
    let csv = csv_rows(&String::from_utf8(csv).unwrap(), ',', "\n");
    let (status, content_type, ods) = browser.get_bytes("/privacy/download?format=ods").await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, ODS));
    let (_, rows) = ods_rows(&ods);
    assert_eq!(rows, csv);
    assert_eq!(rows.len(), 1, "{rows:?}");
}
