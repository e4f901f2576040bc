//! The system calls behind the ops, each result as text ("ok ...", "err ENOENT") so both
//! mounts' results compare as strings.
use crate::common::errno_name;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(crate) fn data(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.rotate_left((i % 64) as u32) as u8) ^ (i as u8))
        .collect()
}

pub(crate) fn cpath(root: &Path, rel: &str) -> CString {
    let p = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub(crate) fn errno() -> String {
    errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// -1 -> "err ENOENT"; otherwise the value.
pub(crate) fn check(r: libc::c_long) -> Result<libc::c_long, String> {
    if r < 0 {
        Err(format!("err {}", errno()))
    } else {
        Ok(r)
    }
}

pub(crate) fn open(root: &Path, rel: &str, flags: i32, mode: u32) -> Result<i32, String> {
    let p = cpath(root, rel);
    // SAFETY: valid path; O_NONBLOCK so a fifo never blocks the harness.
    check(unsafe { libc::open(p.as_ptr(), flags | libc::O_NONBLOCK | libc::O_CLOEXEC, mode) } as _)
        .map(|fd| fd as i32)
}

pub(crate) fn write_all(fd: i32, buf: &[u8], mut off: Option<i64>) -> Result<(), String> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &buf[done..];
        // SAFETY: fd is open and rest is a valid buffer.
        let n = unsafe {
            match off {
                Some(o) => libc::pwrite(fd, rest.as_ptr().cast(), rest.len(), o),
                None => libc::write(fd, rest.as_ptr().cast(), rest.len()),
            }
        };
        let n = check(n as _)? as usize;
        if n == 0 {
            return Err("err short write".into());
        }
        done += n;
        off = off.map(|o| o + n as i64);
    }
    Ok(())
}

pub(crate) fn close(fd: i32) -> Result<(), String> {
    // SAFETY: fd was returned by open and is closed once.
    check(unsafe { libc::close(fd) } as _).map(|_| ())
}

pub(crate) fn write_op(
    root: &Path,
    path: &str,
    flags: i32,
    buf: &[u8],
    off: Option<i64>,
) -> Result<String, String> {
    let fd = open(root, path, flags, 0o644)?;
    let r = write_all(fd, buf, off);
    let c = close(fd);
    r?;
    c?;
    Ok("ok".into())
}

pub(crate) fn stat_desc(root: &Path, rel: &str, follow: bool) -> Result<String, String> {
    let p = cpath(root, rel);
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    let r = unsafe {
        if follow {
            libc::stat(p.as_ptr(), &mut st)
        } else {
            libc::lstat(p.as_ptr(), &mut st)
        }
    };
    check(r as _)?;
    Ok(describe_stat(&st))
}

pub(crate) fn describe_stat(st: &libc::stat) -> String {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFREG => 'f',
        libc::S_IFLNK => 'l',
        libc::S_IFIFO => 'p',
        libc::S_IFCHR => 'c',
        libc::S_IFSOCK => 's',
        _ => 'b',
    };
    format!(
        "ok {kind} {:o} size={} nlink={} {}:{} blocks>0={} sparse={} rdev={:x}",
        st.st_mode & 0o7777,
        st.st_size,
        st.st_nlink,
        st.st_uid,
        st.st_gid,
        st.st_blocks > 0,
        // Copy-up must keep holes: fewer bytes allocated than the size says.
        kind == 'f' && st.st_blocks * 512 < st.st_size,
        st.st_rdev
    )
}

/// A call that returns 0 or -1: "ok" or its errno.
pub(crate) fn ok(r: libc::c_int) -> Result<String, String> {
    check(r as _).map(|_| "ok".to_string())
}
