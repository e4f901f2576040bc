//! The image store: an OCI image layout under the store root, plus each layer unpacked
//! once under `layers/<diffid-hex>/` for containers to share as a lower layer.
//!
//! - `blobs/sha256/<hex>`: manifests, configs and layer tars. Layers are kept
//!   uncompressed, so a layer blob's digest is its diff_id.
//! - `index.json`: one descriptor per (image, tag); the tag is the annotation
//!   `org.opencontainers.image.ref.name` holding a full `name:tag`; an image without
//!   a tag has one descriptor without it.
//! - New blobs and layer dirs are written under a temp name and renamed into place,
//!   so a crash never leaves a half-written file under its final name.
//! - Locks (flock): `index.lock` around every read-modify-write of index.json;
//!   `gc.lock` shared by commands that add content, exclusive for `rmi`'s sweep, so
//!   the sweep never deletes what a running load has written but not yet indexed.
use super::container;
use super::layer;
use super::util::{self, HashingWriter};
use crate::sys::{FileLock, durable, owned_temp};
use anyhow::{Context, Result, anyhow, bail};
use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType,
};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

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

pub fn strip_sha(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

/// A layer blob to take into the store (`Store::take_layer`).
pub enum LayerFile<'a> {
    /// A temp file in the store's tmp dir: moved into place.
    Temp(tempfile::NamedTempFile),
    /// A file that stays where it is (a staged archive member other names may point
    /// at): linked or copied.
    Kept(&'a Path),
}

impl LayerFile<'_> {
    fn path(&self) -> &Path {
        match self {
            LayerFile::Temp(t) => t.path(),
            LayerFile::Kept(p) => p,
        }
    }
}

/// A blob being written; `commit` moves it to its content address.
pub struct BlobWriter {
    w: HashingWriter<std::io::BufWriter<tempfile::NamedTempFile>>,
    blobs: PathBuf,
    /// Bytes already handed to the disk (sync_file_range), so the final fsync is short.
    kicked: u64,
}

/// Start disk writeback every this many bytes while a blob is written.
const WRITEBACK_STEP: u64 = 8 << 20;

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(buf)?;
        let in_file = self.w.count - self.w.inner.buffer().len() as u64;
        if in_file >= self.kicked + WRITEBACK_STEP {
            let fd = self.w.inner.get_ref().as_file().as_raw_fd();
            // Best effort: only starts the writeback, never waits for it.
            unsafe {
                libc::sync_file_range(
                    fd,
                    self.kicked as libc::off64_t,
                    (in_file - self.kicked) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            self.kicked = in_file;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

impl BlobWriter {
    /// Finishes the blob: fsync, rename to blobs/sha256/<hex>; returns (hex, size).
    pub fn commit(self) -> Result<(String, u64)> {
        self.commit_if(None)
    }

    /// As `commit`, but content that is not `expect` (when given) is not stored.
    pub fn commit_if(self, expect: Option<&str>) -> Result<(String, u64)> {
        let (buf, hex, size) = self.w.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| anyhow!("writing blob: {}", e.error()))?;
        let dest = self.blobs.join(&hex);
        if expect.is_some_and(|e| e != hex) || dest.exists() {
            return Ok((hex, size)); // the temp file goes with `tmp`
        }
        durable::persist(tmp, &dest).context("storing blob")?;
        Ok((hex, size))
    }
}

impl Store {
    /// Opens the store, creating its layout when missing.
    pub fn open(root: &Path) -> Result<Store> {
        let s = Store {
            root: root.to_path_buf(),
        };
        for d in [s.blobs_dir(), s.root.join("layers"), s.tmp_dir()] {
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
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

    /// Removes the temp files and dirs of killed commands (`sys::owned_temp`): blobs
    /// being written, layers being unpacked, index and container records being saved.
    /// A temp of a command still running is never touched.
    pub fn sweep_leftovers(&self) {
        let mut dirs = vec![self.tmp_dir(), self.root.join("layers"), self.root.clone()];
        if let Ok(rd) = fs::read_dir(self.root.join("containers")) {
            dirs.extend(rd.flatten().map(|e| e.path()));
        }
        for d in dirs {
            for dead in owned_temp::dead_in(&d) {
                util::remove_tree(&dead);
            }
        }
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
        FileLock::acquire(&self.root.join(name), exclusive)
    }

    /// Shared lock for commands that add content (so `rmi` does not sweep it away).
    pub fn writer_lock(&self) -> Result<FileLock> {
        self.lock("gc.lock", false)
    }

    pub fn new_blob(&self) -> Result<BlobWriter> {
        let tmp = owned_temp::file_in(&self.tmp_dir())?;
        Ok(BlobWriter {
            w: HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, tmp)),
            blobs: self.blobs_dir(),
            kicked: 0,
        })
    }

    pub fn put_blob(&self, bytes: &[u8]) -> Result<(String, u64)> {
        let hex = util::sha256_hex(bytes);
        let dest = self.blob_path(&hex);
        if !dest.exists() {
            util::atomic_write(&dest, bytes)?;
        }
        Ok((hex, bytes.len() as u64))
    }

    /// Adopts a finished temp file whose sha256 is already known.
    pub fn adopt_blob(&self, tmp: &Path, hex: &str) -> Result<()> {
        let dest = self.blob_path(hex);
        if dest.exists() {
            let _ = fs::remove_file(tmp);
            return Ok(());
        }
        durable::rename(tmp, &dest).context("storing blob")
    }

    pub fn read_blob(&self, hex: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(hex);
        fs::read(&p).with_context(|| format!("reading blob {}", p.display()))
    }

    fn read_index(&self) -> Result<ImageIndex> {
        let p = self.root.join("index.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parsing {}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(empty_index()),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
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
}

/// Index descriptors grouped by image, in index order.
pub fn group_refs(descs: &[Descriptor]) -> Vec<ImageRef> {
    {
        let mut order: Vec<String> = Vec::new();
        let mut by: HashMap<String, ImageRef> = HashMap::new();
        for d in descs {
            let hex = d.digest().digest().to_string();
            let e = by.entry(hex.clone()).or_insert_with(|| {
                order.push(hex.clone());
                ImageRef {
                    manifest: hex.clone(),
                    manifest_size: d.size(),
                    tags: Vec::new(),
                }
            });
            if let Some(t) = d.annotations().as_ref().and_then(|a| a.get(REF_NAME)) {
                e.tags.push(t.clone());
            }
        }
        order.into_iter().filter_map(|h| by.remove(&h)).collect()
    }
}

impl Store {
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
        bail!("image {reference:?}: no such image")
    }

    /// The image id (config digest hex) of an index entry.
    pub fn image_id(&self, r: &ImageRef) -> Result<String> {
        let m: ImageManifest = serde_json::from_slice(&self.read_blob(&r.manifest)?)?;
        Ok(m.config().digest().digest().to_string())
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

    /// The unpacked dir of a layer, unpacking its blob first if needed.
    pub fn ensure_unpacked(&self, blob_hex: &str, diff_id: &str) -> Result<PathBuf> {
        let dir = self.layer_dir(diff_id);
        if dir.is_dir() {
            return Ok(dir);
        }
        let f = File::open(self.blob_path(blob_hex))
            .with_context(|| format!("layer {diff_id}: blob {blob_hex} missing"))?;
        let report = self.unpack_layer(BufReader::with_capacity(1 << 20, f), diff_id)?;
        for w in report.warnings {
            eprintln!(
                "unionctl: warning: layer {}: {w}",
                &strip_sha(diff_id)[..12.min(diff_id.len())]
            );
        }
        Ok(dir)
    }

    /// Unpacks a layer tar stream into layers/<diff_id> through a temp dir.
    pub fn unpack_layer(
        &self,
        r: impl std::io::Read,
        diff_id: &str,
    ) -> Result<layer::UnpackReport> {
        let (tmp, report) = self.unpack_to_temp(r)?;
        self.install_layer(&tmp, diff_id)?;
        Ok(report)
    }

    /// Unpacks into a fresh temp dir under layers/ (removed again on error).
    pub fn unpack_to_temp(&self, r: impl std::io::Read) -> Result<(PathBuf, layer::UnpackReport)> {
        use std::os::unix::fs::PermissionsExt;
        let tmp = owned_temp::dir_in(&self.root.join("layers"))
            .context("creating a temp layer dir")?
            .keep();
        let _ = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755));
        match layer::unpack(r, &tmp) {
            Ok(report) => Ok((tmp, report)),
            Err(e) => {
                util::remove_tree(&tmp);
                Err(e)
            }
        }
    }

    /// Moves an unpacked temp dir to layers/<diff_id> (or drops it if already there).
    pub fn install_layer(&self, tmp: &Path, diff_id: &str) -> Result<PathBuf> {
        let dir = self.layer_dir(diff_id);
        if dir.exists() {
            util::remove_tree(tmp); // unpacked meanwhile by another command
            return Ok(dir);
        }
        // syncfs before the rename: the layer's files are on disk before its name is.
        match durable::rename(tmp, &dir) {
            Ok(()) => Ok(dir),
            Err(_) if dir.exists() => {
                util::remove_tree(tmp);
                Ok(dir)
            }
            Err(e) => {
                util::remove_tree(tmp);
                Err(e).with_context(|| format!("storing layer {}", dir.display()))
            }
        }
    }

    /// Stores a layer stream as a blob while it unpacks it into a layer dir (unless
    /// `unpack` is false): (hex, size, what unpacking reported). Content that is not
    /// `expect` (when given; the caller sees the returned hex differ) is neither stored nor
    /// unpacked, and an error leaves nothing behind either.
    pub fn take_stream(
        &self,
        r: impl Read,
        expect: Option<&str>,
        unpack: bool,
    ) -> Result<(String, u64, Option<layer::UnpackReport>)> {
        let mut tee = TeeReader::new(r, BackgroundBlob::start(self, expect)?);
        let unpacked = if unpack {
            Some(self.unpack_to_temp(&mut tee)?)
        } else {
            None
        };
        // The tar reader stops at the end marker: the blob also gets the padding after it.
        let finished = tee.finish();
        let (hex, size) = match finished {
            Ok((hex, size)) if expect.is_none_or(|e| e == hex) => (hex, size),
            other => {
                if let Some((dir, _)) = &unpacked {
                    util::remove_tree(dir);
                }
                let (hex, size) = other?;
                return Ok((hex, size, None));
            }
        };
        let report = match unpacked {
            Some((dir, report)) => {
                self.install_layer(&dir, &hex)?;
                Some(report)
            }
            None => None,
        };
        Ok((hex, size, report))
    }

    /// Takes a layer blob (plain, gzip or zstd) into the store uncompressed, so its blob
    /// digest is `diff` (hex), and unpacks it unless it is unpacked already; the file is
    /// read once. `file_hex` is the sha256 of the file as it is (checked by whoever
    /// downloaded or staged it). Content that is not `diff` is refused with
    /// `mismatch(its digest)` before anything gets its final name, so it leaves nothing
    /// behind. Returns the blob's size and what unpacking reported (None: no unpacking).
    pub fn take_layer(
        &self,
        file: LayerFile,
        file_hex: &str,
        diff: &str,
        mismatch: impl Fn(&str) -> anyhow::Error,
    ) -> Result<(u64, Option<layer::UnpackReport>)> {
        let path = file.path().to_path_buf();
        let reading = || format!("reading {}", path.display());
        let mut f = File::open(&path).with_context(reading)?;
        let mut head = [0u8; 4];
        let n = f.read(&mut head).with_context(reading)?;
        std::io::Seek::rewind(&mut f).with_context(reading)?;
        let unpacked = self.layer_dir(diff).is_dir();
        if util::detect_compression(&head[..n]) == util::Compression::None {
            if file_hex != diff {
                return Err(mismatch(file_hex));
            }
            let size = f.metadata().with_context(reading)?.len();
            let report = if unpacked {
                None
            } else {
                Some(self.unpack_layer(BufReader::with_capacity(1 << 20, f), diff)?)
            };
            match file {
                LayerFile::Temp(tmp) => {
                    let kept = tmp.into_temp_path().keep().context("keeping a blob")?;
                    self.adopt_blob(&kept, diff)?;
                }
                LayerFile::Kept(_) if self.blob_path(diff).exists() => {}
                LayerFile::Kept(_) => {
                    let copy = owned_temp::path_in(&self.tmp_dir(), &format!("adopt-{diff}"));
                    if fs::hard_link(&path, &copy).is_err() {
                        fs::copy(&path, &copy).with_context(|| {
                            format!("copying {} to {}", path.display(), copy.display())
                        })?;
                    }
                    self.adopt_blob(&copy, diff)?;
                }
            }
            return Ok((size, report));
        }
        // Decompress once: the blob is written on its own thread while the same bytes
        // are unpacked into a temp dir.
        let input = util::decompressed(f).with_context(reading)?;
        let (hex, size, report) = self
            .take_stream(input, Some(diff), !unpacked)
            .context("decompressing")?;
        if hex != diff {
            return Err(mismatch(&hex));
        }
        Ok((size, report))
    }

    /// Deletes blobs and layer dirs no image (and no container) needs, and stale temp
    /// files. Holds the exclusive gc lock, so no writer is in the middle of its work.
    pub fn sweep(&self) -> Result<()> {
        let _g = self.lock("gc.lock", true)?;
        let mut blobs: HashSet<String> = HashSet::new();
        let mut layers: HashSet<String> = HashSet::new();
        for r in self.list()? {
            blobs.insert(r.manifest.clone());
            if let Ok(img) = self.load(&r) {
                blobs.insert(img.id.clone());
                blobs.extend(img.layer_blobs());
                layers.extend(img.diff_ids());
            } else {
                return Ok(()); // never sweep on a store we cannot read whole
            }
        }
        let layers_root = self.root.join("layers");
        let mut kept_dirs: HashSet<PathBuf> = HashSet::new();
        for c in container::all(&self.root) {
            kept_dirs.extend(c.lowers.iter().cloned());
        }
        if let Ok(rd) = fs::read_dir(&layers_root) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                let dead_temp = name.starts_with(".tmp-")
                    && owned_temp::owner_alive(e.file_name().as_os_str()) != Some(true);
                let temp = name.starts_with(".tmp-");
                if dead_temp || (!temp && !layers.contains(&name) && !kept_dirs.contains(&path)) {
                    util::remove_tree(&path);
                }
            }
        }
        if let Ok(rd) = fs::read_dir(self.blobs_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let keep = blobs.contains(&name) || kept_dirs.contains(&layers_root.join(&name)); // a container's layer blob
                if !keep {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        // Under the exclusive lock every temp of a writer is its owner's until it ends.
        if let Ok(rd) = fs::read_dir(self.tmp_dir()) {
            for e in rd.flatten() {
                if owned_temp::owner_alive(&e.file_name()) != Some(true) {
                    util::remove_tree(&e.path());
                }
            }
        }
        Ok(())
    }

    /// Images grouped by id with the containers that use them.
    pub fn users_of(&self, image_id: &str) -> Vec<String> {
        container::all(&self.root)
            .into_iter()
            .filter(|c| c.image.as_deref().map(strip_sha) == Some(image_id))
            .map(|c| c.display_name())
            .collect()
    }
}

fn size_of_manifest(s: &Store, hex: &str) -> u64 {
    fs::metadata(s.blob_path(hex)).map(|m| m.len()).unwrap_or(0)
}

pub fn ref_name(d: &Descriptor) -> Option<String> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .cloned()
}

pub fn descriptor(manifest_hex: &str, size: u64, tag: Option<&str>) -> Result<Descriptor> {
    let digest: oci_spec::image::Digest = format!("sha256:{manifest_hex}").parse()?;
    let mut d = Descriptor::new(MediaType::ImageManifest, size, digest);
    if let Some(t) = tag {
        let mut a = HashMap::new();
        a.insert(REF_NAME.to_string(), t.to_string());
        d.set_annotations(Some(a));
    }
    Ok(d)
}

fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .expect("static index")
}

/// `name` -> `name:latest`; names with a tag or digest stay as they are.
pub fn normalize_ref(r: &str) -> String {
    if r.contains('@') {
        return r.to_string();
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// A stored name without the registry prefixes users leave out.
pub fn short_name(t: &str) -> String {
    for p in ["docker.io/library/", "docker.io/", "localhost/"] {
        if let Some(s) = t.strip_prefix(p) {
            return s.to_string();
        }
    }
    t.to_string()
}

/// Whether a stored `name:tag` is what a user's reference names (`busybox` names
/// `docker.io/library/busybox:latest`).
pub fn tag_matches(stored: &str, reference: &str) -> bool {
    let want = normalize_ref(reference);
    stored == want || short_name(stored) == want
}

/// Checks a name given for tag/commit/import: `name[:tag]`, lowercase path parts.
pub fn check_ref(r: &str) -> Result<String> {
    let n = normalize_ref(r);
    let (name, tag) = n
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("{r:?}: invalid reference"))?;
    let name_ok = !name.is_empty()
        && name.split('/').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-:".contains(&c))
        });
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
    if r.contains('@') || !name_ok || !tag_ok {
        bail!("{r:?}: invalid reference format (want name[:tag], lowercase name)");
    }
    Ok(n)
}

/// Splits `name:tag` for display.
pub fn split_tag(t: &str) -> (String, String) {
    match t.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => (n.to_string(), tag.to_string()),
        _ => (t.to_string(), "<none>".into()),
    }
}

impl Store {
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

/// A blob written (and hashed) on its own thread while the caller goes on, e.g.
/// unpacking the same bytes: `TeeReader` hands it what it reads.
pub struct BackgroundBlob {
    /// `Some(bytes)` to write, `None` once all is sent; a writer that never gets
    /// `None` (the caller failed) drops its temp file instead of storing a blob.
    tx: Option<crossbeam_channel::Sender<Option<Vec<u8>>>>,
    handle: Option<std::thread::JoinHandle<Result<(String, u64)>>>,
}

impl BackgroundBlob {
    /// Starts the writer; content that is not `expect` (when given) is not stored.
    pub fn start(store: &Store, expect: Option<&str>) -> Result<BackgroundBlob> {
        let expect = expect.map(str::to_owned);
        let mut blob = store.new_blob()?;
        let (tx, rx) = crossbeam_channel::bounded::<Option<Vec<u8>>>(16);
        let handle = std::thread::spawn(move || {
            for msg in rx {
                match msg {
                    Some(chunk) => blob.write_all(&chunk).context("writing blob")?,
                    None => return blob.commit_if(expect.as_deref()),
                }
            }
            bail!("blob abandoned")
        });
        Ok(BackgroundBlob {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    fn send(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        let ok = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(Some(chunk)).is_ok());
        if ok {
            Ok(())
        } else {
            Err(std::io::Error::other("blob writer stopped"))
        }
    }

    /// Waits for the blob: (hex, size).
    pub fn finish(mut self) -> Result<(String, u64)> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(None);
        }
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => bail!("blob writer thread failed"),
        }
    }
}

impl Drop for BackgroundBlob {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join(); // an unfinished blob stays a temp file, removed with it
        }
    }
}

/// Reads from `inner` and passes every byte, in 1 MiB batches, to a BackgroundBlob.
pub struct TeeReader<R> {
    pub inner: R,
    pub blob: BackgroundBlob,
    buf: Vec<u8>,
}

const TEE_BATCH: usize = 1 << 20;

impl<R: std::io::Read> TeeReader<R> {
    pub fn new(inner: R, blob: BackgroundBlob) -> Self {
        TeeReader {
            inner,
            blob,
            buf: Vec::with_capacity(TEE_BATCH),
        }
    }
    /// Reads what is left of the input, then waits for the blob.
    pub fn finish(mut self) -> Result<(String, u64)> {
        std::io::copy(&mut self, &mut std::io::sink()).context("reading input")?;
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() {
            self.blob.send(rest)?;
        }
        self.blob.finish()
    }
}

impl<R: std::io::Read> std::io::Read for TeeReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.buf.extend_from_slice(&out[..n]);
        if self.buf.len() >= TEE_BATCH {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(TEE_BATCH));
            self.blob.send(chunk)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(normalize_ref("busybox"), "busybox:latest");
        assert_eq!(
            normalize_ref("localhost:5000/a/b"),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(normalize_ref("a:1"), "a:1");
        assert_eq!(
            short_name("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert!(tag_matches("docker.io/library/busybox:latest", "busybox"));
        assert!(tag_matches("localhost/a:1", "localhost/a:1"));
        assert!(!tag_matches("busybox:1", "busybox"));
        assert!(check_ref("Upper").is_err());
        assert!(check_ref("a b").is_err());
        assert_eq!(check_ref("my/img:v1").unwrap(), "my/img:v1");
        assert_eq!(
            split_tag("localhost:5000/x:1"),
            ("localhost:5000/x".into(), "1".into())
        );
    }
}
