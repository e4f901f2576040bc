//! Mounting and unmounting: kernel overlayfs (the oracle) and unionctl (the subject).
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Kernel,
    Unionctl,
}

/// Where a union's layers live. `lowers[0]` is the top lower layer.
#[derive(Clone, Debug)]
pub struct UnionDirs {
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
}

/// A live mount, unmounted on drop if the test did not do it.
pub struct Mount {
    pub merged: PathBuf,
    pub kind: Kind,
    active: bool,
}

impl Mount {
    pub fn unmount(&mut self) -> Result<(), String> {
        if !self.active {
            return Ok(());
        }
        self.active = false;
        match self.kind {
            Kind::Kernel => {
                // EBUSY for a moment: another test thread forked (spawning a process)
                // while this one had a file open in the mount; the child holds a copy
                // until it execs.
                let deadline = Instant::now() + Duration::from_secs(3);
                let mut r = nix::mount::umount(&self.merged);
                while r == Err(nix::errno::Errno::EBUSY) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                    r = nix::mount::umount(&self.merged);
                }
                r.map_err(|e| format!("umount {}: {e}", self.merged.display()))
            }
            Kind::Unionctl => {
                let daemons = unionctl_daemons(&self.merged);
                let out = run_unionctl(&["umount".into(), self.merged.clone().into()], 30);
                if !out.status.success() {
                    let _ = force_unmount(&self.merged);
                    return Err(format!(
                        "unionctl umount {} failed ({}): {}",
                        self.merged.display(),
                        out.status,
                        out.stderr.trim()
                    ));
                }
                if is_mount_point(&self.merged) {
                    let _ = force_unmount(&self.merged);
                    return Err(format!(
                        "unionctl umount {} exited 0 but the mount is still there",
                        self.merged.display()
                    ));
                }
                // Let the daemon finish exiting before the path is reused: one that exits
                // late unmounts whatever is mounted there next (mount_cli tests that bug on
                // its own; here it would only hide other differences).
                super::events::wait_all_exit(&daemons, "the unmounted union's daemon");
                Ok(())
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.active {
            let _ = force_unmount(&self.merged);
        }
    }
}

/// Every kernel overlayfs and unionctl mount of this test process gets `metacopy=on`
/// once set (nextest runs each test in a process of its own).
static METACOPY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn all_mounts_with_metacopy() {
    METACOPY.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn metacopy() -> bool {
    METACOPY.load(std::sync::atomic::Ordering::Relaxed)
}

/// Kernel overlayfs as the project compares against it: redirect_dir=on,index=on (both
/// only with an upper layer; without one the mount is read-only).
pub fn mount_kernel(dirs: &UnionDirs, merged: &Path) -> Result<Mount, String> {
    mount_kernel_with(dirs, merged, "")
}

/// `mount_kernel` with more options (",metacopy=on").
pub fn mount_kernel_with(dirs: &UnionDirs, merged: &Path, extra: &str) -> Result<Mount, String> {
    let metacopy = if metacopy() { ",metacopy=on" } else { "" };
    mount_kernel_data(&(kernel_options(dirs, false) + extra + metacopy), merged)
}

/// Kernel overlayfs mounted with the option string DATA as it is.
pub fn mount_kernel_data(data: &str, merged: &Path) -> Result<Mount, String> {
    let mount = || {
        nix::mount::mount(
            Some("overlay"),
            merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(data),
        )
    };
    // EBUSY: the upper is still "in use" by an earlier overlay mount of it whose super block
    // lives on in a mount namespace copied meanwhile (other tests on the machine start
    // containers); it goes away when that namespace does.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut result = mount();
    while result == Err(nix::errno::Errno::EBUSY) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        result = mount();
    }
    result.map_err(|e| format!("mount -t overlay -o {data} {}: {e}", merged.display()))?;
    Ok(Mount {
        merged: merged.to_path_buf(),
        kind: Kind::Kernel,
        active: true,
    })
}

/// A layer path as `lowerdir=` (and `--lower`) take it: `\` and `:` escaped with `\`,
/// as kernel overlayfs reads them.
pub fn lowerdir_escape(path: &str) -> String {
    path.replace('\\', "\\\\").replace(':', "\\:")
}

/// The `-o` string for kernel overlayfs; `userxattr` for mounts inside a user namespace
/// (where the kernel refuses redirect_dir=on, so it is left out there).
pub fn kernel_options(dirs: &UnionDirs, rootless: bool) -> String {
    let lowers: Vec<String> = dirs
        .lowers
        .iter()
        .map(|p| lowerdir_escape(&p.display().to_string()))
        .collect();
    let mut data = format!("lowerdir={}", lowers.join(":"));
    if let (Some(u), Some(w)) = (&dirs.upper, &dirs.work) {
        data += &format!(",upperdir={},workdir={}", u.display(), w.display());
        if rootless {
            data += ",userxattr";
        } else {
            data += ",redirect_dir=on,index=on";
        }
    }
    data
}

/// Mounts with `unionctl mount` (which returns once the mount is ready).
pub fn mount_unionctl(dirs: &UnionDirs, merged: &Path, extra: &[&str]) -> Result<Mount, String> {
    let mut extra = extra.to_vec();
    if metacopy() {
        extra.extend(["-o", "metacopy=on"]);
    }
    mount_unionctl_argv(&unionctl_mount_args(dirs, merged, &extra), merged)
}

/// `unionctl mount -o OPTIONS MERGED`: the layers named in the options, as kernel
/// overlayfs and fuse-overlayfs take them.
pub fn mount_unionctl_options(options: &str, merged: &Path) -> Result<Mount, String> {
    let args = ["mount".into(), "-o".into(), options.into(), merged.into()];
    mount_unionctl_argv(&args, merged)
}

fn mount_unionctl_argv(args: &[OsString], merged: &Path) -> Result<Mount, String> {
    let out = run_unionctl(args, 30);
    if !out.status.success() {
        let _ = force_unmount(merged);
        return Err(format!(
            "unionctl mount {} failed ({}): {}",
            merged.display(),
            out.status,
            out.stderr.trim()
        ));
    }
    if !is_mount_point(merged) {
        return Err(format!(
            "unionctl mount exited 0 but {} is not a mount point",
            merged.display()
        ));
    }
    Ok(Mount {
        merged: merged.to_path_buf(),
        kind: Kind::Unionctl,
        active: true,
    })
}

pub fn unionctl_mount_args(dirs: &UnionDirs, merged: &Path, extra: &[&str]) -> Vec<OsString> {
    let lowers: Vec<String> = dirs
        .lowers
        .iter()
        .map(|p| lowerdir_escape(&p.display().to_string()))
        .collect();
    let mut args: Vec<OsString> = vec!["mount".into(), "--lower".into(), lowers.join(":").into()];
    if let Some(u) = &dirs.upper {
        args.push("--upper".into());
        args.push(u.into());
    }
    if let Some(w) = &dirs.work {
        args.push("--work".into());
        args.push(w.into());
    }
    args.extend(extra.iter().map(OsString::from));
    args.push(merged.into());
    args
}

pub fn mount_kind(kind: Kind, dirs: &UnionDirs, merged: &Path) -> Result<Mount, String> {
    match kind {
        Kind::Kernel => mount_kernel(dirs, merged),
        Kind::Unionctl => mount_unionctl(dirs, merged, &[]),
    }
}

pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Fails the test, with the command's output, unless WHAT succeeded.
#[track_caller]
pub fn assert_ran(out: &CmdOutput, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

/// Runs unionctl with a time limit. Output goes through files, not pipes: a daemon that
/// inherits them must not make us wait for its exit.
pub fn run_unionctl(args: &[OsString], timeout_secs: u64) -> CmdOutput {
    let mut cmd = Command::new(super::unionctl_bin());
    cmd.args(args);
    run_with_timeout(cmd, timeout_secs)
}

pub fn run_with_timeout(mut cmd: Command, timeout_secs: u64) -> CmdOutput {
    let out = tempfile::tempfile().expect("temp file");
    let err = tempfile::tempfile().expect("temp file");
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    // Wait on the child's pidfd up to the deadline; kill it if it is still running then.
    // The pidfd names this child even after its exit, so the kill cannot hit another pid.
    let program = format!("{cmd:?}");
    if let Some(fd) = super::events::pidfd(child.id() as i32)
        && !super::events::wait_fd(&fd, Duration::from_secs(timeout_secs))
    {
        eprintln!("timeout after {timeout_secs}s: {program}");
        super::events::pidfd_kill(&fd);
    }
    let status = child.wait().expect("wait");
    CmdOutput {
        status,
        stdout: read_all(out),
        stderr: read_all(err),
    }
}

fn read_all(mut f: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut s = String::new();
    let _ = f.rewind();
    let _ = f.read_to_string(&mut s);
    s
}

/// One line of /proc/self/mountinfo that matters here.
#[derive(Clone, Debug)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
    /// "major:minor" of the mounted device (FUSE: the connection number is the minor).
    pub device: String,
}

pub fn mount_table() -> Vec<MountEntry> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountEntry {
                device: l.get(2)?.to_string(),
                mount_point: PathBuf::from(unescape_mountinfo(l.get(4)?)),
                fs_type: r.first()?.to_string(),
                source: unescape_mountinfo(r.get(1)?),
                super_options: r.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| c.is_ascii_digit()) {
            let n = u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The topmost mount at exactly `path`, if any.
pub fn mount_at(path: &Path) -> Option<MountEntry> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    mount_table()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == path)
}

pub fn is_mount_point(path: &Path) -> bool {
    mount_at(path).is_some()
}

/// Every mount point at or below `dir`, outermost first.
pub fn mount_points_under(dir: &Path) -> Vec<PathBuf> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    mount_table()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(&dir))
        .collect()
}

/// A small tmpfs at AT: another file system where a test needs one.
pub fn mount_tmpfs(at: &Path) {
    nix::mount::mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m,mode=0755"),
    )
    .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", at.display()));
}

/// Best-effort cleanup: abort a FUSE connection (so a hung daemon cannot block us), then
/// detach the mount.
pub fn force_unmount(path: &Path) -> Result<(), String> {
    // The mount is found through an fd on its root, which pins its superblock: the
    // device number read from the mount table cannot meanwhile pass to another test's new
    // mount, whose connection would be aborted instead.
    use std::os::unix::fs::OpenOptionsExt;
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path);
    if let Ok(root) = root
        && let Some(m) = mount_at(path).filter(|m| m.fs_type.starts_with("fuse"))
        && dev_of(&root)
            == m.device
                .split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
    {
        abort_fuse_connection(&m);
    }
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("umount -l {}: {e}", path.display()))
}

/// The (major, minor) device of an open file, from the kernel's cached attributes (no
/// request to a FUSE daemon, which may hang).
fn dev_of(f: &std::fs::File) -> Option<(String, String)> {
    use std::os::fd::AsRawFd;
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let flags = libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC;
    // SAFETY: statx of our own fd into our own buffer.
    let rc = unsafe { libc::statx(f.as_raw_fd(), c"".as_ptr(), flags, 0, &mut stx) };
    (rc == 0).then(|| (stx.stx_dev_major.to_string(), stx.stx_dev_minor.to_string()))
}

/// Writes to /sys/fs/fuse/connections/N/abort, N being the mount's device minor.
pub fn abort_fuse_connection(m: &MountEntry) {
    if let Some((_, minor)) = m.device.split_once(':') {
        let _ = std::fs::write(format!("/sys/fs/fuse/connections/{minor}/abort"), "1");
    }
}

/// Ensures the FUSE control file system is mounted (needed to abort hung connections).
pub fn ensure_fusectl() {
    let p = Path::new("/sys/fs/fuse/connections");
    if p.exists() && !is_mount_point(p) {
        let _ = nix::mount::mount(
            Some("fusectl"),
            p,
            Some("fusectl"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
}

/// Aborts every FUSE mount below `dir` if it is still alive after `secs`: a hung daemon then
/// fails the test with ENOTCONN instead of blocking it forever.
pub struct Watchdog {
    // Dropping the sender wakes the watchdog thread at once.
    _done: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    pub fn new(label: &str, dir: &Path, secs: u64) -> Watchdog {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let (label, dir) = (label.to_string(), dir.to_path_buf());
        std::thread::spawn(move || {
            if wait.recv_timeout(Duration::from_secs(secs))
                != Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            {
                return;
            }
            eprintln!("{label}: still running after {secs}s, aborting its FUSE connections");
            for m in mount_table() {
                if m.mount_point.starts_with(&dir) && m.fs_type.starts_with("fuse") {
                    abort_fuse_connection(&m);
                }
            }
        });
        Watchdog { _done: done }
    }
}

/// Processes of the unionctl binary whose command line names `merged` (the FUSE daemon).
pub fn unionctl_daemons(merged: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let want = merged.as_os_str().as_encoded_bytes();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            // unionctl, through a symlink of any name, or the small unionctl-overlay.
            let ours = |n: &[u8]| n.ends_with(b"unionctl") || n.ends_with(b"unionctl-overlay");
            let is_unionctl = args.first().is_some_and(|a0| ours(a0))
                || std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|p| ours(p.as_os_str().as_encoded_bytes()));
            is_unionctl && args.contains(&want)
        })
        .collect()
}
