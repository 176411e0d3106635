//! The Datatheek on schedule (issue 18, requirement 2.26 "periodiek"): a
//! server started with `--datatheek-to DIR` and a short check interval
//! delivers a month's workbooks (the KB's and one per library) once the
//! month is closed, and not before; each delivered workbook is the file the
//! API gives for the closed month, byte for byte and read back with
//! calamine; the delivery record lists every file with its size and
//! SHA-256; a restart delivers nothing twice, while a month closed later is
//! still delivered; each delivery is one audit record.

use crate::common::{define_kb_and_library, define_role, post_generated, Api};
use crate::data_out::{download, hex_of, sheets};
use lrs_blackbox_tests::activity::{self, Spec};
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Waits (at most 30 s) for a month's delivery record and answers it.
async fn delivered(target: &Path, month: &str) -> Value {
    let record = target.join(month).join("delivered.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !record.exists() {
        assert!(
            Instant::now() < deadline,
            "{month} was not delivered in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap()
}

/// Every file under `dir` with its modification time.
fn files_with_times(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut files = Vec::new();
    crate::common::files_under(dir, &mut files);
    files
        .into_iter()
        .map(|f| {
            let time = std::fs::metadata(&f).unwrap().modified().unwrap();
            (f, time)
        })
        .collect()
}

async fn close(api: &Api, month: &str) {
    let (status, body, text) = api
        .send(
            reqwest::Method::POST,
            "/api/figures/closings",
            &[],
            Some(json!({ "month": month })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(body["version"], 1, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_months_are_delivered_once_each_equal_to_the_apis_workbooks() {
    let spec = Spec {
        learners: 60,
        libraries: 4,
        ..Spec::default()
    };
    let generated = activity::generate(spec.clone());
    let isil = generated.world.libraries[0].clone();
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    define_kb_and_library(&server, &isil);
    define_role(&server, "afsluiten", &["figures.read", "figures.close"]);
    let kb_credential = server.credential_with_role("KB analist", "kb", Some("afsluiten"));
    let library_credential = server.credential_with_role("Medewerker", "bieb", Some("afsluiten"));
    let scratch = tempfile::tempdir().unwrap();
    let target = scratch.path().join("levering");
    for (name, value) in [
        ("LRS_RATE_PER_ADDRESS", "0"),
        ("LRS_RATE_PER_CREDENTIAL", "0"),
        ("LRS_DATATHEEK_TO", target.to_str().unwrap()),
        ("LRS_DATATHEEK_EVERY_SECS", "0.3"),
        // Months are closed here through the API, not by the server.
        ("LRS_FIGURES_CLOSE_AFTER_DAYS", "0"),
    ] {
        server.env.push((name.into(), value.into()));
    }
    server.launch().unwrap();
    let (kb, library) = (
        Api::of(&server, &kb_credential),
        Api::of(&server, &library_credential),
    );
    let writer = server
        .client()
        .with_credential(&kb_credential.0, &kb_credential.1);
    post_generated(&writer, &generated).await;
    let m = spec.month.to_string();
    let previous = spec.month.previous().to_string();

    // Not closed: nothing is delivered, however many checks pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        files_with_times(&target).is_empty(),
        "nothing before a closing: {:?}",
        files_with_times(&target)
    );

    // Closed: delivered, the KB's workbook and one per library.
    close(&kb, &m).await;
    let record = delivered(&target, &m).await;
    assert_eq!(
        (record["month"].as_str(), record["version"].as_u64()),
        (Some(m.as_str()), Some(1))
    );
    let kb_book = download(&kb, &[("month", &m)]).await;
    let kb_file = target.join(&m).join(format!("datatheek-{m}.xlsx"));
    assert_eq!(
        std::fs::read(&kb_file).unwrap(),
        kb_book,
        "the delivered KB workbook is the API's, byte for byte"
    );
    let kb_sheets = sheets(&kb_book);
    assert_eq!(sheets(&std::fs::read(&kb_file).unwrap()), kb_sheets);
    let library_rows: BTreeMap<String, Vec<String>> = kb_sheets["Bibliotheken"][1..]
        .iter()
        .map(|row| (row[0].clone(), row.clone()))
        .collect();
    assert!(library_rows.len() >= 2, "{library_rows:?}");
    assert!(library_rows.contains_key(&isil));
    let mut want_files: Vec<String> = std::iter::once(format!("datatheek-{m}.xlsx"))
        .chain(
            library_rows
                .keys()
                .map(|id| format!("datatheek-{m}-{id}.xlsx")),
        )
        .collect();
    want_files.sort();
    let mut listed: Vec<String> = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, want_files, "the KB's and one per library");
    for file in record["files"].as_array().unwrap() {
        let bytes = std::fs::read(target.join(&m).join(file["name"].as_str().unwrap())).unwrap();
        assert_eq!(file["bytes"].as_u64(), Some(bytes.len() as u64), "{file}");
        assert_eq!(
            file["sha256"].as_str().unwrap(),
            hex_of(&sha2::Sha256::digest(&bytes)),
            "{file}"
        );
    }
    // Each library's workbook: the one its own staff download (for the
    // defined library, byte for byte), holding only its row, as in the KB's.
    let library_book = download(&library, &[("month", &m)]).await;
    assert_eq!(
        std::fs::read(target.join(&m).join(format!("datatheek-{m}-{isil}.xlsx"))).unwrap(),
        library_book,
        "the delivered library workbook is the API's"
    );
    for (id, row) in &library_rows {
        let book = sheets(
            &std::fs::read(target.join(&m).join(format!("datatheek-{m}-{id}.xlsx"))).unwrap(),
        );
        assert_eq!(
            book["Bibliotheken"].len(),
            2,
            "{id}: header and its own row"
        );
        assert_eq!(&book["Bibliotheken"][1], row, "{id}");
        assert!(
            book.get("Apps").map_or(0, Vec::len) <= 1,
            "{id}: no app rows"
        );
    }

    // A restart delivers nothing again: every file untouched.
    let before = files_with_times(&target);
    server.stop().unwrap();
    server.launch().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(files_with_times(&target), before, "nothing written twice");

    // A month closed later is delivered on its own; the first stays put.
    let kb = Api::of(&server, &kb_credential);
    close(&kb, &previous).await;
    let record = delivered(&target, &previous).await;
    assert_eq!(record["month"], previous.as_str());
    assert_eq!(
        std::fs::read(
            target
                .join(&previous)
                .join(format!("datatheek-{previous}.xlsx"))
        )
        .unwrap(),
        download(&kb, &[("month", &previous)]).await
    );
    let after = files_with_times(&target);
    for (file, time) in &before {
        assert_eq!(after.get(file), Some(time), "{}", file.display());
    }
    server.stop().unwrap();

    // One audit record per delivery, as the system's.
    let audit = server.lrs(&["audit", "export"]).unwrap();
    let deliveries: Vec<&str> = audit
        .lines()
        .filter(|line| line.contains("figures.datatheek.deliver"))
        .collect();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert!(
        deliveries[0].contains(&format!("{m} version 1")),
        "{}",
        deliveries[0]
    );
    assert!(
        deliveries[0].contains("system:datatheek"),
        "{}",
        deliveries[0]
    );
}
