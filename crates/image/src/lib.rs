//! Image store: OCI layout, layers, commit, tag, save/load, export/import.
//!
//! - `store`: blobs, index.json (tags), layers unpacked once, locks, sweep
//! - `layer`: tar <-> dir with whiteout conversion and tar safety
//! - `archive`: docker-archive / oci-archive save and load
//! - `commit`, `transfer` (export/import), `diff`, `listing` (images/tag/rmi/history/inspect)
//! - `merged`: the merged view of layer dirs without a mount
//! - `container`: the runner's container records, read tolerantly
//! - `progress`: what long copies report, item by item, to their caller

// The crates below this one, under the names the modules use.
pub use progress::Progress;
pub use unionctl_union::timestamp;
pub(crate) use unionctl_union::{sys, unionfs, whiteout};
#[macro_use]
pub mod error;
pub mod archive;
pub mod commit;
pub mod container;
pub mod diff;
pub mod layer;
pub mod listing;
pub mod progress;
pub mod prune;
pub mod reference;
pub mod store;

pub mod transfer;
pub mod util;
pub mod views;

use error::Context;
pub use error::{Error, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use store::Store;

pub use commit::{CommitOptions, commit};

/// The store root: `--root`/`UNIONCTL_ROOT` if given, else /var/lib/unionctl as root and
/// `$XDG_DATA_HOME/unionctl` (or `~/.local/share/unionctl`) otherwise. The runner and
/// the registry client use the same one, so `run` and `images` always agree.
pub fn store_root(opt: Option<PathBuf>) -> PathBuf {
    if let Some(p) = opt {
        // Absolute, so that a detached supervisor (which leaves the caller's working
        // directory) finds it again.
        return std::path::absolute(&p).unwrap_or(p);
    }
    // SAFETY: getter.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/unionctl");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("unionctl");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/unionctl")
}

/// Writes the images REFS to OUT as a docker-archive or oci-archive (`format`). An
/// image named by a name is saved with that name; by id, with none (as docker saves it).
/// An image named twice is saved once, with each name once. `progress` hears of each blob.
pub fn save(
    root: &Path,
    refs: &[String],
    format: &str,
    out: &mut dyn Write,
    progress: &mut dyn Progress,
) -> Result<()> {
    let store = Store::open_existing(root);
    let mut images: Vec<(store::Image, Vec<String>)> = Vec::new();
    for r in refs {
        let found = store.resolve(r)?;
        let img = store.load(&found)?;
        // Saved with the tags it was named by (an archive's names hold no digest).
        let named = img
            .tags
            .iter()
            .filter(|t| !store::is_digest_name(t) && store::tag_matches(t, r));
        match images.iter_mut().find(|(i, _)| i.id == img.id) {
            Some((_, tags)) => {
                for t in named {
                    if !tags.contains(t) {
                        tags.push(t.clone());
                    }
                }
            }
            None => {
                let tags = named.cloned().collect();
                images.push((img, tags));
            }
        }
    }
    archive::save(&store, &images, format, out, progress)
}

/// Reads a docker-archive or oci-archive; returns each loaded name (or `sha256:` id of an
/// image without one). WHAT names the input in errors; `progress` hears of each layer.
pub fn load(
    root: &Path,
    input: impl Read + Send + 'static,
    what: &str,
    progress: &mut dyn Progress,
) -> Result<Vec<String>> {
    let store = Store::open(root)?;
    archive::load(&store, input, progress).with_context(|| format!("reading {what}"))
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
        return Err(crate::error::Error::no_such("image", reference));
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
