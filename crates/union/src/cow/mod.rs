//! Copy-up: copies a lower object's data, metadata and xattrs into a new object that the
//! caller created in the work dir; the caller then renames it into the upper layer, so a
//! crash at any moment leaves either the old view or the complete copy, never a part.
use crate::readahead;
use crate::sys;
use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

mod copier;
pub use copier::Copier;

const FICLONE: libc::c_ulong = 0x40049409;

/// Overlayfs copies data up in chunks of this size.
const CHUNK: i64 = 1 << 20;

/// Copies all data of `src` into `dst` (both regular files) as overlayfs copies up, so the
/// copy has the same holes (which st_blocks and SEEK_HOLE show): a reflink when the file
/// system can; else chunk by chunk, skipping a hole only where SEEK_DATA at a chunk's
/// start finds the data further on (a hole inside a copied chunk is written as zeros); a
/// trailing hole only sets the size.
pub fn copy_data(src: RawFd, dst: RawFd, size: u64) -> io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    if unsafe { libc::ioctl(dst, FICLONE as _, src) } == 0 {
        return Ok(());
    }
    let end = size as i64;
    let mut off: i64 = 0;
    // Where SEEK_DATA last found data; it is asked again once the copy is past it.
    let mut data: i64 = -1;
    let mut skip_holes = true;
    // The copy reads the source in sequence (see `readahead`).
    let mut stream = readahead::ReadAhead::default();
    while off < end {
        if skip_holes && data < off {
            data = unsafe { libc::lseek(src, off, libc::SEEK_DATA) };
            if data < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
                    break; // only a hole remains
                }
                // No SEEK_DATA support: copy the rest chunk by chunk.
                skip_holes = false;
            } else if data > off {
                off = data.min(end);
                continue;
            }
        }
        let stop = (off + CHUNK).min(end);
        copy_range(src, dst, off, stop)?;
        let len = (stop - off) as u64;
        stream.after_read(off as u64, len, len).apply(src);
        off = stop;
    }
    // A trailing hole still sets the size.
    if unsafe { libc::ftruncate(dst, end) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn copy_range(src: RawFd, dst: RawFd, start: i64, end: i64) -> io::Result<()> {
    let mut off_in = start;
    let mut off_out = start;
    while off_in < end {
        let len = (end - off_in) as usize;
        let n = unsafe { libc::copy_file_range(src, &mut off_in, dst, &mut off_out, len, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.raw_os_error(),
                Some(libc::EXDEV)
                    | Some(libc::EINVAL)
                    | Some(libc::ENOSYS)
                    | Some(libc::EOPNOTSUPP)
            ) {
                return copy_rw(src, dst, off_in, end);
            }
            return Err(e);
        }
        if n == 0 {
            break; // the source shrank under us
        }
    }
    Ok(())
}

fn copy_rw(src: RawFd, dst: RawFd, mut off: i64, end: i64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    while off < end {
        let want = ((end - off) as usize).min(buf.len());
        let n = unsafe { libc::pread(src, buf.as_mut_ptr().cast(), want, off) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        let mut done = 0usize;
        while done < n as usize {
            let w = unsafe {
                libc::pwrite(
                    dst,
                    buf[done..].as_ptr().cast(),
                    n as usize - done,
                    off + done as i64,
                )
            };
            if w < 0 {
                return Err(io::Error::last_os_error());
            }
            done += w as usize;
        }
        off += n as i64;
    }
    Ok(())
}

/// Copies the xattrs of `src` to `dst` except those `skip` rejects. Names the destination
/// refuses (e.g. user.* on a symlink) are left out, as overlayfs does for unsupported ones.
pub fn copy_xattrs(
    sdir: RawFd,
    sp: &OsStr,
    ddir: RawFd,
    dp: &OsStr,
    skip: impl Fn(&[u8]) -> bool,
) -> io::Result<()> {
    for name in sys::llistxattr(sdir, sp)? {
        if skip(name.to_bytes()) {
            continue;
        }
        let Some(v) = sys::lgetxattr(sdir, sp, &name)? else {
            continue;
        };
        if let Err(e) = sys::lsetxattr(ddir, dp, &name, &v, 0)
            && !matches!(
                e.raw_os_error(),
                Some(libc::EPERM) | Some(libc::ENOTSUP) | Some(libc::EACCES)
            )
        {
            return Err(e);
        }
    }
    Ok(())
}

/// Gives `dp` the owner of `st` (before its mode: chown clears set-id bits).
fn copy_owner(ddir: RawFd, dp: &OsStr, st: &sys::Stat) -> io::Result<()> {
    match sys::fchownat(ddir, dp, st.st_uid, st.st_gid) {
        Ok(()) => Ok(()),
        // Rootless: ids outside our user namespace cannot be given; keep ours as
        // overlayfs in a user namespace would fail only on unmapped ids.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(e) => Err(e),
    }
}

fn copy_mode_and_times(ddir: RawFd, dp: &OsStr, st: &sys::Stat) -> io::Result<()> {
    if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
        sys::fchmodat(ddir, dp, st.st_mode & 0o7777)?;
    }
    let times = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    sys::utimensat(ddir, dp, &times)
}

/// Creates in `ddir/dp` a copy of the object `sdir/sp` (any type), with metadata and
/// xattrs. A regular file gets its data through `data` when given, else only its size (a
/// sparse file, as a metadata-only copy-up leaves it). `xattr_skip` names the xattrs not
/// to copy.
pub fn copy_object(
    sdir: RawFd,
    sp: &OsStr,
    st: &sys::Stat,
    ddir: RawFd,
    dp: &OsStr,
    data: Option<&Copier>,
    xattr_skip: &dyn Fn(&[u8]) -> bool,
) -> io::Result<()> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {
            let dst = sys::openat(
                ddir,
                dp,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o600,
            )?;
            if let Some(copier) = data {
                let src = sys::openat(sdir, sp, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                copier.copy(src.as_raw_fd(), dst.as_raw_fd(), st.st_size as u64)?;
            } else if unsafe { libc::ftruncate(dst.as_raw_fd(), st.st_size) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        libc::S_IFDIR => sys::mkdirat(ddir, dp, 0o700)?,
        libc::S_IFLNK => {
            let target = sys::readlinkat(sdir, sp)?;
            sys::symlinkat(&target, ddir, dp)?;
        }
        _ => sys::mknodat(ddir, dp, st.st_mode & (libc::S_IFMT | 0o600), st.st_rdev)?,
    }
    // Owner first: a chown drops security.capability, which the xattrs then bring.
    copy_owner(ddir, dp, st)?;
    copy_xattrs(sdir, sp, ddir, dp, xattr_skip)?;
    copy_mode_and_times(ddir, dp, st)
}

/// Removes a tree under a directory fd (used to clear the work dir of leftovers).
pub fn remove_tree(dir: RawFd, p: &OsStr) -> io::Result<()> {
    let st = match sys::lstat_opt(dir, p)? {
        Some(st) => st,
        None => return Ok(()),
    };
    if sys::is_dir(&st) {
        for (name, _, _) in sys::read_dir_names(dir, p)? {
            remove_tree(dir, &crate::whiteout::join(p, &name))?;
        }
        sys::unlinkat(dir, p, libc::AT_REMOVEDIR)
    } else {
        sys::unlinkat(dir, p, 0)
    }
}

/// Whether an xattr name is private to the union and must not be copied as user data.
pub fn never_copy(name: &CStr) -> bool {
    let b = name.to_bytes();
    b.starts_with(b"trusted.overlay.") || b.starts_with(b"user.overlay.")
}
