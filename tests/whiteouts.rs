//! Whiteouts share one inode (hard links, as the kernel's do), in both formats. More
//! whiteouts than the upper file system allows links to one inode (ext4: 65,000) start a
//! new shared inode; every deletion still holds, for us and for kernel overlayfs reading
//! the same upper dir.
mod common;

use common::Scratch;
use common::mounts::{UnionDirs, mount_kernel, mount_unionctl};
use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

const FILES: usize = 65_100;

#[test]
fn more_whiteouts_than_one_inode_has_links() {
    assert!(
        common::is_root(),
        "mounts FUSE and kernel overlayfs: run as root"
    );
    common::mounts::ensure_fusectl();
    let s = Scratch::new("whiteouts");
    let _watchdog = common::mounts::Watchdog::new("whiteouts test", s.path(), 300);
    let lower = s.mkdir("lower");
    let many = lower.join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..FILES {
        std::fs::File::create(many.join(format!("f{i}"))).unwrap();
    }
    std::fs::write(lower.join("keep"), b"kept\n").unwrap();
    let dirs = UnionDirs {
        lowers: vec![lower.clone()],
        upper: Some(s.mkdir("upper")),
        work: Some(s.mkdir("work")),
    };
    let merged = s.mkdir("merged");
    let mut m = mount_unionctl(&dirs, &merged, &[]).expect("unionctl mount");
    for i in 0..FILES {
        let p = merged.join(format!("many/f{i}"));
        std::fs::remove_file(&p).unwrap_or_else(|e| panic!("unlink {}: {e}", p.display()));
    }
    let left: Vec<_> = std::fs::read_dir(merged.join("many")).unwrap().collect();
    assert!(left.is_empty(), "{} names still shown", left.len());
    m.unmount().unwrap();

    // On disk: every name is a char 0/0 whiteout; they share few inodes, none over the
    // file system's link limit.
    let upper_many = dirs.upper.as_ref().unwrap().join("many");
    let mut inodes = HashSet::new();
    let mut count = 0;
    for e in std::fs::read_dir(&upper_many).unwrap() {
        let md = e.unwrap().metadata().unwrap();
        assert!(md.file_type().is_char_device() && md.rdev() == 0);
        inodes.insert(md.ino());
        count += 1;
    }
    assert_eq!(count, FILES);
    // A shared inode takes links until the limit (its name in the work dir is one).
    let c = std::ffi::CString::new(upper_many.as_os_str().as_encoded_bytes()).unwrap();
    let link_max = unsafe { libc::pathconf(c.as_ptr(), libc::_PC_LINK_MAX) };
    let per_inode = (link_max.max(2) as usize - 1).min(FILES);
    assert_eq!(
        inodes.len(),
        FILES.div_ceil(per_inode),
        "{} inodes for {FILES} whiteouts (link limit {link_max}): not shared, or not renewed at the limit",
        inodes.len()
    );

    // The kernel reads the same upper dir alike, and so do we after a remount.
    let mut k = mount_kernel(&dirs, &merged).expect("kernel overlayfs mount");
    assert_eq!(std::fs::read_dir(merged.join("many")).unwrap().count(), 0);
    assert_eq!(std::fs::read(merged.join("keep")).unwrap(), b"kept\n");
    k.unmount().unwrap();
    let mut m = mount_unionctl(&dirs, &merged, &[]).expect("unionctl remount");
    assert_eq!(std::fs::read_dir(merged.join("many")).unwrap().count(), 0);
    // Creating over a whiteout still works where whiteouts are links.
    std::fs::write(merged.join("many/f7"), b"new\n").unwrap();
    assert_eq!(std::fs::read(merged.join("many/f7")).unwrap(), b"new\n");
    m.unmount().unwrap();
}

/// In aufs format the opaque marker is a file inside the dir: making a dir opaque (here: a
/// new dir exchanged onto a lower name) must keep the dir's times, as the overlay xattr
/// and kernel overlayfs do.
#[test]
fn aufs_opaque_marker_keeps_the_dir_times() {
    assert!(common::is_root(), "mounts FUSE: run as root");
    common::mounts::ensure_fusectl();
    let s = Scratch::new("aufs-opaque-times");
    let lower = s.mkdir("lower");
    std::fs::write(lower.join("f"), b"lower\n").unwrap();
    let dirs = UnionDirs {
        lowers: vec![lower],
        upper: Some(s.mkdir("upper")),
        work: Some(s.mkdir("work")),
    };
    let merged = s.mkdir("merged");
    let mut m = mount_unionctl(&dirs, &merged, &["--format", "aufs"]).expect("unionctl mount");
    let x = merged.join("x");
    std::fs::create_dir(&x).unwrap();
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_227_861_852);
    std::fs::File::open(&x)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let (a, b) = (cstr(&x), cstr(&merged.join("f")));
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(r, 0, "exchange: {}", std::io::Error::last_os_error());
    let md = std::fs::symlink_metadata(merged.join("f")).unwrap();
    assert!(md.is_dir());
    assert_eq!(
        md.mtime(),
        1_227_861_852,
        "the opaque marker changed the dir's mtime"
    );
    let upper_dir = dirs.upper.as_ref().unwrap().join("f");
    assert!(
        upper_dir.join(".wh..wh..opq").exists(),
        "no opaque marker written"
    );
    m.unmount().unwrap();
}

fn cstr(p: &std::path::Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}
