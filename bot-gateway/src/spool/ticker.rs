//! The durability tick (every `fsync_interval`: seal and fsync every
//! live recording, close abandoned ones as partial), the expiry alarms
//! and the spool's gauges.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use insights_core::domain::RecordingId;

use super::journal::{Alarms, EntryState, PartialReason};
use super::recovery::close_from_disk;
use super::writer::{RecordingWriter, WriterState};
use super::{AlarmDue, AlarmKind, Inner, SpoolError, Stop, lock};

impl Inner {
    pub(super) fn tick(&self) {
        let writers: Vec<(RecordingId, Arc<Mutex<RecordingWriter>>)> = lock(&self.state)
            .entries
            .iter()
            .filter_map(|(id, e)| e.live.as_ref().map(|l| (*id, l.writer.clone())))
            .collect();
        let to_close: Mutex<Vec<(RecordingId, PartialReason)>> = Mutex::new(Vec::new());
        let sync_one = |(id, w): &(RecordingId, Arc<Mutex<RecordingWriter>>)| {
            let prepared = {
                let mut g = lock(w);
                if g.state == WriterState::Closed {
                    return;
                }
                if g.state == WriterState::Abandoned {
                    lock(&to_close).push((*id, PartialReason::Abandoned));
                    return;
                }
                g.prepare_sync()
            };
            let result = match prepared {
                Ok(None) => Ok(()),
                Ok(Some((file, len))) => {
                    // fsync outside the lock: writers keep appending.
                    let r = file.sync_data();
                    lock(w).synced(len, r)
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::error!(recording = %id, error = %e, "spool sync failed");
                if lock(w).is_failed() {
                    lock(&to_close).push((*id, PartialReason::WriteFailed));
                }
            }
        };
        let par = self.cfg.fsync_parallelism.max(1);
        if par == 1 || writers.len() < 2 {
            writers.iter().for_each(sync_one);
        } else {
            let per = writers.len().div_ceil(par);
            std::thread::scope(|s| {
                for chunk in writers.chunks(per) {
                    s.spawn(|| chunk.iter().for_each(sync_one));
                }
            });
        }
        for (id, reason) in to_close.into_inner().unwrap_or_else(|p| p.into_inner()) {
            if let Err(e) = self.close_partial(id, reason) {
                tracing::error!(recording = %id, error = %e, "cannot close a recording as partial");
            }
        }
        self.publish_metrics();
    }

    /// Closes a live entry whose writer is gone or failed, as partial.
    pub(super) fn close_partial(
        &self,
        id: RecordingId,
        reason: PartialReason,
    ) -> Result<(), SpoolError> {
        let (live, journal, dir) = {
            let mut st = lock(&self.state);
            let Some(e) = st.entries.get_mut(&id) else {
                return Ok(());
            };
            let Some(live) = e.live.take() else {
                return Ok(());
            };
            (live, e.journal.clone(), e.dir.clone())
        };
        lock(&live.writer).close_partial();
        let journal = match close_from_disk(&dir, journal, &live.key, Some(reason)) {
            Ok(j) => j,
            Err(e) => {
                // Leave it live on disk: the next start recovers it.
                let mut st = lock(&self.state);
                if let Some(entry) = st.entries.get_mut(&id) {
                    entry.unrecoverable = Some(e.to_string());
                }
                return Err(e);
            }
        };
        tracing::warn!(recording = %id, reason = reason.as_str(), "recording closed as partial");
        if let Some(e) = lock(&self.state).entries.get_mut(&id) {
            e.journal = journal;
        }
        self.work.notify_one();
        Ok(())
    }

    pub(super) fn check_alarms(&self, now: DateTime<Utc>) -> Result<Vec<AlarmDue>, SpoolError> {
        let warn = chrono::Duration::from_std(self.cfg.warn_age).unwrap_or(chrono::TimeDelta::MAX);
        let max = chrono::Duration::from_std(self.cfg.max_age).unwrap_or(chrono::TimeDelta::MAX);
        let candidates: Vec<(RecordingId, DateTime<Utc>, Alarms)> = lock(&self.state)
            .entries
            .iter()
            .filter(|(_, e)| {
                e.journal.state == EntryState::Finished
                    || (e.unrecoverable.is_some() && !e.journal.tenant_id.0.is_nil())
            })
            .map(|(id, e)| {
                let since = e.journal.finished_at.unwrap_or(e.journal.created_at);
                (*id, since, e.journal.alarms.clone())
            })
            .collect();
        let mut due = Vec::new();
        for (id, since, mut alarms) in candidates {
            let age = now - since;
            let mut changed = false;
            if age >= warn && alarms.warned_at.is_none() {
                alarms.warned_at = Some(now);
                changed = true;
                metrics::counter!("insights_spool_expiry_warnings_total").increment(1);
                tracing::warn!(recording = %id, waiting_secs = age.num_seconds(), "spooled recording not uploaded yet: nearing the maximum spool age");
            }
            if age >= max && alarms.expired_at.is_none() {
                alarms.expired_at = Some(now);
                changed = true;
                metrics::counter!("insights_spool_expired_total").increment(1);
                tracing::error!(recording = %id, waiting_secs = age.num_seconds(), "spooled recording exceeded the maximum spool age; kept and still retried");
            }
            if changed {
                let a = alarms.clone();
                self.update_journal(id, move |j| j.alarms = a)?;
            }
            let tenant = lock(&self.state)
                .entries
                .get(&id)
                .map(|e| e.journal.tenant_id);
            let Some(tenant_id) = tenant else { continue };
            if let (Some(at), false) = (alarms.warned_at, alarms.warn_audited) {
                due.push(AlarmDue {
                    recording_id: id,
                    tenant_id,
                    kind: AlarmKind::Warning,
                    raised_at: at,
                    waiting_since: since,
                });
            }
            if let (Some(at), false) = (alarms.expired_at, alarms.expired_audited) {
                due.push(AlarmDue {
                    recording_id: id,
                    tenant_id,
                    kind: AlarmKind::Expired,
                    raised_at: at,
                    waiting_since: since,
                });
            }
        }
        Ok(due)
    }

    pub(super) fn publish_metrics(&self) {
        let st = lock(&self.state);
        let now = Utc::now();
        let live = st.entries.values().filter(|e| e.live.is_some()).count();
        let oldest = st
            .entries
            .values()
            .map(|e| (now - e.journal.created_at).num_milliseconds().max(0))
            .max()
            .unwrap_or(0);
        let expired = st
            .entries
            .values()
            .filter(|e| e.journal.alarms.expired_at.is_some())
            .count();
        let unrecoverable = st
            .entries
            .values()
            .filter(|e| e.unrecoverable.is_some())
            .count();
        let entries = st.entries.len();
        drop(st);
        metrics::gauge!("insights_spool_bytes").set(self.used.load(Ordering::Relaxed) as f64);
        metrics::gauge!("insights_spool_entries").set(entries as f64);
        metrics::gauge!("insights_calls_active").set(live as f64);
        metrics::gauge!("insights_spool_oldest_entry_age_seconds").set(oldest as f64 / 1000.0);
        metrics::gauge!("insights_spool_expired_entries").set(expired as f64);
        metrics::gauge!("insights_spool_unrecoverable_entries").set(unrecoverable as f64);
    }
}

pub(super) fn ticker(weak: Weak<Inner>, stop: Arc<Stop>, interval: Duration) {
    loop {
        {
            let stopped = lock(&stop.stopped);
            let (stopped, _) = stop
                .cv
                .wait_timeout_while(stopped, interval, |s| !*s)
                .unwrap_or_else(|p| p.into_inner());
            if *stopped {
                return;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        inner.tick();
    }
}
