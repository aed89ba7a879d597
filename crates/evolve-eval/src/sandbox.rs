//! The isolation layers around an evaluator, and the re-exec helper that sets
//! them up.
//!
//! The engine's process is multi-threaded, so nothing but `exec` may happen
//! between its `fork` and the child's `exec`. Child-side set-up (rlimits,
//! joining a pids cgroup, a fresh user+network namespace, Landlock) therefore
//! runs in a small helper: the `evolve` binary itself, started with the hidden
//! `__sandbox` subcommand, which applies the layers to itself while still
//! single-threaded and then execs the evaluator.

use std::ffi::{CString, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use evolve_core::{SandboxMode, SandboxSpec};

use crate::{cgroup, landlock, pid_namespace};

/// The hidden subcommand of the `evolve` binary that runs [`helper_main`].
pub const HELPER_SUBCOMMAND: &str = "__sandbox";

/// Exit status of the helper when it could not set up a layer or exec.
pub const HELPER_FAILED: i32 = 125;

/// The first line of the helper's stderr message when set-up fails.
pub(crate) const HELPER_MARK: &str = "evolve-sandbox:";

/// Comma-separated layers to treat as unavailable (`cgroup`, `netns`,
/// `pidns`, `landlock`), for a machine where one misbehaves.
pub const SKIP_VARIABLE: &str = "EVOLVE_SANDBOX_SKIP";

static LAUNCHER: OnceLock<PathBuf> = OnceLock::new();
static LAYERS: OnceLock<Layers> = OnceLock::new();

/// Registers the executable that understands [`HELPER_SUBCOMMAND`] (the CLI
/// passes `std::env::current_exe()`); without one, only the layers that need
/// no helper (process groups, timeouts, output caps, environment) apply.
pub fn set_launcher(path: PathBuf) {
    let _ = LAUNCHER.set(path);
}

/// The registered helper executable, if any.
pub fn launcher() -> Option<&'static Path> {
    LAUNCHER.get().map(PathBuf::as_path)
}

/// Whether one isolation layer works on this machine, and why not if it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// It works; the text says how.
    Yes(String),
    /// It does not; the text says why.
    No(String),
}

impl Support {
    /// True when the layer works.
    pub fn is_available(&self) -> bool {
        matches!(self, Support::Yes(_))
    }

    fn from_result(result: Result<String, String>) -> Support {
        match result {
            Ok(how) => Support::Yes(how),
            Err(why) => Support::No(why),
        }
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Support::Yes(how) => write!(f, "yes  ({how})"),
            Support::No(why) => write!(f, "no   ({why})"),
        }
    }
}

/// What this machine supports, probed once per process.
#[derive(Debug, Clone)]
pub struct Layers {
    /// The re-exec helper (needed for every layer applied in the child).
    pub helper: Support,
    /// Resource limits (setrlimit) in the helper.
    pub rlimits: Support,
    /// A pids cgroup per evaluation (process count limit that binds root too).
    pub pids_cgroup: Support,
    /// A private network namespace (no network) via an unprivileged user namespace.
    pub network_namespace: Support,
    /// A private PID namespace: candidates cannot see or signal host processes,
    /// and everything left in it dies with the evaluator.
    pub pid_namespace: Support,
    /// Landlock write confinement to the evaluation's directory.
    pub landlock: Support,
    /// Landlock TCP denial: the network fallback without a network namespace.
    pub landlock_tcp: Support,
    cgroup_base: Option<PathBuf>,
}

impl Layers {
    /// Probes the machine (once; later calls return the same answer).
    pub fn probe() -> &'static Layers {
        LAYERS.get_or_init(|| Layers::detect(launcher()))
    }

    fn detect(launcher: Option<&Path>) -> Layers {
        let helper = match launcher {
            Some(path) if path.is_file() => Support::Yes(format!("{}", path.display())),
            Some(path) => Support::No(format!("{} does not exist", path.display())),
            None => Support::No("no helper executable registered (library use)".into()),
        };
        let helper_path = launcher.filter(|_| helper.is_available());
        let rlimits = match helper_path {
            Some(_) => Support::Yes("RLIMIT_CPU, AS, FSIZE, NOFILE, NPROC, CORE=0".into()),
            None => Support::No("needs the helper".into()),
        };
        let pids_cgroup = match cgroup::probe() {
            Ok(base) if helper_path.is_some() => (
                Support::Yes(format!("under {}", base.display())),
                Some(base),
            ),
            Ok(_) => (Support::No("needs the helper".into()), None),
            Err(why) => (Support::No(why), None),
        };
        let network_namespace = match helper_path {
            Some(path) => Support::from_result(probe_namespace(path, "--probe-network")),
            None => Support::No("needs the helper".into()),
        };
        let pid_namespace = match helper_path {
            Some(path) => Support::from_result(probe_namespace(path, "--probe-pids")),
            None => Support::No("needs the helper".into()),
        };
        let landlock_abi = landlock::abi_version();
        let landlock = match (helper_path, &landlock_abi) {
            (Some(_), Ok(abi)) => Support::Yes(format!("ABI {abi}")),
            (None, Ok(_)) => Support::No("needs the helper".into()),
            (_, Err(why)) => Support::No(why.clone()),
        };
        let landlock_tcp = match (helper_path, &landlock_abi) {
            (Some(_), Ok(abi)) if *abi >= landlock::NET_ABI => {
                Support::Yes(format!("ABI {abi} denies TCP connect and bind"))
            }
            (Some(_), Ok(abi)) => Support::No(format!(
                "landlock ABI {abi} cannot restrict TCP (needs {})",
                landlock::NET_ABI
            )),
            (None, _) => Support::No("needs the helper".into()),
            (_, Err(why)) => Support::No(why.clone()),
        };
        let skipped = skipped_layers();
        let skip = |name: &str, support: Support| {
            if skipped.iter().any(|s| s == name) {
                Support::No(format!("skipped by {SKIP_VARIABLE}"))
            } else {
                support
            }
        };
        let pids_cgroup = if skipped.iter().any(|s| s == "cgroup") {
            (skip("cgroup", pids_cgroup.0), None)
        } else {
            pids_cgroup
        };
        let network_namespace = skip("netns", network_namespace);
        let pid_namespace = skip("pidns", pid_namespace);
        let landlock = skip("landlock", landlock);
        let landlock_tcp = skip("landlock", landlock_tcp);
        Layers {
            helper,
            rlimits,
            pids_cgroup: pids_cgroup.0,
            network_namespace,
            pid_namespace,
            landlock,
            landlock_tcp,
            cgroup_base: pids_cgroup.1,
        }
    }

    /// Every layer with its name, for `evolve doctor`.
    pub fn table(&self) -> Vec<(&'static str, Support)> {
        vec![
            (
                "process groups",
                Support::Yes("own group per evaluation, SIGTERM then SIGKILL to the group".into()),
            ),
            (
                "environment",
                Support::Yes("cleared; PATH, LANG, HOME, EVOLVE_* and listed names only".into()),
            ),
            ("re-exec helper", self.helper.clone()),
            ("resource limits", self.rlimits.clone()),
            ("pids cgroup", self.pids_cgroup.clone()),
            ("network namespace", self.network_namespace.clone()),
            ("pid namespace", self.pid_namespace.clone()),
            ("landlock (writes)", self.landlock.clone()),
            ("landlock (tcp)", self.landlock_tcp.clone()),
        ]
    }

    pub(crate) fn cgroup_base(&self) -> Option<&Path> {
        self.cgroup_base.as_deref()
    }
}

fn skipped_layers() -> Vec<String> {
    std::env::var(SKIP_VARIABLE)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Runs the helper in probe mode: it tries the namespace and reports.
fn probe_namespace(launcher: &Path, flag: &str) -> Result<String, String> {
    let output = std::process::Command::new(launcher)
        .args([HELPER_SUBCOMMAND, flag])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the helper: {e}"))?;
    if output.status.success() {
        Ok(match flag {
            "--probe-pids" => "unprivileged user + PID namespace, with an init that reaps".into(),
            _ => "unprivileged user + network namespace".into(),
        })
    } else {
        let why = String::from_utf8_lossy(&output.stderr);
        let why = why.trim().trim_start_matches(HELPER_MARK).trim();
        Err(if why.is_empty() {
            format!("helper probe failed ({})", output.status)
        } else {
            why.to_string()
        })
    }
}

/// The layers one evaluator gets, decided once from its spec and the probe.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) launcher: Option<PathBuf>,
    pub(crate) cgroup_base: Option<PathBuf>,
    pub(crate) deny_network: bool,
    pub(crate) deny_tcp: bool,
    pub(crate) own_pids: bool,
    pub(crate) confine_writes: bool,
    pub(crate) limits: SandboxSpec,
}

/// A layer that `sandbox = "strict"` asked for but this machine lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingLayer {
    /// The layer's name.
    pub layer: &'static str,
    /// Why it is missing.
    pub reason: String,
}

impl Plan {
    /// Decides the layers for `limits`; in strict mode every missing one is returned as an error.
    pub fn decide(
        limits: &SandboxSpec,
        layers: &Layers,
    ) -> Result<(Plan, Vec<MissingLayer>), Vec<MissingLayer>> {
        let mut missing = Vec::new();
        let mut want = |layer: &'static str, support: &Support| match support {
            Support::Yes(_) => true,
            Support::No(reason) => {
                missing.push(MissingLayer {
                    layer,
                    reason: reason.clone(),
                });
                false
            }
        };
        let helper = want("resource limits", &layers.rlimits);
        let cgroup = limits.max_processes > 0 && want("pids cgroup", &layers.pids_cgroup);
        // Without a network namespace, Landlock can still deny TCP.
        let (deny_network, deny_tcp) = match (
            limits.allow_network,
            &layers.network_namespace,
            &layers.landlock_tcp,
        ) {
            (true, _, _) => (false, false),
            (false, Support::Yes(_), _) => (true, false),
            (false, Support::No(_), Support::Yes(_)) => (false, true),
            (false, Support::No(_), Support::No(_)) => {
                (want("network namespace", &layers.network_namespace), false)
            }
        };
        let own_pids = want("pid namespace", &layers.pid_namespace);
        let confine_writes = limits.restrict_writes && want("landlock", &layers.landlock);
        if limits.mode == SandboxMode::Strict && !missing.is_empty() {
            return Err(missing);
        }
        let plan = Plan {
            launcher: launcher().filter(|_| helper).map(Path::to_path_buf),
            cgroup_base: layers
                .cgroup_base()
                .filter(|_| cgroup)
                .map(Path::to_path_buf),
            deny_network,
            deny_tcp,
            own_pids,
            confine_writes,
            limits: limits.clone(),
        };
        Ok((plan, missing))
    }

    /// A plan with no helper: process group, timeout, output cap and environment only.
    pub fn unconfined(limits: &SandboxSpec) -> Plan {
        Plan {
            launcher: None,
            cgroup_base: None,
            deny_network: false,
            deny_tcp: false,
            own_pids: false,
            confine_writes: false,
            limits: limits.clone(),
        }
    }

    /// Wraps `argv` so it runs under the helper with this plan's layers.
    pub(crate) fn wrap(
        &self,
        argv: &[String],
        work_dir: &Path,
        cpu_s: Option<u64>,
        cgroup_procs: Option<&Path>,
    ) -> Vec<OsString> {
        let Some(launcher) = &self.launcher else {
            return argv.iter().map(OsString::from).collect();
        };
        let mib = |n: u64| (n.saturating_mul(1 << 20)).to_string();
        let mut wrapped: Vec<OsString> = vec![launcher.into(), HELPER_SUBCOMMAND.into()];
        let mut flag = |name: &str, value: String| {
            wrapped.push(name.into());
            wrapped.push(value.into());
        };
        if let Some(cpu) = cpu_s.filter(|&c| c > 0) {
            flag("--cpu", cpu.to_string());
        }
        let limits = &self.limits;
        if limits.memory_mb > 0 {
            flag("--as", mib(limits.memory_mb));
        }
        if limits.file_size_mb > 0 {
            flag("--fsize", mib(limits.file_size_mb));
        }
        if limits.open_files > 0 {
            flag("--nofile", limits.open_files.to_string());
        }
        if limits.max_processes > 0 {
            flag("--nproc", limits.max_processes.to_string());
        }
        if let Some(procs) = cgroup_procs {
            flag("--cgroup-procs", procs.display().to_string());
        }
        if self.confine_writes {
            flag("--write-only-in", work_dir.display().to_string());
        }
        if self.deny_network {
            wrapped.push("--no-network".into());
        }
        if self.own_pids {
            wrapped.push("--own-pids".into());
        }
        if self.deny_tcp {
            wrapped.push("--deny-tcp".into());
        }
        wrapped.push("--".into());
        wrapped.extend(argv.iter().map(OsString::from));
        wrapped
    }
}

/// What the helper was asked to do.
#[derive(Debug, Default)]
struct HelperArgs {
    cpu_s: Option<u64>,
    address_space: Option<u64>,
    file_size: Option<u64>,
    open_files: Option<u64>,
    processes: Option<u64>,
    cgroup_procs: Option<PathBuf>,
    write_only_in: Option<PathBuf>,
    no_network: bool,
    deny_tcp: bool,
    own_pids: bool,
    probe: Option<libc::c_int>,
    argv: Vec<OsString>,
}

fn parse_helper_args(args: Vec<OsString>) -> Result<HelperArgs, String> {
    let mut parsed = HelperArgs::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let name = arg.to_string_lossy().into_owned();
        let mut value = || args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |v: OsString| {
            v.to_string_lossy()
                .parse::<u64>()
                .map_err(|e| format!("bad number for {name}: {e}"))
        };
        match name.as_str() {
            "--cpu" => parsed.cpu_s = Some(number(value()?)?),
            "--as" => parsed.address_space = Some(number(value()?)?),
            "--fsize" => parsed.file_size = Some(number(value()?)?),
            "--nofile" => parsed.open_files = Some(number(value()?)?),
            "--nproc" => parsed.processes = Some(number(value()?)?),
            "--cgroup-procs" => parsed.cgroup_procs = Some(value()?.into()),
            "--write-only-in" => parsed.write_only_in = Some(value()?.into()),
            "--no-network" => parsed.no_network = true,
            "--own-pids" => parsed.own_pids = true,
            "--deny-tcp" => parsed.deny_tcp = true,
            "--probe-network" => parsed.probe = Some(libc::CLONE_NEWNET),
            "--probe-pids" => parsed.probe = Some(libc::CLONE_NEWPID),
            "--" => {
                parsed.argv = args.collect();
                break;
            }
            other => return Err(format!("unknown sandbox option {other}")),
        }
    }
    if parsed.argv.is_empty() && parsed.probe.is_none() {
        return Err("no command given after --".into());
    }
    Ok(parsed)
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> Result<(), String> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(format!(
            "setrlimit({resource}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Moves this single-threaded process into a fresh user namespace plus the
/// namespaces in `extra` (network; PID, which applies to its children),
/// mapping its own uid and gid so file ownership looks unchanged.
fn enter_namespaces(extra: libc::c_int) -> Result<(), String> {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare takes flags only; the helper is single-threaded here.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | extra) } != 0 {
        let names = [
            (libc::CLONE_NEWNET, "|CLONE_NEWNET"),
            (libc::CLONE_NEWPID, "|CLONE_NEWPID"),
        ];
        let named: String = names
            .iter()
            .filter(|(flag, _)| extra & flag != 0)
            .map(|(_, name)| *name)
            .collect();
        return Err(format!(
            "unshare(CLONE_NEWUSER{named}): {}",
            std::io::Error::last_os_error()
        ));
    }
    let write = |file: &str, text: String| {
        std::fs::write(file, text).map_err(|e| format!("cannot write {file}: {e}"))
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

/// How many processes and threads the real user has (best effort, from /proc).
fn processes_of_this_user() -> u64 {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut count = 0u64;
    for entry in entries.flatten() {
        if !entry.file_name().as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        if field("Uid:") == Some(u64::from(uid)) {
            count += field("Threads:").unwrap_or(1);
        }
    }
    count
}

fn apply(args: &HelperArgs) -> Result<(), String> {
    if let Some(procs) = &args.cgroup_procs {
        std::fs::write(procs, std::process::id().to_string())
            .map_err(|e| format!("cannot join cgroup {}: {e}", procs.display()))?;
    }
    set_limit(libc::RLIMIT_CORE, 0, 0)?;
    if let Some(cpu) = args.cpu_s {
        // The soft limit sends SIGXCPU; the hard one, a second later, SIGKILL.
        set_limit(libc::RLIMIT_CPU, cpu, cpu + 1)?;
    }
    for (resource, value) in [
        (libc::RLIMIT_AS, args.address_space),
        (libc::RLIMIT_FSIZE, args.file_size),
        (libc::RLIMIT_NOFILE, args.open_files),
    ] {
        if let Some(value) = value {
            set_limit(resource, value, value)?;
        }
    }
    let namespaces = if args.no_network {
        libc::CLONE_NEWNET
    } else {
        0
    } | if args.own_pids { libc::CLONE_NEWPID } else { 0 };
    if namespaces != 0 {
        enter_namespaces(namespaces)?;
    }
    if let Some(processes) = args.processes {
        // RLIMIT_NPROC counts every process of the user: inside a fresh user
        // namespace the count starts afresh, elsewhere the user's existing
        // processes are added so the evaluator still gets `processes` more.
        let existing = if namespaces != 0 {
            0
        } else {
            processes_of_this_user()
        };
        let limit = processes.saturating_add(existing);
        set_limit(libc::RLIMIT_NPROC, limit, limit)?;
    }
    if args.write_only_in.is_some() || args.deny_tcp {
        landlock::confine(args.write_only_in.as_deref(), args.deny_tcp)?;
    }
    Ok(())
}

pub(crate) fn exec(argv: &[OsString]) -> String {
    let strings: Result<Vec<CString>, _> = argv
        .iter()
        .map(|a| CString::new(a.clone().into_vec()))
        .collect();
    let Ok(strings) = strings else {
        return "an argument contains a NUL byte".into();
    };
    let mut pointers: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // SAFETY: `pointers` is a NULL-terminated array of valid C strings that
    // outlive the call; execvp only returns on failure.
    unsafe {
        libc::execvp(pointers[0], pointers.as_ptr());
    }
    format!(
        "cannot execute {}: {}",
        String::from_utf8_lossy(argv[0].as_bytes()),
        std::io::Error::last_os_error()
    )
}

/// The helper's entry point (`evolve __sandbox [options] -- command...`):
/// applies the layers to this process, then execs the command. Returns only
/// the exit status to use when something failed (after printing why).
pub fn helper_main(args: Vec<OsString>) -> i32 {
    // The Rust runtime ignores SIGPIPE; an ignored signal would survive exec
    // and change how the evaluator's pipelines end.
    // SAFETY: setting a signal disposition to its default in a single-threaded process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let result = parse_helper_args(args).and_then(|args| {
        if let Some(namespace) = args.probe {
            enter_namespaces(namespace)?;
            if namespace == libc::CLONE_NEWPID {
                return match pid_namespace::run_as_init(&[OsString::from("true")])? {
                    0 => Ok(0),
                    status => Err(format!("a process in a PID namespace exited with {status}")),
                };
            }
            return Ok(0);
        }
        apply(&args)?;
        if args.own_pids {
            return pid_namespace::run_as_init(&args.argv);
        }
        Err(exec(&args.argv))
    });
    match result {
        Ok(status) => status,
        Err(why) => {
            eprintln!("{HELPER_MARK} {why}");
            HELPER_FAILED
        }
    }
}

/// The helper's own failure message in `stderr`, if the helper failed before exec.
pub(crate) fn helper_failure(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .find_map(|l| l.strip_prefix(HELPER_MARK).map(|m| m.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_arguments_round_trip_through_wrap() {
        let limits = SandboxSpec {
            restrict_writes: true,
            ..SandboxSpec::default()
        };
        let plan = Plan {
            launcher: Some("/bin/evolve".into()),
            cgroup_base: None,
            deny_network: true,
            deny_tcp: true,
            own_pids: true,
            confine_writes: true,
            limits,
        };
        let argv = vec!["python3".to_string(), "-c".into(), "print(1)".into()];
        let wrapped = plan.wrap(
            &argv,
            Path::new("/tmp/w"),
            Some(7),
            Some(Path::new("/cg/procs")),
        );
        assert_eq!(wrapped[0], "/bin/evolve");
        assert_eq!(wrapped[1], HELPER_SUBCOMMAND);
        let parsed = parse_helper_args(wrapped[2..].to_vec()).unwrap();
        assert_eq!(parsed.cpu_s, Some(7));
        assert_eq!(parsed.address_space, Some(8192 << 20));
        assert_eq!(parsed.processes, Some(256));
        assert_eq!(parsed.cgroup_procs.as_deref(), Some(Path::new("/cg/procs")));
        assert_eq!(parsed.write_only_in.as_deref(), Some(Path::new("/tmp/w")));
        assert!(parsed.no_network && parsed.own_pids && parsed.deny_tcp);
        assert_eq!(
            parsed.argv,
            argv.iter().map(OsString::from).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_helper_arguments_are_refused() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(parse_helper_args(args(&["--cpu", "x", "--", "true"])).is_err());
        assert!(parse_helper_args(args(&["--bogus", "--", "true"])).is_err());
        assert!(parse_helper_args(args(&["--cpu", "1"])).is_err());
    }

    #[test]
    fn without_a_helper_the_command_runs_as_is() {
        let plan = Plan::unconfined(&SandboxSpec::default());
        let argv = vec!["true".to_string()];
        assert_eq!(
            plan.wrap(&argv, Path::new("/tmp"), Some(1), None),
            vec![OsString::from("true")]
        );
    }
}
