//! Spawning one evaluator process in its own group, with a timeout and
//! capped output capture.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Bytes kept per output stream; the rest is read and dropped.
pub const OUTPUT_CAP: usize = 1 << 20;

/// How long to wait for pipes to drain after the process group is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How an evaluator process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal (not by us).
    Signal(i32),
    /// It ran past the timeout and its group was killed.
    TimedOut,
}

/// Everything observed of one evaluator process.
#[derive(Debug, Clone)]
pub struct Captured {
    /// How it ended.
    pub exit: Exit,
    /// The first [`OUTPUT_CAP`] bytes of stdout.
    pub stdout: Vec<u8>,
    /// The last [`OUTPUT_CAP`] bytes of stderr.
    pub stderr: Vec<u8>,
    /// Whether either stream exceeded the cap.
    pub truncated: bool,
}

/// Kills a whole process group when dropped, so that nothing an evaluation
/// started outlives it, even when the evaluating task is cancelled.
struct GroupKiller(libc::pid_t);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        // SAFETY: killpg has no memory-safety preconditions; ESRCH (group
        // already gone) is the expected, harmless case.
        unsafe {
            libc::killpg(self.0, libc::SIGKILL);
        }
    }
}

/// Runs `argv` in `cwd` with exactly `env`, stdin closed, in a new process group.
pub(crate) async fn run(
    argv: &[String],
    cwd: &Path,
    env: &[(String, String)],
    timeout: Duration,
) -> std::io::Result<Captured> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start `{program}`: {e}")))?;
    let group = child.id().map(|pid| GroupKiller(pid as libc::pid_t));
    let stdout = tokio::spawn(read_capped(child.stdout.take(), false));
    let stderr = tokio::spawn(read_capped(child.stderr.take(), true));

    let exit = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => {
            let status = status?;
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                (None, None) => Exit::Code(-1),
            }
        }
        Err(_) => Exit::TimedOut,
    };
    // Kill the group whether or not the leader exited by itself: grandchildren
    // holding our pipes open would otherwise outlive the evaluation.
    drop(group);
    let _ = child.wait().await;

    let (stdout, out_truncated) = drain(stdout).await;
    let (stderr, err_truncated) = drain(stderr).await;
    Ok(Captured {
        exit,
        stdout,
        stderr,
        truncated: out_truncated || err_truncated,
    })
}

async fn drain(task: tokio::task::JoinHandle<(Vec<u8>, bool)>) -> (Vec<u8>, bool) {
    match tokio::time::timeout(DRAIN_GRACE, task).await {
        Ok(Ok(captured)) => captured,
        _ => (Vec::new(), false),
    }
}

/// Reads a stream to its end, keeping its head (or its tail) up to the cap.
async fn read_capped(stream: Option<impl AsyncRead + Unpin>, keep_tail: bool) -> (Vec<u8>, bool) {
    let Some(mut stream) = stream else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if keep_tail {
                    kept.extend_from_slice(&buffer[..n]);
                    if kept.len() > 2 * OUTPUT_CAP {
                        kept.drain(..kept.len() - OUTPUT_CAP);
                        truncated = true;
                    }
                } else if kept.len() < OUTPUT_CAP {
                    let room = OUTPUT_CAP - kept.len();
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                    truncated |= n > room;
                } else {
                    truncated = true;
                }
            }
        }
    }
    if kept.len() > OUTPUT_CAP {
        kept.drain(..kept.len() - OUTPUT_CAP);
        truncated = true;
    }
    (kept, truncated)
}
