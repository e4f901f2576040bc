//! unionctl as a drop-in for fuse-overlayfs (`unionctl-overlay`, a symlink to unionctl, or
//! the small binary podman and buildah are run with here, as install.sh installs it):
//! fuse-overlayfs' command line as containers-storage and mount.fuse3 run it, its options
//! beside fuse-overlayfs and the kernel's beside kernel overlayfs on the same layers,
//! `volatile`, `auto_unmount`, the kernel's refusals of lower layers, and podman and
//! buildah using it as their `mount_program`.
mod common;

use common::Scratch;
use common::mounts::{
    CmdOutput, assert_ran, is_mount_point, mount_at, run_with_timeout, unionctl_daemons,
};
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The program name containers-storage and mount.fuse3 are pointed at.
const OVERLAY: &str = "unionctl-overlay";

/// Layers (two lowers, an upper, a work dir, a mount point) and a directory holding a
/// copy of unionctl with the `unionctl-overlay` symlink to it (a copy: the build tree may
/// be out of the test user's reach).
struct DropIn {
    s: Scratch,
    bin_dir: PathBuf,
    lower: PathBuf,
    lower2: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    merged: PathBuf,
}

fn setup(name: &str) -> DropIn {
    setup_with(name, false)
}

/// SMALL: `unionctl-overlay` is the small binary (the drop-in alone) that install.sh
/// installs, instead of a symlink to unionctl: the build of `scripts/build-dropin.sh`
/// when `$UNIONCTL_OVERLAY_BIN` names it (test.sh does), else
/// cargo's.
fn setup_with(name: &str, small: bool) -> DropIn {
    assert!(common::is_root(), "the drop-in tests mount: run as root");
    common::mounts::ensure_fusectl();
    let s = Scratch::new(name);
    let bin_dir = s.mkdir("bin");
    std::fs::copy(common::unionctl_bin(), bin_dir.join("unionctl")).expect("copy unionctl");
    if small {
        let b = std::env::var_os("UNIONCTL_OVERLAY_BIN").map_or_else(
            || env!("CARGO_BIN_EXE_unionctl-overlay").into(),
            PathBuf::from,
        );
        std::fs::copy(&b, bin_dir.join(OVERLAY)).expect("copy unionctl-overlay");
    } else {
        std::os::unix::fs::symlink("unionctl", bin_dir.join(OVERLAY)).unwrap();
    }
    let lower = s.mkdir("lower");
    let lower2 = s.mkdir("lower2");
    std::fs::write(lower.join("top"), b"from the top lower\n").unwrap();
    std::fs::write(lower2.join("top"), b"hidden\n").unwrap();
    std::fs::write(lower2.join("bottom"), b"from the bottom lower\n").unwrap();
    std::fs::create_dir(lower2.join("dir")).unwrap();
    std::fs::write(lower2.join("dir/f"), b"f\n").unwrap();
    DropIn {
        bin_dir,
        upper: s.mkdir("upper"),
        work: s.mkdir("work"),
        merged: s.mkdir("merged"),
        lower,
        lower2,
        s,
    }
}

impl DropIn {
    fn overlay_bin(&self) -> PathBuf {
        self.bin_dir.join(OVERLAY)
    }

    /// containers-storage's LABEL for these layers.
    fn label(&self) -> String {
        format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            self.lower.display(),
            self.lower2.display(),
            self.upper.display(),
            self.work.display()
        )
    }

    /// `unionctl-overlay ARGS...`
    fn overlay(&self, args: &[&OsStr]) -> CmdOutput {
        let mut cmd = Command::new(self.overlay_bin());
        cmd.args(args);
        run_with_timeout(cmd, 60)
    }

    /// `unionctl-overlay -o LABEL[,EXTRA] MERGED`, as containers-storage runs it.
    fn mount(&self, extra: &str) -> CmdOutput {
        let mut o = self.label();
        if !extra.is_empty() {
            o = format!("{o},{extra}");
        }
        self.overlay(&["-o".as_ref(), o.as_ref(), self.merged.as_os_str()])
    }

    /// The daemons serving MERGED (not an auto_unmount watcher).
    fn daemons(&self) -> Vec<i32> {
        unionctl_daemons(&self.merged)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() != "unionctl-unmnt")
            })
            .collect()
    }

    /// Unmounts MERGED with umount(2), as containers-storage does, and waits for the
    /// daemon to end.
    fn umount(&self) {
        let pids = unionctl_daemons(&self.merged);
        nix::mount::umount(&self.merged).expect("umount");
        common::events::wait_all_exit(&pids, "the daemon of an unmounted union");
    }
}

/// Whether PROG is installed (the tests of a peer tool skip only when it is absent).
fn have(prog: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        common::report(&format!(
            "SKIP: {prog} is not installed (scripts/install-deps.sh installs it)"
        ));
    }
    found
}

#[test]
fn containers_storage_command_line_serves_the_union() {
    containers_storage_command_line(setup("dropin-cs"));
}

/// The small binary is the same drop-in: same command line, same union, same help.
#[test]
fn the_small_binary_is_the_same_drop_in() {
    let small = setup_with("dropin-small", true);
    let link = setup("dropin-small-link");
    for args in [["--help"], ["--version"]] {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let (a, b) = (small.overlay(&args), link.overlay(&args));
        assert_ran(&a, "small unionctl-overlay");
        assert_eq!(a.stdout, b.stdout, "{args:?}");
    }
    let out = small.overlay(&[
        "-o".as_ref(),
        "lowerdir=/nonexistent".as_ref(),
        small.merged.as_os_str(),
    ]);
    assert!(
        !out.status.success() && out.stderr.starts_with("unionctl-overlay: "),
        "{}",
        out.stderr
    );
    containers_storage_command_line(small);
}

fn containers_storage_command_line(t: DropIn) {
    assert_ran(&t.mount(""), "unionctl-overlay -o LABEL MERGED");
    let m = mount_at(&t.merged).expect("not mounted");
    assert_eq!(m.fs_type, "fuse.unionctl-overlay", "{m:?}");
    assert_eq!(
        std::fs::read(t.merged.join("top")).unwrap(),
        b"from the top lower\n"
    );
    assert_eq!(std::fs::read(t.merged.join("dir/f")).unwrap(), b"f\n");
    std::fs::write(t.merged.join("dir/new"), b"written").unwrap();
    assert!(!t.daemons().is_empty(), "no daemon serves the union");
    t.umount();
    assert!(!is_mount_point(&t.merged));
    assert_eq!(std::fs::read(t.upper.join("dir/new")).unwrap(), b"written");
    // The work dir is the kernel's: private.
    let mode = std::fs::metadata(t.work.join("work")).unwrap().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "work/ is open to others: {mode:o}");
}

/// `-f` stays in the foreground until SIGTERM, which unmounts, as fuse-overlayfs does.
#[test]
fn foreground_until_sigterm() {
    let t = setup("dropin-foreground");
    let mut child = Command::new(t.overlay_bin())
        .arg("-f")
        .arg("-o")
        .arg(t.label())
        .arg(&t.merged)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    common::events::wait_on_mounts("the foreground mount", || is_mount_point(&t.merged));
    assert_eq!(std::fs::read(t.merged.join("dir/f")).unwrap(), b"f\n");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM).unwrap();
    common::events::wait_exit(pid, "unionctl-overlay -f after SIGTERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "unionctl-overlay -f ended with {status}");
    assert!(!is_mount_point(&t.merged), "SIGTERM left the mount");
}

#[test]
fn mount_fuse3_command_line_serves_the_union() {
    if !have("mount.fuse3") {
        return;
    }
    let t = setup("dropin-mountfuse");
    // What `mount -t fuse.unionctl-overlay SOURCE MERGED -o OPTS` runs (mount(8) looks
    // the program up in its own PATH; here it is ours).
    let mut cmd = Command::new("mount.fuse3");
    cmd.arg("overlay")
        .arg(&t.merged)
        .args(["-t", OVERLAY, "-o"])
        .arg(format!("{},noatime", t.label()))
        .env(
            "PATH",
            format!(
                "{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                t.bin_dir.display()
            ),
        );
    assert_ran(&run_with_timeout(cmd, 60), "mount.fuse3");
    let m = mount_at(&t.merged).expect("not mounted");
    assert_eq!(m.fs_type, "fuse.unionctl-overlay", "{m:?}");
    assert_eq!(
        std::fs::read(t.merged.join("bottom")).unwrap(),
        b"from the bottom lower\n"
    );
    t.umount();
}

#[test]
fn unionctl_mount_takes_the_layers_from_o() {
    let t = setup("dropin-mount-o");
    let mount = |args: &[&OsStr]| {
        let mut cmd = Command::new(t.bin_dir.join("unionctl"));
        cmd.arg("mount").args(args);
        run_with_timeout(cmd, 60)
    };
    let label = t.label();
    assert_ran(
        &mount(&["-o".as_ref(), label.as_ref(), t.merged.as_os_str()]),
        "unionctl mount -o lowerdir=...",
    );
    assert_eq!(
        std::fs::read(t.merged.join("top")).unwrap(),
        b"from the top lower\n"
    );
    t.umount();
    let out = mount(&[
        "--lower".as_ref(),
        t.lower.as_os_str(),
        "-o".as_ref(),
        label.as_ref(),
        t.merged.as_os_str(),
    ]);
    assert!(!out.status.success(), "lowers given twice were accepted");
    assert!(
        out.stderr.contains("--lower") && out.stderr.contains("lowerdir="),
        "{}",
        out.stderr
    );
    assert!(!is_mount_point(&t.merged));
}

#[test]
fn help_version_and_argument_errors() {
    let t = setup("dropin-help");
    let out = t.overlay(&["--help".as_ref()]);
    assert_ran(&out, "--help");
    assert!(
        out.stdout.starts_with("usage: unionctl-overlay"),
        "{}",
        out.stdout
    );
    let out = t.overlay(&["-V".as_ref()]);
    assert_ran(&out, "-V");
    assert!(
        out.stdout.starts_with("unionctl-overlay: version "),
        "{}",
        out.stdout
    );
    for (args, needle) in [
        (vec!["-o"], "-o"),
        (vec!["-x", "/mnt"], "-x"),
        (vec!["-o", "lowerdir=/a"], "mountpoint"),
    ] {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let out = t.overlay(&args);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(
            out.stderr.starts_with("unionctl-overlay: ") && out.stderr.contains(needle),
            "{args:?}: {}",
            out.stderr
        );
    }
}

/// Every option that cannot be honoured is an error naming it; nothing is mounted or
/// made.
#[test]
fn options_it_cannot_honour_are_errors() {
    let t = setup("dropin-refused");
    let work = t.s.path().join("fresh-work");
    for opt in [
        "bogus",
        "redirect_dir=nofollow",
        "index=off",
        "plugins=/usr/lib/fuse-overlayfs/x.so",
        "xattr_permissions=3",
        "ino32_t",
        "fsync=maybe",
        "timeout=-1",
        "uuid=off",
        "nfs_export=on",
    ] {
        let o = format!(
            "lowerdir={},upperdir={},workdir={},{opt}",
            t.lower.display(),
            t.upper.display(),
            work.display()
        );
        let out = t.overlay(&["-o".as_ref(), o.as_ref(), t.merged.as_os_str()]);
        assert!(!out.status.success(), "-o {opt} accepted");
        let err = out.stderr.trim();
        assert_eq!(err.lines().count(), 1, "-o {opt}: {err}");
        assert!(
            err.contains(opt),
            "-o {opt}: the error does not name it: {err}"
        );
        assert!(!is_mount_point(&t.merged), "-o {opt} mounted");
        assert!(!work.exists(), "-o {opt} left a work dir");
    }
}

/// The options of fuse-overlayfs that show in the tree behave as fuse-overlayfs' do on
/// the same layers: `static_nlink`, `noxattrs=1`.
#[test]
fn static_nlink_and_noxattrs_as_fuse_overlayfs() {
    if !have("fuse-overlayfs") {
        return;
    }
    let t = setup("dropin-fo-opts");
    xattr::set(t.lower2.join("dir"), "user.note", b"v").unwrap();
    let fo_merged = t.s.mkdir("fo-merged");
    let fo_upper = t.s.mkdir("fo-upper");
    let fo_work = t.s.mkdir("fo-work");
    let opts = "static_nlink,noxattrs=1";
    let mut fo = Command::new("fuse-overlayfs");
    fo.arg("-o")
        .arg(format!(
            "lowerdir={}:{},upperdir={},workdir={},{opts}",
            t.lower.display(),
            t.lower2.display(),
            fo_upper.display(),
            fo_work.display()
        ))
        .arg(&fo_merged);
    assert_ran(&run_with_timeout(fo, 60), "fuse-overlayfs");
    assert_ran(&t.mount(opts), "unionctl-overlay");
    let seen = |m: &Path| {
        let nlink = std::fs::metadata(m.join("dir")).unwrap().nlink();
        let get = xattr::get(m.join("dir"), "user.note").map_err(|e| e.raw_os_error());
        let set = xattr::set(m.join("top"), "user.new", b"x").map_err(|e| e.raw_os_error());
        let list = xattr::list(m.join("dir"))
            .map(|l| l.count())
            .map_err(|e| e.raw_os_error());
        format!("nlink {nlink} get {get:?} set {set:?} list {list:?}")
    };
    let ours = seen(&t.merged);
    let theirs = seen(&fo_merged);
    nix::mount::umount(&fo_merged).unwrap();
    t.umount();
    assert_eq!(
        ours, theirs,
        "unionctl-overlay vs fuse-overlayfs with -o {opts}"
    );
    assert!(ours.starts_with("nlink 1 "), "{ours}");
}

/// An upper dir fuse-overlayfs wrote (with its `.wh.` whiteouts, as it writes them where
/// it cannot make a device, and the `.wh..wh..opq` it puts in every opaque dir) reads
/// through the drop-in, called by fuse-overlayfs' own name, as through fuse-overlayfs:
/// the same tree, its markers and private xattrs hidden, a new `.wh.` file refused alike
/// (EINVAL; fuse-overlayfs lets a rename or mkdir make such a name, which it then reads
/// as a marker, hiding what it names: the drop-in refuses those too).
#[test]
fn an_upper_fuse_overlayfs_wrote_reads_the_same_through_the_drop_in() {
    if !have("fuse-overlayfs") {
        return;
    }
    let t = setup("dropin-fo-upper");
    std::os::unix::fs::symlink("unionctl", t.bin_dir.join("fuse-overlayfs")).unwrap();
    for d in ["gone", "opaque", "kept"] {
        std::fs::create_dir(t.lower.join(d)).unwrap();
        for f in ["a", "b"] {
            std::fs::write(t.lower.join(d).join(f), f).unwrap();
        }
    }
    // fuse-overlayfs in the foreground, so that its end is waited for after its unmount:
    // the next mount of these layers does not overlap it.
    let peer = || {
        let child = Command::new("fuse-overlayfs")
            .env("FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT", "1")
            .args(["-f", "-o", &t.label()])
            .arg(&t.merged)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("fuse-overlayfs");
        common::events::wait_on_mounts("fuse-overlayfs to mount", || is_mount_point(&t.merged));
        child
    };
    let unmount_peer = |mut child: std::process::Child| {
        nix::mount::umount(&t.merged).expect("umount fuse-overlayfs");
        let st = child.wait().unwrap();
        assert!(st.success(), "fuse-overlayfs: {st}");
    };
    // What a user sees: the tree (merged dirs' link counts too: 2 and one per subdir, as
    // fuse-overlayfs counts them, where the kernel shows 1), and what a new `.wh.` file
    // gets.
    let errno = |r: std::io::Result<()>| r.map_err(|e| e.raw_os_error());
    let seen = |m: &Path| {
        let tree = common::tree::snapshot(m).unwrap();
        (tree, errno(std::fs::write(m.join(".wh.new"), b"")))
    };
    let child = peer();
    let m = &t.merged;
    std::fs::remove_dir_all(m.join("gone")).unwrap();
    std::fs::remove_file(m.join("kept/a")).unwrap();
    std::fs::remove_file(m.join("bottom")).unwrap();
    std::fs::remove_dir_all(m.join("opaque")).unwrap();
    std::fs::create_dir(m.join("opaque")).unwrap();
    std::fs::write(m.join("opaque/new"), b"new").unwrap();
    std::fs::write(m.join("top"), b"copied up\n").unwrap();
    std::fs::create_dir(m.join("kept/sub")).unwrap();
    unmount_peer(child);
    // Read by a new mount: a mount's own link counts drift as dirs come and go.
    let child = peer();
    let (peer, peer_refused) = seen(m);
    unmount_peer(child);
    let names: Vec<String> = walkdir::WalkDir::new(&t.upper)
        .into_iter()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == ".wh.bottom") && names.iter().any(|n| n == ".wh..wh..opq"),
        "fuse-overlayfs wrote no `.wh.` markers: {names:?}"
    );
    let mut ours = Command::new(t.bin_dir.join("fuse-overlayfs"));
    ours.arg("-o").arg(t.label()).arg(m);
    assert_ran(&run_with_timeout(ours, 60), "unionctl as fuse-overlayfs");
    let m_type = mount_at(m).map(|i| i.fs_type);
    let (ours, ours_refused) = seen(m);
    let more_refused = [
        errno(std::fs::rename(m.join("top"), m.join("kept/.wh.top"))),
        errno(std::fs::create_dir(m.join(".wh.dir"))),
        errno(std::fs::hard_link(m.join("top"), m.join(".wh.link"))),
    ];
    let private: Vec<String> = walkdir::WalkDir::new(m)
        .into_iter()
        .flat_map(|e| xattr::list(e.unwrap().path()).unwrap())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.starts_with("user.fuseoverlayfs."))
        .collect();
    t.umount();
    assert_eq!(m_type.as_deref(), Some("fuse.fuse-overlayfs"));
    let diff = common::tree::diff("unionctl", &ours, "fuse-overlayfs", &peer, 20);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    assert_eq!(ours["kept"].nlink, 3, "kept/ and its subdir");
    assert_eq!(ours_refused, peer_refused, "a new `.wh.` file");
    assert_eq!(peer_refused, Err(Some(libc::EINVAL)));
    assert_eq!(
        more_refused,
        [Err(Some(libc::EINVAL)); 3],
        "rename, mkdir, link"
    );
    assert!(
        private.is_empty(),
        "fuse-overlayfs' own xattrs shown: {private:?}"
    );
}

/// A merged dir's link count (2 and one per subdir, as fuse-overlayfs counts) follows
/// mkdir, rmdir, rename and file changes in it: the live mount shows what a new mount
/// counts, and the right number.
#[test]
fn merged_dir_link_counts_follow_changes() {
    let t = setup("dropin-nlink");
    for d in ["a", "b"] {
        std::fs::create_dir_all(t.lower.join("p").join(d)).unwrap();
    }
    std::fs::create_dir_all(t.lower2.join("p/c")).unwrap();
    assert_ran(&t.mount(""), "unionctl-overlay");
    let m = &t.merged;
    let links = |p: &str| std::fs::metadata(m.join(p)).unwrap().nlink();
    let mut seen = vec![links("p")];
    std::fs::create_dir(m.join("p/new")).unwrap();
    seen.push(links("p"));
    std::fs::write(m.join("p/file"), b"x").unwrap();
    std::fs::remove_file(m.join("p/file")).unwrap();
    seen.push(links("p"));
    std::fs::remove_dir(m.join("p/a")).unwrap();
    std::fs::remove_dir(m.join("p/c")).unwrap();
    seen.push(links("p"));
    std::fs::rename(m.join("p/new"), m.join("moved")).unwrap();
    seen.push(links("p"));
    std::fs::rename(m.join("moved"), m.join("p/b/back")).unwrap();
    seen.push(links("p/b"));
    let live = (links("p"), links("p/b"), links(""));
    t.umount();
    assert_ran(&t.mount(""), "unionctl-overlay again");
    let fresh = (links("p"), links("p/b"), links(""));
    t.umount();
    assert_eq!(
        seen,
        [5, 6, 6, 4, 3, 3],
        "p: a b c (+new, +file -file, -a -c, new out), b: +back"
    );
    assert_eq!(live, fresh, "the live counts against a new mount's");
}

/// With FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT set, the drop-in writes whiteouts as
/// `.wh.NAME` files and opaque dirs with `.wh..wh..opq`, as fuse-overlayfs then does, and
/// fuse-overlayfs reads that upper as the drop-in showed it.
#[test]
fn wh_file_whiteouts_when_fuse_overlayfs_would_write_them() {
    if !have("fuse-overlayfs") {
        return;
    }
    let t = setup("dropin-wh-env");
    let mut c = Command::new(t.overlay_bin());
    c.env("FUSE_OVERLAYFS_DISABLE_OVL_WHITEOUT", "1")
        .arg("-o")
        .arg(t.label())
        .arg(&t.merged);
    assert_ran(&run_with_timeout(c, 60), "unionctl-overlay");
    let m = &t.merged;
    std::fs::remove_file(m.join("bottom")).unwrap();
    std::fs::remove_dir_all(m.join("dir")).unwrap();
    std::fs::create_dir(m.join("dir")).unwrap();
    std::fs::write(m.join("dir/new"), b"new").unwrap();
    let ours = common::tree::snapshot(m).unwrap();
    t.umount();
    let kind = |p: &str| {
        std::fs::symlink_metadata(t.upper.join(p))
            .map(|m| m.file_type().is_file())
            .ok()
    };
    assert_eq!(
        [kind(".wh.bottom"), kind("dir/.wh..wh..opq"), kind("bottom")],
        [Some(true), Some(true), None],
        "the upper's markers"
    );
    let mut fo = Command::new("fuse-overlayfs");
    fo.arg("-o").arg(t.label()).arg(m);
    assert_ran(&run_with_timeout(fo, 60), "fuse-overlayfs");
    let peer = common::tree::snapshot(m).unwrap();
    nix::mount::umount(m).unwrap();
    let diff = common::tree::diff("unionctl", &ours, "fuse-overlayfs", &peer, 20);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

/// `xattr_permissions=2`: owners and modes live in an xattr of each file and dir of the
/// upper, not in its inodes (which stay root's, open to the daemon); fuse-overlayfs reads
/// that upper as the drop-in showed it. Where a layer root names containers-storage's
/// xattr, the upper takes it, and `security.*` xattrs are kept under it, apart from the
/// real ones.
#[test]
fn xattr_permissions_keeps_owners_in_xattrs_as_fuse_overlayfs_reads_them() {
    if !have("fuse-overlayfs") {
        return;
    }
    let t = setup("dropin-xattr-perms");
    std::fs::create_dir(t.lower.join("d")).unwrap();
    std::fs::write(t.lower.join("d/g"), b"g").unwrap();
    let paths = ["top", "bottom", "d", "d/g", "new", "newdir", "newdir/inner"];
    let shown = |m: &Path| -> Vec<String> {
        paths
            .iter()
            .map(|p| {
                let md = std::fs::symlink_metadata(m.join(p)).unwrap();
                format!("{p} {}:{} {:o}", md.uid(), md.gid(), md.mode())
            })
            .collect()
    };
    assert_ran(&t.mount("xattr_permissions=2"), "unionctl-overlay");
    let m = &t.merged;
    std::fs::write(m.join("new"), b"new").unwrap();
    std::os::unix::fs::chown(m.join("new"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(m.join("new"), PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::create_dir(m.join("newdir")).unwrap();
    std::fs::write(m.join("newdir/inner"), b"").unwrap();
    std::os::unix::fs::chown(m.join("d/g"), Some(11), Some(12)).unwrap();
    std::fs::set_permissions(m.join("d"), PermissionsExt::from_mode(0o4711)).unwrap();
    std::fs::set_permissions(m.join("top"), PermissionsExt::from_mode(0o640)).unwrap();
    // A set-ID bit lives in the xattr only, and a write by a user drops it there.
    std::fs::write(m.join("suid"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(m.join("suid"), PermissionsExt::from_mode(0o4777)).unwrap();
    let real_suid = std::fs::metadata(t.upper.join("suid")).unwrap().mode() & 0o7777;
    let mut w = Command::new("setpriv");
    w.args(["--reuid=1000", "--regid=1000", "--clear-groups", "sh", "-c"])
        .arg(format!("echo more >> '{}'", m.join("suid").display()));
    assert_ran(&run_with_timeout(w, 60), "a user's write");
    let after_write = std::fs::metadata(m.join("suid")).unwrap().mode() & 0o7777;
    let ours = shown(m);
    t.umount();
    assert_eq!(
        (real_suid & 0o7000, after_write),
        (0, 0o777),
        "set-ID bits: on the inode, shown after a user's write"
    );
    assert!(
        ours.contains(&"new 1234:5678 100600".to_string()),
        "{ours:?}"
    );
    assert!(ours.contains(&"d/g 11:12 100644".to_string()), "{ours:?}");
    let real = std::fs::metadata(t.upper.join("new")).unwrap();
    assert_eq!(
        (real.uid(), real.mode() & 0o777),
        (0, 0o755),
        "the inode of new"
    );
    let mut fo = Command::new("fuse-overlayfs");
    fo.arg("-o")
        .arg(format!("{},xattr_permissions=2", t.label()))
        .arg(m);
    assert_ran(&run_with_timeout(fo, 60), "fuse-overlayfs");
    let peer = shown(m);
    nix::mount::umount(m).unwrap();
    assert_eq!(ours, peer, "fuse-overlayfs reads the upper otherwise");

    // containers-storage's layers name its xattr on their roots.
    let t = setup("dropin-xattr-perms-cs");
    xattr::set(&t.lower, "user.containers.override_stat", b"0:0:755").unwrap();
    std::fs::write(t.upper.join("file"), b"").unwrap();
    let cap = b"\x01\x00\x00\x02\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    xattr::set(t.upper.join("file"), "security.capability", cap).unwrap();
    assert_ran(&t.mount("xattr_permissions=2"), "unionctl-overlay");
    let file = t.merged.join("file");
    let before = xattr::get(&file, "security.capability").unwrap();
    xattr::set(&file, "security.test", b"v").unwrap();
    let after = xattr::get(&file, "security.test").unwrap();
    t.umount();
    assert_eq!(
        xattr::get(&t.upper, "user.containers.override_stat")
            .unwrap()
            .as_deref(),
        Some(&b"0:0:755"[..]),
        "the upper root takes the lower root's value"
    );
    assert_eq!(before, None, "the real security.capability shows");
    assert_eq!(after.as_deref(), Some(&b"v"[..]));
    assert_eq!(
        xattr::get(
            t.upper.join("file"),
            "user.containers.override_security.test"
        )
        .unwrap(),
        Some(b"v".to_vec())
    );
}

/// `redirect_dir=off` as the kernel (and fuse-overlayfs, which supports only that):
/// renaming a directory with lower content fails with EXDEV (`mv` then copies), renaming
/// a new directory or a file works.
#[test]
fn redirect_dir_off_as_the_kernel_and_fuse_overlayfs() {
    let t = setup("dropin-redirect-off");
    let renames = |m: &Path| {
        std::fs::create_dir(m.join("new")).unwrap();
        [
            ("dir", "dir2"),
            ("new", "new2"),
            ("top", "top2"),
            ("new2", "dir"),
        ]
        .iter()
        .map(|(a, b)| {
            let r = std::fs::rename(m.join(a), m.join(b)).map_err(|e| e.raw_os_error());
            format!("{a}->{b}: {r:?}")
        })
        .collect::<Vec<_>>()
    };
    let fresh = |name: &str| {
        let up = t.s.mkdir(&format!("{name}-upper"));
        let wk = t.s.mkdir(&format!("{name}-work"));
        (up, wk)
    };
    let (kup, kwk) = fresh("kernel");
    let kdirs = common::mounts::UnionDirs {
        lowers: vec![t.lower.clone(), t.lower2.clone()],
        upper: Some(kup),
        work: Some(kwk),
    };
    let o = format!(
        "lowerdir={}:{},upperdir={},workdir={},redirect_dir=off",
        t.lower.display(),
        t.lower2.display(),
        kdirs.upper.as_ref().unwrap().display(),
        kdirs.work.as_ref().unwrap().display()
    );
    nix::mount::mount(
        Some("overlay"),
        &t.merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(o.as_str()),
    )
    .expect("kernel mount with redirect_dir=off");
    let kernel = renames(&t.merged);
    nix::mount::umount(&t.merged).unwrap();
    assert_ran(
        &t.mount("redirect_dir=off"),
        "unionctl-overlay -o redirect_dir=off",
    );
    let ours = renames(&t.merged);
    t.umount();
    assert_eq!(ours, kernel, "unionctl vs kernel with redirect_dir=off");
    assert!(kernel[0].ends_with("Err(Some(18))"), "{kernel:?}");
    if have("fuse-overlayfs") {
        let (up, wk) = fresh("fo");
        let mut fo = Command::new("fuse-overlayfs");
        fo.arg("-o")
            .arg(format!(
                "lowerdir={}:{},upperdir={},workdir={},redirect_dir=off",
                t.lower.display(),
                t.lower2.display(),
                up.display(),
                wk.display()
            ))
            .arg(&t.merged);
        assert_ran(&run_with_timeout(fo, 60), "fuse-overlayfs");
        let theirs = renames(&t.merged);
        nix::mount::umount(&t.merged).unwrap();
        assert_eq!(
            ours, theirs,
            "unionctl vs fuse-overlayfs with redirect_dir=off"
        );
    }
}

/// `lowerdir+=` appends one lower each, as the kernel's; after `lowerdir=` both refuse it.
#[test]
fn lowerdir_plus_as_the_kernel() {
    let t = setup("dropin-lowerdir-plus");
    let opts = |lowers: &str| {
        format!(
            "{lowers},upperdir={},workdir={}",
            t.upper.display(),
            t.work.display()
        )
    };
    let plus = format!(
        "lowerdir+={},lowerdir+={}",
        t.lower.display(),
        t.lower2.display()
    );
    let seen = |m: &Path| {
        ["top", "bottom", "dir/f"]
            .map(|f| String::from_utf8_lossy(&std::fs::read(m.join(f)).unwrap()).into_owned())
    };
    let kernel_mount = |o: &str| {
        nix::mount::mount(
            Some("overlay"),
            &t.merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(o),
        )
    };
    kernel_mount(&opts(&plus)).expect("kernel mount with lowerdir+=");
    let kernel = seen(&t.merged);
    nix::mount::umount(&t.merged).unwrap();
    assert_ran(
        &t.overlay(&["-o".as_ref(), opts(&plus).as_ref(), t.merged.as_os_str()]),
        "lowerdir+=",
    );
    let ours = seen(&t.merged);
    t.umount();
    assert_eq!(ours, kernel);
    assert_eq!(kernel[0], "from the top lower\n");
    let mixed = opts(&format!(
        "lowerdir={},lowerdir+={}",
        t.lower.display(),
        t.lower2.display()
    ));
    assert!(
        kernel_mount(&mixed).is_err(),
        "the kernel took lowerdir+ after lowerdir"
    );
    let out = t.overlay(&["-o".as_ref(), mixed.as_ref(), t.merged.as_os_str()]);
    assert!(!out.status.success(), "lowerdir+ after lowerdir was taken");
    assert!(
        out.stderr
            .contains("lowerdir+ and datadir+ cannot follow lowerdir"),
        "{}",
        out.stderr
    );
}

/// `xino=off`: layers on one file system mount as with `xino=auto` (the kernel's inode
/// numbers are the same either way); across file systems it mounts too (fuse-overlayfs'
/// own tests mount so), and files with the same inode number in two layers keep
/// distinct ones in the union.
#[test]
fn xino_off_mounts_and_keeps_inode_numbers_unique() {
    let t = setup("dropin-xino");
    assert_ran(&t.mount("xino=off"), "xino=off on one file system");
    t.umount();
    // The first file of a fresh tmpfs has the same inode number in each.
    let fs: Vec<PathBuf> = ["tmpfs-a", "tmpfs-b"]
        .into_iter()
        .map(|n| {
            let d = t.s.mkdir(n);
            nix::mount::mount(
                Some("tmpfs"),
                &d,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("size=1m"),
            )
            .unwrap();
            std::fs::write(d.join(n), n).unwrap();
            d
        })
        .collect();
    let ino = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
    let real = [ino(fs[0].join("tmpfs-a")), ino(fs[1].join("tmpfs-b"))];
    let o = format!(
        "lowerdir={}:{},upperdir={},workdir={},xino=off",
        fs[0].display(),
        fs[1].display(),
        t.upper.display(),
        t.work.display()
    );
    let out = t.overlay(&["-o".as_ref(), o.as_ref(), t.merged.as_os_str()]);
    let shown = is_mount_point(&t.merged).then(|| {
        let shown = [ino(t.merged.join("tmpfs-a")), ino(t.merged.join("tmpfs-b"))];
        t.umount();
        shown
    });
    for d in &fs {
        nix::mount::umount(d).unwrap();
    }
    assert_ran(&out, "xino=off across file systems");
    assert_eq!(real[0], real[1], "the test wants one inode number twice");
    let shown = shown.expect("xino=off across file systems: not mounted");
    assert_ne!(shown[0], shown[1], "one inode number for two files");
}

/// A POSIX ACL granting a user read access to a 0600 file, in the kernel's xattr format.
fn acl_user_read(uid: u32) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX), // user::rw-
        (0x02, 4, uid),            // user:UID:r--
        (0x04, 0, u32::MAX),       // group::---
        (0x10, 4, u32::MAX),       // mask::r--
        (0x20, 0, u32::MAX),       // other::---
    ] {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

/// `noacl`: the kernel does not enforce POSIX ACLs, as under fuse-overlayfs with it;
/// without it they are enforced, as on the layers.
#[test]
fn noacl_as_fuse_overlayfs() {
    if !have("fuse-overlayfs") {
        return;
    }
    let t = setup("dropin-noacl");
    let (uid, gid) = common::setup::test_user();
    let secret = t.lower.join("secret");
    std::fs::write(&secret, b"acl\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    xattr::set(&secret, "system.posix_acl_access", &acl_user_read(uid)).unwrap();
    let read_as_user = |m: &Path| {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--clear-groups", "--", "cat"])
            .arg(m.join("secret"));
        run_with_timeout(cmd, 30).status.success()
    };
    let fo_merged = t.s.mkdir("fo-merged");
    let fo_upper = t.s.mkdir("fo-upper");
    let fo_work = t.s.mkdir("fo-work");
    let mut fo = Command::new("fuse-overlayfs");
    fo.arg("-o")
        .arg(format!(
            "lowerdir={},upperdir={},workdir={},noacl",
            t.lower.display(),
            fo_upper.display(),
            fo_work.display()
        ))
        .arg(&fo_merged);
    assert_ran(&run_with_timeout(fo, 60), "fuse-overlayfs -o noacl");
    let theirs = read_as_user(&fo_merged);
    nix::mount::umount(&fo_merged).unwrap();
    assert_ran(&t.mount(""), "unionctl-overlay");
    let with_acls = read_as_user(&t.merged);
    t.umount();
    assert_ran(&t.mount("noacl"), "unionctl-overlay -o noacl");
    let ours = read_as_user(&t.merged);
    t.umount();
    assert!(with_acls, "the ACL was not enforced without noacl");
    assert_eq!(
        ours, theirs,
        "reading through an ACL with noacl (fuse-overlayfs: {theirs})"
    );
}

/// `volatile`, as the kernel: the work dir gets `work/incompat/volatile/dirty`, and a
/// later mount of that upper, by unionctl or by the kernel, is refused until the user
/// removes it. The kernel's marker is refused by unionctl alike.
#[test]
fn volatile_marks_the_work_dir_as_the_kernel_does() {
    let t = setup("dropin-volatile");
    assert_ran(&t.mount("volatile"), "unionctl-overlay -o volatile");
    let f = std::fs::File::create(t.merged.join("v")).unwrap();
    f.sync_all().expect("fsync on a volatile union");
    drop(f);
    t.umount();
    let incompat = t.work.join("work/incompat");
    let dirty = incompat.join("volatile/dirty");
    let md = std::fs::symlink_metadata(&dirty).expect("no volatile marker");
    assert!(md.is_file() && md.mode() & 0o777 == 0, "{md:?}");
    // The kernel refuses our marked work dir ...
    let dirs = common::mounts::UnionDirs {
        lowers: vec![t.lower.clone(), t.lower2.clone()],
        upper: Some(t.upper.clone()),
        work: Some(t.work.clone()),
    };
    let k = common::mounts::mount_kernel(&dirs, &t.merged);
    assert!(k.is_err(), "the kernel mounted a volatile union's upper");
    // ... and so do we, saying why.
    let out = t.mount("");
    assert!(
        !out.status.success(),
        "a volatile union's upper was mounted again"
    );
    assert!(
        out.stderr.contains("incompat feature 'volatile'"),
        "{}",
        out.stderr
    );
    std::fs::remove_dir_all(&incompat).unwrap();
    assert_ran(&t.mount(""), "mount after removing the marker");
    t.umount();
    // The kernel's own volatile mount leaves the marker unionctl refuses.
    let mut k = common::mounts::mount_kernel(&dirs, &t.merged).expect("kernel mount");
    k.unmount().unwrap();
    let o = format!("{},volatile", common::mounts::kernel_options(&dirs, false));
    nix::mount::mount(
        Some("overlay"),
        &t.merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(o.as_str()),
    )
    .expect("kernel volatile mount");
    nix::mount::umount(&t.merged).unwrap();
    assert!(dirty.exists(), "the kernel left no marker");
    let out = t.mount("");
    assert!(
        !out.status.success(),
        "the kernel's volatile upper was mounted"
    );
    assert!(
        out.stderr.contains("incompat feature 'volatile'"),
        "{}",
        out.stderr
    );
}

/// `auto_unmount`: a daemon killed with SIGKILL leaves no dead mount, as root (our own
/// mount(2)) and as a plain user (fusermount3).
#[test]
fn auto_unmount_when_the_daemon_is_killed() {
    let t = setup("dropin-autounmount");
    assert_ran(&t.mount("auto_unmount"), "-o auto_unmount");
    let pids = t.daemons();
    assert!(!pids.is_empty(), "no daemon");
    for p in &pids {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), nix::sys::signal::SIGKILL).unwrap();
    }
    common::events::wait_on_mounts("the killed daemon's mount to go", || {
        !is_mount_point(&t.merged)
    });
    // The watcher ends too.
    common::events::wait_all_exit(&unionctl_daemons(&t.merged), "the auto_unmount watcher");
    assert!(t.merged.is_dir());
}

#[test]
fn auto_unmount_rootless_when_the_daemon_is_killed() {
    let t = setup("dropin-autounmount-user");
    let (uid, gid) = common::setup::test_user();
    for d in [&t.upper, &t.work, &t.merged] {
        std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
    }
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "--"])
        .arg(t.overlay_bin())
        .arg("-o")
        .arg(format!("{},auto_unmount", t.label()))
        .arg(&t.merged)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin");
    assert_ran(&run_with_timeout(cmd, 60), "rootless -o auto_unmount");
    assert!(is_mount_point(&t.merged));
    let pids = t.daemons();
    assert!(!pids.is_empty(), "no daemon");
    for p in &pids {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), nix::sys::signal::SIGKILL).unwrap();
    }
    common::events::wait_on_mounts("the killed rootless daemon's mount to go", || {
        !is_mount_point(&t.merged)
    });
    common::events::wait_all_exit(&unionctl_daemons(&t.merged), "the auto_unmount watcher");
}

/// The same lower twice, a lower inside the upper or inside another lower: refused by the
/// kernel (ELOOP) and by unionctl, in the kernel's words.
#[test]
fn lower_layers_the_kernel_refuses_are_refused() {
    let t = setup("dropin-lowers");
    let inner = t.upper.join("inner");
    std::fs::create_dir(&inner).unwrap();
    let sub = t.lower2.join("dir");
    let cases: [(Vec<PathBuf>, &str); 4] = [
        (
            vec![t.lower.clone(), t.lower.clone()],
            "conflicting lowerdir path",
        ),
        (
            vec![t.lower.clone(), inner.clone()],
            "overlapping lowerdir path",
        ),
        (
            vec![t.lower2.clone(), sub.clone()],
            "overlapping lowerdir path",
        ),
        (vec![t.upper.clone()], "conflicting lowerdir path"),
    ];
    for (lowers, words) in cases {
        let dirs = common::mounts::UnionDirs {
            lowers: lowers.clone(),
            upper: Some(t.upper.clone()),
            work: Some(t.work.clone()),
        };
        let k = common::mounts::mount_kernel(&dirs, &t.merged);
        assert!(k.is_err(), "the kernel mounted {lowers:?}");
        let lowerdir = lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let o = format!(
            "lowerdir={lowerdir},upperdir={},workdir={}",
            t.upper.display(),
            t.work.display()
        );
        let out = t.overlay(&["-o".as_ref(), o.as_ref(), t.merged.as_os_str()]);
        assert!(!out.status.success(), "unionctl mounted {lowers:?}");
        assert!(out.stderr.contains(words), "{lowers:?}: {}", out.stderr);
        assert!(!is_mount_point(&t.merged));
    }
}

/// A busybox image saved by unionctl (docker-archive), for podman to load.
fn busybox_archive(t: &DropIn) -> PathBuf {
    let rootfs = t.s.mkdir("rootfs");
    std::fs::create_dir(rootfs.join("bin")).unwrap();
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static missing: run scripts/install-deps.sh");
    std::fs::copy(bb, rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::fs::write(rootfs.join("hello"), b"from the image\n").unwrap();
    let tar = t.s.path().join("rootfs.tar");
    common::archive::tar_dir(&rootfs, &tar, &["."]);
    let store = t.s.mkdir("store");
    let archive = t.s.path().join("image.tar");
    let uc = |args: &[&OsStr]| {
        let mut cmd = Command::new(t.bin_dir.join("unionctl"));
        cmd.arg("--root").arg(&store).args(args);
        assert_ran(&run_with_timeout(cmd, 120), "unionctl");
    };
    uc(&["import".as_ref(), tar.as_os_str(), "dropin:1".as_ref()]);
    uc(&[
        "save".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
        "dropin:1".as_ref(),
    ]);
    archive
}

/// Equal layers of an image (two commits without changes each add the same empty layer)
/// share one dir: the container's mount takes it once, since a lower twice is refused.
#[test]
fn an_image_with_equal_layers_runs() {
    let t = setup("dropin-equal-layers");
    busybox_archive(&t);
    let store = t.s.path().join("store");
    let uc = |args: &[&str]| {
        let mut cmd = Command::new(t.bin_dir.join("unionctl"));
        cmd.arg("--root").arg(&store).args(args);
        let out = run_with_timeout(cmd, 120);
        assert_ran(&out, &format!("unionctl {args:?}"));
        out.stdout
    };
    uc(&["run", "--name", "a", "dropin:1", "/bin/sh", "-c", ":"]);
    uc(&["commit", "a", "dropin:2"]);
    uc(&["run", "--name", "b", "dropin:2", "/bin/sh", "-c", ":"]);
    uc(&["commit", "b", "dropin:3"]);
    let inspect = uc(&["inspect", "dropin:3"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let layers = v
        .pointer("/0/RootFS/Layers")
        .unwrap_or(&v["RootFS"]["Layers"]);
    let layers: Vec<&str> = layers
        .as_array()
        .unwrap_or_else(|| panic!("no layers in {inspect}"))
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert_eq!(layers.len(), 3, "{layers:?}");
    assert_eq!(
        layers[1], layers[2],
        "the two empty layers differ: {layers:?}"
    );
    let out = uc(&["run", "--rm", "dropin:3", "/bin/sh", "-c", "echo ran"]);
    assert_eq!(out.trim(), "ran");
}

/// A private storage for podman or buildah that mounts through unionctl-overlay, set up
/// as a user would: storage.conf's `mount_program` (IN_CONF), or else each command's
/// `--storage-opt overlay.mount_program=`.
struct Storage {
    conf: PathBuf,
    tmp: PathBuf,
    runroot: PathBuf,
    graphroot: PathBuf,
    storage_opt: Option<String>,
    /// Rootless: the test user (uid, gid) and a private dir for its HOME and
    /// XDG_RUNTIME_DIR (podman keeps caches there).
    user: Option<(u32, u32, PathBuf)>,
}

impl Storage {
    fn new(t: &DropIn, in_conf: bool) -> Storage {
        Self::for_user(t, in_conf, None)
    }

    /// A storage owned by user (UID, GID), whose commands run as that user.
    fn rootless(t: &DropIn, uid: u32, gid: u32) -> Storage {
        let mut st = Self::for_user(t, true, Some((uid, gid)));
        let xdg = t.s.mkdir("xdg");
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&xdg, Some(uid), Some(gid)).unwrap();
        st.user = Some((uid, gid, xdg));
        st
    }

    fn for_user(t: &DropIn, in_conf: bool, owner: Option<(u32, u32)>) -> Storage {
        // podman refuses a runroot longer than 50 characters.
        let runroot = tempfile::Builder::new()
            .prefix("ucd-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        std::fs::set_permissions(&runroot, std::fs::Permissions::from_mode(0o755)).unwrap();
        let graphroot = t.s.mkdir("graphroot");
        let tmp = t.s.mkdir("podman-tmp");
        if let Some((uid, gid)) = owner {
            for d in [&runroot, &graphroot, &tmp] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
            }
        }
        let conf = t.s.path().join("storage.conf");
        let program = format!("mount_program = \"{}\"\n", t.overlay_bin().display());
        std::fs::write(
            &conf,
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}\"\nrunroot = \"{1}\"\n\
                 rootless_storage_path = \"{0}\"\n[storage.options.overlay]\n{2}",
                graphroot.display(),
                runroot.display(),
                if in_conf { program.as_str() } else { "" }
            ),
        )
        .unwrap();
        Storage {
            conf,
            tmp,
            runroot,
            graphroot,
            user: None,
            storage_opt: (!in_conf)
                .then(|| format!("overlay.mount_program={}", t.overlay_bin().display())),
        }
    }

    /// `TOOL ARGS...` on this storage (podman or buildah), checked; its stdout.
    fn run(&self, tool: &str, args: &[&str]) -> String {
        let mut cmd = match &self.user {
            None => Command::new(tool),
            Some((uid, gid, xdg)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--", tool])
                    .env_clear()
                    .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
                    .env("HOME", xdg)
                    .env("XDG_RUNTIME_DIR", xdg);
                c
            }
        };
        // Rootless, podman's runtime dirs are under the private XDG_RUNTIME_DIR.
        if tool == "podman" && self.user.is_none() {
            cmd.arg("--tmpdir")
                .arg(&self.tmp)
                .arg("--events-backend=none");
        }
        if let Some(o) = &self.storage_opt {
            cmd.arg("--storage-opt").arg(o);
        }
        cmd.args(args).env("CONTAINERS_STORAGE_CONF", &self.conf);
        let out = run_with_timeout(cmd, 120);
        assert_ran(&out, &format!("{tool} {args:?}"));
        out.stdout.trim().to_string()
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        // Rootless podman keeps a pause process holding its user namespace.
        if let Some((_, _, xdg)) = &self.user
            && let Ok(pid) = std::fs::read_to_string(xdg.join("libpod/tmp/pause.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            common::events::wait_exit(pid, "rootless podman's pause process");
        }
        // containers-storage leaves its private bind mount of the layer dir.
        for m in common::mounts::mount_points_under(&self.graphroot)
            .iter()
            .rev()
        {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.runroot);
    }
}

/// The mount at PATH is unionctl-overlay's, and shows the image's tree.
#[track_caller]
fn assert_image_served(path: &Path) {
    let m = mount_at(path).unwrap_or_else(|| panic!("{} is not mounted", path.display()));
    assert_eq!(m.fs_type, "fuse.unionctl-overlay", "{m:?}");
    assert_eq!(
        std::fs::read(path.join("hello")).unwrap(),
        b"from the image\n"
    );
    assert!(path.join("bin/busybox").is_file());
}

/// podman (root) with `mount_program = unionctl-overlay`: `load`, `image mount`,
/// `create` + `mount`, and the unmounts leave no daemon. (Starting a container cannot be
/// tried on this host: root lacks CAP_SYS_RESOURCE and crun refuses the hybrid cgroups.)
#[test]
fn podman_mounts_through_unionctl_overlay() {
    if !have("podman") {
        return;
    }
    let t = setup_with("dropin-podman", true);
    let archive = busybox_archive(&t);
    let st = Storage::new(&t, true);
    st.run("podman", &["load", "-i", archive.to_str().unwrap()]);
    let image = "localhost/dropin:1";
    let img = PathBuf::from(st.run("podman", &["image", "mount", image]));
    assert_image_served(&img);
    let pids = unionctl_daemons(&img);
    assert!(
        !pids.is_empty(),
        "no unionctl daemon serves {}",
        img.display()
    );
    st.run("podman", &["image", "unmount", image]);
    common::events::wait_all_exit(&pids, "the image mount's daemon after image unmount");
    assert!(!is_mount_point(&img));

    st.run("podman", &["create", "--name", "c", image, "/bin/sh"]);
    let ctr = PathBuf::from(st.run("podman", &["mount", "c"]));
    assert_image_served(&ctr);
    std::fs::write(ctr.join("made"), b"in the container\n").unwrap();
    let pids = unionctl_daemons(&ctr);
    assert!(
        !pids.is_empty(),
        "no unionctl daemon serves {}",
        ctr.display()
    );
    st.run("podman", &["umount", "c"]);
    common::events::wait_all_exit(&pids, "the container mount's daemon after umount");
    // What was written is in the container's layer: seen again at the next mount.
    let ctr = PathBuf::from(st.run("podman", &["mount", "c"]));
    assert_eq!(
        std::fs::read(ctr.join("made")).unwrap(),
        b"in the container\n"
    );
    let pids = unionctl_daemons(&ctr);
    st.run("podman", &["rm", "-f", "c"]);
    common::events::wait_all_exit(&pids, "the container mount's daemon after rm");
    st.run("podman", &["rmi", image]);
}

/// buildah (root) with `--storage-opt overlay.mount_program=unionctl-overlay`: `from`,
/// `mount` (buildah adds `volatile`), `copy` into the working container, `umount`.
#[test]
fn buildah_mounts_and_copies_through_unionctl_overlay() {
    if !have("buildah") || !have("podman") {
        return;
    }
    let t = setup_with("dropin-buildah", true);
    let archive = busybox_archive(&t);
    let st = Storage::new(&t, false);
    st.run("podman", &["load", "-i", archive.to_str().unwrap()]);
    let b = |args: &[&str]| st.run("buildah", args);
    b(&["from", "--name", "w", "localhost/dropin:1"]);
    let dir = PathBuf::from(b(&["mount", "w"]));
    assert_image_served(&dir);
    let pids = unionctl_daemons(&dir);
    assert!(
        !pids.is_empty(),
        "no unionctl daemon serves {}",
        dir.display()
    );
    b(&["umount", "w"]);
    common::events::wait_all_exit(&pids, "buildah's mount daemon after umount");
    let src = t.s.path().join("copied");
    std::fs::write(&src, b"copied by buildah\n").unwrap();
    b(&["copy", "w", src.to_str().unwrap(), "/copied"]);
    let dir = PathBuf::from(b(&["mount", "w"]));
    assert_image_served(&dir);
    assert_eq!(
        std::fs::read(dir.join("copied")).unwrap(),
        b"copied by buildah\n"
    );
    let pids = unionctl_daemons(&dir);
    b(&["rm", "w"]);
    common::events::wait_all_exit(&pids, "buildah's mount daemon after rm");
}

/// Rootless podman (the test user, in podman's user namespace) with `mount_program =
/// unionctl-overlay`: `load`, `image mount` served by unionctl (seen in the namespace's
/// mountinfo), `image unmount` leaves no daemon.
#[test]
fn rootless_podman_mounts_through_unionctl_overlay() {
    if !have("podman") {
        return;
    }
    let t = setup_with("dropin-podman-user", true);
    let (uid, gid) = common::setup::test_user();
    let archive = busybox_archive(&t);
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o644)).unwrap();
    let st = Storage::rootless(&t, uid, gid);
    st.run("podman", &["load", "-i", archive.to_str().unwrap()]);
    let image = "localhost/dropin:1";
    let img = st.run("podman", &["unshare", "podman", "image", "mount", image]);
    let inside = |script: &str| {
        st.run(
            "podman",
            &["unshare", "sh", "-c", script, "sh", img.as_str()],
        )
    };
    let line = inside(r#"grep " $1 " /proc/self/mountinfo"#);
    assert!(line.contains(" - fuse.unionctl-overlay "), "{line}");
    assert_eq!(inside(r#"cat "$1/hello""#), "from the image");
    let pids = unionctl_daemons(Path::new(&img));
    assert!(!pids.is_empty(), "no unionctl daemon serves {img}");
    st.run("podman", &["unshare", "podman", "image", "unmount", image]);
    common::events::wait_all_exit(&pids, "the rootless image mount's daemon after unmount");
    st.run("podman", &["rmi", image]);
}

/// Rootless buildah (the test user) with `mount_program = unionctl-overlay`: `from`,
/// `mount` inside `buildah unshare` (served by unionctl, seen in mountinfo), `copy`, and
/// `umount` leaves no daemon.
#[test]
fn rootless_buildah_mounts_and_copies_through_unionctl_overlay() {
    if !have("buildah") || !have("podman") {
        return;
    }
    let t = setup_with("dropin-buildah-user", true);
    let (uid, gid) = common::setup::test_user();
    let archive = busybox_archive(&t);
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o644)).unwrap();
    let st = Storage::rootless(&t, uid, gid);
    st.run("podman", &["load", "-i", archive.to_str().unwrap()]);
    st.run("buildah", &["from", "--name", "w", "localhost/dropin:1"]);
    // Mounted, looked at and unmounted in one user namespace; the daemon's pid is
    // printed so its end can be awaited from here.
    let look = r#"d=$(buildah mount w)
grep " $d " /proc/self/mountinfo | grep -c " - fuse.unionctl-overlay "
cat "$d/$1"
pgrep -f -- "$d"
buildah umount w >/dev/null"#;
    let check = |file: &str, want: &str| {
        let out = st.run("buildah", &["unshare", "sh", "-ec", look, "sh", file]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"1"), "not served by unionctl: {out}");
        assert_eq!(lines.get(1), Some(&want), "{out}");
        let pids: Vec<i32> = lines[2..].iter().filter_map(|l| l.parse().ok()).collect();
        assert!(!pids.is_empty(), "no daemon seen: {out}");
        common::events::wait_all_exit(&pids, "the rootless buildah mount's daemon");
    };
    check("hello", "from the image");
    let src = t.s.path().join("copied");
    std::fs::write(&src, b"copied by buildah\n").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644)).unwrap();
    st.run("buildah", &["copy", "w", src.to_str().unwrap(), "/copied"]);
    check("copied", "copied by buildah");
    st.run("buildah", &["rm", "w"]);
}
