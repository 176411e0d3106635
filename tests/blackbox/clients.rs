//! Real xAPI client libraries, unmodified, against a real server (issue
//! 21): the same cmi5-like session (the LMS's launch data and `launched`;
//! the AU's initialized, progressed, state documents, an agent profile
//! read, an activity profile, completed, passed, terminated; the
//! registration's statements read back) through TinCanJS (npm `tincanjs`,
//! `tests/client/tincanjs.cjs`) and the Python `tincan` package
//! (`tests/client/tincan_session.py`), on every xAPI version each library
//! speaks. The scripts also check the libraries' traps as docs/clients.md
//! describes them, so a change in the library or in the LRS shows here.
//! (`documents::xapi_client_library_end_to_end` does the same for
//! `@xapi/xapi`.)
//!
//! TinCanJS needs `node` and `npm ci --prefix tests/client`; the Python
//! session needs `LRS_ANALYTICS_PYTHON` naming a Python with `tincan`
//! (`pip install tincan`; .ci/run installs it in the analytics venv).
//! Without them each test says SKIPPED, unless `LRS_REQUIRE_PYTHON=1` (CI)
//! makes a missing Python package a failure.

use lrs_blackbox_tests::TestServer;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("client")
}

/// Runs one script against the server with `XAPI_VERSION=version`;
/// returns its output, or panics with it when it fails.
async fn run(
    program: &Path,
    script: &str,
    server: &TestServer,
    version: &str,
    library: &str,
) -> String {
    let child = tokio::process::Command::new(program)
        .arg(script)
        .current_dir(client_dir())
        .env("LRS_ENDPOINT", format!("{}/xapi/", server.base_url))
        .env("LRS_KEY", &server.key)
        .env("LRS_SECRET", &server.secret)
        .env("XAPI_VERSION", version)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .unwrap_or_else(|_| panic!("{library} {version}: finishes within 60 s"))
        .expect("the client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("checks passed"),
        "{library}, xAPI {version}: {script} failed ({}):\n{stdout}{stderr}",
        output.status
    );
    eprint!("{stdout}");
    stdout.into_owned()
}

/// TinCanJS 0.50.0 speaks 1.0.2, 1.0.1, 1.0.0, 0.95 and 0.9
/// (`TinCan.versions()`): the session passes on every 1.0.x; 0.95 and 0.9
/// are refused with 400 naming the version header.
#[tokio::test]
async fn a_cmi5_session_through_tincanjs_on_every_version_it_speaks() {
    let test = "a_cmi5_session_through_tincanjs_on_every_version_it_speaks";
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        eprintln!("SKIPPED {test}: `node` is not on PATH");
        return;
    }
    let package = client_dir().join("node_modules/tincanjs/package.json");
    if !package.exists() {
        eprintln!(
            "SKIPPED {test}: {} is missing; run `npm ci --prefix tests/client`",
            package.display()
        );
        return;
    }
    let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    let node = Path::new("node");
    for version in ["1.0.2", "1.0.1", "1.0.0", "0.95", "0.9"] {
        let out = run(node, "tincanjs.cjs", &server, version, "TinCanJS").await;
        if version.starts_with("1.0") {
            assert!(
                out.contains("without contentType stores \"[object Object]\""),
                "{out}"
            );
        } else {
            assert!(out.contains("HTTP 400"), "{out}");
        }
    }
}

/// The Python `tincan` package (1.0.0) speaks 1.0.3, 1.0.2, 1.0.1 and 1.0.0
/// (`tincan.Version.supported`): the session passes on each.
#[tokio::test]
async fn a_cmi5_session_through_python_tincan_on_every_version_it_speaks() {
    let test = "a_cmi5_session_through_python_tincan_on_every_version_it_speaks";
    let required = std::env::var("LRS_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let skip = |reason: String| {
        if required {
            panic!("LRS_REQUIRE_PYTHON=1 but {reason}");
        }
        eprintln!(
            "SKIPPED {test}: {reason} (python3 -m venv V && V/bin/pip install tincan; LRS_ANALYTICS_PYTHON=V/bin/python)"
        );
    };
    let Some(python) = std::env::var_os("LRS_ANALYTICS_PYTHON").map(PathBuf::from) else {
        return skip("LRS_ANALYTICS_PYTHON is not set".into());
    };
    match std::process::Command::new(&python)
        .args(["-c", "import tincan"])
        .output()
    {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            return skip(format!(
                "{} cannot import tincan: {}",
                python.display(),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
        Err(error) => return skip(format!("{} does not run: {error}", python.display())),
    }
    let server = TestServer::start(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    for version in ["1.0.3", "1.0.2", "1.0.1", "1.0.0"] {
        let out = run(&python, "tincan_session.py", &server, version, "tincan").await;
        for trap in [
            "save_activity_profile on an absent profile: HTTP 400",
            "retrieve_state(registration=R): HTTP 404",
            "save_state(etag=E) answers HTTP 412",
            "query_statements(ascending=True): HTTP 400",
        ] {
            assert!(out.contains(trap), "{trap}: {out}");
        }
    }
}
