//! The KB Datatheek workbook (issue 6, requirement 2.26): a generated month
//! of activity is posted to a real server; the workbook downloaded from
//! `/api/figures/datatheek` is opened with calamine (a spreadsheet reader
//! that knows nothing of our writer) and every number in it must equal what
//! the dashboard's API answers for the same month (`/api/figures/monthly`,
//! `/api/figures/breakdown`) and what the independent computation of
//! `lrs_blackbox_tests::activity::expected` gives. Columns are found by
//! their Dutch headers, so a reordering cannot hide a wrong number.

use crate::common::{define_kb_and_library, define_role, post_generated, set_course_model, Api};
use calamine::{Data, Reader, Xlsx};
use futures_util::StreamExt;
use lrs_blackbox_tests::activity::expected::{self, Scope};
use lrs_blackbox_tests::activity::{self, CalMonth, Spec};
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

/// The Dutch column headers of the figures and their JSON names: what the
/// Datatheek expects to read (docs/progress-and-figures.md).
const COLUMNS: [(&str, &str); 6] = [
    ("Hits", "hits"),
    ("Actieve gebruikers", "active_users"),
    ("Ingeschreven deelnemers", "enrolled_participants"),
    ("Gestarte deelnemers", "participants_started"),
    ("Gestarte cursussen", "courses_started"),
    ("Afgeronde cursussen", "courses_completed"),
];

type Numbers = BTreeMap<&'static str, u64>;

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::String(s) => s.clone(),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Empty => String::new(),
        other => other.to_string(),
    }
}

fn cell_number(cell: &Data, what: &str) -> u64 {
    match cell {
        Data::Float(f) if f.fract() == 0.0 && *f >= 0.0 => *f as u64,
        Data::Int(i) if *i >= 0 => *i as u64,
        other => panic!("{what}: not a whole number: {other:?}"),
    }
}

/// A sheet as (header → column) and its data rows.
fn sheet(
    book: &mut Xlsx<Cursor<Vec<u8>>>,
    name: &str,
) -> (BTreeMap<String, usize>, Vec<Vec<Data>>) {
    let range = book
        .worksheet_range(name)
        .unwrap_or_else(|e| panic!("sheet {name}: {e}"));
    let mut rows = range.rows().map(|r| r.to_vec());
    let header: BTreeMap<String, usize> = rows
        .next()
        .unwrap_or_else(|| panic!("sheet {name} is empty"))
        .iter()
        .enumerate()
        .map(|(i, c)| (cell_text(c), i))
        .collect();
    (header, rows.collect())
}

fn numbers_of_row(header: &BTreeMap<String, usize>, row: &[Data], what: &str) -> Numbers {
    COLUMNS
        .iter()
        .map(|(dutch, key)| {
            let col = *header
                .get(*dutch)
                .unwrap_or_else(|| panic!("{what}: no column '{dutch}' in {header:?}"));
            (*key, cell_number(&row[col], &format!("{what} {dutch}")))
        })
        .collect()
}

fn numbers_of_json(figures: &Value) -> Numbers {
    COLUMNS
        .iter()
        .map(|(_, key)| {
            (
                *key,
                figures[key]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no {key} in {figures}")),
            )
        })
        .collect()
}

fn numbers_of_expected(f: &expected::Figures) -> Numbers {
    // Hits as the Datatheek has them: every statement (launches apart).
    [
        ("hits", f.hits),
        ("active_users", f.active_users),
        ("enrolled_participants", f.enrolled_participants),
        ("participants_started", f.participants_started),
        ("courses_started", f.courses_started),
        ("courses_completed", f.courses_completed),
    ]
    .into_iter()
    .collect()
}

/// Rows of a per-library or per-app sheet: id → numbers.
fn rows_by_id(
    book: &mut Xlsx<Cursor<Vec<u8>>>,
    name: &str,
    id_head: &str,
) -> BTreeMap<String, Numbers> {
    let (header, rows) = sheet(book, name);
    let id_col = header[id_head];
    rows.iter()
        .map(|row| {
            let id = cell_text(&row[id_col]);
            let numbers = numbers_of_row(&header, row, &format!("{name} {id}"));
            (id, numbers)
        })
        .collect()
}

/// Every non-empty cell of every sheet, by sheet (in the workbook's order)
/// and absolute (row, column), as calamine reads it.
type Cells = Vec<(String, BTreeMap<(u32, u32), Data>)>;

fn cells_of<R: Reader<Cursor<Vec<u8>>>>(book: &mut R) -> Cells
where
    R::Error: std::fmt::Debug,
{
    book.sheet_names()
        .into_iter()
        .map(|name| {
            let range = book
                .worksheet_range(&name)
                .unwrap_or_else(|e| panic!("sheet {name}: {e:?}"));
            let (r0, c0) = range.start().unwrap_or((0, 0));
            let cells = range
                .used_cells()
                .filter(|(_, _, d)| !matches!(d, Data::Empty) && !cell_text(d).is_empty())
                .map(|(r, c, d)| ((r0 + r as u32, c0 + c as u32), d.clone()))
                .collect();
            (name, cells)
        })
        .collect()
}

/// The .ods and the .xlsx of one download read back by calamine (its Ods
/// and Xlsx readers): the same sheets in the same order, the same cells
/// with the same values (numbers as numbers). `except` names cells
/// (sheet, row, column) left out of the comparison.
pub(crate) fn assert_same_cells_across_formats(
    xlsx: &[u8],
    ods: &[u8],
    except: &[(&str, u32, u32)],
    what: &str,
) {
    let mut from_xlsx: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(xlsx.to_vec())).expect("an xlsx workbook");
    let mut from_ods: calamine::Ods<_> =
        calamine::open_workbook_from_rs(Cursor::new(ods.to_vec())).expect("an ods workbook");
    let mut a = cells_of(&mut from_xlsx);
    let mut b = cells_of(&mut from_ods);
    for (sheet, row, col) in except {
        for cells in [&mut a, &mut b] {
            if let Some((_, cells)) = cells.iter_mut().find(|(n, _)| n == sheet) {
                cells.remove(&(*row, *col));
            }
        }
    }
    let names = |c: &Cells| c.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "{what}: the sheets and their order");
    let mut compared = 0;
    for ((name, x), (_, o)) in a.iter().zip(b.iter()) {
        assert_eq!(x.len(), o.len(), "{what}: the number of cells of {name}");
        for (at, value) in x {
            assert_eq!(Some(value), o.get(at), "{what}: {name} {at:?}");
            compared += 1;
        }
    }
    assert!(compared > 50, "{what}: only {compared} cells");
}

async fn download(api: &Api, query: &[(&str, &str)]) -> (StatusCode, String, Vec<u8>) {
    let response = api
        .http
        .get(format!("{}/api/figures/datatheek", api.base))
        .query(query)
        .basic_auth(&api.key, Some(&api.secret))
        .send()
        .await
        .expect("GET datatheek");
    let status = response.status();
    let disposition = response
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        disposition,
        response.bytes().await.expect("body").to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_datatheek_workbook_holds_the_dashboards_numbers() {
    let spec = Spec {
        learners: 300,
        ..Spec::default()
    };
    let month = activity::generate(spec.clone());
    let library_isil = month.world.libraries[0].clone();
    let app = month.world.apps[0].clone();
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    define_kb_and_library(&server, &library_isil);
    for args in [
        // A defined library without any activity: the KB's workbook lists it with zeros.
        vec![
            "--id",
            "stil",
            "--name",
            "Bibliotheek Stil",
            "--kind",
            "library",
            "--isil",
            "NL-9999999999",
        ],
        vec![
            "--id", "app", "--name", &app.name, "--kind", "app", "--appid", &app.id,
        ],
    ] {
        let mut command = vec!["tenants", "define"];
        command.extend(args);
        server.lrs(&command).unwrap();
    }
    define_role(&server, "cijfers", &["figures.read"]);
    let credential = |name: &str, tenant: &str, role: Option<&str>| {
        server.credential_with_role(name, tenant, role)
    };
    let (kb_key, kb_secret) = credential("KB analist", "kb", Some("cijfers"));
    let (lib_key, lib_secret) = credential("Medewerker", "bieb", Some("cijfers"));
    let (plain_key, plain_secret) = credential("Zonder rol", "kb", None);
    server.env.push(("LRS_RATE_PER_ADDRESS".into(), "0".into()));
    server
        .env
        .push(("LRS_RATE_PER_CREDENTIAL".into(), "0".into()));
    server.launch().unwrap();
    let http = reqwest::Client::new();
    let api = |key: &str, secret: &str| Api {
        http: http.clone(),
        base: server.base_url.clone(),
        key: key.to_owned(),
        secret: secret.to_owned(),
    };
    let (kb, library, plain) = (
        api(&kb_key, &kb_secret),
        api(&lib_key, &lib_secret),
        api(&plain_key, &plain_secret),
    );

    let writer = server.client().with_credential(&kb_key, &kb_secret);
    let stored_month = CalMonth::current();
    let batches: Vec<Value> = month
        .sent
        .chunks(500)
        .map(|chunk| Value::Array(chunk.iter().map(|s| s.statement.clone()).collect()))
        .collect();
    let replies: Vec<_> = futures_util::stream::iter(batches.iter())
        .map(|batch| {
            let writer = writer.clone();
            async move { writer.post_statements(batch).await.expect("POST") }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for reply in replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    assert_eq!(
        CalMonth::current(),
        stored_month,
        "the month changed while posting: run again"
    );
    let m = spec.month.to_string();
    let want = expected::monthly(&month, stored_month);

    // The KB's workbook.
    let (status, disposition, bytes) = download(&kb, &[("month", &m)]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        disposition.contains(&format!("datatheek-{m}.xlsx")),
        "file name: {disposition}"
    );
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes)).expect("an xlsx workbook");
    let names = book.sheet_names().to_vec();
    for sheet_name in [
        "Totaal",
        "Bibliotheken",
        "Apps",
        "Top 10 cursussen",
        "Definities",
    ] {
        assert!(
            names.iter().any(|n| n == sheet_name),
            "sheet {sheet_name} in {names:?}"
        );
    }

    // Totaal = /api/figures/monthly = the independent computation.
    let monthly = kb.ok("/api/figures/monthly", &[("month", &m)]).await;
    let (header, rows) = sheet(&mut book, "Totaal");
    let total = numbers_of_row(&header, &rows[0], "Totaal");
    assert_eq!(cell_text(&rows[0][header["Maand"]]), m);
    assert_eq!(
        total,
        numbers_of_json(&monthly["figures"]),
        "Totaal vs the dashboard's API"
    );
    let want_total = want
        .get(&(spec.month, Scope::Total))
        .expect("expected total");
    assert_eq!(
        total,
        numbers_of_expected(want_total),
        "Totaal vs the independent computation"
    );
    assert!(total["hits"] > 0, "the month has activity");

    // Every library and app row = the breakdown = the independent computation.
    for (sheet_name, id_head, by, scope_of) in [
        (
            "Bibliotheken",
            "ISIL",
            "library",
            Scope::Library as fn(String) -> Scope,
        ),
        ("Apps", "Appid", "app", Scope::App as fn(String) -> Scope),
    ] {
        let rows = rows_by_id(&mut book, sheet_name, id_head);
        let breakdown = kb
            .ok("/api/figures/breakdown", &[("month", &m), ("by", by)])
            .await;
        let api_rows: BTreeMap<String, Numbers> = breakdown["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_owned(),
                    numbers_of_json(&r["figures"]),
                )
            })
            .collect();
        assert!(!api_rows.is_empty(), "{by}: the breakdown has rows");
        for (id, numbers) in &api_rows {
            assert_eq!(
                rows.get(id),
                Some(numbers),
                "{sheet_name} {id} vs the breakdown"
            );
            let want = want
                .get(&(spec.month, scope_of(id.clone())))
                .map(numbers_of_expected)
                .unwrap_or_else(|| panic!("{by} {id} has figures but no expectation"));
            assert_eq!(
                numbers, &want,
                "{sheet_name} {id} vs the independent computation"
            );
        }
        for (id, numbers) in &rows {
            if !api_rows.contains_key(id) {
                assert!(
                    numbers.values().all(|n| *n == 0),
                    "{sheet_name} {id}: a row without activity holds {numbers:?}"
                );
            }
        }
        if by == "library" {
            assert!(
                rows.contains_key("NL-9999999999"),
                "the defined library without activity is listed"
            );
        }
    }

    // Top 10 = the dashboard's top lists.
    let (header, rows) = sheet(&mut book, "Top 10 cursussen");
    for (list, key) in [
        ("Gestarte cursussen", "top_started"),
        ("Afgeronde cursussen", "top_completed"),
    ] {
        let sheet_list: Vec<(String, u64)> = rows
            .iter()
            .filter(|r| cell_text(&r[header["Lijst"]]) == list)
            .map(|r| {
                (
                    cell_text(&r[header["Cursus-id"]]),
                    cell_number(&r[header["Combinaties cursist–cursus"]], list),
                )
            })
            .collect();
        let api_list: Vec<(String, u64)> = monthly[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["course"].as_str().unwrap().to_owned(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(sheet_list, api_list, "{list}");
    }

    // The definitions: one row per figure, Dutch and English.
    let (header, rows) = sheet(&mut book, "Definities");
    for (dutch, _) in COLUMNS {
        let row = rows
            .iter()
            .find(|r| cell_text(&r[header["Cijfer"]]) == dutch)
            .unwrap_or_else(|| panic!("no definition of {dutch}"));
        assert!(
            cell_text(&row[header["Betekenis"]]).len() > 30,
            "{dutch}: a real definition"
        );
        assert!(!cell_text(&row[header["Definition (English)"]]).is_empty());
    }

    // A library's workbook: its own row only, equal to its figures.
    let (status, disposition, bytes) = download(&library, &[("month", &m)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(disposition
        .contains(&library_isil.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")));
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).expect("xlsx");
    let rows = rows_by_id(&mut book, "Bibliotheken", "ISIL");
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        vec![&library_isil],
        "only its own library"
    );
    let own = library.ok("/api/figures/monthly", &[("month", &m)]).await;
    assert_eq!(rows[&library_isil], numbers_of_json(&own["figures"]));
    assert!(
        rows_by_id(&mut book, "Apps", "Appid").is_empty(),
        "no app rows for a library"
    );

    // Bad input and missing permission: JSON errors that say what and where.
    let (status, body, _) = kb
        .get("/api/figures/datatheek", &[("month", "2026-13")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("?month"), "{body}");
    let (status, body, _) = plain.get("/api/figures/datatheek", &[("month", &m)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.to_string().contains("figures.read"), "{body}");
}

/// POST /api/figures/closings.
async fn close(api: &Api, body: Value) -> (StatusCode, Value, String) {
    api.send(
        reqwest::Method::POST,
        "/api/figures/closings",
        &[],
        Some(body),
    )
    .await
}

/// A download with the headers that say which version it is.
async fn download_version(
    api: &Api,
    query: &[(&str, &str)],
) -> (StatusCode, Option<String>, Option<u64>, Vec<u8>) {
    let response = api
        .http
        .get(format!("{}/api/figures/datatheek", api.base))
        .query(query)
        .basic_auth(&api.key, Some(&api.secret))
        .send()
        .await
        .expect("GET datatheek");
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let version = header("figures-version");
    let late = header("figures-late-statements").and_then(|v| v.parse().ok());
    (
        status,
        version,
        late,
        response.bytes().await.expect("body").to_vec(),
    )
}

/// Issue 20: a month can be closed (by the KB; by the server itself some
/// days after the month, see `lrs_app::closing`'s tests), and then the
/// workbook and the API serve the closed version: the workbook is the same
/// file byte for byte after late statements arrive, while the live figures
/// and the count of late statements move; the hits the workbook shows are
/// the reader's choice; closing again makes version 2.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_months_workbook_stays_put_while_late_statements_arrive() {
    let spec = Spec {
        learners: 150,
        course_apps: 6,
        ..Spec::default()
    };
    let month = activity::generate(spec.clone());
    let library_isil = month.world.libraries[0].clone();
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    define_kb_and_library(&server, &library_isil);
    set_course_model(&server, "kb", &month.world.course_model());
    define_role(&server, "afsluiten", &["figures.read", "figures.close"]);
    define_role(&server, "cijfers", &["figures.read"]);
    let kb_credential = server.credential_with_role("KB analist", "kb", Some("afsluiten"));
    let reader_credential = server.credential_with_role("KB lezer", "kb", Some("cijfers"));
    let library_credential = server.credential_with_role("Medewerker", "bieb", Some("afsluiten"));
    server.env.push(("LRS_RATE_PER_ADDRESS".into(), "0".into()));
    server
        .env
        .push(("LRS_RATE_PER_CREDENTIAL".into(), "0".into()));
    server.launch().unwrap();
    let (kb, reader, library) = (
        Api::of(&server, &kb_credential),
        Api::of(&server, &reader_credential),
        Api::of(&server, &library_credential),
    );
    let writer = server
        .client()
        .with_credential(&kb_credential.0, &kb_credential.1);
    post_generated(&writer, &month).await;
    let m = spec.month.to_string();
    let want = expected::monthly(&month, CalMonth::current());
    let want_total = want
        .get(&(spec.month, Scope::Total))
        .expect("expected total");

    // Not closed yet: the live figures, and the headers say so.
    let (status, version, late, _) = download_version(&kb, &[("month", &m)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((version.as_deref(), late), (Some("live"), None));

    // Who may close: the KB with figures.close; a month that has ended.
    let (status, body, _) = close(&reader, json!({"month": m})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.to_string().contains("figures.close"), "{body}");
    let (status, body, _) = close(&library, json!({"month": m})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a library closes no month: {body}"
    );
    let this_month = CalMonth::current().to_string();
    let (status, body, _) = close(&kb, json!({"month": this_month})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["path"], "$.month", "{body}");
    let (status, body, _) = close(&kb, json!({"month": "2026-13"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Closed: version 1; closing again without changes makes no version 2.
    let (status, body, text) = close(&kb, json!({"month": m, "note": "levering oktober"})).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(
        (body["version"].as_u64(), body["outcome"].as_str()),
        (Some(1), Some("closed"))
    );
    let (status, body, _) = close(&kb, json!({"month": m})).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("unchanged"))
    );

    let (status, version, late, closed_book) = download_version(&kb, &[("month", &m)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((version.as_deref(), late), (Some("closed 1"), Some(0)));
    let (_, _, _, closed_library_book) = download_version(&library, &[("month", &m)]).await;
    // The same workbooks as OpenDocument (issue 21): the same cells, and a
    // closed month's is the same bytes every time, too.
    let (status, version, _, closed_ods) =
        download_version(&kb, &[("month", &m), ("format", "ods")]).await;
    assert_eq!(
        (status, version.as_deref()),
        (StatusCode::OK, Some("closed 1"))
    );
    assert_same_cells_across_formats(&closed_book, &closed_ods, &[], "the KB's closed workbook");
    let (_, _, _, closed_library_ods) =
        download_version(&library, &[("month", &m), ("format", "ods")]).await;
    assert_same_cells_across_formats(
        &closed_library_book,
        &closed_library_ods,
        &[],
        "the library's closed workbook",
    );
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(closed_book.clone())).expect("xlsx");
    let (header, rows) = sheet(&mut book, "Totaal");
    assert_eq!(
        numbers_of_row(&header, &rows[0], "Totaal"),
        numbers_of_expected(want_total),
        "the closed version holds the figures at closing"
    );
    let version_row = rows
        .iter()
        .find(|r| cell_text(&r[0]) == "Versie")
        .expect("a Versie row");
    assert!(
        cell_text(&version_row[1]).starts_with("afgesloten versie 1"),
        "{version_row:?}"
    );
    // The top 10 carries the courses' names: the model's, else the definitions'.
    let (header, rows) = sheet(&mut book, "Top 10 cursussen");
    assert!(!rows.is_empty());
    for row in &rows {
        let id = cell_text(&row[header["Cursus-id"]]);
        assert_eq!(
            Some(cell_text(&row[header["Cursus"]])),
            expected::course_name_of(&month, &id),
            "the name of {id}"
        );
    }

    // Hits as launches, or both as two columns.
    let (_, _, _, both) = download_version(&kb, &[("month", &m), ("hits", "both")]).await;
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(both)).expect("xlsx");
    let (header, rows) = sheet(&mut book, "Totaal");
    assert_eq!(
        cell_number(&rows[0][header["Hits"]], "Hits"),
        want_total.hits
    );
    assert_eq!(
        cell_number(&rows[0][header["Hits (starts)"]], "Hits (starts)"),
        want_total.launches
    );
    assert!(want_total.launches > 0 && want_total.launches < want_total.hits);
    let (_, _, _, launches) = download_version(&kb, &[("month", &m), ("hits", "launches")]).await;
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(launches)).expect("xlsx");
    let (header, _) = sheet(&mut book, "Bibliotheken");
    assert!(header.contains_key("Hits (starts)") && !header.contains_key("Hits"));
    let (status, body, _) = kb
        .get(
            "/api/figures/datatheek",
            &[("month", &m), ("hits", "views")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["path"], "?hits", "{body}");

    // Late statements: a new learner's launches in the month, and a voiding
    // of a statement of the month.
    let in_month = |t: i64| {
        t >= spec.month.start_micros() + 3_600_000_000
            && t < spec.month.end_micros() - 3_600_000_000
    };
    let counted = expected::counted(&month);
    let voided_late = counted
        .iter()
        .map(|&p| &month.sent[p])
        .find(|s| s.fact.time.is_some_and(in_month) && s.fact.verb == activity::Verb::Experienced)
        .expect("a statement to void");
    let when = activity::format_timestamp(spec.month.start_micros() + 5 * 86_400_000_000, false);
    let mut late_statements: Vec<Value> = (0..5)
        .map(|n| {
            json!({
                "actor": {"mbox": "mailto:laatkomer@example.nl"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/launched"},
                "object": {"id": format!("https://laat.example.nl/boek/{n}")},
                "context": {"extensions": {activity::ISIL_EXTENSION: library_isil}},
                "timestamp": when,
            })
        })
        .collect();
    late_statements.push(json!({
        "actor": {"mbox": "mailto:beheer@example.nl"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": voided_late.id},
    }));
    let reply = writer
        .post_statements(&Value::Array(late_statements))
        .await
        .expect("POST");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // The closed workbook: the same bytes; the headers count what arrived.
    let (_, version, late, again) = download_version(&kb, &[("month", &m)]).await;
    assert_eq!((version.as_deref(), late), (Some("closed 1"), Some(6)));
    assert!(again == closed_book, "the closed workbook changed");
    let (_, _, _, library_again) = download_version(&library, &[("month", &m)]).await;
    assert!(
        library_again == closed_library_book,
        "the library's closed workbook changed"
    );
    for (api, before, whose) in [
        (&kb, &closed_ods, "the KB's"),
        (&library, &closed_library_ods, "the library's"),
    ] {
        let (_, _, _, again) = download_version(api, &[("month", &m), ("format", "ods")]).await;
        assert!(again == *before, "{whose} closed ods workbook changed");
    }
    // The live figures: the same cells as well, but for the time each file
    // was made (Totaal, "Gemaakt op (UTC)").
    let live = [("month", m.as_str()), ("version", "live")];
    let (_, _, _, live_xlsx) = download_version(&kb, &live).await;
    let (_, _, _, live_ods) = download_version(&kb, &[live[0], live[1], ("format", "ods")]).await;
    assert_same_cells_across_formats(
        &live_xlsx,
        &live_ods,
        &[("Totaal", 3, 1)],
        "the live workbook",
    );
    let (status, body, _) = kb
        .get(
            "/api/figures/datatheek",
            &[("month", &m), ("format", "csv")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["path"], "?format", "{body}");
    // The API: the closed figures with the late count and what it changed;
    // the live figures on asking.
    let delivered = kb.ok("/api/figures/monthly", &[("month", &m)]).await;
    assert_eq!(
        numbers_of_json(&delivered["figures"]),
        numbers_of_expected(want_total)
    );
    assert_eq!(delivered["closing"]["served"], "closed", "{delivered}");
    assert_eq!(delivered["closing"]["late_statements"], 6);
    assert_eq!(delivered["closing"]["changes"]["hits"], 4, "{delivered}");
    assert_eq!(
        delivered["closing"]["changes"]["launches"], 5,
        "{delivered}"
    );
    assert_eq!(delivered["closing"]["note"], "levering oktober");
    let live = kb
        .ok(
            "/api/figures/monthly",
            &[("month", &m), ("version", "live")],
        )
        .await;
    assert_eq!(live["figures"]["hits"].as_u64(), Some(want_total.hits + 4));
    assert_eq!(live["closing"]["served"], "live");
    let own = library.ok("/api/figures/monthly", &[("month", &m)]).await;
    assert_eq!(own["closing"]["served"], "closed");
    assert!(
        own["closing"]["late_statements"].as_u64() >= Some(5),
        "{own}"
    );
    let closings = kb.ok("/api/figures/closings", &[("month", &m)]).await;
    assert_eq!(
        closings["closings"].as_array().map(Vec::len),
        Some(1),
        "{closings}"
    );
    let (status, _, _) = kb
        .get("/api/figures/monthly", &[("month", &m), ("version", "3")])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Closing again makes version 2, with the late statements in it;
    // version 1 stays downloadable, the same bytes.
    let (status, body, _) = close(&kb, json!({"month": m})).await;
    assert_eq!(
        (status, body["version"].as_u64()),
        (StatusCode::CREATED, Some(2))
    );
    let (_, version, late, second) = download_version(&kb, &[("month", &m)]).await;
    assert_eq!((version.as_deref(), late), (Some("closed 2"), Some(0)));
    assert!(second != closed_book);
    let (_, version, _, first) = download_version(&kb, &[("month", &m), ("version", "1")]).await;
    assert_eq!(version.as_deref(), Some("closed 1"));
    assert!(first == closed_book, "version 1 is still the same file");
    let delivered = kb.ok("/api/figures/monthly", &[("month", &m)]).await;
    assert_eq!(
        delivered["figures"]["hits"].as_u64(),
        Some(want_total.hits + 4)
    );
}
