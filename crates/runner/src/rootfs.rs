//! The container's file system view, built inside its new mount namespace: the union at
//! `merged`, fresh /proc, read-only /sys, a tmpfs /dev, /etc files, volumes, then
//! pivot_root and runc's masked and read-only paths.
use super::devices::HostDevice;
use super::state::Volume;
use crate::error::{Context, Result, io};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

/// runc's default masked paths: hidden behind /dev/null or an empty read-only tmpfs.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's default read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

pub struct RootfsPlan<'a> {
    pub merged: &'a Path,
    pub volumes: &'a [Volume],
    /// Host files bind-mounted over container paths (/etc/hostname, /etc/hosts, ...).
    pub files: Vec<(PathBuf, &'static str)>,
    /// Group 5 (tty) exists inside: the devpts gid option may be used.
    pub tty_group_mapped: bool,
    /// docker's --privileged: /sys and /proc/sys writable, nothing masked.
    pub privileged: bool,
    /// `--read-only`: the root is remounted read-only once every mount point is made.
    pub read_only: bool,
    pub tmpfs: &'a [crate::flags::Tmpfs],
    /// Size of /dev/shm in bytes (None: docker's 64 MiB).
    pub shm_size: Option<u64>,
    /// `--device` nodes to make.
    pub devices: &'a [HostDevice],
    /// Bind the host's nodes instead of mknod (rootless: a user namespace may not make
    /// device nodes).
    pub bind_devices: bool,
}

/// Resolves `path` inside `root` as if `root` were `/`: symlinks (absolute or relative)
/// and `..` never leave it.
pub fn secure_join(root: &Path, path: &str) -> PathBuf {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: Vec<OsString> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let candidate: PathBuf = std::iter::once(root.as_os_str().to_os_string())
            .chain(resolved.iter().cloned())
            .chain(std::iter::once(c.clone()))
            .collect();
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() && hops < 40 => {
                hops += 1;
                let Ok(target) = fs::read_link(&candidate) else {
                    resolved.push(c);
                    continue;
                };
                if target.is_absolute() {
                    resolved.clear();
                }
                for comp in target.components().rev() {
                    match comp {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved.push(c),
        }
    }
    std::iter::once(root.as_os_str().to_os_string())
        .chain(resolved)
        .collect()
}

fn mnt(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    mount(src, target, fstype, flags, data).with_context(|| {
        format!(
            "mount {} on {}",
            fstype
                .map(str::to_string)
                .or(src.map(|s| s.display().to_string()))
                .unwrap_or_default(),
            target.display()
        )
    })
}

fn mkdir_all(p: &Path) -> Result<()> {
    fs::create_dir_all(p).map_err(io("mkdir", p))
}

/// Makes an empty file (and its parents) to mount a file on.
fn touch(p: &Path) -> Result<()> {
    if let Some(parent) = p.parent() {
        mkdir_all(parent)?;
    }
    if !p.exists() {
        fs::File::create(p).map_err(io("create", p))?;
    }
    Ok(())
}

/// Bind mount, read-only when asked (a second remount keeps the locked flags).
fn bind(src: &Path, target: &Path, readonly: bool) -> Result<()> {
    mnt(
        Some(src),
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    if readonly {
        remount_readonly(target)?;
    }
    Ok(())
}

fn remount_readonly(target: &Path) -> Result<()> {
    let locked = current_flags(target);
    mnt(
        None,
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked,
        None,
    )
}

/// nosuid/nodev/noexec of the mount at `p`: a remount in a user namespace must keep them.
fn current_flags(p: &Path) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(p) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs_flag, ms_flag) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs_flag) {
            out |= ms_flag;
        }
    }
    out
}

/// Builds the view and pivots into it. Runs in the container's new mount namespace.
pub fn prepare(plan: &RootfsPlan) -> Result<()> {
    let root = plan.merged;
    // Nothing we mount may propagate back to the host.
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;

    let proc_dir = secure_join(root, "/proc");
    mkdir_all(&proc_dir)?;
    mnt(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        nosuid_nodev_noexec,
        None,
    )?;

    let sys_dir = secure_join(root, "/sys");
    mkdir_all(&sys_dir)?;
    let sys_ro = match plan.privileged {
        true => MsFlags::empty(),
        false => MsFlags::MS_RDONLY,
    };
    let sysfs = mount(
        Some("sysfs"),
        &sys_dir,
        Some("sysfs"),
        nosuid_nodev_noexec | sys_ro,
        None::<&str>,
    );
    if sysfs.is_err() {
        // Without our own network namespace (rootless --network host) sysfs cannot be
        // mounted: show the host's (read-only unless privileged).
        bind(Path::new("/sys"), &sys_dir, !plan.privileged)?;
    }

    prepare_dev(root, plan.tty_group_mapped, plan.shm_size)?;
    crate::trace::phase("child: dev");

    for (host, ctr) in &plan.files {
        let target = secure_join(root, ctr);
        touch(&target)?;
        bind(host, &target, false)?;
    }

    for v in plan.volumes {
        let target = secure_join(root, &v.container);
        let meta = fs::metadata(&v.host).map_err(io("volume", &v.host))?;
        if meta.is_dir() {
            mkdir_all(&target)?;
        } else {
            touch(&target)?;
        }
        bind(&v.host, &target, v.readonly)
            .with_context(|| format!("volume {}:{}", v.host.display(), v.container))?;
    }

    for t in plan.tmpfs {
        let target = secure_join(root, &t.target);
        mkdir_all(&target)?;
        let (flags, data) = t.mount_args();
        mnt(
            Some(Path::new("tmpfs")),
            &target,
            Some("tmpfs"),
            MsFlags::from_bits_truncate(flags),
            Some(&data).filter(|d| !d.is_empty()).map(String::as_str),
        )
        .with_context(|| format!("tmpfs {}", t.target))?;
    }

    for d in plan.devices {
        make_device(root, d, plan.bind_devices)
            .with_context(|| format!("--device {}:{}", d.path_on_host, d.path_in_container))?;
    }

    if plan.read_only {
        // Only this mount of the union: the volumes, tmpfs, /dev and /proc below it keep
        // their own flags.
        remount_readonly(root).context("read-only root")?;
    }

    pivot(root)?;
    crate::trace::phase("child: pivoted");

    if plan.privileged {
        return Ok(());
    }
    for p in MASKED_PATHS {
        mask(Path::new(p))?;
    }
    for p in READONLY_PATHS {
        let p = Path::new(p);
        if p.exists() {
            bind(p, p, true)?;
        }
    }
    Ok(())
}

fn prepare_dev(root: &Path, tty_group_mapped: bool, shm_size: Option<u64>) -> Result<()> {
    let dev = secure_join(root, "/dev");
    mkdir_all(&dev)?;
    mnt(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    // Bind the host's device nodes: works rootless too, where mknod is not allowed.
    for name in DEVICES {
        let target = dev.join(name);
        touch(&target)?;
        bind(&Path::new("/dev").join(name), &target, false)?;
    }
    let pts = dev.join("pts");
    mkdir_all(&pts)?;
    let pts_opts = if tty_group_mapped {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    mnt(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(pts_opts),
    )?;
    symlink("pts/ptmx", dev.join("ptmx")).context("/dev/ptmx")?;
    let shm = dev.join("shm");
    mkdir_all(&shm)?;
    mnt(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(&format!("mode=1777,size={}", shm_size.unwrap_or(64 << 20))),
    )?;
    let mqueue = dev.join("mqueue");
    mkdir_all(&mqueue)?;
    mnt(
        Some(Path::new("mqueue")),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        symlink(target, dev.join(link)).with_context(|| format!("/dev/{link}"))?;
    }
    fs::set_permissions(&dev, fs::Permissions::from_mode(0o755)).context("chmod /dev")?;
    Ok(())
}

/// Makes a `--device` node at its container path, replacing what is there (one of our
/// own /dev nodes, bound over a file, is unmounted first). As root a new node with the
/// host's mode and owner, as docker; rootless the host's node bound in.
fn make_device(root: &Path, d: &HostDevice, bind_host: bool) -> Result<()> {
    let target = secure_join(root, &d.path_in_container);
    if let Some(parent) = target.parent() {
        mkdir_all(parent)?;
    }
    if let Ok(md) = fs::symlink_metadata(&target) {
        if md.is_dir() {
            bail!(
                "--device {}: {} is a directory in the container",
                d.path_on_host,
                d.path_in_container
            );
        }
        let _ = umount2(&target, MntFlags::MNT_DETACH);
        fs::remove_file(&target).map_err(io("remove", &target))?;
    }
    if bind_host {
        touch(&target)?;
        return bind(Path::new(&d.path_on_host), &target, false);
    }
    let kind = match d.kind {
        'b' => nix::sys::stat::SFlag::S_IFBLK,
        _ => nix::sys::stat::SFlag::S_IFCHR,
    };
    let perm = nix::sys::stat::Mode::from_bits_truncate(d.mode);
    let dev = nix::sys::stat::makedev(d.major.into(), d.minor.into());
    nix::sys::stat::mknod(&target, kind, perm, dev).map_err(|e| io("mknod", &target)(e.into()))?;
    // mknod's mode passed through the umask.
    fs::set_permissions(&target, fs::Permissions::from_mode(d.mode))
        .map_err(io("chmod", &target))?;
    std::os::unix::fs::chown(&target, Some(d.uid), Some(d.gid)).map_err(io("chown", &target))?;
    Ok(())
}

/// pivot_root(".", ".") then detach the old root stacked on top: no directory needed.
fn pivot(root: &Path) -> Result<()> {
    nix::unistd::chdir(root).map_err(|e| io("chdir", root)(e.into()))?;
    nix::unistd::pivot_root(".", ".").context("pivot_root")?;
    umount2(".", MntFlags::MNT_DETACH).context("detach the old root")?;
    nix::unistd::chdir("/").context("chdir /")?;
    Ok(())
}

fn mask(p: &Path) -> Result<()> {
    let Ok(meta) = fs::metadata(p) else {
        return Ok(());
    };
    if meta.is_dir() {
        mnt(
            Some(Path::new("tmpfs")),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
        )
    } else {
        mnt(
            Some(Path::new("/dev/null")),
            p,
            None,
            MsFlags::MS_BIND,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_stays_inside() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        symlink("/usr/lib", r.join("lib")).unwrap();
        symlink("../../../../etc", r.join("usr/escape")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        assert_eq!(secure_join(r, "/lib/x"), r.join("usr/lib/x"));
        assert_eq!(secure_join(r, "/usr/escape/passwd"), r.join("etc/passwd"));
        assert_eq!(secure_join(r, "/../../etc"), r.join("etc"));
        assert_eq!(secure_join(r, "/a/./b/"), r.join("a/b"));
        // A loop ends after 40 hops instead of spinning.
        assert!(secure_join(r, "/loop").starts_with(r));
    }
}
