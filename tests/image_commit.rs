//! commit, diff and export of containers (records made here as the runner writes them,
//! upper layers with real overlay and AUFS whiteouts).
mod image_support;
use image_support::*;
use std::fs;
use std::path::{Path, PathBuf};

struct Setup {
    _t: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    base_id: String,
    lowers: Vec<PathBuf>,
}

impl Setup {
    /// A container over the base image with an empty upper dir; id = `id` x 32.
    fn ctr(&self, id: &str, name: &str) -> PathBuf {
        fake_container(
            &self.root,
            &id.repeat(32),
            name,
            Some(&self.base_id),
            &self.lowers,
        )
    }
}

fn setup() -> Setup {
    let t = tmpdir();
    let dir = t.path().to_path_buf();
    let root = dir.join("store");
    import_busybox(&dir, &root, "base");
    let base_id = image_id(&root, "base");
    let lowers = image_lowers(&root, "base");
    Setup {
        _t: t,
        dir,
        root,
        base_id,
        lowers,
    }
}

/// Changes as the kernel overlayfs (as root) leaves them in an upper dir.
fn overlay_changes(up: &Path) {
    for d in ["etc", "var/cache/app", "opt/tree"] {
        fs::create_dir_all(up.join(d)).unwrap();
    }
    fs::write(up.join("etc/motd"), "changed\n").unwrap();
    fs::write(up.join("opt/tree/new"), "added\n").unwrap();
    sh_ok(
        "mknod",
        &[up.join("etc/remove-me").to_str().unwrap(), "c", "0", "0"],
    );
    xattr::set(up.join("var/cache/app"), "trusted.overlay.opaque", b"y").unwrap();
    fs::write(up.join("var/cache/app/c"), "c\n").unwrap();
    // overlay's own xattrs never reach an image
    xattr::set(up.join("etc"), "trusted.overlay.origin", b"\0\xfb").unwrap();
}

/// The same changes in the AUFS format.
fn aufs_changes(up: &Path) {
    for d in ["etc", "var/cache/app", "opt/tree"] {
        fs::create_dir_all(up.join(d)).unwrap();
    }
    fs::write(up.join("etc/motd"), "changed\n").unwrap();
    fs::write(up.join("opt/tree/new"), "added\n").unwrap();
    fs::write(up.join("etc/.wh.remove-me"), "").unwrap();
    fs::write(up.join("var/cache/app/.wh..wh..opq"), "").unwrap();
    fs::write(up.join("var/cache/app/c"), "c\n").unwrap();
}

const WANT_DIFF: &str = "C /etc\nC /etc/motd\nD /etc/remove-me\nA /opt\nA /opt/tree\nA /opt/tree/new\n\
C /var\nC /var/cache\nC /var/cache/app\nD /var/cache/app/a\nD /var/cache/app/b\nA /var/cache/app/c\n";

fn unpack_with_umoci(s: &Setup, name: &str, tag: &str) -> PathBuf {
    unpack_with_umoci_at(&s.dir, &s.root, name, tag)
}

/// Saves `tag` of the store `root` as an OCI archive in `dir` and unpacks it with umoci.
fn unpack_with_umoci_at(dir: &Path, root: &Path, name: &str, tag: &str) -> PathBuf {
    let arch = dir.join(format!("{name}.tar"));
    uc_ok(
        root,
        &[
            "save",
            "--format",
            "oci-archive",
            "-o",
            arch.to_str().unwrap(),
            tag,
        ],
    );
    let x = dir.join(format!("{name}-layout"));
    fs::create_dir(&x).unwrap();
    sh_ok(
        "tar",
        &["-C", x.to_str().unwrap(), "-xf", arch.to_str().unwrap()],
    );
    let b = dir.join(format!("{name}-bundle"));
    sh_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", x.display()),
            b.to_str().unwrap(),
        ],
    );
    b.join("rootfs")
}

fn check_changed_rootfs(r: &Path) {
    assert_eq!(fs::read_to_string(r.join("etc/motd")).unwrap(), "changed\n");
    assert_eq!(
        fs::read_to_string(r.join("etc/motd.link")).unwrap(),
        "hello from the base\n"
    );
    assert_eq!(
        fs::read_to_string(r.join("opt/tree/new")).unwrap(),
        "added\n"
    );
    assert!(!r.join("etc/remove-me").exists());
    let names: Vec<_> = fs::read_dir(r.join("var/cache/app"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("c")]);
}

#[test]
fn commit_diff_export_of_an_overlay_upper() {
    let s = setup();
    let cid = "0a".repeat(32);
    let cdir = fake_container(&s.root, &cid, "web", Some(&s.base_id), &s.lowers);
    overlay_changes(&cdir.join("upper"));
    assert_eq!(uc_ok(&s.root, &["diff", "web"]), WANT_DIFF);
    assert_eq!(uc_ok(&s.root, &["diff", &cid[..8]]), WANT_DIFF); // by id prefix

    let out = uc_ok(
        &s.root,
        &[
            "commit",
            "-a",
            "Ann <a@x>",
            "-m",
            "the message",
            "-c",
            "CMD [\"/bin/cat\", \"/etc/motd\"]",
            "-c",
            "ENV GREETING=hi",
            "-c",
            "WORKDIR /opt",
            "-c",
            "USER 0:0",
            "-c",
            "EXPOSE 8080",
            "-c",
            "LABEL team=img",
            "web",
            "committed:v1",
        ],
    );
    let id = out.trim().trim_start_matches("sha256:");
    assert_eq!(image_id(&s.root, "committed:v1"), id);
    let lowers = image_lowers(&s.root, "committed:v1");
    assert_eq!(lowers.len(), 2);
    assert_eq!(
        lowers[1], s.lowers[0],
        "the base layer is shared, not copied"
    );
    // the new layer holds exactly the changes, in OCI whiteout form
    let top = &lowers[0];
    assert!(top.join("etc/.wh.remove-me").is_file());
    assert!(top.join("var/cache/app/.wh..wh..opq").is_file());
    assert!(!top.join("bin").exists());
    assert!(
        xattr::get(top.join("etc"), "trusted.overlay.origin")
            .unwrap()
            .is_none()
    );
    let v: serde_json::Value =
        serde_json::from_str(&uc_ok(&s.root, &["inspect", "committed:v1"])).unwrap();
    let cfg = &v[0]["Config"];
    assert_eq!(cfg["Cmd"], serde_json::json!(["/bin/cat", "/etc/motd"]));
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"GREETING=hi") && env.contains(&"FROM_RUN=1"),
        "{env:?}"
    );
    assert_eq!(cfg["WorkingDir"], "/opt");
    assert_eq!(cfg["User"], "0:0");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object());
    assert_eq!(cfg["Labels"]["team"], "img");
    assert_eq!(v[0]["Author"], "Ann <a@x>");
    let hist = uc_ok(&s.root, &["history", "committed:v1"]);
    let rows: Vec<&str> = hist.lines().collect();
    assert_eq!(rows.len(), 3, "{hist}");
    assert!(
        rows[1].contains("the message") && rows[1].starts_with(&id[..12]),
        "{hist}"
    );

    // a standard tool sees the changes
    let r = unpack_with_umoci(&s, "committed", "committed:v1");
    check_changed_rootfs(&r);

    // export = the flattened merged view = what umoci made of the committed image
    let exp = s.dir.join("export.tar");
    uc_ok(&s.root, &["export", "-o", exp.to_str().unwrap(), "web"]);
    let x = s.dir.join("exported");
    fs::create_dir(&x).unwrap();
    sh_ok(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "-C",
            x.to_str().unwrap(),
            "-xpf",
            exp.to_str().unwrap(),
        ],
    );
    check_changed_rootfs(&x);
    assert_same_tree(&x, &r, false);
    // import of the export gives a one-layer image with the same tree
    uc_ok(&s.root, &["import", exp.to_str().unwrap(), "flat"]);
    let flat = image_lowers(&s.root, "flat");
    assert_eq!(flat.len(), 1);
    assert_same_tree(&flat[0], &r, false);
}

#[test]
fn commit_of_an_aufs_upper_gives_the_same_tree() {
    let s = setup();
    let cdir = s.ctr("0b", "aufsy");
    aufs_changes(&cdir.join("upper"));
    assert_eq!(uc_ok(&s.root, &["diff", "aufsy"]), WANT_DIFF);
    uc_ok(&s.root, &["commit", "aufsy", "aufs:1"]);
    check_changed_rootfs(&unpack_with_umoci(&s, "aufs", "aufs:1"));
    // no -c: the container's run config is kept
    let v: serde_json::Value =
        serde_json::from_str(&uc_ok(&s.root, &["inspect", "aufs:1"])).unwrap();
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    // an image made by commit is the base of another container, and so on
    let id = image_id(&s.root, "aufs:1");
    let lowers = image_lowers(&s.root, "aufs:1");
    let c2 = fake_container(&s.root, &"0c".repeat(32), "second", Some(&id), &lowers);
    fs::create_dir_all(c2.join("upper/opt")).unwrap();
    fs::write(c2.join("upper/opt/.wh.tree"), "").unwrap();
    assert_eq!(uc_ok(&s.root, &["diff", "second"]), "C /opt\nD /opt/tree\n");
    uc_ok(&s.root, &["commit", "second", "aufs:2"]);
    let r = unpack_with_umoci(&s, "aufs2", "aufs:2");
    assert!(!r.join("opt/tree").exists());
    assert!(r.join("etc/motd").exists());
    assert_eq!(image_lowers(&s.root, "aufs:2").len(), 3);
}

#[test]
fn commit_reads_metacopy_data_from_the_lower_layer() {
    let s = setup();
    let cdir = s.ctr("0d", "meta");
    let up = cdir.join("upper");
    fs::create_dir_all(up.join("etc")).unwrap();
    // a chmod through overlayfs with metacopy=on: an empty upper file, data below
    fs::write(up.join("etc/passwd"), "").unwrap();
    xattr::set(up.join("etc/passwd"), "trusted.overlay.metacopy", b"").unwrap();
    sh_ok("chmod", &["600", up.join("etc/passwd").to_str().unwrap()]);
    uc_ok(&s.root, &["commit", "meta", "meta:1"]);
    let top = &image_lowers(&s.root, "meta:1")[0];
    assert_eq!(
        fs::read_to_string(top.join("etc/passwd")).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(top.join("etc/passwd"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

/// The state letter of a live process (T: stopped).
fn proc_state(pid: u32) -> String {
    unionctl::runner::state::proc_state(pid as i32).expect("the process is gone")
}

#[test]
fn commit_pauses_a_running_container_and_resumes_it() {
    let s = setup();
    let cid = "0e".repeat(32);
    let cdir = fake_container(&s.root, &cid, "busy", Some(&s.base_id), &s.lowers);
    // a big change: the container stays paused for a while
    let data = vec![7u8; 64 << 20];
    fs::write(cdir.join("upper/big"), &data).unwrap();
    // Reaped below through waitpid, not through the Child.
    let pid = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap()
        .id();
    let mut rec: serde_json::Value =
        serde_json::from_slice(&fs::read(cdir.join("state.json")).unwrap()).unwrap();
    rec["status"] = "running".into();
    rec["pid"] = pid.into();
    fs::write(cdir.join("state.json"), serde_json::to_vec(&rec).unwrap()).unwrap();
    // The container process is our child: waitpid reports its stop and its continue as
    // they happen. Once the commit is done it is killed, which ends the watch either way.
    let watch = std::thread::spawn(move || {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let mut events = Vec::new();
        loop {
            match waitpid(pid, Some(WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED)) {
                Ok(WaitStatus::Stopped(..)) => events.push("stopped"),
                Ok(WaitStatus::Continued(..)) => events.push("continued"),
                Ok(WaitStatus::Signaled(..)) | Ok(WaitStatus::Exited(..)) => return events,
                other => panic!("waitpid: {other:?}"),
            }
        }
    });
    uc_ok(&s.root, &["commit", "busy", "paused:1"]);
    let state = proc_state(pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let events = watch.join().unwrap();
    // The kernel reports "continued" only for a process that was stopped; "stopped" is
    // seen too unless the watch thread came to waitpid after the resume.
    assert!(
        events == ["stopped", "continued"] || events == ["continued"],
        "the container was not paused during the commit, then resumed: {events:?}"
    );
    assert_ne!(state, "T", "the container was left paused");
    assert_eq!(
        fs::metadata(image_lowers(&s.root, "paused:1")[0].join("big"))
            .unwrap()
            .len(),
        64 << 20
    );
}

#[test]
fn commit_layer_holds_the_change_not_the_image() {
    // What the commit costs beside import is measured in benches/image_bench.sh; here: the
    // new layer is the change alone.
    let tar = minbase_tar();
    let t = tmpdir();
    let root = t.path().join("store");
    uc_ok(&root, &["import", tar.to_str().unwrap(), "deb"]);
    let id = image_id(&root, "deb");
    let lowers = image_lowers(&root, "deb");
    let cdir = fake_container(&root, &"0f".repeat(32), "small", Some(&id), &lowers);
    fs::create_dir_all(cdir.join("upper/etc")).unwrap();
    fs::write(cdir.join("upper/etc/hostname"), "changed\n").unwrap();
    uc_ok(&root, &["commit", "small", "deb:small"]);
    let l = image_lowers(&root, "deb:small");
    let diff = l[0].file_name().unwrap().to_str().unwrap();
    let size = fs::metadata(root.join("blobs/sha256").join(diff))
        .unwrap()
        .len();
    assert!(
        size < 64 * 1024,
        "layer of a one-file change is {size} bytes"
    );
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(root.join("blobs/sha256").join(diff))
        .output()
        .unwrap();
    assert!(listing.status.success());
    let mut names: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["etc", "etc/hostname"],
        "the layer holds more than the change"
    );
    assert_eq!(
        fs::read_to_string(l[0].join("etc/hostname")).unwrap(),
        "changed\n"
    );
}

#[test]
fn bad_commit_requests_fail_cleanly() {
    let s = setup();
    s.ctr("1a", "c");
    let before = fs::read_dir(s.root.join("blobs/sha256")).unwrap().count();
    for (args, why) in [
        (
            vec!["commit", "-c", "FROM scratch", "c"],
            "unknown instruction",
        ),
        (vec!["commit", "-c", "WORKDIR rel", "c"], "absolute"),
        (vec!["commit", "c", "Bad:Name"], "invalid reference"),
        (vec!["commit", "nope"], "no such container"),
        (vec!["diff", "nope"], "no such container"),
        (
            vec!["export", "-o", "/dev/null", "nope"],
            "no such container",
        ),
    ] {
        let r = uc(&s.root, &args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(
            r.stderr.contains(why) && r.stderr.lines().count() == 1,
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(
        fs::read_dir(s.root.join("blobs/sha256")).unwrap().count(),
        before
    );
}

#[test]
fn commit_of_a_renamed_lower_dir_keeps_its_content() {
    let s = setup();
    let cdir = s.ctr("1b", "mover");
    let up = cdir.join("upper");
    // `mv /var/cache/app /moved; touch /moved/extra` through overlayfs (redirect_dir=on)
    fs::create_dir_all(up.join("var/cache")).unwrap();
    sh_ok(
        "mknod",
        &[up.join("var/cache/app").to_str().unwrap(), "c", "0", "0"],
    );
    fs::create_dir(up.join("moved")).unwrap();
    xattr::set(
        up.join("moved"),
        "trusted.overlay.redirect",
        b"/var/cache/app",
    )
    .unwrap();
    fs::write(up.join("moved/extra"), "extra\n").unwrap();
    uc_ok(&s.root, &["commit", "mover", "moved:1"]);
    let r = unpack_with_umoci(&s, "moved", "moved:1");
    let mut names: Vec<String> = fs::read_dir(r.join("moved"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["a", "b", "extra"]);
    assert_eq!(fs::read_to_string(r.join("moved/a")).unwrap(), "a\n");
    assert!(!r.join("var/cache/app").exists());
    // export sees the same
    let exp = s.dir.join("moved-export.tar");
    uc_ok(&s.root, &["export", "-o", exp.to_str().unwrap(), "mover"]);
    let list = sh_ok("tar", &["-tf", exp.to_str().unwrap()]);
    assert!(
        list.contains("moved/a") && list.contains("moved/extra") && !list.contains("var/cache/app"),
        "{list}"
    );
}

/// A lower file with two names, one written in the container (kernel overlayfs,
/// index=on): the mount shows the new content under both names, linked; so must the
/// committed image and the export.
#[test]
fn commit_and_export_keep_a_lower_hard_link_written_through_one_name() {
    use std::os::unix::fs::MetadataExt;
    let t = tmpdir();
    let dir = t.path().to_path_buf();
    let root = dir.join("store");
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs);
    fs::create_dir(rootfs.join("hl")).unwrap();
    fs::write(rootfs.join("hl/one"), "old\n").unwrap();
    fs::hard_link(rootfs.join("hl/one"), rootfs.join("hl/two")).unwrap();
    let tar = dir.join("hl.tar");
    tar_of(&rootfs, &tar);
    uc_ok(&root, &["import", tar.to_str().unwrap(), "hlbase"]);
    let lowers = image_lowers(&root, "hlbase");
    let id = image_id(&root, "hlbase");
    let cdir = fake_container(&root, &"7".repeat(64), "linker", Some(&id), &lowers);
    let (up, work, m) = (cdir.join("upper"), cdir.join("work"), dir.join("m"));
    for d in [&work, &m] {
        fs::create_dir_all(d).unwrap();
    }
    let lowerdir: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},index=on,redirect_dir=on",
        lowerdir.join(":"),
        up.display(),
        work.display()
    );
    sh_ok(
        "mount",
        &["-t", "overlay", "overlay", "-o", &opts, m.to_str().unwrap()],
    );
    let write = fs::OpenOptions::new()
        .append(true)
        .open(m.join("hl/one"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"new\n"));
    let seen = fs::read_to_string(m.join("hl/two"));
    sh_ok("umount", &[m.to_str().unwrap()]);
    write.unwrap();
    assert_eq!(
        seen.unwrap(),
        "old\nnew\n",
        "kernel overlayfs (index=on) shows it"
    );
    assert!(
        !up.join("hl/two").exists(),
        "the other name is still only below"
    );

    uc_ok(&root, &["commit", "linker", "linked:1"]);
    let r = unpack_with_umoci_at(&dir, &root, "linked", "linked:1");
    assert_eq!(fs::read_to_string(r.join("hl/two")).unwrap(), "old\nnew\n");
    let (a, b) = (
        fs::metadata(r.join("hl/one")).unwrap(),
        fs::metadata(r.join("hl/two")).unwrap(),
    );
    assert_eq!(
        (a.ino(), a.nlink()),
        (b.ino(), 2),
        "one and two stay one file"
    );

    let exp = dir.join("linked-export.tar");
    uc_ok(&root, &["export", "-o", exp.to_str().unwrap(), "linker"]);
    let x = dir.join("x");
    fs::create_dir(&x).unwrap();
    sh_ok(
        "tar",
        &["-C", x.to_str().unwrap(), "-xf", exp.to_str().unwrap()],
    );
    assert_eq!(fs::read_to_string(x.join("hl/two")).unwrap(), "old\nnew\n");
    assert_eq!(
        fs::metadata(x.join("hl/one")).unwrap().ino(),
        fs::metadata(x.join("hl/two")).unwrap().ino()
    );
}
