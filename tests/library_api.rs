//! The library is usable without the CLI: examples/embed.rs mounts a union, runs a
//! container and commits it through the public API alone. This runs it and checks its
//! effects with the CLI and on disk.
mod runner_support;

use runner_support::*;
use std::path::PathBuf;
use std::process::Command;

/// target/<profile>/examples/embed, beside this test's own target/<profile>/deps/.
fn example_bin() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let profile_dir = me.parent().and_then(|d| d.parent()).unwrap();
    let p = profile_dir.join("examples/embed");
    assert!(
        p.exists(),
        "{} missing: build with `cargo build --all-targets`",
        p.display()
    );
    p
}

#[test]
fn a_program_mounts_runs_and_commits_through_the_library() {
    let rootfs = busybox_rootfs();
    let scratch = tempfile::tempdir().unwrap();
    let work = scratch.path().join("w");
    let out = Command::new(example_bin())
        .arg(&rootfs)
        .arg(&work)
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.contains("upper holds: hello"), "{text}");
    assert!(text.contains("diff A /from-container"), "{text}");
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("image sha256:"))
        .unwrap_or_else(|| panic!("no image id in {text}"))
        .to_string();
    // The CLI sees the same store: the image is there and runs with the committed file.
    let root = work.join("store");
    let cli = |args: &[&str]| {
        Command::new(bin())
            .arg("--root")
            .arg(&root)
            .args(args)
            .output()
            .unwrap()
    };
    let images = ok(&cli(&["images", "-q"]));
    assert!(images.contains(&id[..12]), "{images}");
    let cat = ok(&cli(&[
        "run",
        "--rm",
        "embedded:1",
        "cat",
        "/from-container",
    ]));
    assert_eq!(cat.trim(), "made-in-container");
    // No mount is left behind by the library's daemon.
    assert!(host_mounts_with(work.to_str().unwrap()).is_empty());
    ok(&cli(&["rm", "embedded"]));
}
