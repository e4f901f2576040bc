//! `-o auto_unmount`: a watcher process unmounts the union once its daemon is gone, so
//! a daemon that dies (SIGKILL, a crash) leaves no dead mount ("Transport endpoint is
//! not connected") behind. fusermount3's own auto_unmount serves only the mounts it
//! makes; this one serves both ours (mount(2)) and fusermount3's.
use crate::error::{Context, Result};
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// The unique (never reused) id of the mount at PATH, asked alone: the FUSE kernel
/// answers it without asking the daemon, so it works before the session serves and after
/// the daemon died. None before Linux 6.8 or when PATH is gone.
fn mount_id(path: &CStr) -> Option<u64> {
    // SAFETY: statx fills the zeroed buffer we own.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_NO_AUTOMOUNT | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID_UNIQUE,
            &mut stx,
        )
    };
    (r == 0 && stx.stx_mask & libc::STATX_MNT_ID_UNIQUE != 0).then_some(stx.stx_mnt_id)
}

/// Forks the watcher of the union just mounted at MERGED (call it before the session
/// serves). It waits for this process to end (the end of a pipe only we hold), then
/// unmounts MERGED if the mount there is still this one: a cleanly unmounted union, or
/// another file system mounted there since, is left alone.
pub(crate) fn watch(merged: &Path) -> Result<()> {
    let canon = std::fs::canonicalize(merged).unwrap_or_else(|_| merged.to_path_buf());
    let path = CString::new(canon.as_os_str().as_encoded_bytes())?;
    let Some(id) = mount_id(&path) else {
        bail!(
            "{}: -o auto_unmount: cannot identify the mount (needs Linux 6.8 or later)",
            merged.display()
        );
    };
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    // Closed by the watcher once it has its name: the mount is not reported ready before
    // (whoever then looks for the daemon by name must not find the watcher under it).
    let (named_rd, named_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    // SAFETY: the child runs only the watcher below, on its own copy of this process.
    match unsafe { nix::unistd::fork() }.context("fork the auto_unmount watcher")? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(rd);
            drop(named_wr);
            // Held until this process ends: its closing is what the watcher waits for.
            std::mem::forget(wr);
            let mut buf = [0u8; 1];
            let _ = nix::unistd::read(&named_rd, &mut buf);
            Ok(())
        }
        nix::unistd::ForkResult::Child => {
            unsafe { libc::prctl(libc::PR_SET_NAME, c"unionctl-unmnt".as_ptr()) };
            drop(wr);
            drop(named_rd);
            drop(named_wr);
            watcher(rd, &path, id)
        }
    }
}

fn watcher(rd: OwnedFd, path: &CStr, id: u64) -> ! {
    // Keep only the pipe: the FUSE device or a caller's file held here would keep the
    // union (or another mount) alive or busy.
    let keep = unsafe { libc::fcntl(rd.as_raw_fd(), libc::F_DUPFD, 3) };
    if keep < 0 {
        unsafe { libc::_exit(1) };
    }
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if null > 2 {
            libc::close(null);
        }
        libc::chdir(c"/".as_ptr());
    }
    let mut buf = [0u8; 1];
    loop {
        let n = unsafe { libc::read(keep, buf.as_mut_ptr().cast(), 1) };
        if n == 0 || (n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            break;
        }
    }
    if mount_id(path) == Some(id) && unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0
    {
        // A user's mount made by fusermount3 is unmounted by it.
        use std::os::unix::ffi::OsStrExt;
        let p = std::ffi::OsStr::from_bytes(path.to_bytes());
        let _ = std::process::Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(p)
            .status();
    }
    unsafe { libc::_exit(0) }
}
