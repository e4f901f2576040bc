//! `cp`: files between the host and a container, through the container's union view.
//! A running container is reached through `/proc/PID/root` (its root with its volumes
//! and tmpfs mounts; rootless from inside its user namespace, the only one its FUSE union
//! serves), with openat2 RESOLVE_IN_ROOT and below that `*at` calls with O_NOFOLLOW
//! from each parent's fd. A stopped one is read and written offline through the union
//! rule itself (`unionfs::UnionFs` over its layers: lookups, copy-up into its upper
//! layer, whiteouts), paths resolved the same way inside its root. Either way no symlink
//! in the container, absolute or `../..`, can make cp read or write outside it.
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
use unionctl_union::unionfs::{Caller, LayerSpec, Layers, ROOT, SetAttr, SetTime, UnionFs};

/// Copies `ctr_path` of container NAME to `host` on the host.
pub fn copy_out(root: &Path, name: &str, ctr_path: &str, host: &Path) -> Result<()> {
    let c = state::find_container(root, name)?;
    let what = || format!("copy {}:{ctr_path} to {}", c.name, host.display());
    with_side(&c, &mut |side| copy_out_with(side, ctr_path, host)).with_context(what)
}

fn copy_out_with(side: &dyn Side, ctr_path: &str, host: &Path) -> Result<()> {
    let (dir, leaf) = side.parent_in_root(ctr_path)?;
    let st = side
        .lstat(&dir, &leaf)?
        .ok_or_else(|| not_found_in(ctr_path))?;
    let contents = ends_with_dot(ctr_path);
    let dst = match fs::metadata(host) {
        Ok(m) if m.is_dir() && !(is_dir(&st) && contents) => host.join(base_name(ctr_path, &leaf)),
        Ok(m) if !m.is_dir() && is_dir(&st) => {
            bail!("cannot copy a directory to the file {}", host.display())
        }
        Ok(_) => host.to_path_buf(),
        Err(_) if host.as_os_str().as_bytes().ends_with(b"/") && !is_dir(&st) => {
            bail!("destination directory {} does not exist", host.display())
        }
        Err(_) => host.to_path_buf(),
    };
    out_tree(side, &dir, &leaf, &st, &dst)
}

fn not_found_in(ctr_path: &str) -> crate::Error {
    io("stat in the container", Path::new(ctr_path))(std::io::Error::from_raw_os_error(
        libc::ENOENT,
    ))
}

/// Copies `host` into container NAME at `ctr_path`.
pub fn copy_in(root: &Path, host: &Path, name: &str, ctr_path: &str) -> Result<()> {
    let c = state::find_container(root, name)?;
    let what = || format!("copy {} to {}:{ctr_path}", host.display(), c.name);
    let meta = fs::symlink_metadata(host).map_err(io("stat", host))?;
    with_side(&c, &mut |side| copy_in_with(side, host, &meta, ctr_path)).with_context(what)
}

fn copy_in_with(side: &dyn Side, host: &Path, meta: &fs::Metadata, ctr_path: &str) -> Result<()> {
    // An existing dir (symlinks followed, inside the root) receives SRC by its name.
    let (dir, leaf) = match side.dir_in_root(ctr_path) {
        Some(d) if !(meta.is_dir() && ends_with_dot(&host.to_string_lossy())) => {
            let name = host
                .file_name()
                .map(OsStr::to_os_string)
                .ok_or_else(|| invalid!("{}: no file name to copy under", host.display()))?;
            (d, name)
        }
        Some(d) => (d, OsString::from(".")),
        None => {
            if ctr_path.ends_with('/') && !meta.is_dir() {
                bail!("destination directory {ctr_path} does not exist in the container");
            }
            side.parent_in_root(ctr_path)?
        }
    };
    in_tree(side, host, meta, &dir, &leaf)
}

/// Runs `f` over the container's file system: the running container's own root
/// (`/proc/PID/root`), else its layers through the union rule offline, with `start`
/// held off meanwhile.
fn with_side(c: &Container, f: &mut dyn FnMut(&dyn Side) -> Result<()>) -> Result<()> {
    if c.live_status() == Status::Running
        && let Some(pid) = c.pid.filter(|_| c.pid_alive())
    {
        let mut in_root = || {
            let proc_root = PathBuf::from(format!("/proc/{pid}/root"));
            let fd = sys::open_dir_path(&proc_root).map_err(io("opening", &proc_root))?;
            f(&FdSide { root: fd })
        };
        if !c.rootless {
            return in_root();
        }
        // Rootless: the container's FUSE union serves only its own user namespace.
        let ns_path = PathBuf::from(format!("/proc/{pid}/ns/user"));
        let ns = fs::File::open(&ns_path).map_err(io("opening", &ns_path))?;
        let mut join = || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWUSER)
                .context("join the container's user namespace")
        };
        return in_child(&mut join, &mut in_root);
    }
    // SAFETY: getter.
    if unsafe { libc::geteuid() } != 0 {
        // Rootless: its layers hold files of the sub-ids, reachable in a user namespace
        // mapped as the container's.
        let mut enter = || crate::idmap::enter_user_namespace(0).map(drop);
        return in_child(&mut enter, &mut || offline(c, f));
    }
    offline(c, f)
}

/// `f` over the stopped container's union, opened offline.
fn offline(c: &Container, f: &mut dyn FnMut(&dyn Side) -> Result<()>) -> Result<()> {
    let _starting = FileLock::exclusive(&c.dir.join(".start.lock"))?;
    let fresh = Container::load(&c.dir)?;
    if fresh.live_status() == Status::Running {
        bail!("container {} started during the copy: try again", c.name);
    }
    for d in [fresh.upper(), fresh.work()] {
        fs::create_dir_all(&d).map_err(io("mkdir", &d))?;
    }
    // The container's own union (overlay format, as `start` mounts it), without a mount.
    let layers = Layers::open(&LayerSpec {
        lowers: crate::union::distinct(&fresh.lowers),
        data_lowers: Vec::new(),
        upper: Some(fresh.upper()),
        work: Some(fresh.work()),
        format: crate::whiteout::Format::Overlay,
        // In a user namespace the union keeps its xattrs as `user.overlay.*`.
        user_xattr: !sys::in_initial_userns(),
        volatile: false,
        fuse_overlayfs: false,
        xattr_permissions: 0,
        no_redirects: false,
    })
    .map_err(|e| invalid!("container {}: {e}", c.name))?;
    let fs = UnionFs::new(layers).map_err(io("opening the union of", &c.dir))?;
    f(&UnionSide { fs })
}

/// Runs `f` in a child process after `enter` (joining or making a user namespace: a
/// process does that alone, and it cannot be undone); the child's error comes back as
/// text.
fn in_child(
    enter: &mut dyn FnMut() -> Result<()>,
    f: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let (err_r, err_w) = linux::pipe()?;
    let child = linux::clone_fork(0).context("fork")?;
    let Some(child) = child else {
        drop(err_r);
        if let Err(e) = enter().and_then(|_| f()) {
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

/// A dir of the container's file system: an fd (running) or a union node (stopped).
enum Dir {
    Fd(OwnedFd),
    Node(u64),
}

/// The container's side of a copy: objects named by (dir, name) inside its root; the
/// name "." is the dir itself. Nothing here follows a symlink except the resolution of
/// a path, which stays inside the root.
trait Side {
    /// The parent dir of `path` resolved inside the root, and the last name ("." when
    /// the path names the root or ends in `..`: the dir is then the object itself).
    fn parent_in_root(&self, path: &str) -> Result<(Dir, OsString)>;
    /// The dir `path` names (symlinks followed inside the root), if it is one.
    fn dir_in_root(&self, path: &str) -> Option<Dir>;
    fn lstat(&self, dir: &Dir, name: &OsStr) -> Result<Option<Stat>>;
    fn open_dir(&self, dir: &Dir, name: &OsStr) -> Result<Dir>;
    fn list(&self, dir: &Dir) -> Result<Vec<OsString>>;
    fn read(&self, dir: &Dir, name: &OsStr) -> Result<fs::File>;
    fn readlink(&self, dir: &Dir, name: &OsStr) -> Result<OsString>;
    fn mkdir(&self, dir: &Dir, name: &OsStr) -> Result<()>;
    /// A regular file to write, made or truncated (a symlink in the way is replaced).
    fn write(&self, dir: &Dir, name: &OsStr) -> Result<fs::File>;
    fn symlink(&self, dir: &Dir, name: &OsStr, target: &OsStr) -> Result<()>;
    fn unlink(&self, dir: &Dir, name: &OsStr) -> Result<()>;
    fn mknod(&self, dir: &Dir, name: &OsStr, mode: u32, rdev: u64) -> Result<()>;
    /// Owner root (docker's rule for files copied in), mode and mtime of a new object.
    fn finish(&self, dir: &Dir, name: &OsStr, mode: u32, mtime: libc::timespec) -> Result<()>;
}

/// Splits `path` into its parent's components and last name, as `parent_in_root` sees
/// it: (components to resolve, last name), the last name "." when the whole path must
/// be resolved.
fn split_last(path: &str) -> (PathBuf, OsString) {
    let comps: Vec<&OsStr> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            Component::ParentDir => Some(OsStr::new("..")),
            _ => None,
        })
        .collect();
    match comps.split_last() {
        None => (PathBuf::from("."), ".".into()),
        Some((last, _)) if *last == ".." => (comps.iter().collect(), ".".into()),
        Some((last, [])) => (PathBuf::from("."), last.to_os_string()),
        Some((last, parents)) => (parents.iter().collect(), last.to_os_string()),
    }
}

fn io_err(what: &'static str, name: &OsStr) -> impl FnOnce(std::io::Error) -> crate::Error {
    let p = PathBuf::from(name);
    move |e| io(what, &p)(e)
}

/// FILE, opened without blocking, if it is a regular file: a running container can
/// swap a checked file for a device or FIFO, which cp must not read, write or wait on.
fn regular_only(file: fs::File, name: &OsStr) -> Result<fs::File> {
    use std::os::unix::fs::FileTypeExt;
    let t = file
        .metadata()
        .map_err(io_err("stat in the container", name))?
        .file_type();
    if !t.is_file() {
        let kind = if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        bail!(
            "{}: {kind} in the container, refused",
            Path::new(name).display()
        );
    }
    Ok(file)
}

/// A running container: fds below its root, openat2 RESOLVE_IN_ROOT for paths.
struct FdSide {
    root: OwnedFd,
}

impl FdSide {
    fn fd(d: &Dir) -> RawFd {
        match d {
            Dir::Fd(f) => f.as_raw_fd(),
            Dir::Node(_) => -1,
        }
    }
}

impl Side for FdSide {
    fn parent_in_root(&self, path: &str) -> Result<(Dir, OsString)> {
        let (parent, leaf) = split_last(path);
        let fd = linux::openat2_in_root(
            self.root.as_raw_fd(),
            &parent,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .map_err(io("resolve in the container", Path::new(path)))?;
        Ok((Dir::Fd(fd), leaf))
    }
    fn dir_in_root(&self, path: &str) -> Option<Dir> {
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        linux::openat2_in_root(self.root.as_raw_fd(), Path::new(path), flags, 0)
            .ok()
            .map(Dir::Fd)
    }
    fn lstat(&self, dir: &Dir, name: &OsStr) -> Result<Option<Stat>> {
        sys::lstat_opt(Self::fd(dir), name).map_err(io_err("stat in the container", name))
    }
    fn open_dir(&self, dir: &Dir, name: &OsStr) -> Result<Dir> {
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        sys::openat(Self::fd(dir), name, flags, 0)
            .map(Dir::Fd)
            .map_err(io_err("open dir in the container", name))
    }
    fn list(&self, dir: &Dir) -> Result<Vec<OsString>> {
        let names = sys::read_dir_names(Self::fd(dir), OsStr::new(""))?;
        Ok(names.into_iter().map(|(n, _, _)| n).collect())
    }
    fn read(&self, dir: &Dir, name: &OsStr) -> Result<fs::File> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let f = sys::openat(Self::fd(dir), name, flags, 0)
            .map(fs::File::from)
            .map_err(io_err("open in the container", name))?;
        regular_only(f, name)
    }
    fn readlink(&self, dir: &Dir, name: &OsStr) -> Result<OsString> {
        Ok(sys::readlinkat(Self::fd(dir), name)?)
    }
    fn mkdir(&self, dir: &Dir, name: &OsStr) -> Result<()> {
        sys::mkdirat(Self::fd(dir), name, 0o700).map_err(io_err("mkdir in the container", name))
    }
    fn write(&self, dir: &Dir, name: &OsStr) -> Result<fs::File> {
        // No O_TRUNC before the type is known: the container may have put a device or a
        // FIFO at NAME since it was checked.
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let f = sys::openat(Self::fd(dir), name, flags, 0o600)
            .map(fs::File::from)
            .map_err(io_err("create in the container", name))?;
        let f = regular_only(f, name)?;
        f.set_len(0)
            .map_err(io_err("truncate in the container", name))?;
        Ok(f)
    }
    fn symlink(&self, dir: &Dir, name: &OsStr, target: &OsStr) -> Result<()> {
        Ok(sys::symlinkat(target, Self::fd(dir), name)?)
    }
    fn unlink(&self, dir: &Dir, name: &OsStr) -> Result<()> {
        Ok(sys::unlinkat(Self::fd(dir), name, 0)?)
    }
    fn mknod(&self, dir: &Dir, name: &OsStr, mode: u32, rdev: u64) -> Result<()> {
        Ok(sys::mknodat(Self::fd(dir), name, mode, rdev)?)
    }
    fn finish(&self, dir: &Dir, name: &OsStr, mode: u32, mtime: libc::timespec) -> Result<()> {
        // The object itself, held: a process of the container swapping it for a symlink
        // meanwhile cannot redirect the chmod (chmod follows symlinks, by path).
        let obj = sys::openat(Self::fd(dir), name, libc::O_PATH | libc::O_NOFOLLOW, 0)
            .map_err(io_err("open in the container", name))?;
        let held = obj.as_raw_fd();
        // Rootless through a running container's root the owner is already its root.
        // SAFETY: fchownat on a descriptor we hold, AT_EMPTY_PATH: that very object.
        let _ = unsafe { libc::fchownat(held, c"".as_ptr(), 0, 0, libc::AT_EMPTY_PATH) };
        if sys::fstat(held)?.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Ok(());
        }
        let by_fd = PathBuf::from(format!("/proc/self/fd/{held}"));
        fs::set_permissions(&by_fd, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod in the container", name))?;
        let omit = libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        };
        let c = linux::cstr(&by_fd)?;
        // SAFETY: utimensat through the magic link of a descriptor we hold (followed:
        // it names that object, wherever it is).
        if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [omit, mtime].as_ptr(), 0) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(io_err("set times in the container", name)(e));
        }
        Ok(())
    }
}

/// A stopped container: its union opened offline, every change made by the union's own
/// operations (copy-up into the upper layer, whiteouts for what is replaced).
struct UnionSide {
    fs: UnionFs,
}

const ROOT_CALLER: Caller = Caller {
    uid: 0,
    gid: 0,
    owner_may_fail: false,
};

impl UnionSide {
    fn ino(d: &Dir) -> u64 {
        match d {
            Dir::Node(i) => *i,
            Dir::Fd(_) => 0,
        }
    }
    /// The node of NAME in DIR ("." is DIR), if there is one.
    fn child(&self, dir: &Dir, name: &OsStr) -> Result<Option<(u64, Stat)>> {
        let ino = Self::ino(dir);
        if name == "." {
            return Ok(Some((ino, self.fs.getattr(ino)?)));
        }
        match self.fs.lookup(ino, name) {
            Ok((node, st)) => Ok(Some((node.ino, st))),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT)) => Ok(None),
            Err(e) => Err(io_err("look up in the container", name)(e)),
        }
    }
    fn node(&self, dir: &Dir, name: &OsStr) -> Result<u64> {
        let not_found = || io_err("look up in the container", name)(sys::errno(libc::ENOENT));
        Ok(self.child(dir, name)?.ok_or_else(not_found)?.0)
    }
    /// Resolves `path` from the root as if the root were `/`: `..` stops at the root,
    /// symlinks (absolute or relative) restart inside it, at most 40 of them.
    fn resolve(&self, path: &Path) -> Result<u64> {
        let mut stack: Vec<u64> = vec![ROOT];
        let mut pending: Vec<OsString> = Vec::new();
        let push = |pending: &mut Vec<OsString>, p: &Path| {
            for c in p.components().rev() {
                match c {
                    Component::Normal(n) => pending.push(n.to_os_string()),
                    Component::ParentDir => pending.push("..".into()),
                    _ => {}
                }
            }
        };
        push(&mut pending, path);
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            if c == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let cur = Dir::Node(*stack.last().unwrap_or(&ROOT));
            let (ino, st) = self.child(&cur, &c)?.ok_or_else(|| {
                io_err("resolve in the container", path.as_os_str())(sys::errno(libc::ENOENT))
            })?;
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => stack.push(ino),
                libc::S_IFLNK => {
                    hops += 1;
                    if hops > 40 {
                        bail!("{}: too many levels of symbolic links", path.display());
                    }
                    let target = PathBuf::from(self.fs.readlink(ino)?);
                    if target.is_absolute() {
                        stack.truncate(1);
                    }
                    push(&mut pending, &target);
                }
                _ => {
                    let e = sys::errno(libc::ENOTDIR);
                    return Err(io_err("resolve in the container", path.as_os_str())(e));
                }
            }
        }
        Ok(*stack.last().unwrap_or(&ROOT))
    }
}

impl Side for UnionSide {
    fn parent_in_root(&self, path: &str) -> Result<(Dir, OsString)> {
        let (parent, leaf) = split_last(path);
        Ok((Dir::Node(self.resolve(&parent)?), leaf))
    }
    fn dir_in_root(&self, path: &str) -> Option<Dir> {
        self.resolve(Path::new(path)).ok().map(Dir::Node)
    }
    fn lstat(&self, dir: &Dir, name: &OsStr) -> Result<Option<Stat>> {
        Ok(self.child(dir, name)?.map(|(_, st)| st))
    }
    fn open_dir(&self, dir: &Dir, name: &OsStr) -> Result<Dir> {
        Ok(Dir::Node(self.node(dir, name)?))
    }
    fn list(&self, dir: &Dir) -> Result<Vec<OsString>> {
        let entries = self.fs.list_dir(Self::ino(dir))?;
        Ok(entries
            .into_iter()
            .map(|e| e.name)
            .filter(|n| n != "." && n != "..")
            .collect())
    }
    fn read(&self, dir: &Dir, name: &OsStr) -> Result<fs::File> {
        let (fd, _) = self.fs.open(self.node(dir, name)?, libc::O_RDONLY)?;
        Ok(fs::File::from(fd))
    }
    fn readlink(&self, dir: &Dir, name: &OsStr) -> Result<OsString> {
        Ok(self.fs.readlink(self.node(dir, name)?)?)
    }
    fn mkdir(&self, dir: &Dir, name: &OsStr) -> Result<()> {
        self.fs
            .mkdir(Self::ino(dir), name, 0o700, ROOT_CALLER)
            .map(drop)
            .map_err(io_err("mkdir in the container", name))
    }
    fn write(&self, dir: &Dir, name: &OsStr) -> Result<fs::File> {
        let fd = match self.child(dir, name)? {
            Some((ino, st)) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {
                self.fs.open(ino, libc::O_WRONLY | libc::O_TRUNC)?.0
            }
            Some(_) => {
                self.fs.unlink(Self::ino(dir), name)?;
                self.fs
                    .create(Self::ino(dir), name, 0o600, libc::O_WRONLY, ROOT_CALLER)?
                    .2
            }
            None => {
                self.fs
                    .create(Self::ino(dir), name, 0o600, libc::O_WRONLY, ROOT_CALLER)?
                    .2
            }
        };
        Ok(fs::File::from(fd))
    }
    fn symlink(&self, dir: &Dir, name: &OsStr, target: &OsStr) -> Result<()> {
        Ok(self
            .fs
            .symlink(Self::ino(dir), name, target, ROOT_CALLER)
            .map(drop)?)
    }
    fn unlink(&self, dir: &Dir, name: &OsStr) -> Result<()> {
        Ok(self.fs.unlink(Self::ino(dir), name)?)
    }
    fn mknod(&self, dir: &Dir, name: &OsStr, mode: u32, rdev: u64) -> Result<()> {
        Ok(self
            .fs
            .mknod(Self::ino(dir), name, mode, rdev, ROOT_CALLER)
            .map(drop)?)
    }
    fn finish(&self, dir: &Dir, name: &OsStr, mode: u32, mtime: libc::timespec) -> Result<()> {
        let (ino, st) = self
            .child(dir, name)?
            .ok_or_else(|| io_err("stat in the container", name)(sys::errno(libc::ENOENT)))?;
        let mut a = SetAttr {
            uid: Some(0),
            gid: Some(0),
            ..Default::default()
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            a.mode = Some(mode);
            a.mtime = Some(SetTime::At(mtime));
        }
        self.fs.setattr(ino, &a, None)?;
        Ok(())
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
fn out_tree(side: &dyn Side, dir: &Dir, name: &OsStr, st: &Stat, dst: &Path) -> Result<()> {
    let mode = st.st_mode & 0o7777;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            match fs::symlink_metadata(dst) {
                Ok(m) if m.is_dir() => {}
                _ => fs::create_dir(dst).map_err(io("mkdir", dst))?,
            }
            let sub = side.open_dir(dir, name)?;
            for child in side.list(&sub)? {
                if let Some(cst) = side.lstat(&sub, &child)? {
                    out_tree(side, &sub, &child, &cst, &dst.join(&child))?;
                }
            }
            fs::set_permissions(dst, fs::Permissions::from_mode(mode)).map_err(io("chmod", dst))?;
            let _ = fs::File::open(dst).and_then(|f| f.set_modified(mtime(st)));
        }
        libc::S_IFREG => {
            let mut src = side.read(dir, name)?;
            let _ = fs::remove_file(dst);
            let mut out = fs::File::create(dst).map_err(io("create", dst))?;
            std::io::copy(&mut src, &mut out).map_err(io("copy to", dst))?;
            out.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io("chmod", dst))?;
            let _ = out.set_modified(mtime(st));
        }
        libc::S_IFLNK => {
            let target = side.readlink(dir, name)?;
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

/// Copies the host object `src` to `name` in the container dir `dir`, never following
/// a symlink in the container (one in the way is replaced).
fn in_tree(
    side: &dyn Side,
    src: &Path,
    meta: &fs::Metadata,
    dir: &Dir,
    name: &OsStr,
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & 0o7777;
    let modified = libc::timespec {
        tv_sec: meta.mtime(),
        tv_nsec: meta.mtime_nsec(),
    };
    let existing = side.lstat(dir, name)?;
    let ft = meta.file_type();
    if ft.is_dir() {
        match existing {
            Some(st) if is_dir(&st) => {}
            Some(_) => bail!(
                "cannot copy a directory over the non-directory {}",
                name.to_string_lossy()
            ),
            None => side.mkdir(dir, name)?,
        }
        let sub = side.open_dir(dir, name)?;
        let mut names: Vec<OsString> = fs::read_dir(src)
            .map_err(io("listing", src))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(io("listing", src))?;
        names.sort();
        for n in names {
            let p = src.join(&n);
            let m = fs::symlink_metadata(&p).map_err(io("stat", &p))?;
            in_tree(side, &p, &m, &sub, &n)?;
        }
        return side.finish(dir, name, mode, modified);
    }
    if let Some(st) = existing {
        if is_dir(&st) {
            bail!(
                "cannot overwrite the directory {} with a non-directory",
                name.to_string_lossy()
            );
        }
        if !ft.is_file() || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            side.unlink(dir, name)?;
        }
    }
    if ft.is_file() {
        let mut from = fs::File::open(src).map_err(io("opening", src))?;
        let mut to = side.write(dir, name)?;
        std::io::copy(&mut from, &mut to).map_err(io("copy from", src))?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(io("readlink", src))?;
        side.symlink(dir, name, target.as_os_str())?;
    } else {
        side.mknod(dir, name, meta.mode(), meta.rdev())?;
    }
    side.finish(dir, name, mode, modified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_names() {
        let s = |p: &str| {
            let (a, b) = split_last(p);
            (
                a.to_string_lossy().into_owned(),
                b.to_string_lossy().into_owned(),
            )
        };
        assert_eq!(s("/"), (".".into(), ".".into()));
        assert_eq!(s("/etc"), (".".into(), "etc".into()));
        assert_eq!(s("/a/b/c"), ("a/b".into(), "c".into()));
        assert_eq!(s("a/./b/"), ("a".into(), "b".into()));
        // A path ending in `..` is resolved whole (inside the root), never named by `..`.
        assert_eq!(s("/a/.."), ("a/..".into(), ".".into()));
        assert_eq!(s("../.."), ("../..".into(), ".".into()));
        assert!(ends_with_dot("/d/.") && ends_with_dot(".") && !ends_with_dot("/d"));
    }
}
