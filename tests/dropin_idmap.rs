//! fuse-overlayfs' id options (`uidmapping=`, `gidmapping=`, `squash_to_root`,
//! `squash_to_uid=`, `squash_to_gid=`) against fuse-overlayfs itself: the same layers
//! mounted with the same options by each, the same changes made through each (by root
//! and by a caller with a shifted uid), then the owners the mount shows and the owners
//! written to the upper dir must be the same.
mod common;

use common::Scratch;
use common::layers::Layer;
use common::mounts::{UnionDirs, is_mount_point, mount_unionctl};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Relative path -> "uid:gid" of every entry under a dir ("" is the dir itself).
type Owners = BTreeMap<String, String>;

fn owners(root: &Path) -> Owners {
    fn walk(root: &Path, rel: &str, out: &mut Owners) {
        let p = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let md = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.insert(rel.to_string(), format!("{}:{}", md.uid(), md.gid()));
        if md.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                let rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                walk(root, &rel, out);
            }
        }
    }
    let mut out = Owners::new();
    walk(root, "", &mut out);
    out
}

/// The lower layer: objects owned by ids inside and outside the usual ranges.
fn lower(s: &Scratch) -> PathBuf {
    let root = s.mkdir("lower");
    Layer::new(&root)
        .dir("pub", 0o777)
        .file("pub/owned0", b"0", 0o644)
        .file("f1000", b"1000", 0o644)
        .owner("f1000", 1000, 1000)
        .file("f70000", b"70000", 0o644)
        .owner("f70000", 70000, 70001)
        .dir("d5", 0o755)
        .owner("d5", 5, 5)
        .file("d5/x", b"x", 0o644)
        .owner("d5/x", 5, 6)
        .symlink("ln", "f1000")
        .owner("ln", 2, 3);
    root
}

/// The same changes through either mount: as root, and as a caller with uid 100123
/// and gid 100456 (a shifted id of the first option set, unmapped in the others).
fn changes(m: &Path) {
    let sh = |uid: u32, gid: u32, script: &str| {
        let st = Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "sh",
                "-ec",
                script,
            ])
            .current_dir(m)
            .status()
            .unwrap();
        assert!(st.success(), "as {uid}:{gid}: {script}: {st}");
    };
    sh(
        0,
        0,
        "touch new_root; mkdir pub/dir_root; chown 100001:100002 f1000; \
         chown 0:0 d5/x; chmod 600 f70000; chown -h 100003:100003 ln",
    );
    sh(
        100123,
        100456,
        ": > pub/by_caller; mkdir pub/dir_caller; ln -s t pub/ln_caller; mkfifo pub/fifo_caller",
    );
}

struct Seen {
    shown_before: Owners,
    shown_after: Owners,
    upper: Owners,
}

fn run_fuse_overlayfs(dirs: &UnionDirs, merged: &Path, opts: &str) -> Seen {
    let o = format!(
        "lowerdir={},upperdir={},workdir={}{}{opts}",
        dirs.lowers[0].display(),
        dirs.upper.as_ref().unwrap().display(),
        dirs.work.as_ref().unwrap().display(),
        if opts.is_empty() { "" } else { "," }
    );
    // In the foreground, so its exit is ours to wait for after the unmount.
    let mut child = Command::new("fuse-overlayfs")
        .args(["-f", "-o", &o])
        .arg(merged)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("fuse-overlayfs (scripts/install-deps.sh installs it)");
    common::events::wait_on_mounts("fuse-overlayfs to mount", || is_mount_point(merged));
    let shown_before = owners(merged);
    changes(merged);
    let shown_after = owners(merged);
    nix::mount::umount(merged).expect("umount fuse-overlayfs");
    let st = child.wait().unwrap();
    assert!(st.success(), "fuse-overlayfs -o {o}: {st}");
    Seen {
        shown_before,
        shown_after,
        upper: owners(dirs.upper.as_ref().unwrap()),
    }
}

fn run_unionctl(dirs: &UnionDirs, merged: &Path, opts: &str) -> Seen {
    let mut m = mount_unionctl(dirs, merged, &["-o", opts]).expect("unionctl mount");
    let shown_before = owners(merged);
    changes(merged);
    let shown_after = owners(merged);
    m.unmount().unwrap();
    Seen {
        shown_before,
        shown_after,
        upper: owners(dirs.upper.as_ref().unwrap()),
    }
}

/// Mounts the lower with OPTS by both, makes the changes, and compares what each shows
/// and writes. Returns unionctl's view for checks of the option's own meaning.
fn same_as_fuse_overlayfs(tag: &str, opts: &str) -> Seen {
    assert!(common::is_root(), "mounts and setpriv: run as root");
    common::mounts::ensure_fusectl();
    let s = Scratch::new(&format!("idmap-{tag}"));
    let _watchdog = common::mounts::Watchdog::new("idmap test", s.path(), 60);
    let lower = lower(&s);
    let dirs = |who: &str| UnionDirs {
        lowers: vec![lower.clone()],
        upper: Some(s.mkdir(&format!("{who}/upper"))),
        work: Some(s.mkdir(&format!("{who}/work"))),
    };
    let peer = run_fuse_overlayfs(&dirs("fo"), &s.mkdir("fo/merged"), opts);
    let ours = run_unionctl(&dirs("u"), &s.mkdir("u/merged"), opts);
    for (what, a, b) in [
        (
            "shown before the changes",
            &ours.shown_before,
            &peer.shown_before,
        ),
        (
            "shown after the changes",
            &ours.shown_after,
            &peer.shown_after,
        ),
        ("written to the upper dir", &ours.upper, &peer.upper),
    ] {
        // The merged root is the upper dir's own, whose owner each mount leaves alone;
        // fuse-overlayfs marks new dirs opaque with `.wh.` files of its own as well.
        let diff: Vec<String> = a
            .keys()
            .chain(b.keys())
            .filter(|k| !k.is_empty() && !k.contains(".wh.") && a.get(*k) != b.get(*k))
            .map(|k| {
                format!(
                    "  {k}: unionctl {:?}, fuse-overlayfs {:?}",
                    a.get(k),
                    b.get(k)
                )
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert!(
            diff.is_empty(),
            "-o {opts}: owners {what} differ:\n{}",
            diff.join("\n")
        );
    }
    ours
}

#[test]
fn uidmapping_shifts_owners_as_fuse_overlayfs() {
    let seen = same_as_fuse_overlayfs(
        "shift",
        "uidmapping=0:100000:65536,gidmapping=0:100000:65536",
    );
    // The meaning, spelled out: disk ids shift up, ids outside the range overflow, and
    // what is written shifts back down.
    assert_eq!(seen.shown_before["f1000"], "101000:101000");
    assert_eq!(seen.shown_before["f70000"], "65534:65534");
    assert_eq!(seen.upper["f1000"], "1:2");
    assert_eq!(seen.upper["f70000"], "70000:70001");
    assert_eq!(seen.upper["pub/by_caller"], "123:456");
    assert_eq!(seen.upper["d5/x"], "65534:65534");
    assert_eq!(seen.upper["new_root"], "65534:65534");
}

#[test]
fn several_ranges_as_fuse_overlayfs() {
    same_as_fuse_overlayfs(
        "ranges",
        "uidmapping=0:1000:1:1:110000:65536,gidmapping=0:1000:1:1:110000:65536",
    );
}

#[test]
fn squash_to_root_as_fuse_overlayfs() {
    let seen = same_as_fuse_overlayfs("squash-root", "squash_to_root");
    assert!(
        seen.shown_after
            .iter()
            .all(|(k, v)| k.is_empty() || v == "0:0")
    );
    assert_eq!(seen.upper["pub/by_caller"], "100123:100456");
}

#[test]
fn squash_to_ids_with_a_mapping_as_fuse_overlayfs() {
    let seen = same_as_fuse_overlayfs(
        "squash-ids",
        "squash_to_uid=7,squash_to_gid=8,uidmapping=0:100000:65536",
    );
    assert!(
        seen.shown_after
            .iter()
            .all(|(k, v)| k.is_empty() || v == "7:8")
    );
}
