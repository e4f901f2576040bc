//! Small helpers shared by the image modules: store root, hashing, ages, sizes,
//! compression detection, progress on a terminal, atomic files.
use crate::error::Context;
use crate::error::Result;
use crate::timestamp;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// A writer that counts and hashes (sha256) everything written through it.
pub struct HashingWriter<W: Write> {
    pub inner: W,
    hasher: Sha256,
    pub count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// Returns the inner writer and the hex digest of what went through.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whole-stream compression of an archive or a layer, told by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The value of `--compression-format`.
    pub fn parse(s: &str) -> Result<Compression> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            _ => bail!("--compression-format {s:?}: want none, gzip or zstd"),
        }
    }
}

pub fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps a reader so that gzip or zstd input comes out decompressed.
pub fn decompressed(r: impl Read + Send + 'static) -> Result<Box<dyn Read + Send>> {
    let mut br = BufReader::with_capacity(1 << 20, r);
    let head = br.fill_buf().context("reading the first bytes")?.to_vec();
    Ok(match detect_compression(&head) {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(br),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            1 << 20,
            zstd::stream::read::Decoder::with_buffer(br).context("starting zstd decoder")?,
        )),
    })
}

/// "3 minutes ago", as docker prints it.
pub fn human_ago(stamp: Option<&str>) -> String {
    let Some(t) = stamp.and_then(timestamp::parse) else {
        return "N/A".into();
    };
    let s = (timestamp::unix_now() - t).max(0);
    let (n, unit) = match s {
        0..=59 => return "Less than a minute ago".into(),
        60..=3599 => (s / 60, "minute"),
        3600..=86399 => (s / 3600, "hour"),
        86400..=604799 => (s / 86400, "day"),
        604800..=2591999 => (s / 604800, "week"),
        2592000..=31535999 => (s / 2592000, "month"),
        _ => (s / 31536000, "year"),
    };
    if n == 1 {
        format!("{} {unit} ago", if unit == "hour" { "An" } else { "1" })
    } else {
        format!("{n} {unit}s ago")
    }
}

/// Sizes in decimal units, as docker prints them.
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

/// Writes a file so that it appears whole or not at all, also across a crash of the
/// machine (`sys::durable`).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    // The temp file is created 0600 (auth.json relies on it); the rename keeps it.
    Ok(crate::sys::durable::write_file(path, bytes, 0o600)?)
}

pub fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// A one-line byte counter on stderr, shown only when stderr is a terminal.
pub struct Progress {
    label: String,
    done: u64,
    last: Instant,
    shown: bool,
    enabled: bool,
}

impl Progress {
    pub fn new(label: &str) -> Self {
        Progress {
            label: label.to_string(),
            done: 0,
            last: Instant::now(),
            shown: false,
            enabled: stderr_is_terminal(),
        }
    }
    pub fn set_label(&mut self, label: &str) {
        self.label = label.to_string();
        self.draw(true);
    }
    pub fn add(&mut self, n: u64) {
        self.done += n;
        self.draw(false);
    }
    fn draw(&mut self, force: bool) {
        if !self.enabled || (!force && self.last.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let mib = self.done as f64 / 1048576.0;
        eprint!("\r\x1b[K{}: {mib:.1} MiB", self.label);
    }
    /// Leaves one final line with the total on a terminal (also for work too quick for
    /// the periodic redraw), and nothing elsewhere.
    pub fn finish(&mut self) {
        if self.enabled {
            let mib = self.done as f64 / 1048576.0;
            eprintln!("\r\x1b[K{}: {mib:.1} MiB", self.label);
            self.enabled = false;
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A reader that reports the bytes it passes to a Progress.
pub struct ProgressReader<'a, R> {
    pub inner: R,
    pub progress: &'a mut Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

/// Removes a directory tree made by us, also when it holds read-only dirs (or a file).
pub fn remove_tree(path: &Path) {
    match fs::symlink_metadata(path) {
        Err(_) => return,
        Ok(m) if !m.is_dir() => {
            let _ = fs::remove_file(path);
            return;
        }
        Ok(_) => {}
    }
    if fs::remove_dir_all(path).is_ok() {
        return;
    }
    // Read-only dirs (mode 0555 from a layer) block deletion as a non-root user.
    for e in walkdir::WalkDir::new(path).into_iter().flatten() {
        if e.file_type().is_dir() {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o700));
        }
    }
    let _ = fs::remove_dir_all(path);
}

/// Bytes a tree takes on disk (allocated blocks of its non-directories, as `du`); 0 for
/// a missing path. Hard links are counted once.
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| !m.is_dir() && (m.nlink() == 1 || seen.insert((m.dev(), m.ino()))))
        .map(|m| m.blocks() * 512)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_compression() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500_000), "1.5MB");
        assert_eq!(detect_compression(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            detect_compression(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(detect_compression(b"ustar"), Compression::None);
    }
}
