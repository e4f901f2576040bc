//! The fuser adapter, mounting and serving a union, unmounting it, and reading what a
//! mounted union says about its layers.

// The crates below this one, under the names the modules use.
pub(crate) use unionctl_union::{sys, unionfs, whiteout};
#[macro_use]
mod error;
mod adapter;
pub mod daemon;
pub mod options;

pub use adapter::UnionFuse;
pub use error::{Error, Result};

use crate::unionfs::{LayerSpec, Layers, UnionFs};
use crate::whiteout::Format;
use error::Context;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Everything needed to serve one union mount.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub spec: LayerSpec,
    pub merged: PathBuf,
    pub options: options::MountOptions,
}

impl MountRequest {
    /// A request from the mount command's parts: `lowers` top first, `format` the
    /// whiteout format written to the upper, `options` the `-o` strings.
    pub fn new(
        lowers: Vec<PathBuf>,
        upper: Option<PathBuf>,
        work: Option<PathBuf>,
        format: Format,
        options: &[String],
        merged: PathBuf,
    ) -> Result<MountRequest> {
        let options = options::MountOptions::parse(options)?;
        let user_xattr = options.userxattr || !crate::sys::in_initial_userns();
        let spec = LayerSpec {
            lowers,
            upper,
            work,
            format,
            user_xattr,
        };
        Ok(MountRequest {
            spec,
            merged,
            options,
        })
    }
}

/// Checks what can be checked before forking: layers, mount point.
pub(crate) fn precheck(req: &MountRequest) -> Result<()> {
    crate::unionfs::layers::validate(&req.spec)?;
    let m = &req.merged;
    let md = std::fs::metadata(m)
        .map_err(|e| invalid!("{}: mount point: {}", m.display(), short(&e)))?;
    if !md.is_dir() {
        bail!("{}: mount point: not a directory", m.display());
    }
    if is_mount_point(m)? {
        bail!(
            "{}: mount point is busy: something is already mounted there",
            m.display()
        );
    }
    Ok(())
}

fn short(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_lowercase()
}

/// Is PATH the root of a mount (listed in /proc/self/mountinfo)?
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let want = canon.to_string_lossy().replace(' ', "\\040");
    Ok(info
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str())))
}

/// Mounts the union in a background daemon; returns once the mount is ready.
pub fn mount(req: &MountRequest) -> Result<()> {
    daemon::spawn(req)?.wait()
}

/// Mounts the union and serves it in this process until it is unmounted.
pub fn mount_foreground(req: &MountRequest) -> Result<()> {
    precheck(req)?;
    serve(req, || {})
}

/// Opens the layers and serves the mount in this process until it is unmounted.
/// `ready` is called once the mount is in place.
pub fn serve(req: &MountRequest, ready: impl FnOnce()) -> Result<()> {
    // The kernel applied the caller's umask already; ours must not strip modes again.
    unsafe { libc::umask(0) };
    // A failed mount leaves nothing behind: remember whether the work dir is ours to remove.
    let fresh_work = req.spec.upper.as_ref().and_then(|u| {
        let w = req
            .spec
            .work
            .clone()
            .unwrap_or_else(|| crate::unionfs::layers::default_work(u));
        (!w.exists()).then_some(w)
    });
    let cleanup = |e: Error| {
        if let Some(w) = &fresh_work {
            let _ = std::fs::remove_dir_all(w);
        }
        e
    };
    let layers = Layers::open(&req.spec).map_err(|e| cleanup(e.into()))?;
    let work = req.spec.upper.as_ref().map(|u| {
        req.spec
            .work
            .clone()
            .unwrap_or_else(|| crate::unionfs::layers::default_work(u))
    });
    unionctl_union::logging::to_daemon_log(work.as_deref(), req.options.debug);
    let fs = UnionFs::new(layers).context("reading the layer roots")?;
    let read_only = fs.read_only() || req.options.read_only;
    let config = req.options.fuser_config(read_only);
    let mut union = UnionFuse::new(fs);
    union.allow_passthrough = !req.options.no_passthrough;
    let notifier_slot = union.notifier.clone();
    // Sent before the reply of the request that changed the attributes, so the caller's
    // next stat sees them. Attributes only (offset -1): the kernel takes no inode or page
    // lock for that, so the request's own locks cannot block it.
    let slot = notifier_slot.clone();
    let _ = union.fs.on_attr_change.set(Box::new(move |ino| {
        if let Some(n) = slot.get() {
            let _ = n.inval_inode(fuser::INodeNo(ino), -1, 0);
        }
    }));
    let session = start_session(union, &req.merged, &config).map_err(|e| {
        cleanup(invalid!(
            "{}: cannot mount: {}",
            req.merged.display(),
            short(&e)
        ))
    })?;
    let _ = notifier_slot.set(session.notifier());
    ready();
    session.run().context("serving the union")?;
    Ok(())
}

/// Mounts the FUSE connection with mount(2) ourselves where we may (root, or inside a
/// user namespace): then the session does not own the mount and never unmounts the path
/// when it ends, which could hit another file system mounted there meanwhile. A user
/// without that right goes through fusermount3 (fuser's own mount).
fn start_session(
    fs: UnionFuse,
    merged: &Path,
    config: &fuser::Config,
) -> std::io::Result<fuser::Session<UnionFuse>> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    let rootmode = std::fs::metadata(merged)?.permissions().mode() & libc::S_IFMT;
    let (flags, source, data) = options::kernel_mount_args(config, dev.as_raw_fd(), rootmode);
    match nix::mount::mount(
        Some(source.as_str()),
        merged,
        Some("fuse.unionctl"),
        flags,
        Some(data.as_str()),
    ) {
        Ok(()) => {
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(dev.into_raw_fd()) };
            fuser::Session::from_fd(fs, fd, config.acl, config.clone())
        }
        Err(nix::errno::Errno::EPERM) => fuser::Session::new(fs, merged, config),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

pub(crate) fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Unmounts a union and returns once its daemon has finished (and its last writes are
/// done), as `umount` of overlayfs returns with the data on the upper.
pub fn umount_and_wait(merged: &Path) -> Result<()> {
    // Ask the daemon who it is first; a dead daemon simply does not answer.
    let daemon = xattr::get(merged, crate::unionfs::PID_XATTR)
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok()?.parse::<i32>().ok());
    unmount(merged)?;
    if let Some(pid) = daemon {
        wait_for_exit(pid, std::time::Duration::from_secs(10));
    }
    Ok(())
}

/// Waits until process PID is gone (or TIMEOUT passed).
fn wait_for_exit(pid: i32, timeout: std::time::Duration) {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return; // already gone
    }
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    unsafe {
        libc::poll(&mut p, 1, timeout.as_millis() as i32);
        libc::close(fd);
    }
}

/// Unmounts a union (also one whose daemon died: the kernel still lists it).
pub fn unmount(merged: &Path) -> Result<()> {
    let c = std::ffi::CString::new(merged.as_os_str().as_encoded_bytes())?;
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EBUSY) => bail!(
            "{}: cannot unmount: busy (files are open or a process uses it)",
            merged.display()
        ),
        Some(libc::EINVAL) => bail!("{}: not a mount point", merged.display()),
        Some(libc::EPERM) => {
            // Unprivileged: fusermount3 does it for the user who mounted.
            let st = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(merged)
                .status();
            match st {
                Ok(s) if s.success() => Ok(()),
                _ => bail!("{}: cannot unmount: {}", merged.display(), short(&e)),
            }
        }
        _ => bail!("{}: cannot unmount: {}", merged.display(), short(&e)),
    }
}

/// One layer of a mounted union, as the mount reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// `upper`, `lower N`, `format` or `work`.
    pub role: String,
    /// The layer's path (for `format`: the whiteout format).
    pub path: String,
}

/// The layers of the union mounted at MERGED, top first.
pub fn layers(merged: &Path) -> Result<Vec<LayerInfo>> {
    let text = read_virtual(merged, crate::unionfs::LAYERS_XATTR)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(role, path)| LayerInfo {
            role: role.to_string(),
            path: path.to_string(),
        })
        .collect())
}

/// The layers that supply PATH of a mounted union, one line each, top first (for a
/// directory: every merged layer).
pub fn which(p: &Path) -> Result<String> {
    let md =
        std::fs::symlink_metadata(p).map_err(|e| invalid!("{}: {}", p.display(), short(&e)))?;
    // Symlinks and devices cannot carry user xattrs: ask their directory about them.
    let text = if md.is_dir() || md.is_file() {
        read_virtual(p, crate::unionfs::WHICH_XATTR)?
    } else {
        let parent = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = p
            .file_name()
            .ok_or_else(|| invalid!("{}: no file name", p.display()))?;
        read_virtual(
            parent,
            &format!("{}.{}", crate::unionfs::WHICH_XATTR, name.to_string_lossy()),
        )?
    };
    Ok(text)
}

fn read_virtual(p: &Path, name: &str) -> Result<String> {
    match xattr::get(p, name) {
        Ok(Some(v)) => Ok(String::from_utf8_lossy(&v).into_owned()),
        Ok(None) => bail!("{}: not inside a unionctl mount", p.display()),
        Err(e) => bail!("{}: {}", p.display(), short(&e)),
    }
}
