//! Population costs at 1 000, 100 000 and 1 000 000 stored programs: parent
//! selection, inspiration sampling, insertion, the novelty check, and the
//! rebuild on resume. Selection and insertion must not grow with the size.
//!
//! `cargo bench -p evolve-benches --bench population`; set
//! `EVOLVE_BENCH_SIZES=1000,100000` to skip the slow million.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use evolve_benches::{build_store, code, config, program};
use evolve_core::SelectionStrategy;
use evolve_store::Population;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn sizes() -> Vec<u64> {
    std::env::var("EVOLVE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000])
}

/// A population that has seen `n` programs, built by inserting them.
fn population(n: u64) -> Population {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut pop = Population::new(config());
    for i in 0..n {
        let p = program(i, &mut rng);
        if let Some(parent) = p.parent {
            pop.note_child(parent);
        }
        if i == 0 {
            pop.seed(p);
        } else {
            pop.insert(Arc::new(p));
        }
    }
    pop
}

fn bench_population(c: &mut Criterion) {
    let mut group = c.benchmark_group("population");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    for n in sizes() {
        let mut pop = population(n);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for strategy in [
            SelectionStrategy::Weighted,
            SelectionStrategy::PowerLaw,
            SelectionStrategy::Tournament,
        ] {
            let mut selecting = pop.clone();
            let mut config = selecting.config().clone();
            config.selection.strategy = strategy;
            selecting = rebuild_with(selecting, config);
            group.bench_with_input(
                BenchmarkId::new(format!("select_parent/{}", strategy.as_str()), n),
                &n,
                |b, _| b.iter(|| selecting.select_parent(black_box(1), &mut rng)),
            );
        }
        let parent = pop.select_parent(1, &mut rng).expect("a parent");
        group.bench_with_input(BenchmarkId::new("inspirations", n), &n, |b, _| {
            b.iter(|| pop.inspirations(black_box(1), &parent, 4, &mut rng))
        });
        let probe = code(n + 17);
        group.bench_with_input(BenchmarkId::new("novelty_check", n), &n, |b, _| {
            b.iter(|| pop.near_duplicate(black_box(1), black_box(&probe)))
        });
        let mut next = n;
        group.bench_with_input(BenchmarkId::new("insert", n), &n, |b, _| {
            b.iter(|| {
                let p = program(next, &mut rng);
                next += 1;
                pop.insert(Arc::new(p))
            })
        });
    }
    group.finish();
}

/// The same members under another configuration (selection strategy only).
fn rebuild_with(pop: Population, config: evolve_store::PopulationConfig) -> Population {
    let mut fresh = Population::new(config);
    for island in 0..pop.island_count() {
        for member in pop.members(island) {
            fresh.insert(member.clone());
        }
    }
    fresh
}

fn bench_rebuild(c: &mut Criterion) {
    let mut group = c.benchmark_group("resume");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for n in sizes() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = build_store(dir.path(), n).expect("a bench store");
        group.bench_with_input(BenchmarkId::new("rebuild", n), &n, |b, _| {
            b.iter(|| store.rebuild(config()).expect("rebuild"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_population, bench_rebuild);
criterion_main!(benches);
