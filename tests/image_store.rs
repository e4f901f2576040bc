//! The store: import, images, tag, rmi, history, inspect, concurrency, crash safety.
mod image_support;
use image_support::*;
use std::fs;
use std::path::Path;

fn imported(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs);
    let tar = dir.join("rootfs.tar");
    tar_of(&rootfs, &tar);
    (rootfs, tar)
}

#[test]
fn import_keeps_everything_and_unpacks_once() {
    let t = tmpdir();
    let (rootfs, tar) = imported(t.path());
    let root = t.path().join("store");
    let out = uc_ok(&root, &["import", tar.to_str().unwrap(), "bb"]);
    let id = out.trim().trim_start_matches("sha256:").to_string();
    assert_eq!(id.len(), 64);
    // the image id is the sha256 of the config blob
    let cfg = fs::read(root.join("blobs/sha256").join(&id)).unwrap();
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&cfg)), id);
    let lowers = image_lowers(&root, "bb");
    assert_eq!(lowers.len(), 1);
    assert!(lowers[0].starts_with(root.join("layers")));
    assert_same_tree(&rootfs, &lowers[0], true);
    // the layer blob is the tar as given (its digest is the diff_id)
    let diff = lowers[0].file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        fs::read(root.join("blobs/sha256").join(&diff)).unwrap(),
        fs::read(&tar).unwrap()
    );
    // a second image with the same layer shares the unpacked dir
    uc_ok(&root, &["import", tar.to_str().unwrap(), "bb2:v1"]);
    assert_eq!(fs::read_dir(root.join("layers")).unwrap().count(), 1);
    assert_eq!(image_lowers(&root, "bb2:v1"), lowers);
    // nothing left in the temp area
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    // the store is an OCI image layout that umoci reads
    let oci_layout = fs::read_to_string(root.join("oci-layout")).unwrap();
    assert!(oci_layout.contains("1.0.0"));
}

#[test]
fn images_tag_history_inspect_rmi() {
    let t = tmpdir();
    let (_rootfs, tar) = imported(t.path());
    let root = t.path().join("store");
    let tar = tar.to_str().unwrap();
    uc_ok(&root, &["import", tar, "bb"]);
    let id = image_id(&root, "bb");
    uc_ok(&root, &["tag", "bb", "example/bb:v2"]);
    let list = uc_ok(&root, &["images"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY")
            && lines[0].contains("IMAGE ID")
            && lines[0].ends_with("SIZE")
    );
    assert!(
        list.contains("example/bb") && list.contains("v2") && list.contains(&id[..12]),
        "{list}"
    );
    assert_eq!(uc_ok(&root, &["images", "-q"]).trim(), &id[..12]);
    // docker's `images REPOSITORY[:TAG]`
    let only = uc_ok(&root, &["images", "example/bb"]);
    assert!(
        only.contains("example/bb") && !only.contains("\nbb "),
        "{only}"
    );
    assert_eq!(
        uc_ok(&root, &["images", "-q", "bb:latest"]).trim(),
        &id[..12]
    );
    assert_eq!(uc_ok(&root, &["images", "-q", "nosuch"]), "");
    let js: serde_json::Value = serde_json::from_str(&uc_ok(&root, &["images", "--json"])).unwrap();
    assert_eq!(js.as_array().unwrap().len(), 2);
    // lookups by short id, full id, sha256: prefix
    for r in [&id[..12], &id[..], &format!("sha256:{id}")] {
        assert_eq!(image_id(&root, r), id);
    }
    let hist = uc_ok(&root, &["history", "bb"]);
    assert!(
        hist.contains("CREATED BY") && hist.contains("unionctl import"),
        "{hist}"
    );
    // docker's --no-trunc: the full id
    let hist = uc_ok(&root, &["history", "--no-trunc", "bb"]);
    assert!(hist.contains(&format!("sha256:{id}")), "{hist}");
    let insp: serde_json::Value =
        serde_json::from_str(&uc_ok(&root, &["inspect", "example/bb:v2"])).unwrap();
    assert_eq!(insp[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(insp[0]["RepoTags"].as_array().unwrap().len() == 2);
    // bad names and unknown images: one clear line, non-zero
    let r = uc(&root, &["tag", "bb", "Bad Name"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("invalid reference") && r.stderr.lines().count() == 1,
        "{}",
        r.stderr
    );
    let r = uc(&root, &["history", "nope"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no such image"), "{}", r.stderr);
    // rmi by id refuses while two names remain; by name untags
    let r = uc(&root, &["rmi", &id[..12]]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(uc_ok(&root, &["rmi", "example/bb:v2"]).contains("Untagged: example/bb:v2"));
    assert!(fs::read_dir(root.join("layers")).unwrap().count() == 1);
    // a container using the image blocks rmi unless -f
    let lowers = image_lowers(&root, "bb");
    let cid = "ab".repeat(32);
    fake_container(&root, &cid, "user", Some(&id), &lowers);
    let r = uc(&root, &["rmi", "bb"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("used by container") && r.stderr.contains("user"),
        "{}",
        r.stderr
    );
    // -f takes the names; the image stays, unnamed, while a container uses it (docker)
    let out = uc_ok(&root, &["rmi", "-f", "bb"]);
    assert!(
        out.contains("Untagged: bb:latest") && !out.contains("Deleted"),
        "{out}"
    );
    assert_eq!(uc_ok(&root, &["images", "-q"]).trim(), &id[..12]);
    assert!(uc_ok(&root, &["images"]).contains("<none>"));
    assert!(lowers[0].is_dir());
    // once the container is gone, prune takes it
    fs::remove_dir_all(root.join("containers")).unwrap();
    uc_ok(&root, &["image", "prune"]);
    assert_eq!(uc_ok(&root, &["images", "-q"]).trim(), "");
    uc_ok(&root, &["import", tar, "again"]);
    uc_ok(&root, &["rmi", "again"]);
    assert_eq!(fs::read_dir(root.join("layers")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.join("blobs/sha256")).unwrap().count(), 0);
}

#[test]
fn concurrent_commands_keep_the_store_consistent() {
    let t = tmpdir();
    let (_rootfs, tar) = imported(t.path());
    let root = t.path().join("store");
    let tar = tar.to_str().unwrap().to_string();
    let mut kids = Vec::new();
    for i in 0..6 {
        let root = root.clone();
        let tar = tar.clone();
        kids.push(std::thread::spawn(move || {
            uc_ok(&root, &["import", &tar, &format!("img{i}")]);
            uc_ok(&root, &["tag", &format!("img{i}"), &format!("other{i}:x")]);
        }));
    }
    for k in kids {
        k.join().unwrap();
    }
    let js: serde_json::Value = serde_json::from_str(&uc_ok(&root, &["images", "--json"])).unwrap();
    assert_eq!(js.as_array().unwrap().len(), 12, "{js}");
    assert_eq!(fs::read_dir(root.join("layers")).unwrap().count(), 1);
    // removals racing each other and an import
    let mut kids = Vec::new();
    for i in 0..6 {
        let root = root.clone();
        kids.push(std::thread::spawn(move || {
            uc_ok(&root, &["rmi", &format!("img{i}"), &format!("other{i}:x")]);
        }));
    }
    let r2 = root.clone();
    let tar2 = tar.clone();
    kids.push(std::thread::spawn(move || {
        uc_ok(&r2, &["import", &tar2, "survivor"]);
    }));
    for k in kids {
        k.join().unwrap();
    }
    let js: serde_json::Value = serde_json::from_str(&uc_ok(&root, &["images", "--json"])).unwrap();
    assert_eq!(js.as_array().unwrap().len(), 1, "{js}");
    let lowers = image_lowers(&root, "survivor");
    assert!(lowers[0].join("bin/busybox").is_file());
}

#[test]
fn a_failed_import_leaves_nothing_behind() {
    let t = tmpdir();
    let root = t.path().join("store");
    let (_rootfs, tar) = imported(t.path());
    // a truncated tar
    let data = fs::read(&tar).unwrap();
    let cut = t.path().join("cut.tar");
    fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let r = uc(&root, &["import", cut.to_str().unwrap(), "cut"]);
    assert_ne!(r.code, 0);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert_eq!(fs::read_dir(root.join("layers")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.join("blobs/sha256")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    let r = uc(&root, &["import", "/nonexistent.tar", "x"]);
    assert!(
        r.code != 0 && r.stderr.contains("/nonexistent.tar"),
        "{}",
        r.stderr
    );
}

#[test]
fn import_of_debootstrap_minbase_matches_the_tree() {
    let tar = minbase_tar();
    let t = tmpdir();
    let root = t.path().join("store");
    // compressed input is detected
    let gz = t.path().join("minbase.tar.zst");
    sh_ok(
        "zstd",
        &[
            "-q",
            "-1",
            "-T0",
            tar.to_str().unwrap(),
            "-o",
            gz.to_str().unwrap(),
        ],
    );
    uc_ok(&root, &["import", gz.to_str().unwrap(), "debian:minbase"]);
    let lowers = image_lowers(&root, "debian:minbase");
    let ref_dir = t.path().join("ref");
    fs::create_dir(&ref_dir).unwrap();
    sh_ok(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-C",
            ref_dir.to_str().unwrap(),
            "-xpf",
            tar.to_str().unwrap(),
        ],
    );
    assert_same_tree(&ref_dir, &lowers[0], true);
    // progress: a line per layer when it is done, bars on a terminal, nothing with -q
    let out = t.path().join("deb.tar");
    let r = uc(
        &root,
        &["save", "-o", out.to_str().unwrap(), "debian:minbase"],
    );
    assert!(
        r.code == 0
            && r.stderr.starts_with("Copying blob sha256:")
            && r.stderr.lines().count() == 1,
        "{}",
        r.stderr
    );
    let r = uc(
        &root,
        &["save", "-q", "-o", out.to_str().unwrap(), "debian:minbase"],
    );
    assert!(r.code == 0 && r.stderr.is_empty(), "{}", r.stderr);
    let cmd = format!(
        "{} --root {} save -o {} debian:minbase",
        bin().display(),
        root.display(),
        out.display()
    );
    let tty = sh_ok("script", &["-qec", &cmd, "/dev/null"]);
    assert!(
        tty.contains("Copying blob sha256:") && tty.contains("MiB"),
        "no progress on a terminal: {tty:?}"
    );
}
