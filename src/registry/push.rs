//! `push`: every blob of a stored image the registry lacks (HEAD first), uploaded in
//! one piece, then the manifest exactly as the store holds it, so the pushed digest is
//! the stored manifest's (OCI media types, uncompressed layers).
use super::blobs;
use super::client::{Client, Payload};
use super::manifests::{self, OCI_MANIFEST};
use super::reference::Reference;
use crate::image::store::{Image, Store};
use crate::image::util::Progress;
use anyhow::{Context, Result, bail};

/// Pushes `img` to `r`; returns the manifest digest.
pub fn push(store: &Store, img: &Image, client: &mut Client, r: &Reference) -> Result<String> {
    let what = r.to_string();
    if r.digest.is_some() {
        bail!("push {what}: the destination must name a tag, not a digest");
    }
    let manifest = store.read_blob(&img.manifest_hex)?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    let mut wanted: Vec<String> = img.layer_blobs();
    wanted.push(img.id.clone());
    // A repository of the same registry this image came from (or went to) may have the
    // blobs: the registry can link them instead of receiving them again.
    let mount_from: Option<String> = img.tags.iter().find_map(|t| {
        let src = Reference::parse(t).ok()?;
        (src.registry == r.registry && src.repository != r.repository).then_some(src.repository)
    });
    let mut progress = Progress::new(&format!("push {what}"));
    for hex in &wanted {
        let digest = format!("sha256:{hex}");
        if blobs::exists(client, &r.repository, &digest)? {
            continue;
        }
        let path = store.blob_path(hex);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("push {what}: blob {digest} missing from the store"))?
            .len();
        let mounted = blobs::upload(
            client,
            &r.repository,
            &digest,
            Payload::File(&path),
            mount_from.as_deref(),
        )
        .with_context(|| format!("push {what}"))?;
        if !mounted {
            progress.add(size);
        }
    }
    progress.finish();
    let ours = format!("sha256:{}", img.manifest_hex);
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    let theirs = manifests::put(client, &r.repository, &tag, &media_type, &manifest)?;
    if !theirs.is_empty() && theirs != ours {
        bail!("push {what}: the registry stored the manifest as {theirs}, expected {ours}");
    }
    Ok(ours)
}
