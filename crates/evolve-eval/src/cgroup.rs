//! A pids cgroup per evaluation: caps how many processes a candidate can
//! have at once (the fork-bomb defence that also holds for root, for whom
//! RLIMIT_NPROC is not enforced) and finds every process it left behind,
//! even those that left the process group with `setsid`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The directory of this process's own pids cgroup, in v1 or v2 layout.
fn own_pids_cgroup() -> Result<PathBuf, String> {
    let table = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    for line in table.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next(), fields.next(), fields.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "pids") {
            return Ok(Path::new("/sys/fs/cgroup/pids").join(relative));
        }
        if controllers.is_empty() {
            let unified = Path::new("/sys/fs/cgroup").join(relative);
            let offered =
                std::fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
            if offered.split_whitespace().any(|c| c == "pids") {
                return Ok(unified);
            }
        }
    }
    Err("no pids cgroup controller is mounted for this process".into())
}

/// Checks that a child pids cgroup can be made here; returns its parent directory.
pub(crate) fn probe() -> Result<PathBuf, String> {
    let base = own_pids_cgroup()?;
    let trial = base.join(format!("evolve-probe-{}", std::process::id()));
    std::fs::create_dir(&trial)
        .map_err(|e| format!("cannot create a cgroup under {}: {e}", base.display()))?;
    let written = std::fs::write(trial.join("pids.max"), "16")
        .map_err(|e| format!("cannot set pids.max under {}: {e}", base.display()));
    let _ = std::fs::remove_dir(&trial);
    written.map(|()| base)
}

/// One evaluation's pids cgroup, removed (after killing its members) on drop.
#[derive(Debug)]
pub(crate) struct PidsCgroup {
    dir: PathBuf,
}

impl PidsCgroup {
    /// Creates a fresh cgroup under `base` allowing `max` processes.
    pub(crate) fn create(base: &Path, max: u64) -> std::io::Result<PidsCgroup> {
        let name = format!(
            "evolve-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = base.join(name);
        std::fs::create_dir(&dir)?;
        let group = PidsCgroup { dir };
        std::fs::write(group.dir.join("pids.max"), max.to_string())?;
        Ok(group)
    }

    /// The file a process writes its pid into to join.
    pub(crate) fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    fn members(&self) -> Vec<libc::pid_t> {
        std::fs::read_to_string(self.procs_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs every member until none is left (bounded), then removes the cgroup.
    pub(crate) fn kill_all(&self) {
        for _ in 0..200 {
            let members = self.members();
            if members.is_empty() {
                break;
            }
            for pid in members {
                // SAFETY: kill has no memory-safety preconditions; a stale pid gives ESRCH.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        self.kill_all();
        // Killed processes that were reparented to the system's init stay
        // listed as zombies until it reaps them, which can take seconds.
        for _ in 0..500 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::warn!("could not remove cgroup {}", self.dir.display());
    }
}
