//! Snapshots of a mounted tree and their comparison: what a user can observe, without the
//! things that legitimately differ between two mounts (st_ino values, st_dev, atime, ctime).
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Seconds two mtimes may differ by: the two mounts run the same operation a moment apart
/// (on a loaded CI machine maybe seconds); lost or wrong times are off by years.
pub const MTIME_SLACK: i64 = 30;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: char,
    pub mode: u32,
    pub size: u64,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub mtime: i64,
    /// Regular file content (FNV-1a hash and first bytes) or symlink target.
    pub content: String,
    /// Every xattr name visible through the mount, with its value.
    pub xattrs: BTreeMap<String, String>,
    pub ino: u64,
}

impl Entry {
    /// The attributes compared across mounts, mtime excluded (compared with slack).
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {:o} size={} nlink={} {}:{}",
            self.kind, self.mode, self.size, self.nlink, self.uid, self.gid
        );
        if self.kind == 'c' || self.kind == 'b' {
            s += &format!(" rdev={:x}", self.rdev);
        }
        if !self.content.is_empty() {
            s += &format!(" [{}]", self.content);
        }
        for (k, v) in &self.xattrs {
            s += &format!(" {k}={v}");
        }
        s
    }
}

pub type Tree = BTreeMap<String, Entry>;

/// Walks `root` (not following symlinks) and records every entry; "" is the root itself.
pub fn snapshot(root: &Path) -> Result<Tree, String> {
    let mut tree = Tree::new();
    walk(root, "", &mut tree)?;
    Ok(tree)
}

fn walk(root: &Path, rel: &str, tree: &mut Tree) -> Result<(), String> {
    let path = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let e = entry(&path).map_err(|e| format!("{rel}: {e}"))?;
    let is_dir = e.kind == 'd';
    tree.insert(rel.to_string(), e);
    if is_dir {
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .map_err(|e| format!("readdir {rel}: {e}"))?
            .map(|d| d.map(|d| d.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("readdir {rel}: {e}"))?;
        names.sort();
        for n in names {
            let child = if rel.is_empty() {
                n
            } else {
                format!("{rel}/{n}")
            };
            walk(root, &child, tree)?;
        }
    }
    Ok(())
}

pub fn entry(path: &Path) -> std::io::Result<Entry> {
    let md = std::fs::symlink_metadata(path)?;
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_file() {
        'f'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_fifo() {
        'p'
    } else if ft.is_socket() {
        's'
    } else if ft.is_char_device() {
        'c'
    } else {
        'b'
    };
    let content = match kind {
        'f' => content_summary(&std::fs::read(path)?),
        'l' => format!("-> {}", std::fs::read_link(path)?.display()),
        _ => String::new(),
    };
    let mut xattrs = BTreeMap::new();
    // xattr::list does not follow symlinks.
    if let Ok(names) = xattr::list(path) {
        for n in names {
            let name = String::from_utf8_lossy(n.as_bytes()).into_owned();
            let value = match xattr::get(path, &n) {
                Ok(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
                Ok(None) => "<none>".into(),
                Err(e) => format!("<{}>", super::io_errno_name(&e)),
            };
            xattrs.insert(name, value);
        }
    }
    Ok(Entry {
        kind,
        mode: md.mode() & 0o7777,
        size: md.size(),
        nlink: md.nlink(),
        uid: md.uid(),
        gid: md.gid(),
        rdev: md.rdev(),
        mtime: md.mtime(),
        content,
        xattrs,
        ino: md.ino(),
    })
}

/// Short, comparable description of file content.
pub fn content_summary(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let head: String = String::from_utf8_lossy(&data[..data.len().min(16)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    format!("len={} fnv={h:016x} {head:?}", data.len())
}

/// Differences between two snapshots, one line each (at most `limit` lines).
/// Also compares which paths share an inode (hard-link groups), not the numbers.
pub fn diff(a_name: &str, a: &Tree, b_name: &str, b: &Tree, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let shown = if k.is_empty() { "/" } else { k.as_str() };
        match (a.get(k), b.get(k)) {
            (Some(x), None) => out.push(format!("{shown}: only in {a_name}: {}", x.describe())),
            (None, Some(y)) => out.push(format!("{shown}: only in {b_name}: {}", y.describe())),
            (Some(x), Some(y)) => {
                if x.describe() != y.describe() {
                    out.push(format!(
                        "{shown}: {a_name}: {} | {b_name}: {}",
                        x.describe(),
                        y.describe()
                    ));
                } else if (x.mtime - y.mtime).abs() > MTIME_SLACK {
                    out.push(format!(
                        "{shown}: mtime {a_name}: {} | {b_name}: {}",
                        x.mtime, y.mtime
                    ));
                }
            }
            (None, None) => {}
        }
    }
    let (ga, gb) = (link_groups(a), link_groups(b));
    if ga != gb {
        for g in ga.difference(&gb) {
            out.push(format!("hard-link group in {a_name} only: {g:?}"));
        }
        for g in gb.difference(&ga) {
            out.push(format!("hard-link group in {b_name} only: {g:?}"));
        }
    }
    out.truncate(limit);
    out
}

/// Sets of non-directory paths that share one st_ino (groups of two or more).
pub fn link_groups(t: &Tree) -> std::collections::BTreeSet<Vec<String>> {
    let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (p, e) in t {
        if e.kind != 'd' {
            by_ino.entry(e.ino).or_default().push(p.clone());
        }
    }
    by_ino.into_values().filter(|v| v.len() > 1).collect()
}

/// Entries under ROOT whose readdir inode number (d_ino) is not their st_ino: overlayfs
/// keeps them equal (the "impure" dirs of its upper layer exist for that).
pub fn d_ino_mismatches(root: &Path) -> Vec<String> {
    use std::os::unix::fs::{DirEntryExt, MetadataExt};
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            out.push(format!("{}: cannot list", dir.display()));
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if e.ino() != md.ino() {
                let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                out.push(format!("{rel}: d_ino {} st_ino {}", e.ino(), md.ino()));
            }
            if md.is_dir() {
                dirs.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A file type letter and the (name, value) overlay xattrs of one upper path.
pub type UpperEntry = (char, Vec<(String, Vec<u8>)>);

/// Each path of an upper dir with its file type and overlay xattrs (the upper root's
/// mount-time origin and uuid left out: the kernel writes them when it first mounts;
/// names of index-linked hard links left out, see below).
pub fn upper_layout(upper: &Path) -> BTreeMap<String, UpperEntry> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(upper).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(upper)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let ft = e.file_type();
        let kind = match () {
            _ if ft.is_dir() => 'd',
            _ if ft.is_symlink() => 'l',
            _ if ft.is_char_device() => 'c',
            _ if ft.is_file() => 'f',
            _ => '?',
        };
        let mut xs: Vec<(String, Vec<u8>)> = xattr::list(e.path())
            .unwrap()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.starts_with("trusted.overlay."))
            .filter(|n| !(rel.is_empty() && (n.ends_with(".origin") || n.ends_with(".uuid"))))
            .map(|n| {
                let v = xattr::get(e.path(), &n).unwrap().unwrap_or_default();
                (n, v)
            })
            .collect();
        // A lower hard link copied up through the index: which of its names are linked
        // into the upper dir follows the name each change went through, which FUSE does
        // not tell (it passes inodes); the union view is compared elsewhere.
        if xs.iter().any(|(n, _)| n.ends_with(".nlink")) {
            continue;
        }
        xs.sort();
        out.insert(rel, (kind, xs));
    }
    out
}

/// How the upper dir GOT differs from WANT (kernel overlayfs' after the same changes).
pub fn upper_layout_diff(want: &Path, got: &Path) -> Vec<String> {
    layout_diff(&upper_layout(want), &upper_layout(got))
}

/// As `upper_layout_diff`, for two sides over different lower dirs (each over its own
/// rotated uppers): each origin xattr is compared as the lower object its file handle
/// names (layer index and path), not as bytes.
pub fn upper_layout_diff_over(want: (&Path, &[PathBuf]), got: (&Path, &[PathBuf])) -> Vec<String> {
    layout_diff(
        &resolve_origins(upper_layout(want.0), want.1),
        &resolve_origins(upper_layout(got.0), got.1),
    )
}

fn layout_diff(
    want: &BTreeMap<String, UpperEntry>,
    got: &BTreeMap<String, UpperEntry>,
) -> Vec<String> {
    want.iter()
        .filter(|(p, v)| got.get(*p) != Some(*v))
        .map(|(p, v)| format!("{p}: kernel {v:?}, subject {:?}", got.get(p)))
        .chain(
            got.iter()
                .filter(|(p, _)| !want.contains_key(*p))
                .map(|(p, v)| format!("{p}: only subject {v:?}")),
        )
        .collect()
}

/// Replaces each origin xattr that `LowerObjects::name` can read with that name.
fn resolve_origins(
    mut layout: BTreeMap<String, UpperEntry>,
    lowers: &[PathBuf],
) -> BTreeMap<String, UpperEntry> {
    let objects = LowerObjects::of(lowers);
    for (_, xs) in layout.values_mut() {
        for (name, v) in xs.iter_mut() {
            if name.ends_with(".origin")
                && let Some(named) = objects.name(v)
            {
                *v = named.into_bytes();
            }
        }
    }
    layout
}

/// The objects of a stack of lower layers by inode number, to name what an origin file
/// handle points at.
pub struct LowerObjects(BTreeMap<u64, String>);

impl LowerObjects {
    pub fn of(lowers: &[PathBuf]) -> LowerObjects {
        let mut by_ino: BTreeMap<u64, String> = BTreeMap::new();
        for (i, layer) in lowers.iter().enumerate() {
            for e in walkdir::WalkDir::new(layer)
                .sort_by_file_name()
                .into_iter()
                .flatten()
            {
                let Ok(md) = e.metadata() else { continue };
                let rel = e.path().strip_prefix(layer).unwrap().to_string_lossy();
                by_ino
                    .entry(md.ino() & 0xffff_ffff)
                    .or_insert_with(|| format!("layer {i}: /{rel}"));
            }
        }
        LowerObjects(by_ino)
    }

    /// "<layer N: path>" of the object an origin file handle of the form the test file
    /// system writes names (overlay fh version 0, FILEID_INO32_GEN: a 32-bit inode number
    /// at byte 21; the first path by name of a hard-linked one); None for another form.
    pub fn name(&self, fh: &[u8]) -> Option<String> {
        if fh.len() < 25 || fh[..2] != [0, 0xfb] || fh[4] != 1 {
            return None;
        }
        let ino = u64::from(u32::from_le_bytes(fh[21..25].try_into().unwrap()));
        Some(match self.0.get(&ino) {
            Some(p) => format!("<{p}>"),
            None => format!("<inode {ino}, in no lower layer>"),
        })
    }
}

/// Paths whose st_ino differs between two snapshots of the same mount's data (e.g. before
/// and after a remount): st_ino must be stable.
pub fn ino_changes(before: &Tree, after: &Tree) -> Vec<String> {
    before
        .iter()
        .filter_map(|(p, e)| {
            let a = after.get(p)?;
            (a.ino != e.ino).then(|| {
                format!(
                    "{}: st_ino {} -> {}",
                    if p.is_empty() { "/" } else { p },
                    e.ino,
                    a.ino
                )
            })
        })
        .collect()
}
