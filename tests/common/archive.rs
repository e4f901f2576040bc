//! Tar archives of test trees, as `import` takes them.
use std::path::Path;
use std::process::Command;

/// `tar -C DIR -cf TAR MEMBERS...` (plain GNU tar; `.` for the whole tree).
pub fn tar_dir(dir: &Path, tar: &Path, members: &[&str]) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(tar)
        .args(members)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "tar -C {} -cf {}",
        dir.display(),
        tar.display()
    );
}
