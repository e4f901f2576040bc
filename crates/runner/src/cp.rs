//! `cp`: files between the host and a container, through the container's union view.
//! A running container is reached through `/proc/PID/root` (its root with its volumes
//! and tmpfs mounts); a stopped one through its union mounted for the copy (the union's
//! own copy-up writes the upper layer). Container paths are resolved with openat2
//! RESOLVE_IN_ROOT, and below that every object is reached by `*at` calls with
//! O_NOFOLLOW from its parent's fd: no symlink in the container, absolute or `../..`,
//! can make cp read or write outside the container's root.
//!
//! As docker cp: a dir is copied whole (or its content, for `SRC/.`); into an existing
//! dir it goes in under its own name; files copied in belong to the container's root
//! user, files copied out to the caller; modes and modification times are kept.
use crate::error::{Context, Result, io};
use crate::linux;
use crate::state::{self, Container, Status};
use crate::sys::{self, FileLock, Stat};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Copies `ctr_path` of container NAME to `host` on the host.
pub fn copy_out(root: &Path, name: &str, ctr_path: &str, host: &Path) -> Result<()> {
    let c = state::find_container(root, name)?;
    let what = || format!("copy {}:{ctr_path} to {}", c.name, host.display());
    with_root(&c, |rootfd| {
        let (dir, leaf) = parent_in_root(rootfd, ctr_path)?;
        let st = sys::lstatat(dir.as_raw_fd(), &leaf)
            .map_err(io("stat in the container", Path::new(ctr_path)))?;
        let contents = ends_with_dot(ctr_path);
        let dst = match fs::metadata(host) {
            Ok(m) if m.is_dir() && !(is_dir(&st) && contents) => {
                host.join(base_name(ctr_path, &leaf))
            }
            Ok(m) if !m.is_dir() && is_dir(&st) => {
                bail!("cannot copy a directory to the file {}", host.display())
            }
            Ok(_) => host.to_path_buf(),
            Err(_) if host.as_os_str().as_bytes().ends_with(b"/") && !is_dir(&st) => {
                bail!("destination directory {} does not exist", host.display())
            }
            Err(_) => host.to_path_buf(),
        };
        out_tree(dir.as_raw_fd(), &leaf, &st, &dst)
    })
    .with_context(what)
}

/// Copies `host` into container NAME at `ctr_path`.
pub fn copy_in(root: &Path, host: &Path, name: &str, ctr_path: &str) -> Result<()> {
    let c = state::find_container(root, name)?;
    let what = || format!("copy {} to {}:{ctr_path}", host.display(), c.name);
    let meta = fs::symlink_metadata(host).map_err(io("stat", host))?;
    with_root(&c, |rootfd| {
        // An existing dir (symlinks followed, inside the root) receives SRC by its name.
        let existing = linux::openat2_in_root(
            rootfd,
            Path::new(ctr_path),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        );
        let (dir, leaf) = match existing {
            Ok(d) if !(meta.is_dir() && ends_with_dot(&host.to_string_lossy())) => {
                let name = host
                    .file_name()
                    .map(OsStr::to_os_string)
                    .ok_or_else(|| invalid!("{}: no file name to copy under", host.display()))?;
                (d, name)
            }
            Ok(d) => (d, OsString::from(".")),
            Err(_) => {
                if ctr_path.ends_with('/') && !meta.is_dir() {
                    bail!("destination directory {ctr_path} does not exist in the container");
                }
                parent_in_root(rootfd, ctr_path)?
            }
        };
        in_tree(host, &meta, dir.as_raw_fd(), &leaf)
    })
    .with_context(what)
}

/// Runs `f` with an O_PATH fd of the container's root: the running container's own
/// (`/proc/PID/root`), else its union mounted at `merged/` for the copy, with `start`
/// held off meanwhile.
fn with_root(c: &Container, f: impl FnOnce(RawFd) -> Result<()>) -> Result<()> {
    if c.live_status() == Status::Running
        && let Some(pid) = c.pid.filter(|_| c.pid_alive())
    {
        let in_root = |f: &mut dyn FnMut(RawFd) -> Result<()>| {
            let proc_root = PathBuf::from(format!("/proc/{pid}/root"));
            let fd = sys::open_dir_path(&proc_root).map_err(io("opening", &proc_root))?;
            f(fd.as_raw_fd())
        };
        let mut f = Some(f);
        let mut once = move |fd: RawFd| f.take().map_or(Ok(()), |f| f(fd));
        if !c.rootless {
            return in_root(&mut once);
        }
        // Rootless: the container's FUSE union serves only its own user namespace.
        return in_user_namespace(pid, &mut || in_root(&mut once));
    }
    // SAFETY: getter.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "container {} is not running: rootless, cp works on running containers only",
            c.name
        );
    }
    let _starting = FileLock::exclusive(&c.dir.join(".start.lock"))?;
    let fresh = Container::load(&c.dir)?;
    if fresh.live_status() == Status::Running {
        bail!("container {} started during the copy: try again", c.name);
    }
    for d in [fresh.upper(), fresh.work(), fresh.merged()] {
        fs::create_dir_all(&d).map_err(io("mkdir", &d))?;
    }
    crate::union::spawn_mount(
        &fresh.lowers,
        &fresh.upper(),
        &fresh.work(),
        &fresh.merged(),
    )?
    .wait()?;
    let result = sys::open_dir_path(&fresh.merged())
        .map_err(io("opening", &fresh.merged()))
        .and_then(|fd| f(fd.as_raw_fd()));
    let unmounted = crate::union::unmount(&fresh.merged());
    result?;
    unmounted
}

/// Runs `f` in a child process joined to the user namespace of `pid` (ours, so we hold
/// every capability there); its error comes back as text.
fn in_user_namespace(pid: i32, f: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    let ns_path = PathBuf::from(format!("/proc/{pid}/ns/user"));
    let ns = fs::File::open(&ns_path).map_err(io("opening", &ns_path))?;
    let (err_r, err_w) = linux::pipe()?;
    let child = linux::clone_fork(0).context("fork")?;
    let Some(child) = child else {
        drop(err_r);
        let r = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWUSER)
            .context("join the container's user namespace")
            .and_then(|_| f());
        if let Err(e) = r {
            let _ = linux::write_all_fd(err_w.as_raw_fd(), e.chain().as_bytes());
            linux::exit_now(1);
        }
        linux::exit_now(0)
    };
    drop(err_w);
    let msg = linux::read_to_end_fd(err_r.as_raw_fd()).unwrap_or_default();
    let code = linux::wait_pid(child)?;
    if code != 0 || !msg.is_empty() {
        bail!("{}", String::from_utf8_lossy(&msg));
    }
    Ok(())
}

/// The parent dir of `path` resolved inside the root, and the last name ("." when the
/// path names the root or ends in `..`, whose fd is then the object itself).
fn parent_in_root(root: RawFd, path: &str) -> Result<(OwnedFd, OsString)> {
    let comps: Vec<&OsStr> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            Component::ParentDir => Some(OsStr::new("..")),
            _ => None,
        })
        .collect();
    let open = |p: &Path| {
        linux::openat2_in_root(root, p, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(io("resolve in the container", Path::new(path)))
    };
    match comps.split_last() {
        None => Ok((open(Path::new("."))?, ".".into())),
        Some((last, _)) if *last == ".." => Ok((open(Path::new(path))?, ".".into())),
        Some((last, parents)) => {
            let parent: PathBuf = parents.iter().collect();
            let parent = if parents.is_empty() {
                PathBuf::from(".")
            } else {
                parent
            };
            Ok((open(&parent)?, last.to_os_string()))
        }
    }
}

fn ends_with_dot(p: &str) -> bool {
    p == "." || p.ends_with("/.")
}

fn base_name(ctr_path: &str, leaf: &OsStr) -> OsString {
    if leaf != "." {
        return leaf.to_os_string();
    }
    Path::new(ctr_path)
        .file_name()
        .map(OsStr::to_os_string)
        .unwrap_or_else(|| "root".into())
}

fn is_dir(st: &Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn mtime(st: &Stat) -> std::time::SystemTime {
    std::time::UNIX_EPOCH
        + std::time::Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32)
}

/// Copies the container object `name` in `dir` (not followed) to the host path `dst`.
fn out_tree(dir: RawFd, name: &OsStr, st: &Stat, dst: &Path) -> Result<()> {
    let mode = st.st_mode & 0o7777;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            match fs::symlink_metadata(dst) {
                Ok(m) if m.is_dir() => {}
                _ => fs::create_dir(dst).map_err(io("mkdir", dst))?,
            }
            let sub = sys::openat(
                dir,
                name,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(io("open dir in the container", Path::new(name)))?;
            for (child, _, _) in sys::read_dir_names(sub.as_raw_fd(), OsStr::new(""))? {
                let cst = sys::lstatat(sub.as_raw_fd(), &child)?;
                out_tree(sub.as_raw_fd(), &child, &cst, &dst.join(&child))?;
            }
            fs::set_permissions(dst, fs::Permissions::from_mode(mode)).map_err(io("chmod", dst))?;
            let _ = fs::File::open(dst).and_then(|f| f.set_modified(mtime(st)));
        }
        libc::S_IFREG => {
            let src = sys::openat(dir, name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)
                .map_err(io("open in the container", Path::new(name)))?;
            let mut src = fs::File::from(src);
            let _ = fs::remove_file(dst);
            let mut out = fs::File::create(dst).map_err(io("create", dst))?;
            std::io::copy(&mut src, &mut out).map_err(io("copy to", dst))?;
            out.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io("chmod", dst))?;
            let _ = out.set_modified(mtime(st));
        }
        libc::S_IFLNK => {
            let target = sys::readlinkat(dir, name)?;
            let _ = fs::remove_file(dst);
            std::os::unix::fs::symlink(&target, dst).map_err(io("symlink", dst))?;
        }
        _ => {
            let _ = fs::remove_file(dst);
            sys::mknodat(libc::AT_FDCWD, dst.as_os_str(), st.st_mode, st.st_rdev)
                .map_err(io("mknod", dst))?;
        }
    }
    Ok(())
}

/// Copies the host object `src` to `name` in the container dir `dir`: created by `*at`
/// calls that never follow a symlink in the container (one in the way is replaced).
fn in_tree(src: &Path, meta: &fs::Metadata, dir: RawFd, name: &OsStr) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & 0o7777;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    ];
    let existing = sys::lstat_opt(dir, name)?;
    let ft = meta.file_type();
    if ft.is_dir() {
        match existing {
            Some(st) if is_dir(&st) => {}
            Some(_) => bail!(
                "cannot copy a directory over the non-directory {}",
                name.to_string_lossy()
            ),
            None => sys::mkdirat(dir, name, 0o700)
                .map_err(io("mkdir in the container", Path::new(name)))?,
        }
        let sub = sys::openat(
            dir,
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(io("open dir in the container", Path::new(name)))?;
        let mut names: Vec<OsString> = fs::read_dir(src)
            .map_err(io("listing", src))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(io("listing", src))?;
        names.sort();
        for n in names {
            let p = src.join(&n);
            let m = fs::symlink_metadata(&p).map_err(io("stat", &p))?;
            in_tree(&p, &m, sub.as_raw_fd(), &n)?;
        }
        owned_by_root(&sub);
        sys::fchmod(sub.as_raw_fd(), mode)?;
        sys::futimens(sub.as_raw_fd(), &times)?;
        return Ok(());
    }
    if let Some(st) = existing {
        if is_dir(&st) {
            bail!(
                "cannot overwrite the directory {} with a non-directory",
                name.to_string_lossy()
            );
        }
        if !ft.is_file() || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            sys::unlinkat(dir, name, 0)?;
        }
    }
    if ft.is_file() {
        let mut from = fs::File::open(src).map_err(io("opening", src))?;
        let to = sys::openat(
            dir,
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW,
            0o600,
        )
        .map_err(io("create in the container", Path::new(name)))?;
        let mut to = fs::File::from(to);
        std::io::copy(&mut from, &mut to).map_err(io("copy from", src))?;
        owned_by_root(&to);
        sys::fchmod(to.as_raw_fd(), mode)?;
        sys::futimens(to.as_raw_fd(), &times)?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(io("readlink", src))?;
        sys::symlinkat(target.as_os_str(), dir, name)?;
        let _ = sys::fchownat(dir, name, 0, 0);
    } else {
        sys::mknodat(dir, name, meta.mode(), meta.rdev())?;
    }
    Ok(())
}

/// Files copied in belong to the container's root (docker); rootless, through a running
/// container's root, they are the caller's, which is that root already.
fn owned_by_root(f: &impl AsRawFd) {
    let _ = sys::fchown(f.as_raw_fd(), 0, 0);
}
