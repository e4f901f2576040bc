//! The union daemon as a background process: forked from the caller (no exec, so any
//! program linking the library can mount, not only the `unionctl` binary), detached
//! into its own session, serving until the union is unmounted. The caller learns over
//! a pipe whether the mount is ready or why it failed.
use crate::error::{Context, Result};
use crate::serve::{MountRequest, detach_stdio, precheck, serve};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// A mount under way: the caller may do other work until `wait`.
pub struct PendingMount {
    ready: OwnedFd,
    merged: std::path::PathBuf,
}

impl PendingMount {
    /// Returns once the union is mounted, or with the reason it is not (in which case
    /// nothing is left behind).
    pub fn wait(self) -> Result<()> {
        let mut msg = String::new();
        std::fs::File::from(self.ready)
            .read_to_string(&mut msg)
            .context("reading the mount daemon's answer")?;
        match msg.as_str() {
            "ok" => Ok(()),
            "" => bail!(
                "{}: the mount daemon died before the mount was ready",
                self.merged.display()
            ),
            _ => bail!("{msg}"),
        }
    }
}

/// Checks the request, then forks the daemon (twice, so it is not our child and needs
/// no reaping) and returns at once. Call it before this process starts threads.
pub fn spawn(req: &MountRequest) -> Result<PendingMount> {
    precheck(req)?;
    let (rd, wr) = nix::unistd::pipe().context("pipe")?;
    // SAFETY: the children only run our own code on a copy of this process.
    match unsafe { nix::unistd::fork() }.context("fork the mount daemon")? {
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            // The middle process exits right after forking the daemon.
            let _ = nix::sys::wait::waitpid(child, None);
            Ok(PendingMount {
                ready: rd,
                merged: req.merged.clone(),
            })
        }
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let _ = nix::unistd::setsid();
            match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => daemon_main(req, wr),
                _ => unsafe { libc::_exit(0) },
            }
        }
    }
}

/// The daemon: serve until unmounted, then exit; never returns to the caller's code.
fn daemon_main(req: &MountRequest, wr: OwnedFd) -> ! {
    // A long-lived daemon must not keep the caller's files open (a directory fd of the
    // caller would keep another mount busy): keep only stdio and the answer pipe.
    let wr_fd = unsafe { libc::fcntl(wr.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    drop(wr);
    if wr_fd < 0 {
        unsafe { libc::_exit(1) };
    }
    if wr_fd > 3 {
        unsafe {
            libc::dup3(wr_fd, 3, libc::O_CLOEXEC);
            libc::close(wr_fd);
        }
    }
    unsafe { libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) };
    use std::os::fd::FromRawFd;
    // SAFETY: fd 3 is the answer pipe we just placed there.
    let pipe = std::cell::RefCell::new(Some(unsafe { std::fs::File::from_raw_fd(3) }));
    let res = crate::unmount_on_termination(&req.merged).and_then(|()| {
        serve(req, || {
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
