//! setattr: through the upper copy, or the handle kept on an object with no name left.
use super::*;

impl UnionFs {
    pub fn setattr(&self, ino: u64, a: &SetAttr, fh: Option<RawFd>) -> io::Result<Stat> {
        if let Some(orphan) = self.upper_orphan(ino) {
            return self.setattr_orphan(ino, &orphan, a, fh);
        }
        self.stable(|| self.setattr_named(ino, a, fh))
    }

    pub(super) fn setattr_named(
        &self,
        ino: u64,
        a: &SetAttr,
        fh: Option<RawFd>,
    ) -> io::Result<Stat> {
        // A truncate needs the data; any other change only the metadata.
        let (node, fd, p) = match a.size {
            Some(_) => self.copied_up_with_data(ino)?,
            None => self.copied_up(ino)?,
        };
        let real = sys::lstatat(fd, &p)?;
        check_kind(&node, &real)?;
        let kept = self
            .upper_override()
            .filter(|_| override_stat::applies(&real));
        if let (Some(kind), true) = (kept, a.uid.is_some() || a.gid.is_some() || a.mode.is_some()) {
            // The owner and mode live in the xattr: the inode keeps its own.
            let now = self.stat_node(&node)?;
            let v = override_stat::format(
                a.uid.unwrap_or(now.st_uid),
                a.gid.unwrap_or(now.st_gid),
                a.mode.unwrap_or(now.st_mode),
            );
            sys::lsetxattr(fd, &p, kind.name(), v.as_bytes(), 0)?;
        } else if a.uid.is_some() || a.gid.is_some() {
            let r = sys::fchownat(fd, &p, a.uid.unwrap_or(u32::MAX), a.gid.unwrap_or(u32::MAX));
            if !a.owner_may_fail {
                r?;
            }
        }
        if let (Some(mode), None) = (a.mode, kept) {
            sys::fchmodat(fd, &p, mode & 0o7777)?;
        }
        if let Some(size) = a.size {
            match fh {
                Some(f) if unsafe { libc::ftruncate(f, size as i64) } == 0 => {}
                _ => sys::truncateat(fd, &p, size)?,
            }
            if a.kill_suidgid && a.mode.is_none() && kept.is_some() {
                self.drop_kept_setid(ino)?;
            } else if a.kill_suidgid && a.mode.is_none() {
                let now = sys::lstatat(fd, &p)?.st_mode;
                if killed_suidgid(now) != now {
                    sys::fchmodat(fd, &p, killed_suidgid(now) & 0o7777)?;
                }
            }
        }
        if a.atime.is_some() || a.mtime.is_some() {
            sys::utimensat(fd, &p, &[ts(a.atime), ts(a.mtime)])?;
        }
        self.stat_node(&node)
    }

    /// Under the upper's stat override, a write or truncate by a caller without
    /// CAP_FSETID drops the set-ID bits kept in the xattr (the inode holds none), as the
    /// kernel drops an inode's. True if there were any.
    pub fn drop_kept_setid(&self, ino: u64) -> io::Result<bool> {
        let Some(kind) = self.upper_override() else {
            return Ok(false);
        };
        let node = self.node(ino)?;
        let st = node.snapshot();
        if !st.upper && st.index.is_none() {
            return Ok(false);
        }
        let (fd, p) = self.real(&node, &st)?;
        let kept = sys::lgetxattr(fd, &p, kind.name())?;
        let Some(o) = kept.as_deref().and_then(override_stat::parse) else {
            return Ok(false);
        };
        let mode = killed_suidgid(o.mode);
        if mode == o.mode {
            return Ok(false);
        }
        let v = override_stat::format(o.uid, o.gid, mode);
        sys::lsetxattr(fd, &p, kind.name(), v.as_bytes(), 0)?;
        Ok(true)
    }

    /// The handle kept on an upper object whose every name is gone (see `keep_orphan`).
    pub(super) fn upper_orphan(&self, ino: u64) -> Option<Arc<OwnedFd>> {
        let node = self.nodes.get(ino)?;
        let o = {
            let st = node.lock();
            if !st.aliases.is_empty() {
                return None;
            }
            st.orphan.clone()?
        };
        let upper_dev = self.layers.upper.as_ref()?.dev;
        (sys::fstat(o.as_raw_fd()).ok()?.st_dev == upper_dev).then_some(o)
    }

    /// setattr of an upper object that has no name any more (fchmod, ftruncate... of an
    /// unlinked open file): through its handle; an O_PATH handle takes the changes
    /// through AT_EMPTY_PATH or its /proc/self/fd link.
    pub(super) fn setattr_orphan(
        &self,
        ino: u64,
        o: &OwnedFd,
        a: &SetAttr,
        fh: Option<RawFd>,
    ) -> io::Result<Stat> {
        let proc =
            CString::new(std::os::unix::ffi::OsStringExt::into_vec(proc_fd_path(o))).unwrap();
        let ok = |r: libc::c_int| {
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        if a.uid.is_some() || a.gid.is_some() {
            let (u, g) = (a.uid.unwrap_or(u32::MAX), a.gid.unwrap_or(u32::MAX));
            // SAFETY: o is open; the empty path names o itself.
            let r = ok(unsafe {
                libc::fchownat(o.as_raw_fd(), c"".as_ptr(), u, g, libc::AT_EMPTY_PATH)
            });
            if !a.owner_may_fail {
                r?;
            }
        }
        if let Some(mode) = a.mode {
            // SAFETY: valid path.
            ok(unsafe { libc::chmod(proc.as_ptr(), mode & 0o7777) })?;
        }
        if let Some(size) = a.size {
            // SAFETY: f (the caller's handle) and the path are valid.
            match fh {
                Some(f) if unsafe { libc::ftruncate(f, size as i64) } == 0 => {}
                _ => ok(unsafe { libc::truncate(proc.as_ptr(), size as i64) })?,
            }
        }
        if a.atime.is_some() || a.mtime.is_some() {
            let t = [ts(a.atime), ts(a.mtime)];
            // SAFETY: valid path and times.
            ok(unsafe { libc::utimensat(libc::AT_FDCWD, proc.as_ptr(), t.as_ptr(), 0) })?;
        }
        self.stat_node(&*self.node(ino)?)
    }
}
