//! In-memory login throttling, on top of the per-account lockout kept in
//! the store:
//!
//! * per client address: at most `address_max_failures` failed logins per
//!   `address_window_secs` (fixed window), then `429` until it ends;
//! * per unknown account (tenant name + email without an account): the same
//!   lockout an existing account would get, so that `423` answers do not
//!   reveal which emails have accounts.
//!
//! Bounded: at most [`MAX_ENTRIES`] keys each, expired ones are dropped
//! first, and if still full the table is cleared (an attacker filling it
//! gains at most a reset of the in-memory counters; the store's lockout
//! of real accounts is unaffected).

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

#[derive(Clone, Copy)]
struct Unknown {
    failures: u32,
    locked_until: Option<DateTime<Utc>>,
    last: DateTime<Utc>,
}

/// The in-memory throttle.
pub struct Throttle {
    max_failures: u32,
    window: Duration,
    lock_after: u32,
    lock_for: Duration,
    addresses: Mutex<HashMap<IpAddr, Window>>,
    unknown: Mutex<HashMap<String, Unknown>>,
}

impl Throttle {
    pub fn new(max_failures: u32, window: Duration, lock_after: u32, lock_for: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            lock_after: lock_after.max(1),
            lock_for,
            addresses: Mutex::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
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

    /// `Err(retry after seconds)` while an unknown account is "locked".
    /// `key` names the realm (tenant name) and the email.
    pub fn check_unknown(&self, key: &str, now: DateTime<Utc>) -> Result<(), u64> {
        let Ok(map) = self.unknown.lock() else {
            return Ok(());
        };
        match map.get(key).and_then(|u| u.locked_until) {
            Some(until) if until > now => Err(secs_until(until, now)),
            _ => Ok(()),
        }
    }

    /// Counts a failed login of an unknown account, mirroring the store's
    /// lockout rule.
    pub fn unknown_failed(&self, key: &str, now: DateTime<Utc>) {
        let Ok(mut map) = self.unknown.lock() else {
            return;
        };
        let key = key.to_owned();
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            let keep = self.lock_for.max(self.window);
            map.retain(|_, u| u.last + keep > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let u = map.entry(key).or_insert(Unknown {
            failures: 0,
            locked_until: None,
            last: now,
        });
        u.last = now;
        if u.locked_until.is_some_and(|t| t <= now) {
            u.locked_until = None;
        }
        u.failures += 1;
        if u.failures >= self.lock_after {
            u.failures = 0;
            u.locked_until = Some(now + self.lock_for);
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
    fn addresses_are_limited_per_window() {
        let t = Throttle::new(3, Duration::seconds(60), 5, Duration::seconds(900));
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

    #[test]
    fn unknown_accounts_lock_like_real_ones() {
        let t = Throttle::new(100, Duration::seconds(60), 2, Duration::seconds(900));
        let now = Utc::now();
        t.unknown_failed("t/x@y", now);
        assert!(t.check_unknown("t/x@y", now).is_ok());
        t.unknown_failed("t/x@y", now);
        assert_eq!(t.check_unknown("t/x@y", now), Err(900));
        assert!(t.check_unknown("t/z@y", now).is_ok());
        assert!(
            t.check_unknown("t/x@y", now + Duration::seconds(901))
                .is_ok()
        );
    }
}
