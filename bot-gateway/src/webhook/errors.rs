//! The one place webhook errors become HTTP responses (problem+json with a
//! stable code; causes stay in the logs).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::auth::AuthError;

/// What went wrong with a callback request.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The bearer token was missing or invalid.
    #[error("unauthorized: {0}")]
    Unauthorized(#[source] AuthError),
    /// The body is not a notification batch of the documented shape.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A dependency (store, signing keys) is down; Graph should retry.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
}

impl From<AuthError> for WebhookError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::KeysUnavailable(_) => WebhookError::Unavailable("signing-keys-unavailable"),
            e => WebhookError::Unauthorized(e),
        }
    }
}

impl WebhookError {
    fn code(&self) -> &'static str {
        match self {
            WebhookError::Unauthorized(e) => e.code(),
            WebhookError::BadRequest(_) => "malformed-notification",
            WebhookError::Unavailable(code) => code,
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebhookError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebhookError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (title, detail) = match self {
            WebhookError::Unauthorized(e) => ("Unauthorized", e.to_string()),
            WebhookError::BadRequest(d) => ("Bad Request", d.clone()),
            WebhookError::Unavailable(_) => (
                "Service Unavailable",
                "a dependency of the gateway is unavailable; retry later".to_owned(),
            ),
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            ));
        }
        res.body(
            json!({
                "type": "about:blank",
                "title": title,
                "status": status.as_u16(),
                "code": self.code(),
                "detail": detail,
            })
            .to_string(),
        )
    }
}
