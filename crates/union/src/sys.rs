//! Thin adapters over the raw syscalls the union file system needs. All paths are
//! relative to a directory fd (a layer root) so no call ever follows `..` out of a layer
//! by accident and the kernel does not re-walk the layer's own path each time.
pub mod durable;
pub mod owned_temp;
pub mod proc;

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

pub type Stat = libc::stat;

fn cstr(p: &OsStr) -> io::Result<CString> {
    CString::new(p.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Relative path to a C string; the empty path means the directory itself (".").
pub fn rel(p: &OsStr) -> io::Result<CString> {
    if p.is_empty() {
        Ok(c".".to_owned())
    } else {
        cstr(p)
    }
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn lstatat(dir: RawFd, p: &OsStr) -> io::Result<Stat> {
    let c = rel(p)?;
    let mut st: Stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// lstat that maps ENOENT/ENOTDIR to None (a missing name is not an error in a layer).
pub fn lstat_opt(dir: RawFd, p: &OsStr) -> io::Result<Option<Stat>> {
    match lstatat(dir, p) {
        Ok(st) => Ok(Some(st)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn fstat(fd: RawFd) -> io::Result<Stat> {
    let mut st: Stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

pub fn fsync(fd: RawFd) -> io::Result<()> {
    check(unsafe { libc::fsync(fd) }).map(drop)
}

pub fn openat(dir: RawFd, p: &OsStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = rel(p)?;
    let fd = check(unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn mkdirat(dir: RawFd, p: &OsStr, mode: u32) -> io::Result<()> {
    let c = rel(p)?;
    check(unsafe { libc::mkdirat(dir, c.as_ptr(), mode) }).map(drop)
}

pub fn mknodat(dir: RawFd, p: &OsStr, mode: u32, rdev: u64) -> io::Result<()> {
    let c = rel(p)?;
    check(unsafe { libc::mknodat(dir, c.as_ptr(), mode, rdev) }).map(drop)
}

pub fn symlinkat(target: &OsStr, dir: RawFd, p: &OsStr) -> io::Result<()> {
    let t = cstr(target)?;
    let c = rel(p)?;
    check(unsafe { libc::symlinkat(t.as_ptr(), dir, c.as_ptr()) }).map(drop)
}

pub fn linkat(odir: RawFd, op: &OsStr, ndir: RawFd, np: &OsStr) -> io::Result<()> {
    let o = rel(op)?;
    let n = rel(np)?;
    check(unsafe { libc::linkat(odir, o.as_ptr(), ndir, n.as_ptr(), 0) }).map(drop)
}

pub fn unlinkat(dir: RawFd, p: &OsStr, flags: i32) -> io::Result<()> {
    let c = rel(p)?;
    check(unsafe { libc::unlinkat(dir, c.as_ptr(), flags) }).map(drop)
}

pub fn renameat2(odir: RawFd, op: &OsStr, ndir: RawFd, np: &OsStr, flags: u32) -> io::Result<()> {
    let o = rel(op)?;
    let n = rel(np)?;
    check(unsafe { libc::renameat2(odir, o.as_ptr(), ndir, n.as_ptr(), flags) }).map(drop)
}

pub fn readlinkat(dir: RawFd, p: &OsStr) -> io::Result<OsString> {
    let c = rel(p)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let n = unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}

pub fn fchownat(dir: RawFd, p: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    let c = rel(p)?;
    check(unsafe { libc::fchownat(dir, c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

pub fn fchmodat(dir: RawFd, p: &OsStr, mode: u32) -> io::Result<()> {
    let c = rel(p)?;
    check(unsafe { libc::fchmodat(dir, c.as_ptr(), mode, 0) }).map(drop)
}

pub fn utimensat(dir: RawFd, p: &OsStr, times: &[libc::timespec; 2]) -> io::Result<()> {
    let c = rel(p)?;
    check(unsafe { libc::utimensat(dir, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
        .map(drop)
}

pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    check(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
}

pub fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    check(unsafe { libc::fchmod(fd, mode) }).map(drop)
}

pub fn futimens(fd: RawFd, times: &[libc::timespec; 2]) -> io::Result<()> {
    check(unsafe { libc::futimens(fd, times.as_ptr()) }).map(drop)
}

pub fn truncateat(dir: RawFd, p: &OsStr, size: u64) -> io::Result<()> {
    let fd = openat(dir, p, libc::O_WRONLY | libc::O_NOFOLLOW, 0)?;
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), size as i64) }).map(drop)
}

/// `/proc/self/fd/N/REL`: a path usable with the l*xattr calls, which have no *at form.
pub fn proc_path(dir: RawFd, p: &OsStr) -> io::Result<CString> {
    // "/." for the directory itself: the bare /proc/self/fd/N is a symlink, and the
    // l*xattr calls would act on that link instead of the directory.
    let mut v = format!("/proc/self/fd/{dir}/").into_bytes();
    v.extend_from_slice(if p.is_empty() { b"." } else { p.as_bytes() });
    CString::new(v).map_err(|_| errno(libc::EINVAL))
}

// The *xattrat system calls (Linux 6.13): xattrs relative to a directory fd, without a
// trip through /proc/self/fd. Older kernels answer ENOSYS and we fall back to /proc paths.
const SYS_SETXATTRAT: libc::c_long = 463;
const SYS_GETXATTRAT: libc::c_long = 464;
const SYS_LISTXATTRAT: libc::c_long = 465;
const SYS_REMOVEXATTRAT: libc::c_long = 466;
static XATTRAT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// Path and flags for a *xattrat call: "" (".") is the directory fd itself; our dir fds
/// are O_PATH, which AT_EMPTY_PATH refuses for xattrs.
fn at_path(p: &OsStr) -> io::Result<(CString, libc::c_uint)> {
    Ok((rel(p)?, libc::AT_SYMLINK_NOFOLLOW as libc::c_uint))
}

fn xattrat_ok(r: libc::c_long) -> Option<io::Result<usize>> {
    if r >= 0 {
        return Some(Ok(r as usize));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOSYS) {
        XATTRAT.store(false, std::sync::atomic::Ordering::Relaxed);
        return None;
    }
    Some(Err(e))
}

/// getxattr of `p` under `dir` (not following a symlink) into `buf`; returns the size.
fn getxattr_into(dir: RawFd, p: &OsStr, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    if XATTRAT.load(std::sync::atomic::Ordering::Relaxed) {
        let (path, flags) = at_path(p)?;
        let mut args = XattrArgs {
            value: buf.as_mut_ptr() as u64,
            size: buf.len() as u32,
            flags: 0,
        };
        let r = unsafe {
            libc::syscall(
                SYS_GETXATTRAT,
                dir,
                path.as_ptr(),
                flags,
                name.as_ptr(),
                &mut args as *mut XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            )
        };
        if let Some(r) = xattrat_ok(r) {
            return r;
        }
    }
    let path = proc_path(dir, p)?;
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub fn lgetxattr(dir: RawFd, p: &OsStr, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match getxattr_into(dir, p, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
                Some(libc::ERANGE) if buf.len() < (1 << 16) => buf.resize(1 << 16, 0),
                _ => return Err(e),
            },
        }
    }
}

/// Raw getxattr with the caller's buffer size semantics (size 0 asks for the length).
pub fn lgetxattr_raw(dir: RawFd, p: &OsStr, name: &CStr, size: usize) -> io::Result<Vec<u8>> {
    if size == 0 {
        let mut big = vec![0u8; 1 << 16];
        let n = getxattr_into(dir, p, name, &mut big)?;
        return Ok(vec![0u8; n]);
    }
    let mut buf = vec![0u8; size];
    let n = getxattr_into(dir, p, name, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

pub fn lsetxattr(dir: RawFd, p: &OsStr, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    if XATTRAT.load(std::sync::atomic::Ordering::Relaxed) {
        let (path, at) = at_path(p)?;
        let args = XattrArgs {
            value: value.as_ptr() as u64,
            size: value.len() as u32,
            flags: flags as u32,
        };
        let r = unsafe {
            libc::syscall(
                SYS_SETXATTRAT,
                dir,
                path.as_ptr(),
                at,
                name.as_ptr(),
                &args as *const XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            )
        };
        if let Some(r) = xattrat_ok(r) {
            return r.map(drop);
        }
    }
    let path = proc_path(dir, p)?;
    check(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

pub fn lremovexattr(dir: RawFd, p: &OsStr, name: &CStr) -> io::Result<()> {
    if XATTRAT.load(std::sync::atomic::Ordering::Relaxed) {
        let (path, at) = at_path(p)?;
        let r = unsafe { libc::syscall(SYS_REMOVEXATTRAT, dir, path.as_ptr(), at, name.as_ptr()) };
        if let Some(r) = xattrat_ok(r) {
            return r.map(drop);
        }
    }
    let path = proc_path(dir, p)?;
    check(unsafe { libc::lremovexattr(path.as_ptr(), name.as_ptr()) }).map(drop)
}

fn listxattr_into(dir: RawFd, p: &OsStr, buf: &mut [u8]) -> io::Result<usize> {
    if XATTRAT.load(std::sync::atomic::Ordering::Relaxed) {
        let (path, at) = at_path(p)?;
        let r = unsafe {
            libc::syscall(
                SYS_LISTXATTRAT,
                dir,
                path.as_ptr(),
                at,
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if let Some(r) = xattrat_ok(r) {
            return r;
        }
    }
    let path = proc_path(dir, p)?;
    let n = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// All xattr names of a file (without following a symlink).
pub fn llistxattr(dir: RawFd, p: &OsStr) -> io::Result<Vec<CString>> {
    let mut buf = vec![0u8; 1024];
    let n = loop {
        match listxattr_into(dir, p, &mut buf) {
            Ok(n) => break n,
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && buf.len() < (1 << 16) => {
                buf.resize(1 << 16, 0)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(vec![]),
            Err(e) => return Err(e),
        }
    };
    buf.truncate(n);
    Ok(buf
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| CString::new(s).unwrap())
        .collect())
}

pub fn is_whiteout_stat(st: &Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

pub fn is_dir(st: &Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Reads every entry name of a directory (without "." and "..") with d_type.
pub fn read_dir_names(dir: RawFd, p: &OsStr) -> io::Result<Vec<(OsString, u8, u64)>> {
    read_names_of(open_dir(dir, p)?)
}

/// The entry names of a directory, or None when the directory looks names up without
/// regard to case (FS_CASEFOLD_FL): there a name's bytes alone do not say it is absent.
pub fn exact_dir_names(dir: RawFd, p: &OsStr) -> io::Result<Option<Vec<(OsString, u8, u64)>>> {
    const FS_CASEFOLD_FL: libc::c_long = 0x4000_0000;
    let fd = open_dir(dir, p)?;
    let mut flags: libc::c_long = 0;
    // The kernel writes an int; file systems without inode flags fail: no casefolding.
    let got = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    if got == 0 && (flags as libc::c_int as libc::c_long) & FS_CASEFOLD_FL != 0 {
        return Ok(None);
    }
    read_names_of(fd).map(Some)
}

fn open_dir(dir: RawFd, p: &OsStr) -> io::Result<OwnedFd> {
    openat(
        dir,
        p,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

fn read_names_of(fd: OwnedFd) -> io::Result<Vec<(OsString, u8, u64)>> {
    let dirp = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd); // closedir closes it
    let mut out = Vec::new();
    loop {
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir64(dirp) };
        if ent.is_null() {
            let e = unsafe { *libc::__errno_location() };
            unsafe { libc::closedir(dirp) };
            if e != 0 {
                return Err(errno(e));
            }
            return Ok(out);
        }
        let ent = unsafe { &*ent };
        let name = unsafe { CStr::from_ptr(ent.d_name.as_ptr()) }.to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push((OsStr::from_bytes(name).to_owned(), ent.d_type, ent.d_ino));
    }
}

/// True when this process runs in the initial user namespace (so trusted.* xattrs work).
pub fn in_initial_userns() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(s) => {
            let f: Vec<&str> = s.split_whitespace().collect();
            f.len() == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
        }
        Err(_) => false,
    }
}

/// An flock on a lock file (created when missing), held until dropped.
pub struct FileLock {
    file: std::fs::File,
}

impl FileLock {
    /// Waits for the lock: exclusive, or shared with the other shared holders.
    /// An error names the lock file and what failed.
    pub fn acquire(path: &Path, exclusive: bool) -> io::Result<FileLock> {
        let named = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| named("opening lock", e))?;
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock on an fd we own.
        check(unsafe { libc::flock(file.as_raw_fd(), op) }).map_err(|e| named("locking", e))?;
        Ok(FileLock { file })
    }

    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        Self::acquire(path, true)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Unlock explicitly: a forked child may still hold a copy of the fd.
        // SAFETY: unlocking our own fd.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// A pidfd for `pid` (any process, not only a child); None when it is gone. It becomes
/// readable when the process exits. Check that `pid` is still the process meant after
/// opening it: from then on the pid cannot be reused under the fd.
pub fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with integer arguments; a non-negative result is a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
    // SAFETY: the fd is ours.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}
