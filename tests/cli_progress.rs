//! Progress of image copies (save, load, import, commit, export, pull, push) through the
//! real binary when stderr is not a terminal: one line per layer when it is done, and
//! nothing with `-q`. (Bars on a terminal: image_store's minbase test, under `script`.)
mod image_support;
mod registry_support;
use image_support::{busybox_rootfs, tar_of};
use std::process::Output;

/// A store root of its own (in a temp dir that also holds the test's files).
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        Store {
            dir: image_support::tmpdir(),
        }
    }
    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("store")
    }
    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(image_support::bin())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-f", "c"]);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Lines of `stderr` that say a blob was copied: `Copying blob sha256:<12 hex> SIZE done`.
fn blob_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("Copying blob "))
        .map(|l| {
            let digest = l.split(' ').nth(2).unwrap();
            assert!(
                digest.len() == 7 + 12 && digest.starts_with("sha256:"),
                "{l:?}"
            );
            l.to_string()
        })
        .collect()
}

/// A store with `bb:1` (busybox, one layer) and `bb:2` (two layers: bb:1 and a change).
fn two_layer_store() -> Store {
    let s = Store::new();
    let rootfs = s.dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let tar = s.dir.path().join("bb.tar");
    tar_of(&rootfs, &tar);
    let o = s.run(&["import", tar.to_str().unwrap(), "bb:1"]);
    ok(&o);
    assert!(
        stderr(&o).starts_with("Writing layer from ") && stderr(&o).ends_with(" done\n"),
        "{}",
        stderr(&o)
    );
    ok(&s.run(&["run", "--name", "c", "bb:1", "sh", "-c", "echo hi > /new"]));
    let o = s.run(&["commit", "c", "bb:2"]);
    ok(&o);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    s
}

#[test]
fn save_load_import_commit_export_print_a_line_per_layer_and_nothing_with_q() {
    let s = two_layer_store();
    let archive = s.dir.path().join("bb2.tar");
    let o = s.run(&["save", "-o", archive.to_str().unwrap(), "bb:2"]);
    ok(&o);
    let saved = blob_lines(&stderr(&o));
    assert_eq!(saved.len(), 2, "{}", stderr(&o));
    assert_ne!(saved[0], saved[1]);
    assert!(saved.iter().all(|l| l.ends_with(" done")), "{saved:?}");

    let other = Store::new();
    let o = other.run(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(ok(&o), "Loaded image: bb:2\n");
    assert_eq!(blob_lines(&stderr(&o)), saved);
    assert_eq!(stderr(&o).lines().count(), 2, "{}", stderr(&o));

    // -q: the same work, nothing on stderr.
    let quiet = Store::new();
    let tar = s.dir.path().join("bb.tar");
    for args in [
        vec!["save", "-q", "-o", archive.to_str().unwrap(), "bb:2"],
        vec!["export", "-q", "-o", "/dev/null", "c"],
        vec!["commit", "-q", "c", "bb:3"],
    ] {
        let o = s.run(&args);
        ok(&o);
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    for args in [
        vec!["load", "-q", "-i", archive.to_str().unwrap()],
        vec!["import", "-q", tar.to_str().unwrap(), "bb:1"],
    ] {
        let o = quiet.run(&args);
        ok(&o);
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    let o = s.run(&["export", "-o", "/dev/null", "c"]);
    ok(&o);
    assert!(stderr(&o).starts_with("Exporting c "), "{}", stderr(&o));
    // -o on a device writes into it: the archive's temp file is not renamed over it.
    let null = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(
        std::os::unix::fs::FileTypeExt::is_char_device(&null.file_type()),
        "export -o /dev/null replaced /dev/null"
    );
}

#[test]
fn push_and_pull_print_a_line_per_layer_and_nothing_with_q() {
    let reg = registry_support::Registry::start();
    let s = two_layer_store();
    let dest = format!("{}/bb:v1", reg.host);
    let o = s.run(&["push", "bb:2", &dest]);
    ok(&o);
    let pushed = blob_lines(&stderr(&o));
    assert_eq!(pushed.len(), 2, "{}", stderr(&o));
    // Each layer's bytes are counted as they are sent.
    assert!(
        pushed
            .iter()
            .all(|l| l.ends_with(" MiB done") || l.ends_with(" KiB done")),
        "{pushed:?}"
    );
    assert_eq!(
        stderr(&o)
            .lines()
            .filter(|l| l.starts_with("Copying config sha256:"))
            .count(),
        1
    );
    // Again: the registry has every blob.
    let o = s.run(&["push", "bb:2", &dest]);
    ok(&o);
    let again = blob_lines(&stderr(&o));
    assert_eq!(again.len(), 2);
    assert!(
        again
            .iter()
            .all(|l| l.ends_with(" skipped: already exists")),
        "{again:?}"
    );
    let o = s.run(&["push", "-q", "bb:2", &dest]);
    ok(&o);
    assert_eq!(stderr(&o), "");

    let other = Store::new();
    let o = other.run(&["pull", &dest]);
    ok(&o);
    let pulled = blob_lines(&stderr(&o));
    assert_eq!(pulled.len(), 2, "{}", stderr(&o));
    let quiet = Store::new();
    let o = quiet.run(&["pull", "-q", &dest]);
    ok(&o);
    assert_eq!(stderr(&o), "");
}
