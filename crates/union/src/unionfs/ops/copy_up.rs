//! Copy-up: an object of a lower layer moves to the upper one (through the work dir, or
//! the index for hard links) before it changes, as overlayfs does.
use super::*;

impl UnionFs {
    /// Makes sure a node's object exists in the upper layer, copying up parents first.
    /// The data copy runs with no node or table lock held: only other copy-ups of the same
    /// node wait for it (its copy guard); stat, lookup and readdir answer from the lower
    /// object until the copy is renamed into place.
    pub fn copy_up(&self, ino: u64) -> io::Result<()> {
        self.copy_up_as(ino, true)
    }

    /// `copy_up`; METADATA_ONLY: a regular file may be copied without its data
    /// (`metacopy=on`), as for a metadata change; not for a write, which needs the data.
    fn copy_up_as(&self, ino: u64, metadata_only: bool) -> io::Result<()> {
        let node = self.node(ino)?;
        // Done when the object is in the upper layer; for a hard link copied up through the
        // index, its first name must be there too (other names may still be lower only).
        let done = |st: &NodeState| st.upper && st.index.is_none();
        let parent = {
            let st = node.lock();
            if done(&st) {
                return Ok(());
            }
            st.aliases.first().map(|a| a.0).ok_or_else(enoent)?
        };
        if ino == ROOT {
            return Err(sys::errno(libc::EROFS));
        }
        self.copy_up(parent)?;
        let _copying = node.copy_guard();
        let st = node.snapshot();
        if done(&st) {
            return Ok(());
        }
        if st.index.is_some() {
            return self.copy_up_index_link(&node);
        }
        let lower = st.lowers.first().cloned().ok_or_else(enoent)?;
        let lfd = self.layers.lowers[lower.layer].raw();
        let lst = sys::lstatat(lfd, &lower.path)?;
        let work = self.layers.work_fd();
        let tmp = self.tmp_name();
        let skip = |n: &[u8]| self.layers.xattr.is_private(n);
        // metacopy=on, as overlayfs: a regular file is copied without its data until it is
        // written (a hard link too: its index entry is then the metacopy file).
        let meta_only = metadata_only
            && self.metacopy
            && self.layers.format == Format::Overlay
            && lst.st_mode & libc::S_IFMT == libc::S_IFREG;
        // A lower metacopy file (data-only layers) has its data elsewhere.
        let data_below = st.metacopy.then(|| st.lowers.last().cloned()).flatten();
        let res = cow::copy_object(
            lfd,
            &lower.path,
            &lst,
            work,
            &tmp,
            (!meta_only && data_below.is_none()).then_some(&self.copier),
            &skip,
        )
        .and_then(|()| match (meta_only, &data_below) {
            // The copy keeps the metadata file's times, as overlayfs copies the data
            // before it sets them.
            (false, Some(d)) => self
                .copy_data_into(d, work, &tmp)
                .and_then(|()| restore_times(work, &tmp, &lst)),
            _ => Ok(()),
        })
        .and_then(|()| self.place_copy(&node, &lower, &lst, &tmp, meta_only));
        if res.is_err() {
            let _ = cow::remove_tree(work, &tmp);
        }
        res
    }

    /// Another name of a hard link was copied up through the index: this name links to
    /// the index entry too.
    pub(super) fn copy_up_index_link(&self, node: &Node) -> io::Result<()> {
        let (parent, name) = node.lock().aliases.first().cloned().ok_or_else(enoent)?;
        let ufd = self.upper()?;
        let ppath = self.path_of(parent)?;
        let path = join(&ppath, &name);
        let mut st = node.lock();
        if sys::lstat_opt(ufd, &path)?.is_some() {
            st.upper = true;
            self.nodes.touch(node);
            return Ok(());
        }
        let parent_before = sys::lstatat(ufd, &ppath)?;
        self.mark_impure(ufd, &ppath)?;
        let (Some(ix), Some(ixfd)) = (&st.index, &self.layers.index) else {
            return Err(enoent());
        };
        sys::linkat(ixfd.as_raw_fd(), ix, ufd, &path)?;
        self.adjust_nlink(ixfd.as_raw_fd(), ix, -1)?;
        st.upper = true;
        self.nodes.touch(node);
        restore_times(ufd, &ppath, &parent_before)
    }

    /// Under the upper's stat override, a copy (TMP in the work dir) keeps the owner and
    /// mode its lower object showed in the upper's xattr, which holds any owner (a
    /// rootless daemon's inodes cannot); the inode is left open to the daemon (0755
    /// added), as fuse-overlayfs leaves it, without set-ID bits (see `set_new_owner`).
    fn keep_owner_in_xattr(&self, lower: &LowerRef, lst: &Stat, tmp: &OsStr) -> io::Result<()> {
        let Some(kind) = self
            .upper_override()
            .filter(|_| override_stat::applies(lst))
        else {
            return Ok(());
        };
        let mut shown = *lst;
        let layer = self.layers.lowers[lower.layer].override_stat;
        self.show_override(layer, self.lower_fd(lower.layer), &lower.path, &mut shown)?;
        let work = self.layers.work_fd();
        let v = override_stat::format(shown.st_uid, shown.st_gid, shown.st_mode);
        sys::lsetxattr(work, tmp, kind.name(), v.as_bytes(), 0)?;
        sys::fchmodat(work, tmp, (lst.st_mode | 0o755) & 0o777)
    }

    /// Gives a finished copy in the work dir (TMP) its origin and moves it into place (the
    /// node's first name, or the index for a hard link), then marks the node upper. The
    /// path is taken here, after the data copy, so a rename meanwhile is followed.
    pub(super) fn place_copy(
        &self,
        node: &Node,
        lower: &LowerRef,
        lst: &Stat,
        tmp: &OsStr,
        metacopy: bool,
    ) -> io::Result<()> {
        let work = self.layers.work_fd();
        self.keep_owner_in_xattr(lower, lst, tmp)?;
        let ix = self.index_name(lower).ok();
        if let Some(fb) = ix
            .as_ref()
            .and_then(|h| hex::decode(h.as_encoded_bytes()).ok())
        {
            // Not every file system can hold it (user.* on a symlink): optional.
            let _ = sys::lsetxattr(work, tmp, &self.layers.xattr.origin, &fb, 0);
        }
        // After the origin, as overlayfs orders them (where a file system keeps them, and
        // so what it frees when the mark goes, follows the order).
        if metacopy {
            sys::lsetxattr(work, tmp, &self.layers.xattr.metacopy, b"", 0)?;
        }
        let (parent, name) = node.lock().aliases.first().cloned().ok_or_else(enoent)?;
        let ufd = self.upper()?;
        let ppath = self.path_of(parent)?;
        let path = join(&ppath, &name);
        // Copy-up is invisible: the parent keeps its times (as overlayfs restores them).
        let parent_before = sys::lstatat(ufd, &ppath)?;
        self.mark_impure(ufd, &ppath)?;
        match (ix, &self.layers.index) {
            (Some(ix), Some(ixfd)) if !node.is_dir && lst.st_nlink > 1 => {
                let ixfd = ixfd.as_raw_fd();
                // Union names = lower names; upper names after this = index + this one.
                let v = format!("U{:+}", lst.st_nlink as i64 - 2);
                sys::lsetxattr(work, tmp, &self.layers.xattr.nlink, v.as_bytes(), 0)?;
                sys::renameat2(work, tmp, ixfd, &ix, libc::RENAME_NOREPLACE)?;
                sys::linkat(ixfd, &ix, ufd, &path)?;
                let mut st = node.lock();
                st.index = Some(ix);
                st.upper = true;
                st.metacopy = metacopy;
                self.nodes.touch(node);
            }
            _ => {
                sys::renameat2(work, tmp, ufd, &path, libc::RENAME_NOREPLACE)?;
                let mut st = node.lock();
                st.upper = true;
                st.metacopy = metacopy;
                self.nodes.touch(node);
            }
        }
        if node.is_dir
            && let Some(f) = self.on_attr_change.get()
        {
            f(node.ino);
        }
        restore_times(ufd, &ppath, &parent_before)
    }

    /// Copies a directory and everything the union shows under it into the upper layer
    /// and makes it opaque, so it no longer depends on lower layers (aufs-format rename).
    pub(super) fn copy_up_tree(&self, ino: u64) -> io::Result<()> {
        self.copy_up(ino)?;
        let dir = self.dir_context(ino)?;
        for e in self.list_in(&dir)? {
            let (child, _) = self.lookup_in(&dir, &e.name)?;
            let r = if child.is_dir {
                self.copy_up_tree(child.ino)
            } else {
                self.copy_up(child.ino)
            };
            self.forget(child.ino, 1);
            r?;
        }
        self.set_opaque(self.upper()?, &dir.path)?;
        let node = self.node(ino)?;
        node.lock().lowers = Arc::from([]);
        self.nodes.touch(&node);
        Ok(())
    }

    /// Copies a node up for a change of its metadata and tells where its upper object is.
    pub(super) fn copied_up(&self, ino: u64) -> io::Result<(Arc<Node>, RawFd, OsString)> {
        if self.read_only() {
            return Err(sys::errno(libc::EROFS));
        }
        let node = self.node(ino)?;
        self.copy_up(ino)?;
        let st = node.snapshot();
        let (fd, p) = self.real(&node, &st)?;
        Ok((node, fd, p))
    }

    /// `copied_up`, with the data too (a truncate).
    pub(super) fn copied_up_with_data(&self, ino: u64) -> io::Result<(Arc<Node>, RawFd, OsString)> {
        if self.read_only() {
            return Err(sys::errno(libc::EROFS));
        }
        self.copy_up_data(ino)?;
        self.copied_up(ino)
    }

    /// Writes the data of lower file DATA into the regular file DIR/P, up to P's size.
    fn copy_data_into(&self, data: &LowerRef, dir: RawFd, p: &OsStr) -> io::Result<()> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW;
        let src = sys::openat(self.layers.lowers[data.layer].raw(), &data.path, flags, 0)?;
        let dst = sys::openat(dir, p, libc::O_WRONLY | libc::O_NOFOLLOW, 0)?;
        let size = (sys::fstat(dst.as_raw_fd())?.st_size as u64)
            .min(sys::fstat(src.as_raw_fd())?.st_size as u64);
        self.copier.copy(src.as_raw_fd(), dst.as_raw_fd(), size)
    }

    /// Copies a node up with its data: a metacopy file gets the data of its lower file,
    /// written into the upper file in place, and then loses its `overlay.metacopy` (so a
    /// crash meanwhile leaves a metacopy file that still reads the lower data), as
    /// overlayfs does at the first open for write.
    pub(super) fn copy_up_data(&self, ino: u64) -> io::Result<()> {
        // Not copied up yet: with its data at once, as overlayfs copies up for a write.
        self.copy_up_as(ino, false)?;
        let node = self.node(ino)?;
        if !node.lock().metacopy {
            return Ok(());
        }
        let _copying = node.copy_guard();
        let st = node.snapshot();
        let Some(data) = st.lowers.last().filter(|_| st.metacopy) else {
            return Ok(());
        };
        let (ufd, p) = self.real(&node, &st)?;
        // Written in place, so its mtime becomes now, as overlayfs' in-place copy leaves it.
        self.copy_data_into(data, ufd, &p)?;
        sys::lremovexattr(ufd, &p, &self.layers.xattr.metacopy)?;
        let mut st = node.lock();
        st.metacopy = false;
        st.lowers = Arc::from([]);
        self.nodes.touch(&node);
        drop(st);
        // Its mtime and ctime moved without a request that changes attributes (an open).
        if let Some(f) = self.on_attr_change.get() {
            f(node.ino);
        }
        Ok(())
    }

    /// Adds DELTA to the offset kept in `overlay.nlink` of an indexed object.
    pub(super) fn adjust_nlink(&self, fd: RawFd, p: &OsStr, delta: i64) -> io::Result<()> {
        let x = &self.layers.xattr.nlink;
        let Some(v) = whiteout::get(fd, p, x)? else {
            return Ok(());
        };
        let txt = String::from_utf8_lossy(&v).into_owned();
        if !txt.starts_with('U') {
            return Ok(());
        }
        let off: i64 = txt[1..].trim_start_matches('+').parse().unwrap_or(0);
        let nv = format!("U{:+}", off + delta);
        sys::lsetxattr(fd, p, x, nv.as_bytes(), 0)
    }

    /// Marks an upper dir "impure" before an object with a copy-up origin enters it, as
    /// overlayfs does: its readdir then reports those entries' union inode numbers (d_ino =
    /// st_ino) when the kernel mounts this upper layer.
    pub(super) fn mark_impure(&self, fd: RawFd, dir: &OsStr) -> io::Result<()> {
        let name = &self.layers.xattr.impure;
        if self.layers.format == Format::Aufs || whiteout::get(fd, dir, name)?.is_some() {
            return Ok(());
        }
        match sys::lsetxattr(fd, dir, name, b"y", 0) {
            // As overlayfs: an upper without xattrs holds no origins to look up either.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
            r => r,
        }
    }
}
