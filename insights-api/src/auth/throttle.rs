//! Login throttling per client address, on top of the lockout per tenant
//! and email (see [`super::login`]): at most `address_max_failures` failed
//! logins per `address_window_secs` (fixed window), then `429` until it
//! ends.
//!
//! The windows live in the metadata store
//! ([`TransientStore`](insights_core::store::TransientStore)), counted
//! with one atomic upsert, so every API node behind a load balancer sees
//! the same count: an attacker gains nothing by spreading attempts over
//! nodes. Addresses are kept as a digest ([`address_key`]), never in
//! clear; windows that are over are forgotten.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use insights_core::store::MetadataStore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The store-backed throttle.
pub struct Throttle {
    store: Arc<dyn MetadataStore>,
    max_failures: u32,
    window: Duration,
}

/// The stored key of a client address: a SHA-256 digest (hex).
pub fn address_key(ip: &IpAddr) -> String {
    hex::encode(Sha256::digest(format!("insights-address\u{0}{ip}")))
}

impl Throttle {
    pub fn new(store: Arc<dyn MetadataStore>, max_failures: u32, window: Duration) -> Self {
        Self {
            store,
            max_failures: max_failures.max(1),
            window,
        }
    }

    /// `429` (with the seconds until the window ends) while `ip` is over
    /// its budget.
    pub async fn check_address(&self, ip: IpAddr, now: DateTime<Utc>) -> Result<(), ApiError> {
        let w = self
            .store
            .address_window(&address_key(&ip), now - self.window)
            .await?;
        match w {
            Some(w) if w.failures >= self.max_failures => Err(ApiError::TooManyRequests {
                retry_after_secs: secs_until(w.started_at + self.window, now),
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failed login from `ip` (a store failure is logged: the
    /// login fails anyway).
    pub async fn address_failed(&self, ip: IpAddr, now: DateTime<Utc>) {
        if let Err(e) = self
            .store
            .count_address_failure(&address_key(&ip), now, self.window)
            .await
        {
            tracing::warn!(error = %e, "cannot count a failed login of a client address");
        }
    }
}

/// Whole seconds from `now` until `t`, at least 1.
pub fn secs_until(t: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    u64::try_from((t - now).num_seconds()).unwrap_or(0).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_keys_are_digests() {
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert_eq!(address_key(&a).len(), 64);
        assert_ne!(address_key(&a), address_key(&b));
        assert!(!address_key(&a).contains("10.0.0.1"));
        let now = Utc::now();
        assert_eq!(secs_until(now + Duration::seconds(50), now), 50);
        assert_eq!(secs_until(now - Duration::seconds(5), now), 1);
    }
}
