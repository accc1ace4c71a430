//! The seccomp filters every sandboxed command runs under.
//!
//! Default allow with a deny list, not default deny: functions run arbitrary interpreters and
//! native extensions whose syscall needs are unknown, and the other layers (user namespace, no
//! capabilities, read-only root) already confine the allowed calls. The deny list removes the
//! kernel surfaces that are the usual escape or exploit routes.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch, sock_filter,
};

/// Syscalls that fail with EPERM whatever their arguments.
fn denied() -> Vec<i64> {
    use libc::*;
    #[allow(unused_mut)]
    let mut v: Vec<i64> = vec![
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_unshare,
        SYS_setns,
        SYS_bpf,
        SYS_perf_event_open,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_userfaultfd,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
        SYS_kexec_load,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_swapon,
        SYS_swapoff,
        SYS_reboot,
        SYS_open_by_handle_at,
        SYS_name_to_handle_at,
        SYS_fsopen,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fspick,
        SYS_move_mount,
        SYS_open_tree,
        SYS_mount_setattr,
        SYS_quotactl,
        SYS_acct,
        SYS_syslog,
        SYS_settimeofday,
        SYS_clock_settime,
        SYS_clock_adjtime,
        SYS_adjtimex,
        SYS_sethostname,
        SYS_setdomainname,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([SYS_kexec_file_load, SYS_iopl, SYS_ioperm, SYS_uselib]);
    v
}

/// Every CLONE_NEW* flag: `clone` with any of them is how namespaces are made without `unshare`.
const CLONE_NEW_FLAGS: [u64; 8] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    0x80, // CLONE_NEWTIME
];

#[derive(Debug, thiserror::Error)]
#[error("cannot build the seccomp filter: {0}")]
pub(crate) struct FilterError(String);

fn arch() -> Result<TargetArch, FilterError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| FilterError(e.to_string()))
}

/// The filters, in the order they are installed.
pub(crate) fn filters() -> Result<Vec<BpfProgram>, FilterError> {
    let err = |e: seccompiler::BackendError| FilterError(e.to_string());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denied().into_iter().map(|n| (n, Vec::new())).collect();
    // personality(2) is needed by some runtimes to query (0xffffffff) the persona; deny only changes
    // that disable ASLR or turn on READ_IMPLIES_EXEC: allow the query, deny anything else.
    rules.insert(
        libc::SYS_personality,
        vec![
            SeccompRule::new(vec![
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, 0xffff_ffff)
                    .map_err(err)?,
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, 0).map_err(err)?,
            ])
            .map_err(err)?,
        ],
    );
    let mut clone_rules = Vec::new();
    for flag in CLONE_NEW_FLAGS {
        clone_rules.push(
            SeccompRule::new(vec![
                SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flag), flag)
                    .map_err(err)?,
            ])
            .map_err(err)?,
        );
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let deny =
        SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch()?)
            .map_err(err)?;
    // clone3 passes its flags in memory, out of a filter's reach: make it look absent so libc
    // falls back to clone, whose flags the filter above sees.
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(err)?;
    let mut out = Vec::new();
    if let Some(x32) = x32_guard() {
        out.push(x32);
    }
    out.push(BpfProgram::try_from(deny).map_err(err)?);
    out.push(BpfProgram::try_from(clone3).map_err(err)?);
    Ok(out)
}

/// On x86_64, x32-ABI syscall numbers (bit 30 set) carry the same audit arch as native ones, so a
/// filter keyed on numbers would not see `mount` called as an x32 syscall: refuse them all.
fn x32_guard() -> Option<BpfProgram> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JGE_K: u16 = 0x35;
    const BPF_RET_K: u16 = 0x06;
    let stmt = |code, k| sock_filter { code, jt: 0, jf: 0, k };
    Some(vec![
        stmt(BPF_LD_W_ABS, 0), // seccomp_data.nr
        sock_filter { code: BPF_JGE_K, jt: 0, jf: 1, k: 0x4000_0000 },
        stmt(BPF_RET_K, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW),
    ])
}

/// Installs the filters on the calling thread (and sets NO_NEW_PRIVS, which they require).
pub(crate) fn apply(filters: &[BpfProgram]) -> Result<(), String> {
    for f in filters {
        seccompiler::apply_filter(f).map_err(|e| format!("cannot install the seccomp filter: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_build() {
        let f = filters().unwrap();
        assert_eq!(f.len(), if cfg!(target_arch = "x86_64") { 3 } else { 2 });
        assert!(f.iter().all(|p| !p.is_empty() && p.len() < 4096));
    }

    #[test]
    fn deny_list_covers_the_brief() {
        let d = denied();
        for n in [libc::SYS_mount, libc::SYS_ptrace, libc::SYS_unshare, libc::SYS_setns, libc::SYS_bpf] {
            assert!(d.contains(&n), "{n}");
        }
    }

    #[test]
    fn filter_works_in_a_child() {
        // Install in a forked child (filters cannot be removed) and check the verdicts.
        let f = filters().unwrap();
        // SAFETY: the child only makes raw syscalls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = (|| {
                if apply(&f).is_err() {
                    return 10;
                }
                // SAFETY: raw syscalls with null/zero arguments.
                unsafe {
                    if libc::syscall(libc::SYS_unshare, 0) != -1 || *libc::__errno_location() != libc::EPERM {
                        return 11;
                    }
                    if libc::syscall(libc::SYS_clone3, 0, 0) != -1
                        || *libc::__errno_location() != libc::ENOSYS
                    {
                        return 12;
                    }
                    if libc::syscall(
                        libc::SYS_clone,
                        libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64,
                        0,
                        0,
                        0,
                        0,
                    ) != -1
                        || *libc::__errno_location() != libc::EPERM
                    {
                        return 13;
                    }
                    if libc::getpid() <= 0 {
                        return 14;
                    }
                }
                0
            })();
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "status {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
