//! Prometheus metrics: one process-wide recorder, rendered at `/metrics`.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle; installs the global recorder on first
/// use. If another recorder is already installed (a host process that set
/// its own), ours still renders whatever is recorded through it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0])
            .map(|b| b.build_recorder())
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only ours");
        }
        metrics::describe_counter!(
            "insights_http_requests_total",
            "HTTP requests by route pattern, method and status"
        );
        metrics::describe_histogram!(
            "insights_http_request_duration_seconds",
            "HTTP request latency by route pattern"
        );
        metrics::gauge!("insights_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Middleware counting requests. Labels use the matched route *pattern*
/// (`/api/recordings/{id}`), never the concrete path, so no identifier or
/// personal data reaches a label.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16().to_string();
    metrics::counter!("insights_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("insights_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    Ok(res)
}
