//! When and how long to wait before trying a request again: retryable
//! statuses, `Retry-After` (and Azure's `retry-after-ms`), the retry
//! policy of Microsoft requests, and transport errors reduced to what may
//! be shown (a `reqwest` error's text can hold the URL, and URLs carry
//! tokens).

use std::time::{Duration, SystemTime};

use insights_core::backoff::Backoff;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How a request to Microsoft (Graph, token endpoint) is retried:
/// `max_attempts` in all, waiting [`Backoff::random_delay`] from 200 ms
/// doubling up to 10 s between them unless the server says otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub max_attempts: u32,
    /// The wait after each failed attempt (before jitter).
    pub backoff: Backoff,
}

impl RetryPolicy {
    /// Up to `max_attempts` attempts (at least one).
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
        }
    }

    /// One attempt, no retry.
    pub fn once() -> Self {
        Self::new(1)
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1): a
    /// random whole number of milliseconds in the upper half of
    /// `base · 2^(attempt-1)`, capped ("equal jitter"), so that many
    /// clients do not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff.random_delay(attempt)
    }
}

/// Whether a status is worth retrying: throttling and server trouble.
pub fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` (RFC 9110) as delay-seconds or an HTTP date, relative to
/// `now`; a date in the past is no wait. `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = SystemTime::from(chrono::DateTime::parse_from_rfc2822(v).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `retry-after-ms` (Azure OpenAI and Azure AI services): milliseconds.
pub fn retry_after_ms(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after-ms")?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_millis)
}

/// What kind of transport failure a `reqwest` error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// The request or the connection timed out.
    TimedOut,
    /// No connection could be made.
    CannotConnect,
    /// The response body could not be read or decoded.
    BadBody,
    /// Anything else.
    Other,
}

impl TransportKind {
    /// The kind of `e`.
    pub fn of(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::TimedOut
        } else if e.is_connect() {
            Self::CannotConnect
        } else if e.is_decode() || e.is_body() {
            Self::BadBody
        } else {
            Self::Other
        }
    }

    /// A short wording safe to show and log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimedOut => "timed out",
            Self::CannotConnect => "cannot connect",
            Self::BadBody => "bad response body",
            Self::Other => "request failed",
        }
    }
}

/// A `reqwest` error without its URL: its kind and its message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    kind: TransportKind,
    message: String,
}

impl TransportError {
    /// The kind of failure.
    pub fn kind(&self) -> TransportKind {
        self.kind
    }
}

impl From<reqwest::Error> for TransportError {
    fn from(e: reqwest::Error) -> Self {
        Self {
            kind: TransportKind::of(&e),
            message: e.without_url().to_string(),
        }
    }
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
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 3 "));
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_secs(3))
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:10 GMT"),
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(10)));
        let later = now + Duration::from_secs(60);
        assert_eq!(retry_after(&h, later), Some(Duration::ZERO), "past");
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Fri, 01 Jan 1960 00:00:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO), "before 1970");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn retry_after_ms_is_azures_header() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after_ms(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after_ms(&h), None);
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after_ms(&h), Some(Duration::from_millis(250)));
        h.insert("retry-after-ms", HeaderValue::from_static("soon"));
        assert_eq!(retry_after_ms(&h), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(5);
        for attempt in 1..20 {
            let d = p.backoff(attempt);
            assert!(d <= p.backoff.max, "{d:?}");
            assert!(d >= Duration::from_millis(1));
        }
        assert!(p.backoff(1) <= Duration::from_millis(200));
        assert!(p.backoff(1) >= Duration::from_millis(100));
        assert_eq!(RetryPolicy::new(0).max_attempts, 1);
        assert_eq!(RetryPolicy::once().max_attempts, 1);
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::REQUEST_TIMEOUT));
        assert!(!retryable(StatusCode::BAD_REQUEST));
        assert!(!retryable(StatusCode::NOT_FOUND));
    }
}
