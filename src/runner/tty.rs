//! The supervisor's (and exec's) loop: forwards signals to the container process,
//! relays a pty to our terminal or the log, resizes it on SIGWINCH, reaps the child.
use super::linux;
use anyhow::{Context, Result, anyhow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsRawFd, RawFd};

/// Signals passed on to the container process.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Blocks the forwarded signals, SIGCHLD and SIGWINCH, and returns a signalfd for them.
pub fn forwarded_signals() -> Result<SignalFd> {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in FORWARDED
        .iter()
        .chain([libc::SIGCHLD, libc::SIGWINCH].iter())
    {
        if let Ok(sig) = nix::sys::signal::Signal::try_from(*s) {
            set.add(sig);
        }
    }
    set.thread_block().context("block signals")?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).context("signalfd")
}

pub struct Relay<'a> {
    /// Our child to forward to and wait for.
    pub pid: libc::pid_t,
    pub signals: &'a SignalFd,
    /// pty master of the container process, if it has a tty.
    pub master: Option<RawFd>,
    /// Where pty output goes (stdout, or the log).
    pub output: RawFd,
    /// Our stdin/terminal belongs to the container (not detached).
    pub foreground: bool,
    /// Pass our stdin to the pty.
    pub interactive: bool,
}

/// Runs until `pid` exits and the pty is drained; returns the exit code.
pub fn relay(r: &Relay) -> Result<i32> {
    let sfd = r.signals.as_raw_fd();
    let stdin_tty = r.foreground && linux::is_tty(0);
    let saved_term = match (r.master, stdin_tty) {
        (Some(m), true) => {
            if let Some(ws) = linux::get_winsize(0) {
                linux::set_winsize(m, &ws);
            }
            linux::make_raw(0)
        }
        _ => None,
    };
    let mut stdin_open = r.master.is_some() && r.foreground && r.interactive;
    let mut master_open = r.master.is_some();
    let mut exit: Option<i32> = None;
    let mut buf = vec![0u8; 16384];
    let result = loop {
        if let Some(code) = exit
            && !master_open
        {
            break Ok(code);
        }
        let mut fds = vec![libc::pollfd {
            fd: sfd,
            events: libc::POLLIN,
            revents: 0,
        }];
        if let (Some(m), true) = (r.master, master_open) {
            fds.push(libc::pollfd {
                fd: m,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if stdin_open && exit.is_none() {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // Once the process is gone, only drain what the pty still holds.
        let timeout = if exit.is_some() { 100 } else { -1 };
        // SAFETY: poll on our own array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break Err(anyhow!("poll: {e}"));
        }
        if n == 0 {
            master_open = false;
            continue;
        }
        for p in &fds {
            if p.revents == 0 {
                continue;
            }
            if p.fd == sfd {
                while let Ok(Some(info)) = r.signals.read_signal() {
                    let sig = info.ssi_signo as libc::c_int;
                    if sig == libc::SIGCHLD {
                        let mut status = 0;
                        // SAFETY: reaping our own child without blocking.
                        let got = unsafe { libc::waitpid(r.pid, &mut status, libc::WNOHANG) };
                        if got == r.pid {
                            exit = Some(linux::wait_status_code(status));
                        }
                    } else if sig == libc::SIGWINCH {
                        if let (Some(m), Some(ws)) = (r.master, linux::get_winsize(0)) {
                            linux::set_winsize(m, &ws);
                        }
                    } else {
                        let _ = linux::kill(r.pid, sig);
                    }
                }
            } else if Some(p.fd) == r.master {
                // SAFETY: read into our buffer.
                let n = unsafe { libc::read(p.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    master_open = false;
                } else {
                    let _ = linux::write_all_fd(r.output, &buf[..n as usize]);
                }
            } else if p.fd == 0 {
                // SAFETY: read into our buffer.
                let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    stdin_open = false;
                    if !stdin_tty && let Some(m) = r.master {
                        // Piped input ended: the terminal's EOF character (VEOF).
                        let _ = linux::write_all_fd(m, &[4]);
                    }
                } else if let Some(m) = r.master {
                    let _ = linux::write_all_fd(m, &buf[..n as usize]);
                }
            }
        }
    };
    if let Some(t) = saved_term {
        linux::restore_term(0, &t);
    }
    result
}
