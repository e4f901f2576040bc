//! Layer tar <-> directory.
//!
//! Unpacking keeps OCI whiteouts as they are in the tar: `.wh.NAME` files and
//! `.wh..wh..opq` markers. That is the AUFS on-disk format, which the union FS reads in
//! lower layers, and it needs no privilege (a 0/0 char device cannot be made rootless).
//! A 0/0 char device found in a tar (overlay-style whiteout) becomes `.wh.NAME`.
//!
//! Every tar is read with the same rules: no absolute names, no `..`, no name that
//! crosses a symlink, no hard link to a name outside the tree or not yet unpacked, no
//! relative symlink that climbs above the tree (absolute ones are fine: they resolve
//! inside the container's root), no oversized metadata header. Devices that cannot be
//! made (rootless) are skipped with a warning. The caller unpacks into a fresh temp dir
//! and deletes it on error, so a refused archive leaves nothing behind.
//!
//! Packing walks a directory (a container's upper layer, or a rootfs) and writes OCI
//! whiteouts for both on-disk formats, keeping hard links, owners, modes, times and
//! xattrs (as PAX `SCHILY.xattr.*`), and dropping overlay's private xattrs.
use crate::merged;
use crate::sys;
use anyhow::{Context, Result, anyhow, bail};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Longest GNU long-name or PAX record we accept; real ones are a few KiB at most.
const MAX_META_HEADER: u64 = 1 << 20;

/// What an unpack did besides writing files.
#[derive(Debug, Default)]
pub struct UnpackReport {
    pub warnings: Vec<String>,
    pub entries: u64,
}

struct DirMeta {
    path: PathBuf,
    mode: u32,
    atime: i64,
    mtime: i64,
}

struct Unpacker<'a> {
    dest: &'a Path,
    /// Relative dirs known to be real directories (not symlinks) in dest.
    dirs: HashSet<PathBuf>,
    dir_meta: Vec<DirMeta>,
    is_root: bool,
    report: UnpackReport,
    skipped_devices: u64,
}

/// Unpacks an uncompressed layer tar into `dest` (an existing, normally empty dir).
pub fn unpack<R: Read>(reader: R, dest: &Path) -> Result<UnpackReport> {
    let mut u = Unpacker {
        dest,
        dirs: HashSet::new(),
        dir_meta: Vec::new(),
        is_root: unsafe { libc::geteuid() } == 0,
        report: UnpackReport::default(),
        skipped_devices: 0,
    };
    u.dirs.insert(PathBuf::new());
    walk_entries(reader, |entry, name, link, pax| {
        u.entry(entry, name, link, pax)?;
        u.report.entries += 1;
        Ok(())
    })?;
    // Directory modes and times last: children changed their mtimes, and a read-only
    // directory would have blocked its children.
    for d in u.dir_meta.iter().rev() {
        let full = u.dest.join(&d.path);
        let _ = fs::set_permissions(&full, fs::Permissions::from_mode(d.mode));
        set_times(&full, d.atime, d.mtime);
    }
    if u.skipped_devices > 0 {
        let w = format!(
            "skipped {} device node(s): not permitted here (rootless?)",
            u.skipped_devices
        );
        u.report.warnings.push(w);
    }
    Ok(u.report)
}

/// Calls `f` for every member of a tar with its full name, link target and PAX
/// records, resolving GNU long names and PAX headers with a size limit.
pub fn walk_entries<R: Read>(
    reader: R,
    mut f: impl FnMut(
        &mut tar::Entry<'_, R>,
        &[u8],
        Option<&[u8]>,
        &HashMap<String, Vec<u8>>,
    ) -> Result<()>,
) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().context("reading tar")?.raw(true);
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let mut pax: Option<Vec<u8>> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| anyhow!("reading tar: {e}"))?;
        let kind = entry.header().entry_type();
        let is_meta = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if is_meta {
            let size = entry.header().entry_size().unwrap_or(u64::MAX);
            if size > MAX_META_HEADER {
                bail!(
                    "tar: oversized {} header ({size} bytes, limit {MAX_META_HEADER})",
                    kind_name(kind)
                );
            }
            let mut data = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut data)
                .context("reading tar header data")?;
            if kind.is_gnu_longname() {
                long_name = Some(trim_nul(data));
            } else if kind.is_gnu_longlink() {
                long_link = Some(trim_nul(data));
            } else if kind.is_pax_local_extensions() {
                pax = Some(data);
            }
            continue;
        }
        let pax_map = parse_pax(pax.take().as_deref())?;
        let name = match (pax_map.get("path"), long_name.take()) {
            (Some(p), _) => p.clone(),
            (None, Some(n)) => n,
            (None, None) => entry.header().path_bytes().into_owned(),
        };
        let link = match (pax_map.get("linkpath"), long_link.take()) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(n)) => Some(n),
            (None, None) => entry.header().link_name_bytes().map(|c| c.into_owned()),
        };
        if let Some(sz) = pax_map.get("size") {
            let sz: u64 = std::str::from_utf8(sz)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            if sz != entry.header().entry_size().unwrap_or(0) {
                bail!("tar: {}: PAX size override is not supported", show(&name));
            }
        }
        f(&mut entry, &name, link.as_deref(), &pax_map)?;
    }
    if long_name.is_some() || long_link.is_some() || pax.is_some() {
        bail!("tar: truncated archive (extension header without a member)");
    }
    Ok(())
}

fn kind_name(k: tar::EntryType) -> &'static str {
    if k.is_gnu_longname() {
        "GNU long name"
    } else if k.is_gnu_longlink() {
        "GNU long link"
    } else {
        "PAX"
    }
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn show(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

/// PAX records: "LEN key=value\n".
fn parse_pax(data: Option<&[u8]>) -> Result<HashMap<String, Vec<u8>>> {
    let mut map = HashMap::new();
    let Some(mut rest) = data else { return Ok(map) };
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&c| c == b' ')
            .ok_or_else(|| anyhow!("tar: malformed PAX record"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l: &usize| l > sp + 1 && l <= rest.len())
            .ok_or_else(|| anyhow!("tar: malformed PAX record length"))?;
        let rec = &rest[sp + 1..len];
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| anyhow!("tar: malformed PAX record"))?;
        let key = String::from_utf8_lossy(&rec[..eq]).into_owned();
        map.insert(key, rec[eq + 1..].to_vec());
        rest = &rest[len..];
    }
    Ok(map)
}

/// A tar member name as a relative path inside the tree ("" for the root itself).
pub fn safe_relative(name: &[u8]) -> Result<PathBuf> {
    if name.first() == Some(&b'/') {
        bail!("tar: {}: absolute name refused", show(name));
    }
    let mut out = PathBuf::new();
    for comp in name.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => bail!("tar: {}: name with '..' refused", show(name)),
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

/// Whether a relative symlink target, seen from the dir `parent`, stays in the tree.
fn symlink_stays_inside(parent: &Path, target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        return true; // resolved against the container's root, never the host's
    }
    let mut depth = parent.components().count() as i64;
    for comp in target.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

impl Unpacker<'_> {
    /// Makes sure every parent of `rel` is a real directory, creating missing ones.
    fn parents(&mut self, rel: &Path, name: &[u8], create: bool) -> Result<()> {
        let mut cur = PathBuf::new();
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        for comp in parent.components() {
            cur.push(comp);
            if self.dirs.contains(&cur) {
                continue;
            }
            let full = self.dest.join(&cur);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    bail!(
                        "tar: {}: name crosses the symlink {}",
                        show(name),
                        cur.display()
                    )
                }
                Ok(_) => bail!(
                    "tar: {}: parent {} is not a directory",
                    show(name),
                    cur.display()
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&full)
                        .with_context(|| format!("creating {}", full.display()))?;
                    let _ = fs::set_permissions(&full, fs::Permissions::from_mode(0o755));
                }
                Err(e) => bail!("tar: {}: parent {}: {e}", show(name), cur.display()),
            }
            self.dirs.insert(cur.clone());
        }
        Ok(())
    }

    /// Removes whatever is at `rel` unless it is a dir and `keep_dir`.
    fn clear(&mut self, rel: &Path, keep_dir: bool) -> Result<bool> {
        let full = self.dest.join(rel);
        match fs::symlink_metadata(&full) {
            Err(_) => Ok(false),
            Ok(m) if m.is_dir() => {
                if keep_dir {
                    return Ok(true);
                }
                crate::util::remove_tree(&full);
                self.dirs.retain(|d| !d.starts_with(rel));
                Ok(false)
            }
            Ok(_) => {
                fs::remove_file(&full).with_context(|| format!("replacing {}", full.display()))?;
                Ok(false)
            }
        }
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        name: &[u8],
        link: Option<&[u8]>,
        pax: &HashMap<String, Vec<u8>>,
    ) -> Result<()> {
        let rel = safe_relative(name)?;
        let hdr = entry.header().clone();
        let kind = hdr.entry_type();
        let mode = hdr.mode().unwrap_or(0o644) & 0o7777;
        let mtime = pax_time(pax, "mtime").unwrap_or_else(|| hdr.mtime().unwrap_or(0) as i64);
        let atime = pax_time(pax, "atime").unwrap_or(mtime);
        let uid = pax_num(pax, "uid").unwrap_or_else(|| hdr.uid().unwrap_or(0));
        let gid = pax_num(pax, "gid").unwrap_or_else(|| hdr.gid().unwrap_or(0));
        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                self.dir_meta.push(DirMeta {
                    path: rel,
                    mode,
                    atime,
                    mtime,
                });
            }
            return Ok(()); // the root entry ("./") describes dest itself
        }
        self.parents(&rel, name, true)?;
        let full = self.dest.join(&rel);
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => {
                let open = || {
                    OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                        .open(&full)
                };
                // Try first, clear on EEXIST: saves an lstat per file.
                let mut f = match open() {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        self.clear(&rel, false)?;
                        open().with_context(|| format!("creating {}", full.display()))?
                    }
                    Err(e) => {
                        return Err(e).with_context(|| format!("creating {}", full.display()));
                    }
                };
                copy_data(entry, &mut f).with_context(|| format!("writing {}", full.display()))?;
                self.file_meta(&f, &full, uid, gid, mode, pax);
                let _ = sys::futimens(f.as_raw_fd(), &times(atime, mtime));
            }
            T::Directory => {
                if !self.clear(&rel, true)? {
                    fs::create_dir(&full)
                        .with_context(|| format!("creating {}", full.display()))?;
                    let _ = fs::set_permissions(&full, fs::Permissions::from_mode(0o755));
                }
                self.dirs.insert(rel.clone());
                self.meta(&full, uid, gid, None, pax);
                self.dir_meta.push(DirMeta {
                    path: rel,
                    mode,
                    atime,
                    mtime,
                });
            }
            T::Symlink => {
                let target =
                    link.ok_or_else(|| anyhow!("tar: {}: symlink without target", show(name)))?;
                if !symlink_stays_inside(rel.parent().unwrap_or(Path::new("")), target) {
                    bail!(
                        "tar: {}: symlink to {} points outside the tree",
                        show(name),
                        show(target)
                    );
                }
                self.clear(&rel, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &full)
                    .with_context(|| format!("creating symlink {}", full.display()))?;
                self.meta(&full, uid, gid, None, pax);
                set_times(&full, atime, mtime);
            }
            T::Link => {
                let target =
                    link.ok_or_else(|| anyhow!("tar: {}: hard link without target", show(name)))?;
                let trel = safe_relative(target)
                    .map_err(|e| anyhow!("tar: {}: hard link target refused: {e}", show(name)))?;
                self.parents(&trel, target, false)
                    .map_err(|e| anyhow!("tar: {}: hard link target refused: {e}", show(name)))?;
                let tfull = self.dest.join(&trel);
                match fs::symlink_metadata(&tfull) {
                    Ok(m) if !m.is_dir() => {}
                    _ => bail!(
                        "tar: {}: hard link to {} which is not an earlier member",
                        show(name),
                        show(target)
                    ),
                }
                if trel == rel {
                    return Ok(());
                }
                self.clear(&rel, false)?;
                fs::hard_link(&tfull, &full)
                    .with_context(|| format!("linking {}", full.display()))?;
            }
            T::Char | T::Block | T::Fifo => {
                let major = hdr.device_major().ok().flatten().unwrap_or(0);
                let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
                self.clear(&rel, false)?;
                if kind == T::Char && major == 0 && minor == 0 {
                    // Overlay-style whiteout: store it the OCI/AUFS way.
                    let base = rel.file_name().unwrap_or_default();
                    let mut wh = OsString::from(WHITEOUT_PREFIX);
                    wh.push(base);
                    let wfull = full.with_file_name(wh);
                    File::create(&wfull)
                        .with_context(|| format!("creating {}", wfull.display()))?;
                    return Ok(());
                }
                let fmt = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = libc::makedev(major, minor);
                let made = sys::mknodat(libc::AT_FDCWD, full.as_os_str(), fmt | mode, dev);
                if let Err(err) = made {
                    if kind != T::Fifo && err.raw_os_error() == Some(libc::EPERM) {
                        self.skipped_devices += 1;
                        return Ok(());
                    }
                    bail!("creating device {}: {err}", full.display());
                }
                self.meta(&full, uid, gid, Some(mode), pax);
                set_times(&full, atime, mtime);
            }
            T::GNUSparse => bail!("tar: {}: GNU sparse members are not supported", show(name)),
            other => {
                self.report.warnings.push(format!(
                    "skipped {} (unsupported tar member type {:?})",
                    show(name),
                    other
                ));
            }
        }
        Ok(())
    }

    /// Owner, xattrs and mode (in that order: chown clears set-id bits).
    /// As `meta`, through an open file (no path lookups).
    fn file_meta(
        &mut self,
        f: &File,
        full: &Path,
        uid: u64,
        gid: u64,
        mode: u32,
        pax: &HashMap<String, Vec<u8>>,
    ) {
        let fd = f.as_raw_fd();
        if self.is_root {
            let _ = sys::fchown(fd, uid as libc::uid_t, gid as libc::gid_t);
        }
        for (k, v) in pax {
            if let Some(attr) = image_xattr(k)
                && let Err(e) = xattr::FileExt::set_xattr(f, attr, v)
            {
                self.report
                    .warnings
                    .push(format!("{}: xattr {attr} not kept: {e}", full.display()));
            }
        }
        let _ = sys::fchmod(fd, mode as libc::mode_t);
    }

    fn meta(
        &mut self,
        full: &Path,
        uid: u64,
        gid: u64,
        mode: Option<u32>,
        pax: &HashMap<String, Vec<u8>>,
    ) {
        if self.is_root {
            // EINVAL/EPERM: an id not mapped in this user namespace; keep ours.
            let _ = sys::fchownat(
                libc::AT_FDCWD,
                full.as_os_str(),
                uid as libc::uid_t,
                gid as libc::gid_t,
            );
        }
        for (k, v) in pax {
            if let Some(attr) = image_xattr(k)
                && let Err(e) = xattr::set(full, attr, v)
            {
                self.report
                    .warnings
                    .push(format!("{}: xattr {attr} not kept: {e}", full.display()));
            }
        }
        if let Some(m) = mode {
            let _ = fs::set_permissions(full, fs::Permissions::from_mode(m));
        }
    }
}

/// The xattr a PAX key carries, unless it is overlay's own: a layer must not be able
/// to plant opaque or redirect markers for the union file system.
fn image_xattr(key: &str) -> Option<&str> {
    let attr = key.strip_prefix("SCHILY.xattr.")?;
    (!is_overlay_xattr(OsStr::new(attr))).then_some(attr)
}

fn pax_num(pax: &HashMap<String, Vec<u8>>, key: &str) -> Option<u64> {
    std::str::from_utf8(pax.get(key)?).ok()?.parse().ok()
}

fn pax_time(pax: &HashMap<String, Vec<u8>>, key: &str) -> Option<i64> {
    let s = std::str::from_utf8(pax.get(key)?).ok()?;
    s.split('.').next()?.parse().ok()
}

/// Access and modification times, whole seconds.
fn times(atime: i64, mtime: i64) -> [libc::timespec; 2] {
    let at = |secs: i64| libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    [at(atime), at(mtime)]
}

/// Sets a path's times without following a symlink.
fn set_times(path: &Path, atime: i64, mtime: i64) {
    let _ = sys::utimensat(libc::AT_FDCWD, path.as_os_str(), &times(atime, mtime));
}

/// Copies with a large buffer (tar entries are not files, so no copy_file_range).
pub fn copy_data(r: &mut impl Read, w: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

// ---------------------------------------------------------------------------------
// Packing

/// Where a merged-view file's data lives when the upper copy is metadata only
/// (overlay metacopy): the lower layers to search, top first.
#[derive(Default, Clone)]
pub struct PackOptions {
    pub lowers: Vec<PathBuf>,
    /// Leave out the empty mount points a runner puts in a container's upper layer
    /// (/dev, /proc, /sys, /etc/hosts, ...) when no lower layer has them.
    pub skip_runtime_mountpoints: bool,
    /// A container's hard-link index (`WORK/index`, over the upper dir as the top layer):
    /// names overlayfs serves from it go in as the copy it holds (`merged::walk_indexed`).
    pub index: Option<PathBuf>,
}

/// Paths the runner creates (empty) as mount points; never a change of the user's.
pub const RUNTIME_MOUNTPOINTS: &[&str] = &[
    "dev",
    "proc",
    "sys",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    ".dockerenv",
];

/// Whether `rel` (in an upper layer) is only a runtime mount point: listed above,
/// empty, and absent from every lower layer.
pub fn is_runtime_mountpoint(
    rel: &Path,
    full: &Path,
    meta: &fs::Metadata,
    lowers: &[PathBuf],
) -> bool {
    let Some(r) = rel.to_str() else { return false };
    if !RUNTIME_MOUNTPOINTS.contains(&r) {
        return false;
    }
    let empty = if meta.is_dir() {
        fs::read_dir(full)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
    } else {
        meta.is_file() && meta.len() == 0
    };
    empty && merged::lookup(lowers, rel).is_none()
}

/// Overlay's private xattrs, never part of an image.
pub fn is_overlay_xattr(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(b"trusted.overlay.") || b.starts_with(b"user.overlay.")
}

fn overlay_xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    for ns in ["trusted.overlay.", "user.overlay."] {
        if let Ok(Some(v)) = xattr::get(path, format!("{ns}{key}")) {
            return Some(v);
        }
    }
    None
}

/// Whether a dir is marked opaque the overlay way.
pub fn is_overlay_opaque(path: &Path) -> bool {
    overlay_xattr(path, "opaque").is_some_and(|v| v == b"y")
}

/// Whether a file is an overlay whiteout (char device 0/0).
pub fn is_overlay_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Writes tar entries for a directory tree as an OCI layer.
pub struct LayerWriter<W: Write> {
    builder: tar::Builder<W>,
    links: HashMap<(u64, u64), PathBuf>,
    opts: PackOptions,
    pub bytes: u64,
}

impl<W: Write> LayerWriter<W> {
    pub fn new(out: W, opts: PackOptions) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        LayerWriter {
            builder,
            links: HashMap::new(),
            opts,
            bytes: 0,
        }
    }

    pub fn finish(self) -> Result<W> {
        Ok(self.builder.into_inner()?)
    }

    /// Packs the merged view of `layers` (top first) as one flat layer (export, squash).
    pub fn pack_merged(&mut self, layers: &[PathBuf], progress: &mut dyn FnMut(u64)) -> Result<()> {
        let index = self.opts.index.clone();
        merged::walk_indexed(layers, index.as_deref(), &mut |rel, src, meta| {
            progress(self.entry(src, rel, meta)?);
            Ok(())
        })
    }

    /// After the upper dir: the names overlayfs serves from the hard-link index while they
    /// are still only below (a lower file with hard links, one of them copied up) go in
    /// too, as links to the copy, with the dirs above them, so the image shows what the
    /// container showed. Names under a renamed dir went in with it.
    fn pack_indexed_names(
        &mut self,
        upper: &Path,
        index: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let has_entries = fs::read_dir(index).is_ok_and(|mut d| d.next().is_some());
        if !has_entries {
            return Ok(());
        }
        let mut layers = vec![upper.to_path_buf()];
        layers.extend(self.opts.lowers.iter().cloned());
        let mut dirs: HashMap<PathBuf, (PathBuf, fs::Metadata)> = HashMap::new();
        let mut served = Vec::new();
        merged::walk_indexed(&layers, Some(index), &mut |rel, src, meta| {
            if meta.is_dir() {
                dirs.insert(rel.to_path_buf(), (src.to_path_buf(), meta.clone()));
            } else if src.starts_with(index) {
                served.push((rel.to_path_buf(), src.to_path_buf(), meta.clone()));
            }
            Ok(())
        })?;
        let mut made: HashSet<PathBuf> = HashSet::new();
        for (rel, src, meta) in served {
            let above: Vec<&Path> = rel
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .collect();
            if above
                .iter()
                .any(|a| overlay_xattr(&upper.join(a), "redirect").is_some())
            {
                continue;
            }
            for a in above.into_iter().rev() {
                if upper.join(a).is_dir() || !made.insert(a.to_path_buf()) {
                    continue;
                }
                if let Some((dsrc, dmeta)) = dirs.get(a) {
                    self.entry(dsrc, a, dmeta)?;
                }
            }
            progress(self.entry(&src, &rel, &meta)?);
        }
        Ok(())
    }

    /// Packs the whole tree under `src` (relative names, no leading "./").
    pub fn pack_tree(&mut self, src: &Path, progress: &mut dyn FnMut(u64)) -> Result<()> {
        self.pack_dir(src, Path::new(""), progress)?;
        match self.opts.index.clone() {
            Some(index) => self.pack_indexed_names(src, &index, progress),
            None => Ok(()),
        }
    }

    fn pack_dir(&mut self, dir: &Path, rel: &Path, progress: &mut dyn FnMut(u64)) -> Result<()> {
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .with_context(|| format!("reading {}", dir.display()))?;
        names.sort();
        for name in names {
            let full = dir.join(&name);
            let crel = rel.join(&name);
            let meta = fs::symlink_metadata(&full)
                .with_context(|| format!("reading {}", full.display()))?;
            let nb = name.as_bytes();
            if nb.starts_with(b".wh..wh.") && nb != OPAQUE_MARKER.as_bytes() {
                continue; // AUFS bookkeeping (.wh..wh..plnk, .wh..wh..orph)
            }
            if self.opts.skip_runtime_mountpoints
                && is_runtime_mountpoint(&crel, &full, &meta, &self.opts.lowers)
            {
                continue;
            }
            if is_overlay_whiteout(&meta) {
                let mut wh = OsString::from(WHITEOUT_PREFIX);
                wh.push(&name);
                self.empty_file(&rel.join(wh), &meta)?;
                continue;
            }
            // An aufs whiteout: always a file of its own in the tar, though on disk the
            // whiteouts of a layer share one inode (hard links).
            if nb.starts_with(WHITEOUT_PREFIX.as_bytes()) && meta.is_file() {
                self.empty_file(&crel, &meta)?;
                continue;
            }
            if meta.is_dir() {
                self.entry(&full, &crel, &meta)?;
                if let Some(from) = overlay_xattr(&full, "redirect") {
                    self.pack_redirected(&full, &crel, &from, progress)?;
                    continue;
                }
                if is_overlay_opaque(&full) && !full.join(OPAQUE_MARKER).exists() {
                    self.empty_file(&crel.join(OPAQUE_MARKER), &meta)?;
                }
                self.pack_dir(&full, &crel, progress)?;
            } else if meta.file_type().is_socket() {
                // A socket cannot go in a tar; where it hid a lower name, the layer still
                // hides that name.
                if merged::lookup(&self.opts.lowers, &crel).is_some() {
                    let mut wh = OsString::from(WHITEOUT_PREFIX);
                    wh.push(&name);
                    self.empty_file(&rel.join(wh), &meta)?;
                }
            } else {
                let n = self.entry(&full, &crel, &meta)?;
                progress(n);
            }
        }
        Ok(())
    }

    /// A dir renamed in the container (overlay redirect): the upper copy holds only
    /// its changes, the rest is still at the old path below. The layer gets it whole,
    /// as an opaque dir with the merged content.
    fn pack_redirected(
        &mut self,
        full: &Path,
        rel: &Path,
        from: &[u8],
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let from = if from.first() == Some(&b'/') {
            PathBuf::from(OsStr::from_bytes(&from[1..]))
        } else {
            rel.with_file_name(OsStr::from_bytes(from))
        };
        let meta = fs::symlink_metadata(full)?;
        self.empty_file(&rel.join(OPAQUE_MARKER), &meta)?;
        // Layer 0 is the upper (the tree `pack_tree` packs, `rel` above `full`); a
        // redirect inside resolves against the real layer roots.
        let upper = full
            .ancestors()
            .nth(rel.components().count())
            .unwrap_or(full);
        let mut layers = vec![upper.to_path_buf()];
        layers.extend(self.opts.lowers.iter().cloned());
        let mut sources = vec![(0, full.to_path_buf())];
        sources.extend(merged::descend(
            merged::layer_roots(&layers, 1),
            from.as_os_str(),
        ));
        let index = self.opts.index.clone();
        merged::walk_sources(&layers, index.as_deref(), sources, &mut |r, src, m| {
            let n = self.entry(src, &rel.join(r), m)?;
            progress(n);
            Ok(())
        })
    }

    fn empty_file(&mut self, rel: &Path, like: &fs::Metadata) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(like.mtime().max(0) as u64);
        h.set_size(0);
        self.builder.append_data(&mut h, rel, io::empty())?;
        Ok(())
    }

    /// One entry for the file at `full`, named `rel` in the tar; returns data bytes.
    pub fn entry(&mut self, full: &Path, rel: &Path, meta: &fs::Metadata) -> Result<u64> {
        let ft = meta.file_type();
        if ft.is_socket() {
            // Sockets have no place in an image (nor as the first name of a hard link).
            return Ok(0);
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid() as u64);
        h.set_gid(meta.gid() as u64);
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_size(0);
        let mut xattrs: Vec<(OsString, Vec<u8>)> = Vec::new();
        if !ft.is_symlink()
            && let Ok(list) = xattr::list(full)
        {
            for n in list {
                if is_overlay_xattr(&n) {
                    continue;
                }
                if let Ok(Some(v)) = xattr::get(full, &n) {
                    xattrs.push((n, v));
                }
            }
        }
        // An index entry stands for every name of a lower hard link, whatever its own
        // link count (1 once no upper name is left).
        let from_index = (self.opts.index.as_deref()).is_some_and(|ix| full.starts_with(ix));
        if !meta.is_dir() && (meta.nlink() > 1 || from_index) {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                h.set_entry_type(tar::EntryType::Link);
                self.builder.append_link(&mut h, rel, &first)?;
                return Ok(0);
            }
            self.links.insert(key, rel.to_path_buf());
        }
        self.pax(rel, &xattrs)?;
        if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            let data_path = if overlay_xattr(full, "metacopy").is_some() {
                self.metacopy_source(full, rel)?
            } else {
                full.to_path_buf()
            };
            let f = File::open(&data_path)
                .with_context(|| format!("reading {}", data_path.display()))?;
            let len = f.metadata()?.len();
            h.set_size(len);
            self.builder.append_data(&mut h, rel, f.take(len))?;
            self.bytes += len;
            return Ok(len);
        }
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            let mut name = rel.as_os_str().to_owned();
            name.push("/");
            self.builder.append_data(&mut h, name, io::empty())?;
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = fs::read_link(full)?;
            self.builder.append_link(&mut h, rel, target)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            let rdev = meta.rdev();
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            self.builder.append_data(&mut h, rel, io::empty())?;
        }
        Ok(0)
    }

    /// The lower file holding the data of a metadata-only copy-up.
    fn metacopy_source(&self, full: &Path, rel: &Path) -> Result<PathBuf> {
        let origin = match overlay_xattr(full, "redirect") {
            Some(r) if r.first() == Some(&b'/') => PathBuf::from(OsStr::from_bytes(&r[1..])),
            Some(r) => rel.with_file_name(OsStr::from_bytes(&r)),
            None => rel.to_path_buf(),
        };
        for l in &self.opts.lowers {
            let p = l.join(&origin);
            if fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                return Ok(p);
            }
        }
        bail!(
            "{}: metacopy file whose data is in no lower layer",
            full.display()
        )
    }

    fn pax(&mut self, rel: &Path, xattrs: &[(OsString, Vec<u8>)]) -> Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        for (k, v) in xattrs {
            let mut body = b"SCHILY.xattr.".to_vec();
            body.extend_from_slice(k.as_bytes());
            body.push(b'=');
            body.extend_from_slice(v);
            body.push(b'\n');
            // The length field counts itself: find the fixed point.
            let mut len = body.len() + 2;
            loop {
                let total = body.len() + 1 + len.to_string().len();
                if total == len {
                    break;
                }
                len = total;
            }
            data.extend_from_slice(format!("{len} ").as_bytes());
            data.extend_from_slice(&body);
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        let base = rel
            .file_name()
            .map(|b| b.as_bytes().to_vec())
            .unwrap_or_default();
        let mut pname = b"PaxHeaders.0/".to_vec();
        pname.extend_from_slice(&base[..base.len().min(80)]);
        h.set_path(OsStr::from_bytes(&pname))
            .or_else(|_| h.set_path("PaxHeaders.0/x"))?;
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.builder.append(&h, &data[..])?;
        Ok(())
    }
}

/// For tests and logs: "a/b" as a relative path string.
pub fn rel_display(p: &Path) -> String {
    let mut s = String::new();
    for c in p.components() {
        if let Component::Normal(n) = c {
            s.push('/');
            s.push_str(&n.to_string_lossy());
        }
    }
    if s.is_empty() { "/".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(safe_relative(b"./a/b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(safe_relative(b"./").unwrap(), PathBuf::from(""));
        assert!(safe_relative(b"/etc/passwd").is_err());
        assert!(safe_relative(b"a/../../b").is_err());
        assert!(symlink_stays_inside(Path::new("a/b"), b"../../c"));
        assert!(!symlink_stays_inside(Path::new("a/b"), b"../../../c"));
        assert!(symlink_stays_inside(Path::new(""), b"/etc/passwd"));
    }

    #[test]
    fn hard_linked_aufs_whiteouts_pack_as_files_of_their_own() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::write(d.join(".wh.a"), b"").unwrap();
        fs::hard_link(d.join(".wh.a"), d.join(".wh.b")).unwrap();
        fs::write(d.join("x"), b"data").unwrap();
        fs::hard_link(d.join("x"), d.join("y")).unwrap();
        let mut w = LayerWriter::new(Vec::new(), PackOptions::default());
        w.pack_tree(d, &mut |_| {}).unwrap();
        let tar = w.finish().unwrap();
        let mut kinds = std::collections::BTreeMap::new();
        for e in tar::Archive::new(&tar[..]).entries().unwrap() {
            let e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            kinds.insert(name, e.header().entry_type());
        }
        assert_eq!(kinds[".wh.a"], tar::EntryType::Regular);
        assert_eq!(kinds[".wh.b"], tar::EntryType::Regular);
        // Real hard links stay links.
        assert_eq!(kinds["y"], tar::EntryType::Link);
    }

    #[test]
    fn pax_records() {
        let m = parse_pax(Some(b"29 SCHILY.xattr.user.a=hello\n11 path=ab\n")).unwrap();
        assert_eq!(m["SCHILY.xattr.user.a"], b"hello");
        assert_eq!(m["path"], b"ab");
        assert!(parse_pax(Some(b"999 x=y\n")).is_err());
    }
}
