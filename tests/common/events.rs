//! Waiting on kernel events instead of time: process exit (pidfd), changes of a file or
//! directory (inotify), changes of the mount table (poll on /proc/self/mountinfo). Each
//! wait has a generous deadline that only turns a hang into a failure; nothing waits for a
//! fixed time.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long any wait may take before the test fails (a slow, busy CI machine).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// poll(2) on one fd for `events`, until the deadline; true when it became ready.
fn poll_one(fd: i32, events: i16, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n > 0 {
            return true;
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            panic!("poll: {}", std::io::Error::last_os_error());
        }
    }
}

/// A pidfd for `pid`, or None when the process is already gone.
pub fn pidfd(pid: i32) -> Option<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "pidfd_open {pid}: {e}");
        return None;
    }
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits up to `timeout` for `fd` (a pidfd) to turn readable; false at the timeout.
pub fn wait_fd(fd: &OwnedFd, timeout: Duration) -> bool {
    poll_one(fd.as_raw_fd(), libc::POLLIN, Instant::now() + timeout)
}

/// SIGKILL through a pidfd (never another process that reused the pid).
pub fn pidfd_kill(fd: &OwnedFd) {
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// Waits until process `pid` has exited (a pidfd turns readable at the exit, reaped or not).
#[track_caller]
pub fn wait_exit(pid: i32, what: &str) {
    if let Some(fd) = pidfd(pid) {
        assert!(
            poll_one(fd.as_raw_fd(), libc::POLLIN, Instant::now() + DEADLINE),
            "{what} (pid {pid}) still runs after {DEADLINE:?}"
        );
    }
}

/// Waits until every process in `pids` has exited.
#[track_caller]
pub fn wait_all_exit(pids: &[i32], what: &str) {
    for pid in pids {
        wait_exit(*pid, what);
    }
}

/// An inotify instance watching one path.
struct Watch {
    fd: OwnedFd,
}

impl Watch {
    fn new(path: &Path) -> Watch {
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        let mask = libc::IN_MODIFY
            | libc::IN_CREATE
            | libc::IN_DELETE
            | libc::IN_MOVED_TO
            | libc::IN_MOVED_FROM
            | libc::IN_CLOSE_WRITE
            | libc::IN_ATTRIB
            | libc::IN_DELETE_SELF
            | libc::IN_MOVE_SELF;
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
        assert!(
            wd >= 0,
            "inotify_add_watch {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        Watch { fd }
    }

    /// Waits for the next batch of events (false at the deadline), and drains it.
    fn next(&self, deadline: Instant) -> bool {
        if !poll_one(self.fd.as_raw_fd(), libc::POLLIN, deadline) {
            return false;
        }
        let mut buf = [0u8; 4096];
        while unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        true
    }
}

/// Waits until `cond` holds, checking it again at every change inotify reports on `path`
/// (a file: its writes; a directory: entries made, written, renamed or removed in it).
/// The watch is set before the first check, so no change can slip between the two.
#[track_caller]
pub fn wait_on_path(path: &Path, what: &str, mut cond: impl FnMut() -> bool) {
    let watch = Watch::new(path);
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            watch.next(deadline),
            "timed out after {DEADLINE:?} waiting for {what} (watching {})",
            path.display()
        );
    }
}

/// Waits until `cond` holds, checking it again at every change of the mount table (the
/// kernel flags /proc/self/mountinfo with POLLPRI when a mount comes or goes).
#[track_caller]
pub fn wait_on_mounts(what: &str, mut cond: impl FnMut() -> bool) {
    let f = std::fs::File::open("/proc/self/mountinfo").unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        // The event is cleared by reading the file to its end.
        let _ = std::io::read_to_string(&f);
        use std::io::Seek;
        let _ = (&f).rewind();
        if cond() {
            return;
        }
        assert!(
            poll_one(f.as_raw_fd(), libc::POLLPRI | libc::POLLERR, deadline),
            "timed out after {DEADLINE:?} waiting for {what}"
        );
    }
}

/// The directory of container `name` in the store at `root` (found by its state.json).
pub fn container_dir(root: &Path, name: &str) -> std::path::PathBuf {
    for e in std::fs::read_dir(root.join("containers"))
        .unwrap()
        .flatten()
    {
        let Ok(text) = std::fs::read(e.path().join("state.json")) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        if v["name"] == name {
            return e.path();
        }
    }
    panic!("no container {name} under {}", root.display());
}

/// Waits until container `name`'s log (ctr.log) holds `needle`. The log is records
/// (`TIME STREAM F|P TEXT`) whose text is the output as written, so a one-line needle
/// ending in a newline is found as it was printed.
#[track_caller]
pub fn wait_log(root: &Path, name: &str, needle: &str) {
    wait_log_with(root, name, &format!("{needle:?}"), |t| t.contains(needle));
}

/// Waits until `cond` holds for container `name`'s log (ctr.log): inotify on the
/// container's directory reports each write to the log.
#[track_caller]
pub fn wait_log_with(root: &Path, name: &str, what: &str, mut cond: impl FnMut(&str) -> bool) {
    let dir = container_dir(root, name);
    let log = dir.join("ctr.log");
    wait_on_path(&dir, &format!("{what} in the log of {name}"), || {
        std::fs::read_to_string(&log).is_ok_and(|t| cond(&t))
    });
}
