//! The merged views the image commands read, opened over a container's layer dirs (no
//! mount): `unionfs::MergedView`, the union's own rule.
use crate::unionfs::{MergedView, OfflineSpec};
use crate::whiteout::Format;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The xattr namespace read first, as a mount by this caller chooses it: `user.overlay.*`
/// in a user namespace or as a plain user. The other one is read too: a rootless
/// container's upper (`user.overlay.*`) read by root, or the reverse, reads the same.
fn user_xattr() -> bool {
    (unsafe { libc::geteuid() }) != 0 || !crate::sys::in_initial_userns()
}

/// Upper dir (of unknown format: both are read) with its hard-link index over the lowers.
pub fn of_upper(upper: &Path, index: Option<&Path>, lowers: &[PathBuf]) -> io::Result<MergedView> {
    of_upper_in(upper, index, lowers, None)
}

/// `of_upper` for an upper whose format is known (None: unknown, both are read). An
/// aufs-format upper must say so: a character device 0/0 made through such a union is an
/// ordinary device there, where an overlay-format upper would hold a whiteout.
pub fn of_upper_in(
    upper: &Path,
    index: Option<&Path>,
    lowers: &[PathBuf],
    format: Option<Format>,
) -> io::Result<MergedView> {
    MergedView::open(&OfflineSpec {
        upper: Some(upper.to_path_buf()),
        index: index.map(Path::to_path_buf),
        lowers: lowers.to_vec(),
        format,
        user_xattr: user_xattr(),
    })
}

/// The lowers alone: what a container started from.
pub fn of_lowers(lowers: &[PathBuf]) -> io::Result<MergedView> {
    MergedView::open(&OfflineSpec {
        lowers: lowers.to_vec(),
        user_xattr: user_xattr(),
        ..Default::default()
    })
}

/// Paths the runner creates (empty) as mount points; never a change of the user's.
pub const RUNTIME_MOUNTPOINTS: &[&str] = &[
    "dev",
    "proc",
    "sys",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    ".dockerenv",
];

/// Whether `rel` (in an upper layer) is only a runtime mount point: listed above,
/// empty, and absent from the lowers' view.
pub fn is_runtime_mountpoint(
    rel: &Path,
    full: &Path,
    meta: &fs::Metadata,
    lowers: &MergedView,
) -> io::Result<bool> {
    let Some(r) = rel.to_str() else {
        return Ok(false);
    };
    if !RUNTIME_MOUNTPOINTS.contains(&r) {
        return Ok(false);
    }
    let empty = if meta.is_dir() {
        fs::read_dir(full)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
    } else {
        meta.is_file() && meta.len() == 0
    };
    Ok(empty && lowers.lookup(rel)?.is_none())
}
