//! Login with a local account: user name and password, then a TOTP code
//! (two factors until an SSO is connected, req. 2.25), and logout.
//!
//! An unknown user name costs the same argon2 run as a wrong password and
//! gets the same answer. Failed passwords and codes count towards the
//! lockouts of `ratelimit::AuthGuard` (keyed on the user name typed),
//! which refuse further tries for a while. Each step gets a fresh session
//! id; the code step allows a few tries, then the login starts over.

use crate::error::ApiError;
use crate::web::html::{esc, page_response, see_other, with_cookie, Current, Frame};
use crate::web::session::{self, StaffLogin, Stage, MAX_CODE_FAILURES};
use crate::web::state::WebState;
use crate::web::visitor::{audit, Form, Learner, Visitor};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use lrs_app::lang::Lang;
use lrs_app::staff as accounts;
use std::fmt::Write;

/// What the login page says above its form.
enum Notice {
    None,
    Error(&'static str),
    Info(&'static str),
}

fn frame<'a>(visitor: &'a Visitor, title: &'a str) -> Frame<'a> {
    Frame {
        lang: visitor.lang,
        title,
        current: Current::Login,
        signed: None,
        path: &visitor.path,
        query: &visitor.query,
    }
}

fn notice_html(notice: &Notice) -> String {
    match notice {
        Notice::None => String::new(),
        Notice::Error(text) => format!(
            "<p class=\"notice error\" role=\"alert\">{}</p>\n",
            esc(text)
        ),
        Notice::Info(text) => format!("<p class=\"notice\" role=\"status\">{}</p>\n", esc(text)),
    }
}

/// The anonymous session a login form belongs to: the visitor's, or a new
/// one (whose cookie the response must set).
fn login_session(state: &WebState, visitor: &Visitor) -> (String, String, Option<String>) {
    match (&visitor.session_id, &visitor.session) {
        (Some(id), Some(session)) if matches!(session.stage, Stage::Anonymous) => {
            (id.clone(), session.csrf.clone(), None)
        }
        (Some(id), Some(_)) => {
            let (new_id, session) = state.sessions.rotate(id, Stage::Anonymous);
            let cookie = session::set_cookie(&new_id);
            (new_id, session.csrf, Some(cookie))
        }
        _ => {
            let (id, session) = state
                .sessions
                .create(Stage::Anonymous, visitor.lang_choice());
            let cookie = session::set_cookie(&id);
            (id, session.csrf, Some(cookie))
        }
    }
}

impl Visitor {
    /// The language the visitor chose explicitly (`?lang=`), to remember.
    fn lang_choice(&self) -> Option<Lang> {
        self.param("lang").and_then(Lang::parse)
    }
}

fn password_page(
    state: &WebState,
    visitor: &Visitor,
    status: StatusCode,
    notice: Notice,
    username: &str,
) -> Response {
    let lang = visitor.lang;
    let (_, csrf, cookie) = login_session(state, visitor);
    let title = lang.pick("Inloggen", "Log in");
    let mut main = String::new();
    let _ = write!(
        main,
        "<div class=\"login\">\n<h1>{title}</h1>\n<p class=\"lead\">{lead}</p>\n{notice}\
         <form method=\"post\" action=\"/login\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <div class=\"field\"><label for=\"username\">{user}</label>\
         <input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" \
         autocapitalize=\"none\" spellcheck=\"false\" required value=\"{username}\"></div>\n\
         <div class=\"field\"><label for=\"password\">{pass}</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></div>\n\
         <button type=\"submit\">{next}</button>\n</form>\n",
        lead = lang.pick(
            "Voor medewerkers van de KB en van bibliotheken. Na uw wachtwoord vragen we de code uit uw authenticator-app.",
            "For staff of the KB and of libraries. After your password we ask for the code from your authenticator app."
        ),
        notice = notice_html(&notice),
        csrf = esc(&csrf),
        user = lang.pick("Gebruikersnaam", "User name"),
        username = esc(username),
        pass = lang.pick("Wachtwoord", "Password"),
        next = lang.pick("Volgende", "Next"),
    );
    if let Some(oidc) = &state.oidc {
        let _ = write!(
            main,
            "<h2>{or}</h2>\n<p><a class=\"button\" href=\"/login/oidc{query}\">{with} {name}</a></p>\n",
            or = lang.pick("Of met uw organisatie-account", "Or with your organisation's account"),
            query = esc(&crate::web::html::query(&[("lang", lang.code())])),
            with = lang.pick("Inloggen met", "Log in with"),
            name = esc(oidc.display_name()),
        );
        if oidc.config.learners.is_some() {
            let _ = writeln!(
                main,
                "<p>{learner} {name} {see}</p>",
                learner = lang.pick(
                    "Volgt u een cursus? Log dan in met uw",
                    "Taking a course? Log in with your"
                ),
                name = esc(oidc.display_name()),
                see = lang.pick(
                    "om uw eigen voortgang te zien.",
                    "to see your own progress."
                ),
            );
        }
    }
    main.push_str("</div>");
    let response = page_response(status, frame(visitor, title).render(&main));
    match cookie {
        Some(cookie) => with_cookie(response, cookie),
        None => response,
    }
}

/// GET /login
pub async fn show(State(state): State<WebState>, visitor: Visitor) -> Response {
    if visitor.session.as_ref().is_some_and(|s| s.is_staff()) {
        return see_other("/dashboard", None);
    }
    if visitor.session.as_ref().is_some_and(|s| s.is_learner()) {
        return see_other(crate::web::html::OWN_PROGRESS_PATH, None);
    }
    let lang = visitor.lang;
    let notice = if visitor.param("expired").is_some() {
        Notice::Info(lang.pick(
            "Uw sessie is verlopen. Log opnieuw in.",
            "Your session has ended. Please log in again.",
        ))
    } else if visitor.param("bye").is_some() {
        Notice::Info(lang.pick("U bent uitgelogd.", "You have logged out."))
    } else if visitor.param("again").is_some() {
        Notice::Error(lang.pick(
            "Te veel onjuiste codes. Begin opnieuw met uw wachtwoord.",
            "Too many wrong codes. Start again with your password.",
        ))
    } else if visitor.param("oidc_failed").is_some() {
        Notice::Error(lang.pick(
            "Inloggen via uw organisatie is niet gelukt. Probeer het opnieuw.",
            "Logging in through your organisation did not work. Please try again.",
        ))
    } else {
        Notice::None
    };
    password_page(&state, &visitor, StatusCode::OK, notice, "")
}

fn locked_page(state: &WebState, visitor: &Visitor, retry_after_secs: u64) -> Response {
    let lang = visitor.lang;
    let mut response = password_page(
        state,
        visitor,
        StatusCode::TOO_MANY_REQUESTS,
        Notice::Error(lang.pick(
            "Te veel mislukte pogingen. Wacht een paar minuten en probeer het dan opnieuw.",
            "Too many failed attempts. Wait a few minutes, then try again.",
        )),
        "",
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(retry_after_secs.max(1)),
    );
    response
}

/// The form's CSRF token matches the visitor's anonymous login session.
fn login_form_ok(visitor: &Visitor, form: &Form) -> bool {
    match (&visitor.session, form.get("csrf")) {
        (Some(session), Some(token)) => session::same_secret(token, &session.csrf),
        _ => false,
    }
}

fn form_expired(state: &WebState, visitor: &Visitor) -> Response {
    password_page(
        state,
        visitor,
        StatusCode::FORBIDDEN,
        Notice::Error(visitor.lang.pick(
            "Het formulier was verlopen. Probeer het opnieuw.",
            "The form had expired. Please try again.",
        )),
        "",
    )
}

/// POST /login: the password step.
pub async fn password(State(state): State<WebState>, visitor: Visitor, form: Form) -> Response {
    let lang = visitor.lang;
    if !login_form_ok(&visitor, &form) {
        return form_expired(&state, &visitor);
    }
    let typed = form.get("username").unwrap_or("").trim().to_owned();
    let password = form.get("password").unwrap_or("").to_owned();
    let guard_key = format!("staff-login:{}", typed.to_lowercase());
    let guard = state.guard.clone();
    if let Err(refusal) = guard.check(visitor.client, &guard_key) {
        let _ = guard.refused(refusal);
        return locked_page(&state, &visitor, refusal.retry_after_secs);
    }
    let account = match accounts::token_of(&state.store, &typed) {
        Some(token) => match accounts::open(&state.store, &token) {
            Ok(account) => account.filter(|a| a.record.is_open()),
            Err(error) => {
                return axum::response::IntoResponse::into_response(ApiError::from(error))
            }
        },
        None => None,
    };
    let hash = account.as_ref().map(|a| a.secrets.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => lrs_app::secrets::verify_secret(&hash, &password),
        None => {
            // Same work as a wrong password: nobody learns which names exist.
            let _ = lrs_app::secrets::verify_secret(dummy_hash(), &password);
            false
        }
    })
    .await
    .unwrap_or(false);
    let Some(account) = account.filter(|_| ok) else {
        let known = accounts::token_of(&state.store, &typed).is_some();
        guard.failed(visitor.client, &guard_key, known);
        crate::ops::counters::auth_failure(if known {
            crate::ops::counters::AuthFailure::BadSecret
        } else {
            crate::ops::counters::AuthFailure::UnknownKey
        });
        audit(
            &state,
            "staff.login.password",
            None,
            None,
            "staff_password",
            visitor.client,
            StatusCode::UNAUTHORIZED,
        );
        return password_page(
            &state,
            &visitor,
            StatusCode::UNAUTHORIZED,
            Notice::Error(lang.pick(
                "Onbekende gebruikersnaam of onjuist wachtwoord.",
                "Unknown user name or wrong password.",
            )),
            &typed,
        );
    };
    let id = visitor.session_id.clone().unwrap_or_default();
    let (new_id, _) = state.sessions.rotate(
        &id,
        Stage::Password {
            account: account.record.token,
            username: account.secrets.username.clone(),
            failures: 0,
        },
    );
    see_other(
        &format!(
            "/login/code{}",
            crate::web::html::query(&[("lang", lang.code())])
        ),
        Some(session::set_cookie(&new_id)),
    )
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| lrs_app::secrets::hash_secret(&session::random_token()))
}

fn code_page(visitor: &Visitor, csrf: &str, status: StatusCode, notice: Notice) -> Response {
    let lang = visitor.lang;
    let title = lang.pick("Code invoeren", "Enter code");
    let main = format!(
        "<div class=\"login\">\n<h1>{title}</h1>\n{notice}\
         <form method=\"post\" action=\"/login/code\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <div class=\"field\"><label for=\"code\">{label}</label>\
         <p class=\"hint\" id=\"code-hint\">{hint}</p>\
         <input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
         pattern=\"[0-9]{{6}}\" maxlength=\"6\" required aria-describedby=\"code-hint\"></div>\n\
         <button type=\"submit\">{login}</button>\n</form>\n\
         <p><a href=\"/login{query}\">{again}</a></p>\n</div>",
        notice = notice_html(&notice),
        csrf = esc(csrf),
        label = lang.pick("Code uit uw authenticator-app", "Code from your authenticator app"),
        hint = lang.pick(
            "Zes cijfers; de code verandert elke 30 seconden.",
            "Six digits; the code changes every 30 seconds."
        ),
        login = lang.pick("Inloggen", "Log in"),
        query = esc(&crate::web::html::query(&[("lang", lang.code())])),
        again = lang.pick("Opnieuw beginnen", "Start again"),
    );
    page_response(status, frame(visitor, title).render(&main))
}

/// GET /login/code
pub async fn show_code(visitor: Visitor) -> Response {
    match &visitor.session {
        Some(session) if matches!(session.stage, Stage::Password { .. }) => {
            code_page(&visitor, &session.csrf, StatusCode::OK, Notice::None)
        }
        _ => see_other(
            &format!(
                "/login{}",
                crate::web::html::query(&[("lang", visitor.lang.code())])
            ),
            None,
        ),
    }
}

/// POST /login/code: the second factor.
pub async fn code(State(state): State<WebState>, visitor: Visitor, form: Form) -> Response {
    let lang = visitor.lang;
    let (Some(id), Some(session)) = (&visitor.session_id, &visitor.session) else {
        return see_other("/login?expired=1", None);
    };
    let Stage::Password {
        account,
        username,
        failures,
    } = session.stage.clone()
    else {
        return see_other("/login", None);
    };
    if !login_form_ok(&visitor, &form) {
        return code_page(
            &visitor,
            &session.csrf,
            StatusCode::FORBIDDEN,
            Notice::Error(lang.pick(
                "Het formulier was verlopen. Probeer het opnieuw.",
                "The form had expired. Please try again.",
            )),
        );
    }
    let guard_key = format!("staff-login:{username}");
    let guard = state.guard.clone();
    if let Err(refusal) = guard.check(visitor.client, &guard_key) {
        let _ = guard.refused(refusal);
        state.sessions.remove(id);
        return locked_page(&state, &visitor, refusal.retry_after_secs);
    }
    let opened = match accounts::open(&state.store, &account) {
        Ok(Some(opened)) if opened.record.is_open() => opened,
        Ok(_) => return see_other("/login", None),
        Err(error) => return axum::response::IntoResponse::into_response(ApiError::from(error)),
    };
    let code = form.get("code").unwrap_or("");
    let accepted = state.replay.accept(
        account,
        &opened.secrets.totp_secret,
        code,
        lrs_app::totp::unix_seconds(),
    );
    let principal = format!("staff:{}", account.to_hex());
    if !accepted {
        guard.failed(visitor.client, &guard_key, true);
        crate::ops::counters::auth_failure(crate::ops::counters::AuthFailure::BadSecret);
        audit(
            &state,
            "staff.login.code",
            Some(&principal),
            Some(&opened.record.tenant),
            "staff_totp",
            visitor.client,
            StatusCode::UNAUTHORIZED,
        );
        let failures = failures + 1;
        if failures >= MAX_CODE_FAILURES {
            state.sessions.remove(id);
            return see_other(
                &format!(
                    "/login{}",
                    crate::web::html::query(&[("again", "1"), ("lang", lang.code())])
                ),
                Some(session::clear_cookie()),
            );
        }
        state.sessions.update(id, |s| {
            if let Stage::Password { failures: f, .. } = &mut s.stage {
                *f = failures;
            }
        });
        return code_page(
            &visitor,
            &session.csrf,
            StatusCode::UNAUTHORIZED,
            Notice::Error(lang.pick(
                "Deze code klopt niet (of is al gebruikt). Wacht op de volgende code en probeer opnieuw.",
                "This code is wrong (or was used already). Wait for the next code and try again.",
            )),
        );
    }
    guard.succeeded(visitor.client, &guard_key);
    let (new_id, _) = state.sessions.rotate(
        id,
        Stage::Staff(StaffLogin::Account {
            token: account,
            display_name: opened.secrets.display_name.clone(),
        }),
    );
    audit(
        &state,
        "staff.login",
        Some(&principal),
        Some(&opened.record.tenant),
        "staff_password_totp",
        visitor.client,
        StatusCode::OK,
    );
    see_other("/dashboard", Some(session::set_cookie(&new_id)))
}

/// POST /logout (staff and learners alike)
pub async fn logout(State(state): State<WebState>, who: Learner, form: Form) -> Response {
    let lang = who.lang();
    match &who.staff {
        Some(staff) => {
            if let Err(refused) = staff.check_csrf(&form) {
                return refused;
            }
            state.sessions.remove(&staff.session_id);
            audit(
                &state,
                "staff.logout",
                Some(&staff.principal.key),
                Some(&staff.principal.tenant),
                "staff_session",
                staff.visitor.client,
                StatusCode::OK,
            );
        }
        None => {
            if !form
                .get("csrf")
                .is_some_and(|token| session::same_secret(token, &who.csrf))
            {
                return who.error(
                    StatusCode::FORBIDDEN,
                    lang.pick("Formulier verlopen", "Form expired"),
                    lang.pick(
                        "Dit formulier hoort niet (meer) bij uw sessie. Laad de pagina opnieuw en probeer het nog eens.",
                        "This form does not belong to your session (any more). Reload the page and try again.",
                    ),
                );
            }
            state.sessions.remove(&who.session_id);
            audit(
                &state,
                "learner.logout",
                Some(&who.key),
                None,
                "learner_oidc",
                who.visitor.client,
                StatusCode::OK,
            );
        }
    }
    see_other(
        &format!(
            "/login{}",
            crate::web::html::query(&[("bye", "1"), ("lang", lang.code())])
        ),
        Some(session::clear_cookie()),
    )
}
