//! The one place webhook errors become HTTP responses (problem+json with a
//! stable code, the body being [`insights_core::problem::Problem`]; causes
//! stay in the logs).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use insights_core::problem::{self, Problem};

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
    /// The body is larger than the gateway accepts.
    #[error("the notification batch is larger than {0} bytes")]
    TooLarge(usize),
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
            WebhookError::TooLarge(_) => "notification-too-large",
            WebhookError::Unavailable(code) => code,
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebhookError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebhookError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (title, detail) = match self {
            WebhookError::Unauthorized(e) => ("Unauthorized", e.to_string()),
            WebhookError::BadRequest(d) => ("Bad Request", d.clone()),
            e @ WebhookError::TooLarge(_) => ("Payload Too Large", e.to_string()),
            WebhookError::Unavailable(_) => (
                "Service Unavailable",
                "a dependency of the gateway is unavailable; retry later".to_owned(),
            ),
        };
        let problem = Problem::new(status.as_u16(), title, self.code(), detail);
        let mut res = HttpResponse::build(status);
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(problem::CONTENT_TYPE),
        ));
        if status == StatusCode::UNAUTHORIZED {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            ));
        }
        // The gateway has always sent its problems with the keys sorted
        // (a `serde_json::Value` object); keep the bytes as they were.
        let body = serde_json::to_value(&problem)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| problem.to_json());
        res.body(body)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    fn rendered(e: &WebhookError) -> (StatusCode, Option<String>, String) {
        let res = e.error_response();
        let status = res.status();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = res.into_body().try_into_bytes().unwrap_or_default();
        (status, ct, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The exact bytes the gateway sent before the body moved to
    /// `insights_core::problem`.
    #[test]
    fn problem_bodies_are_byte_for_byte_stable() {
        let (status, ct, body) =
            rendered(&WebhookError::BadRequest("not a notification batch".into()));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        assert_eq!(
            body,
            r#"{"code":"malformed-notification","detail":"not a notification batch","status":400,"title":"Bad Request","type":"about:blank"}"#
        );
        let (status, _, body) = rendered(&WebhookError::Unavailable("signing-keys-unavailable"));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            r#"{"code":"signing-keys-unavailable","detail":"a dependency of the gateway is unavailable; retry later","status":503,"title":"Service Unavailable","type":"about:blank"}"#
        );
        let res = WebhookError::Unauthorized(AuthError::Missing).error_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer error=\"invalid_token\"")
        );
    }
}
