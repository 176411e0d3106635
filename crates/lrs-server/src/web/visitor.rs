//! Who is asking a page: the [`Visitor`] (language, session, address) of
//! any page, the logged-in [`Staff`] member of the pages behind the login,
//! the signed-in [`Learner`] of the own-progress page, the posted [`Form`],
//! and the audit record of a login step.

use crate::error::ApiError;
use crate::security::extract::PrincipalSlot;
use crate::web::html::{self, page_response, Current, Frame, Signed};
use crate::web::session::{self, Session, StaffLogin, Stage};
use crate::web::state::WebState;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use lrs_app::insight::LearnerAccount;
use lrs_app::lang::Lang;
use lrs_app::principal::{AuthMethod, Credential};
use std::net::IpAddr;

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

impl<S> FromRequestParts<S> for Visitor
where
    WebState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = WebState::from_ref(state);
        let query: Vec<(String, String)> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .take(64)
                .collect();
        let cookie = session::cookie_of(&parts.headers);
        let session = cookie.as_deref().and_then(|id| state.sessions.touch(id));
        let asked = query
            .iter()
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::parse(v));
        if let (Some(lang), Some(id), Some(live)) = (asked, cookie.as_deref(), session.as_ref()) {
            if live.lang != Some(lang) {
                state.sessions.update(id, |s| s.lang = Some(lang));
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
            client: crate::request::client::client_ip(parts),
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
    /// Their own xAPI account, when they signed in through a provider that
    /// also signs learners in (then they have a progress page of their own).
    pub own: Option<LearnerAccount>,
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
                dashboard: true,
                learners: self.principal.may("progress.read"),
                privacy: self.principal.may("privacy.reports"),
                own_progress: self.own.is_some(),
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

    /// The page for an error of `lrs_app::insight` or the store: the status
    /// the JSON API would answer, and what went wrong.
    pub fn api_error(&self, error: impl Into<ApiError>) -> Response {
        let error: ApiError = error.into();
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

impl<S> FromRequestParts<S> for Staff
where
    WebState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
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
        let login = match &session.stage {
            Stage::Staff(login) => login,
            // A learner has their own page, and no staff page.
            Stage::Learner(_) => {
                return Err(html::see_other(
                    &format!(
                        "{}{}",
                        crate::web::html::OWN_PROGRESS_PATH,
                        html::query(&[("lang", visitor.lang.code())])
                    ),
                    None,
                ))
            }
            _ => return Err(to_login(&visitor)),
        };
        let state = WebState::from_ref(state);
        let principal = match principal_of(&state, login) {
            Ok(Some(principal)) => principal,
            Ok(None) => {
                // The account was closed (or erased) since the login.
                state.sessions.remove(&id);
                return Err(html::with_cookie(
                    to_login(&visitor),
                    session::clear_cookie(),
                ));
            }
            Err(error) => return Err(error.into_response()),
        };
        if let Some(slot) = parts.extensions.get::<PrincipalSlot>() {
            let _ = slot.0.set(principal.clone());
        }
        let (display_name, own) = match login {
            StaffLogin::Account { display_name, .. } => (display_name.clone(), None),
            StaffLogin::Oidc {
                display_name,
                account,
                ..
            } => (display_name.clone(), account.clone()),
        };
        Ok(Staff {
            visitor,
            principal,
            display_name,
            csrf: session.csrf,
            session_id: id,
            own,
        })
    }
}

/// The principal of a login now; `None` if a local account was closed.
fn principal_of(state: &WebState, login: &StaffLogin) -> Result<Option<Credential>, ApiError> {
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
            let now = lrs_core::clock::now_micros();
            Ok(Some(Credential {
                key: format!("staff:{}", token.to_hex()),
                name: display_name.clone(),
                tenant: record.tenant.clone(),
                scopes: Vec::new(),
                permissions: lrs_app::staff::permissions_of(&state.store, &record.roles, now)?,
                expires_micros: None,
                method: AuthMethod::StaffSession,
            }))
        }
        StaffLogin::Oidc {
            key,
            display_name,
            tenant,
            roles,
            ..
        } => Ok(Some(Credential {
            key: key.clone(),
            name: display_name.clone(),
            tenant: tenant.clone(),
            scopes: Vec::new(),
            permissions: lrs_app::staff::permissions_of(
                &state.store,
                &roles
                    .iter()
                    .map(|role| lrs_core::events::RoleGrantV1 {
                        role: role.clone(),
                        until_micros: None,
                    })
                    .collect::<Vec<_>>(),
                lrs_core::clock::now_micros(),
            )?,
            expires_micros: None,
            method: AuthMethod::StaffOidcSession,
        })),
    }
}

/// Someone signed in who may see their own progress page: a learner, or a
/// staff member (whose page has their own progress if they signed in
/// through a provider that also signs learners in, else says they have none).
pub struct Learner {
    pub visitor: Visitor,
    pub display_name: String,
    pub csrf: String,
    pub session_id: String,
    /// The principal the audit trail records.
    pub key: String,
    /// The xAPI account whose progress the page shows.
    pub account: Option<LearnerAccount>,
    /// Set when the session is a staff member's.
    pub staff: Option<Staff>,
}

impl Learner {
    pub fn lang(&self) -> Lang {
        self.visitor.lang
    }

    /// An error page within the frame.
    pub fn error(&self, status: StatusCode, title: &str, message: &str) -> Response {
        let main = format!(
            "<h1>{}</h1>\n<p class=\"notice error\">{}</p>\n<p><a href=\"{}\">{}</a></p>",
            html::esc(title),
            html::esc(message),
            crate::web::html::OWN_PROGRESS_PATH,
            self.lang().pick("Naar mijn voortgang", "To my progress")
        );
        page_response(status, self.frame(title).render(&main))
    }

    /// The frame of the own-progress page: a staff member keeps their menu.
    pub fn frame<'a>(&'a self, title: &'a str) -> Frame<'a> {
        match &self.staff {
            Some(staff) => staff.frame(title, Current::OwnProgress),
            None => Frame {
                lang: self.visitor.lang,
                title,
                current: Current::OwnProgress,
                signed: Some(Signed {
                    display_name: &self.display_name,
                    csrf: &self.csrf,
                    dashboard: false,
                    learners: false,
                    privacy: false,
                    own_progress: true,
                }),
                path: &self.visitor.path,
                query: &self.visitor.query,
            },
        }
    }
}

impl<S> FromRequestParts<S> for Learner
where
    WebState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let visitor = Visitor::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        if let (Some(id), Some(session)) = (&visitor.session_id, &visitor.session) {
            if let Stage::Learner(login) = &session.stage {
                if let Some(slot) = parts.extensions.get::<PrincipalSlot>() {
                    let _ = slot.0.set(Credential {
                        key: login.key.clone(),
                        name: login.display_name.clone(),
                        tenant: String::new(),
                        scopes: Vec::new(),
                        permissions: Vec::new(),
                        expires_micros: None,
                        method: AuthMethod::LearnerOidcSession,
                    });
                }
                return Ok(Learner {
                    display_name: login.display_name.clone(),
                    csrf: session.csrf.clone(),
                    session_id: id.clone(),
                    key: login.key.clone(),
                    account: Some(login.account.clone()),
                    staff: None,
                    visitor,
                });
            }
        }
        // Otherwise a staff member (or the login page).
        let staff = Staff::from_request_parts(parts, state).await?;
        Ok(Learner {
            visitor,
            display_name: staff.display_name.clone(),
            csrf: staff.csrf.clone(),
            session_id: staff.session_id.clone(),
            key: staff.principal.key.clone(),
            account: staff.own.clone(),
            staff: Some(staff),
        })
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
pub fn audit(
    state: &WebState,
    action: &str,
    principal: Option<&str>,
    tenant: Option<&str>,
    method: &str,
    client: Option<IpAddr>,
    outcome: StatusCode,
) {
    state.audit.submit(lrs_store::audit::AuditEntry {
        time_micros: lrs_core::clock::now_micros(),
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
