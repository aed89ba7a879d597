//! One run: create or reopen it, then drive iterations until the target.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evolve_core::{EvalOutcome, ModelCall, ProblemSpec, Program, code_hash};
use evolve_eval::Evaluator;
use evolve_mutate::{MutateError, MutationRequest, Mutator, OfflineMutator, Proposal};
use evolve_store::{
    Counts, DB_FILE, MIGRATION, ModelCallTotals, Population, PopulationConfig, RESET, Record,
    RunMeta, Status, Store,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;

use crate::EngineError;
use crate::profile::{RunProfile, peak_rss_kib, process_cpu, thread_cpu, timed};

/// Inspirations handed to the mutator per request.
const INSPIRATIONS: usize = 2;

/// Knobs of one invocation (not part of the stored run identity).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Evaluations in flight at once (proposals are bounded by the mutator).
    pub jobs: usize,
}

/// Progress reports for the user interface.
#[derive(Debug, Clone)]
pub enum Event {
    /// The loop starts with `done` of `target` iterations already recorded.
    Started {
        /// Iterations already recorded.
        done: u64,
        /// The run's iteration target.
        target: u64,
        /// Best objective so far.
        best: Option<f64>,
    },
    /// One iteration finished.
    Iteration {
        /// Its number.
        iteration: u64,
        /// What became of its candidate.
        status: Status,
        /// Its objective when scored.
        score: Option<f64>,
        /// Whether it is the new best of the run.
        improved: bool,
        /// The best objective so far.
        best: Option<f64>,
    },
}

/// The outcome of a whole invocation, for the final report.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The best program of the run.
    pub best: Option<Program>,
    /// The initial program's objective.
    pub initial_score: Option<f64>,
    /// Totals by status and reason.
    pub counts: Counts,
    /// Iterations recorded so far.
    pub iterations_done: u64,
    /// The run's iteration target.
    pub target: u64,
    /// Whether the loop stopped early because it was asked to.
    pub interrupted: bool,
    /// Why the run stopped before its target on its own (budget, failing models).
    pub stop_reason: Option<String>,
    /// Totals over the run's model calls (empty without models).
    pub model_calls: ModelCallTotals,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Where this invocation's time went.
    pub profile: RunProfile,
}

/// A run: its store, population, evaluator and mutator.
pub struct Run {
    store: Store,
    population: Population,
    spec: ProblemSpec,
    target: u64,
    evaluator: Arc<Evaluator>,
    mutator: Arc<dyn Mutator>,
    run_dir: PathBuf,
    /// Held for the life of the run; see [`lock_run`].
    _lock: std::fs::File,
    profile: RunProfile,
    /// Model calls not yet on disk; they go with the next committed candidate.
    unsaved_calls: Vec<ModelCall>,
}

/// What travels with an iteration between its phases.
struct Pending {
    iteration: u64,
    parent: Arc<Program>,
    propose_time: Duration,
}

impl Pending {
    /// The propose phase's duration as stored with the candidate.
    fn propose_ms(&self) -> u64 {
        self.propose_time.as_millis() as u64
    }
}

enum Phase {
    Proposed(Pending, Result<Proposal, MutateError>),
    Evaluated(Pending, Proposal, EvalOutcome, Duration),
}

/// The lock file that keeps two processes from driving one run at once.
const LOCK_FILE: &str = "evolve.lock";

/// Takes the run's exclusive lock; the OS releases it when the process ends,
/// so a killed run never leaves a stale lock behind.
fn lock_run(run_dir: &Path) -> Result<std::fs::File, EngineError> {
    let path = run_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| EngineError::RunDir {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(EngineError::RunInUse(run_dir.to_path_buf(), LOCK_FILE))
        }
        Err(std::fs::TryLockError::Error(source)) => Err(EngineError::RunDir { path, source }),
    }
}

/// A seed for one iteration, derived from the run seed alone, so that a
/// resumed run draws the same numbers an uninterrupted one would have.
fn iteration_seed(run_seed: u64, iteration: u64) -> u64 {
    fn splitmix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    splitmix(run_seed ^ splitmix(iteration))
}

impl Run {
    /// Creates a new run in `run_dir` for `spec`, aiming at `target` iterations.
    pub fn create(spec: ProblemSpec, run_dir: &Path, target: u64) -> Result<Run, EngineError> {
        let started = Instant::now();
        std::fs::create_dir_all(run_dir).map_err(|source| EngineError::RunDir {
            path: run_dir.into(),
            source,
        })?;
        let lock = lock_run(run_dir)?;
        let store = Store::create(
            &run_dir.join(DB_FILE),
            &RunMeta {
                spec: spec.clone(),
                target_iterations: target,
            },
        )?;
        Run::assemble(store, spec, target, run_dir, lock, started)
    }

    /// Reopens the run in `run_dir`, optionally with a new iteration target,
    /// which may not fall below an iteration already recorded.
    pub fn open(run_dir: &Path, target: Option<u64>) -> Result<Run, EngineError> {
        let started = Instant::now();
        let lock = lock_run(run_dir)?;
        let store = Store::open(&run_dir.join(DB_FILE))?;
        let meta = store.run_meta()?;
        let target = target.unwrap_or(meta.target_iterations);
        if target != meta.target_iterations {
            let done = store.completed_iterations()?.last().copied().unwrap_or(0);
            if target < done {
                return Err(EngineError::TargetTooLow { done });
            }
            store.set_target_iterations(target)?;
        }
        Run::assemble(store, meta.spec, target, run_dir, lock, started)
    }

    fn assemble(
        store: Store,
        spec: ProblemSpec,
        target: u64,
        run_dir: &Path,
        lock: std::fs::File,
        started: Instant,
    ) -> Result<Run, EngineError> {
        let population = store.rebuild(PopulationConfig::from_spec(&spec))?;
        let evaluator = Arc::new(Evaluator::new(&spec)?);
        let mutator = Arc::new(OfflineMutator::for_extension(spec.program_extension()));
        Ok(Run {
            store,
            population,
            spec,
            target,
            evaluator,
            mutator,
            run_dir: run_dir.to_path_buf(),
            _lock: lock,
            profile: RunProfile {
                startup: started.elapsed(),
                startup_cpu: process_cpu(),
                ..RunProfile::default()
            },
            unsaved_calls: Vec::new(),
        })
    }

    /// Replaces the source of candidates (the offline mutator by default).
    pub fn set_mutator(&mut self, mutator: Arc<dyn Mutator>) {
        self.mutator = mutator;
    }

    /// The problem this run evolves.
    pub fn spec(&self) -> &ProblemSpec {
        &self.spec
    }

    /// The run's store, for reports.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Drives the run to its target, or until `stop` resolves (Ctrl-C).
    ///
    /// Every finished candidate is committed to the store before it counts;
    /// work in flight when stopping is dropped (its processes killed) and
    /// redone on resume.
    pub async fn execute(
        &mut self,
        options: &RunOptions,
        mut on_event: impl FnMut(&Event),
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Summary, EngineError> {
        self.ensure_initial().await?;
        let loop_started = Instant::now();
        let loop_cpu = process_cpu();
        let loop_thread_cpu = thread_cpu();
        let completed = self.store.completed_iterations()?;
        let mut todo: BTreeSet<u64> = (1..=self.target)
            .filter(|i| !completed.contains(i))
            .collect();
        let done = self.target - todo.len() as u64;
        on_event(&Event::Started {
            done,
            target: self.target,
            best: self.best_score(),
        });

        // Proposals (model calls) and evaluations are bounded separately; with
        // one of each the run is serial, hence deterministic for its seed.
        let jobs = options.jobs.max(1);
        let proposal_limit = self.mutator.concurrency().unwrap_or(jobs).max(1);
        let in_flight_limit = jobs + proposal_limit - 1;
        let mut tasks: JoinSet<Phase> = JoinSet::new();
        let mut proposing = 0usize;
        let mut evaluating = 0usize;
        let mut ready: VecDeque<(Pending, Proposal)> = VecDeque::new();
        let mut interrupted = false;
        tokio::pin!(stop);
        loop {
            while evaluating < jobs {
                let Some((pending, proposal)) = ready.pop_front() else {
                    break;
                };
                let evaluator = self.evaluator.clone();
                evaluating += 1;
                tasks.spawn(async move {
                    let started = Instant::now();
                    let outcome = evaluator.evaluate(&proposal.code).await;
                    Phase::Evaluated(pending, proposal, outcome, started.elapsed())
                });
            }
            while proposing < proposal_limit
                && proposing + evaluating + ready.len() < in_flight_limit
                && self.mutator.stop_reason().is_none()
            {
                let Some(iteration) = todo.pop_first() else {
                    break;
                };
                self.dispatch(iteration, &mut tasks)?;
                proposing += 1;
            }
            if proposing + evaluating == 0 {
                break;
            }
            let phase = tokio::select! {
                biased;
                () = &mut stop => {
                    interrupted = true;
                    tasks.abort_all();
                    break;
                }
                joined = tasks.join_next() => match joined {
                    Some(Ok(phase)) => phase,
                    Some(Err(error)) => {
                        // Which phase panicked is unknown; recount from the set.
                        tracing::error!("an iteration task panicked: {error}");
                        let running = tasks.len();
                        evaluating = evaluating.min(running);
                        proposing = running - evaluating;
                        continue;
                    }
                    None => break,
                },
            };
            match phase {
                Phase::Proposed(pending, proposal) => {
                    proposing -= 1;
                    self.profile.model_wait += pending.propose_time;
                    self.unsaved_calls.extend(self.mutator.take_calls());
                    if let Err(MutateError::Stopped(reason)) = &proposal {
                        tracing::info!(iteration = pending.iteration, "not proposed: {reason}");
                        continue;
                    }
                    match self.screen(&pending, proposal)? {
                        Some(proposal) => ready.push_back((pending, proposal)),
                        None => {
                            self.profile.candidates += 1;
                            on_event(&Event::Iteration {
                                iteration: pending.iteration,
                                status: Status::Rejected,
                                score: None,
                                improved: false,
                                best: self.best_score(),
                            })
                        }
                    }
                }
                Phase::Evaluated(pending, proposal, outcome, took) => {
                    evaluating -= 1;
                    self.profile.candidates += 1;
                    self.profile.evaluations += 1;
                    self.profile.evaluating += took;
                    let event = self.record(&pending, proposal, outcome)?;
                    on_event(&event);
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        self.unsaved_calls.extend(self.mutator.take_calls());
        self.store
            .insert_model_calls(&std::mem::take(&mut self.unsaved_calls))?;
        self.profile.wall = loop_started.elapsed();
        self.profile.engine_cpu = process_cpu().saturating_sub(loop_cpu);
        self.profile.loop_cpu = thread_cpu().saturating_sub(loop_thread_cpu);
        self.profile.peak_rss_kib = peak_rss_kib();
        self.summary(interrupted)
    }

    fn best_score(&self) -> Option<f64> {
        self.population.best().map(|p| p.score)
    }

    /// Evaluates and records the initial program if this run has none yet.
    async fn ensure_initial(&mut self) -> Result<(), EngineError> {
        match self.store.initial()? {
            Some((Status::Scored, _)) => return Ok(()),
            Some(_) => {
                return Err(EngineError::InitialFailed(
                    "see the run's first record".into(),
                ));
            }
            None => {}
        }
        let code = std::fs::read_to_string(&self.spec.initial_program).map_err(|source| {
            EngineError::RunDir {
                path: self.spec.initial_program.clone(),
                source,
            }
        })?;
        let outcome = self.evaluator.evaluate(&code).await;
        let failure = outcome.result.as_ref().err().map(ToString::to_string);
        let record = record_of(0, None, 0, 0, code, "initial", "initial", outcome);
        let id = self.store.insert(&record)?;
        if let Some(failure) = failure {
            return Err(EngineError::InitialFailed(failure));
        }
        self.population.seed(program_of(id, &record));
        Ok(())
    }

    /// Chooses a parent for `iteration` and starts its propose phase.
    fn dispatch(&mut self, iteration: u64, tasks: &mut JoinSet<Phase>) -> Result<(), EngineError> {
        let evolution = &self.spec.evolution;
        let (migration_interval, reset_interval, seed) = (
            evolution.migration_interval,
            evolution.reset_interval,
            evolution.seed,
        );
        if migration_interval > 0 && iteration % migration_interval == 0 {
            self.migrate(iteration)?;
        }
        if reset_interval > 0 && iteration % reset_interval == 0 {
            self.reset_islands(iteration)?;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(iteration_seed(seed, iteration));
        let island = (iteration % self.population.island_count() as u64) as usize;
        let Some(parent) = self.population.select_parent(island, &mut rng) else {
            return Err(EngineError::InitialFailed("the population is empty".into()));
        };
        let inspirations =
            self.population
                .inspirations(parent.island as usize, &parent, INSPIRATIONS, &mut rng);
        let request = MutationRequest {
            parent: parent.clone(),
            inspirations,
            seed: rng.random(),
            iteration,
        };
        let mutator = self.mutator.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let proposal = mutator.propose(&request).await;
            let propose_time = started.elapsed();
            Phase::Proposed(
                Pending {
                    iteration,
                    parent,
                    propose_time,
                },
                proposal,
            )
        });
        Ok(())
    }

    /// Copies island elites along the migration topology, once per iteration
    /// even across resumes.
    fn migrate(&mut self, iteration: u64) -> Result<(), EngineError> {
        if self.store.upkeep_done(iteration, MIGRATION)? {
            return Ok(());
        }
        let evolution = &self.spec.evolution;
        let mut rng =
            ChaCha8Rng::seed_from_u64(iteration_seed(evolution.seed ^ UPKEEP_SALT, iteration));
        let plan = self.population.migrants(
            evolution.migration_topology,
            evolution.migration_count,
            &mut rng,
        );
        let copies: Vec<Record> = plan
            .iter()
            .map(|(program, to)| copy_record(iteration, program, *to, MIGRATION))
            .collect();
        let ids = self.store.record_upkeep(iteration, MIGRATION, &copies)?;
        for (id, record) in ids.into_iter().zip(&copies) {
            self.population.insert(Arc::new(program_of(id, record)));
        }
        Ok(())
    }

    /// Re-seeds the weaker half of the islands from the best of the others
    /// (FunSearch's island reset), once per iteration even across resumes.
    fn reset_islands(&mut self, iteration: u64) -> Result<(), EngineError> {
        if self.store.upkeep_done(iteration, RESET)? {
            return Ok(());
        }
        let seed = self.spec.evolution.seed ^ UPKEEP_SALT.rotate_left(17);
        let mut rng = ChaCha8Rng::seed_from_u64(iteration_seed(seed, iteration));
        let copies: Vec<Record> = self
            .population
            .reset_plan(&mut rng)
            .iter()
            .map(|(island, donor)| copy_record(iteration, donor, *island, RESET))
            .collect();
        let ids = self.store.record_upkeep(iteration, RESET, &copies)?;
        for (id, record) in ids.into_iter().zip(&copies) {
            self.population.reset_island(record.island as usize);
            self.population.insert(Arc::new(program_of(id, record)));
        }
        Ok(())
    }

    /// Records proposals that will not be evaluated; passes on the rest.
    fn screen(
        &mut self,
        pending: &Pending,
        proposal: Result<Proposal, MutateError>,
    ) -> Result<Option<Proposal>, EngineError> {
        let island = pending.parent.island as usize;
        let (kind, detail, code, source) = match proposal {
            Ok(proposal) if self.population.was_evaluated(code_hash(&proposal.code)) => (
                "duplicate",
                "identical code was already evaluated".to_string(),
                proposal.code,
                proposal.source,
            ),
            Ok(proposal) => match self.population.near_duplicate(island, &proposal.code) {
                None => return Ok(Some(proposal)),
                Some(near) => (
                    "near_duplicate",
                    format!(
                        "estimated {:.2} similar to program {} on island {island}",
                        near.similarity, near.id
                    ),
                    proposal.code,
                    proposal.source,
                ),
            },
            Err(error) => {
                let kind = match error {
                    MutateError::NoChange(_) => "no_change",
                    MutateError::Unusable(_) => "unusable_reply",
                    MutateError::Source(_) => "source_error",
                    MutateError::Stopped(_) => "stopped",
                };
                (
                    kind,
                    error.to_string(),
                    pending.parent.code.clone(),
                    self.mutator.name().to_string(),
                )
            }
        };
        let parent = &pending.parent;
        let record = Record {
            iteration: pending.iteration,
            parent: Some(parent.id),
            island: parent.island,
            generation: parent.generation + 1,
            status: Status::Rejected,
            score: None,
            code,
            metrics: Default::default(),
            artifacts: Default::default(),
            failure_kind: Some(kind.into()),
            failure_detail: Some(detail),
            mutation: "rejected".into(),
            source,
            eval_ms: 0,
            propose_ms: pending.propose_ms(),
        };
        self.commit(&record)?;
        Ok(None)
    }

    /// Commits an evaluated candidate and adds it to the population.
    fn record(
        &mut self,
        pending: &Pending,
        proposal: Proposal,
        outcome: EvalOutcome,
    ) -> Result<Event, EngineError> {
        let parent = &pending.parent;
        let previous_best = self.best_score();
        let record = Record {
            propose_ms: pending.propose_ms(),
            ..record_of(
                pending.iteration,
                Some(parent.id),
                parent.island,
                parent.generation + 1,
                proposal.code,
                &proposal.kind,
                &proposal.source,
                outcome,
            )
        };
        let id = self.commit(&record)?;
        self.population.note_child(parent.id);
        let score = record.score;
        match score {
            Some(_) => {
                self.population.insert(Arc::new(program_of(id, &record)));
            }
            None => self.population.mark_evaluated(code_hash(&record.code)),
        }
        let improved = match (score, previous_best) {
            (Some(s), Some(b)) => self.spec.evaluator.direction.is_better(s, b),
            (Some(_), None) => true,
            _ => false,
        };
        Ok(Event::Iteration {
            iteration: pending.iteration,
            status: record.status,
            score,
            improved,
            best: self.best_score(),
        })
    }

    /// Commits a candidate together with the model calls made since the last one.
    fn commit(&mut self, record: &Record) -> Result<i64, EngineError> {
        let calls = std::mem::take(&mut self.unsaved_calls);
        let id = timed(&mut self.profile.store, || {
            self.store.insert_with_calls(record, &calls)
        })?;
        Ok(id)
    }

    fn summary(&self, interrupted: bool) -> Result<Summary, EngineError> {
        let completed = self.store.completed_iterations()?;
        Ok(Summary {
            best: self.population.best().map(|p| (**p).clone()),
            initial_score: self.store.initial()?.and_then(|(_, score)| score),
            counts: self.store.counts()?,
            iterations_done: completed
                .iter()
                .filter(|&&i| (1..=self.target).contains(&i))
                .count() as u64,
            target: self.target,
            interrupted,
            stop_reason: if interrupted {
                None
            } else {
                self.mutator.stop_reason()
            },
            model_calls: self.store.model_call_totals()?,
            run_dir: self.run_dir.clone(),
            profile: self.profile.clone(),
        })
    }
}

/// Salt separating the upkeep RNG streams from the iterations' own.
const UPKEEP_SALT: u64 = 0x6d69_6772_6174_6521;

/// The store row of a program copied to `island` by migration or reset.
fn copy_record(iteration: u64, program: &Program, island: u32, kind: &str) -> Record {
    Record {
        iteration,
        parent: Some(program.id),
        island,
        generation: program.generation,
        status: Status::Scored,
        score: Some(program.score),
        code: program.code.clone(),
        metrics: program.metrics.clone(),
        artifacts: program.artifacts.clone(),
        failure_kind: None,
        failure_detail: None,
        mutation: kind.into(),
        source: kind.into(),
        eval_ms: 0,
        propose_ms: 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn record_of(
    iteration: u64,
    parent: Option<i64>,
    island: u32,
    generation: u32,
    code: String,
    mutation: &str,
    source: &str,
    outcome: EvalOutcome,
) -> Record {
    let (status, score, failure_kind, failure_detail) = match outcome.result {
        Ok(score) => (Status::Scored, Some(score), None, None),
        Err(failure) => (
            Status::Failed,
            None,
            Some(failure.kind.as_str().to_string()),
            Some(failure.detail),
        ),
    };
    Record {
        iteration,
        parent,
        island,
        generation,
        status,
        score,
        code,
        metrics: outcome.metrics,
        artifacts: outcome.artifacts,
        failure_kind,
        failure_detail,
        mutation: mutation.into(),
        source: source.into(),
        eval_ms: outcome.elapsed_ms,
        propose_ms: 0,
    }
}

fn program_of(id: i64, record: &Record) -> Program {
    Program {
        id,
        parent: record.parent,
        island: record.island,
        generation: record.generation,
        code: record.code.clone(),
        score: record.score.unwrap_or(f64::NAN),
        metrics: record.metrics.clone(),
        artifacts: record.artifacts.clone(),
    }
}
