//! The staff web pages (issue 5): login with password and TOTP, sessions,
//! cookies and CSRF over plain HTTP (no browser), and the whole dashboard in
//! a real headless Chromium driven by `tests/browser/dashboard.mjs`
//! (playwright-core, axe-core), which this test starts with the server's
//! address, the staff accounts' generated secrets and the figures it
//! expects, computed from what it sent (`activity::expected`).
//!
//! TOTP codes are computed here by hand (RFC 4226/6238 with hmac and sha1),
//! not with the server's crate.

use hmac::{Hmac, Mac};
use lrs_blackbox_tests::activity::expected::{self, Scope};
use lrs_blackbox_tests::activity::{self, CalMonth, Spec};
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const COOKIE: &str = "__Host-lrs_session";

// ---------------------------------------------------------------------------
// TOTP by hand.

fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let value = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .expect("base32") as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

fn hotp(secret: &str, counter: u64) -> String {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&base32_decode(secret)).unwrap();
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn the_hand_made_totp_meets_rfc_6238() {
    // Appendix B, SHA-1, T = 59 s and 1111111109 s (last 6 of 8 digits).
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    assert_eq!(hotp(secret, 59 / 30), "287082");
    assert_eq!(hotp(secret, 1_111_111_109 / 30), "081804");
}

/// A staff account as `lrs staff add` printed it.
#[derive(Debug, Clone)]
pub(crate) struct Enrolment {
    username: String,
    password: String,
    secret: String,
    /// The last TOTP step this test used for the account (codes work once).
    last_step: u64,
}

impl Enrolment {
    /// A code the server has not seen for this account: this step's, or
    /// the next one's (one step of skew is allowed), waiting if need be.
    async fn fresh_code(&mut self) -> String {
        loop {
            let now = unix_now() / 30;
            let step = now.max(self.last_step + 1);
            if step <= now + 1 {
                self.last_step = step;
                return hotp(&self.secret, step);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

pub(crate) fn add_staff(
    server: &TestServer,
    tenant: &str,
    username: &str,
    name: &str,
    role: &str,
) -> Enrolment {
    let out = server
        .lrs(&[
            "staff",
            "add",
            "--tenant",
            tenant,
            "--username",
            username,
            "--display-name",
            name,
            "--role",
            role,
        ])
        .unwrap();
    let field = |label: &str| {
        out.lines()
            .find_map(|line| line.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no {label} in {out}"))
            .to_owned()
    };
    let uri = field("otpauth uri");
    let secret = field("totp secret");
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")),
        "{uri}"
    );
    assert!(!out.contains("argon2"), "no hash is printed");
    Enrolment {
        username: username.to_owned(),
        password: field("password"),
        secret,
        last_step: 0,
    }
}

// ---------------------------------------------------------------------------
// A cookie-keeping client without a browser.

pub(crate) struct Visit {
    pub(crate) status: StatusCode,
    headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Visit {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn csrf(&self) -> String {
        let start = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body))
            + "name=\"csrf\" value=\"".len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }

    fn set_cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(COOKIE))
            .map(str::to_owned)
    }
}

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Client {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookie: None,
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Visit {
        let request = match &self.cookie {
            Some(value) => request.header("cookie", format!("{COOKIE}={value}")),
            None => request,
        };
        let response = request.send().await.expect("request");
        let visit = Visit {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        };
        if let Some(set) = visit.set_cookie() {
            let value = set
                .split(';')
                .next()
                .unwrap()
                .trim_start_matches(&format!("{COOKIE}="))
                .to_owned();
            self.cookie = (!value.is_empty() && !set.contains("Max-Age=0")).then_some(value);
        }
        visit
    }

    pub(crate) async fn get(&mut self, path: &str) -> Visit {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// A download's status, content type and bytes (a spreadsheet is no text).
    pub(crate) async fn get_bytes(&self, path: &str) -> (StatusCode, String, Vec<u8>) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(value) = &self.cookie {
            request = request.header("cookie", format!("{COOKIE}={value}"));
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            status,
            content_type,
            response.bytes().await.expect("body").to_vec(),
        )
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Visit {
        let request = self.http.post(format!("{}{path}", self.base)).form(fields);
        self.send(request).await
    }

    /// Password then code; asserts each step.
    pub(crate) async fn login(&mut self, who: &mut Enrolment) {
        let page = self.get("/login").await;
        assert_eq!(page.status, StatusCode::OK);
        let page = self
            .post(
                "/login",
                &[
                    ("csrf", &page.csrf()),
                    ("username", &who.username),
                    ("password", &who.password),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert!(
            page.location().starts_with("/login/code"),
            "{}",
            page.location()
        );
        let form = self.get("/login/code").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let code = who.fresh_code().await;
        let done = self
            .post("/login/code", &[("csrf", &form.csrf()), ("code", &code)])
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.location(), "/dashboard");
    }
}

// ---------------------------------------------------------------------------
// A server with the KB, a library, roles and staff.

struct Staffed {
    server: TestServer,
    kb: Enrolment,
    library: Enrolment,
}

const LIBRARY_ISIL: &str = "NL-0000000001";

fn staffed(serve_args: &[&str], isil: &str) -> Staffed {
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    for args in [
        vec![
            "tenants",
            "define",
            "--id",
            "kb",
            "--name",
            "Koninklijke Bibliotheek",
            "--kind",
            "kb",
        ],
        vec![
            "tenants",
            "define",
            "--id",
            "bieb-a",
            "--name",
            "Bibliotheek Aan Zee",
            "--kind",
            "library",
            "--isil",
            isil,
        ],
        vec![
            "roles",
            "define",
            "--name",
            "kb-inzicht",
            "--permission",
            "figures.read",
            "--permission",
            "progress.read",
        ],
        vec![
            "roles",
            "define",
            "--name",
            "bieb-medewerker",
            "--permission",
            "figures.read",
            "--permission",
            "progress.read",
            "--permission",
            "progress.assign",
        ],
    ] {
        server.lrs(&args).unwrap();
    }
    let kb = add_staff(&server, "kb", "kb.analist", "Karin Analist", "kb-inzicht");
    let library = add_staff(
        &server,
        "bieb-a",
        "lies@bieb.example.nl",
        "Lies Medewerker",
        "bieb-medewerker",
    );
    server.serve_args = serve_args.iter().map(|s| s.to_string()).collect();
    server.launch().unwrap();
    Staffed {
        server,
        kb,
        library,
    }
}

// ---------------------------------------------------------------------------
// Plain HTTP: login, cookies, CSRF, sessions.

#[tokio::test]
async fn login_takes_a_password_and_a_fresh_code_with_a_strict_session_cookie() {
    let mut staffed = staffed(&[], LIBRARY_ISIL);
    let mut client = Client::new(&staffed.server.base_url);

    // Not logged in: the pages send you to the login.
    let page = client.get("/dashboard").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/login"), "{}", page.location());

    let login = client.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    let cookie = login
        .set_cookie()
        .expect("a session cookie at the login page");
    for part in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(
        !cookie.contains("Domain="),
        "a __Host- cookie has no Domain"
    );
    assert_eq!(
        login.headers.get_all("set-cookie").iter().count(),
        1,
        "one cookie, nothing else"
    );
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(login.headers["cache-control"], "no-store");
    assert!(login.body.contains("<html lang=\"nl\">"), "Dutch first");
    let anonymous = client.cookie.clone().unwrap();

    // Wrong password and unknown user: the same answer.
    let wrong = client
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("username", &staffed.kb.username),
                ("password", "not-the-password-at-all"),
            ],
        )
        .await;
    let unknown = client
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("username", "nobody.here"),
                ("password", "not-the-password-at-all"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let message = "Onbekende gebruikersnaam of onjuist wachtwoord.";
    assert!(wrong.body.contains(message) && unknown.body.contains(message));

    // A login form without the session's CSRF token does nothing.
    let forged = client
        .post(
            "/login",
            &[
                ("csrf", "forged"),
                ("username", &staffed.kb.username),
                ("password", &staffed.kb.password),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // The right password (the user name in another case): on to the code,
    // with a new session id.
    let login = client.get("/login").await;
    let step = client
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("username", &staffed.kb.username.to_uppercase()),
                ("password", &staffed.kb.password),
            ],
        )
        .await;
    assert_eq!(step.status, StatusCode::SEE_OTHER, "{}", step.body);
    let half = client.cookie.clone().unwrap();
    assert_ne!(half, anonymous, "a new id after the password");
    // Half logged in is not logged in.
    assert_eq!(client.get("/dashboard").await.status, StatusCode::SEE_OTHER);
    let form = client.get("/login/code").await;
    let wrong_code = client
        .post("/login/code", &[("csrf", &form.csrf()), ("code", "000000")])
        .await;
    assert_eq!(wrong_code.status, StatusCode::UNAUTHORIZED);
    let code = staffed.kb.fresh_code().await;
    let done = client
        .post("/login/code", &[("csrf", &form.csrf()), ("code", &code)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/dashboard");
    let session = client.cookie.clone().unwrap();
    assert_ne!(session, half, "a new id after the code");

    let dashboard = client.get("/dashboard").await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.body);
    assert!(dashboard.body.contains("Karin Analist"));
    assert_eq!(dashboard.headers["cache-control"], "no-store");

    // The half-logged-in id is dead.
    let mut stale = Client::new(&staffed.server.base_url);
    stale.cookie = Some(half);
    assert_eq!(stale.get("/login/code").await.status, StatusCode::SEE_OTHER);

    // The same code again (a second login within its window) is refused.
    let mut again = Client::new(&staffed.server.base_url);
    let login = again.get("/login").await;
    again
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("username", &staffed.kb.username),
                ("password", &staffed.kb.password),
            ],
        )
        .await;
    let form = again.get("/login/code").await;
    let replay = again
        .post("/login/code", &[("csrf", &form.csrf()), ("code", &code)])
        .await;
    assert_eq!(
        replay.status,
        StatusCode::UNAUTHORIZED,
        "a used code works once"
    );

    // English on request, and by Accept-Language.
    let english = client.get("/dashboard?lang=en").await;
    assert!(english.body.contains("<html lang=\"en\">"));
    let remembered = client.get("/dashboard").await;
    assert!(
        remembered.body.contains("<html lang=\"en\">"),
        "the choice is remembered"
    );
    let browser_english = Client::new(&staffed.server.base_url)
        .http
        .get(format!("{}/login", staffed.server.base_url))
        .header("accept-language", "en-GB,en;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(browser_english.contains("<html lang=\"en\">"));
}

#[tokio::test]
async fn logout_needs_the_sessions_csrf_token_and_ends_the_session() {
    let mut staffed = staffed(&[], LIBRARY_ISIL);
    let mut client = Client::new(&staffed.server.base_url);
    client.login(&mut staffed.library).await;
    let page = client.get("/dashboard").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.csrf();

    let missing = client.post("/logout", &[]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let forged = client
        .post("/logout", &[("csrf", "x".repeat(43).as_str())])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        client.get("/dashboard").await.status,
        StatusCode::OK,
        "still logged in"
    );

    let session = client.cookie.clone().unwrap();
    let out = client.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.location().starts_with("/login?bye=1"),
        "{}",
        out.location()
    );
    assert!(
        out.set_cookie().unwrap().contains("Max-Age=0"),
        "the cookie is removed"
    );

    // The old id opens nothing any more.
    let mut replayed = Client::new(&staffed.server.base_url);
    replayed.cookie = Some(session);
    let after = replayed.get("/dashboard").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(
        after.location().contains("expired=1"),
        "{}",
        after.location()
    );

    // The audit trail holds the login, the pages and the logout under the
    // account's key, never the user name typed (an e-mail address here).
    staffed.server.stop().unwrap();
    let trail = staffed.server.lrs(&["audit", "export"]).unwrap();
    let records: Vec<Value> = trail
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let actions = |action: &str| {
        records
            .iter()
            .filter(|r| r["action"] == action)
            .cloned()
            .collect::<Vec<_>>()
    };
    let login = actions("staff.login");
    assert_eq!(login.len(), 1, "{trail}");
    let principal = login[0]["principal"].as_str().unwrap().to_owned();
    assert!(principal.starts_with("staff:"), "{principal}");
    assert_eq!(login[0]["tenant"], "bieb-a");
    assert_eq!(actions("staff.logout")[0]["principal"], principal.as_str());
    assert!(
        actions("GET /dashboard")
            .iter()
            .any(|r| r["principal"] == principal.as_str()
                && r["outcome"] == 200
                && r["auth_method"] == "staff_session"),
        "page views are audited with the principal and how it logged in: {trail}"
    );
    assert!(
        !trail.contains("lies@bieb.example.nl"),
        "no user name in the trail"
    );
}

#[tokio::test]
async fn a_session_ends_after_the_idle_time() {
    let mut staffed = staffed(&["--session-idle-minutes", "0.1"], LIBRARY_ISIL);
    let mut client = Client::new(&staffed.server.base_url);
    client.login(&mut staffed.kb).await;
    // Activity keeps it alive...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(client.get("/dashboard").await.status, StatusCode::OK);
    }
    // ...6 s without a request ends it.
    tokio::time::sleep(Duration::from_millis(7000)).await;
    let page = client.get("/dashboard").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().contains("expired=1"), "{}", page.location());
    let login = client.get(page.location()).await;
    assert!(
        login.body.contains("Uw sessie is verlopen"),
        "{}",
        login.body
    );
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_login_out() {
    let staffed = staffed(&["--auth-failures-per-key", "3"], LIBRARY_ISIL);
    let mut client = Client::new(&staffed.server.base_url);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let login = client.get("/login").await;
        let visit = client
            .post(
                "/login",
                &[
                    ("csrf", &login.csrf()),
                    ("username", &staffed.kb.username),
                    ("password", "wrong-wrong-wrong"),
                ],
            )
            .await;
        statuses.push(visit.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Locked out: even the right password waits.
    let login = client.get("/login").await;
    let right = client
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("username", &staffed.kb.username),
                ("password", &staffed.kb.password),
            ],
        )
        .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(right.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn the_staff_command_keeps_secrets_sealed_and_refuses_weak_passwords() {
    let mut staffed = staffed(&[], LIBRARY_ISIL);
    staffed.server.stop().unwrap();
    let server = &staffed.server;
    let weak = server
        .lrs_outcome(&[
            "staff",
            "add",
            "--data-dir",
            server.data_dir.to_str().unwrap(),
            "--tenant",
            "kb",
            "--username",
            "zwak",
            "--display-name",
            "Zwak",
            "--role",
            "kb-inzicht",
            "--min-password-length",
            "12",
            "--password-stdin",
        ])
        .unwrap();
    // No stdin given: an empty password, refused by the policy.
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12"));
    let unknown_role = server
        .lrs_outcome(&[
            "staff",
            "add",
            "--data-dir",
            server.data_dir.to_str().unwrap(),
            "--tenant",
            "kb",
            "--username",
            "x",
            "--display-name",
            "X",
            "--role",
            "no-such-role",
        ])
        .unwrap();
    assert!(!unknown_role.status.success());
    let listed = server.lrs(&["staff", "list"]).unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("\"username\":\"kb.analist\""));
    assert!(!listed.contains(&staffed.kb.password) && !listed.contains(&staffed.kb.secret));
    // Nothing of the account is in the log's files in clear.
    let mut found = Vec::new();
    for entry in walk(&server.data_dir.join("log")) {
        let bytes = std::fs::read(&entry).unwrap();
        for needle in ["kb.analist", "Karin Analist", staffed.kb.secret.as_str()] {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!("{needle} in {}", entry.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");

    // Closed: the password no longer opens anything (same answer as wrong).
    server
        .lrs(&["staff", "close", "--username", "kb.analist"])
        .unwrap();
    staffed.server.launch().unwrap();
    let mut client = Client::new(&staffed.server.base_url);
    let login = client.get("/login").await;
    let refused = client
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("username", &staffed.kb.username),
                ("password", &staffed.kb.password),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The dashboard in a real browser.

fn figures_json(figures: &expected::Figures) -> Value {
    json!({
        "hits": figures.hits,
        "active_users": figures.active_users,
        "enrolled_participants": figures.enrolled_participants,
        "participants_started": figures.participants_started,
        "courses_started": figures.courses_started,
        "courses_completed": figures.courses_completed,
        "top_started": figures.top_started,
        "top_completed": figures.top_completed,
    })
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let chromium = std::env::var("LRS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    // On a developer's fresh machine the README's test command skips this
    // test, saying why; CI (.ci/run installs both) sets LRS_REQUIRE_BROWSER,
    // so there a missing browser fails instead of passing silently.
    let missing = if !Path::new(&chromium).exists() {
        Some(format!("{chromium} is missing: apt-get install chromium"))
    } else if !browser_dir().join("node_modules/playwright-core").exists() {
        Some("run npm ci --prefix tests/browser".to_owned())
    } else {
        None
    };
    if let Some(missing) = missing {
        assert!(
            std::env::var_os("LRS_REQUIRE_BROWSER").is_none(),
            "LRS_REQUIRE_BROWSER is set and {missing}"
        );
        eprintln!("SKIPPED the_dashboard_works_in_a_real_browser: {missing}");
        return;
    }
    // A small generated month, in the month before this one so the picker
    // offers it whenever the test runs.
    let spec = Spec {
        month: CalMonth::current().previous(),
        learners: 160,
        libraries: 6,
        courses: 12,
        course_apps: 2,
        ..Spec::default()
    };
    let month = activity::generate(spec.clone());
    let isil = month.world.libraries[0].clone();
    let (main, _provider, _idp_dir) = staffed_with_idp(&isil).await;
    let mut server = main.server;
    let port: u16 = server.base_url.rsplit(':').next().unwrap().parse().unwrap();
    server.stop().unwrap();
    // The KB writes the statements with a credential of its own, and names
    // the courses in its course model (set before the statements, which it
    // then applies to); the modules and their moveOn only of the courses the
    // generated world declares (its pure cmi5 LMS's), as the independent
    // computation assumes: a declared structure completes a course by
    // itself (docs/progress-and-figures.md).
    let (key, secret) = server
        .add_credential("KB schrijver", "kb", &["all"])
        .unwrap();
    // The KB's role also reads the privacy reports, so the browser checks
    // that page too.
    server
        .lrs(&[
            "roles",
            "define",
            "--name",
            "kb-inzicht",
            "--permission",
            "figures.read",
            "--permission",
            "progress.read",
            "--permission",
            "privacy.reports",
        ])
        .unwrap();
    let reader = server
        .lrs(&[
            "credentials",
            "add",
            "--name",
            "KB lezer",
            "--tenant",
            "kb",
            "--role",
            "kb-inzicht",
        ])
        .unwrap();
    let kb_reader = {
        let (k, s) = reader.trim().split_once(' ').unwrap();
        (k.to_owned(), s.to_owned())
    };
    let model = json!({
        "courses": month.world.courses.iter().enumerate().map(|(c, course)| {
            let modules: Vec<Value> = if month.world.declared(c) {
                course.modules.iter().enumerate().map(|(i, module)| json!({
                    "id": module,
                    "name": {"nl": format!("Les {}", i + 1)},
                    "moveOn": activity::move_on(i).as_str(),
                })).collect()
            } else {
                Vec::new()
            };
            json!({"id": course.id, "name": {"nl": course.name}, "modules": modules})
        }).collect::<Vec<_>>(),
    });
    let model_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(model_file.path(), model.to_string()).unwrap();
    server
        .lrs(&[
            "course-model",
            "set",
            "--tenant",
            "kb",
            model_file.path().to_str().unwrap(),
        ])
        .unwrap();
    server.launch_on(port).unwrap();
    let writer = server.client().with_credential(&key, &secret);
    let stored_month = CalMonth::current();
    for chunk in month.sent.chunks(500) {
        let batch = Value::Array(chunk.iter().map(|s| s.statement.clone()).collect());
        let reply = writer.post_statements(&batch).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let want = expected::monthly(&month, stored_month);
    let figures = |m: CalMonth, scope: Scope| want.get(&(m, scope)).cloned().unwrap_or_default();
    let m = spec.month;

    // Wait until the figures projection has caught up with the log.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value = http
            .get(format!("{}/api/figures/monthly", server.base_url))
            .query(&[("month", m.to_string())])
            .basic_auth(&kb_reader.0, Some(&kb_reader.1))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        if body["figures"]["hits"].as_u64() == Some(figures(m, Scope::Total).hits)
            || Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A second server whose sessions end after 6 s without a request.
    let idle = staffed(&["--session-idle-minutes", "0.1"], LIBRARY_ISIL);
    // A third whose provider also signs learners in, with two learners'
    // progress: Anne signs in.
    let learners = learner_world(vec![anne()]).await;

    let screenshots = match std::env::var("LRS_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => tempfile::tempdir().unwrap().keep(),
    };
    let library_name = "Bibliotheek Aan Zee";
    let plan = json!({
        "base_url": server.base_url,
        "chromium": chromium,
        "screenshots": screenshots,
        "month": m.to_string(),
        "previous_month": m.previous().to_string(),
        "kb": {"username": main.kb.username, "password": main.kb.password, "secret": main.kb.secret},
        "library": {
            "username": main.library.username, "password": main.library.password,
            "secret": main.library.secret, "isil": isil, "name": library_name,
        },
        "oidc": {"button": "Inloggen met KB-account", "name": "Olga Oidc"},
        "learner": {
            "base_url": learners.staffed.server.base_url,
            "button": "Inloggen met KB-account",
            "name": ANNE_NAME,
            "courses": ["Digisterker", "Veilig online", "E-mail"],
            "absent": [BERT_SUB, BERT_NAME, BERTS_COURSE, BERTS_COURSE_NAME, BERTS_MODULE_NAME],
        },
        "idle": {
            "base_url": idle.server.base_url,
            "username": idle.kb.username, "password": idle.kb.password, "secret": idle.kb.secret,
            "idle_seconds": 6,
        },
        "course_names": month.world.courses.iter().map(|c| (c.id.clone(), c.name.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        "expected": {
            "total": figures_json(&figures(m, Scope::Total)),
            "previous_total": figures_json(&figures(m.previous(), Scope::Total)),
            "library": figures_json(&figures(m, Scope::Library(isil.clone()))),
        },
    });
    let plan_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(plan_file.path(), serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
    let output = tokio::process::Command::new("node")
        .arg(browser_dir().join("dashboard.mjs"))
        .env("LRS_BROWSER_PLAN", plan_file.path())
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        output.status,
        server.stderr()
    );
    assert!(stdout.contains("all browser checks passed"), "{stdout}");
}

// ---------------------------------------------------------------------------
// Staff login through an OpenID provider: a real one on a loopback port.

mod idp {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::{json, Value};
    use sha2::Digest;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    pub const CLIENT_ID: &str = "lrs-dashboard";
    pub const SECRET_ENV: &str = "LRS_TEST_STAFF_OIDC_SECRET";

    struct Pending {
        nonce: String,
        challenge: String,
        redirect_uri: String,
        /// The user who consented: their claims go into the ID token.
        claims: Value,
    }

    #[derive(Default)]
    pub struct Seen {
        pending: HashMap<String, Pending>,
        /// Token requests whose PKCE verifier matched the challenge.
        pub pkce_verified: usize,
        /// Token requests refused (wrong secret, verifier, code).
        pub refused: usize,
        /// Authorization requests so far: the n-th signs in user n (the
        /// last user again once the list runs out).
        pub authorized: usize,
    }

    /// An OpenID provider whose users consent in turn: discovery, authorize
    /// (answers at once with a code for the next user), token (checks the
    /// client secret and PKCE, signs an RS256 ID token with the nonce), keys.
    pub struct StaffIdp {
        pub issuer: String,
        pub secret: String,
        pub seen: Arc<Mutex<Seen>>,
    }

    impl StaffIdp {
        /// A provider whose users sign in one after the other.
        pub async fn start_users(users: Vec<Value>) -> Self {
            assert!(!users.is_empty());
            use axum::extract::{Form, Query};
            use axum::routing::{get, post};
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let private = tokio::task::spawn_blocking(|| {
                rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap()
            })
            .await
            .unwrap();
            let encoding =
                jsonwebtoken::EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes());
            let public = private.to_public_key();
            let jwks = json!({"keys": [{
                "kty": "RSA", "use": "sig", "kid": "k1", "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }]});
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let issuer = format!("http://{}", listener.local_addr().unwrap());
            let secret = crate::common::new_id();
            let seen = Arc::new(Mutex::new(Seen::default()));
            let discovery = json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/keys"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
            });
            let authorize_seen = seen.clone();
            let token_seen = seen.clone();
            let token_issuer = issuer.clone();
            let token_secret = secret.clone();
            let app = axum::Router::new()
                .route(
                    "/.well-known/openid-configuration",
                    get(move || async move { axum::Json(discovery) }),
                )
                .route("/keys", get(move || async move { axum::Json(jwks) }))
                .route(
                    "/authorize",
                    get(move |Query(q): Query<HashMap<String, String>>| async move {
                        assert_eq!(q["response_type"], "code");
                        assert_eq!(q["client_id"], CLIENT_ID);
                        assert_eq!(q["code_challenge_method"], "S256");
                        let code = crate::common::new_id();
                        let mut seen = authorize_seen.lock().unwrap();
                        let claims = users[seen.authorized.min(users.len() - 1)].clone();
                        seen.authorized += 1;
                        seen.pending.insert(
                            code.clone(),
                            Pending {
                                nonce: q["nonce"].clone(),
                                challenge: q["code_challenge"].clone(),
                                redirect_uri: q["redirect_uri"].clone(),
                                claims,
                            },
                        );
                        drop(seen);
                        let mut to = reqwest::Url::parse(&q["redirect_uri"]).unwrap();
                        to.query_pairs_mut()
                            .append_pair("code", &code)
                            .append_pair("state", &q["state"]);
                        (
                            axum::http::StatusCode::FOUND,
                            [("location", to.to_string())],
                        )
                    }),
                )
                .route(
                    "/token",
                    post(
                        move |headers: axum::http::HeaderMap,
                              Form(form): Form<HashMap<String, String>>| async move {
                            let mut seen = token_seen.lock().unwrap();
                            let basic = format!(
                                "Basic {}",
                                base64::engine::general_purpose::STANDARD
                                    .encode(format!("{CLIENT_ID}:{token_secret}"))
                            );
                            let authorised = headers
                                .get("authorization")
                                .is_some_and(|v| v.to_str().unwrap_or("") == basic);
                            let pending = form.get("code").and_then(|c| seen.pending.remove(c));
                            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                            let ok = authorised
                                && pending.as_ref().is_some_and(|p| {
                                    URL_SAFE_NO_PAD
                                        .encode(sha2::Sha256::digest(verifier.as_bytes()))
                                        == p.challenge
                                        && form.get("redirect_uri") == Some(&p.redirect_uri)
                                });
                            if !ok {
                                seen.refused += 1;
                                return (
                                    axum::http::StatusCode::BAD_REQUEST,
                                    axum::Json(json!({"error": "invalid_grant"})),
                                );
                            }
                            seen.pkce_verified += 1;
                            let pending = pending.unwrap();
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap()
                                .as_secs();
                            let mut id_claims = pending.claims.clone();
                            for (key, value) in [
                                ("iss", json!(token_issuer)),
                                ("aud", json!(CLIENT_ID)),
                                ("iat", json!(now)),
                                ("exp", json!(now + 300)),
                                ("nonce", json!(pending.nonce)),
                            ] {
                                id_claims[key] = value;
                            }
                            let mut header =
                                jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                            header.kid = Some("k1".into());
                            let id_token =
                                jsonwebtoken::encode(&header, &id_claims, &encoding).unwrap();
                            (
                                axum::http::StatusCode::OK,
                                axum::Json(json!({
                                    "access_token": crate::common::new_id(),
                                    "token_type": "Bearer",
                                    "expires_in": 300,
                                    "id_token": id_token,
                                })),
                            )
                        },
                    ),
                );
            tokio::spawn(async move { axum::serve(listener, app).await });
            Self {
                issuer,
                secret,
                seen,
            }
        }

        /// The `--staff-oidc` file for a server at `base_url`, with the
        /// fields of `extra` added (`{"learners": {}}`: it signs learners in).
        pub fn config_file(
            &self,
            dir: &std::path::Path,
            base_url: &str,
            extra: &Value,
        ) -> std::path::PathBuf {
            let path = dir.join("staff-oidc.json");
            let mut config = json!({
                "display_name": "KB-account",
                "issuer": self.issuer,
                "client_id": CLIENT_ID,
                "client_secret_env": SECRET_ENV,
                "redirect_url": format!("{base_url}/login/oidc/callback"),
                "tenant": {"claim": "kb_tenant", "map": {"KB": "kb"}},
                "roles": {"claim": "roles", "map": {"LRS.Inzicht": ["kb-inzicht"]}},
            });
            for (key, value) in extra.as_object().into_iter().flatten() {
                config[key] = value.clone();
            }
            std::fs::write(&path, config.to_string()).unwrap();
            path
        }
    }
}

/// A staffed server that also trusts a test OpenID provider for staff.
async fn staffed_with_idp(isil: &str) -> (Staffed, idp::StaffIdp, tempfile::TempDir) {
    staffed_with_idp_users(isil, vec![olga()], &json!({})).await
}

/// The provider's staff member: KB, role LRS.Inzicht.
fn olga() -> Value {
    json!({
        "sub": "olga-1", "name": "Olga Oidc", "kb_tenant": "KB", "roles": ["LRS.Inzicht", "Other"],
    })
}

/// A staffed server trusting a test provider whose `users` sign in in
/// turn, its `--staff-oidc` file with `extra` fields.
async fn staffed_with_idp_users(
    isil: &str,
    users: Vec<Value>,
    extra: &Value,
) -> (Staffed, idp::StaffIdp, tempfile::TempDir) {
    let provider = idp::StaffIdp::start_users(users).await;
    let dir = tempfile::tempdir().unwrap();
    let mut staffed = staffed(&[], isil);
    staffed.server.stop().unwrap();
    // The redirect URL names the server's address: a port picked here,
    // which the server then listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let file = provider.config_file(dir.path(), &base, extra);
    staffed
        .server
        .env
        .push((idp::SECRET_ENV.into(), provider.secret.clone()));
    staffed.server.serve_args = vec!["--staff-oidc".into(), file.display().to_string()];
    staffed.server.launch_on(port).unwrap();
    (staffed, provider, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_log_in_through_an_openid_provider_with_pkce_state_and_nonce() {
    let (staffed, provider, _dir) = staffed_with_idp(LIBRARY_ISIL).await;
    let base = staffed.server.base_url.clone();
    let mut client = Client::new(&base);
    let login = client.get("/login").await;
    assert!(
        login.body.contains("Inloggen met KB-account"),
        "{}",
        login.body
    );
    let anonymous = client.cookie.clone().unwrap();

    // Off to the provider, which answers at once with a code.
    let start = client.get("/login/oidc").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let authorize = start.location().to_owned();
    assert!(authorize.starts_with(&provider.issuer), "{authorize}");
    assert_ne!(
        client.cookie.as_deref(),
        Some(anonymous.as_str()),
        "a new id for the flow"
    );
    let at_provider = client.http.get(&authorize).send().await.unwrap();
    assert_eq!(at_provider.status(), StatusCode::FOUND);
    let callback = at_provider.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let callback_path = callback.strip_prefix(&base).expect("back to us");

    // The provider's redirect comes cross-site, without our cookie: the
    // callback page moves on to our own site, where the cookie comes along.
    let mut cross_site = Client::new(&base);
    let bridge = cross_site.get(callback_path).await;
    assert_eq!(bridge.status, StatusCode::OK);
    let refresh = bridge
        .body
        .split("http-equiv=\"refresh\" content=\"0;url=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a meta refresh")
        .replace("&amp;", "&");
    assert!(refresh.starts_with("/login/oidc/finish?"), "{refresh}");
    assert!(cross_site.cookie.is_none(), "the bridge sets no cookie");

    // A state that is not the session's is refused (and spends the try).
    let forged = refresh.replace("state=", "state=x");
    let mut other = Client::new(&base);
    other.cookie = client.cookie.clone();
    let refused = other.get(&forged).await;
    assert!(
        refused.location().contains("oidc_failed=1"),
        "{}",
        refused.location()
    );
    assert_eq!(
        provider.seen.lock().unwrap().pkce_verified,
        0,
        "no code was traded"
    );

    // The real try, from a new start.
    let start = client.get("/login/oidc").await;
    let at_provider = client.http.get(start.location()).send().await.unwrap();
    let callback = at_provider.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let bridge = Client::new(&base)
        .get(callback.strip_prefix(&base).unwrap())
        .await;
    let refresh = bridge
        .body
        .split("http-equiv=\"refresh\" content=\"0;url=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let done = client.get(&refresh).await;
    assert_eq!(
        done.status,
        StatusCode::SEE_OTHER,
        "{}\n{}",
        done.body,
        staffed.server.stderr()
    );
    assert_eq!(done.location(), "/dashboard");
    assert_eq!(
        provider.seen.lock().unwrap().pkce_verified,
        1,
        "the verifier matched the challenge"
    );
    let dashboard = client.get("/dashboard").await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.body);
    assert!(
        dashboard.body.contains("Olga Oidc"),
        "the name from the ID token"
    );
    // The same finish link again: its state was used.
    let replay = client.get(&refresh).await;
    assert!(replay.location().contains("oidc_failed=1") || replay.location() == "/dashboard");
}

// ---------------------------------------------------------------------------
// A learner's own progress page (req. 2.12).

const COURSE_TYPE: &str = "https://w3id.org/xapi/cmi5/activitytype/course";
const MODULE_TYPE: &str = "http://adlnet.gov/expapi/activities/module";
/// The course both learners follow, and the one only Bert follows.
const SHARED_COURSE: &str = "https://kb.example/cursus/digisterker";
const BERTS_COURSE: &str = "https://kb.example/cursus/geheime-gids-voor-bert";
const BERTS_COURSE_NAME: &str = "Geheime gids voor Bert";
const BERTS_MODULE: &str = "https://kb.example/cursus/geheime-gids-voor-bert/hoofdstuk-x";
const BERTS_MODULE_NAME: &str = "Hoofdstuk Xylofoon";

/// The provider's learners: Anne signs in; Bert only has progress.
const ANNE_SUB: &str = "leerling-anne-5c1";
const ANNE_NAME: &str = "Anne Leerling";
const BERT_SUB: &str = "leerling-bert-9d7";
const BERT_NAME: &str = "Bert Bijzonder";

fn anne() -> Value {
    json!({"sub": ANNE_SUB, "name": ANNE_NAME})
}

/// A statement of `actor` about `object` in `course`, with a result.
fn course_statement(
    actor: &Value,
    verb: &str,
    course: (&str, &str),
    object: (&str, &str, &str),
    result: Option<Value>,
) -> Value {
    let mut statement = json!({
        "id": crate::common::new_id(),
        "actor": actor,
        "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}"), "display": {"nl-NL": verb}},
        "object": {"id": object.0, "definition": {"type": object.1, "name": {"nl-NL": object.2}}},
        "context": {"contextActivities": {"grouping": [
            {"id": course.0, "definition": {"type": COURSE_TYPE, "name": {"nl-NL": course.1}}}
        ]}}
    });
    if let Some(result) = result {
        statement["result"] = result;
    }
    statement
}

/// A server whose staff OpenID provider also signs learners in, with the
/// progress of two learners of that provider (accounts `{homePage: issuer,
/// name: sub}`), and a KB reader credential for the progress API.
struct LearnerWorld {
    staffed: Staffed,
    provider: idp::StaffIdp,
    _dir: tempfile::TempDir,
    reader: (String, String),
    anne: Value,
    bert: Value,
}

async fn learner_world(users: Vec<Value>) -> LearnerWorld {
    let (mut staffed, provider, dir) =
        staffed_with_idp_users(LIBRARY_ISIL, users, &json!({"learners": {}})).await;
    let port: u16 = staffed
        .server
        .base_url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    staffed.server.stop().unwrap();
    let (key, secret) = staffed
        .server
        .add_credential("KB schrijver", "kb", &["all"])
        .unwrap();
    let reader = staffed
        .server
        .lrs(&[
            "credentials",
            "add",
            "--name",
            "KB lezer",
            "--tenant",
            "kb",
            "--role",
            "kb-inzicht",
        ])
        .unwrap();
    let reader = {
        let (k, s) = reader.trim().split_once(' ').unwrap();
        (k.to_owned(), s.to_owned())
    };
    staffed.server.launch_on(port).unwrap();
    let anne =
        json!({"name": ANNE_NAME, "account": {"homePage": provider.issuer, "name": ANNE_SUB}});
    let bert =
        json!({"name": BERT_NAME, "account": {"homePage": provider.issuer, "name": BERT_SUB}});
    let shared = (SHARED_COURSE, "Digisterker");
    let m1 = (
        "https://kb.example/cursus/digisterker/veilig-online",
        MODULE_TYPE,
        "Veilig online",
    );
    let m2 = (
        "https://kb.example/cursus/digisterker/e-mail",
        MODULE_TYPE,
        "E-mail",
    );
    let done = |scaled: f64, duration: &str| {
        Some(
            json!({"score": {"scaled": scaled}, "completion": true, "success": scaled >= 0.5, "duration": duration}),
        )
    };
    let batch = json!([
        course_statement(&anne, "launched", shared, m1, None),
        course_statement(&anne, "completed", shared, m1, done(0.8, "PT12M")),
        course_statement(&anne, "launched", shared, m2, None),
        course_statement(
            &anne,
            "failed",
            shared,
            m2,
            Some(json!({"score": {"scaled": 0.4}, "success": false, "duration": "PT5M30S"}))
        ),
        course_statement(&bert, "launched", shared, m1, None),
        course_statement(&bert, "passed", shared, m1, done(0.95, "PT20M")),
        course_statement(
            &bert,
            "launched",
            (BERTS_COURSE, BERTS_COURSE_NAME),
            (BERTS_MODULE, MODULE_TYPE, BERTS_MODULE_NAME),
            None
        ),
        course_statement(
            &bert,
            "completed",
            (BERTS_COURSE, BERTS_COURSE_NAME),
            (BERTS_MODULE, MODULE_TYPE, BERTS_MODULE_NAME),
            done(0.7, "PT7M")
        ),
    ]);
    let writer = staffed.server.client().with_credential(&key, &secret);
    let reply = writer.post_statements(&batch).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    LearnerWorld {
        staffed,
        provider,
        _dir: dir,
        reader,
        anne,
        bert,
    }
}

impl LearnerWorld {
    /// The progress API's answer for `agent`, read by the KB.
    async fn progress_of(&self, agent: &Value) -> Value {
        let account = json!({"account": agent["account"]});
        let response = reqwest::Client::new()
            .get(format!(
                "{}/api/progress/learner",
                self.staffed.server.base_url
            ))
            .query(&[("agent", account.to_string())])
            .basic_auth(&self.reader.0, Some(&self.reader.1))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

/// Out to the provider, back through the callback's bridge page, and the
/// finish on our own site: the finish's answer.
async fn sign_in_through_provider(client: &mut Client, base: &str) -> Visit {
    let start = client.get("/login/oidc").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let at_provider = client.http.get(start.location()).send().await.unwrap();
    let callback = at_provider.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let bridge = Client::new(base)
        .get(callback.strip_prefix(base).unwrap())
        .await;
    let refresh = bridge
        .body
        .split("http-equiv=\"refresh\" content=\"0;url=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    client.get(&refresh).await
}

/// The value of attribute `name` in the first tag of `html` that has it.
fn attribute(html: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..].split('"').next()?.replace("&amp;", "&"))
}

/// What the page shows of one course: status, modules done and total,
/// score, seconds, and per module (status, score, seconds).
#[derive(Debug, PartialEq)]
struct ShownCourse {
    status: String,
    done: u64,
    total: u64,
    score: Option<f64>,
    seconds: u64,
    modules: std::collections::BTreeMap<String, (String, Option<f64>, u64)>,
}

fn shown_courses(page: &str) -> std::collections::BTreeMap<String, ShownCourse> {
    let number = |text: Option<String>| text.and_then(|t| t.parse::<u64>().ok()).unwrap();
    let score = |text: Option<String>| text.filter(|t| !t.is_empty()).map(|t| t.parse().unwrap());
    page.split("<section class=\"course\"")
        .skip(1)
        .map(|section| {
            let section = section.split("</section>").next().unwrap();
            let course = attribute(section, "data-course").unwrap();
            let facts = section.split("</dl>").next().unwrap();
            let modules = section
                .split("<tr data-module=")
                .skip(1)
                .map(|row| {
                    let row = format!(" data-module={row}");
                    (
                        attribute(&row, "data-module").unwrap(),
                        (
                            attribute(&row, "data-status").unwrap(),
                            score(attribute(&row, "data-score")),
                            number(attribute(&row, "data-seconds")),
                        ),
                    )
                })
                .collect();
            let shown = ShownCourse {
                status: attribute(facts, "data-status").unwrap(),
                done: number(attribute(facts, "data-done")),
                total: number(attribute(facts, "data-total")),
                score: score(attribute(facts, "data-score")),
                seconds: number(attribute(facts, "data-seconds")),
                modules,
            };
            (course, shown)
        })
        .collect()
}

/// The same from the progress API's JSON.
fn api_courses(progress: &Value) -> std::collections::BTreeMap<String, ShownCourse> {
    progress["courses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|course| {
            let modules = course["modules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["module"].as_str().unwrap().to_owned(),
                        (
                            m["status"].as_str().unwrap().to_owned(),
                            m["score"].as_f64(),
                            m["time_spent_seconds"].as_u64().unwrap(),
                        ),
                    )
                })
                .collect();
            (
                course["course"].as_str().unwrap().to_owned(),
                ShownCourse {
                    status: course["status"].as_str().unwrap().to_owned(),
                    done: course["modules_done"].as_u64().unwrap(),
                    total: course["modules_total"].as_u64().unwrap(),
                    score: course["score"].as_f64(),
                    seconds: course["time_spent_seconds"].as_u64().unwrap(),
                    modules,
                },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_signs_in_and_sees_only_their_own_progress() {
    let mut world = learner_world(vec![anne(), olga()]).await;
    let base = world.staffed.server.base_url.clone();
    let for_anne = world.progress_of(&world.anne).await;
    let for_bert = world.progress_of(&world.bert).await;
    let want = api_courses(&for_anne);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        [SHARED_COURSE],
        "Anne follows one course: {for_anne}"
    );

    // The login page says learners may sign in; Anne does, and lands on her page.
    let mut anne = Client::new(&base);
    let login = anne.get("/login").await;
    assert!(
        login.body.contains("om uw eigen voortgang te zien"),
        "{}",
        login.body
    );
    let done = sign_in_through_provider(&mut anne, &base).await;
    assert_eq!(
        done.status,
        StatusCode::SEE_OTHER,
        "{}\n{}",
        done.body,
        world.staffed.server.stderr()
    );
    assert_eq!(done.location(), "/my-progress");
    let page = anne.get("/my-progress").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<html lang=\"nl\">"));
    assert!(
        page.body.contains("<h1>Mijn voortgang</h1>"),
        "{}",
        page.body
    );
    assert!(page.body.contains(ANNE_NAME), "her name from the ID token");
    assert!(page.body.contains("Digisterker") && page.body.contains("Veilig online"));

    // Exactly her courses and modules, with the progress API's status,
    // score and time.
    let shown = shown_courses(&page.body);
    assert_eq!(shown, want, "{}", page.body);
    let module =
        &shown[SHARED_COURSE].modules["https://kb.example/cursus/digisterker/veilig-online"];
    assert_eq!(
        (module.0.as_str(), module.1, module.2),
        ("passed", Some(0.8), 720),
        "the module Anne completed with success: {}",
        page.body
    );
    assert!(page.body.contains("80%") && page.body.contains("12 min"));

    // No trace of Bert: his account, name, id, his own course and module,
    // his score.
    let bert_id = for_bert["learner"].as_str().unwrap().to_owned();
    assert_eq!(bert_id.len(), 32);
    for trace in [
        BERT_SUB,
        BERT_NAME,
        "Bert",
        bert_id.as_str(),
        BERTS_COURSE,
        BERTS_COURSE_NAME,
        BERTS_MODULE,
        BERTS_MODULE_NAME,
        "95%",
        "0.95",
    ] {
        assert!(
            !page.body.contains(trace),
            "Anne's page shows {trace:?}:\n{}",
            page.body
        );
    }
    // Nor in English.
    let english = anne.get("/my-progress?lang=en").await;
    assert!(english.body.contains("<h1>My progress</h1>"));
    assert_eq!(shown_courses(&english.body), want);
    for trace in [BERT_SUB, BERT_NAME, BERTS_COURSE, BERTS_COURSE_NAME] {
        assert!(!english.body.contains(trace), "{trace}");
    }

    // A learner has no staff pages: they go to their own.
    for path in ["/dashboard", "/learners", "/privacy", "/login"] {
        let visit = anne.get(path).await;
        assert_eq!(visit.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            visit.location().starts_with("/my-progress"),
            "{path}: {}",
            visit.location()
        );
    }
    // Logging out needs the session's CSRF token, and ends the session.
    let refused = anne.post("/logout", &[("csrf", "forged")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let out = anne.post("/logout", &[("csrf", &page.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.location().starts_with("/login?bye=1"));
    let after = anne.get("/my-progress").await;
    assert!(
        after.location().starts_with("/login"),
        "{}",
        after.location()
    );

    // Staff through the same provider keep their pages and get their own
    // (empty) progress page too; a local staff account has no learner records.
    let mut olga = Client::new(&base);
    let done = sign_in_through_provider(&mut olga, &base).await;
    assert_eq!(done.location(), "/dashboard", "{}", done.body);
    let own = olga.get("/my-progress").await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert!(own.body.contains("Er zijn nog geen leerregistraties van u"));
    assert!(own.body.contains("href=\"/dashboard\"") && own.body.contains("Olga Oidc"));
    assert!(!own.body.contains(ANNE_NAME) && !own.body.contains(BERT_NAME));
    let mut karin = Client::new(&base);
    karin.login(&mut world.staffed.kb).await;
    let dashboard = karin.get("/dashboard").await;
    assert!(
        !dashboard.body.contains("href=\"/my-progress\""),
        "no own page link for a local account"
    );
    let own = karin.get("/my-progress").await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(own
        .body
        .contains("Bij deze inlog horen geen eigen leerregistraties"));

    // Both provider logins traded their code with the PKCE verifier.
    assert_eq!(world.provider.seen.lock().unwrap().pkce_verified, 2);
}
