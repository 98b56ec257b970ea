use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::metrics_setup;

/// Marks the app of the dedicated `[metrics] listen` server.
pub(crate) struct DedicatedListener;

/// `GET /metrics`: Prometheus text exposition. With `[metrics] listen`
/// set it is served only there (404 on the main listener); with
/// `[metrics] bearer_token` it needs `Authorization: Bearer <token>`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, description = "`[metrics] bearer_token` is set and the request lacks it")))]
pub async fn metrics(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let cfg = metrics_setup::config();
    let dedicated = req.app_data::<DedicatedListener>().is_some();
    if cfg.listen.is_some() && !dedicated {
        return Err(ApiError::NotFound);
    }
    if let Some(expected) = &cfg.bearer_token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .unwrap_or_default();
        if !constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
            return Err(ApiError::Unauthorized {
                code: "authentication-required",
            });
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics_setup::handle().render()))
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
