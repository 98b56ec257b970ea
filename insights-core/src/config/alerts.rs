//! Settings of alerting (`[alerts]`, `[alerts.smtp]`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// `[alerts]`: the rules' thresholds, deduplication and rate limit, and
/// how often the scheduler evaluates them (on the node leading the
/// `alerts` lease). Channels are configured through the API
/// (`/api/admin/alert-channels`); e-mail goes through `[alerts.smtp]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    /// Evaluate rules and deliver alerts in `insights serve` (scheduler
    /// role). Default true.
    pub enabled: bool,
    /// Time between evaluations, s (1-3600). Default 60.
    pub interval_secs: u64,
    /// Delay of the first evaluation after start-up, s (0-3600).
    /// Default 30.
    pub initial_delay_secs: u64,
    /// The same condition (kind and key) raised again within this long
    /// of an open alert only counts an occurrence: nothing is resent, s
    /// (1-604800). Default 3600.
    pub dedup_window_secs: u64,
    /// At most this many alerts of one tenant (or of the installation)
    /// are sent per hour; more are stored and shown as `rate-limited`
    /// (1-10000). Default 20.
    pub max_per_hour: u32,
    /// Delivery attempts per alert before it is `failed` (1-100).
    /// Default 5.
    pub max_attempts: u32,
    /// How often every node writes its heartbeat, s (1-300). Default 10.
    pub heartbeat_secs: u64,
    /// A node whose heartbeat is older than this is down, s (3-86400).
    /// Default 60.
    pub node_down_secs: u64,
    /// A gateway's spool at or above this percent raises `spool-high`
    /// (1-99); at 100 % `spool-full`. Default 80.
    pub spool_warn_percent: u8,
    /// A finished recording waiting in a spool longer than this raises
    /// `upload-backlog`, s (60-604800). Default 3600.
    pub upload_backlog_secs: u64,
    /// No recording started for this many minutes during business hours
    /// raises `no-recordings` (0: rule off; 1-10080). Default 0.
    pub no_recordings_minutes: u32,
    /// Business days: `mon-fri`, `mon-sat`, `daily` or a comma list
    /// (`mon,tue,thu`). Default `mon-fri`.
    pub business_days: String,
    /// Business hours, `HH:MM-HH:MM` (local time, see
    /// `utc_offset_minutes`; `24:00` ends at midnight). Default
    /// `08:00-18:00`.
    pub business_hours: String,
    /// The offset of the business hours' local time from UTC, minutes
    /// (-840..=840). Default 0.
    pub utc_offset_minutes: i32,
    /// One user playing, downloading or exporting more than this many
    /// recordings in an hour raises `unusual-access` (0: off). Default 50.
    pub unusual_access_per_hour: u32,
    /// Check the key service (wrap and unwrap a fresh data key per
    /// tenant) at most this often, s (0: off; else 1-86400, under 60 only
    /// for tests). Default 300.
    pub key_check_secs: u64,
    /// Verify every tenant's whole audit chain at most this often, s (0:
    /// off; else 1-604800, under 60 only for tests). Default 3600.
    pub audit_check_secs: u64,
    /// `[alerts.smtp]`: the mail server e-mail channels use.
    pub smtp: SmtpSettings,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 60,
            initial_delay_secs: 30,
            dedup_window_secs: 3600,
            max_per_hour: 20,
            max_attempts: 5,
            heartbeat_secs: 10,
            node_down_secs: 60,
            spool_warn_percent: 80,
            upload_backlog_secs: 3600,
            no_recordings_minutes: 0,
            business_days: "mon-fri".into(),
            business_hours: "08:00-18:00".into(),
            utc_offset_minutes: 0,
            unusual_access_per_hour: 50,
            key_check_secs: 300,
            audit_check_secs: 3600,
            smtp: SmtpSettings::default(),
        }
    }
}

/// `[alerts.smtp]`: e-mail is sent with STARTTLS (required: a server
/// that does not offer it is refused), authenticated when a user name is
/// set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// The server's host name (checked against its certificate); empty:
    /// no e-mail channel can deliver.
    pub host: String,
    /// Default 587 (submission).
    pub port: u16,
    /// The sender address.
    pub from: String,
    /// The user name, if the server wants authentication.
    pub username: Option<String>,
    /// The password (or from `password_file`).
    pub password: Option<Secret>,
    /// A file holding the password.
    pub password_file: Option<PathBuf>,
    /// PEM certificates trusted for the server besides the system's
    /// roots (a private CA, a test server's self-signed certificate).
    pub ca_file: Option<PathBuf>,
    /// Timeout of one delivery, s (1-300). Default 30.
    pub timeout_secs: u64,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            from: String::new(),
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            timeout_secs: 30,
        }
    }
}

/// Business hours, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct BusinessHours {
    days: Vec<Weekday>,
    start: NaiveTime,
    /// `None`: `24:00`, the end of the day.
    end: Option<NaiveTime>,
    offset_minutes: i32,
}

impl BusinessHours {
    /// Whether `at` falls within business hours.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.naive_utc() + chrono::Duration::minutes(i64::from(self.offset_minutes));
        let t = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second())
            .unwrap_or(NaiveTime::MIN);
        self.days.contains(&local.weekday()) && t >= self.start && self.end.is_none_or(|e| t < e)
    }

    /// Whether the whole span `from..=to` lies within business hours of
    /// one day (checked at both ends and each minute-hour step between).
    pub fn covers(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        if to < from {
            return false;
        }
        let mut t = from;
        while t < to {
            if !self.contains(t) {
                return false;
            }
            t += chrono::Duration::minutes(1);
        }
        self.contains(to)
    }
}

fn parse_day(s: &str) -> Option<Weekday> {
    s.trim().parse::<Weekday>().ok()
}

impl AlertSettings {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }
    pub fn initial_delay(&self) -> Duration {
        Duration::from_secs(self.initial_delay_secs)
    }
    pub fn dedup_window(&self) -> Duration {
        Duration::from_secs(self.dedup_window_secs)
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// `business_days`, `business_hours` and `utc_offset_minutes`.
    pub fn business_hours(&self) -> Result<BusinessHours, ConfigError> {
        let bad = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        let all = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ];
        let d = self.business_days.trim().to_ascii_lowercase();
        let days = match d.as_str() {
            "daily" => all.to_vec(),
            _ => match d.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (parse_day(a), parse_day(b));
                    match (a, b) {
                        (Some(a), Some(b)) => {
                            let (i, j) = (a.num_days_from_monday(), b.num_days_from_monday());
                            if i > j {
                                return Err(bad("alerts.business_days", "a range runs mon to sun"));
                            }
                            all[i as usize..=j as usize].to_vec()
                        }
                        _ => return Err(bad("alerts.business_days", "unknown day")),
                    }
                }
                None => d
                    .split(',')
                    .map(parse_day)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("alerts.business_days", "unknown day"))?,
            },
        };
        let (s, e) = self
            .business_hours
            .split_once('-')
            .ok_or_else(|| bad("alerts.business_hours", "must be HH:MM-HH:MM"))?;
        let time = |v: &str| {
            NaiveTime::parse_from_str(v.trim(), "%H:%M")
                .map_err(|_| bad("alerts.business_hours", "must be HH:MM-HH:MM"))
        };
        let start = time(s)?;
        let end = match e.trim() {
            "24:00" => None,
            e => Some(time(e)?),
        };
        if end.is_some_and(|e| start >= e) {
            return Err(bad("alerts.business_hours", "must end after it starts"));
        }
        Ok(BusinessHours {
            days,
            start,
            end,
            offset_minutes: self.utc_offset_minutes,
        })
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let range = |key: &'static str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key,
                    problem: format!("must be {lo}-{hi}"),
                })
            }
        };
        range("alerts.interval_secs", self.interval_secs, 1, 3600)?;
        range(
            "alerts.initial_delay_secs",
            self.initial_delay_secs,
            0,
            3600,
        )?;
        range(
            "alerts.dedup_window_secs",
            self.dedup_window_secs,
            1,
            604_800,
        )?;
        range(
            "alerts.max_per_hour",
            u64::from(self.max_per_hour),
            1,
            10_000,
        )?;
        range("alerts.max_attempts", u64::from(self.max_attempts), 1, 100)?;
        range("alerts.heartbeat_secs", self.heartbeat_secs, 1, 300)?;
        range("alerts.node_down_secs", self.node_down_secs, 3, 86_400)?;
        range(
            "alerts.spool_warn_percent",
            u64::from(self.spool_warn_percent),
            1,
            99,
        )?;
        range(
            "alerts.upload_backlog_secs",
            self.upload_backlog_secs,
            60,
            604_800,
        )?;
        range(
            "alerts.no_recordings_minutes",
            u64::from(self.no_recordings_minutes),
            0,
            10_080,
        )?;
        if !(-840..=840).contains(&self.utc_offset_minutes) {
            return Err(ConfigError::Invalid {
                key: "alerts.utc_offset_minutes",
                problem: "must be -840..840".into(),
            });
        }
        if self.node_down_secs <= self.heartbeat_secs {
            return Err(ConfigError::Invalid {
                key: "alerts.node_down_secs",
                problem: "must exceed alerts.heartbeat_secs".into(),
            });
        }
        if self.key_check_secs != 0 {
            range("alerts.key_check_secs", self.key_check_secs, 1, 86_400)?;
        }
        if self.audit_check_secs != 0 {
            range("alerts.audit_check_secs", self.audit_check_secs, 1, 604_800)?;
        }
        range("alerts.smtp.timeout_secs", self.smtp.timeout_secs, 1, 300)?;
        if !self.smtp.host.is_empty() && !self.smtp.from.contains('@') {
            return Err(ConfigError::Invalid {
                key: "alerts.smtp.from",
                problem: "must be an e-mail address when alerts.smtp.host is set".into(),
            });
        }
        self.business_hours()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn business_hours_follow_days_hours_and_offset() {
        let d = AlertSettings::default();
        assert!(d.validate().is_ok());
        let h = d.business_hours().unwrap_or_else(|e| panic!("{e}"));
        // 2026-12-07 is a Monday.
        assert!(h.contains(at("2026-12-07T09:00:00Z")));
        assert!(!h.contains(at("2026-12-07T18:00:00Z")));
        assert!(!h.contains(at("2026-12-06T09:00:00Z")), "Sunday");
        assert!(h.covers(at("2026-12-07T09:00:00Z"), at("2026-12-07T10:00:00Z")));
        assert!(!h.covers(at("2026-12-07T07:30:00Z"), at("2026-12-07T08:30:00Z")));
        let s = AlertSettings {
            business_days: "daily".into(),
            business_hours: "00:00-23:59".into(),
            utc_offset_minutes: 60,
            ..AlertSettings::default()
        };
        let h = s.business_hours().unwrap_or_else(|e| panic!("{e}"));
        assert!(h.contains(at("2026-12-06T12:00:00Z")));
        assert!(!h.contains(at("2026-12-06T22:59:30Z")), "23:59:30 local");
        let all_day = AlertSettings {
            business_days: "daily".into(),
            business_hours: "00:00-24:00".into(),
            ..AlertSettings::default()
        };
        let h = all_day.business_hours().unwrap_or_else(|e| panic!("{e}"));
        assert!(h.covers(at("2026-12-06T23:59:00Z"), at("2026-12-07T00:01:00Z")));
        for (days, hours) in [
            ("mon-xyz", "08:00-18:00"),
            ("fri-mon", "08:00-18:00"),
            ("mon-fri", "18:00-08:00"),
            ("mon-fri", "8"),
        ] {
            let s = AlertSettings {
                business_days: days.into(),
                business_hours: hours.into(),
                ..AlertSettings::default()
            };
            assert!(s.validate().is_err(), "{days} {hours}");
        }
    }
}
