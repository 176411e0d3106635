//! Web sessions, held in server memory only: a random 256-bit id in the
//! `__Host-lrs_session` cookie (`Secure; HttpOnly; SameSite=Strict;
//! Path=/`), looked up by its SHA-256. A session ends after an idle time
//! (configurable) and after an absolute maximum, and at logout. Each one
//! carries a CSRF token that every form posts back.
//!
//! A visitor gets a session at the login page already (an anonymous one):
//! it carries the login form's CSRF token and, after the password step,
//! which account still owes its second factor. Each step up gets a fresh
//! id (no session fixation). A restart ends every session.

use lrs_app::insight::LearnerAccount;
use lrs_core::Token;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE_NAME: &str = "__Host-lrs_session";
/// Sessions held at most; beyond it the least recently used anonymous
/// ones go first (a flood of login-page visits cannot push staff out).
const MAX_SESSIONS: usize = 50_000;
/// An anonymous or half-logged-in session lives at most this long idle.
const MAX_LOGIN_IDLE: Duration = Duration::from_secs(10 * 60);
/// Wrong codes allowed after one right password, then the login starts over.
pub const MAX_CODE_FAILURES: u8 = 5;

/// Where a session is in the login.
#[derive(Debug, Clone)]
pub enum Stage {
    /// The login page was shown; nobody is logged in.
    Anonymous,
    /// The password was right; the account owes its TOTP code.
    Password {
        account: Token,
        username: String,
        failures: u8,
    },
    /// Sent to the OpenID provider; waits for the answer.
    Oidc {
        state: String,
        nonce: String,
        pkce_verifier: String,
    },
    /// Logged in.
    Staff(StaffLogin),
    /// A learner logged in through the OpenID provider: their own progress
    /// page only.
    Learner(LearnerLogin),
}

/// A learner who logged in: who they are at the provider, and the xAPI
/// account the course apps know them by.
#[derive(Debug, Clone)]
pub struct LearnerLogin {
    /// `oidc-learner:<issuer>#<subject>`: the audit trail's principal.
    pub key: String,
    pub display_name: String,
    pub account: LearnerAccount,
}

/// Who is logged in.
#[derive(Debug, Clone)]
pub enum StaffLogin {
    /// A local account (password and TOTP): its roles are read on every
    /// request, so closing the account or a role takes effect at once.
    Account { token: Token, display_name: String },
    /// An OpenID Connect login: tenant and roles from its claims, fixed
    /// for the session (the roles' permissions are read on every request).
    Oidc {
        key: String,
        display_name: String,
        tenant: String,
        roles: Vec<String>,
        /// The staff member's own xAPI account when the provider also signs
        /// learners in (they see their own progress page too).
        account: Option<LearnerAccount>,
    },
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub stage: Stage,
    /// The language chosen with `?lang=` (remembered without a cookie).
    pub lang: Option<lrs_app::lang::Lang>,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    pub fn is_staff(&self) -> bool {
        matches!(self.stage, Stage::Staff(_))
    }

    pub fn is_learner(&self) -> bool {
        matches!(self.stage, Stage::Learner(_))
    }

    /// Logged in, as staff or as a learner.
    pub fn is_signed_in(&self) -> bool {
        self.is_staff() || self.is_learner()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(15 * 60),
            absolute: Duration::from_secs(8 * 3600),
        }
    }
}

pub struct Sessions {
    limits: SessionLimits,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

/// A fresh 256-bit random value, base64url without padding.
pub fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn lookup_key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Constant-time comparison of two short secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            map: Mutex::default(),
        }
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    fn idle_limit(&self, session: &Session) -> Duration {
        if session.is_signed_in() {
            self.limits.idle
        } else {
            self.limits.idle.min(MAX_LOGIN_IDLE)
        }
    }

    fn expired(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) >= self.idle_limit(session)
            || now.duration_since(session.created) >= self.limits.absolute
    }

    /// The session of a cookie value, if it is live; seeing it counts as
    /// activity (the idle clock starts again). An expired one is removed.
    pub fn touch(&self, id: &str) -> Option<Session> {
        self.touch_at(id, Instant::now())
    }

    fn touch_at(&self, id: &str, now: Instant) -> Option<Session> {
        let key = lookup_key(id);
        let mut map = self.map.lock().expect("sessions lock");
        let session = map.get_mut(&key)?;
        if self.expired(session, now) {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// A new session at `stage`; returns its id (the cookie value).
    pub fn create(&self, stage: Stage, lang: Option<lrs_app::lang::Lang>) -> (String, Session) {
        self.create_at(stage, lang, Instant::now())
    }

    fn create_at(
        &self,
        stage: Stage,
        lang: Option<lrs_app::lang::Lang>,
        now: Instant,
    ) -> (String, Session) {
        let id = random_token();
        let session = Session {
            csrf: random_token(),
            stage,
            lang,
            created: now,
            last_seen: now,
        };
        let mut map = self.map.lock().expect("sessions lock");
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| !self.expired(s, now));
        }
        if map.len() >= MAX_SESSIONS {
            // Still full: drop the least recently seen anonymous session.
            let oldest = map
                .iter()
                .filter(|(_, s)| !s.is_signed_in())
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k);
            if let Some(key) = oldest {
                map.remove(&key);
            }
        }
        map.insert(lookup_key(&id), session.clone());
        (id, session)
    }

    /// Changes a live session in place.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Session)) -> bool {
        let mut map = self.map.lock().expect("sessions lock");
        match map.get_mut(&lookup_key(id)) {
            Some(session) => {
                change(session);
                true
            }
            None => false,
        }
    }

    /// Ends session `id` and starts a new one at `stage` with a new id and
    /// CSRF token (keeping the language): every step of the login does this.
    pub fn rotate(&self, id: &str, stage: Stage) -> (String, Session) {
        let lang = self.remove(id).and_then(|s| s.lang);
        self.create(stage, lang)
    }

    pub fn remove(&self, id: &str) -> Option<Session> {
        self.map
            .lock()
            .expect("sessions lock")
            .remove(&lookup_key(id))
    }

    /// Ends every session of a local account (it was closed or reset).
    pub fn end_account(&self, account: Token) {
        self.map.lock().expect("sessions lock").retain(|_, s| {
            !matches!(&s.stage, Stage::Staff(StaffLogin::Account { token, .. }) if *token == account)
        });
    }

    /// Forgets expired sessions (the upkeep task calls this every minute).
    pub fn sweep(&self) {
        let now = Instant::now();
        self.map
            .lock()
            .expect("sessions lock")
            .retain(|_, s| !self.expired(s, now));
    }

    pub fn len(&self) -> usize {
        self.map.lock().expect("sessions lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `Set-Cookie` value that gives the browser session `id`. No
/// `Max-Age`: the browser forgets it when it closes, the server after the
/// idle time.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE_NAME}={id}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session id the request's cookies carry, if any.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE_NAME && value.len() == 43)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(token: u8) -> Stage {
        Stage::Staff(StaffLogin::Account {
            token: Token([token; 16]),
            display_name: "Anna".into(),
        })
    }

    #[test]
    fn idle_and_absolute_limits_end_a_session() {
        let sessions = Sessions::new(SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(300),
        });
        let start = Instant::now();
        let (id, _) = sessions.create_at(staff(1), None, start);
        assert!(sessions
            .touch_at(&id, start + Duration::from_secs(59))
            .is_some());
        // Activity keeps it alive past the first minute...
        assert!(sessions
            .touch_at(&id, start + Duration::from_secs(118))
            .is_some());
        assert!(sessions
            .touch_at(&id, start + Duration::from_secs(177))
            .is_some());
        assert!(sessions
            .touch_at(&id, start + Duration::from_secs(236))
            .is_some());
        assert!(sessions
            .touch_at(&id, start + Duration::from_secs(295))
            .is_some());
        // ...but not past the absolute maximum.
        assert!(sessions
            .touch_at(&id, start + Duration::from_secs(301))
            .is_none());
        assert!(sessions.is_empty(), "an expired session is removed");

        let (idle, _) = sessions.create_at(staff(2), None, start);
        assert!(sessions
            .touch_at(&idle, start + Duration::from_secs(61))
            .is_none());
    }

    #[test]
    fn rotation_gives_a_new_id_and_csrf_token_and_ends_the_old() {
        let sessions = Sessions::new(SessionLimits::default());
        let (old, first) = sessions.create(Stage::Anonymous, Some(lrs_app::lang::Lang::En));
        let (new, second) = sessions.rotate(&old, staff(3));
        assert_ne!(old, new);
        assert_ne!(first.csrf, second.csrf);
        assert!(sessions.touch(&old).is_none());
        let live = sessions.touch(&new).unwrap();
        assert!(live.is_staff());
        assert_eq!(live.lang, Some(lrs_app::lang::Lang::En));
        sessions.end_account(Token([3; 16]));
        assert!(sessions.touch(&new).is_none());
    }

    #[test]
    fn cookies_are_read_by_exact_name_and_length() {
        let id = random_token();
        assert_eq!(id.len(), 43);
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            format!("other=1; {COOKIE_NAME}={id}; x=2").parse().unwrap(),
        );
        assert_eq!(cookie_of(&headers), Some(id));
        headers.insert(
            axum::http::header::COOKIE,
            "lrs_session=abc; __Host-lrs_session=short".parse().unwrap(),
        );
        assert_eq!(cookie_of(&headers), None);
        assert!(set_cookie("x").contains("Secure; HttpOnly; SameSite=Strict"));
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
