//! Landlock through raw system calls: confine all writes to one directory,
//! and (ABI 4 and later) deny every TCP connect and bind.
//!
//! Only the write-like rights are handled, so reading and executing stay
//! unrestricted while creating, changing or removing files outside the
//! allowed directory fails with `EACCES`. The TCP rule is the fallback for
//! denying the network where a network namespace cannot be had.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const CREATE_RULESET_VERSION: libc::c_uint = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

const WRITE_FILE: u64 = 1 << 1;
const REMOVE_DIR: u64 = 1 << 4;
const REMOVE_FILE: u64 = 1 << 5;
const MAKE_CHAR: u64 = 1 << 6;
const MAKE_DIR: u64 = 1 << 7;
const MAKE_REG: u64 = 1 << 8;
const MAKE_SOCK: u64 = 1 << 9;
const MAKE_FIFO: u64 = 1 << 10;
const MAKE_BLOCK: u64 = 1 << 11;
const MAKE_SYM: u64 = 1 << 12;
const REFER: u64 = 1 << 13;
const TRUNCATE: u64 = 1 << 14;

const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;

/// The first ABI that can restrict TCP.
pub(crate) const NET_ABI: u32 = 4;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the kernel offers, or why there is none.
pub(crate) fn abi_version() -> Result<u32, String> {
    // SAFETY: asking for the version takes no pointers (NULL attr, size 0).
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if version < 1 {
        Err(format!(
            "landlock is not available: {}",
            std::io::Error::last_os_error()
        ))
    } else {
        Ok(version as u32)
    }
}

/// The write rights understood by a kernel of Landlock ABI `abi`.
fn write_rights(abi: u32) -> u64 {
    let mut rights = WRITE_FILE
        | REMOVE_DIR
        | REMOVE_FILE
        | MAKE_CHAR
        | MAKE_DIR
        | MAKE_REG
        | MAKE_SOCK
        | MAKE_FIFO
        | MAKE_BLOCK
        | MAKE_SYM;
    if abi >= 2 {
        rights |= REFER;
    }
    if abi >= 3 {
        rights |= TRUNCATE;
    }
    rights
}

struct OwnedFd(libc::c_int);

impl Drop for OwnedFd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is owned by this guard and closed once.
        unsafe {
            libc::close(self.0);
        }
    }
}

fn open_path(path: &Path) -> Result<OwnedFd, String> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
    // SAFETY: `name` is a valid C string; O_PATH opens without access checks on content.
    let fd = unsafe { libc::open(name.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!(
            "cannot open {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(OwnedFd(fd))
}

/// Restricts this process (and everything it starts): with `writes_in`, to
/// writing under that directory and to `/dev/null`; with `deny_tcp`, to no
/// TCP connect or bind at all. Must run single-threaded, right before `exec`.
pub(crate) fn confine(writes_in: Option<&Path>, deny_tcp: bool) -> Result<(), String> {
    let abi = abi_version()?;
    if deny_tcp && abi < NET_ABI {
        return Err(format!(
            "landlock ABI {abi} cannot restrict TCP (needs {NET_ABI})"
        ));
    }
    let rights = if writes_in.is_some() {
        write_rights(abi)
    } else {
        0
    };
    let attr = RulesetAttr {
        handled_access_fs: rights,
        handled_access_net: if deny_tcp {
            NET_BIND_TCP | NET_CONNECT_TCP
        } else {
            0
        },
    };
    // Older kernels reject the larger struct, so pass only what they know.
    let size = if abi >= NET_ABI {
        std::mem::size_of::<RulesetAttr>()
    } else {
        std::mem::size_of::<u64>()
    };
    // SAFETY: `attr` lives across the call and `size` never exceeds it.
    let ruleset = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    };
    if ruleset < 0 {
        return Err(format!(
            "landlock_create_ruleset: {}",
            std::io::Error::last_os_error()
        ));
    }
    let ruleset = OwnedFd(ruleset as libc::c_int);
    let file_rights = WRITE_FILE | if abi >= 3 { TRUNCATE } else { 0 };
    let writable = writes_in
        .map(|dir| [(dir, rights), (Path::new("/dev/null"), file_rights)])
        .into_iter()
        .flatten();
    for (path, allowed) in writable {
        let target = open_path(path)?;
        let rule = PathBeneathAttr {
            allowed_access: allowed,
            parent_fd: target.0,
        };
        // SAFETY: `rule` is a valid packed path-beneath attribute for the call's duration.
        let added = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset.0,
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0u32,
            )
        };
        if added < 0 {
            return Err(format!(
                "landlock_add_rule for {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
    }
    // SAFETY: plain prctl/syscall calls on this process with integer arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!(
                "prctl(NO_NEW_PRIVS): {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.0, 0u32) != 0 {
            return Err(format!(
                "landlock_restrict_self: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
