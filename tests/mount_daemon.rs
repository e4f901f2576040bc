//! `unionctl mount` / `unionctl umount` and the daemon's life: a mount whose daemon was
//! killed (also in the middle of a copy-up) can still be unmounted and remounted whole,
//! a foreground mount lasts until unmounted, and umount returns only once the daemon is gone.
mod common;
#[path = "mount_cli/setup.rs"]
mod setup;

use common::mounts::{UnionDirs, is_mount_point, mount_unionctl, run_unionctl};
use setup::setup;

#[test]
fn umount_after_the_daemon_was_killed() {
    let t = setup("cli-killed");
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone()],
        upper: Some(t.upper.clone()),
        work: Some(t.work.clone()),
    };
    let m = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
    let pids = common::mounts::unionctl_daemons(&t.merged);
    assert!(
        !pids.is_empty(),
        "no unionctl process serves {}",
        t.merged.display()
    );
    for pid in &pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::SIGKILL);
    }
    common::events::wait_all_exit(&pids, "the killed daemon");
    let err = std::fs::metadata(t.merged.join("top"))
        .expect_err("a mount without its daemon still answers");
    // ENOTCONN, or ECONNABORTED when the kernel saw the connection aborted as the
    // daemon's device fds closed: both say "no daemon".
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::ENOTCONN) | Some(libc::ECONNABORTED)
        ),
        "stat on a dead union: {err}"
    );
    std::mem::forget(m); // unmounted below by the command under test
    let out = run_unionctl(&["umount".into(), t.merged.clone().into()], 30);
    assert!(
        out.status.success(),
        "unionctl umount of a dead mount failed: {}",
        out.stderr.trim()
    );
    assert!(
        !is_mount_point(&t.merged),
        "still mounted after unionctl umount"
    );
    assert!(
        t.merged.is_dir(),
        "the mount point is unusable after umount"
    );
}

/// `umount` unmounts unions only: another file system mounted there stays.
#[test]
fn umount_leaves_other_file_systems_mounted() {
    let t = setup("cli-umount-tmpfs");
    common::mounts::mount_tmpfs(&t.merged);
    let out = run_unionctl(&["umount".into(), t.merged.clone().into()], 30);
    let still = is_mount_point(&t.merged);
    let _ = nix::mount::umount(&t.merged);
    assert!(!out.status.success(), "umount of a tmpfs succeeded");
    assert!(still, "the tmpfs was unmounted");
    assert!(
        out.stderr.contains("not a union mount"),
        "{}",
        out.stderr.trim()
    );
}

#[test]
fn umount_of_a_directory_that_is_not_mounted() {
    let t = setup("cli-umount-none");
    let out = run_unionctl(&["umount".into(), t.merged.clone().into()], 30);
    let err = out.stderr.trim();
    assert!(
        !out.status.success(),
        "umount of a plain directory succeeded"
    );
    assert_eq!(err.lines().count(), 1, "want one error line, got:\n{err}");
    assert!(
        err.contains(&t.merged.display().to_string()),
        "the error does not name the path: {err}"
    );
}

/// `unionctl mount -f` of DIRS at MERGED, returned once the mount is in place.
/// Its stderr goes to `stderr`, so a failing test can tell why it exited.
fn spawn_foreground(
    dirs: &UnionDirs,
    merged: &std::path::Path,
    stderr: &std::path::Path,
) -> std::process::Child {
    let args = common::mounts::unionctl_mount_args(dirs, merged, &["-f"]);
    let child = std::process::Command::new(common::unionctl_bin())
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    common::events::wait_on_mounts("the foreground mount to appear", || is_mount_point(merged));
    child
}

#[test]
fn foreground_mount_stays_until_unmounted() {
    let t = setup("cli-foreground");
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone()],
        upper: Some(t.upper.clone()),
        work: Some(t.work.clone()),
    };
    let log = t.s.path().join("mount-f.stderr");
    let mut child = spawn_foreground(&dirs, &t.merged, &log);
    std::fs::write(t.merged.join("written"), b"through -f").unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "unionctl mount -f exited while mounted"
    );
    let out = run_unionctl(&["umount".into(), t.merged.clone().into()], 30);
    assert!(out.status.success(), "umount: {}", out.stderr.trim());
    common::events::wait_exit(child.id() as i32, "unionctl mount -f after umount");
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "unionctl mount -f exited with {status} after umount: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        std::fs::read(t.upper.join("written")).unwrap(),
        b"through -f"
    );
}

/// `unionctl umount` returns only when the daemon is gone: a daemon that exits later
/// could unmount whatever is mounted on the same path next (a container remounted there).
#[test]
fn umount_returns_after_the_daemon_is_gone() {
    let t = setup("cli-umount-race");
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone()],
        upper: Some(t.upper.clone()),
        work: Some(t.work.clone()),
    };
    for round in 0..5 {
        let m = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
        std::mem::forget(m); // unmounted by the command under test
        let daemons = common::mounts::unionctl_daemons(&t.merged);
        assert!(
            !daemons.is_empty(),
            "no daemon serves {}",
            t.merged.display()
        );
        let out = run_unionctl(&["umount".into(), t.merged.clone().into()], 30);
        assert!(out.status.success(), "umount: {}", out.stderr.trim());
        common::mounts::mount_tmpfs(&t.merged);
        let left = common::mounts::unionctl_daemons(&t.merged);
        // Once the daemon is gone it cannot unmount anything any more: then look.
        common::events::wait_all_exit(&daemons, "the unmounted union's daemon");
        let still = is_mount_point(&t.merged);
        if still {
            nix::mount::umount(&t.merged).unwrap();
        }
        assert!(
            still,
            "round {round}: a tmpfs mounted on {} right after `unionctl umount` vanished: \
             the exiting daemon unmounted it (daemon still running at umount's return: {left:?})",
            t.merged.display()
        );
        assert!(
            left.is_empty(),
            "round {round}: unionctl umount returned while its daemon {left:?} still ran"
        );
    }
}

/// Kills the daemons serving the append WRITER at POINT: when the copy-up's temp file in
/// TEMP holds COPIED bytes (or the copy-up ended: UPPER_BIG exists), at once (round 0),
/// or after the append returned.
fn kill_at(
    point: &str,
    copied: Option<u64>,
    round: usize,
    temp: &std::path::Path,
    upper_big: &std::path::Path,
    writer: &mut std::process::Child,
    daemons: &[i32],
) {
    if let Some(n) = copied {
        // The largest file in the work dir: the copy-up's temp file.
        let temp_len = || {
            std::fs::read_dir(temp)
                .unwrap()
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .max()
        };
        common::events::wait_on_path(temp, point, || match temp_len() {
            Some(len) => len >= n,
            None => upper_big.exists(),
        });
    } else if round > 0 {
        let _ = writer.wait();
    }
    for pid in daemons {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::SIGKILL);
    }
    let _ = writer.wait();
}

/// Copy-up goes through the work dir (temp file + rename): killing the daemon in the middle
/// of copying a big file never leaves a partial file visible after remount, and the next
/// mount clears the leftovers from the work dir.
#[test]
fn killed_during_copy_up_leaves_no_partial_file() {
    const SIZE: usize = 64 << 20;
    let t = setup("cli-crash-copy-up");
    let original: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    std::fs::write(t.lower.join("big"), &original).unwrap();
    // Kill points along the copy-up, each reached as an event: at once, when the temp
    // file appears in the work dir, when it holds 1, 16 or 48 MiB (or the copy-up already
    // ended), and after the append returned.
    let points: [(&str, Option<u64>); 6] = [
        ("at once", None),
        ("at the temp file", Some(0)),
        ("at 1 MiB", Some(1 << 20)),
        ("at 16 MiB", Some(16 << 20)),
        ("at 48 MiB", Some(48 << 20)),
        ("after the append", None),
    ];
    for (round, (point, copied)) in points.into_iter().enumerate() {
        let upper = t.s.mkdir(&format!("crash{round}/upper"));
        let work = t.s.mkdir(&format!("crash{round}/work"));
        let dirs = UnionDirs {
            lowers: vec![t.lower.clone()],
            upper: Some(upper),
            work: Some(work.clone()),
        };
        let m = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
        std::mem::forget(m); // unmounted below with unionctl umount
        let daemons = common::mounts::unionctl_daemons(&t.merged);
        assert!(
            !daemons.is_empty(),
            "no daemon serves {}",
            t.merged.display()
        );
        // Appending one byte makes the daemon copy the whole file up first.
        let mut writer = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf x >> '{}'", t.merged.join("big").display()))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let upper_big = dirs.upper.as_ref().unwrap().join("big");
        kill_at(
            point,
            copied,
            round,
            &work.join("work"),
            &upper_big,
            &mut writer,
            &daemons,
        );
        common::events::wait_all_exit(&daemons, "the killed daemon");
        let out = run_unionctl(&["umount".into(), t.merged.clone().into()], 30);
        assert!(
            out.status.success(),
            "round {round}: umount of the dead mount: {}",
            out.stderr.trim()
        );
        common::events::wait_on_mounts("the dead mount to go", || !is_mount_point(&t.merged));

        let crashed_mid_copy = std::fs::read_dir(work.join("work"))
            .map(|r| r.count() > 0)
            .unwrap_or(false);
        let mut m = mount_unionctl(&dirs, &t.merged, &[])
            .unwrap_or_else(|e| panic!("round {round}: remount: {e}"));
        let seen = std::fs::read(t.merged.join("big"))
            .unwrap_or_else(|e| panic!("round {round}: read big: {e}"));
        let leftovers: Vec<String> = std::fs::read_dir(work.join("work"))
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        m.unmount().unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "round {round}: killed {point}, the append {}{}",
            if seen.len() > SIZE {
                "completed"
            } else {
                "did not complete"
            },
            if crashed_mid_copy {
                ", a copy-up was under way"
            } else {
                ""
            }
        );
        let whole = seen.len() == SIZE && seen == original
            || seen.len() == SIZE + 1 && seen[..SIZE] == original[..] && seen[SIZE] == b'x';
        assert!(
            whole,
            "round {round} (killed {point}): after remount big has {} bytes and is neither the lower file nor the lower file + 'x': a partial copy-up is visible",
            seen.len()
        );
        assert!(
            leftovers.is_empty(),
            "round {round}: the remount left the crashed copy-up's leftovers in {}: {leftovers:?}",
            work.join("work").display()
        );
    }
}

/// `mount -f` ends on SIGTERM or SIGINT as fuse-overlayfs does: it unmounts (lazily, so a
/// busy mount goes too) and exits 0, leaving no dead mount point behind.
#[test]
fn foreground_mount_unmounts_on_sigterm_and_sigint() {
    let t = setup("cli-foreground-signal");
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone()],
        upper: Some(t.upper.clone()),
        work: Some(t.work.clone()),
    };
    for sig in [nix::sys::signal::SIGTERM, nix::sys::signal::SIGINT] {
        let log = t.s.path().join(format!("mount-f-{sig}.stderr"));
        let mut child = spawn_foreground(&dirs, &t.merged, &log);
        std::fs::write(t.merged.join("written"), b"through -f").unwrap();
        // A file held open keeps the mount busy: the signal must end it all the same.
        let held = std::fs::File::open(t.merged.join("written")).unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        common::events::wait_on_mounts("the mount to go after the signal", || {
            !is_mount_point(&t.merged)
        });
        drop(held);
        common::events::wait_exit(child.id() as i32, "unionctl mount -f after the signal");
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "mount -f after {sig}: {status}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert_eq!(
            std::fs::read(t.upper.join("written")).unwrap(),
            b"through -f"
        );
    }
}

/// The background daemon answers SIGTERM the same way: the mount goes, then the daemon.
#[test]
fn daemon_unmounts_on_sigterm() {
    let t = setup("cli-daemon-sigterm");
    let dirs = UnionDirs {
        lowers: vec![t.lower.clone()],
        upper: Some(t.upper.clone()),
        work: Some(t.work.clone()),
    };
    let m = mount_unionctl(&dirs, &t.merged, &[]).unwrap_or_else(|e| panic!("{e}"));
    std::mem::forget(m); // the signal unmounts it
    let daemons = common::mounts::unionctl_daemons(&t.merged);
    assert!(
        !daemons.is_empty(),
        "no daemon serves {}",
        t.merged.display()
    );
    for pid in &daemons {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::SIGTERM)
            .unwrap();
    }
    common::events::wait_on_mounts("the mount to go after SIGTERM", || {
        !is_mount_point(&t.merged)
    });
    common::events::wait_all_exit(&daemons, "the daemon after SIGTERM");
}
