//! index.json: read, updated under `index.lock`, written durably; images recorded in it.
use super::{Store, descriptor, normalize_ref, ref_name};
use crate::error::Result;
use crate::error::{Context, io};
use crate::util;
use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use std::fs;

impl Store {
    pub(super) fn read_index(&self) -> Result<ImageIndex> {
        let p = self.root.join("index.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parsing {}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(empty_index()),
            Err(e) => Err(e).map_err(io("reading", &p)),
        }
    }

    fn write_index(&self, idx: &ImageIndex) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(idx)?;
        util::atomic_write(&self.root.join("index.json"), &bytes)
    }

    /// Applies `f` to index.json under the index lock.
    pub fn update_index(&self, f: impl FnOnce(&mut Vec<Descriptor>) -> Result<()>) -> Result<()> {
        let _l = self.lock("index.lock", true)?;
        let mut idx = self.read_index()?;
        let mut list = idx.manifests().clone();
        f(&mut list)?;
        idx.set_manifests(list);
        self.write_index(&idx)
    }

    /// Records an image (manifest blob already stored) with these tags; a tag that
    /// named another image moves here, and an image left without tags stays as `<none>`.
    pub fn add_image(&self, manifest_hex: &str, size: u64, tags: &[String]) -> Result<()> {
        let tags: Vec<String> = tags.iter().map(|t| normalize_ref(t)).collect();
        self.update_index(|list| {
            let digest = format!("sha256:{manifest_hex}");
            let moved: Vec<String> = list
                .iter()
                .filter(|d| ref_name(d).is_some_and(|t| tags.contains(&t)))
                .map(|d| d.digest().digest().to_string())
                .filter(|h| h != manifest_hex)
                .collect();
            list.retain(|d| !ref_name(d).is_some_and(|t| tags.contains(&t)));
            for m in moved {
                if !list.iter().any(|d| d.digest().digest() == m) {
                    list.push(descriptor(&m, size_of_manifest(self, &m), None)?);
                }
            }
            let present = list.iter().any(|d| d.digest().digest() == manifest_hex);
            if tags.is_empty() {
                if !present {
                    list.push(descriptor(manifest_hex, size, None)?);
                }
                return Ok(());
            }
            // An untagged entry of this image is replaced by its tags.
            list.retain(|d| !(d.digest().to_string() == digest && ref_name(d).is_none()));
            for t in &tags {
                list.push(descriptor(manifest_hex, size, Some(t))?);
            }
            Ok(())
        })
    }

    /// Stores a config and a manifest for layers already stored (uncompressed, blob
    /// hex == diff_id, bottom first) and records the image with `tags`.
    /// Returns (image id, manifest hex).
    pub fn record_image(
        &self,
        config_raw: &[u8],
        layers: &[(String, u64)],
        tags: &[String],
    ) -> Result<(String, String)> {
        use oci_spec::image::{Digest, ImageManifestBuilder};
        let (cfg_hex, cfg_size) = self.put_blob(config_raw)?;
        let cfg_digest: Digest = format!("sha256:{cfg_hex}").parse()?;
        let mut descs = Vec::new();
        for (hex, size) in layers {
            let d: Digest = format!("sha256:{hex}").parse()?;
            descs.push(Descriptor::new(MediaType::ImageLayer, *size, d));
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                cfg_size,
                cfg_digest,
            ))
            .layers(descs)
            .build()?;
        let mbytes = serde_json::to_vec(&manifest)?;
        let (m_hex, m_size) = self.put_blob(&mbytes)?;
        self.add_image(&m_hex, m_size, tags)?;
        Ok((cfg_hex, m_hex))
    }
}

fn size_of_manifest(s: &Store, hex: &str) -> u64 {
    fs::metadata(s.blob_path(hex)).map(|m| m.len()).unwrap_or(0)
}

fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .expect("static index")
}
