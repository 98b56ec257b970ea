//! In-memory login throttling per client address, on top of the lockout
//! per tenant and email kept in the store (see [`super::login`]): at most
//! `address_max_failures` failed logins per `address_window_secs` (fixed
//! window), then `429` until it ends.
//!
//! Bounded: at most [`MAX_ENTRIES`] addresses, expired ones are dropped
//! first, and if still full the table is cleared (an attacker filling it
//! gains at most a reset of the in-memory counters; the store's lockout
//! is unaffected).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Largest number of tracked addresses (and unknown accounts).
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy)]
struct Window {
    start: DateTime<Utc>,
    failures: u32,
}

/// The in-memory throttle.
pub struct Throttle {
    max_failures: u32,
    window: Duration,
    addresses: Mutex<HashMap<IpAddr, Window>>,
}

impl Throttle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            addresses: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry after seconds)` while `ip` is over its budget.
    pub fn check_address(&self, ip: IpAddr, now: DateTime<Utc>) -> Result<(), u64> {
        let Ok(map) = self.addresses.lock() else {
            return Ok(());
        };
        match map.get(&ip) {
            Some(w) if w.start + self.window > now && w.failures >= self.max_failures => {
                Err(secs_until(w.start + self.window, now))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login from `ip`.
    pub fn address_failed(&self, ip: IpAddr, now: DateTime<Utc>) {
        let Ok(mut map) = self.addresses.lock() else {
            return;
        };
        if map.len() >= MAX_ENTRIES && !map.contains_key(&ip) {
            let window = self.window;
            map.retain(|_, w| w.start + window > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let w = map.entry(ip).or_insert(Window {
            start: now,
            failures: 0,
        });
        if w.start + self.window <= now {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
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
    fn addresses_are_limited_per_window() {
        let t = Throttle::new(3, Duration::seconds(60));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let now = Utc::now();
        for _ in 0..3 {
            assert!(t.check_address(ip, now).is_ok());
            t.address_failed(ip, now);
        }
        assert_eq!(t.check_address(ip, now + Duration::seconds(10)), Err(50));
        assert!(t.check_address([10, 0, 0, 2].into(), now).is_ok());
        assert!(t.check_address(ip, now + Duration::seconds(61)).is_ok());
    }
}
