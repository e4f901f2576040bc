//! Operations that change the union: copy-up, create, remove, rename, link, setattr,
//! xattrs, open. Each follows kernel overlayfs, including its errno.
use super::{Found, LowerRef, Node, NodeState, ROOT, UnionFs, enoent, split};
use crate::cow;
use crate::sys::{self, Stat};
use crate::whiteout::{self, Format, Redirect, join};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Who asks: the new object's owner.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// The inode every new whiteout links to (see `whiteout_at`).
#[derive(Default)]
pub(super) enum SharedWhiteout {
    #[default]
    None,
    At(OsString),
    Unsupported,
}

/// What stands in the upper layer at a name about to be created.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Previous {
    Nothing,
    /// A kernel whiteout (char 0/0).
    Whiteout,
    /// An aufs `.wh.NAME` marker beside it.
    AufsMarker,
}

/// A time to set: now, or a given instant.
#[derive(Debug, Clone, Copy)]
pub enum SetTime {
    Now,
    At(libc::timespec),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
    /// A truncate by a caller without CAP_FSETID: drop set-user-ID and set-group-ID as
    /// the kernel would (it leaves that to us under FUSE_HANDLE_KILLPRIV_V2).
    pub kill_suidgid: bool,
}

/// The mode after a write or truncate by a caller without CAP_FSETID: no set-user-ID,
/// and no set-group-ID when group-executable (without it, it marks mandatory locking).
pub fn killed_suidgid(mode: u32) -> u32 {
    let mut m = mode & !libc::S_ISUID;
    if m & libc::S_IXGRP != 0 {
        m &= !libc::S_ISGID;
    }
    m
}

/// The /proc link of a descriptor: a path to its object even when that has no name (an
/// O_PATH handle takes no fchmod or read, the object reached through this link does).
fn proc_fd_path(fd: &OwnedFd) -> OsString {
    OsString::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn restore_times(fd: RawFd, p: &OsStr, before: &Stat) -> io::Result<()> {
    let t = [
        libc::timespec {
            tv_sec: before.st_atime,
            tv_nsec: before.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: before.st_mtime,
            tv_nsec: before.st_mtime_nsec,
        },
    ];
    sys::utimensat(fd, p, &t)
}

fn ts(t: Option<SetTime>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(SetTime::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(SetTime::At(t)) => t,
    }
}

impl UnionFs {
    fn upper(&self) -> io::Result<RawFd> {
        self.layers.upper_fd()
    }

    fn dir_path(&self, parent: u64) -> io::Result<(Arc<Node>, NodeState, OsString)> {
        let p = self.node(parent)?;
        if !p.is_dir {
            return Err(sys::errno(libc::ENOTDIR));
        }
        let st = p.snapshot();
        let path = self.path_of(parent)?;
        Ok((p, st, path))
    }

    /// Does some lower layer show an object at PARENT/NAME (ignoring the upper layer)?
    fn lower_visible(&self, pst: &NodeState, ppath: &OsStr, name: &OsStr) -> io::Result<bool> {
        if pst.lowers.is_empty() {
            return Ok(false);
        }
        let mut lower_only = pst.clone();
        lower_only.upper = false;
        Ok(self.resolve(&lower_only, ppath, name)?.is_some())
    }

    /// Makes sure a node's object exists in the upper layer, copying up parents first.
    /// The data copy runs with no node or table lock held: only other copy-ups of the same
    /// node wait for it (its copy guard); stat, lookup and readdir answer from the lower
    /// object until the copy is renamed into place.
    pub fn copy_up(&self, ino: u64) -> io::Result<()> {
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
        let res = cow::copy_object(lfd, &lower.path, &lst, work, &tmp, true, &skip)
            .and_then(|()| self.place_copy(&node, &lower, &lst, &tmp));
        if res.is_err() {
            let _ = cow::remove_tree(work, &tmp);
        }
        res
    }

    /// Another name of a hard link was copied up through the index: this name links to
    /// the index entry too.
    fn copy_up_index_link(&self, node: &Node) -> io::Result<()> {
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

    /// Gives a finished copy in the work dir (TMP) its origin and moves it into place (the
    /// node's first name, or the index for a hard link), then marks the node upper. The
    /// path is taken here, after the data copy, so a rename meanwhile is followed.
    fn place_copy(&self, node: &Node, lower: &LowerRef, lst: &Stat, tmp: &OsStr) -> io::Result<()> {
        let work = self.layers.work_fd();
        let ix = self.index_name(lower).ok();
        if let Some(fb) = ix
            .as_ref()
            .and_then(|h| hex::decode(h.as_encoded_bytes()).ok())
        {
            // Not every file system can hold it (user.* on a symlink): optional.
            let _ = sys::lsetxattr(work, tmp, &self.layers.xattr.origin, &fb, 0);
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
                self.nodes.touch(node);
            }
            _ => {
                sys::renameat2(work, tmp, ufd, &path, libc::RENAME_NOREPLACE)?;
                node.lock().upper = true;
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
    fn copy_up_tree(&self, ino: u64) -> io::Result<()> {
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
        node.lock().lowers.clear();
        self.nodes.touch(&node);
        Ok(())
    }

    /// Adds DELTA to the offset kept in `overlay.nlink` of an indexed object.
    fn adjust_nlink(&self, fd: RawFd, p: &OsStr, delta: i64) -> io::Result<()> {
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
    fn mark_impure(&self, fd: RawFd, dir: &OsStr) -> io::Result<()> {
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

    fn set_opaque(&self, fd: RawFd, p: &OsStr) -> io::Result<()> {
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

    fn make_whiteout(&self, ppath: &OsStr, name: &OsStr) -> io::Result<()> {
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
    fn whiteout_at(&self, dir: RawFd, p: &OsStr) -> io::Result<()> {
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

    fn fresh_whiteout(&self, dir: RawFd, p: &OsStr) -> io::Result<()> {
        match self.layers.format {
            Format::Overlay => sys::mknodat(dir, p, libc::S_IFCHR, 0),
            Format::Aufs => sys::openat(dir, p, libc::O_CREAT | libc::O_WRONLY, 0o444).map(drop),
        }
    }

    /// Copies up the parent and checks that NAME is free in the union.
    fn prepare_new(
        &self,
        parent: u64,
        name: &OsStr,
    ) -> io::Result<(NodeState, OsString, Previous)> {
        if self.read_only() {
            return Err(sys::errno(libc::EROFS));
        }
        if self.layers.format == Format::Aufs && whiteout::is_aufs_meta(name) {
            return Err(sys::errno(libc::EPERM));
        }
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
    fn place_new(
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
    fn set_new_owner(&self, fd: RawFd, p: &OsStr, ppath: &OsStr, caller: Caller) -> io::Result<()> {
        let ufd = self.upper()?;
        let parent = sys::lstatat(ufd, ppath)?;
        let gid = if parent.st_mode & libc::S_ISGID != 0 {
            parent.st_gid
        } else {
            caller.gid
        };
        let st = sys::lstatat(fd, p)?;
        if st.st_uid == caller.uid && st.st_gid == gid {
            return Ok(());
        }
        sys::fchownat(fd, p, caller.uid, gid)?;
        // chown clears set-id bits of non-directories; the creator asked for them.
        let setid = st.st_mode & (libc::S_ISUID | libc::S_ISGID);
        if setid != 0 && !sys::is_dir(&st) && st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            sys::fchmodat(fd, p, st.st_mode & 0o7777)?;
        }
        Ok(())
    }

    /// Turns a fresh upper object into a node the kernel references once.
    fn new_node(&self, parent: u64, name: &OsStr, ppath: &OsStr) -> io::Result<(Arc<Node>, Stat)> {
        let ufd = self.upper()?;
        let st = sys::lstatat(ufd, &join(ppath, name))?;
        let slot = self.layers.upper.as_ref().map(|u| u.dev_slot).unwrap_or(0);
        let found = Found {
            kind: st.st_mode & libc::S_IFMT,
            ino: self.layers.map_ino(slot, st.st_ino),
            upper: Some(st),
            lowers: vec![],
            lower_stat: None,
            redirected: false,
            index: None,
        };
        let node = self.nodes.remember(self.node_from(parent, name, &found));
        let st = self.stat_node(&node)?;
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
        })?;
        self.new_node(parent, name, &ppath)
    }

    pub fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        c: Caller,
    ) -> io::Result<(Arc<Node>, Stat)> {
        let (pst, ppath, prev) = self.prepare_new(parent, name)?;
        let fresh = matches!(prev, Previous::Nothing);
        self.place_new(&ppath, name, prev, true, c, &|fd, p| {
            sys::mkdirat(fd, p, mode & 0o7777).map(|_| None)
        })?;
        if fresh && !pst.lowers.is_empty() && self.layers.format == Format::Overlay {
            // As overlayfs: a new dir in a merged dir is made opaque, so later lookups in
            // it need not search the lower layers. An optimisation: failure is no error.
            let _ = self.set_opaque(self.upper()?, &join(&ppath, name));
        }
        self.new_node(parent, name, &ppath)
    }

    pub fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &OsStr,
        c: Caller,
    ) -> io::Result<(Arc<Node>, Stat)> {
        let (_, ppath, prev) = self.prepare_new(parent, name)?;
        self.place_new(&ppath, name, prev, false, c, &|fd, p| {
            sys::symlinkat(target, fd, p).map(|_| None)
        })?;
        self.new_node(parent, name, &ppath)
    }

    pub fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
        c: Caller,
    ) -> io::Result<(Arc<Node>, Stat, OwnedFd)> {
        let (_, ppath, prev) = self.prepare_new(parent, name)?;
        let flags = (flags & !(libc::O_NOCTTY | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC))
            | libc::O_CREAT
            | libc::O_EXCL;
        let fd = self
            .place_new(&ppath, name, prev, false, c, &|fd, p| {
                sys::openat(fd, p, flags, mode & 0o7777).map(Some)
            })?
            .ok_or_else(|| sys::errno(libc::EIO))?;
        let (node, st) = self.new_node(parent, name, &ppath)?;
        Ok((node, st, fd))
    }

    pub fn link(&self, ino: u64, parent: u64, name: &OsStr) -> io::Result<(Arc<Node>, Stat)> {
        let node = self.node(ino)?;
        if node.is_dir {
            return Err(sys::errno(libc::EPERM));
        }
        let (_, ppath, prev) = self.prepare_new(parent, name)?;
        self.copy_up(ino)?;
        let st = node.snapshot();
        let (sfd, sp) = self.real(&node, &st)?;
        if whiteout::get(sfd, &sp, &self.layers.xattr.origin)?.is_some() {
            self.mark_impure(self.upper()?, &ppath)?;
        }
        let c = Caller {
            uid: u32::MAX,
            gid: u32::MAX,
        };
        self.place_new_link(&ppath, name, prev, sfd, &sp, c)?;
        {
            let mut st = node.lock();
            st.aliases.push((parent, name.to_owned()));
            self.nodes.touch(&node);
        }
        node.nlookup.fetch_add(1, Ordering::Relaxed);
        let st = self.stat_node(&node)?;
        Ok((node, st))
    }

    fn place_new_link(
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

    pub fn unlink(&self, parent: u64, name: &OsStr) -> io::Result<()> {
        self.remove(parent, name, false)
    }

    pub fn rmdir(&self, parent: u64, name: &OsStr) -> io::Result<()> {
        self.remove(parent, name, true)
    }

    /// Removes the entries of an upper dir that the union shows as empty (so only
    /// whiteouts and markers remain in it).
    fn clear_dir(&self, path: &OsStr) -> io::Result<()> {
        let ufd = self.upper()?;
        for (n, _, _) in sys::read_dir_names(ufd, path)? {
            cow::remove_tree(ufd, &join(path, &n))?;
        }
        Ok(())
    }

    fn remove(&self, parent: u64, name: &OsStr, dir: bool) -> io::Result<()> {
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
                lowers: found.lowers.clone(),
                redirected: false,
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
        let node = self.nodes.get(found.ino);
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
        }
        Ok(())
    }

    /// Before the last name of an object the kernel still holds goes, keeps a handle on it
    /// so it stays reachable (fstat, ftruncate of an unlinked open file or removed dir).
    fn keep_orphan(&self, node: &Node, parent: u64, name: &OsStr) {
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
    fn index_before_whiteout(
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
        let Some(node) = self.nodes.get(found.ino) else {
            return Ok(found);
        };
        self.prefer_alias(&node, parent, name);
        self.copy_up(found.ino)?;
        let pst = NodeState {
            upper: true,
            ..pst.clone()
        };
        self.resolve(&pst, ppath, name)?.ok_or_else(enoent)
    }

    /// Overlayfs' "pure upper" dir: in the upper layer only, with no lower dir below and
    /// no copy-up origin, so it can hold no whiteouts (nor, in aufs format, an opaque
    /// marker).
    fn pure_upper_dir(&self, f: &Found, path: &OsStr) -> io::Result<bool> {
        if f.upper.is_none() || !f.lowers.is_empty() {
            return Ok(false);
        }
        let ufd = self.upper()?;
        Ok(match self.layers.format {
            Format::Overlay => whiteout::get(ufd, path, &self.layers.xattr.origin)?.is_none(),
            Format::Aufs => !whiteout::is_opaque_dir(ufd, path, &self.layers.xattr, true)?,
        })
    }

    /// Puts the alias PARENT/NAME of a node first, so copy-up and path lookups use it.
    fn prefer_alias(&self, node: &Node, parent: u64, name: &OsStr) {
        let mut st = node.lock();
        let a = (parent, name.to_owned());
        st.aliases.retain(|x| *x != a);
        st.aliases.insert(0, a);
    }

    pub fn rename(
        &self,
        op: u64,
        oname: &OsStr,
        np: u64,
        nname: &OsStr,
        flags: u32,
    ) -> io::Result<()> {
        if self.read_only() {
            return Err(sys::errno(libc::EROFS));
        }
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        if flags & !(libc::RENAME_EXCHANGE | libc::RENAME_NOREPLACE) != 0 {
            return Err(sys::errno(libc::EINVAL));
        }
        let (_, opst, oppath) = self.dir_path(op)?;
        let (_, npst, nppath) = self.dir_path(np)?;
        let src = self.resolve(&opst, &oppath, oname)?.ok_or_else(enoent)?;
        let dst = match self.resolve(&npst, &nppath, nname)? {
            Some(d) if flags & libc::RENAME_EXCHANGE == 0 => {
                Some(self.index_before_whiteout(np, nname, d, &npst, &nppath)?)
            }
            d => d,
        };
        if exchange && dst.is_none() {
            return Err(sys::errno(libc::ENOENT));
        }
        if noreplace && dst.is_some() {
            return Err(sys::errno(libc::EEXIST));
        }
        if op == np && oname == nname {
            return Ok(());
        }
        let src_dir = src.kind == libc::S_IFDIR;
        let dst_pure_upper = match &dst {
            Some(d) if !exchange && d.kind == libc::S_IFDIR => {
                self.pure_upper_dir(d, &join(&nppath, nname))?
            }
            _ => false,
        };
        if let (Some(d), false) = (&dst, exchange) {
            if d.ino == src.ino && !src_dir {
                return Ok(()); // two names of one file: POSIX says do nothing
            }
            let dst_dir = d.kind == libc::S_IFDIR;
            if src_dir && !dst_dir {
                return Err(sys::errno(libc::ENOTDIR));
            }
            if !src_dir && dst_dir {
                return Err(sys::errno(libc::EISDIR));
            }
            // A pure upper dir (no lower, never copied up) is left to the upper file
            // system, after the copy-ups, as overlayfs does: its ENOTEMPTY comes from
            // there, with whatever that rename changes on the way.
            if dst_dir && !dst_pure_upper {
                let dst_state = NodeState {
                    aliases: vec![],
                    upper: d.upper.is_some(),
                    lowers: d.lowers.clone(),
                    redirected: false,
                    index: None,
                    orphan: None,
                };
                if !self.dir_is_empty(&dst_state, &join(&nppath, nname))? {
                    return Err(sys::errno(libc::ENOTEMPTY));
                }
            }
        }
        let needs_redirect = |f: &Found| f.kind == libc::S_IFDIR && !f.lowers.is_empty();
        if self.layers.format == Format::Aufs
            && (needs_redirect(&src) || (exchange && dst.as_ref().is_some_and(needs_redirect)))
        {
            // aufs has no redirects: move a whole copy instead, then rename plainly.
            for f in [Some(&src), dst.as_ref().filter(|_| exchange)]
                .into_iter()
                .flatten()
            {
                if needs_redirect(f) {
                    self.copy_up_tree(f.ino)?;
                }
            }
            return self.rename(op, oname, np, nname, flags);
        }
        let src_node = self.node(src.ino)?;
        self.copy_up(op)?;
        self.copy_up(np)?;
        self.prefer_alias(&src_node, op, oname);
        self.copy_up(src.ino)?;
        let dst_node = match (&dst, exchange) {
            (Some(d), true) => {
                let n = self.node(d.ino)?;
                self.prefer_alias(&n, np, nname);
                self.copy_up(d.ino)?;
                Some(n)
            }
            (Some(d), false) => {
                if let (None, Some(ix), Some(ixfd)) = (&d.upper, &d.index, &self.layers.index) {
                    self.adjust_nlink(ixfd.as_raw_fd(), ix, -1)?;
                }
                let n = self.nodes.get(d.ino);
                if let Some(n) = &n
                    && !Arc::ptr_eq(n, &src_node)
                {
                    self.keep_orphan(n, np, nname);
                }
                n
            }
            _ => None,
        };
        let oppath = self.path_of(op)?;
        let nppath = self.path_of(np)?;
        let ufd = self.upper()?;
        let opath = join(&oppath, oname);
        let npath = join(&nppath, nname);
        let new_lower = self.lower_visible(&npst, &nppath, nname)?;
        let old_lower = self.lower_visible(&opst, &oppath, oname)?;
        if op != np {
            let origin = &self.layers.xattr.origin;
            if whiteout::get(ufd, &opath, origin)?.is_some() {
                self.mark_impure(ufd, &nppath)?;
            }
            if exchange && whiteout::get(ufd, &npath, origin)?.is_some() {
                self.mark_impure(ufd, &oppath)?;
            }
        }
        // Before the move, as overlayfs: a failed rename leaves these behind there too.
        let opaque_into = |parent: &NodeState, lower_at: bool| match self.layers.format {
            Format::Overlay => !parent.lowers.is_empty(),
            Format::Aufs => lower_at,
        };
        let samedir = op == np;
        let into_new = opaque_into(&npst, new_lower);
        self.mark_moving_dir(&src_node, &src, &opath, oname, samedir, into_new)?;
        if let (Some(d), Some(dn), true) = (&dst, &dst_node, exchange) {
            let into_old = opaque_into(&opst, old_lower);
            self.mark_moving_dir(dn, d, &npath, nname, samedir, into_old)?;
        }
        // Paths derived from the table are stale from the move on disk until the table
        // follows: readers retry meanwhile (see `stable`).
        let _moving = self.nodes.start_move();
        if exchange {
            sys::renameat2(ufd, &opath, ufd, &npath, libc::RENAME_EXCHANGE)?;
        } else {
            let mut aufs_marker = false;
            match sys::lstat_opt(ufd, &npath)? {
                Some(st) if self.upper_whiteout(ufd, &npath, &st) && src_dir => {
                    sys::unlinkat(ufd, &npath, 0)?
                }
                Some(st) if sys::is_dir(&st) && !dst_pure_upper => self.clear_dir(&npath)?,
                Some(_) => {}
                None => {
                    aufs_marker = whiteout::is_whiteout(ufd, &nppath, nname, self.upper_aufs())?
                }
            }
            match (old_lower, self.layers.format) {
                (true, Format::Overlay) => {
                    sys::renameat2(ufd, &opath, ufd, &npath, libc::RENAME_WHITEOUT)?
                }
                (true, Format::Aufs) => {
                    sys::renameat2(ufd, &opath, ufd, &npath, 0)?;
                    self.make_whiteout(&oppath, oname)?;
                }
                (false, _) => sys::renameat2(ufd, &opath, ufd, &npath, 0)?,
            }
            if aufs_marker {
                sys::unlinkat(ufd, &join(&nppath, &whiteout::aufs_whiteout_name(nname)), 0)?;
            }
        }
        // The node table follows.
        {
            let mut st = src_node.lock();
            let a = (op, oname.to_owned());
            st.aliases.retain(|x| *x != a);
            st.aliases.insert(0, (np, nname.to_owned()));
            self.nodes.touch(&src_node);
        }
        if let Some(dn) = dst_node
            && !Arc::ptr_eq(&dn, &src_node)
        {
            let mut st = dn.lock();
            let a = (np, nname.to_owned());
            st.aliases.retain(|x| *x != a);
            if exchange {
                st.aliases.insert(0, (op, oname.to_owned()));
            }
            self.nodes.touch(&dn);
        }
        Ok(())
    }

    /// A directory about to move from PATH (its name NAME) keeps its lower dirs through a
    /// redirect (relative when it stays in the same dir, else absolute); one without lower
    /// dirs is made opaque when OPAQUE says its new place needs it.
    fn mark_moving_dir(
        &self,
        node: &Node,
        f: &Found,
        path: &OsStr,
        name: &OsStr,
        samedir: bool,
        opaque: bool,
    ) -> io::Result<()> {
        if f.kind != libc::S_IFDIR {
            return Ok(());
        }
        let ufd = self.upper()?;
        let x = &self.layers.xattr;
        if !f.lowers.is_empty() {
            let cur = whiteout::get(ufd, path, &x.redirect)?.and_then(|v| Redirect::parse(&v));
            let keep = matches!(&cur, Some(Redirect::Absolute(_))) || (cur.is_some() && samedir);
            if !keep {
                let r = if samedir && cur.is_none() {
                    Redirect::Relative(name.to_owned())
                } else {
                    Redirect::Absolute(f.lowers[0].path.clone())
                };
                sys::lsetxattr(ufd, path, &x.redirect, &r.encode(), 0)?;
            }
            let mut st = node.lock();
            st.redirected = true;
            self.nodes.touch(node);
        } else if opaque && !whiteout::is_opaque_dir(ufd, path, x, self.upper_aufs())? {
            self.set_opaque(ufd, path)?;
        }
        Ok(())
    }

    /// Copies a node up for a change of its metadata and tells where its upper object is.
    fn copied_up(&self, ino: u64) -> io::Result<(Arc<Node>, RawFd, OsString)> {
        if self.read_only() {
            return Err(sys::errno(libc::EROFS));
        }
        let node = self.node(ino)?;
        self.copy_up(ino)?;
        let st = node.snapshot();
        let (fd, p) = self.real(&node, &st)?;
        Ok((node, fd, p))
    }

    pub fn setattr(&self, ino: u64, a: &SetAttr, fh: Option<RawFd>) -> io::Result<Stat> {
        if let Some(orphan) = self.upper_orphan(ino) {
            return self.setattr_orphan(ino, &orphan, a, fh);
        }
        self.stable(|| self.setattr_named(ino, a, fh))
    }

    fn setattr_named(&self, ino: u64, a: &SetAttr, fh: Option<RawFd>) -> io::Result<Stat> {
        let (node, fd, p) = self.copied_up(ino)?;
        if a.uid.is_some() || a.gid.is_some() {
            sys::fchownat(fd, &p, a.uid.unwrap_or(u32::MAX), a.gid.unwrap_or(u32::MAX))?;
        }
        if let Some(mode) = a.mode {
            sys::fchmodat(fd, &p, mode & 0o7777)?;
        }
        if let Some(size) = a.size {
            match fh {
                Some(f) if unsafe { libc::ftruncate(f, size as i64) } == 0 => {}
                _ => sys::truncateat(fd, &p, size)?,
            }
            if a.kill_suidgid && a.mode.is_none() {
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

    /// The handle kept on an upper object whose every name is gone (see `keep_orphan`).
    fn upper_orphan(&self, ino: u64) -> Option<Arc<OwnedFd>> {
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
    fn setattr_orphan(
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
            ok(unsafe { libc::fchownat(o.as_raw_fd(), c"".as_ptr(), u, g, libc::AT_EMPTY_PATH) })?;
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

    /// Opens a node's real file; also tells whether that is a lower file that a later
    /// copy-up may replace.
    pub fn open(&self, ino: u64, flags: i32) -> io::Result<(OwnedFd, bool)> {
        self.stable(|| self.open_now(ino, flags))
    }

    fn open_now(&self, ino: u64, flags: i32) -> io::Result<(OwnedFd, bool)> {
        let node = self.node(ino)?;
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if write {
            if self.read_only() {
                return Err(sys::errno(libc::EROFS));
            }
            self.copy_up(ino)?;
        }
        let st = node.snapshot();
        let (fd, p) = self.real(&node, &st)?;
        let flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_DIRECT);
        let on_lower = !self.read_only() && !st.upper && st.index.is_none();
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
            if !st.aliases.is_empty() && !st.upper && st.index.is_none() {
                return Ok(None);
            }
        }
        let st = node.snapshot();
        if st.aliases.is_empty() {
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

    pub fn getxattr(&self, ino: u64, name: &CStr, size: usize) -> io::Result<Vec<u8>> {
        if let Some(v) = self.virtual_xattr(ino, name.to_bytes()) {
            let v = v?;
            if size != 0 && v.len() > size {
                return Err(sys::errno(libc::ERANGE));
            }
            return Ok(v);
        }
        let node = self.node(ino)?;
        self.stable(|| {
            let st = node.snapshot();
            let (fd, p) = self.real(&node, &st)?;
            sys::lgetxattr_raw(fd, &p, &self.layers.xattr.to_real(name), size)
        })
    }

    pub fn listxattr(&self, ino: u64) -> io::Result<Vec<u8>> {
        let node = self.node(ino)?;
        let names = self.stable(|| {
            let st = node.snapshot();
            let (fd, p) = self.real(&node, &st)?;
            sys::llistxattr(fd, &p)
        })?;
        let mut out = Vec::new();
        for n in names {
            if let Some(shown) = self.layers.xattr.from_real(&n) {
                out.extend_from_slice(shown.as_bytes_with_nul());
            }
        }
        Ok(out)
    }

    pub fn setxattr(&self, ino: u64, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
        let (_, fd, p) = self.copied_up(ino)?;
        sys::lsetxattr(fd, &p, &self.layers.xattr.to_real(name), value, flags)
    }

    pub fn removexattr(&self, ino: u64, name: &CStr) -> io::Result<()> {
        if self.read_only() {
            return Err(sys::errno(libc::EROFS));
        }
        let real = self.layers.xattr.to_real(name);
        let name = real.as_c_str();
        let node = self.node(ino)?;
        let st = node.snapshot();
        if !st.upper && st.index.is_none() {
            let (fd, p) = self.real(&node, &st)?;
            sys::lgetxattr(fd, &p, name)?.ok_or_else(|| sys::errno(libc::ENODATA))?;
            self.copy_up(ino)?;
        }
        let st = node.snapshot();
        let (fd, p) = self.real(&node, &st)?;
        sys::lremovexattr(fd, &p, name)
    }

    /// The parent dir of a relative path and its last name (for callers outside).
    pub fn split_path(p: &OsStr) -> (&OsStr, &OsStr) {
        split(p)
    }
}
