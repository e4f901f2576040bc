//! `metacopy=on`, against kernel overlayfs mounted with `metacopy=on`: a metadata change
//! of a lower file copies its metadata only (a sparse upper file with `overlay.metacopy`
//! and `overlay.origin`, and `overlay.redirect` after a rename), its data is read from
//! the lower file until the first write or truncate copies it up. Each side reads what
//! the other wrote, the upper dirs match, and the offline view (diff, commit, export)
//! finds a metacopy file's data where the mount does.
mod common;

use common::Scratch;
use common::layers::Layer;
use common::mounts::{
    Mount, UnionDirs, mount_kernel_data, mount_kernel_with, mount_unionctl, mount_unionctl_options,
};
use common::tree::{self, Tree};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const BIG: usize = 4 << 20;

fn big_data() -> Vec<u8> {
    // Not compressible into holes: every block is data.
    (0..BIG).map(|i| (i * 7 + i / 4096) as u8 | 1).collect()
}

fn lowers(s: &Scratch) -> Vec<PathBuf> {
    let top = s.mkdir("lowers/top");
    let bottom = s.mkdir("lowers/bottom");
    Layer::new(&bottom)
        .file("big", &big_data(), 0o644)
        .file("small", b"small\n", 0o644)
        .file("u", b"utimes\n", 0o644)
        .file("x", b"xattr\n", 0o644)
        .file("r1", b"renamed in its dir\n", 0o644)
        .dir("d", 0o755)
        .file("d/r2", b"renamed out of d\n", 0o644)
        .file("d/r3", b"chmod then renamed\n", 0o644)
        .file("w", b"written\n", 0o644)
        .file("t", b"truncated\n", 0o644)
        .file("d/l", b"linked\n", 0o644)
        .freeze_times();
    // The top layer hides nothing: the data of d/r2 is found through d's lower dirs.
    Layer::new(&top)
        .dir("d", 0o755)
        .file("d/top", b"top\n", 0o644);
    vec![top, bottom]
}

/// Metadata changes of lower files, renames of lower and metacopy files, then a write
/// and a truncate (both copy the data).
fn scenario(m: &Path) {
    let at = |p: &str| m.join(p);
    let ok = |what: &str, r: std::io::Result<()>| r.unwrap_or_else(|e| panic!("{what}: {e}"));
    ok(
        "chmod big",
        std::fs::set_permissions(at("big"), std::fs::Permissions::from_mode(0o600)),
    );
    ok(
        "chown small",
        std::os::unix::fs::chown(at("small"), Some(7), Some(8)),
    );
    let t = std::fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890));
    ok(
        "utimes u",
        std::fs::File::options()
            .write(false)
            .read(true)
            .open(at("u"))
            .and_then(|f| f.set_times(t)),
    );
    ok("setxattr x", xattr::set(at("x"), "user.note", b"v"));
    ok("rename r1", std::fs::rename(at("r1"), at("r1b")));
    ok("rename d/r2", std::fs::rename(at("d/r2"), at("r2moved")));
    ok(
        "chmod d/r3",
        std::fs::set_permissions(at("d/r3"), std::fs::Permissions::from_mode(0o640)),
    );
    ok("rename d/r3", std::fs::rename(at("d/r3"), at("d/r3b")));
    ok("link d/l", std::fs::hard_link(at("d/l"), at("l2")));
    ok(
        "chmod w",
        std::fs::set_permissions(at("w"), std::fs::Permissions::from_mode(0o600)),
    );
    ok("append w", {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(at("w"))
            .and_then(|mut f| f.write_all(b"more\n"))
    });
    ok(
        "chmod t",
        std::fs::set_permissions(at("t"), std::fs::Permissions::from_mode(0o600)),
    );
    ok(
        "truncate t",
        std::fs::OpenOptions::new()
            .write(true)
            .open(at("t"))
            .and_then(|f| f.set_len(4)),
    );
}

fn dirs(s: &Scratch, sub: &str, lowers: &[PathBuf]) -> UnionDirs {
    UnionDirs {
        lowers: lowers.to_vec(),
        upper: Some(s.mkdir(&format!("{sub}/upper"))),
        work: Some(s.mkdir(&format!("{sub}/work"))),
    }
}

fn mount_kernel_metacopy(d: &UnionDirs, merged: &Path) -> Mount {
    mount_kernel_with(d, merged, ",metacopy=on").unwrap()
}

fn assert_same(what: &str, want: &Tree, got: &Tree) {
    let d = tree::diff("kernel", want, "got", got, 30);
    assert!(
        d.is_empty(),
        "{what}: the tree differs:\n  {}",
        d.join("\n  ")
    );
}

fn xattr_of(p: &Path, name: &str) -> Option<Vec<u8>> {
    xattr::get(p, format!("trusted.overlay.{name}")).unwrap()
}

/// What the kernel shows after the scenario on its own upper, and that upper.
fn kernel_reference(s: &Scratch, lowers: &[PathBuf]) -> (Tree, UnionDirs) {
    let d = dirs(s, "ref", lowers);
    let merged = s.mkdir("ref/merged");
    let mut m = mount_kernel_metacopy(&d, &merged);
    scenario(&merged);
    let t = tree::snapshot(&merged).unwrap();
    m.unmount().unwrap();
    (t, d)
}

fn setup(tag: &str) -> (Scratch, Vec<PathBuf>) {
    assert!(common::is_root(), "mounts kernel overlayfs: run as root");
    common::mounts::ensure_fusectl();
    let s = Scratch::new(tag);
    let l = lowers(&s);
    (s, l)
}

#[test]
fn unionctl_writes_the_kernels_metacopy_upper_and_the_kernel_reads_it() {
    let (s, lowers) = setup("metacopy-ours");
    let _watchdog = common::mounts::Watchdog::new("metacopy test", s.path(), 60);
    let (reference, kdirs) = kernel_reference(&s, &lowers);
    let d = dirs(&s, "u", &lowers);
    let merged = s.mkdir("u/merged");
    let mut m = mount_unionctl(&d, &merged, &["-o", "metacopy=on"]).unwrap();
    scenario(&merged);
    assert_same(
        "unionctl metacopy=on after the scenario",
        &reference,
        &tree::snapshot(&merged).unwrap(),
    );
    m.unmount().unwrap();
    let upper = d.upper.clone().unwrap();

    // Metadata only: the 4 MiB file's upper copy has its size and no data blocks.
    let md = std::fs::metadata(upper.join("big")).unwrap();
    assert_eq!(md.len(), BIG as u64);
    assert!(
        md.blocks() * 512 < 64 << 10,
        "chmod copied the data: {} blocks",
        md.blocks()
    );
    assert_eq!(xattr_of(&upper.join("big"), "metacopy"), Some(vec![]));
    assert!(xattr_of(&upper.join("big"), "origin").is_some());
    // The first write and the truncate copied the data and dropped the mark.
    for f in ["w", "t"] {
        assert_eq!(xattr_of(&upper.join(f), "metacopy"), None, "{f}");
    }
    assert_eq!(std::fs::read(upper.join("w")).unwrap(), b"written\nmore\n");
    assert_eq!(
        xattr_of(&upper.join("r1b"), "redirect"),
        Some(b"r1".to_vec())
    );
    assert_eq!(
        xattr_of(&upper.join("r2moved"), "redirect"),
        Some(b"/d/r2".to_vec())
    );
    assert_eq!(
        xattr_of(&upper.join("l2"), "redirect"),
        Some(b"/d/l".to_vec())
    );
    assert_eq!(xattr_of(&upper.join("l2"), "metacopy"), Some(vec![]));

    let diff = tree::upper_layout_diff(kdirs.upper.as_ref().unwrap(), &upper);
    assert!(
        diff.is_empty(),
        "the upper dir differs from the kernel's:\n  {}",
        diff.join("\n  ")
    );

    let mut k = mount_kernel_metacopy(&d, &merged);
    let read = tree::snapshot(&merged).unwrap();
    k.unmount().unwrap();
    assert_same(
        "kernel metacopy=on reading unionctl's upper",
        &reference,
        &read,
    );
}

#[test]
fn unionctl_reads_and_writes_the_kernels_metacopy_upper() {
    let (s, lowers) = setup("metacopy-kernel");
    let _watchdog = common::mounts::Watchdog::new("metacopy test", s.path(), 60);
    let (reference, kdirs) = kernel_reference(&s, &lowers);
    let upper = kdirs.upper.clone().unwrap();
    assert_eq!(
        xattr_of(&upper.join("r2moved"), "metacopy"),
        Some(vec![]),
        "the kernel wrote no metacopy file"
    );

    // Read either way: metacopy files are read with or without metacopy=on.
    let merged = s.mkdir("ref/merged2");
    for opts in [&[][..], &["-o", "metacopy=on"][..]] {
        let mut m = mount_unionctl(&kdirs, &merged, opts).unwrap();
        assert_same(
            &format!("unionctl {opts:?} reading the kernel's upper"),
            &reference,
            &tree::snapshot(&merged).unwrap(),
        );
        m.unmount().unwrap();
    }

    // The offline view (diff, commit, export) finds the data where the mount does.
    let view = unionctl::unionfs::MergedView::open(&unionctl::unionfs::OfflineSpec {
        upper: Some(upper.clone()),
        index: Some(kdirs.work.as_ref().unwrap().join("index")),
        lowers: lowers.clone(),
        format: None,
        user_xattr: false,
    })
    .unwrap();
    for (name, data) in [("r2moved", "d/r2"), ("d/r3b", "d/r3"), ("big", "big")] {
        let e = view.lookup(Path::new(name)).unwrap().expect(name);
        assert_eq!(e.data, Some(lowers[1].join(data)), "{name}");
    }

    // A write through unionctl copies the data found through the kernel's redirect.
    let mut m = mount_unionctl(&kdirs, &merged, &[]).unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(merged.join("r2moved"))
            .unwrap();
        f.write_all(b"appended\n").unwrap();
    }
    m.unmount().unwrap();
    assert_eq!(
        std::fs::read(upper.join("r2moved")).unwrap(),
        b"renamed out of d\nappended\n"
    );
    assert_eq!(xattr_of(&upper.join("r2moved"), "metacopy"), None);
}

#[test]
fn without_metacopy_a_chmod_copies_the_data() {
    let (s, lowers) = setup("metacopy-off");
    let d = dirs(&s, "u", &lowers);
    let merged = s.mkdir("u/merged");
    let mut m = mount_unionctl(&d, &merged, &[]).unwrap();
    std::fs::set_permissions(merged.join("big"), std::fs::Permissions::from_mode(0o600)).unwrap();
    m.unmount().unwrap();
    let big = d.upper.unwrap().join("big");
    assert!(std::fs::metadata(&big).unwrap().blocks() * 512 >= BIG as u64);
    assert_eq!(xattr_of(&big, "metacopy"), None);
}

/// An open for write copies a metacopy file's data in place, which moves its mtime to
/// now on both (the kernel sets no times back afterwards); the mount shows the new times
/// at once, though no request that changes attributes was made. (Found by the
/// differential test: rename, then an append of nothing.)
#[test]
fn the_data_copy_up_shows_its_new_mtime_as_the_kernel() {
    let (s, lowers) = setup("metacopy-mtime");
    let lower_mtime = std::fs::metadata(lowers[1].join("r1")).unwrap().mtime();
    let open_for_append = |m: &Path| {
        std::fs::rename(m.join("r1"), m.join("r1b")).unwrap();
        // Stat first: the kernel caches the metacopy file's attributes.
        assert_eq!(
            std::fs::metadata(m.join("r1b")).unwrap().mtime(),
            lower_mtime
        );
        drop(
            std::fs::OpenOptions::new()
                .append(true)
                .open(m.join("r1b"))
                .unwrap(),
        );
        std::fs::metadata(m.join("r1b")).unwrap().mtime()
    };
    let kd = dirs(&s, "k", &lowers);
    let km = s.mkdir("k/merged");
    let mut k = mount_kernel_metacopy(&kd, &km);
    let kernel = open_for_append(&km);
    k.unmount().unwrap();
    assert_ne!(kernel, lower_mtime, "the kernel kept the lower mtime");
    let d = dirs(&s, "u", &lowers);
    let merged = s.mkdir("u/merged");
    let mut m = mount_unionctl(&d, &merged, &["-o", "metacopy=on"]).unwrap();
    let ours = open_for_append(&merged);
    let on_disk = std::fs::metadata(d.upper.as_ref().unwrap().join("r1b")).unwrap();
    m.unmount().unwrap();
    assert_eq!(ours, on_disk.mtime(), "the mount shows a stale mtime");
    assert_ne!(ours, lower_mtime, "unionctl kept the lower mtime");
    assert_eq!(xattr_of(&d.upper.unwrap().join("r1b"), "metacopy"), None);
}

/// A lower layer of metacopy files whose data is in a data-only layer, reached by their
/// absolute redirects (composefs' layout): the kernel's `lowerdir=META::DATA`, which
/// unionctl takes as it is (and as `-o datadir+=DATA`). Both show the same tree, write the
/// same upper for a chmod and an append, and read each other's upper.
#[test]
fn data_only_layers_as_the_kernel() {
    let (s, _) = setup("metacopy-datadir");
    let _watchdog = common::mounts::Watchdog::new("datadir test", s.path(), 60);
    let meta = s.mkdir("meta");
    let data = s.mkdir("data");
    Layer::new(&data)
        .file("objects/aa", b"file data\n", 0o644)
        .file("objects/bb", b"other data in sub\n", 0o644)
        .file("hidden", b"a data-only layer is not merged\n", 0o644);
    Layer::new(&meta)
        .sparse_file("f", 9, b"\0")
        .xattr("f", "trusted.overlay.metacopy", b"")
        .xattr("f", "trusted.overlay.redirect", b"/objects/aa")
        .sparse_file("sub/g", 17, b"\0")
        .xattr("sub/g", "trusted.overlay.metacopy", b"")
        .xattr("sub/g", "trusted.overlay.redirect", b"/objects/bb")
        .file("plain", b"plain\n", 0o644)
        .freeze_times();
    std::fs::set_permissions(meta.join("sub/g"), std::fs::Permissions::from_mode(0o751)).unwrap();
    let change = |m: &Path| {
        std::fs::set_permissions(m.join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
        use std::io::Write;
        let mut g = std::fs::OpenOptions::new()
            .append(true)
            .open(m.join("sub/g"))
            .unwrap();
        g.write_all(b"more\n").unwrap();
    };
    let run = |who: &str, kernel: bool| {
        let d = dirs(&s, who, std::slice::from_ref(&meta));
        let merged = s.mkdir(&format!("{who}/merged"));
        let mount = |d: &UnionDirs| match kernel {
            true => mount_kernel_data(&kernel_datadir_options(d, &data), &merged).unwrap(),
            false => mount_unionctl_options(&kernel_datadir_options(d, &data), &merged).unwrap(),
        };
        let mut m = mount(&d);
        let before = tree::snapshot(&merged).unwrap();
        change(&merged);
        let after = tree::snapshot(&merged).unwrap();
        m.unmount().unwrap();
        (before, after, d, merged)
    };
    let (kb, ka, kd, km) = run("k", true);
    let (ub, ua, ud, um) = run("u", false);
    assert_eq!(
        std::fs::read(km.parent().unwrap().join("upper/sub/g")).unwrap(),
        b"other data in sub\nmore\n"
    );
    assert_same("unionctl before the changes", &kb, &ub);
    assert_same("unionctl after the changes", &ka, &ua);
    let diff = tree::upper_layout_diff(kd.upper.as_ref().unwrap(), ud.upper.as_ref().unwrap());
    assert!(
        diff.is_empty(),
        "the upper dir differs from the kernel's:\n  {}",
        diff.join("\n  ")
    );
    // Each reads the other's upper.
    let mut m = mount_kernel_data(&kernel_datadir_options(&ud, &data), &um).unwrap();
    assert_same(
        "the kernel reading unionctl's upper",
        &ka,
        &tree::snapshot(&um).unwrap(),
    );
    m.unmount().unwrap();
    let o = format!("datadir+={}", data.display());
    let mut m = mount_unionctl(&kd, &km, &["-o", &o]).unwrap();
    assert_same(
        "unionctl reading the kernel's upper",
        &ka,
        &tree::snapshot(&km).unwrap(),
    );
    m.unmount().unwrap();
}

fn kernel_datadir_options(d: &UnionDirs, data: &Path) -> String {
    format!(
        "lowerdir={}::{},upperdir={},workdir={},redirect_dir=on,index=on,metacopy=on",
        d.lowers[0].display(),
        data.display(),
        d.upper.as_ref().unwrap().display(),
        d.work.as_ref().unwrap().display()
    )
}

/// aufs has no metadata-only copy-up: asking for both is an error naming the option.
#[test]
fn metacopy_with_aufs_format_is_refused() {
    let (s, lowers) = setup("metacopy-aufs");
    let d = dirs(&s, "u", &lowers);
    let merged = s.mkdir("u/merged");
    let e = mount_unionctl(&d, &merged, &["--format", "aufs", "-o", "metacopy=on"])
        .err()
        .expect("mounted");
    assert!(e.contains("metacopy=on") && e.contains("aufs"), "{e}");
    assert!(!common::mounts::is_mount_point(&merged));
}
