//! The CLI's output side: a reader that goes away ends a listing quietly (killed by
//! SIGPIPE, as coreutils), never with a panic or an error message.
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
