//! Content-addressed blobs: written through an owned temp file, hashed on the way, and
//! renamed durably to blobs/sha256/<hex>; a blob can be written on its own thread.
use super::Store;
use crate::error::Result;
use crate::error::{Context, io};
use crate::sys::{durable, owned_temp};
use crate::util::{self, HashingWriter};
use std::fs;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

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
            .map_err(|e| invalid!("writing blob: {}", e.error()))?;
        let dest = self.blobs.join(&hex);
        if expect.is_some_and(|e| e != hex) || dest.exists() {
            return Ok((hex, size)); // the temp file goes with `tmp`
        }
        durable::persist(tmp, &dest).context("storing blob")?;
        Ok((hex, size))
    }
}

impl Store {
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
        fs::read(&p).map_err(io("reading blob", &p))
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
