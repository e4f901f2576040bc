//! The fuser adapter: each request becomes one `UnionFs` call and one reply.
use crate::sys::Stat;
use crate::unionfs::{Caller, SetAttr, SetTime, killed_suidgid};
use crate::unionfs::{DirEntry, ROOT, UnionFs};
use crate::workers::Workers;
use fuser::{
    AccessFlags, BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use unionctl_union::idmap::IdMap;

mod attrs;
mod dir;
mod errors;
mod iomode;
mod open;
mod splice;

use attrs::*;
use dir::*;
use errors::*;
use iomode::{IoModes, OpenMode, Want};
use open::*;
use splice::Spliced;

pub struct UnionFuse {
    pub fs: UnionFs,
    /// How long the kernel may cache names and attributes (`-o timeout=`).
    pub ttl: Duration,
    /// `fsync=0` / `volatile`: fsync and fdatasync return at once, syncing nothing.
    pub no_fsync: bool,
    /// `static_nlink`: directories show one link.
    pub static_nlink: bool,
    /// `noacl`: POSIX ACLs not negotiated, so the kernel does not enforce them (their
    /// xattrs are stored as any other, as fuse-overlayfs does).
    pub noacl: bool,
    /// `noxattrs=1`: every extended attribute answers EOPNOTSUPP (but unionctl's own
    /// virtual ones, which `umount`, `layers` and `which` ask).
    pub noxattrs: bool,
    /// Directory listings being read, by directory (see `dir`).
    listings: Mutex<Listings>,
    /// The kernel opens directories without OPENDIR once we answer it with ENOSYS.
    no_opendir: AtomicBool,
    /// The user allows FUSE passthrough (`-o nopassthrough` does not).
    pub allow_passthrough: bool,
    /// FUSE passthrough was negotiated and has not failed yet.
    passthrough: AtomicBool,
    /// Set once the session runs: tells the kernel about attributes we changed on our own.
    pub notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    /// FUSE_HANDLE_KILLPRIV_V2 was negotiated: we drop set-ID bits on write and truncate.
    killpriv: AtomicBool,
    /// The I/O mode of each open inode (see `iomode`).
    iomodes: IoModes,
    /// The open file handles.
    handles: Mutex<HashMap<u64, OpenHandle>>,
    /// Owners between the layers and what the mount shows (`-o uidmapping=`, ...): the
    /// union below works in disk ids only.
    pub ids: IdMap,
    /// Which serving thread takes the next request, and where (see `workers`).
    pub(crate) workers: Arc<Workers>,
}

impl UnionFuse {
    pub fn new(fs: UnionFs) -> Self {
        UnionFuse {
            fs,
            // Every change goes through this daemon, which tells the kernel; caching long is
            // as safe as overlayfs caching its dentries.
            ttl: Duration::from_secs(10),
            no_fsync: false,
            static_nlink: false,
            noacl: false,
            noxattrs: false,
            listings: Mutex::default(),
            no_opendir: AtomicBool::new(false),
            passthrough: AtomicBool::new(false),
            allow_passthrough: true,
            killpriv: AtomicBool::new(false),
            notifier: Default::default(),
            iomodes: IoModes::default(),
            handles: Mutex::new(HashMap::new()),
            ids: IdMap::default(),
            workers: Arc::new(Workers::new(1)),
        }
    }
}

impl UnionFuse {
    /// Who asks, as the owner a new object gets on disk.
    fn caller(&self, req: &Request) -> Caller {
        Caller {
            uid: self.ids.disk_uid(req.uid()),
            gid: self.ids.disk_gid(req.gid()),
            owner_may_fail: self.ids.squashes(),
        }
    }
}

/// A read or write this large is a bulk transfer (see `Workers::bulk`): a read-ahead
/// chunk of a file read in sequence (the kernel's read-ahead window here), a big write.
const BULK: usize = 128 << 10;

fn cname(name: &OsStr) -> Result<CString, Errno> {
    CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)
}

impl Filesystem for UnionFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        use fuser::InitFlags as F;
        let _ = config.add_capabilities(
            F::FUSE_PARALLEL_DIROPS
                | F::FUSE_CACHE_SYMLINKS
                // Every chunk as readdirplus, not only the first (READDIRPLUS_AUTO): a
                // walk reads a whole directory before it stats the entries, so each
                // entry past the first chunk would cost a LOOKUP of its own.
                | F::FUSE_DO_READDIRPLUS,
        );
        // The kernel checks and caches POSIX ACLs itself, as on the layers.
        if !self.noacl {
            let _ = config.add_capabilities(F::FUSE_POSIX_ACL);
        }
        // The kernel then stops asking for security.capability before every write and
        // for the mode before every chown; we drop set-ID bits ourselves (see write).
        if config.add_capabilities(F::FUSE_HANDLE_KILLPRIV_V2).is_ok() {
            self.killpriv.store(true, Ordering::Relaxed);
        }
        if config.add_capabilities(F::FUSE_NO_OPENDIR_SUPPORT).is_ok() {
            self.no_opendir.store(true, Ordering::Relaxed);
        }
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        // Passthrough needs CAP_SYS_ADMIN in the initial namespace; try it only there.
        if self.allow_passthrough
            && crate::sys::in_initial_userns()
            && config.add_capabilities(F::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _turn = self.workers.turn(req.pid());
        match self.fs.lookup(parent.0, name) {
            Ok((_, st)) => reply.entry(&self.ttl, &self.attr_of(&st), Generation(0)),
            // A negative entry the kernel may cache: every create goes through us.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let mut none = attr(&unsafe { std::mem::zeroed() });
                none.ino = INodeNo(0);
                reply.entry(&self.ttl, &none, Generation(0))
            }
            Err(e) => reply.error(self.fail("lookup", parent.0, Some(name), &e)),
        }
    }

    fn forget(&self, req: &Request, ino: INodeNo, nlookup: u64) {
        let _turn = self.workers.turn(req.pid());
        self.fs.forget(ino.0, nlookup);
        // Forgotten whole (not one lookup of a readdirplus entry the kernel dropped): its
        // cached listing and every reader of the directory are gone.
        if self.fs.nodes.get(ino.0).is_none() {
            self.listings.lock().unwrap().forget(ino.0);
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let _turn = self.workers.turn(req.pid());
        // With a handle (fstat of an open file) the file may have no name any more.
        let r = match fh {
            Some(fh) => self.fs.getattr_open(ino.0, self.current_fd(fh)),
            None => self.fs.getattr(ino.0),
        };
        match r {
            Ok(st) => reply.attr(&self.ttl, &self.attr_of(&st)),
            Err(e) => reply.error(self.fail("getattr", ino.0, None, &e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _turn = self.workers.turn(req.pid());
        let a = SetAttr {
            mode,
            uid: uid.map(|u| self.ids.disk_uid(u)),
            gid: gid.map(|g| self.ids.disk_gid(g)),
            size,
            atime: set_time(atime),
            mtime: set_time(mtime),
            // fuser hides the kernel's FATTR_KILL_SUIDGID; it is set for a truncate by a
            // caller without CAP_FSETID, which outside a namespace means a non-root one.
            kill_suidgid: size.is_some() && req.uid() != 0 && self.killpriv.load(Ordering::Relaxed),
            owner_may_fail: self.ids.squashes(),
        };
        match self.fs.setattr(ino.0, &a, fh.map(fd_of)) {
            Ok(st) => reply.attr(&self.ttl, &self.attr_of(&st)),
            Err(e) => reply.error(self.fail("setattr", ino.0, None, &e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let _turn = self.workers.turn(req.pid());
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(t.as_bytes()),
            Err(e) => reply.error(self.fail("readlink", ino.0, None, &e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _turn = self.workers.turn(req.pid());
        let mode = mode & !(umask & 0o777);
        let made = self
            .fs
            .mknod(parent.0, name, mode, rdev as u64, self.caller(req));
        self.reply_made(made, "mknod", parent.0, name, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let _turn = self.workers.turn(req.pid());
        let mode = mode & !(umask & 0o777);
        let made = self.fs.mkdir(parent.0, name, mode, self.caller(req));
        self.reply_made(made, "mkdir", parent.0, name, reply);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _turn = self.workers.turn(req.pid());
        match self.fs.unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("unlink", parent.0, Some(name), &e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _turn = self.workers.turn(req.pid());
        match self.fs.rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("rmdir", parent.0, Some(name), &e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _turn = self.workers.turn(req.pid());
        let made = self
            .fs
            .symlink(parent.0, link_name, target.as_os_str(), self.caller(req));
        self.reply_made(made, "symlink", parent.0, link_name, reply);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _turn = self.workers.turn(req.pid());
        match self
            .fs
            .rename(parent.0, name, newparent.0, newname, flags.bits())
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("rename", parent.0, Some(name), &e)),
        }
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _turn = self.workers.turn(req.pid());
        let made = self.fs.link(ino.0, newparent.0, newname);
        self.reply_made(made, "link", newparent.0, newname, reply);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _turn = self.workers.turn(req.pid());
        let (fd, on_lower) = match self.fs.open(ino.0, flags.0) {
            Ok(r) => r,
            Err(e) => return reply.error(self.fail("open", ino.0, None, &e)),
        };
        let writable = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        let o = self.start_open(ino.0, fd, writable, on_lower, |fd| reply.open_backing(fd));
        match &o.backing {
            Some(b) => reply.opened_passthrough(o.fh, o.flags, b),
            None => reply.opened(o.fh, o.flags),
        }
    }

    fn read(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _turn = self.workers.turn(req.pid());
        // One buffer per serving thread: a fresh 1 MiB buffer per request costs its
        // zeroing or page faults, as much as the read itself.
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with_borrow_mut(|buf| {
            if buf.len() < size as usize {
                buf.resize(size as usize, 0);
            }
            let buf = &mut buf[..size as usize];
            let fd = self.current_fd(fh);
            let mut done = 0usize;
            // A small read first without waiting on the disk: if it would wait, another
            // thread serves the requests that come meanwhile (see `workers`). Not a bulk
            // one: a second read at the same offset disturbs the lower file's own
            // read-ahead (a 1 GiB read took twice as long).
            let mut flags = libc::RWF_NOWAIT;
            if buf.len() >= BULK {
                self.workers.bulk();
                flags = 0;
                if let Some(dev) = self.workers.device() {
                    let read = |n| self.read_ahead(fh, fd, offset, n, buf.len());
                    match splice::reply_read(dev, req.unique().0, (fd, offset, buf.len()), read) {
                        // Answered: fuser's reply must not answer again (dropped, it
                        // would send EIO). Forgetting it keeps a reference to the
                        // session's device, which lives as long as the process.
                        Spliced::Sent | Spliced::Gone => return std::mem::forget(reply),
                        Spliced::Failed(e) => return reply.error(e),
                        Spliced::Unable => {}
                    }
                }
            }
            let mut waited = false;
            let mut failed = None;
            while done < buf.len() {
                let iov = libc::iovec {
                    iov_base: buf[done..].as_mut_ptr().cast(),
                    iov_len: buf.len() - done,
                };
                // SAFETY: reads into our buffer.
                let r = unsafe { libc::preadv2(fd, &iov, 1, (offset + done as u64) as i64, flags) };
                match check(r) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(Errno::EAGAIN) if flags != 0 => {
                        self.workers.will_block();
                        flags = 0;
                        waited = true;
                    }
                    Err(Errno::EOPNOTSUPP) if flags != 0 => flags = 0,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if waited {
                self.workers.unblocked();
            }
            if failed.is_none() {
                self.read_ahead(fh, fd, offset, done, buf.len());
            }
            match failed {
                Some(e) => reply.error(e),
                None => reply.data(&buf[..done]),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _turn = self.workers.turn(req.pid());
        // Under FUSE_HANDLE_KILLPRIV_V2 the kernel asks us to drop the set-ID bits of a
        // file written by a caller without CAP_FSETID (the daemon has it, so the write
        // below would not).
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            let dropped = match crate::sys::fstat(fd_of(fh)) {
                Ok(st) if killed_suidgid(st.st_mode) != st.st_mode => {
                    if unsafe { libc::fchmod(fd_of(fh), killed_suidgid(st.st_mode) & 0o7777) } < 0 {
                        reply.error(errno(&io::Error::last_os_error()));
                        return;
                    }
                    true
                }
                // Or kept in the upper's stat override.
                _ => match self.fs.drop_kept_setid(ino.0) {
                    Ok(d) => d,
                    Err(e) => {
                        reply.error(errno(&e));
                        return;
                    }
                },
            };
            // The kernel keeps the cached mode over a write: drop it now, before the reply.
            if dropped && let Some(n) = self.notifier.get() {
                let _ = n.inval_inode(ino, -1, 0);
            }
        }
        if data.len() >= BULK {
            self.workers.bulk();
        }
        let r = unsafe { libc::pwrite(fd_of(fh), data.as_ptr().cast(), data.len(), offset as i64) };
        match check(r) {
            Ok(n) => {
                // Not for a volatile mount: nothing waits for its writes.
                if n >= BULK && !self.no_fsync {
                    self.write_behind(fh, offset, n);
                }
                reply.written(n as u32)
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _turn = self.workers.turn(req.pid());
        reply.ok();
    }

    fn release(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _turn = self.workers.turn(req.pid());
        self.end_open(fh);
        reply.ok();
    }

    fn fsync(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _turn = self.workers.turn(req.pid());
        if self.no_fsync {
            return reply.ok();
        }
        let r = unsafe {
            if datasync {
                libc::fdatasync(fd_of(fh))
            } else {
                libc::fsync(fd_of(fh))
            }
        };
        match check(r as isize) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _turn = self.workers.turn(req.pid());
        // Nothing to keep per open directory: answered ENOSYS, the kernel stops asking
        // and opens every directory with its listing cache kept (KEEP_CACHE, CACHE_DIR),
        // which saves a walk two requests per directory.
        if self.no_opendir.load(Ordering::Relaxed) {
            return reply.error(Errno::ENOSYS);
        }
        // The kernel may cache listings across opens: every change to a directory goes
        // through us, and the kernel drops its cache when one does.
        reply.opened(
            FileHandle(0),
            FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
        );
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _turn = self.workers.turn(req.pid());
        let parent = self.parent_of(ino.0);
        let r = self.each_entry(ino.0, offset, |next, slot| match slot {
            Slot::Dot => reply.add(ino, next, FileType::Directory, "."),
            Slot::DotDot => reply.add(INodeNo(parent), next, FileType::Directory, ".."),
            Slot::Entry(e) => reply.add(INodeNo(e.ino), next, dtype_kind(e.dtype), &e.name),
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _turn = self.workers.turn(req.pid());
        let dir = match self.fs.dir_context(ino.0) {
            Ok(d) => d,
            Err(e) => return reply.error(self.fail("readdirplus", ino.0, None, &e)),
        };
        let r = self.each_entry(ino.0, offset, |next, slot| {
            let (target, name) = match slot {
                Slot::Entry(e) => match self.fs.lookup_in(&dir, &e.name) {
                    Ok((node, st)) => {
                        let full = reply.add(
                            INodeNo(node.ino),
                            next,
                            &e.name,
                            &self.ttl,
                            &self.attr_of(&st),
                            Generation(0),
                        );
                        if full {
                            // Not sent: give back the reference the lookup took.
                            self.fs.forget(node.ino, 1);
                        }
                        return full;
                    }
                    // Gone meanwhile: skip it.
                    Err(_) => return false,
                },
                // "." and "..": the kernel takes no reference for these.
                Slot::Dot => (ino.0, "."),
                Slot::DotDot => (self.parent_of(ino.0), ".."),
            };
            match self.fs.getattr(target) {
                Ok(st) => reply.add(
                    INodeNo(target),
                    next,
                    name,
                    &self.ttl,
                    &self.attr_of(&st),
                    Generation(0),
                ),
                Err(_) => false,
            }
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _turn = self.workers.turn(req.pid());
        reply.ok();
    }

    fn fsyncdir(
        &self,
        req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _turn = self.workers.turn(req.pid());
        reply.ok();
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _turn = self.workers.turn(req.pid());
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(self.fail("statfs", 0, None, &e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _turn = self.workers.turn(req.pid());
        if self.xattr_off(name) {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let r = cname(name).and_then(|n| {
            self.fs
                .setxattr(ino.0, &n, value, flags)
                .map_err(|e| self.fail("setxattr", ino.0, Some(name), &e))
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _turn = self.workers.turn(req.pid());
        if self.xattr_off(name) {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let r = cname(name).and_then(|n| {
            self.fs
                .getxattr(ino.0, &n, size as usize)
                .map_err(|e| self.fail("getxattr", ino.0, Some(name), &e))
        });
        match r {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _turn = self.workers.turn(req.pid());
        if self.noxattrs {
            return reply.error(Errno::EOPNOTSUPP);
        }
        match self.fs.listxattr(ino.0) {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(self.fail("listxattr", ino.0, None, &e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _turn = self.workers.turn(req.pid());
        if self.xattr_off(name) {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let r = cname(name).and_then(|n| {
            self.fs
                .removexattr(ino.0, &n)
                .map_err(|e| self.fail("removexattr", ino.0, Some(name), &e))
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let _turn = self.workers.turn(req.pid());
        // default_permissions: the kernel has checked already.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _turn = self.workers.turn(req.pid());
        let mode = mode & !(umask & 0o777);
        match self
            .fs
            .create(parent.0, name, mode, flags, self.caller(req))
        {
            Ok((node, st, fd)) => {
                let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
                let o = self.start_open(node.ino, fd, writable, false, |fd| reply.open_backing(fd));
                let (a, g) = (self.attr_of(&st), Generation(0));
                match &o.backing {
                    Some(b) => reply.created_passthrough(&self.ttl, &a, g, o.fh, o.flags, b),
                    None => reply.created(&self.ttl, &a, g, o.fh, o.flags),
                }
            }
            Err(e) => reply.error(self.fail("create", parent.0, Some(name), &e)),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _turn = self.workers.turn(req.pid());
        let r = unsafe { libc::fallocate(fd_of(fh), mode, offset as i64, length as i64) };
        match check(r as isize) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn lseek(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let _turn = self.workers.turn(req.pid());
        let r = unsafe { libc::lseek(self.current_fd(fh), offset, whence) };
        match check(r as isize) {
            Ok(o) => reply.offset(o as i64),
            Err(e) => reply.error(e),
        }
    }
}
