//! Serving one union mount in this process: the request, the checks made before
//! forking, opening the layers, mounting the FUSE connection and running the session.
use crate::adapter::UnionFuse;
use crate::error::{Context, Error, Result};
use crate::options;
use crate::unionfs::{LayerSpec, Layers, UnionFs};
use crate::whiteout::Format;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use unionctl_union::idmap::{self, IdMap};

/// Everything needed to serve one union mount.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub spec: LayerSpec,
    pub merged: PathBuf,
    pub options: options::MountOptions,
}

impl MountRequest {
    /// A request from the mount command's parts: `lowers` top first, `format` the
    /// whiteout format written to the upper, `options` the `-o` strings. The layers may
    /// come from the options instead (`lowerdir=`, `upperdir=`, `workdir=`), as kernel
    /// overlayfs and fuse-overlayfs take them; given both ways they are an error.
    pub fn new(
        lowers: Vec<PathBuf>,
        upper: Option<PathBuf>,
        work: Option<PathBuf>,
        format: Format,
        options: &[String],
        merged: PathBuf,
    ) -> Result<MountRequest> {
        let mut options = options::MountOptions::parse(options)?;
        let lowers = match (lowers.is_empty(), options.lowerdir.is_empty()) {
            (_, true) => lowers,
            (true, false) => std::mem::take(&mut options.lowerdir),
            (false, false) => bail!("lower layers given twice: by --lower and by -o lowerdir="),
        };
        let upper = one_of(
            upper,
            options.upperdir.take(),
            "upper layer",
            "--upper",
            "upperdir",
        )?;
        let work = one_of(
            work,
            options.workdir.take(),
            "work dir",
            "--work",
            "workdir",
        )?;
        if options.metacopy && format == Format::Aufs {
            bail!("-o metacopy=on: aufs format has no metadata-only copy-up");
        }
        // A renamed metacopy file needs a redirect to its data, as the kernel says.
        if options.metacopy && options.no_redirects {
            bail!(
                "-o metacopy=on: conflicts with redirect_dir=off (or follow): a renamed metacopy file needs a redirect"
            );
        }
        let user_xattr = options.userxattr || !crate::sys::in_initial_userns();
        let spec = LayerSpec {
            lowers,
            data_lowers: options.data_lowers.clone(),
            upper,
            work,
            format,
            user_xattr,
            volatile: options.volatile,
            no_redirects: options.no_redirects,
        };
        Ok(MountRequest {
            spec,
            merged,
            options,
        })
    }
}

/// A layer given by a flag or by an option, not both.
fn one_of(
    flag: Option<PathBuf>,
    option: Option<PathBuf>,
    what: &str,
    flag_name: &str,
    option_name: &str,
) -> Result<Option<PathBuf>> {
    match (flag, option) {
        (Some(_), Some(_)) => bail!("{what} given twice: by {flag_name} and by -o {option_name}="),
        (f, o) => Ok(f.or(o)),
    }
}

/// Checks what can be checked before forking: layers, mount point.
pub(crate) fn precheck(req: &MountRequest) -> Result<()> {
    crate::unionfs::layers::validate(&req.spec)?;
    let m = &req.merged;
    let md = std::fs::metadata(m).map_err(|e| {
        invalid!(
            "{}: mount point: {}",
            m.display(),
            unionctl_union::errors::io_cause(&e)
        )
    })?;
    if !md.is_dir() {
        bail!("{}: mount point: not a directory", m.display());
    }
    if is_mount_point(m)? {
        bail!(
            "{}: mount point is busy: something is already mounted there",
            m.display()
        );
    }
    Ok(())
}

/// Is PATH the root of a mount (listed in /proc/self/mountinfo)?
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let want = canon.to_string_lossy().replace(' ', "\\040");
    Ok(info
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str())))
}

/// Opens the layers and serves the mount in this process until it is unmounted.
/// `ready` is called once the mount is in place.
pub fn serve(req: &MountRequest, ready: impl FnOnce()) -> Result<()> {
    // The kernel applied the caller's umask already; ours must not strip modes again.
    unsafe { libc::umask(0) };
    // A failed mount leaves nothing behind: remember whether the work dir is ours to remove.
    let fresh_work = req.spec.upper.as_ref().and_then(|u| {
        let w = req
            .spec
            .work
            .clone()
            .unwrap_or_else(|| crate::unionfs::layers::default_work(u));
        (!w.exists()).then_some(w)
    });
    let cleanup = |e: Error| {
        if let Some(w) = &fresh_work {
            let _ = std::fs::remove_dir_all(w);
        }
        e
    };
    let layers = Layers::open(&req.spec).map_err(|e| cleanup(e.into()))?;
    let work = req.spec.upper.as_ref().map(|u| {
        req.spec
            .work
            .clone()
            .unwrap_or_else(|| crate::unionfs::layers::default_work(u))
    });
    unionctl_union::logging::to_daemon_log(work.as_deref(), req.options.debug);
    if req.options.xino_off && !layers.single_dev {
        return Err(cleanup(invalid!(
            "-o xino=off: not supported for layers on more than one file system (unionctl \
             tags their inode numbers with the file system, as the kernel's xino does)"
        )));
    }
    for o in &req.options.no_effect {
        log::info!("-o {o}: accepted for compatibility; it changes nothing in unionctl");
    }
    let mut fs = UnionFs::new(layers).context("reading the layer roots")?;
    fs.metacopy = req.options.metacopy;
    let read_only = fs.read_only() || req.options.read_only;
    let config = req.options.fuser_config(read_only);
    let mut union = UnionFuse::new(fs);
    union.allow_passthrough = !req.options.no_passthrough;
    union.no_fsync = req.options.no_fsync || req.options.volatile;
    union.static_nlink = req.options.static_nlink;
    union.noacl = req.options.noacl;
    union.noxattrs = req.options.noxattrs;
    if let Some(t) = req.options.timeout {
        union.ttl = t;
    }
    union.ids = IdMap::new(&req.options.ids, idmap::kernel_overflow_ids());
    let notifier_slot = union.notifier.clone();
    // Sent before the reply of the request that changed the attributes, so the caller's
    // next stat sees them. Attributes only (offset -1): the kernel takes no inode or page
    // lock for that, so the request's own locks cannot block it.
    let slot = notifier_slot.clone();
    let _ = union.fs.on_attr_change.set(Box::new(move |ino| {
        if let Some(n) = slot.get() {
            let _ = n.inval_inode(fuser::INodeNo(ino), -1, 0);
        }
    }));
    let session = start_session(union, &req.merged, &config).map_err(|e| {
        // The labels are the one part of the mount data the kernel may not know.
        let labels = match req.options.security.as_slice() {
            [] => String::new(),
            _ if e.raw_os_error() != Some(libc::EINVAL) => String::new(),
            l => format!(" (refused -o {}: is SELinux enabled?)", l.join(",")),
        };
        cleanup(invalid!(
            "{}: cannot mount: {}{labels}",
            req.merged.display(),
            unionctl_union::errors::io_cause(&e)
        ))
    })?;
    let _ = notifier_slot.set(session.notifier());
    if req.options.auto_unmount {
        crate::auto_unmount::watch(&req.merged).inspect_err(|_| {
            // Not serving yet: a lazy unmount cannot wait on us.
            let _ = crate::unmount_lazily(&req.merged);
        })?;
    }
    ready();
    session.run().context("serving the union")?;
    Ok(())
}

/// Mounts the FUSE connection with mount(2) ourselves where we may (root, or inside a
/// user namespace): then the session does not own the mount and never unmounts the path
/// when it ends, which could hit another file system mounted there meanwhile. A user
/// without that right goes through fusermount3 (fuser's own mount).
fn start_session(
    fs: UnionFuse,
    merged: &Path,
    config: &fuser::Config,
) -> std::io::Result<fuser::Session<UnionFuse>> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    let rootmode = std::fs::metadata(merged)?.permissions().mode() & libc::S_IFMT;
    let (flags, source, data) = options::kernel_mount_args(config, dev.as_raw_fd(), rootmode);
    let fstype = config
        .mount_options
        .iter()
        .find_map(|o| match o {
            fuser::MountOption::Subtype(t) => Some(format!("fuse.{t}")),
            _ => None,
        })
        .unwrap_or_else(|| "fuse".into());
    match nix::mount::mount(
        Some(source.as_str()),
        merged,
        Some(fstype.as_str()),
        flags,
        Some(data.as_str()),
    ) {
        Ok(()) => {
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(dev.into_raw_fd()) };
            fuser::Session::from_fd(fs, fd, config.acl, config.clone())
        }
        Err(nix::errno::Errno::EPERM) => fuser::Session::new(fs, merged, config),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

pub(crate) fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}
