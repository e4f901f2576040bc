//! `push`: every blob of a stored image the registry lacks (HEAD first), uploaded in
//! one piece, then the manifest. By default the manifest goes exactly as the store
//! holds it, so the pushed digest is the stored manifest's (OCI media types,
//! uncompressed layers); `--compression-format gzip|zstd` sends compressed layers
//! under a manifest rewritten for them (compression is deterministic, so a second push
//! finds the same blobs).
use super::blobs;
use super::client::{Client, Payload};
use super::manifests::{self, OCI_MANIFEST};
use super::reference::Reference;
use crate::error::{Context, Result};
use crate::image::progress::{self, Item, Outcome, Progress};
use crate::image::store::{Image, Store};
use crate::image::util::{self, Compression, HashingWriter};
use serde_json::Value;
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The OCI media type of a layer sent with this compression.
fn layer_media_type(how: Compression) -> &'static str {
    match how {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// A layer blob as it will be sent.
struct Outgoing {
    digest: String,
    size: u64,
    /// What is sent: the store's blob, or the compressed copy in `_file`.
    path: PathBuf,
    /// Keeps the compressed copy until the push is done.
    _file: Option<tempfile::NamedTempFile>,
}

/// Compresses a stored (uncompressed) layer into a temp file; returns it with its
/// digest and size.
fn compress(
    store: &Store,
    hex: &str,
    how: Compression,
) -> Result<(tempfile::NamedTempFile, String, u64)> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(store.blob_path(hex))?);
    let tmp = crate::sys::owned_temp::file_in(&store.tmp_dir())?;
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp));
    let out = match how {
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?
        }
        Compression::None => bail!("nothing to compress"),
    };
    let (mut buf, digest, size) = out.finish();
    buf.flush()?;
    let tmp = buf
        .into_inner()
        .map_err(|e| invalid!("writing: {}", e.error()))?;
    Ok((tmp, format!("sha256:{digest}"), size))
}

/// Pushes `img` to `r`; returns the manifest digest.
pub fn push(
    store: &Store,
    img: &Image,
    client: &mut Client,
    r: &Reference,
    how: Compression,
    progress: &mut dyn Progress,
) -> Result<String> {
    if r.digest.is_some() {
        bail!("the destination must name a tag, not a digest");
    }
    let stored_manifest = &img.manifest_raw;
    let mut outgoing = Vec::new();
    for hex in img.layer_blobs() {
        let o = if how == Compression::None {
            let size = std::fs::metadata(store.blob_path(&hex))
                .with_context(|| format!("blob sha256:{hex} missing from the store"))?
                .len();
            Outgoing {
                digest: format!("sha256:{hex}"),
                size,
                path: store.blob_path(&hex),
                _file: None,
            }
        } else {
            let (file, digest, size) = compress(store, &hex, how)
                .with_context(|| format!("compressing layer sha256:{hex}"))?;
            Outgoing {
                digest,
                size,
                path: file.path().to_path_buf(),
                _file: Some(file),
            }
        };
        outgoing.push(o);
    }
    let (manifest, media_type) = if how == Compression::None {
        let media_type = serde_json::from_slice::<Value>(stored_manifest)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
            .unwrap_or_else(|| OCI_MANIFEST.to_string());
        (Cow::Borrowed(stored_manifest.as_slice()), media_type)
    } else {
        (
            Cow::Owned(rewrite_layers(stored_manifest, &outgoing, how)?),
            OCI_MANIFEST.to_string(),
        )
    };

    // A repository of the same registry this image came from (or went to) may have the
    // blobs: the registry can link them instead of receiving them again.
    let mount_from: Option<String> = img.tags.iter().find_map(|t| {
        let src = Reference::parse(t).ok()?;
        (src.registry == r.registry && src.repository != r.repository).then_some(src.repository)
    });
    let config = store.blob_path(&img.id);
    let cfg_size = std::fs::metadata(&config)
        .with_context(|| format!("config sha256:{} missing from the store", img.id))?
        .len();
    let config_digest = format!("sha256:{}", img.id);
    let mut all: Vec<(&str, u64, &Path, Item)> = outgoing
        .iter()
        .map(|o| (o.digest.as_str(), o.size, o.path.as_path(), Item::Blob))
        .collect();
    all.push((&config_digest, cfg_size, &config, Item::Config));
    for (digest, size, path, item) in all {
        if blobs::exists(client, &r.repository, digest)? {
            progress::exists(progress, item, digest, Some(size));
            continue;
        }
        progress.begin(item, digest, Some(size));
        let shared = std::cell::RefCell::new(&mut *progress);
        let on_read = |n: u64| shared.borrow_mut().advance(n);
        let mounted = blobs::upload(
            client,
            &r.repository,
            digest,
            Payload::File(path, &on_read),
            mount_from.as_deref(),
        )
        .with_context(|| format!("blob {digest}"))?;
        progress.end(match mounted {
            true => Outcome::Exists,
            false => Outcome::Done,
        });
    }
    let ours = format!("sha256:{}", util::sha256_hex(&manifest));
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    let theirs = manifests::put(client, &r.repository, &tag, &media_type, &manifest)?;
    if !theirs.is_empty() && theirs != ours {
        bail!("the registry stored the manifest as {theirs}, expected {ours}");
    }
    Ok(ours)
}

/// The stored manifest with its layer descriptors pointing at the compressed blobs.
fn rewrite_layers(stored: &[u8], out: &[Outgoing], how: Compression) -> Result<Vec<u8>> {
    let mut m: Value = serde_json::from_slice(stored).context("parsing the stored manifest")?;
    let layers = m
        .get_mut("layers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| invalid!("the stored manifest has no layers list"))?;
    if layers.len() != out.len() {
        bail!(
            "the stored manifest lists {} layers, the image {}",
            layers.len(),
            out.len()
        );
    }
    for (l, o) in layers.iter_mut().zip(out) {
        l["mediaType"] = Value::from(layer_media_type(how));
        l["digest"] = Value::from(o.digest.clone());
        l["size"] = Value::from(o.size);
    }
    m["mediaType"] = Value::from(OCI_MANIFEST);
    Ok(serde_json::to_vec(&m)?)
}
