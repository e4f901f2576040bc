//! Creating objects: over whiteouts through the work dir, owned by the caller.
use super::*;

impl UnionFs {
    /// Refuses a new name that the upper would read as a marker (`.wh.`, where the upper
    /// holds aufs markers): aufs refuses it with EPERM, fuse-overlayfs (whose uppers hold
    /// markers too) with EINVAL.
    pub(super) fn check_new_name(&self, name: &OsStr) -> io::Result<()> {
        if !(self.upper_aufs() && whiteout::is_aufs_meta(name)) {
            return Ok(());
        }
        Err(sys::errno(match self.layers.format {
            Format::Aufs => libc::EPERM,
            Format::Overlay => libc::EINVAL,
        }))
    }

    /// Copies up the parent and checks that NAME is free in the union.
    pub(super) fn prepare_new(
        &self,
        parent: u64,
        name: &OsStr,
    ) -> io::Result<(NodeState, OsString, Previous)> {
        if self.read_only() {
            return Err(sys::errno(libc::EROFS));
        }
        self.check_new_name(name)?;
        if name.len() > 255 {
            return Err(sys::errno(libc::ENAMETOOLONG));
        }
        self.copy_up(parent)?;
        let (_, pst, ppath) = self.dir_path(parent)?;
        let ufd = self.upper()?;
        let path = join(&ppath, name);
        let prev = match sys::lstat_opt(ufd, &path)? {
            Some(st) if self.upper_whiteout(ufd, &path, &st) => Previous::Whiteout,
            Some(_) => return Err(sys::errno(libc::EEXIST)),
            None if whiteout::is_whiteout(ufd, &ppath, name, self.upper_aufs())? => {
                Previous::AufsMarker
            }
            None if self.lower_visible(&pst, &ppath, name)? => {
                return Err(sys::errno(libc::EEXIST));
            }
            None => Previous::Nothing,
        };
        Ok((pst, ppath, prev))
    }

    /// Creates a new object at PPATH/NAME in the upper layer with `make`, replacing a
    /// whiteout atomically (through the work dir) when one stands there.
    pub(super) fn place_new(
        &self,
        ppath: &OsStr,
        name: &OsStr,
        prev: Previous,
        is_dir: bool,
        caller: Caller,
        make: &dyn Fn(RawFd, &OsStr) -> io::Result<Option<OwnedFd>>,
    ) -> io::Result<Option<OwnedFd>> {
        let ufd = self.upper()?;
        let path = join(ppath, name);
        let owner = |fd: RawFd, p: &OsStr| self.set_new_owner(fd, p, ppath, caller);
        match prev {
            Previous::Nothing => {
                let f = make(ufd, &path)?;
                if let Err(e) = owner(ufd, &path) {
                    let _ = sys::unlinkat(ufd, &path, if is_dir { libc::AT_REMOVEDIR } else { 0 });
                    return Err(e);
                }
                Ok(f)
            }
            Previous::Whiteout => {
                let work = self.layers.work_fd();
                let tmp = self.tmp_name();
                let res = (|| {
                    let f = make(work, &tmp)?;
                    owner(work, &tmp)?;
                    if is_dir {
                        sys::lsetxattr(work, &tmp, &self.layers.xattr.opaque, b"y", 0)?;
                        sys::renameat2(work, &tmp, ufd, &path, libc::RENAME_EXCHANGE)?;
                        sys::unlinkat(work, &tmp, 0)?;
                    } else {
                        sys::renameat2(work, &tmp, ufd, &path, 0)?;
                    }
                    Ok(f)
                })();
                if res.is_err() {
                    let _ = cow::remove_tree(work, &tmp);
                }
                res
            }
            Previous::AufsMarker => {
                let f = make(ufd, &path)?;
                owner(ufd, &path)?;
                if is_dir {
                    self.set_opaque(ufd, &path)?;
                }
                sys::unlinkat(ufd, &join(ppath, &whiteout::aufs_whiteout_name(name)), 0)?;
                Ok(f)
            }
        }
    }

    /// Gives a new object to the caller: its uid, and its gid unless the parent is set-gid
    /// (then the file system already gave the parent's group, as the kernel does).
    pub(super) fn set_new_owner(
        &self,
        fd: RawFd,
        p: &OsStr,
        ppath: &OsStr,
        caller: Caller,
    ) -> io::Result<()> {
        let ufd = self.upper()?;
        let mut parent = sys::lstatat(ufd, ppath)?;
        self.show_override(self.upper_override(), ufd, ppath, &mut parent)?;
        let gid = if parent.st_mode & libc::S_ISGID != 0 {
            parent.st_gid
        } else {
            caller.gid
        };
        let st = sys::lstatat(fd, p)?;
        if let Some(kind) = self
            .upper_override()
            .filter(|_| override_stat::applies(&st))
        {
            // Owner and mode go to the xattr; the inode stays the daemon's, open to it
            // (0755 added, as fuse-overlayfs makes it), without set-ID bits (the
            // daemon's owner would make them real).
            let v = override_stat::format(caller.uid, gid, st.st_mode);
            sys::lsetxattr(fd, p, kind.name(), v.as_bytes(), 0)?;
            return sys::fchmodat(fd, p, (st.st_mode | 0o755) & 0o777);
        }
        if st.st_uid == caller.uid && st.st_gid == gid {
            return Ok(());
        }
        match sys::fchownat(fd, p, caller.uid, gid) {
            Err(_) if caller.owner_may_fail => return Ok(()),
            r => r?,
        }
        // chown clears set-id bits of non-directories; the creator asked for them.
        let setid = st.st_mode & (libc::S_ISUID | libc::S_ISGID);
        if setid != 0 && !sys::is_dir(&st) && st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            sys::fchmodat(fd, p, st.st_mode & 0o7777)?;
        }
        Ok(())
    }

    /// Turns a fresh upper object PARENT/NAME into a node the kernel references once.
    /// Its path is derived again (an ancestor may have moved since it was made).
    pub(super) fn new_node(&self, parent: u64, name: &OsStr) -> io::Result<(Arc<Node>, Stat)> {
        let ufd = self.upper()?;
        let st = self.stable(|| sys::lstatat(ufd, &join(&self.path_of(parent)?, name)))?;
        let slot = self.layers.upper.as_ref().map(|u| u.dev_slot).unwrap_or(0);
        let found = Found {
            kind: st.st_mode & libc::S_IFMT,
            ino: self.layers.map_ino(slot, st.st_ino),
            upper: Some(st),
            lowers: vec![],
            lower_stat: None,
            redirected: false,
            index: None,
            metacopy: false,
        };
        // The object is new: a node known by its inode number is of an object gone since
        // (its last name went another way than through `remove` or `rename`).
        if let Some(old) = self.nodes.get_key(found.ino) {
            self.nodes.unhash(&old);
        }
        let node = self.nodes.remember(self.node_from(parent, name, &found));
        let st = self.stable(|| self.stat_node(&node))?;
        Ok((node, st))
    }

    pub fn mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        rdev: u64,
        c: Caller,
    ) -> io::Result<(Arc<Node>, Stat)> {
        // A character device 0/0 is the overlay format's whiteout. overlayfs refuses to
        // make one (EPERM); we make it with a mark that says "device", in the work dir so
        // it never shows as a whiteout meanwhile. Kernel overlayfs would take it for a
        // whiteout; in aufs format it is an ordinary device.
        let marked = mode & libc::S_IFMT == libc::S_IFCHR
            && rdev == 0
            && self.layers.format == Format::Overlay;
        self.stable(|| {
            let (_, ppath, prev) = self.prepare_new(parent, name)?;
            let prev = if marked && prev == Previous::Nothing {
                Previous::Whiteout
            } else {
                prev
            };
            let device = &self.layers.xattr.device;
            self.place_new(&ppath, name, prev, false, c, &|fd, p| {
                sys::mknodat(fd, p, mode, rdev)?;
                if marked {
                    sys::lsetxattr(fd, p, device, b"", 0)?;
                }
                Ok(None)
            })
        })?;
        self.new_node(parent, name)
    }

    pub fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        c: Caller,
    ) -> io::Result<(Arc<Node>, Stat)> {
        self.stable(|| {
            let (pst, ppath, prev) = self.prepare_new(parent, name)?;
            let fresh = matches!(prev, Previous::Nothing);
            self.place_new(&ppath, name, prev, true, c, &|fd, p| {
                sys::mkdirat(fd, p, mode & 0o7777).map(|_| None)
            })?;
            if fresh && !pst.lowers.is_empty() && self.layers.format == Format::Overlay {
                // As overlayfs: a new dir in a merged dir is made opaque, so later lookups
                // in it need not search the lower layers. An optimisation: failure is no
                // error.
                let _ = self.set_opaque(self.upper()?, &join(&ppath, name));
            }
            Ok(())
        })?;
        self.subdirs_changed(parent);
        self.new_node(parent, name)
    }

    pub fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &OsStr,
        c: Caller,
    ) -> io::Result<(Arc<Node>, Stat)> {
        self.stable(|| {
            let (_, ppath, prev) = self.prepare_new(parent, name)?;
            self.place_new(&ppath, name, prev, false, c, &|fd, p| {
                sys::symlinkat(target, fd, p).map(|_| None)
            })
        })?;
        self.new_node(parent, name)
    }

    pub fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
        c: Caller,
    ) -> io::Result<(Arc<Node>, Stat, OwnedFd)> {
        let flags = (flags & !(libc::O_NOCTTY | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC))
            | libc::O_CREAT
            | libc::O_EXCL;
        let fd = self
            .stable(|| {
                let (_, ppath, prev) = self.prepare_new(parent, name)?;
                self.place_new(&ppath, name, prev, false, c, &|fd, p| {
                    sys::openat(fd, p, flags, mode & 0o7777).map(Some)
                })
            })?
            .ok_or_else(|| sys::errno(libc::EIO))?;
        let (node, st) = self.new_node(parent, name)?;
        Ok((node, st, fd))
    }

    pub fn link(&self, ino: u64, parent: u64, name: &OsStr) -> io::Result<(Arc<Node>, Stat)> {
        let node = self.node(ino)?;
        if node.is_dir {
            return Err(sys::errno(libc::EPERM));
        }
        self.stable(|| {
            let (_, ppath, prev) = self.prepare_new(parent, name)?;
            self.copy_up(ino)?;
            let st = node.snapshot();
            let (sfd, sp) = self.real(&node, &st)?;
            if st.metacopy {
                // Every name finds the data through an absolute redirect, as overlayfs sets:
                // the merged path of the linked name (the real object may be the index
                // entry, whose name is no path in the layers below).
                let upath = self.path_of(ino)?;
                self.keep_metacopy_data(&node, self.upper()?, &upath, OsStr::new(""), false)?;
            }
            if whiteout::get(sfd, &sp, &self.layers.xattr.origin)?.is_some() {
                self.mark_impure(self.upper()?, &ppath)?;
            }
            let c = Caller {
                uid: u32::MAX,
                gid: u32::MAX,
                owner_may_fail: false,
            };
            self.place_new_link(&ppath, name, prev, sfd, &sp, c)
        })?;
        {
            let mut st = node.lock();
            st.aliases.push((parent, name.to_owned()));
            self.nodes.touch(&node);
        }
        node.nlookup.fetch_add(1, Ordering::Relaxed);
        let st = self.stable(|| self.stat_node(&node))?;
        Ok((node, st))
    }

    pub(super) fn place_new_link(
        &self,
        ppath: &OsStr,
        name: &OsStr,
        prev: Previous,
        sfd: RawFd,
        sp: &OsStr,
        _c: Caller,
    ) -> io::Result<()> {
        let ufd = self.upper()?;
        let path = join(ppath, name);
        match prev {
            Previous::Nothing => sys::linkat(sfd, sp, ufd, &path),
            Previous::Whiteout => {
                let work = self.layers.work_fd();
                let tmp = self.tmp_name();
                sys::linkat(sfd, sp, work, &tmp)?;
                sys::renameat2(work, &tmp, ufd, &path, 0).inspect_err(|_| {
                    let _ = sys::unlinkat(work, &tmp, 0);
                })
            }
            Previous::AufsMarker => {
                sys::linkat(sfd, sp, ufd, &path)?;
                sys::unlinkat(ufd, &join(ppath, &whiteout::aufs_whiteout_name(name)), 0)
            }
        }
    }
}
