//! The sandbox part of `[evaluator]`: resource limits, isolation layers,
//! warm workers and cascade stages.
//!
//! Every key is optional; the defaults keep a runaway candidate from hurting
//! the host without getting in the way of an ordinary evaluator.

use serde::{Deserialize, Serialize};

/// How strictly the requested isolation layers are enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// Use every layer this machine supports; warn once about the others.
    #[default]
    Auto,
    /// Refuse to evaluate when a requested layer is unavailable.
    Strict,
}

/// Resource limits applied to every evaluation (`0` turns a limit off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxSpec {
    /// CPU seconds (RLIMIT_CPU) for the evaluator's processes.
    pub cpu_s: u64,
    /// Address space in MiB (RLIMIT_AS).
    pub memory_mb: u64,
    /// Largest file the evaluator may write, in MiB (RLIMIT_FSIZE).
    pub file_size_mb: u64,
    /// Open file descriptors (RLIMIT_NOFILE).
    pub open_files: u64,
    /// Processes and threads at once (pids cgroup, and RLIMIT_NPROC for non-root users).
    pub max_processes: u64,
    /// Bytes of stdout and of stderr read, in KiB; more fails the candidate.
    pub output_kb: u64,
    /// Seconds between SIGTERM and SIGKILL when an evaluation is cut off.
    pub kill_grace_s: f64,
    /// Whether the evaluator may use the network.
    pub allow_network: bool,
    /// Whether writes are confined to the evaluation's temporary directory (Landlock).
    pub restrict_writes: bool,
    /// Whether missing isolation layers are fatal.
    pub mode: SandboxMode,
    /// Whether Python evaluators run in long-lived workers that fork per candidate.
    pub warm_workers: bool,
}

impl Default for SandboxSpec {
    fn default() -> SandboxSpec {
        SandboxSpec {
            cpu_s: 0,
            memory_mb: 8192,
            file_size_mb: 1024,
            open_files: 1024,
            max_processes: 256,
            output_kb: 4096,
            kill_grace_s: 2.0,
            allow_network: false,
            restrict_writes: false,
            mode: SandboxMode::Auto,
            warm_workers: true,
        }
    }
}

impl SandboxSpec {
    /// The CPU-seconds limit to apply for a wall-clock `timeout_s` (default: twice the timeout plus one).
    pub fn cpu_seconds(&self, timeout_s: f64) -> u64 {
        if self.cpu_s > 0 {
            self.cpu_s
        } else {
            (timeout_s * 2.0).ceil() as u64 + 1
        }
    }
}

/// One step of a cascade evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    /// The Python function to call (`evaluate_stage<N>` by default).
    pub function: Option<String>,
    /// A command to run instead of the evaluator's own (the candidate path is appended).
    pub command: Option<Vec<String>>,
    /// Wall-clock limit of this stage, in seconds.
    pub timeout_s: f64,
    /// The objective a candidate must reach in this stage to go on (and to be scored).
    pub threshold: Option<f64>,
}

/// `[[evaluator.stages]]` as written in problem.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub(crate) function: Option<String>,
    pub(crate) command: Option<Vec<String>>,
    pub(crate) timeout_s: Option<f64>,
    pub(crate) threshold: Option<f64>,
}

/// Checks the sandbox keys; returns the dotted key at fault and why.
pub(crate) fn validate(spec: &SandboxSpec) -> Result<(), (&'static str, String)> {
    if !(spec.kill_grace_s.is_finite() && spec.kill_grace_s >= 0.0) {
        return Err((
            "evaluator.kill_grace_s",
            format!("must be zero or more seconds, got {}", spec.kill_grace_s),
        ));
    }
    if spec.output_kb == 0 {
        return Err(("evaluator.output_kb", "must be at least 1".into()));
    }
    Ok(())
}

/// Resolves the stages, checking each; `python` tells whether functions make sense.
pub(crate) fn resolve_stages(
    raw: Vec<RawStage>,
    default_timeout_s: f64,
    python: bool,
) -> Result<Vec<StageSpec>, (String, String)> {
    raw.into_iter()
        .enumerate()
        .map(|(index, stage)| {
            let key = |name: &str| format!("evaluator.stages[{index}].{name}");
            let timeout_s = stage.timeout_s.unwrap_or(default_timeout_s);
            if !(timeout_s.is_finite() && timeout_s > 0.0) {
                return Err((
                    key("timeout_s"),
                    format!("must be a positive number of seconds, got {timeout_s}"),
                ));
            }
            if let Some(threshold) = stage.threshold.filter(|t| !t.is_finite()) {
                return Err((key("threshold"), format!("must be finite, got {threshold}")));
            }
            match (&stage.function, &stage.command) {
                (Some(_), Some(_)) => {
                    return Err((
                        key("function"),
                        "give either `function` or `command`, not both".into(),
                    ));
                }
                (Some(_), None) if !python => {
                    return Err((
                        key("function"),
                        "only a `python` evaluator has functions; give `command`".into(),
                    ));
                }
                (None, Some(argv)) if argv.is_empty() => {
                    return Err((key("command"), "must name a program".into()));
                }
                _ => {}
            }
            let function = match (&stage.command, stage.function) {
                (None, None) if python => Some(format!("evaluate_stage{}", index + 1)),
                (_, function) => function,
            };
            Ok(StageSpec {
                function,
                command: stage.command,
                timeout_s,
                threshold: stage.threshold,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProblemSpec;

    fn load(evaluator_keys: &str) -> Result<ProblemSpec, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
        write(
            "initial.py",
            "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n",
        )
        .map_err(|e| e.to_string())?;
        write("evaluator.py", "def evaluate(p): return {'s': 1}\n").map_err(|e| e.to_string())?;
        write(
            "problem.toml",
            &format!(
                "name = \"t\"\ninitial_program = \"initial.py\"\n[evaluator]\nobjective = \"s\"\n\
                 direction = \"maximize\"\n{evaluator_keys}\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        ProblemSpec::load(dir.path()).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_apply_when_no_key_is_given() {
        let spec = load("python = \"evaluator.py\"").unwrap();
        assert_eq!(spec.evaluator.sandbox, SandboxSpec::default());
        assert!(spec.evaluator.stages.is_empty());
        assert_eq!(spec.evaluator.sandbox.cpu_seconds(60.0), 121);
    }

    #[test]
    fn every_key_is_read() {
        let spec = load(
            "python = \"evaluator.py\"\ntimeout_s = 5\ncpu_s = 3\nmemory_mb = 100\nfile_size_mb = 2\n\
             open_files = 64\nmax_processes = 8\noutput_kb = 16\nkill_grace_s = 0.5\n\
             allow_network = true\nrestrict_writes = true\nsandbox = \"strict\"\nwarm_workers = false\n\
             [[evaluator.stages]]\nthreshold = 1.5\ntimeout_s = 1\n\
             [[evaluator.stages]]\nfunction = \"full\"\n",
        )
        .unwrap();
        let sandbox = &spec.evaluator.sandbox;
        assert_eq!(
            (
                sandbox.cpu_s,
                sandbox.memory_mb,
                sandbox.file_size_mb,
                sandbox.open_files
            ),
            (3, 100, 2, 64)
        );
        assert_eq!((sandbox.max_processes, sandbox.output_kb), (8, 16));
        assert_eq!(sandbox.kill_grace_s, 0.5);
        assert!(sandbox.allow_network && sandbox.restrict_writes && !sandbox.warm_workers);
        assert_eq!(sandbox.mode, SandboxMode::Strict);
        let stages = &spec.evaluator.stages;
        assert_eq!(stages[0].function.as_deref(), Some("evaluate_stage1"));
        assert_eq!((stages[0].timeout_s, stages[0].threshold), (1.0, Some(1.5)));
        assert_eq!(stages[1].function.as_deref(), Some("full"));
        assert_eq!((stages[1].timeout_s, stages[1].threshold), (5.0, None));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                "python = \"evaluator.py\"\nsandbox = \"tight\"",
                "evaluator.sandbox",
            ),
            (
                "python = \"evaluator.py\"\nkill_grace_s = -1",
                "evaluator.kill_grace_s",
            ),
            (
                "python = \"evaluator.py\"\noutput_kb = 0",
                "evaluator.output_kb",
            ),
            (
                "python = \"evaluator.py\"\n[[evaluator.stages]]\nthreshhold = 1",
                "threshhold",
            ),
            (
                "python = \"evaluator.py\"\n[[evaluator.stages]]\ntimeout_s = 0",
                "evaluator.stages[0].timeout_s",
            ),
            (
                "command = [\"true\"]\n[[evaluator.stages]]\nfunction = \"f\"",
                "evaluator.stages[0].function",
            ),
            (
                "python = \"evaluator.py\"\n[[evaluator.stages]]\ncommand = [\"./missing.sh\"]",
                "evaluator.stages[0].command",
            ),
        ];
        for (keys, expected) in cases {
            let error = load(keys).expect_err(keys);
            assert!(error.contains(expected), "{keys}: {error}");
            assert!(error.contains("problem.toml"), "{error}");
        }
    }
}
