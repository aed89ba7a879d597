//! Replaying a recorded run: the stored replies are served again, in order,
//! per iteration, with no network, and parsed exactly as they were.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use evolve_core::{ModelCall, apply_model_reply};
use evolve_mutate::{MutateError, MutationRequest, Mutator, Proposal};

/// Transport outcomes: the call produced no reply to parse.
fn is_transport_failure(call: &ModelCall) -> bool {
    call.http_status != Some(200)
        || matches!(
            call.outcome.as_str(),
            "invalid_json" | "timeout" | "transport"
        )
}

/// Serves a recorded run's replies instead of asking a model.
pub struct ReplayMutator {
    name: String,
    by_iteration: BTreeMap<u64, Vec<ModelCall>>,
    last_recorded: u64,
    calls: Mutex<Vec<ModelCall>>,
    stop: Mutex<Option<String>>,
}

impl ReplayMutator {
    /// A replay of `calls` (as read from the recorded run's store); `name`
    /// is the recorded mutator's, so rejected candidates read the same.
    pub fn new(name: String, calls: Vec<ModelCall>) -> ReplayMutator {
        let mut by_iteration: BTreeMap<u64, Vec<ModelCall>> = BTreeMap::new();
        for call in calls {
            by_iteration.entry(call.iteration).or_default().push(call);
        }
        ReplayMutator {
            name,
            last_recorded: by_iteration.keys().next_back().copied().unwrap_or(0),
            by_iteration,
            calls: Mutex::new(Vec::new()),
            stop: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Mutator for ReplayMutator {
    fn name(&self) -> &str {
        &self.name
    }

    fn take_calls(&self) -> Vec<ModelCall> {
        std::mem::take(&mut self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn stop_reason(&self) -> Option<String> {
        self.stop.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn propose(&self, request: &MutationRequest) -> Result<Proposal, MutateError> {
        let Some(recorded) = self.by_iteration.get(&request.iteration) else {
            let reason = format!(
                "the recorded run has no model call for iteration {} (its last is {})",
                request.iteration, self.last_recorded
            );
            if request.iteration > self.last_recorded {
                *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
                return Err(MutateError::Stopped(reason));
            }
            return Err(MutateError::Source(reason));
        };
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(recorded.iter().cloned());
        let Some(last) = recorded.last() else {
            return Err(MutateError::Source("empty record".into()));
        };
        if last.outcome == "stopped" {
            return Err(MutateError::Stopped(last.detail.clone()));
        }
        if is_transport_failure(last) {
            return Err(MutateError::Source(format!(
                "{}: {}",
                last.model, last.detail
            )));
        }
        match apply_model_reply(&request.parent.code, &last.reply) {
            Ok(applied) => Ok(Proposal {
                code: applied.program,
                kind: last.kind.clone(),
                source: last.model.clone(),
            }),
            Err(error) => {
                let outcome = if last.finish_reason.as_deref() == Some("length") {
                    "truncated"
                } else {
                    error.category()
                };
                Err(MutateError::Unusable(format!("{outcome}: {}", last.detail)))
            }
        }
    }
}
