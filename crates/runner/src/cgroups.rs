//! Resource limits, device access and freezing through cgroups: a controller is taken
//! from the unified (v2) hierarchy when it is enabled there, else from its v1 hierarchy
//! (hybrid hosts). Device access needs the v1 devices controller: cgroup v2 has none (it
//! takes a BPF_PROG_TYPE_CGROUP_DEVICE program, which unionctl does not load), so on a
//! pure v2 host a root container's devices are not restricted and `create` warns.
use crate::error::{Context, Result};
use crate::flags::DeviceRule;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
}

/// Where each controller lives on this host.
#[derive(Debug, Clone, PartialEq)]
pub enum Hierarchy {
    /// The unified tree at this mount point.
    V2(PathBuf),
    /// A v1 hierarchy mounted here for this controller.
    V1(PathBuf),
}

#[derive(Debug, Default)]
pub struct Mounts {
    pub v2: Option<PathBuf>,
    /// (controllers, mount point) of each v1 hierarchy.
    pub v1: Vec<(Vec<String>, PathBuf)>,
}

/// cgroup mounts from /proc/self/mountinfo text.
pub fn parse_mounts(mountinfo: &str) -> Mounts {
    let mut m = Mounts::default();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = pre.split(' ').nth(4).unwrap_or("");
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let opts = post.next().unwrap_or("");
        match fstype {
            "cgroup2" if m.v2.is_none() => m.v2 = Some(PathBuf::from(mount_point)),
            "cgroup" => {
                let ctrls: Vec<String> = opts
                    .split(',')
                    .filter(|o| {
                        // Super options that are not controllers.
                        !o.contains('=')
                            && !matches!(
                                *o,
                                "rw" | "ro"
                                    | "xattr"
                                    | "noprefix"
                                    | "clone_children"
                                    | "cpuset_v2_mode"
                                    | "favordynmods"
                            )
                    })
                    .map(str::to_string)
                    .collect();
                if !ctrls.is_empty() {
                    m.v1.push((ctrls, PathBuf::from(mount_point)));
                }
            }
            _ => {}
        }
    }
    m
}

/// Our own cgroup path in a hierarchy, from /proc/self/cgroup text: `0::/x` for v2,
/// `N:ctrl,ctrl:/x` for v1.
pub fn own_path(proc_cgroup: &str, controller: Option<&str>) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let hit = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_string())
    })
}

impl Mounts {
    pub fn read() -> Mounts {
        parse_mounts(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
    }

    /// The hierarchy serving `controller`: v2 when it is enabled in the unified root.
    pub fn find(&self, controller: &str) -> Option<Hierarchy> {
        if let Some(v2) = &self.v2 {
            let enabled = fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
            if enabled.split_whitespace().any(|c| c == controller) {
                return Some(Hierarchy::V2(v2.clone()));
            }
        }
        self.v1
            .iter()
            .find(|(ctrls, _)| ctrls.iter().any(|c| c == controller))
            .map(|(_, p)| Hierarchy::V1(p.clone()))
    }
}

/// Directory of the container's cgroup in `h`: `unionctl/<id>` below the hierarchy root
/// as root, below our own cgroup (a delegated subtree) rootless.
fn cgroup_dir(h: &Hierarchy, controller: &str, id: &str, rootless: bool) -> PathBuf {
    let (mount, key) = match h {
        Hierarchy::V2(m) => (m, None),
        Hierarchy::V1(m) => (m, Some(controller)),
    };
    let base = if rootless {
        let own = own_path(
            &fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
            key,
        )
        .unwrap_or_else(|| "/".into());
        mount.join(own.trim_start_matches('/'))
    } else {
        mount.join("unionctl")
    };
    base.join(format!("unionctl-{}", &id[..12.min(id.len())]))
}

/// The limit files to write for each controller.
pub fn limit_writes(limits: &Limits, v2: bool) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if let Some(m) = limits.memory {
        if v2 {
            out.push(("memory", "memory.max", m.to_string()));
        } else {
            out.push(("memory", "memory.limit_in_bytes", m.to_string()));
        }
    }
    if let Some(c) = limits.cpus {
        let period = 100_000u64;
        let quota = ((c * period as f64).round() as u64).max(1000);
        if v2 {
            out.push(("cpu", "cpu.max", format!("{quota} {period}")));
        } else {
            out.push(("cpu", "cpu.cfs_period_us", period.to_string()));
            out.push(("cpu", "cpu.cfs_quota_us", quota.to_string()));
        }
    }
    if let Some(p) = limits.pids {
        let v = if p <= 0 {
            "max".to_string()
        } else {
            p.to_string()
        };
        out.push(("pids", "pids.max", v));
    }
    out
}

/// The cgroups of one container.
#[derive(Debug, Default)]
pub struct Cgroups {
    pub dirs: Vec<PathBuf>,
}

/// The device cgroup's files in the order they are written: deny everything (which also
/// drops the list inherited from the parent), then allow each rule.
pub fn device_writes(rules: &[DeviceRule]) -> Vec<(&'static str, String)> {
    std::iter::once(("devices.deny", "a".to_string()))
        .chain(rules.iter().map(|r| ("devices.allow", r.to_string())))
        .collect()
}

/// Makes the container's cgroups and writes the limits; every requested limit is applied
/// or this fails naming the controller and the cause. `devices` (root only; None allows
/// every device) is written to a v1 devices cgroup; rootless containers get none (they
/// cannot make one, and their mounts are nodev to the kernel: a user namespace cannot
/// make or open a device node but the host's own, bound in). Without limits or a device
/// list nothing is made: joining a v1 cgroup costs milliseconds (the freezer for pause is
/// made on demand).
pub fn create(
    id: &str,
    limits: &Limits,
    devices: Option<&[DeviceRule]>,
    rootless: bool,
) -> Result<Cgroups> {
    let devices = devices.filter(|_| !rootless);
    if *limits == Limits::default() && devices.is_none() {
        return Ok(Cgroups::default());
    }
    let mounts = Mounts::read();
    let mut cg = Cgroups::default();
    let mut result = create_into(&mut cg, &mounts, id, limits, rootless);
    if let (Ok(()), Some(rules)) = (&result, devices) {
        result = create_devices(&mut cg, &mounts, id, rules);
    }
    if let Err(e) = result {
        cg.remove();
        return Err(e);
    }
    Ok(cg)
}

fn create_into(
    cg: &mut Cgroups,
    mounts: &Mounts,
    id: &str,
    limits: &Limits,
    rootless: bool,
) -> Result<()> {
    let mut wanted: Vec<&str> = Vec::new();
    if limits.memory.is_some() {
        wanted.push("memory");
    }
    if limits.cpus.is_some() {
        wanted.push("cpu");
    }
    if limits.pids.is_some() {
        wanted.push("pids");
    }
    for ctrl in &wanted {
        let Some(h) = mounts.find(ctrl) else {
            bail!("cannot limit {ctrl}: this host has no {ctrl} cgroup controller mounted");
        };
        let v2 = matches!(h, Hierarchy::V2(_));
        let dir = cgroup_dir(&h, ctrl, id, rootless);
        if v2 {
            enable_v2_controller(&h, &dir, ctrl)?;
        }
        make_dir(cg, &dir, ctrl, rootless)?;
        for (c, file, value) in limit_writes(limits, v2) {
            if c == *ctrl {
                fs::write(dir.join(file), &value).with_context(|| {
                    format!(
                        "cannot limit {ctrl}: write {value} to {}",
                        dir.join(file).display()
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// Why root containers' device access cannot be restricted on this host, if it cannot:
/// no v1 devices controller (a pure cgroup v2 host).
pub fn devices_unrestricted(mounts: &Mounts) -> Option<&'static str> {
    match mounts.find("devices") {
        Some(Hierarchy::V1(_)) => None,
        _ => Some(
            "device access is not restricted: this host has no cgroup v1 devices controller \
             (cgroup v2 needs a BPF device program, which unionctl does not load)",
        ),
    }
}

/// The v1 devices cgroup of a root container with `rules` as its list; a warning (and no
/// cgroup) when the host has no v1 devices controller.
fn create_devices(cg: &mut Cgroups, mounts: &Mounts, id: &str, rules: &[DeviceRule]) -> Result<()> {
    if let Some(why) = devices_unrestricted(mounts) {
        log::warn!("container {}: {why}", &id[..12.min(id.len())]);
        return Ok(());
    }
    let Some(h) = mounts.find("devices") else {
        return Ok(());
    };
    let dir = cgroup_dir(&h, "devices", id, false);
    make_dir(cg, &dir, "devices", false)?;
    for (file, line) in device_writes(rules) {
        let path = dir.join(file);
        fs::write(&path, &line)
            .with_context(|| format!("device cgroup: write {line:?} to {}", path.display()))?;
    }
    Ok(())
}

fn make_dir(cg: &mut Cgroups, dir: &Path, ctrl: &str, rootless: bool) -> Result<()> {
    if cg.dirs.iter().any(|d| d == dir) {
        return Ok(());
    }
    if let Err(e) = fs::create_dir_all(dir) {
        let hint = if rootless {
            " (rootless: the cgroup is not delegated to this user)"
        } else {
            ""
        };
        bail!("cannot limit {ctrl}: mkdir {}: {e}{hint}", dir.display());
    }
    cg.dirs.push(dir.to_path_buf());
    Ok(())
}

/// In v2 a controller must be enabled in every ancestor's cgroup.subtree_control.
fn enable_v2_controller(h: &Hierarchy, dir: &Path, ctrl: &str) -> Result<()> {
    let Hierarchy::V2(root) = h else {
        return Ok(());
    };
    let mut ancestors: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|p| p.starts_with(root))
        .collect();
    ancestors.reverse();
    for a in ancestors {
        let _ = fs::create_dir_all(a);
        let control = a.join("cgroup.subtree_control");
        let current = fs::read_to_string(&control).unwrap_or_default();
        if current.split_whitespace().any(|c| c == ctrl) {
            continue;
        }
        fs::write(&control, format!("+{ctrl}"))
            .with_context(|| format!("cannot limit {ctrl}: enable it in {}", control.display()))?;
    }
    Ok(())
}

impl Cgroups {
    /// Moves `pid` into every cgroup of the container.
    pub fn add(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            let procs = d.join("cgroup.procs");
            fs::write(&procs, pid.to_string())
                .with_context(|| format!("add {pid} to {}", procs.display()))?;
        }
        Ok(())
    }

    /// Removes the (now empty) cgroup directories.
    pub fn remove(&self) {
        remove_dirs(&self.dirs);
    }
}

pub fn remove_dirs(dirs: &[PathBuf]) {
    for d in dirs.iter().rev() {
        // The kernel needs a moment to notice the last process has gone. A poll: v1 gives
        // no event for an emptied cgroup (only a release agent), and the rmdir is the
        // check itself; bounded at ~100 ms.
        for _ in 0..50 {
            match fs::remove_dir(d) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
                _ => break,
            }
        }
    }
}

/// Makes a v1 freezer cgroup for a running container and moves every process of its
/// pid namespace (`pids`, re-listed until none is left outside) into it. None when the
/// host has no v1 freezer or we may not make cgroups.
pub fn freezer_for(id: &str, pids: impl Fn() -> Vec<i32>) -> Option<PathBuf> {
    // SAFETY: getter.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let h @ Hierarchy::V1(_) = Mounts::read().find("freezer")? else {
        return None;
    };
    let dir = cgroup_dir(&h, "freezer", id, false);
    fs::create_dir_all(&dir).ok()?;
    let procs = dir.join("cgroup.procs");
    // A process may fork while we move its parent: list again until all are in.
    for _ in 0..100 {
        let members = fs::read_to_string(&procs).unwrap_or_default();
        let outside: Vec<i32> = pids()
            .into_iter()
            .filter(|p| !members.lines().any(|m| m.trim() == p.to_string()))
            .collect();
        if outside.is_empty() {
            return Some(dir);
        }
        for p in outside {
            let _ = fs::write(&procs, p.to_string());
        }
    }
    Some(dir)
}

/// Freezes or thaws through the v1 freezer cgroup among `dirs`; false when there is none.
pub fn set_frozen(dirs: &[PathBuf], frozen: bool) -> Result<bool> {
    let Some(dir) = dirs.iter().find(|d| d.join("freezer.state").exists()) else {
        return Ok(false);
    };
    let state = dir.join("freezer.state");
    let want = if frozen { "FROZEN" } else { "THAWED" };
    fs::write(&state, want).with_context(|| format!("write {want} to {}", state.display()))?;
    // A poll: the v1 freezer has no event for FREEZING -> FROZEN (no inotify or poll on
    // cgroup files); bounded at ~1 s.
    for _ in 0..500 {
        if fs::read_to_string(&state).unwrap_or_default().trim() == want {
            return Ok(true);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    bail!("{}: did not become {want}", state.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
37 35 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
38 35 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
39 35 0:34 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
40 35 0:35 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";

    #[test]
    fn hybrid_mounts() {
        let m = parse_mounts(HYBRID);
        assert_eq!(m.v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(m.v1.len(), 3);
        assert_eq!(m.v1[1].0, vec!["cpu", "cpuacct"]);
        assert_eq!(m.v1[1].1, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
    }

    #[test]
    fn own_cgroup_paths() {
        let pc = "4:memory:/a/b\n1:cpu,cpuacct:/\n0::/user.slice\n";
        assert_eq!(own_path(pc, Some("memory")).as_deref(), Some("/a/b"));
        assert_eq!(own_path(pc, Some("cpuacct")).as_deref(), Some("/"));
        assert_eq!(own_path(pc, None).as_deref(), Some("/user.slice"));
        assert_eq!(own_path(pc, Some("pids")), None);
    }

    #[test]
    fn no_v1_devices_controller_is_said_and_makes_nothing() {
        let v2_only = Mounts {
            v2: Some(PathBuf::from("/nonexistent-cgroup2")),
            v1: Vec::new(),
        };
        assert!(devices_unrestricted(&v2_only).is_some());
        let mut cg = Cgroups::default();
        create_devices(&mut cg, &v2_only, "0123456789abcdef", &[]).unwrap();
        assert!(cg.dirs.is_empty());
        let hybrid =
            parse_mounts("40 35 0:36 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n");
        assert_eq!(devices_unrestricted(&hybrid), None);
    }

    #[test]
    fn device_files_deny_first() {
        let rules = crate::devices::default_rules();
        let w = device_writes(&rules);
        assert_eq!(w[0], ("devices.deny", "a".to_string()));
        assert_eq!(w[1], ("devices.allow", "c *:* m".to_string()));
        assert_eq!(w.len(), rules.len() + 1);
    }

    #[test]
    fn limit_files() {
        let l = Limits {
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(10),
        };
        let v1 = limit_writes(&l, false);
        assert!(v1.contains(&("memory", "memory.limit_in_bytes", "67108864".into())));
        assert!(v1.contains(&("cpu", "cpu.cfs_quota_us", "50000".into())));
        assert!(v1.contains(&("pids", "pids.max", "10".into())));
        let v2 = limit_writes(&l, true);
        assert!(v2.contains(&("memory", "memory.max", "67108864".into())));
        assert!(v2.contains(&("cpu", "cpu.max", "50000 100000".into())));
    }
}
