//! Backoff with full jitter and `Retry-After` parsing.

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How a request is retried.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
        }
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1): a
    /// random duration up to `base * 2^(attempt-1)`, capped ("full
    /// jitter"), so that many clients do not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        let ms = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }
}

/// Whether a status is worth retrying: throttling and server trouble.
pub(crate) fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` as delay-seconds or an HTTP date, relative to `now`.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, SystemTime::now()), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_secs(2))
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:10 GMT"),
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(10)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(5);
        for attempt in 1..20 {
            let d = p.backoff(attempt);
            assert!(d <= p.cap, "{d:?}");
            assert!(d >= Duration::from_millis(1));
        }
        assert!(p.backoff(1) <= Duration::from_millis(200));
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retryable(StatusCode::BAD_REQUEST));
        assert!(!retryable(StatusCode::NOT_FOUND));
    }
}
