//! The scripts and the style sheet, compiled in, and the export column
//! catalogue as JSON.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use insights_api::export::columns::CATALOGUE;
use serde_json::json;

/// `(file name, content type, content)`.
static ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../static/app.css"),
    ),
    ("common.js", JS, include_str!("../static/common.js")),
    ("login.js", JS, include_str!("../static/login.js")),
    ("setup.js", JS, include_str!("../static/setup.js")),
    ("search.js", JS, include_str!("../static/search.js")),
    ("recording.js", JS, include_str!("../static/recording.js")),
    ("export.js", JS, include_str!("../static/export.js")),
    ("access.js", JS, include_str!("../static/access.js")),
    ("audit.js", JS, include_str!("../static/audit.js")),
    ("holds.js", JS, include_str!("../static/holds.js")),
    ("retention.js", JS, include_str!("../static/retention.js")),
    ("users.js", JS, include_str!("../static/users.js")),
    ("settings.js", JS, include_str!("../static/settings.js")),
    (
        "recording-policy.js",
        JS,
        include_str!("../static/recording-policy.js"),
    ),
    ("gdpr.js", JS, include_str!("../static/gdpr.js")),
    (
        "completeness.js",
        JS,
        include_str!("../static/completeness.js"),
    ),
    ("alerts.js", JS, include_str!("../static/alerts.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The asset's content type and content.
pub fn find(name: &str) -> Option<(&'static str, &'static str)> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, t, c)| (*t, *c))
}

/// `GET /static/{file}`.
pub async fn serve(path: web::Path<String>) -> HttpResponse {
    let res = match find(&path) {
        Some((ct, body)) => HttpResponse::Ok()
            .content_type(ct)
            // Assets change only with the binary; revalidate anyway so an
            // upgrade is picked up at once.
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such file"),
    };
    super::with_csp(res)
}

/// `GET /ui/export-columns.json`: `{items: [{id, header, class, permission}]}`.
pub async fn columns() -> HttpResponse {
    let items: Vec<_> = CATALOGUE
        .iter()
        .map(|c| {
            json!({
                "id": c.id.as_str(),
                "header": c.header,
                "class": c.class,
                "permission": c.class.required_permission().as_str(),
            })
        })
        .collect();
    super::with_csp(HttpResponse::Ok().json(json!({ "items": items })))
}
