//! The machine setup the tests rely on, made by `scripts/install-deps.sh` (run as root):
//! the unprivileged test user with a home and /etc/subuid + /etc/subgid ranges, and
//! /dev/fuse open to users. Tests check it and fail with a pointer to the script; they never
//! make it themselves (a test that did would make the others pass only after it ran).
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The unprivileged user of the rootless tests.
pub const TEST_USER: &str = "unionctl-test";

#[track_caller]
fn missing(what: &str) -> ! {
    panic!(
        "machine setup missing: {what}; run `sudo ./scripts/install-deps.sh` (scripts/test.sh does)"
    )
}

/// Whether `name` has a range in a subuid/subgid file's text.
fn has_range(file: &str, name: &str) -> bool {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(':').next() == Some(name))
}

/// The test user's (uid, gid), after checking everything a rootless test needs.
#[track_caller]
pub fn test_user() -> (u32, u32) {
    let Some(u) = nix::unistd::User::from_name(TEST_USER).ok().flatten() else {
        missing(&format!("no user {TEST_USER}"))
    };
    if !u.dir.is_dir() {
        missing(&format!("{TEST_USER} has no home {}", u.dir.display()));
    }
    for f in ["/etc/subuid", "/etc/subgid"] {
        if !has_range(f, TEST_USER) {
            missing(&format!("{TEST_USER} has no range in {f}"));
        }
    }
    for tool in ["/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
        if !Path::new(tool).exists() {
            missing(&format!("{tool} is not installed (package uidmap)"));
        }
    }
    let mode = std::fs::metadata("/dev/fuse")
        .unwrap_or_else(|e| missing(&format!("/dev/fuse: {e}")))
        .permissions()
        .mode();
    if mode & 0o006 != 0o006 {
        missing(&format!(
            "/dev/fuse is mode {:o}, users cannot mount (0666 as on desktop distributions)",
            mode & 0o777
        ));
    }
    (u.uid.as_raw(), u.gid.as_raw())
}
