//! fuse-overlayfs' stat override: a layer that keeps owners and modes in an xattr
//! `UID:GID:MODE[:TYPE]` on its files and dirs rather than in their inodes. Rootless
//! storage keeps owners it could not give so, and containers-storage writes it into the
//! layers it unpacks under `force_mask`. A layer uses it when its root dir carries one of
//! the three xattrs (that one names it on every object); the upper also when
//! `xattr_permissions=1|2` asks (see `Layers::open`).
use crate::sys::Stat;
use std::ffi::CStr;

/// Which xattr a layer keeps its owners and modes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideStat {
    /// `xattr_permissions=1` (root: users cannot forge it).
    Privileged,
    /// `xattr_permissions=2`, containers-storage's.
    Containers,
    /// fuse-overlayfs' own, for rootless uppers.
    User,
}

impl OverrideStat {
    /// In the order fuse-overlayfs looks for them on a layer's root.
    pub const ALL: [OverrideStat; 3] = [
        OverrideStat::Privileged,
        OverrideStat::Containers,
        OverrideStat::User,
    ];

    pub fn name(self) -> &'static CStr {
        match self {
            OverrideStat::Privileged => c"security.fuseoverlayfs.override_stat",
            OverrideStat::Containers => c"user.containers.override_stat",
            OverrideStat::User => c"user.fuseoverlayfs.override_stat",
        }
    }
}

/// Owner and mode an xattr gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits, and the type bits when the value names a type.
    pub mode: u32,
    pub rdev: Option<u64>,
}

/// Parses `UID:GID:MODE` (octal mode) with an optional `:TYPE` (`dir`, `file`,
/// `symlink`, `pipe`, `socket`, `block-MAJOR-MINOR`, `char-MAJOR-MINOR`).
pub fn parse(v: &[u8]) -> Option<Owner> {
    let s = std::str::from_utf8(v).ok()?.trim_end_matches('\0');
    let mut it = s.splitn(4, ':');
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let mut mode = u32::from_str_radix(it.next()?, 8).ok()? & 0o7777;
    let mut rdev = None;
    if let Some(t) = it.next() {
        let device = |rest: &str| -> Option<u64> {
            let (maj, min) = rest.trim_start_matches('-').split_once('-')?;
            Some(libc::makedev(maj.parse().ok()?, min.parse().ok()?))
        };
        mode |= match t {
            _ if t.starts_with("dir") => libc::S_IFDIR,
            _ if t.starts_with("file") => libc::S_IFREG,
            _ if t.starts_with("symlink") => libc::S_IFLNK,
            _ if t.starts_with("pipe") => libc::S_IFIFO,
            _ if t.starts_with("socket") => libc::S_IFSOCK,
            _ if t.starts_with("block") => {
                rdev = Some(device(&t[5..])?);
                libc::S_IFBLK
            }
            _ if t.starts_with("char") => {
                rdev = Some(device(&t[4..])?);
                libc::S_IFCHR
            }
            _ => return None,
        };
    }
    Some(Owner {
        uid,
        gid,
        mode,
        rdev,
    })
}

/// The value for UID, GID and MODE's permission bits, as fuse-overlayfs writes it.
pub fn format(uid: u32, gid: u32, mode: u32) -> String {
    format!("{uid}:{gid}:{:o}", mode & 0o7777)
}

/// Does this kind of object carry the override? Dirs and regular files only, as in
/// fuse-overlayfs (a symlink cannot hold a `user.` xattr).
pub fn applies(st: &Stat) -> bool {
    matches!(st.st_mode & libc::S_IFMT, libc::S_IFDIR | libc::S_IFREG)
}

/// ST as the override shows it.
pub fn apply(st: &mut Stat, o: &Owner) {
    st.st_uid = o.uid;
    st.st_gid = o.gid;
    st.st_mode = match o.mode & libc::S_IFMT {
        0 => st.st_mode & libc::S_IFMT | o.mode,
        _ => o.mode,
    };
    if let Some(r) = o.rdev {
        st.st_rdev = r;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_fuse_overlayfs_writes_and_reads_them() {
        let o = parse(b"1000:100:755").unwrap();
        assert_eq!((o.uid, o.gid, o.mode, o.rdev), (1000, 100, 0o755, None));
        assert_eq!(format(1000, 100, 0o100755), "1000:100:755");
        assert_eq!(parse(format(0, 0, 0o4711).as_bytes()).unwrap().mode, 0o4711);
        let c = parse(b"0:0:620:char-4-1").unwrap();
        assert_eq!(c.mode, libc::S_IFCHR | 0o620);
        assert_eq!(c.rdev, Some(libc::makedev(4, 1)));
        assert_eq!(parse(b"0:0:755:dir").unwrap().mode, libc::S_IFDIR | 0o755);
        for bad in [
            &b""[..],
            b"0:0",
            b"x:0:755",
            b"0:0:9",
            b"0:0:755:tape",
            b"0:0:1:char-4",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_type_stays_unless_the_value_names_one() {
        let mut st: Stat = unsafe { std::mem::zeroed() };
        st.st_mode = libc::S_IFREG | 0o600;
        apply(&mut st, &parse(b"5:6:4755").unwrap());
        assert_eq!(
            (st.st_uid, st.st_gid, st.st_mode),
            (5, 6, libc::S_IFREG | 0o4755)
        );
        apply(&mut st, &parse(b"0:0:644:pipe").unwrap());
        assert_eq!(st.st_mode, libc::S_IFIFO | 0o644);
    }
}
