//! `ApiError`: the one place errors become HTTP responses.
//!
//! Every error is an RFC 9457 problem (`application/problem+json`, the
//! body being [`insights_core::problem::Problem`]):
//!
//! ```json
//! {"type": "about:blank", "title": "Unauthorized", "status": 401,
//!  "detail": "the credentials are not valid", "code": "invalid-credentials"}
//! ```
//!
//! `code` is a stable kebab-case string clients may branch on; `title` is
//! the status's reason phrase; `detail` is a safe, human-readable
//! sentence. Causes (store failures, I/O) go to the log only, never to the
//! client, and nothing a client sent (names, emails, tokens) is echoed.
//! The mapping is one explicit `match` per property; anything unforeseen
//! is a 500.
//!
//! Handlers return `Result<_, ApiError>`; `?` converts store errors
//! ([`From<StoreError>`]) and `anyhow` errors (as internal errors).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use insights_core::problem::{self, Problem};
use insights_core::store::StoreError;

/// An error of the HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed. `detail` must not echo input.
    #[error("bad request ({code})")]
    BadRequest { code: &'static str, detail: String },
    /// 401: missing, invalid or expired credentials. Sent with
    /// `WWW-Authenticate: Bearer`.
    #[error("unauthorized ({code})")]
    Unauthorized { code: &'static str },
    /// 403: authenticated, but not allowed.
    #[error("forbidden ({code})")]
    Forbidden { code: &'static str },
    /// 404: no such object (or one of another tenant: indistinguishable).
    #[error("not found")]
    NotFound,
    /// 409: the request conflicts with the stored state.
    #[error("conflict ({code})")]
    Conflict { code: &'static str, detail: String },
    /// 423: the account is locked after too many failed logins.
    #[error("locked")]
    Locked { retry_after_secs: u64 },
    /// 429: too many requests (failed logins) from this client.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// 503: a dependency is down; retry later.
    #[error("unavailable ({code})")]
    Unavailable { code: &'static str },
    /// 500: a bug or an unexpected failure; the cause is logged only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// An internal error from any cause.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// The stable kebab-case code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code }
            | ApiError::Forbidden { code }
            | ApiError::Conflict { code, .. }
            | ApiError::Unavailable { code } => code,
            ApiError::NotFound => "not-found",
            ApiError::Locked { .. } => "account-locked",
            ApiError::TooManyRequests { .. } => "too-many-attempts",
            ApiError::Internal(_) => "internal-error",
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::BadRequest { detail, .. } | ApiError::Conflict { detail, .. } => {
                detail.clone()
            }
            ApiError::Unauthorized { code } => match *code {
                "invalid-credentials" => "the credentials are not valid".into(),
                "authentication-required" => {
                    "this request needs a bearer token or a session".into()
                }
                "token-expired" => "the token has expired; sign in again".into(),
                "session-expired" => "the session has ended; sign in again".into(),
                "unknown-tenant" => "the token's directory tenant is not a tenant here".into(),
                "totp-code-reused" => {
                    "this authentication code was used already; wait for the next code of your app"
                        .into()
                }
                _ => "the presented credentials were refused".into(),
            },
            ApiError::Forbidden { code } => match *code {
                "permission-denied" => "your role does not allow this".into(),
                "tenant-required" => {
                    "this needs a tenant user; platform operators have none".into()
                }
                "no-role" => "your account has no role in this application".into(),
                _ => "this is not allowed".into(),
            },
            ApiError::NotFound => "no such object".into(),
            ApiError::Locked { .. } => {
                "too many failed logins: the account is locked for a while".into()
            }
            ApiError::TooManyRequests { .. } => {
                "too many failed logins from this address; retry later".into()
            }
            ApiError::Unavailable { .. } => "a dependency is unavailable; retry later".into(),
            ApiError::Internal(_) => "an internal error occurred".into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            // Store messages are ours (ids, table names), never data.
            StoreError::Conflict(m) => ApiError::Conflict {
                code: "conflict",
                detail: m,
            },
            StoreError::Refused(m) => ApiError::Conflict {
                code: "refused",
                detail: m,
            },
            StoreError::Invalid(m) => ApiError::BadRequest {
                code: "invalid-request",
                detail: m,
            },
            e @ (StoreError::Corrupt(_) | StoreError::Backend(_)) => ApiError::Internal(e.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Locked { .. } => StatusCode::LOCKED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            // The cause chain is ours and holds ids only.
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error")
            }
            ApiError::Unavailable { code } => tracing::warn!(code, "dependency unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(status);
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(problem::CONTENT_TYPE),
        ));
        match self {
            ApiError::Unauthorized { .. } => {
                res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::Locked { retry_after_secs }
            | ApiError::TooManyRequests { retry_after_secs } => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.max(&1).to_string()));
            }
            _ => {}
        }
        let body = Problem::new(
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error"),
            self.code(),
            self.detail(),
        );
        res.body(body.to_json())
    }
}

/// JSON bodies that do not parse become `400 invalid-body` problems (the
/// parser's message may quote the input, so it is not passed on). A
/// missing field is named: the name is the API's own, never input.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|err, _req| {
            tracing::debug!(kind = ?std::mem::discriminant(&err), "rejected a JSON body");
            let detail = match &err {
                actix_web::error::JsonPayloadError::Deserialize(e) => missing_field(e),
                _ => None,
            }
            .map(|f| format!("the field `{f}` is missing: send every field"))
            .unwrap_or_else(|| "the body is not JSON of the expected shape".into());
            ApiError::BadRequest {
                code: "invalid-body",
                detail,
            }
            .into()
        })
}

/// The field a body lacks, when that is why it was refused (a name of
/// the API's own types, checked to look like one).
fn missing_field(e: &serde_json::Error) -> Option<String> {
    let msg = e.to_string();
    let rest = msg.strip_prefix("missing field `")?;
    let name = &rest[..rest.find('`')?];
    (!name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then(|| name.to_owned())
}

/// Unmatched routes: `404 not-found` as a problem.
pub async fn not_found(_req: HttpRequest) -> ApiError {
    ApiError::NotFound
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body(e: &ApiError) -> serde_json::Value {
        let res = e.error_response();
        let bytes = res.into_body().try_into_bytes().unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[test]
    fn problems_have_stable_codes_and_hide_causes() {
        let e = ApiError::from(StoreError::Backend("db at 10.0.0.5 down".into()));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let b = body(&e);
        assert_eq!(b["code"], "internal-error");
        assert_eq!(b["status"], 500);
        assert!(!b.to_string().contains("10.0.0.5"));
        assert_eq!(
            ApiError::from(StoreError::NotFound).status_code(),
            StatusCode::NOT_FOUND
        );
        let b = body(&ApiError::Unauthorized {
            code: "invalid-credentials",
        });
        assert_eq!(b["title"], "Unauthorized");
        assert_eq!(b["type"], "about:blank");
        let res = ApiError::Locked {
            retry_after_secs: 60,
        }
        .error_response();
        assert_eq!(res.status(), StatusCode::LOCKED);
        assert_eq!(
            res.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("60")
        );
        assert_eq!(
            res.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
    }

    #[test]
    fn a_missing_field_is_named_and_nothing_else_is_echoed() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Two {
            first: bool,
            second_one: bool,
        }
        let named = serde_json::from_str::<Two>(r#"{"first": true}"#)
            .err()
            .and_then(|e| missing_field(&e));
        assert_eq!(named.as_deref(), Some("second_one"));
        let other = serde_json::from_str::<Two>(r#"{"first": "secret"}"#).err();
        assert!(other.is_some());
        assert_eq!(other.and_then(|e| missing_field(&e)), None);
    }

    /// The exact bytes the API sent before the body moved to
    /// `insights_core::problem`.
    #[test]
    fn problem_bodies_are_byte_for_byte_stable() {
        let res = ApiError::Unauthorized {
            code: "invalid-credentials",
        }
        .error_response();
        let bytes = res.into_body().try_into_bytes().unwrap_or_default();
        assert_eq!(
            &bytes[..],
            br#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"the credentials are not valid","code":"invalid-credentials"}"#
        );
    }
}
