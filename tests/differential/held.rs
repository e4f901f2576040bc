//! Descriptors held open across other ops (`Op::Hold` and the Held* ops): I/O through a
//! descriptor opened before a copy-up, rename or unlink must see what overlayfs shows.
use super::ops::Op;
use super::syscalls::{self as sys, check, data, describe_stat, ok, write_all};
use crate::common::tree;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) const HELD_SLOTS: usize = 3;

/// Descriptors kept open by `Op::Hold`, per mount point.
static HELD: std::sync::Mutex<BTreeMap<(PathBuf, u8), i32>> =
    std::sync::Mutex::new(BTreeMap::new());

fn held(root: &Path, slot: u8) -> Result<i32, String> {
    let h = HELD.lock().unwrap_or_else(|p| p.into_inner());
    h.get(&(root.to_path_buf(), slot))
        .copied()
        .ok_or_else(|| "no descriptor".to_string())
}

/// Closes every descriptor held under ROOT: before it is unmounted.
pub(crate) fn close_held(root: &Path) {
    let mut h = HELD.lock().unwrap_or_else(|p| p.into_inner());
    h.retain(|(r, _), fd| {
        if r == root {
            // SAFETY: the harness opened fd and owns it.
            unsafe { libc::close(*fd) };
            false
        } else {
            true
        }
    });
}

pub(crate) fn apply_held(root: &Path, op: &Op) -> Result<String, String> {
    use libc::*;
    match op {
        Op::Hold { slot, path, write } => {
            let fd = sys::open(root, path, if *write { O_RDWR } else { O_RDONLY }, 0)?;
            let mut h = HELD.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(old) = h.insert((root.to_path_buf(), *slot), fd) {
                // SAFETY: the harness owns the descriptor it replaces.
                unsafe { close(old) };
            }
            Ok("ok".into())
        }
        Op::HeldRead { slot } => {
            let fd = held(root, *slot)?;
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                // SAFETY: fd open, buf valid.
                let n = unsafe { pread(fd, buf.as_mut_ptr().cast(), buf.len(), out.len() as i64) };
                match check(n as _)? {
                    0 => break,
                    n => out.extend_from_slice(&buf[..n as usize]),
                }
            }
            Ok(format!("ok {}", tree::content_summary(&out)))
        }
        Op::HeldWrite {
            slot,
            off,
            len,
            seed,
        } => {
            let fd = held(root, *slot)?;
            write_all(fd, &data(*len, *seed), Some(*off as i64))?;
            Ok("ok".into())
        }
        Op::HeldStat { slot } => {
            let fd = held(root, *slot)?;
            // SAFETY: zeroed stat is a valid out-buffer; fd is open.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            check(unsafe { fstat(fd, &mut st) } as _)?;
            Ok(describe_stat(&st))
        }
        Op::HeldTruncate { slot, len } => {
            let fd = held(root, *slot)?;
            // SAFETY: fd is open.
            ok(unsafe { ftruncate(fd, *len as i64) })
        }
        Op::HeldClose { slot } => {
            let mut h = HELD.lock().unwrap_or_else(|p| p.into_inner());
            match h.remove(&(root.to_path_buf(), *slot)) {
                // SAFETY: the harness owns the descriptor.
                Some(fd) => ok(unsafe { close(fd) }),
                None => Err("no descriptor".into()),
            }
        }
        Op::HeldReaddir { slot } => held_readdir(held(root, *slot)?),
        _ => unreachable!("not a held-descriptor op: {op:?}"),
    }
}

/// Lists a held directory from its start (rewinddir on the same open directory).
fn held_readdir(fd: i32) -> Result<String, String> {
    use libc::*;
    // SAFETY: fd is open; lseek to 0 is rewinddir.
    check(unsafe { lseek(fd, 0, SEEK_SET) } as _)?;
    let mut names = Vec::new();
    let mut buf = vec![0u8; 32768];
    loop {
        // SAFETY: fd open, buf valid.
        let n = unsafe { syscall(SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) as isize };
        let n = check(n as _)? as usize;
        if n == 0 {
            break;
        }
        let mut off = 0;
        while off < n {
            // linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name = &buf[off + 19..off + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            let name = String::from_utf8_lossy(name).into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
            off += reclen;
        }
    }
    names.sort();
    Ok(format!("ok {names:?}"))
}
