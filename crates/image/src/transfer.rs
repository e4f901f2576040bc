//! `export` (a container's merged file system as one tar) and `import` (a rootfs tar
//! as a one-layer image).
use super::container;
use super::layer::{LayerWriter, PackOptions};
use super::progress::{Item, Outcome, Progress, ProgressReader};
use super::store::{self, Store};
use super::util;
use crate::error::Result;
use crate::error::{Context, io};
use oci_spec::image::{ConfigBuilder, HistoryBuilder, ImageConfiguration};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Where a command writes an archive: a file that appears whole (temp + rename), a
/// device or pipe written in place, or stdout (refused when it is a terminal).
pub enum Output {
    File(tempfile::NamedTempFile, PathBuf),
    /// `-o /dev/null`, a FIFO, `/dev/stdout`: a rename would replace the node itself.
    Special(std::fs::File),
    Stdout(io::Stdout),
}

impl Output {
    pub fn open(path: Option<&Path>) -> Result<Output> {
        match path {
            Some(p) if std::fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir()) => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .map_err(io("opening", p))?;
                Ok(Output::Special(f))
            }
            Some(p) if p != Path::new("-") => {
                // Checked before any work: a save must not copy every blob first.
                if p.is_dir() {
                    bail!("{}: is a directory: give a file name", p.display());
                }
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                if !dir.is_dir() {
                    bail!(
                        "{}: cannot create the file: no such directory {}",
                        p.display(),
                        dir.display()
                    );
                }
                let tmp = crate::sys::owned_temp::file_in(dir)
                    .with_context(|| format!("{}: cannot create the file", p.display()))?;
                Ok(Output::File(tmp, p.to_path_buf()))
            }
            _ => {
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    bail!(
                        "refusing to write an archive to a terminal: give -o FILE or redirect stdout"
                    );
                }
                Ok(Output::Stdout(io::stdout()))
            }
        }
    }

    pub fn writer(&mut self) -> Box<dyn Write + '_> {
        match self {
            Output::File(t, _) => Box::new(io::BufWriter::with_capacity(1 << 20, t.as_file_mut())),
            Output::Special(f) => Box::new(io::BufWriter::with_capacity(1 << 20, f)),
            Output::Stdout(s) => Box::new(io::BufWriter::with_capacity(1 << 20, s.lock())),
        }
    }

    pub fn finish(self) -> Result<()> {
        match self {
            Output::File(t, p) => {
                use std::os::unix::fs::PermissionsExt;
                let _ = t
                    .as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644));
                crate::sys::durable::persist(t, &p)?;
                Ok(())
            }
            Output::Special(mut f) => Ok(f.flush()?),
            Output::Stdout(mut s) => Ok(s.flush()?),
        }
    }
}

/// Writes container CTR's file system as a tar to `output` (stdout without); `progress`
/// hears of the bytes written.
pub fn export(
    root: &Path,
    ctr: &str,
    output: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<()> {
    let c = container::find(root, ctr)?;
    let index = c.work().join("index");
    let view = super::views::of_upper(&c.upper(), Some(&index), &c.lower_dirs())
        .map_err(io("reading", &c.upper()))?;
    let mut out = Output::open(output)?;
    {
        progress.begin(Item::Filesystem, &c.display_name(), None);
        let mut w = LayerWriter::new(
            out.writer(),
            PackOptions {
                lowers: c.lower_dirs(),
                skip_runtime_mountpoints: false,
                index: Some(c.work().join("index")),
            },
        );
        w.pack_view(&view, &mut |n| progress.advance(n))?;
        w.finish()?.flush().context("writing export")?;
    }
    out.finish()?;
    progress.end(Outcome::Done);
    Ok(())
}

/// Makes a one-layer image of the rootfs tar INPUT (plain, gzip or zstd); FILE names
/// it in errors and in the image's history ("-" is stdin). Returns the image id.
pub fn import(
    root: &Path,
    input: Box<dyn Read + Send>,
    file: &str,
    reference: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<String> {
    let tags = match reference {
        Some(r) => vec![store::check_ref(r)?],
        None => Vec::new(),
    };
    let store = Store::open(root)?;
    let _w = store.writer_lock()?;
    let input = util::decompressed(input).with_context(|| file.to_string())?;
    progress.begin(Item::Layer, file, None);
    let input = ProgressReader {
        inner: input,
        progress: &mut *progress,
    };
    let (hex, size, report) = store
        .take_stream(input, None, true)
        .with_context(|| format!("reading {file}"))?;
    for w in report.map(|r| r.warnings).unwrap_or_default() {
        log::warn!("import {file}: {w}");
    }
    let now = crate::timestamp::now();
    let mut cfg = ImageConfiguration::default();
    cfg.set_created(Some(now.clone()));
    cfg.rootfs_mut().set_diff_ids(vec![format!("sha256:{hex}")]);
    cfg.set_config(Some(
        ConfigBuilder::default()
            .env(vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ])
            .build()?,
    ));
    let from = if file == "-" {
        "stdin".to_string()
    } else {
        file.to_string()
    };
    cfg.set_history(Some(vec![
        HistoryBuilder::default()
            .created(now)
            .created_by(format!("unionctl import {from}"))
            .comment("Imported from tar")
            .build()?,
    ]));
    let raw = serde_json::to_vec(&cfg)?;
    let (id, _) = store.record_image(&raw, &[(hex, size)], &tags)?;
    progress.end(Outcome::Done);
    Ok(id)
}
