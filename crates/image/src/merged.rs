//! The merged view of a stack of layer dirs (top first), read without mounting:
//! whiteouts (`.wh.NAME` or char 0/0) hide names below, opaque dirs (`.wh..wh..opq`
//! or the overlay xattr) hide everything below, a non-dir hides a dir below, and an
//! overlay redirect makes a dir take its lower content from elsewhere.
use super::layer::{OPAQUE_MARKER, WHITEOUT_PREFIX, is_overlay_opaque, is_overlay_whiteout};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

struct Node {
    path: PathBuf,
    meta: fs::Metadata,
    /// The layer `path` is in.
    layer: usize,
    /// For dirs: the same dir in this and lower layers (layer index, path).
    sources: Vec<(usize, PathBuf)>,
    open: bool,
}

fn is_opaque_dir(p: &Path) -> bool {
    p.join(OPAQUE_MARKER).exists() || is_overlay_opaque(p)
}

fn redirect_of(p: &Path) -> Option<Vec<u8>> {
    for ns in ["trusted.overlay.redirect", "user.overlay.redirect"] {
        if let Ok(Some(v)) = xattr::get(p, ns) {
            return Some(v);
        }
    }
    None
}

/// If `name` is a whiteout, the name it hides.
pub fn whiteout_target(name: &OsStr, meta: Option<&fs::Metadata>) -> Option<OsString> {
    let b = name.as_bytes();
    if b.starts_with(WHITEOUT_PREFIX.as_bytes()) && !b.starts_with(b".wh..wh.") {
        return Some(OsStr::from_bytes(&b[WHITEOUT_PREFIX.len()..]).to_owned());
    }
    if meta.is_some_and(is_overlay_whiteout) {
        return Some(name.to_owned());
    }
    None
}

/// Calls `f(rel, source, meta)` for every visible object, parents before children,
/// names sorted. `rel` has no leading slash.
pub fn walk(
    layers: &[PathBuf],
    f: &mut dyn FnMut(&Path, &Path, &fs::Metadata) -> Result<()>,
) -> Result<()> {
    walk_indexed(layers, None, f)
}

/// As `walk`, for layers whose top one (`layers[0]`) is an overlay upper dir with the
/// hard-link index `index` (`WORK/index`): a lower file with hard links, one of which
/// was copied up, shows as that copy under each of its names, as overlayfs (index=on) and
/// unionctl show it.
pub fn walk_indexed(
    layers: &[PathBuf],
    index: Option<&Path>,
    f: &mut dyn FnMut(&Path, &Path, &fs::Metadata) -> Result<()>,
) -> Result<()> {
    let roots: Vec<(usize, PathBuf)> = layers
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_dir())
        .map(|(i, p)| (i, p.clone()))
        .collect();
    walk_dir(layers, index, Path::new(""), roots, f)
}

/// The index entry of a lower file (named by the hex of its overlay file handle), if one
/// of its names was copied up.
fn indexed_copy(index: &Path, layer: &Path, path: &Path) -> Option<(PathBuf, fs::Metadata)> {
    use crate::whiteout::fh;
    use std::os::fd::AsRawFd;
    let root = fs::File::open(layer).ok()?;
    let uuid = fh::fs_uuid(root.as_raw_fd());
    let (ty, fid) =
        fh::name_to_handle(root.as_raw_fd(), path.strip_prefix(layer).ok()?.as_os_str()).ok()?;
    let entry = index.join(hex::encode(fh::encode(ty, &fid, &uuid)));
    let meta = fs::symlink_metadata(&entry).ok()?;
    meta.is_file().then_some((entry, meta))
}

fn walk_dir(
    layers: &[PathBuf],
    index: Option<&Path>,
    rel: &Path,
    sources: Vec<(usize, PathBuf)>,
    f: &mut dyn FnMut(&Path, &Path, &fs::Metadata) -> Result<()>,
) -> Result<()> {
    let mut nodes: BTreeMap<OsString, Node> = BTreeMap::new();
    let mut hidden: HashSet<OsString> = HashSet::new();
    for (i, src) in &sources {
        let mut whiteouts = Vec::new();
        let rd = fs::read_dir(src).with_context(|| format!("reading {}", src.display()))?;
        for e in rd {
            let e = e.with_context(|| format!("reading {}", src.display()))?;
            let name = e.file_name();
            if name.as_bytes().starts_with(b".wh..wh.") {
                continue;
            }
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if let Some(t) = whiteout_target(&name, Some(&meta)) {
                whiteouts.push(t);
                continue;
            }
            if hidden.contains(&name) {
                continue;
            }
            if let Some(n) = nodes.get_mut(&name) {
                if n.open && meta.is_dir() {
                    n.open = !is_opaque_dir(&path);
                    n.sources.push((*i, path));
                } else {
                    n.open = false;
                }
                continue;
            }
            let mut node = Node {
                path: path.clone(),
                meta,
                layer: *i,
                sources: Vec::new(),
                open: false,
            };
            if node.meta.is_dir() {
                node.sources.push((*i, path.clone()));
                node.open = !is_opaque_dir(&path);
                if let Some(r) = redirect_of(&path) {
                    // A renamed dir: its lower content lives at the redirect path, from
                    // the layer roots if absolute, else beside it in each lower source
                    // of its parent (which may itself have been renamed).
                    node.open = false;
                    let below = match r.strip_prefix(b"/") {
                        Some(abs) => descend(layer_roots(layers, i + 1), OsStr::from_bytes(abs)),
                        None => descend(
                            sources.iter().filter(|(j, _)| j > i).cloned().collect(),
                            OsStr::from_bytes(&r),
                        ),
                    };
                    node.sources.extend(below);
                }
            }
            nodes.insert(name, node);
        }
        hidden.extend(whiteouts);
        if is_opaque_dir(src) {
            break;
        }
    }
    for (name, mut node) in nodes {
        if let Some(ix) = index
            && node.layer > 0
            && node.meta.is_file()
            && node.meta.nlink() > 1
            && let Some((entry, meta)) = indexed_copy(ix, &layers[node.layer], &node.path)
        {
            (node.path, node.meta) = (entry, meta);
        }
        let crel = rel.join(&name);
        f(&crel, &node.path, &node.meta)?;
        if node.meta.is_dir() {
            walk_dir(layers, index, &crel, node.sources, f)?;
        }
    }
    Ok(())
}

/// The roots of `layers[first..]` (layer index, path), for `descend`.
pub fn layer_roots(layers: &[PathBuf], first: usize) -> Vec<(usize, PathBuf)> {
    layers.iter().cloned().enumerate().skip(first).collect()
}

/// The dirs that make up the merged dir `rel` below the merged dir made of `dirs` (layer
/// index, path; top first), found as overlayfs looks a redirect up: name by name, where a
/// whiteout, a non-dir or an opaque dir in one layer ends the search in the layers below.
pub fn descend(mut dirs: Vec<(usize, PathBuf)>, rel: &OsStr) -> Vec<(usize, PathBuf)> {
    for name in Path::new(rel).components() {
        let name = name.as_os_str();
        let mut next = Vec::new();
        for (j, d) in &dirs {
            let p = d.join(name);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    let opaque = is_opaque_dir(&p);
                    next.push((*j, p));
                    if opaque {
                        break;
                    }
                }
                Ok(_) => break, // a file, or an overlay whiteout, hides the layers below
                Err(_) => {
                    let mut wh = OsString::from(WHITEOUT_PREFIX);
                    wh.push(name);
                    if d.join(wh).exists() {
                        break;
                    }
                }
            }
        }
        dirs = next;
    }
    dirs
}

/// Like `walk`, over one merged dir given as its sources (layer index into `layers`, dir),
/// top first; `rel` in the calls is relative to that dir. Redirects inside resolve
/// against the real layer roots.
pub fn walk_sources(
    layers: &[PathBuf],
    index: Option<&Path>,
    sources: Vec<(usize, PathBuf)>,
    f: &mut dyn FnMut(&Path, &Path, &fs::Metadata) -> Result<()>,
) -> Result<()> {
    walk_dir(layers, index, Path::new(""), sources, f)
}

/// Looks a path up in a stack of layers; returns the visible object, if any.
pub fn lookup(layers: &[PathBuf], rel: &Path) -> Option<(PathBuf, fs::Metadata)> {
    let mut cands: Vec<PathBuf> = layers.iter().filter(|p| p.is_dir()).cloned().collect();
    let mut found = cands
        .first()
        .and_then(|p| Some((p.clone(), fs::symlink_metadata(p).ok()?)));
    for comp in rel.components() {
        let c = comp.as_os_str();
        let mut next = Vec::new();
        let mut first: Option<(PathBuf, fs::Metadata)> = None;
        for d in &cands {
            let p = d.join(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if is_overlay_whiteout(&m) => break,
                Ok(m) => {
                    let is_dir = m.is_dir();
                    if first.is_none() {
                        first = Some((p.clone(), m));
                    }
                    if !is_dir {
                        break;
                    }
                    let opaque = is_opaque_dir(&p);
                    next.push(p);
                    if opaque {
                        break;
                    }
                }
                Err(_) => {
                    let mut wh = OsString::from(WHITEOUT_PREFIX);
                    wh.push(c);
                    if d.join(wh).exists() {
                        break;
                    }
                }
            }
        }
        found = Some(first?);
        cands = next;
    }
    found
}

/// Calls `f(name)` for each visible entry of the merged dir `rel` (not recursive).
pub fn walk_one(layers: &[PathBuf], rel: &Path, f: &mut dyn FnMut(&OsStr)) -> Result<()> {
    let Some((_, m)) = lookup(layers, rel) else {
        return Ok(());
    };
    if !m.is_dir() {
        return Ok(());
    }
    // The dir's sources: each layer's copy down to the first opaque one.
    let sub: Vec<PathBuf> = layers.iter().map(|l| l.join(rel)).collect();
    let mut hidden: HashSet<OsString> = HashSet::new();
    let mut seen: HashSet<OsString> = HashSet::new();
    for src in sub {
        let Ok(rd) = fs::read_dir(&src) else { continue };
        if fs::symlink_metadata(&src).is_ok_and(|m| !m.is_dir()) {
            break;
        }
        let mut wh = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name();
            if name.as_bytes().starts_with(b".wh..wh.") {
                continue;
            }
            let meta = fs::symlink_metadata(e.path()).ok();
            if let Some(t) = whiteout_target(&name, meta.as_ref()) {
                wh.push(t);
                continue;
            }
            if !hidden.contains(&name) && seen.insert(name.clone()) {
                f(&name);
            }
        }
        hidden.extend(wh);
        if is_opaque_dir(&src) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, data: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }

    #[test]
    fn aufs_layers_merge_like_overlayfs() {
        let t = tempfile::tempdir().unwrap();
        let (top, bottom) = (t.path().join("top"), t.path().join("bottom"));
        write(&bottom.join("a/keep"), "1");
        write(&bottom.join("a/gone"), "1");
        write(&bottom.join("o/old"), "1");
        write(&bottom.join("f"), "old");
        write(&bottom.join("d/x"), "1");
        write(&top.join("a/.wh.gone"), "");
        write(&top.join("a/new"), "2");
        write(&top.join("o/.wh..wh..opq"), "");
        write(&top.join("o/fresh"), "2");
        write(&top.join("f"), "new");
        write(&top.join("d"), "now a file");
        let layers = vec![top.clone(), bottom.clone()];
        let mut seen = Vec::new();
        walk(&layers, &mut |rel, src, _| {
            seen.push(format!(
                "{}@{}",
                rel.display(),
                if src.starts_with(&top) {
                    "top"
                } else {
                    "bottom"
                }
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                "a@top",
                "a/keep@bottom",
                "a/new@top",
                "d@top",
                "f@top",
                "o@top",
                "o/fresh@top"
            ]
        );
        assert!(lookup(&layers, Path::new("a/gone")).is_none());
        assert!(lookup(&layers, Path::new("o/old")).is_none());
        assert!(lookup(&layers, Path::new("d/x")).is_none());
        assert!(
            lookup(&layers, Path::new("a/keep"))
                .unwrap()
                .0
                .starts_with(&bottom)
        );
        assert_eq!(
            fs::read_to_string(lookup(&layers, Path::new("f")).unwrap().0).unwrap(),
            "new"
        );
    }
}
