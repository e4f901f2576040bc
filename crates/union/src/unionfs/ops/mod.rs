//! Operations that change the union: copy-up, create, remove, rename, link, setattr,
//! xattrs, open. Each follows kernel overlayfs, including its errno.
mod attr;
mod copy_up;
mod create;
mod open;
mod remove;
mod rename;
mod xattr;

use super::{Found, LowerRef, Node, NodeState, ROOT, UnionFs, check_kind, enoent, split};
use crate::cow;
use crate::override_stat;
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
    /// Giving the new object this owner may fail without failing the creation
    /// (fuse-overlayfs' `squash_to_*`: the owner shown is made up anyway).
    pub owner_may_fail: bool,
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
    /// A failed chown is no error (fuse-overlayfs' `squash_to_*`: the owner shown is
    /// made up anyway).
    pub owner_may_fail: bool,
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
    pub(super) fn upper(&self) -> io::Result<RawFd> {
        self.layers.upper_fd()
    }

    pub(super) fn dir_path(&self, parent: u64) -> io::Result<(Arc<Node>, NodeState, OsString)> {
        let p = self.node(parent)?;
        if !p.is_dir {
            return Err(sys::errno(libc::ENOTDIR));
        }
        let st = p.snapshot();
        let path = self.path_of(parent)?;
        Ok((p, st, path))
    }

    /// Does some lower layer show an object at PARENT/NAME (ignoring the upper layer)?
    pub(super) fn lower_visible(
        &self,
        pst: &NodeState,
        ppath: &OsStr,
        name: &OsStr,
    ) -> io::Result<bool> {
        if pst.lowers.is_empty() {
            return Ok(false);
        }
        let mut lower_only = pst.clone();
        lower_only.upper = false;
        Ok(self.resolve(&lower_only, ppath, name)?.is_some())
    }

    /// The parent dir of a relative path and its last name (for callers outside).
    pub fn split_path(p: &OsStr) -> (&OsStr, &OsStr) {
        split(p)
    }
}
