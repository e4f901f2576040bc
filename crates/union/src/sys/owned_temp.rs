//! Temp files and dirs named after the process that owns them,
//! `.tmp-<pid>.<start time>-<random>`, so that a later command can tell the leftovers of
//! a killed command (owner gone, or its pid now taken by another process) from the temps
//! of a command still running, and remove only the former.
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

const PREFIX: &str = ".tmp-";

/// `.tmp-<pid>.<start>-` for this process (read each time: a forked child is its own
/// owner).
fn owner_prefix() -> String {
    let pid = std::process::id() as i32;
    let start = super::proc::proc_start_time(pid).unwrap_or(0);
    format!("{PREFIX}{pid}.{start}-")
}

fn creating_in(dir: &Path, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("creating a temp file in {}: {e}", dir.display()),
    )
}

/// A new temp file in `dir` owned by this process.
pub fn file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&owner_prefix())
        .tempfile_in(dir)
        .map_err(|e| creating_in(dir, e))
}

/// A new temp dir in `dir` owned by this process (removed when dropped).
pub fn dir_in(dir: &Path) -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&owner_prefix())
        .tempdir_in(dir)
        .map_err(|e| creating_in(dir, e))
}

/// A temp name in `dir` owned by this process, for a temp made by other means (a hard
/// link); `label` must make it unique within this process.
pub fn path_in(dir: &Path, label: &str) -> PathBuf {
    dir.join(format!("{}{label}", owner_prefix()))
}

/// Whether the owner of a temp named by this module still runs; None for other names.
pub fn owner_alive(name: &OsStr) -> Option<bool> {
    let rest = name.to_str()?.strip_prefix(PREFIX)?;
    let (owner, _) = rest.split_once('-')?;
    let (pid, start) = owner.split_once('.')?;
    let pid: i32 = pid.parse().ok()?;
    let start: u64 = start.parse().ok()?;
    Some(super::proc::process_alive(pid, Some(start)))
}

/// The entries of `dir` that are temps of processes gone (a missing dir has none).
pub fn dead_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| owner_alive(&e.file_name()) == Some(false))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_dead_owners() {
        let d = tempfile::tempdir().unwrap();
        let mine = file_in(d.path()).unwrap();
        let my_dir = dir_in(d.path()).unwrap();
        assert_eq!(owner_alive(mine.path().file_name().unwrap()), Some(true));
        // A dead process: a child that has been waited for.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = d.path().join(format!(".tmp-{pid}.1-abc"));
        std::fs::write(&dead, b"x").unwrap();
        // This pid with another start time: the pid was reused, the owner is gone.
        let me = std::process::id();
        let reused = d.path().join(format!(".tmp-{me}.1-abc"));
        std::fs::write(&reused, b"x").unwrap();
        std::fs::write(d.path().join("other"), b"x").unwrap();
        std::fs::write(d.path().join(".tmp-x"), b"x").unwrap();
        let mut found = dead_in(d.path());
        found.sort();
        let mut want = vec![dead, reused];
        want.sort();
        assert_eq!(found, want);
        assert!(my_dir.path().is_dir());
        assert_eq!(owner_alive(OsStr::new("other")), None);
        assert!(path_in(d.path(), "adopt-1").starts_with(d.path()));
    }
}
