//! Small helpers shared by the image modules: store root, hashing, ages, sizes,
//! compression detection, atomic files.
use crate::error::Context;
use crate::error::Result;
use crate::timestamp;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

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
    match stamp.and_then(timestamp::parse) {
        Some(t) => format!("{} ago", human_duration(timestamp::unix_now() - t)),
        None => "N/A".into(),
    }
}

/// A duration in seconds as docker words it (go-units' HumanDuration): "Less than a
/// second", "About a minute", "3 hours", "2 weeks".
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    // Hours are rounded, minutes and years floored, as go-units does.
    let (m, h) = (s / 60, (s + 1800) / 3600);
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// Sizes as docker prints them: decimal units, 3 significant digits, no trailing zeros
/// (`512B`, `2.13MB`, `107MB`, `1.5GB`). A value that rounds to 1000 goes up a unit
/// (`1MB`, where docker's printf would say `1e+03kB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    loop {
        let decimals = match value {
            v if v >= 100.0 => 0,
            v if v >= 10.0 => 1,
            _ => 2,
        };
        let text = format!("{value:.decimals$}");
        let rounded: f64 = text.parse().unwrap_or(value);
        if rounded >= 1000.0 && unit + 1 < UNITS.len() {
            value /= 1000.0;
            unit += 1;
            continue;
        }
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        return format!("{text}{}", UNITS[unit]);
    }
}

/// Writes a file so that it appears whole or not at all, also across a crash of the
/// machine (`sys::durable`).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    // The temp file is created 0600 (auth.json relies on it); the rename keeps it.
    Ok(crate::sys::durable::write_file(path, bytes, 0o600)?)
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
    fn durations_in_dockers_words() {
        for (secs, text) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (3600, "About an hour"),
            (5399, "About an hour"),
            (5400, "2 hours"),
            (7200, "2 hours"),
            (47 * 3600, "47 hours"),
            (47 * 3600 + 1800, "2 days"),
            (14 * 86400, "2 weeks"),
            (60 * 86400, "2 months"),
            (730 * 86400, "2 years"),
        ] {
            assert_eq!(human_duration(secs), text, "{secs} s");
        }
    }

    #[test]
    fn sizes_and_compression() {
        for (bytes, text) in [
            (0, "0B"),
            (512, "512B"),
            (999, "999B"),
            (1_000, "1kB"),
            (2_134_000, "2.13MB"),
            (106_993_000, "107MB"),
            (1_500_000, "1.5MB"),
            (1_500_000_000, "1.5GB"),
            (999_999, "1MB"),
            (10_049_000, "10MB"),
            (12_345, "12.3kB"),
        ] {
            assert_eq!(human_size(bytes), text, "{bytes}");
        }
        assert_eq!(detect_compression(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            detect_compression(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(detect_compression(b"ustar"), Compression::None);
    }
}
