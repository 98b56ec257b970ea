//! Call control for simulated calls: Microsoft does not know them, so
//! nothing is sent anywhere; every request succeeds and is remembered.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::time::Instant;

use super::model::{AnswerRequest, RecordingStatusReport};
use super::{CallContext, CallControl, GraphError};

/// One request a simulated call made.
#[derive(Clone, Debug, PartialEq)]
pub enum SimulatedOperation {
    Answer {
        call_id: String,
        body: AnswerRequest,
    },
    RecordingStatus {
        call_id: String,
        status: RecordingStatusReport,
    },
}

/// In-process call control for calls signed with the simulator key.
#[derive(Default)]
pub struct SimulatedCallControl {
    operations: Mutex<Vec<SimulatedOperation>>,
}

impl SimulatedCallControl {
    /// The requests made so far, oldest first.
    pub fn operations(&self) -> Vec<SimulatedOperation> {
        self.operations
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default()
    }

    fn push(&self, op: SimulatedOperation) {
        if let Ok(mut ops) = self.operations.lock() {
            // Bounded: a long-running demo gateway must not grow forever.
            if ops.len() >= 10_000 {
                ops.remove(0);
            }
            ops.push(op);
        }
    }
}

#[async_trait]
impl CallControl for SimulatedCallControl {
    async fn answer(
        &self,
        call: &CallContext,
        body: &AnswerRequest,
        _deadline: Instant,
    ) -> Result<(), GraphError> {
        self.push(SimulatedOperation::Answer {
            call_id: call.call_id.clone(),
            body: body.clone(),
        });
        Ok(())
    }

    async fn update_recording_status(
        &self,
        call: &CallContext,
        status: RecordingStatusReport,
        _deadline: Instant,
    ) -> Result<(), GraphError> {
        self.push(SimulatedOperation::RecordingStatus {
            call_id: call.call_id.clone(),
            status,
        });
        Ok(())
    }
}
