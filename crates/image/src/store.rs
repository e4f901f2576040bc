//! The image store: an OCI image layout under the store root, plus each layer unpacked
//! once under `layers/<diffid-hex>/` for containers to share as a lower layer.
//!
//! - `blobs/sha256/<hex>`: manifests, configs and layer tars. Layers are kept
//!   uncompressed, so a layer blob's digest is its diff_id.
//! - `index.json`: one descriptor per (image, tag); the tag is the annotation
//!   `org.opencontainers.image.ref.name` holding a full `name:tag`; an image without
//!   a tag has one descriptor without it.
//! - New blobs, layer dirs and index.json are written under a temp name, flushed and
//!   renamed into place (`sys::durable`), so a crash of the command or of the machine
//!   never leaves a half-written file under its final name. Temp names carry their
//!   owner process (`sys::owned_temp`): every command sweeps those of dead owners.
//! - Locks (flock): `index.lock` around every read-modify-write of index.json;
//!   `gc.lock` shared by commands that add content, exclusive for `rmi`'s sweep, so
//!   the sweep never deletes what a running load has written but not yet indexed.
mod blobs;
mod gc;
mod index;
mod intake;
mod refs;

pub use blobs::{BackgroundBlob, BlobWriter, TeeReader};
pub use intake::LayerFile;
pub use refs::{
    REF_NAME, check_ref, descriptor, group_refs, is_digest_name, normalize_ref, ref_name,
    short_name, split_tag, strip_sha, tag_matches,
};

use super::container;
use super::util;
use crate::error::Result;
use crate::error::{Context, io};
use crate::sys::FileLock;
use oci_spec::image::{ImageConfiguration, ImageManifest};
use std::fs;
use std::path::{Path, PathBuf};

pub struct Store {
    pub root: PathBuf,
}

/// An image as listed in the index.
#[derive(Debug, Clone)]
pub struct ImageRef {
    pub manifest: String,
    pub manifest_size: u64,
    pub tags: Vec<String>,
}

/// An image with its manifest and config read.
pub struct Image {
    pub manifest_hex: String,
    pub manifest: ImageManifest,
    /// The manifest blob as stored (its sha256 is `manifest_hex`).
    pub manifest_raw: Vec<u8>,
    pub id: String,
    pub config: ImageConfiguration,
    pub config_raw: Vec<u8>,
    pub tags: Vec<String>,
}

impl Image {
    /// Diff ids (hex) bottom first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| strip_sha(d).to_string())
            .collect()
    }
    /// Layer blob digests (hex) bottom first.
    pub fn layer_blobs(&self) -> Vec<String> {
        self.manifest
            .layers()
            .iter()
            .map(|d| d.digest().digest().to_string())
            .collect()
    }
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|d| d.size()).sum()
    }
}

impl Store {
    /// Opens the store, creating its layout when missing.
    pub fn open(root: &Path) -> Result<Store> {
        let s = Store {
            root: root.to_path_buf(),
        };
        for d in [s.blobs_dir(), s.root.join("layers"), s.tmp_dir()] {
            fs::create_dir_all(&d).map_err(io("creating", &d))?;
        }
        let layout = s.root.join("oci-layout");
        if !layout.exists() {
            util::atomic_write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        s.sweep_leftovers();
        Ok(s)
    }

    /// Opens the store for reading only: a missing root is an empty store.
    pub fn open_existing(root: &Path) -> Store {
        let s = Store {
            root: root.to_path_buf(),
        };
        s.sweep_leftovers();
        s
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.blobs_dir().join(hex)
    }

    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers").join(strip_sha(diff_id))
    }

    pub fn lock(&self, name: &str, exclusive: bool) -> Result<FileLock> {
        Ok(FileLock::acquire(&self.root.join(name), exclusive)?)
    }

    /// Shared lock for commands that add content (so `rmi` does not sweep it away).
    pub fn writer_lock(&self) -> Result<FileLock> {
        self.lock("gc.lock", false)
    }

    /// Every image in the index, in index order, tags grouped.
    pub fn list(&self) -> Result<Vec<ImageRef>> {
        if !self.root.join("index.json").exists() {
            return Ok(Vec::new());
        }
        let idx = self.read_index()?;
        Ok(group_refs(idx.manifests()))
    }

    pub fn load(&self, r: &ImageRef) -> Result<Image> {
        self.load_inner(r)
    }

    /// Finds an image by name[:tag], full or short id (`sha256:` optional).
    pub fn resolve(&self, reference: &str) -> Result<ImageRef> {
        self.resolve_in(&self.list()?, reference)
    }

    fn load_inner(&self, r: &ImageRef) -> Result<Image> {
        let mbytes = self.read_blob(&r.manifest)?;
        let manifest: ImageManifest = serde_json::from_slice(&mbytes)
            .with_context(|| format!("parsing manifest {}", r.manifest))?;
        let id = manifest.config().digest().digest().to_string();
        let config_raw = self.read_blob(&id)?;
        let config: ImageConfiguration = serde_json::from_slice(&config_raw)
            .with_context(|| format!("parsing image config {id}"))?;
        Ok(Image {
            manifest_hex: r.manifest.clone(),
            manifest,
            manifest_raw: mbytes,
            id,
            config,
            config_raw,
            tags: r.tags.clone(),
        })
    }

    /// `resolve` over a given list (e.g. the index as seen under its lock).
    pub fn resolve_in(&self, list: &[ImageRef], reference: &str) -> Result<ImageRef> {
        let by_tag: Vec<&ImageRef> = list
            .iter()
            .filter(|i| i.tags.iter().any(|t| tag_matches(t, reference)))
            .collect();
        if let Some(first) = by_tag.first() {
            return Ok((*first).clone());
        }
        // NAME@sha256:DIGEST (a pull by digest, inspect's RepoDigests): the image whose
        // manifest has that digest, whatever its names.
        if let Some((name, digest)) = reference.split_once('@') {
            let hex = strip_sha(digest).to_ascii_lowercase();
            // Of that repository, when the image has names (rmi must not take another's).
            let same_repo =
                |t: &String| tag_matches(&format!("{}:x", split_tag(t).0), &format!("{name}:x"));
            if let Some(i) = list
                .iter()
                .find(|i| i.manifest == hex && (i.tags.is_empty() || i.tags.iter().any(same_repo)))
            {
                return Ok(i.clone());
            }
        }
        let hex = strip_sha(reference).to_ascii_lowercase();
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            let mut hits: Vec<&ImageRef> = Vec::new();
            for i in list {
                let id = self.image_id(i).unwrap_or_default();
                if id.starts_with(&hex) || i.manifest.starts_with(&hex) {
                    hits.push(i);
                }
            }
            hits.dedup_by(|a, b| a.manifest == b.manifest);
            match hits.len() {
                0 => {}
                1 => return Ok(hits[0].clone()),
                _ => bail!("image {reference:?}: ambiguous id prefix"),
            }
        }
        // A name no image can have is refused as such, not looked for.
        crate::reference::parse(reference)?;
        Err(crate::error::Error::no_such("image", reference))
    }

    /// The image id (config digest hex) of an index entry.
    pub fn image_id(&self, r: &ImageRef) -> Result<String> {
        let m: ImageManifest = serde_json::from_slice(&self.read_blob(&r.manifest)?)?;
        Ok(m.config().digest().digest().to_string())
    }

    /// The containers made from image IMAGE_ID.
    pub fn users_of(&self, image_id: &str) -> Vec<container::ContainerRecord> {
        container::all(&self.root)
            .into_iter()
            .filter(|c| c.image.as_deref().map(strip_sha) == Some(image_id))
            .collect()
    }
}
