//! One model behind one HTTP API: request shapes, deadlines, retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use evolve_core::{ModelCall, ModelSpec, Provider};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::LlmError;

/// Longest server-requested wait that is honoured; longer ones fall back to backoff.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);
/// Cap of the exponential backoff.
const BACKOFF_CAP: Duration = Duration::from_secs(8);
/// First backoff step.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Characters per token, to estimate usage a server did not report.
const CHARS_PER_TOKEN: u64 = 4;

/// What to ask a model.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The system prompt.
    pub system: String,
    /// The user prompt.
    pub user: String,
    /// The sampling seed.
    pub seed: u64,
}

/// A reply that arrived (its text may still be unusable).
#[derive(Debug, Clone)]
pub struct ChatReply {
    /// The reply text (empty when the server sent `null` or nothing).
    pub text: String,
    /// The stop reason, normalised to OpenAI's words (`stop`, `length`).
    pub finish_reason: Option<String>,
    /// Input tokens, reported or estimated.
    pub input_tokens: u64,
    /// Output tokens, reported or estimated.
    pub output_tokens: u64,
    /// Wall time of the successful attempt.
    pub latency_ms: u64,
    /// Which attempt succeeded (1-based).
    pub attempt: u32,
}

/// How a failed attempt should be followed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followup {
    /// Try again after the given delay (or the backoff when none).
    Retry(Option<Duration>),
    /// Give up on this request; other requests may still work.
    GiveUp,
    /// The key is missing, rejected, or out of quota: never ask this model again.
    Disable,
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub struct CallFailure {
    /// Category: `timeout`, `connect`, `http_429`, `http_500`, `invalid_json`, ...
    pub outcome: String,
    /// Explanation, with secrets redacted.
    pub detail: String,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// What to do next.
    pub followup: Followup,
}

/// A model endpoint with its key, limits and HTTP client.
pub struct ModelClient {
    /// Its configuration.
    pub spec: ModelSpec,
    label: String,
    http: reqwest::Client,
    key: Option<String>,
    url: String,
    models_url: String,
    reasoning: bool,
    use_completion_tokens: bool,
    permits: Arc<Semaphore>,
}

/// Replaces every occurrence of `secret` in `text` (no-op for empty secrets).
pub fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "[redacted]"),
        _ => text.to_string(),
    }
}

/// True for names of models that reject `temperature` and `max_tokens`.
fn looks_like_reasoning_model(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| name == *p || name.starts_with(&format!("{p}-")))
}

fn is_loopback(url: &str) -> bool {
    ["://127.", "://localhost", "://[::1]"]
        .iter()
        .any(|host| url.contains(host))
}

impl ModelClient {
    /// Prepares a client; fails when the key's variable is unset (except for
    /// servers on this machine, which rarely want a key).
    pub fn new(spec: &ModelSpec) -> Result<ModelClient, LlmError> {
        crate::install_crypto_provider();
        let (default_base, default_env) = match spec.provider {
            Provider::OpenAi => ("https://api.openai.com/v1", "OPENAI_API_KEY"),
            Provider::Anthropic => ("https://api.anthropic.com", "ANTHROPIC_API_KEY"),
            Provider::Local => return Err(LlmError::NotAModel(spec.label())),
        };
        let base = spec
            .base_url
            .clone()
            .unwrap_or_else(|| default_base.to_string());
        let base = base.trim_end_matches('/').to_string();
        let env = spec.api_key_env.as_deref().unwrap_or(default_env);
        let key = std::env::var(env).ok().filter(|k| !k.trim().is_empty());
        if key.is_none() && (spec.api_key_env.is_some() || !is_loopback(&base)) {
            return Err(LlmError::MissingKey {
                model: spec.label(),
                env: env.to_string(),
            });
        }
        let (url, models_url) = match spec.provider {
            Provider::Anthropic => {
                let root = base.strip_suffix("/v1").unwrap_or(&base);
                (format!("{root}/v1/messages"), format!("{root}/v1/models"))
            }
            _ => (format!("{base}/chat/completions"), format!("{base}/models")),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs_f64(spec.connect_timeout_s))
            .timeout(Duration::from_secs_f64(spec.timeout_s))
            .build()
            .map_err(|e| LlmError::Client(e.to_string()))?;
        let reasoning = spec
            .reasoning
            .unwrap_or_else(|| looks_like_reasoning_model(&spec.model));
        Ok(ModelClient {
            label: spec.label(),
            use_completion_tokens: reasoning || base.contains("api.openai.com"),
            reasoning,
            http,
            key,
            url,
            models_url,
            permits: Arc::new(Semaphore::new(spec.max_concurrency)),
            spec: spec.clone(),
        })
    }

    /// `provider:model`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The key, for redaction only.
    pub fn secret(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Cost in USD of a call with these token counts.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.spec.price_input_per_mtok
            + output_tokens as f64 * self.spec.price_output_per_mtok)
            / 1e6
    }

    /// Checks that the endpoint is reachable and accepts the key, without
    /// spending tokens (lists the models).
    pub async fn preflight(&self) -> Result<(), LlmError> {
        let request = self.authorised(self.http.get(&self.models_url));
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                if status == 401 || status == 403 {
                    let body = response.text().await.unwrap_or_default();
                    return Err(LlmError::KeyRejected {
                        model: self.label.clone(),
                        message: redact(&error_message(&body), self.secret()),
                    });
                }
                Ok(())
            }
            Err(error) if error.is_connect() => Err(LlmError::Unreachable {
                model: self.label.clone(),
                url: self.models_url.clone(),
                message: redact(&error.to_string(), self.secret()),
            }),
            // A slow or odd listing endpoint is not worth failing the run over.
            Err(error) => {
                tracing::warn!(model = %self.label, "preflight: {error}");
                Ok(())
            }
        }
    }

    fn authorised(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let key = self.key.as_deref().unwrap_or("none");
        match self.spec.provider {
            Provider::Anthropic => request
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01"),
            _ => request.bearer_auth(key),
        }
    }

    fn body(&self, request: &ChatRequest) -> Value {
        match self.spec.provider {
            Provider::Anthropic => {
                let mut body = json!({
                    "model": self.spec.model,
                    "max_tokens": self.spec.max_tokens,
                    "system": request.system,
                    "messages": [{"role": "user", "content": request.user}],
                });
                if let Some(t) = self.spec.temperature {
                    body["temperature"] = json!(t);
                }
                body
            }
            _ => {
                let mut body = json!({
                    "model": self.spec.model,
                    "messages": [
                        {"role": "system", "content": request.system},
                        {"role": "user", "content": request.user},
                    ],
                    "seed": request.seed & 0x7fff_ffff,
                });
                let limit = if self.use_completion_tokens {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                body[limit] = json!(self.spec.max_tokens);
                if !self.reasoning
                    && let Some(t) = self.spec.temperature
                {
                    body["temperature"] = json!(t);
                }
                body
            }
        }
    }

    /// Sends `request`, retrying as the policy allows. Every failed attempt is
    /// appended to `failed` (as a record built from `template`).
    pub async fn chat(
        &self,
        request: &ChatRequest,
        template: &ModelCall,
        failed: &mut Vec<ModelCall>,
    ) -> Result<ChatReply, CallFailure> {
        let body = self.body(request);
        let attempts = self.spec.max_retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let result = {
                // Closed only when the client is dropped, which cannot happen here.
                let _permit = self.permits.acquire().await;
                self.attempt(&body).await
            };
            let latency_ms = started.elapsed().as_millis() as u64;
            match result {
                Ok(mut reply) => {
                    reply.latency_ms = latency_ms;
                    reply.attempt = attempt;
                    if reply.input_tokens == 0 {
                        reply.input_tokens =
                            (request.system.len() + request.user.len()) as u64 / CHARS_PER_TOKEN;
                    }
                    return Ok(reply);
                }
                Err(failure) => {
                    failed.push(ModelCall {
                        attempt,
                        outcome: failure.outcome.clone(),
                        detail: failure.detail.clone(),
                        http_status: failure.status,
                        latency_ms,
                        ..template.clone()
                    });
                    let delay = match failure.followup {
                        Followup::Retry(delay) if attempt < attempts => delay,
                        _ => return Err(failure),
                    };
                    let delay = delay.unwrap_or_else(|| backoff(attempt));
                    tracing::debug!(model = %self.label, attempt, ?delay, "retrying: {}", failure.detail);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn attempt(&self, body: &Value) -> Result<ChatReply, CallFailure> {
        let secret = self.secret();
        let sent = self
            .authorised(self.http.post(&self.url))
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                let outcome = if error.is_timeout() {
                    "timeout"
                } else if error.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                return Err(CallFailure {
                    outcome: outcome.into(),
                    detail: redact(&error.to_string(), secret),
                    status: None,
                    followup: Followup::Retry(None),
                });
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = match response.text().await {
            Ok(text) => text,
            Err(error) => {
                let outcome = if error.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                };
                return Err(CallFailure {
                    outcome: outcome.into(),
                    detail: redact(&error.to_string(), secret),
                    status: Some(status),
                    followup: Followup::Retry(None),
                });
            }
        };
        if !(200..300).contains(&status) {
            let message = redact(&error_message(&text), secret);
            return Err(CallFailure {
                outcome: format!("http_{status}"),
                detail: format!("HTTP {status}: {message}"),
                status: Some(status),
                followup: followup_for(status, &text, &headers),
            });
        }
        let value: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(error) => {
                return Err(CallFailure {
                    outcome: "invalid_json".into(),
                    detail: format!("the reply body is not JSON: {error}"),
                    status: Some(status),
                    followup: Followup::Retry(None),
                });
            }
        };
        Ok(match self.spec.provider {
            Provider::Anthropic => parse_anthropic(&value),
            _ => parse_openai(&value),
        })
    }
}

fn parse_openai(value: &Value) -> ChatReply {
    let choice = &value["choices"][0];
    let text = choice["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    reply_with_usage(
        text,
        choice["finish_reason"].as_str().map(str::to_string),
        value["usage"]["prompt_tokens"].as_u64(),
        value["usage"]["completion_tokens"].as_u64(),
    )
}

fn parse_anthropic(value: &Value) -> ChatReply {
    let text: String = value["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|block| block["type"] == "text")
        .filter_map(|block| block["text"].as_str())
        .collect();
    let finish = value["stop_reason"].as_str().map(|r| match r {
        "max_tokens" => "length".to_string(),
        "end_turn" | "stop_sequence" => "stop".to_string(),
        other => other.to_string(),
    });
    reply_with_usage(
        text,
        finish,
        value["usage"]["input_tokens"].as_u64(),
        value["usage"]["output_tokens"].as_u64(),
    )
}

fn reply_with_usage(
    text: String,
    finish_reason: Option<String>,
    input: Option<u64>,
    output: Option<u64>,
) -> ChatReply {
    let output_tokens = output.unwrap_or(text.len() as u64 / CHARS_PER_TOKEN);
    ChatReply {
        text,
        finish_reason,
        input_tokens: input.unwrap_or(0),
        output_tokens,
        latency_ms: 0,
        attempt: 0,
    }
}

/// The message of an error body: OpenAI's object, Google's array of them, or plain text.
fn error_message(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let error = match &value {
        Value::Array(items) => items.first().map(|i| &i["error"]),
        other => Some(&other["error"]),
    };
    match error {
        Some(Value::Object(e)) => e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)")
            .to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => body.chars().take(500).collect(),
    }
}

fn followup_for(status: u16, body: &str, headers: &reqwest::header::HeaderMap) -> Followup {
    let quota =
        body.contains("insufficient_quota") || body.contains("enforced_spend_limit_reached");
    if status == 401 || status == 403 || quota {
        return Followup::Disable;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match header("x-should-retry") {
        Some("false") => return Followup::GiveUp,
        Some("true") => return Followup::Retry(retry_after(headers)),
        _ => {}
    }
    if matches!(status, 408 | 409 | 429) || status >= 500 {
        Followup::Retry(retry_after(headers))
    } else {
        Followup::GiveUp
    }
}

/// The wait a server asked for, when it is within the cap.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let asked = header("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
        .or_else(|| {
            header("retry-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|s| Duration::from_secs_f64(s.max(0.0)))
        })?;
    (asked <= RETRY_AFTER_CAP).then_some(asked)
}

/// `min(0.5 s · 2^(n-1), 8 s) × (1 − 0.25·rand)` for attempt `n`.
fn backoff(attempt: u32) -> Duration {
    let exponential = BACKOFF_BASE.saturating_mul(1 << attempt.saturating_sub(1).min(8));
    let jitter = 1.0 - 0.25 * rand::rng().random::<f64>();
    exponential.min(BACKOFF_CAP).mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_models_are_recognised_by_name() {
        for name in ["o1", "o3-mini", "o4-mini", "gpt-5", "openai/gpt-5-mini"] {
            assert!(looks_like_reasoning_model(name), "{name}");
        }
        for name in [
            "gpt-4o-mini",
            "qwen2.5-coder-1.5b",
            "claude-sonnet-4-5",
            "o1x",
        ] {
            assert!(!looks_like_reasoning_model(name), "{name}");
        }
    }

    #[test]
    fn error_bodies_of_every_shape_give_a_message() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key"}}"#),
            "bad key"
        );
        assert_eq!(error_message(r#"[{"error":{"message":"quota"}}]"#), "quota");
        assert_eq!(error_message("plain failure"), "plain failure");
    }

    #[test]
    fn retry_policy_follows_status_and_body() {
        let none = reqwest::header::HeaderMap::new();
        assert_eq!(followup_for(400, "", &none), Followup::GiveUp);
        assert_eq!(followup_for(401, "", &none), Followup::Disable);
        assert_eq!(followup_for(403, "", &none), Followup::Disable);
        assert_eq!(
            followup_for(429, r#"{"error":{"code":"insufficient_quota"}}"#, &none),
            Followup::Disable
        );
        for status in [408, 409, 429, 500, 503, 529] {
            assert_eq!(
                followup_for(status, "", &none),
                Followup::Retry(None),
                "{status}"
            );
        }
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(
            followup_for(429, "", &headers),
            Followup::Retry(Some(Duration::from_secs(2)))
        );
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(
            followup_for(429, "", &headers),
            Followup::Retry(Some(Duration::from_millis(250)))
        );
        let mut far = reqwest::header::HeaderMap::new();
        far.insert("retry-after", "3600".parse().unwrap());
        assert_eq!(followup_for(429, "", &far), Followup::Retry(None));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..12 {
            let d = backoff(attempt);
            let full = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1).min(8))
                .min(BACKOFF_CAP);
            assert!(d <= full && d >= full.mul_f64(0.75), "{attempt}: {d:?}");
        }
    }

    fn request_body(model: &str, reasoning: Option<bool>) -> Value {
        let mut spec = ModelSpec::new(Provider::OpenAi, model);
        spec.base_url = Some("http://127.0.0.1:9/v1".into());
        spec.temperature = Some(0.7);
        spec.reasoning = reasoning;
        let client = ModelClient::new(&spec).unwrap();
        client.body(&ChatRequest {
            system: "s".into(),
            user: "u".into(),
            seed: 5,
        })
    }

    #[test]
    fn reasoning_models_get_completion_tokens_and_no_temperature() {
        let plain = request_body("qwen", None);
        assert_eq!(plain["max_tokens"], 4096);
        assert_eq!(plain["temperature"], 0.7);
        let reasoning = request_body("o3-mini", None);
        assert_eq!(reasoning["max_completion_tokens"], 4096);
        assert!(reasoning.get("max_tokens").is_none());
        assert!(reasoning.get("temperature").is_none());
        let forced = request_body("my-model", Some(true));
        assert!(forced.get("temperature").is_none());
    }

    #[test]
    fn replies_with_null_content_or_no_usage_are_read() {
        let reply = parse_openai(
            &json!({"choices": [{"message": {"content": null}, "finish_reason": "length"}]}),
        );
        assert_eq!(reply.text, "");
        assert_eq!(reply.finish_reason.as_deref(), Some("length"));
        assert_eq!(reply.input_tokens, 0);
        let reply = parse_anthropic(&json!({"content": [
            {"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "stop_reason": "max_tokens", "usage": {"input_tokens": 3, "output_tokens": 4}}));
        assert_eq!(reply.text, "ab");
        assert_eq!(reply.finish_reason.as_deref(), Some("length"));
        assert_eq!((reply.input_tokens, reply.output_tokens), (3, 4));
    }

    #[test]
    fn keys_are_redacted() {
        assert_eq!(
            redact("Incorrect API key provided: sk-123", Some("sk-123")),
            "Incorrect API key provided: [redacted]"
        );
        assert_eq!(redact("x", Some("")), "x");
    }
}
