//! Image archives: docker-archive (manifest.json + config + layer tars, what
//! `docker load`, `podman load` and `skopeo copy docker-archive:` read) and
//! oci-archive (an OCI image layout in a tar). Load reads both, whole-archive or
//! per-layer gzip/zstd included, from a file or a pipe.
use super::layer;
use super::progress::{Item, Outcome, Progress, ProgressReader};
use super::store::{self, Image, LayerFile, Store, strip_sha};
use super::util::{self, HashingWriter};
use crate::error::Result;
use crate::error::{Context, io};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

// ---------------------------------------------------------------------------------
// save

pub fn save(
    store: &Store,
    images: &[(Image, Vec<String>)],
    format: &str,
    out: impl Write,
    progress: &mut dyn Progress,
) -> Result<()> {
    let mut b = tar::Builder::new(out);
    match format {
        "oci-archive" => save_oci(store, images, &mut b, progress)?,
        _ => save_docker(store, images, &mut b, progress)?,
    }
    b.into_inner()
        .context("writing archive")?
        .flush()
        .context("writing archive")?;
    Ok(())
}

fn add_bytes<W: Write>(b: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut h = file_header(bytes.len() as u64);
    b.append_data(&mut h, name, bytes)
        .with_context(|| format!("writing {name}"))
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn add_blob<W: Write>(
    store: &Store,
    b: &mut tar::Builder<W>,
    name: &str,
    hex: &str,
    item: Item,
    p: &mut dyn Progress,
) -> Result<()> {
    let path = store.blob_path(hex);
    let f = File::open(&path).map_err(io("reading blob", &path))?;
    let len = f.metadata()?.len();
    let mut h = file_header(len);
    p.begin(item, &format!("sha256:{hex}"), Some(len));
    let r = ProgressReader {
        inner: f.take(len),
        progress: p,
    };
    b.append_data(&mut h, name, r)
        .with_context(|| format!("writing {name}"))?;
    p.end(Outcome::Done);
    Ok(())
}

fn save_docker<W: Write>(
    store: &Store,
    images: &[(Image, Vec<String>)],
    b: &mut tar::Builder<W>,
    p: &mut dyn Progress,
) -> Result<()> {
    let mut manifest = Vec::new();
    let mut written = HashSet::new();
    for (img, tags) in images {
        let mut layers = Vec::new();
        for (blob, diff) in img.layer_blobs().iter().zip(img.diff_ids()) {
            let name = format!("{diff}.tar");
            if written.insert(name.clone()) {
                add_blob(store, b, &name, blob, Item::Blob, p)?;
            }
            layers.push(name);
        }
        let cfg = format!("{}.json", img.id);
        if written.insert(cfg.clone()) {
            add_bytes(b, &cfg, &img.config_raw)?;
        }
        manifest.push(DockerManifestEntry {
            config: cfg,
            repo_tags: Some(tags.clone()),
            layers,
        });
    }
    add_bytes(b, "manifest.json", &serde_json::to_vec(&manifest)?)
}

fn save_oci<W: Write>(
    store: &Store,
    images: &[(Image, Vec<String>)],
    b: &mut tar::Builder<W>,
    p: &mut dyn Progress,
) -> Result<()> {
    add_bytes(b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut written = HashSet::new();
    let mut descs = Vec::new();
    for (img, tags) in images {
        let mut blobs: Vec<(String, Item)> = img
            .layer_blobs()
            .into_iter()
            .map(|hex| (hex, Item::Blob))
            .collect();
        blobs.push((img.id.clone(), Item::Config));
        blobs.push((img.manifest_hex.clone(), Item::Manifest));
        for (hex, item) in blobs {
            if written.insert(hex.clone()) {
                add_blob(store, b, &format!("blobs/sha256/{hex}"), &hex, item, p)?;
            }
        }
        let size = img.manifest_raw.len() as u64;
        if tags.is_empty() {
            descs.push(store::descriptor(&img.manifest_hex, size, None)?);
        }
        for t in tags {
            let mut d = store::descriptor(&img.manifest_hex, size, Some(t))?;
            let mut a = d.annotations().clone().unwrap_or_default();
            a.insert(CONTAINERD_NAME.into(), t.clone());
            d.set_annotations(Some(a));
            descs.push(d);
        }
    }
    let index = oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(oci_spec::image::MediaType::ImageIndex)
        .manifests(descs)
        .build()?;
    add_bytes(b, "index.json", &serde_json::to_vec(&index)?)
}

// ---------------------------------------------------------------------------------
// load

/// A regular member of the archive, copied to the staging dir and hashed.
struct Staged {
    path: PathBuf,
    sha: String,
}

struct Staging {
    files: HashMap<String, Staged>,
    /// symlinks and hard links between members: name -> target name
    links: HashMap<String, String>,
    /// layer blobs already taken into the store: (staged name, diff_id hex) -> size
    done: HashMap<(String, String), u64>,
}

impl Staging {
    fn get(&self, name: &str) -> Result<&Staged> {
        let mut n = clean(name);
        for _ in 0..16 {
            if let Some(s) = self.files.get(&n) {
                return Ok(s);
            }
            match self.links.get(&n) {
                Some(t) => n = t.clone(),
                None => break,
            }
        }
        bail!("archive member {name:?} missing")
    }
    fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        let s = self.get(name)?;
        fs::read(&s.path).with_context(|| format!("reading archive member {name}"))
    }
}

/// How progress names an archive member that holds a blob: OCI `blobs/sha256/HEX` and
/// docker's `HEX.tar` / `HEX/layer.tar` as `sha256:HEX`; None for the JSON members.
fn blob_name(key: &str) -> Option<String> {
    let hex = key
        .strip_prefix("blobs/sha256/")
        .or_else(|| key.strip_suffix("/layer.tar"))
        .or_else(|| key.strip_suffix(".tar"))?;
    let hex = hex.rsplit('/').next().unwrap_or(hex);
    Some(
        match hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            true => format!("sha256:{hex}"),
            false => key.to_string(),
        },
    )
}

fn clean(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Loads every image of an archive; returns the names (or ids) loaded.
pub fn load(
    store: &Store,
    input: impl Read + Send + 'static,
    progress: &mut dyn Progress,
) -> Result<Vec<String>> {
    let _w = store.writer_lock()?;
    let stage_dir = crate::sys::owned_temp::dir_in(&store.tmp_dir())?;
    let staging = stage(util::decompressed(input)?, stage_dir.path(), progress)?;
    let mut staging = staging;
    let loaded = if staging.files.contains_key("manifest.json") {
        load_docker(store, &mut staging)?
    } else if staging.files.contains_key("index.json") {
        load_oci(store, &mut staging)?
    } else {
        bail!("neither a docker-archive (no manifest.json) nor an OCI archive (no index.json)");
    };
    Ok(loaded)
}

fn stage(input: impl Read, dir: &Path, p: &mut dyn Progress) -> Result<Staging> {
    let mut st = Staging {
        files: HashMap::new(),
        links: HashMap::new(),
        done: HashMap::new(),
    };
    let mut n = 0u64;
    layer::walk_entries(input, |entry, name, link, _pax| {
        let rel = layer::safe_relative(name)?;
        let key = clean(&rel.to_string_lossy());
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Regular | T::Continuous => {
                n += 1;
                let path = dir.join(n.to_string());
                let f = File::create(&path).map_err(io("staging", &path))?;
                let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, f));
                let blob = blob_name(&key);
                if let Some(name) = &blob {
                    p.begin(Item::Blob, name, Some(entry.header().size().unwrap_or(0)));
                }
                let mut r = ProgressReader {
                    inner: entry,
                    progress: p,
                };
                layer::copy_data(&mut r, &mut w)
                    .with_context(|| format!("reading archive member {key}"))?;
                if blob.is_some() {
                    p.end(Outcome::Done);
                }
                let (buf, sha, _) = w.finish();
                buf.into_inner()
                    .map_err(|e| invalid!("staging {key}: {}", e.error()))?;
                st.files.insert(key, Staged { path, sha });
            }
            T::Symlink => {
                let t =
                    link.ok_or_else(|| invalid!("archive member {key}: symlink without target"))?;
                let t = String::from_utf8_lossy(t);
                let base = Path::new(&key)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .to_string_lossy()
                    .into_owned();
                let joined = if t.starts_with('/') {
                    t.to_string()
                } else {
                    format!("{base}/{t}")
                };
                st.links.insert(key, resolve_dots(&joined)?);
            }
            T::Link => {
                let t =
                    link.ok_or_else(|| invalid!("archive member {key}: link without target"))?;
                st.links
                    .insert(key, clean(&layer::safe_relative(t)?.to_string_lossy()));
            }
            _ => {}
        }
        Ok(())
    })
    .context("reading archive")?;
    Ok(st)
}

/// Lexically resolves `a/../b` for symlinks between archive members.
fn resolve_dots(p: &str) -> Result<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()
                    .ok_or_else(|| invalid!("archive link {p:?} points outside the archive"))?;
            }
            c => out.push(c),
        }
    }
    Ok(out.join("/"))
}

/// Takes a layer member into the store uncompressed and unpacks it once.
/// Returns the layer blob (hex == diff_id) and its size.
fn take_layer(
    store: &Store,
    st: &mut Staging,
    name: &str,
    want_diff: &str,
) -> Result<(String, u64)> {
    let key = clean(name);
    let diff = strip_sha(want_diff);
    // Keyed by the diff_id too: a member named again with another diff_id is checked again.
    if let Some(size) = st.done.get(&(key.clone(), diff.to_string())) {
        return Ok((diff.to_string(), *size));
    }
    let staged = st.get(&key)?;
    let mismatch = |hex: &str| {
        invalid!("content digest sha256:{hex} does not match the config's diff_id {want_diff}")
    };
    let (size, unpacked) = store
        .take_layer(LayerFile::Kept(&staged.path), &staged.sha, diff, mismatch)
        .with_context(|| format!("layer {key}"))?;
    if let Some(r) = unpacked {
        report(&key, r);
    }
    st.done.insert((key, diff.to_string()), size);
    Ok((diff.to_string(), size))
}

fn report(key: &str, r: layer::UnpackReport) {
    for w in r.warnings {
        log::warn!("layer {key}: {w}");
    }
}

fn parse_config(raw: &[u8], what: &str) -> Result<ImageConfiguration> {
    serde_json::from_slice(raw).with_context(|| format!("parsing image config {what}"))
}

fn load_docker(store: &Store, st: &mut Staging) -> Result<Vec<String>> {
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&st.bytes("manifest.json")?).context("parsing manifest.json")?;
    let mut loaded = Vec::new();
    for e in entries {
        let raw = st.bytes(&e.config)?;
        let cfg = parse_config(&raw, &e.config)?;
        let diffs = cfg.rootfs().diff_ids().clone();
        if diffs.len() != e.layers.len() {
            bail!(
                "manifest.json: {} layers but config {} lists {} diff_ids",
                e.layers.len(),
                e.config,
                diffs.len()
            );
        }
        let mut layers = Vec::new();
        for (l, d) in e.layers.iter().zip(&diffs) {
            layers.push(take_layer(store, st, l, d)?);
        }
        let tags: Vec<String> = e.repo_tags.unwrap_or_default();
        let tags: Vec<String> = tags.iter().map(|t| store::normalize_ref(t)).collect();
        loaded.extend(record(store, &raw, &layers, tags)?);
    }
    Ok(loaded)
}

fn load_oci(store: &Store, st: &mut Staging) -> Result<Vec<String>> {
    let index: ImageIndex =
        serde_json::from_slice(&st.bytes("index.json")?).context("parsing index.json")?;
    let mut loaded = Vec::new();
    for d in index.manifests() {
        let tag = d.annotations().as_ref().and_then(|a| {
            a.get(CONTAINERD_NAME)
                .or_else(|| a.get(store::REF_NAME))
                .map(|t| store::normalize_ref(t))
        });
        let mhex = pick_manifest(st, d.digest().digest(), d.media_type().to_string().as_str())?;
        let mbytes = blob(st, &mhex)?;
        let m: ImageManifest =
            serde_json::from_slice(&mbytes).with_context(|| format!("parsing manifest {mhex}"))?;
        let chex = m.config().digest().digest().to_string();
        let raw = blob(st, &chex)?;
        let cfg = parse_config(&raw, &chex)?;
        let diffs = cfg.rootfs().diff_ids().clone();
        if diffs.len() != m.layers().len() {
            bail!(
                "manifest {mhex}: {} layers but config lists {} diff_ids",
                m.layers().len(),
                diffs.len()
            );
        }
        let mut layers = Vec::new();
        for (l, diff) in m.layers().iter().zip(&diffs) {
            let lhex = l.digest().digest().to_string();
            check_sha(st, &lhex)?;
            layers.push(take_layer(
                store,
                st,
                &format!("blobs/sha256/{lhex}"),
                diff,
            )?);
        }
        loaded.extend(record(store, &raw, &layers, tag.into_iter().collect())?);
    }
    Ok(loaded)
}

/// Records a loaded image; returns its names, or its id when it has none.
fn record(
    store: &Store,
    raw: &[u8],
    layers: &[(String, u64)],
    tags: Vec<String>,
) -> Result<Vec<String>> {
    let (id, _) = store.record_image(raw, layers, &tags)?;
    Ok(if tags.is_empty() {
        vec![format!("sha256:{id}")]
    } else {
        tags
    })
}

fn check_sha(st: &Staging, hex: &str) -> Result<()> {
    let s = st.get(&format!("blobs/sha256/{hex}"))?;
    if s.sha != hex {
        bail!("blob sha256:{hex}: content digest is sha256:{}", s.sha);
    }
    Ok(())
}

fn blob(st: &Staging, hex: &str) -> Result<Vec<u8>> {
    check_sha(st, hex)?;
    st.bytes(&format!("blobs/sha256/{hex}"))
}

/// An index entry may be a multi-platform index: take linux/amd64 (or the only one).
fn pick_manifest(st: &Staging, hex: &str, media: &str) -> Result<String> {
    if !media.contains("index") && !media.contains("manifest.list") {
        return Ok(hex.to_string());
    }
    let idx: ImageIndex =
        serde_json::from_slice(&blob(st, hex)?).context("parsing nested index")?;
    let arch = std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64");
    let pick = idx
        .manifests()
        .iter()
        .find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| p.architecture().to_string() == arch)
        })
        .or_else(|| idx.manifests().first())
        .ok_or_else(|| invalid!("index {hex} lists no manifest"))?;
    Ok(pick.digest().digest().to_string())
}

/// Opens `-i FILE`, or stdin when none (refusing a terminal).
pub fn open_input(path: Option<&Path>) -> Result<Box<dyn Read + Send>> {
    match path {
        Some(p) if p != Path::new("-") => {
            let f = File::open(p).map_err(crate::error::io("opening", p))?;
            Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
        }
        _ => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                bail!("no input: give -i FILE or pipe an archive into stdin");
            }
            Ok(Box::new(io::stdin()))
        }
    }
}
