//! `POST /api/auth/login`, `POST /api/auth/first-sign-in`,
//! `POST /api/auth/logout`, `GET /api/auth/me`.
//!
//! * login: JSON `{"tenant": "contoso", "email": "...", "password": "...",
//!   "totp": "123456"}` (`tenant` omitted for a platform operator; `totp`
//!   once TOTP is enrolled, or `"recovery_code"` instead) → `200` with
//!   either `{"status": "signed-in", "token", "token_type": "Bearer",
//!   "expires_at", "expires_in", "session_expires_at", "csrf_token"}` and
//!   the session cookie, or, while the first sign-in is still to come,
//!   `{"status": "first-sign-in", "challenge", "expires_in",
//!   "password_change_required", "totp_enrolment_required", "totp_uri",
//!   "totp_secret"}` and no session. Wrong anything → `401
//!   invalid-credentials` (the same for every cause); locked (tenant and
//!   email, whether the account exists or not) → `423 account-locked` with
//!   `Retry-After`; too many failures from the client address, or every
//!   password check busy → `429 too-many-attempts` with `Retry-After`.
//! * first-sign-in: `{"challenge", "new_password", "totp"}` → `200` as a
//!   signed-in login, plus `"recovery_codes"` (ten, shown once) and the
//!   session cookie. Wrong code → `401 invalid-code`; bad or reused
//!   password → `400 bad-password` / `password-reused`; stale challenge →
//!   `401 challenge-invalid`.
//! * logout: revokes the caller's session (cookie or API token alike:
//!   the token dies with its session) → `204`, and clears the cookie.
//! * me: the caller's [`Principal`] as JSON.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::AppState;
use crate::auth::{FirstSignInRequest, LoginAnswer, LoginRequest, Principal, session};
use crate::error::ApiError;

fn client(state: &AppState, req: &HttpRequest) -> Option<std::net::IpAddr> {
    state.auth.client_ip(req)
}

/// `POST /api/auth/login`.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body = crate::auth::LoginRequest,
    responses(
        (status = 200, description = "Signed in (an API token and the session cookie), or a first sign-in challenge (`status` tells which)", body = crate::auth::LoginResponse),
        (status = 400, description = "Malformed body", body = super::openapi::Problem),
        (status = 401, description = "Invalid credentials (the same for every cause)", body = super::openapi::Problem),
        (status = 423, description = "Account locked", body = super::openapi::Problem),
        (status = 429, description = "Too many failures from this address", body = super::openapi::Problem)))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let out = match state
        .auth
        .login(body.into_inner(), client(&state, &req))
        .await?
    {
        LoginAnswer::SignedIn(out) => out,
        LoginAnswer::FirstSignIn(challenge) => {
            return Ok(HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(challenge));
        }
    };
    let max_age = state.auth.settings().session_max_secs;
    Ok(HttpResponse::Ok()
        .cookie(session::cookie(&out.session_token, max_age))
        .cookie(session::issue_csrf_cookie(&out.session_token, max_age))
        .insert_header(("Cache-Control", "no-store"))
        .json(out.response))
}

/// `POST /api/auth/first-sign-in`.
#[utoipa::path(post, path = "/api/auth/first-sign-in", tag = "auth",
    request_body = crate::auth::FirstSignInRequest,
    responses(
        (status = 200, description = "Signed in, with the recovery codes (shown once) and the session cookie", body = crate::auth::LoginResponse),
        (status = 400, description = "Malformed body, missing code, bad or reused password", body = super::openapi::Problem),
        (status = 401, description = "Invalid challenge or code", body = super::openapi::Problem),
        (status = 423, description = "Too many wrong codes", body = super::openapi::Problem),
        (status = 429, description = "Too many failures from this address, or busy", body = super::openapi::Problem)))]
pub async fn first_sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<FirstSignInRequest>,
) -> Result<HttpResponse, ApiError> {
    let out = state
        .auth
        .first_sign_in(body.into_inner(), client(&state, &req))
        .await?;
    let max_age = state.auth.settings().session_max_secs;
    Ok(HttpResponse::Ok()
        .cookie(session::cookie(&out.session_token, max_age))
        .cookie(session::issue_csrf_cookie(&out.session_token, max_age))
        .insert_header(("Cache-Control", "no-store"))
        .json(out.response))
}

/// `POST /api/auth/logout`.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "Signed out; the session and its tokens are revoked"),
        (status = 401, description = "Not signed in", body = super::openapi::Problem)))]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    p: Principal,
) -> Result<HttpResponse, ApiError> {
    state.auth.logout(&p, client(&state, &req)).await?;
    Ok(HttpResponse::NoContent()
        .cookie(session::removal_cookie())
        .cookie(session::csrf_removal_cookie())
        .finish())
}

/// `GET /api/auth/me`.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses(
        (status = 200, description = "The caller: tenant, subject, role, permissions, scope", body = Object),
        (status = 401, description = "Not signed in", body = super::openapi::Problem)))]
pub async fn me(p: Principal) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(p)
}
