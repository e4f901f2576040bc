//! Rootless: a non-root user mounts a union inside its own user namespace (`unshare -Urm`),
//! uses it, and unmounts it. The upper it writes is in the kernel's rootless format
//! (`user.overlay.*` xattrs, as the kernel's `userxattr`), so kernel overlayfs mounted by
//! the same user shows the same tree.
mod common;

use common::Scratch;
use common::mounts::{CmdOutput, assert_ran, run_with_timeout};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::process::Command;

use common::setup::{TEST_USER as USER, test_user};

struct Rootless {
    _s: Scratch,
    bin: PathBuf,
    uid: u32,
    gid: u32,
    lower: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    merged: PathBuf,
}

fn setup(name: &str) -> Rootless {
    assert!(
        common::is_root(),
        "rootless tests set up files for the test user and switch to it: run as root"
    );
    let (uid, gid) = test_user();
    let s = Scratch::new(name);
    let lower = s.mkdir("lower");
    std::fs::write(lower.join("hello"), b"hello from the lower layer\n").unwrap();
    std::fs::write(lower.join("gone"), b"deleted through the union\n").unwrap();
    std::fs::create_dir(lower.join("dir")).unwrap();
    std::fs::write(lower.join("dir/old"), b"old\n").unwrap();
    std::fs::create_dir(lower.join("keep")).unwrap();
    std::fs::write(lower.join("keep/file"), b"kept\n").unwrap();
    // A rootless user's layers are its own (root's files would be unwritable nobody's).
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(&lower)
        .status()
        .unwrap();
    assert!(st.success(), "chown -R {}", lower.display());
    let mine = |rel: &str| {
        let p = s.mkdir(rel);
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        p
    };
    // The build tree may be out of the test user's reach: run a copy of the binary.
    let bin = s.path().join("unionctl");
    std::fs::copy(common::unionctl_bin(), &bin).expect("copy the unionctl binary");
    Rootless {
        bin,
        upper: mine("upper"),
        work: mine("work"),
        merged: mine("merged"),
        lower,
        uid,
        gid,
        _s: s,
    }
}

impl Rootless {
    /// Runs `script` with sh as the test user, inside `unshare -Urm` (root in a new user and
    /// mount namespace, as rootless container tools do).
    fn run(&self, script: &str) -> CmdOutput {
        self.run_in(&["-Urm"], script)
    }

    /// `run` in the namespace `unshare UNSHARE` makes.
    fn run_in(&self, unshare: &[&str], script: &str) -> CmdOutput {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .args(["--", "unshare"])
            .args(unshare)
            .args(["--", "sh", "-euc", script])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", format!("/home/{USER}"))
            .env("BIN", &self.bin)
            .env("L", &self.lower)
            .env("U", &self.upper)
            .env("W", &self.work)
            .env("M", &self.merged);
        let out = run_with_timeout(cmd, 60);
        // A daemon left behind in the namespace would keep the upper busy.
        for pid in common::mounts::unionctl_daemons(&self.merged) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        out
    }
}

/// The changes made through the union, then a listing of what it shows.
const USE_THE_UNION: &str = r#"
cat "$M/hello"
echo new > "$M/new"
echo more >> "$M/hello"
rm "$M/gone"
rm -r "$M/dir"
mkdir "$M/dir"
echo fresh > "$M/dir/fresh"
chmod 600 "$M/keep/file"
mkdir -p "$M/made/sub"
ln -s ../hello "$M/made/link"
"#;

const LIST: &str = r#"
echo "== tree"
cd "$M" && find . -printf '%p %y %m %U:%G %s %l\n' | sort
echo "== hello"
cat "$M/hello"
"#;

#[test]
fn rootless_user_mounts_and_uses_a_union() {
    let r = setup("rootless");
    let script = format!(
        r#"
"$BIN" mount --lower "$L" --upper "$U" --work "$W" "$M"
grep " $M " /proc/self/mountinfo
{USE_THE_UNION}
{LIST}
cd /
"$BIN" umount "$M"
"#
    );
    let out = r.run(&script);
    assert_ran(&out, "rootless unionctl session");
    let mountinfo = out.stdout.lines().next().unwrap_or_default();
    assert!(mountinfo.contains("fuse"), "not a FUSE mount: {mountinfo}");
    assert!(
        !mountinfo.contains("allow_other"),
        "rootless mount has allow_other without -o allow_other: {mountinfo}"
    );
    assert!(
        out.stdout.contains("hello from the lower layer"),
        "{}",
        out.stdout
    );

    // On disk: files owned by the user, kernel rootless format.
    let md = std::fs::metadata(r.upper.join("new")).expect("upper/new");
    assert_eq!(
        (md.uid(), md.gid()),
        (r.uid, r.gid),
        "upper/new is not owned by the user"
    );
    let wh = std::fs::symlink_metadata(r.upper.join("gone")).expect("upper/gone whiteout");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "upper/gone is not a char 0/0 whiteout"
    );
    let opaque = xattr::get(r.upper.join("dir"), "user.overlay.opaque").unwrap();
    assert_eq!(
        opaque.as_deref(),
        Some(&b"y"[..]),
        "upper/dir lacks user.overlay.opaque=y"
    );
    assert!(
        xattr::list(r.upper.join("dir"))
            .unwrap()
            .all(|n| !n.to_string_lossy().starts_with("trusted.")),
        "a rootless mount wrote trusted.* xattrs"
    );

    // Kernel overlayfs (rootless, userxattr) over the same upper shows the same tree.
    let kernel = r.run(&format!(
        r#"
mount -t overlay overlay -o "lowerdir=$L,upperdir=$U,workdir=$W,userxattr" "$M"
{LIST}
cd /
umount "$M"
"#
    ));
    assert!(
        kernel.status.success(),
        "kernel overlayfs rootless mount failed: {}",
        kernel.stderr
    );
    let ours = out
        .stdout
        .split_once("== tree")
        .map(|x| x.1)
        .unwrap_or_default();
    let theirs = kernel
        .stdout
        .split_once("== tree")
        .map(|x| x.1)
        .unwrap_or_default();
    assert_eq!(
        ours, theirs,
        "kernel overlayfs shows another tree than unionctl did"
    );
}

/// The reference for the test above: the same session on kernel overlayfs, rootless.
#[test]
fn rootless_kernel_overlayfs_reference() {
    let r = setup("rootless-k");
    let out = r.run(&format!(
        r#"
mount -t overlay overlay -o "lowerdir=$L,upperdir=$U,workdir=$W,userxattr" "$M"
{USE_THE_UNION}
{LIST}
cd /
umount "$M"
"#
    ));
    assert!(
        out.status.success(),
        "kernel rootless session: {}\n{}",
        out.stderr,
        out.stdout
    );
    let opaque = xattr::get(r.upper.join("dir"), "user.overlay.opaque").unwrap();
    assert_eq!(
        opaque.as_deref(),
        Some(&b"y"[..]),
        "kernel wrote no user.overlay.opaque"
    );
    assert!(out.stdout.contains("./made/link l 777"), "{}", out.stdout);
}

/// Rootless `metacopy=on`: a chmod copies metadata only, in the rootless format
/// (`user.overlay.metacopy`), the data is read from the lower file, and the first write
/// copies it.
#[test]
fn rootless_metacopy_copies_metadata_only() {
    let r = setup("rootless-metacopy");
    let out = r.run(
        r#"
"$BIN" mount --lower "$L" --upper "$U" --work "$W" -o metacopy=on "$M"
chmod 600 "$M/hello" "$M/keep/file"
cat "$M/hello"
echo more >> "$M/keep/file"
cd /
"$BIN" umount "$M"
"#,
    );
    assert_ran(&out, "rootless metacopy session");
    assert_eq!(out.stdout, "hello from the lower layer\n");
    let hello = r.upper.join("hello");
    assert_eq!(
        xattr::get(&hello, "user.overlay.metacopy").unwrap(),
        Some(vec![])
    );
    let md = std::fs::metadata(&hello).unwrap();
    assert_eq!(md.len(), 27);
    assert_eq!(
        std::fs::read(&hello).unwrap(),
        vec![0u8; 27],
        "the chmod copied data"
    );
    let file = r.upper.join("keep/file");
    assert_eq!(xattr::get(&file, "user.overlay.metacopy").unwrap(), None);
    assert_eq!(std::fs::read(&file).unwrap(), b"kept\nmore\n");
}

/// Rootless with `squash_to_root` and a mapping that leaves the creator's id out: the
/// owner cannot be given on disk (the id is not in the user namespace), and the file is
/// created anyway, as fuse-overlayfs does it with the same options.
#[test]
fn rootless_squash_creates_despite_an_unmapped_owner() {
    let r = setup("rootless-squash");
    let opts = "uidmapping=0:1000:1,gidmapping=0:1000:1,squash_to_root";
    let out = r.run(&format!(
        r#"
fuse-overlayfs -o "lowerdir=$L,upperdir=$U,workdir=$W,{opts}" "$M"
echo hi > "$M/new"
stat -c '%n %u:%g' "$M/new" "$U/new"
umount "$M"
rm -rf "$U/new" "$W"/*
"$BIN" mount --lower "$L" --upper "$U" --work "$W" -o {opts} "$M"
echo hi > "$M/new"
stat -c '%n %u:%g' "$M/new" "$U/new"
cd /
"$BIN" umount "$M"
"#
    ));
    assert_ran(&out, "rootless squash session");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert_eq!(lines[..2], lines[2..], "fuse-overlayfs, then unionctl");
}

/// containers-storage's rootless call: `unionctl-overlay -o lowerdir=..,upperdir=..,
/// workdir=..,uidmapping=..,gidmapping=.. MERGED` inside the user namespace, then the
/// same through fuse-overlayfs: the same owners shown and the same owners written.
#[test]
fn rootless_dropin_command_line_with_id_mappings_as_fuse_overlayfs() {
    let r = setup("rootless-dropin-idmap");
    std::os::unix::fs::symlink(&r.bin, r.bin.with_file_name("unionctl-overlay")).unwrap();
    // In podman's namespace (root the user, 1-65535 its subordinate ids): the layers'
    // owner on disk (the namespace's root) shows as 1000, and 0 is 1000 on disk.
    let ids = "0:1000:1:1:1:999:1000:0:1";
    let opts = format!("uidmapping={ids},gidmapping={ids}");
    let userns = ["--map-root-user", "--map-auto", "--mount"];
    let out = r.run_in(
        &userns,
        &format!(
            r#"
for prog in fuse-overlayfs "$(dirname "$BIN")/unionctl-overlay"; do
    "$prog" -o "lowerdir=$L,upperdir=$U,workdir=$W,{opts}" "$M"
    grep -q " $M " /proc/self/mountinfo
    stat -c '%n %u:%g' "$M/hello" "$M/dir/old"
    echo hi > "$M/dir/new"
    chmod 600 "$M/keep/file"
    stat -c '%n %u:%g %a' "$M/dir/new" "$M/keep/file" "$U/dir/new" "$U/keep/file"
    cd /
    umount "$M"
    rm -rf "$U"/* "$W"/*
done
"#
        ),
    );
    assert_ran(&out, "rootless drop-in session");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{}", out.stdout);
    assert_eq!(
        lines[..6],
        lines[6..],
        "fuse-overlayfs, then unionctl-overlay"
    );
    assert_eq!(lines[0], format!("{}/hello 1000:1000", r.merged.display()));
    assert_eq!(
        lines[4],
        format!("{}/dir/new 1000:1000 644", r.upper.display())
    );
}

/// Rootless, large reads (spliced to the FUSE device, see tests/reads.rs) and small
/// ones return the lower file's bytes: whole, and from O_DIRECT reads of odd sizes at odd
/// offsets, which reach the daemon as they are.
#[test]
fn rootless_reads_of_a_big_lower_file() {
    let r = setup("rootless-reads");
    let data: Vec<u8> = (0..(5u32 << 20) + 333)
        .map(|i| (i ^ (i >> 11)) as u8)
        .collect();
    std::fs::write(r.lower.join("big"), &data).unwrap();
    std::os::unix::fs::chown(r.lower.join("big"), Some(r.uid), Some(r.gid)).unwrap();
    let out = r.run(
        r#"
"$BIN" mount --lower "$L" --upper "$U" --work "$W" "$M"
cmp "$L/big" "$M/big"
for bs in 1 4097 131072 131073 1048576; do
    dd if="$M/big" iflag=direct bs=$bs skip=3 count=4 status=none >/tmp/part.$$
    dd if="$L/big" bs=$bs skip=3 count=4 status=none | cmp - /tmp/part.$$
done
rm /tmp/part.$$
cd /
"$BIN" umount "$M"
"#,
    );
    assert_ran(&out, "rootless reads");
}
