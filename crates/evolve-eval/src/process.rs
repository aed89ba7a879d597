//! Spawning one evaluator process in its own group (and pids cgroup), with a
//! timeout, a graceful-then-hard kill of the whole group, and capped output.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::Notify;

use crate::cgroup::PidsCgroup;
use crate::sandbox::Plan;

/// How long to wait for pipes to drain after the process group is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How often the group is checked for survivors during the kill grace period.
const GRACE_POLL: Duration = Duration::from_millis(20);

/// How an evaluator process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal (not by us).
    Signal(i32),
    /// It ran past the timeout and its group was killed.
    TimedOut,
    /// It wrote more than the output cap and its group was killed.
    OutputExceeded,
}

/// Everything observed of one evaluator process.
#[derive(Debug, Clone)]
pub struct Captured {
    /// How it ended.
    pub exit: Exit,
    /// The first bytes of stdout, up to the cap.
    pub stdout: Vec<u8>,
    /// The first bytes of stderr, up to the cap.
    pub stderr: Vec<u8>,
}

/// One process to run: what, where, and within which bounds.
pub(crate) struct Launch<'a> {
    /// Program and arguments (before any sandbox wrapping).
    pub argv: &'a [String],
    /// Working directory (the evaluation's private temporary directory).
    pub cwd: &'a Path,
    /// The complete environment.
    pub env: &'a [(String, String)],
    /// Wall-clock limit.
    pub timeout: Duration,
    /// CPU-seconds limit, if any.
    pub cpu_s: Option<u64>,
}

/// Sends `signal` to a process group.
pub(crate) fn signal_group(group: libc::pid_t, signal: libc::c_int) -> bool {
    // SAFETY: killpg has no memory-safety preconditions; ESRCH (group gone)
    // is reported as `false`.
    unsafe { libc::killpg(group, signal) == 0 }
}

/// Kills a whole process group when dropped, so that nothing an evaluation
/// started outlives it, even when the evaluating task is cancelled.
pub(crate) struct GroupKiller(pub(crate) libc::pid_t);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGKILL);
    }
}

/// SIGTERM to the group, up to `grace` for it to go, then SIGKILL.
/// `leader_done` reaps the leader meanwhile so a zombie does not count as alive.
pub(crate) async fn terminate_group(
    group: libc::pid_t,
    grace: Duration,
    mut leader_done: impl FnMut() -> bool,
) {
    signal_group(group, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        let leader_gone = leader_done();
        if leader_gone && !signal_group(group, 0) {
            return;
        }
        tokio::time::sleep(GRACE_POLL).await;
    }
    signal_group(group, libc::SIGKILL);
}

/// Runs `launch` under `plan`, stdin closed, in a new process group.
pub(crate) async fn run(plan: &Plan, launch: Launch<'_>) -> std::io::Result<Captured> {
    let limits = &plan.limits;
    let cgroup = plan.cgroup_base.as_deref().and_then(|base| {
        PidsCgroup::create(base, limits.max_processes)
            .map_err(|e| tracing::warn!("no pids cgroup for this evaluation: {e}"))
            .ok()
    });
    let procs = cgroup.as_ref().map(PidsCgroup::procs_file);
    let argv = plan.wrap(launch.argv, launch.cwd, launch.cpu_s, procs.as_deref());
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(launch.cwd)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot start `{}`: {e}", display(program)),
        )
    })?;
    let group = child.id().map(|pid| GroupKiller(pid as libc::pid_t));
    let cap = usize::try_from(limits.output_kb.saturating_mul(1024)).unwrap_or(usize::MAX);
    let overflow = Arc::new(Notify::new());
    let stdout = tokio::spawn(read_capped(child.stdout.take(), cap, overflow.clone()));
    let stderr = tokio::spawn(read_capped(child.stderr.take(), cap, overflow.clone()));

    let grace = Duration::from_secs_f64(limits.kill_grace_s);
    let exit = tokio::select! {
        status = child.wait() => {
            let status = status?;
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                (None, None) => Exit::Code(-1),
            }
        }
        () = tokio::time::sleep(launch.timeout) => Exit::TimedOut,
        () = overflow.notified() => Exit::OutputExceeded,
    };
    if let (Exit::TimedOut | Exit::OutputExceeded, Some(group)) = (exit, &group) {
        terminate_group(group.0, grace, || matches!(child.try_wait(), Ok(Some(_)))).await;
    }
    // Kill the group whether or not the leader exited by itself: grandchildren
    // holding our pipes open would otherwise outlive the evaluation.
    drop(group);
    let _ = child.wait().await;
    if let Some(cgroup) = cgroup {
        // Catches processes that left the group with setsid(); waiting for
        // the directory to be removable can take a while, so it goes on in
        // the background once every member has been killed.
        let _ = tokio::task::spawn_blocking(move || {
            cgroup.kill_all();
            cgroup
        })
        .await
        .map(|cgroup| tokio::task::spawn_blocking(move || drop(cgroup)));
    }

    let (stdout, out_exceeded) = drain(stdout).await;
    let (stderr, err_exceeded) = drain(stderr).await;
    let exit = match exit {
        Exit::Code(_) | Exit::Signal(_) if out_exceeded || err_exceeded => Exit::OutputExceeded,
        other => other,
    };
    Ok(Captured {
        exit,
        stdout,
        stderr,
    })
}

fn display(program: &OsString) -> String {
    program.to_string_lossy().into_owned()
}

async fn drain(task: tokio::task::JoinHandle<(Vec<u8>, bool)>) -> (Vec<u8>, bool) {
    match tokio::time::timeout(DRAIN_GRACE, task).await {
        Ok(Ok(captured)) => captured,
        _ => (Vec::new(), false),
    }
}

/// Reads a stream to its end, keeping its first `cap` bytes; past the cap it
/// raises `overflow` once and drops the rest.
async fn read_capped(
    stream: Option<impl AsyncRead + Unpin>,
    cap: usize,
    overflow: Arc<Notify>,
) -> (Vec<u8>, bool) {
    let Some(mut stream) = stream else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut exceeded = false;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..n.min(room)]);
                if n > room && !exceeded {
                    exceeded = true;
                    overflow.notify_one();
                }
            }
        }
    }
    (kept, exceeded)
}
