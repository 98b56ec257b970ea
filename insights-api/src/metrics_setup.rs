//! Prometheus metrics: one process-wide recorder, rendered at `/metrics`.
//!
//! `[metrics]` ([`MetricsSettings`]) is applied once per process with
//! [`configure`] before the server is built: `/metrics` then moves to its
//! own listener (`listen`; the main listener answers 404 for it), needs a
//! bearer token (`bearer_token`), and keeps tenant labels only with
//! `tenant_labels = true` — otherwise every `tenant`/`tenant_id` label is
//! dropped at the recorder and the series are summed ([`TenantBlind`]), so
//! no tenant id reaches the exposition whichever crate records it.
//! Without [`configure`] the defaults apply (main listener, no token, no
//! tenant labels).
//!
//! Labels of HTTP metrics are bounded: the matched route pattern (never
//! the concrete path) and the method, reduced to the standard methods
//! ([`method_label`]) so a client cannot mint a series per request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use insights_core::config::{ConfigError, MetricsSettings, Secret};
use metrics::{
    Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static CONFIG: OnceLock<MetricsConfig> = OnceLock::new();

/// `[metrics]` as the process applies it.
#[derive(Debug, Default)]
pub struct MetricsConfig {
    /// `/metrics` only on this address.
    pub listen: Option<SocketAddr>,
    /// Required `Authorization: Bearer` token.
    pub bearer_token: Option<Secret>,
    /// Keep `tenant` labels.
    pub tenant_labels: bool,
}

/// Applies `[metrics]` for this process (once; later calls keep the first
/// configuration) and installs the recorder.
pub fn configure(settings: &MetricsSettings) -> Result<(), ConfigError> {
    let cfg = MetricsConfig {
        listen: settings.listen,
        bearer_token: settings.bearer_token()?,
        tenant_labels: settings.tenant_labels,
    };
    if CONFIG.set(cfg).is_err() {
        tracing::debug!("metrics already configured in this process");
    }
    handle();
    Ok(())
}

/// The configuration in force (defaults when [`configure`] was not called).
pub fn config() -> &'static MetricsConfig {
    CONFIG.get_or_init(MetricsConfig::default)
}

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
        let installed = if config().tenant_labels {
            metrics::set_global_recorder(recorder).is_ok()
        } else {
            metrics::set_global_recorder(TenantBlind::new(recorder)).is_ok()
        };
        if !installed {
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

/// The `method` label: one of the standard methods, else `other`.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware counting requests. Labels use the matched route *pattern*
/// (`/api/recordings/{id}`), never the concrete path, so no identifier or
/// personal data reaches a label, and a standard method name.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = method_label(req.method());
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

/// Labels that name a tenant.
const TENANT_LABELS: &[&str] = &["tenant", "tenant_id"];

/// A recorder that drops tenant labels before the Prometheus recorder sees
/// them. Counters and histograms of the tenants then share one series
/// (their sum); a gauge set per tenant contributes its own value to the
/// shared series ([`SummedGauge`]), so the series is the sum over tenants.
struct TenantBlind {
    inner: PrometheusRecorder,
    gauges: Mutex<HashMap<Key, Arc<SummedGauge>>>,
}

impl TenantBlind {
    fn new(inner: PrometheusRecorder) -> Self {
        Self {
            inner,
            gauges: Mutex::new(HashMap::new()),
        }
    }

    /// `key` without tenant labels, or `None` if it has none.
    fn strip(key: &Key) -> Option<Key> {
        if !key.labels().any(|l| TENANT_LABELS.contains(&l.key())) {
            return None;
        }
        let labels: Vec<_> = key
            .labels()
            .filter(|l| !TENANT_LABELS.contains(&l.key()))
            .cloned()
            .collect();
        Some(Key::from_parts(key.name_shared(), labels))
    }
}

/// One tenant's share of a summed gauge: setting it moves the shared
/// series by the difference to this tenant's previous value.
struct SummedGauge {
    last: AtomicU64,
    shared: Gauge,
}

impl GaugeFn for SummedGauge {
    fn increment(&self, value: f64) {
        self.add(value);
    }

    fn decrement(&self, value: f64) {
        self.add(-value);
    }

    fn set(&self, value: f64) {
        let before = f64::from_bits(self.last.swap(value.to_bits(), Ordering::AcqRel));
        self.shared.increment(value - before);
    }
}

impl SummedGauge {
    fn add(&self, delta: f64) {
        let mut cur = self.last.load(Ordering::Acquire);
        loop {
            let next = (f64::from_bits(cur) + delta).to_bits();
            match self
                .last
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        self.shared.increment(delta);
    }
}

impl Recorder for TenantBlind {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match Self::strip(key) {
            Some(k) => self.inner.register_counter(&k, metadata),
            None => self.inner.register_counter(key, metadata),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let Some(stripped) = Self::strip(key) else {
            return self.inner.register_gauge(key, metadata);
        };
        let Ok(mut gauges) = self.gauges.lock() else {
            return Gauge::noop();
        };
        let part = gauges.entry(key.clone()).or_insert_with(|| {
            Arc::new(SummedGauge {
                last: AtomicU64::new(0f64.to_bits()),
                shared: self.inner.register_gauge(&stripped, metadata),
            })
        });
        Gauge::from_arc(Arc::clone(part))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match Self::strip(key) {
            Some(k) => self.inner.register_histogram(&k, metadata),
            None => self.inner.register_histogram(key, metadata),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_methods_are_labels() {
        use actix_web::http::Method;
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let odd = Method::from_bytes(b"FOO-1234").unwrap_or(Method::GET);
        assert_eq!(method_label(&odd), "other");
    }

    #[test]
    fn tenant_labels_are_dropped_and_gauges_summed() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let blind = TenantBlind::new(recorder);
        metrics::with_local_recorder(&blind, || {
            metrics::gauge!("due", "tenant" => "t-1").set(3.0);
            metrics::gauge!("due", "tenant" => "t-2").set(4.0);
            metrics::gauge!("due", "tenant" => "t-1").set(1.0);
            metrics::counter!("runs", "tenant_id" => "t-1", "kind" => "a").increment(2);
            metrics::counter!("runs", "tenant_id" => "t-2", "kind" => "a").increment(1);
        });
        let text = handle.render();
        assert!(!text.contains("t-1") && !text.contains("t-2"), "{text}");
        assert!(text.contains("due 5"), "{text}");
        assert!(text.contains("runs{kind=\"a\"} 3"), "{text}");
    }
}
