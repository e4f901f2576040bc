//! Merged directory listings: upper entries, then each lower dir's entries not hidden by
//! a name above, a whiteout or an opaque dir. A listing is taken once per open (and again
//! on rewind) so offsets stay stable while the directory changes.
use super::{DirContext, NodeState, UnionFs};
use crate::sys;
use crate::whiteout::{self, Format};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: OsString,
    /// Inode number as found in its layer (mapped to the union's number space).
    pub ino: u64,
    /// DT_* type.
    pub dtype: u8,
}

impl UnionFs {
    /// Visible entries of a directory node, without "." and "..".
    pub fn list_dir(&self, ino: u64) -> io::Result<Vec<DirEntry>> {
        self.stable(|| self.list_in(&self.dir_context(ino)?))
    }

    /// As overlayfs' readdir of an "impure" upper-only dir: when no entry has a copy-up
    /// origin any more, the mark goes (best effort), so both leave the same upper dir.
    /// Called when a listing starts (readdir at offset 0); reads the kernel serves from
    /// its cached listing do not reach us.
    pub fn drop_stale_impure(&self, ino: u64) {
        let Some(node) = self.nodes.get(ino) else {
            return;
        };
        if !node.is_dir || self.layers.format != Format::Overlay || self.read_only() {
            return;
        }
        {
            let st = node.lock();
            if !st.upper || !st.lowers.is_empty() {
                return;
            }
        }
        let (Some(u), x) = (self.layers.upper.as_ref(), &self.layers.xattr) else {
            return;
        };
        let (fd, Ok(path)) = (u.raw(), self.path_of(ino)) else {
            return;
        };
        if !matches!(whiteout::get(fd, &path, &x.impure), Ok(Some(_))) {
            return;
        }
        let Ok(names) = sys::read_dir_names(fd, &path) else {
            return;
        };
        let has_origin = |name: &OsStr| {
            let p = whiteout::join(&path, name);
            !matches!(whiteout::get(fd, &p, &x.origin), Ok(None))
        };
        if !names.iter().any(|(n, _, _)| has_origin(n)) {
            let _ = sys::lremovexattr(fd, &path, &x.impure);
        }
    }

    /// `list_dir` of a directory whose context was taken already.
    pub fn list_in(&self, dir: &DirContext) -> io::Result<Vec<DirEntry>> {
        let mut out = self.list_merged(&dir.state, &dir.path)?;
        // d_ino = st_ino, also for an object whose node got another id than its number.
        for e in &mut out {
            e.ino = self.nodes.shown_ino(e.ino);
        }
        Ok(out)
    }

    pub(super) fn list_merged(&self, st: &NodeState, path: &OsStr) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        let mut seen: HashSet<OsString> = HashSet::new();
        if st.upper {
            let u = self
                .layers
                .upper
                .as_ref()
                .ok_or_else(|| sys::errno(libc::EROFS))?;
            let (aufs, chardev) = (self.upper_aufs(), self.upper_chardev_whiteouts());
            self.scan_layer(
                u.raw(),
                u.dev_slot,
                path,
                aufs,
                chardev,
                &mut seen,
                &mut out,
            )?;
        }
        // overlayfs' order: the bottom layer's names first, then the upper's, then the
        // layers between (ovl_dir_read_merged puts the lowest ones before the rest).
        let mut bottom_from = 0;
        for (i, l) in st.lowers.iter().enumerate() {
            if i + 1 == st.lowers.len() {
                bottom_from = out.len();
            }
            let layer = &self.layers.lowers[l.layer];
            let markers = self.scan_layer(
                layer.raw(),
                layer.dev_slot,
                &l.path,
                true,
                true,
                &mut seen,
                &mut out,
            )?;
            if !markers {
                self.no_markers.remember(l.layer, &l.path);
            }
        }
        let bottom = out.len() - bottom_from;
        out.rotate_right(bottom);
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    /// Adds the entries of one layer dir not yet seen; whiteouts mark names as seen so
    /// lower layers cannot show them. Tells whether the dir holds aufs `.wh.` names.
    fn scan_layer(
        &self,
        fd: i32,
        slot: u64,
        path: &OsStr,
        aufs_meta: bool,
        chardev_whiteouts: bool,
        seen: &mut HashSet<OsString>,
        out: &mut Vec<DirEntry>,
    ) -> io::Result<bool> {
        let entries = match sys::read_dir_names(fd, path) {
            Ok(e) => e,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        let mut fresh = Vec::new();
        let mut markers = false;
        let upper = self.layers.upper.as_ref().is_some_and(|u| u.raw() == fd);
        for (name, dtype, ino) in entries {
            if aufs_meta && whiteout::is_aufs_meta(&name) {
                markers = true;
                if let Some(hidden) = whiteout::aufs_hidden_name(&name) {
                    seen.insert(hidden.to_owned());
                }
                continue;
            }
            if seen.contains(&name) {
                continue;
            }
            if chardev_whiteouts && (dtype == libc::DT_CHR || dtype == libc::DT_UNKNOWN) {
                let p = whiteout::join(path, &name);
                let st = sys::lstatat(fd, &p)?;
                let whiteout = if upper {
                    self.upper_whiteout(fd, &p, &st)
                } else {
                    self.chardev_whiteout(fd, &p, &st)
                };
                if whiteout {
                    fresh.push(name);
                    continue;
                }
            }
            out.push(DirEntry {
                ino: self.layers.map_ino(slot, ino),
                dtype,
                name: name.clone(),
            });
            fresh.push(name);
        }
        seen.extend(fresh);
        Ok(markers)
    }

    /// Is the directory empty as the union shows it?
    pub fn dir_is_empty(&self, st: &NodeState, path: &OsStr) -> io::Result<bool> {
        Ok(self.list_merged(st, path)?.is_empty())
    }
}

/// Lower-layer dirs whose listing showed no aufs `.wh.` name: a lookup of a name missing
/// there need not look for `.wh.NAME`. Bounded: forgets everything when full.
#[derive(Default)]
pub struct MarkerFreeDirs {
    /// Per lower layer, the paths of such dirs.
    layers: std::sync::Mutex<Vec<HashSet<OsString>>>,
}

const MARKER_FREE_MAX: usize = 16384;

impl MarkerFreeDirs {
    pub fn remember(&self, layer: usize, path: &OsStr) {
        let mut layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        if layers.len() <= layer {
            layers.resize_with(layer + 1, HashSet::new);
        }
        let set = &mut layers[layer];
        if set.len() >= MARKER_FREE_MAX {
            set.clear();
        }
        set.insert(path.to_owned());
    }

    pub fn contains(&self, layer: usize, path: &OsStr) -> bool {
        let layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        layers.get(layer).is_some_and(|set| set.contains(path))
    }
}
