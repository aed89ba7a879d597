//! Warm Python workers: long-lived harness processes that import the
//! evaluator (and its heavy modules) once, then fork a fresh child per
//! candidate. The worker runs under the same sandbox helper as a spawned
//! evaluator; this side owns the timeout and kills the child's group.
//!
//! Protocol (one JSON object per line): the worker says `{"ready": true}`
//! (or `{"ready": false, "error": ...}`); for each request it answers
//! `{"pid": N}` once the child exists and `{"exit": code}` or
//! `{"signal": n}` (plus `"overflow": true` when the output cap was hit)
//! when it is gone. The child's stdout and stderr go to files.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::cgroup::PidsCgroup;
use crate::process::{Captured, Exit, GroupKiller, signal_group, terminate_group};
use crate::sandbox::Plan;

/// How long a new worker may take to import the evaluator.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a worker may take to report a child it was told about.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Consecutive worker failures after which the pool gives up for the run.
const MAX_CONSECUTIVE_FAILURES: usize = 3;

/// One candidate for a warm worker.
pub(crate) struct WarmRequest<'a> {
    pub program: &'a Path,
    pub function: &'a str,
    pub result: &'a Path,
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    pub timeout: Duration,
    pub cpu_s: Option<u64>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    replies: Lines<BufReader<ChildStdout>>,
    _group: GroupKiller,
    _cgroup: Option<PidsCgroup>,
}

/// Kills a candidate's process group if the request is abandoned midway.
struct CandidateGuard(Option<libc::pid_t>);

impl Drop for CandidateGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid, libc::SIGKILL);
        }
    }
}

/// Idle workers, grown on demand (one per evaluation in flight).
#[derive(Debug)]
pub(crate) struct WarmPool {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    plan: Plan,
    dir: PathBuf,
    idle: Mutex<Vec<Worker>>,
    broken: AtomicBool,
    failures: AtomicUsize,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Kill and reap the worker here: a zombie would keep its pids cgroup
        // from being removed when the cgroup field is dropped next.
        let _ = self.child.start_kill();
        for _ in 0..200 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pid", &self.child.id())
            .finish()
    }
}

enum Failure {
    /// The evaluator cannot even be imported: no worker will ever work.
    Permanent(String),
    /// This worker broke; a new one may do.
    Transient(String),
}

impl WarmPool {
    /// A pool starting workers with `argv` (harness in worker mode) in `dir`.
    pub(crate) fn new(
        argv: Vec<String>,
        env: Vec<(String, String)>,
        plan: Plan,
        dir: PathBuf,
    ) -> WarmPool {
        WarmPool {
            argv,
            env,
            plan,
            dir,
            idle: Mutex::new(Vec::new()),
            broken: AtomicBool::new(false),
            failures: AtomicUsize::new(0),
        }
    }

    /// Evaluates in a warm worker; `None` means the pool could not, and the
    /// caller should spawn a fresh process instead.
    pub(crate) async fn evaluate(&self, request: &WarmRequest<'_>) -> Option<Captured> {
        if self.broken.load(Ordering::Relaxed) {
            return None;
        }
        let worker = match self.take_idle() {
            Some(worker) => Ok(worker),
            None => self.start().await,
        };
        let result = match worker {
            Ok(mut worker) => match self.run_in(&mut worker, request).await {
                Ok(captured) => {
                    self.failures.store(0, Ordering::Relaxed);
                    self.give_back(worker);
                    return Some(captured);
                }
                Err(why) => Failure::Transient(why),
            },
            Err(failure) => failure,
        };
        match result {
            Failure::Permanent(why) => {
                self.broken.store(true, Ordering::Relaxed);
                tracing::warn!("warm workers disabled, spawning per candidate: {why}");
            }
            Failure::Transient(why) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!("a warm worker failed ({why}); it is replaced");
                if failures >= MAX_CONSECUTIVE_FAILURES {
                    self.broken.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        "warm workers failed {failures} times in a row; spawning per candidate"
                    );
                }
            }
        }
        None
    }

    fn take_idle(&self) -> Option<Worker> {
        self.idle.lock().ok()?.pop()
    }

    fn give_back(&self, worker: Worker) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(worker);
        }
    }

    async fn start(&self) -> Result<Worker, Failure> {
        let limits = &self.plan.limits;
        let cgroup = self
            .plan
            .cgroup_base
            .as_deref()
            .and_then(|base| PidsCgroup::create(base, limits.max_processes).ok());
        let procs = cgroup.as_ref().map(PidsCgroup::procs_file);
        // No CPU limit on the worker itself: it lives for the whole run; each
        // child sets its own.
        let argv = self
            .plan
            .wrap(&self.argv, &self.dir, None, procs.as_deref());
        let Some((program, args)) = argv.split_first() else {
            return Err(Failure::Permanent("empty worker command".into()));
        };
        let mut child = Command::new(program)
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure::Permanent(format!("cannot start a worker: {e}")))?;
        let group = GroupKiller(child.id().unwrap_or(0) as libc::pid_t);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Failure::Transient("worker pipes missing".into()));
        };
        let mut worker = Worker {
            child,
            stdin,
            replies: BufReader::new(stdout).lines(),
            _group: group,
            _cgroup: cgroup,
        };
        let ready = tokio::time::timeout(READY_TIMEOUT, worker.replies.next_line()).await;
        let reply = match ready {
            Ok(Ok(Some(line))) => serde_json::from_str::<Value>(&line).unwrap_or(Value::Null),
            Ok(_) => {
                return Err(Failure::Permanent(
                    "the worker exited while starting".into(),
                ));
            }
            Err(_) => {
                return Err(Failure::Permanent(
                    "the worker took too long to start".into(),
                ));
            }
        };
        if reply["ready"] == Value::Bool(true) {
            Ok(worker)
        } else {
            Err(Failure::Permanent(format!(
                "the evaluator cannot be imported: {}",
                reply["error"].as_str().unwrap_or("unknown error")
            )))
        }
    }

    async fn run_in(
        &self,
        worker: &mut Worker,
        request: &WarmRequest<'_>,
    ) -> Result<Captured, String> {
        let stdout_file = request.cwd.join(".stdout");
        let stderr_file = request.cwd.join(".stderr");
        let env: serde_json::Map<String, Value> = request
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let cap = self.plan.limits.output_kb.saturating_mul(1024);
        let message = json!({
            "program": request.program,
            "function": request.function,
            "result": request.result,
            "cwd": request.cwd,
            "env": env,
            "cpu_s": request.cpu_s,
            "output_bytes": cap,
            "stdout": stdout_file,
            "stderr": stderr_file,
        });
        let mut line = message.to_string();
        line.push('\n');
        worker
            .stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("cannot send to the worker: {e}"))?;
        let started = next_reply(worker, REPLY_TIMEOUT).await?;
        let pid = started["pid"]
            .as_i64()
            .ok_or_else(|| format!("unexpected worker reply {started}"))?
            as libc::pid_t;
        let mut guard = CandidateGuard(Some(pid));

        let grace = Duration::from_secs_f64(self.plan.limits.kill_grace_s);
        let (done, timed_out) =
            match tokio::time::timeout(request.timeout, next_reply(worker, Duration::MAX)).await {
                Ok(done) => (done?, false),
                Err(_) => {
                    // The worker reaps its child, so a zombie leader never lingers.
                    terminate_group(pid, grace, || true).await;
                    (next_reply(worker, REPLY_TIMEOUT + grace).await?, true)
                }
            };
        guard.0 = None;
        signal_group(pid, libc::SIGKILL);
        let exit = if timed_out {
            Exit::TimedOut
        } else if done["overflow"] == Value::Bool(true) {
            Exit::OutputExceeded
        } else if let Some(signal) = done["signal"].as_i64() {
            Exit::Signal(signal as i32)
        } else {
            Exit::Code(done["exit"].as_i64().unwrap_or(-1) as i32)
        };
        let read = |path: &Path| {
            let mut bytes = std::fs::read(path).unwrap_or_default();
            bytes.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
            bytes
        };
        Ok(Captured {
            exit,
            stdout: read(&stdout_file),
            stderr: read(&stderr_file),
        })
    }
}

async fn next_reply(worker: &mut Worker, wait: Duration) -> Result<Value, String> {
    let line = if wait == Duration::MAX {
        worker.replies.next_line().await
    } else {
        tokio::time::timeout(wait, worker.replies.next_line())
            .await
            .map_err(|_| "the worker stopped answering".to_string())?
    };
    match line {
        Ok(Some(line)) => {
            serde_json::from_str(&line).map_err(|e| format!("bad worker reply {line:?}: {e}"))
        }
        Ok(None) => Err("the worker exited".into()),
        Err(e) => Err(format!("cannot read from the worker: {e}")),
    }
}
