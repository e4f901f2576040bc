//! The union daemon as a background process: forked from the caller (no exec, so any
//! program linking the library can mount, not only the `unionctl` binary), detached
//! into its own session, serving until the union is unmounted. The caller opens the
//! layers and mounts the connection before it forks (so the mount is in place without
//! waiting for other processes to be scheduled, and its errors are the caller's); the
//! daemon only serves, and tells over a pipe whether it started or why it did not.
use crate::error::{Context, Error, Result};
use crate::serve::{
    MountRequest, Opened, detach_stdio, open_layers, precheck, premount, serve_opened,
};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// A mount under way: the caller may do other work until `wait`.
pub struct PendingMount {
    ready: OwnedFd,
    merged: std::path::PathBuf,
    /// The middle process of the double fork, reaped in `wait` (it exits at once).
    middle: nix::unistd::Pid,
    /// This process mounted the connection (the daemon only serves it).
    premounted: bool,
    /// A work dir this mount created, removed if the daemon fails.
    fresh_work: Option<std::path::PathBuf>,
}

impl PendingMount {
    /// Returns once the union is mounted, or with the reason it is not (in which case
    /// nothing is left behind).
    pub fn wait(self) -> Result<()> {
        let mut msg = String::new();
        let read = std::fs::File::from(self.ready)
            .read_to_string(&mut msg)
            .context("reading the mount daemon's answer");
        // Reaped after the answer: the daemon starts without waiting for us to wake.
        let _ = nix::sys::wait::waitpid(self.middle, None);
        let failed = match (read, msg.as_str()) {
            (Ok(_), "ok") => return Ok(()),
            (Err(e), _) => e,
            (Ok(_), "") => invalid!(
                "{}: the mount daemon died before the mount was ready",
                self.merged.display()
            ),
            (Ok(_), _) => invalid!("{msg}"),
        };
        if self.premounted {
            let _ = crate::unmount_lazily(&self.merged);
        }
        if let Some(w) = &self.fresh_work {
            let _ = std::fs::remove_dir_all(w);
        }
        Err(failed)
    }
}

/// Checks the request, opens the layers and mounts the connection here (so the mount
/// is in place, and its errors known, before any fork), then forks the daemon that
/// serves it (twice, so it is not our child and needs no reaping) and returns at once.
/// Call it before this process starts threads.
pub fn spawn(req: &MountRequest) -> Result<PendingMount> {
    precheck(req)?;
    let opened = open_layers(req)?;
    let mounted = premount(req).inspect_err(|_| opened.remove_fresh_work())?;
    let premounted = mounted.is_some();
    let undo = |e: Error| {
        if premounted {
            let _ = crate::unmount_lazily(&req.merged);
        }
        opened.remove_fresh_work();
        e
    };
    let (rd, wr) = nix::unistd::pipe().context("pipe").map_err(undo)?;
    // SAFETY: the children only run our own code on a copy of this process.
    let fork = unsafe { nix::unistd::fork() }
        .context("fork the mount daemon")
        .map_err(undo)?;
    match fork {
        nix::unistd::ForkResult::Parent { child } => Ok(PendingMount {
            ready: rd,
            merged: req.merged.clone(),
            middle: child,
            premounted,
            fresh_work: opened.fresh_work_path(),
        }),
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let _ = nix::unistd::setsid();
            match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => daemon_main(req, opened, mounted, wr),
                _ => unsafe { libc::_exit(0) },
            }
        }
    }
}

/// The daemon: serve until unmounted, then exit; never returns to the caller's code.
fn daemon_main(req: &MountRequest, opened: Opened, mounted: Option<OwnedFd>, wr: OwnedFd) -> ! {
    // A long-lived daemon must not keep the caller's files open (a directory fd of the
    // caller would keep another mount busy): keep only stdio, the answer pipe, the FUSE
    // connection and the layers.
    unsafe { libc::fcntl(wr.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    let mut keep = opened.fds();
    keep.extend(mounted.as_ref().map(|f| f.as_raw_fd()));
    keep.extend([0, 1, 2, wr.as_raw_fd()]);
    close_all_but(keep);
    crate::workers::exit_when_gone();
    let pipe = std::cell::RefCell::new(Some(std::fs::File::from(wr)));
    let res = crate::unmount_on_termination(&req.merged).and_then(|()| {
        serve_opened(req, opened, mounted, || {
            detach_stdio();
            // Writing "ok" and closing the pipe tells the caller we are ready.
            if let Some(mut w) = pipe.borrow_mut().take() {
                let _ = w.write_all(b"ok");
            }
        })
    });
    if let Err(e) = res {
        if let Some(mut w) = pipe.borrow_mut().take() {
            let _ = write!(w, "{}", unionctl_union::errors::chain(&e));
        }
        unsafe { libc::_exit(1) };
    }
    unsafe { libc::_exit(0) }
}

/// Closes every file descriptor of this process but those in `keep`.
fn close_all_but(mut keep: Vec<RawFd>) {
    keep.sort_unstable();
    keep.dedup();
    let mut from = 0u32;
    for k in keep.into_iter().filter(|&k| k >= 0).map(|k| k as u32) {
        if k > from {
            unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0u32) };
        }
        from = k + 1;
    }
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32) };
}
