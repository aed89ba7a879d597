//! The problem folder's `problem.toml`: parsing, validation, and the resolved spec.
//!
//! Every error names the file, and where TOML parsing is involved the line,
//! column and key at fault. Unknown keys are errors, never silently ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::block::SourceFile;
use crate::evolution::{FeatureSpec, MigrationTopology, ObjectiveSpec, SelectionStrategy};
use crate::models::{LlmSpec, ModelSpec};
use crate::outcome::Direction;
use crate::sandbox_spec::{self, RawStage, SandboxSpec, StageSpec};

/// The file name of a problem's spec inside its folder.
pub const SPEC_FILE: &str = "problem.toml";

/// A problem folder that cannot be used, with the place at fault.
#[derive(Debug, Error)]
pub enum SpecError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `problem.toml` is not valid TOML or has a wrong, missing or unknown key.
    #[error("{path}:{line}:{column}: {}{message}", key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Toml {
        /// The spec file.
        path: PathBuf,
        /// 1-based line of the fault.
        line: usize,
        /// 1-based column of the fault.
        column: usize,
        /// The dotted key at fault, when it could be told.
        key: Option<String>,
        /// The parser's explanation.
        message: String,
    },
    /// A key has a value that parses but cannot be used.
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        /// The spec file.
        path: PathBuf,
        /// The dotted key at fault.
        key: String,
        /// Why the value is unusable.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProblem {
    name: String,
    initial_program: PathBuf,
    description_file: Option<PathBuf>,
    description: Option<String>,
    evaluator: RawEvaluator,
    #[serde(default)]
    evolution: EvolutionSpec,
    #[serde(default)]
    models: Vec<ModelSpec>,
    #[serde(default)]
    llm: LlmSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvaluator {
    python: Option<PathBuf>,
    command: Option<Vec<String>>,
    #[serde(default = "default_timeout_s")]
    timeout_s: f64,
    objective: String,
    direction: Direction,
    #[serde(default)]
    env: Vec<String>,
    cpu_s: Option<u64>,
    memory_mb: Option<u64>,
    file_size_mb: Option<u64>,
    open_files: Option<u64>,
    max_processes: Option<u64>,
    output_kb: Option<u64>,
    kill_grace_s: Option<f64>,
    allow_network: Option<bool>,
    restrict_writes: Option<bool>,
    sandbox: Option<sandbox_spec::SandboxMode>,
    warm_workers: Option<bool>,
    #[serde(default)]
    stages: Vec<RawStage>,
}

fn default_timeout_s() -> f64 {
    60.0
}

/// How a candidate is scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluatorKind {
    /// A Python file with `evaluate(program_path)`, run through evolve's harness.
    Python {
        /// Absolute path of the evaluator file.
        script: PathBuf,
    },
    /// Any executable; the candidate's path is appended to `argv`.
    Command {
        /// Program and arguments; words naming files of the problem folder are absolute.
        argv: Vec<String>,
    },
}

/// The resolved `[evaluator]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluatorSpec {
    /// Python harness or plain command.
    pub kind: EvaluatorKind,
    /// Wall-clock limit for one evaluation, in seconds.
    pub timeout_s: f64,
    /// The metric evolution optimises.
    pub objective: String,
    /// Whether the objective should rise or fall.
    pub direction: Direction,
    /// Extra environment variable names passed through to the evaluator.
    pub env: Vec<String>,
    /// Resource limits and isolation layers.
    #[serde(default)]
    pub sandbox: SandboxSpec,
    /// Cascade stages; empty means one plain evaluation.
    #[serde(default)]
    pub stages: Vec<StageSpec>,
}

impl EvaluatorSpec {
    /// An evaluator with default timeout, sandbox and no stages.
    pub fn new(kind: EvaluatorKind, objective: &str, direction: Direction) -> EvaluatorSpec {
        EvaluatorSpec {
            kind,
            timeout_s: default_timeout_s(),
            objective: objective.into(),
            direction,
            env: Vec::new(),
            sandbox: SandboxSpec::default(),
            stages: Vec::new(),
        }
    }
}

/// The `[evolution]` table: every key optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvolutionSpec {
    /// Candidates to generate after the initial program.
    pub iterations: u64,
    /// Number of islands evolving separately.
    pub islands: usize,
    /// The run seed all randomness flows from.
    pub seed: u64,
    /// Every this many iterations, each island's best migrates to the next island.
    pub migration_interval: u64,
    /// How many programs each island keeps as parents and inspirations.
    pub archive_size: usize,
    /// Probability of taking the island's best as parent before applying `selection`.
    pub exploitation: f64,
    /// How parents are drawn from their island.
    pub selection: SelectionStrategy,
    /// Members drawn per tournament (`selection = "tournament"`).
    pub tournament_size: usize,
    /// Exponent of `rank^-exponent` (`selection = "power-law"`).
    pub power_law_exponent: f64,
    /// Which islands receive migrants.
    pub migration_topology: MigrationTopology,
    /// How many of an island's best programs migrate each time.
    pub migration_count: usize,
    /// Every this many iterations the weaker half of the islands is re-seeded (0: never).
    pub reset_interval: u64,
    /// Candidates at least this similar (estimated Jaccard) to a program on their island are not evaluated.
    pub novelty_threshold: Option<f64>,
    /// MAP-Elites dimensions; none means one cell per island.
    pub features: Vec<FeatureSpec>,
    /// Objectives for Pareto selection; empty means the evaluator's objective alone.
    pub objectives: Vec<ObjectiveSpec>,
    /// Evaluations in flight at once; none means one per CPU core. `evolve run
    /// --jobs` sets it, so `evolve resume` keeps the run's choice.
    pub jobs: Option<usize>,
}

impl Default for EvolutionSpec {
    fn default() -> EvolutionSpec {
        EvolutionSpec {
            iterations: 300,
            islands: 4,
            seed: 0,
            migration_interval: 25,
            archive_size: 40,
            exploitation: 0.0,
            selection: SelectionStrategy::default(),
            tournament_size: 3,
            power_law_exponent: 1.0,
            migration_topology: MigrationTopology::default(),
            migration_count: 1,
            reset_interval: 0,
            novelty_threshold: None,
            features: Vec::new(),
            objectives: Vec::new(),
            jobs: None,
        }
    }
}

/// A validated problem folder, with every path made absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemSpec {
    /// The problem's name.
    pub name: String,
    /// The absolute problem folder.
    pub dir: PathBuf,
    /// The absolute path of the starting program.
    pub initial_program: PathBuf,
    /// The problem statement (from `description` or `description_file`).
    pub description: String,
    /// How candidates are scored.
    pub evaluator: EvaluatorSpec,
    /// Evolution settings.
    pub evolution: EvolutionSpec,
    /// Language models proposing candidates (none: the offline mutator).
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    /// Prompt, request mix and budget settings for the models.
    #[serde(default)]
    pub llm: LlmSpec,
}

impl ProblemSpec {
    /// Reads and validates `<dir>/problem.toml` and the files it names.
    pub fn load(dir: &Path) -> Result<ProblemSpec, SpecError> {
        let dir = std::path::absolute(dir).map_err(|source| SpecError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(SPEC_FILE);
        let text = read(&path)?;
        let raw: RawProblem = toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))?;
        let invalid = |key: &str, message: String| SpecError::Invalid {
            path: path.clone(),
            key: key.into(),
            message,
        };
        let existing = |key: &str, file: &Path| {
            let full = dir.join(file);
            if full.is_file() {
                Ok(full)
            } else {
                Err(invalid(
                    key,
                    format!("file {} does not exist", full.display()),
                ))
            }
        };

        if raw.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty".into()));
        }
        let initial_program = existing("initial_program", &raw.initial_program)?;
        let initial_text = read(&initial_program)?;
        SourceFile::parse(&initial_text).map_err(|e| {
            invalid(
                "initial_program",
                format!("{}: {e}", initial_program.display()),
            )
        })?;

        let description = match (raw.description, raw.description_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "description",
                    "give either `description` or `description_file`, not both".into(),
                ));
            }
            (Some(text), None) => text,
            (None, Some(file)) => read(&existing("description_file", &file)?)?,
            (None, None) => String::new(),
        };

        let ev = raw.evaluator;
        let kind = match (ev.python, ev.command) {
            (Some(script), None) => EvaluatorKind::Python {
                script: existing("evaluator.python", &script)?,
            },
            (None, Some(argv)) => {
                let Some(program) = argv.first() else {
                    return Err(invalid("evaluator.command", "must name a program".into()));
                };
                if program.contains('/') && Path::new(program).is_relative() {
                    existing("evaluator.command", Path::new(program))?;
                }
                // Evaluators run in a private temp dir, so words naming files of
                // the problem folder (`./score.sh`, `score.py`) are made absolute.
                let argv = argv
                    .iter()
                    .map(|word| {
                        let local = dir.join(word);
                        let names_file = !word.starts_with('-')
                            && Path::new(word).is_relative()
                            && local.is_file();
                        if names_file {
                            local.display().to_string()
                        } else {
                            word.clone()
                        }
                    })
                    .collect();
                EvaluatorKind::Command { argv }
            }
            _ => {
                return Err(invalid(
                    "evaluator",
                    "set exactly one of `python` or `command`".into(),
                ));
            }
        };
        if !(ev.timeout_s.is_finite() && ev.timeout_s > 0.0) {
            return Err(invalid(
                "evaluator.timeout_s",
                format!("must be a positive number of seconds, got {}", ev.timeout_s),
            ));
        }
        if ev.objective.trim().is_empty() {
            return Err(invalid("evaluator.objective", "must name a metric".into()));
        }
        let defaults = SandboxSpec::default();
        let sandbox = SandboxSpec {
            cpu_s: ev.cpu_s.unwrap_or(defaults.cpu_s),
            memory_mb: ev.memory_mb.unwrap_or(defaults.memory_mb),
            file_size_mb: ev.file_size_mb.unwrap_or(defaults.file_size_mb),
            open_files: ev.open_files.unwrap_or(defaults.open_files),
            max_processes: ev.max_processes.unwrap_or(defaults.max_processes),
            output_kb: ev.output_kb.unwrap_or(defaults.output_kb),
            kill_grace_s: ev.kill_grace_s.unwrap_or(defaults.kill_grace_s),
            allow_network: ev.allow_network.unwrap_or(defaults.allow_network),
            restrict_writes: ev.restrict_writes.unwrap_or(defaults.restrict_writes),
            mode: ev.sandbox.unwrap_or(defaults.mode),
            warm_workers: ev.warm_workers.unwrap_or(defaults.warm_workers),
        };
        sandbox_spec::validate(&sandbox).map_err(|(key, message)| invalid(key, message))?;
        let python = matches!(kind, EvaluatorKind::Python { .. });
        let mut stages = sandbox_spec::resolve_stages(ev.stages, ev.timeout_s, python)
            .map_err(|(key, message)| invalid(&key, message))?;
        for (index, stage) in stages.iter_mut().enumerate() {
            if let Some(program) = stage.command.as_mut().and_then(|argv| argv.first_mut())
                && program.contains('/')
                && Path::new(program.as_str()).is_relative()
            {
                let key = format!("evaluator.stages[{index}].command");
                *program = existing(&key, Path::new(program.as_str()))?
                    .display()
                    .to_string();
            }
        }

        let evolution = raw.evolution;
        if evolution.islands == 0 {
            return Err(invalid("evolution.islands", "must be at least 1".into()));
        }
        if evolution.jobs == Some(0) {
            return Err(invalid("evolution.jobs", "must be at least 1".into()));
        }
        if evolution.archive_size < 2 {
            return Err(invalid(
                "evolution.archive_size",
                "must be at least 2".into(),
            ));
        }
        if !(0.0..=1.0).contains(&evolution.exploitation) {
            return Err(invalid(
                "evolution.exploitation",
                "must lie between 0 and 1".into(),
            ));
        }
        crate::evolution::validate(
            &evolution.features,
            &evolution.objectives,
            evolution.novelty_threshold,
            evolution.tournament_size,
            evolution.power_law_exponent,
        )
        .map_err(|(key, message)| invalid(&key, message))?;

        for (index, model) in raw.models.iter().enumerate() {
            if let Some((key, message)) = model.problem() {
                return Err(invalid(&format!("models[{index}].{key}"), message));
            }
        }
        if let Some((key, message)) = raw.llm.problem() {
            return Err(invalid(&format!("llm.{key}"), message));
        }

        Ok(ProblemSpec {
            name: raw.name,
            dir,
            initial_program,
            description,
            evaluator: EvaluatorSpec {
                kind,
                timeout_s: ev.timeout_s,
                objective: ev.objective,
                direction: ev.direction,
                env: ev.env,
                sandbox,
                stages,
            },
            evolution,
            models: raw.models,
            llm: raw.llm,
        })
    }

    /// The file extension of the program (e.g. `py`), used to name candidate files.
    pub fn program_extension(&self) -> &str {
        self.initial_program
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("txt")
    }
}

fn read(path: &Path) -> Result<String, SpecError> {
    std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn toml_error(path: &Path, text: &str, error: &toml::de::Error) -> SpecError {
    let offset = error.span().map_or(0, |s| s.start).min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    SpecError::Toml {
        path: path.to_path_buf(),
        line,
        column,
        key: key_at(text, offset, error.message()),
        message: error.message().trim().to_string(),
    }
}

/// The dotted key at `offset`: the key named in the message, or the one on the
/// line, prefixed by the table that line belongs to.
fn key_at(text: &str, offset: usize, message: &str) -> Option<String> {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let named = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field `"));
    let local = match named {
        Some(name) => name.to_string(),
        None if line.contains('=') => line.split('=').next().unwrap_or("").trim().to_string(),
        None if line.trim_start().starts_with('[') => {
            return Some(
                line.trim()
                    .trim_matches(|c| c == '[' || c == ']')
                    .trim()
                    .to_string(),
            );
        }
        None => return None,
    };
    if line.trim_start().starts_with('[') && named.is_some() {
        let header = line.trim().trim_matches(|c| c == '[' || c == ']').trim();
        // `[evoluton]`: the header itself is the unknown key.
        if header == local || header.ends_with(&format!(".{local}")) {
            return Some(header.to_string());
        }
        return Some(format!("{header}.{local}"));
    }
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{local}"),
        _ => local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(spec: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("problem.toml"), spec).unwrap();
        std::fs::write(
            dir.path().join("initial.py"),
            "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("evaluator.py"),
            "def evaluate(p): return {'s': 1}\n",
        )
        .unwrap();
        dir
    }

    const GOOD: &str = "name = \"t\"\ninitial_program = \"initial.py\"\ndescription = \"d\"\n\n[evaluator]\npython = \"evaluator.py\"\nobjective = \"s\"\ndirection = \"maximize\"\n";

    #[test]
    fn a_good_spec_resolves_paths_and_defaults() {
        let dir = folder(GOOD);
        let spec = ProblemSpec::load(dir.path()).unwrap();
        assert_eq!(spec.name, "t");
        assert!(spec.initial_program.is_absolute());
        assert_eq!(spec.evaluator.timeout_s, 60.0);
        assert_eq!(spec.evolution, EvolutionSpec::default());
        assert_eq!(spec.program_extension(), "py");
    }

    fn error_of(spec: &str) -> String {
        let dir = folder(spec);
        ProblemSpec::load(dir.path()).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let msg = error_of(&format!("{GOOD}timeout = 3\n"));
        assert!(
            msg.contains("problem.toml:9:1: key `evaluator.timeout`"),
            "{msg}"
        );
        let msg = error_of(&format!("{GOOD}[evolution]\nislandz = 3\n"));
        assert!(
            msg.contains("problem.toml:10:1: key `evolution.islandz`"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_table_is_named_once() {
        let msg = error_of(&format!("{GOOD}[evoluton]\nislands = 3\n"));
        assert!(msg.contains("key `evoluton`:"), "{msg}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let msg = error_of(&format!("{GOOD}[evolution]\niterations = \"many\"\n"));
        assert!(
            msg.contains("problem.toml:10:") && msg.contains("key `evolution.iterations`"),
            "{msg}"
        );
    }

    #[test]
    fn missing_key_is_named() {
        let msg = error_of(&GOOD.replace("objective = \"s\"\n", ""));
        assert!(
            msg.contains("problem.toml") && msg.contains("objective"),
            "{msg}"
        );
    }

    #[test]
    fn missing_file_names_key_and_file() {
        let msg = error_of(&GOOD.replace("evaluator.py", "nope.py"));
        assert!(
            msg.contains("key `evaluator.python`") && msg.contains("nope.py"),
            "{msg}"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(
            error_of(&GOOD.replace("objective = \"s\"", "objective = \"s\"\ntimeout_s = -1"))
                .contains("evaluator.timeout_s")
        );
        assert!(
            error_of(&format!("{GOOD}[evolution]\nislands = 0\n")).contains("evolution.islands")
        );
        let both = GOOD.replace(
            "python = \"evaluator.py\"",
            "python = \"evaluator.py\"\ncommand = [\"x\"]",
        );
        assert!(error_of(&both).contains("exactly one"));
    }

    #[test]
    fn population_keys_parse_and_bad_ones_name_their_key() {
        let spec = format!(
            "{GOOD}[evolution]\nselection = \"power-law\"\nmigration_topology = \"all\"\nreset_interval = 50\nnovelty_threshold = 0.95\n\n[[evolution.features]]\nmetric = \"code_length\"\nmin = 0\nmax = 4000\nbins = 8\n\n[[evolution.objectives]]\nmetric = \"s\"\ndirection = \"maximize\"\n\n[[evolution.objectives]]\nmetric = \"time\"\ndirection = \"minimize\"\n"
        );
        let dir = folder(&spec);
        let evolution = ProblemSpec::load(dir.path()).unwrap().evolution;
        assert_eq!(evolution.selection, SelectionStrategy::PowerLaw);
        assert_eq!(evolution.migration_topology, MigrationTopology::All);
        assert_eq!(evolution.features[0].bins, 8);
        assert_eq!(evolution.objectives.len(), 2);
        assert_eq!(evolution.novelty_threshold, Some(0.95));

        let msg = error_of(&format!("{GOOD}[evolution]\nselection = \"greedy\"\n"));
        assert!(
            msg.contains("problem.toml:10:") && msg.contains("evolution.selection"),
            "{msg}"
        );
        let msg = error_of(&format!(
            "{GOOD}[[evolution.features]]\nmetric = \"x\"\nmin = 1\nmax = 1\n"
        ));
        assert!(msg.contains("evolution.features[0].max"), "{msg}");
        let msg = error_of(&format!(
            "{GOOD}[[evolution.features]]\nmetric = \"x\"\nmin = 0\nmax = 1\nbinz = 3\n"
        ));
        assert!(
            msg.contains("problem.toml:13:") && msg.contains("binz"),
            "{msg}"
        );
        let msg = error_of(&format!("{GOOD}[evolution]\nnovelty_threshold = 1.5\n"));
        assert!(msg.contains("evolution.novelty_threshold"), "{msg}");
    }
}
