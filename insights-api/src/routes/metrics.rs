use actix_web::HttpResponse;

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics_setup::handle().render())
}
