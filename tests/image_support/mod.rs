//! Helpers shared by the image tests: the binary, temp stores, test rootfs trees,
//! peers (skopeo, umoci, podman) and tree comparison.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const CACHE: &str = "/var/tmp/unionctl-cache";

pub fn bin() -> PathBuf {
    match std::env::var_os("UNIONCTL_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_unionctl")),
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

fn to_run(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs unionctl with --root; stdin is /dev/null.
pub fn uc(root: &Path, args: &[&str]) -> Run {
    let o = Command::new(bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running unionctl");
    to_run(o)
}

/// Runs unionctl and asserts success; returns stdout.
pub fn uc_ok(root: &Path, args: &[&str]) -> String {
    let r = uc(root, args);
    assert_eq!(
        r.code, 0,
        "unionctl {args:?} failed: {}{}",
        r.stdout, r.stderr
    );
    r.stdout
}

/// Runs a peer tool and asserts success.
pub fn sh_ok(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let r = to_run(o);
    assert_eq!(r.code, 0, "{cmd} {args:?} failed: {}{}", r.stdout, r.stderr);
    r.stdout
}

pub fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("unionctl-image-test-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// A small busybox rootfs with a hard link, a symlink, an xattr, a dir to delete.
pub fn busybox_rootfs(dir: &Path) {
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let bb = bb.expect("busybox-static missing: run scripts/install-deps.sh");
    for d in ["bin", "etc", "tmp", "var/cache/app", "root"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::copy(bb, dir.join("bin/busybox")).unwrap();
    for c in [
        "sh", "ls", "cat", "echo", "rm", "mkdir", "touch", "true", "test", "find", "stat", "id",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(c)).unwrap();
    }
    fs::write(dir.join("etc/motd"), "hello from the base\n").unwrap();
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
    fs::hard_link(dir.join("etc/motd"), dir.join("etc/motd.link")).unwrap();
    fs::write(dir.join("var/cache/app/a"), "a\n").unwrap();
    fs::write(dir.join("var/cache/app/b"), "b\n").unwrap();
    fs::write(dir.join("etc/remove-me"), "bye\n").unwrap();
    xattr::set(dir.join("etc/motd"), "user.origin", b"base").unwrap();
    // file capabilities (cap_net_raw+ep, v2), as `setcap` writes them
    let cap = [
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    xattr::set(dir.join("bin/busybox"), "security.capability", &cap).unwrap();
}

/// Makes `busybox_rootfs` in DIR/rootfs and imports its tar (DIR/rootfs.tar) into the
/// store `root` as `name`; returns the rootfs.
pub fn import_busybox(dir: &Path, root: &Path, name: &str) -> PathBuf {
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs);
    let tar = dir.join("rootfs.tar");
    tar_of(&rootfs, &tar);
    uc_ok(root, &["import", tar.to_str().unwrap(), name]);
    rootfs
}

/// A tar of a dir, made by GNU tar with xattrs and numeric owners.
pub fn tar_of(dir: &Path, out: &Path) {
    sh_ok(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-C",
            dir.to_str().unwrap(),
            "-cf",
            out.to_str().unwrap(),
            ".",
        ],
    );
}

/// The debootstrap minbase rootfs, built once into the cache (under a lock).
pub fn minbase() -> PathBuf {
    let dir = PathBuf::from(CACHE).join("bookworm-minbase");
    if dir.join("usr/bin/apt-get").exists() {
        return dir;
    }
    fs::create_dir_all(CACHE).unwrap();
    let script = format!(
        "cd {CACHE} && test -e bookworm-minbase/usr/bin/apt-get || {{ rm -rf minbase.build && \
         debootstrap --variant=minbase bookworm minbase.build http://deb.debian.org/debian >/dev/null && \
         rm -rf bookworm-minbase && mv minbase.build bookworm-minbase; }}"
    );
    sh_ok(
        "flock",
        &[&format!("{CACHE}/.minbase.lock"), "sh", "-c", &script],
    );
    dir
}

/// A cached tar of the minbase rootfs.
pub fn minbase_tar() -> PathBuf {
    let dir = minbase();
    let tar = PathBuf::from(CACHE).join("bookworm-minbase.tar");
    if !tar.exists() {
        let script = format!(
            "test -e {t} || {{ tar --xattrs --xattrs-include='*' --numeric-owner -C {d} -cf {t}.tmp . && mv {t}.tmp {t}; }}",
            t = tar.display(),
            d = dir.display()
        );
        sh_ok(
            "flock",
            &[&format!("{CACHE}/.minbase.lock"), "sh", "-c", &script],
        );
    }
    tar
}

/// podman with a private store under `dir`.
pub fn podman(dir: &Path, args: &[&str]) -> String {
    let root = dir.join("podman-root");
    let runroot = podman_runroot(dir);
    let mut all = vec![
        "--root",
        root.to_str().unwrap(),
        "--runroot",
        runroot.to_str().unwrap(),
        "--storage-driver",
        "vfs",
    ];
    all.extend_from_slice(args);
    sh_ok("podman", &all)
}

/// podman refuses a runroot longer than 50 characters: a short one per store dir.
fn podman_runroot(dir: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    PathBuf::from(format!("/tmp/ucp-{:x}", h.finish()))
}

/// Removes podman's run dir for a store dir (podman leaves it behind).
pub fn podman_cleanup(dir: &Path) {
    let _ = fs::remove_dir_all(podman_runroot(dir));
}

/// One line per object: path, type, mode, owner, size, link target, content hash,
/// xattrs and hard-link group; times optional.
pub fn tree_listing(dir: &Path, with_times: bool) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name().min_depth(1) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let m = fs::symlink_metadata(e.path()).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "d".to_string()
        } else if ft.is_symlink() {
            format!("l->{}", fs::read_link(e.path()).unwrap().display())
        } else if ft.is_file() {
            let data = fs::read(e.path()).unwrap();
            format!("f:{}:{}", data.len(), hex::encode(Sha256::digest(&data)))
        } else if ft.is_char_device() || ft.is_block_device() {
            format!("dev:{}", m.rdev())
        } else {
            "other".into()
        };
        let mut xs: Vec<String> = Vec::new();
        if !ft.is_symlink() {
            for n in xattr::list(e.path()).unwrap() {
                let v = xattr::get(e.path(), &n).unwrap().unwrap_or_default();
                xs.push(format!("{}={}", n.to_string_lossy(), hex::encode(v)));
            }
        }
        xs.sort();
        let mut link = String::new();
        if !ft.is_dir() && m.nlink() > 1 {
            let first = inodes
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| rel.clone());
            link = format!(" link={first}");
        }
        let times = if with_times && !ft.is_dir() {
            format!(" mtime={}", m.mtime())
        } else {
            String::new()
        };
        out.insert(
            rel,
            format!(
                "{kind} mode={:o} uid={} gid={} x=[{}]{link}{times}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                xs.join(",")
            ),
        );
    }
    out
}

/// Asserts two trees are the same and names the first difference.
pub fn assert_same_tree(a: &Path, b: &Path, with_times: bool) {
    let la = tree_listing(a, with_times);
    let lb = tree_listing(b, with_times);
    for (k, v) in &la {
        match lb.get(k) {
            None => panic!("{k} is in {} but not in {}", a.display(), b.display()),
            Some(w) if w != v => panic!(
                "{k} differs:\n  {}: {v}\n  {}: {w}",
                a.display(),
                b.display()
            ),
            _ => {}
        }
    }
    for k in lb.keys() {
        assert!(
            la.contains_key(k),
            "{k} is in {} but not in {}",
            b.display(),
            a.display()
        );
    }
}

/// The image id (hex) of a reference.
pub fn image_id(root: &Path, reference: &str) -> String {
    let out = uc_ok(root, &["inspect", reference]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["Id"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

/// A container record as the runner writes it, with an empty upper dir.
pub fn fake_container(
    root: &Path,
    id: &str,
    name: &str,
    image: Option<&str>,
    lowers: &[PathBuf],
) -> PathBuf {
    let dir = root.join("containers").join(id);
    fs::create_dir_all(dir.join("upper")).unwrap();
    let rec = serde_json::json!({
        "id": id, "name": name, "image": image, "rootfs": null,
        "lowers": lowers, "created": "2026-01-01T00:00:00Z", "status": "exited",
        "pid": null, "exit_code": 0, "config": {"cmd": ["/bin/sh"], "env": ["FROM_RUN=1"]},
        "some_future_field": {"x": 1}
    });
    fs::write(
        dir.join("state.json"),
        serde_json::to_vec_pretty(&rec).unwrap(),
    )
    .unwrap();
    dir
}

/// The lowers of an image as `run` gets them (via `inspect`: `LowerDir`, top first,
/// ':'-separated as overlayfs takes them).
pub fn image_lowers(root: &Path, reference: &str) -> Vec<PathBuf> {
    let out = uc_ok(
        root,
        &["inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", reference],
    );
    out.trim().split(':').map(PathBuf::from).collect()
}

#[path = "../common/events.rs"]
pub mod events;
#[path = "../common/setup.rs"]
mod setup;
pub use setup::TEST_USER;

/// A store root owned by TEST_USER under `dir` (made traversable for that user).
pub fn user_store(dir: &Path) -> PathBuf {
    setup::test_user();
    sh_ok("chmod", &["755", dir.to_str().unwrap()]);
    let root = dir.join("user-store");
    fs::create_dir_all(&root).unwrap();
    sh_ok(
        "chown",
        &[&format!("{TEST_USER}:{TEST_USER}"), root.to_str().unwrap()],
    );
    root
}

/// Runs unionctl --root ROOT as TEST_USER (no privileges, clean environment).
pub fn uc_as_user(root: &Path, args: &[&str]) -> Run {
    let o = Command::new("setpriv")
        .args([
            "--reuid",
            TEST_USER,
            "--regid",
            TEST_USER,
            "--init-groups",
            "--reset-env",
        ])
        .arg(bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .env("HOME", format!("/home/{TEST_USER}"))
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv");
    to_run(o)
}

/// As `uc_as_user`, asserting success; returns stdout.
pub fn uc_as_user_ok(root: &Path, args: &[&str]) -> String {
    let r = uc_as_user(root, args);
    assert_eq!(
        r.code, 0,
        "unionctl {args:?} as {TEST_USER} failed: {}{}",
        r.stdout, r.stderr
    );
    r.stdout
}

/// A two-layer image `two:layers` in store ROOT: a busybox base, then a committed layer
/// that changes, adds, deletes (an overlay whiteout) and replaces a dir (opaque).
pub fn two_layer_image(dir: &Path, root: &Path) -> PathBuf {
    let rootfs = import_busybox(dir, root, "base");
    let id = image_id(root, "base");
    let lowers = image_lowers(root, "base");
    let cdir = fake_container(root, &"c1".repeat(32), "builder", Some(&id), &lowers);
    let up = cdir.join("upper");
    fs::create_dir_all(up.join("etc")).unwrap();
    fs::create_dir_all(up.join("var/cache/app")).unwrap();
    fs::create_dir_all(up.join("opt")).unwrap();
    fs::write(up.join("etc/motd"), "changed\n").unwrap();
    fs::write(up.join("opt/new"), "added\n").unwrap();
    // overlay whiteout as root (char 0/0), opaque dir by xattr
    sh_ok(
        "mknod",
        &[up.join("etc/remove-me").to_str().unwrap(), "c", "0", "0"],
    );
    xattr::set(up.join("var/cache/app"), "trusted.overlay.opaque", b"y").unwrap();
    fs::write(up.join("var/cache/app/c"), "c\n").unwrap();
    uc_ok(
        root,
        &[
            "commit",
            "-m",
            "two",
            "-c",
            "CMD [\"/bin/cat\",\"/etc/motd\"]",
            "builder",
            "two:layers",
        ],
    );
    rootfs
}

/// What `two:layers` looks like once its layers are applied.
pub fn check_two_layer_rootfs(r: &Path) {
    assert_eq!(fs::read_to_string(r.join("etc/motd")).unwrap(), "changed\n");
    assert_eq!(fs::read_to_string(r.join("opt/new")).unwrap(), "added\n");
    assert!(!r.join("etc/remove-me").exists(), "whiteout not applied");
    let cache: Vec<_> = fs::read_dir(r.join("var/cache/app"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        cache,
        vec![std::ffi::OsString::from("c")],
        "opaque dir not applied"
    );
    assert!(r.join("bin/busybox").is_file());
    assert!(fs::read_link(r.join("bin/sh")).is_ok());
}
