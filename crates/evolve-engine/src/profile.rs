//! Where one invocation's time went: model waits, evaluations, the store and
//! the engine itself, plus the process's CPU time and peak memory.

use std::time::{Duration, Instant};

/// Timing summary of one `execute` call (and the start-up before it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunProfile {
    /// Opening the store and rebuilding the population from it.
    pub startup: Duration,
    /// CPU time of this process up to the end of start-up.
    pub startup_cpu: Duration,
    /// Wall-clock time of the iteration loop.
    pub wall: Duration,
    /// CPU time (user + system) of this process during the loop; evaluator
    /// processes are children and are not counted.
    pub engine_cpu: Duration,
    /// CPU time of the thread driving the loop (selection, prompts' parents,
    /// duplicate screening, store commits), without the model client and
    /// evaluator set-up that run on the runtime's worker threads. Meaningful
    /// when the loop is driven by `block_on`, as the `evolve` binary does.
    pub loop_cpu: Duration,
    /// Summed time proposals spent waiting for their mutator (model calls).
    pub model_wait: Duration,
    /// Summed wall-clock time of evaluations.
    pub evaluating: Duration,
    /// Time spent in store calls during the loop.
    pub store: Duration,
    /// Iterations finished in this invocation (rejected ones included).
    pub candidates: u64,
    /// Evaluations finished in this invocation.
    pub evaluations: u64,
    /// Peak resident memory of this process (KiB), when the OS reports it.
    pub peak_rss_kib: Option<u64>,
}

impl RunProfile {
    /// Engine CPU time per finished candidate, if any finished.
    pub fn cpu_per_candidate(&self) -> Option<Duration> {
        u32::try_from(self.candidates)
            .ok()
            .filter(|&n| n > 0)
            .map(|n| self.engine_cpu / n)
    }

    /// Finished candidates per second of loop wall-clock time.
    pub fn candidates_per_second(&self) -> Option<f64> {
        let seconds = self.wall.as_secs_f64();
        (seconds > 0.0).then(|| self.candidates as f64 / seconds)
    }

    /// Mean wall-clock time of one evaluation.
    pub fn mean_evaluation(&self) -> Option<Duration> {
        u32::try_from(self.evaluations)
            .ok()
            .filter(|&n| n > 0)
            .map(|n| self.evaluating / n)
    }
}

/// User plus system CPU time of this process so far (all threads, no children).
pub fn process_cpu() -> Duration {
    usage().map_or(Duration::ZERO, |u| {
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        time(u.ru_utime) + time(u.ru_stime)
    })
}

/// CPU time of the calling thread so far.
pub fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime only writes into the timespec it is given.
    let time = unsafe {
        let mut time: libc::timespec = std::mem::zeroed();
        (libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) == 0).then_some(time)
    };
    time.map_or(Duration::ZERO, |t| {
        Duration::new(
            t.tv_sec.max(0) as u64,
            t.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    })
}

/// Peak resident memory of this process so far, in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    // VmHWM first: ru_maxrss carries the parent's peak across fork and exec,
    // so a small process started by a big one would report the big one's.
    let status = std::fs::read_to_string("/proc/self/status").ok();
    let high_water = status.as_deref().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    });
    // Linux reports ru_maxrss in KiB.
    high_water.or_else(|| usage().map(|u| u.ru_maxrss.max(0) as u64))
}

fn usage() -> Option<libc::rusage> {
    // SAFETY: getrusage only writes into the zero-initialised struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)
    }
}

/// Adds the time `work` takes to `total`.
pub(crate) fn timed<T>(total: &mut Duration, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = work();
    *total += started.elapsed();
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work_and_peak_memory_is_known() {
        let before = process_cpu();
        let mut x = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(process_cpu() > before, "{x}");
        assert!(thread_cpu() >= Duration::from_millis(20));
        assert!(peak_rss_kib().is_some_and(|kib| kib > 100));
    }

    #[test]
    fn ratios_need_finished_work() {
        let empty = RunProfile::default();
        assert_eq!(empty.cpu_per_candidate(), None);
        assert_eq!(empty.candidates_per_second(), None);
        let profile = RunProfile {
            wall: Duration::from_secs(2),
            engine_cpu: Duration::from_millis(10),
            evaluating: Duration::from_millis(30),
            candidates: 10,
            evaluations: 3,
            ..RunProfile::default()
        };
        assert_eq!(profile.cpu_per_candidate(), Some(Duration::from_millis(1)));
        assert_eq!(profile.candidates_per_second(), Some(5.0));
        assert_eq!(profile.mean_evaluation(), Some(Duration::from_millis(10)));
    }
}
