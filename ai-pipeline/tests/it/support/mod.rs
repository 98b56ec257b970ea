//! Helpers of the provider tests: the shared stand-in server
//! ([`insights_tests::standins::http`]: records every request, answers
//! through a closure following the provider's published shapes), job
//! contexts recording into memory, and a fast-retrying HTTP client.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use ai_pipeline::providers::{CallContext, CallRecords, Http, RetryPolicy};
use async_trait::async_trait;
use insights_core::domain::{ProviderCall, RecordingId, TenantId};
#[allow(unused_imports)]
pub use insights_tests::standins::http::{Part, Recorded, Reply, StandIn};

/// Processing records kept in memory.
#[derive(Default)]
pub struct MemoryRecords(pub Mutex<Vec<ProviderCall>>);

#[async_trait]
impl CallRecords for MemoryRecords {
    async fn record(&self, call: ProviderCall) -> Result<(), String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(call);
        Ok(())
    }
}

impl MemoryRecords {
    pub fn all(&self) -> Vec<ProviderCall> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A job context recording into memory.
pub fn context() -> (CallContext, Arc<MemoryRecords>) {
    let records = Arc::new(MemoryRecords::default());
    let ctx = CallContext {
        tenant: TenantId::new(),
        recording: Some(RecordingId::new()),
        records: records.clone(),
    };
    (ctx, records)
}

/// An HTTP client with short backoffs: 3 attempts, 20 ms doubling, waits
/// of up to 2 s (so a `Retry-After: 1` is honoured).
pub fn http() -> Arc<Http> {
    Arc::new(
        Http::new(RetryPolicy {
            timeout: std::time::Duration::from_secs(10),
            max_attempts: 3,
            backoff_initial: std::time::Duration::from_millis(20),
            backoff_max: std::time::Duration::from_secs(2),
        })
        .unwrap_or_else(|e| panic!("http client: {e}")),
    )
}
