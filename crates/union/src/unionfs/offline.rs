//! The merged view of layer dirs without a mount (the image side: diff, commit, export,
//! squash). It is the mount's own rule: a `UnionFs` over layers opened read-only, asked
//! through `resolve` and the merged listing, so whiteouts of both formats, opaque dirs,
//! redirects, the device mark and the hard-link index mean here what they mean mounted.
use super::layers::{Layers, OfflineSpec};
use super::{Found, NodeState, ROOT, UnionFs};
use crate::sys;
use crate::whiteout::{self, join};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct MergedView {
    fs: UnionFs,
    index: Option<PathBuf>,
}

/// One object of the merged view.
#[derive(Debug, Clone)]
pub struct ViewEntry {
    /// Path in the view, no leading slash ("" is the root).
    pub rel: PathBuf,
    /// Where the object is now: in the upper dir, a lower dir or the index.
    pub real: PathBuf,
    pub meta: fs::Metadata,
    /// The upper layer has an object at this name.
    pub upper: bool,
    /// A dir whose lower content comes from elsewhere (overlay redirect).
    pub redirected: bool,
    /// A lower hard link shown as its copied-up index entry.
    pub from_index: bool,
    /// A metacopy file: the lower file that holds its data (`real` holds the rest).
    pub data: Option<PathBuf>,
    state: NodeState,
}

impl ViewEntry {
    pub fn is_dir(&self) -> bool {
        self.meta.is_dir()
    }
}

fn state_of(f: &Found) -> NodeState {
    NodeState {
        aliases: Vec::new(),
        upper: f.upper.is_some(),
        lowers: f.lowers.as_slice().into(),
        redirected: f.redirected,
        metacopy: f.metacopy,
        index: f.index.clone(),
        orphan: None,
    }
}

impl MergedView {
    pub fn open(spec: &OfflineSpec) -> io::Result<MergedView> {
        let layers = Layers::open_offline(spec)?;
        let index = layers.index.as_ref().and(spec.index.clone());
        Ok(MergedView {
            fs: UnionFs::new(layers)?,
            index,
        })
    }

    /// Whether the view has an upper layer whose index holds entries (lower hard links
    /// copied up through one name: their other names change too, wherever they are).
    pub fn index_in_use(&self) -> bool {
        self.index
            .as_ref()
            .is_some_and(|ix| fs::read_dir(ix).is_ok_and(|mut d| d.next().is_some()))
    }

    fn root(&self) -> io::Result<ViewEntry> {
        let state = self.fs.node(ROOT)?.snapshot();
        let real = match &self.fs.layers.upper {
            Some(u) => u.path.clone(),
            None => self
                .fs
                .layers
                .lowers
                .first()
                .map(|l| l.path.clone())
                .unwrap_or_default(),
        };
        Ok(ViewEntry {
            rel: PathBuf::new(),
            meta: fs::symlink_metadata(&real)?,
            real,
            upper: state.upper,
            redirected: false,
            from_index: false,
            data: None,
            state,
        })
    }

    fn child(&self, dir: &ViewEntry, name: &OsStr) -> io::Result<Option<ViewEntry>> {
        let ppath = dir.rel.as_os_str();
        let Some(found) = self.fs.resolve(&dir.state, ppath, name)? else {
            return Ok(None);
        };
        let path = join(ppath, name);
        let upper = self
            .fs
            .layers
            .upper
            .as_ref()
            .filter(|_| found.upper.is_some());
        let real = if let (Some(ix), Some(d)) = (&found.index, &self.index) {
            d.join(ix)
        } else if let Some(u) = upper {
            u.path.join(&path)
        } else {
            let l = found.lowers.first().ok_or_else(super::enoent)?;
            self.fs.layers.lowers[l.layer].path.join(&l.path)
        };
        let data = match (found.metacopy, found.lowers.last()) {
            (true, Some(l)) => Some(self.fs.layers.lowers[l.layer].path.join(&l.path)),
            _ => None,
        };
        Ok(Some(ViewEntry {
            data,
            rel: PathBuf::from(path),
            meta: fs::symlink_metadata(&real)?,
            real,
            upper: found.upper.is_some(),
            redirected: found.redirected,
            from_index: found.index.is_some(),
            state: state_of(&found),
        }))
    }

    /// The object at `rel` (no leading slash), if the view shows one.
    pub fn lookup(&self, rel: &Path) -> io::Result<Option<ViewEntry>> {
        let mut cur = self.root()?;
        for c in rel.components() {
            if !cur.is_dir() {
                return Ok(None);
            }
            match self.child(&cur, c.as_os_str())? {
                Some(e) => cur = e,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The entries of a dir of the view, sorted by name.
    pub fn list(&self, dir: &ViewEntry) -> io::Result<Vec<ViewEntry>> {
        let mut names: Vec<OsString> = self
            .fs
            .list_merged(&dir.state, dir.rel.as_os_str())?
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            out.extend(self.child(dir, &n)?);
        }
        Ok(out)
    }

    /// Calls `f` for every object below `rel` (not `rel` itself), parents first, names
    /// sorted; a dir's content is skipped when `f` answers false for it.
    pub fn walk<E: From<io::Error>>(
        &self,
        rel: &Path,
        f: &mut dyn FnMut(&ViewEntry) -> Result<bool, E>,
    ) -> Result<(), E> {
        match self.lookup(rel)? {
            Some(d) if d.is_dir() => self.walk_in(&d, f),
            _ => Ok(()),
        }
    }

    fn walk_in<E: From<io::Error>>(
        &self,
        dir: &ViewEntry,
        f: &mut dyn FnMut(&ViewEntry) -> Result<bool, E>,
    ) -> Result<(), E> {
        for e in self.list(dir)? {
            if f(&e)? && e.is_dir() {
                self.walk_in(&e, f)?;
            }
        }
        Ok(())
    }

    /// Rules for one upper entry (packing an upper dir as a layer reads it raw).
    fn upper_at(&self) -> io::Result<RawFd> {
        self.fs.layers.upper_fd()
    }

    /// Is the upper entry `rel` (a character device 0/0) a whiteout?
    pub fn upper_whiteout(&self, rel: &Path) -> io::Result<bool> {
        let fd = self.upper_at()?;
        let st = sys::lstatat(fd, rel.as_os_str())?;
        Ok(self.fs.upper_whiteout(fd, rel.as_os_str(), &st))
    }

    /// Is the upper dir `rel` renamed (its lower content at a redirect)?
    pub fn upper_redirected(&self, rel: &Path) -> io::Result<bool> {
        let fd = self.upper_at()?;
        Ok(matches!(
            self.fs.upper_dir_lowers(fd, rel.as_os_str())?,
            Some(Some(_))
        ))
    }

    /// Is the upper dir `rel` opaque through the overlay xattr (not an aufs marker)?
    pub fn upper_opaque_xattr(&self, rel: &Path) -> io::Result<bool> {
        let fd = self.upper_at()?;
        whiteout::is_opaque_dir(fd, rel.as_os_str(), &self.fs.layers.xattr, false)
    }
}
