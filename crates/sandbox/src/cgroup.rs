//! The instance's cgroups: which hierarchy this host has, what to create and write, and removal.
//!
//! The cgroup files are written directly rather than through a cgroup crate: an instance needs a
//! handful of writes (three limits, one pid) into well-known files, both hierarchies are covered
//! in a page, and every error can then name the exact file that failed.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The controllers an isolated instance needs.
pub(crate) const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// The parent directory, under each controller, of every instance's cgroup.
const PARENT: &str = "yun";

const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    /// One mount point per controller (cpu may share one with cpuacct).
    /// `freezer` is optional: without it instances cannot be frozen, but still run.
    /// `cpuacct` is optional too: without it an instance's CPU time is not measured.
    V1 { memory: PathBuf, cpu: PathBuf, pids: PathBuf, freezer: Option<PathBuf>, cpuacct: Option<PathBuf> },
    /// The unified hierarchy's root.
    V2 { root: PathBuf },
}

/// The limits written into an instance's cgroups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    pub memory_bytes: u64,
    pub cpus: f64,
    pub pids_max: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Step {
    /// Create a directory; `fresh` = it is the instance's own (a shared parent may already exist).
    Mkdir { path: PathBuf, fresh: bool },
    /// Write a file; `required: false` = the file may not exist on this kernel.
    Write { path: PathBuf, value: String, required: bool },
}

fn mkdir(path: &Path, fresh: bool) -> Step {
    Step::Mkdir { path: path.to_path_buf(), fresh }
}

fn write(path: PathBuf, value: impl Into<String>, required: bool) -> Step {
    Step::Write { path, value: value.into(), required }
}

/// Everything to do for one instance, computed up front so it can be checked without a kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// `cgroup.procs` files that receive the instance's init pid.
    pub procs: Vec<PathBuf>,
    /// The instance's own directories, removed when it ends.
    pub remove: Vec<PathBuf>,
    /// File with an `oom_kill N` line counting the OOM kills in the instance.
    pub oom_file: PathBuf,
    /// The most memory the instance's processes have used (bytes).
    pub peak_file: PathBuf,
    /// The CPU time they have used, if this host accounts for it.
    pub cpu_file: Option<(PathBuf, CpuFormat)>,
    /// Where the instance is frozen and thawed, if this host can.
    pub freeze: Option<FreezeFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CpuFormat {
    /// v1 `cpuacct.usage`: one number, nanoseconds.
    Nanos,
    /// v2 `cpu.stat`: a `usage_usec N` line.
    StatUsec,
}

/// The freezer of one instance's cgroup: a frozen instance keeps its memory and gets no CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeFile {
    pub path: PathBuf,
    pub frozen: String,
    pub thawed: String,
}

impl FreezeFile {
    pub fn freeze(&self) -> io::Result<()> {
        std::fs::write(&self.path, &self.frozen)
    }

    pub fn thaw(&self) -> io::Result<()> {
        std::fs::write(&self.path, &self.thawed)
    }
}

/// Finds the hierarchy from `/sys/fs/cgroup` and `/proc/mounts`; the error names what is missing.
pub(crate) fn detect() -> Result<Hierarchy, String> {
    let root = Path::new("/sys/fs/cgroup");
    if let Ok(controllers) = std::fs::read_to_string(root.join("cgroup.controllers")) {
        let have: Vec<&str> = controllers.split_whitespace().collect();
        for c in CONTROLLERS {
            if !have.contains(&c) {
                return Err(format!(
                    "cgroup v2 controller `{c}` is not available (/sys/fs/cgroup/cgroup.controllers: {})",
                    controllers.trim()
                ));
            }
        }
        return Ok(Hierarchy::V2 { root: root.to_path_buf() });
    }
    let mounts =
        std::fs::read_to_string("/proc/mounts").map_err(|e| format!("cannot read /proc/mounts: {e}"))?;
    v1_from_mounts(&mounts)
}

/// Maps each v1 controller to its mount point, from `/proc/mounts` text.
pub(crate) fn parse_v1_mounts(mounts: &str) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 || fields[2] != "cgroup" {
            continue;
        }
        for opt in fields[3].split(',') {
            if matches!(
                opt,
                "memory" | "cpu" | "cpuacct" | "pids" | "freezer" | "cpuset" | "devices" | "blkio"
            ) {
                out.entry(opt.to_string()).or_insert_with(|| PathBuf::from(unescape_mount(fields[1])));
            }
        }
    }
    out
}

fn unescape_mount(s: &str) -> String {
    // /proc/mounts escapes space, tab, newline and backslash as octal.
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

pub(crate) fn v1_from_mounts(mounts: &str) -> Result<Hierarchy, String> {
    let map = parse_v1_mounts(mounts);
    let get = |c: &str| {
        map.get(c).cloned().ok_or_else(|| {
            format!(
                "cgroup controller `{c}` is not mounted (neither cgroup v2 nor a v1 `{c}` hierarchy found)"
            )
        })
    };
    Ok(Hierarchy::V1 {
        memory: get("memory")?,
        cpu: get("cpu")?,
        pids: get("pids")?,
        freezer: map.get("freezer").cloned(),
        cpuacct: map.get("cpuacct").cloned(),
    })
}

impl Hierarchy {
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Hierarchy::V1 { .. } => "cgroup v1 (memory, cpu, pids)",
            Hierarchy::V2 { .. } => "cgroup v2 (memory, cpu, pids)",
        }
    }

    /// The `yun` parent directories, where leftovers of a crashed yun are looked for.
    pub(crate) fn parents(&self) -> Vec<PathBuf> {
        match self {
            Hierarchy::V1 { memory, cpu, pids, freezer, cpuacct } => {
                let mut v = vec![memory.join(PARENT), cpu.join(PARENT), pids.join(PARENT)];
                v.extend(freezer.iter().map(|f| f.join(PARENT)));
                v.extend(cpuacct.iter().map(|f| f.join(PARENT)));
                v.dedup();
                v
            }
            Hierarchy::V2 { root } => vec![root.join(PARENT)],
        }
    }

    pub(crate) fn plan(&self, name: &str, limits: Limits) -> Plan {
        let quota = ((limits.cpus * CPU_PERIOD_US as f64) as u64).max(1000);
        match self {
            Hierarchy::V1 { memory, cpu, pids, freezer, cpuacct } => {
                let mem = memory.join(PARENT).join(name);
                let cpu_dir = cpu.join(PARENT).join(name);
                let pids_dir = pids.join(PARENT).join(name);
                let freezer_dir = freezer.as_ref().map(|f| f.join(PARENT).join(name));
                let cpuacct_dir = cpuacct.as_ref().map(|f| f.join(PARENT).join(name));
                let mut dirs = vec![mem.clone(), cpu_dir.clone(), pids_dir.clone()];
                dirs.extend(freezer_dir.clone());
                dirs.extend(cpuacct_dir.clone());
                // cpu and cpuacct usually share one hierarchy (`cpu,cpuacct`): one directory.
                let mut seen = std::collections::BTreeSet::new();
                dirs.retain(|d| seen.insert(d.clone()));
                let mut steps = Vec::new();
                for d in &dirs {
                    if let Some(p) = d.parent() {
                        steps.push(mkdir(p, false));
                    }
                    steps.push(mkdir(d, true));
                }
                let bytes = limits.memory_bytes.to_string();
                steps.extend([
                    write(mem.join("memory.limit_in_bytes"), bytes.clone(), true),
                    // memsw = memory + swap: equal to the limit means no swap at all.
                    write(mem.join("memory.memsw.limit_in_bytes"), bytes, false),
                    write(mem.join("memory.swappiness"), "0", false),
                    write(cpu_dir.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string(), true),
                    write(cpu_dir.join("cpu.cfs_quota_us"), quota.to_string(), true),
                    write(pids_dir.join("pids.max"), limits.pids_max.to_string(), true),
                ]);
                Plan {
                    steps,
                    procs: dirs.iter().map(|d| d.join("cgroup.procs")).collect(),
                    remove: dirs,
                    oom_file: mem.join("memory.oom_control"),
                    peak_file: mem.join("memory.max_usage_in_bytes"),
                    cpu_file: cpuacct_dir.map(|d| (d.join("cpuacct.usage"), CpuFormat::Nanos)),
                    freeze: freezer_dir.map(|d| FreezeFile {
                        path: d.join("freezer.state"),
                        frozen: "FROZEN".into(),
                        thawed: "THAWED".into(),
                    }),
                }
            }
            Hierarchy::V2 { root } => {
                let parent = root.join(PARENT);
                let dir = parent.join(name);
                let enable = "+memory +cpu +pids";
                // Controllers reach a cgroup only if its parent enables them for its children.
                let steps = vec![
                    write(root.join("cgroup.subtree_control"), enable, true),
                    mkdir(&parent, false),
                    write(parent.join("cgroup.subtree_control"), enable, true),
                    mkdir(&dir, true),
                    write(dir.join("memory.max"), limits.memory_bytes.to_string(), true),
                    write(dir.join("memory.swap.max"), "0", false),
                    write(dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"), true),
                    write(dir.join("pids.max"), limits.pids_max.to_string(), true),
                ];
                Plan {
                    steps,
                    procs: vec![dir.join("cgroup.procs")],
                    remove: vec![dir.clone()],
                    oom_file: dir.join("memory.events"),
                    // Since Linux 5.19; on older kernels the peak is not measured.
                    peak_file: dir.join("memory.peak"),
                    cpu_file: Some((dir.join("cpu.stat"), CpuFormat::StatUsec)),
                    freeze: Some(FreezeFile {
                        path: dir.join("cgroup.freeze"),
                        frozen: "1".into(),
                        thawed: "0".into(),
                    }),
                }
            }
        }
    }
}

impl Plan {
    /// Creates the directories and writes the limits; on error, whatever was created is removed.
    pub(crate) fn create(&self) -> io::Result<()> {
        let result = self.create_inner();
        if result.is_err() {
            self.remove_once();
        }
        result
    }

    fn create_inner(&self) -> io::Result<()> {
        for step in &self.steps {
            match step {
                Step::Mkdir { path, fresh } => {
                    if *fresh && path.exists() {
                        // A leftover of a crashed yun that had the same pid; empty, or this fails below.
                        let _ = std::fs::remove_dir(path);
                    }
                    match std::fs::create_dir(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !fresh => {}
                        Err(e) => return Err(with_path(e, "cannot create cgroup", path)),
                    }
                }
                Step::Write { path, value, required } => write_file(path, value, *required)?,
            }
        }
        Ok(())
    }

    /// Tries once to remove the instance's directories; true if none is left.
    pub(crate) fn remove_once(&self) -> bool {
        let mut all = true;
        for d in &self.remove {
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => all = false,
            }
        }
        all
    }

    /// The instance's peak memory (bytes) and CPU time so far (µs), each where measurable.
    pub(crate) fn usage(&self) -> (Option<u64>, Option<u64>) {
        let read = |p: &Path| std::fs::read_to_string(p).ok();
        let peak = read(&self.peak_file).and_then(|s| s.trim().parse().ok());
        let cpu = self.cpu_file.as_ref().and_then(|(path, format)| {
            let text = read(path)?;
            match format {
                CpuFormat::Nanos => text.trim().parse::<u64>().ok().map(|ns| ns / 1000),
                CpuFormat::StatUsec => text
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse().ok()),
            }
        });
        (peak, cpu)
    }

    /// How many processes the kernel OOM-killed in the instance so far (0 if unknown).
    pub(crate) fn oom_kills(&self) -> u64 {
        std::fs::read_to_string(&self.oom_file).map(|s| parse_oom_kill(&s)).unwrap_or(0)
    }
}

fn write_file(path: &Path, value: &str, required: bool) -> io::Result<()> {
    match std::fs::write(path, value) {
        Ok(()) => Ok(()),
        Err(e) if !required && e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(with_path(e, &format!("cannot write `{value}` to"), path)),
    }
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Reads the `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2).
pub(crate) fn parse_oom_kill(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("oom_kill "))
        .filter_map(|n| n.trim().parse().ok())
        .next()
        .unwrap_or(0)
}

/// The pid of the yun that created an instance cgroup named `<label>-<pid>-<id>`.
pub(crate) fn owner_pid(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(3, '-');
    let _id: u64 = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(pid)
}

/// Removes the instance cgroups a previous yun left behind: those whose creating yun is no longer
/// running (another live yun may have just created one that is still empty). Busy ones refuse
/// `rmdir` and are kept. Returns how many were removed.
pub(crate) fn remove_leftovers(h: &Hierarchy) -> usize {
    let mut n = 0;
    for parent in h.parents() {
        let Ok(entries) = std::fs::read_dir(&parent) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = owner_pid(&name)
                && Path::new(&format!("/proc/{pid}")).exists()
            {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) && std::fs::remove_dir(e.path()).is_ok() {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,nosuid,nodev,noexec,relatime,pids 0 0
";

    #[test]
    fn parses_v1_mounts() {
        let m = parse_v1_mounts(MOUNTS);
        assert_eq!(m["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(m["cpu"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m["cpuacct"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(!m.contains_key("freezer"));
        let h = v1_from_mounts(MOUNTS).unwrap();
        assert!(matches!(h, Hierarchy::V1 { .. }));
    }

    #[test]
    fn missing_controller_is_named() {
        let no_pids: String =
            MOUNTS.lines().filter(|l| !l.contains("pids")).map(|l| format!("{l}\n")).collect();
        let err = v1_from_mounts(&no_pids).unwrap_err();
        assert!(err.contains("cgroup controller `pids` is not mounted"), "{err}");
    }

    #[test]
    fn v1_plan_without_a_freezer_cannot_freeze() {
        let h = v1_from_mounts(MOUNTS).unwrap();
        let p = h.plan("x-1", Limits { memory_bytes: 1 << 20, cpus: 1.0, pids_max: 8 });
        assert_eq!((p.remove.len(), p.freeze), (3, None));
    }

    #[test]
    fn v1_plan() {
        let mounts = format!("{MOUNTS}cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0\n");
        let h = v1_from_mounts(&mounts).unwrap();
        let p = h.plan("hello-r3-1-7", Limits { memory_bytes: 64 << 20, cpus: 0.5, pids_max: 32 });
        assert_eq!(p.remove.len(), 4, "memory, cpu, pids and freezer");
        assert_eq!(
            p.freeze.as_ref().map(|f| (f.path.clone(), f.frozen.as_str())),
            Some((PathBuf::from("/sys/fs/cgroup/freezer/yun/hello-r3-1-7/freezer.state"), "FROZEN"))
        );
        let has = |path: &str, value: &str| p.steps.contains(&write(PathBuf::from(path), value, true));
        assert!(has(
            "/sys/fs/cgroup/memory/yun/hello-r3-1-7/memory.limit_in_bytes",
            &(64u64 << 20).to_string()
        ));
        assert!(has("/sys/fs/cgroup/cpu,cpuacct/yun/hello-r3-1-7/cpu.cfs_quota_us", "50000"));
        assert!(has("/sys/fs/cgroup/pids/yun/hello-r3-1-7/pids.max", "32"));
        assert_eq!(p.oom_file, PathBuf::from("/sys/fs/cgroup/memory/yun/hello-r3-1-7/memory.oom_control"));
        assert_eq!(
            p.peak_file,
            PathBuf::from("/sys/fs/cgroup/memory/yun/hello-r3-1-7/memory.max_usage_in_bytes")
        );
        assert_eq!(
            p.cpu_file,
            Some((
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/yun/hello-r3-1-7/cpuacct.usage"),
                CpuFormat::Nanos
            ))
        );
        assert_eq!(p.steps[0], mkdir(Path::new("/sys/fs/cgroup/memory/yun"), false));
    }

    #[test]
    fn v2_plan() {
        let h = Hierarchy::V2 { root: "/sys/fs/cgroup".into() };
        let p = h.plan("a-1", Limits { memory_bytes: 1000, cpus: 2.0, pids_max: 10 });
        assert_eq!(p.remove, vec![PathBuf::from("/sys/fs/cgroup/yun/a-1")]);
        assert!(p.steps.contains(&write("/sys/fs/cgroup/yun/a-1/cpu.max".into(), "200000 100000", true)));
        assert_eq!(
            p.steps[0],
            write("/sys/fs/cgroup/cgroup.subtree_control".into(), "+memory +cpu +pids", true)
        );
        assert_eq!(p.oom_file, PathBuf::from("/sys/fs/cgroup/yun/a-1/memory.events"));
        assert_eq!(p.peak_file, PathBuf::from("/sys/fs/cgroup/yun/a-1/memory.peak"));
        assert_eq!(p.freeze.unwrap().path, PathBuf::from("/sys/fs/cgroup/yun/a-1/cgroup.freeze"));
    }

    #[test]
    fn a_separate_cpuacct_hierarchy_gets_its_own_directory() {
        let mounts = MOUNTS.replace(
            "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0",
            "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\ncgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0",
        );
        let p = v1_from_mounts(&mounts)
            .unwrap()
            .plan("b-1", Limits { memory_bytes: 1 << 20, cpus: 1.0, pids_max: 8 });
        assert_eq!(p.remove.len(), 4, "memory, cpu, pids and cpuacct: {:?}", p.remove);
        assert!(p.procs.contains(&PathBuf::from("/sys/fs/cgroup/cpuacct/yun/b-1/cgroup.procs")));
    }

    #[test]
    fn usage_reads_v2_cpu_stat_and_v1_nanoseconds() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Hierarchy::V2 { root: dir.path().into() }
            .plan("u", Limits { memory_bytes: 1, cpus: 1.0, pids_max: 1 });
        std::fs::create_dir_all(p.peak_file.parent().unwrap()).unwrap();
        std::fs::write(&p.peak_file, "5242880\n").unwrap();
        std::fs::write(&p.cpu_file.as_ref().unwrap().0, "usage_usec 1234\nuser_usec 1000\n").unwrap();
        assert_eq!(p.usage(), (Some(5 << 20), Some(1234)));
        let nanos = dir.path().join("cpuacct.usage");
        std::fs::write(&nanos, "7000000\n").unwrap();
        p.cpu_file = Some((nanos, CpuFormat::Nanos));
        assert_eq!(p.usage().1, Some(7000));
        p.peak_file = dir.path().join("missing");
        assert_eq!(p.usage().0, None);
    }

    #[test]
    fn owner_pid_from_name() {
        assert_eq!(owner_pid("hello-r3-1234-7"), Some(1234));
        assert_eq!(owner_pid("selftest-99-1"), Some(99));
        assert_eq!(owner_pid("x-1"), None);
        assert_eq!(owner_pid("a-b-c"), None);
    }

    #[test]
    fn oom_counter() {
        assert_eq!(parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3);
        assert_eq!(parse_oom_kill("low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n"), 1);
        assert_eq!(parse_oom_kill("oom_kill_disable 0\n"), 0);
    }
}
