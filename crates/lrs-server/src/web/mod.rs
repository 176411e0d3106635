//! The web pages for KB and library staff: login (password and TOTP, or an
//! OpenID provider), sessions, the monthly figures dashboard and the
//! library's learners, server-rendered HTML without scripts
//! (docs/dashboard.md). Every read goes through `crate::insight`, like the
//! JSON API, so both answer the same.
//!
//! It never sees an API credential: a logged-in session stands for an
//! `auth::Credential` whose key is `staff:<token>` (a local account) or
//! `oidc-staff:<issuer>#<subject>`, with the permissions of its roles.

pub mod accounts;
pub mod assets;
pub mod charts;
pub mod dashboard;
pub mod html;
pub mod i18n;
pub mod learners;
pub mod login;
pub mod oidc_login;
pub mod session;
pub mod totp;
pub mod vocabulary;

use crate::app::AppState;
use crate::auth::{AuthMethod, Credential};
use crate::web::html::{page_response, Current, Frame, Signed};
use crate::web::i18n::Lang;
use crate::web::session::{Session, SessionLimits, Sessions, StaffLogin, Stage};
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::IpAddr;
use std::time::Duration;

/// Largest form a page accepts, bytes.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// How the pages behave: session limits and the OpenID provider for staff.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    pub sessions: SessionLimits,
    pub oidc: Option<oidc_login::StaffOidcConfig>,
}

/// The `lrs serve` options of the web pages.
#[derive(clap::Args, Debug, Clone)]
pub struct WebArgs {
    /// Minutes without a request after which a staff session ends (req.
    /// 7.26); fractions allowed (0.5 = 30 s).
    #[arg(long, env = "LRS_SESSION_IDLE_MINUTES", default_value_t = 15.0)]
    pub session_idle_minutes: f64,
    /// Hours after login after which a session ends whatever its activity.
    #[arg(long, env = "LRS_SESSION_MAX_HOURS", default_value_t = 8.0)]
    pub session_max_hours: f64,
    /// JSON file configuring staff login through an OpenID provider
    /// (docs/dashboard.md); unset: local accounts only.
    #[arg(long = "staff-oidc", env = "LRS_STAFF_OIDC")]
    pub staff_oidc: Option<std::path::PathBuf>,
}

impl WebArgs {
    pub fn into_config(self) -> anyhow::Result<WebConfig> {
        let duration = |value: f64, unit: f64, name: &str| {
            if !(value.is_finite() && value > 0.0 && value * unit <= 31.0 * 86_400.0) {
                anyhow::bail!("{name} must be a positive number (at most 31 days)");
            }
            Ok(Duration::from_secs_f64(value * unit))
        };
        let idle = duration(self.session_idle_minutes, 60.0, "--session-idle-minutes")?;
        let absolute = duration(self.session_max_hours, 3600.0, "--session-max-hours")?;
        let oidc = self
            .staff_oidc
            .as_deref()
            .map(oidc_login::StaffOidcConfig::load)
            .transpose()?;
        Ok(WebConfig {
            sessions: SessionLimits {
                idle,
                absolute: absolute.max(idle),
            },
            oidc,
        })
    }
}

/// The pages' state in the server: sessions, TOTP replay memory, the
/// OpenID provider.
pub struct WebState {
    pub sessions: Sessions,
    pub replay: totp::ReplayGuard,
    pub oidc: Option<oidc_login::StaffOidc>,
}

impl WebState {
    pub fn new(config: &WebConfig) -> Self {
        Self {
            sessions: Sessions::new(config.sessions),
            replay: totp::ReplayGuard::default(),
            oidc: config.oidc.clone().map(oidc_login::StaffOidc::new),
        }
    }
}

impl Default for WebState {
    fn default() -> Self {
        Self::new(&WebConfig::default())
    }
}

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { html::see_other("/dashboard", None) }))
        .route("/login", get(login::show).post(login::password))
        .route("/login/code", get(login::show_code).post(login::code))
        .route("/logout", post(login::logout))
        .route("/login/oidc", get(oidc_login::start))
        .route("/login/oidc/callback", get(oidc_login::callback))
        .route("/login/oidc/finish", get(oidc_login::finish))
        .route("/dashboard", get(dashboard::show))
        .route("/dashboard/download", get(dashboard::download))
        .route("/learners", get(learners::show))
        .route("/learners/assign", post(learners::assign))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::audit::audit_request,
        ))
        .route(assets::CSS_PATH, get(assets::css))
        .route(assets::ICON_PATH, get(assets::icon))
        .route(
            "/favicon.ico",
            get(|| async { html::see_other(assets::ICON_PATH, None) }),
        )
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// Who is asking, as far as a page needs to know before any login: the
/// language, the session (if live), the client address, the page's path.
pub struct Visitor {
    pub lang: Lang,
    pub session_id: Option<String>,
    pub session: Option<Session>,
    /// A session cookie came that matches no live session (it expired).
    pub stale_cookie: bool,
    pub client: Option<IpAddr>,
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl Visitor {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let query: Vec<(String, String)> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .take(64)
                .collect();
        let cookie = session::cookie_of(&parts.headers);
        let session = cookie
            .as_deref()
            .and_then(|id| state.web.sessions.touch(id));
        let asked = query
            .iter()
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::parse(v));
        if let (Some(lang), Some(id), Some(live)) = (asked, cookie.as_deref(), session.as_ref()) {
            if live.lang != Some(lang) {
                state.web.sessions.update(id, |s| s.lang = Some(lang));
            }
        }
        let accepted = || {
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        };
        let lang = asked
            .or_else(|| session.as_ref().and_then(|s| s.lang))
            .or_else(accepted)
            .unwrap_or_default();
        Ok(Visitor {
            lang,
            stale_cookie: cookie.is_some() && session.is_none(),
            session_id: session.as_ref().and(cookie),
            session,
            client: crate::xapi_request::client_ip(parts),
            path: parts.uri.path().to_owned(),
            query,
        })
    }
}

/// A logged-in staff member: the visitor, and the principal the session
/// stands for (checked afresh on every request).
pub struct Staff {
    pub visitor: Visitor,
    pub principal: Credential,
    pub display_name: String,
    pub csrf: String,
    pub session_id: String,
}

impl Staff {
    pub fn lang(&self) -> Lang {
        self.visitor.lang
    }

    /// The frame of a page for this staff member.
    pub fn frame<'a>(&'a self, title: &'a str, current: Current) -> Frame<'a> {
        Frame {
            lang: self.visitor.lang,
            title,
            current,
            signed: Some(Signed {
                display_name: &self.display_name,
                csrf: &self.csrf,
                learners: self.principal.may("progress.read"),
            }),
            path: &self.visitor.path,
            query: &self.visitor.query,
        }
    }

    /// Refuses a form whose CSRF token is not this session's (the error is
    /// the page to answer with, hence large).
    #[allow(clippy::result_large_err)]
    pub fn check_csrf(&self, form: &Form) -> Result<(), Response> {
        match form.get("csrf") {
            Some(token) if session::same_secret(token, &self.csrf) => Ok(()),
            _ => Err(self.error(
                StatusCode::FORBIDDEN,
                self.lang().pick("Formulier verlopen", "Form expired"),
                self.lang().pick(
                    "Dit formulier hoort niet (meer) bij uw sessie. Laad de pagina opnieuw en probeer het nog eens.",
                    "This form does not belong to your session (any more). Reload the page and try again.",
                ),
            )),
        }
    }

    /// The page for an error of `crate::insight` or the store: the status
    /// the JSON API would answer, and what went wrong.
    pub fn api_error(&self, error: crate::error::ApiError) -> Response {
        let detail = error.to_string();
        // The JSON mapping decides the status (and logs a 500's detail).
        let status = error.into_response().status();
        let lang = self.lang();
        let (title, message) = match status {
            StatusCode::FORBIDDEN => (
                lang.pick("Geen toegang", "No access"),
                format!(
                    "{} ({detail})",
                    lang.pick(
                        "U mag deze gegevens niet zien.",
                        "You may not see these data."
                    )
                ),
            ),
            StatusCode::BAD_REQUEST => (lang.pick("Onjuiste vraag", "Bad request"), detail),
            StatusCode::NOT_FOUND => (lang.pick("Niet gevonden", "Not found"), detail),
            _ => (
                lang.pick("Er ging iets mis", "Something went wrong"),
                lang.pick(
                    "Er ging iets mis op de server. Probeer het later opnieuw.",
                    "Something went wrong on the server. Please try again later.",
                )
                .to_owned(),
            ),
        };
        self.error(status, title, &message)
    }

    /// An error page within the frame.
    pub fn error(&self, status: StatusCode, title: &str, message: &str) -> Response {
        let main = format!(
            "<h1>{}</h1>\n<p class=\"notice error\">{}</p>\n<p><a href=\"/dashboard\">{}</a></p>",
            html::esc(title),
            html::esc(message),
            self.lang()
                .pick("Naar de maandcijfers", "To the monthly figures")
        );
        page_response(status, self.frame(title, Current::Dashboard).render(&main))
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let visitor = Visitor::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        let to_login = |visitor: &Visitor| {
            let mut pairs = vec![("lang", visitor.lang.code())];
            if visitor.stale_cookie {
                pairs.push(("expired", "1"));
            }
            let location = format!("/login{}", html::query(&pairs));
            if parts.method == Method::GET || parts.method == Method::HEAD {
                html::see_other(&location, None)
            } else {
                // A form posted after the session ended: the login page
                // says so; nothing of the form is done.
                html::see_other(&location, None)
            }
        };
        let (Some(id), Some(session)) = (visitor.session_id.clone(), visitor.session.clone())
        else {
            return Err(to_login(&visitor));
        };
        let Stage::Staff(login) = &session.stage else {
            return Err(to_login(&visitor));
        };
        let principal = match principal_of(state, login) {
            Ok(Some(principal)) => principal,
            Ok(None) => {
                // The account was closed (or erased) since the login.
                state.web.sessions.remove(&id);
                return Err(html::with_cookie(
                    to_login(&visitor),
                    session::clear_cookie(),
                ));
            }
            Err(error) => return Err(error.into_response()),
        };
        if let Some(slot) = parts.extensions.get::<crate::xapi_request::PrincipalSlot>() {
            let _ = slot.0.set(principal.clone());
        }
        let display_name = match login {
            StaffLogin::Account { display_name, .. } | StaffLogin::Oidc { display_name, .. } => {
                display_name.clone()
            }
        };
        Ok(Staff {
            visitor,
            principal,
            display_name,
            csrf: session.csrf,
            session_id: id,
        })
    }
}

/// The principal of a login now; `None` if a local account was closed.
fn principal_of(
    state: &AppState,
    login: &StaffLogin,
) -> Result<Option<Credential>, crate::error::ApiError> {
    match login {
        StaffLogin::Account {
            token,
            display_name,
        } => {
            let Some(record) = state.store.staff_account(token)? else {
                return Ok(None);
            };
            if !record.is_open() || state.store.vault().key(token).is_none() {
                return Ok(None);
            }
            let now = crate::auth::now_micros();
            Ok(Some(Credential {
                key: format!("staff:{}", token.to_hex()),
                name: display_name.clone(),
                tenant: record.tenant.clone(),
                scopes: Vec::new(),
                permissions: accounts::permissions_of(&state.store, &record.roles, now)?,
                expires_micros: None,
                method: AuthMethod::StaffSession,
            }))
        }
        StaffLogin::Oidc {
            key,
            display_name,
            tenant,
            roles,
        } => Ok(Some(Credential {
            key: key.clone(),
            name: display_name.clone(),
            tenant: tenant.clone(),
            scopes: Vec::new(),
            permissions: accounts::permissions_of(
                &state.store,
                &roles
                    .iter()
                    .map(|role| lrs_core::events::RoleGrantV1 {
                        role: role.clone(),
                        until_micros: None,
                    })
                    .collect::<Vec<_>>(),
                crate::auth::now_micros(),
            )?,
            expires_micros: None,
            method: AuthMethod::StaffOidcSession,
        })),
    }
}

/// A posted form's fields (application/x-www-form-urlencoded), in order;
/// a name may repeat (checkboxes).
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Form(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .take(10_000)
                .collect(),
        ))
    }
}

/// Records a login step or logout in the audit trail: the account's key
/// (never the user name typed: it may be an e-mail address), the client
/// and the outcome.
pub(crate) fn audit(
    state: &AppState,
    action: &str,
    principal: Option<&str>,
    tenant: Option<&str>,
    method: &str,
    client: Option<IpAddr>,
    outcome: StatusCode,
) {
    state.audit.submit(lrs_store::audit::AuditEntry {
        time_micros: crate::auth::now_micros(),
        tenant: tenant.map(str::to_owned),
        principal: principal.map(str::to_owned),
        auth_method: Some(method.to_owned()),
        client: client.map(|ip| ip.to_canonical().to_string()),
        action: action.to_owned(),
        resources: Default::default(),
        outcome: Some(outcome.as_u16()),
        request_id: None,
        note: None,
    });
}
