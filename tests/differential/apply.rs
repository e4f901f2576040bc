//! Applying an op to one mount: the same calls on both sides, the result as text.
use super::held::apply_held;
use super::ops::{Falloc, Node, Op, RenameFlags, XattrFlags};
use super::syscalls::{self as sys, check, cpath, data, ok, stat_desc, write_op};
use crate::common::{self, tree};
use std::ffi::CString;
use std::path::Path;

pub(crate) fn apply(root: &Path, op: &Op) -> String {
    match apply_inner(root, op) {
        Ok(s) => s,
        Err(e) => e,
    }
}

/// Dispatches by the same groups as the generator (`generate::gen_op`).
fn apply_inner(root: &Path, op: &Op) -> Result<String, String> {
    match op {
        Op::Write { .. }
        | Op::Append { .. }
        | Op::Pwrite { .. }
        | Op::Truncate { .. }
        | Op::Read { .. }
        | Op::Fallocate { .. }
        | Op::Seek { .. }
        | Op::OpenTrunc { .. } => apply_data(root, op),
        Op::CreateExcl { .. }
        | Op::Unlink { .. }
        | Op::Mkdir { .. }
        | Op::Rmdir { .. }
        | Op::Rename { .. }
        | Op::Link { .. }
        | Op::Symlink { .. }
        | Op::Readlink { .. }
        | Op::Mknod { .. } => apply_name(root, op),
        Op::Chmod { .. } | Op::Chown { .. } | Op::Utimens { .. } | Op::Access { .. } => {
            apply_attr(root, op)
        }
        Op::SetXattr { .. }
        | Op::RemoveXattr { .. }
        | Op::GetXattr { .. }
        | Op::ListXattr { .. } => apply_xattr(root, op),
        Op::Readdir { path } => list_dir(root, path),
        Op::Lstat { path } => stat_desc(root, path, false),
        Op::Stat { path } => stat_desc(root, path, true),
        Op::Hold { .. }
        | Op::HeldRead { .. }
        | Op::HeldWrite { .. }
        | Op::HeldStat { .. }
        | Op::HeldTruncate { .. }
        | Op::HeldClose { .. }
        | Op::HeldReaddir { .. } => apply_held(root, op),
        Op::Rotate => panic!("Op::Rotate is run by the runner, not applied to a mount"),
    }
}

/// File contents: writes, truncation, reads, space allocation, holes.
fn apply_data(root: &Path, op: &Op) -> Result<String, String> {
    use libc::*;
    match op {
        Op::Write { path, len, seed } => write_op(
            root,
            path,
            O_WRONLY | O_CREAT | O_TRUNC,
            &data(*len, *seed),
            None,
        ),
        Op::Append { path, len, seed } => write_op(
            root,
            path,
            O_WRONLY | O_CREAT | O_APPEND,
            &data(*len, *seed),
            None,
        ),
        Op::Pwrite {
            path,
            off,
            len,
            seed,
        } => write_op(root, path, O_WRONLY, &data(*len, *seed), Some(*off as i64)),
        Op::Truncate { path, len } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { truncate(p.as_ptr(), *len as i64) })
        }
        Op::Read { path } => read_file(root, path),
        Op::Fallocate {
            path,
            off,
            len,
            how,
        } => {
            let fd = sys::open(root, path, O_WRONLY, 0)?;
            let mode = match how {
                Falloc::Allocate => 0,
                Falloc::KeepSize => FALLOC_FL_KEEP_SIZE,
                Falloc::PunchHole => FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            };
            // SAFETY: fd is open.
            let r = ok(unsafe { fallocate(fd, mode, *off as i64, *len as i64) });
            sys::close(fd)?;
            r?;
            stat_desc(root, path, true)
        }
        Op::Seek { path, off, hole } => seek(root, path, *off, *hole),
        Op::OpenTrunc { path } => {
            let fd = sys::open(root, path, O_WRONLY | O_TRUNC, 0)?;
            sys::close(fd)?;
            stat_desc(root, path, true)
        }
        _ => unreachable!("not a data op: {op:?}"),
    }
}

fn read_file(root: &Path, path: &str) -> Result<String, String> {
    let fd = sys::open(root, path, libc::O_RDONLY, 0)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    let r = loop {
        // SAFETY: fd open, buf valid.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match check(n as _) {
            Ok(0) => break Ok(()),
            Ok(n) => out.extend_from_slice(&buf[..n as usize]),
            Err(e) => break Err(e),
        }
    };
    sys::close(fd)?;
    r?;
    Ok(format!("ok {}", tree::content_summary(&out)))
}

fn seek(root: &Path, path: &str, off: u64, hole: bool) -> Result<String, String> {
    use libc::*;
    let fd = sys::open(root, path, O_RDONLY, 0)?;
    // SEEK_DATA/SEEK_HOLE on a directory: a FUSE mount's directories take the
    // kernel's generic lseek (FUSE sends no request for it), overlayfs has its own;
    // no FUSE file system can match it, so only files are compared.
    // SAFETY: fd is open; st is written by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        sys::close(fd)?;
        return Ok("directory (not compared)".into());
    }
    let whence = if hole { SEEK_HOLE } else { SEEK_DATA };
    // SAFETY: fd is open.
    let r = check(unsafe { lseek(fd, off as i64, whence) } as _);
    sys::close(fd)?;
    Ok(format!("ok {}", r?))
}

/// Names: creating, removing, renaming and linking entries of every type.
fn apply_name(root: &Path, op: &Op) -> Result<String, String> {
    use libc::*;
    match op {
        Op::CreateExcl { path, mode } => {
            let fd = sys::open(root, path, O_WRONLY | O_CREAT | O_EXCL, mode.0)?;
            sys::close(fd)?;
            stat_desc(root, path, false)
        }
        Op::Unlink { path } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { unlink(p.as_ptr()) })
        }
        Op::Mkdir { path, mode } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { mkdir(p.as_ptr(), mode.0) })?;
            stat_desc(root, path, false)
        }
        Op::Rmdir { path } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { rmdir(p.as_ptr()) })
        }
        Op::Rename { from, to, flags } => {
            let (f, t) = (cpath(root, from), cpath(root, to));
            let fl = match flags {
                RenameFlags::Plain => 0,
                RenameFlags::NoReplace => RENAME_NOREPLACE,
                RenameFlags::Exchange => RENAME_EXCHANGE,
            };
            // SAFETY: valid paths.
            ok(unsafe { renameat2(AT_FDCWD, f.as_ptr(), AT_FDCWD, t.as_ptr(), fl) })
        }
        Op::Link { from, to } => {
            let (f, t) = (cpath(root, from), cpath(root, to));
            // SAFETY: valid paths.
            ok(unsafe { link(f.as_ptr(), t.as_ptr()) })?;
            stat_desc(root, to, false)
        }
        Op::Symlink { target, path } => {
            let (t, p) = (CString::new(target.as_str()).unwrap(), cpath(root, path));
            // SAFETY: valid strings.
            ok(unsafe { symlink(t.as_ptr(), p.as_ptr()) })
        }
        Op::Readlink { path } => {
            let p = cpath(root, path);
            let mut buf = vec![0u8; 4096];
            // SAFETY: valid path and buffer.
            let n =
                check(unsafe { readlink(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) } as _)?;
            Ok(format!(
                "ok {}",
                String::from_utf8_lossy(&buf[..n as usize])
            ))
        }
        Op::Mknod { path, node } => {
            let p = cpath(root, path);
            let (mode, dev) = match node {
                Node::Fifo => (S_IFIFO | 0o644, 0),
                Node::Socket => (S_IFSOCK | 0o600, 0),
                Node::CharDevice => (S_IFCHR | 0o666, makedev(1, 3)),
                Node::Whiteout => (S_IFCHR | 0o600, 0),
            };
            // SAFETY: valid path.
            ok(unsafe { mknod(p.as_ptr(), mode, dev) })?;
            stat_desc(root, path, false)
        }
        _ => unreachable!("not a name op: {op:?}"),
    }
}

/// Inode attributes: mode, owner, times, and the permission check that reads them.
fn apply_attr(root: &Path, op: &Op) -> Result<String, String> {
    use libc::*;
    match op {
        Op::Chmod { path, mode } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { chmod(p.as_ptr(), mode.0) })?;
            stat_desc(root, path, true)
        }
        Op::Chown {
            path,
            uid,
            gid,
            nofollow,
        } => {
            let p = cpath(root, path);
            let fl = if *nofollow { AT_SYMLINK_NOFOLLOW } else { 0 };
            // SAFETY: valid path.
            ok(unsafe { fchownat(AT_FDCWD, p.as_ptr(), *uid, *gid, fl) })?;
            stat_desc(root, path, !*nofollow)
        }
        Op::Utimens {
            path,
            atime,
            mtime,
            nofollow,
        } => utimens(root, path, *atime, *mtime, *nofollow),
        Op::Access { path, mode } => {
            let p = cpath(root, path);
            // SAFETY: valid path.
            ok(unsafe { access(p.as_ptr(), *mode) })
        }
        _ => unreachable!("not an attribute op: {op:?}"),
    }
}

fn utimens(
    root: &Path,
    path: &str,
    atime: Option<(i64, i64)>,
    mtime: Option<(i64, i64)>,
    nofollow: bool,
) -> Result<String, String> {
    use libc::*;
    let p = cpath(root, path);
    let ts = |t: &Option<(i64, i64)>| match t {
        Some((s, ns)) => timespec {
            tv_sec: *s,
            tv_nsec: *ns,
        },
        None => timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
    };
    let times = [ts(&atime), ts(&mtime)];
    let fl = if nofollow { AT_SYMLINK_NOFOLLOW } else { 0 };
    // SAFETY: valid path and two timespecs.
    ok(unsafe { utimensat(AT_FDCWD, p.as_ptr(), times.as_ptr(), fl) })?;
    // Explicit times must come back exactly, nanoseconds included.
    let mut st: stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    let r = unsafe {
        if nofollow {
            lstat(p.as_ptr(), &mut st)
        } else {
            stat(p.as_ptr(), &mut st)
        }
    };
    check(r as _)?;
    match mtime {
        Some(_) => Ok(format!("ok mtime={}.{:09}", st.st_mtime, st.st_mtime_nsec)),
        None => Ok("ok".into()),
    }
}

/// Extended attributes, including reads of the overlay's own (which must stay hidden).
fn apply_xattr(root: &Path, op: &Op) -> Result<String, String> {
    use libc::*;
    match op {
        Op::SetXattr {
            path,
            name,
            value,
            flags,
            nofollow,
        } => {
            let (p, n) = (cpath(root, path), CString::new(name.as_str()).unwrap());
            let fl = match flags {
                XattrFlags::Any => 0,
                XattrFlags::Create => XATTR_CREATE,
                XattrFlags::Replace => XATTR_REPLACE,
            };
            // SAFETY: valid strings and value buffer.
            ok(unsafe {
                if *nofollow {
                    lsetxattr(
                        p.as_ptr(),
                        n.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        fl,
                    )
                } else {
                    setxattr(
                        p.as_ptr(),
                        n.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        fl,
                    )
                }
            })
        }
        Op::RemoveXattr { path, name } => {
            let (p, n) = (cpath(root, path), CString::new(name.as_str()).unwrap());
            // SAFETY: valid strings.
            ok(unsafe { lremovexattr(p.as_ptr(), n.as_ptr()) })
        }
        Op::GetXattr { path, name } => {
            let (p, n) = (cpath(root, path), CString::new(name.as_str()).unwrap());
            let mut buf = vec![0u8; 4096];
            // SAFETY: valid strings and buffer.
            let len = check(unsafe {
                lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            } as _)?;
            Ok(format!(
                "ok {}",
                String::from_utf8_lossy(&buf[..len as usize])
            ))
        }
        Op::ListXattr { path } => {
            let p = cpath(root, path);
            let mut buf = vec![0u8; 8192];
            // SAFETY: valid path and buffer.
            let len =
                check(unsafe { llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) } as _)?;
            let mut names: Vec<String> = buf[..len as usize]
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            names.sort();
            Ok(format!("ok {names:?}"))
        }
        _ => unreachable!("not an xattr op: {op:?}"),
    }
}

/// A directory's entries, sorted, directories marked "/" and symlinks "@".
fn list_dir(root: &Path, path: &str) -> Result<String, String> {
    let p = if path.is_empty() {
        root.to_path_buf()
    } else {
        root.join(path)
    };
    let rd = std::fs::read_dir(&p).map_err(|e| format!("err {}", common::io_errno_name(&e)))?;
    let mut names = Vec::new();
    for d in rd {
        let d = d.map_err(|e| format!("err {}", common::io_errno_name(&e)))?;
        let t = d
            .file_type()
            .map_err(|e| format!("err {}", common::io_errno_name(&e)))?;
        let k = if t.is_dir() {
            "/"
        } else if t.is_symlink() {
            "@"
        } else {
            ""
        };
        names.push(format!("{}{k}", d.file_name().to_string_lossy()));
    }
    names.sort();
    Ok(format!("ok {names:?}"))
}
