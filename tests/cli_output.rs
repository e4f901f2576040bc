//! The CLI as a user meets it: a reader that goes away ends a listing quietly (killed by
//! SIGPIPE, as coreutils), never with a panic or an error message; an unknown flag is a
//! usage error that names it.
mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

#[test]
fn a_closed_pipe_ends_listings_quietly() {
    let store = tempfile::tempdir().unwrap();
    for args in [&["images"][..], &["ps", "-a"], &["images", "--json"]] {
        // A pipe whose reader is gone before the command writes: its first write fails.
        let (reader, writer) = nix::unistd::pipe().unwrap();
        drop(reader);
        let out = Command::new(common::unionctl_bin())
            .arg("--root")
            .arg(store.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "unionctl {args:?}: {:?}, stderr: {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "unionctl {args:?} said: {stderr}");
    }
}

/// A flag `run` or `exec` does not know is a usage error naming it (exit 2), not the name
/// of an image or container; after the image, everything is the command's, as in docker.
#[test]
fn unknown_flags_are_usage_errors() {
    let store = tempfile::tempdir().unwrap();
    for args in [
        &["run", "--rm", "--no-such-flag", "img:1", "true"][..],
        &["exec", "--no-such-flag", "ctr", "true"],
    ] {
        let out = Command::new(common::unionctl_bin())
            .arg("--root")
            .arg(store.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "unionctl {args:?}: {stderr}");
        assert!(
            stderr.contains("'--no-such-flag'"),
            "unionctl {args:?} did not name the flag: {stderr}"
        );
    }
}
