//! `unionctl mount` / `unionctl umount` as a user meets them: bad input is refused with one
//! clear line naming the path and the cause, a non-zero exit, nothing mounted and nothing
//! written; read-only unions give EROFS. The daemon's life (killed, foreground, umount
//! waiting for it) is in mount_daemon.rs.
mod common;
#[path = "mount_cli/setup.rs"]
mod setup;

use common::mounts::{UnionDirs, is_mount_point, mount_table, mount_unionctl, run_unionctl};
use common::tree;
use setup::{Setup, setup};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

impl Setup {
    fn args(
        &self,
        lowers: &str,
        upper: Option<&Path>,
        work: Option<&Path>,
        extra: &[&str],
    ) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["mount".into(), "--lower".into(), lowers.into()];
        if let Some(u) = upper {
            a.push("--upper".into());
            a.push(u.into());
        }
        if let Some(w) = work {
            a.push("--work".into());
            a.push(w.into());
        }
        a.extend(extra.iter().map(OsString::from));
        a.push(self.merged.clone().into());
        a
    }

    fn lowers(&self) -> String {
        format!("{}:{}", self.lower.display(), self.lower2.display())
    }

    /// Runs a mount that must be refused; checks the message, the exit and that nothing
    /// was mounted or written anywhere in the scratch area.
    fn expect_refused(&self, case: &str, args: Vec<OsString>, names: &Path, causes: &[&str]) {
        let mounts_before = mounts_at(&self.merged);
        let before = tree::snapshot(self.s.path()).unwrap();
        let out = run_unionctl(&args, 30);
        let after = tree::snapshot(self.s.path()).unwrap();
        let mounts_after = mounts_at(&self.merged);
        if mounts_after > mounts_before {
            let _ = common::mounts::force_unmount(&self.merged);
        }
        let err = out.stderr.trim();
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            !out.status.success(),
            "{case}: unionctl mount succeeded; it must refuse (args {args:?})"
        );
        assert!(
            out.status.code().is_some(),
            "{case}: unionctl died of a signal ({}); stderr: {err}",
            out.status
        );
        assert!(
            !err.contains("panicked"),
            "{case}: unionctl panicked: {err}"
        );
        assert_eq!(lines.len(), 1, "{case}: want one error line, got:\n{err}");
        let name = names.display().to_string();
        assert!(
            lines[0].contains(&name),
            "{case}: the error line does not name {name}: {err}"
        );
        let lower = lines[0].to_lowercase();
        assert!(
            causes.iter().any(|c| lower.contains(c)),
            "{case}: the error line does not say the cause (one of {causes:?}): {err}"
        );
        assert_eq!(
            mounts_after,
            mounts_before,
            "{case}: something was mounted on {}",
            self.merged.display()
        );
        let d = tree::diff("before", &before, "after", &after, 10);
        let touched: Vec<String> = before
            .iter()
            .filter(|(p, e)| {
                after
                    .get(*p)
                    .is_some_and(|a| a.mtime != e.mtime || a.ino != e.ino)
            })
            .map(|(p, _)| format!("{p}: changed"))
            .collect();
        assert!(
            d.is_empty() && touched.is_empty(),
            "{case}: the refused mount wrote to disk:\n  {}\n  {}",
            d.join("\n  "),
            touched.join("\n  ")
        );
    }
}

fn mounts_at(p: &Path) -> usize {
    let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    mount_table().iter().filter(|m| m.mount_point == p).count()
}

const MISSING: &[&str] = &["no such", "not exist", "missing", "not found"];
const NOT_DIR: &[&str] = &["not a directory", "not a dir"];
const NESTED: &[&str] = &[
    "inside", "within", "overlap", "below", "under", "nested", "contain", "beneath",
];

#[test]
fn refuses_missing_lower() {
    let t = setup("cli-missing-lower");
    let missing = t.s.path().join("no-such-layer");
    let lowers = format!("{}:{}", t.lower.display(), missing.display());
    t.expect_refused(
        "missing lower",
        t.args(&lowers, Some(&t.upper), Some(&t.work), &[]),
        &missing,
        MISSING,
    );
}

#[test]
fn refuses_lower_that_is_a_file() {
    let t = setup("cli-file-lower");
    let file = t.lower.join("top");
    let lowers = format!("{}:{}", file.display(), t.lower2.display());
    t.expect_refused(
        "lower is a file",
        t.args(&lowers, Some(&t.upper), Some(&t.work), &[]),
        &file,
        NOT_DIR,
    );
}

#[test]
fn refuses_missing_upper_and_file_upper() {
    let t = setup("cli-bad-upper");
    let missing = t.s.path().join("no-such-upper");
    t.expect_refused(
        "missing upper",
        t.args(&t.lowers(), Some(&missing), Some(&t.work), &[]),
        &missing,
        MISSING,
    );
    let file = t.s.path().join("upper-file");
    std::fs::write(&file, b"not a dir").unwrap();
    t.expect_refused(
        "upper is a file",
        t.args(&t.lowers(), Some(&file), Some(&t.work), &[]),
        &file,
        NOT_DIR,
    );
}

#[test]
fn refuses_missing_mount_point() {
    let t = setup("cli-missing-merged");
    let missing = t.s.path().join("no-such-merged");
    let mut args = t.args(&t.lowers(), Some(&t.upper), Some(&t.work), &[]);
    *args.last_mut().unwrap() = missing.clone().into();
    t.expect_refused("missing mount point", args, &missing, MISSING);
}

#[test]
fn refuses_upper_inside_a_lower_and_the_reverse() {
    let t = setup("cli-nested");
    let inner_upper = t.s.mkdir("lower2/upper-in-lower");
    t.expect_refused(
        "upper inside a lower",
        t.args(&t.lowers(), Some(&inner_upper), Some(&t.work), &[]),
        &inner_upper,
        NESTED,
    );
    let inner_lower = t.s.mkdir("upper/lower-in-upper");
    let lowers = format!("{}:{}", t.lower.display(), inner_lower.display());
    t.expect_refused(
        "lower inside the upper",
        t.args(&lowers, Some(&t.upper), Some(&t.work), &[]),
        &inner_lower,
        NESTED,
    );
}

#[test]
fn refuses_work_inside_upper() {
    let t = setup("cli-work-in-upper");
    let work = t.s.mkdir("upper/work");
    t.expect_refused(
        "work dir inside the upper",
        t.args(&t.lowers(), Some(&t.upper), Some(&work), &[]),
        &work,
        NESTED,
    );
}

#[test]
fn refuses_work_on_another_file_system() {
    let t = setup("cli-work-tmpfs");
    let other = t.s.mkdir("tmpfs");
    common::mounts::mount_tmpfs(&other);
    let work = other.join("work");
    std::fs::create_dir(&work).unwrap();
    t.expect_refused(
        "work dir on another file system",
        t.args(&t.lowers(), Some(&t.upper), Some(&work), &[]),
        &work,
        &[
            "file system",
            "filesystem",
            "same fs",
            "device",
            "same mount",
        ],
    );
}

#[test]
fn refuses_busy_mount_point() {
    let t = setup("cli-busy");
    common::mounts::mount_tmpfs(&t.merged);
    t.expect_refused(
        "mount point already mounted",
        t.args(&t.lowers(), Some(&t.upper), Some(&t.work), &[]),
        &t.merged,
        &["busy", "already", "mounted", "in use"],
    );
}

#[test]
fn refuses_unknown_option() {
    let t = setup("cli-bad-opt");
    let before = tree::snapshot(t.s.path()).unwrap();
    let out = run_unionctl(
        &t.args(
            &t.lowers(),
            Some(&t.upper),
            Some(&t.work),
            &["-o", "ro,bogus_opt"],
        ),
        30,
    );
    let after = tree::snapshot(t.s.path()).unwrap();
    let err = out.stderr.trim();
    assert!(!out.status.success(), "unknown -o option accepted");
    assert!(
        !is_mount_point(&t.merged),
        "mounted despite an unknown option"
    );
    assert_eq!(err.lines().count(), 1, "want one error line, got:\n{err}");
    assert!(
        err.contains("bogus_opt"),
        "the error does not name the option: {err}"
    );
    assert!(
        tree::diff("before", &before, "after", &after, 5).is_empty(),
        "a refused mount wrote to disk"
    );
}

/// Without --upper the union is read-only, as overlayfs with only lowerdir: every change
/// fails with EROFS, reads work.
#[test]
fn lowers_only_is_read_only() {
    let t = setup("cli-ro");
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone(), t.lower2.clone()],
        upper: None,
        work: None,
    };
    let mut m = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read(t.merged.join("top")).unwrap(),
        b"from the top lower\n"
    );
    assert_eq!(
        std::fs::read(t.merged.join("bottom")).unwrap(),
        b"from the bottom lower\n"
    );
    assert_all_erofs(&t.merged);
    m.unmount().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read(t.lower.join("top")).unwrap(),
        b"from the top lower\n"
    );
}

/// `--lower` reads its list as `-o lowerdir=` does: `\:` is a colon inside a layer's path,
/// as the kernel reads `lowerdir=` (the same option string mounts kernel overlayfs).
#[test]
fn lower_with_an_escaped_colon() {
    let t = setup("cli-colon");
    let colon = t.s.mkdir("lo:wer");
    std::fs::write(colon.join("c"), b"colon\n").unwrap();
    let dirs = UnionDirs {
        lowers: vec![colon, t.lower2.clone()],
        upper: None,
        work: None,
    };
    let mut m = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::fs::read(t.merged.join("c")).unwrap(), b"colon\n");
    assert_eq!(std::fs::read(t.merged.join("top")).unwrap(), b"hidden\n");
    m.unmount().unwrap_or_else(|e| panic!("{e}"));
    let options = common::mounts::kernel_options(&dirs, false);
    assert!(options.contains("lo\\:wer"), "{options}");
    for kernel in [false, true] {
        let mut m = match kernel {
            false => common::mounts::mount_unionctl_options(&options, &t.merged),
            true => common::mounts::mount_kernel(&dirs, &t.merged),
        }
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(t.merged.join("c")).unwrap(), b"colon\n");
        m.unmount().unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn option_ro_with_upper_is_read_only() {
    let t = setup("cli-o-ro");
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone(), t.lower2.clone()],
        upper: Some(t.upper.clone()),
        work: Some(t.work.clone()),
    };
    let mut m = mount_unionctl(&dirs, &t.merged, &["-o", "ro"]).unwrap_or_else(|e| panic!("{e}"));
    assert_all_erofs(&t.merged);
    m.unmount().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read_dir(&t.upper).unwrap().count(),
        0,
        "a read-only mount wrote to the upper"
    );
}

fn assert_all_erofs(m: &Path) {
    let checks: Vec<(&str, std::io::Result<()>)> = vec![
        ("create", std::fs::write(m.join("new"), b"x")),
        (
            "open O_WRONLY",
            std::fs::OpenOptions::new()
                .write(true)
                .open(m.join("top"))
                .map(|_| ()),
        ),
        (
            "open O_TRUNC",
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(m.join("bottom"))
                .map(|_| ()),
        ),
        ("unlink", std::fs::remove_file(m.join("top"))),
        ("mkdir", std::fs::create_dir(m.join("d"))),
        ("rmdir", std::fs::remove_dir(m.join("dir"))),
        ("rename", std::fs::rename(m.join("top"), m.join("top2"))),
        (
            "chmod",
            std::fs::set_permissions(m.join("top"), std::fs::Permissions::from_mode(0o600)),
        ),
        (
            "chown",
            std::os::unix::fs::chown(m.join("top"), Some(1), None),
        ),
        ("symlink", std::os::unix::fs::symlink("top", m.join("l"))),
        ("link", std::fs::hard_link(m.join("top"), m.join("h"))),
        ("setxattr", xattr::set(m.join("top"), "user.x", b"1")),
    ];
    let wrong: Vec<String> = checks
        .into_iter()
        .filter_map(|(what, r)| match r {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => None,
            Err(e) => Some(format!("{what}: {e} (want EROFS)")),
            Ok(()) => Some(format!("{what}: succeeded (want EROFS)")),
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "read-only union:\n  {}",
        wrong.join("\n  ")
    );
}

/// Without --work the default work dir (a sibling of the upper) must not be left behind
/// by a mount that is refused.
#[test]
fn refused_mount_leaves_no_default_work_dir() {
    let t = setup("cli-no-work-left");
    let missing = t.s.path().join("no-such-layer");
    let lowers = format!("{}:{}", t.lower.display(), missing.display());
    t.expect_refused(
        "missing lower, default work dir",
        t.args(&lowers, Some(&t.upper), None, &[]),
        &missing,
        MISSING,
    );
    let busy = t.s.mkdir("busy");
    common::mounts::mount_tmpfs(&busy);
    let mut args = t.args(&t.lowers(), Some(&t.upper), None, &[]);
    *args.last_mut().unwrap() = busy.clone().into();
    let before = tree::snapshot(t.s.path()).unwrap();
    let out = run_unionctl(&args, 30);
    let after = tree::snapshot(t.s.path()).unwrap();
    assert!(
        !out.status.success(),
        "mount over a busy mount point succeeded"
    );
    assert!(
        tree::diff("before", &before, "after", &after, 10).is_empty(),
        "a mount refused for a busy mount point left files behind: {:?}",
        tree::diff("before", &before, "after", &after, 10)
    );
}

/// `unionctl layers` lists the layers top first and `unionctl which` names the layer that
/// supplies a path (upper after copy-up, the right lower otherwise, every layer of a
/// merged dir, and a symlink's own layer); outside a union both fail with a clear line.
#[test]
fn layers_and_which_name_the_supplying_layer() {
    let t = setup("cli-which");
    std::os::unix::fs::symlink("top", t.lower2.join("link")).unwrap();
    std::fs::create_dir(t.lower.join("dir")).unwrap();
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone(), t.lower2.clone()],
        upper: Some(t.upper.clone()),
        work: Some(t.work.clone()),
    };
    let mut m = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&Path]| {
        let mut a: Vec<OsString> = Vec::new();
        for x in args {
            a.push(x.as_os_str().to_owned());
        }
        run_unionctl(&a, 30)
    };
    let out = run(&[Path::new("layers"), &t.merged]);
    assert!(out.status.success(), "layers: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], format!("upper\t{}", t.upper.display()));
    assert_eq!(lines[1], format!("lower 0\t{}", t.lower.display()));
    assert_eq!(lines[2], format!("lower 1\t{}", t.lower2.display()));

    let which = |p: &str| {
        let out = run(&[Path::new("which"), &t.merged.join(p)]);
        assert!(out.status.success(), "which {p}: {}", out.stderr);
        out.stdout
    };
    assert_eq!(
        which("top"),
        format!("lower 0\t{}\n", t.lower.join("top").display())
    );
    assert_eq!(
        which("bottom"),
        format!("lower 1\t{}\n", t.lower2.join("bottom").display())
    );
    assert_eq!(
        which("link"),
        format!("lower 1\t{}\n", t.lower2.join("link").display())
    );
    assert_eq!(
        which("dir"),
        format!(
            "lower 0\t{}\nlower 1\t{}\n",
            t.lower.join("dir").display(),
            t.lower2.join("dir").display()
        )
    );
    std::fs::write(t.merged.join("bottom"), b"changed\n").unwrap();
    assert_eq!(
        which("bottom"),
        format!("upper\t{}\n", t.upper.join("bottom").display())
    );
    // Symlinks from outside that lead into the union are followed (one inside is itself
    // the answer, above): to the mount, and to a file in it.
    let to_mount = t.s.path().join("to-mount");
    let to_file = t.s.path().join("to-file");
    std::os::unix::fs::symlink(&t.merged, &to_mount).unwrap();
    std::os::unix::fs::symlink(t.merged.join("top"), &to_file).unwrap();
    let out = run(&[Path::new("layers"), &to_mount]);
    assert!(out.status.success(), "layers via a symlink: {}", out.stderr);
    let out = run(&[Path::new("which"), &to_file]);
    assert_eq!(
        out.stdout,
        format!("lower 0\t{}\n", t.lower.join("top").display()),
        "{}",
        out.stderr
    );
    m.unmount().unwrap_or_else(|e| panic!("{e}"));
    let out = run(&[Path::new("which"), &to_file]);
    assert!(
        out.stderr.contains(&to_file.display().to_string()),
        "which names what it was given: {}",
        out.stderr
    );

    let out = run(&[Path::new("which"), &t.merged]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains(&t.merged.display().to_string())
            && out.stderr.contains("not inside a unionctl mount"),
        "which outside a union: {}",
        out.stderr
    );
}

/// A lower file held open for reading while it is written (copied up) and then unlinked:
/// as on overlayfs, the write works (passthrough once made it EIO), the reader's handle
/// follows the copy-up, and fstat and ftruncate work on the nameless file.
#[test]
fn files_held_open_across_copy_up_and_unlink() {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::MetadataExt;
    let t = setup("cli-held-open");
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone(), t.lower2.clone()],
        upper: Some(t.upper.clone()),
        work: Some(t.work.clone()),
    };
    let _m = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
    let path = t.merged.join("top");
    let mut reader = std::fs::File::open(&path).unwrap();
    let mut first = String::new();
    reader.read_to_string(&mut first).unwrap();
    assert_eq!(first, "from the top lower\n");

    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open for write of a lower file held open: {e}"));
    writer.write_all(b"appended\n").unwrap();
    reader.rewind().unwrap();
    let mut now = String::new();
    reader.read_to_string(&mut now).unwrap();
    assert_eq!(
        now, "from the top lower\nappended\n",
        "the reader sees the copy"
    );

    std::fs::remove_file(&path).unwrap();
    assert_eq!(writer.metadata().unwrap().nlink(), 0);
    writer.set_len(5).unwrap();
    assert_eq!(writer.metadata().unwrap().len(), 5);
    reader.rewind().unwrap();
    let mut last = String::new();
    reader.read_to_string(&mut last).unwrap();
    assert_eq!(last, "from ");
    assert_eq!(
        std::fs::read(t.lower.join("top")).unwrap(),
        b"from the top lower\n",
        "the lower layer is untouched"
    );
}

/// The default work dir (`.NAME.work` beside the upper) is private, as the kernel's
/// `work/` is: no other user may rename or replace what a copy-up stages there.
#[test]
fn the_default_work_dir_is_private() {
    let t = setup("cli-private-work");
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone()],
        upper: Some(t.upper.clone()),
        work: None,
    };
    let mut m = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
    let work = t.s.path().join(".upper.work");
    let log = t.s.path().join(".upper.work.log");
    let mode_of = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
    };
    let (mode, log_mode) = (mode_of(&work), mode_of(&log));
    m.unmount().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode & 0o777, 0o700, "{} has mode {mode:o}", work.display());
    // The daemon runs with umask 0: its log is not for others to write.
    assert_eq!(
        log_mode & 0o777,
        0o600,
        "{} has mode {log_mode:o}",
        log.display()
    );
}

/// A mount empties `WORK/work` and leaves it private: one left by another tool (or a
/// user) with a wider mode is replaced, not reused.
#[test]
fn the_work_dirs_staging_dir_is_emptied_and_private() {
    let t = setup("cli-work-staging");
    let work = t.s.path().join("w");
    for (mode, name) in [(0o777, "left"), (0o700, "also-left")] {
        let staging = work.join("work");
        std::fs::create_dir_all(staging.join(name).join("sub")).unwrap();
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode)).unwrap();
        let dirs = UnionDirs {
            lowers: vec![t.lower.clone()],
            upper: Some(t.upper.clone()),
            work: Some(work.clone()),
        };
        let mut m = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
        let got = std::fs::metadata(&staging).unwrap().permissions().mode() & 0o7777;
        let left: Vec<_> = std::fs::read_dir(&staging).unwrap().flatten().collect();
        m.unmount().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, 0o700, "{} has mode {got:o}", staging.display());
        assert!(left.is_empty(), "{} kept {left:?}", staging.display());
    }
}

/// An upper or work dir that a live union uses is refused as overlayfs (index=on)
/// refuses it (EBUSY): two mounts writing one upper would corrupt it; as a lower layer it
/// would change under the other union. (Each refusal
/// first waits out IN_USE_WAIT, 3 s: a daemon may be on its way out.) Once unmounted,
/// the same dirs mount again at once.
#[test]
fn refuses_an_upper_or_work_dir_in_use() {
    let t = setup("cli-in-use");
    let first_at = t.s.mkdir("first");
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone()],
        upper: Some(t.upper.clone()),
        work: Some(t.work.clone()),
    };
    // The oracle: the kernel refuses a second mount of one upper.
    let other = t.s.mkdir("kernel2");
    let mut k = common::mounts::mount_kernel(&dirs, &first_at).unwrap_or_else(|e| panic!("{e}"));
    // Once, without the helper's retries.
    let second = nix::mount::mount(
        Some("overlay"),
        &other,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(common::mounts::kernel_options(&dirs, false).as_str()),
    );
    if second.is_ok() {
        let _ = nix::mount::umount(&other);
    }
    assert_eq!(
        second,
        Err(nix::errno::Errno::EBUSY),
        "the kernel's second mount of one upper"
    );
    // Nor may the live upper be a lower layer of another mount.
    let (upper2, work2) = (t.s.mkdir("upper2"), t.s.mkdir("work2"));
    let as_lower = UnionDirs {
        lowers: vec![t.upper.clone()],
        upper: Some(upper2.clone()),
        work: Some(work2.clone()),
    };
    let third = nix::mount::mount(
        Some("overlay"),
        &other,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(common::mounts::kernel_options(&as_lower, false).as_str()),
    );
    if third.is_ok() {
        let _ = nix::mount::umount(&other);
    }
    assert_eq!(
        third,
        Err(nix::errno::Errno::EBUSY),
        "the kernel's mount of a live upper as a lower layer"
    );
    k.unmount().unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(&work2).unwrap();

    let mut m = mount_unionctl(&dirs, &first_at, &[]).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(&work2).unwrap();
    t.expect_refused(
        "the upper of a live union with another work dir",
        t.args(&t.lowers(), Some(&t.upper), Some(&work2), &[]),
        &t.upper,
        &["in use"],
    );
    t.expect_refused(
        "the work dir of a live union with another upper",
        t.args(&t.lowers(), Some(&upper2), Some(&t.work), &[]),
        &t.work,
        &["in use"],
    );
    t.expect_refused(
        "the upper of a live union as a lower layer",
        t.args(t.upper.to_str().unwrap(), Some(&upper2), Some(&work2), &[]),
        &t.upper,
        &["upper or work dir of another mount"],
    );
    m.unmount().unwrap_or_else(|e| panic!("{e}"));
    let mut again = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
    again.unmount().unwrap_or_else(|e| panic!("{e}"));
}
