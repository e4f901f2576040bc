//! The layers of one union: an optional writable upper with its work dir, and read-only
//! lowers (index 0 is the top lower). Validation happens here, before anything is mounted.
use crate::errors::io_cause;
use crate::override_stat::OverrideStat;
use crate::sys;
use crate::whiteout::{Format, XattrNames};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Name of the temp dir inside the work dir, and of the hard-link index (kernel layout).
pub const WORK_TMP: &str = "work";
pub const WORK_INDEX: &str = "index";

pub struct Layer {
    pub path: PathBuf,
    pub fd: OwnedFd,
    pub dev: u64,
    /// Index among the distinct devices of the union (for inode number spaces).
    pub dev_slot: u64,
    pub uuid: [u8; 16],
    /// The xattr this layer keeps owners and modes in (fuse-overlayfs' stat override).
    pub override_stat: Option<OverrideStat>,
}

impl Layer {
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

pub struct Layers {
    pub upper: Option<Layer>,
    /// The work dir's `work/` subdir (temp files) and `index/` subdir.
    pub work: Option<OwnedFd>,
    pub index: Option<OwnedFd>,
    /// The upper and work dirs, locked as in use for the life of the mount.
    pub in_use: Vec<OwnedFd>,
    /// Top first; the last `data_only` of them are data-only layers.
    pub lowers: Vec<Layer>,
    /// Data-only lower layers (the kernel's `datadir+`, `lowerdir=A::DATA`): not part of
    /// the merged tree, only read as the data of metacopy files by absolute redirect.
    pub data_only: usize,
    pub format: Format,
    pub xattr: XattrNames,
    /// All layers on one device: inode numbers are used as they are.
    pub single_dev: bool,
    /// The upper dir is read in both formats, as lower layers are: its format is not known
    /// (an offline view of a container's upper), or it is fuse-overlayfs' (`fuse_overlayfs`).
    pub upper_both: bool,
    /// A renamed directory with lower content gets a redirect (the kernel's
    /// `redirect_dir=on`); without, such a rename fails with EXDEV (`redirect_dir=off`).
    pub create_redirects: bool,
}

/// Layer dirs read without a mount (`Layers::open_offline`).
#[derive(Debug, Clone, Default)]
pub struct OfflineSpec {
    pub upper: Option<PathBuf>,
    /// The upper's hard-link index (`WORK/index`).
    pub index: Option<PathBuf>,
    /// Top first.
    pub lowers: Vec<PathBuf>,
    /// The upper's format; None: unknown, read both.
    pub format: Option<Format>,
    /// `user.overlay.*` xattrs (a union mounted in a user namespace) read first, before
    /// `trusted.overlay.*` (both are read: a view reads what either kind of union wrote).
    pub user_xattr: bool,
}

/// What the user asked for, before validation.
#[derive(Debug, Clone)]
pub struct LayerSpec {
    pub lowers: Vec<PathBuf>,
    /// Data-only lower layers, after (below) `lowers`.
    pub data_lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    pub format: Format,
    pub user_xattr: bool,
    /// The kernel's `volatile`: the work dir gets the marker that makes every later
    /// mount of this upper refuse it (see `VOLATILE_MARK`).
    pub volatile: bool,
    /// The kernel's `redirect_dir=off` (or `follow`): existing redirects are followed, none
    /// is made.
    pub no_redirects: bool,
    /// Read the layers as fuse-overlayfs does, so its drop-in serves what it left: the
    /// upper's `.wh.` files are markers too (it puts `.wh..wh..opq` in every dir it makes
    /// opaque, and `.wh.NAME` where it cannot make a device), and its own xattrs
    /// (`user.fuseoverlayfs.*`) are private.
    pub fuse_overlayfs: bool,
    /// fuse-overlayfs' `xattr_permissions=1|2` (0: off): the upper keeps the owners and
    /// modes shown in an xattr (see `override_stat`), not in its inodes.
    pub xattr_permissions: u8,
}

/// The kernel's marker of a `volatile` mount, inside the work dir's `work/`: a later
/// mount of the upper refuses it, since writes that were never synced may be lost.
/// `incompat/NAME` is the kernel's place for features an older mount must not ignore.
pub const WORK_INCOMPAT: &str = "incompat";
pub const VOLATILE_MARK: [&str; 2] = ["volatile", "dirty"];

#[derive(Debug, thiserror::Error)]
#[error("{}", path_and_cause(.path, .cause))]
pub struct SpecError {
    /// Empty when no one path is at fault (no lower layer given).
    pub path: String,
    pub cause: String,
}

fn path_and_cause(path: &str, cause: &str) -> String {
    match path {
        "" => cause.to_string(),
        p => format!("{p}: {cause}"),
    }
}

fn err(path: &Path, cause: impl Into<String>) -> SpecError {
    SpecError {
        path: path.display().to_string(),
        cause: cause.into(),
    }
}

/// Default work dir: `.NAME.work` beside the upper dir.
pub fn default_work(upper: &Path) -> PathBuf {
    let name = upper
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upper".into());
    upper
        .parent()
        .unwrap_or(Path::new("/"))
        .join(format!(".{name}.work"))
}

fn canonical_dir(p: &Path, what: &str) -> Result<PathBuf, SpecError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: io::Error| err(p, format!("{what}: {}", io_cause(&e)));
    // The kernel names an open dir in one readlink; realpath(3) reads a link per path
    // component (a hundred layers cost a thousand system calls).
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(p)
        .map_err(fail)?;
    match std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())) {
        Ok(c) if c.is_absolute() => Ok(c),
        // No /proc here (or an unreachable path): the long way.
        _ => std::fs::canonicalize(p).map_err(fail),
    }
}

fn nested(a: &Path, b: &Path) -> bool {
    inside(a, b) || inside(b, a)
}

/// Whether canonical path A is B or under it, compared as bytes (Path::starts_with
/// parses both paths into components: a hundred layers made that most of a mount).
fn inside(a: &Path, b: &Path) -> bool {
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    a.starts_with(b) && (a.len() == b.len() || b.ends_with(b"/") || a[b.len()] == b'/')
}

/// Checks the paths without changing anything; returns canonical paths and the work dir.
/// Validated layer paths: canonical lowers, and (upper, work) when writable.
pub type Validated = (Vec<PathBuf>, Option<(PathBuf, PathBuf)>);

pub fn validate(spec: &LayerSpec) -> Result<Validated, SpecError> {
    if spec.lowers.is_empty() {
        return Err(err(Path::new(""), "at least one lower layer is needed"));
    }
    let mut lowers: Vec<PathBuf> = Vec::new();
    // Data-only lowers are layers too: the same refusals hold for them.
    let given: Vec<(&PathBuf, &str)> = (spec.lowers.iter().map(|l| (l, "lower layer")))
        .chain(
            spec.data_lowers
                .iter()
                .map(|l| (l, "data-only lower layer")),
        )
        .collect();
    for &(l, what) in &given {
        if l.as_os_str().is_empty() {
            return Err(err(l, format!("empty {what} path")));
        }
        let c = canonical_dir(l, what)?;
        // The kernel's refusals, in its words (it answers ELOOP).
        if let Some(other) = lowers.iter().find(|o| o.as_os_str() == c.as_os_str()) {
            return Err(err(
                l,
                format!(
                    "conflicting lowerdir path: {} is a lower layer twice",
                    other.display()
                ),
            ));
        }
        if let Some(other) = lowers.iter().find(|o| nested(o, &c)) {
            return Err(err(
                l,
                format!(
                    "overlapping lowerdir path: inside lower layer {} or containing it",
                    other.display()
                ),
            ));
        }
        lowers.push(c);
    }
    let Some(upper) = &spec.upper else {
        if let Some(w) = &spec.work {
            return Err(err(w, "work dir given without an upper layer"));
        }
        return Ok((lowers, None));
    };
    let upper = canonical_dir(upper, "upper layer")?;
    for (l, &(given, _)) in lowers.iter().zip(&given) {
        if *l == upper {
            return Err(err(
                given,
                "conflicting lowerdir path: the upper layer is also a lower layer",
            ));
        }
        if inside(l, &upper) {
            return Err(err(
                given,
                format!(
                    "overlapping lowerdir path: inside the upper layer {}",
                    upper.display()
                ),
            ));
        }
        if nested(&upper, l) {
            return Err(err(
                &upper,
                format!("upper layer overlaps lower layer {}", l.display()),
            ));
        }
    }
    let work = spec.work.clone().unwrap_or_else(|| default_work(&upper));
    let work_abs = if work.exists() {
        canonical_dir(&work, "work dir")?
    } else {
        let parent = work
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        canonical_dir(parent, "parent of work dir")?
            .join(work.file_name().unwrap_or(OsStr::new("work")))
    };
    if nested(&work_abs, &upper) {
        return Err(err(
            &work,
            "work dir must not be inside the upper layer (or contain it)",
        ));
    }
    for l in &lowers {
        if nested(&work_abs, l) {
            return Err(err(
                &work,
                format!("work dir overlaps lower layer {}", l.display()),
            ));
        }
    }
    let up_dev = std::fs::metadata(&upper)
        .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
        .unwrap_or(0);
    let probe = if work_abs.exists() {
        work_abs.clone()
    } else {
        work_abs.parent().unwrap().to_path_buf()
    };
    let work_dev = std::fs::metadata(&probe)
        .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
        .unwrap_or(1);
    if up_dev != work_dev {
        return Err(err(
            &work,
            format!(
                "work dir is on another file system than the upper layer {}",
                upper.display()
            ),
        ));
    }
    Ok((lowers, Some((upper, work_abs))))
}

/// Leaves `WORK/work` empty, private and ours: leftovers of a crashed copy-up go. A dir
/// that is private and ours already is emptied and kept; replacing it (rmdir, mkdir)
/// would cost two journalled metadata writes on every mount.
fn reset_work_tmp(wfd: RawFd, wk: &Path) -> Result<(), SpecError> {
    let tmp = OsStr::new(WORK_TMP);
    let path = wk.join(WORK_TMP);
    let clean = |e: io::Error| err(&path, format!("cannot clean work dir: {}", io_cause(&e)));
    let euid = unsafe { libc::geteuid() };
    let ours = sys::lstat_opt(wfd, tmp)
        .map_err(clean)?
        .is_some_and(|st| sys::is_dir(&st) && st.st_mode & 0o7777 == 0o700 && st.st_uid == euid);
    if ours {
        for (name, _, _) in sys::read_dir_names(wfd, tmp).map_err(clean)? {
            crate::cow::remove_tree(wfd, &crate::whiteout::join(tmp, &name)).map_err(clean)?;
        }
        return Ok(());
    }
    crate::cow::remove_tree(wfd, tmp).map_err(clean)?;
    sys::mkdirat(wfd, tmp, 0o700).map_err(|e| err(&path, io_cause(&e)))
}

/// Refuses a work dir whose `work/incompat/` names a feature, as the kernel does: the
/// upper of a `volatile` mount may have lost writes, and only the user can tell it did not
/// (by removing the marker).
fn refuse_incompat(work: &Path) -> Result<(), SpecError> {
    let dir = work.join(WORK_TMP).join(WORK_INCOMPAT);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(&dir, io_cause(&e))),
    };
    if let Some(feature) = entries.flatten().next() {
        let name = feature.file_name();
        return Err(err(
            work,
            format!(
                "overlay with incompat feature '{}' cannot be mounted (its upper layer may \
                 have lost writes; remove {} to mount it anyway)",
                name.to_string_lossy(),
                dir.join(&name).display()
            ),
        ));
    }
    Ok(())
}

/// Writes the kernel's volatile marker (`work/incompat/volatile/dirty`, mode 0 as the
/// kernel makes it) into a fresh `work/`. A plain user's dirs stay 0700: without
/// CAP_DAC_OVERRIDE they could not read or remove the marker.
fn mark_volatile(tmp: &Path) -> Result<(), SpecError> {
    let incompat = tmp.join(WORK_INCOMPAT);
    let volatile = incompat.join(VOLATILE_MARK[0]);
    let dirty = volatile.join(VOLATILE_MARK[1]);
    let made = std::fs::DirBuilder::new()
        .create(&incompat)
        .and_then(|()| std::fs::DirBuilder::new().create(&volatile))
        .and_then(|()| {
            std::os::unix::fs::OpenOptionsExt::mode(
                std::fs::OpenOptions::new().write(true).create_new(true),
                0,
            )
            .open(&dirty)
            .map(drop)
        })
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            let mode = if unsafe { libc::geteuid() } == 0 {
                0o000
            } else {
                0o700
            };
            let none = || std::fs::Permissions::from_mode(mode);
            std::fs::set_permissions(&volatile, none())?;
            std::fs::set_permissions(&incompat, none())
        });
    made.map_err(|e| {
        err(
            &dirty,
            format!("cannot mark the volatile mount: {}", io_cause(&e)),
        )
    })
}

/// Opens a layer dir: its O_PATH descriptor in the layer, and a real one (for flock).
/// Opens a layer dir. OVERRIDES: look for a stat override on its root (fuse-overlayfs'
/// reading, for its drop-in; the kernel knows none).
fn open_layer(path: &Path, devs: &mut Vec<u64>, overrides: bool) -> io::Result<(Layer, OwnedFd)> {
    let fd = sys::open_dir_path(path)?;
    let st = sys::fstat(fd.as_raw_fd())?;
    let dev_slot = match devs.iter().position(|&d| d == st.st_dev) {
        Some(i) => i as u64,
        None => {
            devs.push(st.st_dev);
            (devs.len() - 1) as u64
        }
    };
    // The uuid ioctl needs a real (not O_PATH) descriptor.
    let rfd = sys::openat(
        fd.as_raw_fd(),
        OsStr::new(""),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )?;
    let uuid = crate::whiteout::fh::fs_uuid(rfd.as_raw_fd());
    let override_stat = OverrideStat::ALL
        .into_iter()
        .filter(|_| overrides)
        .find(|o| {
            matches!(
                sys::lgetxattr(fd.as_raw_fd(), OsStr::new(""), o.name()),
                Ok(Some(_))
            )
        });
    let layer = Layer {
        path: path.to_path_buf(),
        fd,
        dev: st.st_dev,
        dev_slot,
        uuid,
        override_stat,
    };
    Ok((layer, rfd))
}

/// `xattr_permissions=N`, as fuse-overlayfs sets it up: the upper keeps owners and modes
/// in the privileged xattr (1) or a user one (2): the one its root carries already, else
/// containers-storage's when a lower root carries that (its value then goes to the upper
/// root, as fuse-overlayfs 1.16 does), else fuse-overlayfs' own (which its older
/// versions, 1.10 here, read too), valued with the root's own owner and mode.
fn keep_owners_in_xattrs(upper: &mut Layer, lowers: &[Layer], n: u8) -> Result<(), SpecError> {
    let root = OsStr::new("");
    let has = |l: &Layer, k: OverrideStat| sys::lgetxattr(l.raw(), root, k.name()).ok().flatten();
    let candidates: &[OverrideStat] = match n {
        1 => &[OverrideStat::Privileged],
        2 => &[OverrideStat::Containers, OverrideStat::User],
        _ => {
            return Err(err(
                &upper.path,
                format!("xattr_permissions={n}: want 1 or 2"),
            ));
        }
    };
    if let Some(&k) = candidates.iter().find(|&&k| has(upper, k).is_some()) {
        upper.override_stat = Some(k);
        return Ok(());
    }
    let from_lower = lowers
        .iter()
        .find_map(|l| candidates.iter().find_map(|&k| has(l, k).map(|v| (k, v))));
    let (kind, value) = match from_lower {
        Some(found) => found,
        None => {
            let st = sys::fstat(upper.raw()).map_err(|e| err(&upper.path, io_cause(&e)))?;
            let v = crate::override_stat::format(st.st_uid, st.st_gid, st.st_mode);
            (*candidates.last().unwrap(), v.into_bytes())
        }
    };
    sys::lsetxattr(upper.raw(), root, kind.name(), &value, 0).map_err(|e| {
        let name = kind.name().to_string_lossy();
        err(
            &upper.path,
            format!(
                "xattr_permissions={n}: cannot write {name}: {}",
                io_cause(&e)
            ),
        )
    })?;
    upper.override_stat = Some(kind);
    Ok(())
}

/// How long a mount waits for the upper or work dir of a union unmounted just now: its
/// daemon lets go of them a moment after the kernel let go of the mount, or once a
/// mount namespace that copied the mount (a container's, ending) is gone. Short, as a
/// second mount of a live union's upper is a mistake the kernel reports at once.
const IN_USE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Marks an upper or work dir in use by this mount: a lock on an open descriptor of it,
/// returned to be kept as long as the mount's daemon lives. Fails with EBUSY, as
/// overlayfs (index=on) does, for a dir another mount uses.
fn lock_in_use(path: &Path, what: &str) -> Result<OwnedFd, SpecError> {
    use std::os::unix::fs::OpenOptionsExt;
    // A real open (flock fails on O_PATH descriptors).
    let fd: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| err(path, io_cause(&e)))?
        .into();
    let busy = format!("{what} is in use by another mount (EBUSY), as overlayfs refuses it");
    lock_unless_in_use(&fd, libc::LOCK_EX, path, &busy)?;
    Ok(fd)
}

/// Takes the lock OP (LOCK_EX to hold, LOCK_SH to look) on FD, an open dir at PATH, or
/// fails with the message BUSY if another mount holds the dir as its upper or work dir.
/// A lock still held is waited for a moment: the daemon of a union unmounted just now may
/// not have exited yet.
fn lock_unless_in_use(fd: &OwnedFd, op: i32, path: &Path, busy: &str) -> Result<(), SpecError> {
    // SAFETY: flock on a descriptor the caller owns.
    if unsafe { libc::flock(fd.as_raw_fd(), op | libc::LOCK_NB) } == 0
        || io::Error::last_os_error().raw_os_error() != Some(libc::EWOULDBLOCK)
    {
        return Ok(()); // locked, or a file system without flock: nothing to enforce
    }
    // The wait is a blocking flock on a duplicate (one open file, one lock), in a thread
    // that is left behind if the time runs out: the mount fails then anyway.
    let dup = fd.try_clone().map_err(|e| err(path, io_cause(&e)))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .spawn(move || {
            let locked = loop {
                // SAFETY: flock on the thread's own duplicate.
                if unsafe { libc::flock(dup.as_raw_fd(), op) } == 0 {
                    break true;
                }
                if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break false;
                }
            };
            let _ = tx.send(locked);
        })
        .map_err(|e| err(path, io_cause(&e)))?;
    match rx.recv_timeout(IN_USE_WAIT) {
        Ok(true) => Ok(()),
        _ => Err(err(path, busy.to_string())),
    }
}

impl Layers {
    /// Validates, creates the work dir's subdirs (clearing leftovers of a crashed copy-up)
    /// and opens every layer.
    pub fn open(spec: &LayerSpec) -> Result<Layers, SpecError> {
        let (lowers, upper_work) = validate(spec)?;
        let mut devs = Vec::new();
        let overrides = spec.fuse_overlayfs || spec.xattr_permissions > 0;
        // Opened before anything is locked or created: a refused lower leaves no trace.
        let mut upper = match &upper_work {
            Some((up, _)) => Some(
                open_layer(up, &mut devs, overrides)
                    .map_err(|e| err(up, io_cause(&e)))?
                    .0,
            ),
            None => None,
        };
        let mut lower_layers = Vec::new();
        for l in &lowers {
            let (layer, fd) =
                open_layer(l, &mut devs, overrides).map_err(|e| err(l, io_cause(&e)))?;
            // The upper or work dir of another live union is no lower layer: it changes
            // under this one. A shared lock, let go of at once, finds their exclusive one.
            let busy = "lower layer is the upper or work dir of another mount (EBUSY), as \
                        overlayfs refuses it";
            lock_unless_in_use(&fd, libc::LOCK_SH, l, busy)?;
            lower_layers.push(layer);
        }
        let mut work = None;
        let mut index = None;
        let mut in_use = Vec::new();
        if let Some((up, wk)) = &upper_work {
            in_use.push(lock_in_use(up, "upper dir")?);
            // Private, as the kernel's work/: nobody else may touch what copy-ups stage.
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o700,
            )
            .create(wk)
            .map_err(|e| err(wk, format!("cannot create work dir: {}", io_cause(&e))))?;
            // Before anything in it is cleaned: another mount may be staging there.
            let wfd = lock_in_use(wk, "work dir")?;
            refuse_incompat(wk)?;
            reset_work_tmp(wfd.as_raw_fd(), wk)?;
            match sys::mkdirat(wfd.as_raw_fd(), OsStr::new(WORK_INDEX), 0o700) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(err(&wk.join(WORK_INDEX), io_cause(&e))),
            }
            if spec.volatile {
                mark_volatile(&wk.join(WORK_TMP))?;
            }
            work = Some(sys::open_dir_path(&wk.join(WORK_TMP)).map_err(|e| err(wk, io_cause(&e)))?);
            index =
                Some(sys::open_dir_path(&wk.join(WORK_INDEX)).map_err(|e| err(wk, io_cause(&e)))?);
            in_use.push(wfd);
        }
        if let Some(u) = upper.as_mut().filter(|_| spec.xattr_permissions > 0) {
            keep_owners_in_xattrs(u, &lower_layers, spec.xattr_permissions)?;
        }
        let mut xattr = match spec.fuse_overlayfs {
            true => XattrNames::new(spec.user_xattr).hiding(crate::whiteout::FUSE_OVERLAYFS_XATTRS),
            false => XattrNames::new(spec.user_xattr),
        };
        if upper.as_ref().and_then(|u| u.override_stat) == Some(OverrideStat::Containers) {
            xattr = xattr.keeping_security_in_user();
        }
        Ok(Layers {
            upper,
            work,
            index,
            in_use,
            lowers: lower_layers,
            data_only: spec.data_lowers.len(),
            format: spec.format,
            xattr,
            single_dev: devs.len() == 1,
            upper_both: spec.fuse_overlayfs,
            create_redirects: !spec.no_redirects,
        })
    }

    /// Opens layer dirs to read their merged view without a mount: nothing is created or
    /// cleaned (a running union may use the work dir). Missing dirs are left out.
    pub fn open_offline(spec: &OfflineSpec) -> io::Result<Layers> {
        let mut devs = Vec::new();
        let upper = match spec.upper.as_deref().filter(|u| u.is_dir()) {
            Some(u) => Some(open_layer(u, &mut devs, false)?.0),
            None => None,
        };
        let index = match (&upper, spec.index.as_deref().filter(|i| i.is_dir())) {
            (Some(_), Some(ix)) => Some(sys::open_dir_path(ix)?),
            _ => None,
        };
        let mut lowers = Vec::new();
        for l in spec.lowers.iter().filter(|l| l.is_dir()) {
            lowers.push(open_layer(l, &mut devs, false)?.0);
        }
        Ok(Layers {
            upper,
            work: None,
            index,
            in_use: Vec::new(),
            lowers,
            data_only: 0,
            format: spec.format.unwrap_or(Format::Overlay),
            // Layers written by a rootless union or by one run as root read alike.
            xattr: XattrNames::reading_both(spec.user_xattr),
            single_dev: devs.len() <= 1,
            upper_both: spec.format.is_none(),
            create_redirects: true,
        })
    }

    pub fn upper_fd(&self) -> io::Result<RawFd> {
        self.upper
            .as_ref()
            .map(|u| u.raw())
            .ok_or_else(|| sys::errno(libc::EROFS))
    }

    pub fn work_fd(&self) -> RawFd {
        self.work.as_ref().map(|w| w.as_raw_fd()).unwrap_or(-1)
    }

    /// The inode number the union shows for an object of a layer: the real one when all
    /// layers share a device, else the real one tagged with the device's slot in high bits.
    pub fn map_ino(&self, dev_slot: u64, ino: u64) -> u64 {
        if self.single_dev {
            ino
        } else {
            ino ^ (dev_slot << 56)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_is_by_whole_components() {
        let p = Path::new;
        assert!(inside(p("/a/b"), p("/a")));
        assert!(inside(p("/a"), p("/a")));
        assert!(inside(p("/a"), p("/")));
        assert!(!inside(p("/ab"), p("/a")));
        assert!(!inside(p("/a"), p("/a/b")));
        assert!(nested(p("/a"), p("/a/b")) && !nested(p("/a-b"), p("/a")));
    }

    #[test]
    fn canonical_dirs_resolve_links_and_refuse_files() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink("real", t.path().join("link")).unwrap();
        std::fs::write(t.path().join("file"), b"").unwrap();
        let canon = std::fs::canonicalize(&real).unwrap();
        let via = t.path().join("link/../link/.");
        assert_eq!(canonical_dir(&via, "lower layer").unwrap(), canon);
        let e = canonical_dir(&t.path().join("file"), "lower layer").unwrap_err();
        assert!(
            e.to_string().ends_with("lower layer: not a directory"),
            "{e}"
        );
        let e = canonical_dir(&t.path().join("none"), "lower layer").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("lower layer: no such file or directory"),
            "{e}"
        );
    }
}
