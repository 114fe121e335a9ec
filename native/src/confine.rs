//! Confinement of the process that is about to become a script's Deno: no
//! capabilities (bounding set emptied, then an unprivileged uid/gid), and a
//! Landlock domain that reads only what it is given and opens no TCP socket.
//! Called in a fresh single-threaded launcher right before `execve`, so the
//! restrictions hold for Deno and everything it could start.

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use crate::error::{Error, Result};

/// The newest Landlock ABI this code was tested against; newer kernels get
/// these rules, older ones the subset they understand (best effort).
const TESTED_ABI: ABI = ABI::V7;

pub struct Confinement {
    pub uid: u32,
    pub gid: u32,
    /// Files and trees Deno may read and map executable (its binary, libraries).
    pub read_exec: Vec<String>,
    /// Files and trees it may only read (the script's copy, the SDK).
    pub read: Vec<String>,
    /// Trees it may read and write (its scratch cache, on a tmpfs its cgroup pays for).
    pub read_write: Vec<String>,
}

/// What the kernel enforced: "full", "partial" or "none" (no Landlock).
pub fn confine(c: &Confinement) -> Result<&'static str> {
    if c.uid == 0 || c.gid == 0 {
        return Err(Error::Invalid("a script never runs as root".into()));
    }
    drop_bounding_set()?;
    // SAFETY: plain syscalls on this process's credentials, no pointers kept.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(Error::last_os("setgroups"));
        }
        if libc::setresgid(c.gid, c.gid, c.gid) != 0 {
            return Err(Error::last_os("setresgid"));
        }
        // Leaving uid 0 clears the permitted, effective and ambient sets.
        if libc::setresuid(c.uid, c.uid, c.uid) != 0 {
            return Err(Error::last_os("setresuid"));
        }
    }
    let abi = TESTED_ABI;
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&c.read_exec, AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(&c.read, AccessFs::from_read(abi) & !AccessFs::Execute)))
        .and_then(|r| r.add_rules(path_beneath_rules(&c.read_write, AccessFs::from_all(abi) & !AccessFs::Execute)))
        // Sets no_new_privs too: nothing exec'd later can gain privileges.
        .and_then(|r| r.restrict_self())
        .map_err(|e| Error::Invalid(format!("landlock: {e}")))?;
    if !status.no_new_privs {
        return Err(Error::Invalid("no_new_privs could not be set".into()));
    }
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "full",
        RulesetStatus::PartiallyEnforced => "partial",
        RulesetStatus::NotEnforced => "none",
    })
}

/// The highest Landlock ABI the running kernel offers (0: none), for `coral doctor`.
pub fn landlock_abi() -> i64 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attr only queries.
    unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) }.max(0)
}

fn drop_bounding_set() -> Result<()> {
    let last: i32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    for cap in 0..=last {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(Error::last_os("PR_CAPBSET_DROP"));
        }
    }
    Ok(())
}
