//! On-disk formats of a union's layers.
//!
//! `overlay` is kernel overlayfs' format: a whiteout is a character device 0/0, an opaque
//! directory carries `overlay.opaque=y`, a renamed lower directory carries
//! `overlay.redirect`, a copied-up object `overlay.origin` (a file handle of the lower
//! object). The xattrs live in `trusted.` as root and in `user.` inside a user namespace
//! (the kernel's `userxattr`). `aufs` marks a whiteout with an empty file `.wh.NAME` and an
//! opaque directory with `.wh..wh..opq` inside it. Both are always read; one is written.
use crate::sys;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

pub const AUFS_PREFIX: &[u8] = b".wh.";
pub const AUFS_OPAQUE: &str = ".wh..wh..opq";
/// fuse-overlayfs' own xattrs (an origin path, an opaque mark where `trusted.` is denied).
pub const FUSE_OVERLAYFS_XATTRS: &str = "user.fuseoverlayfs.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Overlay,
    Aufs,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "overlay" => Ok(Format::Overlay),
            "aufs" => Ok(Format::Aufs),
            _ => Err(format!("unknown format {s:?} (expected overlay or aufs)")),
        }
    }
}

/// Names of the private overlay xattrs in the namespace this mount uses.
#[derive(Debug, Clone)]
pub struct XattrNames {
    pub prefix: &'static str,
    pub opaque: CString,
    pub redirect: CString,
    pub origin: CString,
    pub nlink: CString,
    pub impure: CString,
    /// A regular file copied up for its metadata only: its data is still in a lower layer
    /// (the kernel's `metacopy=on`; empty, or a digest for fs-verity).
    pub metacopy: CString,
    /// Marks a character device 0/0 made through the union as a device, not a whiteout
    /// (ours alone: overlayfs refuses to make one at all).
    pub device: CString,
    /// The other namespace's names, read where this one has none (`reading_both`).
    also: Option<Box<XattrNames>>,
    /// Another union's private prefix (`hiding`): never shown, read or written.
    foreign: Option<&'static str>,
    /// `security.*` xattrs are kept as `user.containers.override_security.*` (and the real
    /// ones hidden), as fuse-overlayfs keeps them in containers-storage's override mode:
    /// a rootless daemon cannot write the real ones.
    security_in_user: bool,
}

/// Where `security_in_user` keeps `security.NAME`: this prefix, then the name.
const SECURITY_IN_USER: &[u8] = b"user.containers.override_";

impl XattrNames {
    pub fn new(user_ns: bool) -> Self {
        let prefix = if user_ns {
            "user.overlay."
        } else {
            "trusted.overlay."
        };
        let n = |s: &str| CString::new(format!("{prefix}{s}")).unwrap();
        XattrNames {
            prefix,
            opaque: n("opaque"),
            redirect: n("redirect"),
            origin: n("origin"),
            nlink: n("nlink"),
            impure: n("impure"),
            metacopy: n("metacopy"),
            device: n("unionctl.device"),
            also: None,
            foreign: None,
            security_in_user: false,
        }
    }

    /// These names, with `security.*` xattrs kept as `user.containers.override_security.*`.
    pub fn keeping_security_in_user(self) -> Self {
        XattrNames {
            security_in_user: true,
            ..self
        }
    }

    /// These names, with PREFIX (another union's private xattrs) hidden as well: listing
    /// leaves them out, reading finds nothing, writing is refused (as that union does).
    pub fn hiding(self, prefix: &'static str) -> Self {
        XattrNames {
            foreign: Some(prefix),
            ..self
        }
    }

    /// Is NAME (as seen through the union) one of another union's private xattrs?
    pub fn is_foreign(&self, name: &[u8]) -> bool {
        self.foreign.is_some_and(|f| name.starts_with(f.as_bytes()))
    }

    /// Names for reading layers that either kind of union wrote (an offline view: a
    /// rootless union writes `user.overlay.*`, one run as root `trusted.overlay.*`):
    /// `user_ns`'s namespace first, then the other one.
    pub fn reading_both(user_ns: bool) -> Self {
        XattrNames {
            also: Some(Box::new(XattrNames::new(!user_ns))),
            ..XattrNames::new(user_ns)
        }
    }

    /// Reads the overlay xattr `pick` names from `p` under a layer dir fd, in this
    /// namespace and then in the other one where both are read; missing means None.
    pub fn read(
        &self,
        dir: RawFd,
        p: &OsStr,
        pick: fn(&XattrNames) -> &CString,
    ) -> io::Result<Option<Vec<u8>>> {
        match (get(dir, p, pick(self))?, &self.also) {
            (None, Some(other)) => other.read(dir, p, pick),
            (v, _) => Ok(v),
        }
    }

    /// True for real xattr names that belong to the union itself (its own prefix, except
    /// the escaped `PREFIX overlay.*` names that hold a user's own xattrs of that prefix).
    pub fn is_private(&self, real: &[u8]) -> bool {
        let p = self.prefix.as_bytes();
        (real.starts_with(p) && !real[p.len()..].starts_with(b"overlay.")) || self.is_foreign(real)
    }

    /// The real name under which an xattr NAME seen through the union is stored: names of
    /// the union's own prefix are escaped with one more `overlay.` (as overlayfs does).
    pub fn to_real(&self, name: &CStr) -> CString {
        let p = self.prefix.as_bytes();
        let b = name.to_bytes();
        if self.security_in_user && b.starts_with(b"security.") {
            return CString::new([SECURITY_IN_USER, b].concat())
                .unwrap_or_else(|_| name.to_owned());
        }
        match b.strip_prefix(p) {
            Some(rest) => {
                let mut v = p.to_vec();
                v.extend_from_slice(b"overlay.");
                v.extend_from_slice(rest);
                CString::new(v).unwrap_or_else(|_| name.to_owned())
            }
            None => name.to_owned(),
        }
    }

    /// The name shown through the union for a real xattr name; None hides it.
    pub fn from_real(&self, real: &CStr) -> Option<CString> {
        let p = self.prefix.as_bytes();
        let b = real.to_bytes();
        if self.is_foreign(b) {
            return None;
        }
        if self.security_in_user {
            if b.starts_with(b"security.") {
                return None;
            }
            if let Some(s) = b
                .strip_prefix(SECURITY_IN_USER)
                .filter(|s| s.starts_with(b"security."))
            {
                return CString::new(s).ok();
            }
        }
        match b.strip_prefix(p) {
            Some(rest) => rest.strip_prefix(b"overlay.").map(|r| {
                let mut v = p.to_vec();
                v.extend_from_slice(r);
                CString::new(v).unwrap()
            }),
            None => Some(real.to_owned()),
        }
    }
}

/// `.wh.NAME` for an aufs whiteout of NAME.
pub fn aufs_whiteout_name(name: &OsStr) -> OsString {
    let mut v = AUFS_PREFIX.to_vec();
    v.extend_from_slice(name.as_bytes());
    OsStr::from_bytes(&v).to_owned()
}

/// Names that are format metadata and never listed through the union.
pub fn is_aufs_meta(name: &OsStr) -> bool {
    name.as_bytes().starts_with(AUFS_PREFIX)
}

/// The name an aufs whiteout file hides, if `name` is one (not the opaque marker).
pub fn aufs_hidden_name(name: &OsStr) -> Option<&OsStr> {
    let b = name.as_bytes();
    if b.starts_with(AUFS_PREFIX) && name != AUFS_OPAQUE {
        Some(OsStr::from_bytes(&b[AUFS_PREFIX.len()..]))
    } else {
        None
    }
}

/// A directory's redirect: where its lower directories are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// Path from the layer roots (stored with a leading '/').
    Absolute(OsString),
    /// A name in the parent's lower directories.
    Relative(OsString),
}

impl Redirect {
    /// A redirect as overlayfs takes it; None for one it refuses (see `read`).
    pub fn parse(v: &[u8]) -> Option<Redirect> {
        Redirect::read(v).ok()
    }

    /// A redirect as overlayfs follows it: EINVAL for one it refuses (empty, an empty
    /// component, a relative one with a '/'), EACCES for a `.` or `..` component (its
    /// lookup_one_len refuses them: they would lead out of the layer).
    pub fn read(v: &[u8]) -> io::Result<Redirect> {
        let v = v.strip_suffix(b"\0").unwrap_or(v);
        let check = |c: &[u8]| match c {
            b"" => Err(io::Error::from_raw_os_error(libc::EINVAL)),
            b"." | b".." => Err(io::Error::from_raw_os_error(libc::EACCES)),
            _ => Ok(()),
        };
        if let Some(rest) = v.strip_prefix(b"/") {
            let rest = rest.trim_ascii_end();
            rest.split(|&b| b == b'/').try_for_each(check)?;
            Ok(Redirect::Absolute(OsStr::from_bytes(rest).to_owned()))
        } else if v.contains(&b'/') {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        } else {
            check(v)?;
            Ok(Redirect::Relative(OsStr::from_bytes(v).to_owned()))
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Redirect::Absolute(p) => {
                let mut v = b"/".to_vec();
                v.extend_from_slice(p.as_bytes());
                v
            }
            Redirect::Relative(n) => n.as_bytes().to_vec(),
        }
    }
}

/// Reads one overlay xattr of `p` under a layer dir fd; missing means None.
pub fn get(dir: RawFd, p: &OsStr, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    match sys::lgetxattr(dir, p, name) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => Ok(None),
        r => r,
    }
}

/// Is directory `p` opaque? The xattr always counts; the aufs marker file only where
/// `markers` says this layer may hold aufs-format metadata.
pub fn is_opaque_dir(dir: RawFd, p: &OsStr, x: &XattrNames, markers: bool) -> io::Result<bool> {
    if let Some(v) = x.read(dir, p, |n| &n.opaque)?
        && v.first() == Some(&b'y')
    {
        return Ok(true);
    }
    if !markers {
        return Ok(false);
    }
    let marker = join(p, OsStr::new(AUFS_OPAQUE));
    Ok(sys::lstat_opt(dir, &marker)?.is_some())
}

/// Is the missing NAME whited out by an aufs `.wh.NAME` marker inside directory `parent`
/// of a layer? (A char 0/0 whiteout stands at NAME itself: its stat tells.)
pub fn is_whiteout(dir: RawFd, parent: &OsStr, name: &OsStr, markers: bool) -> io::Result<bool> {
    if !markers || name.len() + AUFS_PREFIX.len() > 255 {
        return Ok(false); // no marker can exist for so long a name
    }
    let wh = join(parent, &aufs_whiteout_name(name));
    Ok(sys::lstat_opt(dir, &wh)?.is_some())
}

/// Joins a relative path and a name ("" is the layer root).
pub fn join(parent: &OsStr, name: &OsStr) -> OsString {
    if parent.is_empty() {
        return name.to_owned();
    }
    let mut v = parent.as_bytes().to_vec();
    v.push(b'/');
    v.extend_from_slice(name.as_bytes());
    OsStr::from_bytes(&v).to_owned()
}

/// Kernel overlayfs' file handle of a lower object (`struct ovl_fb`): what
/// `overlay.origin` holds and what the index dir names entries by (in hex).
pub mod fh {
    use std::ffi::OsStr;
    use std::io;
    use std::os::fd::RawFd;

    pub const FB_VERSION: u8 = 0;
    pub const FB_MAGIC: u8 = 0xfb;
    /// sizeof(struct ovl_fb) without the fid.
    pub const FB_HEADER: usize = 21;

    /// Encodes `ovl_fb` from a raw handle type, fid bytes and the file system uuid.
    pub fn encode(handle_type: i32, fid: &[u8], uuid: &[u8; 16]) -> Vec<u8> {
        let mut v = Vec::with_capacity(FB_HEADER + fid.len());
        v.push(FB_VERSION);
        v.push(FB_MAGIC);
        v.push((FB_HEADER + fid.len()) as u8);
        v.push(if cfg!(target_endian = "big") { 1 } else { 0 });
        v.push(handle_type as u8);
        v.extend_from_slice(uuid);
        v.extend_from_slice(fid);
        v
    }

    /// The inode number inside a handle, for the handle types that carry a plain one
    /// (FILEID_INO32_GEN and FILEID_INO32_GEN_PARENT: ext2/3/4 and others).
    pub fn inode_number(fb: &[u8]) -> Option<u64> {
        if fb.len() < FB_HEADER + 4 || fb[0] != FB_VERSION || fb[1] != FB_MAGIC {
            return None;
        }
        match fb[4] {
            1 | 2 => {
                let b = &fb[FB_HEADER..FB_HEADER + 4];
                Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as u64)
            }
            _ => None,
        }
    }

    /// name_to_handle_at() of `p` under `dir`: (handle type, fid bytes).
    pub fn name_to_handle(dir: RawFd, p: &OsStr) -> io::Result<(i32, Vec<u8>)> {
        #[repr(C)]
        struct Handle {
            bytes: u32,
            handle_type: i32,
            f_handle: [u8; 128],
        }
        let c = crate::sys::rel(p)?;
        let mut h = Handle {
            bytes: 128,
            handle_type: 0,
            f_handle: [0; 128],
        };
        let mut mount_id: libc::c_int = 0;
        let flags = if p.is_empty() { libc::AT_EMPTY_PATH } else { 0 };
        let cp = if p.is_empty() {
            c"".as_ptr()
        } else {
            c.as_ptr()
        };
        let r = unsafe {
            libc::syscall(
                libc::SYS_name_to_handle_at,
                dir,
                cp,
                &mut h as *mut Handle,
                &mut mount_id,
                flags,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((h.handle_type, h.f_handle[..h.bytes as usize].to_vec()))
    }

    /// The file system uuid (FS_IOC_GETFSUUID); zeros when the file system has none.
    pub fn fs_uuid(fd: RawFd) -> [u8; 16] {
        #[repr(C)]
        struct FsUuid2 {
            len: u8,
            uuid: [u8; 16],
        }
        let mut u = FsUuid2 {
            len: 0,
            uuid: [0; 16],
        };
        // _IOR(0x15, 0, struct fsuuid2)
        let req: libc::c_ulong =
            (2 << 30) | ((std::mem::size_of::<FsUuid2>() as libc::c_ulong) << 16) | (0x15 << 8);
        let r = unsafe { libc::ioctl(fd, req as _, &mut u as *mut FsUuid2) };
        if r < 0 || u.len != 16 {
            [0; 16]
        } else {
            u.uuid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aufs_names() {
        assert_eq!(aufs_whiteout_name(OsStr::new("a")), OsStr::new(".wh.a"));
        assert_eq!(aufs_hidden_name(OsStr::new(".wh.a")), Some(OsStr::new("a")));
        assert_eq!(aufs_hidden_name(OsStr::new(AUFS_OPAQUE)), None);
        assert_eq!(aufs_hidden_name(OsStr::new("a")), None);
        assert!(is_aufs_meta(OsStr::new(".wh..wh..opq")));
    }

    #[test]
    fn redirect_forms() {
        assert_eq!(
            Redirect::parse(b"/a/b"),
            Some(Redirect::Absolute("a/b".into()))
        );
        assert_eq!(Redirect::parse(b"x"), Some(Redirect::Relative("x".into())));
        assert_eq!(Redirect::parse(b"x/y"), None);
        assert_eq!(Redirect::parse(b""), None);
        // Nothing that leads out of a layer, no empty components (the kernel's EINVAL).
        for (bad, errno) in [
            (&b".."[..], libc::EACCES),
            (b".", libc::EACCES),
            (b"/../../etc", libc::EACCES),
            (b"/a/./b", libc::EACCES),
            (b"/a//b", libc::EINVAL),
            (b"/", libc::EINVAL),
            (b"", libc::EINVAL),
            (b"x/y", libc::EINVAL),
        ] {
            let e = Redirect::read(bad).unwrap_err();
            assert_eq!(
                e.raw_os_error(),
                Some(errno),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let r = Redirect::Absolute("a/b".into());
        assert_eq!(Redirect::parse(&r.encode()), Some(r));
    }

    #[test]
    fn xattr_privacy() {
        let x = XattrNames::new(false);
        assert_eq!(x.opaque.to_bytes(), b"trusted.overlay.opaque");
        assert!(x.is_private(b"trusted.overlay.redirect"));
        assert!(!x.is_private(b"trusted.overlay.overlay.redirect"));
        assert!(!x.is_private(b"user.overlay.redirect"));
        assert!(!x.is_private(b"user.foo"));
        let esc = x.to_real(c"trusted.overlay.opaque");
        assert_eq!(esc.to_bytes(), b"trusted.overlay.overlay.opaque");
        assert_eq!(
            x.from_real(&esc).unwrap().to_bytes(),
            b"trusted.overlay.opaque"
        );
        assert_eq!(x.from_real(c"trusted.overlay.opaque"), None);
        assert_eq!(x.from_real(c"user.a").unwrap().to_bytes(), b"user.a");
        assert_eq!(
            XattrNames::new(true).origin.to_bytes(),
            b"user.overlay.origin"
        );
    }

    #[test]
    fn file_handle_layout() {
        let fid = [7u8, 0, 0, 0, 9, 0, 0, 0];
        let fb = fh::encode(1, &fid, &[0xab; 16]);
        assert_eq!(fb.len(), 29);
        assert_eq!(&fb[..5], &[0, 0xfb, 29, 0, 1]);
        assert_eq!(fh::inode_number(&fb), Some(7));
        assert_eq!(fh::inode_number(&fh::encode(0x81, &fid, &[0; 16])), None);
    }
}
