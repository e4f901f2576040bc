//! Round trips with real peers: skopeo, umoci, podman.
mod image_support;
use image_support::*;
use std::fs;
use std::path::{Path, PathBuf};

#[test]
fn our_archives_read_by_skopeo_umoci_and_podman() {
    let t = tmpdir();
    let root = t.path().join("store");
    two_layer_image(t.path(), &root);
    let dock = t.path().join("two-docker.tar");
    let oci = t.path().join("two-oci.tar");
    uc_ok(&root, &["save", "-o", dock.to_str().unwrap(), "two:layers"]);
    uc_ok(
        &root,
        &[
            "save",
            "--format",
            "oci-archive",
            "-o",
            oci.to_str().unwrap(),
            "two:layers",
        ],
    );

    // skopeo reads both and copies them on
    let js = sh_ok(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", dock.display())],
    );
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    let js = sh_ok(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci-archive:{}", oci.display()),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["config"]["Cmd"][1], "/etc/motd");
    let layout = t.path().join("layout");
    sh_ok(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("docker-archive:{}", dock.display()),
            &format!("oci:{}:copied", layout.display()),
        ],
    );

    // umoci unpacks what skopeo copied from our docker-archive, and our oci-archive
    let b1 = t.path().join("bundle1");
    sh_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:copied", layout.display()),
            b1.to_str().unwrap(),
        ],
    );
    check_two_layer_rootfs(&b1.join("rootfs"));
    let x = t.path().join("x");
    fs::create_dir(&x).unwrap();
    sh_ok(
        "tar",
        &["-C", x.to_str().unwrap(), "-xf", oci.to_str().unwrap()],
    );
    let b2 = t.path().join("bundle2");
    sh_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:two:layers", x.display()),
            b2.to_str().unwrap(),
        ],
    );
    check_two_layer_rootfs(&b2.join("rootfs"));
    // xattrs survive (user.origin on the base's motd is replaced by the upper copy,
    // the hard link partner keeps it)
    assert_eq!(
        xattr::get(b2.join("rootfs/etc/motd.link"), "user.origin")
            .unwrap()
            .unwrap(),
        b"base"
    );

    // podman loads both and mounts the right content
    for (f, name) in [(&dock, "dock"), (&oci, "oci")] {
        let pdir = t.path().join(format!("podman-{name}"));
        let out = podman(&pdir, &["load", "-i", f.to_str().unwrap()]);
        assert!(out.contains("two:layers"), "{out}");
        let mnt = podman(&pdir, &["image", "mount", "localhost/two:layers"]);
        check_two_layer_rootfs(Path::new(mnt.trim()));
        podman(&pdir, &["image", "unmount", "localhost/two:layers"]);
        podman_cleanup(&pdir);
    }
}

#[test]
fn archives_made_by_podman_and_skopeo_load_here() {
    let t = tmpdir();
    let root = t.path().join("store");
    two_layer_image(t.path(), &root);
    let want = tree_listing(&image_lowers(&root, "two:layers")[0], true);
    let dock = t.path().join("ours.tar");
    uc_ok(&root, &["save", "-o", dock.to_str().unwrap(), "two:layers"]);
    let pdir = t.path().join("podman");
    podman(&pdir, &["load", "-i", dock.to_str().unwrap()]);
    let mut archives: Vec<(PathBuf, &str)> = Vec::new();
    let p_d = t.path().join("podman-docker.tar");
    let p_o = t.path().join("podman-oci.tar");
    podman(
        &pdir,
        &["save", "-o", p_d.to_str().unwrap(), "localhost/two:layers"],
    );
    podman(
        &pdir,
        &[
            "save",
            "--format",
            "oci-archive",
            "-o",
            p_o.to_str().unwrap(),
            "localhost/two:layers",
        ],
    );
    archives.push((p_d.clone(), "localhost/two:layers"));
    archives.push((p_o.clone(), "localhost/two:layers"));
    // skopeo with compressed layers (gzip, zstd) and a whole-file compressed archive
    for (fmt, name) in [("gzip", "sk/gzip:1"), ("zstd", "sk/zstd:1")] {
        let f = t.path().join(format!("sk-{fmt}.tar"));
        sh_ok(
            "skopeo",
            &[
                "copy",
                "-q",
                "--dest-compress",
                "--dest-compress-format",
                fmt,
                &format!("docker-archive:{}", p_d.display()),
                &format!("oci-archive:{}:{name}", f.display()),
            ],
        );
        archives.push((f, name));
    }
    let f = t.path().join("sk-docker.tar");
    sh_ok(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci-archive:{}", p_o.display()),
            &format!("docker-archive:{}:sk/docker:2", f.display()),
        ],
    );
    sh_ok("gzip", &["-k", f.to_str().unwrap()]);
    archives.push((t.path().join("sk-docker.tar.gz"), "sk/docker:2"));

    for (f, name) in archives {
        let r2 = t.path().join(format!(
            "store-{}",
            f.file_name().unwrap().to_string_lossy()
        ));
        let out = uc_ok(&r2, &["load", "-i", f.to_str().unwrap()]);
        assert!(out.contains(name), "{}: {out}", f.display());
        let lowers = image_lowers(&r2, name);
        assert_eq!(lowers.len(), 2, "{}", f.display());
        let got = tree_listing(&lowers[0], true);
        assert_eq!(got, want, "top layer of {} differs", f.display());
        // the config (and so the image id) is kept byte for byte
        assert_eq!(image_id(&r2, name), image_id(&root, "two:layers"));
        let cfg: serde_json::Value = serde_json::from_str(&uc_ok(&r2, &["inspect", name])).unwrap();
        assert_eq!(cfg[0]["Config"]["Cmd"][0], "/bin/cat");
        assert_eq!(fs::read_dir(r2.join("tmp")).unwrap().count(), 0);
    }
    podman_cleanup(&pdir);
    // stdin works too
    let r3 = t.path().join("store-stdin");
    let out = std::process::Command::new(bin())
        .args(["--root", r3.to_str().unwrap(), "load"])
        .stdin(fs::File::open(&p_o).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("localhost/two:layers"));
}

#[test]
fn save_and_load_round_trip_many_images() {
    let t = tmpdir();
    let root = t.path().join("store");
    two_layer_image(t.path(), &root);
    uc_ok(&root, &["tag", "two:layers", "copy:1"]);
    let arch = t.path().join("all.tar");
    uc_ok(
        &root,
        &[
            "save",
            "-o",
            arch.to_str().unwrap(),
            "base",
            "two:layers",
            "copy:1",
        ],
    );
    let r2 = t.path().join("store2");
    let out = uc_ok(&r2, &["load", "-i", arch.to_str().unwrap()]);
    for n in ["base:latest", "two:layers", "copy:1"] {
        assert!(out.contains(n), "{out}");
    }
    assert_eq!(fs::read_dir(r2.join("layers")).unwrap().count(), 2);
    for n in ["base", "two:layers"] {
        assert_eq!(image_id(&r2, n), image_id(&root, n));
    }
    // to stdout, refused on a non-archive
    let junk = t.path().join("junk.tar");
    fs::write(&junk, b"not an archive at all").unwrap();
    let r = uc(&r2, &["load", "-i", junk.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = uc(&r2, &["save", "-o", "/nonexistent-dir/x.tar", "base"]);
    assert!(
        r.code != 0 && r.stderr.contains("/nonexistent-dir"),
        "{}",
        r.stderr
    );
}
