mod access;
mod admin;
mod alerts;
mod audit;
mod auth;
pub mod completeness;
pub mod directory;
pub mod exports;
pub mod gdpr;
mod governance;
pub mod health;
mod jobs;
pub(crate) mod metrics;
pub(crate) mod openapi;
mod pause;
pub mod recording_policy;
pub mod recordings;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/api/auth/login", web::post().to(auth::login))
        .route(
            "/api/auth/first-sign-in",
            web::post().to(auth::first_sign_in),
        )
        .route("/api/auth/logout", web::post().to(auth::logout))
        .route("/api/auth/me", web::get().to(auth::me))
        .configure(crate::auth::oidc_login::configure)
        .route("/api/openapi.json", web::get().to(openapi::document))
        .configure(recordings::configure)
        .configure(pause::configure)
        .configure(access::configure)
        .configure(admin::configure)
        .configure(recording_policy::configure)
        .configure(completeness::configure)
        .configure(alerts::configure)
        .configure(audit::configure)
        .configure(directory::configure)
        .configure(exports::configure)
        .configure(jobs::configure)
        .configure(governance::configure)
        .configure(gdpr::configure);
}
