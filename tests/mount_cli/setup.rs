//! The scratch area the `unionctl mount` / `umount` tests (mount_cli.rs, mount_daemon.rs)
//! start from.
use crate::common::{self, Scratch};
use std::path::PathBuf;

/// A scratch area with two lowers, an upper, a work dir and a mount point.
pub(crate) struct Setup {
    pub(crate) s: Scratch,
    pub(crate) lower: PathBuf,
    // Read through mount_cli.rs's `Setup::lowers` only.
    #[allow(dead_code)]
    pub(crate) lower2: PathBuf,
    pub(crate) upper: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) merged: PathBuf,
}

pub(crate) fn setup(name: &str) -> Setup {
    assert!(
        common::is_root(),
        "mount_cli tests mount FUSE and tmpfs: run as root"
    );
    common::mounts::ensure_fusectl();
    let s = Scratch::new(name);
    let lower = s.mkdir("lower");
    let lower2 = s.mkdir("lower2");
    std::fs::write(lower.join("top"), b"from the top lower\n").unwrap();
    std::fs::write(lower2.join("bottom"), b"from the bottom lower\n").unwrap();
    std::fs::write(lower2.join("top"), b"hidden\n").unwrap();
    std::fs::create_dir(lower2.join("dir")).unwrap();
    std::fs::write(lower2.join("dir/f"), b"f\n").unwrap();
    Setup {
        upper: s.mkdir("upper"),
        work: s.mkdir("work"),
        merged: s.mkdir("merged"),
        lower,
        lower2,
        s,
    }
}
