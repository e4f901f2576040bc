//! Errors as replies: the errno, and the log of the unexpected ones.
use super::*;

impl UnionFuse {
    /// The errno for an error of operation OP on INO (and NAME): logged when it is not
    /// one the union gives by design (see `unexpected`), and at debug level always.
    pub(super) fn fail(&self, op: &str, ino: u64, name: Option<&OsStr>, e: &io::Error) -> Errno {
        let name = name.map(|n| format!(" {n:?}")).unwrap_or_default();
        if unexpected(e) {
            let path = self.fs.path_of(ino).unwrap_or_default();
            log::warn!("{op} ino {ino} (/{}){name}: {e}", path.to_string_lossy());
        } else {
            log::debug!("{op} ino {ino}{name}: {e}");
        }
        errno(e)
    }

    /// Answers a request that made NAME in PARENT (mknod, mkdir, symlink, link): the new
    /// entry, or the errno.
    pub(super) fn reply_made<N>(
        &self,
        made: io::Result<(N, Stat)>,
        op: &str,
        parent: u64,
        name: &OsStr,
        reply: ReplyEntry,
    ) {
        match made {
            Ok((_, st)) => reply.entry(&self.ttl, &self.attr_of(&st), Generation(0)),
            Err(e) => reply.error(self.fail(op, parent, Some(name), &e)),
        }
    }
}

/// An error no union operation gives by design: a bug, a broken layer, or a lost race.
pub(super) fn unexpected(e: &io::Error) -> bool {
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

pub(super) fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}
