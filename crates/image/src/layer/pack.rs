//! Directory -> layer tar: a container's upper layer as the layer `commit` adds, or a
//! merged view (export, squash) as one flat layer.
use super::format::{DEVICE_PAX, OPAQUE_MARKER, WHITEOUT_PREFIX, is_overlay_xattr};
use crate::error::Result;
use crate::error::{Context, io};
use crate::unionfs::{MergedView, ViewEntry};
use crate::views;
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Default, Clone)]
pub struct PackOptions {
    /// The container's lower layers, top first (the view the upper is packed over).
    pub lowers: Vec<PathBuf>,
    /// Leave out the empty mount points a runner puts in a container's upper layer
    /// (/dev, /proc, /sys, /etc/hosts, ...) when no lower layer has them.
    pub skip_runtime_mountpoints: bool,
    /// A container's hard-link index (`WORK/index`, over the upper dir as the top layer):
    /// names the union serves from it go in as the copy it holds.
    pub index: Option<PathBuf>,
}

/// An upper dir read two ways while it is packed: as the union shows it over the lowers,
/// and the lowers alone.
struct Views {
    all: MergedView,
    below: MergedView,
}

/// A character device 0/0: a whiteout in an overlay-format upper, unless marked a device.
fn is_chardev00(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn overlay_xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    for ns in ["trusted.overlay.", "user.overlay."] {
        if let Ok(Some(v)) = xattr::get(path, format!("{ns}{key}")) {
            return Some(v);
        }
    }
    None
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

    /// Packs a merged view as one flat layer (export, squash).
    pub fn pack_view(&mut self, view: &MergedView, progress: &mut dyn FnMut(u64)) -> Result<()> {
        view.walk(Path::new(""), &mut |e| {
            progress(self.entry(&e.real, e.data.as_deref(), &e.rel, &e.meta)?);
            Ok::<_, crate::error::Error>(true)
        })
    }

    /// After the upper dir: the names the union serves from the hard-link index while they
    /// are still only below (a lower file with hard links, one of them copied up) go in
    /// too, as links to the copy, with the dirs above them, so the image shows what the
    /// container showed. Names under a renamed dir went in with it.
    fn pack_indexed_names(
        &mut self,
        upper: &Path,
        view: &MergedView,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        if !view.index_in_use() {
            return Ok(());
        }
        let mut dirs: HashMap<PathBuf, ViewEntry> = HashMap::new();
        let mut served = Vec::new();
        view.walk(Path::new(""), &mut |e| {
            if e.is_dir() {
                dirs.insert(e.rel.clone(), e.clone());
            } else if e.from_index {
                served.push(e.clone());
            }
            Ok::<_, crate::error::Error>(true)
        })?;
        let mut made: HashSet<PathBuf> = HashSet::new();
        for e in served {
            let above: Vec<&Path> = e
                .rel
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .collect();
            if above
                .iter()
                .any(|a| dirs.get(*a).is_some_and(|d| d.redirected))
            {
                continue;
            }
            for a in above.into_iter().rev() {
                if upper.join(a).is_dir() || !made.insert(a.to_path_buf()) {
                    continue;
                }
                if let Some(d) = dirs.get(a) {
                    self.entry(&d.real, None, a, &d.meta)?;
                }
            }
            progress(self.entry(&e.real, e.data.as_deref(), &e.rel, &e.meta)?);
        }
        Ok(())
    }

    /// Packs the upper dir `src` of a container as the layer it adds over the lowers
    /// (relative names, no leading "./").
    pub fn pack_tree(&mut self, src: &Path, progress: &mut dyn FnMut(u64)) -> Result<()> {
        let opts = &self.opts;
        let views = Views {
            all: views::of_upper(src, opts.index.as_deref(), &opts.lowers)
                .map_err(io("reading", src))?,
            below: views::of_lowers(&opts.lowers).context("reading the lower layers")?,
        };
        self.pack_dir(&views, src, Path::new(""), progress)?;
        self.pack_indexed_names(src, &views.all, progress)
    }

    fn pack_dir(
        &mut self,
        views: &Views,
        dir: &Path,
        rel: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .map_err(io("reading", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(io("reading", dir))?;
        names.sort();
        for name in names {
            let full = dir.join(&name);
            let crel = rel.join(&name);
            let meta = fs::symlink_metadata(&full).map_err(io("reading", &full))?;
            let nb = name.as_bytes();
            if nb.starts_with(b".wh..wh.") && nb != OPAQUE_MARKER.as_bytes() {
                continue; // AUFS bookkeeping (.wh..wh..plnk, .wh..wh..orph)
            }
            if self.opts.skip_runtime_mountpoints
                && views::is_runtime_mountpoint(&crel, &full, &meta, &views.below)?
            {
                continue;
            }
            if is_chardev00(&meta) && views.all.upper_whiteout(&crel)? {
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
                self.entry(&full, None, &crel, &meta)?;
                if views.all.upper_redirected(&crel)? {
                    self.pack_redirected(&views.all, &crel, &meta, progress)?;
                    continue;
                }
                if views.all.upper_opaque_xattr(&crel)? && !full.join(OPAQUE_MARKER).exists() {
                    self.empty_file(&crel.join(OPAQUE_MARKER), &meta)?;
                }
                self.pack_dir(views, &full, &crel, progress)?;
            } else if meta.file_type().is_socket() {
                // A socket cannot go in a tar; where it hid a lower name, the layer still
                // hides that name.
                if views.below.lookup(&crel)?.is_some() {
                    let mut wh = OsString::from(WHITEOUT_PREFIX);
                    wh.push(&name);
                    self.empty_file(&rel.join(wh), &meta)?;
                }
            } else {
                // A metacopy file's data is below: where the union's rule finds it.
                let data = match meta.is_file() && overlay_xattr(&full, "metacopy").is_some() {
                    true => views.all.lookup(&crel)?.and_then(|e| e.data),
                    false => None,
                };
                let n = self.entry(&full, data.as_deref(), &crel, &meta)?;
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
        view: &MergedView,
        rel: &Path,
        meta: &fs::Metadata,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        self.empty_file(&rel.join(OPAQUE_MARKER), meta)?;
        view.walk(rel, &mut |e| {
            progress(self.entry(&e.real, e.data.as_deref(), &e.rel, &e.meta)?);
            Ok::<_, crate::error::Error>(true)
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

    /// One entry for the file at `full`, named `rel` in the tar; returns data bytes. A
    /// metacopy file's data is read from `data` (the lower file the view found).
    pub fn entry(
        &mut self,
        full: &Path,
        data: Option<&Path>,
        rel: &Path,
        meta: &fs::Metadata,
    ) -> Result<u64> {
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
        // A character device 0/0 packed here is a device (a whiteout became `.wh.`).
        let device = ft.is_char_device() && meta.rdev() == 0;
        self.pax(rel, &xattrs, if device { &[DEVICE_PAX] } else { &[] })?;
        if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            let data_path = match data {
                Some(d) => d.to_path_buf(),
                None if overlay_xattr(full, "metacopy").is_some() => bail!(
                    "{}: metacopy file whose data is in no lower layer",
                    full.display()
                ),
                None => full.to_path_buf(),
            };
            let f = File::open(&data_path).map_err(io("reading", &data_path))?;
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

    /// A PAX header for the next member: its xattrs, and records of our own.
    fn pax(&mut self, rel: &Path, xattrs: &[(OsString, Vec<u8>)], own: &[&str]) -> Result<()> {
        if xattrs.is_empty() && own.is_empty() {
            return Ok(());
        }
        let mut records: Vec<(Vec<u8>, &[u8])> = Vec::new();
        for (k, v) in xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k.as_bytes());
            records.push((key, v));
        }
        records.extend(own.iter().map(|k| (k.as_bytes().to_vec(), &b"1"[..])));
        let mut data = Vec::new();
        for (k, v) in records {
            let mut body = k;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
