//! Removing names: a whiteout (made in the work dir, shared with every other one) takes
//! the place of a name a lower layer shows.
use super::*;

impl UnionFs {
    /// unlink(2); again when an ancestor's rename made its path stale (see `stable`).
    pub fn unlink(&self, parent: u64, name: &OsStr) -> io::Result<()> {
        self.stable(|| self.remove(parent, name, false))
    }

    pub fn rmdir(&self, parent: u64, name: &OsStr) -> io::Result<()> {
        self.stable(|| self.remove(parent, name, true))?;
        self.subdirs_changed(parent);
        Ok(())
    }

    /// Removes the entries of an upper dir that the union shows as empty (so only
    /// whiteouts and markers remain in it).
    pub(super) fn clear_dir(&self, path: &OsStr) -> io::Result<()> {
        let ufd = self.upper()?;
        for (n, _, _) in sys::read_dir_names(ufd, path)? {
            cow::remove_tree(ufd, &join(path, &n))?;
        }
        Ok(())
    }

    pub(super) fn remove(&self, parent: u64, name: &OsStr, dir: bool) -> io::Result<()> {
        if self.read_only() {
            return Err(sys::errno(libc::EROFS));
        }
        let (_, pst, ppath) = self.dir_path(parent)?;
        let found = self.resolve(&pst, &ppath, name)?.ok_or_else(enoent)?;
        let found = self.index_before_whiteout(parent, name, found, &pst, &ppath)?;
        let is_dir = found.kind == libc::S_IFDIR;
        if dir && !is_dir {
            return Err(sys::errno(libc::ENOTDIR));
        }
        if !dir && is_dir {
            return Err(sys::errno(libc::EISDIR));
        }
        let path = join(&ppath, name);
        if is_dir {
            let cst = NodeState {
                aliases: vec![],
                upper: found.upper.is_some(),
                lowers: found.lowers.as_slice().into(),
                redirected: false,
                metacopy: false,
                index: None,
                orphan: None,
            };
            if !self.dir_is_empty(&cst, &path)? {
                return Err(sys::errno(libc::ENOTEMPTY));
            }
        }
        let needs_wh = self.lower_visible(&pst, &ppath, name)?;
        self.copy_up(parent)?;
        let ufd = self.upper()?;
        let flag = if is_dir { libc::AT_REMOVEDIR } else { 0 };
        let node = self.nodes.get_key(found.ino);
        if let Some(n) = &node {
            self.keep_orphan(n, parent, name);
        }
        if found.upper.is_some() {
            if is_dir {
                self.clear_dir(&path)?;
            }
            if needs_wh {
                match self.layers.format {
                    Format::Overlay => {
                        // A whiteout made in the work dir takes the object's place in one
                        // rename; the object then leaves from the work dir.
                        let work = self.layers.work_fd();
                        let tmp = self.tmp_name();
                        self.whiteout_at(work, &tmp)?;
                        let swap = if is_dir { libc::RENAME_EXCHANGE } else { 0 };
                        if let Err(e) = sys::renameat2(work, &tmp, ufd, &path, swap) {
                            let _ = sys::unlinkat(work, &tmp, 0);
                            return Err(e);
                        }
                        if is_dir {
                            sys::unlinkat(work, &tmp, flag)?;
                        }
                    }
                    Format::Aufs => {
                        self.make_whiteout(&ppath, name)?;
                        sys::unlinkat(ufd, &path, flag)?;
                    }
                }
            } else {
                sys::unlinkat(ufd, &path, flag)?;
            }
        } else {
            self.make_whiteout(&ppath, name)?;
            if let (Some(ix), Some(ixfd)) = (&found.index, &self.layers.index) {
                self.adjust_nlink(ixfd.as_raw_fd(), ix, -1)?;
            }
        }
        if let Some(node) = node {
            let mut st = node.lock();
            st.aliases.retain(|a| !(a.0 == parent && a.1 == name));
            if found.upper.is_some() && st.index.is_none() && st.aliases.is_empty() {
                st.upper = false;
            }
            self.nodes.touch(&node);
            drop(st);
            self.unhash_if_gone(&node);
        }
        Ok(())
    }

    /// After a name of NODE went: when that was the last link of its inode, the inode
    /// number is free for reuse, and an object that gets it is not this node.
    pub(super) fn unhash_if_gone(&self, node: &Node) {
        let st = node.lock();
        if !st.aliases.is_empty() {
            return;
        }
        let gone = st.orphan.as_ref().is_some_and(|o| {
            sys::fstat(std::os::fd::AsRawFd::as_raw_fd(&**o)).is_ok_and(|s| s.st_nlink == 0)
        });
        drop(st);
        if gone {
            self.nodes.unhash(node);
        }
    }

    /// Before the last name of an object the kernel still holds goes, keeps a handle on it
    /// so it stays reachable (fstat, ftruncate of an unlinked open file or removed dir).
    pub(super) fn keep_orphan(&self, node: &Node, parent: u64, name: &OsStr) {
        let st = node.snapshot();
        let last = st.aliases.iter().all(|a| a.0 == parent && a.1 == name);
        if !last || st.index.is_some() {
            return;
        }
        if let Ok((fd, p)) = self.real(node, &st)
            && let Ok(f) = sys::openat(fd, &p, libc::O_PATH | libc::O_NOFOLLOW, 0)
        {
            node.lock().orphan = Some(Arc::new(f));
        }
    }

    /// Before a lower-only name of a hard link is whited out (unlink, rename over it), it
    /// is copied up through the index, as overlayfs does: the index then carries the
    /// union's link count, which the whiteout lowers by one.
    pub(super) fn index_before_whiteout(
        &self,
        parent: u64,
        name: &OsStr,
        found: Found,
        pst: &NodeState,
        ppath: &OsStr,
    ) -> io::Result<Found> {
        let hardlinked = found.lower_stat.is_some_and(|l| l.st_nlink > 1);
        if found.upper.is_some()
            || found.kind == libc::S_IFDIR
            || !hardlinked
            || self.layers.index.is_none()
        {
            return Ok(found);
        }
        let Some(node) = self.nodes.get_key(found.ino) else {
            return Ok(found);
        };
        self.prefer_alias(&node, parent, name);
        self.copy_up(node.ino)?;
        let pst = NodeState {
            upper: true,
            ..pst.clone()
        };
        self.resolve(&pst, ppath, name)?.ok_or_else(enoent)
    }

    pub(super) fn set_opaque(&self, fd: RawFd, p: &OsStr) -> io::Result<()> {
        match self.layers.format {
            Format::Overlay => sys::lsetxattr(fd, p, &self.layers.xattr.opaque, b"y", 0),
            Format::Aufs => {
                // The marker is a file in the dir: keep the dir's times as they were, as
                // an opaque xattr would.
                let before = sys::lstatat(fd, p)?;
                sys::openat(
                    fd,
                    &join(p, OsStr::new(whiteout::AUFS_OPAQUE)),
                    libc::O_CREAT | libc::O_WRONLY,
                    0o444,
                )?;
                restore_times(fd, p, &before)
            }
        }
    }

    pub(super) fn make_whiteout(&self, ppath: &OsStr, name: &OsStr) -> io::Result<()> {
        let ufd = self.upper()?;
        let path = match self.layers.format {
            Format::Overlay => join(ppath, name),
            Format::Aufs => join(ppath, &whiteout::aufs_whiteout_name(name)),
        };
        self.whiteout_at(ufd, &path)
    }

    /// Makes a whiteout (a char 0/0 device, or an aufs `.wh.` file) at DIR/P. As the
    /// kernel does, every whiteout is a hard link to one shared inode in the work dir:
    /// allocating an inode per whiteout costs more than the rest of an unlink.
    pub(super) fn whiteout_at(&self, dir: RawFd, p: &OsStr) -> io::Result<()> {
        let work = self.layers.work_fd();
        let mut shared = self.shared_whiteout.lock().unwrap();
        for _ in 0..3 {
            match &*shared {
                SharedWhiteout::Unsupported => break,
                SharedWhiteout::None => {
                    let tmp = self.tmp_name();
                    self.fresh_whiteout(work, &tmp)?;
                    *shared = SharedWhiteout::At(tmp);
                }
                SharedWhiteout::At(src) => match sys::linkat(work, src, dir, p) {
                    Ok(()) => return Ok(()),
                    Err(e) => match e.raw_os_error() {
                        // Link count full: the next round starts a new shared inode.
                        Some(libc::EMLINK) => {
                            let _ = sys::unlinkat(work, src, 0);
                            *shared = SharedWhiteout::None;
                        }
                        // The upper file system cannot link it: one inode per whiteout.
                        Some(libc::EPERM | libc::EOPNOTSUPP) => {
                            *shared = SharedWhiteout::Unsupported;
                            break;
                        }
                        // The shared one may be gone; a fresh whiteout tells.
                        Some(libc::ENOENT) => {
                            *shared = SharedWhiteout::None;
                            break;
                        }
                        // An aufs marker that is already there is as good as a new one.
                        Some(libc::EEXIST) if self.layers.format == Format::Aufs => {
                            return Ok(());
                        }
                        _ => return Err(e),
                    },
                },
            }
        }
        drop(shared);
        self.fresh_whiteout(dir, p)
    }

    pub(super) fn fresh_whiteout(&self, dir: RawFd, p: &OsStr) -> io::Result<()> {
        match self.layers.format {
            Format::Overlay => sys::mknodat(dir, p, libc::S_IFCHR, 0),
            Format::Aufs => sys::openat(dir, p, libc::O_CREAT | libc::O_WRONLY, 0o444).map(drop),
        }
    }
}
