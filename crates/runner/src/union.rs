//! The container's root: our own union file system, mounted through the library's
//! mount daemon (`fuse::daemon`), which returns once the FUSE mount is ready.
use crate::error::Result;
use crate::fuse::{self, MountRequest, daemon::PendingMount};
use crate::whiteout::Format;
use std::path::{Path, PathBuf};

/// Starts mounting `lowers` (top first) under `upper` at `merged`; the caller may do
/// other work until `PendingMount::wait`. Must run in the mount (and, rootless, user)
/// namespace the container will be created from.
pub fn spawn_mount(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    merged: &Path,
) -> Result<PendingMount> {
    let req = MountRequest::new(
        distinct(lowers),
        Some(upper.to_path_buf()),
        Some(work.to_path_buf()),
        Format::Overlay,
        // Processes of other users (e.g. `-u 1000`) must reach the container's files.
        &["allow_other".to_string()],
        merged.to_path_buf(),
    )?;
    Ok(fuse::daemon::spawn(&req)?)
}

/// An image's lower dirs with each dir once, at its topmost place. Equal layers of an
/// image share one dir; below its first place a layer adds nothing, and the union
/// refuses a lower twice, as the kernel does.
pub fn distinct(lowers: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    lowers.iter().filter(|l| seen.insert(*l)).cloned().collect()
}

pub fn unmount(merged: &Path) -> Result<()> {
    Ok(fuse::unmount(merged)?)
}

/// Whether `path` is a mount point in the current mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == want)
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes() {
        assert_eq!(super::unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(super::unescape_mountinfo("/plain"), "/plain");
    }
}
