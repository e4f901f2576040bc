//! `diff`: a container's changes as `docker diff` prints them (`A`, `C`, `D` lines,
//! sorted by path): its merged view against the view of its lowers alone, both read
//! through the union's own rule (`unionfs::MergedView`).
use super::container;
use super::layer::rel_display;
use super::views;
use crate::error::Result;
use crate::error::{Context, io};
use crate::unionfs::{MergedView, ViewEntry};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::Path;

/// The changes of a container, path -> kind ('A', 'C' or 'D').
pub fn changes(root: &Path, ctr: &str) -> Result<BTreeMap<String, char>> {
    let c = container::find(root, ctr)?;
    let upper = c.upper();
    if !upper.is_dir() {
        return Ok(BTreeMap::new());
    }
    let lowers = c.lower_dirs();
    let index = c.work().join("index");
    let all = views::of_upper(&upper, Some(&index), &lowers).map_err(io("reading", &upper))?;
    let below = views::of_lowers(&lowers).context("reading the lower layers")?;
    changes_of(&all, &below)
}

/// What `all` (an upper dir over lowers) changes in `below` (the lowers alone): every
/// object with an upper entry, served from the hard-link index, or inside a new or
/// renamed dir (`A` when `below` lacks its path, else `C`), and every name of a dir with
/// an upper entry that `below` shows and `all` does not (`D`).
pub fn changes_of(all: &MergedView, below: &MergedView) -> Result<BTreeMap<String, char>> {
    let mut w = Walk {
        all,
        below,
        // A copied-up hard link changes its other names too, wherever they are.
        whole: all.index_in_use(),
        out: BTreeMap::new(),
    };
    if let (Some(root), lower_root) = (all.lookup(Path::new(""))?, below.lookup(Path::new(""))?) {
        w.dir(&root, lower_root.as_ref(), false)?;
    }
    Ok(w.out)
}

struct Walk<'a> {
    all: &'a MergedView,
    below: &'a MergedView,
    whole: bool,
    out: BTreeMap<String, char>,
}

impl Walk<'_> {
    /// The changes inside `dir`; `lower` is the same path in `below`; `moved`: `dir` is
    /// new or renamed, so all it holds is a change.
    fn dir(&mut self, dir: &ViewEntry, lower: Option<&ViewEntry>, moved: bool) -> Result<()> {
        let mut below: HashMap<OsString, ViewEntry> = HashMap::new();
        if let Some(l) = lower.filter(|l| dir.upper && l.is_dir()) {
            for e in self.below.list(l)? {
                below.insert(name_of(&e), e);
            }
        }
        let entries = self.all.list(dir)?;
        for e in &entries {
            below.remove(&name_of(e));
        }
        for gone in below.values() {
            self.out.insert(rel_display(&gone.rel), 'D');
        }
        for e in entries {
            let changed = moved || e.upper || e.from_index;
            if !(changed || self.whole && e.is_dir()) {
                continue;
            }
            if e.upper && views::is_runtime_mountpoint(&e.rel, &e.real, &e.meta, self.below)? {
                continue;
            }
            let lower = if changed || dir.upper {
                self.below.lookup(&e.rel)?
            } else {
                None
            };
            if changed {
                let kind = if lower.is_some() { 'C' } else { 'A' };
                self.out.insert(rel_display(&e.rel), kind);
            }
            if e.is_dir() {
                let moved = moved || e.redirected || (changed && lower.is_none());
                self.dir(&e, lower.as_ref(), moved)?;
            }
        }
        Ok(())
    }
}

fn name_of(e: &ViewEntry) -> OsString {
    e.rel.file_name().unwrap_or_default().to_owned()
}
