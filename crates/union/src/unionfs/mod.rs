//! Union semantics over plain directories, following kernel overlayfs. No FUSE here:
//! every operation takes inode numbers and names and returns `io::Result` with the errno
//! overlayfs would give.
mod introspect;
pub mod layers;
mod lower_index;
pub mod node;
mod offline;
mod ops;
mod readdir;

pub use introspect::{LAYERS_XATTR, PID_XATTR, WHICH_XATTR};
pub use layers::{LayerSpec, Layers, OfflineSpec, SpecError};
pub use node::{LowerRef, Node, NodeState, ROOT};
pub use offline::{MergedView, ViewEntry};
pub use ops::{Caller, SetAttr, SetTime, killed_suidgid};
pub use readdir::DirEntry;

use crate::override_stat::{self, OverrideStat};
use crate::sys::{self, Stat};
use crate::whiteout::{self, Format, Redirect, join};
use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct UnionFs {
    pub layers: Layers,
    pub nodes: node::NodeTable,
    tmp_seq: AtomicU64,
    forgets: AtomicU64,
    shared_whiteout: std::sync::Mutex<ops::SharedWhiteout>,
    /// Lower dirs known to hold no aufs `.wh.` names (lower layers do not change).
    no_markers: readdir::MarkerFreeDirs,
    /// The names of lower dirs looked up in more than once.
    lower_index: lower_index::LowerIndex,
    /// Told the inode number of an object whose attributes changed behind the caller's
    /// back (a directory copied up becomes merged: its link count changes).
    pub on_attr_change: std::sync::OnceLock<Box<dyn Fn(u64) + Send + Sync>>,
    /// `metacopy=on`: a metadata change of a lower regular file copies its metadata only
    /// (the kernel's format). Metacopy files are read either way.
    pub metacopy: bool,
    /// A merged dir shows 2 links and one per subdir, as fuse-overlayfs counts them (the
    /// kernel shows 1: the count costs a listing of every layer's dir).
    pub count_dir_links: bool,
    /// Where copy-up copies data (the calling thread unless threads are started).
    pub copier: crate::cow::Copier,
    /// The st_ino the root shows (its node id is ROOT): see `shown_ino`.
    root_ino: u64,
}

/// What the upper layer holds at a name (`UnionFs::resolve_upper`).
struct UpperPart {
    stat: Option<Stat>,
    /// Inode number of the lower object it was copied up from.
    origin_ino: Option<u64>,
    /// An upper dir's lower content is at this redirect.
    redirect: Option<Redirect>,
    /// Lower layers are searched: no upper entry, or a dir that is not opaque.
    search: bool,
    /// A metacopy file: only its data is below (at `redirect`, or at its name).
    metacopy: bool,
}

impl Default for UpperPart {
    fn default() -> Self {
        UpperPart {
            stat: None,
            origin_ino: None,
            redirect: None,
            search: true,
            metacopy: false,
        }
    }
}

/// A directory as lookups in it need it: see `dir_context`.
pub struct DirContext {
    ino: u64,
    state: NodeState,
    path: OsString,
}

/// What one name resolves to in the union, before it becomes a node.
#[derive(Debug, Clone)]
pub struct Found {
    pub kind: u32,
    pub ino: u64,
    /// Object's own upper entry at this name.
    pub upper: Option<Stat>,
    /// Top-most lower object (non-dir) or lower dirs (dir).
    pub lowers: Vec<LowerRef>,
    pub lower_stat: Option<Stat>,
    pub redirected: bool,
    pub index: Option<OsString>,
    /// A metacopy file (its upper entry, its index entry or a lower file): the last of
    /// `lowers` holds its data.
    pub metacopy: bool,
}

fn enoent() -> io::Error {
    sys::errno(libc::ENOENT)
}

fn kind_of(st: &Stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

impl UnionFs {
    pub fn new(layers: Layers) -> io::Result<UnionFs> {
        let mut fs = UnionFs {
            layers,
            nodes: node::NodeTable::default(),
            tmp_seq: AtomicU64::new(0),
            forgets: AtomicU64::new(0),
            shared_whiteout: Default::default(),
            no_markers: Default::default(),
            lower_index: Default::default(),
            on_attr_change: std::sync::OnceLock::new(),
            metacopy: false,
            count_dir_links: false,
            copier: Default::default(),
            root_ino: ROOT,
        };
        let upper = fs.layers.upper.is_some();
        let mut lowers = Vec::new();
        let upper_opaque = match &fs.layers.upper {
            Some(u) => {
                whiteout::is_opaque_dir(u.raw(), OsStr::new(""), &fs.layers.xattr, fs.upper_aufs())?
            }
            None => false,
        };
        if !upper_opaque {
            for (i, l) in fs.layers.lowers.iter().enumerate().take(fs.merged_lowers()) {
                lowers.push(LowerRef {
                    layer: i,
                    path: OsString::new(),
                });
                if whiteout::is_opaque_dir(l.raw(), OsStr::new(""), &fs.layers.xattr, true)? {
                    break;
                }
            }
        }
        let state = NodeState {
            aliases: vec![(ROOT, OsString::new())],
            upper,
            lowers: lowers.into(),
            redirected: false,
            metacopy: false,
            index: None,
            orphan: None,
        };
        fs.nodes.insert_root(Node::new(ROOT, libc::S_IFDIR, state));
        let root = fs.layers.upper.as_ref().or(fs.layers.lowers.first());
        if let Some(l) = root {
            fs.root_ino = fs.layers.map_ino(l.dev_slot, sys::fstat(l.raw())?.st_ino);
        }
        Ok(fs)
    }

    pub fn read_only(&self) -> bool {
        self.layers.upper.is_none()
    }

    /// How many lower layers make the merged tree (the data-only ones come after).
    fn merged_lowers(&self) -> usize {
        self.layers.lowers.len() - self.layers.data_only
    }

    /// Lower regular files may be metacopy ones (a data-only layer holds their data):
    /// only then is the mark looked for on every lower file, as the kernel does.
    fn lower_metacopy(&self) -> bool {
        self.metacopy || self.layers.data_only > 0
    }

    pub fn node(&self, ino: u64) -> io::Result<Arc<Node>> {
        self.nodes.get(ino).ok_or_else(|| sys::errno(libc::ESTALE))
    }

    /// The node of a resolved object (found by the union's inode number, not node id).
    pub fn found_node(&self, f: &Found) -> io::Result<Arc<Node>> {
        self.nodes
            .get_key(f.ino)
            .ok_or_else(|| sys::errno(libc::ESTALE))
    }

    /// Path of a node in the union (and so in the upper layer), from its first alias.
    pub fn path_of(&self, ino: u64) -> io::Result<OsString> {
        let mut parts: Vec<OsString> = Vec::new();
        let mut node = if ino == ROOT {
            None
        } else {
            Some(self.node(ino)?)
        };
        let mut guard = 0;
        while let Some(n) = node {
            // Clone, then look at the table: never hold a node lock while taking the table
            // lock (remember() takes them the other way round).
            let aliases = n.lock().aliases.clone();
            // A hard link may keep a name in a directory the kernel has forgotten since:
            // take a name whose directory is still known (the root always is).
            let (parent, name) = aliases
                .into_iter()
                .find_map(|(p, name)| match p {
                    ROOT => Some((None, name)),
                    _ => self.nodes.get(p).map(|pn| (Some(pn), name)),
                })
                .ok_or_else(enoent)?;
            parts.push(name);
            node = parent;
            guard += 1;
            if guard > 4096 {
                return Err(sys::errno(libc::ELOOP));
            }
        }
        let mut v = Vec::new();
        for (i, p) in parts.iter().rev().enumerate() {
            if i > 0 {
                v.push(b'/');
            }
            v.extend_from_slice(p.as_bytes());
        }
        Ok(OsStr::from_bytes(&v).to_owned())
    }

    fn lower_fd(&self, layer: usize) -> RawFd {
        self.layers.lowers[layer].raw()
    }

    /// Resolves NAME under a directory node: upper first, then the parent's lower dirs top
    /// down, honouring whiteouts, opaque dirs and redirects.
    pub fn resolve(
        &self,
        pst: &NodeState,
        ppath: &OsStr,
        name: &OsStr,
    ) -> io::Result<Option<Found>> {
        // `.wh.` names are whiteout markers in lower layers, and in the upper one when it
        // is written in aufs format; an overlay-format upper may hold such names as data.
        let meta_name = whiteout::is_aufs_meta(name);
        if meta_name && self.upper_aufs() {
            return Ok(None);
        }
        let path = join(ppath, name);
        let up = if pst.upper {
            match self.resolve_upper(ppath, name, &path)? {
                Some(up) => up,
                None => return Ok(None),
            }
        } else {
            UpperPart::default()
        };
        let mut metacopy = up.metacopy;
        let (lowers, lower_stat) = if up.metacopy {
            let (dirs, lname) = self.lower_candidates(pst, name, up.redirect.as_ref(), 0)?;
            self.metacopy_data(&dirs, lname, up.redirect.as_ref())?
        } else if up.search && !meta_name {
            let (dirs, lname) = self.lower_candidates(pst, name, up.redirect.as_ref(), 0)?;
            let (mut lowers, mut lower_stat) =
                self.search_lowers(&dirs, lname, up.stat.is_some())?;
            if let (None, Some(meta)) = (&up.stat, &mut lower_stat)
                && self.lower_metacopy()
                && self.is_metacopy(self.lower_fd(lowers[0].layer), &lowers[0].path, meta)?
            {
                // A lower metacopy file: metadata here, data further down.
                let top = lowers[0].clone();
                let redirect = self.redirect_of(self.lower_fd(top.layer), &top.path)?;
                // Its data is in the layers below it: a redirect is followed from there.
                let (dirs, lname) =
                    self.lower_candidates(pst, name, redirect.as_ref(), top.layer + 1)?;
                let below: Vec<_> = dirs
                    .iter()
                    .filter(|d| d.layer > top.layer)
                    .cloned()
                    .collect();
                let (data, dst) = self.metacopy_data(&below, lname, redirect.as_ref())?;
                meta.st_blocks = dst.map_or(0, |d| d.st_blocks);
                lowers.push(data.last().cloned().ok_or_else(enoent)?);
                metacopy = true;
            }
            (lowers, lower_stat)
        } else {
            (Vec::new(), None)
        };
        let (kind, ino, index) = match (&up.stat, &lower_stat) {
            (Some(u), _) => {
                let slot = self.layers.upper.as_ref().map(|u| u.dev_slot).unwrap_or(0);
                (
                    kind_of(u),
                    up.origin_ino
                        .unwrap_or_else(|| self.layers.map_ino(slot, u.st_ino)),
                    None,
                )
            }
            (None, Some(l)) => {
                let layer = &self.layers.lowers[lowers[0].layer];
                let ino = self.layers.map_ino(layer.dev_slot, l.st_ino);
                let index = if !sys::is_dir(l) && l.st_nlink > 1 {
                    self.find_index(&lowers[0])?
                } else {
                    None
                };
                (kind_of(l), ino, index)
            }
            (None, None) => return Ok(None),
        };
        // A hard link copied up through the index may be metacopy there (the kernel's
        // metacopy=on does that): its data is still the lower file's. The index entry
        // says so, also for a lower metacopy file whose data was copied up since.
        if let (Some(ix), Some(ixfd)) = (&index, &self.layers.index) {
            let ixfd = std::os::fd::AsRawFd::as_raw_fd(ixfd);
            if let Some(st) = sys::lstat_opt(ixfd, ix)? {
                metacopy = self.is_metacopy(ixfd, ix, &st)?;
            }
        }
        Ok(Some(Found {
            kind,
            ino,
            upper: up.stat,
            lowers,
            lower_stat,
            redirected: up.redirect.is_some() && !up.metacopy,
            index,
            metacopy,
        }))
    }

    /// What the upper layer says of `path` (NAME in `ppath`): None when a whiteout hides
    /// the name; else its entry (if any), its origin, and where its lower content is.
    fn resolve_upper(
        &self,
        ppath: &OsStr,
        name: &OsStr,
        path: &OsStr,
    ) -> io::Result<Option<UpperPart>> {
        let ufd = self.layers.upper_fd()?;
        let mut up = UpperPart::default();
        match sys::lstat_opt(ufd, path)? {
            Some(st) if self.upper_whiteout(ufd, path, &st) => return Ok(None),
            Some(st) => {
                let origin = self.layers.xattr.read(ufd, path, |n| &n.origin)?;
                if let Some(fb) = &origin {
                    up.origin_ino = self.origin_ino(fb);
                }
                if sys::is_dir(&st) {
                    match self.upper_dir_lowers(ufd, path)? {
                        None => up.search = false,
                        Some(r) => up.redirect = r,
                    }
                } else if self.is_metacopy(ufd, path, &st)? {
                    // Its data is below: at its redirect (after a rename) or its name.
                    up.metacopy = true;
                    up.redirect = self.redirect_of(ufd, path)?;
                } else {
                    up.search = false;
                }
                up.stat = Some(st);
            }
            None => {
                if whiteout::is_whiteout(ufd, ppath, name, self.upper_aufs())? {
                    return Ok(None);
                }
            }
        }
        Ok(Some(up))
    }

    /// Where NAME may be in the lower layers: which lower dirs, top first, and the name
    /// in them: at an absolute redirect (from the layer roots, in layers `from` and
    /// below), at a relative one, or at NAME in the parent's lower dirs.
    fn lower_candidates<'a>(
        &self,
        pst: &'a NodeState,
        name: &'a OsStr,
        redirect: Option<&'a Redirect>,
        from: usize,
    ) -> io::Result<(Cow<'a, [LowerRef]>, &'a OsStr)> {
        Ok(match redirect {
            Some(Redirect::Absolute(p)) => {
                let (dir, last) = split(p);
                (Cow::Owned(self.lower_dirs_at(dir, from)?), last)
            }
            Some(Redirect::Relative(n)) => (Cow::Borrowed(&pst.lowers[..]), n.as_os_str()),
            None => (Cow::Borrowed(&pst.lowers[..]), name),
        })
    }

    /// The lower objects NAME is in DIRS, top down: the top-most non-dir, or the lower
    /// dirs of a merged dir (a whiteout, an opaque dir or a non-dir below a dir ends the
    /// search); `has_upper`: an upper entry exists (a dir there merges only lower dirs).
    /// Returns them with the top-most one's stat. The lower index says which dirs may
    /// hold the name; the others would show nothing, so they are not asked.
    fn search_lowers(
        &self,
        dirs: &[LowerRef],
        name: &OsStr,
        has_upper: bool,
    ) -> io::Result<(Vec<LowerRef>, Option<Stat>)> {
        let holders = self.lower_index.holders(dirs, name, |l| self.lower_fd(l));
        let probe: Vec<(&LowerRef, bool)> = match &holders {
            Some(h) => h.dirs.iter().map(|&(pos, wh)| (&dirs[pos], wh)).collect(),
            None => dirs
                .iter()
                .map(|d| (d, !self.no_markers.contains(d.layer, &d.path)))
                .collect(),
        };
        let mut lowers = Vec::new();
        let mut lower_stat = None;
        for (dir, maybe_whiteout) in probe {
            let (layer, cpath) = (dir.layer, join(&dir.path, name));
            let fd = self.lower_fd(layer);
            match sys::lstat_opt(fd, &cpath)? {
                Some(st) if self.chardev_whiteout(fd, &cpath, &st) => break,
                None => {
                    if maybe_whiteout && whiteout::is_whiteout(fd, &dir.path, name, true)? {
                        break;
                    }
                }
                Some(st) if sys::is_dir(&st) => {
                    if !(has_upper || lower_stat.is_none_or(|l: Stat| sys::is_dir(&l))) {
                        break;
                    }
                    if lower_stat.is_none() {
                        lower_stat = Some(st);
                    }
                    lowers.push(LowerRef {
                        layer,
                        path: cpath.clone(),
                    });
                    if whiteout::is_opaque_dir(fd, &cpath, &self.layers.xattr, true)? {
                        break;
                    }
                    // A lower dir renamed in its layer: the layers below hold its
                    // content at the redirect (followed layer by layer, as the kernel).
                    if let Some((below, rname)) = self.below_redirect(dirs, layer, fd, &cpath)? {
                        lowers.extend(self.search_lowers(&below, &rname, true)?.0);
                        break;
                    }
                }
                Some(st) => {
                    if !has_upper && lower_stat.is_none() {
                        lower_stat = Some(st);
                        lowers.push(LowerRef { layer, path: cpath });
                    }
                    break;
                }
            }
        }
        Ok((lowers, lower_stat))
    }

    /// Where the layers below `layer` hold the content of the lower dir `path` (in
    /// `layer`, of the candidate `dirs`) when it carries a redirect: the candidate dirs
    /// further down and the name in them. None without a redirect, or in the bottom
    /// layer (nothing below to redirect to).
    fn below_redirect(
        &self,
        dirs: &[LowerRef],
        layer: usize,
        fd: RawFd,
        path: &OsStr,
    ) -> io::Result<Option<(Vec<LowerRef>, OsString)>> {
        if layer + 1 >= self.merged_lowers() {
            return Ok(None);
        }
        let redirect = self.redirect_of(fd, path)?;
        let below = |d: &LowerRef| d.layer > layer;
        Ok(match redirect {
            None => None,
            Some(Redirect::Relative(n)) => {
                Some((dirs.iter().filter(|d| below(d)).cloned().collect(), n))
            }
            Some(Redirect::Absolute(p)) => {
                let (dir, last) = split(&p);
                let at = self.lower_dirs_at(dir, layer + 1)?;
                Some((at, last.to_owned()))
            }
        })
    }

    /// The redirect of the entry PATH under FD, as overlayfs follows it (a malformed one
    /// fails the lookup: `Redirect::read`).
    fn redirect_of(&self, fd: RawFd, path: &OsStr) -> io::Result<Option<Redirect>> {
        self.layers
            .xattr
            .read(fd, path, |n| &n.redirect)?
            .map(|r| Redirect::read(&r))
            .transpose()
    }

    /// Is this regular file a metacopy one (`overlay.metacopy`: its data is below)?
    pub fn is_metacopy(&self, fd: RawFd, path: &OsStr, st: &Stat) -> io::Result<bool> {
        Ok(st.st_mode & libc::S_IFMT == libc::S_IFREG
            && self.layers.xattr.read(fd, path, |n| &n.metacopy)?.is_some())
    }

    /// Where a metacopy file's data is: the top-most regular file NAME in DIRS that is
    /// not metacopy itself, or the data-only layers' file at the absolute redirect
    /// of the last metacopy one met (REDIRECT: the file's own). Returns the top lower
    /// object met (if it is not the data) and the data file, with the data's stat. A
    /// whiteout or an object of another type ends the search; no data is EIO, as
    /// overlayfs answers ("metacopy with no lower data").
    fn metacopy_data(
        &self,
        dirs: &[LowerRef],
        name: &OsStr,
        redirect: Option<&Redirect>,
    ) -> io::Result<(Vec<LowerRef>, Option<Stat>)> {
        let mut top: Option<LowerRef> = None;
        let mut absolute = match redirect {
            Some(Redirect::Absolute(p)) => Some(p.clone()),
            _ => None,
        };
        let chain = |top: Option<LowerRef>, data: LowerRef| top.into_iter().chain([data]).collect();
        // A metacopy file met on the way with a redirect moves the search for the layers
        // below it, as overlayfs follows it.
        let mut dirs: Cow<[LowerRef]> = Cow::Borrowed(dirs);
        let mut name: Cow<OsStr> = Cow::Borrowed(name);
        let mut i = 0;
        while let Some(dir) = dirs.get(i).cloned() {
            i += 1;
            let (layer, cpath) = (dir.layer, join(&dir.path, &name));
            let fd = self.lower_fd(layer);
            match sys::lstat_opt(fd, &cpath)? {
                None => {
                    if whiteout::is_whiteout(fd, &dir.path, &name, true)? {
                        break;
                    }
                }
                Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {
                    if !self.is_metacopy(fd, &cpath, &st)? {
                        return Ok((chain(top, LowerRef { layer, path: cpath }), Some(st)));
                    }
                    let r = self.redirect_of(fd, &cpath)?;
                    top.get_or_insert(LowerRef { layer, path: cpath });
                    match r {
                        Some(Redirect::Absolute(p)) => {
                            let (d, last) = split(&p);
                            dirs = Cow::Owned(self.lower_dirs_at(d, layer + 1)?);
                            name = Cow::Owned(last.to_owned());
                            i = 0;
                            absolute = Some(p);
                        }
                        Some(Redirect::Relative(n)) => name = Cow::Owned(n),
                        None => {}
                    }
                }
                Some(_) => break,
            }
        }
        if let Some(p) = absolute {
            for layer in self.merged_lowers()..self.layers.lowers.len() {
                let fd = self.lower_fd(layer);
                if let Some(st) = sys::lstat_opt(fd, &p)?
                    && st.st_mode & libc::S_IFMT == libc::S_IFREG
                    && !self.is_metacopy(fd, &p, &st)?
                {
                    return Ok((chain(top, LowerRef { layer, path: p }), Some(st)));
                }
            }
        }
        // The adapter logs the EIO with the operation and path.
        Err(sys::errno(libc::EIO))
    }

    /// Does the upper layer hold aufs-format metadata (`.wh.` files)? Only when it is
    /// written in that format; lower layers may always hold either format.
    pub fn upper_aufs(&self) -> bool {
        self.layers.format == Format::Aufs || self.layers.upper_both
    }

    /// Where an upper dir's lower content is: None when it is opaque (nowhere), else
    /// at its redirect or (no redirect) at its own name.
    pub fn upper_dir_lowers(
        &self,
        ufd: RawFd,
        path: &OsStr,
    ) -> io::Result<Option<Option<Redirect>>> {
        let x = &self.layers.xattr;
        if whiteout::is_opaque_dir(ufd, path, x, self.upper_aufs())? {
            return Ok(None);
        }
        Ok(Some(self.redirect_of(ufd, path)?))
    }

    /// The lower dirs, in layers `from` and below, that make up the merged lower dir at
    /// `path` (from the layer roots), found name by name as overlayfs follows an absolute
    /// redirect: a whiteout, a non-dir or an opaque dir in one layer ends the search in
    /// the layers below, and a redirect on the way moves the path for them.
    fn lower_dirs_at(&self, path: &OsStr, from: usize) -> io::Result<Vec<LowerRef>> {
        let mut want = components(path);
        let mut dirs = Vec::new();
        for layer in from..self.merged_lowers() {
            let fd = self.lower_fd(layer);
            // The path is walked in each layer on its own: a dir on the way that was
            // renamed in this layer (a redirect) moves the path for the layers below.
            let mut stop = whiteout::is_opaque_dir(fd, OsStr::new(""), &self.layers.xattr, true)?;
            // The name the layers below are searched at, once a redirect on the way
            // changed it (later redirects change it again, as the kernel's running name).
            let mut renamed: Option<Vec<OsString>> = None;
            let mut cur = OsString::new();
            let mut found = true;
            let n = want.len();
            for (i, name) in want.iter().enumerate() {
                let p = join(&cur, name);
                match sys::lstat_opt(fd, &p)? {
                    Some(st) if sys::is_dir(&st) => {
                        if whiteout::is_opaque_dir(fd, &p, &self.layers.xattr, true)? {
                            stop = true;
                        } else if layer + 1 < self.merged_lowers() {
                            match self.redirect_of(fd, &p)? {
                                Some(Redirect::Absolute(r)) => {
                                    // It goes on below even under an opaque ancestor.
                                    stop = false;
                                    let mut w = components(&r);
                                    w.extend_from_slice(&want[i + 1..]);
                                    renamed = Some(w);
                                }
                                Some(Redirect::Relative(r)) => {
                                    let mut w = renamed.take().unwrap_or_else(|| want.clone());
                                    let k = w.len() - (n - i);
                                    w[k] = r;
                                    renamed = Some(w);
                                }
                                None => {}
                            }
                        }
                        cur = p;
                    }
                    // A whiteout or a non-dir on the way hides the path in every layer below.
                    Some(_) => {
                        (stop, found) = (true, false);
                        break;
                    }
                    None if whiteout::is_whiteout(fd, &cur, name, true)? => {
                        (stop, found) = (true, false);
                        break;
                    }
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            if found {
                dirs.push(LowerRef { layer, path: cur });
            }
            if stop {
                break;
            }
            if let Some(w) = renamed {
                want = w;
            }
        }
        Ok(dirs)
    }

    /// Does the upper layer hold character device 0/0 whiteouts (overlay format)?
    pub fn upper_chardev_whiteouts(&self) -> bool {
        self.layers.format == Format::Overlay || self.layers.upper_both
    }

    /// Is this upper entry a whiteout? Only in overlay format: an aufs-format upper marks
    /// whiteouts with `.wh.` files, so a character device 0/0 there is just a device.
    pub fn upper_whiteout(&self, fd: RawFd, path: &OsStr, st: &Stat) -> bool {
        self.upper_chardev_whiteouts() && self.chardev_whiteout(fd, path, st)
    }

    /// Is this character device 0/0 a whiteout? Not when it was made through the union
    /// (it carries the device mark; a layer committed from such an upper keeps it).
    pub fn chardev_whiteout(&self, fd: RawFd, path: &OsStr, st: &Stat) -> bool {
        sys::is_whiteout_stat(st)
            && !matches!(self.layers.xattr.read(fd, path, |n| &n.device), Ok(Some(_)))
    }

    /// The inode number an `overlay.origin` file handle stands for, when it can be read.
    fn origin_ino(&self, fb: &[u8]) -> Option<u64> {
        let raw = whiteout::fh::inode_number(fb)?;
        let uuid = fb.get(5..21)?;
        let slot = self
            .layers
            .lowers
            .iter()
            .find(|l| l.uuid == uuid)
            .or(self.layers.lowers.first())
            .map(|l| l.dev_slot)?;
        Some(self.layers.map_ino(slot, raw))
    }

    /// Name of the index entry for a lower object (hex of its overlay file handle).
    pub fn index_name(&self, lower: &LowerRef) -> io::Result<OsString> {
        let layer = &self.layers.lowers[lower.layer];
        let (ty, fid) = whiteout::fh::name_to_handle(layer.raw(), &lower.path)?;
        Ok(OsString::from(hex::encode(whiteout::fh::encode(
            ty,
            &fid,
            &layer.uuid,
        ))))
    }

    fn find_index(&self, lower: &LowerRef) -> io::Result<Option<OsString>> {
        let Some(ix) = &self.layers.index else {
            return Ok(None);
        };
        let name = match self.index_name(lower) {
            Ok(n) => n,
            Err(_) => return Ok(None),
        };
        match sys::lstat_opt(std::os::fd::AsRawFd::as_raw_fd(ix), &name)? {
            Some(st) if !sys::is_whiteout_stat(&st) && !sys::is_dir(&st) => Ok(Some(name)),
            _ => Ok(None),
        }
    }

    /// Looks NAME up under PARENT and remembers the node (one kernel reference).
    pub fn lookup(&self, parent: u64, name: &OsStr) -> io::Result<(Arc<Node>, Stat)> {
        self.stable(|| {
            let dir = self.dir_context(parent)?;
            self.lookup_in(&dir, name)
        })
    }

    /// Runs F, which derives paths from the node table, again when it fails with ENOENT
    /// or ENOTDIR while a rename moved names: its path may have gone stale (an ancestor
    /// renamed on disk before the table followed). F must be safe to repeat.
    pub fn stable<T>(&self, f: impl Fn() -> io::Result<T>) -> io::Result<T> {
        let mut tries = 0;
        loop {
            let seen = self.nodes.changes();
            match f() {
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
                        && tries < 100
                        && self.nodes.moved_since(seen) =>
                {
                    tries += 1;
                    std::thread::yield_now();
                }
                r => return r,
            }
        }
    }

    /// A directory node's state and path, taken once for many lookups in it.
    pub fn dir_context(&self, parent: u64) -> io::Result<DirContext> {
        let pnode = self.node(parent)?;
        if !pnode.is_dir {
            return Err(sys::errno(libc::ENOTDIR));
        }
        Ok(DirContext {
            ino: parent,
            state: pnode.snapshot(),
            path: self.path_of(parent)?,
        })
    }

    /// `lookup` in a directory whose context was taken already (readdirplus: one
    /// context for every entry of a reply).
    pub fn lookup_in(&self, dir: &DirContext, name: &OsStr) -> io::Result<(Arc<Node>, Stat)> {
        let (parent, pst, ppath) = (dir.ino, &dir.state, &dir.path);
        // A node that changed while we resolved is resolved again: its new state must not
        // be overwritten by what the resolution saw before (a copy-up, a rename).
        let (found, node) = loop {
            let seen = self.nodes.changes();
            let found = self.resolve(pst, ppath, name)?.ok_or_else(enoent)?;
            if let Some(n) = self
                .nodes
                .remember_seen(self.node_from(parent, name, &found), seen)
            {
                break (found, n);
            }
        };
        // The resolution stat'ed the object already; only hard links need another look.
        let st = match (found.upper.or(found.lower_stat), &found.index) {
            (Some(mut s), None) if node.is_dir || s.st_nlink <= 1 => {
                s.st_ino = self.shown_ino(&node);
                match (found.upper.is_some(), found.lowers.first()) {
                    (true, _) => {
                        let kind = self.upper_override();
                        self.show_override(kind, self.upper()?, &join(ppath, name), &mut s)?
                    }
                    (false, Some(l)) => {
                        let kind = self.layers.lowers[l.layer].override_stat;
                        self.show_override(kind, self.lower_fd(l.layer), &l.path, &mut s)?
                    }
                    _ => {}
                }
                if let (true, Some(l)) = (found.metacopy, &found.lower_stat) {
                    s.st_blocks = l.st_blocks;
                }
                if node.is_dir && is_merged(found.upper.is_some(), found.lowers.len()) {
                    let path = join(ppath, name);
                    s.st_nlink = self.merged_dir_nlink(&node, &node.snapshot(), &path)?;
                }
                s
            }
            _ => self.stat_node(&node)?,
        };
        Ok((node, st))
    }

    fn node_from(&self, parent: u64, name: &OsStr, f: &Found) -> Node {
        let state = NodeState {
            aliases: vec![(parent, name.to_owned())],
            upper: f.upper.is_some(),
            lowers: f.lowers.as_slice().into(),
            redirected: f.redirected,
            metacopy: f.metacopy,
            index: f.index.clone(),
            orphan: None,
        };
        Node::new(f.ino, f.kind, state)
    }

    /// Where the object of a node can be reached now: (dir fd, path under it).
    pub fn real(&self, node: &Node, st: &NodeState) -> io::Result<(RawFd, OsString)> {
        if let (Some(ix), Some(ixfd)) = (&st.index, &self.layers.index) {
            return Ok((std::os::fd::AsRawFd::as_raw_fd(ixfd), ix.clone()));
        }
        if st.upper {
            return Ok((self.layers.upper_fd()?, self.path_of(node.ino)?));
        }
        let l = st.lowers.first().ok_or_else(enoent)?;
        Ok((self.lower_fd(l.layer), l.path.clone()))
    }

    /// Where a node's data is read: its real object, or for a metacopy file the lower
    /// file that holds its data.
    pub fn data_real(&self, node: &Node, st: &NodeState) -> io::Result<(RawFd, OsString)> {
        match (st.metacopy, st.lowers.last()) {
            (true, Some(l)) => Ok((self.lower_fd(l.layer), l.path.clone())),
            _ => self.real(node, st),
        }
    }

    /// stat of a node as the union shows it.
    pub fn stat_node(&self, node: &Node) -> io::Result<Stat> {
        let st = node.snapshot();
        if let (true, Some(o)) = (st.aliases.is_empty(), &st.orphan) {
            let mut s = sys::fstat(std::os::fd::AsRawFd::as_raw_fd(&**o))?;
            s.st_ino = self.shown_ino(node);
            // A removed merged dir (its upper dir gone, with no links, but lower dirs
            // under it; or dirs of several lowers) is still merged to overlayfs: one link.
            if node.is_dir && (st.lowers.len() > 1 || s.st_nlink == 0 && !st.lowers.is_empty()) {
                s.st_nlink = 1;
            }
            if let (true, Some(l)) = (st.metacopy, st.lowers.last()) {
                s.st_blocks = sys::lstatat(self.lower_fd(l.layer), &l.path)?.st_blocks;
            }
            return Ok(s);
        }
        let (fd, p) = self.real(node, &st)?;
        let mut s = sys::lstatat(fd, &p)?;
        check_kind(node, &s)?;
        self.show_override(self.override_of(&st), fd, &p, &mut s)?;
        s.st_ino = self.shown_ino(node);
        if let (true, Some(l)) = (st.metacopy, st.lowers.last()) {
            // As overlayfs: the blocks are those of the file holding the data.
            s.st_blocks = sys::lstatat(self.lower_fd(l.layer), &l.path)?.st_blocks;
        }
        if node.is_dir {
            if is_merged(st.upper, st.lowers.len()) {
                s.st_nlink = self.merged_dir_nlink(node, &st, &self.path_of(node.ino)?)?;
            }
        } else if s.st_nlink > 1 || st.index.is_some() {
            s.st_nlink = self.merged_nlink(fd, &p, &s, &st)?;
        }
        Ok(s)
    }

    /// The xattr the upper keeps owners and modes in, if it does (`override_stat`).
    pub fn upper_override(&self) -> Option<OverrideStat> {
        self.layers.upper.as_ref()?.override_stat
    }

    /// The xattr the layer of a node's object keeps owners and modes in, if it does.
    fn override_of(&self, st: &NodeState) -> Option<OverrideStat> {
        match (st.upper || st.index.is_some(), st.lowers.first()) {
            (true, _) => self.upper_override(),
            (false, Some(l)) => self.layers.lowers[l.layer].override_stat,
            (false, None) => None,
        }
    }

    /// S (of the object P under FD) as its layer's stat override shows it, when the layer
    /// keeps owners and modes in the xattr KIND.
    pub(super) fn show_override(
        &self,
        kind: Option<OverrideStat>,
        fd: RawFd,
        p: &OsStr,
        s: &mut Stat,
    ) -> io::Result<()> {
        let Some(kind) = kind.filter(|_| override_stat::applies(s)) else {
            return Ok(());
        };
        if let Some(o) = sys::lgetxattr(fd, p, kind.name())?
            .as_deref()
            .and_then(override_stat::parse)
        {
            override_stat::apply(s, &o);
        }
        Ok(())
    }

    /// Link count of a merged dir NODE (state ST) at PATH: as overlayfs, unknown, and 1
    /// pacifies find(1); under `count_dir_links`, 2 and one per subdir of the merged
    /// listing, kept until a subdir comes or goes (an unlink would otherwise cost a
    /// listing of its dir at the next stat).
    fn merged_dir_nlink(&self, node: &Node, st: &NodeState, path: &OsStr) -> io::Result<u64> {
        if !self.count_dir_links {
            return Ok(1);
        }
        let (kept, changes) = node.dir_links();
        if let Some(n) = kept {
            return Ok(n);
        }
        let entries = self.list_merged(st, path)?;
        let n = 2 + entries.iter().filter(|e| e.dtype == libc::DT_DIR).count() as u64;
        node.keep_dir_links(n, changes);
        Ok(n)
    }

    /// A subdir of DIR came or went: its kept link count is stale.
    pub(super) fn subdirs_changed(&self, dir: u64) {
        if let Some(d) = self.nodes.get(dir).filter(|_| self.count_dir_links) {
            d.dir_changed();
        }
    }

    /// Link count of a copied-up hard link, as overlayfs computes it: the real count of
    /// the upper (or lower) inode plus the offset kept in `overlay.nlink`; the real upper
    /// count when there is none; a lower object's own count.
    fn merged_nlink(&self, fd: RawFd, p: &OsStr, s: &Stat, st: &NodeState) -> io::Result<u64> {
        // A lower object counts its own links: an offset it carries was kept for a union
        // that had it as its upper layer (rotated into the lower stack since).
        if !st.upper && st.index.is_none() {
            return Ok(s.st_nlink);
        }
        let Some(v) = self.layers.xattr.read(fd, p, |n| &n.nlink)? else {
            return Ok(s.st_nlink);
        };
        let Some((base, off)) = parse_nlink(&v) else {
            return Ok(s.st_nlink);
        };
        let base = match base {
            b'L' => match st.lowers.first() {
                Some(l) => sys::lstatat(self.lower_fd(l.layer), &l.path)?.st_nlink as i64,
                None => return Ok(s.st_nlink),
            },
            _ => s.st_nlink as i64,
        };
        // 0: every union name is gone (an open file can still be fstat'ed).
        let n = base + off;
        Ok(if n >= 0 { n as u64 } else { s.st_nlink })
    }

    /// The st_ino of a node: its node id; for the root, as overlayfs shows it, the inode
    /// number of the upper root (of the top lower root without an upper), so a new upper
    /// over the same lowers (the layers rotated) gives the root a new one.
    fn shown_ino(&self, node: &Node) -> u64 {
        if node.ino == ROOT {
            self.root_ino
        } else {
            node.ino
        }
    }

    pub fn getattr(&self, ino: u64) -> io::Result<Stat> {
        let node = self.node(ino)?;
        self.stable(|| self.stat_node(&node))
    }

    /// stat through an open file of the node (which may have been unlinked meanwhile).
    pub fn getattr_open(&self, ino: u64, fd: RawFd) -> io::Result<Stat> {
        let node = self.node(ino)?;
        {
            // A metacopy file's handle reads the lower data; its attributes are upper.
            let st = node.lock();
            // So is one whose owner and mode an xattr keeps (read by name).
            let by_name = st.metacopy || self.override_of(&st).is_some();
            if by_name && !st.aliases.is_empty() {
                drop(st);
                return self.stable(|| self.stat_node(&node));
            }
        }
        let mut s = sys::fstat(fd)?;
        s.st_ino = self.shown_ino(&node);
        let st = node.snapshot();
        if (s.st_nlink > 1 || st.index.is_some())
            && let Ok((rfd, p)) = self.real(&node, &st)
        {
            s.st_nlink = self.merged_nlink(rfd, &p, &s, &st)?;
        }
        Ok(s)
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.nodes.forget(ino, n);
        // Give freed node memory back to the system now and then: after the kernel drops
        // its inodes, the daemon should shrink too, not keep it in malloc's arenas.
        if self.forgets.fetch_add(1, Ordering::Relaxed) % 16384 == 16383 {
            unsafe { libc::malloc_trim(0) };
        }
    }

    pub fn readlink(&self, ino: u64) -> io::Result<OsString> {
        let node = self.node(ino)?;
        if node.kind != libc::S_IFLNK {
            return Err(sys::errno(libc::EINVAL));
        }
        self.stable(|| {
            let st = node.snapshot();
            let (fd, p) = self.real(&node, &st)?;
            sys::readlinkat(fd, &p)
        })
    }

    pub fn statfs(&self) -> io::Result<libc::statvfs> {
        let fd = match &self.layers.upper {
            Some(u) => u.raw(),
            None => self.layers.lowers[0].raw(),
        };
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        let path = sys::proc_path(fd, OsStr::new(""))?;
        if unsafe { libc::statvfs(path.as_ptr(), &mut s) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(s)
    }

    /// A fresh temp name in the work dir (kernel style "#N").
    fn tmp_name(&self) -> OsString {
        OsString::from(format!(
            "#{:x}",
            self.tmp_seq.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

/// A directory made of more than one layer: overlayfs shows its link count as 1, since
/// counting subdirs across layers is not worth it (and 1 pacifies find(1)).
fn is_merged(upper: bool, lowers: usize) -> bool {
    (upper && lowers > 0) || lowers > 1
}

/// Parses `overlay.nlink` ("U+2", "L-1"): the base ('U' or 'L') and the offset.
pub fn parse_nlink(v: &[u8]) -> Option<(u8, i64)> {
    let (&base, rest) = v.split_first()?;
    if base != b'U' && base != b'L' {
        return None;
    }
    let txt = std::str::from_utf8(rest).ok()?.trim_end_matches('\0');
    if !txt.starts_with('+') && !txt.starts_with('-') {
        return None;
    }
    Some((base, txt.parse().ok()?))
}

/// The names of a path from a layer root, in order.
fn components(p: &OsStr) -> Vec<OsString> {
    p.as_bytes()
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| OsStr::from_bytes(c).to_owned())
        .collect()
}

/// Splits a relative path into (parent, name).
pub fn split(p: &OsStr) -> (&OsStr, &OsStr) {
    let b = p.as_bytes();
    match b.iter().rposition(|&c| c == b'/') {
        Some(i) => (OsStr::from_bytes(&b[..i]), OsStr::from_bytes(&b[i + 1..])),
        None => (OsStr::new(""), p),
    }
}

/// A path derived from the table while a rename moved an ancestor may name another
/// object: one of another type is refused (ENOENT, so `stable` derives the path again),
/// since the kernel marks an inode whose type changes bad and fails its every user with
/// EIO.
pub(crate) fn check_kind(node: &Node, s: &Stat) -> io::Result<()> {
    if s.st_mode & libc::S_IFMT == node.kind {
        Ok(())
    } else {
        Err(sys::errno(libc::ENOENT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nlink_xattr_forms() {
        assert_eq!(parse_nlink(b"U+0"), Some((b'U', 0)));
        assert_eq!(parse_nlink(b"U-2"), Some((b'U', -2)));
        assert_eq!(parse_nlink(b"L+1\0"), Some((b'L', 1)));
        assert_eq!(parse_nlink(b"X+1"), None);
        assert_eq!(parse_nlink(b"U1"), None);
        assert_eq!(
            split(OsStr::new("a/b/c")),
            (OsStr::new("a/b"), OsStr::new("c"))
        );
        assert_eq!(split(OsStr::new("c")), (OsStr::new(""), OsStr::new("c")));
    }
}
