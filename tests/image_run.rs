//! End to end with the runner: `run IMAGE` uses the image's layers and config, and a
//! committed container's image shows exactly the container's changes when run.
mod image_support;
use image_support::*;

const SHOW: &str = "cat /etc/motd; ls /opt /var/cache/app; \
    test -e /etc/remove-me && echo remove-me present || echo remove-me gone; \
    test -e /etc/motd.link && echo link present";

#[test]
fn run_commit_run_shows_exactly_the_changes() {
    let t = tmpdir();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "bb");
    let script = "rm /etc/remove-me; echo more >> /etc/motd; mkdir /opt; echo new > /opt/new; \
        rm -r /var/cache/app; mkdir /var/cache/app; echo c > /var/cache/app/c";
    uc_ok(
        &root,
        &["run", "--name", "changer", "bb", "/bin/sh", "-c", script],
    );
    let diff = uc_ok(&root, &["diff", "changer"]);
    assert_eq!(
        diff,
        // motd.link is a hard link of motd below: the container sees it changed too.
        "C /etc\nC /etc/motd\nC /etc/motd.link\nD /etc/remove-me\nA /opt\nA /opt/new\nC /var\n\
         C /var/cache\nC /var/cache/app\nD /var/cache/app/a\nD /var/cache/app/b\nA /var/cache/app/c\n",
        "runtime mount points must not show up"
    );
    uc_ok(&root, &["commit", "-m", "changes", "changer", "bb:changed"]);
    // the new layer holds only the changes
    let top = &image_lowers(&root, "bb:changed")[0];
    let mut names: Vec<String> = std::fs::read_dir(top)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["etc", "opt", "var"]);
    let before = uc_ok(&root, &["run", "--rm", "bb", "/bin/sh", "-c", SHOW]);
    assert_eq!(
        before,
        "hello from the base\n/var/cache/app:\na\nb\nremove-me present\nlink present\n"
    );
    let after = uc_ok(&root, &["run", "--rm", "bb:changed", "/bin/sh", "-c", SHOW]);
    assert_eq!(
        after,
        "hello from the base\nmore\n/opt:\nnew\n\n/var/cache/app:\nc\nremove-me gone\nlink present\n"
    );
}

#[test]
fn run_uses_the_image_config() {
    let t = tmpdir();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "bb");
    uc_ok(&root, &["run", "--name", "c", "bb", "/bin/true"]);
    uc_ok(
        &root,
        &[
            "commit",
            "-c",
            "CMD [\"/bin/cat\", \"/etc/motd\"]",
            "-c",
            "ENV GREETING=hi",
            "-c",
            "WORKDIR /etc",
            "c",
            "bb:cfg",
        ],
    );
    assert_eq!(
        uc_ok(&root, &["run", "--rm", "bb:cfg"]),
        "hello from the base\n"
    );
    let out = uc_ok(
        &root,
        &[
            "run",
            "--rm",
            "bb:cfg",
            "/bin/sh",
            "-c",
            "echo $GREETING; pwd; id -u",
        ],
    );
    assert_eq!(out, "hi\n/etc\n0\n");
    uc_ok(&root, &["rm", "c"]);
    uc_ok(&root, &["run", "--name", "c2", "bb", "/bin/true"]);
    uc_ok(
        &root,
        &[
            "commit",
            "-c",
            "ENTRYPOINT [\"/bin/echo\", \"entry\"]",
            "-c",
            "USER 1000:1000",
            "c2",
            "bb:ep",
        ],
    );
    assert_eq!(
        uc_ok(&root, &["run", "--rm", "bb:ep", "arg"]),
        "entry arg\n"
    );
    assert_eq!(
        uc_ok(&root, &["run", "--rm", "bb:ep", "/bin/sh", "-c", "id -u"]).trim(),
        "entry /bin/sh -c id -u"
    );
    // USER: the process runs as that user
    uc_ok(&root, &["run", "--name", "c3", "bb", "/bin/true"]);
    uc_ok(&root, &["commit", "-c", "USER 1000:1000", "c3", "bb:user"]);
    let ids = uc_ok(
        &root,
        &["run", "--rm", "bb:user", "/bin/sh", "-c", "id -u; id -g"],
    );
    assert_eq!(ids, "1000\n1000\n");
    // rmi refuses an image a container uses
    let r = uc(&root, &["rmi", "bb"]);
    assert!(r.code != 0 && r.stderr.contains("c2"), "{}", r.stderr);
}

#[test]
fn images_from_podman_and_skopeo_archives_run_here() {
    let t = tmpdir();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "bb");
    let ours = t.path().join("ours.tar");
    uc_ok(&root, &["save", "-o", ours.to_str().unwrap(), "bb"]);
    let pdir = t.path().join("podman");
    podman(&pdir, &["load", "-i", ours.to_str().unwrap()]);
    let pod = t.path().join("podman.tar");
    podman(
        &pdir,
        &[
            "save",
            "--format",
            "oci-archive",
            "-o",
            pod.to_str().unwrap(),
            "localhost/bb:latest",
        ],
    );
    podman_cleanup(&pdir);
    let sk = t.path().join("skopeo.tar");
    sh_ok(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-compress",
            &format!("oci-archive:{}", pod.display()),
            &format!("docker-archive:{}:sk/bb:1", sk.display()),
        ],
    );
    for (f, name) in [(&pod, "localhost/bb:latest"), (&sk, "sk/bb:1")] {
        let r2 = t
            .path()
            .join(format!("store-{name}").replace([':', '/'], "_"));
        uc_ok(&r2, &["load", "-i", f.to_str().unwrap()]);
        assert_eq!(
            uc_ok(&r2, &["run", "--rm", name, "/bin/cat", "/etc/motd"]),
            "hello from the base\n"
        );
    }
}

/// `save` of one image named twice (and by another name) writes it once with each name
/// once; by id, with no name, as docker saves it.
#[test]
fn save_names_each_image_once() {
    let t = tmpdir();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "bb");
    uc_ok(&root, &["tag", "bb", "other:2"]);
    let manifest = |args: &[&str]| -> serde_json::Value {
        let out = t.path().join("s.tar");
        let mut a = vec!["save", "-o", out.to_str().unwrap()];
        a.extend(args);
        uc_ok(&root, &a);
        let mut ar = tar::Archive::new(std::fs::File::open(&out).unwrap());
        let mut e = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
            .expect("manifest.json");
        serde_json::from_reader(&mut e).unwrap()
    };
    let m = manifest(&["bb", "bb", "other:2"]);
    assert_eq!(m.as_array().unwrap().len(), 1, "{m}");
    assert_eq!(
        m[0]["RepoTags"],
        serde_json::json!(["bb:latest", "other:2"]),
        "{m}"
    );
    let id = uc_ok(&root, &["images", "-q"]);
    let m = manifest(&[id.trim()]);
    let tags = &m[0]["RepoTags"];
    assert!(
        tags.is_null() || tags.as_array().is_some_and(|a| a.is_empty()),
        "{m}"
    );
}

#[test]
fn commit_pauses_a_running_container() {
    let t = tmpdir();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "bb");
    uc_ok(
        &root,
        &[
            "run",
            "-d",
            "--name",
            "bg",
            "bb",
            "/bin/sh",
            "-c",
            "echo started > /tmp/s; echo ready; while true; do sleep 1; done",
        ],
    );
    events::wait_log(&root, "bg", "ready\n");
    assert!(uc_ok(&root, &["diff", "bg"]).contains("/tmp/s"));
    uc_ok(&root, &["commit", "bg", "bb:live"]);
    let ps = uc_ok(&root, &["ps"]);
    assert!(ps.contains("bg") && ps.contains("Up"), "{ps}");
    let v: serde_json::Value = serde_json::from_str(&uc_ok(&root, &["inspect", "bg"])).unwrap();
    assert_eq!(v[0]["State"]["Paused"], false, "left paused: {v}");
    assert_eq!(
        uc_ok(&root, &["run", "--rm", "bb:live", "/bin/cat", "/tmp/s"]),
        "started\n"
    );
    uc_ok(&root, &["rm", "-f", "bg"]);
}

#[test]
fn rootless_import_run_commit_run() {
    let t = tmpdir();
    let rootfs = t.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let tar = t.path().join("rootfs.tar");
    tar_of(&rootfs, &tar);
    sh_ok("chmod", &["644", tar.to_str().unwrap()]);
    let root = user_store(t.path());
    uc_as_user_ok(&root, &["import", tar.to_str().unwrap(), "bb"]);
    let script = "rm /etc/remove-me; echo more >> /etc/motd; rm -r /var/cache/app; mkdir /var/cache/app; touch /var/cache/app/c";
    uc_as_user_ok(
        &root,
        &["run", "--name", "rl", "bb", "/bin/sh", "-c", script],
    );
    let diff = uc_as_user_ok(&root, &["diff", "rl"]);
    assert!(
        diff.contains("D /etc/remove-me")
            && diff.contains("A /var/cache/app/c")
            && !diff.contains("/etc/hosts"),
        "{diff}"
    );
    uc_as_user_ok(&root, &["commit", "rl", "bb:rl"]);
    let out = uc_as_user_ok(&root, &["run", "--rm", "bb:rl", "/bin/sh", "-c", SHOW]);
    assert_eq!(
        out,
        "hello from the base\nmore\n/var/cache/app:\nc\nremove-me gone\nlink present\n"
    );
    sh_ok("rm", &["-rf", root.to_str().unwrap()]);
}

/// A character device 0/0 made in a container is a device (the union marks it, as the
/// kernel would refuse it as its whiteout): `diff` shows it added, `export` and `commit`
/// keep it as a device, and the committed image shows it.
#[test]
fn a_device_0_0_made_in_a_container_survives_diff_export_and_commit() {
    let t = tmpdir();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "bb");
    let rootfs = image_lowers(&root, "bb")[0].clone();
    let rootfs = rootfs.to_str().unwrap();
    let show = "test -c /dev0 && ls -l /dev0 | cut -c1,30-45 | tr -s ' '";
    let mk = format!("mknod /dev0 c 0 0 && {show}");
    let seen = uc_ok(
        &root,
        &[
            "run", "--name", "d", "--rootfs", rootfs, "/bin/sh", "-c", &mk,
        ],
    );
    assert!(seen.starts_with('c') && seen.contains("0, 0"), "{seen}");
    assert_eq!(uc_ok(&root, &["diff", "d"]), "A /dev0\n");
    let exp = t.path().join("d.tar");
    uc_ok(&root, &["export", "-o", exp.to_str().unwrap(), "d"]);
    let mut found = None;
    let mut a = tar::Archive::new(std::fs::File::open(&exp).unwrap());
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap() == std::path::Path::new("dev0") {
            let h = e.header();
            let dev = (h.device_major().unwrap(), h.device_minor().unwrap());
            found = Some((h.entry_type(), dev));
        }
    }
    assert_eq!(
        found,
        Some((tar::EntryType::Char, (Some(0), Some(0)))),
        "export"
    );
    uc_ok(&root, &["commit", "d", "bb:dev"]);
    let again = uc_ok(&root, &["run", "--rm", "bb:dev", "/bin/sh", "-c", show]);
    assert_eq!(again, seen, "the committed image shows the device");
}
