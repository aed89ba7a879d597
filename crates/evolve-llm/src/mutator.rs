//! The language-model mutator: picks a request kind and a model, builds the
//! prompt, calls the model (falling back to others), parses the reply, and
//! keeps the books (budgets, failures in a row, what to tell the model next).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use evolve_core::{ModelCall, ProblemSpec, ProgramId, apply_model_reply};
use evolve_mutate::{MutateError, MutationRequest, Mutator, Proposal};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::LlmError;
use crate::budget::Budget;
use crate::client::{ChatRequest, Followup, ModelClient, redact};
use crate::prompt::{PromptInput, Prompts, RequestKind};

/// The name an ensemble records as its source: its models' labels joined by `+`.
pub fn ensemble_name(models: &[evolve_core::ModelSpec]) -> String {
    models
        .iter()
        .map(evolve_core::ModelSpec::label)
        .collect::<Vec<_>>()
        .join("+")
}

/// Mixes a parent's failure count into a seed, so a retried request never
/// repeats the sampling of the one that failed.
fn vary_seed(seed: u64, failures: u32) -> u64 {
    seed ^ u64::from(failures).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[derive(Default)]
struct Books {
    calls: Vec<ModelCall>,
    /// Parent id → (unusable replies so far, why the last one failed).
    parent_failures: HashMap<ProgramId, (u32, String)>,
    /// Requests in a row that no model could serve.
    failures_in_a_row: u32,
    disabled: Vec<bool>,
    stop: Option<String>,
}

/// Language models as a source of candidates.
pub struct LlmMutator {
    clients: Vec<ModelClient>,
    prompts: Prompts,
    mix: [(RequestKind, f64); 3],
    budget: Budget,
    max_failures_in_a_row: u32,
    books: Mutex<Books>,
    name: String,
}

impl LlmMutator {
    /// Builds the mutator for `spec.models` (all must be real model providers).
    pub fn new(spec: &ProblemSpec) -> Result<LlmMutator, LlmError> {
        let clients = spec
            .models
            .iter()
            .map(ModelClient::new)
            .collect::<Result<Vec<_>, _>>()?;
        if clients.is_empty() {
            return Err(LlmError::NoModels);
        }
        let llm = &spec.llm;
        let name = ensemble_name(&spec.models);
        Ok(LlmMutator {
            prompts: Prompts::load(spec)?,
            mix: [
                (RequestKind::Diff, llm.diff_probability),
                (RequestKind::Rewrite, llm.rewrite_probability),
                (RequestKind::Crossover, llm.crossover_probability),
            ],
            budget: Budget::new(llm.max_tokens, llm.max_cost_usd),
            max_failures_in_a_row: llm.max_consecutive_failures,
            books: Mutex::new(Books {
                disabled: vec![false; clients.len()],
                ..Books::default()
            }),
            clients,
            name,
        })
    }

    /// Counts tokens and dollars already spent by this run (when resuming),
    /// so budgets hold for the run as a whole.
    pub fn add_spent(&self, tokens: u64, cost_usd: f64) {
        self.budget.add_spent(tokens, cost_usd);
    }

    /// Checks every model's endpoint and key before any evaluation is spent.
    pub async fn preflight(&self) -> Result<(), LlmError> {
        for client in &self.clients {
            client.preflight().await?;
        }
        Ok(())
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pick_kind(&self, rng: &mut ChaCha8Rng, can_cross: bool) -> RequestKind {
        let usable: Vec<(RequestKind, f64)> = self
            .mix
            .iter()
            .copied()
            .filter(|(k, _)| can_cross || *k != RequestKind::Crossover)
            .collect();
        let total: f64 = usable.iter().map(|(_, p)| p).sum();
        if total <= 0.0 {
            return RequestKind::Diff;
        }
        let mut x = rng.random_range(0.0..total);
        for (kind, p) in &usable {
            if x < *p {
                return *kind;
            }
            x -= p;
        }
        RequestKind::Diff
    }

    /// Models to try, in order: one drawn by weight, then the rest by weight.
    fn model_order(&self, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let disabled = self.books().disabled.clone();
        let mut live: Vec<usize> = (0..self.clients.len()).filter(|&i| !disabled[i]).collect();
        live.sort_by(|&a, &b| {
            self.clients[b]
                .spec
                .weight
                .total_cmp(&self.clients[a].spec.weight)
        });
        let total: f64 = live.iter().map(|&i| self.clients[i].spec.weight).sum();
        if total > 0.0 {
            let mut x = rng.random_range(0.0..total);
            let first = live
                .iter()
                .position(|&i| {
                    let w = self.clients[i].spec.weight;
                    let hit = x < w;
                    x -= w;
                    hit
                })
                .unwrap_or(0);
            let chosen = live.remove(first);
            live.insert(0, chosen);
        }
        live
    }

    fn stop_with(&self, reason: String) {
        let mut books = self.books();
        if books.stop.is_none() {
            tracing::warn!("stopping the models: {reason}");
            books.stop = Some(reason);
        }
    }
}

#[async_trait]
impl Mutator for LlmMutator {
    fn name(&self) -> &str {
        &self.name
    }

    fn take_calls(&self) -> Vec<ModelCall> {
        std::mem::take(&mut self.books().calls)
    }

    fn stop_reason(&self) -> Option<String> {
        self.books().stop.clone()
    }

    fn concurrency(&self) -> Option<usize> {
        Some(self.clients.iter().map(|c| c.spec.max_concurrency).sum())
    }

    async fn propose(&self, request: &MutationRequest) -> Result<Proposal, MutateError> {
        if let Some(reason) = self.stop_reason() {
            return Err(MutateError::Stopped(reason));
        }
        let parent = &request.parent;
        let previous = self.books().parent_failures.get(&parent.id).cloned();
        let failures = previous.as_ref().map_or(0, |(n, _)| *n);
        let seed = vary_seed(request.seed, failures);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let other = request.inspirations.first().cloned();
        let kind = self.pick_kind(&mut rng, other.is_some());
        let input = PromptInput {
            kind,
            parent,
            other: other.as_deref().filter(|_| kind == RequestKind::Crossover),
            inspirations: if kind == RequestKind::Crossover {
                &request.inspirations[1..]
            } else {
                &request.inspirations
            },
            previous_failure: previous.as_ref().map(|(_, why)| why.as_str()),
        };
        let (system, user) = self
            .prompts
            .render(&input)
            .map_err(|e| MutateError::Source(e.to_string()))?;
        let chat = ChatRequest { system, user, seed };
        let mut last_error = String::from("no model is available");
        for index in self.model_order(&mut rng) {
            let client = &self.clients[index];
            let secret = client.secret();
            let prompt = redact(&format!("{}\n\n{}", chat.system, chat.user), secret);
            let estimate = (prompt.len() / 4) as u64 + client.spec.max_tokens;
            let reservation = match self
                .budget
                .reserve(estimate, client.cost(estimate, client.spec.max_tokens))
            {
                Ok(reservation) => reservation,
                Err(reason) => {
                    self.stop_with(reason.clone());
                    return Err(MutateError::Stopped(reason));
                }
            };
            let template = ModelCall {
                iteration: request.iteration,
                model: client.label().to_string(),
                kind: kind.as_str().to_string(),
                prompt,
                seed,
                ..ModelCall::default()
            };
            let mut failed = Vec::new();
            let result = client.chat(&chat, &template, &mut failed).await;
            match result {
                Ok(reply) => {
                    let cost = client.cost(reply.input_tokens, reply.output_tokens);
                    self.budget
                        .settle(reservation, reply.input_tokens + reply.output_tokens, cost);
                    let text = redact(&reply.text, secret);
                    let parsed = apply_model_reply(&parent.code, &text);
                    let truncated = reply.finish_reason.as_deref() == Some("length");
                    let (outcome, detail) = match &parsed {
                        Ok(applied) => ("applied".to_string(), applied.change.to_string()),
                        Err(error) if truncated => (
                            "truncated".to_string(),
                            format!("the reply hit the token limit: {error}"),
                        ),
                        Err(error) => (error.category().to_string(), error.to_string()),
                    };
                    {
                        let mut books = self.books();
                        books.calls.extend(failed);
                        books.calls.push(ModelCall {
                            attempt: reply.attempt,
                            outcome: outcome.clone(),
                            detail: detail.clone(),
                            http_status: Some(200),
                            finish_reason: reply.finish_reason.clone(),
                            reply: text,
                            input_tokens: reply.input_tokens,
                            output_tokens: reply.output_tokens,
                            cost_usd: cost,
                            latency_ms: reply.latency_ms,
                            ..template
                        });
                        books.failures_in_a_row = 0;
                        match &parsed {
                            Ok(_) => {
                                books.parent_failures.remove(&parent.id);
                            }
                            Err(_) => {
                                let entry = books
                                    .parent_failures
                                    .entry(parent.id)
                                    .or_insert((0, String::new()));
                                entry.0 += 1;
                                entry.1 = detail.clone();
                            }
                        }
                    }
                    return match parsed {
                        Ok(applied) => Ok(Proposal {
                            code: applied.program,
                            kind: kind.as_str().to_string(),
                            source: client.label().to_string(),
                        }),
                        Err(_) => Err(MutateError::Unusable(format!("{outcome}: {detail}"))),
                    };
                }
                Err(failure) => {
                    self.budget.settle(reservation, 0, 0.0);
                    self.books().calls.extend(failed);
                    last_error = format!("{}: {}", client.label(), failure.detail);
                    if failure.followup == Followup::Disable {
                        let all_gone = {
                            let mut books = self.books();
                            books.disabled[index] = true;
                            books.disabled.iter().all(|d| *d)
                        };
                        tracing::error!("{last_error}; not asking {} again", client.label());
                        if all_gone {
                            self.stop_with(format!(
                                "every model refused the key or quota ({last_error})"
                            ));
                            return Err(MutateError::Stopped(last_error));
                        }
                    }
                }
            }
        }
        let in_a_row = {
            let mut books = self.books();
            books.failures_in_a_row += 1;
            books.failures_in_a_row
        };
        if in_a_row >= self.max_failures_in_a_row {
            self.stop_with(format!(
                "every model failed {in_a_row} requests in a row (last: {last_error})"
            ));
        }
        Err(MutateError::Source(last_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_parent_gets_a_different_seed() {
        let seeds: Vec<u64> = (0..4).map(|n| vary_seed(42, n)).collect();
        assert_eq!(seeds[0], 42);
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(seeds[i], seeds[j]);
            }
        }
    }
}
