//! Shared by the runner tests: the unionctl binary, test rootfs trees (busybox-static,
//! debootstrap minbase), the non-root user (checked: scripts/install-deps.sh makes it), and
//! command helpers.
#![allow(dead_code)]
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const CACHE: &str = "/var/tmp/unionctl-cache";
#[path = "../common/archive.rs"]
pub mod archive;
#[path = "../common/events.rs"]
pub mod events;
#[path = "../common/setup.rs"]
mod setup;
pub use setup::{TEST_USER, test_user};

pub fn bin() -> PathBuf {
    std::env::var_os("UNIONCTL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_unionctl")))
}

fn find_busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox not found: run scripts/install-deps.sh (package busybox-static)");
}

/// Builds a busybox rootfs under `dir` (bin/ with one symlink per applet, /etc files).
pub fn build_busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(find_busybox(), bin.join("busybox")).unwrap();
    fs::set_permissions(bin.join("busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    let list = Command::new(bin.join("busybox"))
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = bin.join(applet);
        if !link.exists() {
            symlink("busybox", link).unwrap();
        }
    }
    for d in [
        "etc", "proc", "sys", "dev", "tmp", "root", "home/app", "usr/bin",
    ] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\ntty:x:5:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
    fs::write(dir.join("etc/motd"), "welcome\n").unwrap();
    fs::write(dir.join("notexec"), "data\n").unwrap();
}

/// A shared busybox rootfs (owned by root, built once, never changed by the tests).
pub fn busybox_rootfs() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(CACHE).join("runner-busybox");
        if !dir.join("bin/sh").exists() {
            fs::create_dir_all(CACHE).unwrap();
            let tmp =
                PathBuf::from(CACHE).join(format!("runner-busybox.tmp{}", std::process::id()));
            let _ = fs::remove_dir_all(&tmp);
            build_busybox_rootfs(&tmp);
            if fs::rename(&tmp, &dir).is_err() {
                // Another test process won the race.
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        dir
    })
    .clone()
}

/// debootstrap --variant=minbase bookworm, cached across runs.
pub fn minbase_rootfs() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(CACHE).join("bookworm-minbase");
        if !dir.join("usr/bin/dpkg").exists() {
            fs::create_dir_all(CACHE).unwrap();
            let tmp =
                PathBuf::from(CACHE).join(format!("bookworm-minbase.tmp{}", std::process::id()));
            let _ = fs::remove_dir_all(&tmp);
            let st = Command::new("debootstrap")
                .args(["--variant=minbase", "bookworm"])
                .arg(&tmp)
                .stdout(Stdio::null())
                .status()
                .expect("debootstrap (scripts/install-deps.sh installs it)");
            assert!(st.success(), "debootstrap failed");
            if fs::rename(&tmp, &dir).is_err() {
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        dir
    })
    .clone()
}

/// A store root for one test.
pub struct Store {
    pub dir: tempfile::TempDir,
}

impl Store {
    pub fn new() -> Store {
        Store {
            dir: tempfile::Builder::new()
                .prefix("unionctl-runner-")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--root").arg(self.root());
        c.stdin(Stdio::null());
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
    /// A store with the busybox rootfs imported as image `name` (`bb:1` in most tests).
    pub fn with_busybox(name: &str) -> Store {
        let s = Store::new();
        s.import_tree(&busybox_rootfs(), &["."], name);
        s
    }
    /// Imports `members` of `dir` (`.` for all) as one image, named `name` unless "".
    pub fn import_tree(&self, dir: &Path, members: &[&str], name: &str) {
        let tar = self.root().join("import.tar");
        archive::tar_dir(dir, &tar, members);
        let mut args = vec!["import", tar.to_str().unwrap()];
        args.extend((!name.is_empty()).then_some(name));
        ok(&self.run(&args));
        fs::remove_file(&tar).unwrap();
    }
    /// Container directories left under the store.
    pub fn containers(&self) -> Vec<String> {
        match fs::read_dir(self.root().join("containers")) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Err(_) => vec![],
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Kill what a failed test left running, so the temp dir can go.
        let _ = Command::new(bin())
            .arg("--root")
            .arg(self.root())
            .args(["ps", "-a", "-q"])
            .output()
            .map(|o| {
                for id in String::from_utf8_lossy(&o.stdout).lines() {
                    let _ = Command::new(bin())
                        .arg("--root")
                        .arg(self.root())
                        .args(["rm", "-f", id])
                        .output();
                }
            });
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Lines of /proc/self/mountinfo whose mount point contains `needle`.
pub fn host_mounts_with(needle: &str) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// A copy of `src` owned by the test user (rootless containers need their layers owned
/// by the user, as a rootless image store unpacks them).
pub fn user_owned_copy(src: &Path, dst: &Path) {
    let (uid, gid) = test_user();
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A store, a rootfs (a copy of a test rootfs) and the binary, all the test user's:
/// what a rootless container needs. Its containers are removed on drop.
pub struct UserStore {
    _dir: tempfile::TempDir,
    pub store: PathBuf,
    pub rootfs: PathBuf,
    pub bin: PathBuf,
}

impl UserStore {
    pub fn new(prefix: &str, rootfs: &Path) -> UserStore {
        let (uid, gid) = test_user();
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let store = dir.path().join("store");
        fs::create_dir(&store).unwrap();
        std::os::unix::fs::chown(&store, Some(uid), Some(gid)).unwrap();
        let copy = dir.path().join("rootfs");
        user_owned_copy(rootfs, &copy);
        let bin = dir.path().join("unionctl");
        fs::copy(self::bin(), &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        UserStore {
            _dir: dir,
            store,
            rootfs: copy,
            bin,
        }
    }
    pub fn run(&self, args: &[&str]) -> Output {
        as_user(&self.store, &self.bin).args(args).output().unwrap()
    }
    /// The rootfs as `--rootfs` takes it.
    pub fn rootfs(&self) -> String {
        self.rootfs.to_string_lossy().into_owned()
    }
    /// How many containers the store holds.
    pub fn containers(&self) -> usize {
        fs::read_dir(self.store.join("containers"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for UserStore {
    fn drop(&mut self) {
        let user = || as_user(&self.store, &self.bin);
        if let Ok(o) = user().args(["ps", "-a", "-q"]).output() {
            for id in stdout(&o).lines() {
                let _ = user().args(["rm", "-f", id]).output();
            }
        }
    }
}

/// `unionctl` run as the test user.
pub fn as_user(store: &Path, user_bin: &Path) -> Command {
    let (uid, gid) = test_user();
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--init-groups",
        "--",
    ])
    .arg(user_bin)
    .arg("--root")
    .arg(store)
    .env("HOME", format!("/home/{TEST_USER}"))
    .stdin(Stdio::null());
    c
}

#[allow(unused_imports)]
pub use events::wait_log;

/// Polls `f` until it holds (20 s at most: CI machines can be slow), then returns. Only for
/// conditions the kernel gives no event for (what `exec ps` shows inside a container);
/// everything else waits with `wait_log` or `events`.
#[track_caller]
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
