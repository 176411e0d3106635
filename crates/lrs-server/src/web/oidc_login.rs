//! Staff login through an OpenID provider (Microsoft Entra ID, the KB's
//! login): the authorization code flow with PKCE (S256), a random `state`
//! bound to the visitor's session and a `nonce` the ID token must carry,
//! with the `openidconnect` crate (which checks the ID token's signature
//! against the provider's keys, issuer, audience, expiry and nonce).
//!
//! Configured by a JSON file (`--staff-oidc`, docs/dashboard.md): the
//! issuer, client id, the name of the environment variable holding the
//! client secret, the redirect URL, and how claims map to a tenant and to
//! roles. A login whose claims map to no tenant, or to no role, is refused,
//! unless the file's `learners` says the provider also signs learners in:
//! then it is a learner's login, whose session shows their own progress
//! (`progress.rs`) and nothing else.
//!
//! The session cookie is `SameSite=Strict`, so the browser does not send it
//! on the provider's cross-site redirect back: `/login/oidc/callback`
//! answers with a page that moves on (meta refresh, no script) to
//! `/login/oidc/finish` on our own site, where the cookie comes along and
//! the state is checked against the session.

use crate::web::html::{esc, page_response, see_other, Current, Frame};
use crate::web::oidc_client::{state_matches, LoginClaims};
use crate::web::session::{self, LearnerLogin, StaffLogin, Stage};
use crate::web::state::WebState;
use crate::web::visitor::{audit, Visitor};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use openidconnect::core::CoreResponseType;
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    Scope,
};

fn failed(lang: lrs_app::lang::Lang) -> Response {
    see_other(
        &format!(
            "/login{}",
            crate::web::html::query(&[("oidc_failed", "1"), ("lang", lang.code())])
        ),
        None,
    )
}

/// GET /login/oidc: off to the provider.
pub async fn start(State(state): State<WebState>, visitor: Visitor) -> Response {
    let Some(oidc) = &state.oidc else {
        return see_other("/login", None);
    };
    let client = match oidc.client().await {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "staff OpenID login: provider unavailable");
            return failed(visitor.lang);
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(
        AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in oidc.config.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf_state, nonce) = request.set_pkce_challenge(challenge).url();
    let stage = Stage::Oidc {
        state: csrf_state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    };
    let id = match visitor.session_id.as_deref() {
        Some(id) => state.sessions.rotate(id, stage).0,
        None => {
            state
                .sessions
                .create(
                    stage,
                    visitor.param("lang").and_then(lrs_app::lang::Lang::parse),
                )
                .0
        }
    };
    see_other(url.as_str(), Some(session::set_cookie(&id)))
}

/// GET /login/oidc/callback: the provider's redirect back (cross-site, so
/// without our cookie): a page that continues on our own site.
pub async fn callback(visitor: Visitor) -> Response {
    let lang = visitor.lang;
    if visitor.param("error").is_some() {
        return failed(lang);
    }
    let (Some(code), Some(returned)) = (visitor.param("code"), visitor.param("state")) else {
        return failed(lang);
    };
    let next = format!(
        "/login/oidc/finish{}",
        crate::web::html::query(&[("code", code), ("state", returned)])
    );
    let title = lang.pick("Inloggen", "Log in");
    let frame = Frame {
        lang,
        title,
        current: Current::Login,
        signed: None,
        path: "/login/oidc/callback",
        query: &[],
    };
    let main = format!(
        "<h1>{title}</h1>\n<p><a href=\"{href}\">{go}</a></p>",
        href = esc(&next),
        go = lang.pick("Doorgaan met inloggen", "Continue logging in")
    );
    let page = frame.render(&main).replacen(
        "<meta charset=\"utf-8\">",
        &format!(
            "<meta charset=\"utf-8\">\n<meta http-equiv=\"refresh\" content=\"0;url={}\">",
            esc(&next)
        ),
        1,
    );
    page_response(StatusCode::OK, page)
}

/// GET /login/oidc/finish: checks the state against the session, trades
/// the code (with the PKCE verifier) for tokens, checks the ID token and
/// its nonce, maps the claims, logs in.
pub async fn finish(State(state): State<WebState>, visitor: Visitor) -> Response {
    let lang = visitor.lang;
    let Some(oidc) = &state.oidc else {
        return see_other("/login", None);
    };
    let (Some(id), Some(session)) = (&visitor.session_id, &visitor.session) else {
        return failed(lang);
    };
    let Stage::Oidc {
        state: sent,
        nonce,
        pkce_verifier,
    } = session.stage.clone()
    else {
        return failed(lang);
    };
    // A state is good for one try, whatever comes of it.
    state.sessions.update(id, |s| s.stage = Stage::Anonymous);
    let returned = visitor.param("state").unwrap_or("");
    if !state_matches(&sent, returned) {
        audit(
            &state,
            "staff.login.oidc",
            None,
            None,
            "staff_oidc",
            visitor.client,
            StatusCode::FORBIDDEN,
        );
        return failed(lang);
    }
    let Some(code) = visitor.param("code") else {
        return failed(lang);
    };
    let outcome = async {
        let client = oidc.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| e.to_string())?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&oidc.http)
            .await
            .map_err(|e| format!("token request: {e}"))?;
        let id_token = response
            .extra_fields()
            .id_token()
            .ok_or("the provider sent no ID token")?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(nonce))
            .map_err(|e| format!("ID token: {e}"))?;
        let display_name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string())
            .or_else(|| claims.preferred_username().map(|u| u.to_string()))
            .or_else(|| claims.email().map(|e| e.to_string()))
            .unwrap_or_else(|| claims.subject().to_string());
        let login = LoginClaims {
            subject: claims.subject().to_string(),
            preferred_username: claims.preferred_username().map(|u| u.to_string()),
            email: claims.email().map(|e| e.to_string()),
            other: claims.additional_claims().other.clone(),
        };
        Ok::<_, String>((claims.issuer().as_str().to_owned(), display_name, login))
    }
    .await;
    let (issuer, display_name, login) = match outcome {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "staff OpenID login failed");
            oidc.forget_metadata().await;
            audit(
                &state,
                "staff.login.oidc",
                None,
                None,
                "staff_oidc",
                visitor.client,
                StatusCode::UNAUTHORIZED,
            );
            return failed(lang);
        }
    };
    let key = format!("oidc-staff:{issuer}#{}", login.subject);
    let account = oidc.config.learner_account(&issuer, &login);
    let Some((tenant, roles)) = oidc.config.map_claims(&login.other) else {
        if let Some(account) = account {
            // No staff tenant or role, and the provider signs learners in:
            // a learner, who sees their own progress and nothing else.
            let key = format!("oidc-learner:{issuer}#{}", login.subject);
            let (new_id, _) = state.sessions.rotate(
                id,
                Stage::Learner(LearnerLogin {
                    key: key.clone(),
                    display_name,
                    account,
                }),
            );
            audit(
                &state,
                "learner.login",
                Some(&key),
                None,
                "learner_oidc",
                visitor.client,
                StatusCode::OK,
            );
            return see_other(
                crate::web::html::OWN_PROGRESS_PATH,
                Some(session::set_cookie(&new_id)),
            );
        }
        audit(
            &state,
            "staff.login.oidc",
            Some(&key),
            None,
            "staff_oidc",
            visitor.client,
            StatusCode::FORBIDDEN,
        );
        return failed(lang);
    };
    match state.store.tenant(&tenant) {
        Ok(Some(_)) => {}
        _ => {
            tracing::warn!(%tenant, "staff OpenID login maps to a tenant that is not defined");
            return failed(lang);
        }
    }
    let (new_id, _) = state.sessions.rotate(
        id,
        Stage::Staff(StaffLogin::Oidc {
            key: key.clone(),
            display_name,
            tenant: tenant.clone(),
            roles,
            account,
        }),
    );
    audit(
        &state,
        "staff.login",
        Some(&key),
        Some(&tenant),
        "staff_oidc",
        visitor.client,
        StatusCode::OK,
    );
    see_other("/dashboard", Some(session::set_cookie(&new_id)))
}
