//! Hostile tars are refused with one clear error and nothing written anywhere:
//! not outside the store, not in the store.
mod image_support;
use image_support::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[derive(Clone, Copy)]
enum K {
    File,
    Dir,
    Sym,
    Hard,
    Char(u32, u32),
    LongName(u64),
}

/// A tar written header by header, names taken verbatim (no checks by the builder).
/// (name, kind, link target, data)
type Member<'a> = (&'a [u8], K, &'a [u8], &'a [u8]);

fn raw_tar(entries: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        let mut size = data.len() as u64;
        match kind {
            K::File => h.set_entry_type(tar::EntryType::Regular),
            K::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
            }
            K::Sym => h.set_entry_type(tar::EntryType::Symlink),
            K::Hard => h.set_entry_type(tar::EntryType::Link),
            K::Char(ma, mi) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
            }
            K::LongName(claimed) => {
                h.set_entry_type(tar::EntryType::GNULongName);
                size = *claimed;
            }
        }
        h.set_size(size);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
        if let K::LongName(_) = kind {
            break; // the claimed data never comes
        }
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// A docker-archive with one layer `l.tar`, config `c.json` and the given manifest.
fn docker_archive(layer: &[u8], cfg: &str, manifest: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (n, d) in [
        ("l.tar", layer),
        ("c.json", cfg.as_bytes()),
        ("manifest.json", manifest.as_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, n, d).unwrap();
    }
    b.into_inner().unwrap()
}

fn assert_nothing_stored(root: &Path) {
    for d in ["layers", "blobs/sha256", "tmp"] {
        let p = root.join(d);
        if p.exists() {
            let left: Vec<_> = fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(left.is_empty(), "{} holds {left:?}", p.display());
        }
    }
    assert_eq!(uc_ok(root, &["images", "-q"]).trim(), "");
}

fn refused(t: &Path, name: &str, tar: Vec<u8>, why: &str) {
    let root = t.join(format!("store-{name}"));
    let f = t.join(format!("{name}.tar"));
    fs::write(&f, tar).unwrap();
    let r = uc(&root, &["import", f.to_str().unwrap(), "evil"]);
    assert_ne!(r.code, 0, "{name}: accepted");
    assert_eq!(r.stderr.lines().count(), 1, "{name}: {}", r.stderr);
    assert!(
        r.stderr.contains(why),
        "{name}: want {why:?} in {}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_nothing_stored(&root);
}

#[test]
fn hostile_layer_tars_are_refused() {
    let t = tmpdir();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "keep me\n").unwrap();
    let out_abs = outside.to_str().unwrap().as_bytes().to_vec();
    let mut abs_name = out_abs.clone();
    abs_name.extend_from_slice(b"/pwned");
    let mut secret = out_abs.clone();
    secret.extend_from_slice(b"/secret");

    refused(
        t.path(),
        "absolute-dotdot",
        raw_tar(&[(b"/../pwned", K::File, b"", b"x")]),
        "'..'",
    );
    refused(
        t.path(),
        "absolute-dotdot-deep",
        raw_tar(&[(b"/a/../../pwned", K::File, b"", b"x")]),
        "'..'",
    );
    refused(
        t.path(),
        "absolute-through-symlink",
        raw_tar(&[
            (b"/evil", K::Sym, &out_abs, b""),
            (b"/evil/pwned", K::File, b"", b"x"),
        ]),
        "crosses the symlink",
    );
    refused(
        t.path(),
        "dotdot",
        raw_tar(&[(b"a/../../pwned", K::File, b"", b"x")]),
        "'..'",
    );
    refused(
        t.path(),
        "through-symlink",
        raw_tar(&[
            (b"evil", K::Sym, &out_abs, b""),
            (b"evil/pwned", K::File, b"", b"x"),
        ]),
        "crosses the symlink",
    );
    refused(
        t.path(),
        "dir-through-symlink",
        raw_tar(&[
            (b"d", K::Dir, b"", b""),
            (b"d/evil", K::Sym, &out_abs, b""),
            (b"d/evil/sub/", K::Dir, b"", b""),
        ]),
        "crosses the symlink",
    );
    // an absolute target names a member of the tree, never the host's file
    refused(
        t.path(),
        "hardlink-absolute",
        raw_tar(&[(b"h", K::Hard, &secret, b"")]),
        "hard link target refused",
    );
    refused(
        t.path(),
        "hardlink-absolute-dotdot",
        raw_tar(&[(b"h", K::Hard, b"/../etc/passwd", b"")]),
        "'..'",
    );
    refused(
        t.path(),
        "hardlink-dotdot",
        raw_tar(&[(b"h", K::Hard, b"../outside/secret", b"")]),
        "'..'",
    );
    refused(
        t.path(),
        "hardlink-through-symlink",
        raw_tar(&[
            (b"evil", K::Sym, &out_abs, b""),
            (b"h", K::Hard, b"evil/secret", b""),
        ]),
        "crosses the symlink",
    );
    refused(
        t.path(),
        "hardlink-missing",
        raw_tar(&[(b"h", K::Hard, b"not/there", b"")]),
        "hard link",
    );
    refused(
        t.path(),
        "oversized-header",
        raw_tar(&[(b"././@LongLink", K::LongName(1 << 34), b"", b"")]),
        "oversized",
    );
    // an absolute name that spells the outside dir's path lands inside the layer
    let root = t.path().join("store-absolute");
    let f = t.path().join("absolute.tar");
    fs::write(&f, raw_tar(&[(&abs_name, K::File, b"", b"x")])).unwrap();
    uc_ok(&root, &["import", f.to_str().unwrap(), "abs"]);
    let l = &image_lowers(&root, "abs")[0];
    let inside = l.join(outside.strip_prefix("/").unwrap()).join("pwned");
    assert_eq!(fs::read_to_string(inside).unwrap(), "x");
    // the outside dir is as it was
    let names: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    assert_eq!(
        fs::read_to_string(outside.join("secret")).unwrap(),
        "keep me\n"
    );
}

/// A dir member, then a symlink of the same name to a dir outside: the symlink replaces
/// the dir, and the dir's mode, applied at the end, must not land on the outside dir.
#[test]
fn a_dir_replaced_by_a_symlink_keeps_its_mode_inside() {
    let t = tmpdir();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    let target = format!("../../../../../../../../..{}", outside.display());
    let tar = raw_tar(&[
        (b"etc/", K::Dir, b"", b""),
        (b"etc", K::Sym, target.as_bytes(), b""),
    ]);
    let f = t.path().join("swap.tar");
    fs::write(&f, tar).unwrap();
    let root = t.path().join("store");
    uc_ok(&root, &["import", f.to_str().unwrap(), "swap"]);
    let mode = fs::metadata(&outside).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "the outside dir's mode changed");
}

#[test]
fn safe_but_unusual_tars_are_kept() {
    let t = tmpdir();
    let root = t.path().join("store");
    let tar = raw_tar(&[
        (b"/", K::Dir, b"", b""), // umoci insert's root member: the root itself
        (b"./", K::Dir, b"", b""),
        (b"./bin/", K::Dir, b"", b""),
        (b"./bin/tool", K::File, b"", b"data"),
        (b"./bin/alias", K::Hard, b"./bin/tool", b""),
        (b"/bin/abs-alias", K::Hard, b"/bin/tool", b""), // absolute: under the root
        (b"/etc/abs", K::File, b"", b"abs"),
        (b"//usr//lib/x", K::File, b"", b"x"),
        (b"./lib", K::Sym, b"/usr/lib", b""), // absolute: fine inside the container
        (b"./bin/up", K::Sym, b"../etc/x", b""), // relative, stays inside
        // climbs above the root: `..` stops there in the container (docker keeps it);
        // nothing is written through it (a member crossing it is refused, above)
        (b"./climb", K::Sym, b"../../../../../../etc", b""),
        (b"./etc/gone", K::Char(0, 0), b"", b""), // overlay whiteout -> .wh.gone
        (b"./dev/null", K::Char(1, 3), b"", b""),
        (b"./bin/tool", K::File, b"", b"newer"), // a later member replaces an earlier one
    ]);
    let f = t.path().join("ok.tar");
    fs::write(&f, tar).unwrap();
    uc_ok(&root, &["import", f.to_str().unwrap(), "ok"]);
    let l = &image_lowers(&root, "ok")[0];
    assert_eq!(fs::read_to_string(l.join("bin/tool")).unwrap(), "newer");
    assert_eq!(fs::read_to_string(l.join("bin/alias")).unwrap(), "data");
    assert_eq!(fs::read_to_string(l.join("bin/abs-alias")).unwrap(), "data");
    assert_eq!(fs::read_to_string(l.join("etc/abs")).unwrap(), "abs");
    assert_eq!(fs::read_to_string(l.join("usr/lib/x")).unwrap(), "x");
    assert_eq!(fs::read_link(l.join("lib")).unwrap(), Path::new("/usr/lib"));
    assert_eq!(
        fs::read_link(l.join("climb")).unwrap(),
        Path::new("../../../../../../etc")
    );
    assert!(l.join("etc/.wh.gone").is_file());
    use std::os::unix::fs::FileTypeExt;
    assert!(
        fs::symlink_metadata(l.join("dev/null"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn hostile_archives_are_refused_by_load() {
    let t = tmpdir();
    // an archive member with '..'
    let f = t.path().join("a.tar");
    fs::write(&f, raw_tar(&[(b"../manifest.json", K::File, b"", b"[]")])).unwrap();
    let root = t.path().join("store");
    let r = uc(&root, &["load", "-i", f.to_str().unwrap()]);
    assert!(r.code != 0 && r.stderr.contains("'..'"), "{}", r.stderr);
    // a docker-archive whose layer is hostile
    let layer = raw_tar(&[
        (b"evil", K::Sym, b"/etc", b""),
        (b"evil/passwd", K::File, b"", b"x"),
    ]);
    use sha2::Digest;
    let diff = hex::encode(sha2::Sha256::digest(&layer));
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"#
    );
    let manifest = r#"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":["l.tar"]}]"#;
    let f2 = t.path().join("b.tar");
    fs::write(&f2, docker_archive(&layer, &cfg, manifest)).unwrap();
    // -q: the blob's "Copying blob ... done" line would precede the one error line.
    let r = uc(&root, &["load", "-q", "-i", f2.to_str().unwrap()]);
    assert!(
        r.code != 0 && r.stderr.contains("crosses the symlink"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert_nothing_stored(&root);
    // a layer whose content does not match the config's diff_id
    let cfg_bad = cfg.replace(&diff, &"0".repeat(64));
    let good_layer = raw_tar(&[(b"f", K::File, b"", b"x")]);
    let f3 = t.path().join("c.tar");
    fs::write(&f3, docker_archive(&good_layer, &cfg_bad, manifest)).unwrap();
    let r = uc(&root, &["load", "-i", f3.to_str().unwrap()]);
    assert!(
        r.code != 0 && r.stderr.contains("does not match"),
        "{}",
        r.stderr
    );
    assert_nothing_stored(&root);
    // the same, gzip-compressed: the blob is written while it is unpacked, and neither
    // may get its final name
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &good_layer).unwrap();
    let f4 = t.path().join("d.tar");
    fs::write(
        &f4,
        docker_archive(&gz.finish().unwrap(), &cfg_bad, manifest),
    )
    .unwrap();
    let r = uc(&root, &["load", "-i", f4.to_str().unwrap()]);
    assert!(
        r.code != 0 && r.stderr.contains("does not match"),
        "{}",
        r.stderr
    );
    assert_nothing_stored(&root);
    // one member named twice, the second time with another diff_id: checked twice
    let good = hex::encode(sha2::Sha256::digest(&good_layer));
    let cfg_twice = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{good}","sha256:{}"]}}}}"#,
        "0".repeat(64)
    );
    let twice = r#"[{"Config":"c.json","RepoTags":["evil:2"],"Layers":["l.tar","l.tar"]}]"#;
    let f5 = t.path().join("e.tar");
    fs::write(&f5, docker_archive(&good_layer, &cfg_twice, twice)).unwrap();
    let r = uc(&root, &["load", "-i", f5.to_str().unwrap()]);
    assert!(
        r.code != 0 && r.stderr.contains("does not match"),
        "{}",
        r.stderr
    );
    assert!(uc_ok(&root, &["images", "-q"]).trim().is_empty());
}

/// Rootless: devices are skipped with a warning, owners are not kept (no privilege),
/// the rest of the layer is unpacked.
#[test]
fn rootless_import_skips_devices_with_a_warning() {
    let t = tmpdir();
    let tar = raw_tar(&[
        (b"etc/", K::Dir, b"", b""),
        (b"etc/conf", K::File, b"", b"conf"),
        (b"etc/gone", K::Char(0, 0), b"", b""),
        (b"dev/null", K::Char(1, 3), b"", b""),
    ]);
    let f = t.path().join("dev.tar");
    fs::write(&f, tar).unwrap();
    sh_ok("chmod", &["644", f.to_str().unwrap()]);
    let root = user_store(t.path());
    let r = uc_as_user(&root, &["import", f.to_str().unwrap(), "rootless"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("device"),
        "{}",
        r.stderr
    );
    let l = &image_lowers(&root, "rootless")[0];
    assert_eq!(fs::read_to_string(l.join("etc/conf")).unwrap(), "conf");
    assert!(l.join("etc/.wh.gone").is_file());
    assert!(!l.join("dev/null").exists());
    use std::os::unix::fs::MetadataExt;
    assert_ne!(fs::metadata(l.join("etc/conf")).unwrap().uid(), 0);
    sh_ok("rm", &["-rf", root.to_str().unwrap()]);
}

#[test]
fn overlay_xattrs_in_a_layer_are_dropped() {
    let t = tmpdir();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), "x").unwrap();
    xattr::set(src.join("d"), "trusted.overlay.opaque", b"y").unwrap();
    xattr::set(src.join("d"), "trusted.overlay.redirect", b"/etc").unwrap();
    xattr::set(src.join("d/f"), "user.kept", b"1").unwrap();
    let tar = t.path().join("x.tar");
    tar_of(&src, &tar);
    assert!(
        sh_ok(
            "tar",
            &[
                "--xattrs",
                "--xattrs-include=*",
                "-tvvf",
                tar.to_str().unwrap()
            ]
        )
        .contains("trusted.overlay")
    );
    let root = t.path().join("store");
    uc_ok(&root, &["import", tar.to_str().unwrap(), "x"]);
    let l = &image_lowers(&root, "x")[0];
    assert!(
        xattr::get(l.join("d"), "trusted.overlay.opaque")
            .unwrap()
            .is_none()
    );
    assert!(
        xattr::get(l.join("d"), "trusted.overlay.redirect")
            .unwrap()
            .is_none()
    );
    assert_eq!(
        xattr::get(l.join("d/f"), "user.kept").unwrap().unwrap(),
        b"1"
    );
}
