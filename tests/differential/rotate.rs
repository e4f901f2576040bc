//! Rotating the layers between two rounds of a sequence, as an image commit stacks a
//! container's changes: each side's upper becomes its own top lower layer under a fresh
//! upper and work dir (the old work dir, with its index, is not part of a layer).
use super::harness::Side;
use crate::common::tree::LowerObjects;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const NLINK: &str = "trusted.overlay.nlink";
const ORIGIN: &str = "trusted.overlay.origin";

/// Rotates both sides, after aligning the names of index-linked hard links (see
/// `align_index_links`) in the subject's upper to the kernel's.
pub(crate) fn rotate_both(kernel: &mut Side, subject: &mut Side, round: usize) {
    align_index_links(kernel, subject);
    kernel.rotate(round);
    subject.rotate(round);
}

/// A lower hard link changed through one of its names is copied up into the index, and
/// that name is linked into the upper dir; its other names stay lower only and show the
/// copy through the index. Which name that is follows the path the change went through,
/// which FUSE does not tell unionctl (it passes inodes): the upper layouts are compared
/// without those names (`tree::upper_layout`). Once the upper is a lower layer the index
/// is gone and each name shows what its layers hold, so before a rotation the subject's
/// upper gets the kernel's names of each such hard link (linked to its copy), and the
/// parent dirs keep their times. A name whose parent dir the subject did not copy up is
/// left as it is (and shows as a difference). A copy whose every upper name went while
/// some lower-only name still showed it is linked from the subject's index.
fn align_index_links(kernel: &Side, subject: &Side) {
    let ku = kernel.dirs.upper.as_ref().unwrap();
    let su = subject.dirs.upper.as_ref().unwrap();
    let want = index_links(ku, &kernel.dirs.lowers);
    let have = index_links(su, &subject.dirs.lowers);
    // A copy whose upper names all went while a lower-only name still shows it is left in
    // the index only.
    let work = subject.dirs.work.as_ref().unwrap().join("index");
    let indexed = index_links(&work, &subject.dirs.lowers);
    let none = BTreeSet::new();
    for (origin, names) in &want {
        let got = have.get(origin).unwrap_or(&none);
        let src = match (
            got.iter().next(),
            indexed.get(origin).and_then(|i| i.first()),
        ) {
            (Some(n), _) => su.join(n),
            (None, Some(i)) => work.join(i),
            (None, None) => continue,
        };
        let mut all_there = true;
        for n in names.difference(got) {
            let dst = su.join(n);
            let linked = dst.parent().is_some_and(Path::is_dir)
                && keeping_parent_times(&dst, || std::fs::hard_link(&src, &dst)).is_ok();
            all_there &= linked;
        }
        if !all_there {
            continue;
        }
        for n in got.difference(names) {
            let p = su.join(n);
            let _ = keeping_parent_times(&p, || std::fs::remove_file(&p));
        }
    }
}

/// The names in UPPER of each lower hard link copied up through the index (those with an
/// `overlay.nlink`), by the lower object their origin names.
fn index_links(upper: &Path, lowers: &[PathBuf]) -> BTreeMap<String, BTreeSet<String>> {
    let objects = LowerObjects::of(lowers);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in walkdir::WalkDir::new(upper).into_iter().flatten() {
        if !e.file_type().is_file() || !matches!(xattr::get(e.path(), NLINK), Ok(Some(_))) {
            continue;
        }
        let Some(origin) = xattr::get(e.path(), ORIGIN)
            .ok()
            .flatten()
            .and_then(|fh| objects.name(&fh))
        else {
            continue;
        };
        let rel = e.path().strip_prefix(upper).unwrap();
        out.entry(origin)
            .or_default()
            .insert(rel.to_string_lossy().into_owned());
    }
    out
}

/// Runs F (a link or unlink of PATH), then gives PATH's parent dir back its times.
fn keeping_parent_times(
    path: &Path,
    f: impl FnOnce() -> std::io::Result<()>,
) -> std::io::Result<()> {
    let parent = path.parent().unwrap();
    let md = std::fs::metadata(parent)?;
    f()?;
    utimensat(
        nix::fcntl::AT_FDCWD,
        parent,
        &TimeSpec::new(md.atime(), md.atime_nsec()),
        &TimeSpec::new(md.mtime(), md.mtime_nsec()),
        UtimensatFlags::FollowSymlink,
    )
    .map_err(std::io::Error::from)
}
