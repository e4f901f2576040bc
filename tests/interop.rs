//! On-disk interoperability with kernel overlayfs: one implementation writes an upper +
//! work dir (whiteouts, an opaque dir, redirects of renamed lower dirs, a copied-up hard
//! link with its index entry), the other mounts it and must show the same tree.
//! `kernel_writes_kernel_reads` runs the same scenario with the kernel on both sides: it
//! checks the scenario itself (and that the kernel really wrote each feature).
mod common;

use common::Scratch;
use common::mounts::{Kind, UnionDirs, mount_kind};
use common::tree::{self, Tree};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[test]
fn kernel_writes_kernel_reads() {
    interop(Kind::Kernel, Kind::Kernel);
}

#[test]
fn kernel_writes_unionctl_reads() {
    interop(Kind::Kernel, Kind::Unionctl);
}

#[test]
fn unionctl_writes_kernel_reads() {
    interop(Kind::Unionctl, Kind::Kernel);
}

fn name(k: Kind) -> &'static str {
    match k {
        Kind::Kernel => "kernel overlayfs",
        Kind::Unionctl => "unionctl",
    }
}

fn interop(writer: Kind, reader: Kind) {
    assert!(
        common::is_root(),
        "interop tests mount kernel overlayfs: run as root"
    );
    common::mounts::ensure_fusectl();
    let s = Scratch::new("interop");
    let _watchdog = common::mounts::Watchdog::new("interop test", s.path(), 120);
    let lowers = common::layers::standard_lowers(&s.mkdir("lowers"));

    // The reference: what kernel overlayfs shows after the scenario on its own upper.
    let reference = {
        let dirs = dirs_in(&s, "ref", &lowers);
        let merged = s.mkdir("ref/merged");
        let mut m = mount_kind(Kind::Kernel, &dirs, &merged).expect("kernel overlayfs mount");
        scenario(&merged);
        let t = tree::snapshot(&merged).unwrap();
        m.unmount().unwrap();
        t
    };

    let dirs = dirs_in(&s, "w", &lowers);
    let merged = s.mkdir("w/merged");
    let mut m = mount_kind(writer, &dirs, &merged)
        .unwrap_or_else(|e| panic!("{} mount: {e}", name(writer)));
    scenario(&merged);
    let written = tree::snapshot(&merged).unwrap();
    m.unmount().unwrap_or_else(|e| panic!("{e}"));
    assert_same(
        &format!("{} after the scenario", name(writer)),
        &reference,
        &written,
    );

    if writer == Kind::Unionctl {
        let d = tree::upper_layout_diff(&s.path().join("ref/upper"), dirs.upper.as_ref().unwrap());
        assert!(
            d.is_empty(),
            "the upper dir differs from the one kernel overlayfs wrote:\n  {}",
            d.join("\n  ")
        );
    }

    let problems = kernel_format_problems(&dirs);
    assert!(
        problems.is_empty(),
        "{} did not write the kernel's on-disk format:\n  {}",
        name(writer),
        problems.join("\n  ")
    );

    let mut m = mount_kind(reader, &dirs, &merged).unwrap_or_else(|e| {
        panic!(
            "{} cannot mount the upper+work dir {} wrote: {e}",
            name(reader),
            name(writer)
        )
    });
    let read = tree::snapshot(&merged).unwrap();
    let d_ino = tree::d_ino_mismatches(&merged);
    assert!(
        d_ino.is_empty(),
        "{} reading what {} wrote: readdir and stat disagree on inode numbers:\n  {}",
        name(reader),
        name(writer),
        d_ino.join("\n  ")
    );
    // Reading must work: the merged view is usable, not just listable.
    std::fs::write(merged.join("after-reopen"), b"ok").unwrap_or_else(|e| {
        panic!(
            "{} writing into a union {} wrote: {e}",
            name(reader),
            name(writer)
        )
    });
    m.unmount().unwrap_or_else(|e| panic!("{e}"));
    assert_same(
        &format!("{} reading what {} wrote", name(reader), name(writer)),
        &written,
        &read,
    );
}

fn dirs_in(s: &Scratch, sub: &str, lowers: &[PathBuf]) -> UnionDirs {
    UnionDirs {
        lowers: lowers.to_vec(),
        upper: Some(s.mkdir(&format!("{sub}/upper"))),
        work: Some(s.mkdir(&format!("{sub}/work"))),
    }
}

fn assert_same(what: &str, expected: &Tree, got: &Tree) {
    let d = tree::diff("expected", expected, "got", got, 30);
    assert!(
        d.is_empty(),
        "{what}: the tree differs:\n  {}",
        d.join("\n  ")
    );
}

/// Changes that make kernel overlayfs write each of its on-disk features.
fn scenario(m: &Path) {
    let at = |p: &str| m.join(p);
    let step = |what: &str, r: std::io::Result<()>| r.unwrap_or_else(|e| panic!("{what}: {e}"));
    // Whiteout: delete a lower file.
    step("rm etc/passwd", std::fs::remove_file(at("etc/passwd")));
    // Opaque dir: remove a lower dir and make a new one with the same name.
    step(
        "rm var/cache/new",
        std::fs::remove_file(at("var/cache/new")),
    );
    step("rmdir var/cache", std::fs::remove_dir(at("var/cache")));
    step("mkdir var/cache", std::fs::create_dir(at("var/cache")));
    step(
        "write var/cache/fresh",
        std::fs::write(at("var/cache/fresh"), b"fresh\n"),
    );
    // Redirects: rename a merged lower dir in place and a nested one across dirs.
    step("mv data data2", std::fs::rename(at("data"), at("data2")));
    step(
        "mv usr/lib/deep usr/deep-moved",
        std::fs::rename(at("usr/lib/deep"), at("usr/deep-moved")),
    );
    // Index: change one name of a hard link in a lower layer, rename another.
    step(
        "append hl/one",
        append(&at("hl/one"), b"appended through the union\n"),
    );
    step(
        "mv hl/three linked",
        std::fs::rename(at("hl/three"), at("linked")),
    );
    // Plain copy-ups of data and metadata.
    step(
        "chmod etc/hosts",
        std::fs::set_permissions(at("etc/hosts"), std::fs::Permissions::from_mode(0o600)),
    );
    step(
        "chown app/bin/run",
        std::os::unix::fs::chown(at("app/bin/run"), Some(1000), Some(1000)),
    );
    step(
        "setxattr etc/motd",
        xattr::set(at("etc/motd"), "user.note", b"union"),
    );
    step(
        "truncate usr/lib/libx.so",
        std::fs::OpenOptions::new()
            .write(true)
            .open(at("usr/lib/libx.so"))
            .and_then(|f| f.set_len(100)),
    );
    // New objects.
    step("mkdir new/sub", std::fs::create_dir_all(at("new/sub")));
    step(
        "write new/sub/file",
        std::fs::write(at("new/sub/file"), b"new file\n"),
    );
    step(
        "symlink new/link",
        std::os::unix::fs::symlink("sub/file", at("new/link")),
    );
    step(
        "link new/hard",
        std::fs::hard_link(at("new/sub/file"), at("new/hard")),
    );
    // An upper-only dir an object with an origin passes through: impure while it is
    // there, and the mark goes at the next listing once it has left.
    step(
        "mv etc/motd new/motd",
        std::fs::rename(at("etc/motd"), at("new/motd")),
    );
    step(
        "mv new/motd etc/motd",
        std::fs::rename(at("new/motd"), at("etc/motd")),
    );
    step("ls new", std::fs::read_dir(at("new")).map(drop));
}

fn append(p: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(p)?
        .write_all(data)
}

/// What the scenario must have left on disk in kernel format (root: trusted.overlay.*).
fn kernel_format_problems(d: &UnionDirs) -> Vec<String> {
    let upper = d.upper.as_ref().unwrap();
    let work = d.work.as_ref().unwrap();
    let mut p = Vec::new();
    match std::fs::symlink_metadata(upper.join("etc/passwd")) {
        Ok(md) if md.file_type().is_char_device() && md.rdev() == 0 => {}
        Ok(md) => p.push(format!(
            "upper/etc/passwd is not a char 0/0 whiteout (mode {:o}, rdev {})",
            md.mode(),
            md.rdev()
        )),
        Err(e) => p.push(format!("upper/etc/passwd (whiteout): {e}")),
    }
    let want_xattr =
        |p: &mut Vec<String>, rel: &str, name: &str, value: Option<&[u8]>| match xattr::get(
            upper.join(rel),
            name,
        ) {
            Ok(Some(v)) if value.is_none_or(|w| w == v.as_slice()) => {}
            Ok(Some(v)) => p.push(format!(
                "upper/{rel}: {name} is {:?}, want {:?}",
                String::from_utf8_lossy(&v),
                value.map(String::from_utf8_lossy)
            )),
            Ok(None) => p.push(format!("upper/{rel}: no {name} xattr")),
            Err(e) => p.push(format!("upper/{rel}: {name}: {e}")),
        };
    want_xattr(&mut p, "var/cache", "trusted.overlay.opaque", Some(b"y"));
    want_xattr(&mut p, "data2", "trusted.overlay.redirect", Some(b"data"));
    want_xattr(
        &mut p,
        "usr/deep-moved",
        "trusted.overlay.redirect",
        Some(b"/usr/lib/deep"),
    );
    want_xattr(&mut p, "hl/one", "trusted.overlay.origin", None);
    want_xattr(&mut p, "etc/hosts", "trusted.overlay.origin", None);
    let index_entries = std::fs::read_dir(work.join("index"))
        .map(|r| r.count())
        .unwrap_or(0);
    if index_entries == 0 {
        p.push("work/index holds no entry for the copied-up hard link".into());
    }
    match std::fs::symlink_metadata(upper.join("hl/one")) {
        Ok(md) if md.nlink() >= 2 => {}
        Ok(md) => p.push(format!(
            "upper/hl/one has nlink {}, want it linked from work/index",
            md.nlink()
        )),
        Err(e) => p.push(format!("upper/hl/one: {e}")),
    }
    p
}

/// Lower layers whose dirs were renamed in them (redirects in LOWER layers, as image
/// layers committed from overlay uppers hold): a redirect on a dir on the way of an
/// absolute one moves the path for the layers below, a relative one after it renames
/// the name already moved, an absolute one under an opaque dir goes on below, and a
/// redirect out of the layer (`..`) is not followed. unionctl shows what the kernel shows.
#[test]
fn redirects_in_lower_layers_read_as_the_kernel_reads_them() {
    assert!(common::is_root(), "mounts kernel overlayfs: run as root");
    common::mounts::ensure_fusectl();
    let s = Scratch::new("interop-lower-redirects");
    let (l0, l1, l2) = (s.mkdir("l0"), s.mkdir("l1"), s.mkdir("l2"));
    let redirect =
        |p: &Path, v: &str| xattr::set(p, "trusted.overlay.redirect", v.as_bytes()).unwrap();
    // Bottom: the data.
    std::fs::create_dir_all(l2.join("x/y/c")).unwrap();
    std::fs::write(l2.join("x/y/c/f"), b"data\n").unwrap();
    std::fs::create_dir_all(l2.join("p/q")).unwrap();
    std::fs::write(l2.join("p/q/g"), b"g\n").unwrap();
    std::fs::create_dir_all(l2.join("secret-parent")).unwrap();
    // Middle: `mv /x /a; mv /a/y /a/b`, and `rm -r o; mkdir o; mv /p/q /o/q`.
    std::fs::create_dir_all(l1.join("a/b")).unwrap();
    redirect(&l1.join("a"), "/x");
    redirect(&l1.join("a/b"), "y");
    std::fs::create_dir_all(l1.join("o/q")).unwrap();
    xattr::set(l1.join("o"), "trusted.overlay.opaque", b"y").unwrap();
    redirect(&l1.join("o/q"), "/p/q");
    // Top: `mv /a/b/c /z`, `mv /o/q /w`, and a hostile redirect out of the layers.
    std::fs::create_dir_all(l0.join("z")).unwrap();
    redirect(&l0.join("z"), "/a/b/c");
    std::fs::create_dir_all(l0.join("w")).unwrap();
    redirect(&l0.join("w"), "/o/q");
    let dirs = UnionDirs {
        lowers: vec![l0.clone(), l1, l2],
        upper: None,
        work: None,
    };
    let mut views = Vec::new();
    for kind in [Kind::Kernel, Kind::Unionctl] {
        let merged = s.mkdir(&format!("m-{}", name(kind)));
        let mut m =
            mount_kind(kind, &dirs, &merged).unwrap_or_else(|e| panic!("{}: {e}", name(kind)));
        views.push(tree::snapshot(&merged).unwrap());
        m.unmount().unwrap();
    }
    assert_same(
        "unionctl over redirected lower layers",
        &views[0],
        &views[1],
    );
    for want in ["z/f", "w/g"] {
        assert!(views[1].keys().any(|p| p.ends_with(want)), "{want} missing");
    }
    // A redirect out of the layers: the kernel refuses its lookup (EACCES, as for a
    // `..` name), and so does unionctl.
    std::fs::create_dir_all(l0.join("escape")).unwrap();
    redirect(&l0.join("escape"), "/../../../../../../../etc");
    let mut errnos = Vec::new();
    for kind in [Kind::Kernel, Kind::Unionctl] {
        let merged = s.path().join(format!("m-{}", name(kind)));
        let mut m =
            mount_kind(kind, &dirs, &merged).unwrap_or_else(|e| panic!("{}: {e}", name(kind)));
        errnos.push(
            std::fs::symlink_metadata(merged.join("escape/passwd"))
                .map(|_| ())
                .map_err(|e| e.raw_os_error()),
        );
        m.unmount().unwrap();
    }
    assert_eq!(
        errnos[0],
        Err(Some(libc::EACCES)),
        "the kernel's answer changed"
    );
    assert_eq!(
        errnos[1], errnos[0],
        "unionctl vs kernel on a redirect out of the layers"
    );
}
