//! `image prune` and the images' part of `system df`: which images nothing needs (no
//! name, or with `all` no container either) and what their layers cost on disk.
use crate::container;
use crate::error::Result;
use crate::store::{self, Store, strip_sha};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// What `image prune` did: `Untagged:`/`Deleted:` lines and the bytes freed.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    pub lines: Vec<String>,
    pub reclaimed: u64,
}

/// Image ids some container (running or not) was made from.
fn used_ids(root: &Path) -> HashSet<String> {
    container::all(root)
        .into_iter()
        .filter_map(|c| c.image.map(|i| strip_sha(&i).to_string()))
        .collect()
}

/// Removes the dangling images (no name) that no container uses; with `all`, every
/// image no container uses. Then sweeps the blobs and layers nothing needs any more.
pub fn prune(root: &Path, all: bool) -> Result<Pruned> {
    if !root.join("index.json").exists() {
        return Ok(Pruned::default());
    }
    let store = Store::open(root)?;
    let before = store_bytes(root);
    let used = used_ids(root);
    let mut lines = Vec::new();
    store.update_index(|descs| {
        let mut gone: HashSet<String> = HashSet::new();
        for r in store::group_refs(descs) {
            let id = store.image_id(&r)?;
            if used.contains(&id) || (!all && !r.tags.is_empty()) {
                continue;
            }
            lines.extend(r.tags.iter().map(|t| format!("Untagged: {t}")));
            lines.push(format!("Deleted: sha256:{id}"));
            gone.insert(r.manifest);
        }
        descs.retain(|d| !gone.contains(d.digest().digest()));
        Ok(())
    })?;
    store.sweep()?;
    Ok(Pruned {
        lines,
        reclaimed: before.saturating_sub(store_bytes(root)),
    })
}

/// Bytes of the store's blobs and unpacked layers.
fn store_bytes(root: &Path) -> u64 {
    ["blobs", "layers"]
        .iter()
        .map(|d| crate::util::disk_usage(&root.join(d)))
        .sum()
}

/// The images' row of `system df`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImageUsage {
    pub total: usize,
    /// Images some container uses.
    pub active: usize,
    /// Layers, each counted once however many images share it.
    pub size: u64,
    /// Layers only unused images need.
    pub reclaimable: u64,
}

pub fn usage(root: &Path) -> Result<ImageUsage> {
    let store = Store::open_existing(root);
    if !root.join("index.json").exists() {
        return Ok(ImageUsage::default());
    }
    let used = used_ids(root);
    let mut sizes: HashMap<String, u64> = HashMap::new();
    let mut needed_by_active: HashSet<String> = HashSet::new();
    let mut u = ImageUsage::default();
    for r in store.list()? {
        let img = store.load(&r)?;
        u.total += 1;
        let active = used.contains(&img.id);
        u.active += usize::from(active);
        for l in img.manifest.layers() {
            let hex = l.digest().digest().to_string();
            sizes.insert(hex.clone(), l.size());
            if active {
                needed_by_active.insert(hex);
            }
        }
    }
    u.size = sizes.values().sum();
    u.reclaimable = sizes
        .iter()
        .filter(|(h, _)| !needed_by_active.contains(*h))
        .map(|(_, s)| s)
        .sum();
    Ok(u)
}
