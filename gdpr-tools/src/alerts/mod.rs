//! Alerting (issue 17 §4): the rules ([`rules`]), delivery to signed
//! webhooks, e-mail and Teams ([`deliver`]), the `alerts` job that runs
//! both on the node leading its lease, and every node's heartbeat
//! ([`Heartbeat`]).
//!
//! How an alert lives:
//!
//! 1. **Raised** through [`insights_core::alerts::raise`] — by a rule of
//!    the `alerts` job, by the gateway (`recording-failure`) or by
//!    completeness reconciliation (`reconciliation-gap`): stored,
//!    deduplicated (same kind and key while an earlier one is open and
//!    younger than `[alerts] dedup_window_secs`: only an occurrence is
//!    counted, nothing is resent) and audited (`alert-raised`).
//! 2. **Delivered** by the next run of the `alerts` job to the tenant's
//!    enabled channels and the installation's (installation alerts to
//!    the installation's only), at most `[alerts] max_per_hour` per
//!    tenant (or installation) per hour — beyond that `rate-limited`,
//!    kept and shown but not sent. A channel that fails is retried at
//!    the following runs (channels already reached are not resent) up to
//!    `max_attempts`, then the alert is `failed`.
//! 3. **Acknowledged** on the Alerts page or `POST
//!    /api/admin/alerts/{id}/ack` (audited `alert-acknowledged`); the
//!    same condition raised afterwards is a new alert.
//!
//! Every payload carries ids, counts and codes only
//! ([`insights_core::domain::NewAlert`]).

pub mod deliver;
pub mod rules;
mod scheduler;

pub use scheduler::{DELIVERIES_METRIC, Heartbeat, JOB, Scheduler, SpoolProbe, SpoolStatus};
