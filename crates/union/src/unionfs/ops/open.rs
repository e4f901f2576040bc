//! Opening the real file of a node.
use super::*;

impl UnionFs {
    /// Opens a node's real file; also tells whether that is a lower file that a later
    /// copy-up may replace.
    pub fn open(&self, ino: u64, flags: i32) -> io::Result<(OwnedFd, bool)> {
        self.stable(|| self.open_now(ino, flags))
    }

    pub(super) fn open_now(&self, ino: u64, flags: i32) -> io::Result<(OwnedFd, bool)> {
        let node = self.node(ino)?;
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if write {
            if self.read_only() {
                return Err(sys::errno(libc::EROFS));
            }
            self.copy_up_data(ino)?;
        }
        let st = node.snapshot();
        let (fd, p) = self.data_real(&node, &st)?;
        let flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_DIRECT);
        let on_lower = !self.read_only() && (!st.upper && st.index.is_none() || st.metacopy);
        Ok((sys::openat(fd, &p, flags | libc::O_NOFOLLOW, 0)?, on_lower))
    }

    /// The node's upper file opened read-only, once a copy-up has put it there: a handle
    /// opened on the lower file then reads it instead, as overlayfs' files do.
    pub fn reopen_copied_up(&self, ino: u64) -> io::Result<Option<OwnedFd>> {
        let node = self.node(ino)?;
        {
            // Checked on every read of such a handle: no copy of the state for the answer
            // that is nearly always "not yet".
            let st = node.lock();
            // A metacopy file's data is still the lower file's, even with no name left.
            if st.metacopy || !st.aliases.is_empty() && !st.upper && st.index.is_none() {
                return Ok(None);
            }
        }
        let st = node.snapshot();
        if st.aliases.is_empty() && st.index.is_none() {
            // Copied up, then unlinked: its kept handle is the upper file.
            return match self.upper_orphan(ino) {
                Some(o) => {
                    let flags = libc::O_RDONLY | libc::O_NONBLOCK;
                    sys::openat(libc::AT_FDCWD, &proc_fd_path(&o), flags, 0).map(Some)
                }
                None => Ok(None),
            };
        }
        if !st.upper && st.index.is_none() {
            return Ok(None);
        }
        let (fd, p) = self.real(&node, &st)?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        sys::openat(fd, &p, flags, 0).map(Some)
    }
}
