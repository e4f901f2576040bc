//! Serving one union mount in this process: the request, the checks made before
//! forking, opening the layers, mounting the FUSE connection and running the session.
use crate::adapter::UnionFuse;
use crate::error::{Context, Error, Result};
use crate::options;
use crate::unionfs::{LayerSpec, Layers, UnionFs};
use crate::whiteout::Format;
use crate::workers::Workers;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use unionctl_union::cow;
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
            fuse_overlayfs: false,
            xattr_permissions: options.xattr_permissions,
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

/// Is PATH the root of a mount? statx says so in one call (STATX_ATTR_MOUNT_ROOT);
/// kernels before 5.8 do not, and /proc/self/mountinfo is read instead.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| invalid!("{}: path contains a NUL byte", path.display()))?;
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, 0, &mut stx) };
    let known = u64::from(libc::STATX_ATTR_MOUNT_ROOT as u32);
    if rc == 0 && stx.stx_attributes_mask & known != 0 {
        return Ok(stx.stx_attributes & known != 0);
    }
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let want = canon.to_string_lossy().replace(' ', "\\040");
    Ok(info
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str())))
}

/// The layers of a mount, opened (work dir made and cleaned) before it is served.
pub(crate) struct Opened {
    layers: Layers,
    /// The work dir, when this open created it: a failed mount removes it again.
    fresh_work: Option<PathBuf>,
}

impl Opened {
    /// The file descriptors the layers hold (a forked daemon keeps them).
    pub(crate) fn fds(&self) -> Vec<std::os::fd::RawFd> {
        let l = &self.layers;
        let mut v: Vec<_> = l.upper.iter().chain(&l.lowers).map(|x| x.raw()).collect();
        v.extend(
            l.work
                .iter()
                .chain(&l.index)
                .chain(&l.in_use)
                .map(|f| f.as_raw_fd()),
        );
        v
    }

    pub(crate) fn fresh_work_path(&self) -> Option<PathBuf> {
        self.fresh_work.clone()
    }

    /// Removes what opening made, after a mount that failed.
    pub(crate) fn remove_fresh_work(&self) {
        if let Some(w) = &self.fresh_work {
            let _ = std::fs::remove_dir_all(w);
        }
    }
}

/// Opens the layers of a request (creating and cleaning the work dir).
pub(crate) fn open_layers(req: &MountRequest) -> Result<Opened> {
    let fresh_work = req
        .spec
        .upper
        .as_ref()
        .map(|u| work_dir(req, u))
        .filter(|w| !w.exists());
    // The kernel applies the caller's umask to what users create through the union;
    // ours must not strip the modes of what opening creates either.
    let old = unsafe { libc::umask(0) };
    let layers = Layers::open(&req.spec).map_err(Error::from);
    unsafe { libc::umask(old) };
    match layers {
        Ok(layers) => Ok(Opened { layers, fresh_work }),
        Err(e) => {
            if let Some(w) = &fresh_work {
                let _ = std::fs::remove_dir_all(w);
            }
            Err(e)
        }
    }
}

fn work_dir(req: &MountRequest, upper: &Path) -> PathBuf {
    req.spec
        .work
        .clone()
        .unwrap_or_else(|| crate::unionfs::layers::default_work(upper))
}

/// Whether the union is read-only (no upper, or `-o ro`).
fn read_only(req: &MountRequest) -> bool {
    req.spec.upper.is_none() || req.options.read_only
}

/// The error of a mount the kernel (or fusermount3) refused.
fn cannot_mount(req: &MountRequest, e: &std::io::Error) -> Error {
    // The labels are the one part of the mount data the kernel may not know.
    let labels = match req.options.security.as_slice() {
        [] => String::new(),
        _ if e.raw_os_error() != Some(libc::EINVAL) => String::new(),
        l => format!(" (refused -o {}: is SELinux enabled?)", l.join(",")),
    };
    invalid!(
        "{}: cannot mount: {}{labels}",
        req.merged.display(),
        unionctl_union::errors::io_cause(e)
    )
}

/// Mounts the FUSE connection for a request with mount(2) where this process may (root,
/// or inside a user namespace), so the mount is in place before any daemon is forked;
/// None where it may not (a plain user: the daemon mounts through fusermount3).
pub(crate) fn premount(req: &MountRequest) -> Result<Option<std::os::fd::OwnedFd>> {
    let config = req.options.fuser_config(read_only(req));
    let cannot = |e: std::io::Error| cannot_mount(req, &e);
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(cannot)?;
    let rootmode = std::fs::metadata(&req.merged)
        .map_err(cannot)?
        .permissions()
        .mode()
        & libc::S_IFMT;
    let (flags, source, data) = options::kernel_mount_args(&config, dev.as_raw_fd(), rootmode);
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
        &req.merged,
        Some(fstype.as_str()),
        flags,
        Some(data.as_str()),
    ) {
        Ok(()) => Ok(Some(dev.into())),
        Err(nix::errno::Errno::EPERM) => Ok(None),
        Err(e) => Err(cannot(std::io::Error::from(e))),
    }
}

/// Opens the layers and serves the mount in this process until it is unmounted.
/// `ready` is called once the mount is in place. The session's FUSE descriptor stays
/// open until the process exits (spliced read replies keep a reference to it, see
/// adapter `splice`): `daemon::spawn` serves in a process of its own.
pub fn serve(req: &MountRequest, ready: impl FnOnce()) -> Result<()> {
    let opened = open_layers(req)?;
    let fresh = opened.fresh_work.clone();
    let mounted = premount(req).inspect_err(|_| opened.remove_fresh_work())?;
    let premounted = mounted.is_some();
    let served = std::cell::Cell::new(false);
    serve_opened(req, opened, mounted, || {
        served.set(true);
        ready()
    })
    .inspect_err(|_| {
        if served.get() {
            return;
        }
        if premounted {
            let _ = crate::unmount_lazily(&req.merged);
        }
        if let Some(w) = &fresh {
            let _ = std::fs::remove_dir_all(w);
        }
    })
}

/// Serves opened layers on a connection mounted already (`mounted`), or mounts it now
/// (through fusermount3), until the union is unmounted. The caller unmounts a mount
/// it made when this fails.
pub(crate) fn serve_opened(
    req: &MountRequest,
    opened: Opened,
    mounted: Option<std::os::fd::OwnedFd>,
    ready: impl FnOnce(),
) -> Result<()> {
    // The kernel applied the caller's umask already; ours must not strip modes again.
    unsafe { libc::umask(0) };
    let work = req.spec.upper.as_ref().map(|u| work_dir(req, u));
    unionctl_union::logging::to_daemon_log(work.as_deref(), req.options.debug);
    for o in &req.options.no_effect {
        log::info!("-o {o}: accepted for compatibility; it changes nothing in unionctl");
    }
    if req.options.xino_off && !opened.layers.single_dev {
        log::info!(
            "-o xino=off: the layers span file systems and FUSE shows one device, so inode \
             numbers stay tagged with their layer's file system (unique, as fuse-overlayfs \
             keeps them)"
        );
    }
    let mut fs = UnionFs::new(opened.layers).context("reading the layer roots")?;
    fs.metacopy = req.options.metacopy;
    // The drop-in counts a merged dir's links as fuse-overlayfs does.
    fs.count_dir_links = req.spec.fuse_overlayfs && !req.options.static_nlink;
    let config = req.options.fuser_config(read_only(req));
    let threads = config.n_threads.unwrap_or(1);
    if threads > 1 {
        // Started here, before the serving threads lower their priority (workers.rs).
        fs.copier = cow::Copier::start(2).context("starting the copy-up threads")?;
    }
    fs.copier.sync = !(req.options.no_fsync || req.options.volatile);
    // Writes passed through never reach us, and set-ID bits kept in an xattr (the
    // upper's stat override) must be dropped by us when a file is written.
    let kept_owners = fs.upper_override().is_some();
    let mut union = UnionFuse::new(fs);
    union.allow_passthrough = !req.options.no_passthrough && !kept_owners;
    union.no_fsync = req.options.no_fsync || req.options.volatile;
    union.static_nlink = req.options.static_nlink;
    union.noacl = req.options.noacl;
    union.noxattrs = req.options.noxattrs;
    if let Some(t) = req.options.timeout {
        union.ttl = t;
    }
    union.ids = IdMap::new(&req.options.ids, idmap::kernel_overflow_ids());
    let workers = Arc::new(Workers::new(threads));
    union.workers = workers.clone();
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
    let session = match mounted {
        Some(fd) => fuser::Session::from_fd(union, fd, config.acl, config.clone()),
        None => fuser::Session::new(union, &req.merged, &config),
    }
    .map_err(|e| cannot_mount(req, &e))?;
    let _ = notifier_slot.set(session.notifier());
    workers.attach(&session.as_fd());
    if req.options.auto_unmount {
        crate::auto_unmount::watch(&req.merged).inspect_err(|_| {
            // Not serving yet: a lazy unmount cannot wait on us.
            let _ = crate::unmount_lazily(&req.merged);
        })?;
    }
    ready();
    match session.run() {
        // The end of the session, not a failure: at teardown the kernel disconnects each
        // device queue before the input queue, and a thread that takes a request queued
        // in between (a RELEASE of the last open file) reads ECONNABORTED instead of
        // ENODEV. An abort through /sys/fs/fuse/connections reads the same.
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {
            log::info!(
                "the kernel ended the FUSE connection of {}",
                req.merged.display()
            );
            Ok(())
        }
        r => r.context("serving the union"),
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
