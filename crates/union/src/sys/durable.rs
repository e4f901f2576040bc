//! Writes that survive a crash of the machine: content goes to a temp name in the same
//! file system, is flushed to disk, renamed into place, and the rename itself is made
//! durable by an fsync of the parent dir. After a crash the final name holds either the
//! old content (or nothing) or the whole new content, never a part.
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// An io::Error that names what was done to which path.
fn at(what: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// fsync of a directory: makes the names created, renamed or removed in it durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| at("syncing dir", dir, e))
}

/// Flushes the whole file system `path` is on. For a tree of thousands of new files
/// (an unpacked layer) one syncfs costs a fraction of an fsync per file.
pub fn syncfs(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = File::open(path).map_err(|e| at("opening", path, e))?;
    // SAFETY: syncfs on an fd we own.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(at(
            "syncing the file system of",
            path,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Flushes a finished file (fsync) or tree (syncfs of its file system).
fn flush(path: &Path) -> io::Result<()> {
    let f = File::open(path).map_err(|e| at("opening", path, e))?;
    if f.metadata().map_err(|e| at("reading", path, e))?.is_dir() {
        syncfs(path)
    } else {
        f.sync_all().map_err(|e| at("syncing", path, e))
    }
}

/// Moves a finished temp file or dir to `to` durably: flush it, rename, fsync the
/// parent dir(s). Renaming a dir onto a non-empty dir fails as rename(2) does.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    flush(from)?;
    std::fs::rename(from, to).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("renaming {} to {}: {e}", from.display(), to.display()),
        )
    })?;
    fsync_dir(parent(to))?;
    if parent(from) != parent(to) {
        fsync_dir(parent(from))?;
    }
    Ok(())
}

/// `rename` for a tempfile (its temp name goes away on failure).
pub fn persist(tmp: tempfile::NamedTempFile, to: &Path) -> io::Result<File> {
    tmp.as_file()
        .sync_all()
        .map_err(|e| at("syncing", tmp.path(), e))?;
    let from_dir = parent(tmp.path()).to_path_buf();
    let f = tmp.persist(to).map_err(|e| at("writing", to, e.error))?;
    fsync_dir(parent(to))?;
    if from_dir != parent(to) {
        fsync_dir(&from_dir)?;
    }
    Ok(f)
}

/// Writes `bytes` to `path` with `mode`, whole or not at all, through an owned temp
/// file beside it (swept by a later command if this one is killed).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp = super::owned_temp::file_in(parent(path))?;
    tmp.write_all(bytes)
        .and_then(|()| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
        })
        .map_err(|e| at("writing", tmp.path(), e))?;
    persist(tmp, path).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn write_file_replaces_whole_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        write_file(&p, b"one", 0o644).unwrap();
        write_file(&p, b"two two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "a temp file was left: {names:?}");
    }

    #[test]
    fn rename_moves_files_and_trees() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("a/b")).unwrap();
        fs::write(src.join("a/b/f"), b"x").unwrap();
        fs::create_dir(d.path().join("dst")).unwrap();
        rename(&src, &d.path().join("dst/tree")).unwrap();
        assert_eq!(fs::read(d.path().join("dst/tree/a/b/f")).unwrap(), b"x");
        fs::write(d.path().join("f"), b"y").unwrap();
        rename(&d.path().join("f"), &d.path().join("dst/g")).unwrap();
        assert_eq!(fs::read(d.path().join("dst/g")).unwrap(), b"y");
    }

    #[test]
    fn errors_name_the_paths() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("missing");
        let e = rename(&missing, &d.path().join("x")).unwrap_err();
        assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");
        // A dir onto a non-empty dir fails and leaves both as they were.
        fs::create_dir_all(d.path().join("a")).unwrap();
        fs::create_dir_all(d.path().join("b/full")).unwrap();
        let e = rename(&d.path().join("a"), &d.path().join("b")).unwrap_err();
        assert!(e.to_string().contains("renaming"), "{e}");
        assert!(d.path().join("a").is_dir() && d.path().join("b/full").is_dir());
        let e = write_file(&d.path().join("no/such/dir/f"), b"x", 0o644).unwrap_err();
        assert!(e.to_string().contains("no/such/dir"), "{e}");
    }
}
