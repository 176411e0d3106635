//! HTML by hand, escaped: the page frame every page shares (skip link,
//! header with navigation, language switch and logout, `main`, footer),
//! the escaping helpers, and the response headers of a page (its own
//! Content-Security-Policy: styles from /static only, no scripts at all).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lrs_app::lang::Lang;
use std::fmt::Write;

/// The pages' policy: the stylesheet from here, no script, forms post here
/// only, no frames.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A signed-in learner's own progress page (`progress.rs`).
pub const OWN_PROGRESS_PATH: &str = "/my-progress";

/// Text for element content and attribute values (both quoted with ").
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query string from pairs (values percent-encoded), with a leading `?`,
/// or empty.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if !value.is_empty() {
            serializer.append_pair(key, value);
        }
    }
    let encoded = serializer.finish();
    if encoded.is_empty() {
        String::new()
    } else {
        format!("?{encoded}")
    }
}

/// Which navigation item is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Current {
    Dashboard,
    Learners,
    Privacy,
    OwnProgress,
    Login,
}

/// The logged-in part of the header.
pub struct Signed<'a> {
    pub display_name: &'a str,
    pub csrf: &'a str,
    /// Show the monthly figures in the navigation (staff).
    pub dashboard: bool,
    /// Show the learners page in the navigation.
    pub learners: bool,
    /// Show the privacy reports page in the navigation.
    pub privacy: bool,
    /// Show one's own progress in the navigation (a learner, or staff who
    /// sign in through a provider that also signs learners in).
    pub own_progress: bool,
}

/// Everything around a page's main content.
pub struct Frame<'a> {
    pub lang: Lang,
    pub title: &'a str,
    pub current: Current,
    pub signed: Option<Signed<'a>>,
    /// The page's path and query, for the language switch.
    pub path: &'a str,
    pub query: &'a [(String, String)],
}

impl Frame<'_> {
    /// This page in the other language.
    fn switch_href(&self) -> String {
        let other = self.lang.other();
        let mut pairs: Vec<(&str, &str)> = self
            .query
            .iter()
            .filter(|(k, _)| k != "lang")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.push(("lang", other.code()));
        format!("{}{}", self.path, query(&pairs))
    }

    pub fn render(&self, main: &str) -> String {
        let lang = self.lang;
        let mut out = String::with_capacity(main.len() + 2048);
        let _ = write!(
            out,
            "<!doctype html>\n<html lang=\"{code}\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title} · {site}</title>\n\
             <link rel=\"stylesheet\" href=\"/static/lrs.css?v={version:x}\">\n\
             <link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">\n</head>\n<body>\n\
             <a class=\"skip\" href=\"#main\">{skip}</a>\n",
            code = lang.code(),
            title = esc(self.title),
            site = lang.pick("Leerregistraties", "Learning records"),
            version = crate::web::assets::CSS_VERSION,
            skip = lang.pick("Naar de inhoud", "Skip to content"),
        );
        out.push_str("<header class=\"site\">\n<div class=\"bar\">\n");
        let _ = writeln!(
            out,
            "<p class=\"brand\"><span class=\"mark\" aria-hidden=\"true\">KB</span> {}</p>",
            lang.pick("Leerregistraties", "Learning records")
        );
        if let Some(signed) = &self.signed {
            let _ = writeln!(
                out,
                "<nav aria-label=\"{label}\"><ul>",
                label = lang.pick("Hoofdmenu", "Main menu")
            );
            let mut item = |href: &str, text: &str, current: bool| {
                let _ = writeln!(
                    out,
                    "<li><a href=\"{href}\"{aria}>{text}</a></li>",
                    aria = if current {
                        " aria-current=\"page\""
                    } else {
                        ""
                    },
                    text = esc(text)
                );
            };
            if signed.dashboard {
                item(
                    "/dashboard",
                    lang.pick("Maandcijfers", "Monthly figures"),
                    self.current == Current::Dashboard,
                );
            }
            if signed.learners {
                item(
                    "/learners",
                    lang.pick("Cursisten", "Learners"),
                    self.current == Current::Learners,
                );
            }
            if signed.privacy {
                item(
                    "/privacy",
                    lang.pick("Privacyrapporten", "Privacy reports"),
                    self.current == Current::Privacy,
                );
            }
            if signed.own_progress {
                item(
                    OWN_PROGRESS_PATH,
                    lang.pick("Mijn voortgang", "My progress"),
                    self.current == Current::OwnProgress,
                );
            }
            out.push_str("</ul></nav>\n");
        }
        out.push_str("<div class=\"tools\">\n");
        let other = lang.other();
        let _ = writeln!(
            out,
            "<a class=\"lang\" href=\"{href}\" lang=\"{code}\" hreflang=\"{code}\">{name}</a>",
            href = esc(&self.switch_href()),
            code = other.code(),
            name = other.own_name()
        );
        if let Some(signed) = &self.signed {
            let _ = write!(
                out,
                "<span class=\"who\">{as_} <strong>{name}</strong></span>\n\
                 <form class=\"logout\" method=\"post\" action=\"/logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button type=\"submit\">{logout}</button></form>\n",
                as_ = lang.pick("Ingelogd als", "Signed in as"),
                name = esc(signed.display_name),
                csrf = esc(signed.csrf),
                logout = lang.pick("Uitloggen", "Log out"),
            );
        }
        out.push_str("</div>\n</div>\n</header>\n");
        out.push_str("<main id=\"main\" tabindex=\"-1\">\n");
        out.push_str(main);
        out.push_str("\n</main>\n");
        let _ = write!(
            out,
            "<footer class=\"site\"><p>{text}</p></footer>\n</body>\n</html>\n",
            text = lang.pick(
                "Koninklijke Bibliotheek · leerregistraties van de cursussen Digitale basisvaardigheden. \
                 Deze pagina's gebruiken alleen een sessiecookie om u ingelogd te houden.",
                "KB, national library of the Netherlands · learning records of the digital skills courses. \
                 These pages use only a session cookie to keep you signed in."
            )
        );
        out
    }
}

/// A page response: HTML, the page CSP, never cached (it may hold personal
/// data and is tied to a session).
pub fn page_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 303 See Other to `location`, optionally setting a cookie.
pub fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Adds a `Set-Cookie` to a response.
pub fn with_cookie(mut response: Response, cookie: String) -> Response {
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\" title='y'>&</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(
            query(&[("month", "2026-10"), ("library", "")]),
            "?month=2026-10"
        );
        assert_eq!(query(&[("q", "a b&c")]), "?q=a+b%26c");
    }

    #[test]
    fn the_frame_has_a_skip_link_landmarks_and_a_language_switch() {
        let query = vec![
            ("month".to_owned(), "2026-10".to_owned()),
            ("lang".to_owned(), "nl".to_owned()),
        ];
        let page = Frame {
            lang: Lang::Nl,
            title: "Maandcijfers <test>",
            current: Current::Dashboard,
            signed: Some(Signed {
                display_name: "Anna & Bert",
                csrf: "tok",
                dashboard: true,
                learners: true,
                privacy: false,
                own_progress: false,
            }),
            path: "/dashboard",
            query: &query,
        }
        .render("<h1>x</h1>");
        assert!(page.contains("<html lang=\"nl\">"));
        assert!(page.contains("<a class=\"skip\" href=\"#main\">Naar de inhoud</a>"));
        assert!(page.contains("<main id=\"main\""));
        assert!(page.contains("Maandcijfers &lt;test&gt;"));
        assert!(page.contains("Anna &amp; Bert"));
        assert!(page.contains("href=\"/dashboard?month=2026-10&amp;lang=en\""));
        assert!(page.contains("aria-current=\"page\">Maandcijfers</a>"));
        assert!(page.contains("name=\"csrf\" value=\"tok\""));
    }
}
