//! Read replies spliced from the file to the FUSE device.
//!
//! A reply through fuser is a read into our buffer (a copy) and a write of it to the
//! device (a second copy). Spliced, the file's pages go into a pipe by reference and are
//! copied once, into the kernel's request: a cold 1 GiB read cost the serving thread
//! ~1 s of CPU in copies, which rootless (SCHED_IDLE, see `workers`) decided the row.
//!
//! The reply is the FUSE header and then the data, and the header holds the length,
//! known once the data is in: so the data goes into one pipe, the header into a second,
//! the data after it (moved, not copied), and the second pipe to the device. The device
//! takes a reply only on the descriptor the request was read from: the session does not
//! clone its descriptor per thread (`options`).
use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use fuser::Errno;

/// The pipes' size: a read-ahead request (128 KiB) and its header; larger reads (O_DIRECT)
/// are answered the usual way. Pipe memory counts against a user's limit
/// (/proc/sys/fs/pipe-user-pages-soft), and a daemon has two pipes per thread.
const PIPE_SIZE: libc::c_int = 256 << 10;
const PAGE: usize = 4096;

/// A reply spliced, or why not.
pub(super) enum Spliced {
    /// The reply went to the device.
    Sent,
    /// The device refused the reply as the request had gone (interrupted, or the
    /// connection ended): nothing more to send.
    Gone,
    /// Reading the file failed: nothing was sent.
    Failed(Errno),
    /// This read cannot be spliced (the file, the pipes or the device did not take it):
    /// nothing was sent, reply as usual.
    Unable,
}

struct Pipes {
    /// The data as read: (read end, write end).
    data: (OwnedFd, OwnedFd),
    /// The reply: header, then the data.
    reply: (OwnedFd, OwnedFd),
    /// Bytes each pipe holds.
    size: usize,
}

/// A serving thread's pipes.
enum ThreadPipes {
    /// Not made yet, or dropped after a failure left data in them.
    Unmade,
    Ready(Pipes),
    /// Pipes of PIPE_SIZE could not be made (the user's pipe memory is spent): not tried
    /// again by this thread.
    Unavailable,
}

thread_local! {
    static PIPES: RefCell<ThreadPipes> = const { RefCell::new(ThreadPipes::Unmade) };
}

/// Replies to request UNIQUE, a read of SIZE bytes at OFFSET of FD, through DEVICE;
/// READ(n) is called once n bytes were read, before the reply goes out (after it, the
/// file may be closed).
pub(super) fn reply_read(
    device: RawFd,
    unique: u64,
    (fd, offset, size): (RawFd, u64, usize),
    read: impl FnOnce(usize),
) -> Spliced {
    PIPES.with_borrow_mut(|slot| {
        if let ThreadPipes::Unmade = slot {
            *slot = Pipes::new().map_or(ThreadPipes::Unavailable, ThreadPipes::Ready);
        }
        let ThreadPipes::Ready(pipes) = &*slot else {
            return Spliced::Unable;
        };
        // One pipe slot per page, one more for a read not on a page boundary, one for
        // the header.
        if size.div_ceil(PAGE) + 2 > pipes.size / PAGE {
            return Spliced::Unable;
        }
        let r = pipes.reply(device, unique, (fd, offset, size), read);
        if !matches!(r, Ok(Spliced::Sent)) {
            // Whatever is left in the pipes would start the next reply: start afresh.
            *slot = ThreadPipes::Unmade;
        }
        r.unwrap_or_else(Spliced::Failed)
    })
}

impl Pipes {
    fn new() -> Option<Pipes> {
        let data = pipe()?;
        let reply = pipe()?;
        // SAFETY: fcntl on our pipes.
        let size = unsafe { libc::fcntl(data.1.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        if size < 0 || unsafe { libc::fcntl(reply.1.as_raw_fd(), libc::F_SETPIPE_SZ, size) } != size
        {
            return None;
        }
        Some(Pipes {
            data,
            reply,
            size: size as usize,
        })
    }

    /// Err(e): the file's read failed; Ok(Unable): nothing was sent, the request is to
    /// be answered the usual way.
    fn reply(
        &self,
        device: RawFd,
        unique: u64,
        (fd, offset, size): (RawFd, u64, usize),
        read: impl FnOnce(usize),
    ) -> Result<Spliced, Errno> {
        let mut off = offset as libc::loff_t;
        let mut got = 0;
        while got < size {
            match splice(fd, Some(&mut off), self.data.1.as_raw_fd(), size - got) {
                Ok(0) => break,
                Ok(n) => got += n,
                // A file that does not splice.
                Err(Errno::EINVAL) if got == 0 => return Ok(Spliced::Unable),
                Err(e) => return Err(e),
            }
        }
        read(got);
        let header = fuse_out_header(16 + got, unique);
        // SAFETY: writes our 16-byte header.
        if unsafe { libc::write(self.reply.1.as_raw_fd(), header.as_ptr().cast(), 16) } != 16 {
            return Ok(Spliced::Unable);
        }
        let mut moved = 0;
        while moved < got {
            match splice(
                self.data.0.as_raw_fd(),
                None,
                self.reply.1.as_raw_fd(),
                got - moved,
            ) {
                Ok(n) if n > 0 => moved += n,
                _ => return Ok(Spliced::Unable),
            }
        }
        match splice(self.reply.0.as_raw_fd(), None, device, 16 + got) {
            Ok(n) if n == 16 + got => Ok(Spliced::Sent),
            // A request the kernel no longer waits for (interrupted), or a connection
            // that ended: done with, as it would be after fuser's write.
            Err(e) if [libc::ENOENT, libc::ENODEV, libc::ECONNABORTED].contains(&e.code()) => {
                Ok(Spliced::Gone)
            }
            // Not taken: still waited for, so answered the usual way.
            _ => Ok(Spliced::Unable),
        }
    }
}

fn pipe() -> Option<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors that we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    Some(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn splice(
    from: RawFd,
    off: Option<&mut libc::loff_t>,
    to: RawFd,
    len: usize,
) -> Result<usize, Errno> {
    let off = off.map_or(std::ptr::null_mut(), |o| o as *mut _);
    // SAFETY: plain descriptors; OFF, when given, points to our offset.
    let n = unsafe {
        libc::splice(
            from,
            off,
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE,
        )
    };
    if n < 0 {
        Err(Errno::from(std::io::Error::last_os_error()))
    } else {
        Ok(n as usize)
    }
}

/// struct fuse_out_header: len, error (0), unique.
fn fuse_out_header(len: usize, unique: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&(len as u32).to_ne_bytes());
    h[8..].copy_from_slice(&unique.to_ne_bytes());
    h
}
