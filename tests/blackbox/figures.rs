//! The KB's monthly figures and learner progress against an independent
//! computation (issues 5 and 20): a generated month of realistic activity
//! (about 800 learners in 120 libraries, 24 courses in six apps that each
//! speak cmi5 their own way, among them a pure cmi5 LMS whose courses the
//! KB's course model declares, without enrolment verbs, some never sending
//! a course-level statement, and an e-book reader; statements out of order,
//! voided, without a timestamp, near the Dutch month boundaries) is posted
//! to a real server as the KB; the figures
//! the server answers on `/api/figures/*` (total, every library, every app,
//! the breakdowns, the trend, the top 10s) and the progress it answers on
//! `/api/progress/learner` for a handful of learners must equal, number for
//! number (and name for name: the course model's, else the activity
//! definitions'), what `lrs_blackbox_tests::activity::expected` computes
//! from the generator's plain facts with sets and maps
//! (docs/progress-and-figures.md). Every difference is listed before the
//! test fails.

use crate::common::{define_kb_and_library, define_role, set_course_model, Api};
use futures_util::StreamExt;
use lrs_blackbox_tests::activity::expected::{self, CourseStatusRule, Figures, Scope};
use lrs_blackbox_tests::activity::{self, CalMonth, Spec};
use lrs_blackbox_tests::{StatusCode, TestServer};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The figures part of an answer, as the expectation holds them: hits,
/// active, enrolled, started, courses started, courses completed, launches.
fn figures_of(body: &Value) -> (u64, u64, u64, u64, u64, u64, u64) {
    let f = &body["figures"];
    let n = |name: &str| {
        f[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no figure {name} in {body}"))
    };
    (
        n("hits"),
        n("active_users"),
        n("enrolled_participants"),
        n("participants_started"),
        n("courses_started"),
        n("courses_completed"),
        n("launches"),
    )
}

fn expected_tuple(f: &Figures) -> (u64, u64, u64, u64, u64, u64, u64) {
    (
        f.hits,
        f.active_users,
        f.enrolled_participants,
        f.participants_started,
        f.courses_started,
        f.courses_completed,
        f.launches,
    )
}

fn top_of(list: &Value) -> Vec<(String, u64)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a top list: {list}"))
        .iter()
        .map(|c| {
            (
                c["course"].as_str().expect("course").to_owned(),
                c["count"].as_u64().expect("count"),
            )
        })
        .collect()
}

/// Compares one answer of `/api/figures/monthly` (or one month of a trend)
/// with the expectation, names of the top courses included; differences go
/// to `diffs`.
fn compare_monthly(
    what: &str,
    body: &Value,
    want: &Figures,
    month: &activity::Month,
    diffs: &mut Vec<String>,
) {
    let got = figures_of(body);
    let want_tuple = expected_tuple(want);
    if got != want_tuple {
        diffs.push(format!(
            "{what}: figures (hits, active, enrolled, started, courses started, courses completed, launches) server {got:?}, expected {want_tuple:?}"
        ));
    }
    for (list, want_list) in [
        ("top_started", &want.top_started),
        ("top_completed", &want.top_completed),
    ] {
        let got = top_of(&body[list]);
        if &got != want_list {
            diffs.push(format!(
                "{what}: {list} server {got:?}, expected {want_list:?}"
            ));
        }
        for course in body[list].as_array().into_iter().flatten() {
            let id = course["course"].as_str().unwrap_or_default();
            let want_name = expected::course_name_of(month, id);
            if course["name"].as_str() != want_name.as_deref() {
                diffs.push(format!(
                    "{what}: {list} {id} named {}, expected {want_name:?}",
                    course["name"]
                ));
            }
        }
    }
}

fn micros_of(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .timestamp_micros()
}

/// The server answers times to the second (RFC 3339 without fractions).
fn to_second(micros: Option<i64>) -> Option<i64> {
    micros.map(|t| t.div_euclid(1_000_000) * 1_000_000)
}

#[tokio::test]
async fn monthly_figures_and_progress_equal_an_independent_computation() {
    let begun = Instant::now();
    let spec = Spec {
        learners: 800,
        course_apps: 6,
        ..Spec::default()
    };
    let month = activity::generate(spec.clone());
    let generated_in = begun.elapsed();
    let styles: HashSet<activity::AppStyle> = month.world.apps.iter().map(|a| a.style).collect();
    assert_eq!(
        styles.len(),
        5,
        "cmi5 in grouping, parent-style, the pure cmi5 LMS, untyped in context, the reader"
    );

    // The KB (reads everything) and one library; a role with the reading
    // permissions; the request-rate limits off (this test posts fast).
    let biggest_library = month.world.libraries[0].clone();
    let other_library = month.world.libraries[1].clone();
    let mut server = TestServer::prepare(Path::new(env!("CARGO_BIN_EXE_lrs-under-test"))).unwrap();
    define_kb_and_library(&server, &biggest_library);
    define_role(&server, "inzicht", &["figures.read", "progress.read"]);
    // The KB's course model declares the pure cmi5 LMS's courses (modules
    // with their moveOn) and renames one course.
    set_course_model(&server, "kb", &month.world.course_model());
    let credential =
        |name: &str, tenant: &str| server.credential_with_role(name, tenant, Some("inzicht"));
    let (kb_key, kb_secret) = credential("KB analist", "kb");
    let (lib_key, lib_secret) = credential("Medewerker bieb", "bieb");
    server.env.push(("LRS_RATE_PER_ADDRESS".into(), "0".into()));
    server
        .env
        .push(("LRS_RATE_PER_CREDENTIAL".into(), "0".into()));
    server.launch().unwrap();
    let http = reqwest::Client::new();
    let kb = Api {
        http: http.clone(),
        base: server.base_url.clone(),
        key: kb_key.clone(),
        secret: kb_secret.clone(),
    };
    let library = Api {
        http: http.clone(),
        base: server.base_url.clone(),
        key: lib_key,
        secret: lib_secret,
    };

    // Post the month in batches of 500, four at a time, as the KB.
    let writer = server.client().with_credential(&kb_key, &kb_secret);
    let stored_month_before = CalMonth::current();
    let posting = Instant::now();
    let batches: Vec<Value> = month
        .sent
        .chunks(500)
        .map(|chunk| Value::Array(chunk.iter().map(|s| s.statement.clone()).collect()))
        .collect();
    let results: Vec<_> = futures_util::stream::iter(batches.iter().enumerate())
        .map(|(i, batch)| {
            let writer = writer.clone();
            async move { (i, writer.post_statements(batch).await.expect("POST")) }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for (i, reply) in results {
        assert_eq!(reply.status, StatusCode::OK, "batch {i}: {}", reply.text);
    }
    let posted_in = posting.elapsed();
    let stored_month = CalMonth::current();
    assert_eq!(
        stored_month, stored_month_before,
        "the month changed while posting: run again"
    );

    // The expectation, computed from the facts alone.
    let want = expected::monthly(&month, stored_month);
    let m = spec.month;
    let mut months: BTreeSet<CalMonth> = [m.previous(), m, m.next(), stored_month]
        .into_iter()
        .collect();
    months.extend(want.keys().map(|(month, _)| *month));
    let total = |month: CalMonth| {
        want.get(&(month, Scope::Total))
            .cloned()
            .unwrap_or_default()
    };

    // The projection may follow the log a moment later: wait until the
    // month's total hits stop changing (or equal the expectation).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    loop {
        let body = kb
            .ok("/api/figures/monthly", &[("month", &m.to_string())])
            .await;
        let hits = body["figures"]["hits"].as_u64();
        if hits == Some(total(m).hits)
            || (hits == last && hits.is_some())
            || Instant::now() > deadline
        {
            break;
        }
        last = hits;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let comparing = Instant::now();
    let mut diffs: Vec<String> = Vec::new();

    // 1. Every month, in total and for every library and app with activity.
    let mut requests = 0;
    for &month_ in &months {
        let month_text = month_.to_string();
        let body = kb
            .ok("/api/figures/monthly", &[("month", &month_text)])
            .await;
        requests += 1;
        compare_monthly(
            &format!("{month_} total"),
            &body,
            &total(month_),
            &month,
            &mut diffs,
        );
        for ((wm, scope), figures) in &want {
            if *wm != month_ {
                continue;
            }
            let (param, id) = match scope {
                Scope::Total => continue,
                Scope::Library(isil) => ("library", isil),
                Scope::App(appid) => ("app", appid),
            };
            let body = kb
                .ok(
                    "/api/figures/monthly",
                    &[("month", &month_text), (param, id)],
                )
                .await;
            requests += 1;
            compare_monthly(
                &format!("{month_} {param} {id}"),
                &body,
                figures,
                &month,
                &mut diffs,
            );
        }
    }

    // 2. The breakdowns: one row per library (app) with activity, the same
    //    figures; any other row must be all zeros.
    for &month_ in &months {
        for by in ["library", "app"] {
            let body = kb
                .ok(
                    "/api/figures/breakdown",
                    &[("month", &month_.to_string()), ("by", by)],
                )
                .await;
            requests += 1;
            let rows = body["rows"]
                .as_array()
                .unwrap_or_else(|| panic!("breakdown without rows: {body}"));
            let mut seen = HashSet::new();
            for row in rows {
                let id = row["id"].as_str().unwrap_or_default().to_owned();
                let scope = if by == "library" {
                    Scope::Library(id.clone())
                } else {
                    Scope::App(id.clone())
                };
                let got = figures_of(row);
                let wanted = want
                    .get(&(month_, scope))
                    .map(expected_tuple)
                    .unwrap_or_default();
                if got != wanted {
                    diffs.push(format!(
                        "{month_} breakdown by {by}, row {id:?}: server {got:?}, expected {wanted:?}"
                    ));
                }
                seen.insert(id);
            }
            for (wm, scope) in want.keys() {
                let id = match (scope, by) {
                    (Scope::Library(isil), "library") => isil,
                    (Scope::App(appid), "app") => appid,
                    _ => continue,
                };
                if *wm == month_ && !seen.contains(id) {
                    diffs.push(format!("{month_} breakdown by {by}: no row for {id}"));
                }
            }
        }
    }

    // 3. The trend over the months, in total, for a library and for an app.
    let (from, to) = (
        months.first().unwrap().to_string(),
        months.last().unwrap().to_string(),
    );
    let app_id = month.world.apps[0].id.clone();
    for (param, id) in [
        (None, String::new()),
        (Some("library"), biggest_library.clone()),
        (Some("app"), app_id.clone()),
    ] {
        let mut query = vec![("from", from.as_str()), ("to", to.as_str())];
        if let Some(param) = param {
            query.push((param, id.as_str()));
        }
        let body = kb.ok("/api/figures/trend", &query).await;
        requests += 1;
        let list = body
            .as_array()
            .or_else(|| body["months"].as_array())
            .unwrap_or_else(|| panic!("a trend is a list of months: {body}"));
        let mut wanted_months = months.first().copied();
        let last_month = *months.last().unwrap();
        let mut count = 0;
        while let Some(month_) = wanted_months {
            let entry = list
                .iter()
                .find(|e| e["month"] == json!(month_.to_string()));
            let scope = match param {
                None => Scope::Total,
                Some("library") => Scope::Library(id.clone()),
                _ => Scope::App(id.clone()),
            };
            let wanted = want.get(&(month_, scope)).cloned().unwrap_or_default();
            match entry {
                Some(entry) => compare_monthly(
                    &format!("trend {param:?} {id} {month_}"),
                    entry,
                    &wanted,
                    &month,
                    &mut diffs,
                ),
                None => diffs.push(format!("trend {param:?} {id}: no entry for {month_}")),
            }
            count += 1;
            wanted_months = (month_ < last_month).then(|| month_.next());
        }
        if list.len() != count {
            diffs.push(format!(
                "trend {param:?} {id}: {} entries for {count} months",
                list.len()
            ));
        }
    }

    // 4. A library sees its own figures, the same as the KB sees of it, and
    //    not another library's.
    let body = library
        .ok("/api/figures/monthly", &[("month", &m.to_string())])
        .await;
    let own = want
        .get(&(m, Scope::Library(biggest_library.clone())))
        .cloned()
        .unwrap_or_default();
    compare_monthly("the library's own view", &body, &own, &month, &mut diffs);
    let (status, _, text) = library
        .get(
            "/api/figures/monthly",
            &[("month", &m.to_string()), ("library", &other_library)],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another library's figures: {text}"
    );
    assert!(
        text.contains("library"),
        "the 403 names the parameter: {text}"
    );

    // 5. Progress of a few learners, chosen for what they did.
    let facts: Vec<&activity::Fact> = month.sent.iter().map(|s| &s.fact).collect();
    let voided: HashSet<usize> = facts.iter().filter_map(|f| f.voids).collect();
    let mut chosen: BTreeMap<&'static str, usize> = BTreeMap::new();
    let untimed: HashSet<usize> = facts
        .iter()
        .filter(|f| f.time.is_none())
        .filter_map(|f| f.learner)
        .collect();
    let mut by_learner: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (p, fact) in facts.iter().enumerate() {
        if let Some(learner) = fact.learner {
            by_learner.entry(learner).or_default().push(p);
        }
    }
    for learner in &month.learners {
        let i = learner.index;
        if untimed.contains(&i) {
            continue;
        }
        let mine = by_learner.get(&i).cloned().unwrap_or_default();
        let course_facts = || {
            mine.iter()
                .map(|&p| facts[p])
                .filter(|f| f.course.is_some())
        };
        let apps: HashSet<usize> = course_facts().map(|f| f.app).collect();
        let libraries: HashSet<usize> = mine.iter().filter_map(|&p| facts[p].library).collect();
        let style_of = |f: &activity::Fact| month.world.apps[f.app].style;
        let pure_cmi5_done = |lms_sends: bool| {
            course_facts().any(|f| {
                style_of(f) == activity::AppStyle::Cmi5Lms
                    && f.course
                        .is_some_and(|c| month.world.lms_sends_satisfied(c) == lms_sends)
                    && f.module.is_some()
                    && f.verb == activity::Verb::Passed
            }) && expected::progress(&month, i, CourseStatusRule::CourseItself)
                .iter()
                .any(|(id, c)| {
                    c.status == "completed"
                        && month.world.courses.iter().enumerate().any(|(n, course)| {
                            course.id == *id
                                && month.world.declared(n)
                                && month.world.lms_sends_satisfied(n) == lms_sends
                        })
                })
        };
        let features: [(&'static str, bool); 13] = [
            (
                "pure cmi5, completed by its modules' moveOn, the LMS never says so",
                pure_cmi5_done(false),
            ),
            (
                "pure cmi5, completed, and the LMS sends satisfied",
                pure_cmi5_done(true),
            ),
            (
                "course completed with its untyped id, typed in context",
                course_facts().any(|f| {
                    style_of(f) == activity::AppStyle::Cmi5Untyped
                        && f.module.is_none()
                        && f.completion == Some(true)
                }),
            ),
            (
                "pure cmi5, launched once",
                course_facts().count() == 1
                    && course_facts().all(|f| style_of(f) == activity::AppStyle::Cmi5Lms),
            ),
            (
                "a voided statement in a course",
                mine.iter()
                    .any(|p| voided.contains(p) && facts[*p].course.is_some()),
            ),
            ("two apps", apps.len() > 1),
            ("two libraries", libraries.len() > 1),
            (
                "enrolled the month before",
                course_facts().any(|f| f.time.is_some_and(|t| t < m.start_micros())),
            ),
            (
                "a course completed",
                course_facts().any(|f| f.module.is_none() && f.verb != activity::Verb::Registered),
            ),
            (
                "a module failed",
                course_facts().any(|f| f.verb == activity::Verb::Failed),
            ),
            (
                "enrolled only",
                course_facts().all(|f| f.verb == activity::Verb::Registered)
                    && course_facts().count() > 0,
            ),
            (
                "mbox, parent-style app",
                learner.agent["mbox"].is_string()
                    && course_facts()
                        .any(|f| month.world.apps[f.app].style == activity::AppStyle::Parent),
            ),
            (
                "activity after the month",
                course_facts().any(|f| f.time.is_some_and(|t| t >= m.end_micros())),
            ),
        ];
        for (name, has) in features {
            if has && !chosen.contains_key(name) {
                chosen.insert(name, i);
            }
        }
    }
    assert!(chosen.len() >= 12, "learners for every feature: {chosen:?}");
    let mut checked_courses = 0;
    for (feature, &learner) in &chosen {
        let agent = month.learners[learner].agent.to_string();
        let body = kb.ok("/api/progress/learner", &[("agent", &agent)]).await;
        requests += 1;
        let want = expected::progress(&month, learner, CourseStatusRule::CourseItself);
        let what = format!("learner {learner} ({feature})");
        // The learner's last activity is their latest statement, in a
        // course or not (an e-book read counts: docs/progress-and-figures.md).
        let counted = expected::counted(&month);
        let latest = to_second(
            counted
                .iter()
                .map(|&p| &month.sent[p].fact)
                .filter(|f| f.learner == Some(learner))
                .filter_map(|f| f.time)
                .max(),
        );
        let got_latest = body["last_activity"].as_str().map(micros_of);
        if got_latest != latest {
            diffs.push(format!(
                "{what}: last activity server {got_latest:?}, expected {latest:?} (their latest statement)"
            ));
        }
        let got_courses = body["courses"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: no courses in {body}"));
        let got_ids: BTreeSet<&str> = got_courses
            .iter()
            .filter_map(|c| c["course"].as_str())
            .collect();
        let want_ids: BTreeSet<&str> = want.keys().map(String::as_str).collect();
        if got_ids != want_ids {
            diffs.push(format!(
                "{what}: courses server {got_ids:?}, expected {want_ids:?}"
            ));
        }
        for course in got_courses {
            let Some(expect) = course["course"].as_str().and_then(|id| want.get(id)) else {
                continue;
            };
            checked_courses += 1;
            let id = course["course"].as_str().unwrap();
            let got = (
                course["status"].as_str().unwrap_or("?").to_owned(),
                course["modules_done"].as_u64(),
                course["modules_total"].as_u64(),
                course["score"].as_f64(),
                course["time_spent_seconds"].as_u64(),
                course["last_activity"].as_str().map(micros_of),
            );
            let wanted = (
                expect.status.to_owned(),
                Some(u64::from(expect.modules_done)),
                Some(u64::from(expect.modules_total)),
                expect.score,
                Some(expect.time_spent_seconds),
                to_second(expect.last_activity_micros),
            );
            if got != wanted {
                diffs.push(format!(
                    "{what}, course {id}: (status, done, total, score, time, last activity) server {got:?}, expected {wanted:?}"
                ));
            }
            let want_name = expected::course_name_of(&month, id);
            if course["name"].as_str() != want_name.as_deref() {
                diffs.push(format!(
                    "{what}, course {id}: named {}, expected {want_name:?}",
                    course["name"]
                ));
            }
            let generated = month.world.courses.iter().find(|c| c.id == id);
            for module in course["modules"].as_array().into_iter().flatten() {
                let module_id = module["module"].as_str().unwrap_or_default();
                if let (Some(generated), true) = (generated, expect.modules.contains_key(module_id))
                {
                    let number = generated.modules.iter().position(|m| m == module_id);
                    let want_name = number.map(|n| activity::module_name(&generated.name, n));
                    if module["name"].as_str() != want_name.as_deref() {
                        diffs.push(format!(
                            "{what}, module {module_id}: named {}, expected {want_name:?}",
                            module["name"]
                        ));
                    }
                }
                let Some(expect) = expect.modules.get(module_id) else {
                    if module["last_activity"].is_string() {
                        diffs.push(format!(
                            "{what}, course {id}: module {module_id} not expected: {module}"
                        ));
                    }
                    continue;
                };
                let got = (
                    module["status"].as_str().unwrap_or("?").to_owned(),
                    module["score"].as_f64(),
                    module["time_spent_seconds"].as_u64(),
                    module["last_activity"].as_str().map(micros_of),
                );
                let wanted = (
                    expect.status.to_owned(),
                    expect.score,
                    Some(expect.time_spent_seconds),
                    to_second(expect.last_activity_micros),
                );
                if got != wanted {
                    diffs.push(format!(
                        "{what}, module {module_id}: (status, score, time, last activity) server {got:?}, expected {wanted:?}"
                    ));
                }
            }
            let got_modules: BTreeSet<&str> = course["modules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["module"].as_str())
                .collect();
            for module_id in expect.modules.keys() {
                if !got_modules.contains(module_id.as_str()) {
                    diffs.push(format!("{what}, course {id}: module {module_id} missing"));
                }
            }
        }
    }
    assert!(checked_courses >= 8, "{checked_courses} courses checked");

    let libraries = want
        .keys()
        .filter(|(wm, s)| *wm == m && matches!(s, Scope::Library(_)))
        .count();
    eprintln!(
        "figures: {} statements ({} voided) of {} learners, {libraries} libraries with activity in {m}; \
         generated in {generated_in:.1?}, posted in {posted_in:.1?}, {requests} API requests compared in {:.1?}; \
         {} differences",
        month.sent.len(),
        voided.len(),
        spec.learners,
        comparing.elapsed(),
        diffs.len()
    );
    assert!(
        diffs.is_empty(),
        "{} differences between the server and the independent computation:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
