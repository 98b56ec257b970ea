//! The web UI: HTML pages and the hand-written JavaScript and CSS they
//! load, compiled into the binary (`include_str!`), mounted into the API's
//! server ([`configure`]) so pages and `/api` share one origin. Running it
//! needs no Node.js.
//!
//! * Pages (`/login`, `/search`, `/recordings/{id}`, `/export`, `/audit`,
//!   `/admin/...`) are a static main fragment (`pages/*.html`) inside one
//!   layout. They hold no data: every page's script fetches it from the
//!   JSON API with the session cookie and the CSRF header. A page that
//!   needs a permission is refused with a 403 page (and a signed-out
//!   visitor sent to `/login`) before any script runs, and its navigation
//!   shows only the pages the caller's permissions open; the API enforces
//!   the same permissions again on every call.
//! * `/static/*`: the scripts and the style sheet. No inline script or
//!   style anywhere, so every UI response carries a strict
//!   Content-Security-Policy ([`CSP`]).
//! * `/ui/export-columns.json`: the export column catalogue
//!   ([`insights_api::export::columns::CATALOGUE`]) with the permission
//!   each column needs.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use insights_api::{ApiError, Principal};
use insights_core::domain::Permission;

mod assets;
mod pages;

/// The Content-Security-Policy of every UI response: scripts, styles,
/// media and connections from this origin only (media also from `blob:`
/// URLs the player makes when a reason for access must be sent in a
/// header), nothing inline, no plugins, no framing, no `<base>`, forms
/// post only here.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Registers the UI's routes (no `/api` path among them).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root))
        .route("/login", web::get().to(login))
        .route("/setup", web::get().to(setup))
        .route("/static/{file}", web::get().to(assets::serve))
        .route("/ui/export-columns.json", web::get().to(assets::columns));
    for page in pages::PAGES {
        cfg.route(
            page.path,
            web::get().to(move |p, req: HttpRequest| show(p, req, page)),
        );
    }
}

/// Sets [`CSP`] on a UI response (the API's default headers add the
/// rest: `nosniff`, `DENY` framing, no referrer, `no-store` unless set).
fn with_csp(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}

fn with_ui_headers(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_csp(res)
}

async fn root(p: Result<Principal, ApiError>) -> HttpResponse {
    let to = match p {
        Ok(p) if p.has(Permission::Search) => "/search",
        Ok(p) => pages::first_page(&p).unwrap_or("/search"),
        Err(_) => "/login",
    };
    redirect(to)
}

fn redirect(to: &str) -> HttpResponse {
    with_ui_headers(
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, to))
            .finish(),
    )
}

/// `/login?next=PATH` for a page opened while signed out, so the sign-in
/// returns there: only this server's own path (percent-encoded, never a
/// scheme, host or query), which `login.js` checks again.
fn login_returning_to(req: &HttpRequest, fragment: &str) -> String {
    let path = req.path();
    if !path.starts_with('/') || path.starts_with("//") {
        return format!("/login{fragment}");
    }
    let mut next = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            next.push(char::from(b));
        } else {
            next.push_str(&format!("%{b:02X}"));
        }
    }
    format!("/login?next={next}{fragment}")
}

async fn login() -> HttpResponse {
    html(StatusCode::OK, pages::login())
}

/// The first-run page; creating anything needs the one-time token
/// `insights serve` prints while no tenant exists (`POST /api/setup`).
async fn setup() -> HttpResponse {
    html(StatusCode::OK, pages::setup())
}

async fn show(
    p: Result<Principal, ApiError>,
    req: HttpRequest,
    page: &'static pages::Page,
) -> HttpResponse {
    match p {
        // A session that ended (idle, absolute limit, signed out
        // elsewhere) says so on the sign-in page; either way the sign-in
        // returns to this page.
        Err(ApiError::Unauthorized {
            code: "session-expired",
        }) => redirect(&login_returning_to(&req, "#expired")),
        Err(ApiError::Unauthorized { .. }) => redirect(&login_returning_to(&req, "")),
        Err(e) => html(
            ResponseError::status_code(&e),
            pages::error_page(
                "Something went wrong",
                &format!(
                    "The server could not check who you are ({}). Try again, or sign in again.",
                    e.code()
                ),
            ),
        ),
        Ok(p) => match pages::refusal(&p, page) {
            Some(why) => html(StatusCode::FORBIDDEN, pages::forbidden(&p, page, why)),
            None => html(StatusCode::OK, pages::render(&p, page)),
        },
    }
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    with_ui_headers(
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything the UI ships, as text.
    fn all_html() -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = pages::PAGES
            .iter()
            .map(|p| (p.path.to_owned(), p.main_html().to_owned()))
            .collect();
        out.push(("login".into(), pages::login()));
        out.push(("setup".into(), pages::setup()));
        out.push(("error".into(), pages::error_page("t", "d")));
        out
    }

    #[test]
    fn no_inline_script_style_or_handler_anywhere() {
        for (name, html) in all_html() {
            let lower = html.to_lowercase();
            for (i, _) in lower.match_indices("<script") {
                let tag = &lower[i..i + lower[i..].find('>').unwrap_or(0)];
                assert!(
                    tag.contains(" src=\"/static/"),
                    "{name}: inline script {tag}"
                );
            }
            assert!(!lower.contains("<style"), "{name}: inline <style>");
            assert!(!lower.contains(" style="), "{name}: style attribute");
            assert!(!lower.contains("javascript:"), "{name}: javascript: URL");
            for attr in [
                " onclick=",
                " onload=",
                " onerror=",
                " onsubmit=",
                " onchange=",
            ] {
                assert!(!lower.contains(attr), "{name}: inline handler {attr}");
            }
        }
        for name in ["app.css", "common.js", "search.js", "recording.js"] {
            let (_, body) = assets::find(name).unwrap_or(("", ""));
            assert!(!body.is_empty(), "{name} is shipped");
            assert!(
                !body.contains("innerHTML"),
                "{name} must build the DOM from text"
            );
            assert!(!body.contains("eval("), "{name}");
        }
    }

    #[test]
    fn every_page_has_its_script_and_forms_never_get() {
        for p in pages::PAGES {
            assert!(assets::find(&format!("{}.js", p.id)).is_some(), "{}", p.id);
            let main = p.main_html().to_lowercase();
            for (i, _) in main.match_indices("<form") {
                let tag = &main[i..i + main[i..].find('>').unwrap_or(0)];
                // A form submitted without its script must not put what was
                // typed into a URL (GET); the audit filters hold only ids.
                assert!(
                    tag.contains("method=\"post\"") || p.id == "audit",
                    "{}: {tag}",
                    p.id
                );
            }
        }
        assert!(assets::find("login.js").is_some());
        assert!(assets::find("../lib.rs").is_none());
        assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe"));
    }
}
