//! The file operations a sequence is made of, as data: each one is applied to both
//! mounts (`apply`), shown in reports with `Debug`, and replayed when shrinking.

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Write {
        path: String,
        len: usize,
        seed: u64,
    },
    Append {
        path: String,
        len: usize,
        seed: u64,
    },
    Pwrite {
        path: String,
        off: u64,
        len: usize,
        seed: u64,
    },
    Truncate {
        path: String,
        len: u64,
    },
    Read {
        path: String,
    },
    CreateExcl {
        path: String,
        mode: Mode,
    },
    Unlink {
        path: String,
    },
    Mkdir {
        path: String,
        mode: Mode,
    },
    Rmdir {
        path: String,
    },
    Rename {
        from: String,
        to: String,
        flags: RenameFlags,
    },
    Link {
        from: String,
        to: String,
    },
    Symlink {
        target: String,
        path: String,
    },
    Readlink {
        path: String,
    },
    Chmod {
        path: String,
        mode: Mode,
    },
    Chown {
        path: String,
        uid: u32,
        gid: u32,
        nofollow: bool,
    },
    Utimens {
        path: String,
        atime: Option<(i64, i64)>,
        mtime: Option<(i64, i64)>,
        nofollow: bool,
    },
    SetXattr {
        path: String,
        name: String,
        value: String,
        flags: XattrFlags,
        nofollow: bool,
    },
    RemoveXattr {
        path: String,
        name: String,
    },
    GetXattr {
        path: String,
        name: String,
    },
    ListXattr {
        path: String,
    },
    Readdir {
        path: String,
    },
    Lstat {
        path: String,
    },
    Stat {
        path: String,
    },
    Mknod {
        path: String,
        node: Node,
    },
    Fallocate {
        path: String,
        off: u64,
        len: u64,
        how: Falloc,
    },
    Seek {
        path: String,
        off: u64,
        hole: bool,
    },
    Access {
        path: String,
        mode: i32,
    },
    OpenTrunc {
        path: String,
    },
    /// Opens PATH and keeps the descriptor in SLOT (closing what was there) for the
    /// Held* ops: I/O through a descriptor opened before a copy-up, rename or unlink.
    Hold {
        slot: u8,
        path: String,
        write: bool,
    },
    HeldRead {
        slot: u8,
    },
    HeldWrite {
        slot: u8,
        off: u64,
        len: usize,
        seed: u64,
    },
    HeldStat {
        slot: u8,
    },
    HeldTruncate {
        slot: u8,
        len: u64,
    },
    HeldClose {
        slot: u8,
    },
    /// Lists a held directory from its start (rewinddir on the same open directory).
    HeldReaddir {
        slot: u8,
    },
    /// Not a file operation but a step of a sequence with rotated layers (run by the
    /// runner and the shrinker, never applied to a mount): both sides unmount, each upper
    /// becomes its own top lower layer, and a fresh empty upper + work dir are mounted
    /// over them, as an image commit stacks a container's changes.
    Rotate,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Node {
    Fifo,
    Socket,
    /// char 1:3, as /dev/null
    CharDevice,
    /// char 0:0, which overlayfs keeps for whiteouts
    Whiteout,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Falloc {
    Allocate,
    KeepSize,
    PunchHole,
}

impl Op {
    /// Whether the op may change the tree (so that a different outcome makes both sides
    /// diverge from there on).
    pub(crate) fn changes_state(&self) -> bool {
        !matches!(
            self,
            Op::Read { .. }
                | Op::Readlink { .. }
                | Op::GetXattr { .. }
                | Op::ListXattr { .. }
                | Op::Readdir { .. }
                | Op::Lstat { .. }
                | Op::Seek { .. }
                | Op::Access { .. }
                | Op::Stat { .. }
                | Op::Hold { write: false, .. }
                | Op::HeldRead { .. }
                | Op::HeldStat { .. }
                | Op::HeldClose { .. }
                | Op::HeldReaddir { .. }
        )
    }
}

/// A file mode, shown in octal in reports.
#[derive(Clone, Copy)]
pub(crate) struct Mode(pub(crate) u32);

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0o{:o}", self.0)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum RenameFlags {
    Plain,
    NoReplace,
    Exchange,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum XattrFlags {
    Any,
    Create,
    Replace,
}
