//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the
//! `#[utoipa::path]` annotations on the handlers and the schemas below.
//! A test checks that every route the app serves is in it and that the
//! documented search body has exactly the fields `RecordingQuery`
//! accepts.

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An error (RFC 9457 `application/problem+json`).
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only
pub struct Problem {
    /// Always `about:blank`.
    #[schema(rename = "type")]
    kind: String,
    /// The HTTP reason phrase.
    title: String,
    status: u16,
    /// A safe explanation; never echoes input.
    detail: String,
    /// Stable kebab-case code, e.g. `permission-denied`.
    code: String,
}

/// The body of `POST /api/recordings/search` (and an export's `query`):
/// `insights_core::domain::RecordingQuery`. Every field is optional.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only
pub struct SearchRequest {
    /// `started_at >= from` (RFC 3339).
    from: Option<String>,
    /// `started_at < to` (RFC 3339).
    to: Option<String>,
    /// Words matched against participant names, emails and URIs, or
    /// digits matched within phone numbers.
    participant: Option<String>,
    /// Recordings in which this directory user took part.
    user_id: Option<String>,
    /// Ignored: the caller's scope always decides.
    visible_to_users: Option<Vec<String>>,
    /// `inbound`, `outbound` or `internal`.
    direction: Option<String>,
    /// `call` or `meeting`.
    kind: Option<String>,
    min_duration_ms: Option<i64>,
    max_duration_ms: Option<i64>,
    has_transcript: Option<bool>,
    legal_hold: Option<bool>,
    /// Words spoken (full-text over transcript segments).
    transcript_text: Option<String>,
    /// `started-desc` (default), `started-asc`, `duration-desc`, `duration-asc`.
    sort: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Page size 1..=500 (default 50).
    limit: Option<u32>,
    /// Count every match. By default the count stops at 10 000: `total`
    /// is then `10000` and `total_is_lower_bound` is `true` (shown as
    /// "10 000+"); ask for the exact figure with `true` (slower on broad
    /// searches over a large tenant).
    exact_total: Option<bool>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("insights_session"))),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Insights API", description = "Compliance recording: search, play, transcripts, audit and export."),
    paths(
        super::health::healthz,
        super::health::livez,
        super::health::readyz,
        super::metrics::metrics,
        super::auth::login,
        super::auth::first_sign_in,
        super::auth::logout,
        super::auth::me,
        crate::auth::oidc_login::providers,
        crate::auth::oidc_login::login,
        crate::auth::oidc_login::callback,
        super::recordings::search,
        super::recordings::count,
        super::recordings::detail,
        super::recordings::transcript,
        super::recordings::media,
        super::recordings::download,
        super::recordings::stream_media,
        super::pause::pause,
        super::pause::resume,
        super::jobs::list,
        super::audit::list,
        super::audit::verify,
        super::audit::people,
        super::exports::start,
        super::exports::status,
        super::exports::file,
        super::access::create,
        super::access::list,
        super::access::approve,
        super::access::deny,
        super::admin::get_settings,
        super::admin::put_settings,
        super::admin::list_profiles,
        super::admin::create_profile,
        super::admin::replace_profile,
        super::recording_policy::get_policy,
        super::recording_policy::put_policy,
        super::completeness::report,
        super::completeness::export,
        super::completeness::run,
        super::completeness::threshold,
        super::alerts::list_alerts,
        super::alerts::ack_alert,
        super::alerts::list_channels,
        super::alerts::create_channel,
        super::alerts::delete_channel,
        super::governance::list_holds,
        super::governance::place_hold,
        super::governance::lift_hold,
        super::governance::list_policies,
        super::governance::create_policy,
        super::governance::update_policy,
        super::governance::delete_policy,
        super::governance::run_retention,
        super::governance::retention_due,
        super::governance::list_changes,
        super::governance::approve_change,
        super::governance::reject_change,
        super::governance::list_users,
        super::governance::create_user,
        super::governance::update_user,
        super::governance::reset_password,
        super::governance::reset_second_factor,
        super::directory::list_users,
        super::directory::sync,
        super::directory::delete_user,
        super::gdpr::find,
        super::gdpr::access_start,
        super::gdpr::access_status,
        super::gdpr::access_file,
        super::gdpr::rectification,
        super::gdpr::erasure_create,
        super::gdpr::erasure_list,
        super::gdpr::erasure_get,
        super::gdpr::erasure_execute,
        super::gdpr::erasure_certificate,
    ),
    components(schemas(Problem, SearchRequest, super::access::NewAccessRequest, super::access::Decision, super::admin::Settings, super::admin::ProfileBody, super::recording_policy::RecordingPolicyBody, super::recording_policy::RecordingPolicyView, super::recording_policy::PolicyRuleBody, super::completeness::PeriodQuery, super::completeness::RunBody, super::completeness::ThresholdBody, super::alerts::AlertView, super::alerts::ChannelView, super::alerts::NewChannelBody, super::governance::NewHoldBody, super::governance::HoldScopeBody, super::governance::LiftBody, super::governance::PolicyBody, super::governance::RunBody, super::governance::NewUserBody, super::governance::UserChangeBody, super::governance::ResetPasswordBody, super::gdpr::FindBody, super::gdpr::AccessBody, super::gdpr::ErasureBody)),
    security(("bearer" = []), ("session" = [])),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
