//! Per-candidate hot paths outside the population: prompt rendering, applying
//! a model reply, MinHash signatures and committing one candidate to SQLite.
//!
//! `cargo bench -p evolve-benches --bench hot_paths`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use evolve_benches::{code, program, record};
use evolve_core::{ProblemSpec, apply_model_reply};
use evolve_llm::prompt::{PromptInput, Prompts, RequestKind};
use evolve_store::novelty::Signature;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const PROBLEM_TOML: &str = "name = \"bench\"\ninitial_program = \"initial.py\"\n\n[evaluator]\ncommand = [\"./noop.sh\"]\nobjective = \"score\"\ndirection = \"minimize\"\n";

/// A reply like the stand-in model's: one sentence and one SEARCH/REPLACE block.
fn reply() -> String {
    "Changing the scale should help.\n\n<<<<<<< SEARCH\n    scale = 17.25\n=======\n    scale = 17.5\n>>>>>>> REPLACE\n".into()
}

fn bench_prompt(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let written = std::fs::write(dir.path().join("problem.toml"), PROBLEM_TOML)
        .and_then(|()| std::fs::write(dir.path().join("initial.py"), code(0)))
        .and_then(|()| std::fs::write(dir.path().join("noop.sh"), "#!/bin/sh\n"));
    let spec = written
        .map_err(|e| e.to_string())
        .and_then(|()| ProblemSpec::load(dir.path()).map_err(|e| e.to_string()));
    let prompts = spec.and_then(|spec| Prompts::load(&spec).map_err(|e| e.to_string()));
    let prompts = match prompts {
        Ok(prompts) => prompts,
        Err(error) => panic!("cannot prepare the prompt bench: {error}"),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let parent = program(17, &mut rng);
    let inspirations: Vec<Arc<_>> = (1..3).map(|i| Arc::new(program(i, &mut rng))).collect();
    c.bench_function("prompt/render_diff_with_2_inspirations", |b| {
        b.iter(|| {
            prompts.render(black_box(&PromptInput {
                kind: RequestKind::Diff,
                parent: &parent,
                other: None,
                inspirations: &inspirations,
                previous_failure: None,
            }))
        })
    });
}

fn bench_reply(c: &mut Criterion) {
    let program = code(17);
    let reply = reply();
    assert!(apply_model_reply(&program, &reply).is_ok());
    c.bench_function("reply/apply_search_replace", |b| {
        b.iter(|| apply_model_reply(black_box(&program), black_box(&reply)))
    });
}

fn bench_minhash(c: &mut Criterion) {
    let program = code(17);
    c.bench_function("minhash/signature_of_250_bytes", |b| {
        b.iter(|| Signature::of(black_box(&program)))
    });
}

fn bench_store_insert(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let store = match evolve_benches::build_store(dir.path(), 1_000) {
        Ok(store) => store,
        Err(error) => panic!("cannot build the store: {error}"),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut next = 1_000;
    let mut group = c.benchmark_group("store");
    group.sample_size(30);
    // One committed (fsynced) row per candidate, as the run loop does.
    group.bench_function("insert_one_committed", |b| {
        b.iter(|| {
            next += 1;
            store.insert(&record(&program(next, &mut rng), next))
        })
    });
    // A model-driven candidate: its model call and its row, committed apart
    // (as before) or in one transaction.
    let call = evolve_core::ModelCall {
        prompt: "p".repeat(2_000),
        reply: reply(),
        ..evolve_core::ModelCall::default()
    };
    group.bench_function("commit_call_then_candidate", |b| {
        b.iter(|| {
            next += 1;
            store
                .insert_model_calls(std::slice::from_ref(&call))
                .and_then(|()| store.insert(&record(&program(next, &mut rng), next)))
        })
    });
    group.bench_function("commit_candidate_with_call", |b| {
        b.iter(|| {
            next += 1;
            store.insert_with_calls(
                &record(&program(next, &mut rng), next),
                std::slice::from_ref(&call),
            )
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_prompt,
    bench_reply,
    bench_minhash,
    bench_store_insert
);
criterion_main!(benches);
