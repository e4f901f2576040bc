//! Layers coming into the store: unpacked once into a temp dir under layers/, installed
//! durably as layers/<diff_id>, their blob stored uncompressed beside.
use super::{BackgroundBlob, Store, TeeReader, strip_sha};
use crate::error::Result;
use crate::error::{Context, io};
use crate::sys::{durable, owned_temp};
use crate::{layer, util};
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

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

impl Store {
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
                Err(e).map_err(io("storing layer", &dir))
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
        mismatch: impl Fn(&str) -> crate::error::Error,
    ) -> Result<(u64, Option<layer::UnpackReport>)> {
        let path = file.path().to_path_buf();
        let mut f = File::open(&path).map_err(io("reading", &path))?;
        let mut head = [0u8; 4];
        let n = f.read(&mut head).map_err(io("reading", &path))?;
        std::io::Seek::rewind(&mut f).map_err(io("reading", &path))?;
        let unpacked = self.layer_dir(diff).is_dir();
        if util::detect_compression(&head[..n]) == util::Compression::None {
            if file_hex != diff {
                return Err(mismatch(file_hex));
            }
            let size = f.metadata().map_err(io("reading", &path))?.len();
            let report = if unpacked {
                None
            } else {
                Some(self.unpack_layer(BufReader::with_capacity(1 << 20, f), diff)?)
            };
            match file {
                LayerFile::Temp(tmp) => {
                    let kept = tmp
                        .into_temp_path()
                        .keep()
                        .map_err(|e| e.error)
                        .context("keeping a blob")?;
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
        let input = util::decompressed(f).with_context(|| format!("reading {}", path.display()))?;
        let (hex, size, report) = self
            .take_stream(input, Some(diff), !unpacked)
            .context("decompressing")?;
        if hex != diff {
            return Err(mismatch(&hex));
        }
        Ok((size, report))
    }
}
