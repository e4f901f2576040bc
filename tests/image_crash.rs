//! Leftovers of killed commands: a `commit` or `import` killed with SIGKILL leaves its
//! temp blob (ROOT/tmp) and temp layer dir (ROOT/layers/.tmp-*); a later command sweeps
//! them, and never the temps of a command that still runs.
mod image_support;
use image_support::*;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Create events in some dirs, to wait for a file to appear without polling.
struct Watch {
    fd: OwnedFd,
}

impl Watch {
    fn new(dirs: &[&Path]) -> Watch {
        // SAFETY: plain syscalls; the fd is owned right away.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        for d in dirs {
            let c = CString::new(d.as_os_str().as_bytes()).unwrap();
            let mask = libc::IN_CREATE | libc::IN_MOVED_TO;
            let w = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
            assert!(w >= 0, "watching {}", d.display());
        }
        Watch { fd }
    }

    /// Waits until `done()` holds, checking again after each event. The 120 s limit only
    /// keeps a broken build from hanging the suite.
    fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        let mut buf = [0u8; 4096];
        while !done() {
            let mut p = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let n = unsafe { libc::poll(&mut p, 1, 120_000) };
            assert!(n > 0, "no event while waiting for {what}");
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            assert!(r > 0, "reading inotify events");
        }
    }
}

/// The temp entries (`.tmp-*`) of a dir.
fn temps(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Temps owned by process `pid` (their names start with `.tmp-<pid>.`).
fn temps_of(dir: &Path, pid: u32) -> Vec<PathBuf> {
    let prefix = format!(".tmp-{pid}.");
    temps(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect()
}

fn spawn(root: &Path, args: &[&str], stdin: Stdio) -> Child {
    Command::new(bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::null())
        .spawn()
        .expect("starting unionctl")
}

fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    let st = child.wait().unwrap();
    assert!(
        st.code().is_none(),
        "the command ended before it was killed"
    );
}

/// The store still works: its images list, a container commits, nothing temp is left.
fn check_store_works(root: &Path, base: &str) {
    let images = uc_ok(root, &["images"]);
    assert!(images.contains(base), "{images}");
    let ctr = fake_container(
        root,
        &"c".repeat(64),
        "after",
        Some(&image_id(root, base)),
        &image_lowers(root, base),
    );
    fs::write(ctr.join("upper/small"), "small\n").unwrap();
    uc_ok(root, &["commit", "after", "after:1"]);
    let lowers = image_lowers(root, "after:1");
    assert_eq!(fs::read(lowers[0].join("small")).unwrap(), b"small\n");
    assert_eq!(temps(&root.join("tmp")), Vec::<PathBuf>::new());
    assert_eq!(temps(&root.join("layers")), Vec::<PathBuf>::new());
}

#[test]
fn a_killed_commit_leaves_a_temp_blob_that_the_next_command_sweeps() {
    let t = tmpdir();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "base");
    let ctr = fake_container(
        &root,
        &"a".repeat(64),
        "big",
        Some(&image_id(&root, "base")),
        &image_lowers(&root, "base"),
    );
    // 800 MB (sparse: cheap to make, but all of it goes through the blob).
    let big = fs::File::create(ctr.join("upper/big")).unwrap();
    big.set_len(800 << 20).unwrap();
    let tmp = root.join("tmp");
    let watch = Watch::new(&[&tmp]);
    let mut commit = spawn(&root, &["commit", "big", "big:1"], Stdio::null());
    let pid = commit.id();
    watch.wait_until("the commit's temp blob", || !temps_of(&tmp, pid).is_empty());
    kill9(&mut commit);
    let left = temps_of(&tmp, pid);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].is_file());

    uc_ok(&root, &["images"]);
    assert!(
        !left[0].exists(),
        "the killed commit's temp blob was not swept"
    );
    assert!(!uc_ok(&root, &["images"]).contains("big"));
    check_store_works(&root, "base");
}

/// Starts `import - name` reading from a pipe and writes the first half of `tar` into
/// it; returns once the import's temp blob and temp layer dir exist.
fn half_import(root: &Path, tar: &[u8], name: &str) -> (Child, std::process::ChildStdin) {
    let watch = Watch::new(&[&root.join("tmp"), &root.join("layers")]);
    let mut import = spawn(root, &["import", "-", name], Stdio::piped());
    let mut input = import.stdin.take().unwrap();
    input.write_all(&tar[..tar.len() / 2]).unwrap();
    let pid = import.id();
    watch.wait_until("the import's temps", || {
        temps_of(&root.join("tmp"), pid).len() == 1
            && temps_of(&root.join("layers"), pid).len() == 1
    });
    (import, input)
}

#[test]
fn a_killed_import_leaves_a_temp_layer_dir_that_the_next_command_sweeps() {
    let t = tmpdir();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "base");
    let tar = fs::read(t.path().join("rootfs.tar")).unwrap();
    let (mut import, input) = half_import(&root, &tar, "half");
    let pid = import.id();
    kill9(&mut import);
    drop(input);
    let left: Vec<PathBuf> = [
        temps_of(&root.join("tmp"), pid),
        temps_of(&root.join("layers"), pid),
    ]
    .concat();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[1].is_dir());

    uc_ok(&root, &["images"]);
    for p in &left {
        assert!(!p.exists(), "{} was not swept", p.display());
    }
    check_store_works(&root, "base");
}

#[test]
fn temps_of_a_running_command_are_not_swept() {
    let t = tmpdir();
    let root = t.path().join("store");
    import_busybox(t.path(), &root, "base");
    let tar = fs::read(t.path().join("rootfs.tar")).unwrap();
    let (mut import, mut input) = half_import(&root, &tar, "slow");
    let pid = import.id();
    let live: Vec<PathBuf> = [
        temps_of(&root.join("tmp"), pid),
        temps_of(&root.join("layers"), pid),
    ]
    .concat();

    // Other commands run meanwhile, reading and writing the store.
    uc_ok(&root, &["images"]);
    uc_ok(
        &root,
        &[
            "import",
            t.path().join("rootfs.tar").to_str().unwrap(),
            "other",
        ],
    );
    for p in &live {
        assert!(p.exists(), "{} of a running import was swept", p.display());
    }

    input.write_all(&tar[tar.len() / 2..]).unwrap();
    drop(input);
    assert!(import.wait().unwrap().success());
    let lowers = image_lowers(&root, "slow");
    assert!(lowers[0].join("bin/busybox").is_file());
    for p in &live {
        assert!(!p.exists(), "{} is left after the import", p.display());
    }
    check_store_works(&root, "slow");
}
