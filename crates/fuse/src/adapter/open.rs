//! Open files: how each is served (see `iomode`), and their descriptors.
use super::*;
use unionctl_union::readahead::ReadAhead;
use unionctl_union::writebehind::WriteBehind;

/// An open file handle.
pub(super) struct OpenHandle {
    pub(super) ino: u64,
    pub(super) mode: OpenMode,
    /// Opened read-only on a lower file that a copy-up may replace.
    pub(super) on_lower: bool,
    /// Reads served by us: how far ahead of them the file is read, and how far behind
    /// them the layer's pages are dropped.
    pub(super) ahead: ReadAhead,
    /// Writes served by us: how far behind them the file is being written back.
    pub(super) behind: WriteBehind,
}

/// No FLUSH request on close: we keep no state that a close must push out.
pub(super) const NOFLUSH: FopenFlags = FopenFlags::FOPEN_NOFLUSH;

/// How a new open is served, and the handle and reply flags for it.
pub(super) struct Opened {
    pub(super) fh: FileHandle,
    pub(super) flags: FopenFlags,
    /// The inode's backing file, for a reply with FOPEN_PASSTHROUGH.
    pub(super) backing: Option<Arc<BackingId>>,
}

impl UnionFuse {
    /// What an open of FD would like, before the other opens of its inode count.
    pub(super) fn want(&self, fd: RawFd, writable: bool, on_lower: bool) -> Want {
        // A lower file that may be copied up is never a backing file: the kernel would
        // tie every later open of the inode to it, and the copy-up's writable open could
        // not pass through to the upper file, nor could this handle follow the copy-up.
        if !self.passthrough.load(Ordering::Relaxed) || on_lower {
            return Want::Cached;
        }
        let Ok(st) = crate::sys::fstat(fd) else {
            return Want::Direct;
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Want::Cached;
        }
        // Passthrough writes never reach us, so we could not drop the set-ID bits of
        // such a file (see write): it is served by us, writes bypassing the page cache.
        if killed_suidgid(st.st_mode) != st.st_mode {
            return if writable { Want::Direct } else { Want::Cached };
        }
        Want::Passthrough((st.st_dev, st.st_ino))
    }

    /// Chooses and records how to serve a new open of inode INO on FD (see `iomode`),
    /// registering FD as the inode's passthrough backing file when it becomes one.
    pub(super) fn start_open(
        &self,
        ino: u64,
        fd: OwnedFd,
        writable: bool,
        on_lower: bool,
        register: impl FnOnce(&OwnedFd) -> io::Result<BackingId>,
    ) -> Opened {
        let want = self.want(fd.as_raw_fd(), writable, on_lower);
        let (chosen, err) = self.iomodes.open(ino, want, || register(&fd));
        // In a user namespace the kernel refuses (EPERM): plain reads from now on.
        if err.and_then(|e| e.raw_os_error()) == Some(libc::EPERM) {
            self.passthrough.store(false, Ordering::Relaxed);
        }
        let fh = FileHandle(fd.into_raw_fd() as u64);
        let mode = chosen.mode;
        self.handles.lock().unwrap().insert(
            fh.0,
            OpenHandle {
                ino,
                mode,
                on_lower,
                ahead: ReadAhead::default(),
                behind: WriteBehind::default(),
            },
        );
        let flags = match mode {
            OpenMode::Passthrough => NOFLUSH,
            OpenMode::PassthroughDirect | OpenMode::Direct => NOFLUSH | FopenFlags::FOPEN_DIRECT_IO,
            // Layers change only through us, so cached pages stay valid across opens.
            OpenMode::Cached => NOFLUSH | FopenFlags::FOPEN_KEEP_CACHE,
        };
        Opened {
            fh,
            flags,
            backing: chosen.backing,
        }
    }

    /// Forgets handle FH (at its release) and closes it.
    pub(super) fn end_open(&self, fh: FileHandle) {
        if let Some(h) = self.handles.lock().unwrap().remove(&fh.0) {
            self.iomodes.release(h.ino, h.mode);
        }
        drop(unsafe { OwnedFd::from_raw_fd(fd_of(fh)) });
    }

    /// The descriptor of a handle, moved to the upper file first if it was opened on a
    /// lower file that has been copied up since (the number stays the same: dup3).
    pub(super) fn current_fd(&self, fh: FileHandle) -> RawFd {
        let ino = match self.handles.lock().unwrap().get(&fh.0) {
            Some(h) if h.on_lower => h.ino,
            _ => return fd_of(fh),
        };
        if let Ok(Some(upper)) = self.fs.reopen_copied_up(ino)
            // SAFETY: both descriptors are open; dup3 replaces the handle's atomically.
            && unsafe { libc::dup3(upper.as_raw_fd(), fd_of(fh), libc::O_CLOEXEC) } >= 0
            && let Some(h) = self.handles.lock().unwrap().get_mut(&fh.0)
        {
            h.on_lower = false;
        }
        fd_of(fh)
    }

    /// Records a read through handle FH of DONE bytes of the ASKED at OFFSET; if it
    /// continues a sequential stream, reads FD further ahead and drops what the stream
    /// left behind. Called before the reply: after it, the handle may be released.
    pub(super) fn read_ahead(
        &self,
        fh: FileHandle,
        fd: RawFd,
        offset: u64,
        done: usize,
        asked: usize,
    ) {
        let advice = match self.handles.lock().unwrap().get_mut(&fh.0) {
            Some(h) => h.ahead.after_read(offset, done as u64, asked as u64),
            None => return,
        };
        advice.apply(fd);
    }

    /// Records a write of N bytes at OFFSET through handle FH: behind a sequential writer,
    /// starts writing the file back and drops what was written back before.
    pub(super) fn write_behind(&self, fh: FileHandle, offset: u64, n: usize) {
        let behind = match self.handles.lock().unwrap().get_mut(&fh.0) {
            Some(h) => h.behind.after_write(offset, n as u64),
            None => return,
        };
        behind.apply(fd_of(fh));
    }
}

pub(super) fn fd_of(fh: FileHandle) -> RawFd {
    fh.0 as RawFd
}

pub(super) fn check(r: isize) -> Result<usize, Errno> {
    if r < 0 {
        Err(errno(&io::Error::last_os_error()))
    } else {
        Ok(r as usize)
    }
}
