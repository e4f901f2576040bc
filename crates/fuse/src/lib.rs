//! The fuser adapter, mounting and serving a union, unmounting it, and reading what a
//! mounted union says about its layers.

// The crates below this one, under the names the modules use.
pub(crate) use unionctl_union::{sys, unionfs, whiteout};
#[macro_use]
mod error;
mod adapter;
mod auto_unmount;
pub mod daemon;
pub mod dropin;
pub mod options;
mod serve;
mod workers;

pub use adapter::UnionFuse;
pub use error::{Error, Result};
pub use serve::{MountRequest, is_mount_point, serve};

use std::path::Path;

/// Mounts the union in a background daemon; returns once the mount is ready.
pub fn mount(req: &MountRequest) -> Result<()> {
    daemon::spawn(req)?.wait()
}

/// Mounts the union and serves it in this process until it is unmounted. SIGINT and
/// SIGTERM end it as they end `fuse-overlayfs -f`: the mount is detached (lazily, so a
/// busy one goes too) and the session ends once the kernel lets go of it.
pub fn mount_foreground(req: &MountRequest) -> Result<()> {
    serve::precheck(req)?;
    unmount_on_termination(&req.merged)?;
    serve(req, || {})
}

/// SIGINT and SIGTERM detach the mount at MERGED (lazily), which ends the session
/// serving it: the daemon's answer to them, in the foreground and in the background.
/// Call it before the session starts its threads.
pub(crate) fn unmount_on_termination(merged: &Path) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut ending = SigSet::empty();
    ending.add(Signal::SIGINT);
    ending.add(Signal::SIGTERM);
    // Blocked before the session's threads exist, so only the waiter below takes them.
    ending.thread_block()?;
    let merged = merged.to_path_buf();
    std::thread::spawn(move || {
        if ending.wait().is_ok()
            && let Err(e) = unmount_with(&merged, true)
        {
            log::warn!("{}", e.chain());
        }
    });
    Ok(())
}

/// Unmounts a union and returns once its daemon has finished (and its last writes are
/// done), as `umount` of overlayfs returns with the data on the upper.
pub fn umount_and_wait(merged: &Path) -> Result<()> {
    refuse_other_file_systems(merged)?;
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

/// `umount` is for unions: a FUSE mount (also one whose daemon died) or a kernel
/// overlay. Anything else mounted there (a tmpfs, `/`) is not ours to unmount.
fn refuse_other_file_systems(merged: &Path) -> Result<()> {
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    let c = std::ffi::CString::new(merged.as_os_str().as_encoded_bytes())?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs of a C string into our buffer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Ok(()); // a dead daemon (ENOTCONN), a missing path: umount2 says
    }
    let kind = st.f_type as i64;
    if kind != FUSE_SUPER_MAGIC && kind != OVERLAYFS_SUPER_MAGIC && crate::is_mount_point(merged)? {
        bail!(
            "{}: not a union mount (file system type {kind:#x}): not unmounted",
            merged.display()
        );
    }
    Ok(())
}

/// Waits until process PID is gone (or TIMEOUT passed).
fn wait_for_exit(pid: i32, timeout: std::time::Duration) {
    use std::os::fd::AsRawFd;
    let Some(fd) = crate::sys::pidfd_open(pid) else {
        return; // already gone
    };
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd of ours.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
}

/// Unmounts a union (also one whose daemon died: the kernel still lists it).
pub fn unmount(merged: &Path) -> Result<()> {
    unmount_with(merged, false)
}

/// Detaches a mount now, even if busy (a mount whose daemon failed to start).
pub(crate) fn unmount_lazily(merged: &Path) -> Result<()> {
    unmount_with(merged, true)
}

/// `lazy`: detach now even if busy; the file system goes when its last user does.
fn unmount_with(merged: &Path, lazy: bool) -> Result<()> {
    let c = std::ffi::CString::new(merged.as_os_str().as_encoded_bytes())?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
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
                .args(lazy.then_some("-z"))
                .arg(merged)
                .status();
            match st {
                Ok(s) if s.success() => Ok(()),
                _ => bail!(
                    "{}: cannot unmount: {}",
                    merged.display(),
                    unionctl_union::errors::io_cause(&e)
                ),
            }
        }
        _ => bail!(
            "{}: cannot unmount: {}",
            merged.display(),
            unionctl_union::errors::io_cause(&e)
        ),
    }
}

/// One layer of a mounted union, as the mount reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// `upper` or `lower N`.
    pub role: String,
    /// The layer's directory.
    pub path: String,
}

/// The layers of the union mounted at MERGED, top first.
pub fn layers(merged: &Path) -> Result<Vec<LayerInfo>> {
    Ok(described_layers(merged)?
        .into_iter()
        .filter(|(role, _)| role != FORMAT_ROLE)
        .map(|(role, path)| LayerInfo { role, path })
        .collect())
}

/// The on-disk whiteout format of the union mounted at MERGED (`Overlay`, `Aufs`).
pub fn whiteout_format(merged: &Path) -> Result<String> {
    Ok(described_layers(merged)?
        .into_iter()
        .find(|(role, _)| role == FORMAT_ROLE)
        .map(|(_, format)| format)
        .unwrap_or_default())
}

/// The line of the mount's layer description that names the format, not a layer.
const FORMAT_ROLE: &str = "format";

fn described_layers(merged: &Path) -> Result<Vec<(String, String)>> {
    let text = read_virtual(merged, crate::unionfs::LAYERS_XATTR)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(role, path)| (role.to_string(), path.to_string()))
        .collect())
}

/// The layers that supply PATH of a mounted union, one line each, top first (for a
/// directory: every merged layer).
pub fn which(p: &Path) -> Result<String> {
    let md = std::fs::symlink_metadata(p)
        .map_err(|e| invalid!("{}: {}", p.display(), unionctl_union::errors::io_cause(&e)))?;
    // Symlinks and devices cannot carry user xattrs: ask their directory about them.
    if md.is_dir() || md.is_file() {
        return read_virtual(p, crate::unionfs::WHICH_XATTR);
    }
    let parent = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = p
        .file_name()
        .ok_or_else(|| invalid!("{}: no file name", p.display()))?;
    let asked = format!("{}.{}", crate::unionfs::WHICH_XATTR, name.to_string_lossy());
    match virtual_attr(parent, &asked, p)? {
        Some(text) => Ok(text),
        // A symlink outside every union that leads into one: where it leads.
        None => match std::fs::canonicalize(p) {
            Ok(target) if md.is_symlink() => which(&target),
            _ => bail!("{}: not inside a unionctl mount", p.display()),
        },
    }
}

/// A virtual attribute of a union's file or dir (a symlink to one is followed).
fn read_virtual(p: &Path, name: &str) -> Result<String> {
    virtual_attr(p, name, p)?
        .ok_or_else(|| invalid!("{}: not inside a unionctl mount", p.display()))
}

/// The attribute NAME of P, None outside a union; errors name SHOWN (what was asked).
fn virtual_attr(p: &Path, name: &str, shown: &Path) -> Result<Option<String>> {
    match xattr::get_deref(p, name) {
        Ok(v) => Ok(v.map(|v| String::from_utf8_lossy(&v).into_owned())),
        Err(e) => bail!(
            "{}: {}",
            shown.display(),
            unionctl_union::errors::io_cause(&e)
        ),
    }
}
