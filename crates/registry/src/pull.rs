//! `pull`: manifest (a list or index resolved to the host's platform), config, then
//! each layer the store lacks. Every blob is checked against its digest while it
//! downloads into a temp file; only checked content reaches the store, where layers
//! are kept uncompressed (blob digest == diff_id) and unpacked once, as `load` does.
use super::blobs;
use super::client::Client;
use super::manifests::{self, Descriptor, Manifest};
use super::reference::Reference;
use crate::error::{Context, Result};
use crate::image::progress::{self, Item, Outcome, Progress};
use crate::image::store::{LayerFile, Store, strip_sha};
use oci_spec::image::ImageConfiguration;
use std::fs;

const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// What a pull brought: the image id and the name it was stored under.
pub struct Pulled {
    pub id: String,
    pub name: String,
    pub layers: usize,
    /// Layers downloaded (the others were in the store already).
    pub downloaded: usize,
}

pub fn pull(
    store: &Store,
    client: &mut Client,
    r: &Reference,
    platform: &manifests::Wanted,
    progress: &mut dyn Progress,
) -> Result<Pulled> {
    let what = r.to_string();
    let mut fetched = manifests::fetch(client, r, &r.manifest_ref())?;
    let via_index = fetched.is_index();
    if via_index {
        let d = manifests::pick_platform(&fetched.bytes, &what, platform)?;
        fetched = manifests::fetch(client, r, &d.digest)?;
        if fetched.is_index() {
            bail!("manifest {what}: a manifest list inside a manifest list is not supported");
        }
    }
    let m: Manifest = serde_json::from_slice(&fetched.bytes)
        .with_context(|| format!("manifest {what} ({})", fetched.digest))?;
    if m.schema_version != 2 {
        bail!(
            "manifest {what}: schemaVersion {} is not supported",
            m.schema_version
        );
    }
    if !m.config.media_type.is_empty() && !CONFIG_TYPES.contains(&m.config.media_type.as_str()) {
        bail!(
            "{what}: not a container image (config media type {:?})",
            m.config.media_type
        );
    }
    let _w = store.writer_lock()?;
    let config_raw = blobs::fetch_small(client, &r.repository, &m.config)
        .with_context(|| format!("config {}", m.config.digest))?;
    let cfg: ImageConfiguration = serde_json::from_slice(&config_raw)
        .with_context(|| format!("parsing image config {}", m.config.digest))?;
    // A single-platform image says its platform in its config only (an index's entry
    // was picked by the platform it names).
    let (os, arch) = (cfg.os().to_string(), cfg.architecture().to_string());
    if platform.explicit && !via_index && (os != platform.os || arch != platform.arch) {
        bail!("the image is for {os}/{arch}, not the platform asked for ({platform})");
    }
    progress.begin(Item::Config, &m.config.digest, Some(m.config.size));
    progress.advance(m.config.size);
    progress.end(Outcome::Done);
    let diff_ids: Vec<String> = cfg
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| strip_sha(d).to_string())
        .collect();
    if diff_ids.len() != m.layers.len() {
        bail!(
            "manifest {what}: {} layers but its config lists {} diff_ids",
            m.layers.len(),
            diff_ids.len()
        );
    }
    // Every missing layer is downloaded and checked before any is stored, so a
    // corrupt or truncated blob leaves nothing behind.
    let mut downloads = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (d, diff) in m.layers.iter().zip(&diff_ids) {
        if present(store, diff) || !seen.insert(diff) {
            // already in the store, or twice in this image
            progress::exists(progress, Item::Blob, &d.digest, Some(d.size));
            continue;
        }
        if d.media_type.contains("encrypted") {
            bail!(
                "layer {}: encrypted layers ({}) are not supported",
                d.digest,
                d.media_type
            );
        }
        progress.begin(Item::Blob, &d.digest, Some(d.size));
        let tmp = blobs::download(client, &r.repository, d, &store.tmp_dir(), progress)
            .with_context(|| format!("layer {}", d.digest))?;
        progress.end(Outcome::Done);
        downloads.push((d, diff, tmp));
    }
    let downloaded = downloads.len();
    for (d, diff, tmp) in downloads {
        take_layer(store, d, diff, tmp).with_context(|| format!("layer {}", d.digest))?;
    }
    let mut layers = Vec::new();
    for diff in &diff_ids {
        layers.push((diff.clone(), fs::metadata(store.blob_path(diff))?.len()));
    }
    let name = r.store_name();
    let (id, _) = store.record_image(&config_raw, &layers, std::slice::from_ref(&name))?;
    Ok(Pulled {
        id,
        name,
        layers: diff_ids.len(),
        downloaded,
    })
}

/// A layer the store holds both as a blob and unpacked.
fn present(store: &Store, diff: &str) -> bool {
    store.blob_path(diff).is_file() && store.layer_dir(diff).is_dir()
}

/// Stores and unpacks one downloaded (and checked) layer blob, after checking its
/// uncompressed digest against the config's diff_id.
fn take_layer(
    store: &Store,
    d: &Descriptor,
    diff: &str,
    tmp: tempfile::NamedTempFile,
) -> Result<()> {
    let mismatch = |hex: &str| {
        crate::image::Error::Invalid(format!(
            "uncompressed content is sha256:{hex}, not the config's diff_id sha256:{diff}; refused, nothing stored"
        ))
    };
    let file = LayerFile::Temp(tmp);
    if let (_, Some(r)) = store.take_layer(file, strip_sha(&d.digest), diff, mismatch)? {
        report(diff, r);
    }
    Ok(())
}

fn report(diff: &str, r: crate::image::layer::UnpackReport) {
    for w in r.warnings {
        eprintln!(
            "unionctl: warning: layer {}: {w}",
            &diff[..12.min(diff.len())]
        );
    }
}
