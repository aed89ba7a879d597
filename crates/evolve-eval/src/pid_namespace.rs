//! Running the evaluator in a fresh PID namespace under a tiny init.
//!
//! After `unshare(CLONE_NEWPID)` only the helper's children live in the new
//! namespace, so the helper forks an init (PID 1 there) which forks the
//! evaluator and reaps every orphan until the evaluator is gone. When init
//! exits the kernel kills whatever is left in the namespace, so no
//! grandchild survives, even one that called `setsid()`. The evaluator is not
//! PID 1 itself, so signals such as SIGXCPU keep their default effect. Init
//! passes the evaluator's wait status to the outer helper through a pipe, and
//! the helper mirrors it: the same exit code, or death by the same signal.

use std::ffi::OsString;

use crate::sandbox::{HELPER_FAILED, HELPER_MARK, exec};

fn last_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Forks init and the evaluator; returns the exit status the helper should
/// exit with (having already re-raised a fatal signal where there was one).
pub(crate) fn run_as_init(argv: &[OsString]) -> Result<i32, String> {
    let mut pipe = [0 as libc::c_int; 2];
    // SAFETY: `pipe` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last_error("pipe2"));
    }
    let [status_read, status_write] = pipe;
    // SAFETY: the helper is single-threaded, so forking is sound.
    let init = unsafe { libc::fork() };
    if init < 0 {
        return Err(last_error("fork (PID namespace init)"));
    }
    if init == 0 {
        // SAFETY: closing our copy of the read end; init only writes.
        unsafe { libc::close(status_read) };
        init_main(argv, status_write);
    }
    // SAFETY: the outer helper only reads; ignoring SIGTERM here (never in
    // the children) keeps it alive to reap init after a graceful stop, since
    // init itself cannot be stopped by SIGTERM and would otherwise linger as
    // an orphan zombie in the evaluation's cgroup.
    unsafe {
        libc::close(status_write);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    let mut init_status = 0;
    // SAFETY: waiting for our own child with a valid status pointer.
    while unsafe { libc::waitpid(init, &mut init_status, 0) } < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(last_error("waitpid (init)"));
        }
    }
    let mut bytes = [0u8; 4];
    // SAFETY: reading at most 4 bytes into a 4-byte buffer.
    let got = unsafe { libc::read(status_read, bytes.as_mut_ptr().cast(), bytes.len()) };
    let status = if got == 4 {
        i32::from_ne_bytes(bytes)
    } else {
        init_status
    };
    Ok(mirror(status))
}

/// Exits like `status` describes: re-raises a fatal signal, else returns the code.
fn mirror(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        // SAFETY: restoring the default action and raising a signal on ourselves.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        128 + signal
    } else if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        HELPER_FAILED
    }
}

/// PID 1 of the namespace: start the evaluator, reap everything, report.
fn init_main(argv: &[OsString], status_write: libc::c_int) -> ! {
    // SAFETY: init is single-threaded (a fork of the single-threaded helper).
    let evaluator = unsafe { libc::fork() };
    if evaluator == 0 {
        // SAFETY: the evaluator must not hold the status pipe, and gets
        // default signal dispositions whatever init's are.
        unsafe {
            libc::close(status_write);
            libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        }
        let why = exec(argv);
        eprintln!("{HELPER_MARK} {why}");
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(HELPER_FAILED) };
    }
    if evaluator < 0 {
        eprintln!("{HELPER_MARK} {}", last_error("fork (evaluator)"));
        // SAFETY: as above.
        unsafe { libc::_exit(HELPER_FAILED) };
    }
    loop {
        let mut status = 0;
        // SAFETY: waiting for any child with a valid status pointer.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped == evaluator {
            let bytes = status.to_ne_bytes();
            // SAFETY: writing 4 bytes from a 4-byte buffer, then leaving.
            unsafe {
                libc::write(status_write, bytes.as_ptr().cast(), bytes.len());
                libc::_exit(0);
            }
        }
        if reaped < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // SAFETY: as above.
            unsafe { libc::_exit(HELPER_FAILED) };
        }
    }
}
