//! Layer tar -> directory, with the tar safety rules (see `layer`).
use super::format::{DEVICE_PAX, WHITEOUT_PREFIX, copy_data, is_overlay_xattr};
use crate::error::Result;
use crate::error::{Context, io};
use crate::sys;
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// One tar member as it will be written: where, and the metadata it carries.
struct Member<'a> {
    rel: PathBuf,
    full: PathBuf,
    name: &'a [u8],
    pax: &'a HashMap<String, Vec<u8>>,
    mode: u32,
    atime: i64,
    mtime: i64,
    uid: u64,
    gid: u64,
}

impl Member<'_> {
    fn dir_meta(&self) -> DirMeta {
        DirMeta {
            path: self.rel.clone(),
            mode: self.mode,
            atime: self.atime,
            mtime: self.mtime,
        }
    }
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
        // Only a dir: a later member may have put a symlink in its place (`clear` drops
        // the dirs under a replaced one), and chmod follows symlinks.
        if !fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir()) {
            continue;
        }
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
        &mut tar::Entry<'_, TarStream<R>>,
        &[u8],
        Option<&[u8]>,
        &HashMap<String, Vec<u8>>,
    ) -> Result<()>,
) -> Result<()> {
    let data_end = Arc::new(AtomicU64::new(u64::MAX));
    let mut archive = tar::Archive::new(TarStream {
        inner: reader,
        pos: 0,
        data_end: data_end.clone(),
        padding: 0,
    });
    let entries = archive.entries().context("reading tar")?.raw(true);
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let mut pax: Option<Vec<u8>> = None;
    for entry in entries {
        let mut entry = entry.context("reading tar")?;
        let size = entry.header().entry_size().unwrap_or(0);
        let end = entry.raw_file_position().saturating_add(size);
        data_end.store(end, Ordering::Relaxed);
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

/// A tar stream that may end right after its last member's data, without the padding
/// to a whole block and the end-of-archive blocks: `umoci insert` writes such layers,
/// and Go's archive/tar (so docker, containerd and podman) reads them. An end of input
/// exactly where the current member's data ends reads as the missing padding; an end
/// anywhere else (inside data or a header) stays an error.
pub struct TarStream<R> {
    inner: R,
    pos: u64,
    /// Where the data of the member being read ends (set by `walk_entries`).
    data_end: Arc<AtomicU64>,
    padding: usize,
}

impl<R: Read> Read for TarStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.padding > 0 {
            let n = self.padding.min(buf.len());
            buf[..n].fill(0);
            self.padding -= n;
            self.pos += n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let at_data_end = self.pos == self.data_end.load(Ordering::Relaxed);
            let partial = (self.pos % TAR_BLOCK) as usize;
            if at_data_end && partial != 0 {
                self.padding = TAR_BLOCK as usize - partial;
                return self.read(buf);
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

const TAR_BLOCK: u64 = 512;

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
            .ok_or_else(|| invalid!("tar: malformed PAX record"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l: &usize| l > sp + 1 && l <= rest.len())
            .ok_or_else(|| invalid!("tar: malformed PAX record length"))?;
        let rec = &rest[sp + 1..len];
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| invalid!("tar: malformed PAX record"))?;
        let key = String::from_utf8_lossy(&rec[..eq]).into_owned();
        map.insert(key, rec[eq + 1..].to_vec());
        rest = &rest[len..];
    }
    Ok(map)
}

/// A tar member name as a relative path inside the tree ("" for the root itself).
/// An absolute name is resolved against the tree's root, as docker, containerd and
/// podman do (`umoci insert IMAGE DIR /` writes a member named `/`); `..` is refused
/// wherever it stands, so nothing can climb out.
pub fn safe_relative(name: &[u8]) -> Result<PathBuf> {
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
                    fs::create_dir(&full).map_err(io("creating", &full))?;
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
                self.dir_meta.retain(|d| !d.path.starts_with(rel));
                Ok(false)
            }
            Ok(_) => {
                fs::remove_file(&full).map_err(io("replacing", &full))?;
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
        let mtime = pax_time(pax, "mtime").unwrap_or_else(|| hdr.mtime().unwrap_or(0) as i64);
        let m = Member {
            full: self.dest.join(&rel),
            rel,
            name,
            pax,
            mode: hdr.mode().unwrap_or(0o644) & 0o7777,
            mtime,
            atime: pax_time(pax, "atime").unwrap_or(mtime),
            uid: pax_num(pax, "uid").unwrap_or_else(|| hdr.uid().unwrap_or(0)),
            gid: pax_num(pax, "gid").unwrap_or_else(|| hdr.gid().unwrap_or(0)),
        };
        if m.rel.as_os_str().is_empty() {
            if kind.is_dir() {
                self.dir_meta.push(m.dir_meta());
            }
            return Ok(()); // the root entry ("./") describes dest itself
        }
        self.parents(&m.rel, name, true)?;
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => self.regular(&m, entry),
            T::Directory => self.directory(m),
            T::Symlink => self.symlink(&m, link),
            T::Link => self.hard_link(&m, link),
            T::Char | T::Block | T::Fifo => self.special(&m, &hdr),
            T::GNUSparse => bail!("tar: {}: GNU sparse members are not supported", show(name)),
            other => {
                self.report.warnings.push(format!(
                    "skipped {} (unsupported tar member type {:?})",
                    show(name),
                    other
                ));
                Ok(())
            }
        }
    }

    fn regular(&mut self, m: &Member, data: &mut impl Read) -> Result<()> {
        let full = &m.full;
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(full)
        };
        // Try first, clear on EEXIST: saves an lstat per file.
        let mut f = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.clear(&m.rel, false)?;
                open().map_err(io("creating", full))?
            }
            Err(e) => return Err(io("creating", full)(e)),
        };
        copy_data(data, &mut f).map_err(io("writing", full))?;
        self.file_meta(&f, full, m.uid, m.gid, m.mode, m.pax);
        let _ = sys::futimens(f.as_raw_fd(), &times(m.atime, m.mtime));
        Ok(())
    }

    fn directory(&mut self, m: Member) -> Result<()> {
        if !self.clear(&m.rel, true)? {
            fs::create_dir(&m.full).map_err(io("creating", &m.full))?;
            let _ = fs::set_permissions(&m.full, fs::Permissions::from_mode(0o755));
        }
        self.dirs.insert(m.rel.clone());
        self.meta(&m.full, m.uid, m.gid, None, m.pax);
        self.dir_meta.push(m.dir_meta());
        Ok(())
    }

    fn symlink(&mut self, m: &Member, link: Option<&[u8]>) -> Result<()> {
        let name = m.name;
        // Its target is data: unpacking never writes through a symlink (members crossing
        // one are refused, files open with O_NOFOLLOW, dir modes go to dirs only), and in
        // the container `..` stops at the root. docker keeps such links too.
        let target = link.ok_or_else(|| invalid!("tar: {}: symlink without target", show(name)))?;
        self.clear(&m.rel, false)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &m.full)
            .map_err(io("creating symlink", &m.full))?;
        self.meta(&m.full, m.uid, m.gid, None, m.pax);
        set_times(&m.full, m.atime, m.mtime);
        Ok(())
    }

    fn hard_link(&mut self, m: &Member, link: Option<&[u8]>) -> Result<()> {
        let name = m.name;
        let target =
            link.ok_or_else(|| invalid!("tar: {}: hard link without target", show(name)))?;
        let refused = || format!("tar: {}: hard link target refused", show(name));
        let trel = safe_relative(target).with_context(refused)?;
        self.parents(&trel, target, false).with_context(refused)?;
        let tfull = self.dest.join(&trel);
        match fs::symlink_metadata(&tfull) {
            Ok(md) if !md.is_dir() => {}
            _ => bail!(
                "tar: {}: hard link to {} which is not an earlier member",
                show(name),
                show(target)
            ),
        }
        if trel == m.rel {
            return Ok(());
        }
        self.clear(&m.rel, false)?;
        fs::hard_link(&tfull, &m.full).map_err(io("linking", &m.full))?;
        Ok(())
    }

    /// A character or block device or a fifo; a char 0/0 without the device record is an
    /// overlay whiteout and is stored the OCI/AUFS way.
    fn special(&mut self, m: &Member, hdr: &tar::Header) -> Result<()> {
        use tar::EntryType as T;
        let kind = hdr.entry_type();
        let major = hdr.device_major().ok().flatten().unwrap_or(0);
        let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
        let full = &m.full;
        self.clear(&m.rel, false)?;
        let device00 = kind == T::Char && major == 0 && minor == 0;
        if device00 && !m.pax.contains_key(DEVICE_PAX) {
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(m.rel.file_name().unwrap_or_default());
            let wfull = full.with_file_name(wh);
            File::create(&wfull).map_err(io("creating", &wfull))?;
            return Ok(());
        }
        let fmt = match kind {
            T::Char => libc::S_IFCHR,
            T::Block => libc::S_IFBLK,
            _ => libc::S_IFIFO,
        };
        let dev = libc::makedev(major, minor);
        if let Err(err) = sys::mknodat(libc::AT_FDCWD, full.as_os_str(), fmt | m.mode, dev) {
            if kind != T::Fifo && err.raw_os_error() == Some(libc::EPERM) {
                self.skipped_devices += 1;
                return Ok(());
            }
            return Err(io("creating device", full)(err));
        }
        if device00 {
            mark_device(full)?;
        }
        self.meta(full, m.uid, m.gid, Some(m.mode), m.pax);
        set_times(full, m.atime, m.mtime);
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

/// Marks a character device 0/0 as a device for the union that reads this layer (the
/// mark a 0/0 made through the union carries), in the namespace that union uses.
fn mark_device(full: &Path) -> Result<()> {
    let user_ns = (unsafe { libc::geteuid() }) != 0 || !sys::in_initial_userns();
    let x = crate::whiteout::XattrNames::new(user_ns);
    sys::lsetxattr(libc::AT_FDCWD, full.as_os_str(), &x.device, b"", 0)
        .map_err(io("marking device", full))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(safe_relative(b"./a/b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(safe_relative(b"./").unwrap(), PathBuf::from(""));
        assert_eq!(safe_relative(b"/").unwrap(), PathBuf::from(""));
        assert_eq!(
            safe_relative(b"//etc/passwd").unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert!(safe_relative(b"/../x").is_err());
        assert!(safe_relative(b"/a/../../b").is_err());
        assert!(safe_relative(b"a/../../b").is_err());
    }

    /// A tar of one file whose stream is cut `cut` bytes before its end.
    fn cut_tar(data: &[u8], cut: usize) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "f", data).unwrap();
        let mut v = b.into_inner().unwrap();
        v.truncate(v.len() - cut);
        v
    }

    fn member_data(tar: &[u8]) -> Result<Vec<u8>> {
        let mut got = Vec::new();
        walk_entries(tar, |e, _, _, _| {
            e.read_to_end(&mut got).context("reading")?;
            Ok(())
        })?;
        Ok(got)
    }

    #[test]
    fn a_tar_may_end_right_after_its_last_data() {
        // 1024 end blocks + 509 padding bytes gone: what `umoci insert` writes
        assert_eq!(member_data(&cut_tar(b"hi\n", 1024 + 509)).unwrap(), b"hi\n");
        // the end blocks gone
        assert_eq!(member_data(&cut_tar(b"hi\n", 1024)).unwrap(), b"hi\n");
        // cut inside the padding, or inside the data: refused
        assert!(member_data(&cut_tar(b"hi\n", 1024 + 100)).is_err());
        assert!(member_data(&cut_tar(b"hi\n", 1024 + 510)).is_err());
    }

    #[test]
    fn pax_records() {
        let m = parse_pax(Some(b"29 SCHILY.xattr.user.a=hello\n11 path=ab\n")).unwrap();
        assert_eq!(m["SCHILY.xattr.user.a"], b"hello");
        assert_eq!(m["path"], b"ab");
        assert!(parse_pax(Some(b"999 x=y\n")).is_err());
    }
}
