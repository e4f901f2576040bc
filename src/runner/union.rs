//! The container's root: our own union file system, mounted by running
//! `unionctl mount` (which returns once the FUSE mount is ready) and `unionctl umount`.
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn unionctl_binary() -> Result<PathBuf> {
    std::env::current_exe().context("find the unionctl binary (/proc/self/exe)")
}

/// Mounts `lowers` (top first) under `upper` at `merged`. Must run in the mount (and,
/// rootless, user) namespace the container will be created from.
pub fn mount(lowers: &[PathBuf], upper: &Path, work: &Path, merged: &Path) -> Result<()> {
    let lower = lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let errors = tempfile::tempfile().context("temporary file")?;
    let out = Command::new(unionctl_binary()?)
        .arg("mount")
        .arg("--lower")
        .arg(&lower)
        .arg("--upper")
        .arg(upper)
        .arg("--work")
        .arg(work)
        // Processes of other users (e.g. `-u 1000`) must reach the container's files.
        .args(["-o", "allow_other"])
        .arg(merged)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: the daemon it leaves behind may keep stderr open.
        .stderr(errors.try_clone()?)
        .status()
        .context("run unionctl mount")?;
    if !out.success() {
        bail!(
            "union mount of {}: {}",
            merged.display(),
            read_errors(errors)
        );
    }
    Ok(())
}

fn read_errors(mut f: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut s = String::new();
    let _ = f.rewind();
    let _ = f.read_to_string(&mut s);
    let s = s.trim().trim_start_matches("unionctl: ");
    if s.is_empty() {
        "failed".into()
    } else {
        s.to_string()
    }
}

pub fn unmount(merged: &Path) -> Result<()> {
    // The library call `unionctl umount` makes, without the cost of another exec.
    crate::fuse::unmount(merged)
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
