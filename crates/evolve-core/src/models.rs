//! The `[[models]]` and `[llm]` tables of `problem.toml`: which language
//! models propose candidates, and the run's prompt and budget settings.

use serde::{Deserialize, Serialize};

/// The API a model is reached through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Any OpenAI-compatible chat-completions endpoint.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// The built-in offline mutator (no model).
    Local,
}

impl Provider {
    /// The name used in config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Local => "local",
        }
    }

    /// The provider with this name.
    pub fn from_name(name: &str) -> Option<Provider> {
        [Provider::OpenAi, Provider::Anthropic, Provider::Local]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

/// One `[[models]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// `openai`, `anthropic` or `local`.
    pub provider: Provider,
    /// The model name sent to the API.
    #[serde(default)]
    pub model: String,
    /// The API base URL (default: the provider's public endpoint).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding the key (default per provider).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Relative share of requests sent to this model.
    #[serde(default = "one")]
    pub weight: f64,
    /// Sampling temperature (not sent to reasoning models).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Output token limit per request.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u64,
    /// Price in USD per million input tokens.
    #[serde(default)]
    pub price_input_per_mtok: f64,
    /// Price in USD per million output tokens.
    #[serde(default)]
    pub price_output_per_mtok: f64,
    /// Requests to this model in flight at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Deadline of one HTTP attempt, in seconds.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Deadline for connecting, in seconds.
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: f64,
    /// Retries after a retryable failure (429, 5xx, timeout...).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Treat as a reasoning model (`max_completion_tokens`, no temperature);
    /// by default guessed from the model name.
    #[serde(default)]
    pub reasoning: Option<bool>,
}

fn one() -> f64 {
    1.0
}
fn default_max_tokens() -> u64 {
    4096
}
fn default_concurrency() -> usize {
    4
}
fn default_timeout_s() -> f64 {
    180.0
}
fn default_connect_timeout_s() -> f64 {
    10.0
}
fn default_retries() -> u32 {
    4
}

impl ModelSpec {
    /// A model with every optional setting at its default.
    pub fn new(provider: Provider, model: &str) -> ModelSpec {
        ModelSpec {
            provider,
            model: model.to_string(),
            base_url: None,
            api_key_env: None,
            weight: one(),
            temperature: None,
            max_tokens: default_max_tokens(),
            price_input_per_mtok: 0.0,
            price_output_per_mtok: 0.0,
            max_concurrency: default_concurrency(),
            timeout_s: default_timeout_s(),
            connect_timeout_s: default_connect_timeout_s(),
            max_retries: default_retries(),
            reasoning: None,
        }
    }

    /// `provider:model`, as shown in records and reports.
    pub fn label(&self) -> String {
        format!("{}:{}", self.provider.as_str(), self.model)
    }

    /// The first problem with this entry, as (key, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.provider != Provider::Local && self.model.trim().is_empty() {
            return Some(("model", "must name the model".into()));
        }
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Some(("weight", "must be a number >= 0".into()));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Some(("temperature", "must lie between 0 and 2".into()));
        }
        if self.max_tokens == 0 {
            return Some(("max_tokens", "must be at least 1".into()));
        }
        if self.max_concurrency == 0 {
            return Some(("max_concurrency", "must be at least 1".into()));
        }
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            return Some(("timeout_s", "must be a positive number of seconds".into()));
        }
        if !(self.connect_timeout_s.is_finite() && self.connect_timeout_s > 0.0) {
            return Some((
                "connect_timeout_s",
                "must be a positive number of seconds".into(),
            ));
        }
        if self.price_input_per_mtok < 0.0 || self.price_output_per_mtok < 0.0 {
            return Some(("price_input_per_mtok", "prices must be >= 0".into()));
        }
        if let Some(url) = &self.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Some(("base_url", "must start with http:// or https://".into()));
        }
        None
    }
}

/// The `[llm]` table: how requests are mixed, prompts sized, runs budgeted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSpec {
    /// Share of requests asking for SEARCH/REPLACE edits.
    pub diff_probability: f64,
    /// Share of requests asking for a full rewrite of the region.
    pub rewrite_probability: f64,
    /// Share of requests asking to cross two parents.
    pub crossover_probability: f64,
    /// Token budget of the whole run (input plus output), if any.
    pub max_tokens: Option<u64>,
    /// Spending budget of the whole run in USD, if any.
    pub max_cost_usd: Option<f64>,
    /// Prompt size limit in characters; inspirations are dropped first.
    pub max_prompt_chars: usize,
    /// Limit on the evaluator feedback shown per program, in characters.
    pub feedback_chars: usize,
    /// The run stops after this many requests in a row that no model could serve.
    pub max_consecutive_failures: u32,
}

impl Default for LlmSpec {
    fn default() -> LlmSpec {
        LlmSpec {
            diff_probability: 0.6,
            rewrite_probability: 0.3,
            crossover_probability: 0.1,
            max_tokens: None,
            max_cost_usd: None,
            max_prompt_chars: 16_000,
            feedback_chars: 1_500,
            max_consecutive_failures: 8,
        }
    }
}

impl LlmSpec {
    /// The first problem with the table, as (key, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        for (key, p) in [
            ("diff_probability", self.diff_probability),
            ("rewrite_probability", self.rewrite_probability),
            ("crossover_probability", self.crossover_probability),
        ] {
            if !(p.is_finite() && p >= 0.0) {
                return Some((key, "must be a number >= 0".into()));
            }
        }
        if self.diff_probability + self.rewrite_probability + self.crossover_probability <= 0.0 {
            return Some((
                "diff_probability",
                "at least one request kind needs a positive probability".into(),
            ));
        }
        if self
            .max_cost_usd
            .is_some_and(|c| !(c.is_finite() && c > 0.0))
        {
            return Some(("max_cost_usd", "must be a positive number".into()));
        }
        if self.max_tokens == Some(0) {
            return Some(("max_tokens", "must be at least 1".into()));
        }
        if self.max_prompt_chars < 500 {
            return Some(("max_prompt_chars", "must be at least 500".into()));
        }
        if self.max_consecutive_failures == 0 {
            return Some(("max_consecutive_failures", "must be at least 1".into()));
        }
        None
    }
}

/// One request to a model and what came of it, for the run's record.
///
/// Secrets never appear here: clients redact keys from every text field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelCall {
    /// The iteration the call served.
    pub iteration: u64,
    /// `provider:model` of the model asked.
    pub model: String,
    /// What was asked for: `diff`, `rewrite` or `crossover`.
    pub kind: String,
    /// 1-based attempt number within the request (retries count up).
    pub attempt: u32,
    /// Category of the result: `applied`, a parse failure (`no_match`, ...)
    /// or a transport failure (`timeout`, `http_429`, `invalid_json`, ...).
    pub outcome: String,
    /// Human-readable detail of the outcome.
    pub detail: String,
    /// The HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// The model's stop reason (`stop`, `length`, ...), when given.
    pub finish_reason: Option<String>,
    /// The system and user prompt sent.
    pub prompt: String,
    /// The reply text received (empty when none).
    pub reply: String,
    /// Input tokens (reported, or estimated when the server gave none).
    pub input_tokens: u64,
    /// Output tokens (reported, or estimated).
    pub output_tokens: u64,
    /// Cost of the call in US dollars from the configured prices.
    pub cost_usd: f64,
    /// Wall time of the attempt.
    pub latency_ms: u64,
    /// The sampling seed sent.
    pub seed: u64,
}
