//! Thin adapters over the Linux syscalls the runner needs and nix does not wrap
//! (clone as fork, capabilities, fd passing, loopback, pty ioctls).
use crate::error::{Context, Result};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// clone(2) without a new stack: returns like fork, in the child with `None`.
/// The process must be single-threaded.
pub fn clone_fork(flags: libc::c_int) -> io::Result<Option<libc::pid_t>> {
    // SAFETY: with a null stack clone behaves as fork; the caller is single-threaded.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match rc {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid as libc::pid_t)),
    }
}

/// A pipe with both ends close-on-exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec unix stream socket pair.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills the array on success.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("socketpair");
    }
    // SAFETY: fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn write_all_fd(fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// Reads until EOF.
pub fn read_to_end_fd(fd: RawFd) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a valid buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// Sends one fd over a unix socket (SCM_RIGHTS), with one byte of data.
pub fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let iov = [io::IoSlice::new(&[0u8])];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&[fd])],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// Receives one fd sent by `send_fd`.
pub fn recv_fd(sock: RawFd) -> io::Result<OwnedFd> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut cbuf = nix::cmsg_space!(RawFd);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cbuf), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor in our table for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "no file descriptor received",
    ))
}

/// Capability numbers (linux/capability.h).
pub mod cap {
    pub const CHOWN: u32 = 0;
    pub const DAC_OVERRIDE: u32 = 1;
    pub const FOWNER: u32 = 3;
    pub const FSETID: u32 = 4;
    pub const KILL: u32 = 5;
    pub const SETGID: u32 = 6;
    pub const SETUID: u32 = 7;
    pub const SETPCAP: u32 = 8;
    pub const NET_BIND_SERVICE: u32 = 10;
    pub const NET_RAW: u32 = 13;
    pub const SYS_CHROOT: u32 = 18;
    pub const MKNOD: u32 = 27;
    pub const AUDIT_WRITE: u32 = 29;
    pub const SETFCAP: u32 = 31;
}

/// Docker's default capability set.
pub const DEFAULT_CAPS: [u32; 14] = [
    cap::CHOWN,
    cap::DAC_OVERRIDE,
    cap::FSETID,
    cap::FOWNER,
    cap::MKNOD,
    cap::NET_RAW,
    cap::SETGID,
    cap::SETUID,
    cap::SETFCAP,
    cap::SETPCAP,
    cap::NET_BIND_SERVICE,
    cap::SYS_CHROOT,
    cap::KILL,
    cap::AUDIT_WRITE,
];

/// The highest capability number this kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Whether `cap` is in this process's bounding set (what a process it starts can get).
pub fn in_bounding_set(cap: u32) -> bool {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) == 1 }
}

/// Drops every capability outside `keep` from the bounding set.
pub fn drop_bounding_set(keep: &[u32]) -> Result<()> {
    for cap in 0..=last_cap() {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                continue; // cap unknown to this kernel
            }
            return Err(e).with_context(|| format!("drop capability {cap}"));
        }
    }
    Ok(())
}

/// Sets effective, permitted and inheritable sets (capset v3).
pub fn set_caps(effective: &[u32], permitted: &[u32], inheritable: &[u32]) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut data = [Data::default(); 2];
    for (set, field) in [(effective, 0), (permitted, 1), (inheritable, 2)] {
        for &cap in set {
            let word = &mut data[(cap / 32) as usize];
            let bit = 1u32 << (cap % 32);
            match field {
                0 => word.effective |= bit,
                1 => word.permitted |= bit,
                _ => word.inheritable |= bit,
            }
        }
    }
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    // SAFETY: capset with a v3 header and two data words.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("capset");
    }
    Ok(())
}

/// Clears every ambient capability (so nothing leaks past exec as a non-root user).
pub fn clear_ambient() {
    // SAFETY: prctl with integer arguments; failure (old kernel) is harmless.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
}

pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error()).context("no_new_privs");
    }
    Ok(())
}

/// Brings the loopback interface of the current network namespace up.
pub fn loopback_up() -> Result<()> {
    // SAFETY: a datagram socket only used for interface ioctls.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error()).context("socket for lo");
    }
    // SAFETY: we own the new fd.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain data; the name fits.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(io::Error::last_os_error()).context("get flags of lo");
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(io::Error::last_os_error()).context("bring lo up");
        }
    }
    Ok(())
}

pub fn cstr(p: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| invalid!("{}: path contains a NUL byte", p.display()))
}

/// Window size of a terminal fd.
pub fn get_winsize(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: TIOCGWINSZ fills a winsize.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to ws.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
}

pub fn set_winsize(fd: RawFd, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads a winsize.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) };
}

/// Opens a new pty pair from `/dev/ptmx` (the devpts instance of the current mount ns).
pub fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let ptmx = c"/dev/ptmx";
    // SAFETY: open with a constant path.
    let master = unsafe {
        libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        return Err(io::Error::last_os_error()).context("/dev/ptmx");
    }
    // SAFETY: we own the fd.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes an int pointer; TIOCGPTPEER opens the peer.
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) != 0 {
            return Err(io::Error::last_os_error()).context("unlock pty");
        }
        let slave = libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(io::Error::last_os_error()).context("open pty peer");
        }
        Ok((master, OwnedFd::from_raw_fd(slave)))
    }
}

/// Makes `fd` the controlling terminal and stdio of a fresh session.
pub fn become_tty_session(fd: RawFd) -> Result<()> {
    // SAFETY: plain syscalls on our own process and fds.
    unsafe {
        libc::setsid();
        if libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 {
            return Err(io::Error::last_os_error()).context("set controlling terminal");
        }
        for target in 0..3 {
            if libc::dup2(fd, target) < 0 {
                return Err(io::Error::last_os_error()).context("dup2 pty");
            }
        }
    }
    Ok(())
}

/// Puts a terminal in raw mode; returns the previous settings to restore.
pub fn make_raw(fd: RawFd) -> Option<libc::termios> {
    // SAFETY: tcgetattr fills a termios.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers.
    unsafe {
        if libc::tcgetattr(fd, &mut old) != 0 {
            return None;
        }
        let mut raw = old;
        libc::cfmakeraw(&mut raw);
        libc::tcsetattr(fd, libc::TCSANOW, &raw);
    }
    Some(old)
}

pub fn restore_term(fd: RawFd, t: &libc::termios) {
    // SAFETY: valid termios pointer.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, t) };
}

pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(fd) == 1 }
}

/// Resets signal mask and dispositions a child must not inherit (Rust ignores SIGPIPE).
pub fn reset_signals() {
    // SAFETY: changing our own signal state before exec.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// Exit status as a shell reports it: the code, or 128+N when killed by signal N.
pub fn wait_status_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// waitpid that retries on EINTR; returns the encoded exit code.
pub fn wait_pid(pid: libc::pid_t) -> Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(wait_status_code(status));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            bail!("wait for {pid}: {e}");
        }
    }
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill with integer args.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub use crate::sys::pidfd_open;

/// An inotify fd watching `dir` for names written or renamed into it, so that a wait
/// for a record (state.json, replaced by rename) wakes when it changes.
pub fn watch_dir(dir: &Path) -> Result<OwnedFd> {
    watch_dir_for(
        dir,
        libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF,
    )
}

/// An inotify fd watching `dir` for the events of `mask`.
pub fn watch_dir_for(dir: &Path, mask: u32) -> Result<OwnedFd> {
    // SAFETY: inotify_init1 with flags; a non-negative result is a new fd.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("inotify_init1");
    }
    // SAFETY: the fd is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c = cstr(dir)?;
    // SAFETY: a watch on a valid path string.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
        return Err(crate::error::io("watching", dir)(io::Error::last_os_error()));
    }
    Ok(fd)
}

/// Empties a non-blocking inotify fd (the events only say "look again").
pub fn drain(fd: RawFd) {
    let mut buf = [0u8; 4096];
    // SAFETY: reading into our buffer.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Waits until one of `fds` is readable or `until` passes (None: for ever). Returns
/// whether one is readable.
pub fn wait_readable(fds: &[RawFd], until: Option<std::time::Instant>) -> bool {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let timeout = match until {
            None => -1,
            Some(t) => {
                let left = t.saturating_duration_since(std::time::Instant::now());
                left.as_millis().min(i32::MAX as u128) as i32
            }
        };
        // SAFETY: poll on our own array.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return n > 0;
        }
    }
}

/// Exits immediately without running destructors or atexit handlers (for forked children).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(code) }
}

/// openat2(2) with RESOLVE_IN_ROOT: `path` is resolved as if `root` were `/`, so `..`
/// and symlinks (absolute or relative) never leave it; magic links are refused.
pub fn openat2_in_root(root: RawFd, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: zeroed plain struct, then filled.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 with a valid path and a filled open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(wait_status_code(3 << 8), 3);
        assert_eq!(wait_status_code(libc::SIGKILL), 137);
        assert_eq!(wait_status_code(libc::SIGTERM), 143);
    }

    #[test]
    fn fd_passing_over_a_socketpair() {
        let (a, b) = socketpair().unwrap();
        let (r, w) = pipe().unwrap();
        send_fd(a.as_raw_fd(), w.as_raw_fd()).unwrap();
        let got = recv_fd(b.as_raw_fd()).unwrap();
        drop(w);
        write_all_fd(got.as_raw_fd(), b"hi").unwrap();
        drop(got);
        assert_eq!(read_to_end_fd(r.as_raw_fd()).unwrap(), b"hi");
    }
}
