//! Layer tar <-> directory.
//!
//! Unpacking keeps OCI whiteouts as they are in the tar: `.wh.NAME` files and
//! `.wh..wh..opq` markers. That is the AUFS on-disk format, which the union FS reads in
//! lower layers, and it needs no privilege (a 0/0 char device cannot be made rootless).
//! A 0/0 char device found in a tar (overlay-style whiteout) becomes `.wh.NAME`.
//!
//! Every tar is read with the same rules: absolute names resolve under the tree's root
//! (as docker reads them; `/` is the root itself), no `..`, no name that
//! crosses a symlink, no hard link to a name outside the tree or not yet unpacked, no
//! relative symlink that climbs above the tree (absolute ones are fine: they resolve
//! inside the container's root), no oversized metadata header. Devices that cannot be
//! made (rootless) are skipped with a warning. The caller unpacks into a fresh temp dir
//! and deletes it on error, so a refused archive leaves nothing behind.
//!
//! Packing walks a directory (a container's upper layer, or a rootfs) and writes OCI
//! whiteouts for both on-disk formats, keeping hard links, owners, modes, times and
//! xattrs (as PAX `SCHILY.xattr.*`), and dropping overlay's private xattrs.
mod format;
mod pack;
mod unpack;

pub use format::{
    DEVICE_PAX, OPAQUE_MARKER, WHITEOUT_PREFIX, copy_data, is_overlay_xattr, rel_display,
};
pub use pack::{LayerWriter, PackOptions};
pub use unpack::{TarStream, UnpackReport, safe_relative, unpack, walk_entries};
