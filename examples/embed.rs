//! A program other than the unionctl CLI, built on the library alone: it mounts a union
//! of a rootfs under a fresh upper layer, writes through it, runs a container on the
//! same rootfs, commits the container as an image and prints what the image holds.
//!
//!     cargo run --example embed -- ROOTFS SCRATCH_DIR
//!
//! ROOTFS must hold /bin/sh; SCRATCH_DIR is created and holds every file written.
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use unionctl::fuse::{self, MountRequest};
use unionctl::image::{self, CommitOptions};
use unionctl::runner::{self, RunOptions, RunOutcome};
use unionctl::whiteout::Format;

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [rootfs, scratch] = args.as_slice() else {
        bail!("usage: embed ROOTFS SCRATCH_DIR");
    };
    std::fs::create_dir_all(scratch).with_context(|| format!("{}", scratch.display()))?;
    union_mount(rootfs, scratch)?;
    let root = scratch.join("store");
    let id = run_and_commit(rootfs, &root)?;
    println!("image sha256:{id}");
    for (path, kind) in image::diff::changes(&root, "embedded")? {
        println!("diff {kind} {path}");
    }
    Ok(())
}

/// Mounts ROOTFS under an upper layer, writes a file through the mount, unmounts.
fn union_mount(rootfs: &Path, scratch: &Path) -> anyhow::Result<()> {
    let (upper, merged) = (scratch.join("upper"), scratch.join("merged"));
    for d in [&upper, &merged] {
        std::fs::create_dir_all(d)?;
    }
    let req = MountRequest::new(
        vec![rootfs.to_path_buf()],
        Some(upper.clone()),
        Some(scratch.join("work")),
        Format::Overlay,
        &[],
        merged.clone(),
    )?;
    fuse::mount(&req)?;
    let layers = fuse::layers(&merged)?;
    let wrote = std::fs::write(merged.join("written-by-embed"), "hello\n");
    fuse::umount_and_wait(&merged)?;
    wrote?;
    println!("mounted {} layers", layers.len());
    println!(
        "upper holds: {}",
        std::fs::read_to_string(upper.join("written-by-embed"))?.trim()
    );
    Ok(())
}

/// Runs a container on ROOTFS in the foreground, then commits it; returns the image id.
fn run_and_commit(rootfs: &Path, root: &Path) -> anyhow::Result<String> {
    let opts = RunOptions {
        name: Some("embedded".into()),
        rootfs: Some(rootfs.to_path_buf()),
        network: "none".into(),
        args: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo made-in-container > /from-container".into(),
        ],
        ..RunOptions::default()
    };
    match runner::run(root, opts)? {
        RunOutcome::Exited(0) => {}
        RunOutcome::Exited(code) => bail!("the container exited with {code}"),
        RunOutcome::NotStarted(e) => {
            return Err(anyhow::Error::from(e).context("the container did not start"));
        }
        RunOutcome::Detached(_) | RunOutcome::NotRun(..) => unreachable!("not detached"),
    }
    let record = image::container::find(root, "embedded")?;
    let commit = CommitOptions {
        reference: Some("embedded:1".into()),
        message: Some("committed through the library".into()),
        ..CommitOptions::default()
    };
    Ok(image::commit(
        root,
        &record,
        &commit,
        None,
        &mut image::progress::Silent,
    )?)
}
