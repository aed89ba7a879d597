//! A stand-in language-model server for tests and benchmarks.
//!
//! It speaks just enough HTTP/1.1 on 127.0.0.1 to answer OpenAI-compatible
//! `POST …/chat/completions` and Anthropic `POST …/messages` requests. Its
//! good replies are real, applicable edits: it finds the first EVOLVE-BLOCK in
//! the prompt and changes one number on one line with a SEARCH/REPLACE block,
//! so runs against it make progress. A share of the replies can be faults
//! (see [`Fault`]), chosen from a seeded generator, and tests can script an
//! exact sequence. `GET /stats` returns what was served, as JSON.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One way a reply can go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with `retry-after-ms` and `retry-after` headers.
    RateLimited,
    /// HTTP 500.
    ServerError,
    /// Never answers (until the configured hang time passes).
    Hang,
    /// HTTP 200 with a body that is not JSON.
    InvalidJson,
    /// HTTP 200 with empty (OpenAI: `null`) content.
    EmptyContent,
    /// A SEARCH/REPLACE block whose SEARCH text is not in the program.
    NoMatch,
    /// Prose with no code at all.
    NoCode,
    /// A reply cut off mid-block, with `finish_reason: "length"`.
    Truncated,
}

impl Fault {
    /// Every fault kind, in a fixed order.
    pub const ALL: [Fault; 8] = [
        Fault::RateLimited,
        Fault::ServerError,
        Fault::Hang,
        Fault::InvalidJson,
        Fault::EmptyContent,
        Fault::NoMatch,
        Fault::NoCode,
        Fault::Truncated,
    ];

    /// The name used in stats and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::RateLimited => "rate_limited",
            Fault::ServerError => "server_error",
            Fault::Hang => "hang",
            Fault::InvalidJson => "invalid_json",
            Fault::EmptyContent => "empty_content",
            Fault::NoMatch => "no_match",
            Fault::NoCode => "no_code",
            Fault::Truncated => "truncated",
        }
    }

    /// The fault with this name.
    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What to serve for one scripted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripted {
    /// A good, applicable edit.
    Good,
    /// A fault.
    Fault(Fault),
    /// This exact reply text, with `finish_reason: "stop"`.
    Text(String),
}

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct StandinConfig {
    /// Delay before every answer.
    pub latency: Duration,
    /// Share of unscripted requests that get a fault.
    pub fault_rate: f64,
    /// The faults to pick from (uniformly).
    pub faults: Vec<Fault>,
    /// Seed of the fault and edit generator.
    pub seed: u64,
    /// Replies served first, in order, before random ones.
    pub script: Vec<Scripted>,
    /// How long a hanging request waits before the connection is dropped.
    pub hang: Duration,
    /// The delay a 429 asks for.
    pub retry_after_ms: u64,
    /// When set, requests without this key get 401 (the message echoes the
    /// key received, as real servers partly do, to test that clients redact it).
    pub required_key: Option<String>,
}

impl Default for StandinConfig {
    fn default() -> StandinConfig {
        StandinConfig {
            latency: Duration::ZERO,
            fault_rate: 0.0,
            faults: Fault::ALL.to_vec(),
            seed: 0,
            script: Vec::new(),
            hang: Duration::from_secs(3600),
            retry_after_ms: 50,
            required_key: None,
        }
    }
}

/// Counters of what the stand-in served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests received on the model routes.
    pub requests: u64,
    /// Replies by kind (`good`, fault names, `text`).
    pub by_kind: BTreeMap<String, u64>,
    /// The most model requests being handled at the same time.
    pub max_concurrent: u64,
}

impl Stats {
    fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "by_kind": self.by_kind,
            "max_concurrent": self.max_concurrent,
        })
    }
}

struct Shared {
    config: StandinConfig,
    script: VecDeque<Scripted>,
    rng: ChaCha8Rng,
    stats: Stats,
    concurrent: u64,
}

/// A running stand-in server; it stops when dropped.
pub struct Standin {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Standin {
    /// Binds 127.0.0.1:`port` (0 picks a free port) and starts serving.
    pub async fn start(port: u16, config: StandinConfig) -> std::io::Result<Standin> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared {
            script: config.script.iter().cloned().collect(),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            stats: Stats::default(),
            concurrent: 0,
        }));
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = serving.clone();
                tokio::spawn(async move {
                    // A client that goes away mid-request is its own business.
                    let _ = handle(stream, shared).await;
                });
            }
        });
        Ok(Standin { addr, shared, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI-style base URL (`http://127.0.0.1:PORT/v1`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Anthropic-style base URL (`http://127.0.0.1:PORT`).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was served so far.
    pub fn stats(&self) -> Stats {
        self.shared
            .lock()
            .map(|s| s.stats.clone())
            .unwrap_or_default()
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    extra_headers: &[(&str, String)],
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in extra_headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// The API flavour of a request, from its path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    OpenAi,
    Anthropic,
}

/// What one request will be answered with.
enum Planned {
    Good(u64),
    Fault(Fault),
    Text(String),
}

/// The key given, when a key is required and this is not it.
fn rejected_key(shared: &Mutex<Shared>, request: &Request) -> Option<String> {
    let required = shared.lock().ok()?.config.required_key.clone()?;
    let given = given_key(request);
    (given != required).then_some(given)
}

fn given_key(request: &Request) -> String {
    request
        .header("authorization")
        .map(|v| v.trim_start_matches("Bearer ").to_string())
        .or_else(|| request.header("x-api-key").map(str::to_string))
        .unwrap_or_default()
}

fn plan(shared: &Mutex<Shared>) -> (Planned, StandinConfig) {
    let Ok(mut guard) = shared.lock() else {
        return (Planned::Fault(Fault::ServerError), StandinConfig::default());
    };
    let s = &mut *guard;
    s.stats.requests += 1;
    s.concurrent += 1;
    s.stats.max_concurrent = s.stats.max_concurrent.max(s.concurrent);
    let planned = match s.script.pop_front() {
        Some(Scripted::Good) => Planned::Good(s.rng.random()),
        Some(Scripted::Fault(f)) => Planned::Fault(f),
        Some(Scripted::Text(t)) => Planned::Text(t),
        None => {
            let faulty = s.rng.random_bool(s.config.fault_rate.clamp(0.0, 1.0));
            if faulty && !s.config.faults.is_empty() {
                let i = s.rng.random_range(0..s.config.faults.len());
                Planned::Fault(s.config.faults[i])
            } else {
                Planned::Good(s.rng.random())
            }
        }
    };
    let kind = match &planned {
        Planned::Good(_) => "good",
        Planned::Fault(f) => f.name(),
        Planned::Text(_) => "text",
    };
    *s.stats.by_kind.entry(kind.to_string()).or_default() += 1;
    (planned, s.config.clone())
}

async fn handle(mut stream: TcpStream, shared: Arc<Mutex<Shared>>) -> std::io::Result<()> {
    let Some(request) = read_request(&mut stream).await? else {
        return Ok(());
    };
    if request.method == "GET" && request.path.ends_with("/stats") {
        let stats = shared
            .lock()
            .map(|s| s.stats.to_json())
            .unwrap_or(Value::Null);
        return respond(&mut stream, 200, &[], &stats.to_string()).await;
    }
    if let Some(given) = rejected_key(&shared, &request) {
        let message = json!({"error": {
            "message": format!("Incorrect API key provided: {given}"),
            "type": "invalid_request_error", "code": "invalid_api_key"}});
        return respond(&mut stream, 401, &[], &message.to_string()).await;
    }
    if request.method == "GET" && request.path.ends_with("/models") {
        return respond(&mut stream, 200, &[], r#"{"object":"list","data":[]}"#).await;
    }
    let flavour = if request.path.ends_with("/chat/completions") {
        Flavour::OpenAi
    } else if request.path.ends_with("/messages") {
        Flavour::Anthropic
    } else {
        return respond(
            &mut stream,
            404,
            &[],
            r#"{"error":{"message":"no such route"}}"#,
        )
        .await;
    };
    let (planned, config) = plan(&shared);
    let result = answer(&mut stream, &request, flavour, planned, &config).await;
    if let Ok(mut s) = shared.lock() {
        s.concurrent -= 1;
    }
    result
}

async fn answer(
    stream: &mut TcpStream,
    request: &Request,
    flavour: Flavour,
    planned: Planned,
    config: &StandinConfig,
) -> std::io::Result<()> {
    tokio::time::sleep(config.latency).await;
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let prompt = prompt_text(&body);
    let (text, finish, with_usage) = match planned {
        Planned::Fault(Fault::RateLimited) => {
            let message = json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}});
            let wait = config.retry_after_ms;
            let headers = [
                ("retry-after-ms", wait.to_string()),
                ("retry-after", wait.div_ceil(1000).to_string()),
            ];
            return respond(stream, 429, &headers, &message.to_string()).await;
        }
        Planned::Fault(Fault::ServerError) => {
            let message = json!({"error": {"message": "The server had an error", "type": "server_error"}});
            return respond(stream, 500, &[], &message.to_string()).await;
        }
        Planned::Fault(Fault::Hang) => {
            // Hang until the hang time passes or the client gives up and
            // closes the connection, so abandoned requests stop counting.
            let mut byte = [0u8; 1];
            tokio::select! {
                () = tokio::time::sleep(config.hang) => {}
                _ = stream.read(&mut byte) => {}
            }
            return Ok(());
        }
        Planned::Fault(Fault::InvalidJson) => {
            return respond(stream, 200, &[], "{\"choices\": [ this is not json").await;
        }
        Planned::Fault(Fault::EmptyContent) => (None, "stop", true),
        Planned::Fault(Fault::NoMatch) => (
            Some(
                "<<<<<<< SEARCH\n    this_line_is_not_in_the_program = True\n=======\n    this_line_is_not_in_the_program = False\n>>>>>>> REPLACE\n"
                    .to_string(),
            ),
            "stop",
            true,
        ),
        Planned::Fault(Fault::NoCode) => (
            Some("You could try a smarter search strategy, such as simulated annealing.".into()),
            "stop",
            true,
        ),
        Planned::Fault(Fault::Truncated) => {
            let full = good_edit(&prompt, 7);
            let cut = full.len() / 2;
            let cut = (0..=cut).rev().find(|&i| full.is_char_boundary(i)).unwrap_or(0);
            (Some(full[..cut].to_string()), "length", true)
        }
        Planned::Text(text) => (Some(text), "stop", true),
        // Every third good reply omits `usage`, as some compatible servers do.
        Planned::Good(seed) => (Some(good_edit(&prompt, seed)), "stop", seed % 3 != 0),
    };
    let prompt_tokens = (prompt.len() / 4) as u64;
    let completion_tokens = text.as_ref().map_or(0, |t| t.len() / 4) as u64;
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let reply = match flavour {
        Flavour::OpenAi => {
            let mut reply = json!({
                "id": "standin", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "finish_reason": finish,
                    "message": {"role": "assistant", "content": text}}],
            });
            if with_usage {
                reply["usage"] = json!({"prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens});
            }
            reply
        }
        Flavour::Anthropic => json!({
            "id": "standin", "type": "message", "role": "assistant", "model": model,
            "content": [
                {"type": "thinking", "thinking": "considering the program", "signature": "x"},
                {"type": "text", "text": text.unwrap_or_default()}
            ],
            "stop_reason": if finish == "length" { "max_tokens" } else { "end_turn" },
            "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
        }),
    };
    respond(stream, 200, &[], &reply.to_string()).await
}

/// All user-visible text of a chat request (system and messages).
fn prompt_text(body: &Value) -> String {
    let mut out = String::new();
    let mut push = |v: &Value| match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(blocks) => {
            for block in blocks {
                if let Some(s) = block.get("text").and_then(Value::as_str) {
                    out.push_str(s);
                    out.push('\n');
                }
            }
        }
        _ => {}
    };
    if let Some(system) = body.get("system") {
        push(system);
    }
    for message in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(content) = message.get("content") {
            push(content);
        }
    }
    out
}

/// The lines of the first EVOLVE-BLOCK region shown in the prompt.
fn first_region(prompt: &str) -> Vec<&str> {
    // Marker lines end with the marker; prose that mentions it does not.
    prompt
        .lines()
        .skip_while(|l| !l.trim_end().ends_with("EVOLVE-BLOCK-START"))
        .skip(1)
        .take_while(|l| !l.trim_end().ends_with("EVOLVE-BLOCK-END"))
        .collect()
}

/// Byte ranges of the number literals on a line (not parts of names).
fn numbers(line: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = line.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_number = bytes[i].is_ascii_digit()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts_number {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            found.push(start..i);
        } else {
            i += 1;
        }
    }
    found
}

/// A SEARCH/REPLACE edit that changes one number of the prompt's program.
pub fn good_edit(prompt: &str, seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let region = first_region(prompt);
    let candidates: Vec<(&str, Vec<std::ops::Range<usize>>)> = region
        .iter()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| (*l, numbers(l)))
        .filter(|(_, n)| !n.is_empty())
        .collect();
    if candidates.is_empty() {
        return "I found no number to tune in the program.".into();
    }
    let (line, spans) = &candidates[rng.random_range(0..candidates.len())];
    let span = spans[rng.random_range(0..spans.len())].clone();
    let literal = &line[span.clone()];
    let factor: f64 = rng.random_range(0.5..2.0);
    let new_literal = if literal.contains('.') {
        format!("{:.4}", literal.parse::<f64>().unwrap_or(1.0) * factor)
    } else {
        let value = literal.parse::<u64>().unwrap_or(1);
        let scaled = ((value as f64 * factor).round() as u64).max(1);
        (if scaled == value { value + 1 } else { scaled }).to_string()
    };
    let new_line = format!(
        "{}{}{}",
        &line[..span.start],
        new_literal,
        &line[span.end..]
    );
    format!(
        "Changing `{literal}` to `{new_literal}` should help.\n\n<<<<<<< SEARCH\n{line}\n=======\n{new_line}\n>>>>>>> REPLACE\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_edits_change_one_number_inside_the_region() {
        let prompt = "intro 12 `# EVOLVE-BLOCK-START` 3\n```\n# EVOLVE-BLOCK-START\ndef f(n=100):\n    return n * 2.5\n# EVOLVE-BLOCK-END\n```\n";
        let edit = good_edit(prompt, 3);
        assert!(edit.contains("<<<<<<< SEARCH\n"), "{edit}");
        let program =
            "# EVOLVE-BLOCK-START\ndef f(n=100):\n    return n * 2.5\n# EVOLVE-BLOCK-END\n";
        let applied = evolve_core::diff::apply_reply(program, &edit).expect("edit applies");
        assert_ne!(applied.program, program);
    }

    #[test]
    fn numbers_inside_names_are_not_numbers() {
        assert_eq!(numbers("x2 = 10 + y_3"), vec![5..7]);
    }
}
