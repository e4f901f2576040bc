//! The fuser adapter: each request becomes one `UnionFs` call and one reply.
use crate::sys::Stat;
use crate::unionfs::{Caller, SetAttr, SetTime, killed_suidgid};
use crate::unionfs::{DirEntry, ROOT, UnionFs};
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod iomode;
use iomode::{IoModes, OpenMode, Want};

pub struct UnionFuse {
    pub fs: UnionFs,
    ttl: Duration,
    dirs: Mutex<HashMap<u64, Arc<Mutex<DirHandle>>>>,
    next_dir: AtomicU64,
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
}

/// An open file handle.
struct OpenHandle {
    ino: u64,
    mode: OpenMode,
    /// Opened read-only on a lower file that a copy-up may replace.
    on_lower: bool,
}

/// One position of a directory listing.
enum Slot<'a> {
    Dot,
    DotDot,
    Entry(&'a DirEntry),
}

/// An open directory: the listing taken when it is read from offset 0 (the first read,
/// or a rewinddir), served by offset so that offsets stay stable while it changes.
struct DirHandle {
    entries: Vec<DirEntry>,
}

/// No FLUSH request on close: we keep no state that a close must push out.
const NOFLUSH: FopenFlags = FopenFlags::FOPEN_NOFLUSH;

/// How a new open is served, and the handle and reply flags for it.
struct Opened {
    fh: FileHandle,
    flags: FopenFlags,
    /// The inode's backing file, for a reply with FOPEN_PASSTHROUGH.
    backing: Option<Arc<BackingId>>,
}

impl UnionFuse {
    pub fn new(fs: UnionFs) -> Self {
        UnionFuse {
            fs,
            // Every change goes through this daemon, which tells the kernel; caching long is
            // as safe as overlayfs caching its dentries.
            ttl: Duration::from_secs(10),
            dirs: Mutex::new(HashMap::new()),
            next_dir: AtomicU64::new(1),
            passthrough: AtomicBool::new(false),
            allow_passthrough: true,
            killpriv: AtomicBool::new(false),
            notifier: Default::default(),
            iomodes: IoModes::default(),
            handles: Mutex::new(HashMap::new()),
        }
    }

    /// What an open of FD would like, before the other opens of its inode count.
    fn want(&self, fd: RawFd, writable: bool, on_lower: bool) -> Want {
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
    fn start_open(
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
    fn end_open(&self, fh: FileHandle) {
        if let Some(h) = self.handles.lock().unwrap().remove(&fh.0) {
            self.iomodes.release(h.ino, h.mode);
        }
        drop(unsafe { OwnedFd::from_raw_fd(fd_of(fh)) });
    }

    /// The descriptor of a handle, moved to the upper file first if it was opened on a
    /// lower file that has been copied up since (the number stays the same: dup3).
    fn current_fd(&self, fh: FileHandle) -> RawFd {
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
}

impl UnionFuse {
    /// The errno for an error of operation OP on INO (and NAME): logged when it is not
    /// one the union gives by design (see `unexpected`), and at debug level always.
    fn fail(&self, op: &str, ino: u64, name: Option<&OsStr>, e: &io::Error) -> Errno {
        let name = name.map(|n| format!(" {n:?}")).unwrap_or_default();
        if unexpected(e) {
            let path = self.fs.path_of(ino).unwrap_or_default();
            log::warn!("{op} ino {ino} (/{}){name}: {e}", path.to_string_lossy());
        } else {
            log::debug!("{op} ino {ino}{name}: {e}");
        }
        errno(e)
    }

    /// The listing of an open directory, taken anew when read from offset 0.
    fn listing(
        &self,
        ino: u64,
        fh: FileHandle,
        offset: u64,
    ) -> Result<Arc<Mutex<DirHandle>>, Errno> {
        let h = self
            .dirs
            .lock()
            .unwrap()
            .get(&fh.0)
            .cloned()
            .ok_or(Errno::EBADF)?;
        if offset == 0 {
            h.lock().unwrap().entries = self
                .fs
                .list_dir(ino)
                .map_err(|e| self.fail("readdir", ino, None, &e))?;
        }
        Ok(h)
    }

    /// Walks the listing of directory INO from OFFSET: ".", "..", then its entries.
    /// ADD gets the offset of the next slot and the slot, and tells when the reply is full.
    fn each_entry(
        &self,
        ino: u64,
        fh: FileHandle,
        offset: u64,
        mut add: impl FnMut(u64, Slot<'_>) -> bool,
    ) -> Result<(), Errno> {
        let h = self.listing(ino, fh, offset)?;
        let list = &h.lock().unwrap().entries;
        let mut i = offset as usize;
        loop {
            let slot = match i {
                0 => Slot::Dot,
                1 => Slot::DotDot,
                _ => match list.get(i - 2) {
                    Some(e) => Slot::Entry(e),
                    None => return Ok(()),
                },
            };
            if add((i + 1) as u64, slot) {
                return Ok(());
            }
            i += 1;
        }
    }

    fn parent_of(&self, ino: u64) -> u64 {
        if ino == ROOT {
            return ROOT;
        }
        self.fs
            .nodes
            .get(ino)
            .and_then(|n| n.lock().aliases.first().map(|a| a.0))
            .unwrap_or(ROOT)
    }
}

/// An error no union operation gives by design: a bug, a broken layer, or a lost race.
fn unexpected(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        None | Some(
            libc::EIO
                | libc::ESTALE
                | libc::EBADF
                | libc::EXDEV
                | libc::EFAULT
                | libc::ENOTCONN
                | libc::ENOMEM
        )
    )
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs((-sec) as u64) + Duration::from_nanos(nsec as u64)
    }
}

fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn dtype_kind(d: u8) -> FileType {
    match d {
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

pub fn attr(st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(st.st_ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: time(st.st_ctime, st.st_ctime_nsec),
        kind: file_type(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(st) => {
            let (s, n) = match st.duration_since(UNIX_EPOCH) {
                Ok(d) => (d.as_secs() as i64, d.subsec_nanos() as i64),
                Err(e) => {
                    let d = e.duration();
                    let mut s = -(d.as_secs() as i64);
                    let mut n = d.subsec_nanos() as i64;
                    if n > 0 {
                        s -= 1;
                        n = 1_000_000_000 - n;
                    }
                    (s, n)
                }
            };
            SetTime::At(libc::timespec {
                tv_sec: s,
                tv_nsec: n,
            })
        }
    })
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn cname(name: &OsStr) -> Result<CString, Errno> {
    CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)
}

fn fd_of(fh: FileHandle) -> RawFd {
    fh.0 as RawFd
}

fn check(r: isize) -> Result<usize, Errno> {
    if r < 0 {
        Err(errno(&io::Error::last_os_error()))
    } else {
        Ok(r as usize)
    }
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
                | F::FUSE_DO_READDIRPLUS
                // The kernel checks and caches POSIX ACLs itself, as on the layers.
                | F::FUSE_POSIX_ACL,
        );
        // The kernel then stops asking for security.capability before every write and
        // for the mode before every chown; we drop set-ID bits ourselves (see write).
        if config.add_capabilities(F::FUSE_HANDLE_KILLPRIV_V2).is_ok() {
            self.killpriv.store(true, Ordering::Relaxed);
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

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.fs.lookup(parent.0, name) {
            Ok((_, st)) => reply.entry(&self.ttl, &attr(&st), Generation(0)),
            // A negative entry the kernel may cache: every create goes through us.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let mut none = attr(&unsafe { std::mem::zeroed() });
                none.ino = INodeNo(0);
                reply.entry(&self.ttl, &none, Generation(0))
            }
            Err(e) => reply.error(self.fail("lookup", parent.0, Some(name), &e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        // With a handle (fstat of an open file) the file may have no name any more.
        let r = match fh {
            Some(fh) => self.fs.getattr_open(ino.0, self.current_fd(fh)),
            None => self.fs.getattr(ino.0),
        };
        match r {
            Ok(st) => reply.attr(&self.ttl, &attr(&st)),
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
        let a = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: set_time(atime),
            mtime: set_time(mtime),
            // fuser hides the kernel's FATTR_KILL_SUIDGID; it is set for a truncate by a
            // caller without CAP_FSETID, which outside a namespace means a non-root one.
            kill_suidgid: size.is_some() && req.uid() != 0 && self.killpriv.load(Ordering::Relaxed),
        };
        match self.fs.setattr(ino.0, &a, fh.map(fd_of)) {
            Ok(st) => reply.attr(&self.ttl, &attr(&st)),
            Err(e) => reply.error(self.fail("setattr", ino.0, None, &e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
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
        let mode = mode & !(umask & 0o777);
        match self
            .fs
            .mknod(parent.0, name, mode, rdev as u64, caller(req))
        {
            Ok((_, st)) => reply.entry(&self.ttl, &attr(&st), Generation(0)),
            Err(e) => reply.error(self.fail("mknod", parent.0, Some(name), &e)),
        }
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
        let mode = mode & !(umask & 0o777);
        match self.fs.mkdir(parent.0, name, mode, caller(req)) {
            Ok((_, st)) => reply.entry(&self.ttl, &attr(&st), Generation(0)),
            Err(e) => reply.error(self.fail("mkdir", parent.0, Some(name), &e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.fs.unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("unlink", parent.0, Some(name), &e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
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
        match self
            .fs
            .symlink(parent.0, link_name, target.as_os_str(), caller(req))
        {
            Ok((_, st)) => reply.entry(&self.ttl, &attr(&st), Generation(0)),
            Err(e) => reply.error(self.fail("symlink", parent.0, Some(link_name), &e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
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
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        match self.fs.link(ino.0, newparent.0, newname) {
            Ok((_, st)) => reply.entry(&self.ttl, &attr(&st), Generation(0)),
            Err(e) => reply.error(self.fail("link", newparent.0, Some(newname), &e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
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
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
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
            while done < buf.len() {
                let r = unsafe {
                    libc::pread(
                        fd,
                        buf[done..].as_mut_ptr().cast(),
                        buf.len() - done,
                        (offset + done as u64) as i64,
                    )
                };
                match check(r) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) => return reply.error(e),
                }
            }
            reply.data(&buf[..done]);
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // Under FUSE_HANDLE_KILLPRIV_V2 the kernel asks us to drop the set-ID bits of a
        // file written by a caller without CAP_FSETID (the daemon has it, so the write
        // below would not).
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            && let Ok(st) = crate::sys::fstat(fd_of(fh))
            && killed_suidgid(st.st_mode) != st.st_mode
        {
            if unsafe { libc::fchmod(fd_of(fh), killed_suidgid(st.st_mode) & 0o7777) } < 0 {
                reply.error(errno(&io::Error::last_os_error()));
                return;
            }
            // The kernel keeps the cached mode over a write: drop it now, before the reply.
            if let Some(n) = self.notifier.get() {
                let _ = n.inval_inode(ino, -1, 0);
            }
        }
        let r = unsafe { libc::pwrite(fd_of(fh), data.as_ptr().cast(), data.len(), offset as i64) };
        match check(r) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.end_open(fh);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
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

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.fs.drop_stale_impure(ino.0);
        // Listed at the first read: with a cached listing the kernel may never read.
        let id = self.next_dir.fetch_add(1, Ordering::Relaxed);
        let h = DirHandle {
            entries: Vec::new(),
        };
        self.dirs
            .lock()
            .unwrap()
            .insert(id, Arc::new(Mutex::new(h)));
        // The kernel may cache listings across opens: every change to a directory goes
        // through us, and the kernel drops its cache when one does.
        reply.opened(
            FileHandle(id),
            FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
        );
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let parent = self.parent_of(ino.0);
        let r = self.each_entry(ino.0, fh, offset, |next, slot| match slot {
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
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let dir = match self.fs.dir_context(ino.0) {
            Ok(d) => d,
            Err(e) => return reply.error(self.fail("readdirplus", ino.0, None, &e)),
        };
        let r = self.each_entry(ino.0, fh, offset, |next, slot| {
            let (target, name) = match slot {
                Slot::Entry(e) => match self.fs.lookup_in(&dir, &e.name) {
                    Ok((node, st)) => {
                        let full = reply.add(
                            INodeNo(node.ino),
                            next,
                            &e.name,
                            &self.ttl,
                            &attr(&st),
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
                    &attr(&st),
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
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
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
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
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

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
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

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.fs.listxattr(ino.0) {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(self.fail("listxattr", ino.0, None, &e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
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

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
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
        let mode = mode & !(umask & 0o777);
        match self.fs.create(parent.0, name, mode, flags, caller(req)) {
            Ok((node, st, fd)) => {
                let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
                let o = self.start_open(node.ino, fd, writable, false, |fd| reply.open_backing(fd));
                let (a, g) = (attr(&st), Generation(0));
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
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = unsafe { libc::fallocate(fd_of(fh), mode, offset as i64, length as i64) };
        match check(r as isize) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let r = unsafe { libc::lseek(self.current_fd(fh), offset, whence) };
        match check(r as isize) {
            Ok(o) => reply.offset(o as i64),
            Err(e) => reply.error(e),
        }
    }
}
