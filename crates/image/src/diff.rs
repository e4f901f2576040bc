//! `diff`: a container's changes as `docker diff` prints them (`A`, `C`, `D` lines,
//! sorted by path), read from its upper layer and whiteouts.
use super::container;
use super::layer::{OPAQUE_MARKER, is_overlay_opaque, is_runtime_mountpoint, rel_display};
use super::merged::{lookup, whiteout_target};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// The changes of a container, path -> kind ('A', 'C' or 'D').
pub fn changes(root: &Path, ctr: &str) -> Result<BTreeMap<String, char>> {
    let c = container::find(root, ctr)?;
    let lowers = c.lower_dirs();
    let mut out = BTreeMap::new();
    let upper = c.upper();
    if upper.is_dir() {
        walk(&upper, &names_of(&upper)?, Path::new(""), &lowers, &mut out)?;
    }
    Ok(out)
}

/// Records the changes below `dir` (upper layer path `rel`), whose names are `names`.
fn walk(
    dir: &Path,
    names: &[OsString],
    rel: &Path,
    lowers: &[PathBuf],
    out: &mut BTreeMap<String, char>,
) -> Result<()> {
    for name in names {
        let path = dir.join(name);
        let meta = fs::symlink_metadata(&path)?;
        if name.as_encoded_bytes().starts_with(b".wh..wh.") {
            continue;
        }
        if let Some(t) = whiteout_target(name, Some(&meta)) {
            out.insert(rel_display(&rel.join(t)), 'D');
            continue;
        }
        let crel = rel.join(name);
        if is_runtime_mountpoint(&crel, &path, &meta, lowers) {
            continue;
        }
        let below = lookup(lowers, &crel);
        let kind = if below.is_some() { 'C' } else { 'A' };
        out.insert(rel_display(&crel), kind);
        if meta.is_dir() {
            let sub = names_of(&path)?;
            let opaque = path.join(OPAQUE_MARKER).exists() || is_overlay_opaque(&path);
            if opaque {
                // What the lower layers had here is gone, unless written anew above.
                if let Some((_, lm)) = &below
                    && lm.is_dir()
                {
                    hidden_lower_entries(&crel, &sub, out, lowers);
                }
            }
            walk(&path, &sub, &crel, lowers, out)?;
        }
    }
    Ok(())
}

fn names_of(dir: &Path) -> Result<Vec<OsString>> {
    let rd = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut names = Vec::new();
    for e in rd {
        names.push(
            e.with_context(|| format!("reading {}", dir.display()))?
                .file_name(),
        );
    }
    Ok(names)
}

fn hidden_lower_entries(
    rel: &Path,
    upper_names: &[OsString],
    out: &mut BTreeMap<String, char>,
    lowers: &[PathBuf],
) {
    // List the merged lower view of this dir: every visible name not in the upper.
    let mut seen = Vec::new();
    let _ = super::merged::walk_one(lowers, rel, &mut |name| seen.push(name.to_owned()));
    for n in seen {
        if !upper_names.contains(&n) {
            out.insert(rel_display(&rel.join(n)), 'D');
        }
    }
}
