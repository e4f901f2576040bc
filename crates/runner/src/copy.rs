//! Copying one file system object between host paths with its type, mode, owner and
//! times (filling a volume from the image; the host side of `cp`).
use crate::error::{Result, io};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Makes `dst` a copy of `src` (described by `meta`, not followed if a symlink): a dir
/// is made (its content is the caller's walk), a file copied, a symlink recreated, a
/// fifo or device made anew. An existing dir at `dst` is kept; another object replaced.
pub fn copy_node(src: &Path, meta: &fs::Metadata, dst: &Path) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_dir() {
        match fs::symlink_metadata(dst) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                fs::remove_file(dst).map_err(io("remove", dst))?;
                fs::create_dir(dst).map_err(io("mkdir", dst))?;
            }
            Err(_) => fs::create_dir(dst).map_err(io("mkdir", dst))?,
        }
    } else {
        if let Ok(m) = fs::symlink_metadata(dst) {
            if m.is_dir() {
                bail!(
                    "cannot overwrite directory {} with a non-directory",
                    dst.display()
                );
            }
            fs::remove_file(dst).map_err(io("remove", dst))?;
        }
        if ft.is_symlink() {
            let target = fs::read_link(src).map_err(io("readlink", src))?;
            std::os::unix::fs::symlink(&target, dst).map_err(io("symlink", dst))?;
        } else if ft.is_file() {
            fs::copy(src, dst).map_err(io("copy to", dst))?;
        } else {
            let c = crate::linux::cstr(dst)?;
            // SAFETY: mknod on a path we own, with the source's mode and device number.
            if unsafe { libc::mknod(c.as_ptr(), meta.mode(), meta.rdev()) } != 0 {
                return Err(io("mknod", dst)(std::io::Error::last_os_error()));
            }
        }
    }
    set_attrs(meta, dst)
}

/// Owner, mode (not for a symlink) and modification time of `meta` onto `dst`.
pub fn set_attrs(meta: &fs::Metadata, dst: &Path) -> Result<()> {
    // Owner first: a chown drops set-id bits.
    if let Err(e) = std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid())) {
        // A plain user cannot give files away: keep them its own, as cp does.
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(io("chown", dst)(e));
        }
    }
    if !meta.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io("chmod", dst))?;
    }
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::new(meta.mtime().max(0) as u64, meta.mtime_nsec() as u32);
    if (meta.is_file() || meta.is_dir())
        && let Ok(f) = fs::File::options()
            .write(meta.is_file())
            .read(!meta.is_file())
            .open(dst)
    {
        let _ = f.set_modified(mtime);
    }
    Ok(())
}
