//! Language models as evolve mutators.
//!
//! [`LlmMutator`] implements [`evolve_mutate::Mutator`]: each request picks a
//! kind (SEARCH/REPLACE diff, full rewrite of the region, or crossover of two
//! parents) and a model from a weighted ensemble, renders a prompt from
//! minijinja templates, calls the model over HTTP (OpenAI-compatible or
//! Anthropic) with deadlines, retries and a concurrency limit, and turns the
//! reply into a program with [`evolve_core::apply_model_reply`]. Every attempt
//! is kept as an [`evolve_core::ModelCall`] for the run's store; keys are
//! redacted from everything kept. [`ReplayMutator`] serves a recorded run's
//! replies again without a network.

pub mod budget;
pub mod client;
mod mutator;
pub mod prompt;
mod replay;

pub use mutator::{LlmMutator, ensemble_name};
pub use replay::ReplayMutator;

use thiserror::Error;

/// A model configuration that cannot be used.
#[derive(Debug, Error)]
pub enum LlmError {
    /// No `[[models]]` entry names a real model.
    #[error("no language model is configured")]
    NoModels,
    /// The `local` provider is the offline mutator, not a model client.
    #[error("{0} is the offline mutator, not a language model")]
    NotAModel(String),
    /// The key's environment variable is unset or empty.
    #[error("{model}: the API key is missing: set the environment variable {env}")]
    MissingKey {
        /// `provider:model`.
        model: String,
        /// The variable that should hold the key.
        env: String,
    },
    /// The server refused the key.
    #[error("{model}: the API key was rejected: {message}")]
    KeyRejected {
        /// `provider:model`.
        model: String,
        /// The server's explanation (key redacted).
        message: String,
    },
    /// The endpoint could not be reached.
    #[error("{model}: cannot reach {url}: {message}")]
    Unreachable {
        /// `provider:model`.
        model: String,
        /// The URL tried.
        url: String,
        /// The connection error.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// A prompt template is broken.
    #[error("prompt template {origin}: {message}")]
    Template {
        /// The template file (or built-in name).
        origin: String,
        /// What is wrong, with the line when known.
        message: String,
    },
}

/// Installs rustls' ring crypto provider once per process (reqwest is built
/// without a default provider to keep builds fast).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
