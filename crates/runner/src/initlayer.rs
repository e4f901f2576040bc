//! The init layer: a small lower layer on top of the image's, holding the mount points
//! the runtime needs (/proc, /sys, /dev, /etc/hostname, /etc/hosts, /etc/resolv.conf,
//! volume targets) when the image lacks them, so they never land in the container's
//! upper layer (and never in `diff` or `commit`), as Docker's "-init" layer.
use super::rootfs::secure_join;
use super::state::Container;
use crate::error::{Result, io};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Whether `rel` (absolute in the container) exists in any lower layer, the last
/// component not followed (a symlink counts as present).
fn in_lowers(lowers: &[PathBuf], rel: &str) -> bool {
    let p = Path::new(rel);
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return true;
    };
    lowers
        .iter()
        .any(|l| fs::symlink_metadata(secure_join(l, &parent.to_string_lossy()).join(name)).is_ok())
}

/// First lower's metadata of the directory `rel`, to give the init layer's copy the
/// same mode, owner and times (the topmost layer's directory attributes show).
fn lower_dir_meta(lowers: &[PathBuf], rel: &str) -> Option<fs::Metadata> {
    lowers.iter().find_map(|l| {
        fs::metadata(secure_join(l, rel))
            .ok()
            .filter(|m| m.is_dir())
    })
}

/// Gives `path` the mode, owner and times of `m`.
fn copy_meta(path: &Path, m: &fs::Metadata) {
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(m.mode() & 0o7777));
    let _ = std::os::unix::fs::lchown(path, Some(m.uid()), Some(m.gid()));
    let times = fs::FileTimes::new()
        .set_modified(m.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH))
        .set_accessed(m.accessed().unwrap_or(std::time::SystemTime::UNIX_EPOCH));
    if let Ok(f) = fs::File::open(path) {
        let _ = f.set_times(times);
    }
}

fn make_dir(init: &Path, lowers: &[PathBuf], rel: &str) -> Result<()> {
    let mut path = init.to_path_buf();
    let mut sofar = String::new();
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        sofar.push('/');
        sofar.push_str(comp);
        path.push(comp);
        if path.exists() {
            continue;
        }
        fs::create_dir(&path).map_err(io("mkdir", &path))?;
        if lower_dir_meta(lowers, &sofar).is_none() {
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o755));
        }
    }
    Ok(())
}

/// The init layer's directory of `c` (made by `prepare`).
pub fn dir(c: &Container) -> PathBuf {
    c.dir.join("init")
}

/// Writes the init layer of `c` (once) and returns its directory.
pub fn prepare(c: &Container) -> Result<PathBuf> {
    let init = dir(c);
    fs::create_dir_all(&init).map_err(io("mkdir", &init))?;
    let lowers = &c.lowers;
    for dir in ["/proc", "/sys", "/dev"] {
        if !in_lowers(lowers, dir) {
            make_dir(&init, lowers, dir)?;
        }
    }
    let mut files: Vec<(String, bool)> = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
        .iter()
        .map(|f| (f.to_string(), false))
        .collect();
    for v in &c.config.volumes {
        let is_dir = fs::metadata(&v.host).map(|m| m.is_dir()).unwrap_or(true);
        files.push((v.container.clone(), is_dir));
    }
    for (rel, is_dir) in files {
        if in_lowers(lowers, &rel) {
            continue;
        }
        let p = Path::new(&rel);
        if let Some(parent) = p.parent() {
            make_dir(&init, lowers, &parent.to_string_lossy())?;
        }
        let target = init.join(rel.trim_start_matches('/'));
        if is_dir {
            make_dir(&init, lowers, &rel)?;
        } else if !target.exists() {
            fs::File::create(&target).map_err(io("create", &target))?;
        }
    }
    // Directories also in the lowers show their attributes, not ours: the topmost
    // layer's directory attributes are what the union shows. Deepest first, so setting
    // a child's times does not change its parent's again.
    let mut dirs: Vec<PathBuf> = walkdir::WalkDir::new(&init)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.path().to_path_buf())
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let rel = format!("/{}", d.strip_prefix(&init).unwrap_or(&d).to_string_lossy());
        if let Some(m) = lower_dir_meta(lowers, &rel) {
            copy_meta(&d, &m);
        }
    }
    Ok(init)
}
