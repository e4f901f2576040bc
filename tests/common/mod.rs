//! Shared helpers for the file-system integration tests: scratch dirs, lower layers in
//! kernel or aufs format, kernel overlayfs and unionctl mounts, tree snapshots.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod archive;
pub mod events;
pub mod layers;
pub mod mounts;
pub mod setup;
pub mod tree;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The unionctl binary under test: $UNIONCTL_BIN, else the one cargo built for this test.
pub fn unionctl_bin() -> PathBuf {
    match std::env::var_os("UNIONCTL_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_unionctl")),
    }
}

/// A scratch directory (mode 0755 so non-root test users can reach into it), removed on
/// drop after every mount below it is gone.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new(prefix: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir_in(scratch_base())
            .expect("create scratch dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod scratch dir");
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Creates (and returns) a subdirectory, mode 0755.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Never recurse into a live mount: lazily detach anything still mounted below.
        for m in mounts::mount_points_under(self.dir.path())
            .into_iter()
            .rev()
        {
            let _ = mounts::force_unmount(&m);
        }
    }
}

/// Scratch dirs live on the root file system (ext4 here: trusted xattrs, file handles),
/// under a 0755 parent so pjdfstest's non-root users can traverse the path.
fn scratch_base() -> PathBuf {
    let base = PathBuf::from("/var/lib/uct");
    std::fs::create_dir_all(&base).expect("create /var/lib/uct");
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    base
}

/// Name of an errno value, e.g. "ENOENT".
pub fn errno_name(e: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(e))
}

pub fn io_errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_name(n),
        None => e.to_string(),
    }
}

/// True when the current process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Prints a line that shows in `cargo test` output even when the test passes (the test
/// harness captures print!/eprint!, not direct writes to the stream).
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
