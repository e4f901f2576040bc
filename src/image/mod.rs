//! Image store: OCI layout, layers, commit, tag, save/load, export/import.
//!
//! - `store`: blobs, index.json (tags), layers unpacked once, locks, sweep
//! - `layer`: tar <-> dir with whiteout conversion and tar safety
//! - `archive`: docker-archive / oci-archive save and load
//! - `commit`, `transfer` (export/import), `diff`, `listing` (images/tag/rmi/history/inspect)
//! - `merged`: the merged view of layer dirs without a mount
//! - `container`: the runner's container records, read tolerantly
pub mod archive;
pub mod commit;
pub mod container;
pub mod diff;
pub mod layer;
pub mod listing;
pub mod store;
pub mod transfer;
pub mod util;
pub mod views;

use crate::cli::*;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use store::Store;

/// The same store root as the runner's, so `run` and `images` always agree.
fn root_of(root: Option<PathBuf>) -> PathBuf {
    crate::runner::store_root(root)
}

pub fn cmd_images(root: Option<PathBuf>, a: ListArgs) -> Result<i32> {
    listing::images(&root_of(root), a.all, a.quiet, a.json)?;
    Ok(0)
}

pub fn cmd_tag(root: Option<PathBuf>, a: TagArgs) -> Result<i32> {
    listing::tag(&root_of(root), &a.source, &a.target)?;
    Ok(0)
}

pub fn cmd_rmi(root: Option<PathBuf>, a: RmiArgs) -> Result<i32> {
    listing::rmi(&root_of(root), &a.images, a.force)
}

pub fn cmd_history(root: Option<PathBuf>, a: ImgArgs) -> Result<i32> {
    listing::history(&root_of(root), &a.image, a.json)?;
    Ok(0)
}

pub fn cmd_inspect(root: Option<PathBuf>, a: InspectArgs) -> Result<i32> {
    listing::inspect(&root_of(root), &a.targets)
}

pub fn cmd_commit(root: Option<PathBuf>, a: CommitArgs) -> Result<i32> {
    let id = commit::commit(&root_of(root), &a)?;
    println!("sha256:{id}");
    Ok(0)
}

pub fn cmd_diff(root: Option<PathBuf>, a: CtrArgs) -> Result<i32> {
    diff::cmd(&root_of(root), &a.container)?;
    Ok(0)
}

pub fn cmd_save(root: Option<PathBuf>, a: SaveArgs) -> Result<i32> {
    let store = Store::open_existing(&root_of(root));
    let mut images = Vec::new();
    for r in &a.images {
        let found = store.resolve(r)?;
        let img = store.load(&found)?;
        // Saved by name: that name; by id: every name of the image.
        let named: Vec<String> = img
            .tags
            .iter()
            .filter(|t| store::tag_matches(t, r))
            .cloned()
            .collect();
        let tags = if named.is_empty() {
            img.tags.clone()
        } else {
            named
        };
        images.push((img, tags));
    }
    let mut out = transfer::Output::open(a.output.as_deref())?;
    archive::save(&store, &images, &a.format, out.writer())?;
    out.finish()?;
    Ok(0)
}

pub fn cmd_load(root: Option<PathBuf>, a: LoadArgs) -> Result<i32> {
    let root = root_of(root);
    let input = archive::open_input(a.input.as_deref())?;
    let what = a
        .input
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdin".into());
    let store = Store::open(&root)?;
    let loaded = archive::load(&store, input).with_context(|| format!("load {what}"))?;
    for l in loaded {
        if l.starts_with("sha256:") {
            println!("Loaded image ID: {l}");
        } else {
            println!("Loaded image: {l}");
        }
    }
    Ok(0)
}

pub fn cmd_export(root: Option<PathBuf>, a: ExportArgs) -> Result<i32> {
    transfer::export(&root_of(root), &a.container, a.output.as_deref())?;
    Ok(0)
}

pub fn cmd_import(root: Option<PathBuf>, a: ImportArgs) -> Result<i32> {
    let id = transfer::import(&root_of(root), &a.file, a.reference.as_deref())?;
    println!("sha256:{id}");
    Ok(0)
}

/// What `unionctl run IMAGE` needs from the store: the image's unpacked layer dirs
/// (top layer first, ready to be lower layers) and its run configuration.
#[derive(Debug, Clone, Default)]
pub struct ImageRunInfo {
    /// Full image id (sha256 hex of the config blob).
    pub id: String,
    /// Unpacked layer directories, top-most first (the order of `--lower`).
    pub lowers: Vec<PathBuf>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// Resolves an image reference (name[:tag], id or id prefix) for `run`.
pub fn resolve_for_run(root: &Path, reference: &str) -> Result<ImageRunInfo> {
    if !root.join("index.json").exists() {
        bail!("image {reference:?}: no such image");
    }
    let store = Store::open(root)?;
    // Held while layers may be unpacked, so a concurrent rmi does not sweep them.
    let _w = store.writer_lock()?;
    let img = store.load(&store.resolve(reference)?)?;
    let mut lowers = Vec::new();
    for (blob, diff) in img.layer_blobs().iter().zip(img.diff_ids()) {
        lowers.push(store.ensure_unpacked(blob, &diff)?);
    }
    lowers.reverse();
    let cfg = img.config.config().clone().unwrap_or_default();
    Ok(ImageRunInfo {
        id: img.id.clone(),
        lowers,
        entrypoint: cfg.entrypoint().clone().unwrap_or_default(),
        cmd: cfg.cmd().clone().unwrap_or_default(),
        env: cfg.env().clone().unwrap_or_default(),
        workdir: cfg.working_dir().clone().filter(|w| !w.is_empty()),
        user: cfg.user().clone().filter(|u| !u.is_empty()),
    })
}
